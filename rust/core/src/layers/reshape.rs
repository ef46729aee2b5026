//! `Reshape` and `Flatten` (`keras/src/layers/reshaping/`): the same values, row-major, under
//! another per-sample shape. Channels last, so Flatten's order is Keras's.

use serde::{Deserialize, Serialize};

use super::Layer;
use crate::error::{CoreError, Result};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReshapeSpec {
    /// The per-sample shape; one entry may be -1, to be inferred (Flatten is `[-1]`).
    pub target_shape: Vec<i64>,
}

pub struct Reshape {
    output_shape: Vec<usize>,
}

impl Reshape {
    pub fn new(spec: ReshapeSpec, input_shape: &[usize]) -> Result<Self> {
        let values: usize = input_shape.iter().product();
        let mismatch = || {
            CoreError::shape(
                "target_shape",
                format!("a shape of {values} values, as the input {input_shape:?} holds"),
                format!("{:?}", spec.target_shape),
            )
        };
        let unknown = spec.target_shape.iter().filter(|&&d| d == -1).count();
        if unknown > 1 || spec.target_shape.iter().any(|&d| d == 0 || d < -1) {
            return Err(mismatch());
        }
        let known: usize = spec
            .target_shape
            .iter()
            .filter(|&&d| d > 0)
            .map(|&d| d as usize)
            .product();
        if known == 0 || !values.is_multiple_of(known) || (unknown == 0 && known != values) {
            return Err(mismatch());
        }
        let output_shape = spec
            .target_shape
            .iter()
            .map(|&d| if d == -1 { values / known } else { d as usize })
            .collect();
        Ok(Reshape { output_shape })
    }
}

impl Layer for Reshape {
    fn output_shape(&self) -> &[usize] {
        &self.output_shape
    }

    fn forward(&mut self, _: &[f32], x: &[f32], y: &mut [f32], _: usize, _: bool) -> Result<()> {
        y.copy_from_slice(x);
        Ok(())
    }

    fn backward(
        &mut self,
        _: &[f32],
        _: &mut [f32],
        _: &[f32],
        _: &[f32],
        dy: &mut [f32],
        dx: Option<&mut [f32]>,
        _: usize,
    ) -> Result<()> {
        if let Some(dx) = dx {
            dx.copy_from_slice(dy);
        }
        Ok(())
    }
}
