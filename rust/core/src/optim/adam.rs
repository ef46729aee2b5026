//! Adam (`keras/src/optimizers/adam.py`), in Keras's "epsilon-hat" form: the bias correction is
//! folded into the step size and ε is added to `√v`, not to `√v̂`:
//!
//! ```text
//! α = lr·√(1−β₂ᵗ)/(1−β₁ᵗ);  m += (g−m)(1−β₁);  v += (g²−v)(1−β₂);  w −= m·α/(√v + ε)
//! ```
//! With `amsgrad`, `v̂ = max(v̂, v)` replaces `v` in the last step.

use crate::error::Result;
use crate::tensor::try_filled;

use super::{one_minus, update_each, Optimizer};

#[derive(Clone, Copy, Default)]
struct Slot {
    m: f32,
    v: f32,
    v_hat: f32,
}

pub struct Adam {
    learning_rate: f32,
    beta_1: f32,
    beta_2: f32,
    /// `1 − β₁` and `1 − β₂`, taken in double precision as Keras does.
    one_minus_beta_1: f32,
    one_minus_beta_2: f32,
    epsilon: f32,
    amsgrad: bool,
    slots: Vec<Slot>,
    iterations: u64,
}

impl Adam {
    pub fn new(
        learning_rate: f64,
        beta_1: f64,
        beta_2: f64,
        epsilon: f64,
        amsgrad: bool,
        n_weights: usize,
    ) -> Result<Self> {
        Ok(Adam {
            learning_rate: learning_rate as f32,
            beta_1: beta_1 as f32,
            beta_2: beta_2 as f32,
            one_minus_beta_1: one_minus(beta_1),
            one_minus_beta_2: one_minus(beta_2),
            epsilon: epsilon as f32,
            amsgrad,
            slots: try_filled(n_weights, Slot::default())?,
            iterations: 0,
        })
    }
}

impl Optimizer for Adam {
    fn step(&mut self, weights: &mut [f32], grads: &[f32]) {
        let t = (self.iterations + 1) as f32;
        let alpha =
            self.learning_rate * (1.0 - self.beta_2.powf(t)).sqrt() / (1.0 - self.beta_1.powf(t));
        let (c1, c2, eps) = (self.one_minus_beta_1, self.one_minus_beta_2, self.epsilon);
        if self.amsgrad {
            update_each(weights, grads, &mut self.slots, |w, g, s| {
                s.m += (g - s.m) * c1;
                s.v += (g * g - s.v) * c2;
                s.v_hat = s.v_hat.max(s.v);
                *w -= s.m * alpha / (s.v_hat.sqrt() + eps);
            });
        } else {
            update_each(weights, grads, &mut self.slots, |w, g, s| {
                s.m += (g - s.m) * c1;
                s.v += (g * g - s.v) * c2;
                *w -= s.m * alpha / (s.v.sqrt() + eps);
            });
        }
        self.iterations += 1;
    }

    fn iterations(&self) -> u64 {
        self.iterations
    }

    fn learning_rate(&self) -> f32 {
        self.learning_rate
    }

    fn set_learning_rate(&mut self, learning_rate: f32) {
        self.learning_rate = learning_rate;
    }

    fn slots_per_weight(&self) -> usize {
        2 + self.amsgrad as usize
    }
}
