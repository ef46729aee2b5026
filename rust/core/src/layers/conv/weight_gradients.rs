//! A convolution's weight gradients: ∂bias, the output gradient summed over pixels, and ∂kernel
//! by the forward's method: from the im2col rows it kept, or through the implicit GEMM from the
//! layer's input. Both sum in fixed chunks, so the result never depends on the threads.

use rayon::prelude::*;

use super::forward::Forward;
use super::scratch::with_scratch;
use crate::error::Result;
use crate::kernels::conv::Geometry;
use crate::kernels::conv_implicit::Implicit;
use crate::kernels::gemm::matmul_tn_chunked;
use crate::kernels::reduce::sum_rows_chunked;
use crate::memory::ensure_len;

/// Images per partial kernel gradient of the implicit GEMM: fixed, so that the partials, summed
/// in order, never depend on the thread count.
const GRADIENT_IMAGES: usize = 16;

/// The scratch of the chunked sums.
#[derive(Default)]
pub(super) struct WeightGradients {
    partials: Vec<f32>,
}

impl WeightGradients {
    /// ∂bias (where there is one) and ∂kernel from the output gradient `dz` of the batch whose
    /// input was `x`, by the forward's method.
    pub fn compute(
        &mut self,
        (g, forward): (&Geometry, &Forward),
        x: &[f32],
        dz: &[f32],
        d_kernel: &mut [f32],
        d_bias: Option<&mut [f32]>,
    ) -> Result<()> {
        if let Some(d_bias) = d_bias {
            sum_rows_chunked(dz, d_bias, &mut self.partials)?;
        }
        match forward.implicit() {
            Some(d) => self.implicit(g, d, x, dz, d_kernel),
            None => self.im2col(g, forward, dz, d_kernel),
        }
    }

    /// ∂kernel = colsᵀ · dz over the rows kept by the forward.
    fn im2col(
        &mut self,
        g: &Geometry,
        forward: &Forward,
        dz: &[f32],
        d_kernel: &mut [f32],
    ) -> Result<()> {
        let filters = d_kernel.len() / g.field();
        let rows = dz.len() / filters;
        let cols = forward.cols(rows * g.field());
        let dims = (rows, g.field(), filters);
        matmul_tn_chunked(cols, dz, d_kernel, dims, &mut self.partials)
    }

    /// ∂kernel through the implicit GEMM (partials in the kernel's layout), from the layer's
    /// input images, padded a band at a time.
    fn implicit(
        &mut self,
        g: &Geometry,
        d: &Implicit,
        x: &[f32],
        dz: &[f32],
        d_kernel: &mut [f32],
    ) -> Result<()> {
        let filters = d_kernel.len() / g.field();
        let per_image = g.pixels() * filters;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::activation::Activation;
    use crate::kernels::conv::im2col;
    use crate::kernels::conv::reference::values;
    use crate::layers::conv::forward::Products;
    use crate::layers::conv::testing::geometries;

    /// `Σ_images im2col(x)ᵀ · dz` and `Σ dz` with plain loops.
    fn reference(g: &Geometry, filters: usize, x: &[f32], dz: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let field = g.field();
        let (mut d_kernel, mut d_bias) = (vec![0.0; field * filters], vec![0.0; filters]);
        let mut cols = vec![0.0; g.pixels() * field];
        let images = x.chunks(g.input_size());
        for (image, dz) in images.zip(dz.chunks(g.pixels() * filters)) {
            im2col(image, g, &mut cols);
            for (row, dz) in cols.chunks(field).zip(dz.chunks(filters)) {
                for t in 0..field {
                    for j in 0..filters {
                        d_kernel[t * filters + j] += row[t] * dz[j];
                    }
                }
                d_bias.iter_mut().zip(dz).for_each(|(b, g)| *b += g);
            }
        }
        (d_kernel, d_bias)
    }

    #[test]
    fn each_method_matches_the_im2col_reference() {
        // More images than one partial holds, so that partials are added.
        let batch = GRADIENT_IMAGES + 3;
        for (g, filters) in geometries() {
            let x = values(batch * g.input_size(), 0.13);
            let dz = values(batch * g.pixels() * filters, 0.29);
            let kernel = values(g.field() * filters, 0.41);
            let (expected_kernel, expected_bias) = reference(&g, filters, &x, &dz);
            for mut forward in [Forward::new(&g, filters), Forward::im2col()] {
                // A training forward keeps what the gradient reads (im2col's rows).
                let p = Products {
                    kernel: &kernel,
                    bias: None,
                    filters,
                    activation: Activation::Linear,
                };
                let mut y = vec![0.0; dz.len()];
                forward.run(&g, p, &x, &mut y, true).unwrap();
                let mut d_kernel = vec![f32::NAN; kernel.len()];
                let mut d_bias = vec![f32::NAN; filters];
                WeightGradients::default()
                    .compute((&g, &forward), &x, &dz, &mut d_kernel, Some(&mut d_bias))
                    .unwrap();
                let close = |a: &[f32], b: &[f32]| {
                    a.iter()
                        .zip(b)
                        .all(|(a, b)| (a - b).abs() < 1e-3 * (1.0 + b.abs()))
                };
                assert!(close(&d_kernel, &expected_kernel), "{g:?}");
                assert!(close(&d_bias, &expected_bias), "{g:?}");
            }
        }
    }
}
