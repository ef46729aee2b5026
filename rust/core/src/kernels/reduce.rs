//! Row-wise helpers: bias broadcast and column sums.

/// `out[r, j] = bias[j]` for every row of `out` (rows `bias.len()` wide).
pub fn broadcast_rows(bias: &[f32], out: &mut [f32]) {
    out.chunks_mut(bias.len())
        .for_each(|row| row.copy_from_slice(bias));
}

/// `out[j] = Σ_r x[r, j]`, summing rows in order so the result never depends on threads.
pub fn sum_rows(x: &[f32], out: &mut [f32]) {
    out.fill(0.0);
    for row in x.chunks(out.len()) {
        out.iter_mut().zip(row).for_each(|(o, v)| *o += v);
    }
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
