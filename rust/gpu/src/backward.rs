//! A node's backward, recorded along its route from the core (`pynn_core::graph::Routes`): each
//! input's gradient written where it is the first to arrive and added where it is a later one,
//! and a shared layer's weight gradients likewise. Kernels that cannot add write into scratch,
//! which is then added.

use pynn_core::graph::{Arrival, NodeRoute};

use crate::params::{CopyParams, MatmulDims, MergeParams, WindowParams};
use crate::plan::{Op, Stage};
use crate::record::{concatenated, dot_params, merge_params, side_by_side, Recorder};

/// Where one input's gradient goes: its buffer, and whether it adds to what that holds.
type Target = Option<(wgpu::Buffer, bool)>;

/// Whether a gradient that arrives so adds to what is there (`None`: it is not computed).
fn adds(arrival: Arrival) -> Option<bool> {
    match arrival {
        Arrival::None => None,
        Arrival::First => Some(false),
        Arrival::Later => Some(true),
    }
}

impl Recorder<'_> {
    /// The backward of one node of `stages` along its route: its activity regularizer's
    /// gradient, then its own.
    pub fn backward_node(
        &mut self,
        stages: &[Stage],
        route: &NodeRoute,
        sizes: &[usize],
        stats_stride: usize,
    ) {
        let stage = &stages[route.node];
        self.activity_gradient(stage, sizes[stage.output], stats_stride);
        self.stage_backward(stage, route, sizes);
    }

    /// Where the gradient of input `k` of `stage` goes, if it is computed.
    fn target(&self, stage: &Stage, route: &NodeRoute, k: usize) -> Target {
        let accumulate = adds(route.inputs[k])?;
        let buffer = self.buffers.deltas[stage.inputs[k]].clone();
        Some((
            buffer.expect("a tensor with a gradient has a buffer"),
            accumulate,
        ))
    }

    fn stage_backward(&mut self, stage: &Stage, route: &NodeRoute, sizes: &[usize]) {
        let s = route.node;
        let (x, y, extra) = self.stage_buffers(s, stage);
        let b = &self.buffers;
        let dy = b.deltas[stage.output].clone().expect("a gradient");
        let (weights, grads) = (b.weights.clone(), b.grads.clone());
        let (in_size, out_size) = (sizes[stage.inputs[0]], sizes[stage.output]);
        let weight_gradients = adds(route.weights);
        match &stage.op {
            Op::Dense {
                inputs,
                rows_per_sample,
                units,
                epilogue,
            } => {
                let z = extra.expect("pre-activations");
                let rows_per_sample = *rows_per_sample as u32;
                let buffers = [&dy, &z, &y];
                self.epilogue_backward(epilogue, out_size, buffers, weight_gradients);
                if let Some(accumulate) = weight_gradients {
                    // ∂kernel = xᵀ·dz, summed over the batch's rows.
                    let kernel_gradient = MatmulDims {
                        m: *inputs as u32,
                        n: *units as u32,
                        a_row: 1,
                        a_col: *inputs as u32,
                        b_row: *units as u32,
                        b_col: 1,
                        c_offset: epilogue.kernel_offset as u32,
                        accumulate: accumulate as u32,
                        rows_per_sample,
                        ..MatmulDims::default()
                    };
                    self.matmul(kernel_gradient, [&x, &dy, &grads]);
                }
                if let Some((dx, accumulate)) = self.target(stage, route, 0) {
                    // ∂x = dz·kernelᵀ.
                    let input_gradient = MatmulDims {
                        n: *inputs as u32,
                        k: *units as u32,
                        accumulate: accumulate as u32,
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
            Op::Conv {
                geometry,
                filters,
                epilogue,
            } => {
                let z = extra.expect("pre-activations");
                let buffers = [&dy, &z, &y];
                self.epilogue_backward(epilogue, out_size, buffers, weight_gradients);
                let params = WindowParams::new(geometry, *filters, epilogue.kernel_offset, 0);
                if let Some(accumulate) = weight_gradients {
                    // Each image's part of each kernel value, then their sum.
                    let kernel = &self.kernels.conv_kernel_gradient;
                    let partials = self.buffers.partials.clone();
                    let len = epilogue.kernel_len;
                    let items = self.capacity * len;
                    self.three(kernel, [&x, &dy, &partials], &params, items);
                    self.sum_partials(len, epilogue.kernel_offset, accumulate);
                }
                if let Some(target) = self.target(stage, route, 0) {
                    let kernel = &self.kernels.conv_input_gradient;
                    let items = self.capacity * in_size;
                    self.through_scratch(target, in_size, |r, dx| {
                        r.three(kernel, [&dy, &weights, dx], &params, items)
                    });
                }
            }
            Op::Pool { geometry, kind } => {
                if let Some(target) = self.target(stage, route, 0) {
                    let kernel = &self.kernels.pool_backward;
                    let argmax = extra.expect("argmax");
                    self.through_scratch(target, in_size, |r, dx| {
                        r.pool(kernel, geometry, *kind, [&dy, dx, &argmax], in_size)
                    });
                }
            }
            Op::Dropout(_) => {
                if let Some((dx, accumulate)) = self.target(stage, route, 0) {
                    let mask = extra.expect("mask");
                    self.dropout([&dy, &mask, &dx], in_size, accumulate);
                }
            }
            Op::Activation(epilogue) => {
                // In place on the output's gradient, which is then the input's (or is added to
                // it).
                self.epilogue_backward(epilogue, out_size, [&dy, &x, &y], None);
                self.hand_on((s, stage, route), (&dy, in_size));
            }
            Op::Identity => self.hand_on((s, stage, route), (&dy, in_size)),
            Op::Merge {
                op,
                activation,
                operands,
            } => {
                let stacked = extra.expect("the merge's inputs");
                let params = merge_params((*op, *activation), operands.len(), out_size);
                let kernel = &self.kernels.merge_local_gradients;
                let map = self.buffers.unused;
                self.merge_kernel(kernel, [&stacked, &dy, &y, map], params, out_size);
                for (k, operand) in operands.iter().enumerate() {
                    let Some((dx, accumulate)) = self.target(stage, route, k) else {
                        continue;
                    };
                    match self.buffers.maps[s][k].clone() {
                        None => {
                            let params = CopyParams {
                                accumulate: accumulate as u32,
                                ..side_by_side(out_size, operands.len(), k, false)
                            };
                            self.copy(params, &dx, &stacked);
                        }
                        Some(map) => {
                            let params = MergeParams {
                                size: operand.size as u32,
                                index: k as u32,
                                accumulate: accumulate as u32,
                                ..params
                            };
                            let kernel = &self.kernels.merge_reduce;
                            let unused = self.buffers.unused;
                            let buffers = [&stacked, &dx, unused, &map];
                            self.merge_kernel(kernel, buffers, params, operand.size);
                        }
                    }
                }
            }
            Op::Dot { sides, normalize } => {
                let scales = extra.expect("the fibers' scales");
                let b = self.buffers.values[stage.inputs[1]].clone();
                for (k, side) in sides.iter().enumerate() {
                    if let Some((dx, accumulate)) = self.target(stage, route, k) {
                        let params = dot_params(sides, *normalize, (k, accumulate));
                        let buffers = [&x, &b, &scales, &dy, &y, &dx];
                        let kernel = &self.kernels.dot_input_gradient;
                        self.dot_kernel(kernel, buffers, params, side.0 * side.1 * side.2);
                    }
                }
            }
            Op::Concatenate { outer, runs } => {
                for k in 0..stage.inputs.len() {
                    if let Some((dx, accumulate)) = self.target(stage, route, k) {
                        let params = CopyParams {
                            accumulate: accumulate as u32,
                            ..concatenated(*outer, runs, k, false)
                        };
                        self.copy(params, &dx, &dy);
                    }
                }
            }
        }
    }

    /// An Identity's or Activation's output gradient `dy` as its input's: nothing to do where
    /// they share a buffer, else written or added there.
    fn hand_on(
        &mut self,
        (s, stage, route): (usize, &Stage, &NodeRoute),
        (dy, per_sample): (&wgpu::Buffer, usize),
    ) {
        let shared = self.buffers.passes_delta[s];
        match self.target(stage, route, 0) {
            Some(_) if shared => {}
            Some((dx, accumulate)) => {
                self.copy(CopyParams::whole(per_sample, accumulate), &dx, dy);
            }
            None => {}
        }
    }

    /// Runs `write` into the gradient `target`, or into scratch that is then added to it.
    fn through_scratch(
        &mut self,
        (dx, accumulate): (wgpu::Buffer, bool),
        per_sample: usize,
        write: impl FnOnce(&mut Self, &wgpu::Buffer),
    ) {
        if !accumulate {
            return write(self, &dx);
        }
        let scratch = self.buffers.scratch.clone();
        write(self, &scratch);
        self.copy(CopyParams::whole(per_sample, true), &dx, &scratch);
    }
}
