//! Single kernels: what `pynn.activations`, losses and metrics compute when called on their own,
//! and what the test suite checks against NumPy references.

use numpy::{
    IntoPyArray, PyArray1, PyArray2, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods,
};
use pynn_core::kernels::activation::Activation;
use pynn_core::kernels::gemm::{self, Op};
use pynn_core::kernels::loss::Loss;
use pynn_core::metrics::Metric;
use pynn_core::optim::OptimizerSpec;
use pynn_core::parallel;
use pyo3::prelude::*;

use crate::errors;

/// Two float32 arrays returned together (values and gradients).
type ArrayPair<'py> = (Bound<'py, PyArray1<f32>>, Bound<'py, PyArray1<f32>>);

fn parse<T: serde::de::DeserializeOwned>(what: &str, json: &str) -> PyResult<T> {
    serde_json::from_str(json).map_err(|e| errors::spec(what, e))
}

fn slice<'a, D: numpy::ndarray::Dimension>(
    name: &str,
    array: &'a numpy::PyReadonlyArray<'_, f32, D>,
) -> PyResult<&'a [f32]> {
    array.as_slice().map_err(|e| errors::layout(name, e))
}

fn check_rows(name: &str, len: usize, width: usize) -> PyResult<()> {
    if width == 0 || !len.is_multiple_of(width) {
        return Err(pyo3::exceptions::PyValueError::new_err(format!(
            "`{name}` holds {len} values, not whole rows of {width}."
        )));
    }
    Ok(())
}

/// Checks that `y_pred` holds whole rows of `width` and `y_true` `t_width` values per row;
/// returns the number of rows.
fn check_targets(y_true: &[f32], y_pred: &[f32], width: usize, t_width: usize) -> PyResult<usize> {
    check_rows("y_pred", y_pred.len(), width)?;
    let rows = y_pred.len() / width;
    if y_true.len() != rows * t_width {
        return Err(pyo3::exceptions::PyValueError::new_err(format!(
            "`y_true` holds {} values; {rows} rows of `y_pred` need {}.",
            y_true.len(),
            rows * t_width
        )));
    }
    Ok(rows)
}

/// `(a, dz)`: the activation of `z` and, for upstream gradient `da`, the gradient `dz`.
#[pyfunction]
fn activation<'py>(
    py: Python<'py>,
    name: &str,
    z: PyReadonlyArray1<'_, f32>,
    da: PyReadonlyArray1<'_, f32>,
    width: usize,
) -> PyResult<ArrayPair<'py>> {
    let act: Activation = parse("activation", &format!("\"{name}\""))?;
    let (z, da) = (slice("z", &z)?, slice("da", &da)?);
    check_rows("z", z.len(), width)?;
    check_rows("da", da.len(), width)?;
    let (a, grad) = errors::catch_panic(|| {
        let mut a = vec![0.0; z.len()];
        act.forward(z, &mut a, width);
        let mut grad = da.to_vec();
        act.backward(z, &a, &mut grad, width);
        Ok((a, grad))
    })?;
    Ok((a.into_pyarray(py), grad.into_pyarray(py)))
}

/// `(loss of each row, ∂mean/∂y_pred)` for a loss spec (JSON).
#[pyfunction]
fn loss<'py>(
    py: Python<'py>,
    spec: &str,
    y_true: PyReadonlyArray1<'_, f32>,
    y_pred: PyReadonlyArray1<'_, f32>,
    width: usize,
) -> PyResult<ArrayPair<'py>> {
    let loss: Loss = parse("loss", spec)?;
    let (t, p) = (slice("y_true", &y_true)?, slice("y_pred", &y_pred)?);
    let t_width = loss.target_width(width);
    let rows = check_targets(t, p, width, t_width)?;
    loss.check_targets(t, width).map_err(errors::to_py)?;
    let (values, grad) = errors::catch_panic(|| {
        let mut grad = vec![0.0; p.len()];
        loss.evaluate(t, p, width, Some(&mut grad), 1.0 / rows as f32);
        let values: Vec<f32> = t
            .chunks(t_width)
            .zip(p.chunks(width))
            .map(|(t, p)| loss.evaluate(t, p, width, None, 0.0) as f32)
            .collect();
        Ok((values, grad))
    })?;
    Ok((values.into_pyarray(py), grad.into_pyarray(py)))
}

/// Each row's value of a metric spec (JSON).
#[pyfunction]
fn metric<'py>(
    py: Python<'py>,
    spec: &str,
    y_true: PyReadonlyArray1<'_, f32>,
    y_pred: PyReadonlyArray1<'_, f32>,
    width: usize,
) -> PyResult<Bound<'py, PyArray1<f32>>> {
    let metric: Metric = parse("metric", spec)?;
    let (t, p) = (slice("y_true", &y_true)?, slice("y_pred", &y_pred)?);
    let rows = check_targets(t, p, width, metric.target_width(width))?;
    let values = errors::catch_panic(|| {
        let mut values = vec![0.0; rows];
        metric.row_values(t, p, width, &mut values);
        Ok(values)
    })?;
    Ok(values.into_pyarray(py))
}

/// Applies one optimizer step per row of `grads` (`steps × len(weights)`) to `weights`; returns
/// the weights after each step, one row per step.
#[pyfunction]
fn optimizer_steps<'py>(
    py: Python<'py>,
    spec: &str,
    weights: PyReadonlyArray1<'_, f32>,
    grads: PyReadonlyArray1<'_, f32>,
) -> PyResult<Bound<'py, PyArray1<f32>>> {
    let spec: OptimizerSpec = parse("optimizer", spec)?;
    let (weights, grads) = (slice("weights", &weights)?, slice("grads", &grads)?);
    check_rows("grads", grads.len(), weights.len())?;
    let trajectory = errors::catch_panic(|| {
        let mut optimizer = spec.build(weights.len()).map_err(errors::to_py)?;
        let mut current = weights.to_vec();
        let mut trajectory = Vec::with_capacity(grads.len());
        for step in grads.chunks(weights.len()) {
            optimizer.step(&mut current, step);
            trajectory.extend_from_slice(&current);
        }
        Ok(trajectory)
    })?;
    Ok(trajectory.into_pyarray(py))
}

/// `a · b` for float32 matrices through the engine's GEMM on its threads: checked against NumPy
/// by the tests, and the sgemm reference of `benches/compare.py`.
#[pyfunction]
fn matmul<'py>(
    py: Python<'py>,
    a: PyReadonlyArray2<'_, f32>,
    b: PyReadonlyArray2<'_, f32>,
) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let ([m, k], [k_b, n]) = (a.shape().try_into().unwrap(), b.shape().try_into().unwrap());
    if k != k_b {
        return Err(pyo3::exceptions::PyValueError::new_err(format!(
            "`a` is {m}x{k} and `b` {k_b}x{n}: `b` needs {k} rows."
        )));
    }
    let (a, b) = (slice("a", &a)?, slice("b", &b)?);
    let mut c = vec![0.0f32; m * n];
    py.detach(|| {
        errors::catch_panic(|| {
            parallel::install(|| gemm::matmul(a, Op::N, b, Op::N, &mut c, m, n, k, false))
                .map_err(errors::to_py)
        })
    })?;
    numpy::ndarray::Array2::from_shape_vec((m, n), c)
        .map(|c| c.into_pyarray(py))
        .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(matmul, m)?)?;
    m.add_function(wrap_pyfunction!(activation, m)?)?;
    m.add_function(wrap_pyfunction!(loss, m)?)?;
    m.add_function(wrap_pyfunction!(metric, m)?)?;
    m.add_function(wrap_pyfunction!(optimizer_steps, m)?)?;
    Ok(())
}
