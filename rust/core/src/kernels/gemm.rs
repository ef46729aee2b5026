//! Matrix products through the `gemm` crate (BLIS-style packing, AVX2/NEON kernels picked at run
//! time). This file hides the crate's raw-pointer API and its `dst = alpha·dst + beta·A·B`
//! convention (the reverse of BLAS).
//!
//! The crate's AVX-512 kernels (`x86-v4`) are left out on purpose: the crate picks them for every
//! product of the process, and while they speed up large products (sgemm 2048³ +40 %, LeNet's
//! epoch -10 %), they slow the textbook's small networks (the iris fit +25-60 %), which are most
//! of what users train. Measured on Zen 4, alternating runs.
//!
//! `gemm` splits only the output among threads and walks the inner dimension in the same order
//! whatever the thread count, so products are bit-identical for 1 or N threads.

use gemm::Parallelism;

use crate::error::Result;
use crate::memory::ensure_len;

/// Whether an operand is used as stored (row-major) or transposed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    N,
    T,
}

/// Row and column strides of a row-major matrix that is used as `rows × cols` after `op`.
fn strides(op: Op, rows: usize, cols: usize) -> (isize, isize) {
    match op {
        Op::N => (cols as isize, 1),
        Op::T => (1, rows as isize),
    }
}

/// `c (m×n) = op(a) (m×k) · op(b) (k×n)`, or `c += …` when `accumulate`. All row-major.
///
/// # Panics
/// When a slice is shorter than its shape says: a caller bug, never user input.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    a: &[f32],
    op_a: Op,
    b: &[f32],
    op_b: Op,
    c: &mut [f32],
    m: usize,
    n: usize,
    k: usize,
    accumulate: bool,
) {
    product(
        a,
        op_a,
        b,
        op_b,
        c,
        (m, n, k),
        accumulate,
        Parallelism::Rayon(0),
    );
}

/// [`matmul`] on the calling thread only, for callers that split the work across threads
/// themselves.
#[allow(clippy::too_many_arguments)]
pub fn matmul_single_thread(
    a: &[f32],
    op_a: Op,
    b: &[f32],
    op_b: Op,
    c: &mut [f32],
    m: usize,
    n: usize,
    k: usize,
    accumulate: bool,
) {
    product(
        a,
        op_a,
        b,
        op_b,
        c,
        (m, n, k),
        accumulate,
        Parallelism::None,
    );
}

/// Rows of the reduction handled by one task in [`matmul_tn_chunked`].
const REDUCTION_CHUNK: usize = 1024;

/// `c (m×n) = aᵀ · b` for `a` (rows × m) and `b` (rows × n) with many rows and a small `c`, such
/// as a convolution kernel's gradient: the GEMM would split only `c` among threads, leaving one
/// busy. Instead the rows are cut into fixed chunks whose partial products are computed in
/// parallel and added in chunk order, so the result does not depend on the thread count.
/// `partials` is scratch, kept by the caller to be reused.
pub fn matmul_tn_chunked(
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
    (rows, m, n): (usize, usize, usize),
    partials: &mut Vec<f32>,
) -> Result<()> {
    use rayon::prelude::*;
    let chunks = rows.div_ceil(REDUCTION_CHUNK);
    if chunks <= 1 {
        matmul(a, Op::T, b, Op::N, c, m, n, rows, false);
        return Ok(());
    }
    ensure_len(partials, chunks * m * n)?;
    partials[..chunks * m * n]
        .par_chunks_mut(m * n)
        .enumerate()
        .for_each(|(i, partial)| {
            let (start, end) = (i * REDUCTION_CHUNK, ((i + 1) * REDUCTION_CHUNK).min(rows));
            let (a, b) = (&a[start * m..end * m], &b[start * n..end * n]);
            let dims = (m, n, end - start);
            product(a, Op::T, b, Op::N, partial, dims, false, Parallelism::None);
        });
    let c = &mut c[..m * n];
    c.copy_from_slice(&partials[..m * n]);
    for partial in partials[m * n..chunks * m * n].chunks(m * n) {
        c.iter_mut().zip(partial).for_each(|(c, p)| *c += p);
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn product(
    a: &[f32],
    op_a: Op,
    b: &[f32],
    op_b: Op,
    c: &mut [f32],
    (m, n, k): (usize, usize, usize),
    accumulate: bool,
    parallelism: Parallelism,
) {
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c[..m * n].fill(0.0);
        }
        return;
    }
    let (a_rs, a_cs) = strides(op_a, m, k);
    let (b_rs, b_cs) = strides(op_b, k, n);
    // SAFETY: the assert above proves every index the strides reach lies inside the slices,
    // and `c` is borrowed mutably, so it cannot alias `a` or `b`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            b_cs,
            b_rs,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], b: &[f32], m: usize, n: usize, k: usize) -> Vec<f32> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        c
    }

    fn transpose(x: &[f32], rows: usize, cols: usize) -> Vec<f32> {
        let mut t = vec![0.0; x.len()];
        for r in 0..rows {
            for c in 0..cols {
                t[c * rows + r] = x[r * cols + c];
            }
        }
        t
    }

    fn close(x: &[f32], y: &[f32]) {
        for (a, b) in x.iter().zip(y) {
            assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{a} vs {b}");
        }
    }

    #[test]
    fn all_transpose_combinations_match_naive() {
        let (m, n, k) = (7, 5, 9);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
        let expected = naive(&a, &b, m, n, k);
        let (at, bt) = (transpose(&a, m, k), transpose(&b, k, n));
        for (a_op, a_buf) in [(Op::N, &a), (Op::T, &at)] {
            for (b_op, b_buf) in [(Op::N, &b), (Op::T, &bt)] {
                let mut c = vec![f32::NAN; m * n];
                matmul(a_buf, a_op, b_buf, b_op, &mut c, m, n, k, false);
                close(&c, &expected);
            }
        }
    }

    #[test]
    fn chunked_transposed_product_matches_naive() {
        let (rows, m, n) = (3 * REDUCTION_CHUNK + 17, 5, 3);
        let a: Vec<f32> = (0..rows * m)
            .map(|i| ((i % 97) as f32 * 0.01).sin())
            .collect();
        let b: Vec<f32> = (0..rows * n)
            .map(|i| ((i % 89) as f32 * 0.02).cos())
            .collect();
        let expected = naive(&transpose(&a, rows, m), &b, m, n, rows);
        let mut c = vec![0.0; m * n];
        matmul_tn_chunked(&a, &b, &mut c, (rows, m, n), &mut Vec::new()).unwrap();
        close(&c, &expected);
    }

    #[test]
    fn accumulate_adds_to_destination() {
        let a = [1.0, 2.0, 3.0, 4.0];
        let b = [1.0, 0.0, 0.0, 1.0];
        let mut c = [10.0; 4];
        matmul(&a, Op::N, &b, Op::N, &mut c, 2, 2, 2, true);
        assert_eq!(c, [11.0, 12.0, 13.0, 14.0]);
    }
}
