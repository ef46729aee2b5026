//! Fusions applied to a model's graph before it is planned. An `Activation` layer whose input
//! is another layer's output, read by nothing else, becomes that layer's own activation:
//!
//! - after a `Dense` or a convolution without an activation (nor an activity regularizer,
//!   which reads the layer's output): the layer applies it in its output's pass, as
//!   `Dense(4, activation="relu")` does;
//! - after a merge (the relu after a residual `Add`), for activations whose derivative follows
//!   from their output: the merge applies it while its output is in cache.
//!
//! The layers stay in their list (an unused `Activation` layer has no weights), so layer
//! indices, weight ranges and trainable flags mean what the caller meant; only the producing
//! layer's spec and the nodes are rewritten. The results are the same bits.

use super::spec::{GraphSpec, TensorRef};
use crate::kernels::activation::Activation;
use crate::layers::LayerSpec;

/// `graph` with every fusable `Activation` node folded into the node it reads.
pub fn fuse(graph: &GraphSpec) -> GraphSpec {
    let mut graph = graph.clone();
    let mut n = 0;
    while n < graph.nodes.len() {
        match fusable(&graph, n) {
            Some((producer, spec)) => fold_into(&mut graph, n, producer, spec),
            None => n += 1,
        }
    }
    graph
}

/// Where node `n` is an activation that the node `m` it reads can apply: `m` and its layer's
/// spec with the activation.
fn fusable(graph: &GraphSpec, n: usize) -> Option<(usize, LayerSpec)> {
    // A graph that refers to nodes or layers it lacks is left to the planner to refuse.
    let node = &graph.nodes[n];
    let Some(LayerSpec::Activation(activation)) = graph.layers.get(node.layer) else {
        return None;
    };
    let [TensorRef::Node(m)] = node.inputs[..] else {
        return None;
    };
    let layer = graph.nodes[..n].get(m)?.layer;
    let calls = graph.nodes.iter().filter(|x| x.layer == layer).count();
    let readers = graph
        .nodes
        .iter()
        .flat_map(|x| &x.inputs)
        .chain(&graph.outputs)
        .filter(|&&t| t == TensorRef::Node(m))
        .count();
    // An output's activation decides its head (losses read logits), so it stays a layer.
    let is_output = graph.outputs.contains(&TensorRef::Node(n));
    if calls != 1 || readers != 1 || is_output {
        return None;
    }
    let spec = with_activation(graph.layers.get(layer)?, activation.activation)?;
    Some((m, spec))
}

/// `spec` ending in `activation`, where the layer can take it on.
fn with_activation(spec: &LayerSpec, activation: Activation) -> Option<LayerSpec> {
    let mut fused = spec.clone();
    let takes_it = match &mut fused {
        LayerSpec::Dense(dense)
            if dense.activation == Activation::Linear && dense.activity_regularizer.is_none() =>
        {
            dense.activation = activation;
            true
        }
        LayerSpec::Conv(conv)
            if conv.activation == Activation::Linear && conv.activity_regularizer.is_none() =>
        {
            conv.activation = activation;
            true
        }
        LayerSpec::Merge(merge)
            if merge.activation.is_none() && activation.is_elementwise_from_output() =>
        {
            merge.activation = Some(activation);
            true
        }
        _ => false,
    };
    takes_it.then_some(fused)
}

/// Gives node `m`'s layer the fused `spec` and removes activation node `n`: what read `n`
/// reads `m`.
fn fold_into(graph: &mut GraphSpec, n: usize, m: usize, spec: LayerSpec) {
    let layer = graph.nodes[m].layer;
    graph.layers[layer] = spec;
    graph.nodes.remove(n);
    let renumber = |t: &mut TensorRef| {
        if let TensorRef::Node(k) = t {
            *k = match (*k).cmp(&n) {
                std::cmp::Ordering::Less => *k,
                std::cmp::Ordering::Equal => m,
                std::cmp::Ordering::Greater => *k - 1,
            };
        }
    };
    graph
        .nodes
        .iter_mut()
        .flat_map(|node| node.inputs.iter_mut())
        .for_each(renumber);
    graph.outputs.iter_mut().for_each(renumber);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::NodeSpec;
    use crate::layers::{ActivationSpec, DenseSpec};
    use crate::ops::{MergeOp, MergeSpec};

    fn node(layer: usize, inputs: &[TensorRef]) -> NodeSpec {
        NodeSpec::new(layer, inputs.to_vec())
    }

    fn activation(function: Activation) -> LayerSpec {
        LayerSpec::Activation(ActivationSpec {
            activation: function,
        })
    }

    /// x + relu(x): add (node 0), relu (node 1), then another add reading both.
    fn residual(function: Activation) -> GraphSpec {
        use TensorRef::{Input, Node};
        GraphSpec {
            inputs: vec![vec![4]],
            constants: Vec::new(),
            layers: vec![
                LayerSpec::Merge(MergeSpec::new(MergeOp::Add)),
                activation(function),
                LayerSpec::Merge(MergeSpec::new(MergeOp::Add)),
            ],
            nodes: vec![
                node(0, &[Input(0), Input(0)]),
                node(1, &[Node(0)]),
                node(2, &[Node(1), Input(0)]),
            ],
            outputs: vec![Node(2)],
        }
    }

    #[test]
    fn an_activation_after_a_merge_becomes_the_merges() {
        use TensorRef::{Input, Node};
        let fused = fuse(&residual(Activation::Relu));
        assert_eq!(
            fused.nodes,
            vec![
                node(0, &[Input(0), Input(0)]),
                node(2, &[Node(0), Input(0)])
            ]
        );
        assert_eq!(fused.outputs, vec![Node(1)]);
        let LayerSpec::Merge(merge) = &fused.layers[0] else {
            panic!("the merge layer stays a merge")
        };
        assert_eq!(merge.activation, Some(Activation::Relu));
        assert_eq!(fused.layers.len(), 3);
    }

    #[test]
    fn an_activation_after_a_dense_without_one_becomes_the_denses() {
        use TensorRef::{Input, Node};
        let dense = |activation| LayerSpec::Dense(DenseSpec::new(3, activation, 1));
        let graph = |first| GraphSpec {
            inputs: vec![vec![4]],
            constants: Vec::new(),
            layers: vec![
                dense(first),
                activation(Activation::Gelu),
                dense(Activation::Linear),
            ],
            nodes: vec![
                node(0, &[Input(0)]),
                node(1, &[Node(0)]),
                node(2, &[Node(1)]),
            ],
            outputs: vec![Node(2)],
        };
        let fused = fuse(&graph(Activation::Linear));
        assert_eq!(fused.layers[0], dense(Activation::Gelu));
        assert_eq!(fused.nodes.len(), 2);
        // A Dense with an activation of its own keeps the Activation layer after it.
        let tanh = graph(Activation::Tanh);
        assert_eq!(fuse(&tanh), tanh);
    }

    #[test]
    fn what_cannot_fold_stays() {
        use TensorRef::Node;
        // Softmax needs its rows; gelu its pre-activations.
        for function in [Activation::Softmax, Activation::Gelu] {
            let graph = residual(function);
            assert_eq!(fuse(&graph), graph);
        }
        // The merge's output read twice, or the activation an output of the model.
        let mut read_twice = residual(Activation::Relu);
        read_twice.nodes[2].inputs[1] = Node(0);
        assert_eq!(fuse(&read_twice), read_twice);
        let mut output = residual(Activation::Relu);
        output.outputs.push(Node(1));
        assert_eq!(fuse(&output), output);
    }
}
