//! Plain functions over slices with explicit shapes. Parallelism wraps them; no state, no RNG.

pub mod activation;
pub mod conv;
pub mod conv_direct;
pub mod gemm;
pub mod loss;
pub mod pool;
pub mod reduce;
