//! Optimizers with Keras 3's update equations (`keras/src/optimizers/`).
//!
//! Every optimizer here is element-wise, so it steps the network's whole weight buffer in one
//! fused loop. Per-weight state lives beside each weight in one slot struct, so the loop reads
//! one more stream, not several.

mod adagrad;
mod adam;
mod rmsprop;
mod sgd;
mod step;

pub use adagrad::Adagrad;
pub use adam::Adam;
pub use rmsprop::RMSprop;
use std::ops::Range;

use serde::{Deserialize, Serialize};
pub use sgd::Sgd;
pub use step::{Slot, StepScalars};

use crate::error::{CoreError, Result};
use crate::memory::try_copy;
use crate::parallel::CHUNK;

pub trait Optimizer: Send + Sync {
    /// Applies one update to the values of `weights` in `ranges` (the trainable weights) given
    /// `grads` (as long as `weights`); the other weights and their slots stay as they are, as
    /// Keras's optimizer never sees frozen variables.
    fn step_ranges(&mut self, weights: &mut [f32], grads: &[f32], ranges: &[Range<usize>]);

    /// Applies one update to all of `weights` given `grads` (same length).
    fn step(&mut self, weights: &mut [f32], grads: &[f32]) {
        let all = 0..weights.len();
        self.step_ranges(weights, grads, &[all]);
    }

    /// How many steps have been applied (Keras's `iterations`).
    fn iterations(&self) -> u64;

    fn learning_rate(&self) -> f32;

    /// Changes the learning rate from the next step on (schedules and callbacks use this).
    fn set_learning_rate(&mut self, learning_rate: f32);

    /// The state values per weight (e.g. Adam's momentum and velocity), in Keras's slot order.
    fn slots_per_weight(&self) -> usize;

    /// A copy of slot `index` (of [`Optimizer::slots_per_weight`]), as long as the weights, in
    /// Keras's slot order.
    fn slot(&self, index: usize) -> Result<Vec<f32>>;

    /// A copy of the state: one vector per slot, each as long as the weights, in Keras's slot
    /// order.
    fn state(&self) -> Result<Vec<Vec<f32>>> {
        (0..self.slots_per_weight()).map(|k| self.slot(k)).collect()
    }

    /// Restores what [`Optimizer::state`] and [`Optimizer::iterations`] returned, so that the
    /// next step is the one an uninterrupted run would take.
    fn set_state(&mut self, iterations: u64, state: &[&[f32]]) -> Result<()>;
}

/// A copy of `slots[index]`, or an error naming the slot that does not exist.
fn copy_slot(slots: &[&[f32]], index: usize) -> Result<Vec<f32>> {
    let slot = slots
        .get(index)
        .ok_or_else(|| CoreError::invalid("slot", format!("fewer than {}", slots.len()), index))?;
    try_copy(slot)
}

/// Copies saved slot vectors into an optimizer's, after checking their count and lengths.
fn restore(slots: &mut [&mut [f32]], saved: &[&[f32]]) -> Result<()> {
    if slots.len() != saved.len() {
        return Err(CoreError::invalid(
            "optimizer state",
            format!("{} slot vectors", slots.len()),
            saved.len(),
        ));
    }
    for (slot, saved) in slots.iter_mut().zip(saved) {
        if slot.len() != saved.len() {
            return Err(CoreError::shape("optimizer state", slot.len(), saved.len()));
        }
        slot.copy_from_slice(saved);
    }
    Ok(())
}

/// Hyperparameters are f64 because Keras keeps them as Python floats: it casts them to f32 where
/// they meet a variable, but computes `1 - beta` in double precision first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum OptimizerSpec {
    Sgd {
        learning_rate: f64,
        momentum: f64,
        nesterov: bool,
    },
    Adam {
        learning_rate: f64,
        beta_1: f64,
        beta_2: f64,
        epsilon: f64,
        amsgrad: bool,
    },
    Rmsprop {
        learning_rate: f64,
        rho: f64,
        momentum: f64,
        epsilon: f64,
        centered: bool,
    },
    Adagrad {
        learning_rate: f64,
        initial_accumulator_value: f64,
        epsilon: f64,
    },
}

impl OptimizerSpec {
    /// `Adam(learning_rate)` with Keras's other defaults.
    pub fn adam(learning_rate: f64) -> Self {
        OptimizerSpec::Adam {
            learning_rate,
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-7,
            amsgrad: false,
        }
    }

    /// `SGD(learning_rate)` without momentum.
    pub fn sgd(learning_rate: f64) -> Self {
        OptimizerSpec::Sgd {
            learning_rate,
            momentum: 0.0,
            nesterov: false,
        }
    }
}

fn check_fraction(name: &str, value: f64) -> Result<()> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(CoreError::invalid(name, "a float in [0, 1]", value))
    }
}

impl OptimizerSpec {
    /// Builds the optimizer for a model with `n_weights` trainable values.
    pub fn build(&self, n_weights: usize) -> Result<Box<dyn Optimizer>> {
        let lr = match *self {
            OptimizerSpec::Sgd { learning_rate, .. }
            | OptimizerSpec::Adam { learning_rate, .. }
            | OptimizerSpec::Rmsprop { learning_rate, .. }
            | OptimizerSpec::Adagrad { learning_rate, .. } => learning_rate,
        };
        if !lr.is_finite() || lr < 0.0 {
            return Err(CoreError::invalid(
                "learning_rate",
                "a finite float >= 0",
                lr,
            ));
        }
        Ok(match *self {
            OptimizerSpec::Sgd {
                learning_rate,
                momentum,
                nesterov,
            } => {
                check_fraction("momentum", momentum)?;
                Box::new(Sgd::new(learning_rate, momentum, nesterov, n_weights)?)
            }
            OptimizerSpec::Adam {
                learning_rate,
                beta_1,
                beta_2,
                epsilon,
                amsgrad,
            } => {
                check_fraction("beta_1", beta_1)?;
                check_fraction("beta_2", beta_2)?;
                Box::new(Adam::new(
                    learning_rate,
                    beta_1,
                    beta_2,
                    epsilon,
                    amsgrad,
                    n_weights,
                )?)
            }
            OptimizerSpec::Rmsprop {
                learning_rate,
                rho,
                momentum,
                epsilon,
                centered,
            } => {
                check_fraction("rho", rho)?;
                check_fraction("momentum", momentum)?;
                Box::new(RMSprop::new(
                    learning_rate,
                    rho,
                    momentum,
                    epsilon,
                    centered,
                    n_weights,
                )?)
            }
            OptimizerSpec::Adagrad {
                learning_rate,
                initial_accumulator_value,
                epsilon,
            } => Box::new(Adagrad::new(
                learning_rate,
                initial_accumulator_value,
                epsilon,
                n_weights,
            )?),
        })
    }
}

/// `1 − β` as Keras computes it: in double precision (Python floats), then cast to f32.
fn one_minus(beta: f64) -> f32 {
    (1.0 - beta) as f32
}

/// Runs `update(weight, grad, slot)` for every weight, in parallel chunks when there are many.
fn update_each<S: Send>(
    weights: &mut [f32],
    grads: &[f32],
    slots: &mut [S],
    update: impl Fn(&mut f32, f32, &mut S) + Sync + Send,
) {
    use rayon::prelude::*;
    let chunk = |(w, (g, s)): (&mut [f32], (&[f32], &mut [S]))| {
        for ((w, &g), s) in w.iter_mut().zip(g).zip(s) {
            update(w, g, s);
        }
    };
    if weights.len() < 4 * CHUNK {
        chunk((weights, (grads, slots)));
    } else {
        weights
            .par_chunks_mut(CHUNK)
            .zip(grads.par_chunks(CHUNK).zip(slots.par_chunks_mut(CHUNK)))
            .for_each(chunk);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_step(spec: OptimizerSpec, w: &mut [f32], g: &[f32]) {
        spec.build(w.len()).unwrap().step(w, g);
    }

    /// Every optimizer, with and without its optional slots.
    fn every_optimizer() -> Vec<OptimizerSpec> {
        vec![
            OptimizerSpec::sgd(0.1),
            OptimizerSpec::Sgd {
                learning_rate: 0.1,
                momentum: 0.9,
                nesterov: true,
            },
            OptimizerSpec::adam(0.01),
            OptimizerSpec::Adam {
                learning_rate: 0.01,
                beta_1: 0.8,
                beta_2: 0.99,
                epsilon: 1e-7,
                amsgrad: true,
            },
            OptimizerSpec::Rmsprop {
                learning_rate: 0.01,
                rho: 0.9,
                momentum: 0.5,
                epsilon: 1e-7,
                centered: true,
            },
            OptimizerSpec::Adagrad {
                learning_rate: 0.1,
                initial_accumulator_value: 0.1,
                epsilon: 1e-7,
            },
        ]
    }

    fn grads(step: usize, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| ((step * n + i) as f32 * 0.37).sin())
            .collect()
    }

    #[test]
    fn restored_state_continues_like_the_original() {
        let n = 5;
        for spec in every_optimizer() {
            let mut original = spec.build(n).unwrap();
            let mut w = vec![0.5f32; n];
            for step in 0..3 {
                original.step(&mut w, &grads(step, n));
            }
            let state = original.state().unwrap();
            assert_eq!(state.len(), original.slots_per_weight(), "{spec:?}");
            let mut restored = spec.build(n).unwrap();
            let slices: Vec<&[f32]> = state.iter().map(|v| &v[..]).collect();
            restored.set_state(original.iterations(), &slices).unwrap();
            assert_eq!(restored.iterations(), 3);
            let mut w_restored = w.clone();
            for step in 3..6 {
                original.step(&mut w, &grads(step, n));
                restored.step(&mut w_restored, &grads(step, n));
            }
            assert_eq!(w, w_restored, "{spec:?}");
        }
    }

    #[test]
    fn state_of_the_wrong_size_is_an_error() {
        let mut adam = OptimizerSpec::adam(0.1).build(3).unwrap();
        let short = [0.0f32; 2];
        let full = [0.0f32; 3];
        assert!(adam.set_state(1, &[&full]).is_err());
        assert!(adam.set_state(1, &[&full, &short]).is_err());
        assert!(adam.set_state(1, &[&full, &full]).is_ok());
        let mut sgd = OptimizerSpec::sgd(0.1).build(3).unwrap();
        assert!(sgd.set_state(1, &[&full]).is_err());
        assert!(sgd.set_state(4, &[]).is_ok() && sgd.iterations() == 4);
    }

    #[test]
    fn adam_first_step_matches_keras() {
        // Observed in Keras 3: lr 0.1, w=[1,-2], g=[.5,-.25] gives [0.9000013, -1.9000019].
        let mut w = [1.0, -2.0];
        let spec = OptimizerSpec::Adam {
            learning_rate: 0.1,
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-7,
            amsgrad: false,
        };
        one_step(spec, &mut w, &[0.5, -0.25]);
        assert!((w[0] - 0.900_001_3).abs() < 1e-6 && (w[1] + 1.900_001_9).abs() < 1e-6);
    }

    #[test]
    fn nesterov_sgd_matches_keras() {
        // Observed in Keras 3: lr 0.1, momentum 0.9, nesterov, g=1: w 1 → 0.81.
        let mut w = [1.0];
        let spec = OptimizerSpec::Sgd {
            learning_rate: 0.1,
            momentum: 0.9,
            nesterov: true,
        };
        one_step(spec, &mut w, &[1.0]);
        assert!((w[0] - 0.81).abs() < 1e-6);
    }

    #[test]
    fn out_of_range_hyperparameters_are_errors() {
        let spec = OptimizerSpec::Sgd {
            learning_rate: 0.1,
            momentum: 1.5,
            nesterov: false,
        };
        assert!(spec.build(1).is_err());
        let spec = OptimizerSpec::Adagrad {
            learning_rate: f64::NAN,
            initial_accumulator_value: 0.1,
            epsilon: 1e-7,
        };
        assert!(spec.build(1).is_err());
    }

    #[test]
    fn parallel_chunks_match_serial_update() {
        let n = 5 * CHUNK + 17;
        let g: Vec<f32> = (0..n).map(|i| (i as f32 * 0.01).sin()).collect();
        let spec = OptimizerSpec::Rmsprop {
            learning_rate: 0.01,
            rho: 0.9,
            momentum: 0.5,
            epsilon: 1e-7,
            centered: true,
        };
        let mut big = vec![1.0; n];
        one_step(spec.clone(), &mut big, &g);
        let mut small = vec![1.0; 1];
        for i in [0, CHUNK + 3, n - 1] {
            small[0] = 1.0;
            one_step(spec.clone(), &mut small, &g[i..i + 1]);
            assert_eq!(small[0], big[i]);
        }
    }
}
