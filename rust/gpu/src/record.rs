//! The dispatches of one training step (or one inference or evaluation batch), recorded once
//! for buffers sized to a batch capacity and replayed every batch (kernels stop at the batch's
//! row count, written in the step uniform).

use pynn_core::kernels::activation::Activation;
use pynn_core::kernels::conv::Geometry;
use pynn_core::kernels::pool::PoolKind;

use crate::codes::{self, activation_code};
use crate::context::Gpu;
use crate::kernels::{groups_for, Kernel, Kernels};
use crate::params::{
    EpilogueParams, LossParams, MatmulDims, OptimizerParams, PenaltyParams, SizeParams, Spec,
    SumParams, WindowParams, MAX_METRICS,
};
use crate::plan::{Epilogue, Penalty, Stage};
use pynn_core::regularizers::Regularizer;

pub struct Dispatch {
    pub kernel: &'static Kernel,
    pub bind_group: wgpu::BindGroup,
    pub groups: (u32, u32),
}

/// The buffers a step's dispatches read and write.
pub struct StepBuffers<'a> {
    pub weights: &'a wgpu::Buffer,
    pub grads: &'a wgpu::Buffer,
    pub step: &'a wgpu::Buffer,
    /// Activation i of each sample (0: the input).
    pub acts: &'a [wgpu::Buffer],
    /// ∂loss/∂activation i.
    pub deltas: &'a [wgpu::Buffer],
    /// Per stage: pre-activations (Dense, convolution), argmax (max pooling) or mask (dropout).
    pub extra: &'a [Option<wgpu::Buffer>],
    /// Each batch's loss, metric and penalty sums.
    pub statistics: &'a wgpu::Buffer,
    /// Per-sample partial sums of a gradient, before they are added up (room for the largest).
    pub partials: &'a wgpu::Buffer,
}

pub struct Recorder<'a> {
    pub gpu: &'static Gpu,
    pub kernels: &'static Kernels,
    pub buffers: StepBuffers<'a>,
    /// Samples per batch the buffers hold.
    pub capacity: usize,
    pub dispatches: Vec<Dispatch>,
}

pub fn uniform<T: bytemuck::Pod>(gpu: &Gpu, value: &T) -> wgpu::Buffer {
    let buffer = gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("parameters"),
        size: std::mem::size_of::<T>() as u64,
        usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    gpu.queue
        .write_buffer(&buffer, 0, bytemuck::bytes_of(value));
    buffer
}

fn epilogue_params(e: &Epilogue, per_sample: usize) -> EpilogueParams {
    EpilogueParams {
        n: per_sample as u32,
        activation: activation_code(e.activation),
        use_bias: e.use_bias as u32,
        bias_offset: (e.kernel_offset + e.kernel_len) as u32,
        period: e.period as u32,
        _pad: [0; 3],
    }
}

impl Recorder<'_> {
    fn push(&mut self, kernel: &'static Kernel, buffers: &[&wgpu::Buffer], groups: (u32, u32)) {
        let bind_group = kernel.bind(self.gpu, buffers);
        self.dispatches.push(Dispatch {
            kernel,
            bind_group,
            groups,
        });
    }

    /// A kernel over `a`, `b` and `out` with its parameters, `items` invocations per sample.
    fn three<T: bytemuck::Pod>(
        &mut self,
        kernel: &'static Kernel,
        [a, b, out]: [&wgpu::Buffer; 3],
        params: &T,
        items: usize,
    ) {
        let params = uniform(self.gpu, params);
        let step = self.buffers.step;
        self.push(kernel, &[a, b, out, &params, step], groups_for(items));
    }

    fn matmul(&mut self, dims: MatmulDims, buffers: [&wgpu::Buffer; 3]) {
        let m = if dims.m == 0 {
            self.capacity * dims.rows_per_sample as usize
        } else {
            dims.m as usize
        };
        let params = uniform(self.gpu, &dims);
        // 64x64 blocks of C per workgroup (matmul.wgsl).
        let groups = ((dims.n as usize).div_ceil(64) as u32, m.div_ceil(64) as u32);
        let step = self.buffers.step;
        let kernel = &self.kernels.matmul;
        self.push(
            kernel,
            &[buffers[0], buffers[1], buffers[2], &params, step],
            groups,
        );
    }

    /// The forward pass; without `training`, Dropout multiplies by `ones` (the identity).
    pub fn forward(&mut self, stages: &[Stage], sizes: &[usize], ones: Option<&wgpu::Buffer>) {
        for (i, stage) in stages.iter().enumerate() {
            let b = &self.buffers;
            let (x, y, extra) = (b.acts[i].clone(), b.acts[i + 1].clone(), b.extra[i].clone());
            let weights = self.buffers.weights.clone();
            match stage {
                Stage::Dense {
                    inputs,
                    rows_per_sample,
                    units,
                    epilogue,
                } => {
                    let z = extra.expect("pre-activations");
                    let dims = MatmulDims {
                        n: *units as u32,
                        k: *inputs as u32,
                        a_row: *inputs as u32,
                        a_col: 1,
                        b_offset: epilogue.kernel_offset as u32,
                        b_row: *units as u32,
                        b_col: 1,
                        rows_per_sample: *rows_per_sample as u32,
                        ..MatmulDims::default()
                    };
                    self.matmul(dims, [&x, &weights, &z]);
                    self.epilogue(epilogue, sizes[i + 1], &z, &y);
                }
                Stage::Conv {
                    geometry,
                    filters,
                    epilogue,
                } => {
                    let z = extra.expect("pre-activations");
                    let params = WindowParams::new(geometry, *filters, epilogue.kernel_offset, 0);
                    let kernel = &self.kernels.conv_forward;
                    self.three(
                        kernel,
                        [&x, &weights, &z],
                        &params,
                        self.capacity * sizes[i + 1],
                    );
                    self.epilogue(epilogue, sizes[i + 1], &z, &y);
                }
                Stage::Pool { geometry, kind } => {
                    let kernel = &self.kernels.pool_forward;
                    let argmax = extra.expect("argmax");
                    self.pool(kernel, geometry, *kind, [&x, &y, &argmax], sizes[i + 1]);
                }
                Stage::Dropout(_) => {
                    let mask = ones.cloned().or(extra).expect("mask");
                    self.dropout([&x, &mask, &y], sizes[i]);
                }
                Stage::Activation(epilogue) => self.epilogue(epilogue, sizes[i + 1], &x, &y),
                Stage::Identity => {}
            }
        }
    }

    /// A pooling kernel over the windows of `geometry`, one invocation per value of the
    /// `per_sample` values of each sample.
    fn pool(
        &mut self,
        kernel: &'static Kernel,
        geometry: &Geometry,
        kind: PoolKind,
        buffers: [&wgpu::Buffer; 3],
        per_sample: usize,
    ) {
        let kind = match kind {
            PoolKind::Max => codes::pool::MAX_POOL,
            PoolKind::Average => codes::pool::AVERAGE_POOL,
        };
        let params = WindowParams::new(geometry, 0, 0, kind);
        self.three(kernel, buffers, &params, self.capacity * per_sample);
    }

    /// `out = input ⊙ mask` over `per_sample` values of each sample.
    fn dropout(&mut self, buffers: [&wgpu::Buffer; 3], per_sample: usize) {
        let params = SizeParams {
            n: per_sample as u32,
            _pad: [0; 3],
        };
        let kernel = &self.kernels.dropout;
        self.three(kernel, buffers, &params, self.capacity * per_sample);
    }

    /// `probabilities = head(logits)` over `per_sample` values of each sample, in rows of
    /// `width`: the network's head (see pynn-core's `head`), for predictions.
    pub fn head(
        &mut self,
        activation: Activation,
        (per_sample, width): (usize, usize),
        logits: &wgpu::Buffer,
        probabilities: &wgpu::Buffer,
    ) {
        let head = Epilogue {
            activation,
            use_bias: false,
            kernel_offset: 0,
            kernel_len: 0,
            period: width,
            activity: None,
        };
        self.epilogue(&head, per_sample, logits, probabilities);
    }

    /// z += bias, y = f(z).
    fn epilogue(&mut self, e: &Epilogue, per_sample: usize, z: &wgpu::Buffer, y: &wgpu::Buffer) {
        let params = uniform(self.gpu, &epilogue_params(e, per_sample));
        let (kernel, items) = match e.activation {
            Activation::Softmax => (&self.kernels.softmax, per_sample / e.period),
            _ => (&self.kernels.activation, per_sample),
        };
        let (weights, step) = (self.buffers.weights, self.buffers.step);
        let groups = groups_for(self.capacity * items);
        self.push(kernel, &[z, y, weights, &params, step], groups);
    }

    /// The loss's gradient into the last delta, each row's values, and the batch's sums.
    pub fn loss(
        &mut self,
        params: LossParams,
        y: &wgpu::Buffer,
        rows_per_sample: usize,
        row_values: &wgpu::Buffer,
        statistics: &wgpu::Buffer,
    ) {
        let params = uniform(self.gpu, &params);
        let last = self.buffers.acts.len() - 1;
        let (pred, grad) = (
            self.buffers.acts[last].clone(),
            self.buffers.deltas[last].clone(),
        );
        let step = self.buffers.step;
        let buffers = [&pred, y, &grad, row_values, statistics, &params, step];
        let rows = groups_for(self.capacity * rows_per_sample);
        self.push(&self.kernels.loss_rows, &buffers, rows);
        self.push(&self.kernels.loss_sum, &buffers, (1, 1));
    }

    pub fn backward(&mut self, stages: &[Stage], sizes: &[usize], n_metrics: usize) {
        for (i, stage) in stages.iter().enumerate().rev() {
            self.activity_gradient(stage, i, sizes[i + 1], n_metrics);
            let b = &self.buffers;
            let (x, y, extra) = (b.acts[i].clone(), b.acts[i + 1].clone(), b.extra[i].clone());
            let (dy, dx) = (b.deltas[i + 1].clone(), b.deltas[i].clone());
            let (weights, grads) = (b.weights.clone(), b.grads.clone());
            match stage {
                Stage::Dense {
                    inputs,
                    rows_per_sample,
                    units,
                    epilogue,
                } => {
                    let z = extra.expect("pre-activations");
                    let rows_per_sample = *rows_per_sample as u32;
                    self.epilogue_backward(epilogue, sizes[i + 1], &dy, &z, &y);
                    // ∂kernel = xᵀ·dz, summed over the batch's rows.
                    let kernel_gradient = MatmulDims {
                        m: *inputs as u32,
                        n: *units as u32,
                        a_row: 1,
                        a_col: *inputs as u32,
                        b_row: *units as u32,
                        b_col: 1,
                        c_offset: epilogue.kernel_offset as u32,
                        rows_per_sample,
                        ..MatmulDims::default()
                    };
                    self.matmul(kernel_gradient, [&x, &dy, &grads]);
                    if i > 0 {
                        // ∂x = dz·kernelᵀ.
                        let input_gradient = MatmulDims {
                            n: *inputs as u32,
                            k: *units as u32,
                            a_row: *units as u32,
                            a_col: 1,
                            b_offset: epilogue.kernel_offset as u32,
                            b_row: 1,
                            b_col: *units as u32,
                            rows_per_sample,
                            ..MatmulDims::default()
                        };
                        self.matmul(input_gradient, [&dy, &weights, &dx]);
                    }
                }
                Stage::Conv {
                    geometry,
                    filters,
                    epilogue,
                } => {
                    let z = extra.expect("pre-activations");
                    self.epilogue_backward(epilogue, sizes[i + 1], &dy, &z, &y);
                    let params = WindowParams::new(geometry, *filters, epilogue.kernel_offset, 0);
                    // Each image's part of each kernel value, then their sum.
                    let kernel = &self.kernels.conv_kernel_gradient;
                    let partials = self.buffers.partials.clone();
                    let len = epilogue.kernel_len;
                    let items = self.capacity * len;
                    self.three(kernel, [&x, &dy, &partials], &params, items);
                    self.sum_partials(len, epilogue.kernel_offset);
                    if i > 0 {
                        let kernel = &self.kernels.conv_input_gradient;
                        self.three(
                            kernel,
                            [&dy, &weights, &dx],
                            &params,
                            self.capacity * sizes[i],
                        );
                    }
                }
                Stage::Pool { geometry, kind } if i > 0 => {
                    let kernel = &self.kernels.pool_backward;
                    let argmax = extra.expect("argmax");
                    self.pool(kernel, geometry, *kind, [&dy, &dx, &argmax], sizes[i]);
                }
                Stage::Dropout(_) if i > 0 => {
                    let mask = extra.expect("mask");
                    self.dropout([&dy, &mask, &dx], sizes[i]);
                }
                // In place: the stage's output gradient is its input's buffer.
                Stage::Activation(epilogue) => {
                    self.epilogue_backward(epilogue, sizes[i + 1], &dy, &x, &y)
                }
                _ => {}
            }
        }
    }

    /// ∂loss/∂z in place of ∂loss/∂y, then the bias's gradient.
    fn epilogue_backward(
        &mut self,
        e: &Epilogue,
        per_sample: usize,
        dy: &wgpu::Buffer,
        z: &wgpu::Buffer,
        y: &wgpu::Buffer,
    ) {
        let params = uniform(self.gpu, &epilogue_params(e, per_sample));
        let (grads, step) = (self.buffers.grads, self.buffers.step);
        let buffers = [dy, z, y, grads, &params, step];
        let slope = match e.activation {
            Activation::Linear => None,
            Activation::Softmax => Some((&self.kernels.softmax_backward, per_sample / e.period)),
            _ => Some((&self.kernels.activation_backward, per_sample)),
        };
        if let Some((kernel, items)) = slope {
            self.push(kernel, &buffers, groups_for(self.capacity * items));
        }
        if e.use_bias {
            // Each sample's column sums, then their sum.
            let partials = self.buffers.partials;
            let buffers = [dy, z, y, partials, &params, step];
            let groups = groups_for(self.capacity * e.period);
            self.push(&self.kernels.bias_gradient, &buffers, groups);
            self.sum_partials(e.period, e.kernel_offset + e.kernel_len);
        }
    }

    /// Adds the per-sample partials (`len` values each) into the gradients from `offset`.
    fn sum_partials(&mut self, len: usize, offset: usize) {
        let params = SumParams {
            len: len as u32,
            offset: offset as u32,
            _pad: [0; 2],
        };
        let params = uniform(self.gpu, &params);
        let b = &self.buffers;
        let buffers = [b.partials, b.grads, &params, b.step];
        self.push(&self.kernels.sum_partials, &buffers, groups_for(len));
    }

    /// The regularizers: each one's value into each batch's penalty slot and, for training,
    /// the weight regularizers' gradients into the weights' gradients (an activity
    /// regularizer's gradient joins the backward, at its layer).
    pub fn penalties(
        &mut self,
        penalties: &[Penalty],
        stages: &[Stage],
        sizes: &[usize],
        n_metrics: usize,
        training: bool,
    ) {
        let (weights, grads) = (self.buffers.weights.clone(), self.buffers.grads.clone());
        for penalty in penalties {
            let params = penalty_params(
                n_metrics,
                penalty.offset,
                penalty.len,
                penalty.l1,
                penalty.l2,
                false,
            );
            self.regularizer(&weights, &grads, params, training);
        }
        for (i, stage) in stages.iter().enumerate() {
            if let Some(activity) = stage_activity(stage) {
                let params =
                    penalty_params(n_metrics, 0, sizes[i + 1], activity.l1, activity.l2, true);
                let (output, delta) = (
                    self.buffers.acts[i + 1].clone(),
                    self.buffers.deltas[i + 1].clone(),
                );
                self.push_regularizer(&self.kernels.penalty_value, &output, &delta, params, (1, 1));
            }
        }
    }

    /// A regularizer's value and, with `gradient`, its gradient.
    fn regularizer(
        &mut self,
        values: &wgpu::Buffer,
        gradients: &wgpu::Buffer,
        params: PenaltyParams,
        gradient: bool,
    ) {
        self.push_regularizer(
            &self.kernels.penalty_value,
            values,
            gradients,
            params,
            (1, 1),
        );
        if gradient {
            let groups = groups_for(params.len as usize);
            self.push_regularizer(
                &self.kernels.penalty_gradient,
                values,
                gradients,
                params,
                groups,
            );
        }
    }

    fn push_regularizer(
        &mut self,
        kernel: &'static Kernel,
        values: &wgpu::Buffer,
        gradients: &wgpu::Buffer,
        params: PenaltyParams,
        groups: (u32, u32),
    ) {
        let params = uniform(self.gpu, &params);
        let b = &self.buffers;
        self.push(
            kernel,
            &[values, gradients, b.statistics, &params, b.step],
            groups,
        );
    }

    /// An activity regularizer's gradient into ∂loss/∂output of layer `i`, before its backward.
    fn activity_gradient(&mut self, stage: &Stage, i: usize, per_sample: usize, n_metrics: usize) {
        if let Some(activity) = stage_activity(stage) {
            let params = penalty_params(n_metrics, 0, per_sample, activity.l1, activity.l2, true);
            let (output, delta) = (
                self.buffers.acts[i + 1].clone(),
                self.buffers.deltas[i + 1].clone(),
            );
            let groups = groups_for(self.capacity * per_sample);
            self.push_regularizer(
                &self.kernels.penalty_gradient,
                &output,
                &delta,
                params,
                groups,
            );
        }
    }

    pub fn optimizer(&mut self, params: OptimizerParams, [m, v, a]: [&wgpu::Buffer; 3]) {
        let n = params.n as usize;
        let params = uniform(self.gpu, &params);
        let b = &self.buffers;
        let buffers = [b.weights, b.grads, m, v, a, &params, b.step];
        self.push(&self.kernels.optimizer, &buffers, groups_for(n));
    }
}

fn stage_activity(stage: &Stage) -> Option<Regularizer> {
    match stage {
        Stage::Dense { epilogue, .. } | Stage::Conv { epilogue, .. } => epilogue.activity,
        _ => None,
    }
}

/// The parameters of a regularizer over `len` values from `offset` (per sample, for outputs).
fn penalty_params(
    n_metrics: usize,
    offset: usize,
    len: usize,
    l1: f32,
    l2: f32,
    per_sample: bool,
) -> PenaltyParams {
    let stride = statistics_stride(n_metrics);
    PenaltyParams {
        offset: offset as u32,
        len: len as u32,
        slot: (stride - 1) as u32,
        stride: stride as u32,
        l1,
        l2,
        per_sample: per_sample as u32,
        _pad: 0,
    }
}

/// Statistics per batch: the loss's sum, each metric's sum, the weights' penalty.
pub fn statistics_stride(n_metrics: usize) -> usize {
    2 + n_metrics
}

/// The loss kernel's parameters; with a `head`, the loss kernel reads logits.
pub fn loss_params(
    (width, target_width): (usize, usize),
    (loss, loss_weight): (Spec, f32),
    metrics: &[Spec],
    head: Option<Activation>,
) -> LossParams {
    let mut all = [Spec::default(); MAX_METRICS];
    all[..metrics.len()].copy_from_slice(metrics);
    LossParams {
        width: width as u32,
        target_width: target_width as u32,
        n_metrics: metrics.len() as u32,
        stats_stride: statistics_stride(metrics.len()) as u32,
        loss,
        metrics: all,
        head: head.map_or(0, activation_code),
        loss_weight,
        _pad: [0; 2],
    }
}
