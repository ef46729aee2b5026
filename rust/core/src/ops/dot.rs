//! `Dot(axes, normalize)`: per sample, the dot product of two inputs along one axis of each
//! (`keras/src/layers/merging/dot.py`, its `batch_dot`). With `x` of per-sample shape
//! `(P.., d, Q..)` and `y` of `(R.., d, S..)` the output is `(P.., Q.., R.., S..)`, or `(1,)`
//! where nothing is left:
//!
//! `out[p, q, r, s] = Σ_k x[p, k, q] · y[r, k, s]`.
//!
//! With `normalize`, each fiber along the axis is first scaled to unit length as Keras's
//! `normalize` does: by `min(1 / sqrt(Σ x²), 1e7)` (the output is then a cosine similarity).

use serde::{Deserialize, Serialize};

use super::Combine;
use crate::error::{CoreError, Result};
use crate::memory::{checked_volume, ensure_len};

/// Keras's `1 / epsilon()`: the largest scale `normalize` applies.
const MAX_INVERSE_NORM: f32 = 1e7;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DotSpec {
    /// The axis of each input, counting the batch axis as Keras does (negative from the end).
    pub axes: [i64; 2],
    pub normalize: bool,
}

/// One input's layout around its axis: `outer` fibers before it, `len` along it, `inner`
/// after it.
#[derive(Clone, Copy)]
struct Side {
    outer: usize,
    len: usize,
    inner: usize,
}

impl Side {
    fn new(shape: &[usize], axis: i64) -> Result<(Self, Vec<usize>)> {
        let rank = shape.len() as i64 + 1;
        let full = if axis < 0 { axis + rank } else { axis };
        if full < 1 || full >= rank {
            return Err(CoreError::invalid(
                "axes",
                format!("an axis from 1 to {} (not the batch axis)", rank - 1),
                axis,
            ));
        }
        let a = (full - 1) as usize;
        let side = Side {
            outer: checked_volume(&shape[..a])?,
            len: shape[a],
            inner: checked_volume(&shape[a + 1..])?,
        };
        let rest = [&shape[..a], &shape[a + 1..]].concat();
        Ok((side, rest))
    }

    fn size(&self) -> usize {
        self.outer * self.len * self.inner
    }

    /// Fibers along the axis per sample.
    fn fibers(&self) -> usize {
        self.outer * self.inner
    }

    /// Where value `k` of fiber `f` of sample `b` lies.
    fn at(&self, b: usize, f: usize, k: usize) -> usize {
        let (o, i) = (f / self.inner, f % self.inner);
        b * self.size() + (o * self.len + k) * self.inner + i
    }
}

pub struct Dot {
    x: Side,
    y: Side,
    normalize: bool,
    output_shape: Vec<usize>,
    /// Each fiber's scale, `x`'s then `y`'s, for the batch last run forward.
    scales: Vec<f32>,
}

impl Dot {
    pub fn new(spec: &DotSpec, input_shapes: &[Vec<usize>]) -> Result<Self> {
        let [a, b] = input_shapes else {
            return Err(CoreError::invalid(
                "inputs",
                "exactly 2 inputs (a `Dot` layer)",
                input_shapes.len(),
            ));
        };
        let (x, mut output_shape) = Side::new(a, spec.axes[0])?;
        let (y, y_rest) = Side::new(b, spec.axes[1])?;
        if x.len != y.len {
            return Err(CoreError::shape(
                "inputs",
                format!(
                    "sizes that match along axes {:?} (a `Dot` layer)",
                    spec.axes
                ),
                format!("{a:?} and {b:?}"),
            ));
        }
        output_shape.extend(y_rest);
        if output_shape.is_empty() {
            output_shape.push(1);
        }
        checked_volume(&output_shape)?;
        Ok(Dot {
            x,
            y,
            normalize: spec.normalize,
            output_shape,
            scales: Vec::new(),
        })
    }

    /// Each input's layout around its axis: `(outer, len, inner)`, the fibers before the axis,
    /// the values along it, and the values after it.
    pub fn sides(&self) -> [(usize, usize, usize); 2] {
        [self.x, self.y].map(|s| (s.outer, s.len, s.inner))
    }

    pub fn normalizes(&self) -> bool {
        self.normalize
    }

    /// Each fiber's scale over `batch` samples of `xs` and `ys` (1 without `normalize`).
    fn fill_scales(&mut self, xs: &[f32], ys: &[f32], batch: usize) -> Result<()> {
        let (nx, ny) = (batch * self.x.fibers(), batch * self.y.fibers());
        ensure_len(&mut self.scales, nx + ny)?;
        let (x_scales, y_scales) = self.scales[..nx + ny].split_at_mut(nx);
        for (side, values, scales) in [(self.x, xs, x_scales), (self.y, ys, y_scales)] {
            for (n, scale) in scales.iter_mut().enumerate() {
                let (b, f) = (n / side.fibers(), n % side.fibers());
                *scale = match self.normalize {
                    false => 1.0,
                    true => {
                        let sum: f32 = (0..side.len)
                            .map(|k| values[side.at(b, f, k)].powi(2))
                            .sum();
                        (1.0 / sum.sqrt()).min(MAX_INVERSE_NORM)
                    }
                };
            }
        }
        Ok(())
    }

    /// `Σ_k x[b, fx, k] · y[b, fy, k]`, unscaled.
    fn dot(&self, xs: &[f32], ys: &[f32], b: usize, fx: usize, fy: usize) -> f32 {
        (0..self.x.len)
            .map(|k| xs[self.x.at(b, fx, k)] * ys[self.y.at(b, fy, k)])
            .sum()
    }

    /// One input's gradient: `side`'s values are `mine`, the other input's are `theirs`;
    /// `mine_first` says whether this input's fibers index the output's rows.
    #[allow(clippy::too_many_arguments)]
    fn input_gradient(
        &self,
        (mine, theirs): (&[f32], &[f32]),
        (side, other): (Side, Side),
        (my_scales, their_scales): (&[f32], &[f32]),
        out: &[f32],
        dy: &[f32],
        dx: &mut [f32],
        (batch, mine_first): (usize, bool),
    ) {
        let size = self.output_shape.iter().product::<usize>();
        let at = |b: usize, f: usize, g: usize| match mine_first {
            true => b * size + f * other.fibers() + g,
            false => b * size + g * side.fibers() + f,
        };
        for b in 0..batch {
            for f in 0..side.fibers() {
                let scale = my_scales[b * side.fibers() + f];
                // Σ over the output of dy · out: the part of the gradient along the fiber.
                let along: f32 = match self.normalize && scale < MAX_INVERSE_NORM {
                    true => (0..other.fibers())
                        .map(|g| dy[at(b, f, g)] * out[at(b, f, g)])
                        .sum(),
                    false => 0.0,
                };
                for k in 0..side.len {
                    let du: f32 = (0..other.fibers())
                        .map(|g| {
                            let v =
                                theirs[other.at(b, g, k)] * their_scales[b * other.fibers() + g];
                            dy[at(b, f, g)] * v
                        })
                        .sum();
                    let i = side.at(b, f, k);
                    dx[i] = scale * (du - mine[i] * scale * along);
                }
            }
        }
    }
}

impl Combine for Dot {
    fn output_shape(&self) -> &[usize] {
        &self.output_shape
    }

    fn forward(&mut self, inputs: &[&[f32]], y: &mut [f32], batch: usize) -> Result<()> {
        let (xs, ys) = (inputs[0], inputs[1]);
        self.fill_scales(xs, ys, batch)?;
        let (fx, fy) = (self.x.fibers(), self.y.fibers());
        let (x_scales, y_scales) = self.scales.split_at(batch * fx);
        for b in 0..batch {
            for i in 0..fx {
                for j in 0..fy {
                    let scale = x_scales[b * fx + i] * y_scales[b * fy + j];
                    y[(b * fx + i) * fy + j] = self.dot(xs, ys, b, i, j) * scale;
                }
            }
        }
        Ok(())
    }

    fn backward(
        &mut self,
        inputs: &[&[f32]],
        out: &[f32],
        dy: &mut [f32],
        dxs: &mut [Option<&mut [f32]>],
        batch: usize,
    ) -> Result<()> {
        let (xs, ys) = (inputs[0], inputs[1]);
        let (x_scales, y_scales) = self.scales.split_at(batch * self.x.fibers());
        let y_scales = &y_scales[..batch * self.y.fibers()];
        if let Some(dx) = dxs[0].as_deref_mut() {
            let sides = (self.x, self.y);
            let scales = (x_scales, y_scales);
            self.input_gradient((xs, ys), sides, scales, out, dy, dx, (batch, true));
        }
        if let Some(dx) = dxs[1].as_deref_mut() {
            let sides = (self.y, self.x);
            let scales = (y_scales, x_scales);
            self.input_gradient((ys, xs), sides, scales, out, dy, dx, (batch, false));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dot(axes: [i64; 2], normalize: bool, shapes: &[Vec<usize>]) -> Result<Dot> {
        Dot::new(&DotSpec { axes, normalize }, shapes)
    }

    #[test]
    fn shapes_follow_keras_batch_dot() {
        let shape = |axes, a: &[usize], b: &[usize]| {
            dot(axes, false, &[a.to_vec(), b.to_vec()])
                .map(|d| d.output_shape().to_vec())
                .ok()
        };
        assert_eq!(shape([1, 1], &[8], &[8]), Some(vec![1]));
        assert_eq!(shape([2, 2], &[3, 5], &[4, 5]), Some(vec![3, 4]));
        assert_eq!(shape([1, 2], &[5, 2], &[2, 5]), Some(vec![2, 2]));
        assert_eq!(shape([-1, -1], &[20], &[30, 20]), Some(vec![30]));
        assert_eq!(shape([1, 1], &[8], &[7]), None);
        assert_eq!(shape([0, 1], &[8], &[8]), None);
        assert!(dot([1, 1], false, &[vec![2]]).is_err());
    }

    #[test]
    fn forward_is_the_per_sample_contraction() {
        // Keras's docstring example: x = arange(10).reshape(1, 5, 2),
        // y = arange(10, 20).reshape(1, 2, 5), axes (1, 2): [[260, 360], [320, 445]].
        let mut d = dot([1, 2], false, &[vec![5, 2], vec![2, 5]]).unwrap();
        let x: Vec<f32> = (0..10).map(|v| v as f32).collect();
        let y: Vec<f32> = (10..20).map(|v| v as f32).collect();
        let mut out = [0.0; 4];
        d.forward(&[&x, &y], &mut out, 1).unwrap();
        assert_eq!(out, [260.0, 360.0, 320.0, 445.0]);
    }

    #[test]
    fn normalized_vectors_give_their_cosine() {
        let mut d = dot([1, 1], true, &[vec![2], vec![2]]).unwrap();
        let mut out = [0.0; 2];
        d.forward(&[&[3.0, 4.0, 1.0, 0.0], &[4.0, 3.0, 0.0, 0.0]], &mut out, 2)
            .unwrap();
        assert!((out[0] - 24.0 / 25.0).abs() < 1e-6);
        assert_eq!(out[1], 0.0);
    }

    /// Checks both inputs' gradients of `Σ out · w` against central differences.
    fn check_gradients(axes: [i64; 2], normalize: bool, a: Vec<usize>, b: Vec<usize>) {
        let batch = 2;
        let mut d = dot(axes, normalize, &[a.clone(), b.clone()]).unwrap();
        let (na, nb) = (
            batch * a.iter().product::<usize>(),
            batch * b.iter().product::<usize>(),
        );
        let values = |n: usize, seed: f32| -> Vec<f32> {
            (0..n).map(|i| ((i as f32 + seed) * 0.731).sin()).collect()
        };
        let (x, y) = (values(na, 0.3), values(nb, 1.7));
        let size = batch * d.output_shape().iter().product::<usize>();
        let w = values(size, 4.1);
        let loss = |d: &mut Dot, x: &[f32], y: &[f32]| -> f64 {
            let mut out = vec![0.0; size];
            d.forward(&[x, y], &mut out, batch).unwrap();
            out.iter()
                .zip(&w)
                .map(|(o, w)| (*o as f64) * (*w as f64))
                .sum()
        };
        let mut out = vec![0.0; size];
        d.forward(&[&x, &y], &mut out, batch).unwrap();
        let (mut dx, mut dy) = (vec![0.0; na], vec![0.0; nb]);
        d.backward(
            &[&x, &y],
            &out,
            &mut w.clone(),
            &mut [Some(&mut dx), Some(&mut dy)],
            batch,
        )
        .unwrap();
        let h = 1e-3;
        for (which, analytic) in [(0, &dx), (1, &dy)] {
            for i in 0..analytic.len() {
                let (mut xp, mut yp) = (x.clone(), y.clone());
                let (mut xm, mut ym) = (x.clone(), y.clone());
                match which {
                    0 => (xp[i] += h, xm[i] -= h),
                    _ => (yp[i] += h, ym[i] -= h),
                };
                let numeric = (loss(&mut d, &xp, &yp) - loss(&mut d, &xm, &ym)) / (2.0 * h as f64);
                let got = analytic[i] as f64;
                assert!(
                    (got - numeric).abs() < 2e-3 * (1.0 + numeric.abs()),
                    "input {which}, value {i}: {got} against {numeric}"
                );
            }
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        check_gradients([1, 1], false, vec![4], vec![4]);
        check_gradients([2, 2], false, vec![3, 4], vec![2, 4]);
        check_gradients([1, 2], false, vec![3, 2, 2], vec![2, 3]);
        check_gradients([1, 1], true, vec![4], vec![4]);
        check_gradients([2, 1], true, vec![3, 4], vec![4, 2]);
    }
}
