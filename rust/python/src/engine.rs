//! `Engine`: one model's network and, once compiled, its trainer.

use numpy::{IntoPyArray, PyArray1, PyArrayDyn, PyArrayMethods, PyReadonlyArray1};
use pynn_core::kernels::loss::Loss;
use pynn_core::layers::LayerSpec;
use pynn_core::metrics::Metric;
use pynn_core::network::Network;
use pynn_core::optim::OptimizerSpec;
use pynn_core::train::{self, Dataset, Next, Trainer};
use pynn_core::{CoreError, Tensor};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;

use crate::errors::{self, to_py};
use crate::gpu_mirror::{Mirror, ModelSpec};
use crate::released::{run_released, ProgressReport};

#[pyclass(module = "pynn._core")]
pub struct Engine {
    network: Network,
    trainer: Option<Trainer>,
    /// What built the network and the trainer, for the GPU's copy of them.
    input_shape: Vec<usize>,
    layers: Vec<LayerSpec>,
    compiled: Option<(Loss, Vec<Metric>, OptimizerSpec)>,
    gpu: Mirror,
}

fn parse<T: serde::de::DeserializeOwned>(what: &str, json: &str) -> PyResult<T> {
    serde_json::from_str(json).map_err(|e| errors::spec(what, e))
}

/// `(loss, [metrics...])` as Python receives it.
type LogTuple = (f64, Vec<f64>);
/// A training epoch's: `(loss, [metrics...], the first batch whose loss was NaN or infinite)`.
type EpochLogs = (f64, Vec<f64>, Option<usize>);

/// Borrows the arrays' memory as the engine's dataset; no copy.
fn dataset<'a>(
    x: &'a PyReadonlyArray1<'_, f32>,
    y: &'a PyReadonlyArray1<'_, f32>,
    len: usize,
) -> PyResult<Dataset<'a>> {
    let x = x.as_slice().map_err(|e| errors::layout("x", e))?;
    let y = y.as_slice().map_err(|e| errors::layout("y", e))?;
    Ok(Dataset { x, y, len })
}

/// Hands a tensor's buffer to NumPy without copying it.
fn to_numpy(py: Python<'_>, tensor: Tensor) -> PyResult<Bound<'_, PyArrayDyn<f32>>> {
    let (shape, data) = tensor.into_parts();
    data.into_pyarray(py).reshape(shape)
}

impl Engine {
    /// Brings the CPU copy of the weights and optimizer state up to date before it is read.
    fn on_cpu(&mut self) -> PyResult<()> {
        self.gpu
            .bring_to_cpu(&mut self.network, self.trainer.as_mut())
    }

    /// [`Engine::on_cpu`], for a call that changes the CPU copy: the GPU takes it up again.
    fn changing_cpu(&mut self) -> PyResult<()> {
        self.on_cpu()?;
        self.gpu.cpu_changed();
        Ok(())
    }

    /// Builds the GPU copy, or raises NotImplementedError naming what the GPU does not run.
    fn require_gpu(&mut self) -> PyResult<()> {
        match self.gpu_unsupported()? {
            None => Ok(()),
            Some(what) => Err(pyo3::exceptions::PyNotImplementedError::new_err(format!(
                "the GPU engine does not run {what} yet; train this model on the CPU with \
                 pynn.config.set_device('cpu')"
            ))),
        }
    }

    fn trainer(&mut self) -> PyResult<&mut Trainer> {
        Ok(self.parts()?.1)
    }

    fn parts(&mut self) -> PyResult<(&mut Network, &mut Trainer)> {
        match self.trainer.as_mut() {
            Some(trainer) => Ok((&mut self.network, trainer)),
            None => Err(no_trainer()),
        }
    }
}

fn no_trainer() -> PyErr {
    PyRuntimeError::new_err("The engine has no loss and optimizer yet.")
}

/// A prediction stopped before its end: only by a signal, which `run_released` raises first.
fn interrupted() -> PyErr {
    PyRuntimeError::new_err("prediction was interrupted")
}

/// How many weight values a network of `layers_json` for `input_shape` holds; allocates none.
#[pyfunction]
pub fn count_weights(input_shape: Vec<usize>, layers_json: &str) -> PyResult<usize> {
    let specs: Vec<LayerSpec> = parse("layer", layers_json)?;
    errors::catch_panic(|| Network::count_weights(&input_shape, &specs).map_err(to_py))
}

#[pymethods]
impl Engine {
    /// Builds the layers described by `layers_json` (a JSON list of layer specs) for samples
    /// of `input_shape`, and initialises their weights.
    #[new]
    #[pyo3(signature = (input_shape, layers_json, names=None))]
    fn new(
        input_shape: Vec<usize>,
        layers_json: &str,
        names: Option<Vec<String>>,
    ) -> PyResult<Self> {
        let specs: Vec<LayerSpec> = parse("layer", layers_json)?;
        let network = errors::catch_panic(|| {
            Network::new(&input_shape, &specs).map_err(|e| match (&e, &names) {
                (CoreError::InLayer { index, .. }, Some(names)) if *index < names.len() => {
                    PyValueError::new_err(format!("Layer '{}': {e}", names[*index]))
                }
                _ => to_py(e),
            })
        })?;
        Ok(Engine {
            network,
            trainer: None,
            input_shape,
            layers: specs,
            compiled: None,
            gpu: Mirror::default(),
        })
    }

    /// Each layer's per-sample output shape.
    fn layer_output_shapes(&self) -> Vec<Vec<usize>> {
        self.network.layer_output_shapes()
    }

    /// Each layer's weight shapes.
    fn layer_weight_shapes(&self) -> Vec<Vec<Vec<usize>>> {
        self.network.layer_weight_shapes()
    }

    /// Every weight's shape, in Keras's `get_weights()` order.
    fn weight_shapes(&self) -> Vec<Vec<usize>> {
        self.network.weight_shapes()
    }

    /// The per-sample output shape.
    fn output_shape(&self) -> Vec<usize> {
        self.network.output_shape().to_vec()
    }

    /// Every weight as an array of its own shape, in Keras's `get_weights()` order.
    fn get_weights<'py>(&mut self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyArrayDyn<f32>>>> {
        self.on_cpu()?;
        let network = &self.network;
        errors::catch_panic(|| Ok(network.weight_tensors()))?
            .into_iter()
            .map(|tensor| to_numpy(py, tensor))
            .collect()
    }

    /// Replaces all weights (the layout of `get_weights()`).
    fn set_weights(&mut self, values: PyReadonlyArray1<'_, f32>) -> PyResult<()> {
        let values = values
            .as_slice()
            .map_err(|e| errors::layout("weights", e))?;
        self.changing_cpu()?;
        let network = &mut self.network;
        errors::catch_panic(|| network.set_weights(values).map_err(to_py))
    }

    /// Gradients of the last training batch, in the layout of `get_weights()`.
    fn get_gradients<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f32>> {
        PyArray1::from_slice(py, self.network.grads())
    }

    /// Attaches a loss, an optimizer and metrics (JSON specs); resets the optimizer's state.
    fn compile(
        &mut self,
        loss_json: &str,
        optimizer_json: &str,
        metrics_json: &str,
    ) -> PyResult<()> {
        let loss: Loss = parse("loss", loss_json)?;
        let optimizer: OptimizerSpec = parse("optimizer", optimizer_json)?;
        let metrics: Vec<Metric> = parse("metric", metrics_json)?;
        self.on_cpu()?;
        let network = &self.network;
        let trainer = errors::catch_panic(|| {
            Trainer::new(network, loss, &optimizer, metrics.clone()).map_err(to_py)
        })?;
        self.trainer = Some(trainer);
        self.compiled = Some((loss, metrics, optimizer));
        self.gpu.reset();
        Ok(())
    }

    /// Steps the optimizer has taken.
    fn iterations(&mut self) -> PyResult<u64> {
        self.on_cpu()?;
        Ok(self.trainer()?.optimizer().iterations())
    }

    fn learning_rate(&mut self) -> PyResult<f32> {
        Ok(self.trainer()?.optimizer().learning_rate())
    }

    /// Changes the optimizer's learning rate from the next step on.
    fn set_learning_rate(&mut self, learning_rate: f32) -> PyResult<()> {
        if !learning_rate.is_finite() || learning_rate < 0.0 {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "`learning_rate` must be a finite float >= 0; got {learning_rate}."
            )));
        }
        self.trainer()?
            .optimizer_mut()
            .set_learning_rate(learning_rate);
        Ok(())
    }

    /// Optimizer state values per weight (Keras's slots, e.g. 2 for Adam).
    fn optimizer_slots(&mut self) -> PyResult<usize> {
        Ok(self.trainer()?.optimizer().slots_per_weight())
    }

    /// The optimizer's iterations and a copy of its state: one vector per slot, each as long
    /// as the weights.
    fn optimizer_state<'py>(
        &mut self,
        py: Python<'py>,
    ) -> PyResult<(u64, Vec<Bound<'py, PyArray1<f32>>>)> {
        self.on_cpu()?;
        let optimizer = self.trainer()?.optimizer();
        let state = errors::catch_panic(|| Ok(optimizer.state()))?;
        let arrays = state.into_iter().map(|v| v.into_pyarray(py)).collect();
        Ok((optimizer.iterations(), arrays))
    }

    /// Restores what `optimizer_state` returned.
    fn set_optimizer_state(
        &mut self,
        iterations: u64,
        state: Vec<PyReadonlyArray1<'_, f32>>,
    ) -> PyResult<()> {
        let slices = state
            .iter()
            .map(|a| {
                a.as_slice()
                    .map_err(|e| errors::layout("optimizer state", e))
            })
            .collect::<PyResult<Vec<_>>>()?;
        self.changing_cpu()?;
        let optimizer = self.trainer()?.optimizer_mut();
        errors::catch_panic(|| optimizer.set_state(iterations, &slices).map_err(to_py))
    }

    /// One epoch over `len` samples; returns `(loss, [metrics...], first_non_finite_batch)`.
    #[pyo3(signature = (x, y, len, batch_size, shuffle_seed=None, progress=None, on_gpu=false))]
    #[allow(clippy::too_many_arguments)]
    fn fit_epoch(
        &mut self,
        py: Python<'_>,
        x: PyReadonlyArray1<'_, f32>,
        y: PyReadonlyArray1<'_, f32>,
        len: usize,
        batch_size: usize,
        shuffle_seed: Option<u64>,
        progress: Option<Bound<'_, PyAny>>,
        on_gpu: bool,
    ) -> PyResult<EpochLogs> {
        let data = dataset(&x, &y, len)?;
        if on_gpu {
            self.require_gpu()?;
        } else {
            self.changing_cpu()?;
        }
        let (network, trainer) = (&mut self.network, self.trainer.as_mut());
        let trainer = trainer.ok_or_else(no_trainer)?;
        if on_gpu {
            trainer.check(network, &data).map_err(to_py)?;
        }
        let progress = ProgressReport {
            report: progress,
            values: 1 + trainer.metric_count(),
        };
        let batches = len.div_ceil(batch_size.max(1));
        let gpu = &mut self.gpu;
        let logs = if on_gpu {
            run_released(py, batches, progress, |after_batch| {
                Ok(gpu.fit_epoch(
                    network,
                    trainer,
                    &data,
                    batch_size,
                    shuffle_seed,
                    after_batch,
                ))
            })??
        } else {
            run_released(py, batches, progress, |after_batch| {
                trainer.fit_epoch(network, &data, batch_size, shuffle_seed, after_batch)
            })?
        };
        Ok((logs.loss, logs.metrics, logs.first_non_finite))
    }

    /// Why the GPU engine cannot train this compiled model (`None` when it can), after
    /// building its GPU copy. Raises `RuntimeError` when there is no usable GPU.
    fn gpu_unsupported(&mut self) -> PyResult<Option<String>> {
        let Some((loss, metrics, optimizer)) = &self.compiled else {
            return Err(no_trainer());
        };
        let model = ModelSpec {
            input_shape: &self.input_shape,
            layers: &self.layers,
            loss: *loss,
            metrics,
            optimizer,
        };
        self.gpu.prepare(&model)
    }

    /// Loss and metrics over `len` samples with fixed weights; returns `(loss, [metrics...])`.
    #[pyo3(signature = (x, y, len, batch_size, progress=None, on_gpu=false))]
    #[allow(clippy::too_many_arguments)]
    fn evaluate(
        &mut self,
        py: Python<'_>,
        x: PyReadonlyArray1<'_, f32>,
        y: PyReadonlyArray1<'_, f32>,
        len: usize,
        batch_size: usize,
        progress: Option<Bound<'_, PyAny>>,
        on_gpu: bool,
    ) -> PyResult<LogTuple> {
        let data = dataset(&x, &y, len)?;
        if on_gpu {
            self.require_gpu()?;
        } else {
            self.on_cpu()?;
        }
        let (network, trainer) = (&mut self.network, self.trainer.as_mut());
        let trainer = trainer.ok_or_else(no_trainer)?;
        let progress = ProgressReport {
            report: progress,
            values: 1 + trainer.metric_count(),
        };
        let batches = len.div_ceil(batch_size.max(1));
        let logs = if on_gpu {
            trainer.check(network, &data).map_err(to_py)?;
            let gpu = &mut self.gpu;
            run_released(py, batches, progress, |after_batch| {
                Ok(gpu.evaluate(network, trainer, &data, batch_size, after_batch))
            })??
        } else {
            run_released(py, batches, progress, |after_batch| {
                trainer.evaluate(network, &data, batch_size, after_batch)
            })?
        };
        Ok((logs.loss, logs.metrics))
    }

    /// ∂loss/∂weights over all `len` samples as one batch, in the layout of `get_weights()`:
    /// what a training step on them would apply, without the step. Returns
    /// `(loss, [metrics...], gradients)`.
    fn compute_gradients<'py>(
        &mut self,
        py: Python<'py>,
        x: PyReadonlyArray1<'_, f32>,
        y: PyReadonlyArray1<'_, f32>,
        len: usize,
    ) -> PyResult<(f64, Vec<f64>, Bound<'py, PyArray1<f32>>)> {
        let data = dataset(&x, &y, len)?;
        self.on_cpu()?;
        let (network, trainer) = self.parts()?;
        let no_progress = ProgressReport {
            report: None,
            values: 0,
        };
        let logs = run_released(py, 1, no_progress, |_| trainer.gradients(network, &data))?;
        let grads = PyArray1::from_slice(py, self.network.grads());
        Ok((logs.loss, logs.metrics, grads))
    }

    /// One optimizer step with `grads` (the layout of `get_weights()`, flat) in place of a
    /// batch's gradients.
    fn apply_gradients(&mut self, grads: PyReadonlyArray1<'_, f32>) -> PyResult<()> {
        let grads = grads
            .as_slice()
            .map_err(|e| errors::layout("gradients", e))?;
        self.changing_cpu()?;
        let (network, trainer) = self.parts()?;
        errors::catch_panic(|| trainer.apply_gradients(network, grads).map_err(to_py))
    }

    /// Predictions for `len` samples: an array `(len, ...output_shape)`.
    #[pyo3(signature = (x, len, batch_size, progress=None, on_gpu=false))]
    fn predict<'py>(
        &mut self,
        py: Python<'py>,
        x: PyReadonlyArray1<'_, f32>,
        len: usize,
        batch_size: usize,
        progress: Option<Bound<'_, PyAny>>,
        on_gpu: bool,
    ) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
        let x = x.as_slice().map_err(|e| errors::layout("x", e))?;
        let expected = len * self.network.input_size();
        if x.len() != expected {
            return Err(to_py(CoreError::shape("x", expected, x.len())));
        }
        if on_gpu {
            self.require_gpu()?;
        } else {
            self.on_cpu()?;
        }
        let progress = ProgressReport {
            report: progress,
            values: 0,
        };
        let batches = len.div_ceil(batch_size.max(1));
        let mut shape = vec![len];
        shape.extend_from_slice(self.network.output_shape());
        if on_gpu {
            let (network, trainer) = (&self.network, self.trainer.as_ref());
            let trainer = trainer.ok_or_else(no_trainer)?;
            let gpu = &mut self.gpu;
            let out = run_released(py, batches, progress, |after_batch| {
                Ok(gpu.predict(network, trainer, x, len, batch_size, after_batch))
            })??;
            let data = out.ok_or_else(interrupted)?;
            return to_numpy(py, Tensor::new(shape, data).map_err(to_py)?);
        }
        // SAFETY: the array starts uninitialised (zeroing W3's 8 MB output cost 4 % of a call);
        // `train::predict` writes all of it before it is returned, and an interrupted
        // prediction's array is dropped unread.
        let array = unsafe { PyArrayDyn::<f32>::new(py, shape, false) };
        // SAFETY: the array was just created, so nothing else holds a view of it.
        let out = unsafe { array.as_slice_mut() }.map_err(|e| errors::layout("output", e))?;
        let network = &mut self.network;
        let next = run_released(py, batches, progress, |after_batch| {
            train::predict(network, x, len, batch_size, out, after_batch)
        })?;
        match next {
            Next::Continue => Ok(array),
            Next::Stop => Err(interrupted()),
        }
    }
}
