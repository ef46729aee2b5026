//! Adam (`keras/src/optimizers/adam.py`), in Keras's "epsilon-hat" form: the bias correction is
//! folded into the step size and ε is added to `√v`, not to `√v̂`:
//!
//! ```text
//! α = lr·√(1−β₂ᵗ)/(1−β₁ᵗ);  m += (g−m)(1−β₁);  v += (g²−v)(1−β₂);  w −= m·α/(√v + ε)
//! ```
//! With `amsgrad`, `v̂ = max(v̂, v)` replaces `v` in the last step.

use std::ops::Range;

use multiversion::multiversion;
use rayon::prelude::*;

use crate::error::Result;
use crate::memory::try_filled;
use crate::parallel::CHUNK;

use super::step::adam_alpha;
use super::{copy_slot, one_minus, restore, Optimizer};

/// The moments live in separate vectors (not one struct per weight) so that the update
/// vectorizes: square roots and divisions 8 at a time instead of one.
pub struct Adam {
    learning_rate: f32,
    beta_1: f32,
    beta_2: f32,
    /// `1 − β₁` and `1 − β₂`, taken in double precision as Keras does.
    one_minus_beta_1: f32,
    one_minus_beta_2: f32,
    epsilon: f32,
    m: Vec<f32>,
    v: Vec<f32>,
    /// `max(v̂, v)` with `amsgrad`; empty without.
    v_hat: Vec<f32>,
    iterations: u64,
}

/// One step's constants.
#[derive(Clone, Copy)]
struct Step {
    alpha: f32,
    c1: f32,
    c2: f32,
    epsilon: f32,
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
            m: try_filled(n_weights, 0.0)?,
            v: try_filled(n_weights, 0.0)?,
            v_hat: try_filled(if amsgrad { n_weights } else { 0 }, 0.0)?,
            iterations: 0,
        })
    }
}

#[multiversion(targets("x86_64+avx2+fma"))]
fn update(w: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], s: Step) {
    for (((w, &g), m), v) in w.iter_mut().zip(g).zip(m).zip(v) {
        *m += (g - *m) * s.c1;
        *v += (g * g - *v) * s.c2;
        *w -= *m * s.alpha / (v.sqrt() + s.epsilon);
    }
}

#[multiversion(targets("x86_64+avx2+fma"))]
fn update_amsgrad(
    w: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    v_hat: &mut [f32],
    s: Step,
) {
    for ((((w, &g), m), v), v_hat) in w.iter_mut().zip(g).zip(m).zip(v).zip(v_hat) {
        *m += (g - *m) * s.c1;
        *v += (g * g - *v) * s.c2;
        *v_hat = v_hat.max(*v);
        *w -= *m * s.alpha / (v_hat.sqrt() + s.epsilon);
    }
}

impl Optimizer for Adam {
    fn step_ranges(&mut self, weights: &mut [f32], grads: &[f32], ranges: &[Range<usize>]) {
        let (lr, iterations) = (self.learning_rate, self.iterations);
        let s = Step {
            alpha: adam_alpha(lr, self.beta_1, self.beta_2, iterations),
            c1: self.one_minus_beta_1,
            c2: self.one_minus_beta_2,
            epsilon: self.epsilon,
        };
        let amsgrad = !self.v_hat.is_empty();
        for r in ranges {
            let (weights, grads) = (&mut weights[r.clone()], &grads[r.clone()]);
            let (m, v) = (&mut self.m[r.clone()], &mut self.v[r.clone()]);
            // Fixed chunks, in parallel only where waking the other threads pays.
            let parallel = weights.len() >= 4 * CHUNK;
            match (amsgrad, parallel) {
                (false, false) => update(weights, grads, m, v, s),
                (true, false) => {
                    update_amsgrad(weights, grads, m, v, &mut self.v_hat[r.clone()], s)
                }
                (false, true) => weights
                    .par_chunks_mut(CHUNK)
                    .zip(grads.par_chunks(CHUNK))
                    .zip(m.par_chunks_mut(CHUNK))
                    .zip(v.par_chunks_mut(CHUNK))
                    .for_each(|(((w, g), m), v)| update(w, g, m, v, s)),
                (true, true) => weights
                    .par_chunks_mut(CHUNK)
                    .zip(grads.par_chunks(CHUNK))
                    .zip(m.par_chunks_mut(CHUNK))
                    .zip(v.par_chunks_mut(CHUNK))
                    .zip(self.v_hat[r.clone()].par_chunks_mut(CHUNK))
                    .for_each(|((((w, g), m), v), v_hat)| update_amsgrad(w, g, m, v, v_hat, s)),
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
        2 + !self.v_hat.is_empty() as usize
    }

    fn slot(&self, index: usize) -> Result<Vec<f32>> {
        let slots = [&self.m[..], &self.v, &self.v_hat];
        copy_slot(&slots[..self.slots_per_weight()], index)
    }

    fn set_state(&mut self, iterations: u64, state: &[&[f32]]) -> Result<()> {
        let mut slots = vec![&mut self.m[..], &mut self.v[..]];
        if !self.v_hat.is_empty() {
            slots.push(&mut self.v_hat);
        }
        restore(&mut slots, state)?;
        self.iterations = iterations;
        Ok(())
    }
}
