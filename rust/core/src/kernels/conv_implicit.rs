//! Convolution as an implicit GEMM, for stride-1, undilated convolutions with several channels
//! (LeNet's second layer, 3x3 "same" layers): the product of im2col's rows and the kernel,
//! computed without writing the rows. For one kernel row `ky`, a pixel's receptive field is one
//! contiguous run of `kw · channels` values of the (padded) image, and consecutive pixels' runs
//! start `channels` values apart; so a register tile of pixels x filters reads its inputs
//! straight from the image, broadcast one value at a time, and the kernel's filters sit in the
//! vector lanes. GEMM libraries pack both operands first; here nothing is copied but the
//! padded image, and the tile's accumulators stay in registers over all `kh · kw · channels`
//! taps.
//!
//! The tile is written with AVX2+FMA intrinsics (16 registers: up to 12 accumulators, the kernel
//! vectors of one tap, one broadcast); without AVX2 the layer keeps im2col + GEMM.

use super::conv::Geometry;
use super::{copy, LANES};

/// Accumulator registers a tile may use (of AVX2's 16: the rest hold the tap's kernel vectors
/// and the broadcast input).
const ACCUMULATORS: usize = 12;
/// Kernel vectors per filter group: 32 filters.
const MAX_VECTORS: usize = 4;

/// A tile's shape: `pixels` consecutive output pixels of a row x `vectors` vectors of filters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Tile {
    pixels: usize,
    vectors: usize,
}

impl Tile {
    /// The tile for `vectors` filter vectors along rows of `width` pixels: the pixel count that
    /// needs the fewest cycles per row (FMA- or load-bound, whichever binds; a short last tile
    /// costs a full one).
    fn for_row(width: usize, vectors: usize) -> Self {
        let cycles = |pixels: usize| {
            let per_tap = (pixels * vectors).max(pixels + vectors);
            width.div_ceil(pixels) * per_tap
        };
        let most = ACCUMULATORS / vectors;
        let pixels = (1..=most)
            .rev()
            .min_by_key(|&p| cycles(p))
            .expect("at least one pixel");
        Tile { pixels, vectors }
    }
}

/// A stride-1 convolution's padded layout and tiles.
#[derive(Clone, Debug)]
pub struct Implicit {
    g: Geometry,
    filters: usize,
    /// Filters rounded up to whole vectors.
    padded_filters: usize,
    /// One tile per filter group: `(first filter, tile)`.
    groups: Vec<(usize, Tile)>,
    plane_rows: usize,
    plane_columns: usize,
}

impl Implicit {
    /// `None` where the kernel does not apply (strides, dilation, one channel) or the CPU lacks
    /// AVX2 and FMA.
    pub fn new(g: &Geometry, filters: usize) -> Option<Self> {
        let (rows, cols) = (&g.rows, &g.cols);
        let plain = [rows, cols]
            .iter()
            .all(|a| a.stride == 1 && a.dilation == 1);
        if !plain || g.channels < 2 || !simd_available() {
            return None;
        }
        let padded_filters = filters.next_multiple_of(LANES);
        let mut groups = Vec::new();
        let mut first = 0;
        while first < padded_filters {
            let vectors = ((padded_filters - first) / LANES).min(MAX_VECTORS);
            groups.push((first, Tile::for_row(cols.output, vectors)));
            first += vectors * LANES;
        }
        // Every tile reads whole: the last one of a row may run past the output's width.
        let widest = groups
            .iter()
            .map(|(_, t)| cols.output.next_multiple_of(t.pixels))
            .max()?;
        Some(Implicit {
            g: *g,
            filters,
            padded_filters,
            groups,
            plane_rows: rows.output + rows.kernel - 1,
            plane_columns: widest + cols.kernel - 1,
        })
    }

    /// Values in one padded image.
    pub fn plane_len(&self) -> usize {
        self.plane_rows * self.plane_columns * self.g.channels
    }

    fn taps(&self) -> usize {
        self.g.field()
    }

    /// The length of [`Self::pack_kernel`]'s output, bias row included.
    pub fn packed_kernel_len(&self) -> usize {
        (self.taps() + 1) * self.padded_filters
    }

    /// `(taps, filters)` -> `(taps, padded filters)` with zeros in the padding, then the bias
    /// (or zeros) as one more row.
    pub fn pack_kernel(&self, kernel: &[f32], bias: Option<&[f32]>, packed: &mut [f32]) {
        let (f, fp) = (self.filters, self.padded_filters);
        packed.fill(0.0);
        for (dst, src) in packed.chunks_mut(fp).zip(kernel.chunks(f)) {
            copy(dst, src);
        }
        if let Some(bias) = bias {
            copy(&mut packed[self.taps() * fp..], bias);
        }
    }

    /// Copies one NHWC image into the zero-padded `plane`.
    pub fn pad_image(&self, image: &[f32], plane: &mut [f32]) {
        let (rows, cols, c) = (&self.g.rows, &self.g.cols, self.g.channels);
        plane.fill(0.0);
        for (iy, src) in image.chunks(cols.input * c).enumerate() {
            let at = ((iy + rows.pad_before) * self.plane_columns + cols.pad_before) * c;
            copy(&mut plane[at..at + cols.input * c], src);
        }
    }

    /// One image's pre-activations `z` (`pixels x filters`, NHWC) from its padded plane and the
    /// packed kernel.
    pub fn forward(&self, plane: &[f32], packed: &[f32], z: &mut [f32]) {
        assert!(plane.len() >= self.plane_len() && packed.len() >= self.packed_kernel_len());
        assert!(z.len() >= self.g.pixels() * self.filters);
        // SAFETY: `new` checked that the CPU has AVX2 and FMA; the asserts above and the padded
        // layout keep every read and write inside the slices (see `forward_rows`).
        #[cfg(target_arch = "x86_64")]
        unsafe {
            avx2::forward_rows(self, plane, packed, z)
        }
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("`new` returns None without AVX2")
    }
}

fn simd_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{Implicit, Tile, LANES};

    /// Where one tile reads and writes.
    struct TileAt {
        /// The first input of the first pixel's receptive field (kernel row 0).
        x: *const f32,
        /// The tile's first filter in the packed kernel's tap 0, and in its bias row.
        w: *const f32,
        bias: *const f32,
        /// The first pixel's first filter in `z`.
        z: *mut f32,
        /// Pixels to store (the rest of the tile lies past the row's end).
        valid_pixels: usize,
        /// Filters to store per pixel from this group (the rest is padding).
        valid_filters: usize,
    }

    /// Strides shared by every tile of a convolution.
    struct Strides {
        channels: usize,
        /// Inputs between kernel rows, and taps in one kernel row.
        plane_row: usize,
        row_taps: usize,
        kernel_rows: usize,
        /// Values per tap in the packed kernel, and per pixel in `z`.
        packed_filters: usize,
        filters: usize,
    }

    /// # Safety
    /// AVX2 and FMA present; `plane`, `packed`, `z` as long as [`Implicit::forward`] asserts.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn forward_rows(d: &Implicit, plane: &[f32], packed: &[f32], z: &mut [f32]) {
        let (g, c) = (&d.g, d.g.channels);
        let s = Strides {
            channels: c,
            plane_row: d.plane_columns * c,
            row_taps: g.cols.kernel * c,
            kernel_rows: g.rows.kernel,
            packed_filters: d.padded_filters,
            filters: d.filters,
        };
        let bias = packed.as_ptr().add(d.taps() * d.padded_filters);
        for oy in 0..g.rows.output {
            for &(first, tile) in &d.groups {
                for ox in (0..g.cols.output).step_by(tile.pixels) {
                    let at = TileAt {
                        // The last tile's pixels past the width read the plane's padding columns.
                        x: plane.as_ptr().add((oy * d.plane_columns + ox) * c),
                        w: packed.as_ptr().add(first),
                        bias: bias.add(first),
                        z: z.as_mut_ptr()
                            .add((oy * g.cols.output + ox) * d.filters + first),
                        valid_pixels: tile.pixels.min(g.cols.output - ox),
                        valid_filters: (tile.vectors * LANES).min(d.filters - first),
                    };
                    dispatch(tile, &s, &at);
                }
            }
        }
    }

    /// Calls the tile function compiled for `tile`'s shape.
    #[inline(always)]
    unsafe fn dispatch(tile: Tile, s: &Strides, at: &TileAt) {
        macro_rules! shapes {
            ($(($p:literal, $v:literal)),*) => {
                match (tile.pixels, tile.vectors) {
                    $(($p, $v) => tile_fma::<$p, $v>(s, at),)*
                    _ => unreachable!("Tile::for_row keeps within 12 accumulators"),
                }
            };
        }
        shapes!(
            (1, 1),
            (2, 1),
            (3, 1),
            (4, 1),
            (5, 1),
            (6, 1),
            (7, 1),
            (8, 1),
            (9, 1),
            (10, 1),
            (11, 1),
            (12, 1),
            (1, 2),
            (2, 2),
            (3, 2),
            (4, 2),
            (5, 2),
            (6, 2),
            (1, 3),
            (2, 3),
            (3, 3),
            (4, 3),
            (1, 4),
            (2, 4),
            (3, 4)
        )
    }

    /// `P` pixels x `V` vectors of filters: the bias, plus every tap's input times its kernel
    /// vectors, then stored.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn tile_fma<const P: usize, const V: usize>(s: &Strides, at: &TileAt) {
        let mut acc = [[_mm256_setzero_ps(); V]; P];
        for pixel in acc.iter_mut() {
            for (v, lanes) in pixel.iter_mut().enumerate() {
                *lanes = _mm256_loadu_ps(at.bias.add(v * LANES));
            }
        }
        for ky in 0..s.kernel_rows {
            let x = at.x.add(ky * s.plane_row);
            let w = at.w.add(ky * s.row_taps * s.packed_filters);
            for t in 0..s.row_taps {
                let mut kernel = [_mm256_setzero_ps(); V];
                for (v, lanes) in kernel.iter_mut().enumerate() {
                    *lanes = _mm256_loadu_ps(w.add(t * s.packed_filters + v * LANES));
                }
                for (p, pixel) in acc.iter_mut().enumerate() {
                    let input = _mm256_broadcast_ss(&*x.add(p * s.channels + t));
                    for (lanes, &k) in pixel.iter_mut().zip(&kernel) {
                        *lanes = _mm256_fmadd_ps(input, k, *lanes);
                    }
                }
            }
        }
        store(&acc, s, at);
    }

    #[inline(always)]
    unsafe fn store<const P: usize, const V: usize>(
        acc: &[[__m256; V]; P],
        s: &Strides,
        at: &TileAt,
    ) {
        for (p, pixel) in acc.iter().enumerate().take(at.valid_pixels) {
            let out = at.z.add(p * s.filters);
            if at.valid_filters == V * LANES {
                for (v, &lanes) in pixel.iter().enumerate() {
                    _mm256_storeu_ps(out.add(v * LANES), lanes);
                }
            } else {
                let mut values = [[0.0f32; LANES]; V];
                for (dst, &lanes) in values.iter_mut().zip(pixel) {
                    _mm256_storeu_ps(dst.as_mut_ptr(), lanes);
                }
                let values = values.as_flattened();
                std::ptr::copy_nonoverlapping(values.as_ptr(), out, at.valid_filters);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::conv::{im2col, Axis, Padding};

    fn values(n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|i| (i as f32 * scale).sin()).collect()
    }

    #[test]
    fn tiles_fit_the_row() {
        assert_eq!(Tile::for_row(10, 2).pixels, 5); // LeNet's conv2: two tiles of 5, none wasted
        assert_eq!(Tile::for_row(32, 4).pixels, 2); // 3 would waste a pixel per row for nothing
        assert_eq!(Tile::for_row(28, 1).pixels, 7);
        for width in 1..40 {
            for vectors in 1..=MAX_VECTORS {
                let tile = Tile::for_row(width, vectors);
                assert!(tile.pixels * tile.vectors <= ACCUMULATORS);
            }
        }
    }

    #[test]
    fn forward_matches_im2col_times_the_kernel() {
        if !simd_available() {
            return;
        }
        // (h, w, kh, kw, channels, filters, padding): LeNet's conv2, W3's shape, ragged filters
        // and widths, 1D.
        let cases = [
            (14, 14, 5, 5, 6, 16, Padding::Valid),
            (8, 8, 3, 3, 16, 32, Padding::Same),
            (7, 9, 3, 2, 3, 13, Padding::Same),
            (5, 6, 2, 3, 2, 40, Padding::Valid),
            (1, 11, 1, 3, 4, 5, Padding::Same),
        ];
        for (h, w, kh, kw, c, f, padding) in cases {
            let g = Geometry {
                rows: Axis::new(h, kh, 1, 1, padding).unwrap(),
                cols: Axis::new(w, kw, 1, 1, padding).unwrap(),
                channels: c,
            };
            let d = Implicit::new(&g, f).expect("stride 1, several channels");
            let (image, kernel, bias) = (
                values(h * w * c, 0.37),
                values(g.field() * f, 0.11),
                values(f, 0.5),
            );
            let mut packed = vec![0.0; d.packed_kernel_len()];
            d.pack_kernel(&kernel, Some(&bias), &mut packed);
            let mut plane = vec![0.0; d.plane_len()];
            d.pad_image(&image, &mut plane);
            let mut z = vec![f32::NAN; g.pixels() * f];
            d.forward(&plane, &packed, &mut z);

            let mut cols = vec![0.0; g.pixels() * g.field()];
            im2col(&image, &g, &mut cols);
            for (p, row) in cols.chunks(g.field()).enumerate() {
                for j in 0..f {
                    let dot: f64 = row
                        .iter()
                        .enumerate()
                        .map(|(t, &x)| x as f64 * kernel[t * f + j] as f64)
                        .sum();
                    let expected = dot + bias[j] as f64;
                    let got = z[p * f + j] as f64;
                    assert!(
                        (got - expected).abs() < 1e-4,
                        "{got} vs {expected} in {g:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn applies_only_to_stride_one_undilated_multichannel_convolutions() {
        let g = |stride, dilation, channels| Geometry {
            rows: Axis::new(8, 3, stride, dilation, Padding::Valid).unwrap(),
            cols: Axis::new(8, 3, stride, dilation, Padding::Valid).unwrap(),
            channels,
        };
        assert_eq!(Implicit::new(&g(1, 1, 3), 4).is_some(), simd_available());
        assert!(Implicit::new(&g(2, 1, 3), 4).is_none());
        assert!(Implicit::new(&g(1, 2, 3), 4).is_none());
        assert!(Implicit::new(&g(1, 1, 1), 4).is_none());
    }
}
