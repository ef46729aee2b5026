//! `Add`, `Subtract`, `Multiply`, `Average`, `Maximum`, `Minimum`: element by element over
//! inputs whose per-sample shapes broadcast as Keras broadcasts them (a lower-rank input gains
//! leading axes of 1, then an axis of 1 stretches to the other inputs': `(8, 8, 16)` with
//! `(16,)` or `(1, 1, 16)`). The inputs combine left to right, as Keras's `_merge_function`
//! folds them, so the rounding is Keras's; `Maximum` and `Minimum` send a tie's gradient to the
//! first input that holds the extreme, as TensorFlow's gradients of a fold do.
//!
//! A merge may end in an activation whose derivative follows from its output (the relu after a
//! residual `Add`): the graph fuses an `Activation` layer into the merge it follows (see
//! `graph::fuse`), which then applies it chunk by chunk while the values are in cache and keeps
//! no pre-activations.

use serde::{Deserialize, Serialize};

use super::Combine;
use crate::error::{CoreError, Result};
use crate::kernels::activation::Activation;
use crate::memory::{checked_volume, try_filled};

/// Output values per chunk of the forward's last steps (the mean, a fused activation): a chunk
/// stays in the L1 cache.
const CHUNK: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MergeOp {
    Add,
    Subtract,
    Multiply,
    Average,
    Maximum,
    Minimum,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MergeSpec {
    pub op: MergeOp,
    /// An activation applied to the result (fused by the graph; see the module's notes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activation: Option<Activation>,
}

impl MergeSpec {
    pub fn new(op: MergeOp) -> Self {
        MergeSpec {
            op,
            activation: None,
        }
    }
}

/// How one input's values line up with the output's, within a sample.
struct Operand {
    /// Values per sample.
    size: usize,
    /// For each output value of a sample, the input value it reads; `None` where the shapes are
    /// the same (the identity).
    map: Option<Vec<u32>>,
}

impl Operand {
    fn index(&self, e: usize) -> usize {
        self.map.as_ref().map_or(e, |map| map[e] as usize)
    }
}

pub struct Merge {
    op: MergeOp,
    activation: Option<Activation>,
    output_shape: Vec<usize>,
    output_size: usize,
    operands: Vec<Operand>,
}

impl Merge {
    pub fn new(spec: &MergeSpec, input_shapes: &[Vec<usize>]) -> Result<Self> {
        let op = spec.op;
        if input_shapes.is_empty() || (op == MergeOp::Subtract && input_shapes.len() != 2) {
            let expected = match op {
                MergeOp::Subtract => "exactly 2 inputs",
                _ => "at least 1 input",
            };
            return Err(CoreError::invalid("inputs", expected, input_shapes.len()));
        }
        let output_shape = broadcast_shape(input_shapes)?;
        let output_size = checked_volume(&output_shape)?;
        if output_size > u32::MAX as usize {
            return Err(CoreError::invalid(
                "inputs",
                "fewer than 2**32 values per sample",
                output_size,
            ));
        }
        let operands = input_shapes
            .iter()
            .map(|shape| operand(shape, &output_shape, output_size))
            .collect::<Result<_>>()?;
        if let Some(activation) = spec.activation {
            if !activation.is_elementwise_from_output() {
                return Err(CoreError::invalid(
                    "activation",
                    "relu, sigmoid, tanh or elu (an activation a merge can apply in place)",
                    format!("{activation:?}"),
                ));
            }
        }
        Ok(Merge {
            op,
            activation: spec.activation,
            output_shape,
            output_size,
            operands,
        })
    }

    pub fn op(&self) -> MergeOp {
        self.op
    }

    pub fn activation(&self) -> Option<Activation> {
        self.activation
    }

    /// Per input: its values per sample, and for each output value of a sample the input
    /// value it reads (`None` where the shapes are the same: the identity).
    pub fn operands(&self) -> impl Iterator<Item = (usize, Option<&[u32]>)> {
        self.operands.iter().map(|o| (o.size, o.map.as_deref()))
    }

    /// The fold's last steps on `out`, some output values: `Average` divides by the count of
    /// `inputs`, then the fused activation.
    fn finish(&self, out: &mut [f32], inputs: usize) {
        if self.op == MergeOp::Average {
            let n = inputs as f32;
            out.iter_mut().for_each(|v| *v /= n);
        }
        if let Some(activation) = self.activation {
            Activation::apply_chunk(activation, out);
        }
    }

    /// `dy` through the fused activation, in place: from the output alone, which stands for
    /// the pre-activations too.
    fn activation_backward(&self, y: &[f32], dy: &mut [f32], batch: usize) {
        if let Some(activation) = self.activation {
            let len = batch * self.output_size;
            activation.backward(&y[..len], &y[..len], &mut dy[..len], 1);
        }
    }

    /// What input `i` holds at output value `e` of sample `b`.
    fn value(&self, inputs: &[&[f32]], i: usize, b: usize, e: usize) -> f32 {
        let operand = &self.operands[i];
        inputs[i][b * operand.size + operand.index(e)]
    }

    /// The first input that holds the sample's extreme at `e` (ties go to the earlier input).
    fn winner(&self, inputs: &[&[f32]], b: usize, e: usize) -> usize {
        let mut best = (0, self.value(inputs, 0, b, e));
        for i in 1..inputs.len() {
            let v = self.value(inputs, i, b, e);
            let better = match self.op {
                MergeOp::Maximum => v > best.1,
                _ => v < best.1,
            };
            if better {
                best = (i, v);
            }
        }
        best.0
    }

    /// ∂y/∂input `i` at output value `e` of sample `b`, times `g`.
    fn local_gradient(&self, inputs: &[&[f32]], i: usize, b: usize, e: usize, g: f32) -> f32 {
        let n = inputs.len();
        match self.op {
            MergeOp::Add => g,
            MergeOp::Subtract => {
                if i == 0 {
                    g
                } else {
                    -g
                }
            }
            MergeOp::Average => g / n as f32,
            MergeOp::Multiply => (0..n)
                .filter(|&j| j != i)
                .fold(g, |acc, j| acc * self.value(inputs, j, b, e)),
            MergeOp::Maximum | MergeOp::Minimum => {
                if self.winner(inputs, b, e) == i {
                    g
                } else {
                    0.0
                }
            }
        }
    }
}

impl Combine for Merge {
    fn output_shape(&self) -> &[usize] {
        &self.output_shape
    }

    fn forward(&mut self, inputs: &[&[f32]], y: &mut [f32], batch: usize) -> Result<()> {
        let y = &mut y[..batch * self.output_size];
        if self.operands.iter().all(|o| o.map.is_none()) {
            // Inputs of the output's shape: one pass, chunk by chunk while it is in cache.
            for (c, out) in y.chunks_mut(CHUNK).enumerate() {
                let range = c * CHUNK..c * CHUNK + out.len();
                let first = &inputs[0][range.clone()];
                match &inputs[1..] {
                    [] => out.copy_from_slice(first),
                    [second, rest @ ..] => {
                        fold_pair(self.op, out, first, &second[range.clone()]);
                        for input in rest {
                            fold(self.op, out, input[range.clone()].iter().copied());
                        }
                    }
                }
                self.finish(out, inputs.len());
            }
            return Ok(());
        }
        let size = self.output_size;
        for (i, input) in inputs.iter().enumerate() {
            let operand = &self.operands[i];
            for (b, out) in y.chunks_mut(size).enumerate() {
                let x = &input[b * operand.size..(b + 1) * operand.size];
                match (i, &operand.map) {
                    (0, None) => out.copy_from_slice(x),
                    (0, Some(map)) => out
                        .iter_mut()
                        .zip(map)
                        .for_each(|(o, &m)| *o = x[m as usize]),
                    (_, None) => fold(self.op, out, x.iter().copied()),
                    (_, Some(map)) => fold(self.op, out, map.iter().map(|&m| x[m as usize])),
                }
            }
        }
        for out in y.chunks_mut(CHUNK) {
            self.finish(out, inputs.len());
        }
        Ok(())
    }

    fn passes_gradient_through(&mut self, y: &[f32], dy: &mut [f32], batch: usize) -> bool {
        let through = self.op == MergeOp::Add && self.operands.iter().all(|o| o.map.is_none());
        if through {
            self.activation_backward(y, dy, batch);
        }
        through
    }

    fn backward(
        &mut self,
        inputs: &[&[f32]],
        y: &[f32],
        dy: &mut [f32],
        dxs: &mut [Option<&mut [f32]>],
        batch: usize,
    ) -> Result<()> {
        let size = self.output_size;
        self.activation_backward(y, dy, batch);
        let dy = &*dy;
        for (i, dx) in dxs.iter_mut().enumerate() {
            let Some(dx) = dx.as_deref_mut() else {
                continue;
            };
            let operand = &self.operands[i];
            let dx = &mut dx[..batch * operand.size];
            let dy = &dy[..batch * size];
            let n = inputs.len() as f32;
            match (self.op, &operand.map) {
                (MergeOp::Add, None) => {
                    dx.copy_from_slice(dy);
                    continue;
                }
                (MergeOp::Subtract, None) => {
                    let sign = if i == 0 { 1.0 } else { -1.0 };
                    dx.iter_mut().zip(dy).for_each(|(d, &g)| *d = sign * g);
                    continue;
                }
                (MergeOp::Average, None) => {
                    dx.iter_mut().zip(dy).for_each(|(d, &g)| *d = g / n);
                    continue;
                }
                (_, Some(_)) => dx.fill(0.0),
                _ => {}
            }
            for b in 0..batch {
                let dy = &dy[b * size..(b + 1) * size];
                let dx = &mut dx[b * operand.size..(b + 1) * operand.size];
                for (e, &g) in dy.iter().enumerate() {
                    let value = self.local_gradient(inputs, i, b, e, g);
                    match &operand.map {
                        None => dx[e] = value,
                        Some(map) => dx[map[e] as usize] += value,
                    }
                }
            }
        }
        Ok(())
    }
}

/// Runs `$body` with `$f` bound to `op` as a function of two values: one loop per op, each
/// compiled with its operation inlined.
macro_rules! with_op {
    ($op:expr, $f:ident => $body:expr) => {
        match $op {
            MergeOp::Add | MergeOp::Average => {
                let $f = |a: f32, b: f32| a + b;
                $body
            }
            MergeOp::Subtract => {
                let $f = |a: f32, b: f32| a - b;
                $body
            }
            MergeOp::Multiply => {
                let $f = |a: f32, b: f32| a * b;
                $body
            }
            MergeOp::Maximum => {
                let $f = |a: f32, b: f32| a.max(b);
                $body
            }
            MergeOp::Minimum => {
                let $f = |a: f32, b: f32| a.min(b);
                $body
            }
        }
    };
}

/// `out = out ∘ values`, element by element: one step of the left-to-right fold.
fn fold(op: MergeOp, out: &mut [f32], values: impl Iterator<Item = f32>) {
    with_op!(op, f => out.iter_mut().zip(values).for_each(|(o, v)| *o = f(*o, v)))
}

/// `out = first ∘ second`: the fold's first step, without copying `first` into `out`.
fn fold_pair(op: MergeOp, out: &mut [f32], first: &[f32], second: &[f32]) {
    let pairs = out.iter_mut().zip(first.iter().zip(second));
    with_op!(op, f => pairs.for_each(|(o, (&a, &b))| *o = f(a, b)))
}

/// The shape the inputs broadcast to: aligned at their last axes, each axis the inputs' common
/// size, where an input's 1 (or a missing leading axis) stretches.
pub fn broadcast_shape(shapes: &[Vec<usize>]) -> Result<Vec<usize>> {
    let rank = shapes.iter().map(Vec::len).max().unwrap_or(0);
    let mut out = vec![1usize; rank];
    for shape in shapes {
        for (axis, &d) in shape.iter().enumerate() {
            let o = &mut out[rank - shape.len() + axis];
            if *o == 1 {
                *o = d;
            } else if d != 1 && d != *o {
                return Err(CoreError::shape(
                    "inputs",
                    "shapes that broadcast together",
                    format!("{shapes:?}"),
                ));
            }
        }
    }
    Ok(out)
}

fn operand(shape: &[usize], output_shape: &[usize], output_size: usize) -> Result<Operand> {
    let size = checked_volume(shape)?;
    if shape == output_shape {
        return Ok(Operand { size, map: None });
    }
    // The input's stride along each output axis: 0 where it broadcasts.
    let lead = output_shape.len() - shape.len();
    let mut strides = vec![0usize; output_shape.len()];
    let mut stride = 1;
    for (axis, &d) in shape.iter().enumerate().rev() {
        if d != 1 {
            strides[lead + axis] = stride;
        }
        stride *= d;
    }
    let mut map = try_filled(output_size, 0u32)?;
    let mut coordinate = vec![0usize; output_shape.len()];
    for entry in map.iter_mut() {
        *entry = coordinate
            .iter()
            .zip(&strides)
            .map(|(c, s)| c * s)
            .sum::<usize>() as u32;
        for axis in (0..output_shape.len()).rev() {
            coordinate[axis] += 1;
            if coordinate[axis] < output_shape[axis] {
                break;
            }
            coordinate[axis] = 0;
        }
    }
    Ok(Operand {
        size,
        map: Some(map),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn merge(op: MergeOp, shapes: &[&[usize]]) -> Merge {
        let shapes: Vec<Vec<usize>> = shapes.iter().map(|s| s.to_vec()).collect();
        Merge::new(&MergeSpec::new(op), &shapes).unwrap()
    }

    fn values(n: usize, seed: f32) -> Vec<f32> {
        (0..n).map(|i| ((i as f32 + seed) * 0.37).sin()).collect()
    }

    /// Σ y·r: its gradient with respect to y is r.
    fn objective(m: &mut Merge, inputs: &[Vec<f32>], r: &[f32], batch: usize) -> f64 {
        let refs: Vec<&[f32]> = inputs.iter().map(Vec::as_slice).collect();
        let mut y = vec![0.0; r.len()];
        m.forward(&refs, &mut y, batch).unwrap();
        y.iter().zip(r).map(|(&y, &r)| y as f64 * r as f64).sum()
    }

    #[test]
    fn shapes_broadcast_as_keras_expands_them() {
        assert_eq!(
            broadcast_shape(&[vec![8, 8, 16], vec![16]]).unwrap(),
            [8, 8, 16]
        );
        assert_eq!(
            broadcast_shape(&[vec![8, 8, 16], vec![1, 1, 16]]).unwrap(),
            [8, 8, 16]
        );
        assert_eq!(broadcast_shape(&[vec![3, 1], vec![1, 4]]).unwrap(), [3, 4]);
        assert!(broadcast_shape(&[vec![8, 16], vec![8, 15]]).is_err());
        assert!(Merge::new(&MergeSpec::new(MergeOp::Subtract), &vec![vec![2]; 3]).is_err());
        assert!(Merge::new(&MergeSpec::new(MergeOp::Add), &[]).is_err());
    }

    #[test]
    fn forward_folds_the_inputs_left_to_right() {
        let inputs = [vec![1.0, 5.0, -2.0, 4.0], vec![3.0, 5.0, -1.0, 0.5]];
        let refs: Vec<&[f32]> = inputs.iter().map(Vec::as_slice).collect();
        let cases = [
            (MergeOp::Add, [4.0, 10.0, -3.0, 4.5]),
            (MergeOp::Subtract, [-2.0, 0.0, -1.0, 3.5]),
            (MergeOp::Multiply, [3.0, 25.0, 2.0, 2.0]),
            (MergeOp::Average, [2.0, 5.0, -1.5, 2.25]),
            (MergeOp::Maximum, [3.0, 5.0, -1.0, 4.0]),
            (MergeOp::Minimum, [1.0, 5.0, -2.0, 0.5]),
        ];
        for (op, expected) in cases {
            let mut y = [0.0; 4];
            merge(op, &[&[2], &[2]]).forward(&refs, &mut y, 2).unwrap();
            assert_eq!(y, expected, "{op:?}");
        }
        // Three inputs fold left to right; one input passes through.
        let third = [0.5, 1.0, 2.0, -4.0];
        let mut y = [0.0; 4];
        let three = [refs[0], refs[1], &third[..]];
        let mut m = merge(MergeOp::Add, &[&[2], &[2], &[2]]);
        m.forward(&three, &mut y, 2).unwrap();
        assert_eq!(y, [4.5, 11.0, -1.0, 0.5]);
        merge(MergeOp::Maximum, &[&[2]])
            .forward(&refs[..1], &mut y, 2)
            .unwrap();
        assert_eq!(y, [1.0, 5.0, -2.0, 4.0]);
        // (2, 3) + (3,): the row repeats down each sample.
        let mut m = merge(MergeOp::Add, &[&[2, 3], &[3]]);
        let (a, b) = (
            (0..6).map(|v| v as f32).collect::<Vec<_>>(),
            vec![10.0, 20.0, 30.0],
        );
        let mut y = [0.0; 6];
        m.forward(&[&a, &b], &mut y, 1).unwrap();
        assert_eq!(y, [10.0, 21.0, 32.0, 13.0, 24.0, 35.0]);
    }

    #[test]
    fn backward_matches_finite_differences_with_broadcasting() {
        let shapes: [&[usize]; 3] = [&[2, 3, 4], &[4], &[2, 1, 4]];
        for op in [
            MergeOp::Add,
            MergeOp::Multiply,
            MergeOp::Average,
            MergeOp::Maximum,
            MergeOp::Minimum,
        ] {
            let mut m = merge(op, &shapes);
            let batch = 3;
            let inputs: Vec<Vec<f32>> = shapes
                .iter()
                .enumerate()
                .map(|(i, s)| values(batch * s.iter().product::<usize>(), i as f32 * 7.0))
                .collect();
            let r = values(batch * 24, 100.0);
            let refs: Vec<&[f32]> = inputs.iter().map(Vec::as_slice).collect();
            let mut dxs: Vec<Vec<f32>> = inputs.iter().map(|x| vec![f32::NAN; x.len()]).collect();
            {
                let mut targets: Vec<Option<&mut [f32]>> =
                    dxs.iter_mut().map(|d| Some(d.as_mut_slice())).collect();
                m.backward(&refs, &[], &mut r.clone(), &mut targets, batch)
                    .unwrap();
            }
            for (i, dx) in dxs.iter().enumerate() {
                for j in 0..dx.len() {
                    let h = 1e-4;
                    let mut plus = inputs.clone();
                    plus[i][j] += h;
                    let mut minus = inputs.clone();
                    minus[i][j] -= h;
                    let numeric = (objective(&mut m, &plus, &r, batch)
                        - objective(&mut m, &minus, &r, batch))
                        / (2.0 * h as f64);
                    assert!(
                        (numeric - dx[j] as f64).abs() < 5e-3,
                        "{op:?} input {i} value {j}: {numeric} vs {}",
                        dx[j]
                    );
                }
            }
        }
    }

    #[test]
    fn a_tie_sends_the_gradient_to_the_first_input() {
        let mut m = merge(MergeOp::Maximum, &[&[1], &[1], &[1]]);
        let inputs = [vec![2.0], vec![3.0], vec![3.0]];
        let refs: Vec<&[f32]> = inputs.iter().map(Vec::as_slice).collect();
        let mut d = [[9.0f32]; 3];
        let [a, b, c] = &mut d;
        m.backward(&refs, &[], &mut [1.0], &mut [Some(a), Some(b), Some(c)], 1)
            .unwrap();
        assert_eq!(d, [[0.0], [1.0], [0.0]]);
    }
}
