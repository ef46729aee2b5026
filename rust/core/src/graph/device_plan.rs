//! A planned network as another device builds it: each node's layer spec (fused, the output
//! layer's without the activation its head applies), the tensors it reads and writes, their
//! per-sample shapes, and its layer's range of the weight buffer. A device reads the layout
//! from here rather than working it out again, so both engines agree on it.

use std::ops::Range;

use super::lane::NodeOp;
use super::Plan;
use crate::kernels::activation::Activation;
use crate::kernels::conv::Geometry;
use crate::layers::LayerSpec;

pub struct DeviceNode {
    pub spec: LayerSpec,
    /// The tensors it reads (model inputs first, then constants, then node outputs).
    pub inputs: Vec<usize>,
    pub output: usize,
    pub input_shapes: Vec<Vec<usize>>,
    pub output_shape: Vec<usize>,
    /// Its layer's weights in the weight buffer, and their shapes (kernel, then bias).
    pub weights: Range<usize>,
    pub weight_shapes: Vec<Vec<usize>>,
    /// A convolution's or pooling's windows over its input.
    pub geometry: Option<Geometry>,
    /// Whether its layer's weights train: a frozen layer's weights stay, and their penalties
    /// leave the loss.
    pub trains: bool,
}

pub struct DevicePlan {
    pub input_shapes: Vec<Vec<usize>>,
    pub nodes: Vec<DeviceNode>,
    /// The tensors the model outputs, and each one's head (see [`crate::head`]).
    pub outputs: Vec<usize>,
    pub heads: Vec<Option<Activation>>,
    pub n_weights: usize,
    /// The ranges of the weight buffer that train, adjacent layers' merged.
    pub trainable_ranges: Vec<Range<usize>>,
}

impl DevicePlan {
    pub(crate) fn of(
        plan: &Plan,
        ops: &[NodeOp],
        (trainable, trainable_ranges): (&[bool], &[Range<usize>]),
    ) -> Self {
        let nodes = plan
            .nodes
            .iter()
            .zip(ops)
            .map(|(node, op)| DeviceNode {
                spec: plan.specs[node.layer].clone(),
                inputs: node.inputs.clone(),
                output: node.output,
                input_shapes: node
                    .inputs
                    .iter()
                    .map(|&v| plan.shapes[v].clone())
                    .collect(),
                output_shape: plan.shapes[node.output].clone(),
                weights: plan.ranges[node.layer].clone(),
                weight_shapes: op.weight_shapes(),
                geometry: op.layer().and_then(|layer| layer.geometry()),
                trains: trainable[node.layer],
            })
            .collect();
        DevicePlan {
            input_shapes: plan.shapes[..plan.n_inputs].to_vec(),
            nodes,
            outputs: plan.outputs.clone(),
            heads: plan.heads.clone(),
            n_weights: plan.n_weights,
            trainable_ranges: trainable_ranges.to_vec(),
        }
    }

    /// The nodes in order where each reads the one before it (the first, the model's one
    /// input) and the last is the one output: a `Sequential` model's chain of layers.
    pub fn as_chain(&self) -> Option<&[DeviceNode]> {
        let [_] = self.input_shapes[..] else {
            return None;
        };
        let mut previous = 0;
        for node in &self.nodes {
            if node.inputs != [previous] {
                return None;
            }
            previous = node.output;
        }
        (self.outputs == [previous] && !self.nodes.is_empty()).then_some(&self.nodes)
    }
}
