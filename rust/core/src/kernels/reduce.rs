//! Reductions: bias broadcast, column sums, and the finiteness check of input data.

use multiversion::multiversion;
use rayon::prelude::*;

use crate::error::Result;
use crate::memory::ensure_len;
use crate::parallel;

/// `out[r, j] = bias[j]` for every row of `out` (rows `bias.len()` wide).
pub fn broadcast_rows(bias: &[f32], out: &mut [f32]) {
    out.chunks_mut(bias.len())
        .for_each(|row| super::copy(row, bias));
}

/// Columns [`sum_rows`] sums at once, in registers.
const BLOCK: usize = 16;

/// `out[j] = Σ_r x[r, j]`, summing rows in order so the result never depends on threads.
pub fn sum_rows(x: &[f32], out: &mut [f32]) {
    let width = out.len();
    if width == 0 {
        return;
    }
    for (start, out) in (0..width).step_by(BLOCK).zip(out.chunks_mut(BLOCK)) {
        sum_column_block(x, width, start, out);
    }
}

/// Columns `start..start + out.len()` (at most [`BLOCK`]) of the rows of `x` summed in
/// registers: summed in `out` itself, every row's addition waited for the last one's store
/// (LeNet's first bias gradient, rows of 6, took 6 % of its training step). A row's block is
/// read whole where it lies inside `x`; the lanes past the block's columns read the next
/// values, and their sums are dropped.
#[multiversion(targets("x86_64+avx2+fma"))]
fn sum_column_block(x: &[f32], width: usize, start: usize, out: &mut [f32]) {
    let rows = x.len() / width;
    let whole_rows = x
        .len()
        .checked_sub(start + BLOCK)
        .map_or(0, |room| room / width + 1)
        .min(rows);
    let mut sums = [0.0f32; BLOCK];
    for r in 0..whole_rows {
        let values: &[f32; BLOCK] = x[r * width + start..][..BLOCK]
            .try_into()
            .expect("a whole block");
        for (sum, value) in sums.iter_mut().zip(values) {
            *sum += value;
        }
    }
    for r in whole_rows..rows {
        let values = &x[r * width + start..][..out.len()];
        for (sum, value) in sums.iter_mut().zip(values) {
            *sum += value;
        }
    }
    out.copy_from_slice(&sums[..out.len()]);
}

/// [`sum_rows`] over many rows: fixed chunks summed in parallel, then added in chunk order, so the
/// result does not depend on the thread count. `partials` is scratch kept by the caller.
pub fn sum_rows_chunked(x: &[f32], out: &mut [f32], partials: &mut Vec<f32>) -> Result<()> {
    use rayon::prelude::*;
    const ROWS: usize = 4096;
    let width = out.len();
    let chunks = (x.len() / width).div_ceil(ROWS);
    if chunks <= 1 {
        sum_rows(x, out);
        return Ok(());
    }
    ensure_len(partials, chunks * width)?;
    partials[..chunks * width]
        .par_chunks_mut(width)
        .zip(x.par_chunks(ROWS * width))
        .for_each(|(partial, rows)| sum_rows(rows, partial));
    sum_rows(&partials[..chunks * width], out);
    Ok(())
}

/// A float type whose NaN and infinities can be told from its bits, in a way that vectorizes.
/// Input values the engine reads as float32.
pub trait Finite: Copy + Send + Sync {
    /// Whether the value is NaN or infinite as a float32: NaN or infinite, or (a float64) so large
    /// that converting it to float32 gives an infinity.
    fn not_finite(self) -> bool;
}

impl Finite for f32 {
    #[inline(always)]
    fn not_finite(self) -> bool {
        self.to_bits() & 0x7fff_ffff >= 0x7f80_0000
    }
}

/// The smallest float64 that rounds to float32's infinity: halfway between `f32::MAX` and
/// 2^128, which rounds to even, away from `f32::MAX`'s odd mantissa.
const F32_OVERFLOW: f64 = f32::MAX as f64 + (1u128 << 103) as f64;

impl Finite for f64 {
    #[inline(always)]
    fn not_finite(self) -> bool {
        // Positive float64s are ordered as their bits, and NaN and infinity lie above them all.
        self.to_bits() & 0x7fff_ffff_ffff_ffff >= F32_OVERFLOW.to_bits()
    }
}

/// Whether every value of `x` is finite, in parallel chunks on the caller's pool (NumPy's
/// `isfinite(x).all()` writes a mask first, on one thread: 2-3 % of W3's forward call).
pub fn all_finite<T: Finite>(x: &[T]) -> bool {
    match parallel::worth_splitting(x.len()) {
        true => x.par_chunks(parallel::CHUNK).all(chunk_finite),
        false => x.chunks(parallel::CHUNK).all(chunk_finite),
    }
}

/// One chunk's check, folded without an early exit so that it vectorizes (4 MB on one core:
/// 0.13 ms with SSE2's code, 0.06-0.07 ms with AVX2's; a fold of `is_finite` 0.15-0.17 ms).
#[multiversion(targets("x86_64+avx2"))]
fn chunk_finite<T: Finite>(chunk: &[T]) -> bool {
    !chunk.iter().fold(false, |bad, &v| bad | v.not_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_float64_is_finite_when_its_float32_is() {
        let below = f64::from_bits(F32_OVERFLOW.to_bits() - 1);
        let values = [
            0.0,
            -1.5,
            1e300,
            -1e300,
            f32::MAX as f64,
            below,
            -below,
            F32_OVERFLOW,
            -F32_OVERFLOW,
            f64::INFINITY,
            f64::NAN,
            f64::MIN_POSITIVE,
        ];
        for v in values {
            assert_eq!(!v.not_finite(), (v as f32).is_finite(), "{v:e}");
        }
        assert!(all_finite(&[1.0f64, below]) && !all_finite(&[1.0, 1e39]));
    }

    #[test]
    fn sums_columns() {
        let mut out = [9.0; 3];
        sum_rows(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &mut out);
        assert_eq!(out, [5.0, 7.0, 9.0]);
    }

    #[test]
    fn column_sums_match_a_plain_loop() {
        // Widths below, at and above a block, and a remainder of columns; few and many rows.
        for (width, rows) in [(1, 5), (6, 300), (16, 7), (21, 40), (40, 3), (5, 1)] {
            let x: Vec<f32> = (0..width * rows).map(|i| (i as f32 * 0.37).sin()).collect();
            let mut expected = vec![0.0f32; width];
            for row in x.chunks(width) {
                expected.iter_mut().zip(row).for_each(|(e, v)| *e += v);
            }
            let mut out = vec![f32::NAN; width];
            sum_rows(&x, &mut out);
            assert_eq!(out, expected, "width {width}, {rows} rows");
        }
    }

    #[test]
    fn finds_any_value_that_is_not_finite() {
        // Short and long enough to be split, the bad value first, inside and last.
        for len in [1, 7, 5 * parallel::CHUNK + 3] {
            let x: Vec<f32> = (0..len).map(|i| (i as f32).sin() * 1e30).collect();
            assert!(all_finite(&x));
            for at in [0, len / 2, len - 1] {
                for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                    let mut y = x.clone();
                    y[at] = bad;
                    assert!(!all_finite(&y), "{bad} at {at} of {len}");
                }
            }
        }
        assert!(all_finite(&[f32::MAX as f64, f64::MIN_POSITIVE, -0.0]));
        // A float64 beyond float32's range would be infinite once converted.
        assert!(!all_finite(&[f64::MAX]));
        assert!(!all_finite(&[1.0, f64::NAN]));
        assert!(all_finite::<f32>(&[]));
    }

    #[test]
    fn broadcasts_bias() {
        let mut out = [0.0; 4];
        broadcast_rows(&[1.0, 2.0], &mut out);
        assert_eq!(out, [1.0, 2.0, 1.0, 2.0]);
    }
}
