//! Adagrad (`keras/src/optimizers/adagrad.py`): `acc += g²; w −= lr·g/√(acc + ε)`.

use std::ops::Range;

use crate::error::Result;
use crate::memory::try_filled;

use super::{copy_slot, restore, update_each, Optimizer};

pub struct Adagrad {
    learning_rate: f32,
    epsilon: f32,
    accumulators: Vec<f32>,
    iterations: u64,
}

impl Adagrad {
    pub fn new(
        learning_rate: f64,
        initial_accumulator_value: f64,
        epsilon: f64,
        n_weights: usize,
    ) -> Result<Self> {
        Ok(Adagrad {
            learning_rate: learning_rate as f32,
            epsilon: epsilon as f32,
            accumulators: try_filled(n_weights, initial_accumulator_value as f32)?,
            iterations: 0,
        })
    }
}

impl Optimizer for Adagrad {
    fn step_ranges(&mut self, weights: &mut [f32], grads: &[f32], ranges: &[Range<usize>]) {
        let (lr, eps) = (self.learning_rate, self.epsilon);
        for r in ranges {
            let (w, g) = (&mut weights[r.clone()], &grads[r.clone()]);
            update_each(w, g, &mut self.accumulators[r.clone()], |w, g, acc| {
                *acc += g * g;
                *w -= lr * g / (*acc + eps).sqrt();
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
        1
    }

    fn slot(&self, index: usize) -> Result<Vec<f32>> {
        copy_slot(&[&self.accumulators], index)
    }

    fn set_state(&mut self, iterations: u64, state: &[&[f32]]) -> Result<()> {
        restore(&mut [&mut self.accumulators], state)?;
        self.iterations = iterations;
        Ok(())
    }
}
