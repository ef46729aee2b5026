//! The GPU copy of an engine's training state (the `gpu` feature).
//!
//! Training epochs run on the GPU while the CPU engine keeps the model's reference copy: the
//! weights and optimizer state come down only when something on the CPU side reads them
//! (`get_weights`, saving, validation or `predict` on the CPU), and go back up only when the
//! CPU side changed them since.

use pynn_core::kernels::loss::Loss;
use pynn_core::layers::LayerSpec;
use pynn_core::metrics::Metric;
use pynn_core::network::Network;
use pynn_core::optim::OptimizerSpec;
use pynn_core::train::{Dataset, Logs, Next, Progress, Trainer};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

/// What the GPU needs to build its copy of a compiled model.
#[cfg_attr(not(feature = "gpu"), allow(dead_code))]
pub struct ModelSpec<'a> {
    pub input_shape: &'a [usize],
    pub layers: &'a [LayerSpec],
    pub loss: Loss,
    pub metrics: &'a [Metric],
    pub optimizer: &'a OptimizerSpec,
}

#[cfg(feature = "gpu")]
mod enabled {
    use super::*;
    use pynn_gpu::{GpuError, GpuTrainer};
    use pyo3::exceptions::PyNotImplementedError;

    fn to_py(error: GpuError) -> PyErr {
        match error {
            GpuError::Unsupported(_) => PyNotImplementedError::new_err(format!(
                "{error}; train this model on the CPU with pynn.config.set_device('cpu')"
            )),
            GpuError::OutOfMemory(_) => pyo3::exceptions::PyMemoryError::new_err(error.to_string()),
            _ => PyRuntimeError::new_err(error.to_string()),
        }
    }

    /// The adapter the GPU engine uses: `(name, driver, backend, is_gpu)`.
    pub fn adapter() -> PyResult<(String, String, String, bool)> {
        let gpu = pynn_gpu::gpu().map_err(to_py)?;
        let a = &gpu.adapter;
        Ok((
            a.name.clone(),
            a.driver.clone(),
            a.backend.clone(),
            a.is_gpu,
        ))
    }

    #[derive(Default)]
    pub struct Mirror {
        trainer: Option<GpuTrainer>,
        /// The GPU trained since the CPU copy was last brought up to date.
        gpu_newer: bool,
        /// The CPU copy changed since it was last uploaded.
        cpu_newer: bool,
    }

    impl Mirror {
        /// Forgets the GPU copy (a new compile brings a new optimizer).
        pub fn reset(&mut self) {
            *self = Mirror::default();
        }

        /// Builds the GPU copy unless it exists; `Ok(Some(reason))` when the model uses what
        /// the GPU does not run.
        pub fn prepare(&mut self, model: &ModelSpec) -> PyResult<Option<String>> {
            if self.trainer.is_some() {
                return Ok(None);
            }
            let built = GpuTrainer::new(
                model.input_shape,
                model.layers,
                model.loss,
                model.metrics,
                model.optimizer,
            );
            match built {
                Ok(trainer) => {
                    self.trainer = Some(trainer);
                    self.cpu_newer = true;
                    Ok(None)
                }
                Err(GpuError::Unsupported(what)) => Ok(Some(what)),
                Err(error) => Err(to_py(error)),
            }
        }

        /// Brings the CPU copy up to date with what the GPU trained.
        pub fn bring_to_cpu(
            &mut self,
            network: &mut Network,
            trainer: Option<&mut Trainer>,
        ) -> PyResult<()> {
            let (Some(gpu), true) = (&self.trainer, self.gpu_newer) else {
                return Ok(());
            };
            let state = gpu.download().map_err(to_py)?;
            network
                .set_weights(&state.weights)
                .map_err(crate::errors::to_py)?;
            if let Some(trainer) = trainer {
                let slots: Vec<&[f32]> = state.slots.iter().map(Vec::as_slice).collect();
                trainer
                    .optimizer_mut()
                    .set_state(state.iterations, &slots)
                    .map_err(crate::errors::to_py)?;
            }
            self.gpu_newer = false;
            Ok(())
        }

        /// Notes that the CPU copy changed: the GPU takes it before its next epoch.
        pub fn cpu_changed(&mut self) {
            self.cpu_newer = true;
        }

        /// The GPU copy, with the CPU's weights and optimizer state if they changed since.
        fn current(&mut self, network: &Network, trainer: &Trainer) -> PyResult<&mut GpuTrainer> {
            let gpu = self
                .trainer
                .as_mut()
                .ok_or_else(|| PyRuntimeError::new_err("the GPU copy was not prepared"))?;
            if self.cpu_newer {
                let optimizer = trainer.optimizer();
                let state = optimizer.state().map_err(crate::errors::to_py)?;
                gpu.upload(network.weights(), &state, optimizer.iterations())
                    .map_err(to_py)?;
                self.cpu_newer = false;
            }
            Ok(gpu)
        }

        /// The loss and metrics over `data` on the GPU (the copy must have been prepared).
        pub fn evaluate(
            &mut self,
            network: &Network,
            trainer: &Trainer,
            data: &Dataset,
            batch_size: usize,
            after_batch: &mut dyn FnMut(&Progress) -> Next,
        ) -> PyResult<Logs> {
            let gpu = self.current(network, trainer)?;
            gpu.evaluate(data, batch_size, after_batch).map_err(to_py)
        }

        /// The outputs for the samples of `x` on the GPU, into `out`.
        #[allow(clippy::too_many_arguments)]
        pub fn predict(
            &mut self,
            network: &Network,
            trainer: &Trainer,
            x: &[f32],
            out: &mut [f32],
            batch_size: usize,
            after_batch: &mut dyn FnMut(&Progress) -> Next,
        ) -> PyResult<Next> {
            let gpu = self.current(network, trainer)?;
            gpu.predict(x, out, batch_size, after_batch).map_err(to_py)
        }

        /// One epoch on the GPU (the copy must have been prepared).
        pub fn fit_epoch(
            &mut self,
            network: &Network,
            trainer: &Trainer,
            data: &Dataset,
            batch_size: usize,
            shuffle_seed: Option<u64>,
            after_batch: &mut dyn FnMut(&Progress) -> Next,
        ) -> PyResult<Logs> {
            let gpu = self
                .trainer
                .as_mut()
                .ok_or_else(|| PyRuntimeError::new_err("the GPU copy was not prepared"))?;
            if self.cpu_newer {
                let optimizer = trainer.optimizer();
                let state = optimizer.state().map_err(crate::errors::to_py)?;
                gpu.upload(network.weights(), &state, optimizer.iterations())
                    .map_err(to_py)?;
                self.cpu_newer = false;
            }
            let learning_rate = trainer.optimizer().learning_rate();
            let logs = gpu
                .fit_epoch(data, batch_size, shuffle_seed, learning_rate, after_batch)
                .map_err(to_py)?;
            self.gpu_newer = true;
            Ok(logs)
        }
    }
}

#[cfg(not(feature = "gpu"))]
mod enabled {
    use super::*;

    fn missing() -> PyErr {
        PyRuntimeError::new_err(
            "this build of pynn has no GPU engine (it was built with `--no-default-features`): \
             install the published wheel, or build from source without that flag",
        )
    }

    pub fn adapter() -> PyResult<(String, String, String, bool)> {
        Err(missing())
    }

    /// Nothing to mirror without a GPU engine.
    #[derive(Default)]
    pub struct Mirror {
        _none: (),
    }

    impl Mirror {
        pub fn reset(&mut self) {}

        pub fn prepare(&mut self, _: &ModelSpec) -> PyResult<Option<String>> {
            Err(missing())
        }

        pub fn bring_to_cpu(&mut self, _: &mut Network, _: Option<&mut Trainer>) -> PyResult<()> {
            Ok(())
        }

        pub fn cpu_changed(&mut self) {}

        pub fn evaluate(
            &mut self,
            _: &Network,
            _: &Trainer,
            _: &Dataset,
            _: usize,
            _: &mut dyn FnMut(&Progress) -> Next,
        ) -> PyResult<Logs> {
            Err(missing())
        }

        #[allow(clippy::too_many_arguments)]
        pub fn predict(
            &mut self,
            _: &Network,
            _: &Trainer,
            _: &[f32],
            _: &mut [f32],
            _: usize,
            _: &mut dyn FnMut(&Progress) -> Next,
        ) -> PyResult<Next> {
            Err(missing())
        }

        pub fn fit_epoch(
            &mut self,
            _: &Network,
            _: &Trainer,
            _: &Dataset,
            _: usize,
            _: Option<u64>,
            _: &mut dyn FnMut(&Progress) -> Next,
        ) -> PyResult<Logs> {
            Err(missing())
        }
    }
}

pub use enabled::{adapter, Mirror};
