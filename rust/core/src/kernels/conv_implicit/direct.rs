//! The AVX-512 forward for kernels 3 or 5 wide, read straight from the image: no padded copy,
//! and each input broadcast once for all the kernel columns that cover it.
//!
//! A tile of `P` pixels along a row reads, per kernel row and channel, the `P + KW − 1` inputs
//! under it; input `j` meets kernel column `kx` in pixel `j − kx`. So with the channel's `KW`
//! kernel vectors in registers, one broadcast feeds up to `KW` FMAs, where the band tiles
//! (`avx512.rs`) broadcast once per FMA and were bound by those loads: W4's 3x3 forward on one
//! thread, 166-174 → 214-232 GFLOP/s. Columns outside the image (the padding, and the pixels
//! past the row's end in the row's last tile) are left out by a mask: products of the zeros
//! the band tiles read there, which add nothing. Rows outside it are left out of the kernel
//! rows summed. Each pixel adds its taps channel by channel, kernel columns within, as every
//! forward tile does, so the sums are the band tiles'.

use std::arch::x86_64::*;
use std::ops::Range;

use super::avx512::WIDE_LANES;
use super::{prefetch_for_write, Implicit, Tile};

/// Pixels per tile: with 2 vectors and a 3-wide kernel, 24 accumulators, 6 kernel vectors and
/// a broadcast fill 31 of the 32 registers.
const MAX_PIXELS: usize = 16;

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
                        if ($j >= KW - 1 && $j < P) || columns & 1 << $j != 0 {
                            let input = _mm512_set1_ps(*input_at);
                            for (kx, vectors) in kernel.iter().enumerate() {
                                if $j >= kx && $j - kx < P {
                                    let pixel = &mut acc[$j - kx];
                                    for (lanes, &k) in pixel.iter_mut().zip(vectors) {
                                        *lanes = _mm512_fmadd_ps(input, k, *lanes);
                                    }
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
