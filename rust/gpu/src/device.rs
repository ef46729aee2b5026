//! The GPU as a pynn-core [`Device`]: a session's copy of a compiled model is a [`GpuTrainer`].

use pynn_core::session::{Device, DeviceCopy, DeviceModel, TrainingState};
use std::ops::Range;

use pynn_core::train::Dataset;
use pynn_core::{CoreError, Result};

use crate::{GpuError, GpuTrainer};

/// The process's GPU (see [`crate::gpu`]).
pub struct GpuDevice;

impl From<GpuError> for CoreError {
    fn from(error: GpuError) -> Self {
        match error {
            GpuError::Unsupported(what) => CoreError::Unsupported(what),
            GpuError::OutOfMemory(_) => CoreError::DeviceMemory(error.to_string()),
            GpuError::NoAdapter { .. } | GpuError::Device(_) => {
                CoreError::Device(error.to_string())
            }
        }
    }
}

impl Device for GpuDevice {
    fn copy_of(&self, m: &DeviceModel) -> Result<Box<dyn DeviceCopy>> {
        let trainer = GpuTrainer::new(&m.plan, m.outputs, m.optimizer)?;
        Ok(Box::new(trainer))
    }
}

impl DeviceCopy for GpuTrainer {
    fn upload(&mut self, weights: &[f32], slots: &[Vec<f32>], iterations: u64) -> Result<()> {
        Ok(GpuTrainer::upload(self, weights, slots, iterations)?)
    }

    fn download(&self) -> Result<TrainingState> {
        Ok(GpuTrainer::download(self)?)
    }

    fn prepare(&mut self, samples: usize, batches: usize) -> Result<()> {
        Ok(GpuTrainer::prepare(self, samples, batches)?)
    }

    fn train_batch(
        &mut self,
        data: &Dataset,
        indices: &[usize],
        index_and_learning_rate: (usize, f32),
    ) -> Result<()> {
        Ok(GpuTrainer::train_batch(
            self,
            data,
            indices,
            index_and_learning_rate,
        )?)
    }

    fn test_batch(&mut self, data: &Dataset, indices: &[usize], index: usize) -> Result<()> {
        Ok(GpuTrainer::test_batch(self, data, indices, index)?)
    }

    fn batch_sums(&self, batches: usize) -> Result<Vec<f32>> {
        Ok(GpuTrainer::batch_sums(self, batches)?)
    }

    fn predict_batch(
        &mut self,
        xs: &[&[f32]],
        rows: Range<usize>,
        outs: &mut [&mut [f32]],
        last: bool,
    ) -> Result<()> {
        Ok(GpuTrainer::predict_batch(self, xs, rows, outs, last)?)
    }
}
