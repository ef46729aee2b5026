//! `Conv1D` / `Conv2D` (`keras/src/layers/convolutional/base_conv.py`), channels last:
//! `y = activation(conv(x, kernel) + bias)`, cross-correlation (the kernel is not flipped), with
//! the kernel `(k, in, filters)` or `(kh, kw, in, filters)` followed by the bias `(filters,)`.
//! A 1D convolution runs as a 2D one of height 1; both kernel layouts are then the same memory.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::kernel_bias::KernelBias;
use super::Layer;
use crate::error::{CoreError, Result};
use crate::initializers::Initializer;
use crate::kernels::activation::Activation;
use crate::kernels::conv::{col2im, im2col_rows, Axis, Geometry, Padding};
use crate::kernels::conv_implicit::Implicit;
use crate::kernels::conv_scatter::Scatter;
use crate::kernels::gemm::{matmul_single_thread, matmul_tn_chunked, Op};
use crate::kernels::reduce::{broadcast_rows, sum_rows_chunked};
use crate::memory::ensure_len;
use crate::regularizers::Regularizer;

/// The im2col rows one task produces and multiplies at once: few enough to stay in cache
/// between the two, enough for an efficient product. Their size never depends on the thread
/// count. The backward's tiles hold whole images of about this many rows, so that the input
/// gradients of two tiles never overlap.
const TILE_ROWS: usize = 512;

/// Images per partial kernel gradient of the implicit GEMM: fixed, so that the partials, summed
/// in order, never depend on the thread count.
const GRADIENT_IMAGES: usize = 16;

thread_local! {
    /// Per-thread scratch (im2col rows for inference, padded bands of rows for the implicit
    /// GEMM, padded images for the scatter), grown to the largest size seen and reused.
    static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` on this thread's scratch, at least `len` values long.
fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> Result<R> {
    SCRATCH.with_borrow_mut(|scratch| {
        ensure_len(scratch, len)?;
        Ok(f(&mut scratch[..len]))
    })
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConvSpec {
    pub filters: usize,
    /// One size per spatial axis: 1 for Conv1D, 2 for Conv2D.
    pub kernel_size: Vec<usize>,
    pub strides: Vec<usize>,
    pub padding: Padding,
    pub dilation_rate: Vec<usize>,
    pub activation: Activation,
    pub use_bias: bool,
    pub kernel_initializer: Initializer,
    pub bias_initializer: Initializer,
    #[serde(default)]
    pub kernel_regularizer: Option<Regularizer>,
    #[serde(default)]
    pub bias_regularizer: Option<Regularizer>,
    #[serde(default)]
    pub activity_regularizer: Option<Regularizer>,
}

/// How a convolution computes ∂x, chosen once for its shape.
#[derive(Default)]
enum InputGradient {
    /// The convolution of the padded output gradient with the flipped kernel, where it wastes
    /// little (see [`flipped_pays`]).
    Flipped(Implicit),
    /// Kernel-row runs scattered into a padded ∂x, where kernel rows are short.
    Scatter(Scatter),
    /// ∂cols = dz · kernelᵀ, then col2im.
    #[default]
    Col2im,
}

impl InputGradient {
    fn new(geometry: &Geometry, implicit: Option<&Implicit>, filters: usize) -> Self {
        let flipped = implicit
            .and_then(|i| i.input_gradient())
            .filter(|flipped| flipped_pays(geometry, flipped));
        match (flipped, Scatter::new(geometry, filters)) {
            (Some(flipped), _) => InputGradient::Flipped(flipped),
            (None, Some(scatter)) => InputGradient::Scatter(scatter),
            (None, None) => InputGradient::Col2im,
        }
    }
}

/// ∂x's method and the buffers it reuses: apart from the rest of the layer so that ∂x and the
/// weight gradients, independent of each other, run side by side.
#[derive(Default)]
struct InputGradientState {
    method: InputGradient,
    packed: Vec<f32>,
    /// The flipped kernel on the way to being packed.
    flipped_kernel: Vec<f32>,
    dcols: Vec<f32>,
}

impl InputGradientState {
    /// ∂x, by the method chosen for this convolution's shape.
    fn compute(
        &mut self,
        g: &Geometry,
        filters: usize,
        kernel: &[f32],
        dz: &[f32],
        dx: &mut [f32],
    ) -> Result<()> {
        let dz_images = dz.par_chunks(g.pixels() * filters);
        let dx_images = dx.par_chunks_mut(g.input_size());
        match &self.method {
            InputGradient::Flipped(d) => {
                ensure_len(&mut self.flipped_kernel, kernel.len())?;
                ensure_len(&mut self.packed, d.packed_kernel_len())?;
                d.pack_flipped_kernel(kernel, &mut self.flipped_kernel, &mut self.packed);
                let packed = &self.packed;
                dz_images.zip(dx_images).try_for_each(|(dz, dx)| {
                    with_scratch(d.band_len(), |band| {
                        d.forward_image(dz, packed, dx, false, band)
                    })
                })
            }
            InputGradient::Scatter(s) => {
                ensure_len(&mut self.packed, s.packed_kernel_len())?;
                s.pack_kernel(kernel, &mut self.packed);
                let packed = &self.packed;
                dz_images.zip(dx_images).try_for_each(|(dz, dx)| {
                    with_scratch(s.plane_len(), |plane| {
                        s.input_gradient(dz, packed, plane, dx)
                    })
                })
            }
            InputGradient::Col2im => self.col2im(g, filters, kernel, dz, dx),
        }
    }

    /// ∂x: ∂cols = dz · kernelᵀ, scattered by col2im, tile by tile. Tiles hold whole images, so
    /// no two tasks scatter into the same input.
    fn col2im(
        &mut self,
        g: &Geometry,
        filters: usize,
        kernel: &[f32],
        dz: &[f32],
        dx: &mut [f32],
    ) -> Result<()> {
        let field = g.field();
        let rows = dz.len() / filters;
        // Tiles of whole images, about `TILE_ROWS` im2col rows.
        let images = (TILE_ROWS / g.pixels()).max(1);
        ensure_len(&mut self.dcols, rows * field)?;
        let dcols = self.dcols[..rows * field].par_chunks_mut(images * g.pixels() * field);
        let dz = dz.par_chunks(images * g.pixels() * filters);
        let dx = dx.par_chunks_mut(images * g.input_size());
        dcols.zip(dz).zip(dx).for_each(|((dcols, dz), dx)| {
            let rows = dz.len() / filters;
            matmul_single_thread(dz, Op::N, kernel, Op::T, dcols, rows, field, filters, false);
            col2im(dcols, g, dx);
        });
        Ok(())
    }
}

pub struct Conv {
    spec: ConvSpec,
    weights: KernelBias,
    geometry: Geometry,
    /// Set where the implicit GEMM replaces im2col + GEMM, forward and kernel gradient (stride
    /// 1, no dilation, AVX2).
    implicit: Option<Implicit>,
    output_shape: Vec<usize>,
    /// The last training batch's im2col rows, kept for the kernel's gradient (the implicit
    /// GEMM reads the layer's input instead).
    cols: Vec<f32>,
    /// The kernel packed for the implicit GEMM, the flipped convolution or the scatter.
    packed: Vec<f32>,
    /// Pre-activations, kept for the activation's derivative.
    z: Vec<f32>,
    input_gradient: InputGradientState,
    /// Scratch for the chunked reductions of the weight gradients.
    partials: Vec<f32>,
}

impl Conv {
    pub fn new(spec: ConvSpec, input_shape: &[usize]) -> Result<Self> {
        let rank = spec.kernel_size.len();
        if !(1..=2).contains(&rank)
            || spec.strides.len() != rank
            || spec.dilation_rate.len() != rank
        {
            return Err(CoreError::InvalidSpec(format!(
                "a convolution needs 1 or 2 kernel sizes, strides and dilation rates: {spec:?}"
            )));
        }
        if input_shape.len() != rank + 1 {
            return Err(CoreError::shape(
                "input_shape",
                format!("{} axes (spatial axes, then channels)", rank + 1),
                format!("{input_shape:?}"),
            ));
        }
        if spec.padding == Padding::Causal && rank != 1 {
            return Err(CoreError::invalid(
                "padding",
                "'causal' only for Conv1D",
                "Conv2D",
            ));
        }
        if spec.filters == 0 {
            return Err(CoreError::invalid("filters", "a positive integer", 0));
        }
        // 1D: height 1, with a kernel of height 1.
        let (h, w, c) = match *input_shape {
            [w, c] => (1, w, c),
            [h, w, c] => (h, w, c),
            _ => unreachable!("the rank was checked above"),
        };
        let (kh, kw) = match spec.kernel_size[..] {
            [k] => (1, k),
            [kh, kw] => (kh, kw),
            _ => unreachable!("the rank was checked above"),
        };
        let last = rank - 1;
        let rows = if rank == 1 {
            Axis::new(1, 1, 1, 1, Padding::Valid)?
        } else {
            Axis::new(h, kh, spec.strides[0], spec.dilation_rate[0], spec.padding)?
        };
        let cols = Axis::new(
            w,
            kw,
            spec.strides[last],
            spec.dilation_rate[last],
            spec.padding,
        )?;
        let geometry = Geometry {
            rows,
            cols,
            channels: c,
        };
        let mut kernel_shape = spec.kernel_size.clone();
        kernel_shape.extend([c, spec.filters]);
        let mut output_shape = if rank == 1 {
            vec![cols.output]
        } else {
            vec![rows.output, cols.output]
        };
        output_shape.push(spec.filters);
        let weights = KernelBias {
            kernel_shape,
            bias: spec.use_bias.then_some(spec.filters),
            kernel_initializer: spec.kernel_initializer.clone(),
            bias_initializer: spec.bias_initializer.clone(),
            kernel_regularizer: spec.kernel_regularizer,
            bias_regularizer: spec.bias_regularizer,
        };
        let implicit = Implicit::new(&geometry, spec.filters);
        let input_gradient = InputGradient::new(&geometry, implicit.as_ref(), spec.filters);
        Ok(Conv {
            spec,
            weights,
            geometry,
            output_shape,
            implicit,
            cols: Vec::new(),
            packed: Vec::new(),
            z: Vec::new(),
            input_gradient: InputGradientState {
                method: input_gradient,
                ..Default::default()
            },
            partials: Vec::new(),
        })
    }

    fn kernel_len(&self) -> usize {
        self.weights.kernel_len()
    }

    /// `z = im2col(x) · kernel + bias`, [`TILE_ROWS`] rows at a time; in training every row
    /// is kept in `cols` for the kernel's gradient.
    fn forward_im2col(
        &mut self,
        weights: &[f32],
        x: &[f32],
        y: &mut [f32],
        training: bool,
    ) -> Result<()> {
        let g = self.geometry;
        let (field, filters) = (g.field(), self.spec.filters);
        let rows = y.len() / filters;
        let (kernel, bias) = weights.split_at(self.kernel_len());
        let (use_bias, activation) = (self.spec.use_bias, self.spec.activation);
        let z = self.z[..rows * filters]
            .par_chunks_mut(TILE_ROWS * filters)
            .zip(y.par_chunks_mut(TILE_ROWS * filters))
            .enumerate();
        // The tile's rows are still in cache when the product reads them, and its
        // pre-activations when the activation does.
        let product = |index: usize, cols: &mut [f32], z: &mut [f32]| {
            im2col_rows(x, &g, index * TILE_ROWS, cols);
            if use_bias {
                broadcast_rows(bias, z);
            }
            let rows = z.len() / filters;
            matmul_single_thread(
                cols,
                Op::N,
                kernel,
                Op::N,
                z,
                rows,
                filters,
                field,
                use_bias,
            );
        };
        if training {
            ensure_len(&mut self.cols, rows * field)?;
            let cols = self.cols[..rows * field].par_chunks_mut(TILE_ROWS * field);
            z.zip(cols).for_each(|((index, (z, y)), cols)| {
                product(index, cols, z);
                activation.forward(z, y, filters);
            });
            Ok(())
        } else {
            z.try_for_each(|(index, (z, y))| {
                with_scratch(z.len() / filters * field, |cols| product(index, cols, z))?;
                // Outside the scratch's borrow: a wide activation may run in parallel, and
                // this thread may then take another tile, which borrows the scratch again.
                activation.forward(z, y, filters);
                Ok(())
            })
        }
    }

    /// `z` and `y` image by image through the implicit GEMM, each image padded a band of rows
    /// at a time (or read in place where a padded image would only copy it).
    fn forward_implicit(
        &mut self,
        weights: &[f32],
        x: &[f32],
        y: &mut [f32],
        training: bool,
    ) -> Result<()> {
        let Some(d) = &self.implicit else {
            unreachable!("called only with an implicit kernel")
        };
        let g = self.geometry;
        let (filters, activation) = (self.spec.filters, self.spec.activation);
        let (kernel, bias) = weights.split_at(self.kernel_len());
        ensure_len(&mut self.packed, d.packed_kernel_len())?;
        d.pack_kernel(kernel, self.spec.use_bias.then_some(bias), &mut self.packed);
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
                // Outside the scratch's borrow, as in `forward_im2col`.
                if !relu && activation != Activation::Linear {
                    activate(activation, keeps_z, z, y, filters);
                }
                Ok(())
            })
    }

    /// ∂bias and ∂kernel.
    fn weight_gradients(
        &mut self,
        x: &[f32],
        dz: &[f32],
        d_kernel: &mut [f32],
        d_bias: &mut [f32],
    ) -> Result<()> {
        if self.spec.use_bias {
            sum_rows_chunked(dz, d_bias, &mut self.partials)?;
        }
        match self.implicit {
            Some(_) => self.kernel_gradient_implicit(x, dz, d_kernel),
            None => self.kernel_gradient_im2col(dz, d_kernel),
        }
    }

    /// ∂kernel = colsᵀ · dz over the rows kept by the forward.
    fn kernel_gradient_im2col(&mut self, dz: &[f32], d_kernel: &mut [f32]) -> Result<()> {
        let g = self.geometry;
        let rows = dz.len() / self.spec.filters;
        let cols = &self.cols[..rows * g.field()];
        let dims = (rows, g.field(), self.spec.filters);
        matmul_tn_chunked(cols, dz, d_kernel, dims, &mut self.partials)
    }

    /// ∂kernel through the implicit GEMM (partials in the kernel's layout), from the layer's
    /// input images, padded a band at a time.
    fn kernel_gradient_implicit(
        &mut self,
        x: &[f32],
        dz: &[f32],
        d_kernel: &mut [f32],
    ) -> Result<()> {
        let d = self
            .implicit
            .as_ref()
            .expect("called only with an implicit kernel");
        let g = self.geometry;
        let per_image = g.pixels() * self.spec.filters;
        let chunks = (dz.len() / per_image).div_ceil(GRADIENT_IMAGES);
        let partial_len = d_kernel.len();
        ensure_len(&mut self.partials, chunks * partial_len)?;
        let partials = &mut self.partials[..chunks * partial_len];
        partials
            .par_chunks_mut(partial_len)
            .zip(x.par_chunks(GRADIENT_IMAGES * g.input_size()))
            .zip(dz.par_chunks(GRADIENT_IMAGES * per_image))
            .try_for_each(|((partial, images), dz)| {
                partial.fill(0.0);
                with_scratch(d.band_len(), |band| {
                    for (image, dz) in images.chunks(g.input_size()).zip(dz.chunks(per_image)) {
                        d.kernel_gradient_image(image, dz, partial, band);
                    }
                })
            })?;
        // One partial per GRADIENT_IMAGES images, added in order: the sum never depends on
        // the threads.
        d_kernel.fill(0.0);
        for partial in partials.chunks(partial_len) {
            d_kernel.iter_mut().zip(partial).for_each(|(d, p)| *d += p);
        }
        Ok(())
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

/// Whether ∂x is computed faster by the flipped convolution than by ∂cols and col2im: where
/// at least 3/4 of its work is useful. It computes every input pixel, in whole vectors of
/// channels, over the output gradient padded by the kernel; so a "valid" convolution with a
/// large kernel, or few channels, wastes much of it. Measured on one thread: W3 ("same", 16
/// channels, all useful) 6.8-8.4 ms against 8.1-11.4; LeNet's conv2 ("valid" 5x5 on 14x14, 6
/// channels: 38 % useful) 2.0-2.8 ms against 1.3-1.8.
fn flipped_pays(g: &Geometry, flipped: &Implicit) -> bool {
    let useful = g.pixels() * g.field();
    let computed =
        g.rows.input * g.cols.input * flipped.padded_filters() * g.rows.kernel * g.cols.kernel;
    4 * useful >= 3 * computed
}

impl Layer for Conv {
    fn output_shape(&self) -> &[usize] {
        &self.output_shape
    }

    fn geometry(&self) -> Option<Geometry> {
        Some(self.geometry)
    }

    fn weight_shapes(&self) -> Vec<Vec<usize>> {
        self.weights.shapes()
    }

    fn init_weights(&self, weights: &mut [f32]) -> Result<()> {
        self.weights.init(weights)
    }

    fn weight_penalty(&self, weights: &[f32], grads: Option<&mut [f32]>) -> f64 {
        self.weights.penalty(weights, grads)
    }

    fn activity_regularizer(&self) -> Option<Regularizer> {
        self.spec.activity_regularizer
    }

    fn forward(
        &mut self,
        weights: &[f32],
        x: &[f32],
        y: &mut [f32],
        batch: usize,
        training: bool,
    ) -> Result<()> {
        let len = batch * self.geometry.pixels() * self.spec.filters;
        ensure_len(&mut self.z, len)?;
        let y = &mut y[..len];
        match self.implicit {
            Some(_) => self.forward_implicit(weights, x, y, training),
            None => self.forward_im2col(weights, x, y, training),
        }
    }

    fn backward(
        &mut self,
        weights: &[f32],
        grads: &mut [f32],
        x: &[f32],
        y: &[f32],
        dy: &mut [f32],
        dx: Option<&mut [f32]>,
        batch: usize,
    ) -> Result<()> {
        // The kernel gradient reads the im2col rows or padded images that the training forward
        // kept, or `x` itself where a padded image would be a copy of it.
        let filters = self.spec.filters;
        let len = batch * self.geometry.pixels() * filters;
        let dz = &mut dy[..len];
        let activation = self.spec.activation;
        let z = match needs_preactivations(activation) {
            true => &self.z[..len],
            false => &y[..len],
        };
        activation.backward(z, y, dz, filters);
        let dz: &[f32] = dz;
        let (d_kernel, d_bias) = grads.split_at_mut(self.kernel_len());
        let kernel = &weights[..self.kernel_len()];
        let (g, filters) = (self.geometry, filters);
        // Taken out for the join (and put back): a panic inside leaves the default, col2im,
        // which is always correct.
        let mut input_gradient = std::mem::take(&mut self.input_gradient);
        let (weights_done, input_done) = rayon::join(
            || self.weight_gradients(x, dz, d_kernel, d_bias),
            || match dx {
                Some(dx) => input_gradient.compute(&g, filters, kernel, dz, dx),
                None => Ok(()),
            },
        );
        self.input_gradient = input_gradient;
        weights_done.and(input_done)
    }
}
