//! `Dense`: `y = activation(x · kernel + bias)` on the last axis (`keras/src/layers/core/dense.py`).
//! The kernel is `(in, units)`, row-major, followed by the bias `(units,)`.

use serde::{Deserialize, Serialize};

use super::kernel_bias::KernelBias;
use super::Layer;
use crate::error::{CoreError, Result};
use crate::initializers::{Distribution, FanMode, Initializer};
use crate::kernels::activation::Activation;
use crate::kernels::gemm::{matmul, Op};
use crate::kernels::reduce::{broadcast_rows, sum_rows};
use crate::memory::ensure_len;
use crate::regularizers::Regularizer;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DenseSpec {
    pub units: usize,
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

impl DenseSpec {
    /// Keras's defaults: a bias, a `glorot_uniform` kernel drawn from `seed`, a zero bias.
    pub fn new(units: usize, activation: Activation, seed: u64) -> Self {
        DenseSpec {
            units,
            activation,
            use_bias: true,
            kernel_initializer: Initializer::VarianceScaling {
                scale: 1.0,
                mode: FanMode::FanAvg,
                distribution: Distribution::Uniform,
                seed,
            },
            bias_initializer: Initializer::Zeros,
            kernel_regularizer: None,
            bias_regularizer: None,
            activity_regularizer: None,
        }
    }
}

pub struct Dense {
    spec: DenseSpec,
    weights: KernelBias,
    inputs: usize,
    /// Rows per sample: the product of the input's axes before the last.
    rows_per_sample: usize,
    output_shape: Vec<usize>,
    /// Pre-activations `x · kernel + bias`, kept for the activation's derivative.
    z: Vec<f32>,
}

impl Dense {
    pub fn new(spec: DenseSpec, input_shape: &[usize]) -> Result<Self> {
        let Some((&inputs, leading)) = input_shape.split_last() else {
            return Err(CoreError::invalid(
                "input_shape",
                "at least one axis for Dense",
                "a scalar",
            ));
        };
        if spec.units == 0 {
            return Err(CoreError::invalid("units", "a positive integer", 0));
        }
        let mut output_shape = leading.to_vec();
        output_shape.push(spec.units);
        let weights = KernelBias {
            kernel_shape: vec![inputs, spec.units],
            bias: spec.use_bias.then_some(spec.units),
            kernel_initializer: spec.kernel_initializer.clone(),
            bias_initializer: spec.bias_initializer.clone(),
            kernel_regularizer: spec.kernel_regularizer,
            bias_regularizer: spec.bias_regularizer,
        };
        Ok(Dense {
            weights,
            rows_per_sample: leading.iter().product(),
            inputs,
            output_shape,
            z: Vec::new(),
            spec,
        })
    }

    fn kernel_len(&self) -> usize {
        self.weights.kernel_len()
    }
}

/// `out = x · kernel (+ bias)`; an empty `bias` means no bias.
fn affine(
    x: &[f32],
    kernel: &[f32],
    bias: &[f32],
    out: &mut [f32],
    rows: usize,
    units: usize,
    inputs: usize,
) {
    let use_bias = !bias.is_empty();
    if use_bias {
        broadcast_rows(bias, out);
    }
    matmul(x, Op::N, kernel, Op::N, out, rows, units, inputs, use_bias);
}

impl Layer for Dense {
    fn output_shape(&self) -> &[usize] {
        &self.output_shape
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
        _: bool,
    ) -> Result<()> {
        let (rows, units) = (batch * self.rows_per_sample, self.spec.units);
        let (kernel, bias) = weights.split_at(self.kernel_len());
        let y = &mut y[..rows * units];
        if self.spec.activation == Activation::Linear {
            // A linear Dense writes straight into `y`: there is no pre-activation to keep.
            affine(x, kernel, bias, y, rows, units, self.inputs);
        } else {
            ensure_len(&mut self.z, rows * units)?;
            let z = &mut self.z[..rows * units];
            affine(x, kernel, bias, z, rows, units, self.inputs);
            self.spec.activation.forward(z, y, units);
        }
        Ok(())
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
        let (rows, units, inputs) = (batch * self.rows_per_sample, self.spec.units, self.inputs);
        let dz = &mut dy[..rows * units];
        let z = if self.spec.activation == Activation::Linear {
            &y[..rows * units]
        } else {
            &self.z[..rows * units]
        };
        self.spec
            .activation
            .backward(z, &y[..rows * units], dz, units);
        let (d_kernel, d_bias) = grads.split_at_mut(self.kernel_len());
        // ∂kernel = xᵀ · dz ; ∂bias = Σ_rows dz ; ∂x = dz · kernelᵀ. The two products are
        // independent: run side by side, each small one keeps a thread busy.
        let dz: &[f32] = dz;
        let use_bias = self.spec.use_bias;
        let kernel = &weights[..self.kernel_len()];
        let mut weight_gradients = || {
            matmul(x, Op::T, dz, Op::N, d_kernel, inputs, units, rows, false);
            if use_bias {
                sum_rows(dz, d_bias);
            }
        };
        match dx {
            Some(dx) => {
                rayon::join(weight_gradients, || {
                    matmul(dz, Op::N, kernel, Op::T, dx, rows, inputs, units, false)
                });
            }
            None => weight_gradients(),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(activation: Activation, use_bias: bool) -> DenseSpec {
        DenseSpec {
            use_bias,
            bias_initializer: Initializer::RandomUniform {
                minval: -0.5,
                maxval: 0.5,
                seed: 4,
            },
            ..DenseSpec::new(3, activation, 3)
        }
    }

    /// Σ y·r for a fixed `r`: its gradient with respect to y is `r`.
    fn objective(layer: &mut Dense, w: &[f32], x: &[f32], r: &[f32], batch: usize) -> f64 {
        let mut y = vec![0.0; r.len()];
        layer.forward(w, x, &mut y, batch, true).unwrap();
        y.iter().zip(r).map(|(y, r)| (y * r) as f64).sum()
    }

    #[test]
    fn forward_is_x_kernel_plus_bias() {
        let mut layer = Dense::new(spec(Activation::Linear, true), &[2]).unwrap();
        let w = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 0.5, -0.5, 1.0];
        let mut y = [0.0; 3];
        layer.forward(&w, &[1.0, -1.0], &mut y, 1, false).unwrap();
        assert_eq!(y, [-2.5, -3.5, -2.0]);
    }

    #[test]
    fn backward_matches_finite_differences() {
        for (activation, use_bias) in [(Activation::Tanh, true), (Activation::Linear, false)] {
            let (batch, inputs) = (4, 5);
            let mut layer = Dense::new(spec(activation, use_bias), &[inputs]).unwrap();
            let n_w = inputs * 3 + if use_bias { 3 } else { 0 };
            let mut w = vec![0.0; n_w];
            layer.init_weights(&mut w).unwrap();
            let x: Vec<f32> = (0..batch * inputs)
                .map(|i| (i as f32 * 0.3).sin())
                .collect();
            let r: Vec<f32> = (0..batch * 3).map(|i| (i as f32 * 0.7).cos()).collect();

            let mut y = vec![0.0; batch * 3];
            layer.forward(&w, &x, &mut y, batch, true).unwrap();
            let (mut grads, mut dx, mut dy) = (vec![0.0; n_w], vec![0.0; x.len()], r.clone());
            layer
                .backward(&w, &mut grads, &x, &y, &mut dy, Some(&mut dx), batch)
                .unwrap();

            let h = 1e-3;
            let numeric = |f: &mut dyn FnMut(f32) -> f64| (f(h) - f(-h)) / (2.0 * h as f64);
            for i in 0..n_w {
                let n = numeric(&mut |d| {
                    let mut w2 = w.clone();
                    w2[i] += d;
                    objective(&mut layer, &w2, &x, &r, batch)
                });
                assert!(
                    (grads[i] as f64 - n).abs() < 2e-3,
                    "weight {i}: {} vs {n}",
                    grads[i]
                );
            }
            for i in 0..x.len() {
                let n = numeric(&mut |d| {
                    let mut x2 = x.clone();
                    x2[i] += d;
                    objective(&mut layer, &w, &x2, &r, batch)
                });
                assert!(
                    (dx[i] as f64 - n).abs() < 2e-3,
                    "input {i}: {} vs {n}",
                    dx[i]
                );
            }
        }
    }

    #[test]
    fn acts_on_the_last_axis() {
        let layer = Dense::new(spec(Activation::Relu, true), &[7, 5]).unwrap();
        assert_eq!(layer.output_shape(), &[7, 3]);
        assert_eq!(layer.weight_shapes(), vec![vec![5, 3], vec![3]]);
    }
}
