//! Plain functions over slices with explicit shapes. Parallelism wraps them; no state, no RNG.

pub mod activation;
pub mod gemm;
pub mod loss;
pub mod reduce;
