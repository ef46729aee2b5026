//! A request to stop a computation before its end (Ctrl-C in Python), set by the thread that
//! watches a call and checked by the engine between layers and between a batch's parts, so that
//! even a call that runs one large batch stops within a layer's time.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{CoreError, Result};

#[derive(Debug, Default)]
pub struct Cancel(AtomicBool);

/// A token nobody ever requests, for calls that cannot be interrupted (tests, benchmarks).
static NEVER: Cancel = Cancel(AtomicBool::new(false));

impl Cancel {
    pub fn new() -> Self {
        Self::default()
    }

    /// The token of a computation nobody will stop.
    pub fn never() -> &'static Cancel {
        &NEVER
    }

    /// Asks the computation to stop at its next check.
    pub fn request(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn requested(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// `Err(CoreError::Interrupted)` once a stop was requested.
    pub fn check(&self) -> Result<()> {
        match self.requested() {
            true => Err(CoreError::Interrupted),
            false => Ok(()),
        }
    }
}
