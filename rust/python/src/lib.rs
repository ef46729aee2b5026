//! `pynn._core`: the thin layer between the Python face and the Rust engine. It converts arrays,
//! parses specs, releases the GIL around engine calls and maps engine errors to exceptions.

use pyo3::prelude::*;

mod engine;
mod errors;
mod gpu_mirror;
mod kernels;
mod released;
mod tensor_file;

/// Sets how many threads the engine uses; `0` means all cores.
#[pyfunction]
fn set_num_threads(n: usize) -> PyResult<()> {
    pynn_core::parallel::set_num_threads(n).map_err(errors::to_py)
}

/// How many threads the engine uses.
#[pyfunction]
fn get_num_threads() -> usize {
    pynn_core::parallel::num_threads()
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
    py.detach(gpu_mirror::adapter)
}

/// The order in which an epoch shuffled with `seed` visits `len` samples.
#[pyfunction]
fn shuffled_order(seed: u64, len: usize) -> Vec<usize> {
    pynn_core::train::visiting_order(len, Some(seed))
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<engine::Engine>()?;
    m.add_function(wrap_pyfunction!(set_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(get_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(shuffled_order, m)?)?;
    m.add_function(wrap_pyfunction!(gpu_adapter, m)?)?;
    m.add_function(wrap_pyfunction!(_panic_in_engine, m)?)?;
    m.add_function(wrap_pyfunction!(engine::count_weights, m)?)?;
    kernels::register(m)?;
    tensor_file::register(m)?;
    Ok(())
}
