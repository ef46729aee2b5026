//! The network: a model's graph (see [`crate::graph`]) over one contiguous weight buffer and one
//! gradient buffer.
//!
//! A batch runs in a lane: the nodes with their own scratch and the batch's tensors. Every
//! buffer is sized for the largest batch seen and reused, so steady-state batches allocate
//! nothing.
//!
//! A training batch can also be split into parts of up to [`MAX_PART_SAMPLES`] samples (fewer where
//! a part's tensors would outgrow a core's cache: the plan's `part_samples`), each run in a lane
//! of its own, side by side, their gradients added in part order: one hand-off between threads
//! per step instead of several per layer (LeNet's step at batch 128 on 2 threads: 8 % faster).
//! Inference splits large batches the same way, one lane per thread taking its parts in turn,
//! so that a part's activations stay in the thread's cache from one layer to the next. The
//! parts never depend on the thread count, so neither do the results.

use std::ops::Range;

use rayon::prelude::*;

use crate::cancel::Cancel;
use crate::error::{CoreError, Result};
use crate::graph::{self, DevicePlan, Flow, GraphSpec, Lane, LanePass, Mode, Plan};
use crate::kernels::activation::Activation;
use crate::layers::LayerSpec;
use crate::memory::{try_copy, try_filled};
use crate::optim::Optimizer;
use crate::parallel;
use crate::tensor::Tensor;

/// A few values (one per model input or output), inline.
type Few<T> = smallvec::SmallVec<[T; 4]>;
/// One lane's samples of every input and output.
type LaneRun<'a> = (Few<&'a [f32]>, Few<&'a mut [f32]>);

/// The samples `rows` of each array, whose samples hold `sizes` values each.
pub(crate) fn sample_rows<'a>(
    arrays: &[&'a [f32]],
    sizes: &[usize],
    rows: std::ops::Range<usize>,
) -> Few<&'a [f32]> {
    let sliced = arrays.iter().zip(sizes);
    sliced
        .map(|(a, &s)| &a[rows.start * s..rows.end * s])
        .collect()
}

/// [`sample_rows`] of arrays being written.
pub(crate) fn sample_rows_mut<'b>(
    arrays: &'b mut [&mut [f32]],
    sizes: &[usize],
    rows: std::ops::Range<usize>,
) -> Few<&'b mut [f32]> {
    let sliced = arrays.iter_mut().zip(sizes);
    sliced
        .map(|(a, &s)| &mut a[rows.start * s..rows.end * s])
        .collect()
}

pub use crate::graph::MAX_PART_SAMPLES;

pub struct Network {
    plan: Plan,
    /// Which tensors carry gradients and which nodes run backward, for `trainable`.
    flow: Flow,
    weights: Vec<f32>,
    grads: Vec<f32>,
    /// Whether each layer's weights train (Keras's `trainable`), and the ranges of the weights
    /// that do, adjacent layers' merged.
    trainable: Vec<bool>,
    trainable_ranges: Vec<Range<usize>>,
    /// Where whole batches run.
    lane: Lane,
    /// The lanes of a split batch's parts: built on the first split batch.
    parts: Vec<Lane>,
    /// The gradient buffer of each training part's lane.
    part_grads: Vec<Vec<f32>>,
}

impl Network {
    /// A stack of layers (`Sequential`) for per-sample inputs of `input_shape`, its weights
    /// initialised.
    pub fn new(input_shape: &[usize], specs: &[LayerSpec]) -> Result<Self> {
        Network::from_graph(&GraphSpec::chain(input_shape, specs))
    }

    /// The network of a graph, its weights initialised.
    pub fn from_graph(spec: &GraphSpec) -> Result<Self> {
        let (plan, ops) = Plan::new(&graph::fuse(spec))?;
        let n_weights = plan.n_weights;
        let what = || format!("the model's weights ({n_weights} values)");
        let hint = "Lower the layers' `units` or `filters`.";
        let mut weights = try_filled(n_weights, 0.0).map_err(|e| e.for_buffer(what, hint))?;
        for (layer, first) in plan.first_call.iter().enumerate() {
            let Some(layer_op) = first.and_then(|n| ops[n].layer()) else {
                continue;
            };
            layer_op
                .init_weights(&mut weights[plan.ranges[layer].clone()])
                .map_err(|e| CoreError::InLayer {
                    index: layer,
                    input_shape: plan.shapes[plan.nodes[first.unwrap_or(0)].inputs[0]].clone(),
                    source: Box::new(e),
                })?;
        }
        let grads = try_filled(n_weights, 0.0).map_err(|e| e.for_buffer(what, hint))?;
        let trainable = vec![true; plan.specs.len()];
        Ok(Network {
            flow: plan.flow(&trainable),
            trainable,
            trainable_ranges: std::iter::once(0..n_weights).collect(),
            lane: Lane::new(&plan, ops),
            plan,
            grads,
            weights,
            parts: Vec::new(),
            part_grads: Vec::new(),
        })
    }

    /// Plans the same layers and weights for `spec`, the graph with new input shapes (a model
    /// whose inputs have variable dimensions, Keras's `Input((None, 10))`): each batch shape
    /// gets its own plan, the weights stay. Shapes whose weights would differ are refused.
    pub fn replan(&mut self, spec: &GraphSpec) -> Result<()> {
        let (plan, ops) = Plan::new(&graph::fuse(spec))?;
        let lane = Lane::new(&plan, ops);
        if layer_weight_shapes(&plan, &lane) != self.layer_weight_shapes() {
            return Err(CoreError::invalid(
                "inputs",
                "shapes for which every layer keeps its weights' shapes",
                format!("{:?}", spec.inputs),
            ));
        }
        self.flow = plan.flow(&self.trainable);
        self.plan = plan;
        self.lane = lane;
        self.parts = Vec::new();
        self.part_grads = Vec::new();
        Ok(())
    }

    pub fn input_count(&self) -> usize {
        self.plan.n_inputs
    }

    pub fn output_count(&self) -> usize {
        self.plan.outputs.len()
    }

    /// The per-sample shape of input `i`.
    pub fn input_shape_of(&self, i: usize) -> &[usize] {
        &self.plan.shapes[i]
    }

    /// The per-sample shape of output `o`.
    pub fn output_shape_of(&self, o: usize) -> &[usize] {
        &self.plan.shapes[self.plan.outputs[o]]
    }

    /// Values per sample of input `i`.
    pub fn input_size_of(&self, i: usize) -> usize {
        self.plan.sizes[i]
    }

    /// Values per sample of output `o`.
    pub fn output_size_of(&self, o: usize) -> usize {
        self.plan.sizes[self.plan.outputs[o]]
    }

    /// The width of output `o`'s last axis: what losses and metrics call a row.
    pub fn output_width_of(&self, o: usize) -> usize {
        self.output_shape_of(o).last().copied().unwrap_or(1)
    }

    /// The first input's shape (the only one, for a stack of layers).
    pub fn input_shape(&self) -> &[usize] {
        self.input_shape_of(0)
    }

    /// The first output's shape (the only one, for a stack of layers).
    pub fn output_shape(&self) -> &[usize] {
        self.output_shape_of(0)
    }

    pub fn input_size(&self) -> usize {
        self.input_size_of(0)
    }

    pub fn output_size(&self) -> usize {
        self.output_size_of(0)
    }

    pub fn output_width(&self) -> usize {
        self.output_width_of(0)
    }

    /// The planned network as another device builds it (see [`DevicePlan`]).
    pub fn device_plan(&self) -> DevicePlan {
        let trainable = (&self.trainable[..], &self.trainable_ranges[..]);
        DevicePlan::of(&self.plan, &self.lane.ops, trainable)
    }

    /// Each layer's per-sample output shape (at its first call).
    pub fn layer_output_shapes(&self) -> Vec<Vec<usize>> {
        self.plan
            .first_call
            .iter()
            .map(|first| {
                first.map_or_else(Vec::new, |n| {
                    self.plan.shapes[self.plan.nodes[n].output].clone()
                })
            })
            .collect()
    }

    /// Each layer's weight shapes.
    pub fn layer_weight_shapes(&self) -> Vec<Vec<Vec<usize>>> {
        layer_weight_shapes(&self.plan, &self.lane)
    }

    /// Every weight's shape, layer by layer, in Keras's `get_weights()` order.
    pub fn weight_shapes(&self) -> Vec<Vec<usize>> {
        self.layer_weight_shapes().into_iter().flatten().collect()
    }

    /// Every weight as a tensor of its own shape, in Keras's `get_weights()` order.
    pub fn weight_tensors(&self) -> Result<Vec<Tensor>> {
        (0..self.weight_shapes().len())
            .map(|index| self.weight_tensor(index))
            .collect()
    }

    /// Weight `index` of [`Network::weight_tensors`] alone.
    pub fn weight_tensor(&self, index: usize) -> Result<Tensor> {
        let shapes = self.weight_shapes();
        let Some(shape) = shapes.get(index) else {
            return Err(CoreError::invalid(
                "index",
                format!("a weight index below {}", shapes.len()),
                index,
            ));
        };
        let start: usize = shapes[..index]
            .iter()
            .map(|s| s.iter().product::<usize>())
            .sum();
        let size: usize = shape.iter().product();
        Tensor::new(shape.clone(), try_copy(&self.weights[start..start + size])?)
    }

    pub fn weights(&self) -> &[f32] {
        &self.weights
    }

    pub fn grads(&self) -> &[f32] {
        &self.grads
    }

    /// Replaces every weight at once (the layout of [`Network::weights`]).
    pub fn set_weights(&mut self, values: &[f32]) -> Result<()> {
        if values.len() != self.weights.len() {
            return Err(CoreError::shape(
                "weights",
                self.weights.len(),
                values.len(),
            ));
        }
        self.weights.copy_from_slice(values);
        Ok(())
    }

    /// Sets which layers' weights train: the optimizer steps only theirs, only their weight
    /// penalties count, and their gradients alone are computed (the others' are zero), as in
    /// Keras (a frozen layer's activity penalty still counts).
    pub fn set_trainable(&mut self, trainable: &[bool]) -> Result<()> {
        if trainable.len() != self.trainable.len() {
            return Err(CoreError::shape(
                "trainable",
                format!("{} layers", self.trainable.len()),
                trainable.len(),
            ));
        }
        self.trainable.copy_from_slice(trainable);
        self.flow = self.plan.flow(trainable);
        self.trainable_ranges.clear();
        for (range, _) in self.plan.ranges.iter().zip(trainable).filter(|(_, &t)| t) {
            match self.trainable_ranges.last_mut() {
                Some(last) if last.end == range.start => last.end = range.end,
                _ => self.trainable_ranges.push(range.clone()),
            }
        }
        Ok(())
    }

    /// Whether each layer's weights train.
    pub fn trainable(&self) -> &[bool] {
        &self.trainable
    }

    /// One step of `optimizer` on the trainable weights, with the gradient buffer's gradients.
    pub fn step(&mut self, optimizer: &mut dyn Optimizer) {
        optimizer.step_ranges(&mut self.weights, &self.grads, &self.trainable_ranges);
    }

    /// One step of `optimizer` on the trainable weights with `grads` (as long as the weights)
    /// in place of the gradient buffer's.
    pub fn step_with(&mut self, optimizer: &mut dyn Optimizer, grads: &[f32]) -> Result<()> {
        if grads.len() != self.weights.len() {
            return Err(CoreError::shape(
                "gradients",
                self.weights.len(),
                grads.len(),
            ));
        }
        optimizer.step_ranges(&mut self.weights, grads, &self.trainable_ranges);
        Ok(())
    }

    /// The buffer of input `i` for a batch of `batch` samples, to be filled before
    /// [`Network::forward`].
    pub fn input_mut_of(&mut self, i: usize, batch: usize) -> Result<&mut [f32]> {
        self.lane.input_mut(i, batch * self.plan.sizes[i])
    }

    /// [`Network::input_mut_of`] the first input.
    pub fn input_mut(&mut self, batch: usize) -> Result<&mut [f32]> {
        self.input_mut_of(0, batch)
    }

    /// Tells every node that training step `step` (the optimizer's iterations so far) begins.
    pub fn begin_step(&mut self, step: u64) {
        for lane in std::iter::once(&mut self.lane).chain(&mut self.parts) {
            lane.ops.iter_mut().for_each(|op| op.begin_step(step));
        }
    }

    /// The sigmoid or softmax the head applies after output `o`'s layer (see [`crate::head`]):
    /// where there is one, [`Network::output_of`] holds logits.
    pub fn head_of(&self, o: usize) -> Option<Activation> {
        self.plan.heads[o]
    }

    /// [`Network::head_of`] the first output.
    pub fn head(&self) -> Option<Activation> {
        self.head_of(0)
    }

    /// Runs every node on the input buffers; returns the first output of the batch (logits,
    /// where it has a head).
    pub fn forward(&mut self, batch: usize, training: bool, cancel: &Cancel) -> Result<&[f32]> {
        self.lane.forward(
            &self.plan,
            &self.weights,
            batch,
            Mode::of_training(training),
            cancel,
        )?;
        Ok(self.output(batch))
    }

    /// One batch from `inputs` into `outputs` (one buffer per model input and output, `batch`
    /// samples each) in `mode`, with the outputs' heads: Keras's `model(x, training=...)`. A
    /// layer that trains differently draws the masks of stream `stream` (see
    /// [`Network::begin_step`]), so that each such call draws its own.
    pub fn forward_in_mode(
        &mut self,
        (inputs, outputs): (&[&[f32]], &mut [&mut [f32]]),
        batch: usize,
        (mode, stream): (Mode, u64),
        cancel: &Cancel,
    ) -> Result<()> {
        self.check_batch(batch)?;
        for (i, input) in inputs.iter().enumerate() {
            self.input_mut_of(i, batch)?.copy_from_slice(input);
        }
        self.begin_step(stream);
        self.lane
            .forward(&self.plan, &self.weights, batch, mode, cancel)?;
        for (o, output) in outputs.iter_mut().enumerate() {
            output.copy_from_slice(self.output_of(o, batch));
        }
        apply_output_heads(&self.plan, outputs);
        Ok(())
    }

    /// Inference on a batch read straight from `inputs` into `outputs` (one buffer per model
    /// input and output, `batch` samples each): the first layers read the caller's data and
    /// the output layers write the caller's buffers, so prediction copies neither. A batch of
    /// several parts runs in one lane per thread, each taking a run of consecutive parts in
    /// turn: run whole, LeNet's batch of 1000 wrote each 19 MB activation out to memory and
    /// read it back (its first pooling waited on the loads for a quarter of the inference
    /// time). With `heads`, the outputs are the model's: probabilities where an output has a
    /// head; without, the output layers' own values (logits), for losses that read them.
    pub fn infer_all(
        &mut self,
        inputs: &[&[f32]],
        outputs: &mut [&mut [f32]],
        batch: usize,
        heads: bool,
        cancel: &Cancel,
    ) -> Result<()> {
        let part_samples = self.plan.part_samples;
        let parts = batch.div_ceil(part_samples);
        let lanes = rayon::current_num_threads().min(parts);
        if parts > 1 {
            self.ensure_part_lanes(lanes)?;
        }
        let (plan, weights) = (&self.plan, &self.weights);
        let in_sizes: Few<usize> = (0..plan.n_inputs).map(|i| plan.sizes[i]).collect();
        let out_sizes: Few<usize> = plan.outputs.iter().map(|&v| plan.sizes[v]).collect();
        let apply_heads = |outputs: &mut [&mut [f32]]| {
            if heads {
                apply_output_heads(plan, outputs);
            }
        };
        if parts <= 1 {
            let inputs: Few<&[f32]> = inputs
                .iter()
                .zip(&in_sizes)
                .map(|(x, s)| &x[..batch * s])
                .collect();
            let mut outputs: Few<&mut [f32]> = outputs
                .iter_mut()
                .zip(&out_sizes)
                .map(|(y, s)| &mut y[..batch * s])
                .collect();
            self.lane
                .infer(plan, weights, (&inputs, &mut outputs), batch, cancel)?;
            apply_heads(&mut outputs);
            return Ok(());
        }
        let lane_samples = parts.div_ceil(lanes) * part_samples;
        // Each lane's run of samples, as slices of every input and output.
        let mut runs: Vec<LaneRun> = (0..lanes).map(|_| (Few::new(), Few::new())).collect();
        for (x, &size) in inputs.iter().zip(&in_sizes) {
            for (run, chunk) in runs
                .iter_mut()
                .zip(x[..batch * size].chunks(lane_samples * size))
            {
                run.0.push(chunk);
            }
        }
        for (y, &size) in outputs.iter_mut().zip(&out_sizes) {
            let chunks = y[..batch * size].chunks_mut(lane_samples * size);
            for (run, chunk) in runs.iter_mut().zip(chunks) {
                run.1.push(chunk);
            }
        }
        self.parts[..lanes]
            .par_iter_mut()
            .zip(runs.par_iter_mut())
            .try_for_each(|(lane, (xs, ys))| {
                let samples = xs.first().map_or(0, |x| x.len() / in_sizes[0].max(1));
                for start in (0..samples).step_by(part_samples) {
                    let n = part_samples.min(samples - start);
                    let part_x = sample_rows(xs, &in_sizes, start..start + n);
                    let mut part_y = sample_rows_mut(ys, &out_sizes, start..start + n);
                    lane.infer(plan, weights, (&part_x, &mut part_y), n, cancel)?;
                    apply_heads(&mut part_y);
                }
                Ok(())
            })
    }

    /// [`Network::infer_all`] with heads, for a network of one input and one output.
    pub fn infer(
        &mut self,
        input: &[f32],
        output: &mut [f32],
        batch: usize,
        cancel: &Cancel,
    ) -> Result<()> {
        self.infer_all(&[input], &mut [output], batch, true, cancel)
    }

    /// [`Network::infer_all`] without heads, for a network of one input and one output.
    pub fn infer_raw(
        &mut self,
        input: &[f32],
        output: &mut [f32],
        batch: usize,
        cancel: &Cancel,
    ) -> Result<()> {
        self.infer_all(&[input], &mut [output], batch, false, cancel)
    }

    /// Checks that a batch of `batch` samples has activations whose sizes a machine can address
    /// (lanes multiply the batch by each activation's size unchecked).
    pub fn check_batch(&self, batch: usize) -> Result<()> {
        let largest = self.plan.sizes.iter().copied().max().unwrap_or(0);
        crate::memory::checked_mul(batch, largest)
            .and_then(|values| crate::memory::checked_mul(values, 4))
            .map(drop)
    }

    /// Gives back every buffer a batch grew (activations, scratch, the parts' lanes and
    /// gradients): after a batch that ran out of memory, so that its half-built buffers do not
    /// keep the memory a smaller batch then needs.
    pub fn release_buffers(&mut self) -> Result<()> {
        self.parts = Vec::new();
        self.part_grads = Vec::new();
        self.lane = Lane::new(&self.plan, self.plan.build_ops()?);
        Ok(())
    }

    /// Builds lanes for split batches until there are `n`.
    fn ensure_part_lanes(&mut self, n: usize) -> Result<()> {
        while self.parts.len() < n {
            self.parts
                .push(Lane::new(&self.plan, self.plan.build_ops()?));
        }
        Ok(())
    }

    /// Output `o` of the last forward pass and the buffer for ∂loss/∂output, to be filled
    /// before [`Network::backward_seeded`].
    pub fn output_and_grad_mut_of(
        &mut self,
        o: usize,
        batch: usize,
    ) -> Result<(&[f32], &mut [f32])> {
        let len = batch * self.output_size_of(o);
        self.lane
            .value_and_grad_mut(&self.plan, self.plan.outputs[o], len)
    }

    /// [`Network::output_and_grad_mut_of`] the first output.
    pub fn output_and_grad_mut(&mut self, batch: usize) -> Result<(&[f32], &mut [f32])> {
        self.output_and_grad_mut_of(0, batch)
    }

    /// Output `o` of the last forward pass.
    pub fn output_of(&self, o: usize, batch: usize) -> &[f32] {
        self.lane
            .value(self.plan.outputs[o], batch * self.output_size_of(o))
    }

    /// The first output of the last forward pass.
    pub fn output(&self, batch: usize) -> &[f32] {
        self.output_of(0, batch)
    }

    /// Fills the gradient buffer from ∂loss/∂output of the outputs `seeded` marks (see
    /// [`Network::output_and_grad_mut_of`]); the others get no gradient.
    pub fn backward_seeded(
        &mut self,
        batch: usize,
        seeded: &[bool],
        cancel: &Cancel,
    ) -> Result<()> {
        let (plan, flow, trainable) = (&self.plan, &self.flow, &self.trainable);
        let weights = &self.weights;
        self.lane.backward(
            plan,
            (flow, trainable),
            seeded,
            weights,
            &mut self.grads,
            batch,
            cancel,
        )
    }

    /// A training forward and backward of the `batch` samples in the inputs' buffers (see
    /// [`Network::input_mut_of`]) as one pass: after the forward, `loss(o, output, grad)`
    /// writes ∂loss/∂output of output `o` and says whether it did (an output without a loss
    /// gets no gradient).
    pub fn train_pass(
        &mut self,
        batch: usize,
        loss: impl FnMut(usize, &[f32], &mut [f32]) -> Result<bool>,
        cancel: &Cancel,
    ) -> Result<()> {
        let pass = LanePass {
            lane: &mut self.lane,
            plan: &self.plan,
            flow: (&self.flow, &self.trainable),
            weights: &self.weights,
            grads: &mut self.grads,
            batch,
            loss,
        };
        pass.run(cancel)
    }

    /// [`Network::backward_seeded`] from every output's gradient.
    pub fn backward(&mut self, batch: usize, cancel: &Cancel) -> Result<()> {
        let seeded = vec![true; self.output_count()];
        self.backward_seeded(batch, &seeded, cancel)
    }

    /// Into how many parts a training batch of `batch` samples is split (1: it runs whole). A
    /// batch runs whole where a layer needs it so: a Dropout mask, activity penalties divided
    /// by the batch size.
    pub fn training_parts(&self, batch: usize) -> usize {
        let whole = self.lane.ops.iter().any(|op| op.needs_whole_batch());
        match whole || self.penalizes_activity() {
            true => 1,
            false => batch.div_ceil(self.plan.part_samples).max(1),
        }
    }

    /// Whether a node penalizes its output, which [`Network::penalty`] reads from the whole
    /// batch's activations: such a network runs its batches whole, also to evaluate them.
    pub fn penalizes_activity(&self) -> bool {
        self.lane
            .ops
            .iter()
            .any(|op| op.activity_regularizer().is_some())
    }

    /// A training forward and backward of `batch` samples split into `sums.len()` parts (see
    /// [`Network::training_parts`]) that run side by side; the gradient buffer receives their
    /// gradients added in part order. For each part, `fill_input(samples, i, input)` fills
    /// input `i`'s buffer and, after its forward, `loss(samples, o, output, output_grad, sums)`
    /// writes ∂loss/∂output of output `o` (and whatever the caller sums per part), returning
    /// whether it did (an output without a loss gets no gradient). `cancel` is checked before
    /// each node of each part.
    pub fn train_in_parts<S: Send>(
        &mut self,
        batch: usize,
        sums: &mut [S],
        fill_input: impl Fn(Range<usize>, usize, &mut [f32]) + Sync,
        loss: impl Fn(Range<usize>, usize, &[f32], &mut [f32], &mut S) -> Result<bool> + Sync,
        cancel: &Cancel,
    ) -> Result<()> {
        self.ensure_part_lanes(sums.len())?;
        while self.part_grads.len() < sums.len() {
            self.part_grads.push(try_filled(self.weights.len(), 0.0)?);
        }
        let (plan, flow, trainable) = (&self.plan, &self.flow, &self.trainable);
        let weights = &self.weights;
        self.parts[..sums.len()]
            .par_iter_mut()
            .zip(&mut self.part_grads[..sums.len()])
            .zip(sums.par_iter_mut())
            .enumerate()
            .try_for_each(|(i, ((lane, grads), sums))| {
                let part = plan.part_samples;
                let samples = i * part..((i + 1) * part).min(batch);
                let n = samples.len();
                for input in 0..plan.n_inputs {
                    fill_input(
                        samples.clone(),
                        input,
                        lane.input_mut(input, n * plan.sizes[input])?,
                    );
                }
                let pass = LanePass {
                    lane,
                    plan,
                    flow: (flow, trainable),
                    weights,
                    grads,
                    batch: n,
                    loss: |o, output: &[f32], grad: &mut [f32]| {
                        loss(samples.clone(), o, output, grad, sums)
                    },
                };
                pass.run(cancel)
            })?;
        let (first, rest) = self.part_grads[..sums.len()]
            .split_first()
            .expect("at least one part");
        self.grads.copy_from_slice(first);
        for grads in rest {
            parallel::zip_chunks_mut(&mut self.grads, grads, |sum, part| {
                sum.iter_mut().zip(part).for_each(|(s, p)| *s += p)
            });
        }
        Ok(())
    }

    /// Every regularizer's penalty for the last forward pass of `batch` samples: weight
    /// penalties (once per layer, however often it runs), and activity penalties (once per
    /// call) divided by the batch size as Keras divides them. With `weight_grads`, also adds
    /// the weight penalties' gradients to the gradient buffer (call it after
    /// [`Network::backward`], which adds the activity penalties' gradients).
    pub fn penalty(&mut self, batch: usize, weight_grads: bool) -> f64 {
        let mut total = 0.0;
        for (layer, first) in self.plan.first_call.iter().enumerate() {
            let Some(layer_op) = first.and_then(|n| self.lane.ops[n].layer()) else {
                continue;
            };
            if self.trainable[layer] {
                let range = self.plan.ranges[layer].clone();
                let grads = weight_grads.then(|| &mut self.grads[range.clone()]);
                total += layer_op.weight_penalty(&self.weights[range], grads);
            }
        }
        total + self.lane.activity_penalty(&self.plan, batch)
    }
}

/// Each layer's weight shapes, as its first call's node instance reports them.
fn layer_weight_shapes(plan: &Plan, lane: &Lane) -> Vec<Vec<Vec<usize>>> {
    plan.first_call
        .iter()
        .map(|first| first.map_or_else(Vec::new, |n| lane.ops[n].weight_shapes()))
        .collect()
}

/// Applies each output's head (its sigmoid or softmax) to the output layer's values.
fn apply_output_heads(plan: &Plan, outputs: &mut [&mut [f32]]) {
    for (o, output) in outputs.iter_mut().enumerate() {
        if let Some(head) = plan.heads[o] {
            let width = plan.shapes[plan.outputs[o]].last().copied().unwrap_or(1);
            head.apply_in_place(output, width);
        }
    }
}
