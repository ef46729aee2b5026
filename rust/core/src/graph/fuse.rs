//! Fusions applied to a model's graph before it is planned. An `Activation` layer whose input
//! is a merge's output, read by nothing else, becomes the merge's own activation (the relu
//! after a residual `Add`): the merge applies it while its output is in cache, and the
//! activation's separate passes over the values, forward and backward, go.
//!
//! The layers stay as they are (an unused `Activation` layer has no weights), so layer indices,
//! weight ranges and trainable flags mean what the caller meant; only nodes are rewritten.

use super::spec::{GraphSpec, TensorRef};
use crate::layers::LayerSpec;
use crate::ops::MergeSpec;

/// `graph` with every fusable `Activation` node folded into the merge node it reads.
pub fn fuse(graph: &GraphSpec) -> GraphSpec {
    let mut graph = graph.clone();
    let mut n = 0;
    while n < graph.nodes.len() {
        match fusable(&graph, n) {
            Some((merge_node, spec)) => fold_into(&mut graph, n, merge_node, spec),
            None => n += 1,
        }
    }
    graph
}

/// Where node `n` is an activation that merge node `m` can apply: `m` and the merge's spec
/// with the activation.
fn fusable(graph: &GraphSpec, n: usize) -> Option<(usize, MergeSpec)> {
    // A graph that refers to nodes or layers it lacks is left to the planner to refuse.
    let node = &graph.nodes[n];
    let Some(LayerSpec::Activation(activation)) = graph.layers.get(node.layer) else {
        return None;
    };
    let [TensorRef::Node(m)] = node.inputs[..] else {
        return None;
    };
    let merge_layer = graph.nodes[..n].get(m)?.layer;
    let Some(LayerSpec::Merge(merge)) = graph.layers.get(merge_layer) else {
        return None;
    };
    let calls = graph
        .nodes
        .iter()
        .filter(|x| x.layer == merge_layer)
        .count();
    let readers = graph
        .nodes
        .iter()
        .flat_map(|x| &x.inputs)
        .chain(&graph.outputs)
        .filter(|&&t| t == TensorRef::Node(m))
        .count();
    // An output's activation decides its head (losses read logits), so it stays a layer.
    let is_output = graph.outputs.contains(&TensorRef::Node(n));
    let fits = activation.activation.is_elementwise_from_output() && merge.activation.is_none();
    (fits && calls == 1 && readers == 1 && !is_output).then(|| {
        let spec = MergeSpec {
            activation: Some(activation.activation),
            ..merge.clone()
        };
        (m, spec)
    })
}

/// Gives merge node `m` the activation `spec` and removes activation node `n`: what read `n`
/// reads `m`.
fn fold_into(graph: &mut GraphSpec, n: usize, m: usize, spec: MergeSpec) {
    let merge_layer = graph.nodes[m].layer;
    graph.layers[merge_layer] = LayerSpec::Merge(spec);
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
    use crate::kernels::activation::Activation;
    use crate::layers::ActivationSpec;
    use crate::ops::MergeOp;

    fn node(layer: usize, inputs: &[TensorRef]) -> NodeSpec {
        NodeSpec {
            layer,
            inputs: inputs.to_vec(),
        }
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
