//! Weight initializers with Keras 3's formulas (`keras/src/initializers/`).
//!
//! The named presets (`glorot_uniform`, `he_normal`, ...) are `VarianceScaling` with fixed
//! arguments; the Python side resolves the names, the engine only knows the families below.

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};
use crate::rng::Rng;

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FanMode {
    FanIn,
    FanOut,
    FanAvg,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Distribution {
    Uniform,
    TruncatedNormal,
    UntruncatedNormal,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Initializer {
    Zeros,
    Ones,
    Constant {
        value: f32,
    },
    RandomNormal {
        mean: f32,
        stddev: f32,
        seed: u64,
    },
    RandomUniform {
        minval: f32,
        maxval: f32,
        seed: u64,
    },
    TruncatedNormal {
        mean: f32,
        stddev: f32,
        seed: u64,
    },
    VarianceScaling {
        scale: f32,
        mode: FanMode,
        distribution: Distribution,
        seed: u64,
    },
}

/// Keras's `compute_fans`: rank 2 is (in, out); conv kernels multiply by the receptive field.
pub fn compute_fans(shape: &[usize]) -> (f32, f32) {
    match shape {
        [] => (1.0, 1.0),
        [n] => (*n as f32, *n as f32),
        [fan_in, fan_out] => (*fan_in as f32, *fan_out as f32),
        [receptive @ .., fan_in, fan_out] => {
            let field: usize = receptive.iter().product();
            ((fan_in * field) as f32, (fan_out * field) as f32)
        }
    }
}

/// Keras divides the truncated normal's stddev by this, the stddev of N(0,1) cut at ±2.
const TRUNCATED_NORMAL_STDDEV: f32 = 0.879_625_7;

impl Initializer {
    /// Fills `out` (a weight of `shape`) with this initializer's values.
    pub fn fill(&self, shape: &[usize], out: &mut [f32]) -> Result<()> {
        let size: usize = shape.iter().product();
        if size != out.len() {
            return Err(CoreError::shape("initializer output", size, out.len()));
        }
        match *self {
            Initializer::Zeros => out.fill(0.0),
            Initializer::Ones => out.fill(1.0),
            Initializer::Constant { value } => out.fill(value),
            Initializer::RandomNormal { mean, stddev, seed } => {
                let mut rng = Rng::new(seed);
                out.iter_mut().for_each(|w| *w = rng.normal(mean, stddev));
            }
            Initializer::RandomUniform {
                minval,
                maxval,
                seed,
            } => {
                let mut rng = Rng::new(seed);
                out.iter_mut()
                    .for_each(|w| *w = rng.uniform(minval, maxval));
            }
            Initializer::TruncatedNormal { mean, stddev, seed } => {
                let mut rng = Rng::new(seed);
                out.iter_mut()
                    .for_each(|w| *w = rng.truncated_normal(mean, stddev));
            }
            Initializer::VarianceScaling {
                scale,
                mode,
                distribution,
                seed,
            } => variance_scaling(scale, mode, distribution, seed, shape, out),
        }
        Ok(())
    }
}

fn variance_scaling(
    scale: f32,
    mode: FanMode,
    distribution: Distribution,
    seed: u64,
    shape: &[usize],
    out: &mut [f32],
) {
    let (fan_in, fan_out) = compute_fans(shape);
    let fan = match mode {
        FanMode::FanIn => fan_in,
        FanMode::FanOut => fan_out,
        FanMode::FanAvg => (fan_in + fan_out) / 2.0,
    };
    let variance = scale / fan.max(1.0);
    let mut rng = Rng::new(seed);
    match distribution {
        Distribution::Uniform => {
            let limit = (3.0 * variance).sqrt();
            out.iter_mut().for_each(|w| *w = rng.uniform(-limit, limit));
        }
        Distribution::TruncatedNormal => {
            let stddev = variance.sqrt() / TRUNCATED_NORMAL_STDDEV;
            out.iter_mut()
                .for_each(|w| *w = rng.truncated_normal(0.0, stddev));
        }
        Distribution::UntruncatedNormal => {
            let stddev = variance.sqrt();
            out.iter_mut().for_each(|w| *w = rng.normal(0.0, stddev));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fans_follow_keras() {
        assert_eq!(compute_fans(&[4, 3]), (4.0, 3.0));
        assert_eq!(compute_fans(&[5]), (5.0, 5.0));
        assert_eq!(compute_fans(&[3, 3, 16, 32]), (144.0, 288.0));
    }

    #[test]
    fn glorot_uniform_respects_its_limit() {
        let init = Initializer::VarianceScaling {
            scale: 1.0,
            mode: FanMode::FanAvg,
            distribution: Distribution::Uniform,
            seed: 1,
        };
        let mut w = vec![0.0; 256 * 256];
        init.fill(&[256, 256], &mut w).unwrap();
        let limit = (6.0f32 / 512.0).sqrt();
        let max = w.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        assert!(max <= limit && max > 0.99 * limit);
    }

    #[test]
    fn he_normal_has_keras_stddev() {
        let init = Initializer::VarianceScaling {
            scale: 2.0,
            mode: FanMode::FanIn,
            distribution: Distribution::TruncatedNormal,
            seed: 2,
        };
        let mut w = vec![0.0; 200 * 300];
        init.fill(&[200, 300], &mut w).unwrap();
        let var = w.iter().map(|x| x * x).sum::<f32>() / w.len() as f32;
        assert!((var - 2.0 / 200.0).abs() < 0.05 * 2.0 / 200.0, "{var}");
    }

    #[test]
    fn wrong_length_is_an_error() {
        let mut w = vec![0.0; 5];
        assert!(Initializer::Zeros.fill(&[2, 3], &mut w).is_err());
    }
}
