//! Plain functions over slices with explicit shapes. Parallelism wraps them; no state, no RNG.

pub mod activation;
pub mod conv;
pub mod conv_implicit;
pub mod conv_scatter;
pub mod gemm;
pub mod loss;
pub mod pool;
pub mod reduce;

/// f32 values per vector in the hand-vectorized kernels: one AVX2 register (their loops are
/// compiled for AVX2+FMA too and picked at run time).
pub(crate) const LANES: usize = 8;

/// Whether the CPU runs the kernels written with AVX2+FMA intrinsics (the convolutions' implicit
/// GEMM and scatter); without, the layers use im2col + GEMM.
pub(crate) fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Calls `f::<A, V>(args)` for a register tile of `a` rows (pixels, taps) by `v` vectors, among
/// the shapes whose accumulators (`a · v` ≤ 12), `v` operand vectors and one broadcast fit in
/// AVX2's 16 registers: const generics let LLVM keep every accumulator in a register.
#[cfg(target_arch = "x86_64")]
macro_rules! for_shape {
    ($a:expr, $v:expr, $f:ident($($arg:expr),*)) => {
        match ($a, $v) {
            (1, 1) => $f::<1, 1>($($arg),*),
            (2, 1) => $f::<2, 1>($($arg),*),
            (3, 1) => $f::<3, 1>($($arg),*),
            (4, 1) => $f::<4, 1>($($arg),*),
            (5, 1) => $f::<5, 1>($($arg),*),
            (6, 1) => $f::<6, 1>($($arg),*),
            (7, 1) => $f::<7, 1>($($arg),*),
            (8, 1) => $f::<8, 1>($($arg),*),
            (9, 1) => $f::<9, 1>($($arg),*),
            (10, 1) => $f::<10, 1>($($arg),*),
            (11, 1) => $f::<11, 1>($($arg),*),
            (12, 1) => $f::<12, 1>($($arg),*),
            (1, 2) => $f::<1, 2>($($arg),*),
            (2, 2) => $f::<2, 2>($($arg),*),
            (3, 2) => $f::<3, 2>($($arg),*),
            (4, 2) => $f::<4, 2>($($arg),*),
            (5, 2) => $f::<5, 2>($($arg),*),
            (6, 2) => $f::<6, 2>($($arg),*),
            (1, 3) => $f::<1, 3>($($arg),*),
            (2, 3) => $f::<2, 3>($($arg),*),
            (3, 3) => $f::<3, 3>($($arg),*),
            (4, 3) => $f::<4, 3>($($arg),*),
            (1, 4) => $f::<1, 4>($($arg),*),
            (2, 4) => $f::<2, 4>($($arg),*),
            (1, 5) => $f::<1, 5>($($arg),*),
            (2, 5) => $f::<2, 5>($($arg),*),
            (1, 6) => $f::<1, 6>($($arg),*),
            _ => unreachable!("a tile shape beyond AVX2's registers"),
        }
    };
}
#[cfg(target_arch = "x86_64")]
pub(crate) use for_shape;

/// Copies `src` into `dst` (the shorter length) with an element loop rather than
/// `copy_from_slice`: the kernels copy runs of a few values (an image row, a receptive-field
/// row, a bias), where a `memcpy` call costs more than the copy (measured: im2col of LeNet's
/// first layer went from 3.9 to 1.4 ms at batch 128; `memcpy` calls from pooling, bias
/// broadcasts and padded planes were 6 % of a LeNet epoch).
#[inline]
pub(crate) fn copy(dst: &mut [f32], src: &[f32]) {
    dst.iter_mut().zip(src).for_each(|(d, s)| *d = *s);
}
