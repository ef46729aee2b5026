//! Max pooling's forward with AVX2: each output pixel's maximum found in registers, 8 channels
//! at a time, over its window's pixels in row-major order. The compiler's vectorization of the
//! same loops kept the running maxima in memory and updated them through masked loads and
//! stores, which AMD's cores microcode: LeNet's first pooling took 0.55-0.8 ms a batch of 128
//! on one thread.

use std::arch::x86_64::*;

use crate::kernels::conv::Geometry;
use crate::kernels::LANES;

/// One image's max pooling into `y` and, with `ARGMAX`, `argmax` (each the image's output).
///
/// # Safety
/// AVX2 present; `image` one input image of `g`, `y` (and `argmax` with `ARGMAX`) one output.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn max_image<const ARGMAX: bool>(
    image: &[f32],
    g: &Geometry,
    y: &mut [f32],
    argmax: &mut [u32],
) {
    let c = g.channels;
    let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for oy in 0..g.rows.output {
        let rows = g.rows.window(oy);
        for ox in 0..g.cols.output {
            let columns = g.cols.window(ox);
            let at = (oy * g.cols.output + ox) * c;
            for group in (0..c).step_by(LANES) {
                let mut best = _mm256_set1_ps(f32::NEG_INFINITY);
                let mut chosen = _mm256_setzero_ps();
                for iy in rows.clone() {
                    for ix in columns.clone() {
                        let first = (iy * g.cols.input + ix) * c + group;
                        let value = load(image, first);
                        // Strictly greater: the first maximum in row-major order stays (and
                        // `max_ps(a, b)` is `a > b ? a : b`, so NaN never wins either).
                        if ARGMAX {
                            let wins = _mm256_cmp_ps::<_CMP_GT_OQ>(value, best);
                            let index = _mm256_add_epi32(_mm256_set1_epi32(first as i32), lanes);
                            chosen = _mm256_blendv_ps(chosen, _mm256_castsi256_ps(index), wins);
                        }
                        best = _mm256_max_ps(value, best);
                    }
                }
                // Lanes past the channels land on the next pixel's, which are stored later.
                store(y, at + group, best);
                if ARGMAX {
                    store(argmax, at + group, chosen);
                }
            }
        }
    }
}

/// The vector at `first`; lanes past the end of `values` read as -inf.
#[inline(always)]
unsafe fn load(values: &[f32], first: usize) -> __m256 {
    match values.get(first..first + LANES) {
        Some(run) => _mm256_loadu_ps(run.as_ptr()),
        None => {
            let mut lanes = [f32::NEG_INFINITY; LANES];
            let rest = &values[first..];
            lanes[..rest.len()].copy_from_slice(rest);
            _mm256_loadu_ps(lanes.as_ptr())
        }
    }
}

/// Stores the bits of `v` at `first` (`T`: f32 values or u32 indices), keeping to `out`: the
/// lanes past its end are dropped.
#[inline(always)]
unsafe fn store<T: Copy>(out: &mut [T], first: usize, v: __m256) {
    const { assert!(size_of::<T>() == 4) };
    match out.get_mut(first..first + LANES) {
        Some(run) => _mm256_storeu_ps(run.as_mut_ptr().cast(), v),
        None => {
            let rest = &mut out[first..];
            let mut lanes = [0.0f32; LANES];
            _mm256_storeu_ps(lanes.as_mut_ptr(), v);
            std::ptr::copy_nonoverlapping(lanes.as_ptr().cast(), rest.as_mut_ptr(), rest.len());
        }
    }
}
