//! What the GPU test files share.

use pynn_core::graph::{GraphSpec, NodeSpec, TensorRef::*};
use pynn_core::kernels::activation::Activation;
use pynn_core::layers::{ActivationSpec, LayerSpec};
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

/// `x + relu(x)` on samples of `width` values: a graph that is not a chain of layers.
pub fn residual(width: usize) -> GraphSpec {
    let relu = ActivationSpec {
        activation: Activation::Relu,
    };
    GraphSpec {
        inputs: vec![vec![width]],
        constants: Vec::new(),
        layers: vec![
            LayerSpec::Activation(relu),
            LayerSpec::Merge(MergeSpec::new(MergeOp::Add)),
        ],
        nodes: vec![
            NodeSpec::new(0, vec![Input(0)]),
            NodeSpec::new(1, vec![Input(0), Node(0)]),
        ],
        outputs: vec![Node(1)],
    }
}
