//! A convolution's input gradient ∂x, by the method chosen once for its shape: the flipped
//! convolution through the implicit GEMM, kernel-row runs scattered into a padded ∂x, or
//! ∂cols = dz · kernelᵀ scattered back by col2im (which every shape can run).

use rayon::prelude::*;

use super::scratch::with_scratch;
use super::TILE_ROWS;
use crate::error::Result;
use crate::kernels::conv::{col2im, Geometry};
use crate::kernels::conv_implicit::Implicit;
use crate::kernels::conv_scatter::Scatter;
use crate::kernels::gemm::{matmul_single_thread, Op};
use crate::memory::ensure_len;

/// How a convolution computes ∂x.
#[derive(Default)]
enum Method {
    /// The convolution of the padded output gradient with the flipped kernel, where it wastes
    /// little (see [`flipped_pays`]).
    Flipped(Implicit),
    /// Kernel-row runs scattered into a padded ∂x, where kernel rows are short.
    Scatter(Scatter),
    /// ∂cols = dz · kernelᵀ, then col2im.
    #[default]
    Col2im,
}

/// ∂x's method and the buffers it reuses: apart from the rest of the layer so that ∂x and the
/// weight gradients, independent of each other, run side by side.
#[derive(Default)]
pub(super) struct InputGradient {
    method: Method,
    packed: Vec<f32>,
    /// The flipped kernel on the way to being packed.
    flipped_kernel: Vec<f32>,
    dcols: Vec<f32>,
}

impl InputGradient {
    /// The fastest method for the shape: the flipped convolution where the forward's implicit
    /// GEMM has one that pays, else the scatter where it applies, else col2im.
    pub fn new(g: &Geometry, implicit: Option<&Implicit>, filters: usize) -> Self {
        let flipped = implicit
            .and_then(|i| i.input_gradient())
            .filter(|flipped| flipped_pays(g, flipped));
        let method = match (flipped, Scatter::new(g, filters)) {
            (Some(flipped), _) => Method::Flipped(flipped),
            (None, Some(scatter)) => Method::Scatter(scatter),
            (None, None) => Method::Col2im,
        };
        InputGradient {
            method,
            ..Default::default()
        }
    }

    /// ∂x from the output gradient `dz`, by the method chosen for this convolution's shape.
    pub fn compute(
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
            Method::Flipped(d) => {
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
            Method::Scatter(s) => {
                ensure_len(&mut self.packed, s.packed_kernel_len())?;
                s.pack_kernel(kernel, &mut self.packed);
                let packed = &self.packed;
                dz_images.zip(dx_images).try_for_each(|(dz, dx)| {
                    with_scratch(s.plane_len(), |plane| {
                        s.input_gradient(dz, packed, plane, dx)
                    })
                })
            }
            Method::Col2im => self.col2im(g, filters, kernel, dz, dx),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::conv::reference::{input_gradient, values};
    use crate::layers::conv::testing::geometries;

    /// Every method that applies to `g`, whether or not it is the one chosen.
    fn methods(g: &Geometry, filters: usize) -> Vec<Method> {
        let mut methods = vec![Method::Col2im];
        let flipped = Implicit::new(g, filters).and_then(|i| i.input_gradient());
        methods.extend(flipped.map(Method::Flipped));
        methods.extend(Scatter::new(g, filters).map(Method::Scatter));
        methods
    }

    #[test]
    fn each_method_matches_col2im_of_dz_times_the_kernel() {
        let batch = 3;
        let mut tried = [0; 3];
        for (g, filters) in geometries() {
            let kernel = values(g.field() * filters, 0.23);
            let dz = values(batch * g.pixels() * filters, 0.31);
            let expected: Vec<f32> = dz
                .chunks(g.pixels() * filters)
                .flat_map(|dz| input_gradient(&g, &kernel, dz, filters))
                .collect();
            for method in methods(&g, filters) {
                tried[match method {
                    Method::Col2im => 0,
                    Method::Flipped(_) => 1,
                    Method::Scatter(_) => 2,
                }] += 1;
                let mut state = InputGradient {
                    method,
                    ..Default::default()
                };
                let mut dx = vec![f32::NAN; expected.len()];
                state.compute(&g, filters, &kernel, &dz, &mut dx).unwrap();
                for (a, b) in dx.iter().zip(&expected) {
                    assert!((a - b).abs() < 1e-4 * (1.0 + b.abs()), "{g:?}: {a} vs {b}");
                }
            }
        }
        // Every method met at least one shape (the flipped one needs AVX2).
        #[cfg(target_arch = "x86_64")]
        let avx2 = is_x86_feature_detected!("avx2");
        #[cfg(not(target_arch = "x86_64"))]
        let avx2 = false;
        assert!(
            tried[0] > 0 && tried[2] > 0 && (tried[1] > 0 || !avx2),
            "{tried:?}"
        );
    }

    #[test]
    fn the_flipped_convolution_is_chosen_only_where_it_pays() {
        use crate::kernels::conv::{Axis, Padding};
        let square = |n, k, c, padding| Geometry {
            rows: Axis::new(n, k, 1, 1, padding).unwrap(),
            cols: Axis::new(n, k, 1, 1, padding).unwrap(),
            channels: c,
        };
        // W3's "same" 3x3 of 16 channels: all useful. LeNet's conv2: 38 %.
        let w3 = square(32, 3, 16, Padding::Same);
        let lenet = square(14, 5, 6, Padding::Valid);
        if let Some(flipped) = Implicit::new(&w3, 32).and_then(|i| i.input_gradient()) {
            assert!(flipped_pays(&w3, &flipped));
        }
        if let Some(flipped) = Implicit::new(&lenet, 16).and_then(|i| i.input_gradient()) {
            assert!(!flipped_pays(&lenet, &flipped));
        }
    }
}
