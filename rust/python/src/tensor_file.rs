//! Named float32 tensors to and from the safetensors format: the weights and optimizer state
//! inside a model file. Writing builds the header and leaves the values to the caller, who
//! streams them to the file; decoding validates the header against the buffer before it reads
//! a tensor, so a corrupted or lying file is a `ValueError`, never a read past its end or an
//! allocation of the size it declares.

use std::collections::HashMap;

use numpy::{IntoPyArray, PyArrayDyn, PyArrayMethods};
use pynn_core::memory::try_filled;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use safetensors::tensor::{Dtype, Metadata, SafeTensors, TensorInfo};

use crate::errors::catch_panic;

const FLOAT_BYTES: usize = 4;

fn invalid(error: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(format!("Invalid tensor data: {error}"))
}

/// The start of a safetensors file holding float32 `tensors` (name, shape), in that order, and
/// string `metadata`: the header's length (8 bytes, little-endian), then the header, padded to
/// 8 bytes. The tensors' values follow it, written by the caller as they are read from the
/// engine, one at a time, so that saving never holds a second copy of the model.
#[pyfunction]
#[pyo3(signature = (tensors, metadata=None))]
fn tensor_file_header<'py>(
    py: Python<'py>,
    tensors: Vec<(String, Vec<usize>)>,
    metadata: Option<HashMap<String, String>>,
) -> PyResult<Bound<'py, PyBytes>> {
    let mut infos = Vec::with_capacity(tensors.len());
    let mut offset = 0usize;
    for (name, shape) in tensors {
        let bytes = shape
            .iter()
            .try_fold(FLOAT_BYTES, |n, &d| n.checked_mul(d))
            .and_then(|n| offset.checked_add(n).map(|end| (n, end)));
        let Some((_, end)) = bytes else {
            return Err(invalid(format!("tensor '{name}' is too large")));
        };
        let info = TensorInfo {
            dtype: Dtype::F32,
            shape,
            data_offsets: (offset, end),
        };
        infos.push((name, info));
        offset = end;
    }
    let header = Metadata::new(metadata, infos).map_err(invalid)?;
    let mut json = serde_json::to_vec(&header).map_err(invalid)?;
    // The tensors start 8-byte aligned, as the format asks.
    json.resize(json.len().next_multiple_of(8), b' ');
    let mut bytes = (json.len() as u64).to_le_bytes().to_vec();
    bytes.extend(json);
    Ok(PyBytes::new(py, &bytes))
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
        let data = view.data();
        let mut values =
            try_filled(data.len() / FLOAT_BYTES, 0.0f32).map_err(crate::errors::to_py)?;
        for (value, b) in values.iter_mut().zip(data.chunks_exact(FLOAT_BYTES)) {
            *value = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
        let array = values.into_pyarray(py).reshape(view.shape().to_vec())?;
        tensors.push((name.to_string(), array));
    }
    let metadata = header.metadata().clone().unwrap_or_default();
    Ok((tensors, metadata))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(tensor_file_header, m)?)?;
    m.add_function(wrap_pyfunction!(decode_tensors, m)?)?;
    Ok(())
}
