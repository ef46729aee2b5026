//! Training on the GPU. Weights, gradients and optimizer slots live on the device from
//! [`GpuTrainer::upload`] to [`GpuTrainer::download`]. Each step writes its batch and its
//! scalars, records every dispatch of forward, loss, backward and optimizer step into one
//! command buffer, and submits it; the batches' loss and metric sums stay on the device until
//! the epoch's end, when they come back in one read.

use pynn_core::kernels::activation::Activation;
use pynn_core::kernels::loss::Loss;
use pynn_core::layers::LayerSpec;
use pynn_core::metrics::Metric;
use pynn_core::optim::OptimizerSpec;
use pynn_core::train::{visiting_order, Dataset, Logs, Next, Progress};

use crate::context::{gpu, Gpu};
use crate::kernels::{groups_for, kernels, Kernel, Kernels};
use crate::GpuError;

/// What one layer is on the device.
#[derive(Clone, Copy)]
enum Stage {
    Dense {
        inputs: usize,
        units: usize,
        activation: Activation,
        use_bias: bool,
        kernel_offset: usize,
    },
    /// Flatten and Reshape: the row-major data is unchanged.
    Identity,
}

/// A loss or metric as `loss.wgsl`'s `Spec`.
#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Spec {
    kind: u32,
    from_logits: u32,
    value: f32,
    _pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct LossParams {
    width: u32,
    target_width: u32,
    n_metrics: u32,
    _pad: u32,
    loss: Spec,
    metrics: [Spec; MAX_METRICS],
}

const MAX_METRICS: usize = 4;

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct StepParams {
    rows: u32,
    batch: u32,
    out_rows: u32,
    _pad: u32,
    learning_rate: f32,
    momentum: f32,
    alpha: f32,
    c1: f32,
    c2: f32,
    epsilon: f32,
    _pad2: [u32; 2],
}

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct MatmulDims {
    m: u32,
    n: u32,
    k: u32,
    accumulate: u32,
    a_offset: u32,
    a_row: u32,
    a_col: u32,
    b_offset: u32,
    b_row: u32,
    b_col: u32,
    c_offset: u32,
    _pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct DenseParams {
    n: u32,
    activation: u32,
    use_bias: u32,
    bias_offset: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct OptimizerParams {
    n: u32,
    kind: u32,
    nesterov: u32,
    _pad: u32,
}

#[derive(Clone, Copy)]
enum Optimizer {
    Sgd {
        momentum: f32,
        nesterov: bool,
    },
    Adam {
        beta_1: f32,
        beta_2: f32,
        c1: f32,
        c2: f32,
        epsilon: f32,
    },
}

/// Weights, gradients and optimizer slots: the state that persists across steps.
struct State {
    weights: wgpu::Buffer,
    grads: wgpu::Buffer,
    m: wgpu::Buffer,
    v: wgpu::Buffer,
}

/// Buffers sized for batches of up to `capacity` samples, and the step's dispatches over them.
struct Batches {
    capacity: usize,
    x: wgpu::Buffer,
    y: wgpu::Buffer,
    step: wgpu::Buffer,
    statistics: wgpu::Buffer,
    max_batches: usize,
    dispatches: Vec<Dispatch>,
}

struct Dispatch {
    kernel: &'static Kernel,
    bind_group: wgpu::BindGroup,
    groups: (u32, u32),
}

/// What training changes: the weights and the optimizer's state (its slot vectors, in
/// pynn-core's `Optimizer::state` order, and its step count).
pub struct TrainingState {
    pub weights: Vec<f32>,
    pub slots: Vec<Vec<f32>>,
    pub iterations: u64,
}

pub struct GpuTrainer {
    gpu: &'static Gpu,
    kernels: &'static Kernels,
    stages: Vec<Stage>,
    /// Values per sample of the input, then of each layer's output.
    sizes: Vec<usize>,
    n_weights: usize,
    loss: Spec,
    metrics: Vec<Spec>,
    /// Predictions per output row (the output's last axis) and rows per sample.
    width: usize,
    rows_per_sample: usize,
    target_width: usize,
    optimizer: Optimizer,
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

fn uniform<T: bytemuck::Pod>(gpu: &Gpu, value: &T) -> wgpu::Buffer {
    let buffer = gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("parameters"),
        size: std::mem::size_of::<T>() as u64,
        usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    gpu.queue
        .write_buffer(&buffer, 0, bytemuck::bytes_of(value));
    buffer
}

/// Copies `len` values of `buffer` back to the host.
fn read(gpu: &Gpu, buffer: &wgpu::Buffer, len: usize) -> Result<Vec<f32>, GpuError> {
    if len == 0 {
        return Ok(Vec::new());
    }
    let size = (len * 4) as u64;
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
    let values = {
        let view = staging
            .slice(..)
            .get_mapped_range()
            .map_err(|e| GpuError::Device(e.to_string()))?;
        bytemuck::cast_slice::<u8, f32>(&view).to_vec()
    };
    staging.unmap();
    gpu.take_errors()?;
    Ok(values)
}

fn loss_spec(loss: Loss) -> Spec {
    let (kind, from_logits, value) = match loss {
        Loss::MeanSquaredError => (0, false, 0.0),
        Loss::MeanAbsoluteError => (1, false, 0.0),
        Loss::BinaryCrossentropy {
            from_logits,
            label_smoothing,
        } => (2, from_logits, label_smoothing),
        Loss::CategoricalCrossentropy {
            from_logits,
            label_smoothing,
        } => (3, from_logits, label_smoothing),
        Loss::SparseCategoricalCrossentropy { from_logits } => (4, from_logits, 0.0),
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
        Metric::BinaryAccuracy { threshold } => Spec {
            kind: 10,
            value: threshold,
            ..Spec::default()
        },
        Metric::CategoricalAccuracy => Spec {
            kind: 11,
            ..Spec::default()
        },
        Metric::SparseCategoricalAccuracy => Spec {
            kind: 12,
            ..Spec::default()
        },
        Metric::Loss { loss } => loss_spec(loss),
    }
}

fn activation_code(activation: Activation) -> u32 {
    match activation {
        Activation::Linear => 0,
        Activation::Relu => 1,
        Activation::Sigmoid => 2,
        Activation::Tanh => 3,
        Activation::Softmax => 4,
        Activation::Elu => 5,
        Activation::Selu => 6,
        Activation::Gelu => 7,
        Activation::Softplus => 8,
        Activation::LeakyRelu => 9,
        Activation::Silu => 10,
    }
}

fn optimizer_plan(spec: &OptimizerSpec) -> Result<Optimizer, GpuError> {
    match *spec {
        OptimizerSpec::Sgd {
            momentum, nesterov, ..
        } => Ok(Optimizer::Sgd {
            momentum: momentum as f32,
            nesterov,
        }),
        OptimizerSpec::Adam {
            beta_1,
            beta_2,
            epsilon,
            amsgrad: false,
            ..
        } => Ok(Optimizer::Adam {
            beta_1: beta_1 as f32,
            beta_2: beta_2 as f32,
            c1: (1.0 - beta_1) as f32,
            c2: (1.0 - beta_2) as f32,
            epsilon: epsilon as f32,
        }),
        OptimizerSpec::Adam { amsgrad: true, .. } => {
            Err(GpuError::Unsupported("Adam with amsgrad=True".into()))
        }
        OptimizerSpec::Rmsprop { .. } => Err(GpuError::Unsupported("RMSprop".into())),
        OptimizerSpec::Adagrad { .. } => Err(GpuError::Unsupported("Adagrad".into())),
    }
}

/// The stages of `specs` and the per-sample size of every activation.
fn plan(
    input_shape: &[usize],
    specs: &[LayerSpec],
) -> Result<(Vec<Stage>, Vec<usize>, usize), GpuError> {
    let core = |e: pynn_core::CoreError| GpuError::Unsupported(e.to_string());
    let mut shape = input_shape.to_vec();
    let mut sizes = vec![shape.iter().product()];
    let (mut stages, mut offset) = (Vec::new(), 0);
    for spec in specs {
        let layer = spec.build(&shape).map_err(core)?;
        let stage = match spec {
            LayerSpec::Dense(dense) => {
                if shape.len() != 1 {
                    return Err(GpuError::Unsupported(
                        "Dense layers on inputs of more than one axis".into(),
                    ));
                }
                let regularized = dense.kernel_regularizer.is_some()
                    || dense.bias_regularizer.is_some()
                    || dense.activity_regularizer.is_some();
                if regularized {
                    return Err(GpuError::Unsupported("regularizers".into()));
                }
                let stage = Stage::Dense {
                    inputs: shape[0],
                    units: dense.units,
                    activation: dense.activation,
                    use_bias: dense.use_bias,
                    kernel_offset: offset,
                };
                offset += shape[0] * dense.units + if dense.use_bias { dense.units } else { 0 };
                stage
            }
            LayerSpec::Reshape(_) => Stage::Identity,
            LayerSpec::Dropout(_) => return Err(GpuError::Unsupported("Dropout layers".into())),
            LayerSpec::Conv(_) => return Err(GpuError::Unsupported("convolution layers".into())),
            LayerSpec::Pool(_) => return Err(GpuError::Unsupported("pooling layers".into())),
        };
        shape = layer.output_shape().to_vec();
        sizes.push(shape.iter().product());
        stages.push(stage);
    }
    Ok((stages, sizes, offset))
}

impl GpuTrainer {
    /// A trainer for the network of `specs` on samples of `input_shape`, with this loss,
    /// metrics and optimizer; [`GpuError::Unsupported`] names what the GPU does not run yet.
    pub fn new(
        input_shape: &[usize],
        specs: &[LayerSpec],
        loss: Loss,
        metrics: &[Metric],
        optimizer: &OptimizerSpec,
    ) -> Result<Self, GpuError> {
        let (stages, sizes, n_weights) = plan(input_shape, specs)?;
        if metrics.len() > MAX_METRICS {
            return Err(GpuError::Unsupported(format!(
                "more than {MAX_METRICS} metrics"
            )));
        }
        let optimizer = optimizer_plan(optimizer)?;
        let output_shape = output_shape(input_shape, specs)?;
        let width = *output_shape.last().unwrap_or(&1);
        let gpu = gpu()?;
        let kernels = kernels(gpu)?;
        let state = State {
            weights: storage(gpu, n_weights, "weights"),
            grads: storage(gpu, n_weights, "gradients"),
            m: storage(gpu, n_weights, "first moments"),
            v: storage(gpu, n_weights, "second moments"),
        };
        Ok(GpuTrainer {
            gpu,
            kernels,
            rows_per_sample: sizes.last().copied().unwrap_or(1) / width.max(1),
            width,
            target_width: loss.target_width(width),
            stages,
            sizes,
            n_weights,
            loss: loss_spec(loss),
            metrics: metrics.iter().copied().map(metric_spec).collect(),
            optimizer,
            iterations: 0,
            state,
            batches: None,
            x_batch: Vec::new(),
            y_batch: Vec::new(),
        })
    }

    /// The optimizer's slot vectors, in pynn-core's order (Adam: m, v; SGD: the velocity when
    /// there is momentum).
    fn slots(&self) -> Vec<&wgpu::Buffer> {
        match self.optimizer {
            Optimizer::Adam { .. } => vec![&self.state.m, &self.state.v],
            Optimizer::Sgd { momentum, .. } if momentum != 0.0 => vec![&self.state.m],
            Optimizer::Sgd { .. } => Vec::new(),
        }
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
        let order = visiting_order(data.len, shuffle_seed);
        let n_batches = data.len.div_ceil(batch_size.max(1));
        self.prepare(batch_size, n_batches);
        let mut rows = Vec::with_capacity(n_batches);
        for (b, indices) in order.chunks(batch_size).enumerate() {
            gather(data.x, in_size, indices, &mut self.x_batch);
            gather(data.y, t_size, indices, &mut self.y_batch);
            self.step(b, indices.len(), learning_rate);
            rows.push(indices.len());
            if let Next::Stop = after_batch(&Progress::batches_only(b + 1)) {
                break;
            }
        }
        self.gpu.take_errors()?;
        self.logs(&rows)
    }

    /// One step: the batch and the step's scalars go up, every dispatch goes in one submit.
    fn step(&mut self, batch: usize, rows: usize, learning_rate: f32) {
        let batches = self.batches.as_ref().expect("prepared");
        let queue = &self.gpu.queue;
        queue.write_buffer(&batches.x, 0, bytemuck::cast_slice(&self.x_batch));
        queue.write_buffer(&batches.y, 0, bytemuck::cast_slice(&self.y_batch));
        let params = self.step_params(batch, rows, learning_rate);
        queue.write_buffer(&batches.step, 0, bytemuck::bytes_of(&params));
        let mut encoder = self.gpu.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            for dispatch in &batches.dispatches {
                pass.set_pipeline(dispatch.kernel.pipeline());
                pass.set_bind_group(0, &dispatch.bind_group, &[]);
                pass.dispatch_workgroups(dispatch.groups.0, dispatch.groups.1, 1);
            }
        }
        queue.submit([encoder.finish()]);
        self.iterations += 1;
    }

    fn step_params(&self, batch: usize, rows: usize, learning_rate: f32) -> StepParams {
        let mut params = StepParams {
            rows: rows as u32,
            batch: batch as u32,
            out_rows: (rows * self.rows_per_sample) as u32,
            learning_rate,
            ..StepParams::default()
        };
        match self.optimizer {
            Optimizer::Sgd { momentum, .. } => params.momentum = momentum,
            Optimizer::Adam {
                beta_1,
                beta_2,
                c1,
                c2,
                epsilon,
            } => {
                // As pynn-core's Adam computes it, in f32.
                let t = (self.iterations + 1) as f32;
                params.alpha =
                    learning_rate * (1.0 - beta_2.powf(t)).sqrt() / (1.0 - beta_1.powf(t));
                (params.c1, params.c2, params.epsilon) = (c1, c2, epsilon);
            }
        }
        params
    }

    /// The epoch's logs from each batch's loss and metric sums, weighted as pynn-core's
    /// trainer weights them.
    fn logs(&self, rows: &[usize]) -> Result<Logs, GpuError> {
        let stride = 1 + self.metrics.len();
        let batches = self.batches.as_ref().expect("prepared");
        let sums = read(self.gpu, &batches.statistics, rows.len() * stride)?;
        let (mut loss, mut samples, mut out_rows) = (0.0f64, 0usize, 0usize);
        let mut metrics = vec![0.0f64; self.metrics.len()];
        let mut first_non_finite = None;
        for (b, (&n, sums)) in rows.iter().zip(sums.chunks(stride)).enumerate() {
            let r = n * self.rows_per_sample;
            let batch_loss = sums[0] as f64 / r as f64;
            if !batch_loss.is_finite() && first_non_finite.is_none() {
                first_non_finite = Some(b);
            }
            loss += batch_loss * n as f64;
            samples += n;
            out_rows += r;
            for (total, &value) in metrics.iter_mut().zip(&sums[1..]) {
                *total += value as f64;
            }
        }
        let mean = |sum: f64, count: usize| if count > 0 { sum / count as f64 } else { 0.0 };
        Ok(Logs {
            loss: mean(loss, samples),
            metrics: metrics.into_iter().map(|m| mean(m, out_rows)).collect(),
            batches: rows.len(),
            first_non_finite,
        })
    }

    /// Sizes the batch buffers for `batch_size` samples and `n_batches` statistics, and records
    /// the step's dispatches over them (kept while the sizes fit).
    fn prepare(&mut self, batch_size: usize, n_batches: usize) {
        let fits = self
            .batches
            .as_ref()
            .is_some_and(|b| b.capacity >= batch_size && b.max_batches >= n_batches);
        if !fits {
            self.batches = Some(self.build_batches(batch_size, n_batches));
        }
    }

    fn build_batches(&self, capacity: usize, max_batches: usize) -> Batches {
        let gpu = self.gpu;
        let stride = 1 + self.metrics.len();
        let x = storage(gpu, capacity * self.sizes[0], "inputs");
        let y = storage(
            gpu,
            capacity * self.target_width * self.rows_per_sample,
            "targets",
        );
        let step = uniform(gpu, &StepParams::default());
        let statistics = storage(gpu, max_batches * stride, "statistics");
        // Activation i lives in buffer `act[i]`; Flatten and Reshape share their input's.
        let mut acts = vec![x.clone()];
        let mut deltas = vec![storage(gpu, capacity * self.sizes[0], "input gradient")];
        let mut zs = Vec::new();
        for (stage, &size) in self.stages.iter().zip(&self.sizes[1..]) {
            match stage {
                Stage::Dense { .. } => {
                    acts.push(storage(gpu, capacity * size, "activation"));
                    deltas.push(storage(gpu, capacity * size, "activation gradient"));
                    zs.push(Some(storage(gpu, capacity * size, "pre-activation")));
                }
                Stage::Identity => {
                    acts.push(acts.last().expect("input").clone());
                    deltas.push(deltas.last().expect("input").clone());
                    zs.push(None);
                }
            }
        }
        let row_values = storage(gpu, capacity * self.rows_per_sample * stride, "row values");
        let mut dispatches = Vec::new();
        self.record_forward(&mut dispatches, &acts, &zs, &step, capacity);
        self.record_loss(
            &mut dispatches,
            &acts,
            &deltas,
            &y,
            &row_values,
            &statistics,
            &step,
            capacity,
        );
        self.record_backward(&mut dispatches, &acts, &deltas, &zs, &step, capacity);
        self.record_optimizer(&mut dispatches, &step);
        Batches {
            capacity,
            x,
            y,
            step,
            statistics,
            max_batches,
            dispatches,
        }
    }

    fn matmul(
        &self,
        dims: MatmulDims,
        buffers: [&wgpu::Buffer; 3],
        step: &wgpu::Buffer,
        rows: usize,
    ) -> Dispatch {
        let m = if dims.m == 0 { rows } else { dims.m as usize };
        let kernel = &self.kernels.matmul;
        let params = uniform(self.gpu, &dims);
        Dispatch {
            kernel,
            bind_group: kernel.bind(
                self.gpu,
                &[buffers[0], buffers[1], buffers[2], &params, step],
            ),
            groups: ((dims.n as usize).div_ceil(16) as u32, m.div_ceil(16) as u32),
        }
    }

    fn record_forward(
        &self,
        dispatches: &mut Vec<Dispatch>,
        acts: &[wgpu::Buffer],
        zs: &[Option<wgpu::Buffer>],
        step: &wgpu::Buffer,
        capacity: usize,
    ) {
        for (i, stage) in self.stages.iter().enumerate() {
            let Stage::Dense {
                inputs,
                units,
                activation,
                use_bias,
                kernel_offset,
            } = *stage
            else {
                continue;
            };
            let z = zs[i].as_ref().expect("dense");
            let dims = MatmulDims {
                m: 0,
                n: units as u32,
                k: inputs as u32,
                a_row: inputs as u32,
                a_col: 1,
                b_offset: kernel_offset as u32,
                b_row: units as u32,
                b_col: 1,
                ..MatmulDims::default()
            };
            dispatches.push(self.matmul(dims, [&acts[i], &self.state.weights, z], step, capacity));
            let params = uniform(self.gpu, &dense_params(stage));
            let softmax = activation == Activation::Softmax;
            let kernel = if softmax {
                &self.kernels.softmax
            } else {
                &self.kernels.activation
            };
            let items = if softmax { capacity } else { capacity * units };
            dispatches.push(Dispatch {
                kernel,
                bind_group: kernel.bind(
                    self.gpu,
                    &[z, &acts[i + 1], &self.state.weights, &params, step],
                ),
                groups: groups_for(items),
            });
            let _ = use_bias;
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn record_loss(
        &self,
        dispatches: &mut Vec<Dispatch>,
        acts: &[wgpu::Buffer],
        deltas: &[wgpu::Buffer],
        y: &wgpu::Buffer,
        row_values: &wgpu::Buffer,
        statistics: &wgpu::Buffer,
        step: &wgpu::Buffer,
        capacity: usize,
    ) {
        let mut metrics = [Spec::default(); MAX_METRICS];
        metrics[..self.metrics.len()].copy_from_slice(&self.metrics);
        let params = uniform(
            self.gpu,
            &LossParams {
                width: self.width as u32,
                target_width: self.target_width as u32,
                n_metrics: self.metrics.len() as u32,
                _pad: 0,
                loss: self.loss,
                metrics,
            },
        );
        let last = acts.len() - 1;
        let buffers = [
            &acts[last],
            y,
            &deltas[last],
            row_values,
            statistics,
            &params,
            step,
        ];
        for (kernel, groups) in [
            (
                &self.kernels.loss_rows,
                groups_for(capacity * self.rows_per_sample),
            ),
            (&self.kernels.loss_sum, (1, 1)),
        ] {
            dispatches.push(Dispatch {
                kernel,
                bind_group: kernel.bind(self.gpu, &buffers),
                groups,
            });
        }
    }

    fn record_backward(
        &self,
        dispatches: &mut Vec<Dispatch>,
        acts: &[wgpu::Buffer],
        deltas: &[wgpu::Buffer],
        zs: &[Option<wgpu::Buffer>],
        step: &wgpu::Buffer,
        capacity: usize,
    ) {
        for (i, stage) in self.stages.iter().enumerate().rev() {
            let Stage::Dense {
                inputs,
                units,
                activation,
                use_bias,
                kernel_offset,
            } = *stage
            else {
                continue;
            };
            let z = zs[i].as_ref().expect("dense");
            let (dz, grads) = (&deltas[i + 1], &self.state.grads);
            let params = uniform(self.gpu, &dense_params(stage));
            let buffers = [dz, z, &acts[i + 1], grads, &params, step];
            let slope = match activation {
                Activation::Linear => None,
                Activation::Softmax => Some((&self.kernels.softmax_backward, capacity)),
                _ => Some((&self.kernels.activation_backward, capacity * units)),
            };
            if let Some((kernel, items)) = slope {
                dispatches.push(Dispatch {
                    kernel,
                    bind_group: kernel.bind(self.gpu, &buffers),
                    groups: groups_for(items),
                });
            }
            if use_bias {
                let kernel = &self.kernels.bias_gradient;
                dispatches.push(Dispatch {
                    kernel,
                    bind_group: kernel.bind(self.gpu, &buffers),
                    groups: groups_for(units),
                });
            }
            // ∂kernel = xᵀ·dz, summed over the batch's rows.
            let kernel_gradient = MatmulDims {
                m: inputs as u32,
                n: units as u32,
                k: 0,
                a_row: 1,
                a_col: inputs as u32,
                b_row: units as u32,
                b_col: 1,
                c_offset: kernel_offset as u32,
                ..MatmulDims::default()
            };
            dispatches.push(self.matmul(kernel_gradient, [&acts[i], dz, grads], step, capacity));
            if i > 0 {
                // ∂x = dz·kernelᵀ.
                let input_gradient = MatmulDims {
                    m: 0,
                    n: inputs as u32,
                    k: units as u32,
                    a_row: units as u32,
                    a_col: 1,
                    b_offset: kernel_offset as u32,
                    b_row: 1,
                    b_col: units as u32,
                    ..MatmulDims::default()
                };
                let weights = &self.state.weights;
                dispatches.push(self.matmul(
                    input_gradient,
                    [dz, weights, &deltas[i]],
                    step,
                    capacity,
                ));
            }
        }
    }

    fn record_optimizer(&self, dispatches: &mut Vec<Dispatch>, step: &wgpu::Buffer) {
        let (kind, nesterov) = match self.optimizer {
            Optimizer::Sgd { nesterov, .. } => (0, nesterov),
            Optimizer::Adam { .. } => (1, false),
        };
        let params = uniform(
            self.gpu,
            &OptimizerParams {
                n: self.n_weights as u32,
                kind,
                nesterov: nesterov as u32,
                _pad: 0,
            },
        );
        let s = &self.state;
        let kernel = &self.kernels.optimizer;
        dispatches.push(Dispatch {
            kernel,
            bind_group: kernel.bind(self.gpu, &[&s.weights, &s.grads, &s.m, &s.v, &params, step]),
            groups: groups_for(self.n_weights),
        });
    }
}

fn dense_params(stage: &Stage) -> DenseParams {
    match *stage {
        Stage::Dense {
            inputs,
            units,
            activation,
            use_bias,
            kernel_offset,
        } => DenseParams {
            n: units as u32,
            activation: activation_code(activation),
            use_bias: use_bias as u32,
            bias_offset: (kernel_offset + inputs * units) as u32,
        },
        Stage::Identity => DenseParams::default(),
    }
}

fn output_shape(input_shape: &[usize], specs: &[LayerSpec]) -> Result<Vec<usize>, GpuError> {
    let mut shape = input_shape.to_vec();
    for spec in specs {
        let layer = spec
            .build(&shape)
            .map_err(|e| GpuError::Unsupported(e.to_string()))?;
        shape = layer.output_shape().to_vec();
    }
    Ok(shape)
}

/// Copies the rows `indices` (each `size` values) of `source` into `out`, reusing its memory.
fn gather(source: &[f32], size: usize, indices: &[usize], out: &mut Vec<f32>) {
    out.clear();
    for &i in indices {
        out.extend_from_slice(&source[i * size..(i + 1) * size]);
    }
}
