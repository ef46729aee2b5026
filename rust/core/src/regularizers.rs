//! Weight and activity penalties with Keras 3's formulas (`keras/src/regularizers/`):
//! `l1·Σ|x| + l2·Σx²` (no factor ½), added in full to each batch's loss.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Regularizer {
    #[serde(default)]
    pub l1: f32,
    #[serde(default)]
    pub l2: f32,
}

impl Regularizer {
    /// The penalty `l1·Σ|x| + l2·Σx²`, scaled by `scale`; with `grad`, adds its gradient there.
    pub fn apply(&self, x: &[f32], scale: f32, grad: Option<&mut [f32]>) -> f64 {
        if let Some(grad) = grad {
            let (l1, l2) = (self.l1 * scale, 2.0 * self.l2 * scale);
            for (g, &v) in grad.iter_mut().zip(x) {
                // d|x|/dx is taken as 0 at x = 0, as TensorFlow's `sign` does.
                let sign = if v > 0.0 {
                    1.0
                } else if v < 0.0 {
                    -1.0
                } else {
                    0.0
                };
                *g += l1 * sign + l2 * v;
            }
        }
        let (mut abs, mut squares) = (0.0f64, 0.0f64);
        for &v in x {
            abs += v.abs() as f64;
            squares += (v * v) as f64;
        }
        scale as f64 * (self.l1 as f64 * abs + self.l2 as f64 * squares)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_and_gradient_follow_keras() {
        let reg = Regularizer { l1: 0.1, l2: 0.5 };
        let x = [1.0, -2.0, 0.0];
        let mut grad = [1.0; 3];
        let value = reg.apply(&x, 1.0, Some(&mut grad));
        assert!((value - (0.1 * 3.0 + 0.5 * 5.0)).abs() < 1e-6);
        for (g, expected) in grad.iter().zip([1.0 + 0.1 + 1.0, 1.0 - 0.1 - 2.0, 1.0]) {
            assert!((g - expected).abs() < 1e-6, "{g} vs {expected}");
        }
    }

    #[test]
    fn l2_of_ones_matches_the_observed_keras_value() {
        // Observed in Keras 3: a weight of ones (3,) with L2(0.5) adds 1.5 to the loss.
        let reg = Regularizer { l1: 0.0, l2: 0.5 };
        assert_eq!(reg.apply(&[1.0; 3], 1.0, None), 1.5);
    }
}
