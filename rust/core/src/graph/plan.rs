//! The plan of a graph: each tensor's shape, each layer's weight range, each node's inputs and
//! output, and where the backward keeps each tensor's gradient.
//!
//! Tensors are numbered inputs first, then constants, then one per node in node order. A
//! gradient lives in a slot from the backward of the tensor's last consumer to that of its
//! producer; slots are reused once a producer has run, so a chain needs two (as a stack of
//! layers passing ∂loss/∂activation between two buffers does).

use std::ops::Range;

use super::lane::NodeOp;
use super::routes::{Graph as RouteGraph, RouteNode, Routes};
use super::spec::{GraphSpec, TensorRef};
use crate::error::{CoreError, Result};
use crate::kernels::activation::Activation;
use crate::layers::LayerSpec;
use crate::memory::checked_volume;

pub(crate) struct NodePlan {
    pub layer: usize,
    /// The tensors it reads, in call order.
    pub inputs: Vec<usize>,
    /// The tensor it writes.
    pub output: usize,
    /// Recorded with `training=True` (see [`super::Mode::AsRecorded`]).
    pub training: bool,
}

pub(crate) struct Plan {
    pub n_inputs: usize,
    /// Each constant's values for one sample (tensor `n_inputs + k`).
    pub constants: Vec<Vec<f32>>,
    /// Each layer's spec; the output layer's without the activation the head applies.
    pub specs: Vec<LayerSpec>,
    pub nodes: Vec<NodePlan>,
    /// Each layer's range of the weight buffer.
    pub ranges: Vec<Range<usize>>,
    /// Each layer's first node: the call whose shapes describe it.
    pub first_call: Vec<Option<usize>>,
    pub n_weights: usize,
    /// Per-sample shape and values per sample of each tensor.
    pub shapes: Vec<Vec<usize>>,
    pub sizes: Vec<usize>,
    /// How many node inputs read each tensor.
    pub consumers: Vec<usize>,
    pub outputs: Vec<usize>,
    /// Each tensor's gradient slot (`None`: a model input or a constant, which get no
    /// gradient).
    pub slots: Vec<Option<usize>>,
    pub n_slots: usize,
    /// Per output: the sigmoid or softmax its head applies after the output layer (see
    /// [`crate::head`]).
    pub heads: Vec<Option<Activation>>,
    /// Samples per part of a split batch (see [`part_samples`]).
    pub part_samples: usize,
}

/// The most samples per part of a split batch.
pub const MAX_PART_SAMPLES: usize = 64;

/// A part's largest tensor is kept within this many bytes where parts of fewer samples allow,
/// so that each node reads its input from the core's own cache: W4 (64 KB per sample per
/// tensor) trained 3-4 % faster in parts of 16 than of 64.
const PART_TENSOR_BYTES: usize = 1 << 20;

/// The fewest samples per part: smaller parts would add more gradient buffers than they save.
const MIN_PART_SAMPLES: usize = 8;

/// Samples per part for samples of `values` values in all, `largest` in the largest tensor,
/// and `weights` weights: [`MAX_PART_SAMPLES`], halved while a part's largest tensor exceeds
/// [`PART_TENSOR_BYTES`], as long as a part's values outnumber its gradient buffer's (each part
/// has one; so the parts' buffers never outgrow the batch's tensors). It depends on the shapes
/// alone, never on the threads, so neither do the results.
fn part_samples(largest: usize, values: usize, weights: usize) -> usize {
    let bytes = largest.saturating_mul(std::mem::size_of::<f32>());
    let mut samples = MAX_PART_SAMPLES;
    while samples > MIN_PART_SAMPLES
        && samples.saturating_mul(bytes) > PART_TENSOR_BYTES
        && (samples / 2).saturating_mul(values) >= weights
    {
        samples /= 2;
    }
    samples
}

/// Which tensors carry a gradient and which nodes run backward, for one set of trainable
/// layers: nothing runs backward below the first trainable layer (a frozen base runs forward
/// only).
pub(crate) struct Flow {
    pub needs_grad: Vec<bool>,
    pub runs_backward: Vec<bool>,
}

impl Plan {
    /// Checks `spec`, builds one instance of every node (returned beside the plan: the first
    /// lane's) and works out the shapes, weight ranges and gradient slots.
    pub fn new(spec: &GraphSpec) -> Result<(Self, Vec<NodeOp>)> {
        check_references(spec)?;
        check_constants(spec)?;
        let n_inputs = spec.inputs.len();
        let n_sources = n_inputs + spec.constants.len();
        let value = |r: &TensorRef| match *r {
            TensorRef::Input(i) => i,
            TensorRef::Constant(k) => n_inputs + k,
            TensorRef::Node(n) => n_sources + n,
        };
        let nodes: Vec<NodePlan> = spec
            .nodes
            .iter()
            .enumerate()
            .map(|(n, node)| NodePlan {
                layer: node.layer,
                inputs: node.inputs.iter().map(value).collect(),
                output: n_sources + n,
                training: node.training,
            })
            .collect();
        let outputs: Vec<usize> = spec.outputs.iter().map(value).collect();
        let mut consumers = vec![0usize; n_sources + nodes.len()];
        nodes
            .iter()
            .flat_map(|n| &n.inputs)
            .for_each(|&v| consumers[v] += 1);
        let mut calls = vec![0usize; spec.layers.len()];
        nodes.iter().for_each(|n| calls[n.layer] += 1);
        let heads: Vec<Option<Activation>> = outputs
            .iter()
            .map(|&v| head(spec, &nodes, (v, &outputs), &consumers, &calls))
            .collect();
        let mut specs = spec.layers.clone();
        for (&v, head) in outputs.iter().zip(&heads) {
            if head.is_some() {
                let layer = nodes[v - n_sources].layer;
                specs[layer] = specs[layer].without_activation();
            }
        }
        for shape in &spec.inputs {
            if shape.contains(&0) {
                return Err(CoreError::invalid(
                    "input_shape",
                    "positive dimensions",
                    format!("{shape:?}"),
                ));
            }
        }
        let mut shapes = spec.inputs.clone();
        shapes.extend(spec.constants.iter().map(|c| c.shape.clone()));
        let mut plan = Plan {
            n_inputs,
            constants: spec.constants.iter().map(|c| c.values.clone()).collect(),
            specs,
            first_call: vec![None; spec.layers.len()],
            ranges: vec![0..0; spec.layers.len()],
            n_weights: 0,
            shapes,
            sizes: Vec::new(),
            consumers,
            slots: Vec::new(),
            n_slots: 0,
            outputs,
            heads,
            nodes,
            part_samples: MAX_PART_SAMPLES,
        };
        let ops = plan.build_first_ops()?;
        plan.sizes = plan
            .shapes
            .iter()
            .map(|s| checked_volume(s))
            .collect::<Result<_>>()?;
        plan.part_samples = part_samples(
            plan.sizes.iter().copied().max().unwrap_or(0),
            plan.sizes
                .iter()
                .fold(0, |sum: usize, &s| sum.saturating_add(s)),
            plan.n_weights,
        );
        plan.assign_slots();
        Ok((plan, ops))
    }

    /// Builds every node for its inputs' shapes, in node order, recording the output shapes
    /// and each layer's weights (from its first call; later calls must agree), laid out in
    /// layer order.
    fn build_first_ops(&mut self) -> Result<Vec<NodeOp>> {
        let mut ops = Vec::with_capacity(self.nodes.len());
        let mut weight_shapes: Vec<Vec<Vec<usize>>> = vec![Vec::new(); self.specs.len()];
        let mut calls = vec![0usize; self.specs.len()];
        for n in 0..self.nodes.len() {
            let layer = self.nodes[n].layer;
            let op = self.build_node(n, calls[layer])?;
            calls[layer] += 1;
            let of_call = op.weight_shapes();
            if self.first_call[layer].is_none() {
                self.first_call[layer] = Some(n);
                weight_shapes[layer] = of_call;
            } else if of_call != weight_shapes[layer] {
                let got = format!("weights of shapes {of_call:?}");
                let expected = format!("{:?}, as its first call", weight_shapes[layer]);
                let error = CoreError::shape("inputs", expected, got);
                return Err(in_layer(layer, &self.input_shapes(n), error));
            }
            self.shapes.push(op.output_shape().to_vec());
            ops.push(op);
        }
        for (layer, shapes) in weight_shapes.iter().enumerate() {
            let start = self.n_weights;
            for shape in shapes {
                self.n_weights = self
                    .n_weights
                    .checked_add(checked_volume(shape)?)
                    .ok_or_else(|| {
                        CoreError::invalid("layers", "weights that fit in memory", start)
                    })?;
            }
            self.ranges[layer] = start..self.n_weights;
        }
        Ok(ops)
    }

    /// One instance of every node, for another lane: each call numbered within its layer, so
    /// that a layer's second call draws randomness of its own.
    pub fn build_ops(&self) -> Result<Vec<NodeOp>> {
        let mut calls = vec![0usize; self.specs.len()];
        (0..self.nodes.len())
            .map(|n| {
                let layer = self.nodes[n].layer;
                calls[layer] += 1;
                self.build_node(n, calls[layer] - 1)
            })
            .collect()
    }

    /// Node `n`, the `call`-th of its layer, for its inputs' shapes (known once the nodes
    /// before it are built).
    fn build_node(&self, n: usize, call: usize) -> Result<NodeOp> {
        let layer = self.nodes[n].layer;
        let shapes = self.input_shapes(n);
        NodeOp::build(&self.specs[layer], &shapes, call).map_err(|e| in_layer(layer, &shapes, e))
    }

    fn input_shapes(&self, n: usize) -> Vec<Vec<usize>> {
        self.nodes[n]
            .inputs
            .iter()
            .map(|&v| self.shapes[v].clone())
            .collect()
    }

    /// Gradient slots: walking the nodes backward, an input's slot is taken when its first
    /// gradient arrives and a node's output slot is given back once the node has run.
    fn assign_slots(&mut self) {
        let mut slots = vec![None; self.shapes.len()];
        let mut free: Vec<usize> = Vec::new();
        let mut n_slots = 0;
        let mut take = |free: &mut Vec<usize>| {
            free.pop().unwrap_or_else(|| {
                n_slots += 1;
                n_slots - 1
            })
        };
        for &v in &self.outputs {
            if slots[v].is_none() {
                slots[v] = Some(take(&mut free));
            }
        }
        for node in self.nodes.iter().rev() {
            for &v in &node.inputs {
                if v >= self.n_sources() && slots[v].is_none() {
                    slots[v] = Some(take(&mut free));
                }
            }
            if let Some(slot) = slots[node.output] {
                free.push(slot);
            }
        }
        self.slots = slots;
        self.n_slots = n_slots;
    }

    /// Which tensors need a gradient and which nodes run backward when the layers whose
    /// `trainable` is true train.
    pub fn flow(&self, trainable: &[bool]) -> Flow {
        let mut needs_grad = vec![false; self.shapes.len()];
        let mut runs_backward = vec![false; self.nodes.len()];
        for (n, node) in self.nodes.iter().enumerate() {
            let trains = trainable[node.layer] && !self.ranges[node.layer].is_empty();
            let upstream = node.inputs.iter().any(|&v| needs_grad[v]);
            needs_grad[node.output] = trains || upstream;
            runs_backward[n] = needs_grad[node.output];
        }
        Flow {
            needs_grad,
            runs_backward,
        }
    }

    /// The backward's routes (see [`Routes`]) for `flow` over the `trainable` layers, the
    /// outputs that `seeded` marks receiving a loss's gradient.
    pub fn routes(&self, flow: &Flow, trainable: &[bool], seeded: &[bool]) -> Routes {
        let nodes = self
            .nodes
            .iter()
            .zip(&flow.runs_backward)
            .map(|(node, &runs_backward)| RouteNode {
                inputs: &node.inputs,
                output: node.output,
                layer: node.layer,
                runs_backward,
            })
            .collect();
        let graph = RouteGraph {
            nodes,
            needs_grad: &flow.needs_grad,
            trainable,
            outputs: &self.outputs,
        };
        Routes::new(&graph, seeded)
    }

    /// The output index whose buffer tensor `value` is written into during inference, where
    /// it is a node's output that nothing else reads and that is output once.
    pub fn writes_caller(&self, value: usize) -> Option<usize> {
        if value < self.n_sources() || self.consumers[value] != 0 {
            return None;
        }
        let mut found = self.outputs.iter().enumerate().filter(|(_, &v)| v == value);
        match (found.next(), found.next()) {
            (Some((k, _)), None) => Some(k),
            _ => None,
        }
    }

    /// The model's inputs and constants: the tensors no node writes.
    pub fn n_sources(&self) -> usize {
        self.n_inputs + self.constants.len()
    }

    /// The largest number of inputs a node reads.
    pub fn max_inputs(&self) -> usize {
        self.nodes.iter().map(|n| n.inputs.len()).max().unwrap_or(0)
    }
}

fn in_layer(layer: usize, shapes: &[Vec<usize>], error: CoreError) -> CoreError {
    CoreError::InLayer {
        index: layer,
        input_shape: shapes.first().cloned().unwrap_or_default(),
        source: Box::new(error),
    }
}

/// Every reference points at an input, a layer or an earlier node.
fn check_references(spec: &GraphSpec) -> Result<()> {
    if spec.inputs.is_empty() {
        return Err(CoreError::invalid("inputs", "at least one input", 0));
    }
    if spec.outputs.is_empty() {
        return Err(CoreError::invalid("outputs", "at least one output", 0));
    }
    let valid = |r: &TensorRef, before: usize| match *r {
        TensorRef::Input(i) => i < spec.inputs.len(),
        TensorRef::Constant(k) => k < spec.constants.len(),
        TensorRef::Node(n) => n < before,
    };
    for (n, node) in spec.nodes.iter().enumerate() {
        if node.layer >= spec.layers.len() {
            return Err(CoreError::invalid(
                "nodes",
                format!("layer indices below {}", spec.layers.len()),
                node.layer,
            ));
        }
        if node.masks.iter().any(Option::is_some) {
            return Err(CoreError::invalid(
                "nodes",
                "calls without masks (pynn does not support masking yet)",
                format!("node {n} with masks {:?}", node.masks),
            ));
        }
        if node.inputs.is_empty() || !node.inputs.iter().all(|r| valid(r, n)) {
            return Err(CoreError::invalid(
                "nodes",
                "inputs that are model inputs, constants or earlier nodes",
                format!("node {n} reading {:?}", node.inputs),
            ));
        }
    }
    let output = |r: &TensorRef| !matches!(r, TensorRef::Constant(_)) && valid(r, spec.nodes.len());
    if let Some(bad) = spec.outputs.iter().find(|r| !output(r)) {
        return Err(CoreError::invalid(
            "outputs",
            "model inputs or nodes",
            format!("{bad:?}"),
        ));
    }
    Ok(())
}

/// Every constant holds one value per element of its shape.
fn check_constants(spec: &GraphSpec) -> Result<()> {
    for (k, constant) in spec.constants.iter().enumerate() {
        let volume = checked_volume(&constant.shape)?;
        if volume != constant.values.len() {
            return Err(CoreError::invalid(
                "constants",
                format!("{volume} values for shape {:?}", constant.shape),
                format!("{} values in constant {k}", constant.values.len()),
            ));
        }
    }
    Ok(())
}

/// The head of output `value`: the sigmoid or softmax its layer ends in, where that layer runs
/// once and nothing else reads its output (it then runs linear). An output layer that
/// penalizes its output keeps its activation.
fn head(
    spec: &GraphSpec,
    nodes: &[NodePlan],
    (value, outputs): (usize, &[usize]),
    consumers: &[usize],
    calls: &[usize],
) -> Option<Activation> {
    let node = nodes.get(value.checked_sub(spec.inputs.len() + spec.constants.len())?)?;
    let once = outputs.iter().filter(|&&v| v == value).count() == 1;
    if calls[node.layer] != 1 || consumers[value] != 0 || !once {
        return None;
    }
    crate::head::head_of(std::slice::from_ref(&spec.layers[node.layer]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_shrink_until_their_largest_tensor_fits_the_cache_share() {
        let w4 = 32 * 32 * 16;
        // Dense layers' tensors: whole parts of 64.
        assert_eq!(part_samples(0, 0, 0), MAX_PART_SAMPLES);
        assert_eq!(part_samples(4096, 8192, 10_000), MAX_PART_SAMPLES);
        // LeNet's first convolution, 28x28x6: 64 samples would be 1.2 MB.
        assert_eq!(part_samples(28 * 28 * 6, 12_000, 61_706), 32);
        // W4's 32x32x16 tensors, 64 KB a sample.
        assert_eq!(part_samples(w4, 11 * w4, 14_000), 16);
        // Never fewer than 8, however large a sample.
        assert_eq!(
            part_samples(32 * 32 * 64, 32 * 32 * 64, 0),
            MIN_PART_SAMPLES
        );
        assert_eq!(part_samples(usize::MAX, usize::MAX, 0), MIN_PART_SAMPLES);
        // Nor so few that the parts' gradient buffers would outweigh their tensors.
        assert_eq!(part_samples(w4, 2 * w4, 40 * w4), 32);
        assert_eq!(part_samples(w4, 2 * w4, 1 << 40), MAX_PART_SAMPLES);
    }
}
