//! The one loop over batches that `fit`, `evaluate` and `predict` run, on the CPU or on a
//! device: the batches of the order an epoch visits samples in, the running sums behind the
//! logs, progress and Ctrl-C between batches. What runs each batch is a [`Runner`]: the CPU's
//! trainer and network (`train.rs`), or a device's copy ([`DeviceCopy`]), which keeps its sums
//! where it runs until the loop's end.

use std::ops::Range;

use crate::cancel::Cancel;
use crate::error::Result;
use crate::session::DeviceCopy;
use crate::train::{
    check_batch_size, visiting_order, Dataset, Logs, Next, OutputSpec, Progress, Totals,
};

/// What runs a loop's batches.
pub(crate) trait Runner {
    /// Runs the samples `indices` as the loop's batch `index`, adding its sums to `totals` now
    /// or keeping them for [`Runner::finish`].
    fn run(&mut self, index: usize, indices: &[usize], totals: &mut Totals) -> Result<()>;

    /// Whether `totals` hold each batch's sums as soon as it ran (running logs for progress).
    fn running(&self) -> bool {
        true
    }

    /// Adds the sums it kept to `totals`, for batches of `samples[b]` samples.
    fn finish(&mut self, _samples: &[usize], _totals: &mut Totals) -> Result<()> {
        Ok(())
    }
}

/// Runs `order` in batches of `batch_size` on `runner`, telling `after_batch` after each (it
/// may stop the loop) and stopping between batches when `cancel` asks.
pub(crate) fn run_batches(
    order: &[usize],
    batch_size: usize,
    totals: &mut Totals,
    runner: &mut dyn Runner,
    (after_batch, cancel): (&mut dyn FnMut(&Progress) -> Next, &Cancel),
) -> Result<()> {
    let mut samples = Vec::with_capacity(order.len().div_ceil(batch_size.max(1)));
    for (index, batch) in order.chunks(batch_size).enumerate() {
        cancel.check()?;
        runner.run(index, batch, totals)?;
        samples.push(batch.len());
        let running = runner.running();
        let progress = Progress::of(index + 1, running.then_some(&*totals));
        if let Next::Stop = after_batch(&progress) {
            break;
        }
    }
    runner.finish(&samples, totals)
}

/// Runs `f` on each batch of `len` samples taken in order, `batch_size` at a time (the last
/// one shorter), telling `after_batch` after each; [`Next::Stop`] when it stopped the loop.
pub(crate) fn for_each_batch(
    len: usize,
    batch_size: usize,
    (after_batch, cancel): (&mut dyn FnMut(&Progress) -> Next, &Cancel),
    mut f: impl FnMut(Range<usize>) -> Result<()>,
) -> Result<Next> {
    for (index, start) in (0..len).step_by(batch_size.max(1)).enumerate() {
        cancel.check()?;
        f(start..(start + batch_size).min(len))?;
        if let Next::Stop = after_batch(&Progress::batches_only(index + 1)) {
            return Ok(Next::Stop);
        }
    }
    Ok(Next::Continue)
}

/// How a device lays out each batch's sums: per output its loss's sum and its metrics' sums,
/// then the weights' penalty. `rows_per_sample[o]` is output `o`'s rows per sample.
pub struct SumsLayout {
    pub outputs: Vec<OutputSpec>,
    pub rows_per_sample: Vec<usize>,
}

impl SumsLayout {
    /// Values per batch, for `outputs`.
    pub fn stride<'a>(outputs: impl IntoIterator<Item = &'a OutputSpec>) -> usize {
        outputs
            .into_iter()
            .map(|o| 1 + o.metrics.len())
            .sum::<usize>()
            + 1
    }

    /// Totals for these outputs: their metrics and, with more than one loss, their losses.
    fn totals(&self) -> Totals {
        let metrics = self.outputs.iter().map(|o| o.metrics.len()).sum();
        Totals::with_outputs(crate::train::tracked_losses(&self.outputs), metrics)
    }
}

/// What a device's loop runs on each batch.
enum DevicePass {
    Train { learning_rate: f32 },
    Test,
}

/// A device's copy as a [`Runner`]: its sums come down once, at the loop's end.
struct DeviceRunner<'a> {
    copy: &'a mut dyn DeviceCopy,
    data: &'a Dataset<'a>,
    pass: DevicePass,
    layout: &'a SumsLayout,
}

impl Runner for DeviceRunner<'_> {
    fn run(&mut self, index: usize, indices: &[usize], _: &mut Totals) -> Result<()> {
        match self.pass {
            DevicePass::Train { learning_rate } => {
                self.copy
                    .train_batch(self.data, indices, (index, learning_rate))
            }
            DevicePass::Test => self.copy.test_batch(self.data, indices, index),
        }
    }

    fn running(&self) -> bool {
        false
    }

    fn finish(&mut self, samples: &[usize], totals: &mut Totals) -> Result<()> {
        let stride = SumsLayout::stride(&self.layout.outputs);
        let sums = self.copy.batch_sums(samples.len())?;
        for (&n, sums) in samples.iter().zip(sums.chunks(stride)) {
            totals.add_batch_sums(sums, n, self.layout);
        }
        Ok(())
    }
}

/// One epoch on a device's `copy`: `data` (checked by the caller) in batches of `batch_size`,
/// visited in the order `shuffle_seed` gives on the CPU, at `learning_rate`.
pub fn fit_on_device(
    copy: &mut dyn DeviceCopy,
    layout: &SumsLayout,
    data: &Dataset,
    (batch_size, shuffle_seed, learning_rate): (usize, Option<u64>, f32),
    after_batch: &mut dyn FnMut(&Progress) -> Next,
    cancel: &Cancel,
) -> Result<Logs> {
    let pass = DevicePass::Train { learning_rate };
    let order = visiting_order(data.len, shuffle_seed)?;
    let watch = (after_batch, cancel);
    run_on_device(copy, layout, data, (&order, batch_size), pass, watch)
}

/// The losses and metrics of `data` on a device's `copy`, with fixed weights.
pub fn evaluate_on_device(
    copy: &mut dyn DeviceCopy,
    layout: &SumsLayout,
    data: &Dataset,
    batch_size: usize,
    after_batch: &mut dyn FnMut(&Progress) -> Next,
    cancel: &Cancel,
) -> Result<Logs> {
    let order = visiting_order(data.len, None)?;
    let (batching, watch) = ((&order[..], batch_size), (after_batch, cancel));
    run_on_device(copy, layout, data, batching, DevicePass::Test, watch)
}

fn run_on_device(
    copy: &mut dyn DeviceCopy,
    layout: &SumsLayout,
    data: &Dataset,
    (order, batch_size): (&[usize], usize),
    pass: DevicePass,
    watch: (&mut dyn FnMut(&Progress) -> Next, &Cancel),
) -> Result<Logs> {
    check_batch_size(batch_size)?;
    copy.prepare(batch_size.min(data.len), data.len.div_ceil(batch_size))?;
    let mut totals = layout.totals();
    let mut runner = DeviceRunner {
        copy,
        data,
        pass,
        layout,
    };
    run_batches(order, batch_size, &mut totals, &mut runner, watch)?;
    Ok(totals.logs())
}

/// The outputs of `len` samples of `xs` (one array per input) into `outs` (one per output) on
/// a device's `copy`, in batches of `batch_size` (sizes checked by the caller).
pub fn predict_on_device(
    copy: &mut dyn DeviceCopy,
    (xs, len): (&[&[f32]], usize),
    batch_size: usize,
    outs: &mut [&mut [f32]],
    after_batch: &mut dyn FnMut(&Progress) -> Next,
    cancel: &Cancel,
) -> Result<Next> {
    check_batch_size(batch_size)?;
    copy.prepare(batch_size.min(len), len.div_ceil(batch_size))?;
    for_each_batch(len, batch_size, (after_batch, cancel), |rows| {
        let last = rows.end == len;
        copy.predict_batch(xs, rows, outs, last)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A runner that records the batches it ran and those it was told to finish.
    #[derive(Default)]
    struct Recording {
        ran: Vec<(usize, Vec<usize>)>,
        finished: Vec<usize>,
    }

    impl Runner for Recording {
        fn run(&mut self, index: usize, indices: &[usize], _: &mut Totals) -> Result<()> {
            self.ran.push((index, indices.to_vec()));
            Ok(())
        }

        fn running(&self) -> bool {
            false
        }

        fn finish(&mut self, samples: &[usize], _: &mut Totals) -> Result<()> {
            self.finished = samples.to_vec();
            Ok(())
        }
    }

    #[test]
    fn batches_follow_the_order_and_stop_when_told() {
        let order = [4, 0, 3, 1, 2];
        let mut runner = Recording::default();
        let mut totals = Totals::with_outputs(0, 0);
        let mut seen = Vec::new();
        let mut after = |p: &Progress| {
            seen.push((p.batches, p.means().count()));
            Next::Continue
        };
        run_batches(
            &order,
            2,
            &mut totals,
            &mut runner,
            (&mut after, Cancel::never()),
        )
        .unwrap();
        let ran = [(0, vec![4, 0]), (1, vec![3, 1]), (2, vec![2])];
        assert_eq!(runner.ran, ran);
        assert_eq!(runner.finished, [2, 2, 1]);
        assert_eq!(
            seen,
            [(1, 0), (2, 0), (3, 0)],
            "no running logs from this runner"
        );
        let mut runner = Recording::default();
        let mut stop_after_two = |p: &Progress| match p.batches {
            2 => Next::Stop,
            _ => Next::Continue,
        };
        let watch = (&mut stop_after_two as _, Cancel::never());
        run_batches(&order, 2, &mut totals, &mut runner, watch).unwrap();
        assert_eq!(runner.finished, [2, 2], "the batches run before the stop");
    }

    #[test]
    fn a_cancelled_loop_stops_before_its_next_batch() {
        let cancel = Cancel::new();
        cancel.request();
        let mut runner = Recording::default();
        let mut totals = Totals::with_outputs(0, 0);
        let mut after = |_: &Progress| Next::Continue;
        let result = run_batches(&[0, 1], 1, &mut totals, &mut runner, (&mut after, &cancel));
        assert!(result.is_err());
        assert!(runner.ran.is_empty());
    }

    #[test]
    fn batches_of_a_prediction_cover_the_samples_in_order() {
        let mut ranges = Vec::new();
        let mut after = |_: &Progress| Next::Continue;
        let watch = (&mut after as _, Cancel::never());
        let next = for_each_batch(7, 3, watch, |rows| {
            ranges.push(rows);
            Ok(())
        });
        assert!(matches!(next, Ok(Next::Continue)));
        assert_eq!(ranges, [0..3, 3..6, 6..7]);
    }
}
