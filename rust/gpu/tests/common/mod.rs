//! What the GPU test files share.

// Each test file compiles this module on its own and uses only some of it.
#![allow(dead_code)]

use pynn_core::graph::{GraphSpec, NodeSpec, TensorRef::*};
use pynn_core::kernels::activation::Activation;
use pynn_core::layers::{DenseSpec, LayerSpec};
use pynn_core::ops::{MergeOp, MergeSpec};

/// Whether a Vulkan adapter is there; without one the tests pass vacuously, unless
/// `PYNN_REQUIRE_GPU=1` (as CI sets it with lavapipe installed).
pub fn gpu_present() -> bool {
    match pynn_gpu::gpu() {
        Ok(gpu) => {
            eprintln!("GPU tests on {:?}", gpu.adapter);
            true
        }
        Err(error) if std::env::var("PYNN_REQUIRE_GPU").is_ok_and(|v| v == "1") => {
            panic!("PYNN_REQUIRE_GPU=1 but {error}")
        }
        Err(error) => {
            eprintln!("skipped: {error}");
            false
        }
    }
}

/// A residual block with two heads: `h = tanh(Dense(x))`, then softmax classes from
/// `Dense(x + h)` and values from `Dense(h)`, on samples of `width` values.
pub fn two_heads(width: usize) -> GraphSpec {
    let dense = |units, activation, seed| LayerSpec::Dense(DenseSpec::new(units, activation, seed));
    GraphSpec {
        inputs: vec![vec![width]],
        constants: Vec::new(),
        layers: vec![
            dense(width, Activation::Tanh, 1),
            LayerSpec::Merge(MergeSpec::new(MergeOp::Add)),
            dense(3, Activation::Softmax, 2),
            dense(2, Activation::Linear, 3),
        ],
        nodes: vec![
            NodeSpec::new(0, vec![Input(0)]),
            NodeSpec::new(1, vec![Input(0), Node(0)]),
            NodeSpec::new(2, vec![Node(1)]),
            NodeSpec::new(3, vec![Node(0)]),
        ],
        outputs: vec![Node(2), Node(3)],
    }
}

/// A sample of `width` values added to itself by one `Add` of 17 inputs: more than the GPU's
/// merges take.
pub fn wide_merge(width: usize) -> GraphSpec {
    GraphSpec {
        inputs: vec![vec![width]],
        constants: Vec::new(),
        layers: vec![LayerSpec::Merge(MergeSpec::new(MergeOp::Add))],
        nodes: vec![NodeSpec::new(0, vec![Input(0); 17])],
        outputs: vec![Node(0)],
    }
}
