//! Plain functions over slices with explicit shapes. Parallelism wraps them; no state, no RNG.

pub mod activation;
pub mod conv;
pub mod conv_direct;
pub mod conv_implicit;
pub mod gemm;
pub mod loss;
pub mod pool;
pub mod reduce;

/// f32 values per vector in the hand-vectorized kernels: one AVX2 register (their loops are
/// compiled for AVX2+FMA too and picked at run time).
pub(crate) const LANES: usize = 8;

/// Copies `src` into `dst` (the shorter length) with an element loop rather than
/// `copy_from_slice`: the kernels copy runs of a few values (an image row, a receptive-field
/// row, a bias), where a `memcpy` call costs more than the copy (measured: im2col of LeNet's
/// first layer went from 3.9 to 1.4 ms at batch 128; `memcpy` calls from pooling, bias
/// broadcasts and padded planes were 6 % of a LeNet epoch).
#[inline]
pub(crate) fn copy(dst: &mut [f32], src: &[f32]) {
    dst.iter_mut().zip(src).for_each(|(d, s)| *d = *s);
}
