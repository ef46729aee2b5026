//! The process's one GPU: a Vulkan adapter, its device and queue, opened on first use.
//!
//! Only Vulkan is enabled: with OpenGL as well, a machine without a Vulkan driver would silently
//! get a software OpenGL adapter. `WGPU_ADAPTER_NAME` picks an adapter by name. wgpu's default
//! reaction to a validation error is a panic; here errors are recorded and returned instead.

use std::sync::{Arc, Mutex, OnceLock};

use crate::GpuError;

/// What describes the adapter in use, for users and error messages.
#[derive(Clone, Debug)]
pub struct AdapterSummary {
    pub name: String,
    pub driver: String,
    pub backend: String,
    /// Whether it is a real GPU (integrated, discrete or virtual), not a CPU implementation
    /// such as lavapipe.
    pub is_gpu: bool,
}

pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub adapter: AdapterSummary,
    pub limits: wgpu::Limits,
    errors: Arc<Mutex<Vec<String>>>,
}

static GPU: OnceLock<Result<Gpu, GpuError>> = OnceLock::new();

/// The GPU, opened the first time it is asked for; the same error every time when none opens.
pub fn gpu() -> Result<&'static Gpu, GpuError> {
    GPU.get_or_init(open).as_ref().map_err(Clone::clone)
}

fn summary(info: &wgpu::AdapterInfo) -> AdapterSummary {
    AdapterSummary {
        name: info.name.clone(),
        driver: format!("{} {}", info.driver, info.driver_info)
            .trim()
            .to_string(),
        backend: format!("{:?}", info.backend),
        is_gpu: matches!(
            info.device_type,
            wgpu::DeviceType::DiscreteGpu
                | wgpu::DeviceType::IntegratedGpu
                | wgpu::DeviceType::VirtualGpu
        ),
    }
}

fn open() -> Result<Gpu, GpuError> {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends: wgpu::Backends::VULKAN,
        ..wgpu::InstanceDescriptor::new_without_display_handle_from_env()
    });
    let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::VULKAN));
    let wanted = std::env::var("WGPU_ADAPTER_NAME")
        .ok()
        .map(|n| n.to_lowercase());
    let found: Vec<String> = adapters.iter().map(|a| a.get_info().name).collect();
    let matches = |a: &wgpu::Adapter| match &wanted {
        Some(name) => a.get_info().name.to_lowercase().contains(name),
        None => true,
    };
    // A real GPU first; a CPU implementation (lavapipe) only when nothing else is there.
    let adapter = adapters
        .iter()
        .filter(|a| matches(a))
        .max_by_key(|a| summary(&a.get_info()).is_gpu)
        .ok_or_else(|| GpuError::NoAdapter {
            found: found.clone(),
        })?;
    let limits = adapter.limits();
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("pynn"),
        required_features: wgpu::Features::empty(),
        required_limits: limits.clone(),
        ..Default::default()
    }))
    .map_err(|e| GpuError::Device(e.to_string()))?;
    let errors = Arc::new(Mutex::new(Vec::new()));
    let sink = errors.clone();
    device.on_uncaptured_error(Arc::new(move |error: wgpu::Error| {
        if let Ok(mut errors) = sink.lock() {
            errors.push(error.to_string());
        }
    }));
    Ok(Gpu {
        device,
        queue,
        adapter: summary(&adapter.get_info()),
        limits,
        errors,
    })
}

impl Gpu {
    /// The errors the device reported since the last call, as one `GpuError`, if any.
    pub fn take_errors(&self) -> Result<(), GpuError> {
        let mut errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        if errors.is_empty() {
            return Ok(());
        }
        let message = errors.join("; ");
        errors.clear();
        Err(GpuError::Device(message))
    }
}
