//! What each node of a pynn-core network is on the GPU: its stage, read from the core's plan
//! (specs, shapes, windows, weight ranges, heads), so both engines agree on the layout.

use pynn_core::graph::{DeviceNode, DevicePlan};
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
    /// An `Activation` layer: its function alone (no weights), its derivative applied to the
    /// output's gradient in place, which is then the input's.
    Activation(Epilogue),
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

fn volume(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// The ranges a layer's kernel and bias regularizers cover (the bias follows the kernel).
fn weight_penalties(
    [kernel, bias]: [Option<Regularizer>; 2],
    node: &DeviceNode,
) -> impl Iterator<Item = Penalty> {
    let offset = node.weights.start;
    let kernel_len = volume(&node.weight_shapes[0]);
    let bias_len = node.weight_shapes.get(1).map_or(0, |s| volume(s));
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

/// The stages of the core's planned network, which must be a chain of layers.
pub fn plan(model: &DevicePlan) -> Result<Plan, GpuError> {
    let unsupported = |what: &str| GpuError::Unsupported(what.to_string());
    let nodes = model
        .as_chain()
        .ok_or_else(|| unsupported("models other than a stack of layers"))?;
    let mut sizes = vec![volume(&model.input_shapes[0])];
    let (mut stages, mut penalties) = (Vec::new(), Vec::new());
    for node in nodes {
        let stage = match &node.spec {
            LayerSpec::Dense(dense) => {
                let input_shape = &node.input_shapes[0];
                let inputs = *input_shape.last().expect("an input has axes");
                let epilogue = epilogue(node, dense.activation, dense.activity_regularizer);
                let regularizers = [dense.kernel_regularizer, dense.bias_regularizer];
                penalties.extend(weight_penalties(regularizers, node).filter(|_| node.trains));
                Stage::Dense {
                    inputs,
                    rows_per_sample: input_shape.iter().product::<usize>() / inputs,
                    units: dense.units,
                    epilogue,
                }
            }
            LayerSpec::Conv(conv) => {
                let regularizers = [conv.kernel_regularizer, conv.bias_regularizer];
                penalties.extend(weight_penalties(regularizers, node).filter(|_| node.trains));
                Stage::Conv {
                    geometry: node.geometry.expect("a convolution has windows"),
                    filters: conv.filters,
                    epilogue: epilogue(node, conv.activation, conv.activity_regularizer),
                }
            }
            LayerSpec::Pool(pool) => Stage::Pool {
                geometry: node.geometry.expect("a pooling layer has windows"),
                kind: pool.op,
            },
            LayerSpec::Dropout(dropout) => {
                let layer = Dropout::new(dropout.clone(), &node.input_shapes[0])
                    .map_err(|e| unsupported(&e.to_string()))?;
                match layer.drops() {
                    true => Stage::Dropout(Box::new(layer)),
                    false => Stage::Identity,
                }
            }
            LayerSpec::Reshape(_) => Stage::Identity,
            // An output's activation is its head's (the spec keeps a linear one).
            LayerSpec::Activation(a) if a.activation == Activation::Linear => Stage::Identity,
            LayerSpec::Activation(a) => Stage::Activation(Epilogue {
                activation: a.activation,
                use_bias: false,
                kernel_offset: 0,
                kernel_len: 0,
                period: *node.output_shape.last().expect("an output has axes"),
                activity: None,
            }),
            LayerSpec::Merge(_) | LayerSpec::Concatenate(_) | LayerSpec::Dot(_) => {
                return Err(unsupported("merge layers"))
            }
        };
        sizes.push(volume(&node.output_shape));
        stages.push(stage);
    }
    Ok(Plan {
        stages,
        head: model.heads[0],
        penalties,
        sizes,
        output_shape: nodes
            .last()
            .expect("a chain has nodes")
            .output_shape
            .clone(),
        n_weights: model.n_weights,
    })
}

/// A Dense or convolution node's epilogue: its bias (the weight after the kernel, if any) and
/// activation, over rows of its output's last axis.
fn epilogue(node: &DeviceNode, activation: Activation, activity: Option<Regularizer>) -> Epilogue {
    Epilogue {
        activation,
        use_bias: node.weight_shapes.len() > 1,
        kernel_offset: node.weights.start,
        kernel_len: volume(&node.weight_shapes[0]),
        period: *node.output_shape.last().expect("an output has axes"),
        activity,
    }
}
