//! The backward pass of a graph, recorded in reverse node order. Gradients arrive as the CPU's
//! do: a tensor's first contributor writes its gradient and later ones add to it, and a shared
//! layer's first call (in reverse order) writes its weight gradients and its other calls add
//! to them. Kernels that cannot add write into scratch, which is then added.

use pynn_core::kernels::activation::Activation;

use crate::codes::{activation_code, merge_code};
use crate::params::{CopyParams, MatmulDims, MergeParams, WindowParams};
use crate::plan::{Op, Stage};
use crate::record::{concatenated, side_by_side, Recorder};

/// Which gradients hold a value so far in the recorded backward.
struct Written {
    tensors: Vec<bool>,
    /// Per layer: its weight gradients.
    layers: Vec<bool>,
}

impl Written {
    /// Whether a gradient of tensor `v` adds to one already there, marking it written.
    fn tensor(&mut self, v: usize) -> bool {
        std::mem::replace(&mut self.tensors[v], true)
    }

    /// Whether `layer`'s weight gradients add to ones already there, marking them written.
    fn layer(&mut self, layer: usize) -> bool {
        std::mem::replace(&mut self.layers[layer], true)
    }
}

/// Where one input's gradient goes: its buffer, and whether it adds to what that holds.
type Target = Option<(wgpu::Buffer, bool)>;

impl Recorder<'_> {
    /// The backward of `stages`, whose `outputs` tensors got their gradients from the losses;
    /// `layers` is how many layers the stages call.
    pub fn backward(
        &mut self,
        stages: &[Stage],
        (sizes, outputs): (&[usize], &[usize]),
        layers: usize,
        stats_stride: usize,
    ) {
        let mut written = Written {
            tensors: vec![false; sizes.len()],
            layers: vec![false; layers],
        };
        for &v in outputs {
            written.tensors[v] = self.buffers.deltas[v].is_some();
        }
        for (s, stage) in stages.iter().enumerate().rev() {
            if !stage.runs_backward || !written.tensors[stage.output] {
                continue;
            }
            self.activity_gradient(stage, sizes[stage.output], stats_stride);
            self.stage_backward(s, stage, sizes, &mut written);
        }
    }

    /// Where the gradient of input `k` of `stage` goes, if it carries one.
    fn target(&self, stage: &Stage, k: usize, written: &mut Written) -> Target {
        let v = stage.inputs[k];
        let buffer = self.buffers.deltas[v].clone()?;
        Some((buffer, written.tensor(v)))
    }

    fn stage_backward(&mut self, s: usize, stage: &Stage, sizes: &[usize], written: &mut Written) {
        let b = &self.buffers;
        let x = b.values[stage.inputs[0]].clone();
        let y = b.values[stage.output].clone();
        let extra = b.extra[s].clone();
        let dy = b.deltas[stage.output].clone().expect("a gradient");
        let (weights, grads) = (b.weights.clone(), b.grads.clone());
        let (in_size, out_size) = (sizes[stage.inputs[0]], sizes[stage.output]);
        let weight_gradients = stage.trains.then(|| written.layer(stage.layer));
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
                if let Some((dx, accumulate)) = self.target(stage, 0, written) {
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
                if let Some(target) = self.target(stage, 0, written) {
                    let kernel = &self.kernels.conv_input_gradient;
                    let items = self.capacity * in_size;
                    self.through_scratch(target, in_size, |r, dx| {
                        r.three(kernel, [&dy, &weights, dx], &params, items)
                    });
                }
            }
            Op::Pool { geometry, kind } => {
                if let Some(target) = self.target(stage, 0, written) {
                    let kernel = &self.kernels.pool_backward;
                    let argmax = extra.expect("argmax");
                    self.through_scratch(target, in_size, |r, dx| {
                        r.pool(kernel, geometry, *kind, [&dy, dx, &argmax], in_size)
                    });
                }
            }
            Op::Dropout(_) => {
                if let Some((dx, accumulate)) = self.target(stage, 0, written) {
                    let mask = extra.expect("mask");
                    self.dropout([&dy, &mask, &dx], in_size, accumulate);
                }
            }
            Op::Activation(epilogue) => {
                // In place on the output's gradient, which is then the input's (or is added to
                // it).
                self.epilogue_backward(epilogue, out_size, [&dy, &x, &y], None);
                self.hand_on((s, stage), (&dy, in_size), written);
            }
            Op::Identity => self.hand_on((s, stage), (&dy, in_size), written),
            Op::Merge {
                op,
                activation,
                operands,
            } => {
                let stacked = extra.expect("the merge's inputs");
                let params = MergeParams {
                    n: out_size as u32,
                    inputs: operands.len() as u32,
                    op: merge_code(*op),
                    activation: activation_code(activation.unwrap_or(Activation::Linear)),
                    ..MergeParams::default()
                };
                let kernel = &self.kernels.merge_local_gradients;
                let map = self.buffers.unused;
                self.merge_kernel(kernel, [&stacked, &dy, &y, map], params, out_size);
                for (k, operand) in operands.iter().enumerate() {
                    let Some((dx, accumulate)) = self.target(stage, k, written) else {
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
            Op::Concatenate { outer, runs } => {
                for k in 0..stage.inputs.len() {
                    if let Some((dx, accumulate)) = self.target(stage, k, written) {
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
        (s, stage): (usize, &Stage),
        (dy, per_sample): (&wgpu::Buffer, usize),
        written: &mut Written,
    ) {
        let shared = self.buffers.passes_delta[s];
        match self.target(stage, 0, written) {
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
