//! The uniform parameter blocks of the shaders, laid out as WGSL lays out their structs.

use bytemuck::{Pod, Zeroable};
use pynn_core::kernels::conv::Geometry;

/// `step.wgsl`'s `Step`: what changes from one step to the next.
#[repr(C)]
#[derive(Clone, Copy, Default, Pod, Zeroable)]
pub struct StepParams {
    pub rows: u32,
    pub batch: u32,
    pub _pad: [u32; 2],
    pub learning_rate: f32,
    pub momentum: f32,
    pub alpha: f32,
    pub c1: f32,
    pub c2: f32,
    pub epsilon: f32,
    pub _pad2: [u32; 2],
}

/// A loss or metric, as `loss.wgsl`'s `Spec`.
#[repr(C)]
#[derive(Clone, Copy, Default, Pod, Zeroable)]
pub struct Spec {
    pub kind: u32,
    pub from_logits: u32,
    pub value: f32,
    pub _pad: u32,
}

pub const MAX_METRICS: usize = 4;

#[repr(C)]
#[derive(Clone, Copy, Default, Pod, Zeroable)]
pub struct LossParams {
    pub width: u32,
    pub target_width: u32,
    pub n_metrics: u32,
    pub stats_stride: u32,
    pub loss: Spec,
    pub metrics: [Spec; MAX_METRICS],
    /// The activation code of the output's head (0: none): `pred` then holds logits.
    pub head: u32,
    /// The loss's weight (Keras's `loss_weights`): it scales the loss's gradient.
    pub loss_weight: f32,
    /// Rows per sample of the output, and where its sums start in a batch's statistics.
    pub rows_per_sample: u32,
    pub stats_offset: u32,
    /// 1: add the gradient to what the buffer holds (an output given twice).
    pub accumulate: u32,
    pub _pad: [u32; 3],
}

#[repr(C)]
#[derive(Clone, Copy, Default, Pod, Zeroable)]
pub struct MatmulDims {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub accumulate: u32,
    pub a_offset: u32,
    pub a_row: u32,
    pub a_col: u32,
    pub b_offset: u32,
    pub b_row: u32,
    pub b_col: u32,
    pub c_offset: u32,
    /// Rows per sample where `m` or `k` is 0 (the batch's rows).
    pub rows_per_sample: u32,
}

/// The epilogue of a Dense or convolution layer: bias and activation.
#[repr(C)]
#[derive(Clone, Copy, Default, Pod, Zeroable)]
pub struct EpilogueParams {
    pub n: u32,
    pub activation: u32,
    pub use_bias: u32,
    pub bias_offset: u32,
    pub period: u32,
    pub _pad: [u32; 3],
}

/// `windows.wgsl`'s `Windows`.
#[repr(C)]
#[derive(Clone, Copy, Default, Pod, Zeroable)]
pub struct WindowParams {
    pub in_h: u32,
    pub in_w: u32,
    pub channels: u32,
    pub filters: u32,
    pub out_h: u32,
    pub out_w: u32,
    pub k_h: u32,
    pub k_w: u32,
    pub stride_h: u32,
    pub stride_w: u32,
    pub dilation_h: u32,
    pub dilation_w: u32,
    pub pad_h: u32,
    pub pad_w: u32,
    pub offset: u32,
    pub kind: u32,
}

impl WindowParams {
    pub fn new(g: &Geometry, filters: usize, offset: usize, kind: u32) -> Self {
        WindowParams {
            in_h: g.rows.input as u32,
            in_w: g.cols.input as u32,
            channels: g.channels as u32,
            filters: filters as u32,
            out_h: g.rows.output as u32,
            out_w: g.cols.output as u32,
            k_h: g.rows.kernel as u32,
            k_w: g.cols.kernel as u32,
            stride_h: g.rows.stride as u32,
            stride_w: g.cols.stride as u32,
            dilation_h: g.rows.dilation as u32,
            dilation_w: g.cols.dilation as u32,
            pad_h: g.rows.pad_before as u32,
            pad_w: g.cols.pad_before as u32,
            offset: offset as u32,
            kind,
        }
    }
}

/// `sum_partials.wgsl`'s parameters: `len` values per sample, added into the gradients from
/// `offset`.
#[repr(C)]
#[derive(Clone, Copy, Default, Pod, Zeroable)]
pub struct SumParams {
    pub len: u32,
    pub offset: u32,
    /// 1: add to the gradients (a shared layer's later call) instead of writing them.
    pub accumulate: u32,
    pub _pad: u32,
}

/// Values per sample, for the element-wise kernels (dropout); `accumulate`: add to the output.
#[repr(C)]
#[derive(Clone, Copy, Default, Pod, Zeroable)]
pub struct SizeParams {
    pub n: u32,
    pub accumulate: u32,
    pub _pad: [u32; 2],
}

/// `copy.wgsl`'s parameters: a narrow tensor's place in a wide one.
#[repr(C)]
#[derive(Clone, Copy, Default, Pod, Zeroable)]
pub struct CopyParams {
    pub n: u32,
    pub run: u32,
    pub wide_n: u32,
    pub wide_run: u32,
    pub offset: u32,
    pub to_wide: u32,
    pub accumulate: u32,
    pub _pad: u32,
}

impl CopyParams {
    /// The whole of a tensor of `n` values per sample onto another of the same size.
    pub fn whole(n: usize, accumulate: bool) -> Self {
        CopyParams {
            n: n as u32,
            run: n as u32,
            wide_n: n as u32,
            wide_run: n as u32,
            accumulate: accumulate as u32,
            ..CopyParams::default()
        }
    }
}

/// `merge.wgsl`'s parameters.
#[repr(C)]
#[derive(Clone, Copy, Default, Pod, Zeroable)]
pub struct MergeParams {
    pub n: u32,
    pub inputs: u32,
    pub op: u32,
    pub activation: u32,
    pub size: u32,
    pub index: u32,
    pub accumulate: u32,
    pub _pad: u32,
}

/// `penalty.wgsl`'s parameters: one regularized range of the weights.
#[repr(C)]
#[derive(Clone, Copy, Default, Pod, Zeroable)]
pub struct PenaltyParams {
    pub offset: u32,
    pub len: u32,
    pub slot: u32,
    pub stride: u32,
    pub l1: f32,
    pub l2: f32,
    pub per_sample: u32,
    pub _pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Default, Pod, Zeroable)]
pub struct OptimizerParams {
    /// The weights stepped: `n` from `offset` (one trainable range).
    pub n: u32,
    pub kind: u32,
    pub nesterov: u32,
    pub centered: u32,
    pub offset: u32,
    pub _pad: [u32; 3],
}

/// `dot.wgsl`'s parameters: each input's `(outer, len, inner)` around its axis.
#[repr(C)]
#[derive(Clone, Copy, Default, Pod, Zeroable)]
pub struct DotParams {
    pub x: [u32; 3],
    pub y: [u32; 3],
    pub normalize: u32,
    pub side: u32,
    pub accumulate: u32,
    pub _pad: [u32; 3],
}
