//! The output head. Where a network's output layer ends in a sigmoid or a softmax, the layer runs
//! without it, so that its outputs are logits, and the head applies the activation after it:
//! predictions, metrics and the other losses read the probabilities, while crossentropy (a loss
//! or a metric, binary, categorical or sparse) reads the logits, as Keras on TensorFlow does
//! (its sigmoid and softmax keep their input beside their output, and crossentropy takes it).
//! From logits, crossentropy is exact where the outputs saturate, and its gradient does not
//! vanish there. Keras on TensorFlow does this whichever crossentropy meets the output: a
//! softmax output under binary crossentropy gives the sigmoid crossentropy of its logits.

use crate::error::Result;
use crate::kernels::activation::Activation;
use crate::kernels::loss::Loss;
use crate::layers::LayerSpec;
use crate::memory::ensure_len;
use crate::metrics::Metric;

/// The head of a network of `specs`: the activation its output layer ends in, where that is a
/// sigmoid or a softmax. An output layer that penalizes its output keeps its activation (the
/// penalty reads the probabilities, and crossentropy then reads them too).
pub fn head_of(specs: &[LayerSpec]) -> Option<Activation> {
    let last = specs.last()?;
    match last.activation()? {
        Activation::Sigmoid | Activation::Softmax if !last.has_activity_regularizer() => {
            last.activation()
        }
        _ => None,
    }
}

/// What a batch's losses and metrics read: the network's outputs (probabilities, after the head)
/// and, where there is a head, the logits they came from.
#[derive(Clone, Copy)]
pub struct Outputs<'a> {
    pub values: &'a [f32],
    pub logits: Option<&'a [f32]>,
}

impl<'a> Outputs<'a> {
    /// The outputs of a forward whose last layer wrote `raw`: with a `head`, `raw` are logits
    /// and the probabilities go into `probabilities` (rows `width` wide).
    pub fn of(
        raw: &'a [f32],
        head: Option<Activation>,
        width: usize,
        probabilities: &'a mut Vec<f32>,
    ) -> Result<Self> {
        let Some(head) = head else {
            return Ok(Outputs {
                values: raw,
                logits: None,
            });
        };
        ensure_len(probabilities, raw.len())?;
        let values = &mut probabilities[..raw.len()];
        head.forward(raw, values, width);
        Ok(Outputs {
            values,
            logits: Some(raw),
        })
    }

    /// Whether `loss` reads the logits: a crossentropy, where there are logits.
    pub fn reads_logits(&self, loss: Loss) -> bool {
        self.logits.is_some() && loss.from_logits_form().is_some()
    }

    /// What `loss` reads and the loss it computes there: the logits, for a crossentropy where
    /// there are logits (from logits, as Keras on TensorFlow computes it), else the outputs.
    pub fn for_loss(&self, loss: Loss) -> (Loss, &'a [f32]) {
        match (self.logits, loss.from_logits_form()) {
            (Some(logits), Some(from_logits)) => (from_logits, logits),
            _ => (loss, self.values),
        }
    }

    /// The sum over rows of `metric`, reading what its formula reads.
    pub fn metric(&self, metric: &Metric, targets: &[f32], width: usize) -> f64 {
        match metric {
            Metric::Loss { loss } => {
                let (loss, predictions) = self.for_loss(*loss);
                Metric::Loss { loss }.evaluate(targets, predictions, width)
            }
            other => other.evaluate(targets, self.values, width),
        }
    }
}
