//! Convolution lowered onto the GEMM: `im2col` gathers each output pixel's receptive field into
//! one row (ordered kh, kw, c like the kernel `(kh, kw, c, f)`), so the forward pass is
//! `cols · kernel` and the output is already NHWC; `col2im` scatters the rows' gradients back.
//! 1D convolutions are 2D ones with a height of 1. These functions run on the calling thread;
//! the convolution layer splits whole images across threads around them.

use serde::{Deserialize, Serialize};

use super::copy;
use crate::error::{CoreError, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Padding {
    Valid,
    /// Keras/TensorFlow "same": `out = ceil(n / s)`, the odd padding pixel at the end.
    Same,
    /// Conv1D only: all the padding on the left, so an output never sees later inputs.
    Causal,
}

/// The sizes along one spatial axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Axis {
    pub input: usize,
    pub kernel: usize,
    pub stride: usize,
    pub dilation: usize,
    /// Zero padding before the first input.
    pub pad_before: usize,
    pub output: usize,
}

impl Axis {
    /// Keras's output size and padding (`keras/src/ops/operation_utils.py`).
    pub fn new(
        input: usize,
        kernel: usize,
        stride: usize,
        dilation: usize,
        padding: Padding,
    ) -> Result<Self> {
        if kernel == 0 || stride == 0 || dilation == 0 {
            return Err(CoreError::invalid(
                "kernel_size/strides/dilation_rate",
                "positive integers",
                format!("kernel {kernel}, stride {stride}, dilation {dilation}"),
            ));
        }
        let span = dilation * (kernel - 1) + 1;
        let (output, pad_before) = match padding {
            Padding::Valid => {
                if span > input {
                    return Err(CoreError::invalid(
                        "kernel_size",
                        format!("a window that fits the input of size {input}"),
                        format!("a window spanning {span}"),
                    ));
                }
                ((input - span) / stride + 1, 0)
            }
            Padding::Same => {
                let output = input.div_ceil(stride);
                let total = ((output - 1) * stride + span).saturating_sub(input);
                (output, total / 2)
            }
            Padding::Causal => (input.div_ceil(stride), span - 1),
        };
        Ok(Axis {
            input,
            kernel,
            stride,
            dilation,
            pad_before,
            output,
        })
    }

    /// The input positions covered by output `o`'s window, padding left out (dilation 1, as
    /// pooling windows are).
    #[inline]
    pub fn window(&self, o: usize) -> std::ops::Range<usize> {
        let start = o * self.stride;
        let first = start.saturating_sub(self.pad_before);
        let end = (start + self.kernel)
            .saturating_sub(self.pad_before)
            .min(self.input);
        first..end.max(first)
    }

    /// The input position read by output `o` at kernel tap `k`, or `None` in the padding.
    #[inline]
    pub fn source(&self, o: usize, k: usize) -> Option<usize> {
        (o * self.stride + k * self.dilation)
            .checked_sub(self.pad_before)
            .filter(|&i| i < self.input)
    }
}

/// A convolution's shape: NHWC input with `channels`, over `rows` (H) and `cols` (W).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub rows: Axis,
    pub cols: Axis,
    pub channels: usize,
}

impl Geometry {
    pub fn input_size(&self) -> usize {
        self.rows.input * self.cols.input * self.channels
    }

    pub fn pixels(&self) -> usize {
        self.rows.output * self.cols.output
    }

    /// Values in one im2col row: one receptive field.
    pub fn field(&self) -> usize {
        self.rows.kernel * self.cols.kernel * self.channels
    }
}

/// Fills `cols` (`images · pixels × field`) with every output pixel's receptive field.
pub fn im2col(x: &[f32], g: &Geometry, cols: &mut [f32]) {
    im2col_rows(x, g, 0, cols)
}

/// Fills `cols` with the receptive fields of the batch's output pixels `first..`, one row each
/// (pixels numbered across the images of `x`, as the rows of the layer's output).
pub fn im2col_rows(x: &[f32], g: &Geometry, first: usize, cols: &mut [f32]) {
    let pixels = g.pixels();
    for (pixel, row) in (first..).zip(cols.chunks_exact_mut(g.field())) {
        let image = &x[pixel / pixels * g.input_size()..][..g.input_size()];
        let within = pixel % pixels;
        receptive_field(
            image,
            g,
            within / g.cols.output,
            within % g.cols.output,
            row,
        );
    }
}

/// Output pixel `(oy, ox)`'s receptive field, ordered (kh, kw, c) like the kernel.
#[inline]
fn receptive_field(image: &[f32], g: &Geometry, oy: usize, ox: usize, row: &mut [f32]) {
    let span = g.cols.kernel * g.channels;
    for (ky, dst) in row.chunks_mut(span).enumerate() {
        match g.rows.source(oy, ky) {
            None => dst.fill(0.0),
            Some(iy) => match contiguous_taps(g, iy, ox) {
                Some(at) => copy(dst, &image[at..at + span]),
                None => gather_taps(image, g, iy, ox, dst),
            },
        }
    }
}

/// Where kernel row `iy`'s taps for output column `ox` start in the image, when they are one
/// contiguous run (no dilation, no padding in the way): the common case, copied at once.
#[inline]
fn contiguous_taps(g: &Geometry, iy: usize, ox: usize) -> Option<usize> {
    let a = &g.cols;
    let first = (ox * a.stride).checked_sub(a.pad_before)?;
    (a.dilation == 1 && first + a.kernel <= a.input).then(|| (iy * a.input + first) * g.channels)
}

/// Kernel row `iy`'s taps for output column `ox`, one by one, zeros in the padding.
fn gather_taps(image: &[f32], g: &Geometry, iy: usize, ox: usize, dst: &mut [f32]) {
    let c = g.channels;
    for (kx, tap) in dst.chunks_mut(c).enumerate() {
        match g.cols.source(ox, kx) {
            Some(ix) => {
                let at = (iy * g.cols.input + ix) * c;
                copy(tap, &image[at..at + c]);
            }
            None => tap.fill(0.0),
        }
    }
}

/// `dx` (the input's shape, overwritten) from `dcols`, the gradient of every im2col row:
/// each input receives the sum over the receptive fields it appears in.
pub fn col2im(dcols: &[f32], g: &Geometry, dx: &mut [f32]) {
    let per_image = g.pixels() * g.field();
    dx.chunks_mut(g.input_size())
        .zip(dcols.chunks(per_image))
        .for_each(|(image, dcols)| col2im_image(dcols, g, image));
}

fn col2im_image(dcols: &[f32], g: &Geometry, image: &mut [f32]) {
    image.fill(0.0);
    let (c, span) = (g.channels, g.cols.kernel * g.channels);
    let mut rows = dcols.chunks(g.field());
    for oy in 0..g.rows.output {
        for ox in 0..g.cols.output {
            let row = rows.next().expect("dcols holds one row per output pixel");
            for (ky, src) in row.chunks(span).enumerate() {
                let Some(iy) = g.rows.source(oy, ky) else {
                    continue;
                };
                if let Some(at) = contiguous_taps(g, iy, ox) {
                    add(&mut image[at..at + span], src);
                    continue;
                }
                for (kx, tap) in src.chunks(c).enumerate() {
                    if let Some(ix) = g.cols.source(ox, kx) {
                        let at = (iy * g.cols.input + ix) * c;
                        add(&mut image[at..at + c], tap);
                    }
                }
            }
        }
    }
}

#[inline]
fn add(dst: &mut [f32], src: &[f32]) {
    dst.iter_mut().zip(src).for_each(|(d, s)| *d += s);
}

/// What the convolution kernels' tests compare against: im2col and col2im with plain loops.
#[cfg(test)]
pub(crate) mod reference {
    use super::{col2im, Geometry};

    pub fn values(n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|i| (i as f32 * scale).sin()).collect()
    }

    /// One image's `∂x`: `∂cols = dz · kernelᵀ`, scattered back by col2im.
    pub fn input_gradient(g: &Geometry, kernel: &[f32], dz: &[f32], filters: usize) -> Vec<f32> {
        let (field, f) = (g.field(), filters);
        let mut dcols = vec![0.0; g.pixels() * field];
        for p in 0..g.pixels() {
            for t in 0..field {
                dcols[p * field + t] = (0..f).map(|j| dz[p * f + j] * kernel[t * f + j]).sum();
            }
        }
        let mut dx = vec![0.0; g.input_size()];
        col2im(&dcols, g, &mut dx);
        dx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_sizes_follow_keras() {
        let axis = |n, k, s, d, p| Axis::new(n, k, s, d, p).unwrap();
        assert_eq!(axis(32, 5, 1, 1, Padding::Valid).output, 28);
        assert_eq!(axis(6, 3, 2, 1, Padding::Same).output, 3);
        // Same padding puts the odd pixel at the end: k=2, s=1 pads 0 before, 1 after.
        assert_eq!(axis(5, 2, 1, 1, Padding::Same).pad_before, 0);
        assert_eq!(axis(5, 3, 1, 2, Padding::Causal).pad_before, 4);
        assert!(Axis::new(4, 5, 1, 1, Padding::Valid).is_err());
        assert!(Axis::new(4, 2, 0, 1, Padding::Valid).is_err());
    }

    #[test]
    fn col2im_is_the_adjoint_of_im2col() {
        // <im2col(x), c> == <x, col2im(c)> for any x and c.
        let g = Geometry {
            rows: Axis::new(5, 3, 2, 1, Padding::Same).unwrap(),
            cols: Axis::new(4, 2, 1, 2, Padding::Valid).unwrap(),
            channels: 2,
        };
        let x: Vec<f32> = (0..2 * g.input_size()).map(|i| (i as f32).sin()).collect();
        let c: Vec<f32> = (0..2 * g.pixels() * g.field())
            .map(|i| (i as f32 * 0.7).cos())
            .collect();
        let mut cols = vec![0.0; c.len()];
        im2col(&x, &g, &mut cols);
        let mut dx = vec![0.0; x.len()];
        col2im(&c, &g, &mut dx);
        let left: f32 = cols.iter().zip(&c).map(|(a, b)| a * b).sum();
        let right: f32 = x.iter().zip(&dx).map(|(a, b)| a * b).sum();
        assert!(
            (left - right).abs() < 1e-3 * left.abs().max(1.0),
            "{left} vs {right}"
        );
    }
}
