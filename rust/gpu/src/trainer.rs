//! Training on the GPU. Weights, gradients and optimizer slots live on the device from
//! [`GpuTrainer::upload`] to [`GpuTrainer::download`]. Each step writes its batch and its
//! scalars, records every dispatch of forward, loss, backward and optimizer step into one
//! command buffer, and submits it; the batches' loss and metric sums stay on the device until
//! the epoch's end, when they come back in one read.

use pynn_core::graph::DevicePlan;
use pynn_core::kernels::activation::Activation;
use pynn_core::kernels::loss::Loss;
use pynn_core::memory::{ensure_len, try_filled};
use pynn_core::metrics::Metric;
use pynn_core::optim::{OptimizerSpec, Slot};
use pynn_core::session::TrainingState;
use pynn_core::train::{gather, visiting_order, Dataset, Logs, Next, Progress, Totals};

use crate::codes::{loss, metric, optimizer};
use crate::context::{gpu, Gpu};
use crate::kernels::{kernels, Kernels};
use crate::params::{OptimizerParams, Spec, StepParams, MAX_METRICS};
use crate::plan::{plan, Penalty, Plan, Stage};
use crate::record::{
    loss_params, statistics_stride, uniform as recorder_uniform, Dispatch, Recorder, StepBuffers,
};
use crate::GpuError;

/// Weights, gradients and optimizer slots: the state that persists across steps.
struct State {
    weights: wgpu::Buffer,
    grads: wgpu::Buffer,
    m: wgpu::Buffer,
    v: wgpu::Buffer,
    a: wgpu::Buffer,
}

/// Buffers sized for batches of up to `capacity` samples, and the step's dispatches over them.
struct Batches {
    capacity: usize,
    x: wgpu::Buffer,
    y: wgpu::Buffer,
    step: wgpu::Buffer,
    statistics: wgpu::Buffer,
    max_batches: usize,
    /// Per stage, the Dropout masks' buffers (uploaded each step).
    masks: Vec<Option<wgpu::Buffer>>,
    /// The last activation: the network's output.
    output: wgpu::Buffer,
    /// A training step: forward, loss, backward, optimizer step.
    training: Vec<Dispatch>,
    /// Inference: the forward pass without training behaviour.
    inference: Vec<Dispatch>,
    /// Evaluation: inference, then the loss and metrics.
    evaluation: Vec<Dispatch>,
}

pub struct GpuTrainer {
    gpu: &'static Gpu,
    kernels: &'static Kernels,
    stages: Vec<Stage>,
    /// The output layer's sigmoid or softmax, applied after its stage (pynn-core's `head`).
    head: Option<Activation>,
    penalties: Vec<Penalty>,
    /// The ranges of the weights that the optimizer steps (frozen layers' are left out).
    trainable_ranges: Vec<std::ops::Range<usize>>,
    /// Values per sample of the input, then of each layer's output.
    sizes: Vec<usize>,
    n_weights: usize,
    loss: Spec,
    loss_weight: f32,
    metrics: Vec<Spec>,
    /// Predictions per output row (the output's last axis) and rows per sample.
    width: usize,
    rows_per_sample: usize,
    target_width: usize,
    optimizer: OptimizerSpec,
    iterations: u64,
    state: State,
    batches: Option<Batches>,
    x_batch: Vec<f32>,
    y_batch: Vec<f32>,
}

fn storage(gpu: &Gpu, values: usize, label: &str) -> wgpu::Buffer {
    gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: (values.max(1) * 4) as u64,
        usage: wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_DST
            | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    })
}

/// How many values the largest buffer a shader can bind on this GPU holds.
fn largest_buffer_values(gpu: &Gpu) -> usize {
    let limits = &gpu.limits;
    let bytes = limits
        .max_buffer_size
        .min(limits.max_storage_buffer_binding_size);
    usize::try_from(bytes / 4).unwrap_or(usize::MAX)
}

/// Copies `len` values of `buffer` back to the host.
fn read(gpu: &Gpu, buffer: &wgpu::Buffer, len: usize) -> Result<Vec<f32>, GpuError> {
    let mut values = try_filled(len, 0.0).map_err(host_memory)?;
    read_into(gpu, buffer, &mut values)?;
    Ok(values)
}

/// The error of a host buffer that could not be allocated.
fn host_memory(error: pynn_core::CoreError) -> GpuError {
    GpuError::OutOfMemory(error.to_string())
}

/// Copies the first `out.len()` values of `buffer` into `out`.
fn read_into(gpu: &Gpu, buffer: &wgpu::Buffer, out: &mut [f32]) -> Result<(), GpuError> {
    if out.is_empty() {
        return Ok(());
    }
    let size = (out.len() * 4) as u64;
    let staging = gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("readback"),
        size,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut encoder = gpu.device.create_command_encoder(&Default::default());
    encoder.copy_buffer_to_buffer(buffer, 0, &staging, 0, size);
    gpu.queue.submit([encoder.finish()]);
    let (sender, receiver) = std::sync::mpsc::channel();
    staging.map_async(wgpu::MapMode::Read, .., move |result| {
        let _ = sender.send(result);
    });
    gpu.device
        .poll(wgpu::PollType::wait_indefinitely())
        .map_err(|e| GpuError::Device(e.to_string()))?;
    receiver
        .recv()
        .map_err(|e| GpuError::Device(e.to_string()))?
        .map_err(|e| GpuError::Device(e.to_string()))?;
    {
        let view = staging
            .slice(..)
            .get_mapped_range()
            .map_err(|e| GpuError::Device(e.to_string()))?;
        out.copy_from_slice(bytemuck::cast_slice::<u8, f32>(&view));
    }
    staging.unmap();
    gpu.take_errors()
}

fn loss_spec(loss: Loss) -> Spec {
    let (kind, from_logits, value) = match loss {
        Loss::MeanSquaredError => (loss::MSE, false, 0.0),
        Loss::MeanAbsoluteError => (loss::MAE, false, 0.0),
        Loss::BinaryCrossentropy {
            from_logits,
            label_smoothing,
        } => (loss::BINARY_CROSSENTROPY, from_logits, label_smoothing),
        Loss::CategoricalCrossentropy {
            from_logits,
            label_smoothing,
        } => (loss::CATEGORICAL_CROSSENTROPY, from_logits, label_smoothing),
        Loss::SparseCategoricalCrossentropy { from_logits } => {
            (loss::SPARSE_CATEGORICAL_CROSSENTROPY, from_logits, 0.0)
        }
    };
    Spec {
        kind,
        from_logits: from_logits as u32,
        value,
        _pad: 0,
    }
}

fn metric_spec(metric: Metric) -> Spec {
    match metric {
        Metric::Accuracy => Spec {
            kind: metric::ACCURACY,
            ..Spec::default()
        },
        Metric::BinaryAccuracy { threshold } => Spec {
            kind: metric::BINARY_ACCURACY,
            value: threshold,
            ..Spec::default()
        },
        Metric::CategoricalAccuracy => Spec {
            kind: metric::CATEGORICAL_ACCURACY,
            ..Spec::default()
        },
        Metric::SparseCategoricalAccuracy => Spec {
            kind: metric::SPARSE_CATEGORICAL_ACCURACY,
            ..Spec::default()
        },
        Metric::Loss { loss } => loss_spec(loss),
    }
}

impl GpuTrainer {
    /// A trainer for the core's planned network `model` (a chain of layers), with this loss,
    /// metrics and optimizer; [`GpuError::Unsupported`] names what the GPU does not run yet.
    pub fn new(
        model: &DevicePlan,
        (loss, loss_weight): (Loss, f32),
        metrics: &[Metric],
        optimizer: &OptimizerSpec,
    ) -> Result<Self, GpuError> {
        let Plan {
            stages,
            head,
            penalties,
            sizes,
            output_shape,
            n_weights,
        } = plan(model)?;
        if metrics.len() > MAX_METRICS {
            return Err(GpuError::Unsupported(format!(
                "more than {MAX_METRICS} metrics"
            )));
        }
        let width = *output_shape.last().unwrap_or(&1);
        let gpu = gpu()?;
        let kernels = kernels(gpu)?;
        let limit = largest_buffer_values(gpu);
        if n_weights > limit {
            return Err(GpuError::OutOfMemory(format!(
                "the model's {n_weights} weights need a GPU buffer larger than this GPU's limit \
                 of {limit} values per buffer; train it on the CPU"
            )));
        }
        let scope = gpu.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let state = State {
            weights: storage(gpu, n_weights, "weights"),
            grads: storage(gpu, n_weights, "gradients"),
            m: storage(gpu, n_weights, "first moments"),
            v: storage(gpu, n_weights, "second moments"),
            a: storage(gpu, n_weights, "average gradients"),
        };
        if let Some(error) = pollster::block_on(scope.pop()) {
            return Err(GpuError::OutOfMemory(format!(
                "the model's {n_weights} weights and optimizer state could not be allocated \
                 ({error})"
            )));
        }
        Ok(GpuTrainer {
            gpu,
            kernels,
            rows_per_sample: sizes.last().copied().unwrap_or(1) / width.max(1),
            width,
            target_width: loss.target_width(width),
            stages,
            head,
            penalties,
            trainable_ranges: model.trainable_ranges.clone(),
            sizes,
            n_weights,
            loss: loss_spec(loss),
            loss_weight,
            metrics: metrics.iter().copied().map(metric_spec).collect(),
            optimizer: optimizer.clone(),
            iterations: 0,
            state,
            batches: None,
            x_batch: Vec::new(),
            y_batch: Vec::new(),
        })
    }

    /// The optimizer's slot vectors, in pynn-core's (Keras's) order: each slot in the buffer
    /// the optimizer shader keeps it in.
    fn slots(&self) -> Vec<&wgpu::Buffer> {
        let s = &self.state;
        let buffer = |slot| match slot {
            Slot::Momentum => &s.m,
            Slot::Square => &s.v,
            Slot::Extra => &s.a,
        };
        self.optimizer.slots().into_iter().map(buffer).collect()
    }

    /// Puts weights and optimizer state (as `Optimizer::state` gives them) on the device.
    pub fn upload(
        &mut self,
        weights: &[f32],
        slots: &[Vec<f32>],
        iterations: u64,
    ) -> Result<(), GpuError> {
        let queue = &self.gpu.queue;
        if weights.len() != self.n_weights {
            return Err(GpuError::Device(format!(
                "{} weights given for a network of {}",
                weights.len(),
                self.n_weights
            )));
        }
        queue.write_buffer(&self.state.weights, 0, bytemuck::cast_slice(weights));
        let targets = self.slots();
        if targets.len() != slots.len() {
            return Err(GpuError::Device(
                "optimizer state of another optimizer".into(),
            ));
        }
        for (buffer, values) in targets.into_iter().zip(slots) {
            queue.write_buffer(buffer, 0, bytemuck::cast_slice(values));
        }
        self.iterations = iterations;
        self.gpu.take_errors()
    }

    /// The weights, the optimizer's slot vectors and its step count, read back from the device.
    pub fn download(&self) -> Result<TrainingState, GpuError> {
        let weights = read(self.gpu, &self.state.weights, self.n_weights)?;
        let slots = self
            .slots()
            .into_iter()
            .map(|buffer| read(self.gpu, buffer, self.n_weights))
            .collect::<Result<_, _>>()?;
        Ok(TrainingState {
            weights,
            slots,
            iterations: self.iterations,
        })
    }

    /// The gradients of the last step, in the layout of the weights.
    pub fn gradients(&self) -> Result<Vec<f32>, GpuError> {
        read(self.gpu, &self.state.grads, self.n_weights)
    }

    /// One pass over `data` in batches of `batch_size`, in the order that `shuffle_seed` gives
    /// on the CPU engine, at `learning_rate`. `after_batch` hears the batches run (no running
    /// logs: they stay on the device until the end) and may stop the epoch.
    pub fn fit_epoch(
        &mut self,
        data: &Dataset,
        batch_size: usize,
        shuffle_seed: Option<u64>,
        learning_rate: f32,
        after_batch: &mut dyn FnMut(&Progress) -> Next,
    ) -> Result<Logs, GpuError> {
        let (in_size, t_size) = (self.sizes[0], self.target_width * self.rows_per_sample);
        let order = visiting_order(data.len, shuffle_seed).map_err(host_memory)?;
        let n_batches = data.len.div_ceil(batch_size.max(1));
        self.prepare(batch_size.min(data.len), n_batches)?;
        let mut rows = Vec::with_capacity(n_batches);
        for (b, indices) in order.chunks(batch_size).enumerate() {
            gather_into(data.x(), in_size, indices, &mut self.x_batch)?;
            gather_into(data.y(), t_size, indices, &mut self.y_batch)?;
            self.step(b, indices.len(), learning_rate)?;
            rows.push(indices.len());
            if let Next::Stop = after_batch(&Progress::batches_only(b + 1)) {
                break;
            }
        }
        self.gpu.take_errors()?;
        self.logs(&rows)
    }

    /// One step: the batch and the step's scalars go up, every dispatch goes in one submit.
    fn step(&mut self, batch: usize, rows: usize, learning_rate: f32) -> Result<(), GpuError> {
        let batches = self.batches.as_ref().expect("prepared");
        let queue = &self.gpu.queue;
        queue.write_buffer(&batches.x, 0, bytemuck::cast_slice(&self.x_batch));
        queue.write_buffer(&batches.y, 0, bytemuck::cast_slice(&self.y_batch));
        for (stage, mask) in self.stages.iter_mut().zip(&batches.masks) {
            if let (Stage::Dropout(layer), Some(mask)) = (stage, mask) {
                let values = layer
                    .training_mask(self.iterations, rows)
                    .map_err(host_memory)?;
                queue.write_buffer(mask, 0, bytemuck::cast_slice(values));
            }
        }
        let params = self.step_params(batch, rows, learning_rate);
        queue.write_buffer(&batches.step, 0, bytemuck::bytes_of(&params));
        let mut encoder = self.gpu.device.create_command_encoder(&Default::default());
        replay(&mut encoder, &batches.training);
        queue.submit([encoder.finish()]);
        self.iterations = self.iterations.saturating_add(1);
        Ok(())
    }

    /// The loss and metrics over `data` with fixed weights (no training behaviour), in
    /// batches of `batch_size`; they come back once, at the end.
    pub fn evaluate(
        &mut self,
        data: &Dataset,
        batch_size: usize,
        after_batch: &mut dyn FnMut(&Progress) -> Next,
    ) -> Result<Logs, GpuError> {
        let (in_size, t_size) = (self.sizes[0], self.target_width * self.rows_per_sample);
        let n_batches = data.len.div_ceil(batch_size.max(1));
        self.prepare(batch_size.min(data.len), n_batches)?;
        let batches = self.batches.as_ref().expect("prepared");
        let mut rows = Vec::with_capacity(n_batches);
        for b in 0..n_batches {
            let first = b * batch_size;
            let n = batch_size.min(data.len - first);
            let queue = &self.gpu.queue;
            let x = &data.x()[first * in_size..(first + n) * in_size];
            let y = &data.y()[first * t_size..(first + n) * t_size];
            queue.write_buffer(&batches.x, 0, bytemuck::cast_slice(x));
            queue.write_buffer(&batches.y, 0, bytemuck::cast_slice(y));
            let params = self.step_params(b, n, 0.0);
            queue.write_buffer(&batches.step, 0, bytemuck::bytes_of(&params));
            let mut encoder = self.gpu.device.create_command_encoder(&Default::default());
            replay(&mut encoder, &batches.evaluation);
            queue.submit([encoder.finish()]);
            rows.push(n);
            if let Next::Stop = after_batch(&Progress::batches_only(b + 1)) {
                break;
            }
        }
        self.gpu.take_errors()?;
        self.logs(&rows)
    }

    /// The network's outputs for the `out.len() / output size` samples of `x` into `out`,
    /// computed in batches of `batch_size`. The outputs gather on the device, as many batches as
    /// one buffer holds, and come down when it is full and at the end. Returns [`Next::Stop`]
    /// when `after_batch` stopped it.
    pub fn predict(
        &mut self,
        x: &[f32],
        out: &mut [f32],
        batch_size: usize,
        after_batch: &mut dyn FnMut(&Progress) -> Next,
    ) -> Result<Next, GpuError> {
        let (in_size, out_size) = (self.sizes[0], *self.sizes.last().expect("input"));
        let len = out.len() / out_size.max(1);
        let n_batches = len.div_ceil(batch_size.max(1));
        self.prepare(batch_size.min(len), n_batches)?;
        let batch_values = batch_size.min(len).max(1) * out_size;
        let held = (self.largest_buffer_values() / batch_values.max(1)).clamp(1, n_batches.max(1));
        let outputs = storage(self.gpu, held * batch_values, "outputs");
        let batches = self.batches.as_ref().expect("prepared");
        let mut unread = 0..0; // samples gathered in `outputs`, not yet read
        for b in 0..n_batches {
            let first = b * batch_size;
            let n = batch_size.min(len - first);
            let queue = &self.gpu.queue;
            let inputs = &x[first * in_size..(first + n) * in_size];
            queue.write_buffer(&batches.x, 0, bytemuck::cast_slice(inputs));
            let params = self.step_params(b, n, 0.0);
            queue.write_buffer(&batches.step, 0, bytemuck::bytes_of(&params));
            let mut encoder = self.gpu.device.create_command_encoder(&Default::default());
            replay(&mut encoder, &batches.inference);
            let at = ((first - unread.start) * out_size * 4) as u64;
            let size = (n * out_size * 4) as u64;
            encoder.copy_buffer_to_buffer(&batches.output, 0, &outputs, at, size);
            queue.submit([encoder.finish()]);
            unread.end = first + n;
            if b + 1 == n_batches || (b + 1) % held == 0 {
                let target = &mut out[unread.start * out_size..unread.end * out_size];
                read_into(self.gpu, &outputs, target)?;
                unread = unread.end..unread.end;
            }
            if let Next::Stop = after_batch(&Progress::batches_only(b + 1)) {
                return Ok(Next::Stop);
            }
        }
        Ok(Next::Continue)
    }

    fn largest_buffer_values(&self) -> usize {
        largest_buffer_values(self.gpu)
    }

    fn step_params(&self, batch: usize, rows: usize, learning_rate: f32) -> StepParams {
        let scalars = self.optimizer.step_scalars(learning_rate, self.iterations);
        StepParams {
            rows: rows as u32,
            batch: batch as u32,
            out_rows: (rows * self.rows_per_sample) as u32,
            learning_rate: scalars.learning_rate,
            momentum: scalars.momentum,
            alpha: scalars.alpha,
            c1: scalars.c1,
            c2: scalars.c2,
            epsilon: scalars.epsilon,
            ..StepParams::default()
        }
    }

    /// The epoch's logs from each batch's loss and metric sums, weighted as pynn-core's
    /// trainer weights them.
    fn logs(&self, rows: &[usize]) -> Result<Logs, GpuError> {
        let stride = statistics_stride(self.metrics.len());
        let batches = self.batches.as_ref().expect("prepared");
        let sums = read(self.gpu, &batches.statistics, rows.len() * stride)?;
        let mut totals = Totals::new(self.metrics.len());
        for (&n, sums) in rows.iter().zip(sums.chunks(stride)) {
            let (loss, penalty) = (sums[0] as f64, sums[stride - 1] as f64);
            let metrics = sums[1..stride - 1].iter().map(|&m| m as f64);
            totals.add_batch(loss, penalty, n, n * self.rows_per_sample, metrics);
        }
        Ok(totals.logs())
    }

    /// Sizes the batch buffers for batches of up to `batch_size` samples (at least one) and
    /// `n_batches` statistics, and records the dispatches over them (kept while the sizes fit).
    /// A batch whose buffers exceed what the GPU allows, or its memory, is an error.
    fn prepare(&mut self, batch_size: usize, n_batches: usize) -> Result<(), GpuError> {
        let batch_size = batch_size.max(1);
        let fits = self
            .batches
            .as_ref()
            .is_some_and(|b| b.capacity >= batch_size && b.max_batches >= n_batches);
        if fits {
            return Ok(());
        }
        self.batches = None;
        let widest = self.widest_batch_buffer(batch_size);
        let limit = self.largest_buffer_values();
        if widest.is_none_or(|values| values > limit) {
            return Err(GpuError::OutOfMemory(format!(
                "a batch of {batch_size} samples needs GPU buffers larger than this GPU's \
                 limit of {limit} values per buffer; lower `batch_size`"
            )));
        }
        let scope = self
            .gpu
            .device
            .push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let batches = self.build_batches(batch_size, n_batches);
        if let Some(error) = pollster::block_on(scope.pop()) {
            return Err(GpuError::OutOfMemory(format!(
                "the buffers of a batch of {batch_size} samples could not be allocated \
                 ({error}); lower `batch_size`"
            )));
        }
        self.batches = Some(batches);
        Ok(())
    }

    /// Values in the largest buffer a batch of `capacity` samples needs, or `None` when it
    /// would not even fit in a `usize`.
    fn widest_batch_buffer(&self, capacity: usize) -> Option<usize> {
        let per_sample = self
            .sizes
            .iter()
            .copied()
            .chain([self.target_width * self.rows_per_sample])
            .max()?;
        capacity.checked_mul(per_sample)
    }

    fn build_batches(&self, capacity: usize, max_batches: usize) -> Batches {
        let gpu = self.gpu;
        let stride = 1 + self.metrics.len();
        let stats_stride = statistics_stride(self.metrics.len());
        let x = storage(gpu, capacity * self.sizes[0], "inputs");
        let y = storage(
            gpu,
            capacity * self.target_width * self.rows_per_sample,
            "targets",
        );
        let step = recorder_uniform(gpu, &StepParams::default());
        let statistics = storage(gpu, max_batches * stats_stride, "statistics");
        // Activation i lives in `acts[i]`; layers that leave the data alone share their input's,
        // and an Activation layer its input's gradient (it rewrites its own in place).
        let mut acts = vec![x.clone()];
        let mut deltas = vec![storage(gpu, capacity * self.sizes[0], "input gradient")];
        let mut extra = Vec::new();
        for (stage, &size) in self.stages.iter().zip(&self.sizes[1..]) {
            if let Stage::Identity = stage {
                acts.push(acts.last().expect("input").clone());
                deltas.push(deltas.last().expect("input").clone());
            } else if let Stage::Activation(_) = stage {
                acts.push(storage(gpu, capacity * size, "activation"));
                deltas.push(deltas.last().expect("input").clone());
            } else {
                acts.push(storage(gpu, capacity * size, "activation"));
                deltas.push(storage(gpu, capacity * size, "activation gradient"));
            }
            let input_size = acts.len() - 2;
            extra.push(match stage {
                Stage::Dense { .. } | Stage::Conv { .. } | Stage::Pool { .. } => {
                    Some(storage(gpu, capacity * size, "pre-activations or argmax"))
                }
                Stage::Dropout(_) => Some(storage(
                    gpu,
                    capacity * self.sizes[input_size],
                    "dropout mask",
                )),
                Stage::Identity | Stage::Activation(_) => None,
            });
        }
        let row_values = storage(gpu, capacity * self.rows_per_sample * stride, "row values");
        let widest_partial = self
            .stages
            .iter()
            .map(|stage| match stage {
                Stage::Conv { epilogue, .. } => epilogue.kernel_len.max(epilogue.period),
                Stage::Dense { epilogue, .. } => epilogue.period,
                _ => 0,
            })
            .max()
            .unwrap_or(0);
        let partials = storage(gpu, capacity * widest_partial, "partial sums");
        let widest = self.sizes.iter().max().copied().unwrap_or(1);
        let ones = storage(gpu, capacity * widest, "ones");
        gpu.queue.write_buffer(
            &ones,
            0,
            bytemuck::cast_slice(&vec![1.0f32; capacity * widest]),
        );
        let buffers = || StepBuffers {
            weights: &self.state.weights,
            grads: &self.state.grads,
            step: &step,
            acts: &acts,
            deltas: &deltas,
            extra: &extra,
            statistics: &statistics,
            partials: &partials,
        };
        let recorder = || Recorder {
            gpu,
            kernels: self.kernels,
            buffers: buffers(),
            capacity,
            dispatches: Vec::new(),
        };
        let (width, target_width) = (self.width, self.target_width);
        let widths = (width, target_width);
        let loss = loss_params(
            widths,
            (self.loss, self.loss_weight),
            &self.metrics,
            self.head,
        );
        let mut training = recorder();
        training.forward(&self.stages, &self.sizes, None);
        training.loss(loss, &y, self.rows_per_sample, &row_values, &statistics);
        let n_metrics = self.metrics.len();
        training.backward(&self.stages, &self.sizes, n_metrics);
        training.penalties(&self.penalties, &self.stages, &self.sizes, n_metrics, true);
        let (kind, nesterov, centered) = match self.optimizer {
            OptimizerSpec::Sgd { nesterov, .. } => (optimizer::SGD, nesterov, false),
            OptimizerSpec::Adam { amsgrad, .. } => (optimizer::ADAM, false, amsgrad),
            OptimizerSpec::Rmsprop { centered, .. } => (optimizer::RMSPROP, false, centered),
            OptimizerSpec::Adagrad { .. } => (optimizer::ADAGRAD, false, false),
        };
        let s = &self.state;
        for range in &self.trainable_ranges {
            let params = OptimizerParams {
                n: range.len() as u32,
                kind,
                nesterov: nesterov as u32,
                centered: centered as u32,
                offset: range.start as u32,
                ..OptimizerParams::default()
            };
            training.optimizer(params, [&s.m, &s.v, &s.a]);
        }
        let mut inference = recorder();
        inference.forward(&self.stages, &self.sizes, Some(&ones));
        let mut output = acts.last().expect("input").clone();
        if let Some(head) = self.head {
            let per_sample = *self.sizes.last().expect("input");
            let probabilities = storage(gpu, capacity * per_sample, "probabilities");
            inference.head(head, (per_sample, width), &output, &probabilities);
            output = probabilities;
        }
        let mut evaluation = recorder();
        evaluation.forward(&self.stages, &self.sizes, Some(&ones));
        evaluation.loss(loss, &y, self.rows_per_sample, &row_values, &statistics);
        evaluation.penalties(&self.penalties, &self.stages, &self.sizes, n_metrics, false);
        let (training, inference, evaluation) = (
            training.dispatches,
            inference.dispatches,
            evaluation.dispatches,
        );
        let masks = self
            .stages
            .iter()
            .zip(extra)
            .map(|(stage, buffer)| buffer.filter(|_| matches!(stage, Stage::Dropout(_))))
            .collect();
        Batches {
            capacity,
            x,
            y,
            step,
            statistics,
            max_batches,
            masks,
            output,
            training,
            inference,
            evaluation,
        }
    }
}

/// Records `dispatches` into one compute pass.
fn replay(encoder: &mut wgpu::CommandEncoder, dispatches: &[Dispatch]) {
    let mut pass = encoder.begin_compute_pass(&Default::default());
    for dispatch in dispatches {
        pass.set_pipeline(dispatch.kernel.pipeline());
        pass.set_bind_group(0, &dispatch.bind_group, &[]);
        pass.dispatch_workgroups(dispatch.groups.0, dispatch.groups.1, 1);
    }
}

/// pynn-core's gather of the rows `indices` into `out`, sized to them (its memory reused).
fn gather_into(
    source: &[f32],
    size: usize,
    indices: &[usize],
    out: &mut Vec<f32>,
) -> Result<(), GpuError> {
    ensure_len(out, indices.len() * size).map_err(host_memory)?;
    out.truncate(indices.len() * size);
    gather(source, size, indices, out);
    Ok(())
}
