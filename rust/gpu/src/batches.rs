//! The buffers of batches of up to a capacity of samples, and the dispatches of a training
//! step (the core's training pass, then the penalties and the optimizer's step), an inference
//! and an evaluation over them, recorded once and replayed every batch.
//!
//! Each tensor has a buffer of values; an Identity's output is its input's. Each tensor that
//! carries a gradient has a gradient buffer, which an Identity or Activation shares with its
//! input where nothing else reads that input (the Activation's derivative then applies in
//! place).

use std::sync::Arc;

use pynn_core::cancel::Cancel;
use pynn_core::epoch::SumsLayout;
use pynn_core::graph::{training_pass, NodeRoute, PassOps, Routes};
use pynn_core::optim::OptimizerSpec;
use pynn_core::Result;

use crate::buffers::storage;
use crate::codes::optimizer;
use crate::context::Gpu;
use crate::kernels::Kernels;
use crate::params::{OptimizerParams, Spec, StepParams};
use crate::plan::{Op, Plan};
use crate::record::{loss_params, statistics_stride, uniform, Dispatch, Recorder, StepBuffers};

/// Weights, gradients and optimizer slots: the state that persists across steps.
pub struct State {
    pub weights: wgpu::Buffer,
    pub grads: wgpu::Buffer,
    pub m: wgpu::Buffer,
    pub v: wgpu::Buffer,
    pub a: wgpu::Buffer,
}

/// What a batch's dispatches are recorded from.
pub struct Model<'a> {
    pub gpu: &'static Gpu,
    pub kernels: &'static Kernels,
    pub plan: &'a Plan,
    /// Per output: its loss's and its metrics' specs.
    pub specs: &'a [(Spec, Vec<Spec>)],
    pub optimizer: &'a OptimizerSpec,
    pub state: &'a State,
    /// Per stage and input: a broadcast merge input's map.
    pub maps: &'a [Vec<Option<wgpu::Buffer>>],
}

/// Buffers sized for batches of up to `capacity` samples, and the dispatches over them.
pub struct Batches {
    pub capacity: usize,
    pub max_batches: usize,
    /// Each model input's batch, and each output's targets.
    pub xs: Vec<wgpu::Buffer>,
    pub ys: Vec<wgpu::Buffer>,
    pub step: wgpu::Buffer,
    pub statistics: wgpu::Buffer,
    /// Per stage, the Dropout masks' buffers (uploaded each step).
    pub masks: Vec<Option<wgpu::Buffer>>,
    /// Each output's predictions (after its head).
    pub outputs: Vec<wgpu::Buffer>,
    /// A training step: forward, losses, backward, optimizer step.
    pub training: Vec<Dispatch>,
    /// Inference: the forward pass without training behaviour.
    pub inference: Vec<Dispatch>,
    /// Evaluation: inference, then the losses and metrics.
    pub evaluation: Vec<Dispatch>,
}

/// The recorder as the core's training pass drives it (see `pynn_core::graph::training_pass`):
/// every output seeded (one without a loss writes zeros), so the plan's routes.
struct RecordedPass<'a, 'r> {
    recorder: &'a mut Recorder<'r>,
    plan: &'a Plan,
    /// Records output `o`'s loss.
    loss: &'a dyn Fn(&mut Recorder, usize),
    stats_stride: usize,
}

impl PassOps for RecordedPass<'_, '_> {
    fn forward(&mut self, node: usize) -> Result<()> {
        let stage = (node, &self.plan.stages[node]);
        self.recorder.forward_stage(stage, &self.plan.sizes, None);
        Ok(())
    }

    fn loss(&mut self, output: usize) -> Result<bool> {
        (self.loss)(self.recorder, output);
        Ok(true)
    }

    fn routes(&mut self, _: &[bool]) -> Arc<Routes> {
        self.plan.routes.clone()
    }

    fn backward(&mut self, route: &NodeRoute) -> Result<()> {
        let (stages, sizes) = (&self.plan.stages, &self.plan.sizes);
        self.recorder
            .backward_node(stages, route, sizes, self.stats_stride);
        Ok(())
    }

    fn finish(&mut self, _: &Routes) -> Result<()> {
        Ok(())
    }
}

/// Values per sample of the largest buffer a batch needs: a tensor, a merge's gathered inputs,
/// or an output's targets.
pub fn widest_per_sample(plan: &Plan) -> usize {
    let stacked = plan.stages.iter().map(|stage| match &stage.op {
        Op::Merge { operands, .. } => operands.len() * plan.sizes[stage.output],
        _ => 0,
    });
    let targets = plan.outputs.iter().map(|o| o.target_size());
    plan.sizes
        .iter()
        .copied()
        .chain(stacked)
        .chain(targets)
        .max()
        .unwrap_or(1)
}

/// Each tensor's values: the inputs' batches, the constants repeated over the samples, each
/// node's output (an Identity's is its input's).
fn values(gpu: &Gpu, plan: &Plan, capacity: usize, xs: &[wgpu::Buffer]) -> Vec<wgpu::Buffer> {
    let mut values = xs.to_vec();
    for constant in &plan.constants {
        let repeated: Vec<f32> = (0..capacity)
            .flat_map(|_| constant.iter().copied())
            .collect();
        values.push(crate::buffers::storage_with(gpu, &repeated, "constant"));
    }
    for stage in &plan.stages {
        values.push(match stage.op {
            Op::Identity => values[stage.inputs[0]].clone(),
            _ => storage(gpu, capacity * plan.sizes[stage.output], "activation"),
        });
    }
    values
}

/// Each tensor's gradient buffer, where it carries one, and per stage whether its input's is
/// its output's.
fn deltas(gpu: &Gpu, plan: &Plan, capacity: usize) -> (Vec<Option<wgpu::Buffer>>, Vec<bool>) {
    let n = plan.sizes.len();
    let mut deltas: Vec<Option<wgpu::Buffer>> = vec![None; n];
    let mut passes = vec![false; plan.stages.len()];
    let is_output = |v: usize| plan.outputs.iter().any(|o| o.tensor == v);
    let gradient = |v: usize, deltas: &mut Vec<Option<wgpu::Buffer>>| {
        if plan.needs_grad[v] && deltas[v].is_none() {
            deltas[v] = Some(storage(gpu, capacity * plan.sizes[v], "gradient"));
        }
    };
    for (s, stage) in plan.stages.iter().enumerate().rev() {
        gradient(stage.output, &mut deltas);
        let input = stage.inputs[0];
        let passes_through = matches!(stage.op, Op::Identity | Op::Activation(_));
        if passes_through
            && plan.needs_grad[input]
            && plan.consumers[input] == 1
            && !is_output(input)
        {
            deltas[input] = deltas[stage.output].clone();
            passes[s] = true;
        }
        for &v in &stage.inputs {
            gradient(v, &mut deltas);
        }
    }
    (deltas, passes)
}

/// Per stage: what its backward needs kept (pre-activations, argmax, a mask, a merge's
/// gathered inputs).
fn extras(gpu: &Gpu, plan: &Plan, capacity: usize) -> Vec<Option<wgpu::Buffer>> {
    plan.stages
        .iter()
        .map(|stage| {
            let per_sample = match &stage.op {
                Op::Dense { .. } | Op::Conv { .. } | Op::Pool { .. } => plan.sizes[stage.output],
                Op::Dropout(_) => plan.sizes[stage.inputs[0]],
                Op::Merge { operands, .. } => operands.len() * plan.sizes[stage.output],
                Op::Dot { sides, .. } => Op::dot_fibers(sides).iter().sum(),
                Op::Identity | Op::Activation(_) | Op::Concatenate { .. } => return None,
            };
            Some(storage(gpu, capacity * per_sample, "kept for the backward"))
        })
        .collect()
}

/// The widest per-sample partial sums of a gradient (a kernel's or a bias's).
fn widest_partial(plan: &Plan) -> usize {
    plan.stages
        .iter()
        .map(|stage| match &stage.op {
            Op::Conv { epilogue, .. } => epilogue.kernel_len.max(epilogue.period),
            Op::Dense { epilogue, .. } => epilogue.period,
            _ => 0,
        })
        .max()
        .unwrap_or(0)
}

impl Model<'_> {
    /// The buffers of batches of up to `capacity` samples and `max_batches` statistics, and
    /// the dispatches over them.
    pub fn batches(&self, capacity: usize, max_batches: usize) -> Batches {
        let (gpu, plan) = (self.gpu, self.plan);
        let xs: Vec<_> = (0..plan.n_inputs)
            .map(|i| storage(gpu, capacity * plan.sizes[i], "inputs"))
            .collect();
        let ys: Vec<_> = plan
            .outputs
            .iter()
            .map(|o| storage(gpu, capacity * o.target_size(), "targets"))
            .collect();
        let step = uniform(gpu, &StepParams::default());
        let stats_stride = statistics_stride(&plan.outputs);
        let statistics = storage(gpu, max_batches * stats_stride, "statistics");
        let values = values(gpu, plan, capacity, &xs);
        let (deltas, passes_delta) = deltas(gpu, plan, capacity);
        let extra = extras(gpu, plan, capacity);
        let row_values = plan
            .outputs
            .iter()
            .map(|o| o.rows_per_sample * (1 + o.spec.metrics.len()))
            .max()
            .unwrap_or(1);
        let row_values = storage(gpu, capacity * row_values, "row values");
        let partials = storage(gpu, capacity * widest_partial(plan), "partial sums");
        let widest = plan.sizes.iter().max().copied().unwrap_or(1);
        let scratch = storage(gpu, capacity * widest, "gradient to add");
        let ones = crate::buffers::storage_with(gpu, &vec![1.0f32; capacity * widest], "ones");
        let unused = storage(gpu, 1, "unused");
        let buffers = || StepBuffers {
            weights: &self.state.weights,
            grads: &self.state.grads,
            step: &step,
            values: &values,
            deltas: &deltas,
            passes_delta: &passes_delta,
            extra: &extra,
            maps: self.maps,
            statistics: &statistics,
            partials: &partials,
            scratch: &scratch,
            unused: &unused,
        };
        let recorder = || Recorder {
            gpu,
            kernels: self.kernels,
            buffers: buffers(),
            capacity,
            dispatches: Vec::new(),
        };
        let loss = |recorder: &mut Recorder, o: usize| {
            let (output, (loss, metrics)) = (&plan.outputs[o], &self.specs[o]);
            let again = plan.outputs[..o].iter().any(|e| e.tensor == output.tensor);
            let offset = SumsLayout::stride(plan.outputs[..o].iter().map(|e| &e.spec)) - 1;
            let params = loss_params(output, (offset, stats_stride), (*loss, metrics), again);
            recorder.loss(params, output, &ys[o], &row_values);
        };
        let mut training = recorder();
        let mut pass = RecordedPass {
            recorder: &mut training,
            plan,
            loss: &loss,
            stats_stride,
        };
        let shape = (plan.stages.len(), plan.outputs.len());
        training_pass(&mut pass, shape, Cancel::never()).expect("recording does not fail");
        let penalties = &plan.penalties;
        training.penalties(penalties, &plan.stages, &plan.sizes, stats_stride, true);
        self.optimizer_steps(&mut training);
        let mut inference = recorder();
        inference.forward(&plan.stages, &plan.sizes, Some(&ones));
        let outputs = plan
            .outputs
            .iter()
            .map(|output| {
                let logits = values[output.tensor].clone();
                let Some(head) = output.head else {
                    return logits;
                };
                let per_sample = plan.sizes[output.tensor];
                let probabilities = storage(gpu, capacity * per_sample, "probabilities");
                inference.head(head, (per_sample, output.width), &logits, &probabilities);
                probabilities
            })
            .collect();
        let mut evaluation = recorder();
        evaluation.forward(&plan.stages, &plan.sizes, Some(&ones));
        for o in 0..plan.outputs.len() {
            loss(&mut evaluation, o);
        }
        evaluation.penalties(penalties, &plan.stages, &plan.sizes, stats_stride, false);
        let masks = plan
            .stages
            .iter()
            .zip(extra.iter())
            .map(|(stage, buffer)| {
                buffer
                    .clone()
                    .filter(|_| matches!(stage.op, Op::Dropout(_)))
            })
            .collect();
        Batches {
            capacity,
            max_batches,
            xs,
            ys,
            step: step.clone(),
            statistics: statistics.clone(),
            masks,
            outputs,
            training: training.dispatches,
            inference: inference.dispatches,
            evaluation: evaluation.dispatches,
        }
    }

    /// The optimizer's step over each trainable range of the weights.
    fn optimizer_steps(&self, recorder: &mut Recorder) {
        let (kind, nesterov, centered) = match *self.optimizer {
            OptimizerSpec::Sgd { nesterov, .. } => (optimizer::SGD, nesterov, false),
            OptimizerSpec::Adam { amsgrad, .. } => (optimizer::ADAM, false, amsgrad),
            OptimizerSpec::Rmsprop { centered, .. } => (optimizer::RMSPROP, false, centered),
            OptimizerSpec::Adagrad { .. } => (optimizer::ADAGRAD, false, false),
        };
        let s = self.state;
        for range in &self.plan.trainable_ranges {
            let params = OptimizerParams {
                n: range.len() as u32,
                kind,
                nesterov: nesterov as u32,
                centered: centered as u32,
                offset: range.start as u32,
                ..OptimizerParams::default()
            };
            recorder.optimizer(params, [&s.m, &s.v, &s.a]);
        }
    }
}
