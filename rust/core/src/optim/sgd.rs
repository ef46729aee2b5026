//! SGD (`keras/src/optimizers/sgd.py`). The learning rate is folded into the velocity:
//! `m ← μ·m − lr·g`, then `w ← w + m` (classic) or `w ← w + μ·m − lr·g` (Nesterov).

use std::ops::Range;

use crate::error::Result;
use crate::memory::try_filled;

use super::{copy_slot, restore, update_each, Optimizer};

pub struct Sgd {
    learning_rate: f32,
    momentum: f32,
    nesterov: bool,
    /// One velocity per weight; empty when `momentum == 0`, as Keras keeps no slot then.
    velocity: Vec<f32>,
    iterations: u64,
}

impl Sgd {
    pub fn new(
        learning_rate: f64,
        momentum: f64,
        nesterov: bool,
        n_weights: usize,
    ) -> Result<Self> {
        let slots = if momentum != 0.0 { n_weights } else { 0 };
        Ok(Sgd {
            learning_rate: learning_rate as f32,
            momentum: momentum as f32,
            nesterov,
            velocity: try_filled(slots, 0.0)?,
            iterations: 0,
        })
    }
}

impl Optimizer for Sgd {
    fn step_ranges(&mut self, weights: &mut [f32], grads: &[f32], ranges: &[Range<usize>]) {
        let (lr, mu) = (self.learning_rate, self.momentum);
        for r in ranges {
            let (weights, grads) = (&mut weights[r.clone()], &grads[r.clone()]);
            if self.velocity.is_empty() {
                // A zero-sized slot per weight: `vec![(); n]` allocates nothing.
                let mut none = vec![(); weights.len()];
                update_each(weights, grads, &mut none, |w, g, _| *w -= g * lr);
            } else if self.nesterov {
                update_each(weights, grads, &mut self.velocity[r.clone()], |w, g, m| {
                    *m = *m * mu - g * lr;
                    *w += *m * mu - g * lr;
                });
            } else {
                update_each(weights, grads, &mut self.velocity[r.clone()], |w, g, m| {
                    *m = *m * mu - g * lr;
                    *w += *m;
                });
            }
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
        (!self.velocity.is_empty()) as usize
    }

    fn slot(&self, index: usize) -> Result<Vec<f32>> {
        let slots = [&self.velocity[..]];
        copy_slot(&slots[..self.slots_per_weight()], index)
    }

    fn set_state(&mut self, iterations: u64, state: &[&[f32]]) -> Result<()> {
        let mut slots: Vec<&mut [f32]> = Vec::new();
        if !self.velocity.is_empty() {
            slots.push(&mut self.velocity);
        }
        restore(&mut slots, state)?;
        self.iterations = iterations;
        Ok(())
    }
}
