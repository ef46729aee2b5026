//! RMSprop (`keras/src/optimizers/rmsprop.py`); ε sits inside the square root:
//!
//! ```text
//! v = ρ·v + (1−ρ)·g²;  [centered: ḡ = ρ·ḡ + (1−ρ)·g, d = v − ḡ² + ε | d = v + ε]
//! inc = lr·g/√d;  [momentum μ > 0: mom = μ·mom + inc, w −= mom | w −= inc]
//! ```

use std::ops::Range;

use crate::error::{CoreError, Result};
use crate::memory::try_filled;

use super::{one_minus, restore, update_each, Optimizer};

#[derive(Clone, Copy, Default)]
struct Slot {
    velocity: f32,
    momentum: f32,
    average_grad: f32,
}

pub struct RMSprop {
    learning_rate: f32,
    rho: f32,
    /// `1 − ρ`, taken in double precision as Keras does.
    one_minus_rho: f32,
    momentum: f32,
    epsilon: f32,
    centered: bool,
    slots: Vec<Slot>,
    iterations: u64,
}

impl RMSprop {
    pub fn new(
        learning_rate: f64,
        rho: f64,
        momentum: f64,
        epsilon: f64,
        centered: bool,
        n_weights: usize,
    ) -> Result<Self> {
        Ok(RMSprop {
            learning_rate: learning_rate as f32,
            rho: rho as f32,
            one_minus_rho: one_minus(rho),
            momentum: momentum as f32,
            epsilon: epsilon as f32,
            centered,
            slots: try_filled(n_weights, Slot::default())?,
            iterations: 0,
        })
    }
}

impl RMSprop {
    /// The slot fields that are in use, in Keras's order.
    fn slot_fields(&self) -> Vec<fn(&Slot) -> f32> {
        let mut fields: Vec<fn(&Slot) -> f32> = vec![|s| s.velocity];
        if self.momentum > 0.0 {
            fields.push(|s| s.momentum);
        }
        if self.centered {
            fields.push(|s| s.average_grad);
        }
        fields
    }
}

impl Optimizer for RMSprop {
    fn step_ranges(&mut self, weights: &mut [f32], grads: &[f32], ranges: &[Range<usize>]) {
        let (lr, rho, c, mu, eps) = (
            self.learning_rate,
            self.rho,
            self.one_minus_rho,
            self.momentum,
            self.epsilon,
        );
        let centered = self.centered;
        for r in ranges {
            let (weights, grads) = (&mut weights[r.clone()], &grads[r.clone()]);
            update_each(weights, grads, &mut self.slots[r.clone()], |w, g, s| {
                s.velocity = rho * s.velocity + c * (g * g);
                let denominator = if centered {
                    s.average_grad = rho * s.average_grad + c * g;
                    s.velocity - s.average_grad * s.average_grad + eps
                } else {
                    s.velocity + eps
                };
                let increment = lr * g / denominator.sqrt();
                if mu > 0.0 {
                    s.momentum = mu * s.momentum + increment;
                    *w -= s.momentum;
                } else {
                    *w -= increment;
                }
            });
        }
        self.iterations = self.iterations.saturating_add(1);
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
        1 + (self.momentum > 0.0) as usize + self.centered as usize
    }

    /// Keras's order: velocities, then momentums (with momentum), then average gradients
    /// (centered).
    fn slot(&self, index: usize) -> Result<Vec<f32>> {
        let fields = self.slot_fields();
        let field = *fields.get(index).ok_or_else(|| {
            CoreError::invalid("slot", format!("fewer than {}", fields.len()), index)
        })?;
        let mut values = try_filled(self.slots.len(), 0.0)?;
        values
            .iter_mut()
            .zip(&self.slots)
            .for_each(|(v, s)| *v = field(s));
        Ok(values)
    }

    fn set_state(&mut self, iterations: u64, state: &[&[f32]]) -> Result<()> {
        let mut vectors = (0..self.slot_fields().len())
            .map(|_| try_filled(self.slots.len(), 0.0))
            .collect::<Result<Vec<_>>>()?;
        let mut views: Vec<&mut [f32]> = vectors.iter_mut().map(|v| &mut v[..]).collect();
        restore(&mut views, state)?;
        let (momentum, centered) = (self.momentum > 0.0, self.centered);
        for (i, slot) in self.slots.iter_mut().enumerate() {
            let mut values = vectors.iter().map(|v| v[i]);
            slot.velocity = values.next().unwrap_or(0.0);
            if momentum {
                slot.momentum = values.next().unwrap_or(0.0);
            }
            if centered {
                slot.average_grad = values.next().unwrap_or(0.0);
            }
        }
        self.iterations = iterations;
        Ok(())
    }
}
