//! `Conv1D` / `Conv2D` (`keras/src/layers/convolutional/base_conv.py`), channels last:
//! `y = activation(conv(x, kernel) + bias)`, cross-correlation (the kernel is not flipped), with
//! the kernel `(k, in, filters)` or `(kh, kw, in, filters)` followed by the bias `(filters,)`.
//! A 1D convolution runs as a 2D one of height 1; both kernel layouts are then the same memory.
//!
//! The layer joins its pieces, each chosen once for the shape and tested against the im2col
//! reference: [`shape`] (Keras's shape rules), [`forward`] (implicit GEMM or im2col, the
//! activation fused), [`weight_gradients`] and [`input_gradient`] (flipped convolution, scatter
//! or col2im), which run side by side.

mod forward;
mod input_gradient;
mod scratch;
mod shape;
mod weight_gradients;

use serde::{Deserialize, Serialize};

use super::kernel_bias::KernelBias;
use super::Layer;
use crate::error::Result;
use crate::initializers::Initializer;
use crate::kernels::activation::Activation;
use crate::kernels::conv::{Geometry, Padding};
use crate::regularizers::Regularizer;
use forward::{Forward, Products};
use input_gradient::InputGradient;
use weight_gradients::WeightGradients;

/// The im2col rows one task produces and multiplies at once: few enough to stay in cache
/// between the two, enough for an efficient product. Their size never depends on the thread
/// count. The backward's tiles hold whole images of about this many rows, so that the input
/// gradients of two tiles never overlap.
const TILE_ROWS: usize = 512;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConvSpec {
    pub filters: usize,
    /// One size per spatial axis: 1 for Conv1D, 2 for Conv2D.
    pub kernel_size: Vec<usize>,
    pub strides: Vec<usize>,
    pub padding: Padding,
    pub dilation_rate: Vec<usize>,
    pub activation: Activation,
    pub use_bias: bool,
    pub kernel_initializer: Initializer,
    pub bias_initializer: Initializer,
    #[serde(default)]
    pub kernel_regularizer: Option<Regularizer>,
    #[serde(default)]
    pub bias_regularizer: Option<Regularizer>,
    #[serde(default)]
    pub activity_regularizer: Option<Regularizer>,
}

pub struct Conv {
    spec: ConvSpec,
    weights: KernelBias,
    geometry: Geometry,
    output_shape: Vec<usize>,
    forward: Forward,
    weight_gradients: WeightGradients,
    input_gradient: InputGradient,
}

impl Conv {
    pub fn new(spec: ConvSpec, input_shape: &[usize]) -> Result<Self> {
        let shapes = shape::shapes(&spec, input_shape)?;
        let geometry = shapes.geometry;
        let weights = KernelBias {
            kernel_shape: shapes.kernel,
            bias: spec.use_bias.then_some(spec.filters),
            kernel_initializer: spec.kernel_initializer.clone(),
            bias_initializer: spec.bias_initializer.clone(),
            kernel_regularizer: spec.kernel_regularizer,
            bias_regularizer: spec.bias_regularizer,
        };
        let forward = Forward::new(&geometry, spec.filters);
        let input_gradient = InputGradient::new(&geometry, forward.implicit(), spec.filters);
        Ok(Conv {
            spec,
            weights,
            geometry,
            output_shape: shapes.output,
            forward,
            weight_gradients: WeightGradients::default(),
            input_gradient,
        })
    }

    fn kernel_len(&self) -> usize {
        self.weights.kernel_len()
    }
}

impl Layer for Conv {
    fn output_shape(&self) -> &[usize] {
        &self.output_shape
    }

    fn geometry(&self) -> Option<Geometry> {
        Some(self.geometry)
    }

    fn weight_shapes(&self) -> Vec<Vec<usize>> {
        self.weights.shapes()
    }

    fn init_weights(&self, weights: &mut [f32]) -> Result<()> {
        self.weights.init(weights)
    }

    fn weight_penalty(&self, weights: &[f32], grads: Option<&mut [f32]>) -> f64 {
        self.weights.penalty(weights, grads)
    }

    fn activity_regularizer(&self) -> Option<Regularizer> {
        self.spec.activity_regularizer
    }

    fn forward(
        &mut self,
        weights: &[f32],
        x: &[f32],
        y: &mut [f32],
        batch: usize,
        training: bool,
    ) -> Result<()> {
        let len = batch * self.geometry.pixels() * self.spec.filters;
        let (kernel, bias) = weights.split_at(self.kernel_len());
        let products = Products {
            kernel,
            bias: self.spec.use_bias.then_some(bias),
            filters: self.spec.filters,
            activation: self.spec.activation,
        };
        let g = self.geometry;
        self.forward.run(&g, products, x, &mut y[..len], training)
    }

    fn backward(
        &mut self,
        weights: &[f32],
        grads: &mut [f32],
        x: &[f32],
        y: &[f32],
        dy: &mut [f32],
        dx: Option<&mut [f32]>,
        batch: usize,
    ) -> Result<()> {
        let Conv {
            spec,
            geometry: g,
            forward,
            weight_gradients,
            input_gradient,
            ..
        } = self;
        let (filters, activation) = (spec.filters, spec.activation);
        let len = batch * g.pixels() * filters;
        let (y, dz) = (&y[..len], &mut dy[..len]);
        activation.backward(forward.preactivations(activation, y), y, dz, filters);
        let dz: &[f32] = dz;
        let kernel_len = g.field() * filters;
        let (d_kernel, d_bias) = grads.split_at_mut(kernel_len);
        let d_bias = spec.use_bias.then_some(d_bias);
        let kernel = &weights[..kernel_len];
        // The weight gradients read the layer's input (or the im2col rows the training forward
        // kept); ∂x, independent of them, runs beside.
        let (weights_done, input_done) = rayon::join(
            || weight_gradients.compute((g, forward), x, dz, d_kernel, d_bias),
            || match dx {
                Some(dx) => input_gradient.compute(g, filters, kernel, dz, dx),
                None => Ok(()),
            },
        );
        weights_done.and(input_done)
    }
}

/// Specs and shapes the pieces' tests share.
#[cfg(test)]
mod testing {
    use super::*;
    use crate::kernels::conv::Axis;

    /// A convolution of `filters` with unit dilation and a bias (zeros: the shapes matter).
    pub fn spec(filters: usize, kernel: &[usize], strides: &[usize], padding: Padding) -> ConvSpec {
        ConvSpec {
            filters,
            kernel_size: kernel.to_vec(),
            strides: strides.to_vec(),
            padding,
            dilation_rate: vec![1; kernel.len()],
            activation: Activation::Linear,
            use_bias: true,
            kernel_initializer: Initializer::Zeros,
            bias_initializer: Initializer::Zeros,
            kernel_regularizer: None,
            bias_regularizer: None,
            activity_regularizer: None,
        }
    }

    /// Convolutions the methods treat differently: "same" and "valid", one and several
    /// channels, filters in whole vectors and not, 1- to 5-wide kernels, 1D, strides and
    /// dilations (which only im2col, the scatter and col2im run), the direct tiles' 3x3 of 16.
    pub fn geometries() -> Vec<(Geometry, usize)> {
        let g = |(h, kh, sh, dh): (usize, usize, usize, usize),
                 w: (usize, usize, usize, usize),
                 c,
                 p| {
            Geometry {
                rows: Axis::new(h, kh, sh, dh, p).unwrap(),
                cols: Axis::new(w.0, w.1, w.2, w.3, p).unwrap(),
                channels: c,
            }
        };
        let (same, valid) = (Padding::Same, Padding::Valid);
        vec![
            (g((8, 3, 1, 1), (9, 3, 1, 1), 16, same), 16),
            (g((7, 3, 1, 1), (6, 3, 1, 1), 3, same), 5),
            (g((10, 5, 1, 1), (10, 5, 1, 1), 6, valid), 16),
            (g((6, 1, 1, 1), (7, 1, 1, 1), 4, valid), 32),
            (g((1, 1, 1, 1), (12, 4, 1, 1), 2, Padding::Causal), 3),
            (g((9, 3, 2, 1), (8, 2, 2, 1), 3, same), 4),
            (g((9, 3, 1, 2), (9, 3, 1, 2), 2, valid), 8),
            (g((5, 3, 1, 1), (18, 3, 1, 1), 16, same), 32),
        ]
    }
}
