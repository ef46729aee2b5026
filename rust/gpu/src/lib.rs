//! pynn's GPU engine: the training step of a pynn-core network as WGSL compute shaders on wgpu,
//! with weights, gradients and optimizer state resident on the device.
//!
//! Scope today: graphs of Dense, Conv1D/2D, max and average pooling (global too), Dropout,
//! Flatten, Reshape, Activation (every activation), the element-wise merges (broadcasting too),
//! Concatenate and Dot, with shared layers, constants, several inputs and outputs, frozen layers,
//! kernel, bias and activity regularizers, every loss (weighted, or none) and accuracy metric
//! (up to four per output), SGD, Adam (amsgrad too), RMSprop and Adagrad. The GPU is a pynn-core `Device` ([`GpuDevice`]): a
//! session's copy of a model is a [`GpuTrainer`] built from the core's plan. What it does not
//! run reports [`GpuError::Unsupported`], and the caller trains on the CPU engine.

mod backward;
mod batches;
mod buffers;
mod codes;
mod context;
mod device;
mod kernels;
mod params;
mod plan;
mod record;
mod trainer;

pub use context::{gpu, AdapterSummary};
pub use device::GpuDevice;
pub use pynn_core::session::TrainingState;
pub use trainer::GpuTrainer;

/// Why the GPU cannot do what was asked.
#[derive(Clone, Debug, PartialEq)]
pub enum GpuError {
    /// No Vulkan adapter; `found` lists the adapters seen (filtered by `WGPU_ADAPTER_NAME`).
    NoAdapter { found: Vec<String> },
    /// The device failed or rejected work.
    Device(String),
    /// The model uses something the GPU engine does not run yet.
    Unsupported(String),
    /// A buffer the GPU (or the host) could not allocate, or larger than the GPU allows.
    OutOfMemory(String),
}

impl std::fmt::Display for GpuError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GpuError::NoAdapter { found } if found.is_empty() => write!(
                f,
                "no Vulkan GPU was found: the Vulkan loader (libvulkan1) listed no adapter \
                 (VK_DRIVER_FILES={})",
                std::env::var("VK_DRIVER_FILES").unwrap_or_else(|_| "unset".into())
            ),
            GpuError::NoAdapter { found } => write!(
                f,
                "no Vulkan adapter matches WGPU_ADAPTER_NAME={:?}; found: {}",
                std::env::var("WGPU_ADAPTER_NAME").unwrap_or_default(),
                found.join(", ")
            ),
            GpuError::Device(message) => write!(f, "the GPU failed: {message}"),
            GpuError::Unsupported(what) => write!(f, "the GPU engine does not run {what} yet"),
            GpuError::OutOfMemory(what) => write!(f, "not enough GPU memory: {what}"),
        }
    }
}

impl std::error::Error for GpuError {}
