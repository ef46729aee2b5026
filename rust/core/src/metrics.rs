//! Metrics with Keras 3's formulas (`keras/src/metrics/accuracy_metrics.py`). Each gives one value
//! per row; the trainer keeps a sum and a count, so an epoch's value is the exact mean over rows.

use serde::{Deserialize, Serialize};

use crate::kernels::loss::Loss;

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Metric {
    /// `mean(y_true == y_pred)` over the row: exact equality (Keras's `Accuracy`).
    Accuracy,
    /// `mean(y_true == (y_pred > threshold))` over the row.
    BinaryAccuracy { threshold: f32 },
    /// `argmax(y_true) == argmax(y_pred)`.
    CategoricalAccuracy,
    /// `y_true == argmax(y_pred)`.
    SparseCategoricalAccuracy,
    /// A loss function used as a metric ("mse", "mae", "categorical_crossentropy", ...).
    Loss { loss: Loss },
}

/// The index of the first maximum, as `argmax` breaks ties.
fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (j, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = j;
        }
    }
    best
}

impl Metric {
    /// How many target values one row of predictions `width` wide needs.
    pub fn target_width(&self, width: usize) -> usize {
        match self {
            Metric::SparseCategoricalAccuracy => 1,
            Metric::Loss { loss } => loss.target_width(width),
            _ => width,
        }
    }

    /// Each row's value, into `values` (one per row).
    pub fn row_values(&self, y_true: &[f32], y_pred: &[f32], width: usize, values: &mut [f32]) {
        let t_width = self.target_width(width);
        let rows = y_true.chunks(t_width).zip(y_pred.chunks(width));
        for (value, (t, p)) in values.iter_mut().zip(rows) {
            *value = self.evaluate(t, p, width) as f32;
        }
    }

    /// The sum over rows of this metric's per-row values.
    pub fn evaluate(&self, y_true: &[f32], y_pred: &[f32], width: usize) -> f64 {
        let t_width = self.target_width(width);
        let rows = y_true.chunks(t_width).zip(y_pred.chunks(width));
        match *self {
            Metric::Accuracy => rows
                .map(|(t, p)| {
                    let hits = t.iter().zip(p).filter(|(&t, &p)| t == p).count();
                    hits as f64 / width as f64
                })
                .sum(),
            Metric::BinaryAccuracy { threshold } => rows
                .map(|(t, p)| {
                    let hits = t
                        .iter()
                        .zip(p)
                        .filter(|(&t, &p)| t == ((p > threshold) as u8 as f32))
                        .count();
                    hits as f64 / width as f64
                })
                .sum(),
            Metric::CategoricalAccuracy => {
                rows.filter(|(t, p)| argmax(t) == argmax(p)).count() as f64
            }
            Metric::SparseCategoricalAccuracy => {
                rows.filter(|(t, p)| t[0] == argmax(p) as f32).count() as f64
            }
            Metric::Loss { loss } => loss.evaluate(y_true, y_pred, width, None, 0.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accuracy_counts_exactly_equal_values() {
        let p = [1.0, 0.5, 2.0, 0.0];
        let t = [1.0, 1.0, 2.0, 0.0];
        assert_eq!(Metric::Accuracy.evaluate(&t, &p, 2), 1.5);
        let mut rows = [0.0; 2];
        Metric::Accuracy.row_values(&t, &p, 2, &mut rows);
        assert_eq!(rows, [0.5, 1.0]);
    }

    #[test]
    fn accuracies_follow_keras() {
        let p = [0.1, 0.7, 0.2, 0.5, 0.4, 0.1];
        let onehot = [0.0, 1.0, 0.0, 0.0, 1.0, 0.0];
        assert_eq!(Metric::CategoricalAccuracy.evaluate(&onehot, &p, 3), 1.0);
        assert_eq!(
            Metric::SparseCategoricalAccuracy.evaluate(&[1.0, 0.0], &p, 3),
            2.0
        );
        let binary = Metric::BinaryAccuracy { threshold: 0.5 };
        // 0.5 is not above the threshold, so it counts as class 0.
        assert_eq!(binary.evaluate(&[1.0, 0.0, 1.0], &[0.9, 0.5, 0.2], 1), 2.0);
    }

    #[test]
    fn ties_pick_the_first_index() {
        assert_eq!(argmax(&[0.3, 0.3, 0.1]), 0);
    }
}
