//! One graph for every model. A model is a list of layers (each owning a range of the weight
//! buffer) and a list of nodes, each one call of a layer on earlier nodes' outputs or on the
//! model's inputs; a `Sequential` model is a chain. `Plan` works out the shapes, where each
//! node's gradient goes and which nodes run backward; a `Lane` holds one set of node
//! instances with their buffers and runs them.
//!
//! Variables belong to layers, scratch to nodes: a layer called twice (a shared layer) has one
//! weight range and two nodes, each with its own pre-activations, masks and argmaxes. Where a
//! tensor feeds several nodes, or a layer runs several times, their gradients are added in a
//! fixed order (reverse node order; the first contributor writes, the later ones add), so the
//! results never depend on the thread count.

mod decompose;
mod device_plan;
mod fuse;
mod lane;
mod pass;
mod plan;
mod routes;
mod spec;

pub use decompose::{decomposition, op_name};
pub use device_plan::{DeviceNode, DevicePlan};
pub use fuse::fuse;
pub(crate) use lane::{Lane, LanePass};
pub use pass::{training_pass, PassOps};
pub use plan::MAX_PART_SAMPLES;
pub(crate) use plan::{Flow, Plan};
pub use routes::{Arrival, NodeRoute, RouteNode, Routes};
pub use spec::{ConstantSpec, GraphSpec, Mode, NodeSpec, TensorRef};

use crate::error::Result;

/// What a graph computes, without any weight: each node's per-sample output shape and each
/// layer's weight shapes (from its first call). Errors name the layer that cannot take its
/// inputs.
pub struct Shapes {
    pub nodes: Vec<Vec<usize>>,
    pub layer_weights: Vec<Vec<Vec<usize>>>,
}

pub fn shapes(spec: &GraphSpec) -> Result<Shapes> {
    let (plan, ops) = Plan::new(spec)?;
    let nodes = plan
        .nodes
        .iter()
        .map(|n| plan.shapes[n.output].clone())
        .collect();
    let layer_weights = plan
        .first_call
        .iter()
        .map(|first| first.map_or_else(Vec::new, |n| ops[n].weight_shapes()))
        .collect();
    Ok(Shapes {
        nodes,
        layer_weights,
    })
}
