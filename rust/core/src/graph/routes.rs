//! Where a graph's backward sends each gradient, worked out once for the layers that train and
//! the outputs a loss seeds: which nodes run backward (in reverse node order: those behind
//! which something trains and whose output received a gradient), and for each of their inputs
//! and for their layer's weights whether the gradient is the first to arrive (written) or a
//! later one (added). Every device walks the backward by these routes, so the order in which
//! gradients add up, and so the results, are the same whichever runs it.

use smallvec::SmallVec;

/// How a gradient reaches its tensor or its layer's weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// Not computed: a model input, a constant, a tensor nothing trainable lies behind, or a
    /// frozen layer's weights.
    None,
    /// The first gradient to arrive: written.
    First,
    /// A later one: added to what arrived before.
    Later,
}

/// One node's backward.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeRoute {
    pub node: usize,
    /// Per input, in call order.
    pub inputs: SmallVec<[Arrival; 4]>,
    pub weights: Arrival,
}

/// A node as the routes read it.
pub struct RouteNode<'a> {
    pub inputs: &'a [usize],
    pub output: usize,
    pub layer: usize,
    /// Whether something trainable lies at or behind it (the CPU's `Flow`).
    pub runs_backward: bool,
}

/// The backward's routes: the nodes that run, in the order they run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Routes {
    pub nodes: Vec<NodeRoute>,
    /// Per layer: whether any gradient reaches its weights (the others are zero).
    pub reached: Vec<bool>,
}

/// What the routes are worked out from.
pub struct Graph<'a> {
    pub nodes: Vec<RouteNode<'a>>,
    /// Per tensor: whether it carries a gradient.
    pub needs_grad: &'a [bool],
    /// Per layer: whether its weights train.
    pub trainable: &'a [bool],
    pub outputs: &'a [usize],
}

impl Routes {
    /// The routes of `graph` when the outputs that `seeded` marks receive a loss's gradient.
    pub fn new(graph: &Graph, seeded: &[bool]) -> Self {
        let mut written = vec![false; graph.needs_grad.len()];
        for (&output, &seeded) in graph.outputs.iter().zip(seeded) {
            written[output] |= seeded;
        }
        let mut reached = vec![false; graph.trainable.len()];
        let mut nodes = Vec::new();
        for (n, node) in graph.nodes.iter().enumerate().rev() {
            if !node.runs_backward || !written[node.output] {
                continue;
            }
            let inputs = node
                .inputs
                .iter()
                .enumerate()
                .map(|(p, &v)| match graph.needs_grad[v] {
                    false => Arrival::None,
                    true if written[v] || node.inputs[..p].contains(&v) => Arrival::Later,
                    true => Arrival::First,
                })
                .collect();
            let weights = match (graph.trainable[node.layer], reached[node.layer]) {
                (false, _) => Arrival::None,
                (true, false) => Arrival::First,
                (true, true) => Arrival::Later,
            };
            reached[node.layer] |= graph.trainable[node.layer];
            for &v in node.inputs {
                written[v] |= graph.needs_grad[v];
            }
            nodes.push(NodeRoute {
                node: n,
                inputs,
                weights,
            });
        }
        Routes { nodes, reached }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Arrival::{First, Later, None as Not};

    fn node(inputs: &[usize], output: usize, layer: usize) -> RouteNode<'_> {
        RouteNode {
            inputs,
            output,
            layer,
            runs_backward: true,
        }
    }

    #[test]
    fn fanned_out_tensors_and_shared_layers_are_written_once_then_added() {
        // x -> d = Dense(x) -> s = d + d, o1 = Dense(d) (the same Dense), outputs s and o1.
        // Tensors: x 0, d 1, s 2, o1 3.
        let (a, b, c) = ([0], [1, 1], [1]);
        let nodes = vec![node(&a, 1, 0), node(&b, 2, 1), node(&c, 3, 0)];
        let needs_grad = [false, true, true, true];
        let graph = Graph {
            nodes,
            needs_grad: &needs_grad,
            trainable: &[true, false],
            outputs: &[2, 3],
        };
        let routes = Routes::new(&graph, &[true, true]);
        let expected = [
            (2, vec![First], First),      // the Dense's second call writes its weights
            (1, vec![Later, Later], Not), // the merge adds to d twice, a weightless layer
            (0, vec![Not], Later),        // the first call adds to the weights; x gets none
        ];
        let got: Vec<_> = routes
            .nodes
            .iter()
            .map(|r| (r.node, r.inputs.to_vec(), r.weights))
            .collect();
        assert_eq!(got, expected);
        assert_eq!(routes.reached, [true, false]);
        // Without a loss on o1, its node runs no backward, and the merge writes d first.
        let routes = Routes::new(&graph, &[true, false]);
        let got: Vec<_> = routes.nodes.iter().map(|r| r.inputs.to_vec()).collect();
        assert_eq!(got, [vec![First, Later], vec![Not]]);
        assert_eq!(routes.nodes[1].weights, First);
    }
}
