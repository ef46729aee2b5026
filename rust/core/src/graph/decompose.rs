//! Decompositions: a fused op declares the ops it is made of, and a device that lacks its
//! fused kernel runs those instead, planned by [`DevicePlan::decomposed`]; an op a device can
//! run neither way is refused then, by name. Today's fused ops are the layers that end in an
//! activation (Dense, convolutions, and the merges that the fusion gave one): each is the same
//! layer without it, then an `Activation` layer. A decomposition is also the reference its fused
//! kernel is tested against.

use super::device_plan::{DeviceNode, DevicePlan};
use crate::error::{CoreError, Result};
use crate::kernels::activation::Activation;
use crate::layers::{ActivationSpec, LayerSpec};

/// The ops `spec` is made of, in the order they run (each reading the one before), or `None`
/// where it is one op (an activity regularizer reads the activation's output, so a layer with
/// one stays whole).
pub fn decomposition(spec: &LayerSpec) -> Option<[LayerSpec; 2]> {
    let activation = match spec {
        LayerSpec::Merge(merge) => merge.activation?,
        _ if spec.has_activity_regularizer() => return None,
        LayerSpec::Dense(_) | LayerSpec::Conv(_) => spec.activation()?,
        _ => return None,
    };
    if activation == Activation::Linear {
        return None;
    }
    let mut alone = spec.without_activation();
    if let LayerSpec::Merge(merge) = &mut alone {
        merge.activation = None;
    }
    Some([alone, LayerSpec::Activation(ActivationSpec { activation })])
}

/// The name a refusal gives `spec`.
pub fn op_name(spec: &LayerSpec) -> String {
    let name = match spec {
        LayerSpec::Dense(_) => "Dense",
        LayerSpec::Dropout(_) => "Dropout",
        LayerSpec::Conv(_) => "convolution",
        LayerSpec::Pool(_) => "pooling",
        LayerSpec::Reshape(_) => "Reshape",
        LayerSpec::Activation(_) => "Activation",
        LayerSpec::Merge(merge) => return format!("{:?}", merge.op),
        LayerSpec::Concatenate(_) => "Concatenate",
        LayerSpec::Dot(_) => "Dot",
    };
    name.to_string()
}

impl DevicePlan {
    /// This plan for a device that runs `has_kernel`'s ops: every other op replaced by its
    /// decomposition (its intermediate values become tensors of their own, its later parts
    /// weightless layers of their own), or [`CoreError::Unsupported`] naming an op the device
    /// can run neither way.
    pub fn decomposed(&self, has_kernel: &dyn Fn(&LayerSpec) -> bool) -> Result<DevicePlan> {
        let sources = self.input_shapes.len() + self.constants.len();
        let mut tensor = (0..sources).collect::<Vec<_>>();
        let mut shapes = self.shapes[..sources].to_vec();
        let mut needs_grad = self.needs_grad[..sources].to_vec();
        let mut trainable = self.trainable.clone();
        let mut nodes = Vec::with_capacity(self.nodes.len());
        for node in &self.nodes {
            let inputs: Vec<usize> = node.inputs.iter().map(|&v| tensor[v]).collect();
            let parts = match has_kernel(&node.spec) {
                true => vec![node.spec.clone()],
                false => decomposition(&node.spec)
                    .filter(|parts| parts.iter().all(has_kernel))
                    .ok_or_else(|| {
                        CoreError::Unsupported(format!("{} layers", op_name(&node.spec)))
                    })?
                    .to_vec(),
            };
            let mut input = inputs;
            for (k, spec) in parts.into_iter().enumerate() {
                let output = shapes.len();
                shapes.push(node.output_shape.clone());
                needs_grad.push(self.needs_grad[node.output]);
                let part = match k {
                    0 => DeviceNode {
                        spec,
                        inputs: input,
                        output,
                        ..node.clone()
                    },
                    _ => {
                        trainable.push(false);
                        DeviceNode {
                            spec,
                            inputs: input,
                            output,
                            input_shapes: vec![node.output_shape.clone()],
                            output_shape: node.output_shape.clone(),
                            weights: node.weights.end..node.weights.end,
                            weight_shapes: Vec::new(),
                            geometry: None,
                            trains: false,
                            layer: trainable.len() - 1,
                            call: 0,
                            runs_backward: node.runs_backward,
                        }
                    }
                };
                nodes.push(part);
                input = vec![output];
            }
            tensor.push(shapes.len() - 1);
        }
        let mut consumers = vec![0; shapes.len()];
        nodes
            .iter()
            .flat_map(|n| &n.inputs)
            .for_each(|&v| consumers[v] += 1);
        Ok(DevicePlan {
            input_shapes: self.input_shapes.clone(),
            constants: self.constants.clone(),
            shapes,
            consumers,
            needs_grad,
            nodes,
            outputs: self.outputs.iter().map(|&v| tensor[v]).collect(),
            heads: self.heads.clone(),
            n_weights: self.n_weights,
            trainable,
            trainable_ranges: self.trainable_ranges.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{GraphSpec, NodeSpec, TensorRef::*};
    use crate::layers::DenseSpec;
    use crate::network::Network;
    use crate::ops::{MergeOp, MergeSpec};

    #[test]
    fn layers_ending_in_an_activation_decompose_into_the_layer_and_the_activation() {
        let dense = LayerSpec::Dense(DenseSpec::new(3, Activation::Tanh, 1));
        let [alone, activation] = decomposition(&dense).unwrap();
        assert_eq!(alone.activation(), Some(Activation::Linear));
        assert_eq!(activation.activation(), Some(Activation::Tanh));
        let mut merge = MergeSpec::new(MergeOp::Add);
        assert_eq!(decomposition(&LayerSpec::Merge(merge.clone())), None);
        merge.activation = Some(Activation::Relu);
        let [alone, _] = decomposition(&LayerSpec::Merge(merge)).unwrap();
        assert!(matches!(
            alone,
            LayerSpec::Merge(MergeSpec {
                activation: None,
                ..
            })
        ));
        let linear = LayerSpec::Dense(DenseSpec::new(3, Activation::Linear, 1));
        assert_eq!(decomposition(&linear), None);
    }

    #[test]
    fn a_decomposed_plan_gives_each_part_its_tensor_and_keeps_the_weights() {
        // x -> h = Dense(tanh)(x) -> o = Add(x, h): a residual block.
        let graph = GraphSpec {
            inputs: vec![vec![3]],
            constants: Vec::new(),
            layers: vec![
                LayerSpec::Dense(DenseSpec::new(3, Activation::Tanh, 1)),
                LayerSpec::Merge(MergeSpec::new(MergeOp::Add)),
            ],
            nodes: vec![
                NodeSpec::new(0, vec![Input(0)]),
                NodeSpec::new(1, vec![Input(0), Node(0)]),
            ],
            outputs: vec![Node(1)],
        };
        let plan = Network::from_graph(&graph).unwrap().device_plan();
        let no_activations = |spec: &LayerSpec| decomposition(spec).is_none();
        let split = plan.decomposed(&no_activations).unwrap();
        let ops: Vec<_> = split.nodes.iter().map(|n| op_name(&n.spec)).collect();
        assert_eq!(ops, ["Dense", "Activation", "Add"]);
        let wiring: Vec<_> = split
            .nodes
            .iter()
            .map(|n| (n.inputs.clone(), n.output))
            .collect();
        assert_eq!(wiring, [(vec![0], 1), (vec![1], 2), (vec![0, 2], 3)]);
        assert_eq!(split.outputs, [3]);
        assert_eq!(split.consumers, [2, 1, 1, 0]);
        assert_eq!(split.nodes[0].weights, plan.nodes[0].weights);
        assert!(split.nodes[1].weights.is_empty() && !split.nodes[1].trains);
        assert_eq!(split.trainable, [true, true, false]);
        let routes = split.routes(&[true]);
        assert_eq!(routes.nodes.len(), 3);
        let nothing = |_: &LayerSpec| false;
        let refused = plan.decomposed(&nothing).err().unwrap();
        assert!(matches!(refused, CoreError::Unsupported(what) if what == "Dense layers"));
    }
}
