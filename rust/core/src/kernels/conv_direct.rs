//! Direct convolution of single-channel images, stride 1 (LeNet's first layer: 32x32x1 -> 28x28x6
//! through 5x5 taps). im2col would copy every pixel 25 times to feed a product 6 columns wide,
//! the shape GEMM microkernels handle worst. Here each output row is computed along x in vector
//! lanes, for blocks of [`BLOCK`] filters whose accumulators stay in registers.
//!
//! Every image is first copied into a zero-padded plane (the padding of "same"/"causal" and the
//! lanes past the last output column), so the inner loops have no bounds to check. The hot loops
//! are written with AVX2+FMA intrinsics: left to the auto-vectorizer, the same loops once
//! compiled to scalar code after an unrelated change elsewhere in the crate (conv1's forward went
//! from 0.86 to 4.5 ms). Without AVX2 the layer keeps im2col + GEMM.

use super::conv::Geometry;
use super::{copy, has_avx2_fma, LANES};

/// Filters computed together: 8 accumulators of [`LANES`] output columns.
const BLOCK: usize = 8;

/// A stride-1, single-channel convolution's padded layout.
#[derive(Clone, Copy, Debug)]
pub struct Direct {
    g: Geometry,
    filters: usize,
    /// Output columns rounded up to whole lanes.
    lane_columns: usize,
    /// The padded plane: every row any output row reads, every column any lane reads.
    plane_rows: usize,
    plane_columns: usize,
}

impl Direct {
    /// `None` where the direct kernel does not apply (several channels or strides) or the CPU
    /// lacks AVX2 and FMA.
    pub fn new(g: &Geometry, filters: usize) -> Option<Self> {
        if g.channels != 1 || g.rows.stride != 1 || g.cols.stride != 1 || !has_avx2_fma() {
            return None;
        }
        let lane_columns = g.cols.output.next_multiple_of(LANES);
        Some(Direct {
            g: *g,
            filters,
            lane_columns,
            plane_rows: g.rows.output + (g.rows.kernel - 1) * g.rows.dilation,
            plane_columns: lane_columns + (g.cols.kernel - 1) * g.cols.dilation,
        })
    }

    pub fn plane_len(&self) -> usize {
        self.plane_rows * self.plane_columns
    }

    /// Filters rounded up to whole blocks.
    fn padded_filters(&self) -> usize {
        self.filters.next_multiple_of(BLOCK)
    }

    fn taps(&self) -> usize {
        self.g.rows.kernel * self.g.cols.kernel
    }

    /// The length of [`Self::pack_kernel`]'s output, bias row included.
    pub fn packed_kernel_len(&self) -> usize {
        (self.taps() + 1) * self.padded_filters()
    }

    /// The length of a kernel-gradient partial: (taps, padded filters, lanes).
    pub fn partial_len(&self) -> usize {
        self.taps() * self.padded_filters() * LANES
    }

    /// The length of one image's output gradient in [`Self::kernel_gradient`]'s planar layout.
    pub fn planar_len(&self) -> usize {
        self.padded_filters() * self.g.rows.output * self.lane_columns
    }

    /// `(taps, filters)` -> `(taps, padded filters)`, zeros in the padding; the same for the
    /// bias, as one more row at the end.
    pub fn pack_kernel(&self, kernel: &[f32], bias: Option<&[f32]>, packed: &mut [f32]) {
        let (f, fp) = (self.filters, self.padded_filters());
        packed.fill(0.0);
        for (dst, src) in packed.chunks_mut(fp).zip(kernel.chunks(f)) {
            dst[..f].copy_from_slice(src);
        }
        if let Some(bias) = bias {
            packed[self.taps() * fp..][..f].copy_from_slice(bias);
        }
    }

    /// Copies one image into the zero-padded `plane`.
    pub fn pad_image(&self, image: &[f32], plane: &mut [f32]) {
        let (rows, cols) = (&self.g.rows, &self.g.cols);
        plane.fill(0.0);
        for (iy, src) in image.chunks(cols.input).enumerate() {
            let at = (iy + rows.pad_before) * self.plane_columns + cols.pad_before;
            copy(&mut plane[at..at + cols.input], src);
        }
    }

    /// One image's pre-activations `z` (`pixels x filters`, NHWC) from its padded plane and
    /// the packed kernel with its bias row.
    pub fn forward(&self, plane: &[f32], packed: &[f32], z: &mut [f32]) {
        assert!(plane.len() >= self.plane_len() && packed.len() >= self.packed_kernel_len());
        assert!(z.len() >= self.g.pixels() * self.filters);
        // SAFETY: `new` checked for AVX2 and FMA; the padded plane holds every row and lane any
        // output reads, and the packed kernel every padded filter.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            avx2::forward(self, plane, packed, z)
        }
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("`new` returns None without AVX2")
    }

    /// Adds one image's kernel gradient, `(taps, padded filters, lanes)`, to `partial`. `dz` is the
    /// image's output gradient (NHWC); `planar` is scratch of [`Self::planar_len`].
    pub fn kernel_gradient(
        &self,
        plane: &[f32],
        dz: &[f32],
        planar: &mut [f32],
        partial: &mut [f32],
    ) {
        assert!(plane.len() >= self.plane_len() && planar.len() >= self.planar_len());
        assert!(partial.len() >= self.partial_len());
        self.write_planar(dz, planar);
        // SAFETY: as in `forward`; `planar` holds whole blocks for every padded lane.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            avx2::kernel_gradient(self, plane, planar, partial)
        }
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("`new` returns None without AVX2")
    }

    /// `dz` (pixels x filters) -> `planar`, blocks of [`BLOCK`] filters x [`LANES`] columns
    /// laid out (filter block, row, column block, filter, lane) so the gradient's inner loop
    /// reads one contiguous block per step. Padded lanes and filters hold zeros, adding nothing.
    fn write_planar(&self, dz: &[f32], planar: &mut [f32]) {
        let (f, ow) = (self.filters, self.g.cols.output);
        // Every block is written whole, padding included: nothing to clear first.
        let mut blocks = planar.chunks_exact_mut(BLOCK * LANES);
        for f0 in (0..f).step_by(BLOCK) {
            let filters = f0..f.min(f0 + BLOCK);
            for dz_row in dz.chunks_exact(ow * f) {
                for pixels in dz_row.chunks(LANES * f) {
                    let mut block = [[0.0f32; LANES]; BLOCK];
                    for (pixel, l) in pixels.chunks_exact(f).zip(0..LANES) {
                        for (&v, b) in pixel[filters.clone()].iter().zip(0..BLOCK) {
                            block[b][l] = v;
                        }
                    }
                    let dst = blocks.next().expect("planar holds every block");
                    for (dst, src) in dst.chunks_exact_mut(LANES).zip(&block) {
                        copy(dst, src);
                    }
                }
            }
        }
    }

    /// Adds `partial` (taps x padded filters x lanes), its lanes summed, to the kernel's
    /// gradient (taps x filters).
    pub fn unpack_gradient(&self, partial: &[f32], d_kernel: &mut [f32]) {
        let tap_len = self.padded_filters() * LANES;
        for (dst, src) in d_kernel
            .chunks_mut(self.filters)
            .zip(partial.chunks(tap_len))
        {
            for (d, lanes) in dst.iter_mut().zip(src.chunks(LANES)) {
                *d += lanes.iter().sum::<f32>();
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{Direct, BLOCK, LANES};

    /// # Safety
    /// AVX2 and FMA present; the slices as long as [`Direct::forward`] asserts.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn forward(d: &Direct, plane: &[f32], packed: &[f32], z: &mut [f32]) {
        let (g, f, fp) = (&d.g, d.filters, d.padded_filters());
        let bias = packed.as_ptr().add(d.taps() * fp);
        for oy in 0..g.rows.output {
            for x0 in (0..g.cols.output).step_by(LANES) {
                for f0 in (0..fp).step_by(BLOCK) {
                    let mut acc = [_mm256_setzero_ps(); BLOCK];
                    for (b, acc) in acc.iter_mut().enumerate() {
                        *acc = _mm256_broadcast_ss(&*bias.add(f0 + b));
                    }
                    for ky in 0..g.rows.kernel {
                        let row = (oy + ky * g.rows.dilation) * d.plane_columns + x0;
                        for kx in 0..g.cols.kernel {
                            let x = _mm256_loadu_ps(plane.as_ptr().add(row + kx * g.cols.dilation));
                            let w = packed.as_ptr().add((ky * g.cols.kernel + kx) * fp + f0);
                            for (b, acc) in acc.iter_mut().enumerate() {
                                *acc = _mm256_fmadd_ps(x, _mm256_broadcast_ss(&*w.add(b)), *acc);
                            }
                        }
                    }
                    let mut values = [[0.0f32; LANES]; BLOCK];
                    for (dst, &acc) in values.iter_mut().zip(&acc) {
                        _mm256_storeu_ps(dst.as_mut_ptr(), acc);
                    }
                    let columns = LANES.min(g.cols.output - x0);
                    let filters = BLOCK.min(f - f0);
                    let first = (oy * g.cols.output + x0) * f + f0;
                    for (pixel, l) in z[first..].chunks_mut(f).take(columns).zip(0..LANES) {
                        for (z, b) in pixel[..filters].iter_mut().zip(0..BLOCK) {
                            *z = values[b][l];
                        }
                    }
                }
            }
        }
    }

    /// # Safety
    /// AVX2 and FMA present; the slices as long as [`Direct::kernel_gradient`] asserts.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn kernel_gradient(d: &Direct, plane: &[f32], planar: &[f32], partial: &mut [f32]) {
        let (g, fp) = (&d.g, d.padded_filters());
        let row_len = d.lane_columns * BLOCK;
        for (fb, dz_rows) in planar.chunks_exact(g.rows.output * row_len).enumerate() {
            for ky in 0..g.rows.kernel {
                for kx in 0..g.cols.kernel {
                    let mut acc = [_mm256_setzero_ps(); BLOCK];
                    for (oy, dz_row) in dz_rows.chunks_exact(row_len).enumerate() {
                        let start =
                            (oy + ky * g.rows.dilation) * d.plane_columns + kx * g.cols.dilation;
                        let x_row = plane.as_ptr().add(start);
                        for (column, dz) in dz_row.chunks_exact(BLOCK * LANES).enumerate() {
                            let x = _mm256_loadu_ps(x_row.add(column * LANES));
                            for (b, acc) in acc.iter_mut().enumerate() {
                                let dz = _mm256_loadu_ps(dz.as_ptr().add(b * LANES));
                                *acc = _mm256_fmadd_ps(x, dz, *acc);
                            }
                        }
                    }
                    // Lanes are summed only by `unpack_gradient`, once per partial.
                    let at = ((ky * g.cols.kernel + kx) * fp + fb * BLOCK) * LANES;
                    let out = partial[at..at + BLOCK * LANES].as_mut_ptr();
                    for (b, &acc) in acc.iter().enumerate() {
                        let sum = _mm256_add_ps(_mm256_loadu_ps(out.add(b * LANES)), acc);
                        _mm256_storeu_ps(out.add(b * LANES), sum);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::conv::{im2col, Axis, Padding};

    fn geometry(h: usize, w: usize, k: usize, dilation: usize, padding: Padding) -> Geometry {
        Geometry {
            rows: Axis::new(h, k, 1, dilation, padding).unwrap(),
            cols: Axis::new(w, k, 1, dilation, padding).unwrap(),
            channels: 1,
        }
    }

    fn values(n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|i| (i as f32 * scale).sin()).collect()
    }

    /// The im2col rows times the kernel, summed by hand in f64.
    fn reference_forward(g: &Geometry, image: &[f32], kernel: &[f32], bias: &[f32]) -> Vec<f32> {
        let f = bias.len();
        let mut cols = vec![0.0; g.pixels() * g.field()];
        im2col(image, g, &mut cols);
        cols.chunks(g.field())
            .flat_map(|row| {
                (0..f).map(move |j| {
                    let dot: f64 = row
                        .iter()
                        .enumerate()
                        .map(|(t, &x)| x as f64 * kernel[t * f + j] as f64)
                        .sum();
                    (dot + bias[j] as f64) as f32
                })
            })
            .collect()
    }

    #[test]
    fn forward_and_kernel_gradient_match_im2col() {
        if !has_avx2_fma() {
            return;
        }
        let cases = [
            (32, 32, 5, 1, Padding::Valid, 6),
            (9, 13, 3, 2, Padding::Same, 11),
            (7, 5, 3, 1, Padding::Same, 3),
        ];
        for (h, w, k, dilation, padding, f) in cases {
            let g = geometry(h, w, k, dilation, padding);
            let d = Direct::new(&g, f).unwrap();
            let (image, kernel, bias) =
                (values(h * w, 0.37), values(k * k * f, 0.11), values(f, 0.5));
            let mut packed = vec![0.0; d.packed_kernel_len()];
            d.pack_kernel(&kernel, Some(&bias), &mut packed);
            let mut plane = vec![0.0; d.plane_len()];
            d.pad_image(&image, &mut plane);
            let mut z = vec![0.0; g.pixels() * f];
            d.forward(&plane, &packed, &mut z);
            let expected = reference_forward(&g, &image, &kernel, &bias);
            for (a, b) in z.iter().zip(&expected) {
                assert!((a - b).abs() < 1e-5, "{a} vs {b} for {g:?}");
            }

            // ∂kernel[t, j] = Σ_pixels cols[p, t] · dz[p, j].
            let dz = values(g.pixels() * f, 0.23);
            let mut planar = vec![0.0; d.planar_len()];
            let mut partial = vec![0.0; d.partial_len()];
            d.kernel_gradient(&plane, &dz, &mut planar, &mut partial);
            let mut d_kernel = vec![0.0; k * k * f];
            d.unpack_gradient(&partial, &mut d_kernel);
            let mut cols = vec![0.0; g.pixels() * g.field()];
            im2col(&image, &g, &mut cols);
            for t in 0..g.field() {
                for j in 0..f {
                    let expected: f64 = (0..g.pixels())
                        .map(|p| cols[p * g.field() + t] as f64 * dz[p * f + j] as f64)
                        .sum();
                    let got = d_kernel[t * f + j] as f64;
                    assert!(
                        (got - expected).abs() < 1e-4,
                        "tap {t} filter {j}: {got} vs {expected}"
                    );
                }
            }
        }
    }

    #[test]
    fn applies_only_to_one_channel_and_stride_one() {
        let mut g = geometry(8, 8, 3, 1, Padding::Valid);
        assert_eq!(Direct::new(&g, 4).is_some(), has_avx2_fma());
        g.channels = 2;
        assert!(Direct::new(&g, 4).is_none());
        g.channels = 1;
        g.cols = Axis::new(8, 3, 2, 1, Padding::Valid).unwrap();
        assert!(Direct::new(&g, 4).is_none());
    }
}
