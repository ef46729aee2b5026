//! Layers: each kind in its own file, each a config (its spec) in and math out.
//!
//! A layer owns no weights: the network keeps every weight in one contiguous buffer (and every
//! gradient in another) and hands each layer its own range. A layer does own the scratch it needs
//! between forward and backward (pre-activations, masks), sized on the first batch and reused.

mod activation;
mod conv;
mod dense;
mod dropout;
mod kernel_bias;
mod pooling;
mod reshape;

pub use activation::{Activation as ActivationLayer, ActivationSpec};
pub use conv::{Conv, ConvSpec};
pub use dense::{Dense, DenseSpec};
pub use dropout::{Dropout, DropoutSpec};
pub use pooling::{Pool, PoolSpec};
pub use reshape::{Reshape, ReshapeSpec};
use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};
use crate::kernels::activation::Activation;
use crate::kernels::conv::Geometry;
use crate::ops::{ConcatenateSpec, DotSpec, MergeSpec};
use crate::regularizers::Regularizer;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum LayerSpec {
    Dense(DenseSpec),
    Dropout(DropoutSpec),
    Conv(ConvSpec),
    Pool(PoolSpec),
    Reshape(ReshapeSpec),
    Activation(ActivationSpec),
    /// `Add`, `Subtract`, `Multiply`, `Average`, `Maximum`, `Minimum`: several inputs.
    Merge(MergeSpec),
    /// Several inputs side by side.
    Concatenate(ConcatenateSpec),
    /// The dot product of two inputs along an axis of each.
    Dot(DotSpec),
}

impl LayerSpec {
    /// The activation a layer ends in (Dense, convolutions, `Activation`), if any.
    pub fn activation(&self) -> Option<Activation> {
        match self {
            LayerSpec::Dense(spec) => Some(spec.activation),
            LayerSpec::Conv(spec) => Some(spec.activation),
            LayerSpec::Activation(spec) => Some(spec.activation),
            _ => None,
        }
    }

    /// The same layer with a linear activation (the network's head applies its activation).
    pub fn without_activation(&self) -> LayerSpec {
        let mut spec = self.clone();
        match &mut spec {
            LayerSpec::Dense(dense) => dense.activation = Activation::Linear,
            LayerSpec::Conv(conv) => conv.activation = Activation::Linear,
            LayerSpec::Activation(layer) => layer.activation = Activation::Linear,
            _ => {}
        }
        spec
    }

    /// Whether the layer penalizes its output.
    pub fn has_activity_regularizer(&self) -> bool {
        match self {
            LayerSpec::Dense(spec) => spec.activity_regularizer.is_some(),
            LayerSpec::Conv(spec) => spec.activity_regularizer.is_some(),
            _ => false,
        }
    }

    /// Builds the layer for inputs whose per-sample shape is `input_shape`; a layer of several
    /// inputs is built by the graph (see [`crate::ops`]).
    pub fn build(&self, input_shape: &[usize]) -> Result<Box<dyn Layer>> {
        match self {
            LayerSpec::Activation(spec) => {
                Ok(Box::new(ActivationLayer::new(spec.clone(), input_shape)?))
            }
            LayerSpec::Merge(_) | LayerSpec::Concatenate(_) | LayerSpec::Dot(_) => Err(
                CoreError::invalid("inputs", "several inputs (a merge layer)", "1"),
            ),
            LayerSpec::Dense(spec) => Ok(Box::new(Dense::new(spec.clone(), input_shape)?)),
            LayerSpec::Dropout(spec) => Ok(Box::new(Dropout::new(spec.clone(), input_shape)?)),
            LayerSpec::Conv(spec) => Ok(Box::new(Conv::new(spec.clone(), input_shape)?)),
            LayerSpec::Pool(spec) => Ok(Box::new(Pool::new(spec.clone(), input_shape)?)),
            LayerSpec::Reshape(spec) => Ok(Box::new(Reshape::new(spec.clone(), input_shape)?)),
        }
    }
}

/// What one layer computes. Buffers hold `batch` samples, row-major.
pub trait Layer: Send + Sync {
    /// The per-sample shape of the output.
    fn output_shape(&self) -> &[usize];

    /// The shapes of this layer's weights, in Keras's order (e.g. kernel, then bias); none by
    /// default.
    fn weight_shapes(&self) -> Vec<Vec<usize>> {
        Vec::new()
    }

    /// Writes initial values into this layer's range of the weight buffer.
    fn init_weights(&self, _weights: &mut [f32]) -> Result<()> {
        Ok(())
    }

    /// The penalty of this layer's weight regularizers; with `grads`, adds its gradient there.
    fn weight_penalty(&self, _weights: &[f32], _grads: Option<&mut [f32]>) -> f64 {
        0.0
    }

    /// The windows of a convolution or pooling layer over its input (for other engines, such
    /// as the GPU's, that compute the same layer); `None` for other layers.
    fn geometry(&self) -> Option<Geometry> {
        None
    }

    /// Whether a training batch must pass through this layer whole rather than in parts (a
    /// Dropout mask is drawn for the whole batch).
    fn needs_whole_batch(&self) -> bool {
        false
    }

    /// The regularizer of this layer's output, if it has one.
    fn activity_regularizer(&self) -> Option<Regularizer> {
        None
    }

    /// Called before the training forward of optimizer step `step`: layers with randomness
    /// draw it from `(seed, step)`, so a run resumed at a step draws what it would have drawn.
    fn begin_step(&mut self, _step: u64) {}

    /// Called once on the instance of a layer's `call`-th call (from 1): layers with
    /// randomness draw a stream of their own for it (a Dropout called twice drops differently).
    fn distinguish_call(&mut self, _call: usize) {}

    /// `y = layer(x)`. With `training`, keeps what [`Layer::backward`] needs. Fails only when
    /// the scratch the layer grows for a larger batch cannot be allocated.
    fn forward(
        &mut self,
        weights: &[f32],
        x: &[f32],
        y: &mut [f32],
        batch: usize,
        training: bool,
    ) -> Result<()>;

    /// Given `dy` (∂loss/∂y, which the layer may overwrite), writes ∂loss/∂weights into `grads`
    /// and, when asked, ∂loss/∂x into `dx`. `x` and `y` are the last training forward's.
    #[allow(clippy::too_many_arguments)]
    fn backward(
        &mut self,
        weights: &[f32],
        grads: &mut [f32],
        x: &[f32],
        y: &[f32],
        dy: &mut [f32],
        dx: Option<&mut [f32]>,
        batch: usize,
    ) -> Result<()>;
}
