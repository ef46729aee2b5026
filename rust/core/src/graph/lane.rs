//! A lane: one instance of every node, with the buffers of one batch's forward and backward.
//! A whole batch runs in one lane; a split batch runs each part in a lane of its own.

use smallvec::SmallVec;

use std::sync::Arc;

use super::pass::PassOps;
use super::plan::{Flow, NodePlan, Plan};
use super::routes::{Arrival, NodeRoute, Routes};
use super::spec::Mode;
use crate::cancel::Cancel;
use crate::error::{CoreError, Result};
use crate::layers::{Layer, LayerSpec};
use crate::memory::ensure_len;
use crate::ops::{Combine, Concatenate, Dot, Merge};
use crate::regularizers::Regularizer;

/// Inputs of a node, inline up to this many (no allocation per node call).
type Few<T> = SmallVec<[T; 4]>;
/// The caller's input and output arrays, in plan order.
pub type CallerBuffers<'a, 'b> = (&'a [&'b [f32]], &'a mut [&'b mut [f32]]);

/// One call of a layer: a layer of one input (with the scratch it keeps for its backward) or a
/// weightless op of several.
pub(crate) enum NodeOp {
    Layer(Box<dyn Layer>),
    Combine(Box<dyn Combine>),
}

impl NodeOp {
    /// The node of `spec` called on inputs of `shapes`; `call` numbers it among its layer's
    /// calls.
    pub fn build(spec: &LayerSpec, shapes: &[Vec<usize>], call: usize) -> Result<Self> {
        match spec {
            LayerSpec::Merge(merge) => Ok(NodeOp::Combine(Box::new(Merge::new(merge, shapes)?))),
            LayerSpec::Dot(dot) => Ok(NodeOp::Combine(Box::new(Dot::new(dot, shapes)?))),
            LayerSpec::Concatenate(concatenate) => Ok(NodeOp::Combine(Box::new(Concatenate::new(
                concatenate,
                shapes,
            )?))),
            single => {
                let [shape] = shapes else {
                    return Err(CoreError::invalid("inputs", "1 input", shapes.len()));
                };
                let mut layer = single.build(shape)?;
                if call > 0 {
                    layer.distinguish_call(call);
                }
                Ok(NodeOp::Layer(layer))
            }
        }
    }

    pub fn output_shape(&self) -> &[usize] {
        match self {
            NodeOp::Layer(layer) => layer.output_shape(),
            NodeOp::Combine(op) => op.output_shape(),
        }
    }

    pub fn weight_shapes(&self) -> Vec<Vec<usize>> {
        match self {
            NodeOp::Layer(layer) => layer.weight_shapes(),
            NodeOp::Combine(_) => Vec::new(),
        }
    }

    pub fn layer(&self) -> Option<&dyn Layer> {
        match self {
            NodeOp::Layer(layer) => Some(layer.as_ref()),
            NodeOp::Combine(_) => None,
        }
    }

    pub fn activity_regularizer(&self) -> Option<Regularizer> {
        self.layer().and_then(|l| l.activity_regularizer())
    }

    pub fn needs_whole_batch(&self) -> bool {
        self.layer().is_some_and(|l| l.needs_whole_batch())
    }

    pub fn begin_step(&mut self, step: u64) {
        if let NodeOp::Layer(layer) = self {
            layer.begin_step(step);
        }
    }
}

/// Zeroes the gradients of the layers that `routes` never reached.
fn zero_unreached(plan: &Plan, routes: &Routes, grads: &mut [f32]) {
    for (range, &reached) in plan.ranges.iter().zip(&routes.reached) {
        if !reached {
            grads[range.clone()].fill(0.0);
        }
    }
}

/// A lane's ops for one training pass of `batch` samples (see [`super::pass`]) into `grads`:
/// `loss(o, output, gradient)` writes ∂loss/∂output of output `o` and says whether it did.
pub(crate) struct LanePass<'a, L> {
    pub lane: &'a mut Lane,
    pub plan: &'a Plan,
    pub flow: (&'a Flow, &'a [bool]),
    pub weights: &'a [f32],
    pub grads: &'a mut [f32],
    pub batch: usize,
    pub loss: L,
}

impl<L> LanePass<'_, L>
where
    L: FnMut(usize, &[f32], &mut [f32]) -> Result<bool>,
{
    /// Runs the pass, the model inputs already in place (see [`Lane::input_mut`]).
    pub fn run(mut self, cancel: &Cancel) -> Result<()> {
        self.lane.fill_constants(self.plan, self.batch)?;
        let shape = (self.plan.nodes.len(), self.plan.outputs.len());
        super::pass::training_pass(&mut self, shape, cancel)
    }
}

impl<L> PassOps for LanePass<'_, L>
where
    L: FnMut(usize, &[f32], &mut [f32]) -> Result<bool>,
{
    fn forward(&mut self, node: usize) -> Result<()> {
        let at = (node, self.batch, Mode::Training);
        self.lane
            .forward_node(self.plan, self.weights, at, &mut None)
    }

    fn loss(&mut self, output: usize) -> Result<bool> {
        let value = self.plan.outputs[output];
        let len = self.batch * self.plan.sizes[value];
        let (y, grad) = self.lane.value_and_grad_mut(self.plan, value, len)?;
        (self.loss)(output, y, grad)
    }

    fn routes(&mut self, seeded: &[bool]) -> Arc<Routes> {
        self.lane.routes_for(self.plan, self.flow, seeded)
    }

    fn backward(&mut self, route: &NodeRoute) -> Result<()> {
        let (plan, weights, batch) = (self.plan, self.weights, self.batch);
        self.lane
            .backward_node(plan, route, weights, self.grads, batch)
    }

    fn finish(&mut self, routes: &Routes) -> Result<()> {
        zero_unreached(self.plan, routes, self.grads);
        Ok(())
    }
}

/// Where `node`'s backward writes each input's gradient, along its `route`.
fn targets(plan: &Plan, node: &NodePlan, route: &NodeRoute) -> Few<Target> {
    node.inputs
        .iter()
        .zip(&route.inputs)
        .map(|(&v, &arrival)| {
            let slot = || plan.slots[v].expect("a tensor with a gradient has a slot");
            match arrival {
                Arrival::None => Target::None,
                Arrival::First => Target::Slot(slot()),
                Arrival::Later => Target::Add(slot()),
            }
        })
        .collect()
}

/// Where a node's backward writes the gradient of one of its inputs.
#[derive(Clone, Copy)]
enum Target {
    /// No gradient: a model input, or a tensor nothing trainable lies behind.
    None,
    /// The first gradient to arrive: straight into the tensor's slot.
    Slot(usize),
    /// A later one: into scratch, then added to the slot.
    Add(usize),
}

pub(crate) struct Lane {
    pub ops: Vec<NodeOp>,
    /// Each tensor's values for the batch (a model input's as filled by the caller).
    values: Vec<Vec<f32>>,
    /// How many samples the constants' buffers hold (each sample the constant's values).
    constant_samples: usize,
    /// The gradient slots (see [`Plan`]).
    deltas: Vec<Vec<f32>>,
    /// Per input position of a node: where a gradient to be added is computed.
    scratch: Vec<Vec<f32>>,
    /// Weight gradients of a layer's later calls and of frozen layers.
    weight_scratch: Vec<f32>,
    /// The backward's routes, and the seeded outputs and trainable layers they were worked
    /// out for (kept until those change).
    routes: Option<(Few<bool>, Vec<bool>, Arc<Routes>)>,
}

impl Lane {
    pub fn new(plan: &Plan, ops: Vec<NodeOp>) -> Self {
        Lane {
            ops,
            values: vec![Vec::new(); plan.shapes.len()],
            constant_samples: 0,
            deltas: vec![Vec::new(); plan.n_slots],
            scratch: vec![Vec::new(); plan.max_inputs()],
            weight_scratch: Vec::new(),
            routes: None,
        }
    }

    /// The buffer of model input `input` for `len` values, to be filled before a forward.
    pub fn input_mut(&mut self, input: usize, len: usize) -> Result<&mut [f32]> {
        ensure_len(&mut self.values[input], len)?;
        Ok(&mut self.values[input][..len])
    }

    /// Tensor `value` of the last forward, `len` values.
    pub fn value(&self, value: usize, len: usize) -> &[f32] {
        &self.values[value][..len]
    }

    /// The output tensor `value` of the last forward and its gradient slot, to be filled
    /// before [`Lane::backward`].
    pub fn value_and_grad_mut(
        &mut self,
        plan: &Plan,
        value: usize,
        len: usize,
    ) -> Result<(&[f32], &mut [f32])> {
        let slot = plan.slots[value].expect("a node's output has a gradient slot");
        ensure_len(&mut self.deltas[slot], len)?;
        Ok((&self.values[value][..len], &mut self.deltas[slot][..len]))
    }

    /// Runs every node on the model inputs already in place (see [`Lane::input_mut`]).
    pub fn forward(
        &mut self,
        plan: &Plan,
        weights: &[f32],
        batch: usize,
        mode: Mode,
        cancel: &Cancel,
    ) -> Result<()> {
        self.run_forward(plan, weights, batch, mode, None, cancel)
    }

    /// Inference from `inputs` (one buffer per model input) into `outputs` (one per model
    /// output): the first nodes read the caller's data, and each output node that nothing else
    /// reads writes the caller's buffer.
    pub fn infer(
        &mut self,
        plan: &Plan,
        weights: &[f32],
        (inputs, outputs): CallerBuffers,
        batch: usize,
        cancel: &Cancel,
    ) -> Result<()> {
        self.run_forward(
            plan,
            weights,
            batch,
            Mode::Inference,
            Some((inputs, &mut *outputs)),
            cancel,
        )?;
        for (k, &value) in plan.outputs.iter().enumerate() {
            if plan.writes_caller(value) != Some(k) {
                let len = outputs[k].len();
                let source = match value < plan.n_inputs {
                    true => &inputs[value][..len],
                    false => &self.values[value][..len],
                };
                outputs[k].copy_from_slice(source);
            }
        }
        Ok(())
    }

    fn run_forward(
        &mut self,
        plan: &Plan,
        weights: &[f32],
        batch: usize,
        mode: Mode,
        mut external: Option<CallerBuffers>,
        cancel: &Cancel,
    ) -> Result<()> {
        self.fill_constants(plan, batch)?;
        for n in 0..plan.nodes.len() {
            cancel.check()?;
            self.forward_node(plan, weights, (n, batch, mode), &mut external)?;
        }
        Ok(())
    }

    /// Node `n`'s forward over `batch` samples, reading model inputs from and writing the
    /// outputs nothing else reads into the caller's buffers where there are some.
    fn forward_node(
        &mut self,
        plan: &Plan,
        weights: &[f32],
        (n, batch, mode): (usize, usize, Mode),
        external: &mut Option<CallerBuffers>,
    ) -> Result<()> {
        let node = &plan.nodes[n];
        let out_len = batch * plan.sizes[node.output];
        let (before, after) = self.values.split_at_mut(node.output);
        let input = |v: usize| -> &[f32] {
            match &external {
                Some((xs, _)) if v < plan.n_inputs => xs[v],
                _ => &before[v][..batch * plan.sizes[v]],
            }
        };
        let inputs: Few<&[f32]> = node.inputs.iter().map(|&v| input(v)).collect();
        let caller = match (external, plan.writes_caller(node.output)) {
            (Some((_, ys)), Some(k)) => Some(&mut ys[k][..out_len]),
            _ => None,
        };
        let y = match caller {
            Some(y) => y,
            None => {
                ensure_len(&mut after[0], out_len)?;
                &mut after[0][..out_len]
            }
        };
        match &mut self.ops[n] {
            NodeOp::Layer(layer) => {
                let weights = &weights[plan.ranges[node.layer].clone()];
                let training = match mode {
                    Mode::Training => true,
                    Mode::Inference => false,
                    Mode::AsRecorded => node.training,
                };
                layer.forward(weights, inputs[0], y, batch, training)
            }
            NodeOp::Combine(op) => op.forward(&inputs, y, batch),
        }
    }

    /// Repeats each constant over `batch` samples, once for the largest batch seen (a smaller
    /// batch reads the front of the buffer).
    fn fill_constants(&mut self, plan: &Plan, batch: usize) -> Result<()> {
        if batch <= self.constant_samples {
            return Ok(());
        }
        for (k, constant) in plan.constants.iter().enumerate() {
            let buffer = &mut self.values[plan.n_inputs + k];
            ensure_len(buffer, batch * constant.len())?;
            for sample in buffer.chunks_exact_mut(constant.len().max(1)).take(batch) {
                sample.copy_from_slice(constant);
            }
        }
        self.constant_samples = batch;
        Ok(())
    }

    /// Fills `grads` from the gradients of the outputs that `seeded` marks (see
    /// [`Lane::value_and_grad_mut`]): every node that `flow` runs backward, in reverse order,
    /// adding where a tensor or a layer receives several gradients. Layers that do not train
    /// (or that no gradient reached) get zeros.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &mut self,
        plan: &Plan,
        (flow, trainable): (&Flow, &[bool]),
        seeded: &[bool],
        weights: &[f32],
        grads: &mut [f32],
        batch: usize,
        cancel: &Cancel,
    ) -> Result<()> {
        let routes = self.routes_for(plan, (flow, trainable), seeded);
        self.backward_by(plan, &routes, weights, grads, batch, cancel)
    }

    /// The backward's routes for `flow` over the `trainable` layers and the outputs `seeded`
    /// marks: worked out again only when those change.
    fn routes_for(
        &mut self,
        plan: &Plan,
        (flow, trainable): (&Flow, &[bool]),
        seeded: &[bool],
    ) -> Arc<Routes> {
        match &self.routes {
            Some((s, t, routes)) if s[..] == *seeded && t[..] == *trainable => routes.clone(),
            _ => {
                let routes = Arc::new(plan.routes(flow, trainable, seeded));
                self.routes = Some((seeded.into(), trainable.to_vec(), routes.clone()));
                routes
            }
        }
    }

    /// The backward along `routes`; layers that no gradient reached get zeros.
    fn backward_by(
        &mut self,
        plan: &Plan,
        routes: &Routes,
        weights: &[f32],
        grads: &mut [f32],
        batch: usize,
        cancel: &Cancel,
    ) -> Result<()> {
        for route in &routes.nodes {
            cancel.check()?;
            self.backward_node(plan, route, weights, grads, batch)?;
        }
        zero_unreached(plan, routes, grads);
        Ok(())
    }

    fn backward_node(
        &mut self,
        plan: &Plan,
        route: &NodeRoute,
        weights: &[f32],
        grads: &mut [f32],
        batch: usize,
    ) -> Result<()> {
        let n = route.node;
        let node = &plan.nodes[n];
        let out_len = batch * plan.sizes[node.output];
        let out_slot = plan.slots[node.output].expect("a node's output has a slot");
        let mut dy = std::mem::take(&mut self.deltas[out_slot]);
        if let Some(regularizer) = self.ops[n].activity_regularizer() {
            let output = &self.values[node.output][..out_len];
            regularizer.apply(output, 1.0 / batch as f32, Some(&mut dy[..out_len]));
        }
        let targets = targets(plan, node, route);
        if let NodeOp::Combine(op) = &mut self.ops[n] {
            let y = &self.values[node.output][..out_len];
            let distinct =
                !(1..node.inputs.len()).any(|p| node.inputs[..p].contains(&node.inputs[p]));
            if distinct && op.passes_gradient_through(y, &mut dy[..out_len], batch) {
                self.hand_on(&targets, dy, out_slot, out_len)?;
                return Ok(());
            }
        }
        let mut buffers: Few<Vec<f32>> = Few::new();
        for (p, (&target, &v)) in targets.iter().zip(&node.inputs).enumerate() {
            let mut buffer = match target {
                Target::None => Vec::new(),
                Target::Slot(slot) => std::mem::take(&mut self.deltas[slot]),
                Target::Add(_) => std::mem::take(&mut self.scratch[p]),
            };
            if !matches!(target, Target::None) {
                ensure_len(&mut buffer, batch * plan.sizes[v])?;
            }
            buffers.push(buffer);
        }
        let range = plan.ranges[node.layer].clone();
        let layer_trains = route.weights != Arrival::None;
        let direct_grads = route.weights == Arrival::First;
        if !direct_grads {
            ensure_len(&mut self.weight_scratch, range.len())?;
        }
        let result = {
            let values = &self.values;
            let inputs: Few<&[f32]> = node
                .inputs
                .iter()
                .map(|&v| &values[v][..batch * plan.sizes[v]])
                .collect();
            let mut dxs: Few<Option<&mut [f32]>> = buffers
                .iter_mut()
                .zip(&targets)
                .zip(&node.inputs)
                .map(|((buffer, target), &v)| match target {
                    Target::None => None,
                    _ => Some(&mut buffer[..batch * plan.sizes[v]]),
                })
                .collect();
            let y = &values[node.output][..out_len];
            match &mut self.ops[n] {
                NodeOp::Layer(layer) => {
                    let grads = match direct_grads {
                        true => &mut grads[range.clone()],
                        false => &mut self.weight_scratch[..range.len()],
                    };
                    let dx = dxs[0].take();
                    let x = inputs[0];
                    layer.backward(
                        &weights[range.clone()],
                        grads,
                        x,
                        y,
                        &mut dy[..out_len],
                        dx,
                        batch,
                    )
                }
                NodeOp::Combine(op) => op.backward(&inputs, y, &mut dy[..out_len], &mut dxs, batch),
            }
        };
        self.deltas[out_slot] = dy;
        // Slots first, so that a gradient added to a tensor this node also wrote lands there.
        for (p, &target) in targets.iter().enumerate() {
            if let Target::Slot(slot) = target {
                self.deltas[slot] = std::mem::take(&mut buffers[p]);
            }
        }
        for (p, &target) in targets.iter().enumerate() {
            if let Target::Add(slot) = target {
                let len = batch * plan.sizes[node.inputs[p]];
                let (sum, part) = (&mut self.deltas[slot][..len], &buffers[p][..len]);
                sum.iter_mut().zip(part).for_each(|(s, g)| *s += g);
                self.scratch[p] = std::mem::take(&mut buffers[p]);
            }
        }
        if layer_trains && !direct_grads {
            let sum = &mut grads[range.clone()];
            sum.iter_mut()
                .zip(&self.weight_scratch[..range.len()])
                .for_each(|(s, g)| *s += g);
        }
        result
    }

    /// Gives each input the gradient `dy` (an op whose inputs' gradients are its output's, on
    /// distinct inputs) at its `targets`: added where a gradient arrived before, copied into
    /// the other slots, and the buffer itself moved into the last of them.
    fn hand_on(
        &mut self,
        targets: &[Target],
        mut dy: Vec<f32>,
        out_slot: usize,
        len: usize,
    ) -> Result<()> {
        for &target in targets {
            if let Target::Add(slot) = target {
                let sum = &mut self.deltas[slot][..len];
                sum.iter_mut().zip(&dy[..len]).for_each(|(s, g)| *s += g);
            }
        }
        let slots: Few<usize> = targets
            .iter()
            .filter_map(|&target| match target {
                Target::Slot(slot) => Some(slot),
                _ => None,
            })
            .collect();
        if let Some((&last, copies)) = slots.split_last() {
            for &slot in copies {
                ensure_len(&mut self.deltas[slot], len)?;
                self.deltas[slot][..len].copy_from_slice(&dy[..len]);
            }
            std::mem::swap(&mut self.deltas[last], &mut dy);
        }
        self.deltas[out_slot] = dy;
        Ok(())
    }

    /// The activity penalties of the last forward's nodes (each call's own), divided by the
    /// batch size as Keras divides them.
    pub fn activity_penalty(&self, plan: &Plan, batch: usize) -> f64 {
        plan.nodes
            .iter()
            .zip(&self.ops)
            .filter_map(|(node, op)| {
                let regularizer = op.activity_regularizer()?;
                let output = &self.values[node.output][..batch * plan.sizes[node.output]];
                Some(regularizer.apply(output, 1.0 / batch as f32, None))
            })
            .sum()
    }
}
