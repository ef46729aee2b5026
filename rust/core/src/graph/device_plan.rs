//! A planned network as another device builds it: each node's layer spec (fused, the output
//! layer's without the activation its head applies), the tensors it reads and writes, their
//! per-sample shapes, and its layer's range of the weight buffer. A device reads the layout
//! from here rather than working it out again, so both engines agree on it.

use std::ops::Range;

use super::lane::NodeOp;
use super::routes::{Graph as RouteGraph, RouteNode, Routes};
use super::Plan;
use crate::kernels::activation::Activation;
use crate::kernels::conv::Geometry;
use crate::layers::LayerSpec;

#[derive(Clone)]
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
    /// Its layer, and which of that layer's calls it is (a later call of a shared layer draws
    /// dropout masks of its own).
    pub layer: usize,
    pub call: usize,
    /// Whether its backward runs: something trainable lies at or behind it.
    pub runs_backward: bool,
}

pub struct DevicePlan {
    pub input_shapes: Vec<Vec<usize>>,
    /// Each constant's values for one sample (tensor `input_shapes.len() + k`).
    pub constants: Vec<Vec<f32>>,
    /// Every tensor's per-sample shape: the inputs, the constants, then each node's output.
    pub shapes: Vec<Vec<usize>>,
    /// How many node inputs read each tensor.
    pub consumers: Vec<usize>,
    /// Which tensors carry a gradient (see the CPU's flow: none below the trainable layers).
    pub needs_grad: Vec<bool>,
    pub nodes: Vec<DeviceNode>,
    /// The tensors the model outputs, and each one's head (see [`crate::head`]).
    pub outputs: Vec<usize>,
    pub heads: Vec<Option<Activation>>,
    pub n_weights: usize,
    /// Per layer: whether its weights train.
    pub trainable: Vec<bool>,
    /// The ranges of the weight buffer that train, adjacent layers' merged.
    pub trainable_ranges: Vec<Range<usize>>,
}

impl DevicePlan {
    pub(crate) fn of(
        plan: &Plan,
        ops: &[NodeOp],
        (trainable, trainable_ranges): (&[bool], &[Range<usize>]),
    ) -> Self {
        let flow = plan.flow(trainable);
        let mut calls = vec![0usize; plan.specs.len()];
        let nodes = plan
            .nodes
            .iter()
            .zip(ops)
            .zip(&flow.runs_backward)
            .map(|((node, op), &runs_backward)| DeviceNode {
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
                layer: node.layer,
                call: {
                    calls[node.layer] += 1;
                    calls[node.layer] - 1
                },
                runs_backward,
            })
            .collect();
        DevicePlan {
            input_shapes: plan.shapes[..plan.n_inputs].to_vec(),
            constants: plan.constants.clone(),
            shapes: plan.shapes.clone(),
            consumers: plan.consumers.clone(),
            needs_grad: flow.needs_grad,
            nodes,
            outputs: plan.outputs.clone(),
            heads: plan.heads.clone(),
            n_weights: plan.n_weights,
            trainable: trainable.to_vec(),
            trainable_ranges: trainable_ranges.to_vec(),
        }
    }

    /// The backward's routes (see [`Routes`]) when the outputs that `seeded` marks receive a
    /// loss's gradient.
    pub fn routes(&self, seeded: &[bool]) -> Routes {
        let nodes = self
            .nodes
            .iter()
            .map(|node| RouteNode {
                inputs: &node.inputs,
                output: node.output,
                layer: node.layer,
                runs_backward: node.runs_backward,
            })
            .collect();
        let graph = RouteGraph {
            nodes,
            needs_grad: &self.needs_grad,
            trainable: &self.trainable,
            outputs: &self.outputs,
        };
        Routes::new(&graph, seeded)
    }
}
