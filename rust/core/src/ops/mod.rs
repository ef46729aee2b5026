//! Weightless ops of several inputs: the merge layers (`keras/src/layers/merging/`). Each is a
//! shape rule, a forward and a backward; the graph runs them beside the layers.
//!
//! Buffers hold `batch` samples, row-major; shapes are per sample (the batch axis is never
//! broadcast).

mod concatenate;
mod dot;
mod merge;

pub use concatenate::{Concatenate, ConcatenateSpec};
pub use dot::{Dot, DotSpec};
pub use merge::{Merge, MergeOp, MergeSpec};

use crate::error::Result;

/// An op that combines several inputs into one output.
pub trait Combine: Send + Sync {
    /// The per-sample shape of the output.
    fn output_shape(&self) -> &[usize];

    /// `y = op(inputs)` over `batch` samples. An op may keep what its backward needs.
    fn forward(&mut self, inputs: &[&[f32]], y: &mut [f32], batch: usize) -> Result<()>;

    /// Where every input's gradient is the output's (an `Add` of same-shaped inputs): turns
    /// `dy` into that gradient in place (a fused activation's derivative) and returns true, so
    /// that the graph hands `dy` on without copies; false, touching nothing, otherwise.
    fn passes_gradient_through(&mut self, _y: &[f32], _dy: &mut [f32], _batch: usize) -> bool {
        false
    }

    /// Writes ∂loss/∂input into each `dxs[i]` that is asked for, from `dy` (∂loss/∂y, which
    /// the op may overwrite); `inputs` and `y` are the forward's.
    fn backward(
        &mut self,
        inputs: &[&[f32]],
        y: &[f32],
        dy: &mut [f32],
        dxs: &mut [Option<&mut [f32]>],
        batch: usize,
    ) -> Result<()>;
}
