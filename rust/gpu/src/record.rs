//! The dispatches of one training step (or one inference or evaluation batch), recorded once
//! for buffers sized to a batch capacity and replayed every batch (kernels stop at the batch's
//! row count, written in the step uniform).

use pynn_core::kernels::activation::Activation;
use pynn_core::kernels::conv::Geometry;
use pynn_core::kernels::pool::PoolKind;
use pynn_core::ops::MergeOp;

use crate::codes::{self, activation_code, merge_code};
use crate::context::Gpu;
use crate::kernels::{groups_for, Kernel, Kernels};
use crate::params::{
    CopyParams, DotParams, EpilogueParams, LossParams, MatmulDims, MergeParams, OptimizerParams,
    PenaltyParams, SizeParams, Spec, SumParams, WindowParams, MAX_METRICS,
};
use crate::plan::{Epilogue, Op, Output, Penalty, Stage};
use pynn_core::epoch::SumsLayout;
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
    /// Each tensor's values for the batch (an Identity's output is its input's buffer).
    pub values: &'a [wgpu::Buffer],
    /// Each tensor's gradient, where it carries one.
    pub deltas: &'a [Option<wgpu::Buffer>],
    /// Per stage: whether its input's gradient is its output's buffer (an Identity or
    /// Activation whose input nothing else reads).
    pub passes_delta: &'a [bool],
    /// Per stage: pre-activations (Dense, convolution), argmax (max pooling), mask (dropout),
    /// or a merge's inputs side by side.
    pub extra: &'a [Option<wgpu::Buffer>],
    /// Per stage and input: a broadcast merge input's map (see merge.wgsl).
    pub maps: &'a [Vec<Option<wgpu::Buffer>>],
    /// Each batch's loss, metric and penalty sums.
    pub statistics: &'a wgpu::Buffer,
    /// Per-sample partial sums of a gradient, before they are added up (room for the largest).
    pub partials: &'a wgpu::Buffer,
    /// Room for a tensor's gradient that is then added to another's.
    pub scratch: &'a wgpu::Buffer,
    /// A stand-in for a binding a kernel does not read.
    pub unused: &'a wgpu::Buffer,
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
    pub(crate) fn push(
        &mut self,
        kernel: &'static Kernel,
        buffers: &[&wgpu::Buffer],
        groups: (u32, u32),
    ) {
        let bind_group = kernel.bind(self.gpu, buffers);
        self.dispatches.push(Dispatch {
            kernel,
            bind_group,
            groups,
        });
    }

    /// A kernel over `a`, `b` and `out` with its parameters, `items` invocations per sample.
    pub(crate) fn three<T: bytemuck::Pod>(
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

    pub(crate) fn matmul(&mut self, dims: MatmulDims, buffers: [&wgpu::Buffer; 3]) {
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

    /// `narrow` to or from its place in `wide` (see copy.wgsl), over `params.n` values per
    /// sample.
    pub(crate) fn copy(&mut self, params: CopyParams, narrow: &wgpu::Buffer, wide: &wgpu::Buffer) {
        let items = self.capacity * params.n as usize;
        let params = uniform(self.gpu, &params);
        let step = self.buffers.step;
        self.push(
            &self.kernels.copy,
            &[narrow, wide, &params, step],
            groups_for(items),
        );
    }

    /// One of merge.wgsl's kernels, `items` invocations per sample.
    pub(crate) fn merge_kernel(
        &mut self,
        kernel: &'static Kernel,
        [stacked, tensor, y, map]: [&wgpu::Buffer; 4],
        params: MergeParams,
        items: usize,
    ) {
        let params = uniform(self.gpu, &params);
        let step = self.buffers.step;
        let groups = groups_for(self.capacity * items);
        self.push(kernel, &[stacked, tensor, y, map, &params, step], groups);
    }

    /// The forward pass; without `training`, Dropout multiplies by `ones` (the identity).
    pub fn forward(&mut self, stages: &[Stage], sizes: &[usize], ones: Option<&wgpu::Buffer>) {
        for (s, stage) in stages.iter().enumerate() {
            self.forward_stage((s, stage), sizes, ones);
        }
    }

    /// Stage `s`'s first input, its output and what it keeps for its backward.
    pub(crate) fn stage_buffers(
        &self,
        s: usize,
        stage: &Stage,
    ) -> (wgpu::Buffer, wgpu::Buffer, Option<wgpu::Buffer>) {
        let b = &self.buffers;
        let x = b.values[stage.inputs[0]].clone();
        (x, b.values[stage.output].clone(), b.extra[s].clone())
    }

    /// Stage `s`'s forward (see [`Recorder::forward`]).
    pub fn forward_stage(
        &mut self,
        (s, stage): (usize, &Stage),
        sizes: &[usize],
        ones: Option<&wgpu::Buffer>,
    ) {
        let (x, y, extra) = self.stage_buffers(s, stage);
        let weights = self.buffers.weights.clone();
        let (in_size, out_size) = (sizes[stage.inputs[0]], sizes[stage.output]);
        match &stage.op {
            Op::Dense {
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
                self.epilogue(epilogue, out_size, &z, &y);
            }
            Op::Conv {
                geometry,
                filters,
                epilogue,
            } => {
                let z = extra.expect("pre-activations");
                let params = WindowParams::new(geometry, *filters, epilogue.kernel_offset, 0);
                let kernel = &self.kernels.conv_forward;
                let items = self.capacity * out_size;
                self.three(kernel, [&x, &weights, &z], &params, items);
                self.epilogue(epilogue, out_size, &z, &y);
            }
            Op::Pool { geometry, kind } => {
                let kernel = &self.kernels.pool_forward;
                let argmax = extra.expect("argmax");
                self.pool(kernel, geometry, *kind, [&x, &y, &argmax], out_size);
            }
            Op::Dropout(_) => {
                let mask = ones.cloned().or(extra).expect("mask");
                self.dropout([&x, &mask, &y], in_size, false);
            }
            Op::Activation(epilogue) => self.epilogue(epilogue, out_size, &x, &y),
            Op::Identity => {}
            Op::Merge {
                op,
                activation,
                operands,
            } => {
                let stacked = extra.expect("the merge's inputs");
                let params = merge_params((*op, *activation), operands.len(), out_size);
                for (k, (operand, &input)) in operands.iter().zip(&stage.inputs).enumerate() {
                    let x = self.buffers.values[input].clone();
                    match &self.buffers.maps[s][k] {
                        None => {
                            let params = side_by_side(out_size, operands.len(), k, true);
                            self.copy(params, &x, &stacked);
                        }
                        Some(map) => {
                            let map = map.clone();
                            let params = MergeParams {
                                size: operand.size as u32,
                                index: k as u32,
                                ..params
                            };
                            let unused = self.buffers.unused;
                            let buffers = [&stacked, &x, unused, &map];
                            let kernel = &self.kernels.merge_gather;
                            self.merge_kernel(kernel, buffers, params, out_size);
                        }
                    }
                }
                let unused = self.buffers.unused;
                let buffers = [&stacked, &y, unused, unused];
                let kernel = &self.kernels.merge_fold;
                self.merge_kernel(kernel, buffers, params, out_size);
            }
            Op::Concatenate { outer, runs } => {
                for (k, &input) in stage.inputs.iter().enumerate() {
                    let x = self.buffers.values[input].clone();
                    let params = concatenated(*outer, runs, k, true);
                    self.copy(params, &x, &y);
                }
            }
            Op::Dot { sides, normalize } => {
                let scales = extra.expect("the fibers' scales");
                let b = self.buffers.values[stage.inputs[1]].clone();
                let params = dot_params(sides, *normalize, (0, false));
                let [fx, fy] = Op::dot_fibers(sides);
                let buffers = [&x, &b, &scales, &x, &x, &y];
                self.dot_kernel(&self.kernels.dot_scales, buffers, params, fx + fy);
                self.dot_kernel(&self.kernels.dot_forward, buffers, params, fx * fy);
            }
        }
    }

    /// One of dot.wgsl's kernels, `items` invocations per sample.
    pub(crate) fn dot_kernel(
        &mut self,
        kernel: &'static Kernel,
        buffers: [&wgpu::Buffer; 6],
        params: DotParams,
        items: usize,
    ) {
        let params = uniform(self.gpu, &params);
        let step = self.buffers.step;
        let [x, y, scales, dy, out, target] = buffers;
        let bindings = [x, y, scales, dy, out, target, &params, step];
        self.push(kernel, &bindings, groups_for(self.capacity * items));
    }

    /// A pooling kernel over the windows of `geometry`, one invocation per value of the
    /// `per_sample` values of each sample.
    pub(crate) fn pool(
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

    /// `out = input ⊙ mask` (or `out +=`, with `accumulate`) over `per_sample` values of each
    /// sample.
    pub(crate) fn dropout(
        &mut self,
        buffers: [&wgpu::Buffer; 3],
        per_sample: usize,
        accumulate: bool,
    ) {
        let params = SizeParams {
            n: per_sample as u32,
            accumulate: accumulate as u32,
            _pad: [0; 2],
        };
        let kernel = &self.kernels.dropout;
        self.three(kernel, buffers, &params, self.capacity * per_sample);
    }

    /// `probabilities = head(logits)` over `per_sample` values of each sample, in rows of
    /// `width`: an output's head (see pynn-core's `head`), for predictions.
    pub fn head(
        &mut self,
        activation: Activation,
        (per_sample, width): (usize, usize),
        logits: &wgpu::Buffer,
        probabilities: &wgpu::Buffer,
    ) {
        let head = Epilogue::function(activation, width);
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

    /// Output `output`'s loss: its gradient into the tensor's gradient (or into scratch, where
    /// the tensor carries none), each row's values, and the batch's sums.
    pub fn loss(
        &mut self,
        params: LossParams,
        output: &Output,
        y: &wgpu::Buffer,
        row_values: &wgpu::Buffer,
    ) {
        let params = uniform(self.gpu, &params);
        let b = &self.buffers;
        let pred = &b.values[output.tensor];
        let grad = b.deltas[output.tensor].as_ref().unwrap_or(b.scratch);
        let buffers = [pred, y, grad, row_values, b.statistics, &params, b.step];
        let rows = groups_for(self.capacity * output.rows_per_sample);
        self.push(&self.kernels.loss_rows, &buffers, rows);
        self.push(&self.kernels.loss_sum, &buffers, (1, 1));
    }

    /// ∂loss/∂z in place of ∂loss/∂y, then, with `bias_gradient` (whether to add to it), the
    /// bias's gradient.
    pub(crate) fn epilogue_backward(
        &mut self,
        e: &Epilogue,
        per_sample: usize,
        [dy, z, y]: [&wgpu::Buffer; 3],
        bias_gradient: Option<bool>,
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
        if let (true, Some(accumulate)) = (e.use_bias, bias_gradient) {
            // Each sample's column sums, then their sum.
            let partials = self.buffers.partials;
            let buffers = [dy, z, y, partials, &params, step];
            let groups = groups_for(self.capacity * e.period);
            self.push(&self.kernels.bias_gradient, &buffers, groups);
            self.sum_partials(e.period, e.kernel_offset + e.kernel_len, accumulate);
        }
    }

    /// Sums the per-sample partials (`len` values each) into the gradients from `offset`, or
    /// adds them there.
    pub(crate) fn sum_partials(&mut self, len: usize, offset: usize, accumulate: bool) {
        let params = SumParams {
            len: len as u32,
            offset: offset as u32,
            accumulate: accumulate as u32,
            _pad: 0,
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
        stats_stride: usize,
        training: bool,
    ) {
        let (weights, grads) = (self.buffers.weights.clone(), self.buffers.grads.clone());
        for penalty in penalties {
            let params = penalty_params(
                stats_stride,
                (penalty.offset, penalty.len),
                (penalty.l1, penalty.l2),
                false,
            );
            self.regularizer(&weights, &grads, params, training);
        }
        for stage in stages {
            if let Some(activity) = stage_activity(stage) {
                let size = sizes[stage.output];
                let params =
                    penalty_params(stats_stride, (0, size), (activity.l1, activity.l2), true);
                let b = &self.buffers;
                let output = b.values[stage.output].clone();
                let unread = b.deltas[stage.output].as_ref().unwrap_or(b.scratch).clone();
                let kernel = &self.kernels.penalty_value;
                self.push_regularizer(kernel, &output, &unread, params, (1, 1));
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

    /// An activity regularizer's gradient into ∂loss/∂output of `stage`, before its backward.
    pub(crate) fn activity_gradient(
        &mut self,
        stage: &Stage,
        per_sample: usize,
        stats_stride: usize,
    ) {
        if let Some(activity) = stage_activity(stage) {
            let l = (activity.l1, activity.l2);
            let params = penalty_params(stats_stride, (0, per_sample), l, true);
            let b = &self.buffers;
            let output = b.values[stage.output].clone();
            let delta = b.deltas[stage.output].clone().expect("a gradient");
            let groups = groups_for(self.capacity * per_sample);
            let kernel = &self.kernels.penalty_gradient;
            self.push_regularizer(kernel, &output, &delta, params, groups);
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

/// The parameters of a merge of `inputs` inputs by `op` then `activation`, `n` output values
/// per sample.
pub(crate) fn merge_params(
    (op, activation): (MergeOp, Option<Activation>),
    inputs: usize,
    n: usize,
) -> MergeParams {
    MergeParams {
        n: n as u32,
        inputs: inputs as u32,
        op: merge_code(op),
        activation: activation_code(activation.unwrap_or(Activation::Linear)),
        ..MergeParams::default()
    }
}

/// The parameters of a `Dot` of inputs laid out as `sides`, for the gradient of input `side`
/// (written, or added with `accumulate`).
pub(crate) fn dot_params(
    sides: &[(usize, usize, usize); 2],
    normalize: bool,
    (side, accumulate): (usize, bool),
) -> DotParams {
    let [x, y] = sides.map(|(outer, len, inner)| [outer as u32, len as u32, inner as u32]);
    DotParams {
        x,
        y,
        normalize: normalize as u32,
        side: side as u32,
        accumulate: accumulate as u32,
        _pad: [0; 3],
    }
}

/// Input `k` of `inputs`, `n` values per sample each, to or from its place side by side with
/// the others (a merge's gathered inputs).
pub(crate) fn side_by_side(n: usize, inputs: usize, k: usize, to_wide: bool) -> CopyParams {
    CopyParams {
        n: n as u32,
        run: n as u32,
        wide_n: (inputs * n) as u32,
        wide_run: (inputs * n) as u32,
        offset: (k * n) as u32,
        to_wide: to_wide as u32,
        ..CopyParams::default()
    }
}

/// Input `k` of a concatenation of `outer` runs of `runs` to or from its place in the output.
pub(crate) fn concatenated(outer: usize, runs: &[usize], k: usize, to_wide: bool) -> CopyParams {
    let wide_run: usize = runs.iter().sum();
    CopyParams {
        n: (outer * runs[k]) as u32,
        run: runs[k] as u32,
        wide_n: (outer * wide_run) as u32,
        wide_run: wide_run as u32,
        offset: runs[..k].iter().sum::<usize>() as u32,
        to_wide: to_wide as u32,
        ..CopyParams::default()
    }
}

fn stage_activity(stage: &Stage) -> Option<Regularizer> {
    match &stage.op {
        Op::Dense { epilogue, .. } | Op::Conv { epilogue, .. } => epilogue.activity,
        _ => None,
    }
}

/// The parameters of a regularizer over `len` values from `offset` (per sample, for outputs),
/// its value going to the last of each batch's `stats_stride` statistics.
fn penalty_params(
    stats_stride: usize,
    (offset, len): (usize, usize),
    (l1, l2): (f32, f32),
    per_sample: bool,
) -> PenaltyParams {
    PenaltyParams {
        offset: offset as u32,
        len: len as u32,
        slot: (stats_stride - 1) as u32,
        stride: stats_stride as u32,
        l1,
        l2,
        per_sample: per_sample as u32,
        _pad: 0,
    }
}

/// Statistics per batch, laid out as pynn-core's `SumsLayout` says.
pub fn statistics_stride(outputs: &[Output]) -> usize {
    SumsLayout::stride(outputs.iter().map(|o| &o.spec))
}

/// The loss kernel's parameters for `output`, its sums from `stats_offset` of each batch's
/// `stats_stride`; with a head, the loss kernel reads logits.
pub fn loss_params(
    output: &Output,
    (stats_offset, stats_stride): (usize, usize),
    (loss, metrics): (Spec, &[Spec]),
    accumulate: bool,
) -> LossParams {
    let mut all = [Spec::default(); MAX_METRICS];
    all[..metrics.len()].copy_from_slice(metrics);
    LossParams {
        width: output.width as u32,
        target_width: output.spec.target_width(output.width) as u32,
        n_metrics: metrics.len() as u32,
        stats_stride: stats_stride as u32,
        loss,
        metrics: all,
        head: output.head.map_or(0, activation_code),
        loss_weight: output.spec.weight,
        rows_per_sample: output.rows_per_sample as u32,
        stats_offset: stats_offset as u32,
        accumulate: accumulate as u32,
        _pad: [0; 3],
    }
}
