//! pynn-core: the engine behind pynn. Pure Rust, no Python.
//!
//! Data flows through [`network::Network`] (a [`graph`] of layers over one contiguous weight
//! buffer) and [`train::Trainer`] (the batch loop: shuffle, forward, loss, backward, optimizer
//! step, metrics).

pub mod cancel;
pub mod epoch;
pub mod error;
pub mod graph;
pub mod head;
pub mod initializers;
pub mod kernels;
pub mod layers;
pub mod memory;
pub mod metrics;
pub mod network;
pub mod ops;
pub mod optim;
pub mod parallel;
pub mod regularizers;
pub mod rng;
pub mod session;
pub mod tensor;
pub mod train;

pub use error::{CoreError, Result};
pub use tensor::Tensor;
