//! `Dropout` (`keras/src/layers/regularization/dropout.py`): in training, each value is kept with
//! probability `1 − rate` and scaled by `1/(1 − rate)`, or set to 0; otherwise the identity.
//! Step `n`'s mask comes from stream `n` of the layer's seed: a seed reproduces every mask, and
//! training resumed at step `n` (a loaded model, a restored backup) draws the same masks.

use serde::{Deserialize, Serialize};

use super::Layer;
use crate::error::{CoreError, Result};
use crate::memory::ensure_len;
use crate::rng::Rng;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropoutSpec {
    pub rate: f32,
    /// The mask's shape, batch axis first; an axis of 1 shares one mask value along that axis,
    /// an axis of 0 (Keras's `None`) takes the input's size. `None` draws one value per element.
    #[serde(default)]
    pub noise_shape: Option<Vec<usize>>,
    pub seed: u64,
}

pub struct Dropout {
    rate: f32,
    shape: Vec<usize>,
    /// Per axis of a sample (batch axis first): whether the mask is shared along it.
    shared: Vec<bool>,
    seed: u64,
    rng: Rng,
    /// The last training batch's mask, already scaled by `1/(1 − rate)`.
    mask: Vec<f32>,
    masked: bool,
}

/// A noise shape as Keras writes it: `(None, 2, 3)`, where the spec's 0 stands for `None`.
fn keras_shape(noise: &[usize]) -> String {
    let axes: Vec<String> = noise
        .iter()
        .map(|&n| match n {
            0 => "None".to_string(),
            n => n.to_string(),
        })
        .collect();
    format!("({})", axes.join(", "))
}

impl Dropout {
    pub fn new(spec: DropoutSpec, input_shape: &[usize]) -> Result<Self> {
        if !(0.0..1.0).contains(&spec.rate) {
            return Err(CoreError::invalid("rate", "a float in [0, 1)", spec.rate));
        }
        let shared = match &spec.noise_shape {
            None => vec![false; input_shape.len() + 1],
            Some(noise) => {
                if noise.len() != input_shape.len() + 1 {
                    return Err(CoreError::shape(
                        "noise_shape",
                        format!("{} axes (batch first)", input_shape.len() + 1),
                        keras_shape(noise),
                    ));
                }
                let mut shared = vec![noise[0] == 1];
                for (&n, &d) in noise[1..].iter().zip(input_shape) {
                    if n != 0 && n != 1 && n != d {
                        let mut input = vec![0];
                        input.extend_from_slice(input_shape);
                        return Err(CoreError::shape(
                            "noise_shape",
                            format!(
                                "1, None or the input's size along each axis of {}",
                                keras_shape(&input)
                            ),
                            keras_shape(noise),
                        ));
                    }
                    shared.push(n == 1 && d != 1);
                }
                shared
            }
        };
        Ok(Dropout {
            rate: spec.rate,
            shape: input_shape.to_vec(),
            shared,
            seed: spec.seed,
            rng: Rng::new(spec.seed),
            mask: Vec::new(),
            masked: false,
        })
    }

    /// The mask of optimizer step `step` for `batch` samples, scaled by `1/(1 − rate)`: what a
    /// training forward at that step multiplies by (for engines that apply it elsewhere).
    pub fn training_mask(&mut self, step: u64, batch: usize) -> Result<&[f32]> {
        self.begin_step(step);
        self.draw_mask(batch)?;
        let len = batch * self.shape.iter().product::<usize>();
        Ok(&self.mask[..len])
    }

    /// Whether training changes anything (a rate above 0).
    pub fn drops(&self) -> bool {
        self.rate > 0.0
    }

    /// Draws a mask for `batch` samples: one value per position of the noise shape, copied
    /// along the axes where the mask is shared.
    fn draw_mask(&mut self, batch: usize) -> Result<()> {
        let mut dims = vec![batch];
        dims.extend_from_slice(&self.shape);
        let len: usize = dims.iter().product();
        ensure_len(&mut self.mask, len)?;
        let scale = 1.0 / (1.0 - self.rate);
        let mut index = vec![0usize; dims.len()];
        for i in 0..len {
            // The first index along every shared axis is where the mask value is drawn.
            let source = shared_source(&index, &dims, &self.shared);
            self.mask[i] = if source == i {
                (self.rng.uniform(0.0, 1.0) >= self.rate) as u8 as f32 * scale
            } else {
                self.mask[source]
            };
            increment(&mut index, &dims);
        }
        Ok(())
    }
}

/// The flat position of `index` with every shared axis set to 0 (row-major over `dims`).
fn shared_source(index: &[usize], dims: &[usize], shared: &[bool]) -> usize {
    index
        .iter()
        .zip(dims)
        .zip(shared)
        .fold(0, |flat, ((&i, &d), &s)| flat * d + if s { 0 } else { i })
}

fn increment(index: &mut [usize], dims: &[usize]) {
    for axis in (0..index.len()).rev() {
        index[axis] += 1;
        if index[axis] < dims[axis] {
            return;
        }
        index[axis] = 0;
    }
}

impl Layer for Dropout {
    fn output_shape(&self) -> &[usize] {
        &self.shape
    }

    fn needs_whole_batch(&self) -> bool {
        self.drops()
    }

    fn begin_step(&mut self, step: u64) {
        self.rng = Rng::for_stream(self.seed, step);
    }

    fn distinguish_call(&mut self, call: usize) {
        self.seed ^= (call as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn forward(
        &mut self,
        _: &[f32],
        x: &[f32],
        y: &mut [f32],
        batch: usize,
        training: bool,
    ) -> Result<()> {
        self.masked = training && self.rate > 0.0;
        if !self.masked {
            y.copy_from_slice(x);
            return Ok(());
        }
        self.draw_mask(batch)?;
        for ((y, &x), &m) in y.iter_mut().zip(x).zip(&self.mask) {
            *y = x * m;
        }
        Ok(())
    }

    fn backward(
        &mut self,
        _: &[f32],
        _: &mut [f32],
        _: &[f32],
        _: &[f32],
        dy: &mut [f32],
        dx: Option<&mut [f32]>,
        _: usize,
    ) -> Result<()> {
        let Some(dx) = dx else { return Ok(()) };
        if !self.masked {
            dx.copy_from_slice(dy);
            return Ok(());
        }
        for ((dx, &dy), &m) in dx.iter_mut().zip(dy.iter()).zip(&self.mask) {
            *dx = dy * m;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(rate: f32, noise_shape: Option<Vec<usize>>, shape: &[usize]) -> Dropout {
        let spec = DropoutSpec {
            rate,
            noise_shape,
            seed: 5,
        };
        Dropout::new(spec, shape).unwrap()
    }

    #[test]
    fn keeps_values_scaled_or_zero_in_training_only() {
        let mut dropout = layer(0.5, None, &[1000]);
        let x = vec![1.0; 1000];
        let mut y = vec![0.0; 1000];
        dropout.forward(&[], &x, &mut y, 1, true).unwrap();
        assert!(y.iter().all(|&v| v == 0.0 || v == 2.0));
        let zeros = y.iter().filter(|&&v| v == 0.0).count();
        assert!((400..600).contains(&zeros), "{zeros}");
        dropout.forward(&[], &x, &mut y, 1, false).unwrap();
        assert_eq!(y, x);
    }

    #[test]
    fn a_step_draws_the_same_mask_whatever_ran_before() {
        let x = vec![1.0; 64];
        let mask = |dropout: &mut Dropout, step| {
            let mut y = vec![0.0; 64];
            dropout.begin_step(step);
            dropout.forward(&[], &x, &mut y, 1, true).unwrap();
            y
        };
        let (mut fresh, mut trained) = (layer(0.5, None, &[64]), layer(0.5, None, &[64]));
        for step in 0..5 {
            mask(&mut trained, step);
        }
        assert_eq!(mask(&mut fresh, 5), mask(&mut trained, 5));
        assert_ne!(mask(&mut fresh, 6), mask(&mut fresh, 7));
    }

    #[test]
    fn noise_shape_shares_the_mask_along_an_axis() {
        let mut dropout = layer(0.5, Some(vec![2, 1, 4]), &[3, 4]);
        let x = vec![1.0; 24];
        let mut y = vec![0.0; 24];
        dropout.forward(&[], &x, &mut y, 2, true).unwrap();
        for sample in y.chunks(12) {
            assert_eq!(sample[0..4], sample[4..8]);
            assert_eq!(sample[0..4], sample[8..12]);
        }
    }

    #[test]
    fn gradient_is_masked_the_same_way() {
        let mut dropout = layer(0.3, None, &[50]);
        let x = vec![1.0; 50];
        let mut y = vec![0.0; 50];
        dropout.forward(&[], &x, &mut y, 1, true).unwrap();
        let mut dy = vec![1.0; 50];
        let mut dx = vec![0.0; 50];
        dropout
            .backward(&[], &mut [], &x, &y, &mut dy, Some(&mut dx), 1)
            .unwrap();
        assert_eq!(dx, y);
    }

    #[test]
    fn rate_and_noise_shape_are_checked() {
        let spec = |rate, noise_shape| DropoutSpec {
            rate,
            noise_shape,
            seed: 0,
        };
        assert!(Dropout::new(spec(1.0, None), &[3]).is_err());
        assert!(Dropout::new(spec(-0.1, None), &[3]).is_err());
        assert!(Dropout::new(spec(0.2, Some(vec![1, 2])), &[3]).is_err());
        assert!(Dropout::new(spec(0.2, Some(vec![3])), &[3]).is_err());
    }
}
