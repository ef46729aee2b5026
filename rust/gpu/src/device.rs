//! The GPU as a pynn-core [`Device`]: a session's copy of a compiled model is a [`GpuTrainer`].

use pynn_core::session::{Device, DeviceCopy, DeviceModel, TrainingState};
use pynn_core::train::{Dataset, Logs, Next, Progress};
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

    fn fit_epoch(
        &mut self,
        data: &Dataset,
        batch_size: usize,
        (shuffle_seed, learning_rate): (Option<u64>, f32),
        after_batch: &mut dyn FnMut(&Progress) -> Next,
    ) -> Result<Logs> {
        let epoch = GpuTrainer::fit_epoch(
            self,
            data,
            batch_size,
            shuffle_seed,
            learning_rate,
            after_batch,
        );
        Ok(epoch?)
    }

    fn evaluate(
        &mut self,
        data: &Dataset,
        batch_size: usize,
        after_batch: &mut dyn FnMut(&Progress) -> Next,
    ) -> Result<Logs> {
        Ok(GpuTrainer::evaluate(self, data, batch_size, after_batch)?)
    }

    fn predict(
        &mut self,
        inputs: (&[&[f32]], usize),
        outs: &mut [&mut [f32]],
        batch_size: usize,
        after_batch: &mut dyn FnMut(&Progress) -> Next,
    ) -> Result<Next> {
        Ok(GpuTrainer::predict(
            self,
            inputs,
            outs,
            batch_size,
            after_batch,
        )?)
    }
}
