//! The weights of Dense and convolution layers: a kernel and, optionally, a bias, each with its
//! initializer and regularizer, stored kernel first as Keras orders them.

use crate::error::{CoreError, Result};
use crate::initializers::Initializer;
use crate::regularizers::Regularizer;

pub(crate) struct KernelBias {
    pub kernel_shape: Vec<usize>,
    /// The bias's length, or `None` without a bias.
    pub bias: Option<usize>,
    pub kernel_initializer: Initializer,
    pub bias_initializer: Initializer,
    pub kernel_regularizer: Option<Regularizer>,
    pub bias_regularizer: Option<Regularizer>,
}

fn finite(values: &[f32], initializer: &str) -> Result<()> {
    match values.iter().all(|v| v.is_finite()) {
        true => Ok(()),
        false => Err(CoreError::invalid(
            initializer,
            "an initializer whose values are finite in float32 (a smaller mean, stddev, \
             limits or scale)",
            "values that overflow to infinity",
        )),
    }
}

impl KernelBias {
    pub fn kernel_len(&self) -> usize {
        self.kernel_shape.iter().product()
    }

    pub fn shapes(&self) -> Vec<Vec<usize>> {
        let mut shapes = vec![self.kernel_shape.clone()];
        shapes.extend(self.bias.map(|len| vec![len]));
        shapes
    }

    /// Draws the kernel and the bias; an initializer whose values overflow float32 (a huge
    /// `stddev` or `scale`) is an error naming it, never a model of infinities.
    pub fn init(&self, weights: &mut [f32]) -> Result<()> {
        let (kernel, bias) = weights.split_at_mut(self.kernel_len());
        self.kernel_initializer.fill(&self.kernel_shape, kernel)?;
        finite(kernel, "kernel_initializer")?;
        if let Some(len) = self.bias {
            self.bias_initializer.fill(&[len], bias)?;
            finite(bias, "bias_initializer")?;
        }
        Ok(())
    }

    /// The kernel's and the bias's penalties; with `grads`, adds their gradients there.
    pub fn penalty(&self, weights: &[f32], mut grads: Option<&mut [f32]>) -> f64 {
        let split = self.kernel_len();
        let mut total = 0.0;
        for (regularizer, range) in [
            (self.kernel_regularizer, 0..split),
            (self.bias_regularizer, split..weights.len()),
        ] {
            if let Some(regularizer) = regularizer {
                let grad = grads.as_deref_mut().map(|g| &mut g[range.clone()]);
                total += regularizer.apply(&weights[range], 1.0, grad);
            }
        }
        total
    }
}
