//! Storage buffers: made, read back to the host, and the largest one a shader may bind.

use pynn_core::memory::try_filled;

use crate::context::Gpu;
use crate::GpuError;

/// A storage buffer of `values` f32 values (at least one).
pub fn storage(gpu: &Gpu, values: usize, label: &str) -> wgpu::Buffer {
    gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: (values.max(1) * 4) as u64,
        usage: wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_DST
            | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    })
}

/// How many values the largest buffer a shader can bind on this GPU holds.
pub fn largest_buffer_values(gpu: &Gpu) -> usize {
    let limits = &gpu.limits;
    let bytes = limits
        .max_buffer_size
        .min(limits.max_storage_buffer_binding_size);
    usize::try_from(bytes / 4).unwrap_or(usize::MAX)
}

/// Copies `len` values of `buffer` back to the host.
pub fn read(gpu: &Gpu, buffer: &wgpu::Buffer, len: usize) -> Result<Vec<f32>, GpuError> {
    let mut values = try_filled(len, 0.0).map_err(host_memory)?;
    read_into(gpu, buffer, &mut values)?;
    Ok(values)
}

/// The error of a host buffer that could not be allocated.
pub fn host_memory(error: pynn_core::CoreError) -> GpuError {
    GpuError::OutOfMemory(error.to_string())
}

/// Copies the first `out.len()` values of `buffer` into `out`.
pub fn read_into(gpu: &Gpu, buffer: &wgpu::Buffer, out: &mut [f32]) -> Result<(), GpuError> {
    if out.is_empty() {
        return Ok(());
    }
    let size = (out.len() * 4) as u64;
    let staging = gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("readback"),
        size,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut encoder = gpu.device.create_command_encoder(&Default::default());
    encoder.copy_buffer_to_buffer(buffer, 0, &staging, 0, size);
    gpu.queue.submit([encoder.finish()]);
    let (sender, receiver) = std::sync::mpsc::channel();
    staging.map_async(wgpu::MapMode::Read, .., move |result| {
        let _ = sender.send(result);
    });
    gpu.device
        .poll(wgpu::PollType::wait_indefinitely())
        .map_err(|e| GpuError::Device(e.to_string()))?;
    receiver
        .recv()
        .map_err(|e| GpuError::Device(e.to_string()))?
        .map_err(|e| GpuError::Device(e.to_string()))?;
    {
        let view = staging
            .slice(..)
            .get_mapped_range()
            .map_err(|e| GpuError::Device(e.to_string()))?;
        out.copy_from_slice(bytemuck::cast_slice::<u8, f32>(&view));
    }
    staging.unmap();
    gpu.take_errors()
}

/// A storage buffer holding `values`.
pub fn storage_with<T: bytemuck::Pod>(gpu: &Gpu, values: &[T], label: &str) -> wgpu::Buffer {
    let buffer = storage(gpu, values.len(), label);
    if !values.is_empty() {
        gpu.queue
            .write_buffer(&buffer, 0, bytemuck::cast_slice(values));
    }
    buffer
}
