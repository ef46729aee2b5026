//! `Tensor`: f32 values, contiguous and row-major, with their shape. What the engine hands out
//! (predictions, weights); inside the batch loop, kernels work on plain slices of buffers that
//! are reused from batch to batch.

use crate::error::{CoreError, Result};
use crate::memory::{checked_volume, try_filled};

#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    shape: Vec<usize>,
    data: Vec<f32>,
}

impl Tensor {
    /// A tensor of `shape` holding `data`, which must have exactly `prod(shape)` values.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Result<Self> {
        let volume: usize = shape.iter().product();
        if volume != data.len() {
            return Err(CoreError::shape(
                "tensor data",
                format!("{volume} values for shape {shape:?}"),
                data.len(),
            ));
        }
        Ok(Tensor { shape, data })
    }

    /// A tensor of `shape` filled with zeros, or an error when it would not fit in memory.
    pub fn zeros(shape: Vec<usize>) -> Result<Self> {
        let volume = checked_volume(&shape)?;
        Ok(Tensor {
            data: try_filled(volume, 0.0)?,
            shape,
        })
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn data(&self) -> &[f32] {
        &self.data
    }

    pub fn data_mut(&mut self) -> &mut [f32] {
        &mut self.data
    }

    pub fn into_parts(self) -> (Vec<usize>, Vec<f32>) {
        (self.shape, self.data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_its_length() {
        assert!(Tensor::new(vec![2, 3], vec![0.0; 6]).is_ok());
        assert!(Tensor::new(vec![2, 3], vec![0.0; 5]).is_err());
    }

    #[test]
    fn impossible_sizes_are_errors_not_aborts() {
        assert!(Tensor::zeros(vec![usize::MAX, 2]).is_err());
        assert!(Tensor::zeros(vec![1 << 40, 1 << 10]).is_err());
        assert_eq!(Tensor::zeros(vec![2, 2]).unwrap().data(), &[0.0; 4]);
    }
}
