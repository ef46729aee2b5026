//! The implicit GEMM's forward and kernel gradient with AVX-512, for filters in whole vectors
//! of 16. The 32 vector registers hold a tile of up to 12 pixels (or taps) x 2 vectors (AVX2's
//! 16 hold 2 x 4 of 8 lanes), so a tile loads its operand vectors for 6 to 12 times as many
//! FMAs. Zen 4 runs a 512-bit FMA at the rate of two 256-bit ones; what goes is the loads and
//! instructions around them: W3's forward tile, one image on one thread, 78-86 → 103-111
//! GFLOP/s. The sums are those of the AVX2 tiles, added in the same order.

use std::arch::x86_64::*;
use std::ops::Range;

use super::{channel_major, prefetch_for_write, Implicit, Tile};

/// f32 values per AVX-512 vector.
pub(super) const WIDE_LANES: usize = 16;
/// Filter vectors per tile: 32 filters.
pub(super) const MAX_WIDE_VECTORS: usize = 2;
/// Pixels per tile: with 2 vectors, 24 accumulators, the kernel vectors and a broadcast.
const MAX_WIDE_PIXELS: usize = 12;

/// Whether the CPU runs these tiles.
pub(super) fn available() -> bool {
    is_x86_feature_detected!("avx512f")
}

impl Tile {
    /// The wide tile for `vectors` vectors of 16 filters along rows of `width` pixels: the
    /// pixel count that wastes least past the row's end (the FMAs bind, not the loads), the
    /// largest among equals.
    pub(super) fn wide_for_row(width: usize, vectors: usize) -> Self {
        let pixels = (1..=MAX_WIDE_PIXELS)
            .rev()
            .min_by_key(|&p| width.next_multiple_of(p))
            .expect("at least one pixel");
        Tile { pixels, vectors }
    }
}

/// Calls `f::<P, V>(args)` for a wide tile of `p` pixels by `v` vectors.
macro_rules! for_wide_shape {
    ($p:expr, $v:expr, $f:ident($($arg:expr),*)) => {
        match ($p, $v) {
            (1, 1) => $f::<1, 1>($($arg),*),
            (2, 1) => $f::<2, 1>($($arg),*),
            (3, 1) => $f::<3, 1>($($arg),*),
            (4, 1) => $f::<4, 1>($($arg),*),
            (5, 1) => $f::<5, 1>($($arg),*),
            (6, 1) => $f::<6, 1>($($arg),*),
            (7, 1) => $f::<7, 1>($($arg),*),
            (8, 1) => $f::<8, 1>($($arg),*),
            (9, 1) => $f::<9, 1>($($arg),*),
            (10, 1) => $f::<10, 1>($($arg),*),
            (11, 1) => $f::<11, 1>($($arg),*),
            (12, 1) => $f::<12, 1>($($arg),*),
            (1, 2) => $f::<1, 2>($($arg),*),
            (2, 2) => $f::<2, 2>($($arg),*),
            (3, 2) => $f::<3, 2>($($arg),*),
            (4, 2) => $f::<4, 2>($($arg),*),
            (5, 2) => $f::<5, 2>($($arg),*),
            (6, 2) => $f::<6, 2>($($arg),*),
            (7, 2) => $f::<7, 2>($($arg),*),
            (8, 2) => $f::<8, 2>($($arg),*),
            (9, 2) => $f::<9, 2>($($arg),*),
            (10, 2) => $f::<10, 2>($($arg),*),
            (11, 2) => $f::<11, 2>($($arg),*),
            (12, 2) => $f::<12, 2>($($arg),*),
            _ => unreachable!("a wide tile beyond AVX-512's registers"),
        }
    };
}

/// Where one tile reads and writes, and the strides every tile shares.
struct At {
    /// The first input of the first pixel's receptive field (kernel row 0).
    x: *const f32,
    /// The tile's first filter in the packed kernel's tap 0, and in its bias row.
    w: *const f32,
    bias: *const f32,
    /// The first pixel's first filter in `z`; stored through relu where `relu`.
    z: *mut f32,
    relu: bool,
    /// Pixels to store: the rest of the tile lies past the row's end.
    valid_pixels: usize,
    channels: usize,
    plane_row: usize,
    row_taps: usize,
    kernel_rows: usize,
    kernel_columns: usize,
    /// Values per tap in the packed kernel, and per pixel in `z`.
    packed_filters: usize,
    filters: usize,
}

/// [`super::avx2::forward_rows`] with wide tiles.
///
/// # Safety
/// AVX-512F present; `band`, `packed`, `z` as long as [`Implicit::forward_band`] asserts;
/// every group whole (filters a multiple of 16).
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn forward_rows(
    d: &Implicit,
    band: &[f32],
    rows: Range<usize>,
    packed: &[f32],
    z: &mut [f32],
    relu: bool,
) {
    let (g, c) = (&d.g, d.g.channels);
    let bias = packed.as_ptr().add(d.taps() * d.padded_filters);
    for oy in rows.clone() {
        for &(first, tile) in &d.groups {
            for ox in (0..g.cols.output).step_by(tile.pixels) {
                let offset = (oy * g.cols.output + ox) * d.filters + first;
                let at = At {
                    // The last tile's pixels past the width read the plane's padding columns.
                    x: band
                        .as_ptr()
                        .add(((oy - rows.start) * d.plane_columns + ox) * c),
                    w: packed.as_ptr().add(first),
                    bias: bias.add(first),
                    z: z.as_mut_ptr().add(offset),
                    relu,
                    valid_pixels: tile.pixels.min(g.cols.output - ox),
                    channels: c,
                    plane_row: d.plane_columns * c,
                    row_taps: g.cols.kernel * c,
                    kernel_rows: g.rows.kernel,
                    kernel_columns: g.cols.kernel,
                    packed_filters: d.padded_filters,
                    filters: d.filters,
                };
                for_wide_shape!(tile.pixels, tile.vectors, tile_fma(&at));
            }
        }
    }
}

/// `P` pixels x `V` vectors of 16 filters: the bias, plus every tap's input times its kernel
/// vectors, then stored (through relu where asked).
#[target_feature(enable = "avx512f")]
unsafe fn tile_fma<const P: usize, const V: usize>(at: &At) {
    prefetch_for_write::<P, V>(at.z, at.filters, WIDE_LANES);
    let mut acc = [[_mm512_setzero_ps(); V]; P];
    for pixel in acc.iter_mut() {
        for (v, lanes) in pixel.iter_mut().enumerate() {
            *lanes = _mm512_loadu_ps(at.bias.add(v * WIDE_LANES));
        }
    }
    for ky in 0..at.kernel_rows {
        let x = at.x.add(ky * at.plane_row);
        let w = at.w.add(ky * at.row_taps * at.packed_filters);
        match channel_major(at.kernel_columns, at.filters) {
            true => add_row_channel_major(&mut acc, at, x, w),
            false => add_row_in_tap_order(&mut acc, at, x, w),
        }
    }
    let zero = _mm512_setzero_ps();
    for (p, pixel) in acc.iter().enumerate().take(at.valid_pixels) {
        let z = at.z.add(p * at.filters);
        for (v, &lanes) in pixel.iter().enumerate() {
            let lanes = if at.relu {
                _mm512_max_ps(lanes, zero)
            } else {
                lanes
            };
            _mm512_storeu_ps(z.add(v * WIDE_LANES), lanes);
        }
    }
}

/// Adds one kernel row's taps to the tile, channel by channel with kernel columns within (as
/// the direct tiles do): `x` is the row's first input, `w` its first tap's kernel vectors.
#[inline(always)]
unsafe fn add_row_channel_major<const P: usize, const V: usize>(
    acc: &mut [[__m512; V]; P],
    at: &At,
    x: *const f32,
    w: *const f32,
) {
    let pixels: [*const f32; P] = std::array::from_fn(|p| x.add(p * at.channels));
    for ci in 0..at.channels {
        for kx in 0..at.kernel_columns {
            let t = kx * at.channels + ci;
            fma_tap(acc, &pixels, t, w.add(t * at.packed_filters));
        }
    }
}

/// Adds one kernel row's taps to the tile in their order, each pixel's pointer stepped
/// [`TAP_STEP`] taps at a time: within a step each broadcast reads at a constant offset, and
/// the loop's bookkeeping is paid once per step instead of once per pixel and tap.
#[inline(always)]
unsafe fn add_row_in_tap_order<const P: usize, const V: usize>(
    acc: &mut [[__m512; V]; P],
    at: &At,
    x: *const f32,
    mut w: *const f32,
) {
    let mut pixels: [*const f32; P] = std::array::from_fn(|p| x.add(p * at.channels));
    let whole = at.row_taps / TAP_STEP * TAP_STEP;
    for _ in (0..whole).step_by(TAP_STEP) {
        for k in 0..TAP_STEP {
            fma_tap(acc, &pixels, k, w.add(k * at.packed_filters));
        }
        pixels.iter_mut().for_each(|p| *p = p.add(TAP_STEP));
        w = w.add(TAP_STEP * at.packed_filters);
    }
    for k in 0..at.row_taps - whole {
        fma_tap(acc, &pixels, k, w.add(k * at.packed_filters));
    }
}

/// Taps per step of the forward tile's loop in tap order (W4's training, 8,192 images: 4.05 s
/// with a step of 1, 3.92 with 4, 3.88 with 8).
const TAP_STEP: usize = 8;

/// Adds tap `k` past each pixel's pointer times its kernel vectors at `w` to the tile.
#[inline(always)]
unsafe fn fma_tap<const P: usize, const V: usize>(
    acc: &mut [[__m512; V]; P],
    pixels: &[*const f32; P],
    k: usize,
    w: *const f32,
) {
    let mut kernel = [_mm512_setzero_ps(); V];
    for (v, lanes) in kernel.iter_mut().enumerate() {
        *lanes = _mm512_loadu_ps(w.add(v * WIDE_LANES));
    }
    for (pixel, &x) in acc.iter_mut().zip(pixels) {
        let input = _mm512_set1_ps(*x.add(k));
        for (lanes, &kv) in pixel.iter_mut().zip(&kernel) {
            *lanes = _mm512_fmadd_ps(input, kv, *lanes);
        }
    }
}

/// The kernel gradient's groups for kernel rows of `row_taps` taps: up to 2 vectors of 16
/// filters each, with the most taps that divide the row within 24 accumulators:
/// `(first filter, vectors, taps)`.
pub(super) fn gradient_groups(row_taps: usize, filters: usize) -> Vec<(usize, usize, usize)> {
    let taps = (1..=MAX_WIDE_PIXELS)
        .rev()
        .find(|&t| row_taps.is_multiple_of(t))
        .expect("1 divides every row");
    (0..filters)
        .step_by(MAX_WIDE_VECTORS * WIDE_LANES)
        .map(|first| {
            let vectors = ((filters - first) / WIDE_LANES).min(MAX_WIDE_VECTORS);
            (first, vectors, taps)
        })
        .collect()
}

/// Where one tile of the kernel gradient reads and writes, and the strides every tile shares.
struct GradientAt {
    /// The tile's first tap at output pixel (0, 0) of the block.
    x: *const f32,
    /// The tile's first filter at the block's pixel 0 of `dz`, and at its first tap in the
    /// partial.
    dz: *const f32,
    partial: *mut f32,
    channels: usize,
    plane_row: usize,
    /// The block's output rows and columns: the pixels summed over.
    rows: usize,
    columns: usize,
    filters: usize,
}

/// [`super::avx2::kernel_gradient`] with wide tiles: the same blocks, tiles and order of
/// additions, so the same sums.
///
/// # Safety
/// AVX-512F present; the slices as long as [`Implicit::kernel_gradient_band`] asserts; every
/// group whole.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn kernel_gradient(
    d: &Implicit,
    band: &[f32],
    rows: Range<usize>,
    dz: &[f32],
    partial: &mut [f32],
) {
    let (g, c, f) = (&d.g, d.g.channels, d.filters);
    let row_taps = g.cols.kernel * c;
    let block = d.gradient_block();
    for oy in rows.clone().step_by(block) {
        for &(first, vectors, taps) in &d.gradient_groups {
            for ky in 0..g.rows.kernel {
                for t0 in (0..row_taps).step_by(taps) {
                    let at = GradientAt {
                        x: band
                            .as_ptr()
                            .add((oy - rows.start + ky) * d.plane_columns * c + t0),
                        dz: dz.as_ptr().add(oy * g.cols.output * f + first),
                        partial: partial.as_mut_ptr().add((ky * row_taps + t0) * f + first),
                        channels: c,
                        plane_row: d.plane_columns * c,
                        rows: block.min(rows.end - oy),
                        columns: g.cols.output,
                        filters: f,
                    };
                    for_wide_shape!(taps, vectors, gradient_tile(&at));
                }
            }
        }
    }
}

/// `T` taps x `V` vectors of 16 filters of the kernel gradient, summed over the block's pixels
/// in registers, then added to the partial.
#[target_feature(enable = "avx512f")]
unsafe fn gradient_tile<const T: usize, const V: usize>(at: &GradientAt) {
    let mut acc = [[_mm512_setzero_ps(); V]; T];
    for oy in 0..at.rows {
        let x = at.x.add(oy * at.plane_row);
        let dz = at.dz.add(oy * at.columns * at.filters);
        for ox in 0..at.columns {
            let mut grad = [_mm512_setzero_ps(); V];
            for (v, lanes) in grad.iter_mut().enumerate() {
                *lanes = _mm512_loadu_ps(dz.add(ox * at.filters + v * WIDE_LANES));
            }
            for (t, tap) in acc.iter_mut().enumerate() {
                let input = _mm512_set1_ps(*x.add(ox * at.channels + t));
                for (lanes, &g) in tap.iter_mut().zip(&grad) {
                    *lanes = _mm512_fmadd_ps(input, g, *lanes);
                }
            }
        }
    }
    for (t, tap) in acc.iter().enumerate() {
        for (v, &lanes) in tap.iter().enumerate() {
            let out = at.partial.add(t * at.filters + v * WIDE_LANES);
            _mm512_storeu_ps(out, _mm512_add_ps(_mm512_loadu_ps(out), lanes));
        }
    }
}
