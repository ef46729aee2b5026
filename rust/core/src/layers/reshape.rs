//! `Reshape` and `Flatten` (`keras/src/layers/reshaping/`): the same values, row-major, under
//! another per-sample shape. Channels last, so Flatten's order is Keras's.

use serde::{Deserialize, Serialize};

use super::Layer;
use crate::error::{CoreError, Result};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReshapeSpec {
    pub target_shape: Vec<usize>,
}

pub struct Reshape {
    output_shape: Vec<usize>,
}

impl Reshape {
    pub fn new(spec: ReshapeSpec, input_shape: &[usize]) -> Result<Self> {
        let (from, to): (usize, usize) = (
            input_shape.iter().product(),
            spec.target_shape.iter().product(),
        );
        if from != to {
            return Err(CoreError::shape(
                "target_shape",
                format!("{from} values per sample, as the input {input_shape:?} holds"),
                format!("{:?} ({to} values)", spec.target_shape),
            ));
        }
        Ok(Reshape {
            output_shape: spec.target_shape,
        })
    }
}

impl Layer for Reshape {
    fn output_shape(&self) -> &[usize] {
        &self.output_shape
    }

    fn weight_shapes(&self) -> Vec<Vec<usize>> {
        Vec::new()
    }

    fn init_weights(&self, _: &mut [f32]) -> Result<()> {
        Ok(())
    }

    fn forward(&mut self, _: &[f32], x: &[f32], y: &mut [f32], _: usize, _: bool) {
        y.copy_from_slice(x);
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
    ) {
        if let Some(dx) = dx {
            dx.copy_from_slice(dy);
        }
    }
}
