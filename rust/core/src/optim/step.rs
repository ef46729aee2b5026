//! What one optimizer step reads beside the weights, gradients and slots, and which slots an
//! optimizer keeps: worked out once here for every engine (the CPU's optimizers in this folder,
//! the GPU's optimizer shader).

use super::{one_minus, OptimizerSpec};

/// One step's scalars. Each optimizer reads its own: SGD `momentum`; Adam `alpha`, `c1` = 1 − β₁,
/// `c2` = 1 − β₂ and `epsilon`; RMSprop `c1` = ρ, `c2` = 1 − ρ, `momentum` and `epsilon`;
/// Adagrad `epsilon`; all of them `learning_rate`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepScalars {
    pub learning_rate: f32,
    /// Adam's step size with both bias corrections folded in (Keras's form).
    pub alpha: f32,
    pub c1: f32,
    pub c2: f32,
    pub momentum: f32,
    pub epsilon: f32,
}

/// A state vector an optimizer keeps per weight.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Slot {
    /// SGD's velocity (with momentum), Adam's first moment `m`, RMSprop's momentum.
    Momentum,
    /// Adam's second moment `v`, RMSprop's velocity, Adagrad's accumulator.
    Square,
    /// Adam's running maximum of `v` (amsgrad), RMSprop's average gradient (centered).
    Extra,
}

/// Adam's `α = lr·√(1−β₂ᵗ)/(1−β₁ᵗ)` for step `t` = `iterations + 1`, in f32 as Keras computes it.
pub(super) fn adam_alpha(learning_rate: f32, beta_1: f32, beta_2: f32, iterations: u64) -> f32 {
    let t = iterations.saturating_add(1) as f32;
    learning_rate * (1.0 - beta_2.powf(t)).sqrt() / (1.0 - beta_1.powf(t))
}

impl OptimizerSpec {
    /// The scalars of the step after `iterations` steps, at `learning_rate` (the spec's, or
    /// what a schedule or callback set since).
    pub fn step_scalars(&self, learning_rate: f32, iterations: u64) -> StepScalars {
        let base = StepScalars {
            learning_rate,
            ..StepScalars::default()
        };
        match *self {
            OptimizerSpec::Sgd { momentum, .. } => StepScalars {
                momentum: momentum as f32,
                ..base
            },
            OptimizerSpec::Adam {
                beta_1,
                beta_2,
                epsilon,
                ..
            } => StepScalars {
                alpha: adam_alpha(learning_rate, beta_1 as f32, beta_2 as f32, iterations),
                c1: one_minus(beta_1),
                c2: one_minus(beta_2),
                epsilon: epsilon as f32,
                ..base
            },
            OptimizerSpec::Rmsprop {
                rho,
                momentum,
                epsilon,
                ..
            } => StepScalars {
                c1: rho as f32,
                c2: one_minus(rho),
                momentum: momentum as f32,
                epsilon: epsilon as f32,
                ..base
            },
            OptimizerSpec::Adagrad { epsilon, .. } => StepScalars {
                epsilon: epsilon as f32,
                ..base
            },
        }
    }

    /// The slots the optimizer keeps, in Keras's order (that of [`super::Optimizer::state`]).
    pub fn slots(&self) -> Vec<Slot> {
        match *self {
            OptimizerSpec::Sgd { momentum, .. } if momentum != 0.0 => vec![Slot::Momentum],
            OptimizerSpec::Sgd { .. } => Vec::new(),
            OptimizerSpec::Adam { amsgrad, .. } => {
                let mut slots = vec![Slot::Momentum, Slot::Square];
                slots.extend(amsgrad.then_some(Slot::Extra));
                slots
            }
            OptimizerSpec::Rmsprop {
                momentum, centered, ..
            } => {
                let mut slots = vec![Slot::Square];
                slots.extend((momentum > 0.0).then_some(Slot::Momentum));
                slots.extend(centered.then_some(Slot::Extra));
                slots
            }
            OptimizerSpec::Adagrad { .. } => vec![Slot::Square],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs() -> Vec<OptimizerSpec> {
        let sgd = |momentum, nesterov| OptimizerSpec::Sgd {
            learning_rate: 0.1,
            momentum,
            nesterov,
        };
        let adam = |amsgrad| OptimizerSpec::Adam {
            learning_rate: 0.01,
            beta_1: 0.8,
            beta_2: 0.95,
            epsilon: 1e-6,
            amsgrad,
        };
        let rmsprop = |momentum, centered| OptimizerSpec::Rmsprop {
            learning_rate: 0.01,
            rho: 0.8,
            momentum,
            epsilon: 1e-6,
            centered,
        };
        vec![
            sgd(0.0, false),
            sgd(0.9, true),
            adam(false),
            adam(true),
            rmsprop(0.0, false),
            rmsprop(0.5, true),
            OptimizerSpec::Adagrad {
                learning_rate: 0.1,
                initial_accumulator_value: 0.1,
                epsilon: 1e-7,
            },
        ]
    }

    #[test]
    fn each_optimizer_keeps_the_slots_it_names() {
        for spec in specs() {
            let optimizer = spec.build(3).unwrap();
            assert_eq!(spec.slots().len(), optimizer.slots_per_weight(), "{spec:?}");
        }
    }

    /// One step of `spec` on a single weight, computed from its scalars by hand, against the
    /// optimizer's own step after `before` steps.
    #[test]
    fn the_scalars_give_the_optimizers_own_step() {
        let (w0, g) = (0.5f32, 0.25f32);
        for spec in specs() {
            let mut optimizer = spec.build(1).unwrap();
            let mut w = [w0];
            for _ in 0..3 {
                optimizer.step(&mut w, &[g]);
            }
            let before: Vec<f32> = optimizer.state().unwrap().iter().map(|s| s[0]).collect();
            let s = spec.step_scalars(optimizer.learning_rate(), optimizer.iterations());
            let expected = match spec {
                OptimizerSpec::Adam { amsgrad: false, .. } => {
                    let m = before[0] + (g - before[0]) * s.c1;
                    let v = before[1] + (g * g - before[1]) * s.c2;
                    w[0] - m * s.alpha / (v.sqrt() + s.epsilon)
                }
                OptimizerSpec::Sgd { momentum: 0.0, .. } => w[0] - s.learning_rate * g,
                OptimizerSpec::Rmsprop {
                    centered: false, ..
                } if s.momentum == 0.0 => {
                    let v = s.c1 * before[0] + s.c2 * (g * g);
                    w[0] - s.learning_rate * g / (v + s.epsilon).sqrt()
                }
                OptimizerSpec::Adagrad { .. } => {
                    let accumulator = before[0] + g * g;
                    w[0] - s.learning_rate * g / (accumulator + s.epsilon).sqrt()
                }
                _ => continue,
            };
            optimizer.step(&mut w, &[g]);
            assert_eq!(w[0], expected, "{spec:?}");
        }
    }
}
