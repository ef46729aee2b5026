//! Training on the GPU, batch by batch, as the core's loops (`pynn_core::epoch`) drive it.
//! Weights, gradients and optimizer slots live on the device from [`GpuTrainer::upload`] to
//! [`GpuTrainer::download`]. Each step writes its batch and its scalars, replays every dispatch
//! of forward, losses, backward and optimizer step in one command buffer, and submits it; the
//! batches' loss and metric sums stay on the device until the loop's end, when they come back
//! in one read.

use std::ops::Range;

use pynn_core::graph::DevicePlan;
use pynn_core::kernels::loss::Loss;
use pynn_core::memory::ensure_len;
use pynn_core::metrics::Metric;
use pynn_core::optim::{OptimizerSpec, Slot};
use pynn_core::session::TrainingState;
use pynn_core::train::{consecutive, gather, Dataset, OutputSpec};

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
    /// Batches in the loop being run.
    loop_batches: usize,
    /// A prediction loop's outputs gathered on the device, not read yet.
    pending: Option<PendingOutputs>,
    /// Each input's and each output's rows of the batch, gathered.
    x_batches: Vec<Vec<f32>>,
    y_batches: Vec<Vec<f32>>,
}

/// Outputs of a prediction loop's batches gathered on the device (`sizes` values per sample
/// each): room for `held` batches, `batches` of them filled since sample `first`.
struct PendingOutputs {
    buffers: Vec<wgpu::Buffer>,
    /// Values per sample of each output.
    sizes: Vec<usize>,
    held: usize,
    first: usize,
    batches: usize,
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
        Self::build(model, outputs, optimizer, false)
    }

    /// [`GpuTrainer::new`] running every fused op by its decomposition (a Dense with an
    /// activation as a Dense, then the activation): the reference the fused kernels are tested
    /// against.
    pub fn decomposing(
        model: &DevicePlan,
        outputs: &[OutputSpec],
        optimizer: &OptimizerSpec,
    ) -> Result<Self, GpuError> {
        Self::build(model, outputs, optimizer, true)
    }

    fn build(
        model: &DevicePlan,
        outputs: &[OutputSpec],
        optimizer: &OptimizerSpec,
        decompose: bool,
    ) -> Result<Self, GpuError> {
        let plan = plan(model, outputs, decompose)?;
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
            loop_batches: 1,
            pending: None,
        })
    }

    /// How many ops a forward runs (a decomposed op counts each of its parts).
    pub fn stage_count(&self) -> usize {
        self.plan.stages.len()
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

    /// A training step on the samples `indices` of `data` as the loop's batch `index`, at
    /// `learning_rate`: the batch and the step's scalars go up, every dispatch goes in one
    /// submit, and the batch's sums stay on the device.
    pub fn train_batch(
        &mut self,
        data: &Dataset,
        indices: &[usize],
        (index, learning_rate): (usize, f32),
    ) -> Result<(), GpuError> {
        for (i, x) in data.xs.iter().enumerate() {
            gather_into(x, self.plan.sizes[i], indices, &mut self.x_batches[i])?;
        }
        for (o, y) in data.ys.iter().enumerate() {
            let size = self.plan.outputs[o].target_size();
            gather_into(y, size, indices, &mut self.y_batches[o])?;
        }
        let batches = self.batches.as_ref().expect("prepared");
        let queue = &self.gpu.queue;
        for (buffer, x) in batches.xs.iter().zip(&self.x_batches) {
            queue.write_buffer(buffer, 0, bytemuck::cast_slice(x));
        }
        for (buffer, y) in batches.ys.iter().zip(&self.y_batches) {
            queue.write_buffer(buffer, 0, bytemuck::cast_slice(y));
        }
        let rows = indices.len();
        for (stage, mask) in self.plan.stages.iter_mut().zip(&batches.masks) {
            if let (Op::Dropout(layer), Some(mask)) = (&mut stage.op, mask) {
                let values = layer
                    .training_mask(self.iterations, rows)
                    .map_err(host_memory)?;
                queue.write_buffer(mask, 0, bytemuck::cast_slice(values));
            }
        }
        self.submit(
            &batches.training,
            self.step_params(index, rows, learning_rate),
        );
        self.iterations = self.iterations.saturating_add(1);
        Ok(())
    }

    /// The losses and metrics of the samples `indices` of `data` with fixed weights (no
    /// training behaviour), as the loop's batch `index`; the sums stay on the device.
    pub fn test_batch(
        &mut self,
        data: &Dataset,
        indices: &[usize],
        index: usize,
    ) -> Result<(), GpuError> {
        let batches = self.batches.as_ref().expect("prepared");
        let in_sizes = self.plan.sizes[..self.plan.n_inputs].iter().copied();
        self.write_rows(&batches.xs, &data.xs, in_sizes, indices)?;
        let target_sizes = self.plan.outputs.iter().map(|o| o.target_size());
        self.write_rows(&batches.ys, &data.ys, target_sizes, indices)?;
        self.submit(
            &batches.evaluation,
            self.step_params(index, indices.len(), 0.0),
        );
        Ok(())
    }

    /// The sums of the loop's first `batches` batches (see pynn-core's `SumsLayout`), in one
    /// read.
    pub fn batch_sums(&self, batches: usize) -> Result<Vec<f32>, GpuError> {
        self.gpu.take_errors()?;
        let stride = crate::record::statistics_stride(&self.plan.outputs);
        let statistics = &self.batches.as_ref().expect("prepared").statistics;
        read(self.gpu, statistics, batches * stride)
    }

    /// The outputs of samples `rows` of `xs` (one array per input) into the same rows of
    /// `outs` (one per output). The outputs gather on the device, as many batches as one
    /// buffer holds, and come down when it is full and with the `last` batch.
    pub fn predict_batch(
        &mut self,
        xs: &[&[f32]],
        rows: Range<usize>,
        outs: &mut [&mut [f32]],
        last: bool,
    ) -> Result<(), GpuError> {
        if rows.start == 0 || self.pending.is_none() {
            self.pending = Some(self.pending_outputs(rows.start));
        }
        let batches = self.batches.as_ref().expect("prepared");
        let in_sizes = self.plan.sizes[..self.plan.n_inputs].iter().copied();
        self.write_range(&batches.xs, xs, in_sizes, rows.clone());
        let params = self.step_params(0, rows.len(), 0.0);
        self.gpu
            .queue
            .write_buffer(&batches.step, 0, bytemuck::bytes_of(&params));
        let pending = self.pending.as_mut().expect("made above");
        let mut encoder = self.gpu.device.create_command_encoder(&Default::default());
        replay(&mut encoder, &batches.inference);
        let outputs = batches
            .outputs
            .iter()
            .zip(&pending.buffers)
            .zip(&pending.sizes);
        for ((output, target), &size) in outputs {
            let at = ((rows.start - pending.first) * size * 4) as u64;
            encoder.copy_buffer_to_buffer(output, 0, target, at, (rows.len() * size * 4) as u64);
        }
        self.gpu.queue.submit([encoder.finish()]);
        pending.batches += 1;
        if last || pending.batches == pending.held {
            let buffers = pending.buffers.iter().zip(&pending.sizes);
            for (out, (buffer, &size)) in outs.iter_mut().zip(buffers) {
                let target = &mut out[pending.first * size..rows.end * size];
                read_into(self.gpu, buffer, target)?;
            }
            pending.first = rows.end;
            pending.batches = 0;
        }
        Ok(())
    }

    /// Room on the device for the outputs of as many batches as one buffer holds, from sample
    /// `first`.
    fn pending_outputs(&self, first: usize) -> PendingOutputs {
        let outputs = &self.plan.outputs;
        let out_sizes: Vec<usize> = outputs.iter().map(|o| self.plan.sizes[o.tensor]).collect();
        let batches = self.batches.as_ref().expect("prepared");
        let widest = out_sizes.iter().max().copied().unwrap_or(1) * batches.capacity;
        let held = (largest_buffer_values(self.gpu) / widest.max(1)).clamp(1, self.loop_batches);
        let buffers = out_sizes
            .iter()
            .map(|&size| storage(self.gpu, held * batches.capacity * size, "outputs"))
            .collect();
        PendingOutputs {
            buffers,
            sizes: out_sizes,
            held,
            first,
            batches: 0,
        }
    }

    /// Replays `dispatches` with the step's `params`, in one submit.
    fn submit(&self, dispatches: &[crate::record::Dispatch], params: StepParams) {
        let queue = &self.gpu.queue;
        let step = &self.batches.as_ref().expect("prepared").step;
        queue.write_buffer(step, 0, bytemuck::bytes_of(&params));
        let mut encoder = self.gpu.device.create_command_encoder(&Default::default());
        replay(&mut encoder, dispatches);
        queue.submit([encoder.finish()]);
    }

    /// Writes the samples `indices` of `arrays` (one per buffer, `sizes[k]` values a sample)
    /// into `buffers`: in place where they are consecutive, gathered otherwise.
    fn write_rows(
        &self,
        buffers: &[wgpu::Buffer],
        arrays: &[&[f32]],
        sizes: impl Iterator<Item = usize>,
        indices: &[usize],
    ) -> Result<(), GpuError> {
        if let Some(first) = consecutive(indices) {
            self.write_range(buffers, arrays, sizes, first..first + indices.len());
            return Ok(());
        }
        let mut gathered = Vec::new();
        for ((buffer, array), size) in buffers.iter().zip(arrays).zip(sizes) {
            gather_into(array, size, indices, &mut gathered)?;
            self.gpu
                .queue
                .write_buffer(buffer, 0, bytemuck::cast_slice(&gathered));
        }
        Ok(())
    }

    /// Writes the samples `rows` of `arrays` (one per buffer, `sizes[k]` values a sample) into
    /// `buffers`.
    fn write_range(
        &self,
        buffers: &[wgpu::Buffer],
        arrays: &[&[f32]],
        sizes: impl Iterator<Item = usize>,
        rows: Range<usize>,
    ) {
        for ((buffer, array), size) in buffers.iter().zip(arrays).zip(sizes) {
            let values = &array[rows.start * size..rows.end * size];
            self.gpu
                .queue
                .write_buffer(buffer, 0, bytemuck::cast_slice(values));
        }
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

    /// Sizes the batch buffers for a loop of `n_batches` batches of up to `batch_size` samples
    /// (at least one), and records the dispatches over them (kept while the sizes fit). A
    /// batch whose buffers exceed what the GPU allows, or its memory, is an error.
    pub fn prepare(&mut self, batch_size: usize, n_batches: usize) -> Result<(), GpuError> {
        let batch_size = batch_size.max(1);
        self.loop_batches = n_batches.max(1);
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
