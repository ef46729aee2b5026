//! Per-thread scratch for the convolutions: im2col rows for inference, padded bands of rows for
//! the implicit GEMM, padded images for the scatter.

use crate::error::Result;
use crate::memory::ensure_len;

thread_local! {
    /// Grown to the largest size seen and reused.
    static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` on this thread's scratch, at least `len` values long.
pub(super) fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> Result<R> {
    SCRATCH.with_borrow_mut(|scratch| {
        ensure_len(scratch, len)?;
        Ok(f(&mut scratch[..len]))
    })
}
