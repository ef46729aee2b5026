//! Runs an engine batch loop with the GIL released, while the calling thread watches it.
//!
//! Python runs signal handlers on the main thread only, never on the pool's threads. So the
//! calling thread waits for the loop and, every [`TICK`], takes the GIL back to look for Ctrl-C
//! and to hand the loop's progress to a Python callable (the progress bar). The loop itself only
//! stores its progress in atomics after each batch (no Python, no lock, no allocation) and
//! checks a [`Cancel`] between layers, which the watch sets on Ctrl-C.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use pynn_core::cancel::Cancel;
use pynn_core::network::MAX_PART_SAMPLES;
use pynn_core::parallel;
use pynn_core::train::{Next, Progress};
use pyo3::prelude::*;

use crate::errors::{self, to_py};

/// How often the waiting thread takes the GIL back: Keras redraws its bar at most every 0.05 s.
const TICK: Duration = Duration::from_millis(50);

/// The last progress a loop stored: batches run, then the running loss and metrics as f64 bits
/// (none when the loop keeps its logs elsewhere, as the GPU engine does).
struct ProgressCell {
    batches: AtomicUsize,
    means: Vec<AtomicU64>,
    has_means: AtomicBool,
}

impl ProgressCell {
    fn new(values: usize) -> Self {
        ProgressCell {
            batches: AtomicUsize::new(0),
            means: (0..values).map(|_| AtomicU64::new(0)).collect(),
            has_means: AtomicBool::new(false),
        }
    }

    fn store(&self, progress: &Progress) {
        for (slot, mean) in self.means.iter().zip(progress.means()) {
            slot.store(mean.to_bits(), Ordering::Relaxed);
            self.has_means.store(true, Ordering::Relaxed);
        }
        self.batches.store(progress.batches, Ordering::Release);
    }

    /// Batches run and the running values; the values may be a batch newer than the count,
    /// which a progress display does not mind.
    fn load(&self) -> (usize, Vec<f64>) {
        let batches = self.batches.load(Ordering::Acquire);
        let shown = usize::from(self.has_means.load(Ordering::Relaxed)) * self.means.len();
        let means = self.means[..shown].iter();
        let means = means.map(|m| f64::from_bits(m.load(Ordering::Relaxed)));
        (batches, means.collect())
    }
}

/// Where a loop's progress goes: `report(batches, [loss, metrics...])`, called on the calling
/// thread with the GIL when a batch has ended since the last call.
pub struct ProgressReport<'py> {
    pub report: Option<Bound<'py, PyAny>>,
    /// How many running values the loop reports (1 + metrics; 0 for predictions).
    pub values: usize,
}

impl ProgressReport<'_> {
    /// No report: a call that shows no progress.
    pub fn none() -> Self {
        ProgressReport {
            report: None,
            values: 0,
        }
    }
}

/// Runs `work` (a loop of `batches` batches of up to `samples` samples) in the engine's pool
/// with the GIL released; a panic becomes `RuntimeError`, Ctrl-C stops the loop within a layer
/// (between batches, and inside a batch between its parts and layers) and raises
/// `KeyboardInterrupt`, and an exception from `report` stops it and is raised. `work` gets the
/// function to call after each batch and the request to stop that it checks inside batches.
///
/// A single small batch (as when callbacks see every batch) runs without the watch, which costs
/// a few tens of microseconds per call; Python sees Ctrl-C as soon as it returns.
pub fn run_released<T: Send>(
    py: Python<'_>,
    batches: usize,
    samples: usize,
    progress: ProgressReport<'_>,
    work: impl FnOnce(&mut dyn FnMut(&Progress) -> Next, &Cancel) -> pynn_core::Result<T> + Send,
) -> PyResult<T> {
    if batches <= 1 && samples <= MAX_PART_SAMPLES {
        return py.detach(|| {
            errors::catch_panic(|| {
                parallel::install(|| work(&mut |_| Next::Continue, Cancel::never()))
                    .and_then(|r| r)
                    .map_err(to_py)
            })
        });
    }
    let report = progress.report.map(Bound::unbind);
    let cell = ProgressCell::new(progress.values);
    let cancel = Cancel::new();
    let mut failure = None;
    let mut reported = 0;
    let result = py.detach(|| {
        let loop_in_pool = || {
            let mut after_batch = |progress: &Progress| {
                cell.store(progress);
                match cancel.requested() {
                    true => Next::Stop,
                    false => Next::Continue,
                }
            };
            errors::catch_panic(|| work(&mut after_batch, &cancel).map_err(to_py))
        };
        let watch = || {
            let outcome = Python::attach(|py| {
                py.check_signals()?;
                let (done, means) = cell.load();
                match &report {
                    Some(report) if done > reported => {
                        reported = done;
                        report.call1(py, (done, means)).map(drop)
                    }
                    _ => Ok(()),
                }
            });
            if let Err(err) = outcome {
                failure.get_or_insert(err);
                cancel.request();
            }
        };
        errors::catch_panic(|| {
            parallel::install_and_tick(loop_in_pool, TICK, watch)
                .map_err(to_py)
                .and_then(|r| r)
        })
    });
    // A stopped loop's own result (an interruption) gives way to what stopped it.
    match failure {
        Some(err) => Err(err),
        None => result,
    }
}
