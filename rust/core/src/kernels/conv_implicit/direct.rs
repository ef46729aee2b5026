//! The AVX-512 forward and kernel gradient for 3-wide kernels of 16 filters, read straight from
//! the image: no padded copy, and each input broadcast once for all the kernel columns that
//! cover it.
//!
//! A tile of `P` pixels along a row reads, per kernel row and channel, the `P + 2` inputs under
//! it; input `j` meets kernel column `kx` in pixel `j − kx`. So with the channel's 3 kernel
//! vectors in registers, one broadcast feeds up to 3 FMAs, where the band tiles (`avx512.rs`)
//! broadcast once per FMA (with one vector of filters) and are bound by those loads. Inputs in
//! the padding columns read a zero, as the band tiles read the padding's; rows in the padding
//! are left out of the kernel rows summed. Each pixel adds its taps channel by channel, kernel
//! columns within, as the band tiles do for these kernels (`channel_major`), so the sums are
//! theirs.
//!
//! The kernel gradient turns the same reuse around: a tile holds the sums of `T` channels x 3
//! kernel columns of one kernel row, and input `j` meets the output gradient of pixel `j − kx`
//! in column `kx`; so one broadcast feeds 3 FMAs there too (the band tiles' fed one). Each tap
//! still sums its pixels in order, block by block as the band tiles do, so the sums are theirs.

use std::arch::x86_64::*;
use std::ops::Range;

use super::avx512::WIDE_LANES;
use super::{prefetch_for_write, Implicit, Tile};

/// The kernels' width.
const KW: usize = 3;

/// Pixels per forward tile: 16 accumulators hide the FMAs' latency with room to spare.
const MAX_PIXELS: usize = 16;

/// Channels per kernel-gradient tile: 24 accumulators, 3 output gradient vectors and a
/// broadcast.
const MAX_GRADIENT_CHANNELS: usize = 8;

/// What a direct tile reads for an input in the padding.
static PADDING: f32 = 0.0;

impl Tile {
    /// The direct tile along rows of `width` pixels: as few tiles as [`MAX_PIXELS`] allows, as
    /// even as can be. A row's last tile is its remainder, computed by the tile of its width:
    /// no tile reaches past the row, so only the padding's inputs need checking.
    pub(super) fn direct_for_row(width: usize) -> Self {
        let tiles = width.div_ceil(MAX_PIXELS);
        Tile {
            pixels: width.div_ceil(tiles),
            vectors: 1,
        }
    }
}

/// Calls `f::<N>(at)` for `n` (pixels or channels), one of the listed.
macro_rules! for_tile_size {
    ($n:expr, $f:ident($at:expr), $($listed:literal)*) => {
        match $n {
            $($listed => $f::<$listed>($at),)*
            _ => unreachable!("a direct tile beyond AVX-512's registers"),
        }
    };
}

/// Where one forward tile reads and writes, and the strides every tile shares.
struct At {
    /// Input 0 of the tile's first kernel row, channel 0: left of the image where the padding
    /// is, so read only through `columns`.
    x: *const f32,
    /// Which of the tile's `P + 2` inputs along the row lie in the image (only the first and
    /// last 2 can lie in the padding).
    columns: u32,
    /// The kernel rows whose image rows exist.
    kernel_rows: Range<usize>,
    /// The packed kernel's tap 0, and its bias row.
    w: *const f32,
    bias: *const f32,
    /// The first pixel in `z`; stored through relu where `relu`.
    z: *mut f32,
    relu: bool,
    channels: usize,
    image_row: usize,
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
    let tile = d.groups[0].1;
    let image_row = cols.input * c;
    for oy in 0..rows.output {
        // Kernel row `ky` reads image row `oy + ky − pad`.
        let first_row = rows.pad_before.saturating_sub(oy);
        let end_row = (rows.input + rows.pad_before - oy).min(rows.kernel);
        for ox in (0..cols.output).step_by(tile.pixels) {
            let pixels = tile.pixels.min(cols.output - ox);
            // Input `j` of the tile lies in image column `ox + j − pad`.
            let columns = (0..pixels + KW - 1)
                .filter(|&j| (cols.pad_before..cols.pad_before + cols.input).contains(&(ox + j)))
                .fold(0u32, |mask, j| mask | 1 << j);
            let at = At {
                x: image.as_ptr().wrapping_offset(
                    (oy as isize - rows.pad_before as isize) * image_row as isize
                        + (ox as isize - cols.pad_before as isize) * c as isize,
                ),
                columns,
                kernel_rows: first_row..end_row,
                w: packed.as_ptr(),
                bias: packed.as_ptr().add(d.taps() * WIDE_LANES),
                z: z.as_mut_ptr().add((oy * cols.output + ox) * WIDE_LANES),
                relu,
                channels: c,
                image_row,
            };
            for_tile_size!(pixels, tile_fma(&at), 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16);
        }
    }
}

/// `P` pixels x 16 filters: the bias, plus every tap's input times its kernel vector, then
/// stored (through relu where asked).
#[target_feature(enable = "avx512f")]
unsafe fn tile_fma<const P: usize>(at: &At) {
    prefetch_for_write::<P, 1>(at.z, WIDE_LANES, WIDE_LANES);
    let mut acc = [_mm512_loadu_ps(at.bias); P];
    for ky in at.kernel_rows.clone() {
        let x = at.x.wrapping_add(ky * at.image_row);
        let w = at.w.add(ky * KW * at.channels * WIDE_LANES);
        for ci in 0..at.channels {
            let kernel: [__m512; KW] = std::array::from_fn(|kx| {
                _mm512_loadu_ps(w.add((kx * at.channels + ci) * WIDE_LANES))
            });
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
                        for (kx, &k) in kernel.iter().enumerate() {
                            if $j >= kx && $j - kx < P {
                                acc[$j - kx] = _mm512_fmadd_ps(input, k, acc[$j - kx]);
                            }
                        }
                        input_at = input_at.wrapping_add(at.channels);
                    }
                )*};
            }
            inputs!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17);
        }
    }
    let zero = _mm512_setzero_ps();
    for (p, &lanes) in acc.iter().enumerate() {
        let lanes = if at.relu {
            _mm512_max_ps(lanes, zero)
        } else {
            lanes
        };
        _mm512_storeu_ps(at.z.add(p * WIDE_LANES), lanes);
    }
}

/// Where one kernel-gradient tile reads and writes, and what every tile shares.
struct GradientAt {
    /// The tile's first channel in image row 0.
    x: *const f32,
    dz: *const f32,
    /// The tile's first tap (kernel column 0, its first channel) in the partial.
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
}

/// Adds one image's kernel gradient, `(taps, filters)` like the kernel, to `partial`: each
/// pixel's inputs, read from `image` itself, times its row of `dz`.
///
/// # Safety
/// AVX-512F present; `d.direct`; the slices as long as [`Implicit::kernel_gradient_image`]
/// asserts.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn kernel_gradient(d: &Implicit, image: &[f32], dz: &[f32], partial: &mut [f32]) {
    let (g, c) = (&d.g, d.g.channels);
    let (rows, cols) = (&g.rows, &g.cols);
    let pad = cols.pad_before;
    // Image column `j` meets output pixel `j + pad − kx`.
    let first_inner = (KW - 1).saturating_sub(pad).min(cols.input);
    let inner = first_inner..(cols.output.saturating_sub(pad)).clamp(first_inner, cols.input);
    let channel_tile = c.div_ceil(c.div_ceil(MAX_GRADIENT_CHANNELS));
    let block = d.gradient_block();
    for block_start in (0..rows.output).step_by(block) {
        let block_rows = block_start..(block_start + block).min(rows.output);
        for ky in 0..rows.kernel {
            // Output row `oy` reads image row `oy + ky − pad` here: the block's rows whose
            // image row exists.
            let row_offset = ky as isize - rows.pad_before as isize;
            let first_row = rows.pad_before.saturating_sub(ky).max(block_rows.start);
            let end_row = (rows.input + rows.pad_before)
                .saturating_sub(ky)
                .min(block_rows.end)
                .max(first_row);
            for c0 in (0..c).step_by(channel_tile) {
                let at = GradientAt {
                    x: image.as_ptr().add(c0),
                    dz: dz.as_ptr(),
                    partial: partial.as_mut_ptr().add((ky * KW * c + c0) * WIDE_LANES),
                    rows: first_row..end_row,
                    row_offset,
                    inner: inner.clone(),
                    image_columns: cols.input,
                    output_columns: cols.output,
                    pad,
                    channels: c,
                };
                let channels = channel_tile.min(c - c0);
                for_tile_size!(channels, gradient_tile(&at), 1 2 3 4 5 6 7 8);
            }
        }
    }
}

/// 3 kernel columns x `T` channels x 16 filters of one kernel row's gradient, summed over the
/// block's pixels in registers, then added to the partial.
#[target_feature(enable = "avx512f")]
unsafe fn gradient_tile<const T: usize>(at: &GradientAt) {
    let mut acc = [[_mm512_setzero_ps(); KW]; T];
    let image_row = at.image_columns * at.channels;
    for oy in at.rows.clone() {
        let iy = (oy as isize + at.row_offset) as usize;
        let x = at.x.add(iy * image_row);
        let dz = at.dz.add(oy * at.output_columns * WIDE_LANES);
        // In order, so that each tap sums its pixels in order; the first and last columns meet
        // fewer pixels than the kernel's width.
        for j in 0..at.inner.start {
            input_column::<T, true>(x.add(j * at.channels), dz, j, at, &mut acc);
        }
        for j in at.inner.clone() {
            input_column::<T, false>(x.add(j * at.channels), dz, j, at, &mut acc);
        }
        for j in at.inner.end..at.image_columns {
            input_column::<T, true>(x.add(j * at.channels), dz, j, at, &mut acc);
        }
    }
    for (t, columns) in acc.iter().enumerate() {
        for (kx, &lanes) in columns.iter().enumerate() {
            let out = at.partial.add((kx * at.channels + t) * WIDE_LANES);
            _mm512_storeu_ps(out, _mm512_add_ps(_mm512_loadu_ps(out), lanes));
        }
    }
}

/// Image column `j`'s `T` inputs at `x` times the output gradients of the pixels it meets in
/// each kernel column, added to the tile; with `CHECK`, the kernel columns that meet no pixel
/// multiply a zero (masked loads, which never fault; branches around their FMAs cost register
/// copies, as in the forward).
#[inline(always)]
unsafe fn input_column<const T: usize, const CHECK: bool>(
    x: *const f32,
    dz: *const f32,
    j: usize,
    at: &GradientAt,
    acc: &mut [[__m512; KW]; T],
) {
    let grads: [__m512; KW] = std::array::from_fn(|kx| {
        let pixel = (j + at.pad) as isize - kx as isize;
        let at_pixel = dz.wrapping_offset(pixel * WIDE_LANES as isize);
        match CHECK {
            false => _mm512_loadu_ps(at_pixel),
            true => {
                let meets = (0..at.output_columns as isize).contains(&pixel);
                _mm512_maskz_loadu_ps(if meets { !0 } else { 0 }, at_pixel)
            }
        }
    });
    for (t, columns) in acc.iter_mut().enumerate() {
        let input = _mm512_set1_ps(*x.add(t));
        for (sum, &g) in columns.iter_mut().zip(&grads) {
            *sum = _mm512_fmadd_ps(input, g, *sum);
        }
    }
}
