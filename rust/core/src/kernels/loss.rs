//! Losses with Keras 3's formulas (`keras/src/losses/losses.py`, backend `nn.py`), each with its
//! gradient with respect to the prediction.
//!
//! A loss sees rows: the prediction's last axis is one row (`width` values) and every other axis
//! counts rows. Each row gives one value (MSE and BCE average over the row); the batch loss is the
//! mean over rows, Keras's default `sum_over_batch_size` reduction. Probabilities are clipped to
//! `[ε, 1−ε]` with `ε = 1e-7` as the JAX, torch and NumPy backends of Keras do.

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};

/// `keras.backend.epsilon()`.
pub const EPSILON: f32 = 1e-7;

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Loss {
    MeanSquaredError,
    MeanAbsoluteError,
    BinaryCrossentropy {
        #[serde(default)]
        from_logits: bool,
        #[serde(default)]
        label_smoothing: f32,
    },
    CategoricalCrossentropy {
        #[serde(default)]
        from_logits: bool,
        #[serde(default)]
        label_smoothing: f32,
    },
    SparseCategoricalCrossentropy {
        #[serde(default)]
        from_logits: bool,
    },
}

impl Loss {
    /// This crossentropy computed from logits (`from_logits=True`); `None` for the other
    /// losses, which read probabilities or values.
    pub fn from_logits_form(self) -> Option<Loss> {
        match self {
            Loss::BinaryCrossentropy {
                label_smoothing, ..
            } => Some(Loss::BinaryCrossentropy {
                from_logits: true,
                label_smoothing,
            }),
            Loss::CategoricalCrossentropy {
                label_smoothing, ..
            } => Some(Loss::CategoricalCrossentropy {
                from_logits: true,
                label_smoothing,
            }),
            Loss::SparseCategoricalCrossentropy { .. } => {
                Some(Loss::SparseCategoricalCrossentropy { from_logits: true })
            }
            Loss::MeanSquaredError | Loss::MeanAbsoluteError => None,
        }
    }

    /// How many target values one row of predictions `width` wide needs.
    pub fn target_width(&self, width: usize) -> usize {
        match self {
            Loss::SparseCategoricalCrossentropy { .. } => 1,
            _ => width,
        }
    }

    /// Checks that targets can be used with this loss (sparse labels are class indices).
    pub fn check_targets(&self, y_true: &[f32], width: usize) -> Result<()> {
        if let Loss::SparseCategoricalCrossentropy { .. } = self {
            if let Some(bad) = y_true
                .iter()
                .find(|&&t| t.fract() != 0.0 || t < 0.0 || t >= width as f32)
            {
                return Err(CoreError::invalid(
                    "y",
                    format!("integer class indices in [0, {width})"),
                    bad,
                ));
            }
        }
        Ok(())
    }

    /// Returns the sum of the per-row losses. With `grad`, also writes the gradient of
    /// `grad_scale × Σ rows` with respect to `y_pred` (pass `1/rows` for the batch mean).
    pub fn evaluate(
        &self,
        y_true: &[f32],
        y_pred: &[f32],
        width: usize,
        grad: Option<&mut [f32]>,
        grad_scale: f32,
    ) -> f64 {
        let mut total = 0.0f64;
        self.each_row(y_true, y_pred, width, grad, grad_scale, |_, loss| {
            total += loss as f64
        });
        total
    }

    /// [`Loss::evaluate`] without the sum: writes each row's loss into `losses`, so that callers
    /// can split the rows among threads and still add them up in row order.
    pub fn row_losses(
        &self,
        y_true: &[f32],
        y_pred: &[f32],
        width: usize,
        grad: Option<&mut [f32]>,
        grad_scale: f32,
        losses: &mut [f32],
    ) {
        self.each_row(y_true, y_pred, width, grad, grad_scale, |r, loss| {
            losses[r] = loss
        });
    }

    fn each_row(
        &self,
        y_true: &[f32],
        y_pred: &[f32],
        width: usize,
        mut grad: Option<&mut [f32]>,
        grad_scale: f32,
        mut each: impl FnMut(usize, f32),
    ) {
        let t_width = self.target_width(width);
        for (r, (t, p)) in y_true.chunks(t_width).zip(y_pred.chunks(width)).enumerate() {
            let g = grad
                .as_deref_mut()
                .map(|g| &mut g[r * width..(r + 1) * width]);
            each(r, self.row(t, p, g, grad_scale));
        }
    }

    fn row(&self, t: &[f32], p: &[f32], g: Option<&mut [f32]>, scale: f32) -> f32 {
        match *self {
            Loss::MeanSquaredError => mean_squared_error(t, p, g, scale),
            Loss::MeanAbsoluteError => mean_absolute_error(t, p, g, scale),
            Loss::BinaryCrossentropy {
                from_logits,
                label_smoothing,
            } => binary_crossentropy(t, p, from_logits, label_smoothing, g, scale),
            Loss::CategoricalCrossentropy {
                from_logits,
                label_smoothing,
            } => {
                let smooth =
                    |y: f32| y * (1.0 - label_smoothing) + label_smoothing / p.len() as f32;
                categorical_crossentropy(|j| smooth(t[j]), p, from_logits, g, scale)
            }
            Loss::SparseCategoricalCrossentropy { from_logits } => {
                let class = t[0] as usize;
                if !from_logits {
                    return sparse_crossentropy_of_probabilities(class, p, g, scale);
                }
                let one_hot = |j: usize| (j == class) as u8 as f32;
                categorical_crossentropy(one_hot, p, from_logits, g, scale)
            }
        }
    }
}

fn mean_squared_error(t: &[f32], p: &[f32], g: Option<&mut [f32]>, scale: f32) -> f32 {
    let n = p.len() as f32;
    if let Some(g) = g {
        // One factor per row: a division per value took a third of W3's loss time.
        let factor = scale * 2.0 / n;
        for ((g, &t), &p) in g.iter_mut().zip(t).zip(p) {
            *g = factor * (p - t);
        }
    }
    sum_pairs(t, p, |t, p| (t - p) * (t - p)) / n
}

fn mean_absolute_error(t: &[f32], p: &[f32], g: Option<&mut [f32]>, scale: f32) -> f32 {
    let n = p.len() as f32;
    if let Some(g) = g {
        for ((g, &t), &p) in g.iter_mut().zip(t).zip(p) {
            // d|x|/dx is taken as 0 at x = 0, as TensorFlow's `sign` does.
            let sign = if p > t {
                1.0
            } else if p < t {
                -1.0
            } else {
                0.0
            };
            *g = scale * sign / n;
        }
    }
    sum_pairs(t, p, |t, p| (t - p).abs()) / n
}

/// `Σ f(t_j, p_j)` in eight interleaved running sums that the compiler keeps in vector
/// registers: one running sum waits for each addition to finish (W3's MSE over 2M values took
/// 8 % of a training step that way).
fn sum_pairs(t: &[f32], p: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
    let (t8, p8) = (t.chunks_exact(8), p.chunks_exact(8));
    let rest: f32 = t8
        .remainder()
        .iter()
        .zip(p8.remainder())
        .map(|(&t, &p)| f(t, p))
        .sum();
    let mut lanes = [0.0f32; 8];
    for (t, p) in t8.zip(p8) {
        for i in 0..8 {
            lanes[i] += f(t[i], p[i]);
        }
    }
    lanes.iter().sum::<f32>() + rest
}

fn binary_crossentropy(
    t: &[f32],
    p: &[f32],
    from_logits: bool,
    label_smoothing: f32,
    mut g: Option<&mut [f32]>,
    scale: f32,
) -> f32 {
    let n = p.len() as f32;
    let mut total = 0.0;
    for (j, (&t, &p)) in t.iter().zip(p).enumerate() {
        let y = t * (1.0 - label_smoothing) + 0.5 * label_smoothing;
        let (value, derivative) = if from_logits {
            // max(z,0) − z·y + log(1 + e^−|z|): the stable form of −y·log σ(z) − (1−y)·log σ(−z).
            let value = p.max(0.0) - p * y + (-p.abs()).exp().ln_1p();
            let sigmoid = 1.0 / (1.0 + (-p).exp());
            (value, sigmoid - y)
        } else {
            let q = p.clamp(EPSILON, 1.0 - EPSILON);
            let value = -(y * q.ln() + (1.0 - y) * (1.0 - q).ln());
            let inside = (EPSILON..=1.0 - EPSILON).contains(&p);
            let derivative = if inside {
                (q - y) / (q * (1.0 - q))
            } else {
                0.0
            };
            (value, derivative)
        };
        total += value;
        if let Some(g) = g.as_deref_mut() {
            g[j] = scale * derivative / n;
        }
    }
    total / n
}

/// Sparse categorical crossentropy of a row that is not logits, as TensorFlow computes it:
/// each value clipped to `[ε, 1−ε]`, then the log-softmax of their logarithms, so
/// `−log q_c + log Σ q_j` for `q = clip(p)` (not renormalised first, unlike categorical
/// crossentropy: a row of zeros gives `log(width)`).
fn sparse_crossentropy_of_probabilities(
    class: usize,
    p: &[f32],
    g: Option<&mut [f32]>,
    scale: f32,
) -> f32 {
    let clipped = |v: f32| v.clamp(EPSILON, 1.0 - EPSILON);
    let sum: f32 = p.iter().map(|&v| clipped(v)).sum();
    if let Some(g) = g {
        // ∂L/∂q_j = 1/Σq − [j = c]/q_c, through the clip where the value lies inside it.
        for (j, (g, &v)) in g.iter_mut().zip(p).enumerate() {
            let inside = (EPSILON..=1.0 - EPSILON).contains(&v);
            let own = if j == class { 1.0 / clipped(v) } else { 0.0 };
            *g = if inside {
                scale * (1.0 / sum - own)
            } else {
                0.0
            };
        }
    }
    sum.ln() - clipped(p[class]).ln()
}

/// `−Σ y·log p` for one row, where `y(j)` gives the (possibly smoothed) target of class `j`.
/// Probabilities are renormalised to sum to one, then clipped, as Keras does.
fn categorical_crossentropy(
    y: impl Fn(usize) -> f32,
    p: &[f32],
    from_logits: bool,
    g: Option<&mut [f32]>,
    scale: f32,
) -> f32 {
    if from_logits {
        let max = p.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        let sum_exp: f32 = p.iter().map(|&z| (z - max).exp()).sum();
        let log_sum = max + sum_exp.ln();
        let y_sum: f32 = (0..p.len()).map(&y).sum();
        if let Some(g) = g {
            for (j, g) in g.iter_mut().enumerate() {
                let softmax = (p[j] - max).exp() / sum_exp;
                *g = scale * (softmax * y_sum - y(j));
            }
        }
        return -(0..p.len()).map(|j| y(j) * (p[j] - log_sum)).sum::<f32>();
    }
    let sum: f32 = p.iter().sum();
    let clipped = |j: usize| (p[j] / sum).clamp(EPSILON, 1.0 - EPSILON);
    if let Some(g) = g {
        // With q = p/Σp and c = clip(q): ∂L/∂c_j = −y_j/c_j (zero where clipped), and
        // ∂q_j/∂p_i = (δ_ij − q_j)/Σp, so ∂L/∂p_i = (∂L/∂c_i − Σ_j ∂L/∂c_j·q_j)/Σp.
        let dc = |j: usize| {
            let q = p[j] / sum;
            if (EPSILON..=1.0 - EPSILON).contains(&q) {
                -y(j) / q
            } else {
                0.0
            }
        };
        let dot: f32 = (0..p.len()).map(|j| dc(j) * p[j] / sum).sum();
        for (i, g) in g.iter_mut().enumerate() {
            *g = scale * (dc(i) - dot) / sum;
        }
    }
    -(0..p.len()).map(|j| y(j) * clipped(j).ln()).sum::<f32>()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_losses() -> Vec<Loss> {
        vec![
            Loss::MeanSquaredError,
            Loss::MeanAbsoluteError,
            Loss::BinaryCrossentropy {
                from_logits: false,
                label_smoothing: 0.0,
            },
            Loss::BinaryCrossentropy {
                from_logits: true,
                label_smoothing: 0.1,
            },
            Loss::CategoricalCrossentropy {
                from_logits: false,
                label_smoothing: 0.0,
            },
            Loss::CategoricalCrossentropy {
                from_logits: true,
                label_smoothing: 0.2,
            },
            Loss::SparseCategoricalCrossentropy { from_logits: false },
            Loss::SparseCategoricalCrossentropy { from_logits: true },
        ]
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let width = 3;
        let probs = [0.2, 0.5, 0.3, 0.6, 0.1, 0.3];
        let onehot = [0.0, 1.0, 0.0, 1.0, 0.0, 0.0];
        let sparse = [1.0, 0.0];
        for loss in all_losses() {
            let t: &[f32] = match loss {
                Loss::SparseCategoricalCrossentropy { .. } => &sparse,
                _ => &onehot,
            };
            let mut grad = [0.0; 6];
            loss.evaluate(t, &probs, width, Some(&mut grad), 0.5);
            for i in 0..6 {
                let h = 1e-3;
                let (mut up, mut down) = (probs, probs);
                up[i] += h;
                down[i] -= h;
                let numeric = 0.5
                    * (loss.evaluate(t, &up, width, None, 0.0)
                        - loss.evaluate(t, &down, width, None, 0.0))
                    / (2.0 * h as f64);
                assert!(
                    (grad[i] as f64 - numeric).abs() < 2e-3 * (1.0 + numeric.abs()),
                    "{loss:?} at {i}: {} vs {numeric}",
                    grad[i]
                );
            }
        }
    }

    #[test]
    fn mean_errors_of_wide_rows_match_a_plain_sum() {
        // 19 values: two vectors of eight and a remainder of three.
        let t: Vec<f32> = (0..19).map(|i| (i as f32 * 0.37).sin()).collect();
        let p: Vec<f32> = (0..19).map(|i| (i as f32 * 0.11).cos()).collect();
        let pairs = || t.iter().zip(&p).map(|(&t, &p)| (t as f64, p as f64));
        let mse = pairs().map(|(t, p)| (t - p) * (t - p)).sum::<f64>() / 19.0;
        let mae = pairs().map(|(t, p)| (t - p).abs()).sum::<f64>() / 19.0;
        let value = |loss: Loss| loss.evaluate(&t, &p, 19, None, 0.0);
        assert!((value(Loss::MeanSquaredError) - mse).abs() < 1e-6);
        assert!((value(Loss::MeanAbsoluteError) - mae).abs() < 1e-6);
    }

    #[test]
    fn clipping_bounds_the_crossentropy() {
        let bce = Loss::BinaryCrossentropy {
            from_logits: false,
            label_smoothing: 0.0,
        };
        let value = bce.evaluate(&[1.0], &[0.0], 1, None, 0.0);
        assert!((value - -(EPSILON as f64).ln()).abs() < 1e-3);
    }

    #[test]
    fn sparse_crossentropy_of_values_that_are_not_probabilities_clips_each_then_normalises() {
        // TensorFlow: log(3) for a row of zeros (Keras 3 evaluated 1.0986123).
        let scce = Loss::SparseCategoricalCrossentropy { from_logits: false };
        let value = scce.evaluate(&[1.0], &[0.0, 0.0, 0.0], 3, None, 0.0);
        assert!((value - 3f64.ln()).abs() < 1e-6, "{value}");
        // Unnormalised: −log q_1 + log Σq, with 2.5 clipped to 1 − ε.
        let value = scce.evaluate(&[1.0], &[2.5, 0.2, 0.3], 3, None, 0.0);
        let expected = (1.0 - 1e-7f64 + 0.2 + 0.3).ln() - 0.2f64.ln();
        assert!((value - expected).abs() < 1e-5, "{value} vs {expected}");
    }

    #[test]
    fn sparse_targets_are_checked() {
        let loss = Loss::SparseCategoricalCrossentropy { from_logits: false };
        assert!(loss.check_targets(&[0.0, 2.0], 3).is_ok());
        assert!(loss.check_targets(&[3.0], 3).is_err());
        assert!(loss.check_targets(&[0.5], 3).is_err());
        assert!(loss.check_targets(&[-1.0], 3).is_err());
    }
}
