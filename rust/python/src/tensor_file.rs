//! Named float32 tensors to and from the safetensors format: the weights and optimizer state
//! inside a model file. Decoding validates the header against the buffer before it reads a
//! tensor, so a corrupted or lying file is a `ValueError`, never a read past its end or an
//! allocation of the size it declares.

use std::collections::HashMap;

use numpy::{IntoPyArray, PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::errors::catch_panic;

const FLOAT_BYTES: usize = 4;

fn invalid(error: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(format!("Invalid tensor data: {error}"))
}

/// `tensors` (name, float32 array) as safetensors bytes, with optional string `metadata`.
#[pyfunction]
#[pyo3(signature = (tensors, metadata=None))]
fn encode_tensors<'py>(
    py: Python<'py>,
    tensors: Vec<(String, PyReadonlyArrayDyn<'py, f32>)>,
    metadata: Option<HashMap<String, String>>,
) -> PyResult<Bound<'py, PyBytes>> {
    let mut buffers = Vec::with_capacity(tensors.len());
    for (name, array) in &tensors {
        let values = array.as_slice().map_err(|_| {
            PyValueError::new_err(format!("tensor '{name}' must be a C-contiguous array"))
        })?;
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        buffers.push((name.clone(), array.shape().to_vec(), bytes));
    }
    let views = buffers
        .iter()
        .map(|(name, shape, bytes)| {
            TensorView::new(Dtype::F32, shape.clone(), bytes).map(|view| (name.as_str(), view))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(invalid)?;
    let encoded = catch_panic(|| safetensors::serialize(views, metadata).map_err(invalid))?;
    Ok(PyBytes::new(py, &encoded))
}

/// The tensors of safetensors bytes, in file order, and the file's string metadata.
type Decoded<'py> = (
    Vec<(String, Bound<'py, PyArrayDyn<f32>>)>,
    HashMap<String, String>,
);

/// Reads safetensors `data` written by [`encode_tensors`]; only float32 tensors are accepted.
#[pyfunction]
fn decode_tensors<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Decoded<'py>> {
    let file = catch_panic(|| SafeTensors::deserialize(data).map_err(invalid))?;
    let (_, header) = catch_panic(|| SafeTensors::read_metadata(data).map_err(invalid))?;
    let mut tensors = Vec::new();
    for (name, view) in file.iter() {
        if view.dtype() != Dtype::F32 {
            return Err(invalid(format!(
                "tensor '{name}' holds {:?} values; pynn stores float32",
                view.dtype()
            )));
        }
        let values: Vec<f32> = view
            .data()
            .chunks_exact(FLOAT_BYTES)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let array = values.into_pyarray(py).reshape(view.shape().to_vec())?;
        tensors.push((name.to_string(), array));
    }
    let metadata = header.metadata().clone().unwrap_or_default();
    Ok((tensors, metadata))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(encode_tensors, m)?)?;
    m.add_function(wrap_pyfunction!(decode_tensors, m)?)?;
    Ok(())
}
