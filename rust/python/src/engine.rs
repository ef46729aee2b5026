//! `Engine`: one model's network and, once compiled, its trainer.
//!
//! Python may call one engine from several threads (a prediction in one, training in
//! another): calls take turns on a lock, and a call that waits for it releases the GIL and
//! still sees Ctrl-C.

use std::cell::RefCell;
use std::time::Duration;

use numpy::{
    IntoPyArray, PyArray1, PyArrayDyn, PyArrayMethods, PyReadonlyArray1, PyReadwriteArrayDyn,
};
use parking_lot::{ReentrantMutex, ReentrantMutexGuard};
use pynn_core::graph::{self, GraphSpec, Mode};
use pynn_core::layers::LayerSpec;
use pynn_core::optim::OptimizerSpec;
use pynn_core::session::Session;
use pynn_core::train::{Dataset, Logs, Next, OutputSpec};
use pynn_core::{CoreError, Tensor};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;

use crate::device;
use crate::errors::{self, to_py};
use crate::released::{run_released, ProgressReport};

/// How long a call waits for the engine's lock before it looks for Ctrl-C again.
const WAIT: Duration = Duration::from_millis(50);

/// A model's engine session (`pynn_core::session`: the network, its trainer, the GPU's copy);
/// one call at a time reads or changes it.
#[pyclass(module = "pynn._core", frozen)]
pub struct Engine {
    state: ReentrantMutex<RefCell<Session>>,
}

fn parse<T: serde::de::DeserializeOwned>(what: &str, json: &str) -> PyResult<T> {
    serde_json::from_str(json).map_err(|e| errors::spec(what, e))
}

/// `(loss, [each output's loss...], [metrics...])` as Python receives it.
type LogTuple = (f64, Vec<f64>, Vec<f64>);
/// A training epoch's: [`LogTuple`] and the first batch whose loss was NaN or infinite.
type EpochLogs = (f64, Vec<f64>, Vec<f64>, Option<usize>);

fn log_tuple(logs: Logs) -> LogTuple {
    (logs.loss, logs.output_losses, logs.metrics)
}

/// Flat arrays, one per model input (or output), named `what` in errors.
type Arrays<'py> = Vec<PyReadonlyArray1<'py, f32>>;

fn slices<'a>(arrays: &'a Arrays<'_>, what: &str) -> PyResult<Vec<&'a [f32]>> {
    arrays
        .iter()
        .map(|a| a.as_slice().map_err(|e| errors::layout(what, e)))
        .collect()
}

fn slices_mut<'a>(
    arrays: &'a mut [PyReadwriteArrayDyn<'_, f32>],
    what: &str,
) -> PyResult<Vec<&'a mut [f32]>> {
    arrays
        .iter_mut()
        .map(|a| a.as_slice_mut().map_err(|e| errors::layout(what, e)))
        .collect()
}

/// `what` holds `count` items where the model has `expected`, one per model `each` (input or
/// output).
fn check_count(what: &str, count: usize, expected: usize, each: &str) -> PyResult<()> {
    if count != expected {
        return Err(PyValueError::new_err(format!(
            "`{what}` must hold {expected} items, one per model {each}; got {count}"
        )));
    }
    Ok(())
}

fn check_len(what: &str, values: &[f32], expected: usize) -> PyResult<()> {
    match values.len() == expected {
        true => Ok(()),
        false => Err(to_py(CoreError::shape(what, expected, values.len()))),
    }
}

/// Borrows the arrays' memory as the engine's dataset; no copy.
fn dataset<'a>(xs: &'a Arrays<'_>, ys: &'a Arrays<'_>, len: usize) -> PyResult<Dataset<'a>> {
    Ok(Dataset {
        xs: slices(xs, "x")?,
        ys: slices(ys, "y")?,
        len,
    })
}

/// Hands a tensor's buffer to NumPy without copying it.
fn to_numpy(py: Python<'_>, tensor: Tensor) -> PyResult<Bound<'_, PyArrayDyn<f32>>> {
    let (shape, data) = tensor.into_parts();
    data.into_pyarray(py).reshape(shape)
}

/// A prediction stopped before its end: only by a signal, which `run_released` raises first.
fn interrupted() -> PyErr {
    PyRuntimeError::new_err("prediction was interrupted")
}

impl Engine {
    /// The engine's state, once the calls of other threads are done. Waits with the GIL
    /// released, looking for Ctrl-C every [`WAIT`].
    fn lock(&self, py: Python<'_>) -> PyResult<ReentrantMutexGuard<'_, RefCell<Session>>> {
        loop {
            if let Some(guard) = self.state.try_lock() {
                return Ok(guard);
            }
            // The guard belongs to this thread and cannot leave the closure: wait there until
            // the lock is free, then take it above, with the GIL.
            py.detach(|| drop(self.state.try_lock_for(WAIT)));
            py.check_signals()?;
        }
    }

    /// Runs `f` on the state, once it is this thread's turn.
    fn with<T>(&self, py: Python<'_>, f: impl FnOnce(&mut Session) -> PyResult<T>) -> PyResult<T> {
        let guard = self.lock(py)?;
        let mut state = guard.try_borrow_mut().map_err(|_| {
            PyRuntimeError::new_err(
                "The model's engine was called from inside one of its own calls (a progress \
                 display or a signal handler using the model); call it after that call returns.",
            )
        })?;
        f(&mut state)
    }
}

/// Each node's per-sample output shape and each layer's weight shapes of the graph described
/// by `graph_json`, without building any weight: what a layer called on symbolic tensors
/// produces.
#[pyfunction]
#[pyo3(signature = (graph_json, names=None))]
pub fn graph_shapes(graph_json: &str, names: Option<Vec<String>>) -> PyResult<GraphShapes> {
    let graph: GraphSpec = parse("graph", graph_json)?;
    let names = names.unwrap_or_default();
    errors::catch_panic(|| {
        let shapes = graph::shapes(&graph).map_err(|e| errors::to_py_in_layers(e, &names))?;
        Ok((shapes.nodes, shapes.layer_weights))
    })
}

/// `(node output shapes, layer weight shapes)`.
type GraphShapes = (Vec<Vec<usize>>, Vec<Vec<Vec<usize>>>);

impl Engine {
    fn build(py: Python<'_>, graph: GraphSpec, names: Option<Vec<String>>) -> PyResult<Self> {
        let names = names.unwrap_or_default();
        let state = py.detach(|| {
            errors::catch_panic(|| {
                Session::new(graph).map_err(|e| errors::to_py_in_layers(e, &names))
            })
        })?;
        Ok(Engine {
            state: ReentrantMutex::new(RefCell::new(state)),
        })
    }
}

#[pymethods]
impl Engine {
    /// Builds the layers described by `layers_json` (a JSON list of layer specs) for samples
    /// of `input_shape`, and initialises their weights.
    #[new]
    #[pyo3(signature = (input_shape, layers_json, names=None))]
    fn new(
        py: Python<'_>,
        input_shape: Vec<usize>,
        layers_json: &str,
        names: Option<Vec<String>>,
    ) -> PyResult<Self> {
        let specs: Vec<LayerSpec> = parse("layer", layers_json)?;
        Engine::build(py, GraphSpec::chain(&input_shape, &specs), names)
    }

    /// Builds the graph described by `graph_json` (inputs, layers, nodes, outputs; see
    /// `pynn_core::graph::GraphSpec`) and initialises its layers' weights.
    #[staticmethod]
    #[pyo3(signature = (graph_json, names=None))]
    fn from_graph(py: Python<'_>, graph_json: &str, names: Option<Vec<String>>) -> PyResult<Self> {
        Engine::build(py, parse("graph", graph_json)?, names)
    }

    /// Plans the network for per-sample inputs of `input_shapes` (a model whose inputs have
    /// variable dimensions), keeping its weights, optimizer and compiled losses; the GPU copy,
    /// if any, is brought back first and rebuilt when next needed.
    fn reshape_inputs(&self, py: Python<'_>, input_shapes: Vec<Vec<usize>>) -> PyResult<()> {
        self.with(py, |s| {
            check_count(
                "input_shapes",
                input_shapes.len(),
                s.network().input_count(),
                "input",
            )?;
            py.detach(|| errors::catch_panic(|| s.reshape_inputs(input_shapes).map_err(to_py)))
        })
    }

    /// Each layer's per-sample output shape.
    fn layer_output_shapes(&self, py: Python<'_>) -> PyResult<Vec<Vec<usize>>> {
        self.with(py, |s| Ok(s.network().layer_output_shapes()))
    }

    /// Each layer's weight shapes.
    fn layer_weight_shapes(&self, py: Python<'_>) -> PyResult<Vec<Vec<Vec<usize>>>> {
        self.with(py, |s| Ok(s.network().layer_weight_shapes()))
    }

    /// Every weight's shape, in Keras's `get_weights()` order.
    fn weight_shapes(&self, py: Python<'_>) -> PyResult<Vec<Vec<usize>>> {
        self.with(py, |s| Ok(s.network().weight_shapes()))
    }

    /// Each output's per-sample shape.
    fn output_shapes(&self, py: Python<'_>) -> PyResult<Vec<Vec<usize>>> {
        self.with(py, |s| {
            let network = s.network();
            Ok((0..network.output_count())
                .map(|o| network.output_shape_of(o).to_vec())
                .collect())
        })
    }

    /// Every weight as an array of its own shape, in Keras's `get_weights()` order.
    fn get_weights<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyArrayDyn<f32>>>> {
        let tensors = self.with(py, |s| {
            let network = s.reading().map_err(to_py)?;
            errors::catch_panic(|| network.weight_tensors().map_err(to_py))
        })?;
        tensors.into_iter().map(|t| to_numpy(py, t)).collect()
    }

    /// Weight `index` of `get_weights()` alone: what saving reads, one weight at a time.
    fn weight<'py>(&self, py: Python<'py>, index: usize) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
        let tensor = self.with(py, |s| {
            let network = s.reading().map_err(to_py)?;
            errors::catch_panic(|| network.weight_tensor(index).map_err(to_py))
        })?;
        to_numpy(py, tensor)
    }

    /// Replaces all weights (the layout of `get_weights()`).
    fn set_weights(&self, py: Python<'_>, values: PyReadonlyArray1<'_, f32>) -> PyResult<()> {
        let values = values
            .as_slice()
            .map_err(|e| errors::layout("weights", e))?;
        self.with(py, |s| {
            let network = s.changing().map_err(to_py)?;
            errors::catch_panic(|| network.set_weights(values).map_err(to_py))
        })
    }

    /// Sets which layers' weights train (one flag per layer).
    fn set_trainable(&self, py: Python<'_>, trainable: Vec<bool>) -> PyResult<()> {
        self.with(py, |s| s.set_trainable(&trainable).map_err(to_py))
    }

    /// Gradients of the last training batch, in the layout of `get_weights()`.
    fn get_gradients<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray1<f32>>> {
        self.with(py, |s| Ok(PyArray1::from_slice(py, s.network().grads())))
    }

    /// Attaches each output's loss, loss weight and metrics (a JSON list of
    /// `{"loss", "weight", "metrics"}`) and an optimizer (JSON); resets the optimizer's state.
    fn compile(&self, py: Python<'_>, outputs_json: &str, optimizer_json: &str) -> PyResult<()> {
        let outputs: Vec<OutputSpec> = parse("outputs", outputs_json)?;
        let optimizer: OptimizerSpec = parse("optimizer", optimizer_json)?;
        self.with(py, |s| {
            errors::catch_panic(|| s.compile(outputs, optimizer).map_err(to_py))
        })
    }

    /// Steps the optimizer has taken.
    fn iterations(&self, py: Python<'_>) -> PyResult<u64> {
        self.with(py, |s| {
            let (_, trainer) = s.reading_trained().map_err(to_py)?;
            Ok(trainer.optimizer().iterations())
        })
    }

    fn learning_rate(&self, py: Python<'_>) -> PyResult<f32> {
        self.with(py, |s| {
            Ok(s.trainer().map_err(to_py)?.optimizer().learning_rate())
        })
    }

    /// Changes the optimizer's learning rate from the next step on.
    fn set_learning_rate(&self, py: Python<'_>, learning_rate: f32) -> PyResult<()> {
        if !learning_rate.is_finite() || learning_rate < 0.0 {
            return Err(PyValueError::new_err(format!(
                "`learning_rate` must be a finite float >= 0; got {learning_rate}."
            )));
        }
        self.with(py, |s| {
            s.trainer()
                .map_err(to_py)?
                .optimizer_mut()
                .set_learning_rate(learning_rate);
            Ok(())
        })
    }

    /// Optimizer state values per weight (Keras's slots, e.g. 2 for Adam).
    fn optimizer_slots(&self, py: Python<'_>) -> PyResult<usize> {
        self.with(py, |s| {
            Ok(s.trainer().map_err(to_py)?.optimizer().slots_per_weight())
        })
    }

    /// The optimizer's iterations and a copy of its state: one vector per slot, each as long
    /// as the weights.
    fn optimizer_state<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<(u64, Vec<Bound<'py, PyArray1<f32>>>)> {
        let (iterations, state) = self.with(py, |s| {
            let optimizer = s.reading_trained().map_err(to_py)?.1.optimizer();
            let state = errors::catch_panic(|| optimizer.state().map_err(to_py))?;
            Ok((optimizer.iterations(), state))
        })?;
        let arrays = state.into_iter().map(|v| v.into_pyarray(py)).collect();
        Ok((iterations, arrays))
    }

    /// A copy of the optimizer's slot `index` alone: what saving reads, one slot at a time.
    fn optimizer_slot<'py>(
        &self,
        py: Python<'py>,
        index: usize,
    ) -> PyResult<Bound<'py, PyArray1<f32>>> {
        let slot = self.with(py, |s| {
            let optimizer = s.reading_trained().map_err(to_py)?.1.optimizer();
            errors::catch_panic(|| optimizer.slot(index).map_err(to_py))
        })?;
        Ok(slot.into_pyarray(py))
    }

    /// Restores what `optimizer_state` returned.
    fn set_optimizer_state(
        &self,
        py: Python<'_>,
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
        self.with(py, |s| {
            let optimizer = s.changing_trained().map_err(to_py)?.1.optimizer_mut();
            errors::catch_panic(|| optimizer.set_state(iterations, &slices).map_err(to_py))
        })
    }

    /// One epoch over `len` samples of `xs` (one flat array per input) and `ys` (one per
    /// output); returns `(loss, [output losses...], [metrics...], first_non_finite_batch)`.
    #[pyo3(signature = (xs, ys, len, batch_size, shuffle_seed=None, progress=None, on_gpu=false))]
    #[allow(clippy::too_many_arguments)]
    fn fit_epoch(
        &self,
        py: Python<'_>,
        xs: Arrays<'_>,
        ys: Arrays<'_>,
        len: usize,
        batch_size: usize,
        shuffle_seed: Option<u64>,
        progress: Option<Bound<'_, PyAny>>,
        on_gpu: bool,
    ) -> PyResult<EpochLogs> {
        let data = dataset(&xs, &ys, len)?;
        self.with(py, |s| {
            let device = device::device_for(s, on_gpu)?;
            let progress = ProgressReport {
                report: progress,
                values: s.trainer().map_err(to_py)?.logged_values(),
            };
            let batches = len.div_ceil(batch_size.max(1));
            let samples = batch_size.min(len);
            let logs = run_released(py, batches, samples, progress, |after_batch, cancel| {
                let batching = (batch_size, shuffle_seed);
                s.fit_epoch(device, &data, batching, after_batch, cancel)
            })?;
            let first_non_finite = logs.first_non_finite;
            let (loss, output_losses, metrics) = log_tuple(logs);
            Ok((loss, output_losses, metrics, first_non_finite))
        })
    }

    /// Why the GPU engine cannot train this compiled model (`None` when it can), after
    /// building its GPU copy. Raises `RuntimeError` when there is no usable GPU.
    fn gpu_unsupported(&self, py: Python<'_>) -> PyResult<Option<String>> {
        self.with(py, device::gpu_unsupported)
    }

    /// Losses and metrics over `len` samples with fixed weights; returns
    /// `(loss, [output losses...], [metrics...])`.
    #[pyo3(signature = (xs, ys, len, batch_size, progress=None, on_gpu=false))]
    #[allow(clippy::too_many_arguments)]
    fn evaluate(
        &self,
        py: Python<'_>,
        xs: Arrays<'_>,
        ys: Arrays<'_>,
        len: usize,
        batch_size: usize,
        progress: Option<Bound<'_, PyAny>>,
        on_gpu: bool,
    ) -> PyResult<LogTuple> {
        let data = dataset(&xs, &ys, len)?;
        self.with(py, |s| {
            let device = device::device_for(s, on_gpu)?;
            let progress = ProgressReport {
                report: progress,
                values: s.trainer().map_err(to_py)?.logged_values(),
            };
            let batches = len.div_ceil(batch_size.max(1));
            let samples = batch_size.min(len);
            let logs = run_released(py, batches, samples, progress, |after_batch, cancel| {
                s.evaluate(device, &data, batch_size, after_batch, cancel)
            })?;
            Ok(log_tuple(logs))
        })
    }

    /// ∂loss/∂weights over all `len` samples as one batch, in the layout of `get_weights()`:
    /// what a training step on them would apply, without the step. Returns
    /// `((loss, [output losses...], [metrics...]), gradients)`.
    fn compute_gradients<'py>(
        &self,
        py: Python<'py>,
        xs: Arrays<'_>,
        ys: Arrays<'_>,
        len: usize,
    ) -> PyResult<(LogTuple, Bound<'py, PyArray1<f32>>)> {
        let data = dataset(&xs, &ys, len)?;
        self.with(py, |s| {
            let (network, trainer) = s.reading_trained().map_err(to_py)?;
            let logs = run_released(py, 1, len, ProgressReport::none(), |_, cancel| {
                trainer.gradients(network, &data, cancel)
            })?;
            let grads = PyArray1::from_slice(py, s.network().grads());
            Ok((log_tuple(logs), grads))
        })
    }

    /// One optimizer step with `grads` (the layout of `get_weights()`, flat) in place of a
    /// batch's gradients.
    fn apply_gradients(&self, py: Python<'_>, grads: PyReadonlyArray1<'_, f32>) -> PyResult<()> {
        let grads = grads
            .as_slice()
            .map_err(|e| errors::layout("gradients", e))?;
        self.with(py, |s| {
            let (network, trainer) = s.changing_trained().map_err(to_py)?;
            errors::catch_panic(|| trainer.apply_gradients(network, grads).map_err(to_py))
        })
    }

    /// The outputs for `len` samples of `xs` (one flat array per input) as one batch, into
    /// `outs` (one array per output, allocated by the caller), with the layers that train
    /// differently (Dropout) in training mode where `training` is true, and as their calls
    /// were recorded where it is `None`: Keras's `model(x, training=...)`. Such layers draw
    /// the masks of stream `stream`.
    #[pyo3(signature = (xs, len, outs, training, stream))]
    fn forward_in_mode(
        &self,
        py: Python<'_>,
        xs: Arrays<'_>,
        len: usize,
        mut outs: Vec<PyReadwriteArrayDyn<'_, f32>>,
        training: Option<bool>,
        stream: u64,
    ) -> PyResult<()> {
        let xs = slices(&xs, "x")?;
        let mut outs = slices_mut(&mut outs, "out")?;
        let mode = training.map_or(Mode::AsRecorded, Mode::of_training);
        self.with(py, |s| {
            let network = s.reading().map_err(to_py)?;
            check_count("x", xs.len(), network.input_count(), "input")?;
            check_count("out", outs.len(), network.output_count(), "output")?;
            for (i, x) in xs.iter().enumerate() {
                check_len("x", x, len * network.input_size_of(i))?;
            }
            for (o, out) in outs.iter().enumerate() {
                check_len("out", out, len * network.output_size_of(o))?;
            }
            run_released(py, 1, len, ProgressReport::none(), |_, cancel| {
                network.forward_in_mode((&xs, &mut outs), len, (mode, stream), cancel)
            })
        })
    }

    /// Predictions for `len` samples of `xs` (one flat array per input) into `outs`, one
    /// array `(len, ...output_shape)` per output that the caller allocated (so that a size no
    /// memory holds is NumPy's `MemoryError` before any work).
    #[pyo3(signature = (xs, len, batch_size, outs, progress=None, on_gpu=false))]
    #[allow(clippy::too_many_arguments)]
    fn predict(
        &self,
        py: Python<'_>,
        xs: Arrays<'_>,
        len: usize,
        batch_size: usize,
        mut outs: Vec<PyReadwriteArrayDyn<'_, f32>>,
        progress: Option<Bound<'_, PyAny>>,
        on_gpu: bool,
    ) -> PyResult<()> {
        let xs = slices(&xs, "x")?;
        let mut outs = slices_mut(&mut outs, "out")?;
        self.with(py, |s| {
            let device = device::device_for(s, on_gpu)?;
            let progress = ProgressReport {
                report: progress,
                values: 0,
            };
            let batches = len.div_ceil(batch_size.max(1));
            let samples = batch_size.min(len);
            let next = run_released(py, batches, samples, progress, |after_batch, cancel| {
                let data = (&xs[..], len);
                s.predict(device, data, batch_size, &mut outs, after_batch, cancel)
            })?;
            match next {
                Next::Continue => Ok(()),
                Next::Stop => Err(interrupted()),
            }
        })
    }
}
