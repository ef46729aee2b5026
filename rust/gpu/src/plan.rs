//! What each layer of a pynn-core network is on the GPU, worked out from its spec and the
//! layer pynn-core builds from it (shapes, windows, weight offsets), so both engines agree.

use pynn_core::kernels::activation::Activation;
use pynn_core::kernels::conv::Geometry;
use pynn_core::kernels::pool::PoolKind;
use pynn_core::layers::{Dropout, LayerSpec};
use pynn_core::regularizers::Regularizer;

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
    /// The regularizer of the layer's output, if any.
    pub activity: Option<Regularizer>,
}

pub enum Stage {
    Dense {
        /// Values in a row of the input (its last axis) and rows per sample (the other axes).
        inputs: usize,
        rows_per_sample: usize,
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

/// A weight regularizer over one range of the weight buffer.
#[derive(Clone, Copy)]
pub struct Penalty {
    pub offset: usize,
    pub len: usize,
    pub l1: f32,
    pub l2: f32,
}

pub struct Plan {
    pub stages: Vec<Stage>,
    /// pynn-core's head: the output layer's sigmoid or softmax, applied after its stage.
    pub head: Option<Activation>,
    pub penalties: Vec<Penalty>,
    /// Values per sample of the input, then of each layer's output.
    pub sizes: Vec<usize>,
    pub output_shape: Vec<usize>,
    pub n_weights: usize,
}

/// The ranges a layer's kernel and bias regularizers cover (the bias follows the kernel).
fn weight_penalties(
    [kernel, bias]: [Option<Regularizer>; 2],
    offset: usize,
    kernel_len: usize,
    bias_len: usize,
) -> impl Iterator<Item = Penalty> {
    let ranges = [
        (kernel, offset, kernel_len),
        (bias, offset + kernel_len, bias_len),
    ];
    ranges.into_iter().filter_map(|(regularizer, offset, len)| {
        regularizer.map(|r| Penalty {
            offset,
            len,
            l1: r.l1,
            l2: r.l2,
        })
    })
}

/// The stages of `specs` for samples of `input_shape`.
pub fn plan(input_shape: &[usize], specs: &[LayerSpec]) -> Result<Plan, GpuError> {
    let head = pynn_core::head::head_of(specs);
    let mut specs = specs.to_vec();
    if let (Some(_), Some(last)) = (head, specs.last_mut()) {
        *last = last.without_activation();
    }
    let mut shape = input_shape.to_vec();
    let mut sizes = vec![shape.iter().product()];
    let (mut stages, mut offset, mut penalties) = (Vec::new(), 0, Vec::new());
    for spec in &specs {
        let unsupported = match spec {
            LayerSpec::Activation(_) => Some("`Activation` layers"),
            LayerSpec::Merge(_) | LayerSpec::Concatenate(_) | LayerSpec::Dot(_) => {
                Some("merge layers")
            }
            _ => None,
        };
        if let Some(what) = unsupported {
            return Err(GpuError::Unsupported(what.to_string()));
        }
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
                let inputs = *shape.last().expect("an input has axes");
                let kernel_len = inputs * dense.units;
                let bias_len = if dense.use_bias { dense.units } else { 0 };
                let regularizers = [dense.kernel_regularizer, dense.bias_regularizer];
                penalties.extend(weight_penalties(regularizers, offset, kernel_len, bias_len));
                Stage::Dense {
                    inputs,
                    rows_per_sample: shape.iter().product::<usize>() / inputs,
                    units: dense.units,
                    epilogue: Epilogue {
                        activation: dense.activation,
                        use_bias: dense.use_bias,
                        kernel_offset: offset,
                        kernel_len,
                        period: dense.units,
                        activity: dense.activity_regularizer,
                    },
                }
            }
            LayerSpec::Conv(conv) => {
                let geometry = layer.geometry().expect("a convolution has windows");
                let kernel_len = geometry.field() * conv.filters;
                let bias_len = if conv.use_bias { conv.filters } else { 0 };
                let regularizers = [conv.kernel_regularizer, conv.bias_regularizer];
                penalties.extend(weight_penalties(regularizers, offset, kernel_len, bias_len));
                Stage::Conv {
                    geometry,
                    filters: conv.filters,
                    epilogue: Epilogue {
                        activation: conv.activation,
                        use_bias: conv.use_bias,
                        kernel_offset: offset,
                        kernel_len,
                        period: conv.filters,
                        activity: conv.activity_regularizer,
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
            LayerSpec::Activation(_)
            | LayerSpec::Merge(_)
            | LayerSpec::Concatenate(_)
            | LayerSpec::Dot(_) => unreachable!("refused above"),
        };
        offset += weights;
        shape = layer.output_shape().to_vec();
        sizes.push(shape.iter().product());
        stages.push(stage);
    }
    Ok(Plan {
        stages,
        head,
        penalties,
        sizes,
        output_shape: shape,
        n_weights: offset,
    })
}
