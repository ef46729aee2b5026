//! Pooling layers (`keras/src/layers/pooling/`): max or average over windows of the spatial
//! axes, channel by channel, or over all of them at once (`Global*Pooling`, which drops the
//! spatial axes).

use serde::{Deserialize, Serialize};

use super::Layer;
use crate::error::{CoreError, Result};
use crate::kernels::conv::{Axis, Geometry, Padding};
use crate::kernels::pool::{self, PoolKind};
use crate::memory::ensure_len;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolSpec {
    /// Max or average (named `op`: `kind` is the layer's tag).
    pub op: PoolKind,
    /// One size per spatial axis (1 or 2); ignored when `global`.
    #[serde(default)]
    pub pool_size: Vec<usize>,
    #[serde(default)]
    pub strides: Vec<usize>,
    #[serde(default = "valid")]
    pub padding: Padding,
    #[serde(default)]
    pub global: bool,
    /// With `global`: keep the spatial axes, each of size 1.
    #[serde(default)]
    pub keepdims: bool,
}

fn valid() -> Padding {
    Padding::Valid
}

pub struct Pool {
    kind: PoolKind,
    geometry: Geometry,
    output_shape: Vec<usize>,
    /// Per output value of the last batch: where its maximum came from.
    argmax: Vec<u32>,
}

impl Pool {
    pub fn new(spec: PoolSpec, input_shape: &[usize]) -> Result<Self> {
        let spatial = input_shape.len().saturating_sub(1);
        if !(1..=2).contains(&spatial) {
            return Err(CoreError::shape(
                "input_shape",
                "1 or 2 spatial axes, then channels",
                format!("{input_shape:?}"),
            ));
        }
        let (h, w, c) = match *input_shape {
            [w, c] => (1, w, c),
            [h, w, c] => (h, w, c),
            _ => unreachable!("the rank was checked above"),
        };
        let (rows, cols) = if spec.global {
            (
                Axis::new(h, h, h, 1, Padding::Valid)?,
                Axis::new(w, w, w, 1, Padding::Valid)?,
            )
        } else {
            if spec.pool_size.len() != spatial || spec.strides.len() != spatial {
                return Err(CoreError::shape(
                    "pool_size/strides",
                    format!("{spatial} values"),
                    format!("{:?} and {:?}", spec.pool_size, spec.strides),
                ));
            }
            let rows = if spatial == 1 {
                Axis::new(1, 1, 1, 1, Padding::Valid)?
            } else {
                Axis::new(h, spec.pool_size[0], spec.strides[0], 1, spec.padding)?
            };
            let last = spatial - 1;
            let cols = Axis::new(w, spec.pool_size[last], spec.strides[last], 1, spec.padding)?;
            (rows, cols)
        };
        let values = h.checked_mul(w).and_then(|p| p.checked_mul(c));
        if values.is_none_or(|v| v > u32::MAX as usize) {
            // Max pooling records where each maximum came from as a 32-bit index in its image.
            return Err(CoreError::invalid(
                "input_shape",
                "at most 2**32 values per sample for pooling",
                format!("{input_shape:?}"),
            ));
        }
        let output_shape = if spec.global && spec.keepdims {
            let mut shape = vec![1; spatial];
            shape.push(c);
            shape
        } else if spec.global {
            vec![c]
        } else if spatial == 1 {
            vec![cols.output, c]
        } else {
            vec![rows.output, cols.output, c]
        };
        Ok(Pool {
            kind: spec.op,
            geometry: Geometry {
                rows,
                cols,
                channels: c,
            },
            output_shape,
            argmax: Vec::new(),
        })
    }
}

impl Layer for Pool {
    fn output_shape(&self) -> &[usize] {
        &self.output_shape
    }

    fn geometry(&self) -> Option<Geometry> {
        Some(self.geometry)
    }

    fn forward(
        &mut self,
        _: &[f32],
        x: &[f32],
        y: &mut [f32],
        _: usize,
        training: bool,
    ) -> Result<()> {
        // Only the backward needs to know where each maximum came from.
        let argmax = if training {
            ensure_len(&mut self.argmax, y.len())?;
            Some(&mut self.argmax[..y.len()])
        } else {
            None
        };
        pool::forward(x, &self.geometry, self.kind, y, argmax)
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
            let argmax = &self.argmax[..dy.len()];
            pool::backward(dy, &self.geometry, self.kind, argmax, dx);
        }
        Ok(())
    }
}
