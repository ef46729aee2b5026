//! A convolution's forward, by the method chosen for its shape: the implicit GEMM where the
//! CPU and the shape allow it (stride 1, no dilation, AVX2), else im2col rows times the kernel.
//! Either way the activation runs while a tile's or an image's products are in cache.

use rayon::prelude::*;

use super::scratch::with_scratch;
use super::TILE_ROWS;
use crate::error::Result;
use crate::kernels::activation::Activation;
use crate::kernels::conv::{im2col_rows, Geometry};
use crate::kernels::conv_implicit::Implicit;
use crate::kernels::gemm::{matmul_single_thread, Op};
use crate::kernels::reduce::broadcast_rows;
use crate::memory::ensure_len;

/// What the forward needs of the layer: its kernel and bias, and how its output ends.
#[derive(Clone, Copy)]
pub(super) struct Products<'a> {
    pub kernel: &'a [f32],
    pub bias: Option<&'a [f32]>,
    pub filters: usize,
    pub activation: Activation,
}

/// The forward's method and the buffers it keeps for the backward.
pub(super) struct Forward {
    /// Set where the implicit GEMM replaces im2col + GEMM (forward and kernel gradient).
    implicit: Option<Implicit>,
    /// The last training batch's im2col rows, kept for the kernel's gradient (the implicit
    /// GEMM reads the layer's input instead).
    cols: Vec<f32>,
    /// The kernel packed for the implicit GEMM.
    packed: Vec<f32>,
    /// Pre-activations, kept for the activation's derivative.
    z: Vec<f32>,
}

impl Forward {
    /// The implicit GEMM where it applies, im2col otherwise.
    pub fn new(g: &Geometry, filters: usize) -> Self {
        Self::with_method(Implicit::new(g, filters))
    }

    /// im2col + GEMM whatever the shape: the reference the implicit GEMM is tested against.
    #[cfg(test)]
    pub fn im2col() -> Self {
        Self::with_method(None)
    }

    fn with_method(implicit: Option<Implicit>) -> Self {
        Forward {
            implicit,
            cols: Vec::new(),
            packed: Vec::new(),
            z: Vec::new(),
        }
    }

    pub fn implicit(&self) -> Option<&Implicit> {
        self.implicit.as_ref()
    }

    /// The im2col rows of the last training batch's first `len` values.
    pub fn cols(&self, len: usize) -> &[f32] {
        &self.cols[..len]
    }

    /// The pre-activations of the last training batch where the activation's derivative needs
    /// them (see [`needs_preactivations`]), else the output `y` itself.
    pub fn preactivations<'a>(&'a self, activation: Activation, y: &'a [f32]) -> &'a [f32] {
        match needs_preactivations(activation) {
            true => &self.z[..y.len()],
            false => y,
        }
    }

    /// `y = activation(conv(x) + bias)` for the images of `x`.
    pub fn run(
        &mut self,
        g: &Geometry,
        p: Products,
        x: &[f32],
        y: &mut [f32],
        training: bool,
    ) -> Result<()> {
        ensure_len(&mut self.z, y.len())?;
        match self.implicit {
            Some(_) => self.implicit_images(g, p, x, y, training),
            None => self.im2col_tiles(g, p, x, y, training),
        }
    }

    /// `z = im2col(x) · kernel + bias`, [`TILE_ROWS`] rows at a time; in training every row
    /// is kept in `cols` for the kernel's gradient.
    fn im2col_tiles(
        &mut self,
        g: &Geometry,
        p: Products,
        x: &[f32],
        y: &mut [f32],
        training: bool,
    ) -> Result<()> {
        let (g, field, filters) = (*g, g.field(), p.filters);
        let rows = y.len() / filters;
        let z = self.z[..rows * filters]
            .par_chunks_mut(TILE_ROWS * filters)
            .zip(y.par_chunks_mut(TILE_ROWS * filters))
            .enumerate();
        // The tile's rows are still in cache when the product reads them, and its
        // pre-activations when the activation does.
        let product = |index: usize, cols: &mut [f32], z: &mut [f32]| {
            im2col_rows(x, &g, index * TILE_ROWS, cols);
            if let Some(bias) = p.bias {
                broadcast_rows(bias, z);
            }
            let rows = z.len() / filters;
            let onto_bias = p.bias.is_some();
            let kernel = p.kernel;
            matmul_single_thread(
                cols,
                Op::N,
                kernel,
                Op::N,
                z,
                rows,
                filters,
                field,
                onto_bias,
            );
        };
        if training {
            ensure_len(&mut self.cols, rows * field)?;
            let cols = self.cols[..rows * field].par_chunks_mut(TILE_ROWS * field);
            z.zip(cols).for_each(|((index, (z, y)), cols)| {
                product(index, cols, z);
                p.activation.forward(z, y, filters);
            });
            Ok(())
        } else {
            z.try_for_each(|(index, (z, y))| {
                with_scratch(z.len() / filters * field, |cols| product(index, cols, z))?;
                // Outside the scratch's borrow: a wide activation may run in parallel, and
                // this thread may then take another tile, which borrows the scratch again.
                p.activation.forward(z, y, filters);
                Ok(())
            })
        }
    }

    /// `z` and `y` image by image through the implicit GEMM, each image padded a band of rows
    /// at a time (or read in place where a padded image would only copy it).
    fn implicit_images(
        &mut self,
        g: &Geometry,
        p: Products,
        x: &[f32],
        y: &mut [f32],
        training: bool,
    ) -> Result<()> {
        let Some(d) = &self.implicit else {
            unreachable!("called only with an implicit kernel")
        };
        let (filters, activation) = (p.filters, p.activation);
        ensure_len(&mut self.packed, d.packed_kernel_len())?;
        d.pack_kernel(p.kernel, p.bias, &mut self.packed);
        let packed = &self.packed;
        let relu = activation == Activation::Relu;
        let keeps_z = training && needs_preactivations(activation);
        let per_image = g.pixels() * filters;
        self.z[..y.len()]
            .par_chunks_mut(per_image)
            .zip(y.par_chunks_mut(per_image))
            .zip(x.par_chunks(g.input_size()))
            .try_for_each(|((z, y), image)| {
                with_scratch(d.band_len(), |band| match keeps_z {
                    true => d.forward_image(image, packed, z, false, band),
                    false => d.forward_image(image, packed, y, relu, band),
                })?;
                // Outside the scratch's borrow, as in `im2col_tiles`.
                if !relu && activation != Activation::Linear {
                    activate(activation, keeps_z, z, y, filters);
                }
                Ok(())
            })
    }
}

/// Whether the backward needs the pre-activations `z` beside the output: not for a linear
/// layer, nor for relu, whose derivative `z > 0` is `y > 0`. Without, the training forward
/// writes `y` alone (W4's convolutions wrote 8 MB more each per batch, and copied the linear
/// ones' `z` into `y`).
fn needs_preactivations(activation: Activation) -> bool {
    !matches!(activation, Activation::Linear | Activation::Relu)
}

/// `y = activation(z)` for one image whose pre-activations the kernel wrote into `z` in
/// training where the backward needs them, and straight into `y` otherwise, where the
/// activation then runs in place. Relu never comes here: the kernel applies it as it stores.
fn activate(activation: Activation, training: bool, z: &[f32], y: &mut [f32], filters: usize) {
    if training {
        activation.forward(z, y, filters);
    } else {
        activation.apply_in_place(y, filters);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::conv::reference::values;
    use crate::layers::conv::testing::geometries;

    /// `activation(im2col(x) · kernel + bias)` with plain loops, image by image.
    fn reference(g: &Geometry, p: Products, x: &[f32], batch: usize) -> Vec<f32> {
        let (field, f) = (g.field(), p.filters);
        let mut cols = vec![0.0; g.pixels() * field];
        let mut z = Vec::new();
        for image in x.chunks(g.input_size()).take(batch) {
            crate::kernels::conv::im2col(image, g, &mut cols);
            for row in cols.chunks(field) {
                z.extend((0..f).map(|j| {
                    let sum: f32 = (0..field).map(|t| row[t] * p.kernel[t * f + j]).sum();
                    sum + p.bias.map_or(0.0, |b| b[j])
                }));
            }
        }
        let mut y = vec![0.0; z.len()];
        p.activation.forward(&z, &mut y, f);
        y
    }

    #[test]
    fn each_method_matches_im2col_times_the_kernel() {
        let batch = 3;
        for (g, filters) in geometries() {
            let kernel = values(g.field() * filters, 0.37);
            let bias = values(filters, 1.3);
            let x = values(batch * g.input_size(), 0.11);
            for activation in [Activation::Linear, Activation::Relu, Activation::Tanh] {
                for bias in [Some(&bias[..]), None] {
                    let p = Products {
                        kernel: &kernel,
                        bias,
                        filters,
                        activation,
                    };
                    let expected = reference(&g, p, &x, batch);
                    for (mut method, training) in [
                        (Forward::new(&g, filters), true),
                        (Forward::new(&g, filters), false),
                        (Forward::im2col(), true),
                        (Forward::im2col(), false),
                    ] {
                        let mut y = vec![f32::NAN; expected.len()];
                        method.run(&g, p, &x, &mut y, training).unwrap();
                        for (a, b) in y.iter().zip(&expected) {
                            assert!((a - b).abs() < 1e-4, "{g:?} {activation:?}: {a} vs {b}");
                        }
                    }
                }
            }
        }
    }
}
