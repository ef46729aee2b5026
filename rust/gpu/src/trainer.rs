//! Training on the GPU. Weights, gradients and optimizer slots live on the device from
//! [`GpuTrainer::upload`] to [`GpuTrainer::download`]. Each step writes its batch and its
//! scalars, replays every dispatch of forward, losses, backward and optimizer step in one
//! command buffer, and submits it; the batches' loss and metric sums stay on the device until
//! the epoch's end, when they come back in one read.

use pynn_core::graph::DevicePlan;
use pynn_core::kernels::loss::Loss;
use pynn_core::memory::ensure_len;
use pynn_core::metrics::Metric;
use pynn_core::optim::{OptimizerSpec, Slot};
use pynn_core::session::TrainingState;
use pynn_core::train::{
    gather, tracked_losses, visiting_order, Dataset, Logs, Next, OutputLoss, OutputSpec, Progress,
    Totals,
};

use crate::batches::{widest_per_sample, Batches, Model, State};
use crate::buffers::{host_memory, largest_buffer_values, read, read_into, storage, storage_with};
use crate::codes::{loss, metric};
use crate::context::{gpu, Gpu};
use crate::kernels::{kernels, Kernels};
use crate::params::{Spec, StepParams, MAX_METRICS};
use crate::plan::{plan, Op, Operand, Plan};
use crate::GpuError;

pub struct GpuTrainer {
    gpu: &'static Gpu,
    kernels: &'static Kernels,
    plan: Plan,
    /// Per output: its loss's spec (`NO_LOSS` where it has none) and its metrics'.
    specs: Vec<(Spec, Vec<Spec>)>,
    /// Per stage and input: a broadcast merge input's map (see merge.wgsl).
    maps: Vec<Vec<Option<wgpu::Buffer>>>,
    optimizer: OptimizerSpec,
    iterations: u64,
    state: State,
    batches: Option<Batches>,
    /// Each input's and each output's rows of the batch, gathered.
    x_batches: Vec<Vec<f32>>,
    y_batches: Vec<Vec<f32>>,
}

/// A broadcast input's map as merge.wgsl reads it: for each output value the input value it
/// reads, then where each input value's readers start in the list that follows, then that list
/// (output values in order).
fn map_with_readers(map: &[u32], size: usize) -> Vec<u32> {
    let mut starts = vec![0u32; size + 1];
    map.iter().for_each(|&j| starts[j as usize + 1] += 1);
    for j in 0..size {
        starts[j + 1] += starts[j];
    }
    let mut next = starts.clone();
    let mut readers = vec![0u32; map.len()];
    for (e, &j) in map.iter().enumerate() {
        readers[next[j as usize] as usize] = e as u32;
        next[j as usize] += 1;
    }
    [map, &starts[..], &readers[..]].concat()
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
    /// A trainer for the core's planned graph `model`, its outputs judged by `outputs` (one
    /// spec each) and trained by `optimizer`; [`GpuError::Unsupported`] names what the GPU does
    /// not run yet.
    pub fn new(
        model: &DevicePlan,
        outputs: &[OutputSpec],
        optimizer: &OptimizerSpec,
    ) -> Result<Self, GpuError> {
        let plan = plan(model, outputs)?;
        if outputs.iter().any(|o| o.metrics.len() > MAX_METRICS) {
            return Err(GpuError::Unsupported(format!(
                "more than {MAX_METRICS} metrics for one output"
            )));
        }
        let specs = outputs
            .iter()
            .map(|o| {
                let loss = o.loss.map_or(
                    Spec {
                        kind: loss::NO_LOSS,
                        ..Spec::default()
                    },
                    loss_spec,
                );
                (loss, o.metrics.iter().copied().map(metric_spec).collect())
            })
            .collect();
        let gpu = gpu()?;
        let kernels = kernels(gpu)?;
        let n_weights = plan.n_weights;
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
        let maps = merge_maps(gpu, &plan);
        if let Some(error) = pollster::block_on(scope.pop()) {
            return Err(GpuError::OutOfMemory(format!(
                "the model's {n_weights} weights and optimizer state could not be allocated \
                 ({error})"
            )));
        }
        Ok(GpuTrainer {
            gpu,
            kernels,
            x_batches: vec![Vec::new(); plan.n_inputs],
            y_batches: vec![Vec::new(); plan.outputs.len()],
            plan,
            specs,
            maps,
            optimizer: optimizer.clone(),
            iterations: 0,
            state,
            batches: None,
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
        if weights.len() != self.plan.n_weights {
            return Err(GpuError::Device(format!(
                "{} weights given for a network of {}",
                weights.len(),
                self.plan.n_weights
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
        let n = self.plan.n_weights;
        let weights = read(self.gpu, &self.state.weights, n)?;
        let slots = self
            .slots()
            .into_iter()
            .map(|buffer| read(self.gpu, buffer, n))
            .collect::<Result<_, _>>()?;
        Ok(TrainingState {
            weights,
            slots,
            iterations: self.iterations,
        })
    }

    /// The gradients of the last step, in the layout of the weights.
    pub fn gradients(&self) -> Result<Vec<f32>, GpuError> {
        read(self.gpu, &self.state.grads, self.plan.n_weights)
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
        let order = visiting_order(data.len, shuffle_seed).map_err(host_memory)?;
        let n_batches = data.len.div_ceil(batch_size.max(1));
        self.prepare(batch_size.min(data.len), n_batches)?;
        let mut rows = Vec::with_capacity(n_batches);
        for (b, indices) in order.chunks(batch_size).enumerate() {
            for (i, x) in data.xs.iter().enumerate() {
                gather_into(x, self.plan.sizes[i], indices, &mut self.x_batches[i])?;
            }
            for (o, y) in data.ys.iter().enumerate() {
                let size = self.plan.outputs[o].target_size();
                gather_into(y, size, indices, &mut self.y_batches[o])?;
            }
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
        for (buffer, x) in batches.xs.iter().zip(&self.x_batches) {
            queue.write_buffer(buffer, 0, bytemuck::cast_slice(x));
        }
        for (buffer, y) in batches.ys.iter().zip(&self.y_batches) {
            queue.write_buffer(buffer, 0, bytemuck::cast_slice(y));
        }
        for (stage, mask) in self.plan.stages.iter_mut().zip(&batches.masks) {
            if let (Op::Dropout(layer), Some(mask)) = (&mut stage.op, mask) {
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

    /// Writes samples `first..first + n` of `arrays` (one per buffer, `sizes[k]` values a
    /// sample) into `buffers`.
    fn write_rows(
        &self,
        buffers: &[wgpu::Buffer],
        arrays: &[&[f32]],
        sizes: impl Iterator<Item = usize>,
        (first, n): (usize, usize),
    ) {
        for ((buffer, array), size) in buffers.iter().zip(arrays).zip(sizes) {
            let rows = &array[first * size..(first + n) * size];
            self.gpu
                .queue
                .write_buffer(buffer, 0, bytemuck::cast_slice(rows));
        }
    }

    /// The losses and metrics over `data` with fixed weights (no training behaviour), in
    /// batches of `batch_size`; they come back once, at the end.
    pub fn evaluate(
        &mut self,
        data: &Dataset,
        batch_size: usize,
        after_batch: &mut dyn FnMut(&Progress) -> Next,
    ) -> Result<Logs, GpuError> {
        let n_batches = data.len.div_ceil(batch_size.max(1));
        self.prepare(batch_size.min(data.len), n_batches)?;
        let batches = self.batches.as_ref().expect("prepared");
        let mut rows = Vec::with_capacity(n_batches);
        for b in 0..n_batches {
            let first = b * batch_size;
            let n = batch_size.min(data.len - first);
            let in_sizes = self.plan.sizes[..self.plan.n_inputs].iter().copied();
            self.write_rows(&batches.xs, &data.xs, in_sizes, (first, n));
            let target_sizes = self.plan.outputs.iter().map(|o| o.target_size());
            self.write_rows(&batches.ys, &data.ys, target_sizes, (first, n));
            let params = self.step_params(b, n, 0.0);
            let queue = &self.gpu.queue;
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

    /// The network's outputs for `len` samples of `xs` (one array per input) into `outs` (one
    /// per output), computed in batches of `batch_size`. The outputs gather on the device, as
    /// many batches as one buffer holds, and come down when it is full and at the end. Returns
    /// [`Next::Stop`] when `after_batch` stopped it.
    pub fn predict(
        &mut self,
        (xs, len): (&[&[f32]], usize),
        outs: &mut [&mut [f32]],
        batch_size: usize,
        after_batch: &mut dyn FnMut(&Progress) -> Next,
    ) -> Result<Next, GpuError> {
        let out_sizes: Vec<usize> = self
            .plan
            .outputs
            .iter()
            .map(|o| self.plan.sizes[o.tensor])
            .collect();
        let n_batches = len.div_ceil(batch_size.max(1));
        self.prepare(batch_size.min(len), n_batches)?;
        let batch_samples = batch_size.min(len).max(1);
        let widest = out_sizes.iter().max().copied().unwrap_or(1) * batch_samples;
        let held = (largest_buffer_values(self.gpu) / widest.max(1)).clamp(1, n_batches.max(1));
        let gathered: Vec<_> = out_sizes
            .iter()
            .map(|&size| storage(self.gpu, held * batch_samples * size, "outputs"))
            .collect();
        let batches = self.batches.as_ref().expect("prepared");
        let mut unread = 0..0; // samples gathered on the device, not yet read
        for b in 0..n_batches {
            let first = b * batch_size;
            let n = batch_size.min(len - first);
            let in_sizes = self.plan.sizes[..self.plan.n_inputs].iter().copied();
            self.write_rows(&batches.xs, xs, in_sizes, (first, n));
            let params = self.step_params(b, n, 0.0);
            let queue = &self.gpu.queue;
            queue.write_buffer(&batches.step, 0, bytemuck::bytes_of(&params));
            let mut encoder = self.gpu.device.create_command_encoder(&Default::default());
            replay(&mut encoder, &batches.inference);
            for ((output, target), &size) in batches.outputs.iter().zip(&gathered).zip(&out_sizes) {
                let at = ((first - unread.start) * size * 4) as u64;
                encoder.copy_buffer_to_buffer(output, 0, target, at, (n * size * 4) as u64);
            }
            queue.submit([encoder.finish()]);
            unread.end = first + n;
            if b + 1 == n_batches || (b + 1) % held == 0 {
                for ((out, buffer), &size) in outs.iter_mut().zip(&gathered).zip(&out_sizes) {
                    let target = &mut out[unread.start * size..unread.end * size];
                    read_into(self.gpu, buffer, target)?;
                }
                unread = unread.end..unread.end;
            }
            if let Next::Stop = after_batch(&Progress::batches_only(b + 1)) {
                return Ok(Next::Stop);
            }
        }
        Ok(Next::Continue)
    }

    fn step_params(&self, batch: usize, rows: usize, learning_rate: f32) -> StepParams {
        let scalars = self.optimizer.step_scalars(learning_rate, self.iterations);
        StepParams {
            rows: rows as u32,
            batch: batch as u32,
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
        let outputs = &self.plan.outputs;
        let stride = crate::record::statistics_stride(outputs);
        let batches = self.batches.as_ref().expect("prepared");
        let sums = read(self.gpu, &batches.statistics, rows.len() * stride)?;
        let specs: Vec<OutputSpec> = outputs.iter().map(|o| o.spec.clone()).collect();
        let n_metrics = specs.iter().map(|o| o.metrics.len()).sum();
        let mut totals = Totals::with_outputs(tracked_losses(&specs), n_metrics);
        let mut losses = Vec::with_capacity(outputs.len());
        for (&n, sums) in rows.iter().zip(sums.chunks(stride)) {
            let (mut at, mut first_metric) = (0, 0);
            losses.clear();
            for output in outputs {
                let metrics = output.spec.metrics.len();
                let output_rows = n * output.rows_per_sample;
                let metric_sums = sums[at + 1..at + 1 + metrics].iter().map(|&m| m as f64);
                totals.add_metrics(first_metric, metric_sums, output_rows);
                losses.push(OutputLoss {
                    sum: output.spec.loss.map(|_| sums[at] as f64),
                    weight: output.spec.weight,
                    rows: output_rows,
                });
                (at, first_metric) = (at + 1 + metrics, first_metric + metrics);
            }
            totals.add_outputs(n, &losses, sums[stride - 1] as f64);
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
        let widest = batch_size.checked_mul(widest_per_sample(&self.plan));
        let limit = largest_buffer_values(self.gpu);
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
        let model = Model {
            gpu: self.gpu,
            kernels: self.kernels,
            plan: &self.plan,
            specs: &self.specs,
            optimizer: &self.optimizer,
            state: &self.state,
            maps: &self.maps,
        };
        let batches = model.batches(batch_size, n_batches);
        if let Some(error) = pollster::block_on(scope.pop()) {
            return Err(GpuError::OutOfMemory(format!(
                "the buffers of a batch of {batch_size} samples could not be allocated \
                 ({error}); lower `batch_size`"
            )));
        }
        self.batches = Some(batches);
        Ok(())
    }
}

/// Per stage and input: a broadcast merge input's map, on the device.
fn merge_maps(gpu: &Gpu, plan: &Plan) -> Vec<Vec<Option<wgpu::Buffer>>> {
    let map = |operand: &Operand| {
        let map = operand.map.as_ref()?;
        let values = map_with_readers(map, operand.size);
        Some(storage_with(gpu, &values, "broadcast map"))
    };
    plan.stages
        .iter()
        .map(|stage| match &stage.op {
            Op::Merge { operands, .. } => operands.iter().map(map).collect(),
            _ => Vec::new(),
        })
        .collect()
}

/// Records `dispatches` into one compute pass.
fn replay(encoder: &mut wgpu::CommandEncoder, dispatches: &[crate::record::Dispatch]) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broadcast_map_lists_each_input_values_readers_in_order() {
        // A (2,) input broadcast to (3, 2): output value e reads input value e % 2.
        let map = [0, 1, 0, 1, 0, 1];
        let values = map_with_readers(&map, 2);
        assert_eq!(&values[..6], &map);
        assert_eq!(&values[6..9], &[0, 3, 6]);
        assert_eq!(&values[9..], &[0, 2, 4, 1, 3, 5]);
    }
}
