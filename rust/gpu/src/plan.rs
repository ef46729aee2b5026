//! What each layer of a pynn-core network is on the GPU, worked out from its spec and the
//! layer pynn-core builds from it (shapes, windows, weight offsets), so both engines agree.

use pynn_core::kernels::activation::Activation;
use pynn_core::kernels::conv::Geometry;
use pynn_core::kernels::pool::PoolKind;
use pynn_core::layers::{Dropout, LayerSpec};

use crate::GpuError;

/// A layer's bias and activation, and where its weights start.
#[derive(Clone, Copy)]
pub struct Epilogue {
    pub activation: Activation,
    pub use_bias: bool,
    /// Where the kernel starts in the weight buffer; the bias follows it.
    pub kernel_offset: usize,
    pub kernel_len: usize,
    /// Values per row of the output: units or filters.
    pub period: usize,
}

pub enum Stage {
    Dense {
        inputs: usize,
        units: usize,
        epilogue: Epilogue,
    },
    Conv {
        geometry: Geometry,
        filters: usize,
        epilogue: Epilogue,
    },
    Pool {
        geometry: Geometry,
        kind: PoolKind,
    },
    /// pynn-core's Dropout layer draws the step's mask, which goes up with the batch.
    Dropout(Box<Dropout>),
    /// Flatten, Reshape, and Dropout with rate 0: the row-major data is unchanged.
    Identity,
}

pub struct Plan {
    pub stages: Vec<Stage>,
    /// Values per sample of the input, then of each layer's output.
    pub sizes: Vec<usize>,
    pub output_shape: Vec<usize>,
    pub n_weights: usize,
}

fn unsupported(what: &str) -> GpuError {
    GpuError::Unsupported(what.into())
}

/// The stages of `specs` for samples of `input_shape`.
pub fn plan(input_shape: &[usize], specs: &[LayerSpec]) -> Result<Plan, GpuError> {
    let mut shape = input_shape.to_vec();
    let mut sizes = vec![shape.iter().product()];
    let (mut stages, mut offset) = (Vec::new(), 0);
    for spec in specs {
        let layer = spec
            .build(&shape)
            .map_err(|e| GpuError::Unsupported(e.to_string()))?;
        let weights: usize = layer
            .weight_shapes()
            .iter()
            .map(|s| s.iter().product::<usize>())
            .sum();
        let stage = match spec {
            LayerSpec::Dense(dense) => {
                if shape.len() != 1 {
                    return Err(unsupported("Dense layers on inputs of more than one axis"));
                }
                if dense.kernel_regularizer.is_some()
                    || dense.bias_regularizer.is_some()
                    || dense.activity_regularizer.is_some()
                {
                    return Err(unsupported("regularizers"));
                }
                let kernel_len = shape[0] * dense.units;
                Stage::Dense {
                    inputs: shape[0],
                    units: dense.units,
                    epilogue: Epilogue {
                        activation: dense.activation,
                        use_bias: dense.use_bias,
                        kernel_offset: offset,
                        kernel_len,
                        period: dense.units,
                    },
                }
            }
            LayerSpec::Conv(conv) => {
                if conv.kernel_regularizer.is_some()
                    || conv.bias_regularizer.is_some()
                    || conv.activity_regularizer.is_some()
                {
                    return Err(unsupported("regularizers"));
                }
                let geometry = layer.geometry().expect("a convolution has windows");
                Stage::Conv {
                    geometry,
                    filters: conv.filters,
                    epilogue: Epilogue {
                        activation: conv.activation,
                        use_bias: conv.use_bias,
                        kernel_offset: offset,
                        kernel_len: geometry.field() * conv.filters,
                        period: conv.filters,
                    },
                }
            }
            LayerSpec::Pool(pool) => Stage::Pool {
                geometry: layer.geometry().expect("a pooling layer has windows"),
                kind: pool.op,
            },
            LayerSpec::Dropout(dropout) => {
                let layer = Dropout::new(dropout.clone(), &shape)
                    .map_err(|e| GpuError::Unsupported(e.to_string()))?;
                if layer.drops() {
                    Stage::Dropout(Box::new(layer))
                } else {
                    Stage::Identity
                }
            }
            LayerSpec::Reshape(_) => Stage::Identity,
        };
        offset += weights;
        shape = layer.output_shape().to_vec();
        sizes.push(shape.iter().product());
        stages.push(stage);
    }
    Ok(Plan {
        stages,
        sizes,
        output_shape: shape,
        n_weights: offset,
    })
}
