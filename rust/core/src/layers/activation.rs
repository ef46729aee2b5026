//! `Activation` (`keras/src/layers/activations/activation.py`): an activation function as a
//! layer of its own, e.g. the relu after a residual block's `Add`.

use serde::{Deserialize, Serialize};

use super::Layer;
use crate::error::Result;
use crate::kernels::activation::Activation as Function;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivationSpec {
    pub activation: Function,
}

pub struct Activation {
    function: Function,
    shape: Vec<usize>,
    /// The last axis: softmax normalises along it.
    width: usize,
}

impl Activation {
    pub fn new(spec: ActivationSpec, input_shape: &[usize]) -> Result<Self> {
        Ok(Activation {
            function: spec.activation,
            shape: input_shape.to_vec(),
            width: input_shape.last().copied().unwrap_or(1),
        })
    }
}

impl Layer for Activation {
    fn output_shape(&self) -> &[usize] {
        &self.shape
    }

    fn forward(&mut self, _: &[f32], x: &[f32], y: &mut [f32], _: usize, _: bool) -> Result<()> {
        self.function.forward(x, y, self.width);
        Ok(())
    }

    fn backward(
        &mut self,
        _: &[f32],
        _: &mut [f32],
        x: &[f32],
        y: &[f32],
        dy: &mut [f32],
        dx: Option<&mut [f32]>,
        _: usize,
    ) -> Result<()> {
        if let Some(dx) = dx {
            self.function.backward(x, y, dy, self.width);
            dx.copy_from_slice(dy);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applies_the_function_and_its_derivative() {
        let spec = ActivationSpec {
            activation: Function::Relu,
        };
        let mut layer = Activation::new(spec, &[3]).unwrap();
        let x = [-1.0, 0.5, 2.0];
        let mut y = [0.0; 3];
        layer.forward(&[], &x, &mut y, 1, true).unwrap();
        assert_eq!(y, [0.0, 0.5, 2.0]);
        let (mut dy, mut dx) = ([1.0, 2.0, 3.0], [0.0; 3]);
        layer
            .backward(&[], &mut [], &x, &y, &mut dy, Some(&mut dx), 1)
            .unwrap();
        assert_eq!(dx, [0.0, 2.0, 3.0]);
    }
}
