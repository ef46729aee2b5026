//! Row-wise helpers: bias broadcast and column sums.

/// `out[r, j] = bias[j]` for every row of `out` (rows `bias.len()` wide).
pub fn broadcast_rows(bias: &[f32], out: &mut [f32]) {
    out.chunks_mut(bias.len())
        .for_each(|row| super::copy(row, bias));
}

/// `out[j] = Σ_r x[r, j]`, summing rows in order so the result never depends on threads.
pub fn sum_rows(x: &[f32], out: &mut [f32]) {
    out.fill(0.0);
    for row in x.chunks(out.len()) {
        out.iter_mut().zip(row).for_each(|(o, v)| *o += v);
    }
}

/// [`sum_rows`] over many rows: fixed chunks summed in parallel, then added in chunk order, so the
/// result does not depend on the thread count. `partials` is scratch kept by the caller.
pub fn sum_rows_chunked(x: &[f32], out: &mut [f32], partials: &mut Vec<f32>) {
    use rayon::prelude::*;
    const ROWS: usize = 4096;
    let width = out.len();
    let chunks = (x.len() / width).div_ceil(ROWS);
    if chunks <= 1 {
        return sum_rows(x, out);
    }
    if partials.len() < chunks * width {
        partials.resize(chunks * width, 0.0);
    }
    partials[..chunks * width]
        .par_chunks_mut(width)
        .zip(x.par_chunks(ROWS * width))
        .for_each(|(partial, rows)| sum_rows(rows, partial));
    sum_rows(&partials[..chunks * width], out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_columns() {
        let mut out = [9.0; 3];
        sum_rows(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &mut out);
        assert_eq!(out, [5.0, 7.0, 9.0]);
    }

    #[test]
    fn broadcasts_bias() {
        let mut out = [0.0; 4];
        broadcast_rows(&[1.0, 2.0], &mut out);
        assert_eq!(out, [1.0, 2.0, 1.0, 2.0]);
    }
}
