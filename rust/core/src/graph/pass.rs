//! A training pass over a graph as every device runs it: each node's forward in node order,
//! each output's loss head, then each node's backward along the routes that the outputs the
//! losses seeded give (see [`Routes`]). A device implements the ops ([`PassOps`]: the CPU's
//! lanes run them, the GPU records them); the order is written here once.

use std::sync::Arc;

use smallvec::SmallVec;

use super::routes::{NodeRoute, Routes};
use crate::cancel::Cancel;
use crate::error::Result;

/// What a device does for each step of a training pass.
pub trait PassOps {
    /// Node `node`'s forward, with training behaviour.
    fn forward(&mut self, node: usize) -> Result<()>;

    /// Output `output`'s loss head: the loss's gradient with respect to the output, into the
    /// output's gradient. Whether it gave one (an output without a loss gives none).
    fn loss(&mut self, output: usize) -> Result<bool>;

    /// The backward's routes when the outputs that `seeded` marks received a gradient.
    fn routes(&mut self, seeded: &[bool]) -> Arc<Routes>;

    /// A node's backward along its route.
    fn backward(&mut self, route: &NodeRoute) -> Result<()>;

    /// After the last backward: the gradients of the layers that the routes never reached.
    fn finish(&mut self, routes: &Routes) -> Result<()>;
}

/// A training pass of `nodes` nodes and `outputs` outputs on `ops`; `cancel` is checked before
/// each node's forward and backward.
pub fn training_pass(
    ops: &mut dyn PassOps,
    (nodes, outputs): (usize, usize),
    cancel: &Cancel,
) -> Result<()> {
    for node in 0..nodes {
        cancel.check()?;
        ops.forward(node)?;
    }
    let mut seeded: SmallVec<[bool; 4]> = SmallVec::new();
    for output in 0..outputs {
        seeded.push(ops.loss(output)?);
    }
    let routes = ops.routes(&seeded);
    for route in &routes.nodes {
        cancel.check()?;
        ops.backward(route)?;
    }
    ops.finish(&routes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{NodeRoute, Routes};

    /// Ops that log what the pass asks of them; output 1 has no loss.
    #[derive(Default)]
    struct Log(Vec<String>);

    impl PassOps for Log {
        fn forward(&mut self, node: usize) -> Result<()> {
            self.0.push(format!("forward {node}"));
            Ok(())
        }

        fn loss(&mut self, output: usize) -> Result<bool> {
            self.0.push(format!("loss {output}"));
            Ok(output != 1)
        }

        fn routes(&mut self, seeded: &[bool]) -> Arc<Routes> {
            self.0.push(format!("routes {seeded:?}"));
            let route = |node| NodeRoute {
                node,
                inputs: SmallVec::new(),
                weights: super::super::Arrival::None,
            };
            Arc::new(Routes {
                nodes: vec![route(2), route(0)],
                reached: Vec::new(),
            })
        }

        fn backward(&mut self, route: &NodeRoute) -> Result<()> {
            self.0.push(format!("backward {}", route.node));
            Ok(())
        }

        fn finish(&mut self, _: &Routes) -> Result<()> {
            self.0.push("finish".into());
            Ok(())
        }
    }

    #[test]
    fn a_pass_runs_forwards_in_order_then_losses_then_the_routes() {
        let mut log = Log::default();
        training_pass(&mut log, (3, 2), Cancel::never()).unwrap();
        let expected = [
            "forward 0",
            "forward 1",
            "forward 2",
            "loss 0",
            "loss 1",
            "routes [true, false]",
            "backward 2",
            "backward 0",
            "finish",
        ];
        assert_eq!(log.0, expected);
        let (mut log, cancel) = (Log::default(), Cancel::new());
        cancel.request();
        assert!(training_pass(&mut log, (3, 2), &cancel).is_err());
        assert!(log.0.is_empty());
    }
}
