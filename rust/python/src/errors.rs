//! Engine errors become Python exceptions; nothing crosses the boundary as a panic.

use numpy::AsSliceError;
use pynn_core::CoreError;
use pyo3::exceptions::{PyMemoryError, PyNotImplementedError, PyRuntimeError, PyValueError};
use pyo3::{PyErr, PyResult};

/// The exception of an engine error: `MemoryError` for a buffer this machine (or the GPU) could
/// not allocate, `RuntimeError` for a call in the wrong state or a failed GPU,
/// `NotImplementedError` for what the GPU engine does not run, `ValueError` otherwise.
pub fn to_py(error: CoreError) -> PyErr {
    to_py_with(error, None)
}

/// [`to_py`], naming the layer of an error inside one by its name in `names`.
pub fn to_py_in_layers(error: CoreError, names: &[String]) -> PyErr {
    to_py_with(error, Some(names))
}

fn to_py_with(error: CoreError, names: Option<&[String]>) -> PyErr {
    let message = match (&error, names) {
        (CoreError::InLayer { index, .. }, Some(names)) if *index < names.len() => {
            format!("Layer '{}': {error}", names[*index])
        }
        _ => error.to_string(),
    };
    match innermost(&error) {
        CoreError::OutOfMemory { .. } | CoreError::DeviceMemory(_) => {
            PyMemoryError::new_err(message)
        }
        CoreError::State(_) | CoreError::Interrupted | CoreError::Device(_) => {
            PyRuntimeError::new_err(message)
        }
        CoreError::Unsupported(what) => PyNotImplementedError::new_err(unsupported_message(what)),
        _ => PyValueError::new_err(message),
    }
}

/// What a user reads when the GPU engine does not run `what`.
pub fn unsupported_message(what: &str) -> String {
    format!(
        "the GPU engine does not run {what} yet; train this model on the CPU with \
         pynn.config.set_device('cpu')"
    )
}

fn innermost(error: &CoreError) -> &CoreError {
    match error {
        CoreError::InLayer { source, .. } => innermost(source),
        other => other,
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

/// A spec from Python that the engine could not read. Python checks every argument before it
/// builds a spec, so this is a bug in pynn, not in the user's code.
pub fn spec(what: &str, error: serde_json::Error) -> PyErr {
    PyValueError::new_err(format!(
        "Invalid {what} spec (a bug in pynn's checks; please report it): {error}"
    ))
}

pub fn layout(name: &str, _: AsSliceError) -> PyErr {
    PyValueError::new_err(format!(
        "`{name}` must be an aligned, C-contiguous float32 array; pynn converts what it is \
         given, so this is a bug in pynn; please report it."
    ))
}
