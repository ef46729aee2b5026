//! The network: layers in order over one contiguous weight buffer and one gradient buffer.
//!
//! A batch runs in a [`Lane`]: the layers with their own scratch, `activations[0]` holding the
//! input batch and `activations[i + 1]` the output of layer `i`; backward walks the layers in
//! reverse, passing ∂loss/∂activation between two buffers. Every buffer is sized for the largest
//! batch seen and reused, so steady-state batches allocate nothing.
//!
//! A training batch can also be split into parts of [`PART_SAMPLES`] samples, each run in a lane
//! of its own, side by side, their gradients added in part order: one hand-off between threads
//! per step instead of several per layer (LeNet's step at batch 128 on 2 threads: 8 % faster).
//! Inference splits large batches the same way, one lane per thread taking its parts in turn,
//! so that a part's activations stay in the thread's cache from one layer to the next. The
//! parts never depend on the thread count, so neither do the results.

use std::ops::Range;

use rayon::prelude::*;

use crate::cancel::Cancel;
use crate::error::{CoreError, Result};
use crate::head::head_of;
use crate::kernels::activation::Activation;
use crate::layers::{Layer, LayerSpec};
use crate::memory::{checked_volume, ensure_len, try_copy, try_filled};
use crate::optim::Optimizer;
use crate::parallel;
use crate::tensor::Tensor;

/// Samples per part of a split batch.
pub const PART_SAMPLES: usize = 64;

pub struct Network {
    /// The layers' specs, the output layer's without the activation the head applies.
    specs: Vec<LayerSpec>,
    /// The sigmoid or softmax that the output layer ends in (see [`crate::head`]).
    head: Option<Activation>,
    input_shape: Vec<usize>,
    /// Each layer's range of `weights` (and `grads`).
    ranges: Vec<Range<usize>>,
    /// Values per sample of each activation: `sizes[0]` is the input's.
    sizes: Vec<usize>,
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

/// The layers, with their scratch, and the buffers of one batch's forward and backward.
struct Lane {
    layers: Vec<Box<dyn Layer>>,
    activations: Vec<Vec<f32>>,
    delta: Vec<f32>,
    delta_next: Vec<f32>,
}

/// What every lane of a network shares: where each layer's weights lie and how many values per
/// sample each activation has.
#[derive(Clone, Copy)]
struct Shape<'a> {
    ranges: &'a [Range<usize>],
    sizes: &'a [usize],
}

/// The layers built for an input shape, before any weight exists.
struct Layout {
    layers: Vec<Box<dyn Layer>>,
    /// Each layer's range of the weight buffer.
    ranges: Vec<Range<usize>>,
    /// Values per sample of the input, then of each layer's output.
    sizes: Vec<usize>,
    n_weights: usize,
}

impl Layout {
    fn new(input_shape: &[usize], specs: &[LayerSpec]) -> Result<Self> {
        if input_shape.contains(&0) {
            return Err(CoreError::invalid(
                "input_shape",
                "positive dimensions",
                format!("{input_shape:?}"),
            ));
        }
        let mut layers = Vec::with_capacity(specs.len());
        let mut ranges = Vec::with_capacity(specs.len());
        let mut shape = input_shape.to_vec();
        let mut sizes = vec![checked_volume(&shape)?];
        let mut n_weights = 0usize;
        for (index, spec) in specs.iter().enumerate() {
            let layer = spec.build(&shape).map_err(|e| CoreError::InLayer {
                index,
                input_shape: shape.clone(),
                source: Box::new(e),
            })?;
            for weight_shape in layer.weight_shapes() {
                n_weights = n_weights
                    .checked_add(checked_volume(&weight_shape)?)
                    .ok_or_else(|| {
                        CoreError::invalid("layers", "weights that fit in memory", n_weights)
                    })?;
            }
            ranges.push(ranges.last().map_or(0, |r: &Range<usize>| r.end)..n_weights);
            shape = layer.output_shape().to_vec();
            sizes.push(checked_volume(&shape)?);
            layers.push(layer);
        }
        Ok(Layout {
            layers,
            ranges,
            sizes,
            n_weights,
        })
    }
}

impl Network {
    /// How many weight values the network of `specs` would hold, without allocating them: what a
    /// model file's data is checked against before the network is built.
    pub fn count_weights(input_shape: &[usize], specs: &[LayerSpec]) -> Result<usize> {
        Ok(Layout::new(input_shape, specs)?.n_weights)
    }

    /// Builds the layers for per-sample inputs of `input_shape` and initialises their weights.
    pub fn new(input_shape: &[usize], specs: &[LayerSpec]) -> Result<Self> {
        let head = head_of(specs);
        let mut specs = specs.to_vec();
        if let (Some(_), Some(last)) = (head, specs.last_mut()) {
            *last = last.without_activation();
        }
        let Layout {
            layers,
            ranges,
            sizes,
            n_weights,
        } = Layout::new(input_shape, &specs)?;
        let what = || format!("the model's weights ({n_weights} values)");
        let hint = "Lower the layers' `units` or `filters`.";
        let mut weights = try_filled(n_weights, 0.0).map_err(|e| e.for_buffer(what, hint))?;
        for (index, (layer, range)) in layers.iter().zip(&ranges).enumerate() {
            layer
                .init_weights(&mut weights[range.clone()])
                .map_err(|e| CoreError::InLayer {
                    index,
                    input_shape: input_shape.to_vec(),
                    source: Box::new(e),
                })?;
        }
        let grads = try_filled(n_weights, 0.0).map_err(|e| e.for_buffer(what, hint))?;
        Ok(Network {
            trainable: vec![true; layers.len()],
            trainable_ranges: std::iter::once(0..n_weights).collect(),
            specs,
            head,
            lane: Lane::new(layers),
            input_shape: input_shape.to_vec(),
            ranges,
            sizes,
            grads,
            weights,
            parts: Vec::new(),
            part_grads: Vec::new(),
        })
    }

    pub fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }

    pub fn output_shape(&self) -> &[usize] {
        self.lane
            .layers
            .last()
            .map_or(&self.input_shape, |l| l.output_shape())
    }

    pub fn input_size(&self) -> usize {
        self.sizes[0]
    }

    pub fn output_size(&self) -> usize {
        self.sizes[self.lane.layers.len()]
    }

    /// The width of the output's last axis: what losses and metrics call a row.
    pub fn output_width(&self) -> usize {
        self.output_shape().last().copied().unwrap_or(1)
    }

    /// Each layer's per-sample output shape.
    pub fn layer_output_shapes(&self) -> Vec<Vec<usize>> {
        self.lane
            .layers
            .iter()
            .map(|l| l.output_shape().to_vec())
            .collect()
    }

    /// Each layer's weight shapes.
    pub fn layer_weight_shapes(&self) -> Vec<Vec<Vec<usize>>> {
        self.lane.layers.iter().map(|l| l.weight_shapes()).collect()
    }

    /// Every weight's shape, layer by layer, in Keras's `get_weights()` order.
    pub fn weight_shapes(&self) -> Vec<Vec<usize>> {
        self.lane
            .layers
            .iter()
            .flat_map(|l| l.weight_shapes())
            .collect()
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

    /// Sets which layers' weights train: the optimizer steps only theirs, and only their
    /// weight penalties count, as in Keras (a frozen layer's activity penalty still does).
    pub fn set_trainable(&mut self, trainable: &[bool]) -> Result<()> {
        if trainable.len() != self.trainable.len() {
            return Err(CoreError::shape(
                "trainable",
                format!("{} layers", self.trainable.len()),
                trainable.len(),
            ));
        }
        self.trainable.copy_from_slice(trainable);
        self.trainable_ranges.clear();
        for (range, _) in self.ranges.iter().zip(trainable).filter(|(_, &t)| t) {
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

    /// The input buffer for a batch of `batch` samples, to be filled before [`Network::forward`].
    pub fn input_mut(&mut self, batch: usize) -> Result<&mut [f32]> {
        self.lane.input_mut(batch * self.sizes[0])
    }

    /// Tells every layer that training step `step` (the optimizer's iterations so far) begins.
    pub fn begin_step(&mut self, step: u64) {
        for lane in std::iter::once(&mut self.lane).chain(&mut self.parts) {
            lane.layers
                .iter_mut()
                .for_each(|layer| layer.begin_step(step));
        }
    }

    /// The sigmoid or softmax the head applies after the output layer (see [`crate::head`]):
    /// where there is one, [`Network::output`] holds logits.
    pub fn head(&self) -> Option<Activation> {
        self.head
    }

    /// Runs every layer on the input buffer; returns the output of the batch (logits, where
    /// the network has a head).
    pub fn forward(&mut self, batch: usize, training: bool, cancel: &Cancel) -> Result<&[f32]> {
        let (lane, shape, weights, _) = self.whole_batch_lane();
        lane.forward(shape, weights, batch, training, cancel)?;
        Ok(self.output(batch))
    }

    /// Inference on a batch read straight from `input` into `output` (`batch` samples each): the
    /// first layer reads the caller's data and the last writes the caller's buffer, so
    /// prediction copies neither. A batch of several parts runs in one lane per thread, each
    /// taking a run of consecutive parts in turn: run whole, LeNet's batch of 1000 wrote each
    /// 19 MB activation out to memory and read it back (its first pooling waited on the loads
    /// for a quarter of the inference time). The outputs are the model's: probabilities where
    /// the network has a head.
    pub fn infer(
        &mut self,
        input: &[f32],
        output: &mut [f32],
        batch: usize,
        cancel: &Cancel,
    ) -> Result<()> {
        let head = self.head;
        self.infer_with(input, output, batch, head, cancel)
    }

    /// [`Network::infer`] without the head: the output layer's own outputs (logits, where the
    /// network has a head), for losses that read them.
    pub fn infer_raw(
        &mut self,
        input: &[f32],
        output: &mut [f32],
        batch: usize,
        cancel: &Cancel,
    ) -> Result<()> {
        self.infer_with(input, output, batch, None, cancel)
    }

    fn infer_with(
        &mut self,
        input: &[f32],
        output: &mut [f32],
        batch: usize,
        head: Option<Activation>,
        cancel: &Cancel,
    ) -> Result<()> {
        let parts = batch.div_ceil(PART_SAMPLES);
        let width = self.output_width();
        if parts <= 1 {
            let (lane, shape, weights, _) = self.whole_batch_lane();
            lane.infer(shape, weights, input, output, batch, cancel)?;
            if let Some(head) = head {
                head.apply_in_place(
                    &mut output[..batch * shape.sizes[shape.sizes.len() - 1]],
                    width,
                );
            }
            return Ok(());
        }
        let lanes = rayon::current_num_threads().min(parts);
        self.ensure_part_lanes(lanes)?;
        let shape = Shape {
            ranges: &self.ranges,
            sizes: &self.sizes,
        };
        let (in_size, out_size) = (self.sizes[0], self.output_size());
        let lane_samples = parts.div_ceil(lanes) * PART_SAMPLES;
        let weights = &self.weights;
        self.parts[..lanes]
            .par_iter_mut()
            .zip(input[..batch * in_size].par_chunks(lane_samples * in_size))
            .zip(output[..batch * out_size].par_chunks_mut(lane_samples * out_size))
            .try_for_each(|((lane, input), output)| {
                let parts = input
                    .chunks(PART_SAMPLES * in_size)
                    .zip(output.chunks_mut(PART_SAMPLES * out_size));
                for (input, output) in parts {
                    let samples = input.len() / in_size;
                    lane.infer(shape, weights, input, output, samples, cancel)?;
                    if let Some(head) = head {
                        head.apply_in_place(output, width);
                    }
                }
                Ok(())
            })
    }

    /// Checks that a batch of `batch` samples has activations whose sizes a machine can address
    /// (lanes multiply the batch by each activation's size unchecked).
    pub fn check_batch(&self, batch: usize) -> Result<()> {
        let largest = self.sizes.iter().copied().max().unwrap_or(0);
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
        self.lane = Lane::new(Layout::new(&self.input_shape, &self.specs)?.layers);
        Ok(())
    }

    /// Builds lanes for split batches until there are `n`.
    fn ensure_part_lanes(&mut self, n: usize) -> Result<()> {
        while self.parts.len() < n {
            let layers = Layout::new(&self.input_shape, &self.specs)?.layers;
            self.parts.push(Lane::new(layers));
        }
        Ok(())
    }

    /// The output of the last forward pass and the buffer for ∂loss/∂output, to be filled before
    /// [`Network::backward`].
    pub fn output_and_grad_mut(&mut self, batch: usize) -> Result<(&[f32], &mut [f32])> {
        self.lane.output_and_grad_mut(batch * self.output_size())
    }

    /// The output of the last forward pass.
    pub fn output(&self, batch: usize) -> &[f32] {
        self.lane.output(batch * self.output_size())
    }

    /// Fills the gradient buffer from ∂loss/∂output (see [`Network::output_and_grad_mut`]).
    pub fn backward(&mut self, batch: usize, cancel: &Cancel) -> Result<()> {
        let (lane, shape, weights, grads) = self.whole_batch_lane();
        lane.backward(shape, weights, grads, batch, cancel)
    }

    /// The lane of whole batches, with what it reads and writes besides its own buffers.
    fn whole_batch_lane(&mut self) -> (&mut Lane, Shape<'_>, &[f32], &mut [f32]) {
        let shape = Shape {
            ranges: &self.ranges,
            sizes: &self.sizes,
        };
        (&mut self.lane, shape, &self.weights, &mut self.grads)
    }

    /// Into how many parts a training batch of `batch` samples is split (1: it runs whole). A
    /// batch runs whole where a layer needs it so: a Dropout mask, activity penalties divided
    /// by the batch size.
    pub fn training_parts(&self, batch: usize) -> usize {
        let whole = self.lane.layers.iter().any(|l| l.needs_whole_batch());
        match whole || self.penalizes_activity() {
            true => 1,
            false => batch.div_ceil(PART_SAMPLES).max(1),
        }
    }

    /// Whether a layer penalizes its output, which [`Network::penalty`] reads from the whole
    /// batch's activations: such a network runs its batches whole, also to evaluate them.
    pub fn penalizes_activity(&self) -> bool {
        self.lane
            .layers
            .iter()
            .any(|l| l.activity_regularizer().is_some())
    }

    /// A training forward and backward of `batch` samples split into `sums.len()` parts (see
    /// [`Network::training_parts`]) that run side by side; the gradient buffer receives their
    /// gradients added in part order. For each part, `fill_input(samples, input)` fills its
    /// input buffer and, after its forward, `loss(samples, output, output_grad, sums)` writes
    /// ∂loss/∂output (and whatever the caller sums per part). `cancel` is checked before each
    /// layer of each part.
    pub fn train_in_parts<S: Send>(
        &mut self,
        batch: usize,
        sums: &mut [S],
        fill_input: impl Fn(Range<usize>, &mut [f32]) + Sync,
        loss: impl Fn(Range<usize>, &[f32], &mut [f32], &mut S) -> Result<()> + Sync,
        cancel: &Cancel,
    ) -> Result<()> {
        self.ensure_part_lanes(sums.len())?;
        while self.part_grads.len() < sums.len() {
            self.part_grads.push(try_filled(self.weights.len(), 0.0)?);
        }
        let shape = Shape {
            ranges: &self.ranges,
            sizes: &self.sizes,
        };
        let (weights, out_size) = (&self.weights, self.sizes[self.sizes.len() - 1]);
        self.parts[..sums.len()]
            .par_iter_mut()
            .zip(&mut self.part_grads[..sums.len()])
            .zip(sums.par_iter_mut())
            .enumerate()
            .try_for_each(|(i, ((lane, grads), sums))| {
                let samples = i * PART_SAMPLES..((i + 1) * PART_SAMPLES).min(batch);
                let n = samples.len();
                fill_input(samples.clone(), lane.input_mut(n * shape.sizes[0])?);
                lane.forward(shape, weights, n, true, cancel)?;
                let (output, output_grad) = lane.output_and_grad_mut(n * out_size)?;
                loss(samples, output, output_grad, sums)?;
                lane.backward(shape, weights, grads, n, cancel)
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
    /// penalties, and activity penalties divided by the batch size as Keras divides them. With
    /// `weight_grads`, also adds the weight penalties' gradients to the gradient buffer (call it
    /// after [`Network::backward`], which adds the activity penalties' gradients).
    pub fn penalty(&mut self, batch: usize, weight_grads: bool) -> f64 {
        let mut total = 0.0;
        for (i, layer) in self.lane.layers.iter().enumerate() {
            let range = self.ranges[i].clone();
            if self.trainable[i] {
                let grads = weight_grads.then(|| &mut self.grads[range.clone()]);
                total += layer.weight_penalty(&self.weights[range], grads);
            }
            if let Some(regularizer) = layer.activity_regularizer() {
                let output = &self.lane.activations[i + 1][..batch * self.sizes[i + 1]];
                total += regularizer.apply(output, 1.0 / batch as f32, None);
            }
        }
        total
    }
}

impl Lane {
    fn new(layers: Vec<Box<dyn Layer>>) -> Self {
        Lane {
            activations: vec![Vec::new(); layers.len() + 1],
            layers,
            delta: Vec::new(),
            delta_next: Vec::new(),
        }
    }

    fn input_mut(&mut self, len: usize) -> Result<&mut [f32]> {
        ensure_len(&mut self.activations[0], len)?;
        Ok(&mut self.activations[0][..len])
    }

    fn output(&self, len: usize) -> &[f32] {
        &self.activations[self.layers.len()][..len]
    }

    fn output_and_grad_mut(&mut self, len: usize) -> Result<(&[f32], &mut [f32])> {
        ensure_len(&mut self.delta, len)?;
        Ok((
            &self.activations[self.layers.len()][..len],
            &mut self.delta[..len],
        ))
    }

    fn forward(
        &mut self,
        shape: Shape,
        weights: &[f32],
        batch: usize,
        training: bool,
        cancel: &Cancel,
    ) -> Result<()> {
        for (i, layer) in self.layers.iter_mut().enumerate() {
            cancel.check()?;
            let (in_len, out_len) = (batch * shape.sizes[i], batch * shape.sizes[i + 1]);
            let (before, after) = self.activations.split_at_mut(i + 1);
            ensure_len(&mut after[0], out_len)?;
            let weights = &weights[shape.ranges[i].clone()];
            let (x, y) = (&before[i][..in_len], &mut after[0][..out_len]);
            layer.forward(weights, x, y, batch, training)?;
        }
        Ok(())
    }

    fn infer(
        &mut self,
        shape: Shape,
        weights: &[f32],
        input: &[f32],
        output: &mut [f32],
        batch: usize,
        cancel: &Cancel,
    ) -> Result<()> {
        let Some(last) = self.layers.len().checked_sub(1) else {
            output.copy_from_slice(input);
            return Ok(());
        };
        for (i, layer) in self.layers.iter_mut().enumerate() {
            cancel.check()?;
            let (in_len, out_len) = (batch * shape.sizes[i], batch * shape.sizes[i + 1]);
            let (before, after) = self.activations.split_at_mut(i + 1);
            let x = if i == 0 { input } else { &before[i][..in_len] };
            let y = if i == last {
                &mut output[..out_len]
            } else {
                ensure_len(&mut after[0], out_len)?;
                &mut after[0][..out_len]
            };
            layer.forward(&weights[shape.ranges[i].clone()], x, y, batch, false)?;
        }
        Ok(())
    }

    fn backward(
        &mut self,
        shape: Shape,
        weights: &[f32],
        grads: &mut [f32],
        batch: usize,
        cancel: &Cancel,
    ) -> Result<()> {
        for i in (0..self.layers.len()).rev() {
            cancel.check()?;
            let (in_len, out_len) = (batch * shape.sizes[i], batch * shape.sizes[i + 1]);
            let dx = if i > 0 {
                ensure_len(&mut self.delta_next, in_len)?;
                Some(&mut self.delta_next[..in_len])
            } else {
                None
            };
            if let Some(regularizer) = self.layers[i].activity_regularizer() {
                let output = &self.activations[i + 1][..out_len];
                let grad = Some(&mut self.delta[..out_len]);
                regularizer.apply(output, 1.0 / batch as f32, grad);
            }
            let range = shape.ranges[i].clone();
            self.layers[i].backward(
                &weights[range.clone()],
                &mut grads[range],
                &self.activations[i][..in_len],
                &self.activations[i + 1][..out_len],
                &mut self.delta[..out_len],
                dx,
                batch,
            )?;
            std::mem::swap(&mut self.delta, &mut self.delta_next);
        }
        Ok(())
    }
}
