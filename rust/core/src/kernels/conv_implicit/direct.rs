//! The AVX-512 forward and kernel gradient for kernels 3 or 5 wide, read straight from the
//! image: no padded copy, and each input broadcast once for all the kernel columns that cover
//! it.
//!
//! A tile of `P` pixels along a row reads, per kernel row and channel, the `P + KW − 1` inputs
//! under it; input `j` meets kernel column `kx` in pixel `j − kx`. So with the channel's `KW`
//! kernel vectors in registers, one broadcast feeds up to `KW` FMAs, where the band tiles
//! (`avx512.rs`) broadcast once per FMA and were bound by those loads (W4's 3x3 layer, one
//! image on one thread: 127-130 GFLOP/s in the band tile, 173-183 here). Inputs in the padding
//! columns read a zero, as the band tiles read the padding's; rows in the padding are left out
//! of the kernel rows summed. Each pixel adds its taps channel by channel, kernel columns
//! within, as every forward tile does, so the sums are the band tiles'.
//!
//! The kernel gradient turns the same reuse around: a tile holds the sums of `T` channels x
//! `KW` kernel columns of one kernel row, and input `j` meets the output gradient of pixel
//! `j − kx` in column `kx`; so one broadcast feeds `KW` FMAs there too (the band tiles' fed
//! one per broadcast: 145-150 → 169-179 GFLOP/s). Each tap still sums its pixels in order,
//! block by block as the band tiles do, so the sums are theirs.

use std::arch::x86_64::*;
use std::ops::Range;

use super::avx512::WIDE_LANES;
use super::{prefetch_for_write, Implicit, Tile};

/// Pixels per tile: with 2 vectors and a 3-wide kernel, 24 accumulators, 6 kernel vectors and
/// a broadcast fill 31 of the 32 registers.
const MAX_PIXELS: usize = 16;

/// What a direct tile reads for an input in the padding.
static PADDING: f32 = 0.0;

/// Whether the direct tiles compute a kernel `kernel_columns` wide.
pub(super) fn fits(kernel_columns: usize) -> bool {
    matches!(kernel_columns, 3 | 5)
}

impl Tile {
    /// The direct tile for `vectors` vectors of 16 filters along rows of `width` pixels: as
    /// few tiles as the registers allow, as even as can be. A row's last tile is its
    /// remainder, computed by the tile of its width: no tile reaches past the row, so only the
    /// padding's inputs need checking.
    pub(super) fn direct_for_row(width: usize, vectors: usize, kernel_columns: usize) -> Self {
        let most = ((32 - 1 - kernel_columns * vectors) / vectors).min(MAX_PIXELS);
        let tiles = width.div_ceil(most);
        Tile {
            pixels: width.div_ceil(tiles),
            vectors,
        }
    }
}

/// Calls `f::<KW, V, P>(at)` for a direct tile of `p` pixels by `v` vectors, `kw` wide.
macro_rules! for_direct_shape {
    ($kw:expr, $p:expr, $v:expr, $f:ident($at:expr)) => {
        match ($kw, $v) {
            (3, 1) => for_direct_shape!(@pixels 3, 1, $p, $f($at), 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16),
            (3, 2) => for_direct_shape!(@pixels 3, 2, $p, $f($at), 1 2 3 4 5 6 7 8 9 10 11 12),
            (5, 1) => for_direct_shape!(@pixels 5, 1, $p, $f($at), 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16),
            (5, 2) => for_direct_shape!(@pixels 5, 2, $p, $f($at), 1 2 3 4 5 6 7 8 9 10),
            _ => unreachable!("a direct tile beyond AVX-512's registers"),
        }
    };
    (@pixels $kw:literal, $v:literal, $p:expr, $f:ident($at:expr), $($n:literal)*) => {
        match $p {
            $($n => $f::<$kw, $v, $n>($at),)*
            _ => unreachable!("a direct tile beyond AVX-512's registers"),
        }
    };
}

/// Where one tile reads and writes, and the strides every tile shares.
struct At {
    /// Input 0 of the tile's first kernel row, channel 0: left of the image where the padding
    /// is, so read only through `columns`.
    x: *const f32,
    /// Which of the tile's `P + KW − 1` inputs along the row lie in the image (only the first
    /// and last `KW − 1` can lie in the padding).
    columns: u32,
    /// The kernel rows whose image rows exist.
    kernel_rows: Range<usize>,
    /// The tile's first filter in the packed kernel's tap 0, and in its bias row.
    w: *const f32,
    bias: *const f32,
    /// The first pixel's first filter in `z`; stored through relu where `relu`.
    z: *mut f32,
    relu: bool,
    channels: usize,
    image_row: usize,
    packed_filters: usize,
    filters: usize,
}

/// One image's products `z` (NHWC) from the image itself and the packed kernel; with `relu`,
/// relu of them.
///
/// # Safety
/// AVX-512F present; `d.direct`; `image`, `packed` and `z` as long as
/// [`Implicit::forward_image`] asserts.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn forward_image(
    d: &Implicit,
    image: &[f32],
    packed: &[f32],
    z: &mut [f32],
    relu: bool,
) {
    let (g, c) = (&d.g, d.g.channels);
    let (rows, cols) = (&g.rows, &g.cols);
    let bias = packed.as_ptr().add(d.taps() * d.padded_filters);
    let image_row = cols.input * c;
    for oy in 0..rows.output {
        // Kernel row `ky` reads image row `oy + ky − pad`.
        let first_row = rows.pad_before.saturating_sub(oy);
        let end_row = (rows.input + rows.pad_before - oy).min(rows.kernel);
        for &(first, tile) in &d.groups {
            for ox in (0..cols.output).step_by(tile.pixels) {
                let pixels = tile.pixels.min(cols.output - ox);
                // Input `j` of the tile lies in image column `ox + j − pad`.
                let columns = (0..pixels + cols.kernel - 1)
                    .filter(|&j| {
                        (cols.pad_before..cols.pad_before + cols.input).contains(&(ox + j))
                    })
                    .fold(0u32, |mask, j| mask | 1 << j);
                let x = image.as_ptr().wrapping_offset(
                    (oy as isize - rows.pad_before as isize) * image_row as isize
                        + (ox as isize - cols.pad_before as isize) * c as isize,
                );
                let at = At {
                    x,
                    columns,
                    kernel_rows: first_row..end_row,
                    w: packed.as_ptr().add(first),
                    bias: bias.add(first),
                    z: z.as_mut_ptr()
                        .add((oy * cols.output + ox) * d.filters + first),
                    relu,
                    channels: c,
                    image_row,
                    packed_filters: d.padded_filters,
                    filters: d.filters,
                };
                for_direct_shape!(cols.kernel, pixels, tile.vectors, tile_fma(&at));
            }
        }
    }
}

/// `P` pixels x `V` vectors of 16 filters, `KW` kernel columns: the bias, plus every tap's
/// input times its kernel vectors, then stored (through relu where asked).
#[target_feature(enable = "avx512f")]
unsafe fn tile_fma<const KW: usize, const V: usize, const P: usize>(at: &At) {
    prefetch_for_write::<P, V>(at.z, at.filters, WIDE_LANES);
    let mut acc = [[_mm512_setzero_ps(); V]; P];
    for pixel in acc.iter_mut() {
        for (v, lanes) in pixel.iter_mut().enumerate() {
            *lanes = _mm512_loadu_ps(at.bias.add(v * WIDE_LANES));
        }
    }
    for ky in at.kernel_rows.clone() {
        let x = at.x.wrapping_add(ky * at.image_row);
        let w = at.w.add(ky * KW * at.channels * at.packed_filters);
        for ci in 0..at.channels {
            let mut kernel = [[_mm512_setzero_ps(); V]; KW];
            for (kx, vectors) in kernel.iter_mut().enumerate() {
                let tap = w.add((kx * at.channels + ci) * at.packed_filters);
                for (v, lanes) in vectors.iter_mut().enumerate() {
                    *lanes = _mm512_loadu_ps(tap.add(v * WIDE_LANES));
                }
            }
            // Read anew for each channel: hoisted out of the loop, the mask's bits took a
            // register each and spilled the pointers.
            let columns = std::ptr::read_volatile(&at.columns);
            let mut input_at = x.wrapping_add(ci);
            // Unrolled by hand: LLVM kept a loop over the inputs, with the accumulators on the
            // stack (61 GFLOP/s).
            macro_rules! inputs {
                ($($j:literal)*) => {$(
                    if $j < P + KW - 1 {
                        // Inputs in the padding read a zero, as the band tiles do: a branch
                        // around their FMAs cost register copies and spills.
                        let inside = ($j >= KW - 1 && $j < P) || columns & 1 << $j != 0;
                        let source = if inside { input_at } else { &PADDING };
                        let input = _mm512_set1_ps(*source);
                        for (kx, vectors) in kernel.iter().enumerate() {
                            if $j >= kx && $j - kx < P {
                                let pixel = &mut acc[$j - kx];
                                for (lanes, &k) in pixel.iter_mut().zip(vectors) {
                                    *lanes = _mm512_fmadd_ps(input, k, *lanes);
                                }
                            }
                        }
                        input_at = input_at.wrapping_add(at.channels);
                    }
                )*};
            }
            inputs!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19);
        }
    }
    let zero = _mm512_setzero_ps();
    for (p, pixel) in acc.iter().enumerate() {
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

/// Channels per kernel-gradient tile, with `KW · V` output gradient vectors and a broadcast
/// beside the accumulators.
fn most_gradient_channels(kernel_columns: usize, vectors: usize) -> usize {
    (32 - 1 - kernel_columns * vectors) / (kernel_columns * vectors)
}

/// Calls `f::<KW, V, T>(at)` for a kernel-gradient tile of `t` channels by `v` vectors, `kw`
/// wide.
macro_rules! for_gradient_shape {
    ($kw:expr, $t:expr, $v:expr, $f:ident($at:expr)) => {
        match ($kw, $v) {
            (3, 1) => for_direct_shape!(@pixels 3, 1, $t, $f($at), 1 2 3 4 5 6 7 8),
            (3, 2) => for_direct_shape!(@pixels 3, 2, $t, $f($at), 1 2 3 4),
            (5, 1) => for_direct_shape!(@pixels 5, 1, $t, $f($at), 1 2 3 4 5),
            (5, 2) => for_direct_shape!(@pixels 5, 2, $t, $f($at), 1 2),
            _ => unreachable!("a kernel-gradient tile beyond AVX-512's registers"),
        }
    };
}

/// Where one kernel-gradient tile reads and writes, and what every tile shares.
struct GradientAt {
    /// The tile's first channel in image row 0.
    x: *const f32,
    /// The tile's first filter at pixel 0 of `dz`, and at its first tap (kernel column 0) in
    /// the partial.
    dz: *const f32,
    partial: *mut f32,
    /// The block's output rows whose image row (`oy + row_offset`) exists.
    rows: Range<usize>,
    row_offset: isize,
    /// Image columns whose every kernel column meets an output pixel (the rest check each).
    inner: Range<usize>,
    image_columns: usize,
    output_columns: usize,
    /// Image columns left of output pixel 0's kernel column 0.
    pad: usize,
    channels: usize,
    filters: usize,
}

/// Adds one image's kernel gradient, `(taps, filters)` like the kernel, to `partial`: each
/// pixel's inputs, read from `image` itself, times its row of `dz`.
///
/// # Safety
/// AVX-512F present; `d.direct`; the slices as long as [`Implicit::kernel_gradient_image`]
/// asserts.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn kernel_gradient(d: &Implicit, image: &[f32], dz: &[f32], partial: &mut [f32]) {
    let (g, c, f) = (&d.g, d.g.channels, d.filters);
    let (rows, cols) = (&g.rows, &g.cols);
    let row_taps = cols.kernel * c;
    let pad = cols.pad_before;
    // Image column `j` meets output pixel `j + pad − kx`.
    let first_inner = (cols.kernel - 1).saturating_sub(pad).min(cols.input);
    let inner = first_inner..(cols.output.saturating_sub(pad)).clamp(first_inner, cols.input);
    let block = d.gradient_block();
    for block_start in (0..rows.output).step_by(block) {
        let block_rows = block_start..(block_start + block).min(rows.output);
        for &(first, tile) in &d.groups {
            let most = most_gradient_channels(cols.kernel, tile.vectors);
            let channel_tile = c.div_ceil(c.div_ceil(most));
            for ky in 0..rows.kernel {
                // Output row `oy` reads image row `oy + ky − pad` here.
                let row_offset = ky as isize - rows.pad_before as isize;
                let valid =
                    |oy: &usize| (0..rows.input as isize).contains(&(*oy as isize + row_offset));
                let first_row = block_rows.clone().find(valid).unwrap_or(block_rows.end);
                let end_row = block_rows
                    .clone()
                    .rev()
                    .find(valid)
                    .map_or(first_row, |oy| oy + 1);
                for c0 in (0..c).step_by(channel_tile) {
                    let at = GradientAt {
                        x: image.as_ptr().add(c0),
                        dz: dz.as_ptr().add(first),
                        partial: partial.as_mut_ptr().add((ky * row_taps + c0) * f + first),
                        rows: first_row..end_row,
                        row_offset,
                        inner: inner.clone(),
                        image_columns: cols.input,
                        output_columns: cols.output,
                        pad,
                        channels: c,
                        filters: f,
                    };
                    let channels = channel_tile.min(c - c0);
                    for_gradient_shape!(cols.kernel, channels, tile.vectors, gradient_tile(&at));
                }
            }
        }
    }
}

/// `KW` kernel columns x `T` channels x `V` vectors of 16 filters of one kernel row's
/// gradient, summed over the block's pixels in registers, then added to the partial.
#[target_feature(enable = "avx512f")]
unsafe fn gradient_tile<const KW: usize, const V: usize, const T: usize>(at: &GradientAt) {
    let mut acc = [[[_mm512_setzero_ps(); V]; KW]; T];
    let image_row = at.image_columns * at.channels;
    for oy in at.rows.clone() {
        let iy = (oy as isize + at.row_offset) as usize;
        let x = at.x.add(iy * image_row);
        let dz = at.dz.add(oy * at.output_columns * at.filters);
        // In order, so that each tap sums its pixels in order; the first and last columns meet
        // fewer pixels than the kernel's width.
        for j in 0..at.inner.start {
            input_column::<KW, V, T, true>(x.add(j * at.channels), dz, j, at, &mut acc);
        }
        for j in at.inner.clone() {
            input_column::<KW, V, T, false>(x.add(j * at.channels), dz, j, at, &mut acc);
        }
        for j in at.inner.end..at.image_columns {
            input_column::<KW, V, T, true>(x.add(j * at.channels), dz, j, at, &mut acc);
        }
    }
    for (t, columns) in acc.iter().enumerate() {
        for (kx, tap) in columns.iter().enumerate() {
            let out = at.partial.add((kx * at.channels + t) * at.filters);
            for (v, &lanes) in tap.iter().enumerate() {
                let out = out.add(v * WIDE_LANES);
                _mm512_storeu_ps(out, _mm512_add_ps(_mm512_loadu_ps(out), lanes));
            }
        }
    }
}

/// Image column `j`'s `T` inputs at `x` times the output gradients of the pixels it meets in
/// each kernel column, added to the tile; with `CHECK`, only the pixels that exist.
#[inline(always)]
unsafe fn input_column<const KW: usize, const V: usize, const T: usize, const CHECK: bool>(
    x: *const f32,
    dz: *const f32,
    j: usize,
    at: &GradientAt,
    acc: &mut [[[__m512; V]; KW]; T],
) {
    let meets = |kx: usize| !CHECK || (kx <= j + at.pad && j + at.pad - kx < at.output_columns);
    let mut grads = [[_mm512_setzero_ps(); V]; KW];
    for (kx, vectors) in grads.iter_mut().enumerate() {
        if meets(kx) {
            let pixel = dz.add((j + at.pad - kx) * at.filters);
            for (v, lanes) in vectors.iter_mut().enumerate() {
                *lanes = _mm512_loadu_ps(pixel.add(v * WIDE_LANES));
            }
        }
    }
    for (t, columns) in acc.iter_mut().enumerate() {
        let input = _mm512_set1_ps(*x.add(t));
        for (kx, (sums, vectors)) in columns.iter_mut().zip(&grads).enumerate() {
            if meets(kx) {
                for (lanes, &g) in sums.iter_mut().zip(vectors) {
                    *lanes = _mm512_fmadd_ps(input, g, *lanes);
                }
            }
        }
    }
}
