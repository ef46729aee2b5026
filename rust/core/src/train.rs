//! The batch loop of `fit` and `evaluate`: gather a batch, forward, losses and their gradients,
//! backward, optimizer step, running losses and metrics. One call runs a whole epoch.
//!
//! A model has one or more inputs and outputs. Each output may have a loss (with a weight) and
//! metrics; as in Keras, the loss of a batch is the sum over outputs of each output's mean loss
//! times its weight, plus the penalties. The epoch loss is Keras's: the mean of each batch's
//! loss, weighted by the batch's sample count, taken as training proceeds (weights change
//! between batches); with several outputs, each output's unweighted loss is tracked the same
//! way.

use std::ops::Range;

use crate::cancel::Cancel;
use crate::epoch::{for_each_batch, run_batches, Runner, SumsLayout};
use crate::error::{CoreError, Result};
use crate::head::Outputs;
use crate::kernels::activation::Activation;
use crate::kernels::loss::Loss;
use crate::memory::{self, ensure_len};
use crate::metrics::Metric;
use crate::network::{sample_rows, sample_rows_mut, Network};
use crate::optim::{Optimizer, OptimizerSpec};
use crate::parallel;
use crate::rng::Rng;
use rayon::prelude::*;

/// A few values (one per model input or output), inline.
type Few<T> = smallvec::SmallVec<[T; 4]>;

/// Inputs and targets of `len` samples, row-major, one array per model input and per output,
/// checked against a network by [`Trainer`].
#[derive(Clone)]
pub struct Dataset<'a> {
    pub xs: Vec<&'a [f32]>,
    pub ys: Vec<&'a [f32]>,
    pub len: usize,
}

impl<'a> Dataset<'a> {
    /// The data of a model with one input and one output.
    pub fn new(x: &'a [f32], y: &'a [f32], len: usize) -> Self {
        Dataset {
            xs: vec![x],
            ys: vec![y],
            len,
        }
    }

    /// The first input's values.
    pub fn x(&self) -> &'a [f32] {
        self.xs[0]
    }

    /// The first output's targets.
    pub fn y(&self) -> &'a [f32] {
        self.ys[0]
    }
}

/// What one output of a model is trained and judged by: its loss (none: it gets no gradient),
/// the loss's weight in the total, and its metrics.
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
pub struct OutputSpec {
    pub loss: Option<Loss>,
    pub weight: f32,
    pub metrics: Vec<Metric>,
}

impl OutputSpec {
    /// Target values per row of predictions `width` wide: what its loss (or its first metric)
    /// reads; none where it has neither.
    pub fn target_width(&self, width: usize) -> usize {
        match (&self.loss, self.metrics.first()) {
            (Some(loss), _) => loss.target_width(width),
            (None, Some(metric)) => metric.target_width(width),
            (None, None) => 0,
        }
    }
}

/// An epoch's (or an evaluation's) averages: the loss, each output's own loss (with several
/// outputs), then each metric in compile order, output by output.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Logs {
    pub loss: f64,
    pub output_losses: Vec<f64>,
    pub metrics: Vec<f64>,
    /// Batches run; fewer than the epoch has when the caller asked to stop.
    pub batches: usize,
    /// The first batch whose loss was NaN or infinite, if any.
    pub first_non_finite: Option<usize>,
}

/// How a loop over batches goes on after each batch.
pub enum Next {
    Continue,
    Stop,
}

/// What a loop over batches has done so far, told after each batch: for a progress display,
/// read without allocating.
pub struct Progress<'a> {
    /// Batches run so far.
    pub batches: usize,
    totals: Option<&'a Totals>,
}

impl<'a> Progress<'a> {
    /// Progress after `batches` batches, with the running sums where the loop keeps them.
    pub(crate) fn of(batches: usize, totals: Option<&'a Totals>) -> Self {
        Progress { batches, totals }
    }

    /// Progress of a loop that keeps no running logs (predictions).
    pub fn batches_only(batches: usize) -> Self {
        Progress {
            batches,
            totals: None,
        }
    }

    /// The running loss, each output's running loss, then each running metric; none for
    /// predictions.
    pub fn means(&self) -> impl Iterator<Item = f64> + '_ {
        self.totals.into_iter().flat_map(Totals::means)
    }
}

/// What a loop over batches does with each batch.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// Losses and metrics with fixed weights, no training behaviour.
    Test,
    /// A training step's forward and backward, without the optimizer step.
    Gradients,
    /// Forward, backward, optimizer step.
    Train,
}

/// Running sums behind [`Logs`]: each batch's losses and metric sums, weighted as Keras weights
/// them. Public for engines that compute the batches elsewhere (the GPU's).
pub struct Totals {
    loss: f64,
    samples: usize,
    output_losses: Vec<f64>,
    metrics: Vec<f64>,
    /// The rows each metric was summed over.
    metric_rows: Vec<usize>,
    batches: usize,
    first_non_finite: Option<usize>,
}

impl Totals {
    /// Sums for `n_metrics` metrics (over all outputs) that also track `tracked_outputs`
    /// outputs' own losses (see [`Trainer::tracked_losses`]).
    pub fn with_outputs(tracked_outputs: usize, n_metrics: usize) -> Self {
        Totals {
            loss: 0.0,
            samples: 0,
            output_losses: vec![0.0; tracked_outputs],
            metrics: vec![0.0; n_metrics],
            metric_rows: vec![0; n_metrics],
            batches: 0,
            first_non_finite: None,
        }
    }

    /// The running loss, each output's, then each running metric.
    fn means(&self) -> impl Iterator<Item = f64> + '_ {
        let mean = |sum: f64, count: usize| if count > 0 { sum / count as f64 } else { 0.0 };
        let losses = self
            .output_losses
            .iter()
            .map(move |&l| mean(l, self.samples));
        let metrics = self
            .metrics
            .iter()
            .zip(&self.metric_rows)
            .map(move |(&m, &rows)| mean(m, rows));
        std::iter::once(mean(self.loss, self.samples))
            .chain(losses)
            .chain(metrics)
    }

    /// Adds `sums`, each metric's sum over `rows` rows, to the metrics from `first` in the flat
    /// list.
    pub fn add_metrics(&mut self, first: usize, sums: impl IntoIterator<Item = f64>, rows: usize) {
        for (i, sum) in sums.into_iter().enumerate() {
            self.metrics[first + i] += sum;
            self.metric_rows[first + i] += rows;
        }
    }

    /// Adds one batch of `samples` samples from each output's loss (Keras's total: each loss's
    /// batch mean times its weight, summed) and the weights' penalty, added in full.
    pub fn add_outputs(&mut self, samples: usize, losses: &[OutputLoss], penalty: f64) {
        let means: Few<f64> = losses
            .iter()
            .filter_map(|o| Some(o.sum? / o.rows as f64))
            .collect();
        let weighted: f64 = losses
            .iter()
            .filter(|o| o.sum.is_some())
            .zip(&means)
            .map(|(o, &mean)| o.weight as f64 * mean)
            .sum();
        let tracked = if self.output_losses.is_empty() {
            &[][..]
        } else {
            &means[..]
        };
        self.add_losses(weighted + penalty, samples, tracked);
    }

    /// Adds one batch of `samples` samples from its `sums` as a device lays them out (see
    /// [`SumsLayout`]).
    pub fn add_batch_sums(&mut self, sums: &[f32], samples: usize, layout: &SumsLayout) {
        let mut losses: Few<OutputLoss> = Few::new();
        let (mut at, mut first_metric) = (0, 0);
        for (output, &rows_per_sample) in layout.outputs.iter().zip(&layout.rows_per_sample) {
            let metrics = output.metrics.len();
            let rows = samples * rows_per_sample;
            let metric_sums = sums[at + 1..at + 1 + metrics].iter().map(|&m| m as f64);
            self.add_metrics(first_metric, metric_sums, rows);
            losses.push(OutputLoss {
                sum: output.loss.map(|_| sums[at] as f64),
                weight: output.weight,
                rows,
            });
            (at, first_metric) = (at + 1 + metrics, first_metric + metrics);
        }
        self.add_outputs(samples, &losses, sums[at] as f64);
    }

    /// Adds one batch's total loss (penalties included) and each tracked output's mean loss.
    fn add_losses(&mut self, batch_loss: f64, samples: usize, output_means: &[f64]) {
        if !batch_loss.is_finite() && self.first_non_finite.is_none() {
            self.first_non_finite = Some(self.batches);
        }
        self.loss += batch_loss * samples as f64;
        for (total, mean) in self.output_losses.iter_mut().zip(output_means) {
            *total += mean * samples as f64;
        }
        self.samples += samples;
        self.batches += 1;
    }

    pub fn logs(&self) -> Logs {
        let mut means = self.means();
        Logs {
            loss: means.next().unwrap_or(0.0),
            output_losses: means.by_ref().take(self.output_losses.len()).collect(),
            metrics: means.collect(),
            batches: self.batches,
            first_non_finite: self.first_non_finite,
        }
    }
}

/// How many outputs' own losses an epoch's logs track: as in Keras, each output's that has a
/// loss, where more than one has.
pub fn tracked_losses(outputs: &[OutputSpec]) -> usize {
    match outputs.iter().filter(|o| o.loss.is_some()).count() {
        1 => 0,
        n => n,
    }
}

/// One output's part of a batch's loss: its loss's sum over the batch's rows (`None`: it has
/// no loss), the loss's weight, and the rows.
pub struct OutputLoss {
    pub sum: Option<f64>,
    pub weight: f32,
    pub rows: usize,
}

/// Per output, the batch loop's scratch.
#[derive(Default)]
struct OutputScratch {
    /// The batch's outputs, where an evaluation infers them.
    values: Vec<f32>,
    /// The batch's probabilities, where the output has a head.
    probabilities: Vec<f32>,
}

pub struct Trainer {
    outputs: Vec<OutputSpec>,
    optimizer: Box<dyn Optimizer>,
    /// The order in which an epoch visits samples; kept to reuse its memory.
    order: Vec<usize>,
    /// Each output's targets for the batch, where they are gathered.
    targets: Vec<Vec<f32>>,
    scratch: Vec<OutputScratch>,
    /// The current batch's inputs, where an evaluation gathers them.
    inputs: Vec<Vec<f32>>,
    /// Each output row's loss, for batches whose loss is computed in parallel.
    row_losses: Vec<f32>,
    /// The sums of a batch's parts, where a training batch is split.
    part_sums: Vec<PartSums>,
}

impl Trainer {
    /// A trainer for a model of one output, trained by `loss` and judged by `metrics`.
    pub fn new(
        network: &Network,
        loss: Loss,
        optimizer: &OptimizerSpec,
        metrics: Vec<Metric>,
    ) -> Result<Self> {
        let output = OutputSpec {
            loss: Some(loss),
            weight: 1.0,
            metrics,
        };
        Trainer::with_outputs(network, vec![output], optimizer)
    }

    /// A trainer for a model whose outputs are trained and judged by `outputs` (one each).
    pub fn with_outputs(
        network: &Network,
        outputs: Vec<OutputSpec>,
        optimizer: &OptimizerSpec,
    ) -> Result<Self> {
        if outputs.len() != network.output_count() {
            return Err(CoreError::invalid(
                "outputs",
                format!(
                    "a loss and metrics for each of the {} outputs",
                    network.output_count()
                ),
                outputs.len(),
            ));
        }
        if outputs.iter().all(|o| o.loss.is_none()) {
            return Err(CoreError::invalid(
                "losses",
                "a loss for at least one output",
                "none",
            ));
        }
        if let Some(bad) = outputs
            .iter()
            .find(|o| !o.weight.is_finite() || o.weight < 0.0)
        {
            return Err(CoreError::invalid(
                "loss_weights",
                "finite weights >= 0",
                bad.weight,
            ));
        }
        Ok(Trainer {
            scratch: outputs.iter().map(|_| OutputScratch::default()).collect(),
            targets: vec![Vec::new(); outputs.len()],
            inputs: vec![Vec::new(); network.input_count()],
            outputs,
            optimizer: optimizer.build(network.weights().len())?,
            order: Vec::new(),
            row_losses: Vec::new(),
            part_sums: Vec::new(),
        })
    }

    /// How many metrics this trainer computes besides the losses, over all outputs.
    pub fn metric_count(&self) -> usize {
        self.outputs.iter().map(|o| o.metrics.len()).sum()
    }

    /// How many outputs' own losses the logs track: as in Keras, each output's that has a
    /// loss, where more than one has.
    pub fn tracked_losses(&self) -> usize {
        tracked_losses(&self.outputs)
    }

    /// How many running values a loop over batches reports: the loss, the tracked output
    /// losses and the metrics.
    pub fn logged_values(&self) -> usize {
        1 + self.tracked_losses() + self.metric_count()
    }

    pub fn optimizer(&self) -> &dyn Optimizer {
        self.optimizer.as_ref()
    }

    pub fn optimizer_mut(&mut self) -> &mut dyn Optimizer {
        self.optimizer.as_mut()
    }

    /// Target values per sample of output `o`: what its loss (or its first metric) reads.
    fn target_size_of(&self, network: &Network, o: usize) -> usize {
        let width = network.output_width_of(o);
        network.output_size_of(o) / width * self.outputs[o].target_width(width)
    }

    /// Target values per sample of a one-output model.
    pub fn target_size(&self, network: &Network) -> usize {
        self.target_size_of(network, 0)
    }

    /// Checks that `data` fits `network` and this trainer's losses.
    pub fn check(&self, network: &Network, data: &Dataset) -> Result<()> {
        if data.xs.len() != network.input_count() || data.ys.len() != self.outputs.len() {
            return Err(CoreError::invalid(
                "data",
                format!(
                    "{} inputs and {} targets",
                    network.input_count(),
                    self.outputs.len()
                ),
                format!("{} and {}", data.xs.len(), data.ys.len()),
            ));
        }
        for (i, x) in data.xs.iter().enumerate() {
            let len = data.len * network.input_size_of(i);
            if x.len() != len {
                return Err(CoreError::shape("x", len, x.len()));
            }
        }
        for (o, y) in data.ys.iter().enumerate() {
            let len = data.len * self.target_size_of(network, o);
            if y.len() != len {
                return Err(CoreError::shape("y", len, y.len()));
            }
            if let Some(loss) = self.outputs[o].loss {
                loss.check_targets(y, network.output_width_of(o))?;
            }
        }
        Ok(())
    }

    /// One pass over `data` in batches of `batch_size`, updating the weights after each batch.
    /// With a `shuffle_seed`, samples are visited in a fresh random order drawn from it. A
    /// request on `cancel` stops it within a layer, without the interrupted batch's update.
    pub fn fit_epoch(
        &mut self,
        network: &mut Network,
        data: &Dataset,
        batch_size: usize,
        shuffle_seed: Option<u64>,
        after_batch: &mut dyn FnMut(&Progress) -> Next,
        cancel: &Cancel,
    ) -> Result<Logs> {
        let pass = Pass::Train;
        let watch = (after_batch, cancel);
        self.run(network, data, batch_size, shuffle_seed, pass, watch)
    }

    /// The losses and metrics over `data` with fixed weights (no training behaviour).
    pub fn evaluate(
        &mut self,
        network: &mut Network,
        data: &Dataset,
        batch_size: usize,
        after_batch: &mut dyn FnMut(&Progress) -> Next,
        cancel: &Cancel,
    ) -> Result<Logs> {
        let watch = (after_batch, cancel);
        self.run(network, data, batch_size, None, Pass::Test, watch)
    }

    fn run(
        &mut self,
        network: &mut Network,
        data: &Dataset,
        batch_size: usize,
        shuffle_seed: Option<u64>,
        pass: Pass,
        (after_batch, cancel): (&mut dyn FnMut(&Progress) -> Next, &Cancel),
    ) -> Result<Logs> {
        self.check(network, data)?;
        check_batch_size(batch_size)?;
        let largest = batch_size.min(data.len);
        network
            .check_batch(largest)
            .map_err(|e| out_of_memory(network, e, largest))?;
        let mut order = std::mem::take(&mut self.order);
        fill_order(&mut order, data.len, shuffle_seed)?;
        let mut totals = Totals::with_outputs(self.tracked_losses(), self.metric_count());
        let mut runner = CpuRunner {
            trainer: self,
            network,
            data,
            pass,
            cancel,
        };
        let result = run_batches(
            &order,
            batch_size,
            &mut totals,
            &mut runner,
            (after_batch, cancel),
        );
        self.order = order;
        result.map(|()| totals.logs())
    }

    /// ∂loss/∂weights over all of `data` as one batch, left in [`Network::grads`]: what a
    /// training step on it would apply (training behaviour, penalties included), without the
    /// step. Returns the batch's losses and metrics.
    pub fn gradients(
        &mut self,
        network: &mut Network,
        data: &Dataset,
        cancel: &Cancel,
    ) -> Result<Logs> {
        let batch = data.len.max(1);
        let mut each_batch = |_: &Progress| Next::Continue;
        let watch: (&mut dyn FnMut(&Progress) -> Next, _) = (&mut each_batch, cancel);
        self.run(network, data, batch, None, Pass::Gradients, watch)
    }

    /// One optimizer step with `grads` (as long as the weights) instead of a batch's: for
    /// gradients computed elsewhere, such as averaged across processes.
    pub fn apply_gradients(&mut self, network: &mut Network, grads: &[f32]) -> Result<()> {
        network.step_with(self.optimizer.as_mut(), grads)
    }

    /// One batch of samples `indices`: forward, losses, metrics, and for training passes the
    /// backward (and the optimizer step).
    fn run_batch(
        &mut self,
        network: &mut Network,
        data: &Dataset,
        indices: &[usize],
        pass: Pass,
        totals: &mut Totals,
        cancel: &Cancel,
    ) -> Result<()> {
        let train = pass != Pass::Test;
        let batch = indices.len();
        if train {
            network.begin_step(self.optimizer.iterations());
        }
        let parts = match train {
            true => network.training_parts(batch),
            false => 1,
        };
        let target_sizes: Few<usize> = (0..self.outputs.len())
            .map(|o| self.target_size_of(network, o))
            .collect();
        let Trainer {
            outputs,
            optimizer,
            targets: target_buffers,
            scratch,
            inputs,
            row_losses,
            part_sums,
            ..
        } = self;
        let mut targets: Few<&[f32]> = Few::new();
        let buffers = target_buffers.iter_mut();
        for ((y, buffer), &size) in data.ys.iter().zip(buffers).zip(&target_sizes) {
            targets.push(match consecutive(indices) {
                // `train_on_batch`, `evaluate` and unshuffled epochs read the targets in place.
                Some(first) => &y[first * size..(first + batch) * size],
                None => {
                    ensure_len(buffer, batch * size)?;
                    gather(y, size, indices, &mut buffer[..batch * size]);
                    &buffer[..batch * size]
                }
            });
        }
        let heads = heads_of(network, outputs, batch);
        let batch_data = BatchData {
            xs: &data.xs,
            indices,
            targets: &targets,
        };
        let mut loss_sums: Few<f64> = Few::from_elem(0.0, outputs.len());
        if parts > 1 {
            part_sums.resize_with(parts.max(part_sums.len()), Default::default);
            let part_sums = &mut part_sums[..parts];
            train_in_parts(network, &heads, &batch_data, part_sums, cancel)?;
            for part in part_sums.iter() {
                for (total, sum) in totals.metrics.iter_mut().zip(&part.metrics) {
                    *total += sum;
                }
                for (total, sum) in loss_sums.iter_mut().zip(&part.losses) {
                    *total += sum;
                }
            }
        } else if !train && !network.penalizes_activity() {
            let buffers = (inputs.as_mut_slice(), scratch.as_mut_slice(), row_losses);
            test_in_parts(
                network,
                &heads,
                &batch_data,
                buffers,
                totals,
                &mut loss_sums,
                cancel,
            )?;
        } else {
            let buffers = (scratch.as_mut_slice(), row_losses);
            run_whole(
                network,
                &heads,
                &batch_data,
                train,
                buffers,
                totals,
                &mut loss_sums,
                cancel,
            )?;
        }
        let penalty = network.penalty(batch, train);
        // An interrupted batch changes nothing.
        cancel.check()?;
        if pass == Pass::Train {
            network.step(optimizer.as_mut());
        }
        // The metrics are in already: computed before the backward overwrites the outputs.
        let mut offset = 0;
        for head in heads.iter() {
            for rows in &mut totals.metric_rows[offset..offset + head.metrics.len()] {
                *rows += head.rows;
            }
            offset += head.metrics.len();
        }
        let losses: Few<OutputLoss> = heads
            .iter()
            .zip(&loss_sums)
            .map(|(head, &sum)| OutputLoss {
                sum: head.loss.map(|_| sum),
                weight: head.weight,
                rows: head.rows,
            })
            .collect();
        totals.add_outputs(batch, &losses, penalty);
        Ok(())
    }
}

/// The CPU's trainer and network as a [`Runner`] of one pass over `data`.
struct CpuRunner<'a, 'd> {
    trainer: &'a mut Trainer,
    network: &'a mut Network,
    data: &'a Dataset<'d>,
    pass: Pass,
    cancel: &'a Cancel,
}

impl Runner for CpuRunner<'_, '_> {
    fn run(&mut self, _: usize, indices: &[usize], totals: &mut Totals) -> Result<()> {
        let (network, data) = (&mut *self.network, self.data);
        self.trainer
            .run_batch(network, data, indices, self.pass, totals, self.cancel)
            .map_err(|e| out_of_memory(network, e, indices.len()))
    }
}

/// One batch's samples, as its forward and losses read them.
struct BatchData<'a> {
    xs: &'a [&'a [f32]],
    indices: &'a [usize],
    targets: &'a [&'a [f32]],
}

/// A part's sums of a batch split into parts: each output's loss and each metric over its
/// rows, added in part order afterwards.
#[derive(Default)]
struct PartSums {
    losses: Vec<f64>,
    metrics: Vec<f64>,
    probabilities: Vec<f32>,
    row_losses: Vec<f32>,
}

/// What one output's loss and metrics are computed with: its loss and weight, its metrics, its
/// head (see [`crate::head`]), its rows in the batch and the loss gradient's scale.
#[derive(Clone, Copy)]
struct Head<'a> {
    loss: Option<Loss>,
    weight: f32,
    metrics: &'a [Metric],
    head: Option<Activation>,
    width: usize,
    /// The batch's rows: what losses and metrics average over.
    rows: usize,
    /// Where this output's metrics start in the flat list.
    metric_offset: usize,
}

impl Head<'_> {
    /// The loss gradient's scale for `rows` rows: the weight over the batch's rows.
    fn scale(&self) -> f32 {
        self.weight / self.rows as f32
    }
}

fn heads_of<'a>(network: &Network, outputs: &'a [OutputSpec], batch: usize) -> Few<Head<'a>> {
    let mut offset = 0;
    outputs
        .iter()
        .enumerate()
        .map(|(o, spec)| {
            let width = network.output_width_of(o);
            let head = Head {
                loss: spec.loss,
                weight: spec.weight,
                metrics: &spec.metrics,
                head: network.head_of(o),
                width,
                rows: batch * (network.output_size_of(o) / width),
                metric_offset: offset,
            };
            offset += spec.metrics.len();
            head
        })
        .collect()
}

/// The scratch of [`score`]: the probabilities after the head and each row's loss.
type ScoreBuffers<'a> = (&'a mut Vec<f32>, &'a mut Vec<f32>);

/// The loss's sum over a batch whose output layer wrote `raw` (logits, where there is a head),
/// after adding each metric's sum with `add_metric(index, sum)` (indices in the flat list).
/// With `grad` (and its scale), also writes the loss's gradient with respect to `raw`: through
/// the head, unless the loss reads the logits. An output without a loss sums 0.
fn score(
    head: &Head,
    targets: &[f32],
    raw: &[f32],
    grad: Option<&mut [f32]>,
    (probabilities, row_losses): ScoreBuffers,
    mut add_metric: impl FnMut(usize, f64),
) -> Result<f64> {
    let width = head.width;
    let outputs = Outputs::of(raw, head.head, width, probabilities)?;
    for (index, metric) in head.metrics.iter().enumerate() {
        add_metric(
            head.metric_offset + index,
            outputs.metric(metric, targets, width),
        );
    }
    let Some(loss) = head.loss else {
        return Ok(0.0);
    };
    let (loss_form, predictions) = outputs.for_loss(loss);
    let Some(grad) = grad else {
        return batch_loss(
            &loss_form,
            (targets, predictions),
            width,
            None,
            0.0,
            row_losses,
        );
    };
    let sum = batch_loss(
        &loss_form,
        (targets, predictions),
        width,
        Some(grad),
        head.scale(),
        row_losses,
    )?;
    if let (Some(activation), Some(logits)) = (head.head, outputs.logits) {
        if !outputs.reads_logits(loss) {
            activation.backward(logits, outputs.values, grad, width);
        }
    }
    Ok(sum)
}

/// Forward, metrics, losses and (in training) backward of a batch run whole; adds the metrics
/// to `totals` and each output's loss sum to `loss_sums`.
#[allow(clippy::too_many_arguments)]
fn run_whole(
    network: &mut Network,
    heads: &[Head],
    data: &BatchData,
    train: bool,
    (scratch, row_losses): (&mut [OutputScratch], &mut Vec<f32>),
    totals: &mut Totals,
    loss_sums: &mut [f64],
    cancel: &Cancel,
) -> Result<()> {
    let batch = data.indices.len();
    for (i, x) in data.xs.iter().enumerate() {
        let size = network.input_size_of(i);
        gather(x, size, data.indices, network.input_mut_of(i, batch)?);
    }
    if train {
        let loss = |o: usize, raw: &[f32], grad: &mut [f32]| {
            let head = &heads[o];
            let buffers = (&mut scratch[o].probabilities, &mut *row_losses);
            let add_metric = |index: usize, sum: f64| totals.metrics[index] += sum;
            let grad = head.loss.is_some().then_some(grad);
            loss_sums[o] = score(head, data.targets[o], raw, grad, buffers, add_metric)?;
            Ok(head.loss.is_some())
        };
        return network.train_pass(batch, loss, cancel);
    }
    network.forward(batch, false, cancel)?;
    for (o, head) in heads.iter().enumerate() {
        let buffers = (&mut scratch[o].probabilities, &mut *row_losses);
        let add_metric = |index: usize, sum: f64| totals.metrics[index] += sum;
        let raw = network.output_of(o, batch);
        loss_sums[o] = score(head, data.targets[o], raw, None, buffers, add_metric)?;
    }
    Ok(())
}

/// Losses and metrics of a batch with fixed weights, from outputs that inference computes in
/// parts (each part's activations stay in a core's cache, and Ctrl-C stops it between parts):
/// the whole batch's outputs exactly. Adds the metrics to `totals` and each output's loss sum
/// to `loss_sums`.
fn test_in_parts(
    network: &mut Network,
    heads: &[Head],
    data: &BatchData,
    (inputs, scratch, row_losses): (&mut [Vec<f32>], &mut [OutputScratch], &mut Vec<f32>),
    totals: &mut Totals,
    loss_sums: &mut [f64],
    cancel: &Cancel,
) -> Result<()> {
    let batch = data.indices.len();
    let first = consecutive(data.indices);
    for (i, (x, buffer)) in data.xs.iter().zip(inputs.iter_mut()).enumerate() {
        if first.is_none() {
            let size = network.input_size_of(i);
            ensure_len(buffer, batch * size)?;
            gather(x, size, data.indices, &mut buffer[..batch * size]);
        }
    }
    let xs: Few<&[f32]> = data
        .xs
        .iter()
        .zip(inputs.iter())
        .enumerate()
        .map(|(i, (x, buffer))| {
            let size = network.input_size_of(i);
            match first {
                // `evaluate` and validation read the samples in place.
                Some(first) => &x[first * size..(first + batch) * size],
                None => &buffer[..batch * size],
            }
        })
        .collect();
    for (o, output) in scratch.iter_mut().enumerate() {
        ensure_len(&mut output.values, batch * network.output_size_of(o))?;
    }
    {
        let mut ys: Few<&mut [f32]> = scratch
            .iter_mut()
            .enumerate()
            .map(|(o, output)| &mut output.values[..batch * network.output_size_of(o)])
            .collect();
        network.infer_all(&xs, &mut ys, batch, false, cancel)?;
    }
    for (o, head) in heads.iter().enumerate() {
        let OutputScratch {
            values,
            probabilities,
            ..
        } = &mut scratch[o];
        let raw = &values[..batch * network.output_size_of(o)];
        let add_metric = |index: usize, sum: f64| totals.metrics[index] += sum;
        let buffers = (probabilities, &mut *row_losses);
        loss_sums[o] = score(head, data.targets[o], raw, None, buffers, add_metric)?;
    }
    Ok(())
}

/// The training forward and backward of a batch in parts (see [`Network::train_in_parts`]),
/// each part's losses and metrics summed into its `part_sums`.
fn train_in_parts(
    network: &mut Network,
    heads: &[Head],
    data: &BatchData,
    part_sums: &mut [PartSums],
    cancel: &Cancel,
) -> Result<()> {
    let batch = data.indices.len();
    let input_sizes: Few<usize> = (0..data.xs.len())
        .map(|i| network.input_size_of(i))
        .collect();
    let n_metrics: usize = heads.iter().map(|h| h.metrics.len()).sum();
    for sums in part_sums.iter_mut() {
        sums.metrics.clear();
        sums.metrics.resize(n_metrics, 0.0);
        sums.losses.clear();
        sums.losses.resize(heads.len(), 0.0);
    }
    let fill_input = |samples: Range<usize>, i: usize, input: &mut [f32]| {
        gather(data.xs[i], input_sizes[i], &data.indices[samples], input)
    };
    let part_loss =
        |samples: Range<usize>, o: usize, raw: &[f32], grad: &mut [f32], sums: &mut PartSums| {
            let head = &heads[o];
            let target_size = data.targets[o].len() / batch.max(1);
            let targets = &data.targets[o][samples.start * target_size..samples.end * target_size];
            let PartSums {
                losses,
                metrics,
                probabilities,
                row_losses,
            } = sums;
            let grad = head.loss.is_some().then_some(grad);
            let buffers = (probabilities, row_losses);
            losses[o] = score(head, targets, raw, grad, buffers, |i, sum| metrics[i] = sum)?;
            Ok(head.loss.is_some())
        };
    network.train_in_parts(batch, part_sums, fill_input, part_loss, cancel)
}

/// The loss summed over the rows of `output` and, with `grad`, its gradient scaled by `scale`.
/// A large output (W3's 65,536 rows of 32) is split into fixed chunks of rows computed in
/// parallel; each row's loss is kept in `row_losses` and the rows are added in order, so the
/// sum is the serial one whatever the threads.
fn batch_loss(
    loss: &Loss,
    (targets, output): (&[f32], &[f32]),
    width: usize,
    grad: Option<&mut [f32]>,
    scale: f32,
    row_losses: &mut Vec<f32>,
) -> Result<f64> {
    if !parallel::worth_splitting(output.len()) {
        return Ok(loss.evaluate(targets, output, width, grad, scale));
    }
    let rows = output.len() / width;
    ensure_len(row_losses, rows)?;
    let losses = &mut row_losses[..rows];
    let per_chunk = (parallel::CHUNK / width).max(1);
    let chunks = targets
        .par_chunks(per_chunk * loss.target_width(width))
        .zip(output.par_chunks(per_chunk * width))
        .zip(losses.par_chunks_mut(per_chunk));
    match grad {
        Some(grad) => chunks
            .zip(grad.par_chunks_mut(per_chunk * width))
            .for_each(|(((t, p), l), g)| loss.row_losses(t, p, width, Some(g), scale, l)),
        None => chunks.for_each(|((t, p), l)| loss.row_losses(t, p, width, None, scale, l)),
    }
    Ok(losses.iter().map(|&l| l as f64).sum())
}

/// `0..len`, shuffled when there is a `seed`: the order in which an epoch visits samples.
fn fill_order(order: &mut Vec<usize>, len: usize, seed: Option<u64>) -> Result<()> {
    order.clear();
    order
        .try_reserve_exact(len)
        .map_err(|_| memory::allocation_error::<usize>(len))?;
    order.extend(0..len);
    if let Some(seed) = seed {
        Rng::new(seed).shuffle(order);
    }
    Ok(())
}

/// The order in which an epoch with `shuffle_seed` visits `len` samples, for callers that run
/// the batches one by one.
pub fn visiting_order(len: usize, shuffle_seed: Option<u64>) -> Result<Vec<usize>> {
    let mut order = Vec::new();
    fill_order(&mut order, len, shuffle_seed)?;
    Ok(order)
}

/// A batch of `samples` samples that failed with `error`: when it ran out of memory, the
/// network gives back what the batch grew, and the error says what the batch was.
fn out_of_memory(network: &mut Network, error: CoreError, samples: usize) -> CoreError {
    if !error.is_memory() {
        return error;
    }
    if let Err(other) = network.release_buffers() {
        return other;
    }
    let what = || format!("the activations and scratch of a batch of {samples} samples");
    error.for_buffer(what, "Lower `batch_size`.")
}

pub(crate) fn check_batch_size(batch_size: usize) -> Result<()> {
    if batch_size == 0 {
        return Err(CoreError::invalid("batch_size", "a positive integer", 0));
    }
    Ok(())
}

/// The first index, where `indices` are consecutive.
pub fn consecutive(indices: &[usize]) -> Option<usize> {
    let first = *indices.first()?;
    let mut expected = first..;
    indices
        .iter()
        .all(|&i| Some(i) == expected.next())
        .then_some(first)
}

/// Copies the rows `indices` (each `size` values) of `source` into `out`, in order; a large
/// batch (W3's 4 MB) in parallel chunks of rows.
pub fn gather(source: &[f32], size: usize, indices: &[usize], out: &mut [f32]) {
    let copy_rows = |out: &mut [f32], indices: &[usize]| {
        for (dst, &i) in out.chunks_mut(size).zip(indices) {
            dst.copy_from_slice(&source[i * size..(i + 1) * size]);
        }
    };
    let out = &mut out[..indices.len() * size];
    if size == 0 || !parallel::worth_splitting(out.len()) {
        return copy_rows(out, indices);
    }
    let per_chunk = (parallel::CHUNK / size).max(1);
    out.par_chunks_mut(per_chunk * size)
        .zip(indices.par_chunks(per_chunk))
        .for_each(|(out, indices)| copy_rows(out, indices));
}

/// Checks the arrays of a prediction: one of `len` samples per input in `xs`, one per output
/// in `outs`, and the batch size.
pub fn check_predict(
    network: &Network,
    (xs, len): (&[&[f32]], usize),
    outs: &[&mut [f32]],
    batch_size: usize,
) -> Result<()> {
    check_batch_size(batch_size)?;
    if xs.len() != network.input_count() || outs.len() != network.output_count() {
        return Err(CoreError::invalid(
            "data",
            format!(
                "{} inputs and {} outputs",
                network.input_count(),
                network.output_count()
            ),
            format!("{} and {}", xs.len(), outs.len()),
        ));
    }
    for (i, x) in xs.iter().enumerate() {
        let size = network.input_size_of(i);
        if x.len() != len * size {
            return Err(CoreError::shape("x", len * size, x.len()));
        }
    }
    for (o, out) in outs.iter().enumerate() {
        let size = network.output_size_of(o);
        if out.len() != len * size {
            return Err(CoreError::shape("out", len * size, out.len()));
        }
    }
    Ok(())
}

/// Predictions for `xs` (one array per model input, `len` samples each), computed in batches
/// into `outs` (one per output, `len` times its size: the caller's memory, so a large
/// prediction is written once and never zeroed first). Returns [`Next::Stop`] when
/// `after_batch` stopped it.
pub fn predict_all(
    network: &mut Network,
    (xs, len): (&[&[f32]], usize),
    batch_size: usize,
    outs: &mut [&mut [f32]],
    after_batch: &mut dyn FnMut(&Progress) -> Next,
    cancel: &Cancel,
) -> Result<Next> {
    check_predict(network, (xs, len), outs, batch_size)?;
    let in_sizes: Few<usize> = (0..xs.len()).map(|i| network.input_size_of(i)).collect();
    let out_sizes: Few<usize> = (0..outs.len()).map(|o| network.output_size_of(o)).collect();
    let largest = batch_size.min(len);
    network
        .check_batch(largest)
        .map_err(|e| out_of_memory(network, e, largest))?;
    for_each_batch(len, batch_size, (after_batch, cancel), |rows| {
        let batch = rows.len();
        let inputs = sample_rows(xs, &in_sizes, rows.clone());
        let mut outputs = sample_rows_mut(outs, &out_sizes, rows);
        network
            .infer_all(&inputs, &mut outputs, batch, true, cancel)
            .map_err(|e| out_of_memory(network, e, batch))
    })
}

/// [`predict_all`] for a model of one input and one output.
pub fn predict(
    network: &mut Network,
    x: &[f32],
    len: usize,
    batch_size: usize,
    out: &mut [f32],
    after_batch: &mut dyn FnMut(&Progress) -> Next,
    cancel: &Cancel,
) -> Result<Next> {
    predict_all(
        network,
        (&[x], len),
        batch_size,
        &mut [out],
        after_batch,
        cancel,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::activation::Activation;
    use crate::layers::{DenseSpec, LayerSpec};

    fn dense(units: usize, activation: Activation, seed: u64) -> LayerSpec {
        LayerSpec::Dense(DenseSpec::new(units, activation, seed))
    }

    const CROSSENTROPY: Loss = Loss::CategoricalCrossentropy {
        from_logits: false,
        label_smoothing: 0.0,
    };

    /// `trainer.evaluate` in batches of `batch`, never stopped.
    fn evaluated(trainer: &mut Trainer, net: &mut Network, data: &Dataset, batch: usize) -> Logs {
        let mut each_batch = |_: &Progress| Next::Continue;
        let cancel = Cancel::never();
        trainer
            .evaluate(net, data, batch, &mut each_batch, cancel)
            .unwrap()
    }

    /// One epoch of `trainer.fit_epoch` in batches of `batch`, never stopped.
    fn fitted(trainer: &mut Trainer, net: &mut Network, data: &Dataset, batch: usize) -> Logs {
        let mut each_batch = |_: &Progress| Next::Continue;
        let cancel = Cancel::never();
        trainer
            .fit_epoch(net, data, batch, Some(1), &mut each_batch, cancel)
            .unwrap()
    }

    /// The output layer's outputs for the samples `x`, run whole: logits, where there is a head.
    fn forward(net: &mut Network, x: &[f32], training: bool) -> Vec<f32> {
        let n = x.len() / net.input_size();
        net.input_mut(n).unwrap().copy_from_slice(x);
        net.forward(n, training, Cancel::never()).unwrap().to_vec()
    }

    /// The network's outputs from its output layer's: after its head, if it has one.
    fn probabilities(net: &Network, logits: &[f32]) -> Vec<f32> {
        let mut values = logits.to_vec();
        if let Some(head) = net.head() {
            head.apply_in_place(&mut values, net.output_width());
        }
        values
    }

    /// Two Gaussian blobs, labels one-hot.
    fn blobs(n: usize) -> (Vec<f32>, Vec<f32>) {
        let mut rng = Rng::new(9);
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for i in 0..n {
            let class = i % 2;
            let centre = if class == 0 { -1.0 } else { 1.0 };
            x.extend([rng.normal(centre, 0.5), rng.normal(-centre, 0.5)]);
            y.extend(if class == 0 { [1.0, 0.0] } else { [0.0, 1.0] });
        }
        (x, y)
    }

    fn network() -> Network {
        let specs = [
            dense(16, Activation::Relu, 1),
            dense(2, Activation::Softmax, 2),
        ];
        Network::new(&[2], &specs).unwrap()
    }

    fn train(epochs: usize) -> (Network, Logs) {
        train_in_batches(epochs, 32)
    }

    fn train_in_batches(epochs: usize, batch_size: usize) -> (Network, Logs) {
        let mut net = network();
        let loss = Loss::CategoricalCrossentropy {
            from_logits: false,
            label_smoothing: 0.0,
        };
        let adam = OptimizerSpec::adam(0.01);
        let mut trainer =
            Trainer::new(&net, loss, &adam, vec![Metric::CategoricalAccuracy]).unwrap();
        let (x, y) = blobs(200);
        let data = Dataset::new(&x, &y, 200);
        let mut logs = None;
        for epoch in 0..epochs {
            let seed = Some(epoch as u64);
            let epoch = trainer.fit_epoch(
                &mut net,
                &data,
                batch_size,
                seed,
                &mut |_| Next::Continue,
                Cancel::never(),
            );
            logs = Some(epoch);
        }
        (net, logs.unwrap().unwrap())
    }

    #[test]
    fn a_stop_request_interrupts_a_batch_and_changes_nothing() {
        let (mut net, _) = train(1);
        let before = net.weights().to_vec();
        let mut trainer = Trainer::new(
            &net,
            Loss::MeanSquaredError,
            &OptimizerSpec::adam(0.1),
            vec![],
        )
        .unwrap();
        let (x, y) = blobs(150);
        let data = Dataset::new(&x, &y, 150);
        let cancel = Cancel::new();
        cancel.request();
        for batch in [10, 150] {
            // One batch run whole, and one in parts: stopped before any layer.
            let outcome = trainer.fit_epoch(
                &mut net,
                &data,
                batch,
                None,
                &mut |_| Next::Continue,
                &cancel,
            );
            assert_eq!(outcome, Err(CoreError::Interrupted));
        }
        assert_eq!(net.weights(), before);
        assert_eq!(trainer.optimizer().iterations(), 0);
        let outcome = trainer.evaluate(&mut net, &data, 150, &mut |_| Next::Continue, &cancel);
        assert_eq!(outcome, Err(CoreError::Interrupted));
        let mut out = vec![0.0; 300];
        let outcome = predict(
            &mut net,
            &x,
            150,
            150,
            &mut out,
            &mut |_| Next::Continue,
            &cancel,
        );
        assert!(matches!(outcome, Err(CoreError::Interrupted)));
    }

    #[test]
    fn frozen_layers_keep_their_weights_slots_and_penalties_out() {
        let mut penalised = DenseSpec::new(8, Activation::Relu, 1);
        penalised.kernel_regularizer = Some(crate::regularizers::Regularizer { l1: 0.0, l2: 0.5 });
        let specs = [
            LayerSpec::Dense(penalised),
            dense(2, Activation::Softmax, 2),
        ];
        let mut net = Network::new(&[2], &specs).unwrap();
        let frozen = net.weight_shapes()[..2]
            .iter()
            .map(|s| s.iter().product::<usize>())
            .sum::<usize>();
        let adam = OptimizerSpec::adam(0.01);
        let mut trainer = Trainer::new(&net, CROSSENTROPY, &adam, vec![]).unwrap();
        let (x, y) = blobs(64);
        let data = Dataset::new(&x, &y, 64);
        let penalised_loss = evaluated(&mut trainer, &mut net, &data, 64).loss;
        net.set_trainable(&[false, true]).unwrap();
        let free_loss = evaluated(&mut trainer, &mut net, &data, 64).loss;
        let kernel: f64 = net.weights()[..16]
            .iter()
            .map(|&w| 0.5 * (w as f64).powi(2))
            .sum();
        assert!(
            (penalised_loss - free_loss - kernel).abs() < 1e-5,
            "{penalised_loss} {free_loss} {kernel}"
        );
        let before = net.weights().to_vec();
        for _ in 0..3 {
            fitted(&mut trainer, &mut net, &data, 16);
        }
        assert_eq!(net.weights()[..frozen], before[..frozen]);
        assert_ne!(net.weights()[frozen..], before[frozen..]);
        for slot in trainer.optimizer().state().unwrap() {
            assert!(slot[..frozen].iter().all(|&v| v == 0.0));
            assert!(slot[frozen..].iter().any(|&v| v != 0.0));
        }
        assert!(net.set_trainable(&[true]).is_err());
    }

    #[test]
    fn evaluation_in_parts_is_the_whole_batchs() {
        let (mut net, _) = train(2);
        let (x, y) = blobs(300);
        let data = Dataset::new(&x, &y, 300);
        let accuracy = Metric::CategoricalAccuracy;
        let sgd = OptimizerSpec::sgd(0.1);
        let mut trainer = Trainer::new(&net, CROSSENTROPY, &sgd, vec![accuracy]).unwrap();
        let logs = evaluated(&mut trainer, &mut net, &data, 300);
        let logits = forward(&mut net, &x, false);
        let from_logits = CROSSENTROPY.from_logits_form().unwrap();
        let loss_sum = from_logits.evaluate(&y, &logits, 2, None, 0.0);
        assert_eq!(logs.loss, loss_sum / 300.0);
        let output = probabilities(&net, &logits);
        assert_eq!(logs.metrics, [accuracy.evaluate(&y, &output, 2) / 300.0]);
    }

    #[test]
    fn learns_separable_blobs() {
        let (_, logs) = train(20);
        assert!(logs.metrics[0] > 0.95, "{logs:?}");
        assert_eq!(logs.batches, 7);
    }

    #[test]
    fn stopping_after_a_batch_ends_the_epoch() {
        let (mut net, _) = train(1);
        let loss = Loss::MeanSquaredError;
        let sgd = OptimizerSpec::sgd(0.01);
        let mut trainer = Trainer::new(&net, loss, &sgd, vec![]).unwrap();
        let (x, y) = blobs(100);
        let data = Dataset::new(&x, &y, 100);
        let logs = trainer
            .fit_epoch(
                &mut net,
                &data,
                10,
                None,
                &mut |_| Next::Stop,
                Cancel::never(),
            )
            .unwrap();
        assert_eq!(logs.batches, 1);
    }

    #[test]
    fn the_first_batch_with_a_non_finite_loss_is_reported() {
        let mut net = network();
        let sgd = OptimizerSpec::sgd(1e30);
        let mut trainer = Trainer::new(&net, Loss::MeanSquaredError, &sgd, vec![]).unwrap();
        let (x, y_blobs) = blobs(40);
        let y = vec![1e20f32; 80];
        let data = Dataset::new(&x, &y, 40);
        let logs = trainer
            .fit_epoch(
                &mut net,
                &data,
                10,
                None,
                &mut |_| Next::Continue,
                Cancel::never(),
            )
            .unwrap();
        let first = logs.first_non_finite.expect("the loss overflows");
        assert!(first < 4, "{logs:?}");
        let (mut healthy, _) = train(1);
        let data = Dataset::new(&x, &y_blobs, 40);
        let logs = trainer
            .evaluate(
                &mut healthy,
                &data,
                10,
                &mut |_| Next::Continue,
                Cancel::never(),
            )
            .unwrap();
        assert!(logs.loss.is_finite() && logs.first_non_finite.is_none());
    }

    #[test]
    fn inference_reads_and_writes_the_callers_buffers() {
        let (mut net, _) = train(1);
        let (x, _) = blobs(10);
        let logits = forward(&mut net, &x, false);
        let expected = probabilities(&net, &logits);
        let mut out = vec![f32::NAN; 20];
        net.infer(&x, &mut out, 10, Cancel::never()).unwrap();
        assert_eq!(out, expected);
        let mut empty = Network::new(&[2], &[]).unwrap();
        empty.infer(&x, &mut out, 10, Cancel::never()).unwrap();
        assert_eq!(out, x);
    }

    #[test]
    fn wrong_lengths_are_errors() {
        let net = network();
        let trainer = Trainer::new(
            &net,
            Loss::MeanSquaredError,
            &OptimizerSpec::sgd(0.1),
            vec![],
        )
        .unwrap();
        let data = Dataset::new(&[0.0; 6], &[0.0; 4], 3);
        assert!(matches!(
            trainer.check(&net, &data),
            Err(CoreError::ShapeMismatch { .. })
        ));
    }

    /// Values from a fixed generator (mostly in `0..1`), for data large enough to be split among
    /// threads.
    fn noise(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = Rng::new(seed);
        (0..n).map(|_| rng.normal(0.5, 0.3)).collect()
    }

    #[test]
    fn a_large_loss_split_among_threads_is_the_serial_one_exactly() {
        let (rows, width) = (9_000, 10);
        assert!(parallel::worth_splitting(rows * width));
        let probabilities = noise(rows * width, 3);
        let labels: Vec<f32> = (0..rows).map(|r| (r % width) as f32).collect();
        let onehot: Vec<f32> = (0..rows * width)
            .map(|i| (i % width == i / width % width) as u8 as f32)
            .collect();
        let cases = [
            (Loss::MeanSquaredError, &onehot),
            (
                Loss::SparseCategoricalCrossentropy { from_logits: true },
                &labels,
            ),
        ];
        for (loss, targets) in cases {
            let (mut serial, mut split) = (vec![0.0; rows * width], vec![1.0; rows * width]);
            let expected = loss.evaluate(targets, &probabilities, width, Some(&mut serial), 0.5);
            let mut row_losses = Vec::new();
            let pair = (targets.as_slice(), probabilities.as_slice());
            let sum =
                batch_loss(&loss, pair, width, Some(&mut split), 0.5, &mut row_losses).unwrap();
            assert_eq!(sum.to_bits(), expected.to_bits(), "{loss:?}");
            assert_eq!(split, serial, "{loss:?}");
            let sum = batch_loss(&loss, pair, width, None, 0.0, &mut row_losses).unwrap();
            assert_eq!(sum.to_bits(), expected.to_bits(), "{loss:?}");
        }
    }

    #[test]
    fn a_large_gather_copies_the_rows_in_order() {
        let (rows, size) = (5_000, 17);
        let source = noise(rows * size, 4);
        let mut indices: Vec<usize> = (0..rows).collect();
        Rng::new(5).shuffle(&mut indices);
        indices.truncate(4_500);
        let mut out = vec![0.0; indices.len() * size];
        gather(&source, size, &indices, &mut out);
        for (row, &i) in out.chunks(size).zip(&indices) {
            assert_eq!(row, &source[i * size..(i + 1) * size]);
        }
    }

    #[test]
    fn consecutive_indices_are_recognised() {
        assert_eq!(consecutive(&[4, 5, 6]), Some(4));
        assert_eq!(consecutive(&[0]), Some(0));
        assert_eq!(consecutive(&[4, 6]), None);
        assert_eq!(consecutive(&[5, 4]), None);
        assert_eq!(consecutive(&[]), None);
    }

    #[test]
    fn predictions_need_an_output_of_their_size() {
        let (mut net, _) = train(1);
        let (x, _) = blobs(10);
        let mut short = vec![0.0; 19];
        let outcome = predict(
            &mut net,
            &x,
            10,
            4,
            &mut short,
            &mut |_| Next::Continue,
            Cancel::never(),
        );
        assert!(matches!(outcome, Err(CoreError::ShapeMismatch { .. })));
        let mut out = vec![f32::NAN; 20];
        predict(
            &mut net,
            &x,
            10,
            4,
            &mut out,
            &mut |_| Next::Continue,
            Cancel::never(),
        )
        .unwrap();
        let logits = forward(&mut net, &x, false);
        assert_eq!(out, probabilities(&net, &logits));
    }

    #[test]
    fn a_batch_split_into_parts_has_the_whole_batchs_gradient_and_logs() {
        let n = 150;
        assert_eq!(network().training_parts(n), 3); // 64 + 64 + 22 samples
        let (x, y) = blobs(n);
        let data = Dataset::new(&x, &y, n);
        let loss = Loss::CategoricalCrossentropy {
            from_logits: false,
            label_smoothing: 0.0,
        };
        let accuracy = Metric::CategoricalAccuracy;
        let mut split = network();
        let sgd = OptimizerSpec::sgd(0.1);
        let mut trainer = Trainer::new(&split, loss, &sgd, vec![accuracy]).unwrap();
        let logs = trainer
            .gradients(&mut split, &data, Cancel::never())
            .unwrap();

        let mut whole = network();
        let logits = forward(&mut whole, &x, true);
        let right = accuracy.evaluate(&y, &probabilities(&whole, &logits), 2) / n as f64;
        let (logits, grad) = whole.output_and_grad_mut(n).unwrap();
        let from_logits = loss.from_logits_form().unwrap();
        let loss_sum = from_logits.evaluate(&y, logits, 2, Some(grad), 1.0 / n as f32);
        whole.backward(n, Cancel::never()).unwrap();
        for (s, w) in split.grads().iter().zip(whole.grads()) {
            assert!((s - w).abs() <= 1e-6 * (1.0 + w.abs()), "{s} vs {w}");
        }
        assert!((logs.loss - loss_sum / n as f64).abs() < 1e-6);
        assert_eq!(logs.metrics, [right]);
    }

    #[test]
    fn split_batches_train_alike_on_one_and_two_threads() {
        let weights = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| train_in_batches(3, 150).0.weights().to_vec())
        };
        assert_eq!(weights(1), weights(2));
    }

    #[test]
    fn a_large_inference_in_parts_is_the_whole_batchs_on_any_threads() {
        let n = 300; // 5 parts: 64 x 4 + 44
        let (x, _) = blobs(n);
        let mut whole = network();
        let logits = forward(&mut whole, &x, false);
        let expected = probabilities(&whole, &logits);
        for threads in [1, 2, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut out = vec![f32::NAN; expected.len()];
            pool.install(|| network().infer(&x, &mut out, n, Cancel::never()))
                .unwrap();
            assert_eq!(out, expected, "{threads} threads");
        }
    }

    #[test]
    fn dropout_and_activity_penalties_keep_a_batch_whole() {
        let dropout = LayerSpec::Dropout(crate::layers::DropoutSpec {
            rate: 0.5,
            noise_shape: None,
            seed: 1,
        });
        let with_dropout = Network::new(&[2], &[dense(4, Activation::Relu, 1), dropout]);
        assert_eq!(with_dropout.unwrap().training_parts(300), 1);
        let mut penalised = DenseSpec::new(4, Activation::Relu, 1);
        penalised.activity_regularizer =
            Some(crate::regularizers::Regularizer { l1: 0.0, l2: 0.01 });
        let with_penalty = Network::new(&[2], &[LayerSpec::Dense(penalised)]).unwrap();
        assert_eq!(with_penalty.training_parts(300), 1);
        assert_eq!(network().training_parts(300), 5);
        assert_eq!(network().training_parts(64), 1);
        // Samples of 64 KB: parts of 16, whose tensors stay in a core's cache.
        let wide = Network::new(&[16384], &[dense(2, Activation::Softmax, 1)]).unwrap();
        assert_eq!(wide.training_parts(128), 8);
    }
}
