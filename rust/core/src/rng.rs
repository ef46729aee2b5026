//! The one seeded generator behind initial weights, shuffling and dropout masks.
//!
//! ChaCha8 gives the same stream on every platform, so a seed reproduces a run anywhere.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

pub struct Rng(ChaCha8Rng);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(ChaCha8Rng::seed_from_u64(seed))
    }

    /// An independent generator for one use of a seed (e.g. epoch `n` of a fit).
    pub fn for_stream(seed: u64, stream: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(stream);
        Rng(rng)
    }

    /// A sample of U[low, high).
    pub fn uniform(&mut self, low: f32, high: f32) -> f32 {
        low + (high - low) * self.0.random::<f32>()
    }

    /// A sample of N(mean, stddev²).
    pub fn normal(&mut self, mean: f32, stddev: f32) -> f32 {
        let z: f32 = StandardNormal.sample(&mut self.0);
        mean + stddev * z
    }

    /// A sample of N(mean, stddev²) redrawn until it lies within two standard deviations,
    /// as Keras's `TruncatedNormal` does.
    pub fn truncated_normal(&mut self, mean: f32, stddev: f32) -> f32 {
        loop {
            let z: f32 = StandardNormal.sample(&mut self.0);
            if z.abs() <= 2.0 {
                return mean + stddev * z;
            }
        }
    }

    /// Fisher–Yates shuffle in place.
    pub fn shuffle(&mut self, items: &mut [usize]) {
        for i in (1..items.len()).rev() {
            let j = self.0.random_range(0..=i);
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        for _ in 0..10 {
            assert_eq!(a.uniform(-1.0, 1.0), b.uniform(-1.0, 1.0));
        }
    }

    #[test]
    fn shuffle_is_a_permutation() {
        let mut items: Vec<usize> = (0..100).collect();
        Rng::new(3).shuffle(&mut items);
        assert_ne!(items, (0..100).collect::<Vec<_>>());
        items.sort_unstable();
        assert_eq!(items, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn truncated_normal_stays_within_two_stddev() {
        let mut rng = Rng::new(1);
        let samples: Vec<f32> = (0..10_000)
            .map(|_| rng.truncated_normal(1.0, 0.5))
            .collect();
        assert!(samples.iter().all(|s| (s - 1.0).abs() <= 1.0));
        let mean = samples.iter().sum::<f32>() / samples.len() as f32;
        assert!((mean - 1.0).abs() < 0.02);
    }

    #[test]
    fn streams_differ() {
        let (mut a, mut b) = (Rng::for_stream(5, 0), Rng::for_stream(5, 1));
        assert_ne!(a.uniform(0.0, 1.0), b.uniform(0.0, 1.0));
    }
}
