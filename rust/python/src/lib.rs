//! `pynn._core`: the thin layer between the Python face and the Rust engine. It converts arrays,
//! parses specs, releases the GIL around engine calls and maps engine errors to exceptions.

use pyo3::prelude::*;

mod device;
mod engine;
mod errors;
mod kernels;
mod released;
mod tensor_file;

/// Sets how many threads the engine uses; `0` means all cores. The threads start with the GIL
/// released.
#[pyfunction]
fn set_num_threads(py: Python<'_>, n: usize) -> PyResult<()> {
    py.detach(|| pynn_core::parallel::set_num_threads(n))
        .map_err(errors::to_py)
}

/// How many threads the engine uses.
#[pyfunction]
fn get_num_threads() -> PyResult<usize> {
    pynn_core::parallel::num_threads().map_err(errors::to_py)
}

/// Called by `os.register_at_fork` before a `fork()` (see `pynn_core::parallel`).
#[pyfunction]
fn before_fork() {
    pynn_core::parallel::before_fork();
}

/// Called by `os.register_at_fork` after a `fork()`, in the parent and in the child.
#[pyfunction]
fn after_fork(child: bool) {
    pynn_core::parallel::after_fork(child);
}

/// Panics inside the engine's pool, for the test that a panic reaches Python as RuntimeError.
#[pyfunction]
fn _panic_in_engine(message: String) -> PyResult<()> {
    use rayon::prelude::*;
    errors::catch_panic(|| {
        pynn_core::parallel::install(|| {
            (0..4).into_par_iter().for_each(|i| {
                if i == 3 {
                    panic!("{message}");
                }
            })
        })
        .map_err(errors::to_py)
    })
}

/// The GPU the engine trains on: `(name, driver, backend, is_gpu)`, where `is_gpu` is false for
/// CPU implementations of Vulkan (lavapipe). Raises `RuntimeError` saying why there is none.
#[pyfunction]
fn gpu_adapter(py: Python<'_>) -> PyResult<(String, String, String, bool)> {
    py.detach(device::adapter)
}

/// Whether every value of a contiguous (C or Fortran order) float32 or float64 array is finite, scanned in
/// parallel with the GIL released; `None` for any other array, which the caller checks itself.
#[pyfunction]
fn all_finite(py: Python<'_>, array: &Bound<'_, PyAny>) -> PyResult<Option<bool>> {
    use numpy::{PyArrayDyn, PyArrayMethods};
    use pynn_core::kernels::reduce::{self, Finite};

    fn scan<T: Finite + numpy::Element>(
        py: Python<'_>,
        array: &Bound<'_, PyArrayDyn<T>>,
    ) -> PyResult<Option<bool>> {
        let Ok(array) = array.try_readonly() else {
            return Ok(None);
        };
        let Ok(values) = array.as_slice() else {
            return Ok(None);
        };
        let finite = py.detach(|| pynn_core::parallel::install(|| reduce::all_finite(values)));
        finite.map(Some).map_err(errors::to_py)
    }
    if let Ok(array) = array.cast::<PyArrayDyn<f32>>() {
        return scan(py, array);
    }
    match array.cast::<PyArrayDyn<f64>>() {
        Ok(array) => scan(py, array),
        Err(_) => Ok(None),
    }
}

/// The order in which an epoch shuffled with `seed` visits `len` samples.
#[pyfunction]
fn shuffled_order(seed: u64, len: usize) -> PyResult<Vec<usize>> {
    pynn_core::train::visiting_order(len, Some(seed)).map_err(errors::to_py)
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // The one place the version is written: Cargo.toml, which maturin also gives the wheel.
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<engine::Engine>()?;
    m.add_function(wrap_pyfunction!(set_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(get_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(before_fork, m)?)?;
    m.add_function(wrap_pyfunction!(after_fork, m)?)?;
    m.add_function(wrap_pyfunction!(shuffled_order, m)?)?;
    m.add_function(wrap_pyfunction!(all_finite, m)?)?;
    m.add_function(wrap_pyfunction!(gpu_adapter, m)?)?;
    m.add_function(wrap_pyfunction!(_panic_in_engine, m)?)?;
    m.add_function(wrap_pyfunction!(engine::graph_shapes, m)?)?;
    kernels::register(m)?;
    tensor_file::register(m)?;
    Ok(())
}
