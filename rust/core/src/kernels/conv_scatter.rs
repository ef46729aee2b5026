//! A stride-1 convolution's input gradient by scattering, for small kernel rows (LeNet's second
//! layer: 5 taps of 6 channels): `∂x` gathers, for each output pixel and kernel row, the
//! pixel's output gradient times that kernel row, `Σ_f dz[p, f] · kernel[ky, ·, ·, f]`, a run
//! of `kw · channels` values added where the pixel's receptive field lies. The run is computed
//! in registers and added once, into a zero-padded copy of `∂x`; im2col's ∂cols (written, then
//! read back by col2im) never exist. The flipped convolution (`conv_implicit`) does the same
//! work where it wastes little; here nothing is computed for the padding.

// Off x86-64, `new` returns None: the plans and tiles below are never built.
#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code, unused_variables))]

use super::conv::Geometry;
use super::{has_avx2_fma, LANES};

/// Kernel-row runs of more vectors than this do not fit in registers with their operands.
const MAX_RUN_VECTORS: usize = 6;

#[derive(Clone, Debug)]
pub struct Scatter {
    g: Geometry,
    filters: usize,
    /// Vectors per kernel-row run (`kw · channels` values, rounded up).
    run_vectors: usize,
    /// Pixels per tile, in consecutive rows: their runs share the kernel's loads.
    pixels: usize,
    plane_rows: usize,
    plane_columns: usize,
}

impl Scatter {
    /// `None` where it does not apply: strides or dilation, kernel rows too long, no AVX2.
    pub fn new(g: &Geometry, filters: usize) -> Option<Self> {
        let (rows, cols) = (&g.rows, &g.cols);
        let plain = [rows, cols]
            .iter()
            .all(|a| a.stride == 1 && a.dilation == 1);
        let run_vectors = (cols.kernel * g.channels).div_ceil(LANES);
        if !plain || run_vectors > MAX_RUN_VECTORS || !has_avx2_fma() {
            return None;
        }
        // Accumulators, the kernel vectors of one filter, one broadcast: within 16 registers.
        let pixels = (1..=12 / run_vectors)
            .rev()
            .find(|p| p * run_vectors + run_vectors < 16)?;
        Some(Scatter {
            g: *g,
            filters,
            run_vectors,
            pixels,
            plane_rows: rows.output + rows.kernel - 1,
            plane_columns: cols.output + cols.kernel - 1,
        })
    }

    fn run_len(&self) -> usize {
        self.run_vectors * LANES
    }

    /// The padded `∂x` of one image, with room for the last run's padding lanes.
    pub fn plane_len(&self) -> usize {
        self.plane_rows * self.plane_columns * self.g.channels + self.run_len()
    }

    pub fn packed_kernel_len(&self) -> usize {
        self.g.rows.kernel * self.filters * self.run_len()
    }

    /// `(kh, kw, channels, filters)` -> `(kh, filters, run)`: each filter's kernel row as one
    /// run, zeros past `kw · channels`.
    pub fn pack_kernel(&self, kernel: &[f32], packed: &mut [f32]) {
        let (f, run) = (self.filters, self.g.cols.kernel * self.g.channels);
        packed.fill(0.0);
        for (ky, rows) in kernel.chunks(run * f).enumerate() {
            for (t, taps) in rows.chunks(f).enumerate() {
                for (j, &w) in taps.iter().enumerate() {
                    packed[(ky * f + j) * self.run_len() + t] = w;
                }
            }
        }
    }

    /// One image's `dx` from its output gradient `dz` (pixels x filters), through `plane`.
    pub fn input_gradient(&self, dz: &[f32], packed: &[f32], plane: &mut [f32], dx: &mut [f32]) {
        assert!(dz.len() >= self.g.pixels() * self.filters);
        assert!(packed.len() >= self.packed_kernel_len() && plane.len() >= self.plane_len());
        plane.fill(0.0);
        // SAFETY: `new` checked for AVX2 and FMA; every run starts inside the padded plane and
        // its padding lanes end within the slack `plane_len` adds.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            avx2::scatter(self, dz, packed, plane)
        }
        let (rows, cols, c) = (&self.g.rows, &self.g.cols, self.g.channels);
        for (iy, dst) in dx.chunks_mut(cols.input * c).take(rows.input).enumerate() {
            let at = ((iy + rows.pad_before) * self.plane_columns + cols.pad_before) * c;
            dst.copy_from_slice(&plane[at..at + cols.input * c]);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{Scatter, LANES};
    use crate::kernels::for_shape;

    struct Run {
        filters: usize,
        /// Values from one packed filter row to the next.
        run_len: usize,
        /// From one pixel of a tile to the next: in `dz` and in the plane (one row down).
        dz_step: usize,
        plane_step: usize,
    }

    /// # Safety
    /// AVX2 and FMA present; the slices as long as [`Scatter::input_gradient`] asserts.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn scatter(s: &Scatter, dz: &[f32], packed: &[f32], plane: &mut [f32]) {
        let (g, f, c) = (&s.g, s.filters, s.g.channels);
        let run = Run {
            filters: f,
            run_len: s.run_len(),
            dz_step: g.cols.output * f,
            plane_step: s.plane_columns * c,
        };
        // A tile's pixels lie one below the other: the runs of side-by-side pixels overlap, and
        // adding one where the previous one was just stored stalled on the store (a fifth of
        // this kernel's time for LeNet).
        for oy in (0..g.rows.output).step_by(s.pixels) {
            let pixels = s.pixels.min(g.rows.output - oy);
            for ox in 0..g.cols.output {
                let dz = dz.as_ptr().add((oy * g.cols.output + ox) * f);
                for ky in 0..g.rows.kernel {
                    let w = packed.as_ptr().add(ky * f * run.run_len);
                    let out = plane
                        .as_mut_ptr()
                        .add(((oy + ky) * s.plane_columns + ox) * c);
                    for_shape!(pixels, s.run_vectors, tile(&run, dz, w, out));
                }
            }
        }
    }

    /// `P` pixels' runs for one kernel row, `V` vectors each, the pixels one below the other:
    /// summed over the filters in registers, then added into the plane.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn tile<const P: usize, const V: usize>(
        s: &Run,
        dz: *const f32,
        w: *const f32,
        out: *mut f32,
    ) {
        let mut acc = [[_mm256_setzero_ps(); V]; P];
        for j in 0..s.filters {
            let mut kernel = [_mm256_setzero_ps(); V];
            for (v, lanes) in kernel.iter_mut().enumerate() {
                *lanes = _mm256_loadu_ps(w.add(j * s.run_len + v * LANES));
            }
            for (p, pixel) in acc.iter_mut().enumerate() {
                let grad = _mm256_broadcast_ss(&*dz.add(p * s.dz_step + j));
                for (lanes, &k) in pixel.iter_mut().zip(&kernel) {
                    *lanes = _mm256_fmadd_ps(grad, k, *lanes);
                }
            }
        }
        for (p, pixel) in acc.iter().enumerate() {
            let out = out.add(p * s.plane_step);
            for (v, &lanes) in pixel.iter().enumerate() {
                let at = out.add(v * LANES);
                _mm256_storeu_ps(at, _mm256_add_ps(_mm256_loadu_ps(at), lanes));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::conv::reference::{self, values};
    use crate::kernels::conv::{Axis, Padding};

    #[test]
    fn input_gradient_matches_col2im() {
        if !has_avx2_fma() {
            return;
        }
        // LeNet's conv2, "same" and causal-like paddings, runs of 1 to 6 vectors, 1D.
        let cases = [
            (14, 14, 5, 5, 6, 16, Padding::Valid),
            (8, 7, 3, 3, 16, 5, Padding::Same),
            (6, 9, 2, 4, 3, 7, Padding::Same),
            (5, 5, 3, 1, 2, 3, Padding::Valid),
            (1, 12, 1, 3, 5, 4, Padding::Causal),
        ];
        for (h, w, kh, kw, c, f, padding) in cases {
            let g = Geometry {
                rows: Axis::new(h, kh, 1, 1, if h == 1 { Padding::Valid } else { padding })
                    .unwrap(),
                cols: Axis::new(w, kw, 1, 1, padding).unwrap(),
                channels: c,
            };
            let s = Scatter::new(&g, f).expect("short kernel rows");
            let (kernel, dz) = (values(g.field() * f, 0.11), values(g.pixels() * f, 0.23));
            let mut packed = vec![0.0; s.packed_kernel_len()];
            s.pack_kernel(&kernel, &mut packed);
            let mut plane = vec![0.0; s.plane_len()];
            let mut dx = vec![f32::NAN; h * w * c];
            s.input_gradient(&dz, &packed, &mut plane, &mut dx);

            let expected = reference::input_gradient(&g, &kernel, &dz, f);
            for (a, b) in dx.iter().zip(&expected) {
                assert!((a - b).abs() < 1e-4, "{a} vs {b} in {g:?}");
            }
        }
    }

    #[test]
    fn applies_to_short_kernel_rows_only() {
        let g = |kw, channels| Geometry {
            rows: Axis::new(9, 3, 1, 1, Padding::Valid).unwrap(),
            cols: Axis::new(9, kw, 1, 1, Padding::Valid).unwrap(),
            channels,
        };
        assert_eq!(Scatter::new(&g(3, 16), 4).is_some(), has_avx2_fma()); // 48 values
        assert!(Scatter::new(&g(3, 17), 4).is_none());
        assert_eq!(
            Scatter::new(&g(5, 6), 16).map(|s| s.pixels),
            has_avx2_fma().then_some(2)
        );
    }
}
