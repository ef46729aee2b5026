//! The devices other than the CPU that this build has: the GPU engine (the `gpu` feature).

use pynn_core::session::{Device, Session};
use pyo3::exceptions::PyNotImplementedError;
use pyo3::prelude::*;

use crate::errors::{to_py, unsupported_message};

#[cfg(feature = "gpu")]
mod enabled {
    use super::*;

    pub static GPU: pynn_gpu::GpuDevice = pynn_gpu::GpuDevice;

    /// The adapter the GPU engine uses: `(name, driver, backend, is_gpu)`.
    pub fn adapter() -> PyResult<(String, String, String, bool)> {
        let gpu = pynn_gpu::gpu().map_err(|e| to_py(e.into()))?;
        let a = &gpu.adapter;
        Ok((
            a.name.clone(),
            a.driver.clone(),
            a.backend.clone(),
            a.is_gpu,
        ))
    }

    pub fn gpu() -> PyResult<&'static dyn Device> {
        Ok(&GPU)
    }
}

#[cfg(not(feature = "gpu"))]
mod enabled {
    use super::*;
    use pyo3::exceptions::PyRuntimeError;

    fn missing() -> PyErr {
        PyRuntimeError::new_err(
            "this build of pynn has no GPU engine (it was built with `--no-default-features`): \
             install the published wheel, or build from source without that flag",
        )
    }

    pub fn adapter() -> PyResult<(String, String, String, bool)> {
        Err(missing())
    }

    pub fn gpu() -> PyResult<&'static dyn Device> {
        Err(missing())
    }
}

pub use enabled::adapter;

/// Why the GPU engine cannot run `session`'s compiled model (`None` when it can), after
/// building its GPU copy.
pub fn gpu_unsupported(session: &mut Session) -> PyResult<Option<String>> {
    session.unsupported_on(enabled::gpu()?).map_err(to_py)
}

/// The GPU where `on_gpu`, with its copy of `session`'s model built (`NotImplementedError`
/// naming what the GPU does not run), else `None`: the CPU.
pub fn device_for(session: &mut Session, on_gpu: bool) -> PyResult<Option<&'static dyn Device>> {
    if !on_gpu {
        return Ok(None);
    }
    match gpu_unsupported(session)? {
        None => Ok(Some(enabled::gpu()?)),
        Some(what) => Err(PyNotImplementedError::new_err(unsupported_message(&what))),
    }
}
