//! Keras's shape rules for a convolution: its geometry over the input, its kernel's shape and
//! its output's. A 1D convolution is a 2D one of height 1, with a kernel of height 1.

use super::ConvSpec;
use crate::error::{CoreError, Result};
use crate::kernels::conv::{Axis, Geometry, Padding};

pub(super) struct Shapes {
    pub geometry: Geometry,
    /// `(k, in, filters)` or `(kh, kw, in, filters)`.
    pub kernel: Vec<usize>,
    pub output: Vec<usize>,
}

/// The shapes of `spec` on samples of `input_shape` (spatial axes, then channels), or the
/// error Keras would raise.
pub(super) fn shapes(spec: &ConvSpec, input_shape: &[usize]) -> Result<Shapes> {
    let rank = spec.kernel_size.len();
    if !(1..=2).contains(&rank) || spec.strides.len() != rank || spec.dilation_rate.len() != rank {
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
    let mut kernel = spec.kernel_size.clone();
    kernel.extend([c, spec.filters]);
    let mut output = if rank == 1 {
        vec![cols.output]
    } else {
        vec![rows.output, cols.output]
    };
    output.push(spec.filters);
    Ok(Shapes {
        geometry: Geometry {
            rows,
            cols,
            channels: c,
        },
        kernel,
        output,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::CoreError;
    use crate::layers::conv::testing::spec;

    #[test]
    fn output_and_kernel_shapes_follow_keras() {
        let s = shapes(&spec(6, &[5, 5], &[1, 1], Padding::Valid), &[32, 32, 1]).unwrap();
        assert_eq!((s.output, s.kernel), (vec![28, 28, 6], vec![5, 5, 1, 6]));
        let s = shapes(&spec(4, &[3, 3], &[2, 2], Padding::Same), &[7, 6, 2]).unwrap();
        assert_eq!((s.output, s.kernel), (vec![4, 3, 4], vec![3, 3, 2, 4]));
        // Conv1D: a row of height 1; causal padding pads the start only.
        let s = shapes(&spec(3, &[4], &[1], Padding::Causal), &[10, 2]).unwrap();
        assert_eq!((s.output, s.kernel), (vec![10, 3], vec![4, 2, 3]));
        assert_eq!((s.geometry.rows.input, s.geometry.cols.pad_before), (1, 3));
    }

    #[test]
    fn what_keras_refuses_is_an_error_naming_the_argument() {
        let invalid = |spec: ConvSpec, input: &[usize]| match shapes(&spec, input) {
            Err(CoreError::InvalidArgument { name, .. }) => name,
            Err(CoreError::ShapeMismatch { name, .. }) => name,
            other => panic!("{:?}", other.map(|s| s.output)),
        };
        let causal_2d = spec(2, &[3, 3], &[1, 1], Padding::Causal);
        assert_eq!(invalid(causal_2d, &[8, 8, 1]), "padding");
        assert_eq!(
            invalid(spec(0, &[3], &[1], Padding::Valid), &[8, 1]),
            "filters"
        );
        assert_eq!(
            invalid(spec(2, &[3, 3], &[1, 1], Padding::Valid), &[8, 1]),
            "input_shape"
        );
        let too_big = shapes(&spec(2, &[9, 9], &[1, 1], Padding::Valid), &[8, 8, 1]);
        assert!(too_big.is_err());
        let mut mismatched = spec(2, &[3, 3], &[1, 1], Padding::Valid);
        mismatched.strides = vec![1];
        assert!(matches!(
            shapes(&mismatched, &[8, 8, 1]),
            Err(CoreError::InvalidSpec(_))
        ));
    }
}
