//! The compute kernels: WGSL sources compiled once per process into pipelines, each with an
//! explicit bind group layout, and the arithmetic of how many workgroups cover a size.

use std::sync::OnceLock;

use crate::codes;
use crate::context::Gpu;
use crate::GpuError;

const STEP: &str = include_str!("shaders/step.wgsl");
const ACTIVATION_MATH: &str = include_str!("shaders/activation_math.wgsl");
const WINDOWS: &str = include_str!("shaders/windows.wgsl");
const EPILOGUE: &str = include_str!("shaders/epilogue.wgsl");

/// How a kernel sees one binding.
#[derive(Clone, Copy)]
pub enum Access {
    Read,
    ReadWrite,
    Uniform,
}

pub struct Kernel {
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
}

impl Kernel {
    fn new(gpu: &Gpu, name: &str, sources: &[&str], entry: &str, bindings: &[Access]) -> Self {
        let source = [codes::WGSL]
            .iter()
            .chain(sources)
            .copied()
            .collect::<Vec<_>>();
        let source = source.join("\n");
        let module = gpu
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(name),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            });
        let entries: Vec<_> = bindings
            .iter()
            .enumerate()
            .map(|(i, access)| wgpu::BindGroupLayoutEntry {
                binding: i as u32,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: match access {
                    Access::Uniform => wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    Access::Read | Access::ReadWrite => wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Storage {
                            read_only: matches!(access, Access::Read),
                        },
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                },
                count: None,
            })
            .collect();
        let layout = gpu
            .device
            .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(name),
                entries: &entries,
            });
        let pipeline_layout = gpu
            .device
            .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(name),
                bind_group_layouts: &[Some(&layout)],
                immediate_size: 0,
            });
        let pipeline = gpu
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(name),
                layout: Some(&pipeline_layout),
                module: &module,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            });
        Kernel { pipeline, layout }
    }

    /// A bind group of `buffers`, in binding order.
    pub fn bind(&self, gpu: &Gpu, buffers: &[&wgpu::Buffer]) -> wgpu::BindGroup {
        let entries: Vec<_> = buffers
            .iter()
            .enumerate()
            .map(|(i, buffer)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: buffer.as_entire_binding(),
            })
            .collect();
        gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &self.layout,
            entries: &entries,
        })
    }

    pub fn pipeline(&self) -> &wgpu::ComputePipeline {
        &self.pipeline
    }
}

/// Every kernel the training step uses.
pub struct Kernels {
    pub matmul: Kernel,
    pub activation: Kernel,
    pub softmax: Kernel,
    pub activation_backward: Kernel,
    pub softmax_backward: Kernel,
    pub bias_gradient: Kernel,
    pub loss_rows: Kernel,
    pub loss_sum: Kernel,
    pub optimizer: Kernel,
    pub conv_forward: Kernel,
    pub conv_kernel_gradient: Kernel,
    pub conv_input_gradient: Kernel,
    pub pool_forward: Kernel,
    pub pool_backward: Kernel,
    pub dropout: Kernel,
    pub penalty_gradient: Kernel,
    pub sum_partials: Kernel,
    pub penalty_value: Kernel,
    pub copy: Kernel,
    pub merge_fold: Kernel,
    pub merge_local_gradients: Kernel,
    pub merge_gather: Kernel,
    pub merge_reduce: Kernel,
    pub dot_scales: Kernel,
    pub dot_forward: Kernel,
    pub dot_input_gradient: Kernel,
}

static KERNELS: OnceLock<Result<Kernels, GpuError>> = OnceLock::new();

/// The kernels, compiled on first use; a shader that does not compile is an error, not a panic.
pub fn kernels(gpu: &'static Gpu) -> Result<&'static Kernels, GpuError> {
    KERNELS
        .get_or_init(|| {
            let scope = gpu.device.push_error_scope(wgpu::ErrorFilter::Validation);
            let kernels = compile(gpu);
            match pollster::block_on(scope.pop()) {
                Some(error) => Err(GpuError::Device(error.to_string())),
                None => Ok(kernels),
            }
        })
        .as_ref()
        .map_err(Clone::clone)
}

fn compile(gpu: &Gpu) -> Kernels {
    use Access::{Read, ReadWrite as Write, Uniform};
    let matmul = include_str!("shaders/matmul.wgsl");
    let activation = include_str!("shaders/activation.wgsl");
    let backward = include_str!("shaders/activation_backward.wgsl");
    let loss = include_str!("shaders/loss.wgsl");
    let optimizer = include_str!("shaders/optimizer.wgsl");
    let forward_bindings = [Write, Write, Read, Uniform, Uniform];
    let backward_bindings = [Write, Read, Read, Write, Uniform, Uniform];
    let loss_bindings = [Read, Read, Write, Write, Write, Uniform, Uniform];
    let with_math = |source| [STEP, ACTIVATION_MATH, source];
    let epilogue = |source| [STEP, ACTIVATION_MATH, EPILOGUE, source];
    let conv = include_str!("shaders/conv.wgsl");
    let pool = include_str!("shaders/pool.wgsl");
    let pool_backward = include_str!("shaders/pool_backward.wgsl");
    let read_read_write = [Read, Read, Write, Uniform, Uniform];
    let merge = |entry| {
        let source = [STEP, ACTIVATION_MATH, include_str!("shaders/merge.wgsl")];
        let bindings = [Write, Write, Read, Read, Uniform, Uniform];
        Kernel::new(gpu, entry, &source, entry, &bindings)
    };
    let dot = |name, entry| {
        let source = [STEP, include_str!("shaders/dot.wgsl")];
        let bindings = [Read, Read, Write, Read, Read, Write, Uniform, Uniform];
        Kernel::new(gpu, name, &source, entry, &bindings)
    };
    Kernels {
        dot_scales: dot("dot_scales", "fiber_scales"),
        dot_forward: dot("dot_forward", "forward"),
        dot_input_gradient: dot("dot_input_gradient", "input_gradient"),
        copy: Kernel::new(
            gpu,
            "copy",
            &[STEP, include_str!("shaders/copy.wgsl")],
            "main",
            &[Write, Write, Uniform, Uniform],
        ),
        merge_fold: merge("fold"),
        merge_local_gradients: merge("local_gradients"),
        merge_gather: merge("gather"),
        merge_reduce: merge("reduce"),
        matmul: Kernel::new(gpu, "matmul", &[STEP, matmul], "main", &read_read_write),
        conv_forward: Kernel::new(
            gpu,
            "conv_forward",
            &[STEP, WINDOWS, conv],
            "forward",
            &read_read_write,
        ),
        conv_kernel_gradient: Kernel::new(
            gpu,
            "conv_kernel_gradient",
            &[STEP, WINDOWS, conv],
            "kernel_gradient",
            &read_read_write,
        ),
        conv_input_gradient: Kernel::new(
            gpu,
            "conv_input_gradient",
            &[STEP, WINDOWS, conv],
            "input_gradient",
            &read_read_write,
        ),
        pool_forward: Kernel::new(
            gpu,
            "pool_forward",
            &[STEP, WINDOWS, pool],
            "forward",
            &[Read, Write, Write, Uniform, Uniform],
        ),
        pool_backward: Kernel::new(
            gpu,
            "pool_backward",
            &[STEP, WINDOWS, pool_backward],
            "backward",
            &[Read, Write, Read, Uniform, Uniform],
        ),
        sum_partials: Kernel::new(
            gpu,
            "sum_partials",
            &[STEP, include_str!("shaders/sum_partials.wgsl")],
            "main",
            &[Read, Write, Uniform, Uniform],
        ),
        penalty_gradient: Kernel::new(
            gpu,
            "penalty_gradient",
            &[STEP, include_str!("shaders/penalty.wgsl")],
            "gradient",
            &[Read, Write, Write, Uniform, Uniform],
        ),
        penalty_value: Kernel::new(
            gpu,
            "penalty_value",
            &[STEP, include_str!("shaders/penalty.wgsl")],
            "value",
            &[Read, Write, Write, Uniform, Uniform],
        ),
        dropout: Kernel::new(
            gpu,
            "dropout",
            &[STEP, include_str!("shaders/dropout.wgsl")],
            "main",
            &read_read_write,
        ),
        activation: Kernel::new(
            gpu,
            "activation",
            &epilogue(activation),
            "forward",
            &forward_bindings,
        ),
        softmax: Kernel::new(
            gpu,
            "softmax",
            &epilogue(activation),
            "forward_softmax",
            &forward_bindings,
        ),
        activation_backward: Kernel::new(
            gpu,
            "activation_backward",
            &epilogue(backward),
            "backward",
            &backward_bindings,
        ),
        softmax_backward: Kernel::new(
            gpu,
            "softmax_backward",
            &epilogue(backward),
            "backward_softmax",
            &backward_bindings,
        ),
        bias_gradient: Kernel::new(
            gpu,
            "bias_gradient",
            &epilogue(backward),
            "bias_gradient",
            &backward_bindings,
        ),
        loss_rows: Kernel::new(gpu, "loss", &with_math(loss), "rows", &loss_bindings),
        loss_sum: Kernel::new(
            gpu,
            "loss_sum",
            &with_math(loss),
            "sum_rows",
            &loss_bindings,
        ),
        optimizer: Kernel::new(
            gpu,
            "optimizer",
            &[STEP, optimizer],
            "main",
            &[Write, Read, Write, Write, Write, Uniform, Uniform],
        ),
    }
}

/// Workgroups `(x, y)` of 64 invocations covering `n` items, within 65,535 per dimension.
pub fn groups_for(n: usize) -> (u32, u32) {
    let groups = n.div_ceil(64).max(1) as u32;
    let x = groups.min(65_535);
    (x, groups.div_ceil(x))
}
