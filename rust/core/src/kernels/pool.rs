//! Max and average pooling over NHWC images (1D: a height of 1), forward and backward.
//! Max pooling sends each gradient to the window's first maximum in row-major order, as
//! TensorFlow does for ties; average pooling with "same" padding divides by the number of real
//! (unpadded) values in each window, as Keras does.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::conv::Geometry;
use crate::error::Result;
use crate::memory::ensure_len;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolKind {
    Max,
    Average,
}

fn output_size(g: &Geometry) -> usize {
    g.pixels() * g.channels
}

/// `y` = the pool of each window of `x`; for max pooling `argmax`, when given (training),
/// records per output value the index in its image of the input it came from. Fails only when
/// average pooling's row buffer cannot be allocated.
pub fn forward(
    x: &[f32],
    g: &Geometry,
    kind: PoolKind,
    y: &mut [f32],
    argmax: Option<&mut [u32]>,
) -> Result<()> {
    let (in_size, out_size) = (g.input_size(), output_size(g));
    let y = y.par_chunks_mut(out_size);
    match argmax {
        Some(argmax) => y
            .zip(argmax.par_chunks_mut(out_size))
            .zip(x.par_chunks(in_size))
            .try_for_each(|((y, argmax), image)| forward_image::<true>(image, g, kind, y, argmax)),
        None => y
            .zip(x.par_chunks(in_size))
            .try_for_each(|(y, image)| forward_image::<false>(image, g, kind, y, &mut [])),
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2;

thread_local! {
    /// Average pooling's one input row summed across each window's columns.
    static ACROSS: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// One image's pooling. `ARGMAX`: whether max pooling records where each maximum came from.
fn forward_image<const ARGMAX: bool>(
    image: &[f32],
    g: &Geometry,
    kind: PoolKind,
    y: &mut [f32],
    argmax: &mut [u32],
) -> Result<()> {
    match kind {
        PoolKind::Max => {
            #[cfg(target_arch = "x86_64")]
            if is_x86_feature_detected!("avx2") {
                // SAFETY: AVX2 is present; `forward` hands whole images and outputs.
                unsafe { avx2::max_image::<ARGMAX>(image, g, y, argmax) };
                return Ok(());
            }
            max_image::<ARGMAX>(image, g, y, argmax);
            Ok(())
        }
        PoolKind::Average => average_image(image, g, y),
    }
}

/// Max pooling of one image: each window scanned in row-major order, its first maximum kept
/// (as TensorFlow sends the gradient on ties).
fn max_image<const ARGMAX: bool>(image: &[f32], g: &Geometry, y: &mut [f32], argmax: &mut [u32]) {
    let c = g.channels;
    for oy in 0..g.rows.output {
        for ox in 0..g.cols.output {
            let at = (oy * g.cols.output + ox) * c;
            for ch in 0..c {
                let (mut best, mut chosen) = (f32::NEG_INFINITY, 0);
                for iy in g.rows.window(oy) {
                    for ix in g.cols.window(ox) {
                        let i = (iy * g.cols.input + ix) * c + ch;
                        if image[i] > best {
                            (best, chosen) = (image[i], i as u32);
                        }
                    }
                }
                y[at + ch] = best;
                if ARGMAX {
                    argmax[at + ch] = chosen;
                }
            }
        }
    }
}

/// Average pooling of one image, a row across each window's columns at a time.
fn average_image(image: &[f32], g: &Geometry, y: &mut [f32]) -> Result<()> {
    let (c, width) = (g.channels, g.cols.input * g.channels);
    let row_len = g.cols.output * c;
    ACROSS.with_borrow_mut(|values| {
        ensure_len(values, row_len)?;
        let values = &mut values[..row_len];
        for (oy, y) in y.chunks_exact_mut(row_len).enumerate() {
            y.fill(0.0);
            let rows = g.rows.window(oy);
            let count = rows.len();
            for iy in rows {
                sum_across(g, &image[iy * width..(iy + 1) * width], values);
                y.iter_mut().zip(&*values).for_each(|(y, v)| *y += v);
            }
            divide_by_counts(g, count, y);
        }
        Ok(())
    })
}

/// `values` = the sum over each window's columns of one input row.
fn sum_across(g: &Geometry, row: &[f32], values: &mut [f32]) {
    let c = g.channels;
    for (ox, values) in values.chunks_exact_mut(c).enumerate() {
        values.fill(0.0);
        for ix in g.cols.window(ox) {
            let pixel = &row[ix * c..(ix + 1) * c];
            values.iter_mut().zip(pixel).for_each(|(s, v)| *s += v);
        }
    }
}

/// Divides each window's sum over `rows` input rows by its real (unpadded) values, as Keras
/// does.
fn divide_by_counts(g: &Geometry, rows: usize, y: &mut [f32]) {
    for (ox, y) in y.chunks_exact_mut(g.channels).enumerate() {
        let count = (rows * g.cols.window(ox).len()) as f32;
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
                    let (rows, cols) = (g.rows.window(oy), g.cols.window(ox));
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
        forward(x, g, kind, &mut y, Some(&mut argmax)).unwrap();
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
        forward(&x, &g, PoolKind::Max, &mut y, Some(&mut argmax)).unwrap();
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
        forward(&x, &g, PoolKind::Max, &mut y, Some(&mut argmax)).unwrap();
        assert_eq!(y, [5.0, 1.0, 3.0, 7.0]);
        let mut dx = vec![9.0; 16];
        backward(&[1.0, 2.0, 3.0, 4.0], &g, PoolKind::Max, &argmax, &mut dx);
        #[rustfmt::skip]
        assert_eq!(dx, [
            0.0, 2.0,  1.0, 0.0,  0.0, 4.0,  3.0, 0.0,
            0.0, 0.0,  0.0, 0.0,  0.0, 0.0,  0.0, 0.0,
        ]);
    }

    /// [`max_image`] over a batch: the definition, one value at a time.
    fn scalar_max(x: &[f32], g: &Geometry, images: usize) -> (Vec<f32>, Vec<u32>) {
        let out = g.pixels() * g.channels;
        let (mut y, mut argmax) = (vec![0.0; images * out], vec![0; images * out]);
        for i in 0..images {
            let image = &x[i * g.input_size()..(i + 1) * g.input_size()];
            let (y, argmax) = (
                &mut y[i * out..(i + 1) * out],
                &mut argmax[i * out..][..out],
            );
            max_image::<true>(image, g, y, argmax);
        }
        (y, argmax)
    }

    #[test]
    fn max_matches_the_row_major_scan_for_any_channels_and_windows() {
        for (c, k, stride, padding) in [
            (1, 2, 2, Padding::Valid),
            (3, 3, 1, Padding::Same),
            (8, 2, 2, Padding::Same),
            (11, 3, 2, Padding::Valid),
            (6, 2, 2, Padding::Valid),  // LeNet's first
            (16, 2, 2, Padding::Valid), // LeNet's second
            (2, 3, 1, Padding::Valid),
        ] {
            let g = Geometry {
                rows: Axis::new(5, k, stride, 1, padding).unwrap(),
                cols: Axis::new(7, k, stride, 1, padding).unwrap(),
                channels: c,
            };
            // Rounded values, so that windows hold ties; a few -inf and NaN, which never win.
            let images = 3;
            let x: Vec<f32> = (0..images * g.input_size())
                .map(|i| match i % 17 {
                    5 => f32::NEG_INFINITY,
                    11 => f32::NAN,
                    _ => ((i * 7 % 13) as f32 / 3.0).round(),
                })
                .collect();
            let out = images * g.pixels() * c;
            let (mut y, mut argmax) = (vec![0.0; out], vec![0; out]);
            forward(&x, &g, PoolKind::Max, &mut y, Some(&mut argmax)).unwrap();
            let mut inference = vec![0.0; out];
            forward(&x, &g, PoolKind::Max, &mut inference, None).unwrap();
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                bits(&inference),
                bits(&y),
                "inference, which records no argmax"
            );
            let (expected, expected_argmax) = scalar_max(&x, &g, images);
            let case = format!("{c} channels, {k}x{k}/{stride} {padding:?}");
            assert_eq!(
                (bits(&y), argmax),
                (bits(&expected), expected_argmax),
                "{case}"
            );
        }
    }
}
