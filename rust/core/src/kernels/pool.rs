//! Max and average pooling over NHWC images (1D: a height of 1), forward and backward.
//! Max pooling sends each gradient to the window's first maximum in row-major order, as
//! TensorFlow does for ties; average pooling with "same" padding divides by the number of real
//! (unpadded) values in each window, as Keras does.

use std::ops::Range;

use multiversion::multiversion;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::conv::Geometry;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolKind {
    Max,
    Average,
}

fn output_size(g: &Geometry) -> usize {
    g.pixels() * g.channels
}

/// The input pixels (row-major indices) a window reads, padding left out, and how many.
/// Plain ranges, not an iterator chain: this loop is pooling's whole cost.
#[inline]
fn window(g: &Geometry, oy: usize, ox: usize) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
    (g.rows.window(oy), g.cols.window(ox))
}

/// `y` = the pool of each window of `x`; for max pooling `argmax` records, per output value,
/// the index in its image of the input it came from.
pub fn forward(x: &[f32], g: &Geometry, kind: PoolKind, y: &mut [f32], argmax: &mut [u32]) {
    let (in_size, out_size) = (g.input_size(), output_size(g));
    y.par_chunks_mut(out_size)
        .zip(argmax.par_chunks_mut(out_size))
        .zip(x.par_chunks(in_size))
        .for_each(|((y, argmax), image)| forward_image(image, g, kind, y, argmax));
}

thread_local! {
    /// One row of column maxima (or sums) and, for max pooling, the row each came from.
    static COLUMNS: std::cell::RefCell<(Vec<f32>, Vec<u32>)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// Each output row in two passes: down the window's rows, every input column at once (one
/// contiguous, vectorizable run); then across each window's columns. Max pooling keeps the
/// first maximum in row-major order, as TensorFlow does: across columns, an equal value wins
/// only from an earlier row.
fn forward_image(image: &[f32], g: &Geometry, kind: PoolKind, y: &mut [f32], argmax: &mut [u32]) {
    let (c, width) = (g.channels, g.cols.input * g.channels);
    COLUMNS.with_borrow_mut(|(column, source_row)| {
        column.resize(width, 0.0);
        source_row.resize(width, 0);
        for oy in 0..g.rows.output {
            let rows = g.rows.window(oy);
            let out = oy * g.cols.output * c..(oy + 1) * g.cols.output * c;
            let (y, argmax) = (&mut y[out.clone()], &mut argmax[out]);
            match kind {
                PoolKind::Max => {
                    column_max(image, width, rows, column, source_row);
                    row_max(g, column, source_row, y, argmax);
                }
                PoolKind::Average => {
                    let count = rows.len();
                    column_sum(image, width, rows, column);
                    row_average(g, column, count, y);
                }
            }
        }
    })
}

/// `column[i]` = the maximum of input column value `i` over `rows`, `source_row[i]` the first
/// row holding it.
#[multiversion(targets("x86_64+avx2+fma"))]
fn column_max(
    image: &[f32],
    width: usize,
    rows: Range<usize>,
    column: &mut [f32],
    source_row: &mut [u32],
) {
    column.fill(f32::NEG_INFINITY);
    for iy in rows {
        let row = &image[iy * width..(iy + 1) * width];
        for ((m, r), &v) in column.iter_mut().zip(source_row.iter_mut()).zip(row) {
            let wins = v > *m;
            *m = if wins { v } else { *m };
            *r = if wins { iy as u32 } else { *r };
        }
    }
}

/// `y` = the maximum of `column` over each output's window of columns; `argmax` its index in
/// the image. On a tie, the earlier row wins (its row is recovered from `argmax`: ties are
/// rarer than wins).
fn row_max(g: &Geometry, column: &[f32], source_row: &[u32], y: &mut [f32], argmax: &mut [u32]) {
    let (c, width) = (g.channels, g.cols.input);
    let row_of = |index: u32| index as usize / c / width;
    for (ox, (y, argmax)) in y
        .chunks_exact_mut(c)
        .zip(argmax.chunks_exact_mut(c))
        .enumerate()
    {
        y.fill(f32::NEG_INFINITY);
        for ix in g.cols.window(ox) {
            let values = &column[ix * c..(ix + 1) * c];
            let rows = &source_row[ix * c..(ix + 1) * c];
            for ch in 0..c {
                let (v, r) = (values[ch], rows[ch] as usize);
                if v > y[ch] || (v == y[ch] && r < row_of(argmax[ch])) {
                    y[ch] = v;
                    argmax[ch] = ((r * width + ix) * c + ch) as u32;
                }
            }
        }
    }
}

/// `column[i]` = the sum of input column value `i` over `rows`.
#[multiversion(targets("x86_64+avx2+fma"))]
fn column_sum(image: &[f32], width: usize, rows: Range<usize>, column: &mut [f32]) {
    column.fill(0.0);
    for iy in rows {
        let row = &image[iy * width..(iy + 1) * width];
        column.iter_mut().zip(row).for_each(|(s, v)| *s += v);
    }
}

/// `y` = the mean over each window: its columns' sums over `rows` values each, divided by
/// the real (unpadded) values in the window, as Keras does.
fn row_average(g: &Geometry, column: &[f32], rows: usize, y: &mut [f32]) {
    let c = g.channels;
    for (ox, y) in y.chunks_exact_mut(c).enumerate() {
        let cols = g.cols.window(ox);
        let count = (rows * cols.len()) as f32;
        y.fill(0.0);
        for ix in cols {
            y.iter_mut()
                .zip(&column[ix * c..(ix + 1) * c])
                .for_each(|(s, v)| *s += v);
        }
        y.iter_mut().for_each(|s| *s /= count);
    }
}

/// `dx` (overwritten) from `dy`, through the windows of the last [`forward`].
pub fn backward(dy: &[f32], g: &Geometry, kind: PoolKind, argmax: &[u32], dx: &mut [f32]) {
    let (in_size, out_size) = (g.input_size(), output_size(g));
    dx.par_chunks_mut(in_size)
        .zip(dy.par_chunks(out_size))
        .zip(argmax.par_chunks(out_size))
        .for_each(|((dx, dy), argmax)| backward_image(dy, g, kind, argmax, dx));
}

fn backward_image(dy: &[f32], g: &Geometry, kind: PoolKind, argmax: &[u32], dx: &mut [f32]) {
    dx.fill(0.0);
    let c = g.channels;
    match kind {
        PoolKind::Max => {
            for (&d, &source) in dy.iter().zip(argmax) {
                dx[source as usize] += d;
            }
        }
        PoolKind::Average => {
            for oy in 0..g.rows.output {
                for ox in 0..g.cols.output {
                    let at = (oy * g.cols.output + ox) * c;
                    let (rows, cols) = window(g, oy, ox);
                    let count = (rows.len() * cols.len()) as f32;
                    for iy in rows {
                        let first = (iy * g.cols.input + cols.start) * c;
                        for d in dx[first..first + cols.len() * c].chunks_mut(c) {
                            d.iter_mut()
                                .zip(&dy[at..at + c])
                                .for_each(|(d, g)| *d += g / count);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::conv::{Axis, Padding};

    fn geometry_1d(n: usize, pool: usize, stride: usize, padding: Padding) -> Geometry {
        Geometry {
            rows: Axis::new(1, 1, 1, 1, Padding::Valid).unwrap(),
            cols: Axis::new(n, pool, stride, 1, padding).unwrap(),
            channels: 1,
        }
    }

    fn pool(kind: PoolKind, g: &Geometry, x: &[f32]) -> Vec<f32> {
        let mut y = vec![0.0; g.pixels()];
        let mut argmax = vec![0; g.pixels()];
        forward(x, g, kind, &mut y, &mut argmax);
        y
    }

    #[test]
    fn keras_observed_values() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        // MaxPool1D(2, strides=2, same) on [1..5] gives [2, 4, 5].
        let g = geometry_1d(5, 2, 2, Padding::Same);
        assert_eq!(pool(PoolKind::Max, &g, &x), [2.0, 4.0, 5.0]);
        // AvgPool1D(2, strides=2, same) gives [1.5, 3.5, 5.0]: the last window has one value.
        assert_eq!(pool(PoolKind::Average, &g, &x), [1.5, 3.5, 5.0]);
        // AvgPool1D(3, strides=1, same) gives [1.5, 2, 3, 4, 4.5].
        let g = geometry_1d(5, 3, 1, Padding::Same);
        assert_eq!(pool(PoolKind::Average, &g, &x), [1.5, 2.0, 3.0, 4.0, 4.5]);
    }

    #[test]
    fn max_gradient_goes_to_the_first_maximum() {
        let g = geometry_1d(4, 2, 2, Padding::Valid);
        let x = [3.0, 3.0, 1.0, 2.0];
        let mut y = vec![0.0; 2];
        let mut argmax = vec![0; 2];
        forward(&x, &g, PoolKind::Max, &mut y, &mut argmax);
        let mut dx = vec![9.0; 4];
        backward(&[1.0, 1.0], &g, PoolKind::Max, &argmax, &mut dx);
        assert_eq!(dx, [1.0, 0.0, 0.0, 1.0]);
    }

    #[test]
    fn max_gradient_goes_to_the_first_maximum_in_row_major_order() {
        // 2x2 windows over a 2x4 image, two channels. Window 1 ties across rows and columns:
        // row-major order puts (0, 1) first, though (1, 0) comes first column-wise.
        let g = Geometry {
            rows: Axis::new(2, 2, 2, 1, Padding::Valid).unwrap(),
            cols: Axis::new(4, 2, 2, 1, Padding::Valid).unwrap(),
            channels: 2,
        };
        #[rustfmt::skip]
        let x = [
            0.0, 1.0,  5.0, 1.0,  2.0, 7.0,  3.0, 7.0,
            5.0, 1.0,  0.0, 1.0,  3.0, 7.0,  1.0, 0.0,
        ];
        let (mut y, mut argmax) = (vec![0.0; 4], vec![0; 4]);
        forward(&x, &g, PoolKind::Max, &mut y, &mut argmax);
        assert_eq!(y, [5.0, 1.0, 3.0, 7.0]);
        let mut dx = vec![9.0; 16];
        backward(&[1.0, 2.0, 3.0, 4.0], &g, PoolKind::Max, &argmax, &mut dx);
        #[rustfmt::skip]
        assert_eq!(dx, [
            0.0, 2.0,  1.0, 0.0,  0.0, 4.0,  3.0, 0.0,
            0.0, 0.0,  0.0, 0.0,  0.0, 0.0,  0.0, 0.0,
        ]);
    }
}
