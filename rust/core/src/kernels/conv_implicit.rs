//! Convolution as an implicit GEMM, for stride-1, undilated convolutions (both of LeNet's, 3x3
//! "same" layers): the product of im2col's rows and the kernel,
//! computed without writing the rows. For one kernel row `ky`, a pixel's receptive field is one
//! contiguous run of `kw · channels` values of the (padded) image, and consecutive pixels' runs
//! start `channels` values apart; so a register tile of pixels x filters reads its inputs
//! straight from the image, broadcast one value at a time, and the kernel's filters sit in the
//! vector lanes. GEMM libraries pack both operands first; here nothing is copied but the
//! padded image, and the tile's accumulators stay in registers over all `kh · kw · channels`
//! taps.
//!
//! The kernel gradient is the same product transposed: tiles of taps x filters summed over the
//! pixels. Filters that do not fill the last vector (LeNet's 6) are read and written through
//! lane masks. The tiles are written with AVX2+FMA intrinsics (16 registers: up to 12
//! accumulators, the operand vectors of one step, one broadcast); without AVX2 the layer keeps
//! im2col + GEMM. A kernel with lanes along x for single-channel images (LeNet's first layer)
//! preceded this one; this one trains that layer faster (forward 0.44-0.72 ms, kernel gradient
//! 0.64-0.91 against 0.47-0.72 and 1.48-1.84 at batch 128: its gradient needed the output
//! gradient transposed first), so it was removed. On AVX-512, 3-wide kernels of 16 filters run
//! the direct tiles of `conv_implicit/direct.rs`, which read the image without padding it.

// Off x86-64, `new` returns None: the plans and tiles below are never built.
#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code, unused_variables))]

use std::ops::Range;

use super::conv::{Axis, Geometry};
use super::{copy, has_avx2_fma, LANES};

#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "x86_64")]
mod direct;

/// AVX2's vector registers: a tile's accumulators, its `vectors` kernel (or gradient) vectors
/// and one broadcast input must fit, or LLVM spills accumulators to the stack (measured: W3's
/// kernel gradient ran at 40 GFLOP/s with 3 x 4 accumulators, one of them spilled).
const REGISTERS: usize = 16;
/// At most this many accumulators: enough to hide the FMA latency.
const ACCUMULATORS: usize = 12;

/// The most rows (pixels or taps) a tile of `vectors` filter vectors can have in registers.
fn most_rows(vectors: usize) -> usize {
    ACCUMULATORS.min(REGISTERS - vectors - 1) / vectors
}
/// Kernel vectors per filter group: 32 filters.
const MAX_VECTORS: usize = 4;

/// The output gradient's rows that every tile of the kernel gradient reads in turn are taken in
/// blocks of about this many bytes, which stay in L1 from one tile to the next (W3's rows are
/// 4 KiB: read whole by each of 48 tiles, they came from L2 at ~45 GFLOP/s).
const GRADIENT_BLOCK_BYTES: usize = 8 * 1024;

/// Output rows per block of the kernel gradient, for rows of `row_values` values.
fn gradient_block_rows(row_values: usize) -> usize {
    (GRADIENT_BLOCK_BYTES / (row_values * 4)).max(1)
}

/// Images are padded a band of rows at a time into a buffer of about this many bytes, which
/// stays in L1 while the band's tiles read it: padding whole images first wrote each one out
/// to memory and read it back (W4's 13 paddings per batch, 10 % of its training in `memmove`).
const BAND_BYTES: usize = 32 * 1024;

/// Asks for the cache lines of a tile's output, `P` pixels `stride` values apart, each `V`
/// vectors of `lanes` values, in a writable state. A tile stores only after all its FMAs, so
/// the lines arrive meanwhile; left to the stores, every new line of a large output stalled them on its read for ownership
/// (W3's forward on one thread over a batch: 89-95 → 98-103 GFLOP/s). One prefetch per vector,
/// so every line is asked for where vectors are narrower than lines; prefetches never fault,
/// so those past the buffer's end cost nothing.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn prefetch_for_write<const P: usize, const V: usize>(
    z: *mut f32,
    stride: usize,
    lanes: usize,
) {
    use std::arch::x86_64::{_mm_prefetch, _MM_HINT_ET0};
    for p in 0..P {
        for v in 0..V {
            _mm_prefetch::<_MM_HINT_ET0>(z.add(p * stride + v * lanes).cast());
        }
    }
}

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
        let pixels = (1..=most_rows(vectors))
            .rev()
            .min_by_key(|&p| cycles(p))
            .expect("at least one pixel");
        Tile { pixels, vectors }
    }
}

/// The kernel gradient's tile for `vectors` filter vectors: the most taps of one kernel row
/// that divide the row (so no tile runs past it) within the accumulators.
fn gradient_taps(row_taps: usize, vectors: usize) -> usize {
    (1..=most_rows(vectors))
        .rev()
        .find(|&t| row_taps.is_multiple_of(t))
        .expect("1 divides every row")
}

/// The kernel gradient's filter groups for kernel rows of `row_taps` taps: the group size that
/// loads least. A tile of `t` taps x `v` vectors loads `t + v` values per pixel for `t · v`
/// FMAs, so a group costs `row_taps · (1 + v/t)` loads per pixel for the same FMAs whatever
/// the split (W3: two groups of 2 vectors x 6 taps, not one of 4 x 2).
fn gradient_groups(row_taps: usize, vectors: usize) -> Vec<(usize, usize, usize)> {
    let split = |size: usize| {
        (0..vectors).step_by(size).map(move |v0| {
            let v = size.min(vectors - v0);
            (v0 * LANES, v, gradient_taps(row_taps, v))
        })
    };
    let loads =
        |size: usize| -> f64 { split(size).map(|(_, v, t)| 1.0 + v as f64 / t as f64).sum() };
    let size = (1..=vectors.min(MAX_VECTORS))
        .min_by(|&a, &b| loads(a).total_cmp(&loads(b)))
        .expect("at least one vector");
    split(size).collect()
}

/// The most filters a plan lists its groups for (one entry per 8 or 16 filters), so that
/// making a plan takes little memory and time whatever the layer's size; larger convolutions,
/// more than any network has, run im2col + GEMM, whose buffers a batch allocates fallibly.
const MAX_FILTERS: usize = 1 << 16;

/// A stride-1 convolution's padded layout and tiles.
#[derive(Clone, Debug)]
pub struct Implicit {
    g: Geometry,
    filters: usize,
    /// Filters rounded up to whole vectors.
    padded_filters: usize,
    /// One tile per filter group: `(first filter, tile)`.
    groups: Vec<(usize, Tile)>,
    /// The kernel gradient's: `(first filter, filter vectors, taps)`.
    gradient_groups: Vec<(usize, usize, usize)>,
    plane_rows: usize,
    plane_columns: usize,
    /// Whether the forward and the kernel gradient run AVX-512 tiles (vectors of 16 filters)
    /// rather than AVX2's.
    wide: bool,
    /// Whether the forward and the kernel gradient run the AVX-512 tiles that read the image
    /// itself (`conv_implicit/direct.rs`) rather than a padded band of it.
    direct: bool,
}

/// Whether a convolution's forward tiles add each kernel row's taps channel by channel,
/// kernel columns within, rather than in their order: the order of the AVX-512 direct tiles
/// (`conv_implicit/direct.rs`), so that every tile of such a convolution gives the same bits.
/// Those compute 3-wide kernels of 16 filters, where a band tile broadcasts one input per FMA
/// and is bound by those loads (W4's layer, one image on one thread: forward 164-168 GFLOP/s
/// against 185-186 direct, kernel gradient 152 against 187-189). With 32 filters a band tile
/// broadcasts once per 2 FMAs and the direct tiles did not pay (16x16x32 → 32: forward 209-214
/// against 207-208, kernel gradient 181-183 against 170); for kernels 5 wide neither (LeNet's
/// second layer: kernel gradient 143-156 against 72-79).
fn channel_major(kernel_columns: usize, filters: usize) -> bool {
    kernel_columns == 3 && filters == 16
}

/// Which tiles a convolution's forward runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tiles {
    /// AVX2's, over padded bands.
    Narrow,
    /// AVX-512's, over padded bands.
    Wide,
    /// AVX-512's, over the image itself.
    Direct,
}

/// Whether a forward of `filters` filters runs AVX-512 tiles: whole vectors of 16 on a CPU
/// with AVX-512F.
fn wide_forward(filters: usize) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        filters.is_multiple_of(avx512::WIDE_LANES) && avx512::available()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

impl Implicit {
    /// `None` where the kernel does not apply (strides, dilation, one channel) or the CPU lacks
    /// AVX2 and FMA.
    pub fn new(g: &Geometry, filters: usize) -> Option<Self> {
        let tiles = match wide_forward(filters) {
            #[cfg(target_arch = "x86_64")]
            true if channel_major(g.cols.kernel, filters) => Tiles::Direct,
            true => Tiles::Wide,
            false => Tiles::Narrow,
        };
        Self::with_tiles(g, filters, tiles)
    }

    /// [`Implicit::new`] with the forward's tiles chosen: AVX-512's only where
    /// [`wide_forward`] holds, the direct ones only where [`channel_major`] does too.
    fn with_tiles(g: &Geometry, filters: usize, tiles: Tiles) -> Option<Self> {
        let (rows, cols) = (&g.rows, &g.cols);
        let plain = [rows, cols]
            .iter()
            .all(|a| a.stride == 1 && a.dilation == 1);
        if !plain || !has_avx2_fma() || filters > MAX_FILTERS {
            return None;
        }
        let wide = tiles != Tiles::Narrow;
        let padded_filters = filters.next_multiple_of(LANES);
        #[cfg(target_arch = "x86_64")]
        let (lanes, max_vectors) = match wide {
            true => (avx512::WIDE_LANES, avx512::MAX_WIDE_VECTORS),
            false => (LANES, MAX_VECTORS),
        };
        #[cfg(not(target_arch = "x86_64"))]
        let (lanes, max_vectors) = (LANES, MAX_VECTORS);
        let mut groups = Vec::new();
        let mut first = 0;
        while first < padded_filters {
            let vectors = ((padded_filters - first) / lanes).min(max_vectors);
            let tile = match tiles {
                #[cfg(target_arch = "x86_64")]
                Tiles::Direct => Tile::direct_for_row(cols.output),
                #[cfg(target_arch = "x86_64")]
                Tiles::Wide => Tile::wide_for_row(cols.output, vectors),
                _ => Tile::for_row(cols.output, vectors),
            };
            groups.push((first, tile));
            first += vectors * lanes;
        }
        // Every band tile reads whole: the last one of a row may run past the output's width
        // (direct tiles read no band; the kernel gradient's reads end with the row).
        let widest = groups
            .iter()
            .map(|(_, t)| match tiles {
                Tiles::Direct => cols.output,
                _ => cols.output.next_multiple_of(t.pixels),
            })
            .max()?;
        Some(Implicit {
            g: *g,
            filters,
            padded_filters,
            groups,
            gradient_groups: match wide {
                #[cfg(target_arch = "x86_64")]
                true => avx512::gradient_groups(cols.kernel * g.channels, filters),
                _ => gradient_groups(cols.kernel * g.channels, padded_filters / LANES),
            },
            plane_rows: rows.output + rows.kernel - 1,
            plane_columns: widest + cols.kernel - 1,
            wide,
            direct: tiles == Tiles::Direct,
        })
    }

    /// The convolution that computes this one's input gradient: for stride 1, `∂x` is the output
    /// gradient, padded by `k − 1 − pad` on each axis, correlated with the kernel flipped in
    /// space and with channels and filters swapped. So the same tiles compute it, from the
    /// output gradient's padded image straight into `∂x`: no ∂cols, no col2im.
    pub fn input_gradient(&self) -> Option<Implicit> {
        let g = &self.g;
        let axis = |a: &Axis| Axis {
            input: a.output,
            kernel: a.kernel,
            stride: 1,
            dilation: 1,
            pad_before: a.kernel - 1 - a.pad_before,
            output: a.input,
        };
        let flipped = Geometry {
            rows: axis(&g.rows),
            cols: axis(&g.cols),
            channels: self.filters,
        };
        Implicit::new(&flipped, g.channels)
    }

    /// Packs `kernel` (`kh, kw, channels, filters`) for [`Self::input_gradient`]'s convolution:
    /// flipped in space, `(kh, kw, filters, channels)`, no bias. `scratch` holds the flipped
    /// kernel on the way.
    pub fn pack_flipped_kernel(&self, kernel: &[f32], scratch: &mut [f32], packed: &mut [f32]) {
        // Here `self` is the input gradient's convolution: its channels are the forward's
        // filters and its filters the forward's channels.
        let (kh, kw) = (self.g.rows.kernel, self.g.cols.kernel);
        let (f, c) = (self.g.channels, self.filters);
        for ky in 0..kh {
            for kx in 0..kw {
                let source = &kernel[((kh - 1 - ky) * kw + (kw - 1 - kx)) * c * f..][..c * f];
                let target = &mut scratch[(ky * kw + kx) * f * c..][..f * c];
                for (ci, row) in source.chunks(f).enumerate() {
                    for (fi, &w) in row.iter().enumerate() {
                        target[fi * c + ci] = w;
                    }
                }
            }
        }
        self.pack_kernel(&scratch[..kh * kw * f * c], None, packed);
    }

    /// Filters rounded up to whole vectors: what the tiles compute.
    pub fn padded_filters(&self) -> usize {
        self.padded_filters
    }

    /// Whether the padded plane would be a plain copy of the image ("valid" padding, and tiles
    /// that end with the rows): then the image itself is read as the plane, in place.
    pub fn plane_is_image(&self) -> bool {
        let (rows, cols) = (&self.g.rows, &self.g.cols);
        rows.pad_before == 0
            && cols.pad_before == 0
            && self.plane_rows == rows.input
            && self.plane_columns == cols.input
    }

    /// Values in one padded image.
    pub fn plane_len(&self) -> usize {
        self.plane_rows * self.plane_columns * self.g.channels
    }

    /// Output rows per band of the forward: as many as [`BAND_BYTES`] holds, at least one.
    fn forward_band_rows(&self) -> usize {
        let row_bytes = self.plane_columns * self.g.channels * 4;
        (BAND_BYTES / row_bytes)
            .saturating_sub(self.g.rows.kernel - 1)
            .max(1)
    }

    /// Output rows per block of the kernel gradient (see [`gradient_block_rows`]).
    fn gradient_block(&self) -> usize {
        gradient_block_rows(self.g.cols.output * self.filters)
    }

    /// Output rows per band of the kernel gradient: whole blocks, so that a band's sums are
    /// added as a whole padded image's are.
    fn gradient_band_rows(&self) -> usize {
        let block = self.gradient_block();
        (self.forward_band_rows() / block).max(1) * block
    }

    /// Values in the padded band of `rows` output rows.
    fn band_len_of(&self, rows: usize) -> usize {
        (rows + self.g.rows.kernel - 1).min(self.plane_rows) * self.plane_columns * self.g.channels
    }

    /// Values in the largest band that [`Self::forward_image`] and
    /// [`Self::kernel_gradient_image`] pad: the scratch they take.
    pub fn band_len(&self) -> usize {
        if self.direct {
            return 0;
        }
        let rows = self.forward_band_rows().max(self.gradient_band_rows());
        self.band_len_of(rows.min(self.g.rows.output))
    }

    /// The bands of output rows, `band` rows each (the last one shorter).
    fn bands(&self, band: usize) -> impl Iterator<Item = Range<usize>> {
        let rows = self.g.rows.output;
        (0..rows)
            .step_by(band)
            .map(move |first| first..(first + band).min(rows))
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

    /// Copies one NHWC image into the zero-padded `plane`, writing each value once (zeros only
    /// in the padding: a "valid" layer's plane is the image itself).
    pub fn pad_image(&self, image: &[f32], plane: &mut [f32]) {
        self.pad_band(image, 0..self.g.rows.output, plane);
    }

    /// The rows of the padded plane that output rows `rows` read, into `band`.
    fn pad_band(&self, image: &[f32], rows: Range<usize>, band: &mut [f32]) {
        let (axis, cols, c) = (&self.g.rows, &self.g.cols, self.g.channels);
        let (row_len, before) = (self.plane_columns * c, cols.pad_before * c);
        let band_rows = band[..self.band_len_of(rows.len())].chunks_mut(row_len);
        for (py, row) in (rows.start..).zip(band_rows) {
            match py
                .checked_sub(axis.pad_before)
                .filter(|&iy| iy < axis.input)
            {
                Some(iy) => {
                    let (left, rest) = row.split_at_mut(before);
                    let (middle, right) = rest.split_at_mut(cols.input * c);
                    left.fill(0.0);
                    copy(middle, &image[iy * cols.input * c..]);
                    right.fill(0.0);
                }
                None => row.fill(0.0),
            }
        }
    }

    /// [`Self::forward`] from the image itself, padded a band of rows at a time into `band`
    /// ([`Self::band_len`] values) where padding is needed.
    pub fn forward_image(
        &self,
        image: &[f32],
        packed: &[f32],
        z: &mut [f32],
        relu: bool,
        band: &mut [f32],
    ) {
        if self.direct {
            assert!(channel_major(self.g.cols.kernel, self.filters));
            assert!(image.len() >= self.g.input_size() && packed.len() >= self.packed_kernel_len());
            assert!(z.len() >= self.g.pixels() * self.filters);
            // SAFETY: `new` chose direct tiles only with AVX-512F and whole vectors of filters;
            // the asserts keep every read and write inside the slices.
            #[cfg(target_arch = "x86_64")]
            unsafe {
                direct::forward_image(self, image, packed, z, relu)
            };
            return;
        }
        if self.plane_is_image() {
            return self.forward(image, packed, z, relu);
        }
        for rows in self.bands(self.forward_band_rows()) {
            self.pad_band(image, rows.clone(), band);
            self.forward_band(band, rows, packed, z, relu);
        }
    }

    /// [`Self::kernel_gradient`] from the image itself, padded a band of rows at a time into
    /// `band` ([`Self::band_len`] values) where padding is needed: the same sums.
    pub fn kernel_gradient_image(
        &self,
        image: &[f32],
        dz: &[f32],
        partial: &mut [f32],
        band: &mut [f32],
    ) {
        if self.direct {
            assert!(channel_major(self.g.cols.kernel, self.filters));
            assert!(
                image.len() >= self.g.input_size() && dz.len() >= self.g.pixels() * self.filters
            );
            assert!(partial.len() >= self.taps() * self.filters);
            // SAFETY: as in `forward_image`.
            #[cfg(target_arch = "x86_64")]
            unsafe {
                direct::kernel_gradient(self, image, dz, partial)
            };
            return;
        }
        if self.plane_is_image() {
            return self.kernel_gradient(image, dz, partial);
        }
        for rows in self.bands(self.gradient_band_rows()) {
            self.pad_band(image, rows.clone(), band);
            self.kernel_gradient_band(band, rows, dz, partial);
        }
    }

    /// Adds one image's kernel gradient, `(taps, filters)` like the kernel, to `partial`: every
    /// pixel's receptive field (read from the padded `plane`) times its row of `dz` (the image's
    /// output gradient, NHWC).
    pub fn kernel_gradient(&self, plane: &[f32], dz: &[f32], partial: &mut [f32]) {
        self.kernel_gradient_band(plane, 0..self.g.rows.output, dz, partial);
    }

    /// [`Self::kernel_gradient`] over output rows `rows`, from `band`: the padded plane's rows
    /// that they read.
    fn kernel_gradient_band(
        &self,
        band: &[f32],
        rows: Range<usize>,
        dz: &[f32],
        partial: &mut [f32],
    ) {
        assert!(rows.end <= self.g.rows.output && band.len() >= self.band_len_of(rows.len()));
        assert!(dz.len() >= self.g.pixels() * self.filters);
        assert!(partial.len() >= self.taps() * self.filters);
        // SAFETY: as in `forward`; tiles of taps divide each kernel row, and masked loads and
        // stores keep to the filters that exist (wide groups hold whole vectors).
        #[cfg(target_arch = "x86_64")]
        unsafe {
            match self.wide {
                true => avx512::kernel_gradient(self, band, rows, dz, partial),
                false => avx2::kernel_gradient(self, band, rows, dz, partial),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("`new` returns None without AVX2")
    }

    /// One image's products `z` (`pixels x filters`, NHWC) from its padded plane and the
    /// packed kernel; with `relu`, relu of them (applied as they are stored: one pass over the
    /// output fewer).
    fn forward(&self, plane: &[f32], packed: &[f32], z: &mut [f32], relu: bool) {
        debug_assert!(!self.direct, "direct tiles read the image, not a plane");
        self.forward_band(plane, 0..self.g.rows.output, packed, z, relu);
    }

    /// [`Self::forward`] of output rows `rows`, from `band`: the padded plane's rows that they
    /// read.
    fn forward_band(
        &self,
        band: &[f32],
        rows: Range<usize>,
        packed: &[f32],
        z: &mut [f32],
        relu: bool,
    ) {
        let len = self.g.pixels() * self.filters;
        assert!(rows.end <= self.g.rows.output && band.len() >= self.band_len_of(rows.len()));
        assert!(packed.len() >= self.packed_kernel_len() && z.len() >= len);
        // SAFETY: `new` checked that the CPU has AVX2 and FMA (and AVX-512F where `wide`, with
        // whole vectors of filters); the asserts above and the padded layout keep every read
        // and write inside the slices (see `forward_rows`).
        #[cfg(target_arch = "x86_64")]
        unsafe {
            match self.wide {
                true => avx512::forward_rows(self, band, rows, packed, z, relu),
                false => avx2::forward_rows(self, band, rows, packed, z, relu),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("`new` returns None without AVX2")
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;
    use std::ops::Range;

    use super::{channel_major, prefetch_for_write, Implicit, Tile, LANES};
    use crate::kernels::for_shape;

    /// Where one tile reads and writes.
    struct TileAt {
        /// The first input of the first pixel's receptive field (kernel row 0).
        x: *const f32,
        /// The tile's first filter in the packed kernel's tap 0, and in its bias row.
        w: *const f32,
        bias: *const f32,
        /// The first pixel's first filter in `z`; stored through relu where `relu`.
        z: *mut f32,
        relu: bool,
        /// Pixels to store (the rest of the tile lies past the row's end).
        valid_pixels: usize,
        /// Filters to store per pixel from this group (the rest is padding).
        valid_filters: usize,
        /// The first pixels stored with whole vectors (the rest through lane masks). Where one
        /// group holds every filter, a pixel's lanes past the last filter land on the next
        /// pixels of the same image, which this thread stores afterwards.
        whole_stores: usize,
    }

    /// Strides shared by every tile of a convolution.
    struct Strides {
        channels: usize,
        /// Inputs between kernel rows, and taps in one kernel row.
        plane_row: usize,
        row_taps: usize,
        kernel_rows: usize,
        kernel_columns: usize,
        /// Values per tap in the packed kernel, and per pixel in `z`.
        packed_filters: usize,
        filters: usize,
    }

    /// Output rows `rows` from `band`, the padded plane's rows that they read.
    ///
    /// # Safety
    /// AVX2 and FMA present; `band`, `packed`, `z` as long as [`Implicit::forward_band`]
    /// asserts.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn forward_rows(
        d: &Implicit,
        band: &[f32],
        rows: Range<usize>,
        packed: &[f32],
        z: &mut [f32],
        relu: bool,
    ) {
        let (g, c) = (&d.g, d.g.channels);
        let s = Strides {
            channels: c,
            plane_row: d.plane_columns * c,
            row_taps: g.cols.kernel * c,
            kernel_rows: g.rows.kernel,
            kernel_columns: g.cols.kernel,
            packed_filters: d.padded_filters,
            filters: d.filters,
        };
        let bias = packed.as_ptr().add(d.taps() * d.padded_filters);
        // With one group, the pixels whose whole vectors end inside the image.
        let image_len = g.pixels() * d.filters;
        let spilling_pixels = match d.groups.as_slice() {
            [(_, tile)] => image_len
                .checked_sub(tile.vectors * LANES)
                .map_or(0, |room| room / d.filters + 1),
            _ => 0,
        };
        for oy in rows.clone() {
            for &(first, tile) in &d.groups {
                for ox in (0..g.cols.output).step_by(tile.pixels) {
                    let offset = (oy * g.cols.output + ox) * d.filters + first;
                    let valid_pixels = tile.pixels.min(g.cols.output - ox);
                    let valid_filters = (tile.vectors * LANES).min(d.filters - first);
                    let whole_stores = match valid_filters == tile.vectors * LANES {
                        true => valid_pixels,
                        false => spilling_pixels
                            .saturating_sub(oy * g.cols.output + ox)
                            .min(valid_pixels),
                    };
                    let at = TileAt {
                        // The last tile's pixels past the width read the plane's padding columns.
                        x: band
                            .as_ptr()
                            .add(((oy - rows.start) * d.plane_columns + ox) * c),
                        w: packed.as_ptr().add(first),
                        bias: bias.add(first),
                        z: z.as_mut_ptr().add(offset),
                        relu,
                        valid_pixels,
                        valid_filters,
                        whole_stores,
                    };
                    dispatch(tile, &s, &at);
                }
            }
        }
    }

    /// Calls the tile function compiled for `tile`'s shape.
    #[inline(always)]
    unsafe fn dispatch(tile: Tile, s: &Strides, at: &TileAt) {
        for_shape!(tile.pixels, tile.vectors, tile_fma(s, at))
    }

    /// Output rows `rows`' share, from `band`: the padded plane's rows that they read.
    ///
    /// # Safety
    /// AVX2 and FMA present; the slices as long as [`Implicit::kernel_gradient_band`] asserts.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn kernel_gradient(
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
            let s = GradientStrides {
                channels: c,
                plane_row: d.plane_columns * c,
                rows: block.min(rows.end - oy),
                columns: g.cols.output,
                filters: f,
            };
            for &(first, vectors, taps) in &d.gradient_groups {
                // The image's pixels whose whole vectors of this group end inside its `dz`.
                let whole_pixels = (g.pixels() * f)
                    .checked_sub(first + vectors * LANES)
                    .map_or(0, |room| room / f + 1);
                for ky in 0..g.rows.kernel {
                    for t0 in (0..row_taps).step_by(taps) {
                        let at = GradientAt {
                            x: band.as_ptr().add((oy - rows.start + ky) * s.plane_row + t0),
                            dz: dz.as_ptr().add(oy * g.cols.output * f + first),
                            partial: partial.as_mut_ptr().add((ky * row_taps + t0) * f + first),
                            valid_filters: (vectors * LANES).min(f - first),
                            whole_loads: whole_pixels.saturating_sub(oy * g.cols.output),
                        };
                        for_shape!(taps, vectors, gradient_tile(&s, &at));
                    }
                }
            }
        }
    }

    struct GradientStrides {
        channels: usize,
        plane_row: usize,
        /// The block's output rows and columns: the pixels summed over.
        rows: usize,
        columns: usize,
        filters: usize,
    }

    struct GradientAt {
        /// The tile's first tap at output pixel (0, 0).
        x: *const f32,
        /// The tile's first filter at pixel 0 of `dz`, and at its first tap in the partial.
        dz: *const f32,
        partial: *mut f32,
        /// Filters of this group that exist: the lanes past them are never written, and their
        /// sums are dropped.
        valid_filters: usize,
        /// The block's first pixels whose output gradient is read in whole vectors (the rest
        /// through lane masks): the lanes past the group's filters read the next pixels' values,
        /// which only the dropped sums see.
        whole_loads: usize,
    }

    /// Per vector of a group of `valid` filters: which lanes hold one (for masked loads and
    /// stores, which never touch the others).
    #[inline(always)]
    unsafe fn lane_masks<const V: usize>(valid: usize) -> [__m256i; V] {
        let mut masks = [_mm256_setzero_si256(); V];
        for (v, mask) in masks.iter_mut().enumerate() {
            let lanes: [i32; LANES] =
                std::array::from_fn(|l| if v * LANES + l < valid { -1 } else { 0 });
            *mask = _mm256_loadu_si256(lanes.as_ptr().cast());
        }
        masks
    }

    /// `T` taps x `V` filter vectors of the kernel gradient, summed over the image's pixels in
    /// registers, then added to the partial.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn gradient_tile<const T: usize, const V: usize>(s: &GradientStrides, at: &GradientAt) {
        let masks = lane_masks::<V>(at.valid_filters);
        // Masked loads run at half the rate of plain ones (W3's gradient: 45 % of its training
        // step with them): only the last pixels of a group with missing filters pay for them.
        let acc = if at.whole_loads >= s.rows * s.columns {
            sum_over_pixels::<T, V, false>(s, at, &masks)
        } else {
            sum_over_pixels::<T, V, true>(s, at, &masks)
        };
        // Masked stores are microcoded on AMD's cores (W3's 12 per tile of 768 FMAs cost more
        // than a third of its gradient time): only a group with missing filters uses them.
        let whole = at.valid_filters == V * LANES;
        for (t, tap) in acc.iter().enumerate() {
            for (v, &lanes) in tap.iter().enumerate() {
                let out = at.partial.add(t * s.filters + v * LANES);
                if whole {
                    _mm256_storeu_ps(out, _mm256_add_ps(_mm256_loadu_ps(out), lanes));
                } else {
                    let sum = _mm256_add_ps(_mm256_maskload_ps(out, masks[v]), lanes);
                    _mm256_maskstore_ps(out, masks[v], sum);
                }
            }
        }
    }

    /// The tile's accumulators: every pixel's inputs at the tile's taps times its output
    /// gradient, read through `masks` past the first `whole_loads` pixels when `MASKED`.
    #[inline(always)]
    unsafe fn sum_over_pixels<const T: usize, const V: usize, const MASKED: bool>(
        s: &GradientStrides,
        at: &GradientAt,
        masks: &[__m256i; V],
    ) -> [[__m256; V]; T] {
        let mut acc = [[_mm256_setzero_ps(); V]; T];
        for oy in 0..s.rows {
            let x = at.x.add(oy * s.plane_row);
            let dz = at.dz.add(oy * s.columns * s.filters);
            for ox in 0..s.columns {
                let masked = MASKED && oy * s.columns + ox >= at.whole_loads;
                let mut grad = [_mm256_setzero_ps(); V];
                for (v, lanes) in grad.iter_mut().enumerate() {
                    let at = dz.add(ox * s.filters + v * LANES);
                    *lanes = if masked {
                        _mm256_maskload_ps(at, masks[v])
                    } else {
                        _mm256_loadu_ps(at)
                    };
                }
                for (t, tap) in acc.iter_mut().enumerate() {
                    let input = _mm256_broadcast_ss(&*x.add(ox * s.channels + t));
                    for (lanes, &g) in tap.iter_mut().zip(&grad) {
                        *lanes = _mm256_fmadd_ps(input, g, *lanes);
                    }
                }
            }
        }
        acc
    }

    /// `P` pixels x `V` vectors of filters: the bias, plus every tap's input times its kernel
    /// vectors, then stored.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn tile_fma<const P: usize, const V: usize>(s: &Strides, at: &TileAt) {
        prefetch_for_write::<P, V>(at.z, s.filters, LANES);
        let mut acc = [[_mm256_setzero_ps(); V]; P];
        for pixel in acc.iter_mut() {
            for (v, lanes) in pixel.iter_mut().enumerate() {
                *lanes = _mm256_loadu_ps(at.bias.add(v * LANES));
            }
        }
        for ky in 0..s.kernel_rows {
            let x = at.x.add(ky * s.plane_row);
            let w = at.w.add(ky * s.row_taps * s.packed_filters);
            match channel_major(s.kernel_columns, s.filters) {
                true => {
                    for ci in 0..s.channels {
                        for kx in 0..s.kernel_columns {
                            add_tap(&mut acc, s, x, w, kx * s.channels + ci);
                        }
                    }
                }
                false => {
                    for t in 0..s.row_taps {
                        add_tap(&mut acc, s, x, w, t);
                    }
                }
            }
        }
        store(&acc, s, at);
    }

    /// Adds tap `t` of the kernel row whose first input is `x` and first tap's kernel vectors
    /// `w` to the tile.
    #[inline(always)]
    unsafe fn add_tap<const P: usize, const V: usize>(
        acc: &mut [[__m256; V]; P],
        s: &Strides,
        x: *const f32,
        w: *const f32,
        t: usize,
    ) {
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

    #[inline(always)]
    unsafe fn store<const P: usize, const V: usize>(
        acc: &[[__m256; V]; P],
        s: &Strides,
        at: &TileAt,
    ) {
        // Filters past the last that exist are masked out where they would land on another
        // pixel's finished values (a copy per pixel instead, with a `memcpy` call each, was 7 %
        // of a LeNet step; masked stores everywhere, which AMD's cores microcode, made LeNet's
        // first layer store-bound).
        let masks = lane_masks::<V>(at.valid_filters);
        let zero = _mm256_setzero_ps();
        for (p, pixel) in acc.iter().enumerate().take(at.valid_pixels) {
            let whole = p < at.whole_stores;
            let put = |out: *mut f32, v: usize, lanes: __m256| {
                if whole {
                    _mm256_storeu_ps(out.add(v * LANES), lanes);
                } else {
                    _mm256_maskstore_ps(out.add(v * LANES), masks[v], lanes);
                }
            };
            let z = at.z.add(p * s.filters);
            for (v, &lanes) in pixel.iter().enumerate() {
                put(
                    z,
                    v,
                    if at.relu {
                        _mm256_max_ps(lanes, zero)
                    } else {
                        lanes
                    },
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::conv::reference::{self, values};
    use crate::kernels::conv::{im2col, Axis, Padding};

    fn stride_one(h: usize, w: usize, kh: usize, kw: usize, c: usize, p: Padding) -> Geometry {
        Geometry {
            rows: Axis::new(h, kh, 1, 1, p).unwrap(),
            cols: Axis::new(w, kw, 1, 1, p).unwrap(),
            channels: c,
        }
    }

    #[test]
    fn tiles_fit_the_row() {
        assert_eq!(Tile::for_row(10, 2).pixels, 5); // LeNet's conv2: two tiles of 5, none wasted
        assert_eq!(Tile::for_row(32, 4).pixels, 2); // W3
        assert_eq!(Tile::for_row(28, 1).pixels, 7);
        assert_eq!(gradient_taps(30, 2), 6); // LeNet's conv2: 5 x 6 taps per kernel row
        assert_eq!(gradient_taps(48, 4), 2);
        assert_eq!(gradient_groups(48, 4), [(0, 2, 6), (16, 2, 6)]); // W3
        assert_eq!(gradient_groups(30, 2), [(0, 2, 6)]); // LeNet's conv2
        assert_eq!(gradient_groups(5, 1), [(0, 1, 5)]); // LeNet's conv1
        assert_eq!(gradient_groups(9, 5), [(0, 3, 3), (24, 2, 3)]);
        for vectors in 1..=MAX_VECTORS {
            let rows = most_rows(vectors);
            assert!(rows * vectors <= ACCUMULATORS && rows * vectors + vectors < REGISTERS);
            for width in 1..40 {
                assert!(Tile::for_row(width, vectors).pixels <= rows);
                assert!(gradient_taps(width, vectors) <= rows);
            }
        }
    }

    #[test]
    fn wide_tiles_compute_what_avx2_tiles_compute() {
        // Forward and kernel gradient.
        if !(has_avx2_fma() && wide_forward(16)) {
            return;
        }
        // (h, w, kh, kw, channels, filters, padding): LeNet's conv2, W3's shape, a group of
        // 32 and one of 16, a ragged width; 3-wide kernels of 16 filters, which run direct
        // tiles: W4's shape, rows of three tiles (13, 13 and 11 pixels), images narrower than
        // the kernel, 1D, "valid"; 3-wide kernels of other filters, which add their taps as the
        // direct tiles do.
        let cases = [
            (14, 14, 5, 5, 6, 16, Padding::Valid),
            (8, 8, 3, 3, 16, 32, Padding::Same),
            (7, 9, 3, 2, 3, 48, Padding::Same),
            (5, 13, 2, 3, 2, 16, Padding::Valid),
            (32, 32, 3, 3, 16, 16, Padding::Same),
            (3, 37, 3, 3, 5, 16, Padding::Same),
            (2, 2, 3, 3, 4, 16, Padding::Same),
            (1, 40, 1, 3, 4, 16, Padding::Same),
            (6, 9, 3, 3, 7, 16, Padding::Valid),
            (4, 29, 3, 3, 3, 48, Padding::Same),
        ];
        for (h, w, kh, kw, c, f, padding) in cases {
            let g = stride_one(h, w, kh, kw, c, padding);
            let (image, kernel, bias) = (
                values(h * w * c, 0.37),
                values(g.field() * f, 0.11),
                values(f, 0.5),
            );
            let len = g.pixels() * f;
            let outputs = |tiles: Tiles| {
                let d = Implicit::with_tiles(&g, f, tiles).expect("stride 1, no dilation");
                assert_eq!(d.wide, tiles != Tiles::Narrow);
                let mut packed = vec![0.0; d.packed_kernel_len()];
                d.pack_kernel(&kernel, Some(&bias), &mut packed);
                let mut band = vec![f32::NAN; d.band_len()];
                let (mut z, mut y) = (vec![7.0; len + 2 * LANES], vec![7.0; len + 2 * LANES]);
                d.forward_image(&image, &packed, &mut z[..len], false, &mut band);
                d.forward_image(&image, &packed, &mut y[..len], true, &mut band);
                let mut partial = values(g.field() * f, 0.05);
                d.kernel_gradient_image(&image, &z[..len], &mut partial, &mut band);
                // Values past the image's output must stay as they are: another image's.
                let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
                (bits(z), bits(y), bits(partial))
            };
            // The same sums in the same order: the same bits.
            let narrow = outputs(Tiles::Narrow);
            assert!(outputs(Tiles::Wide) == narrow, "{f} filters, {kw} wide");
            if channel_major(kw, f) {
                assert!(
                    outputs(Tiles::Direct) == narrow,
                    "{f} filters, {kw} wide, direct"
                );
            }
        }
    }

    #[test]
    fn bands_of_rows_compute_what_whole_padded_images_compute() {
        if !has_avx2_fma() {
            return;
        }
        // (h, w, kh, kw, channels, filters, padding): W4's shape, bands of several rows with a
        // short last one (40 rows), a ragged width, causal-like asymmetric padding, 1D, and a
        // "valid" layer read in place.
        let cases = [
            (32, 32, 3, 3, 16, 16, Padding::Same),
            (40, 40, 3, 3, 16, 16, Padding::Same),
            (23, 9, 5, 3, 3, 13, Padding::Same),
            (17, 6, 2, 2, 4, 32, Padding::Same),
            (1, 50, 1, 3, 8, 16, Padding::Same),
            (14, 14, 5, 5, 6, 16, Padding::Valid),
        ];
        for (h, w, kh, kw, c, f, padding) in cases {
            let g = stride_one(h, w, kh, kw, c, padding);
            // Direct tiles read no band: the bands' tiles.
            let tiles = match wide_forward(f) {
                true => Tiles::Wide,
                false => Tiles::Narrow,
            };
            let d = Implicit::with_tiles(&g, f, tiles).expect("stride 1, no dilation");
            let (image, kernel) = (values(h * w * c, 0.37), values(g.field() * f, 0.11));
            let mut packed = vec![0.0; d.packed_kernel_len()];
            d.pack_kernel(&kernel, Some(&values(f, 0.5)), &mut packed);
            let mut plane = vec![0.0; d.plane_len()];
            d.pad_image(&image, &mut plane);
            let len = g.pixels() * f;
            let dz = values(len, 0.23);
            let mut band = vec![f32::NAN; d.band_len()];
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            let (mut whole, mut banded) = (vec![0.0; len], vec![0.0; len]);
            d.forward(&plane, &packed, &mut whole, true);
            d.forward_image(&image, &packed, &mut banded, true, &mut band);
            assert_eq!(bits(&whole), bits(&banded), "forward, {h}x{w}");
            let (mut whole, mut banded) =
                (values(g.field() * f, 0.05), values(g.field() * f, 0.05));
            d.kernel_gradient(&plane, &dz, &mut whole);
            d.kernel_gradient_image(&image, &dz, &mut banded, &mut band);
            assert_eq!(bits(&whole), bits(&banded), "kernel gradient, {h}x{w}");
        }
    }

    #[test]
    fn forward_matches_im2col_times_the_kernel() {
        if !has_avx2_fma() {
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
            (32, 32, 5, 5, 1, 6, Padding::Valid), // LeNet's conv1
            (3, 4, 2, 2, 1, 1, Padding::Same),    // one filter: whole vectors span 8 pixels
            (5, 5, 3, 3, 2, 3, Padding::Valid),
            (32, 32, 3, 3, 16, 16, Padding::Same), // W4's
            (6, 23, 3, 3, 3, 16, Padding::Same),
        ];
        for (h, w, kh, kw, c, f, padding) in cases {
            let g = stride_one(h, w, kh, kw, c, padding);
            let d = Implicit::new(&g, f).expect("stride 1, no dilation");
            let (image, kernel, bias) = (
                values(h * w * c, 0.37),
                values(g.field() * f, 0.11),
                values(f, 0.5),
            );
            let mut packed = vec![0.0; d.packed_kernel_len()];
            d.pack_kernel(&kernel, Some(&bias), &mut packed);
            let mut band = vec![f32::NAN; d.band_len()];
            // Values past the image's output must stay as they are: another thread's image.
            let len = g.pixels() * f;
            let mut guarded = vec![f32::NAN; len + 2 * LANES];
            guarded[len..].fill(7.0);
            d.forward_image(&image, &packed, &mut guarded[..len], true, &mut band);
            assert!(guarded[len..].iter().all(|&v| v == 7.0), "{f} filters");
            let mut z = vec![f32::NAN; len];
            d.forward_image(&image, &packed, &mut z, false, &mut band);
            // Relu as the products are stored.
            let mut y = vec![f32::NAN; z.len()];
            d.forward_image(&image, &packed, &mut y, true, &mut band);
            let relu: Vec<f32> = z.iter().map(|&v| v.max(0.0)).collect();
            assert_eq!(y, relu);

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
    fn kernel_gradient_matches_im2col() {
        if !has_avx2_fma() {
            return;
        }
        // (h, w, kh, kw, channels, filters, padding): LeNet's conv2, W3's shape, rows of taps
        // that 12 / vectors does not divide, 1D.
        let cases = [
            (14, 14, 5, 5, 6, 16, Padding::Valid),
            (8, 8, 3, 3, 16, 32, Padding::Same),
            (7, 9, 3, 2, 7, 24, Padding::Same),
            (5, 6, 2, 3, 2, 40, Padding::Valid),
            (1, 11, 1, 3, 4, 8, Padding::Same),
            (32, 32, 5, 5, 1, 6, Padding::Valid), // LeNet's conv1: ragged filters, one channel
            (6, 7, 3, 3, 2, 13, Padding::Same),
            (32, 32, 3, 3, 16, 16, Padding::Same), // W4's
            (5, 9, 3, 3, 11, 16, Padding::Same),   // channels in tiles of 6 and 5
            (3, 4, 3, 3, 3, 16, Padding::Valid),   // narrower than the kernel is wide, nearly
        ];
        for (h, w, kh, kw, c, f, padding) in cases {
            let g = stride_one(h, w, kh, kw, c, padding);
            let d = Implicit::new(&g, f).unwrap();
            let (image, dz) = (values(h * w * c, 0.37), values(g.pixels() * f, 0.23));
            let mut band = vec![f32::NAN; d.band_len()];
            let mut partial = vec![1.0; g.field() * f];
            d.kernel_gradient_image(&image, &dz, &mut partial, &mut band);

            let mut cols = vec![0.0; g.pixels() * g.field()];
            im2col(&image, &g, &mut cols);
            for t in 0..g.field() {
                for j in 0..f {
                    let expected: f64 = 1.0
                        + (0..g.pixels())
                            .map(|p| cols[p * g.field() + t] as f64 * dz[p * f + j] as f64)
                            .sum::<f64>();
                    let got = partial[t * f + j] as f64;
                    assert!(
                        (got - expected).abs() < 1e-4,
                        "tap {t} filter {j}: {got} vs {expected}"
                    );
                }
            }
        }
    }

    #[test]
    fn input_gradient_matches_col2im() {
        if !has_avx2_fma() {
            return;
        }
        let cases = [
            (14, 14, 5, 5, 6, 16, Padding::Valid),
            (8, 8, 3, 3, 16, 32, Padding::Same),
            (7, 9, 3, 2, 3, 13, Padding::Same),
            (6, 5, 4, 4, 2, 8, Padding::Same),
            (1, 11, 1, 3, 4, 5, Padding::Valid),
            (32, 32, 3, 3, 16, 16, Padding::Same), // W4's
            (9, 9, 3, 3, 16, 16, Padding::Valid),  // padded by 2 on each side: direct
            (7, 8, 3, 3, 32, 16, Padding::Valid),
        ];
        for (h, w, kh, kw, c, f, padding) in cases {
            let g = stride_one(h, w, kh, kw, c, padding);
            let d = Implicit::new(&g, f)
                .unwrap()
                .input_gradient()
                .expect("several filters");
            let (kernel, dz) = (values(g.field() * f, 0.11), values(g.pixels() * f, 0.23));
            let mut scratch = vec![0.0; kernel.len()];
            let mut packed = vec![0.0; d.packed_kernel_len()];
            d.pack_flipped_kernel(&kernel, &mut scratch, &mut packed);
            let mut band = vec![f32::NAN; d.band_len()];
            let mut dx = vec![f32::NAN; h * w * c];
            d.forward_image(&dz, &packed, &mut dx, false, &mut band);

            let expected = reference::input_gradient(&g, &kernel, &dz, f);
            for (a, b) in dx.iter().zip(&expected) {
                assert!((a - b).abs() < 1e-4, "{a} vs {b} in {g:?}");
            }
        }
    }

    #[test]
    fn applies_only_to_stride_one_undilated_convolutions() {
        let g = |stride, dilation, channels| Geometry {
            rows: Axis::new(8, 3, stride, dilation, Padding::Valid).unwrap(),
            cols: Axis::new(8, 3, stride, dilation, Padding::Valid).unwrap(),
            channels,
        };
        assert_eq!(Implicit::new(&g(1, 1, 3), 4).is_some(), has_avx2_fma());
        assert!(Implicit::new(&g(2, 1, 3), 4).is_none());
        assert!(Implicit::new(&g(1, 2, 3), 4).is_none());
    }
}
