//! Engine errors become Python exceptions; nothing crosses the boundary as a panic.

use numpy::AsSliceError;
use pynn_core::CoreError;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::{PyErr, PyResult};

pub fn to_py(error: CoreError) -> PyErr {
    match error {
        CoreError::State(_) => PyRuntimeError::new_err(error.to_string()),
        _ => PyValueError::new_err(error.to_string()),
    }
}

/// Runs `f`, turning a panic (here or in a worker thread it waited on) into `RuntimeError` with
/// the panic's message: a bug in the engine must not take the interpreter down.
pub fn catch_panic<T>(f: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown cause".to_string());
        Err(PyRuntimeError::new_err(format!(
            "The pynn engine failed (a bug; please report it): {message}"
        )))
    })
}

pub fn spec(what: &str, error: serde_json::Error) -> PyErr {
    PyValueError::new_err(format!("Invalid {what} spec: {error}"))
}

pub fn layout(name: &str, _: AsSliceError) -> PyErr {
    PyValueError::new_err(format!(
        "`{name}` must be a C-contiguous float32 array; convert it with np.ascontiguousarray."
    ))
}
