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

mod lane;
mod plan;
mod spec;

pub(crate) use lane::Lane;
pub(crate) use plan::{Flow, Plan};
pub use spec::{GraphSpec, NodeSpec, TensorRef};
