//! Engine errors become Python exceptions; nothing crosses the boundary as a panic.

use numpy::AsSliceError;
use pynn_core::CoreError;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::PyErr;

pub fn to_py(error: CoreError) -> PyErr {
    match error {
        CoreError::State(_) => PyRuntimeError::new_err(error.to_string()),
        _ => PyValueError::new_err(error.to_string()),
    }
}

pub fn spec(what: &str, error: serde_json::Error) -> PyErr {
    PyValueError::new_err(format!("Invalid {what} spec: {error}"))
}

pub fn layout(name: &str, _: AsSliceError) -> PyErr {
    PyValueError::new_err(format!(
        "`{name}` must be a C-contiguous float32 array; convert it with np.ascontiguousarray."
    ))
}
