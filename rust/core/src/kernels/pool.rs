//! Max and average pooling over NHWC images (1D: a height of 1), forward and backward.
//! Max pooling sends each gradient to the window's first maximum in row-major order, as
//! TensorFlow does for ties; average pooling with "same" padding divides by the number of real
//! (unpadded) values in each window, as Keras does.

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

fn forward_image(image: &[f32], g: &Geometry, kind: PoolKind, y: &mut [f32], argmax: &mut [u32]) {
    let c = g.channels;
    for oy in 0..g.rows.output {
        for ox in 0..g.cols.output {
            let at = (oy * g.cols.output + ox) * c;
            let (y, argmax) = (&mut y[at..at + c], &mut argmax[at..at + c]);
            match kind {
                PoolKind::Max => {
                    y.fill(f32::NEG_INFINITY);
                    let (rows, cols) = window(g, oy, ox);
                    for iy in rows {
                        for pixel in iy * g.cols.input + cols.start..iy * g.cols.input + cols.end {
                            let values = &image[pixel * c..(pixel + 1) * c];
                            for (ch, &v) in values.iter().enumerate() {
                                if v > y[ch] {
                                    y[ch] = v;
                                    argmax[ch] = (pixel * c + ch) as u32;
                                }
                            }
                        }
                    }
                }
                PoolKind::Average => {
                    y.fill(0.0);
                    let (rows, cols) = window(g, oy, ox);
                    let count = rows.len() * cols.len();
                    for iy in rows {
                        let first = (iy * g.cols.input + cols.start) * c;
                        for values in image[first..first + cols.len() * c].chunks(c) {
                            y.iter_mut().zip(values).for_each(|(s, v)| *s += v);
                        }
                    }
                    y.iter_mut().for_each(|s| *s /= count as f32);
                }
            }
        }
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
}
