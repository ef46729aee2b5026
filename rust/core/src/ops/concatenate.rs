//! `Concatenate(axis)`: the inputs side by side along one axis (`keras/src/layers/merging/
//! concatenate.py`). `axis` counts the batch axis as Keras does (`-1`, the default, is the
//! last); the batch axis itself cannot be joined. The backward hands each input its slice.

use serde::{Deserialize, Serialize};

use super::Combine;
use crate::error::{CoreError, Result};
use crate::memory::checked_volume;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConcatenateSpec {
    pub axis: i64,
}

pub struct Concatenate {
    output_shape: Vec<usize>,
    /// Values per sample before the axis (the count of runs), of the output.
    outer: usize,
    /// Each input's run: values from the axis on, per outer index.
    runs: Vec<usize>,
}

impl Concatenate {
    pub fn new(spec: &ConcatenateSpec, input_shapes: &[Vec<usize>]) -> Result<Self> {
        let mismatch = || {
            CoreError::shape(
                "inputs",
                format!(
                    "shapes that match except along axis {} (a `Concatenate` layer)",
                    spec.axis
                ),
                format!("{input_shapes:?}"),
            )
        };
        let Some(first) = input_shapes.first() else {
            return Err(CoreError::invalid("inputs", "at least 1 input", 0));
        };
        let rank = first.len() as i64;
        let full_axis = if spec.axis < 0 {
            spec.axis + rank + 1
        } else {
            spec.axis
        };
        if full_axis < 1 || full_axis > rank {
            return Err(CoreError::invalid(
                "axis",
                format!("an axis from 1 to {rank} or from -{rank} to -1 (not the batch axis)"),
                spec.axis,
            ));
        }
        let axis = (full_axis - 1) as usize;
        let mut output_shape = first.clone();
        output_shape[axis] = 0;
        for shape in input_shapes {
            let same_elsewhere = shape.len() == first.len()
                && shape
                    .iter()
                    .zip(first)
                    .enumerate()
                    .all(|(a, (d, f))| a == axis || d == f);
            if !same_elsewhere {
                return Err(mismatch());
            }
            output_shape[axis] += shape[axis];
        }
        let outer = checked_volume(&first[..axis])?;
        let runs = input_shapes
            .iter()
            .map(|s| checked_volume(&s[axis..]))
            .collect::<Result<_>>()?;
        checked_volume(&output_shape)?;
        Ok(Concatenate {
            output_shape,
            outer,
            runs,
        })
    }

    fn output_run(&self) -> usize {
        self.runs.iter().sum()
    }

    /// Values per sample before the axis (the count of runs), and each input's run: its values
    /// from the axis on, per outer index. The output's run is the runs' sum.
    pub fn layout(&self) -> (usize, &[usize]) {
        (self.outer, &self.runs)
    }
}

impl Combine for Concatenate {
    fn output_shape(&self) -> &[usize] {
        &self.output_shape
    }

    fn forward(&mut self, inputs: &[&[f32]], y: &mut [f32], batch: usize) -> Result<()> {
        let out_run = self.output_run();
        let mut offset = 0;
        for (input, &run) in inputs.iter().zip(&self.runs) {
            let rows = y[..batch * self.outer * out_run].chunks_mut(out_run);
            for (row, x) in rows.zip(input.chunks(run)) {
                row[offset..offset + run].copy_from_slice(x);
            }
            offset += run;
        }
        Ok(())
    }

    fn backward(
        &mut self,
        _: &[&[f32]],
        _: &[f32],
        dy: &mut [f32],
        dxs: &mut [Option<&mut [f32]>],
        batch: usize,
    ) -> Result<()> {
        let out_run = self.output_run();
        let mut offset = 0;
        for (dx, &run) in dxs.iter_mut().zip(&self.runs) {
            if let Some(dx) = dx.as_deref_mut() {
                let rows = dy[..batch * self.outer * out_run].chunks(out_run);
                for (row, d) in rows.zip(dx.chunks_mut(run)) {
                    d.copy_from_slice(&row[offset..offset + run]);
                }
            }
            offset += run;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn concatenate(axis: i64, shapes: &[Vec<usize>]) -> Result<Concatenate> {
        Concatenate::new(&ConcatenateSpec { axis }, shapes)
    }

    #[test]
    fn joins_along_the_axis_and_splits_the_gradient_back() {
        // Per sample (2, 1) and (2, 2) along the last axis: (2, 3).
        let mut c = concatenate(-1, &[vec![2, 1], vec![2, 2]]).unwrap();
        assert_eq!(c.output_shape(), [2, 3]);
        let (a, b) = (
            [1.0, 2.0, 10.0, 20.0],
            [3.0, 4.0, 5.0, 6.0, 30.0, 40.0, 50.0, 60.0],
        );
        let mut y = [0.0; 12];
        c.forward(&[&a, &b], &mut y, 2).unwrap();
        assert_eq!(
            y,
            [1.0, 3.0, 4.0, 2.0, 5.0, 6.0, 10.0, 30.0, 40.0, 20.0, 50.0, 60.0]
        );
        let (mut da, mut db) = ([0.0; 4], [0.0; 8]);
        c.backward(&[], &[], &mut y, &mut [Some(&mut da), Some(&mut db)], 2)
            .unwrap();
        assert_eq!((da, db), (a, b));
        // Along axis 1 (the first per-sample axis): (1, 2) and (2, 2) make (3, 2).
        let mut c = concatenate(1, &[vec![1, 2], vec![2, 2]]).unwrap();
        let mut y = [0.0; 6];
        c.forward(&[&[1.0, 2.0], &[3.0, 4.0, 5.0, 6.0]], &mut y, 1)
            .unwrap();
        assert_eq!(y, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    }

    #[test]
    fn shapes_that_differ_off_the_axis_or_the_batch_axis_are_refused() {
        assert!(concatenate(-1, &[vec![2, 1], vec![3, 1]]).is_err());
        assert!(concatenate(-1, &[vec![2, 1], vec![2]]).is_err());
        assert!(concatenate(0, &[vec![2], vec![2]]).is_err());
        assert!(concatenate(3, &[vec![2, 1], vec![2, 1]]).is_err());
        assert_eq!(
            concatenate(-2, &[vec![2, 1], vec![3, 1]])
                .unwrap()
                .output_shape(),
            [5, 1]
        );
    }
}
