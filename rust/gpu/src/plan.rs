//! What each node of a pynn-core graph is on the GPU: its op, read from the core's plan (specs,
//! shapes, windows, weight ranges, heads, which tensors carry a gradient), so both engines agree
//! on the layout.

use std::ops::Range;
use std::sync::Arc;

use pynn_core::graph::{decomposition, DeviceNode, DevicePlan, Routes};
use pynn_core::kernels::activation::Activation;
use pynn_core::kernels::conv::Geometry;
use pynn_core::kernels::pool::PoolKind;
use pynn_core::layers::{Dropout, Layer, LayerSpec};
use pynn_core::ops::{Concatenate, Dot, Merge, MergeOp};
use pynn_core::regularizers::Regularizer;
use pynn_core::train::OutputSpec;

use crate::GpuError;

/// The most inputs a merge takes on the GPU (its backward keeps them in registers).
pub const MAX_MERGE_INPUTS: usize = 16;

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

impl Epilogue {
    /// A function alone, over rows of `period` values: an Activation layer or a head.
    pub fn function(activation: Activation, period: usize) -> Self {
        Epilogue {
            activation,
            use_bias: false,
            kernel_offset: 0,
            kernel_len: 0,
            period,
            activity: None,
        }
    }
}

/// One input of an element-wise merge: its values per sample and, where it broadcasts, which
/// of them each output value reads.
pub struct Operand {
    pub size: usize,
    pub map: Option<Vec<u32>>,
}

pub enum Op {
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
    /// An `Activation` layer: its function alone (no weights).
    Activation(Epilogue),
    /// Flatten, Reshape, and Dropout with rate 0: the row-major data is unchanged.
    Identity,
    /// `Add`, `Subtract`, ...: the inputs gathered side by side per sample, folded left to
    /// right as the CPU folds them, then the fused activation.
    Merge {
        op: MergeOp,
        activation: Option<Activation>,
        operands: Vec<Operand>,
    },
    /// The inputs side by side along one axis: `outer` runs per sample, each input's run.
    Concatenate {
        outer: usize,
        runs: Vec<usize>,
    },
    /// `Dot`: each input's `(outer, len, inner)` around its axis, and whether its fibers are
    /// scaled to unit length first.
    Dot {
        sides: [(usize, usize, usize); 2],
        normalize: bool,
    },
}

impl Op {
    /// A `Dot`'s fibers per sample: `x`'s, then `y`'s.
    pub fn dot_fibers(sides: &[(usize, usize, usize); 2]) -> [usize; 2] {
        sides.map(|(outer, _, inner)| outer * inner)
    }
}

/// One node: its op and the tensors it reads and writes (how its backward runs is the
/// routes').
pub struct Stage {
    pub op: Op,
    pub inputs: Vec<usize>,
    pub output: usize,
}

/// One output of the model and what judges it.
pub struct Output {
    pub tensor: usize,
    /// pynn-core's head: the output layer's sigmoid or softmax, applied after its stage.
    pub head: Option<Activation>,
    /// Predictions per row (the last axis) and rows per sample.
    pub width: usize,
    pub rows_per_sample: usize,
    pub spec: OutputSpec,
}

impl Output {
    /// Target values per sample.
    pub fn target_size(&self) -> usize {
        self.spec.target_width(self.width) * self.rows_per_sample
    }
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
    pub n_inputs: usize,
    /// Each constant's values for one sample (tensor `n_inputs + k`).
    pub constants: Vec<Vec<f32>>,
    /// Values per sample of every tensor: the inputs, the constants, each node's output.
    pub sizes: Vec<usize>,
    /// How many node inputs read each tensor.
    pub consumers: Vec<usize>,
    pub needs_grad: Vec<bool>,
    pub outputs: Vec<Output>,
    pub penalties: Vec<Penalty>,
    pub n_weights: usize,
    /// The ranges of the weights the optimizer steps (frozen layers' are left out).
    pub trainable_ranges: Vec<Range<usize>>,
    /// The backward's routes, every output seeded (one without a loss with zeros).
    pub routes: Arc<Routes>,
}

fn volume(shape: &[usize]) -> usize {
    shape.iter().product()
}

fn unsupported(what: impl Into<String>) -> GpuError {
    GpuError::Unsupported(what.into())
}

/// A Dense or convolution layer's kernel and bias regularizers.
fn weight_regularizers(spec: &LayerSpec) -> Option<[Option<Regularizer>; 2]> {
    match spec {
        LayerSpec::Dense(dense) => Some([dense.kernel_regularizer, dense.bias_regularizer]),
        LayerSpec::Conv(conv) => Some([conv.kernel_regularizer, conv.bias_regularizer]),
        _ => None,
    }
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

/// Which of the core's ops the GPU runs with a fused kernel of its own: each of them, unless
/// asked to run every op by its decomposition (the reference the fused kernels are tested
/// against).
pub fn has_kernel(spec: &LayerSpec, decompose: bool) -> bool {
    !decompose || decomposition(spec).is_none()
}

/// The stages of the core's planned graph, judged by `outputs` (one spec per model output),
/// with every fused op the GPU has no kernel for decomposed (see [`has_kernel`]).
pub fn plan(model: &DevicePlan, outputs: &[OutputSpec], decompose: bool) -> Result<Plan, GpuError> {
    let model = &model
        .decomposed(&|spec| has_kernel(spec, decompose))
        .map_err(|e| unsupported(e.to_string()))?;
    let mut penalties = Vec::new();
    let mut stages = Vec::with_capacity(model.nodes.len());
    for node in &model.nodes {
        // A shared layer's weights are penalized once, from its first call.
        let penalized = node.trains && node.call == 0;
        if let Some(regularizers) = weight_regularizers(&node.spec).filter(|_| penalized) {
            penalties.extend(weight_penalties(regularizers, node));
        }
        stages.push(Stage {
            op: op(node)?,
            inputs: node.inputs.clone(),
            output: node.output,
        });
    }
    let n_sources = model.input_shapes.len() + model.constants.len();
    let outputs = model
        .outputs
        .iter()
        .zip(&model.heads)
        .zip(outputs)
        .map(|((&tensor, &head), spec)| {
            if tensor < n_sources {
                return Err(unsupported("outputs that are model inputs"));
            }
            let shape = &model.shapes[tensor];
            let width = *shape.last().unwrap_or(&1);
            Ok(Output {
                tensor,
                head,
                width,
                rows_per_sample: volume(shape) / width.max(1),
                spec: spec.clone(),
            })
        })
        .collect::<Result<_, _>>()?;
    let routes = model.routes(&vec![true; model.outputs.len()]);
    let weighted = |layer: usize| {
        model
            .nodes
            .iter()
            .any(|n| n.layer == layer && !n.weights.is_empty())
    };
    let unreached = (0..model.trainable.len())
        .any(|layer| model.trainable[layer] && !routes.reached[layer] && weighted(layer));
    if unreached {
        return Err(unsupported(
            "trainable layers that no output's gradient reaches",
        ));
    }
    Ok(Plan {
        stages,
        n_inputs: model.input_shapes.len(),
        constants: model.constants.clone(),
        sizes: model.shapes.iter().map(|s| volume(s)).collect(),
        consumers: model.consumers.clone(),
        needs_grad: model.needs_grad.clone(),
        outputs,
        penalties,
        n_weights: model.n_weights,
        trainable_ranges: model.trainable_ranges.clone(),
        routes: Arc::new(routes),
    })
}

/// What node `node` runs on the GPU, or why it cannot.
fn op(node: &DeviceNode) -> Result<Op, GpuError> {
    let core_error = |e: pynn_core::CoreError| unsupported(e.to_string());
    Ok(match &node.spec {
        LayerSpec::Dense(dense) => {
            let input_shape = &node.input_shapes[0];
            let inputs = *input_shape.last().expect("an input has axes");
            Op::Dense {
                inputs,
                rows_per_sample: volume(input_shape) / inputs,
                units: dense.units,
                epilogue: epilogue(node, dense.activation, dense.activity_regularizer),
            }
        }
        LayerSpec::Conv(conv) => Op::Conv {
            geometry: node.geometry.expect("a convolution has windows"),
            filters: conv.filters,
            epilogue: epilogue(node, conv.activation, conv.activity_regularizer),
        },
        LayerSpec::Pool(pool) => Op::Pool {
            geometry: node.geometry.expect("a pooling layer has windows"),
            kind: pool.op,
        },
        LayerSpec::Dropout(dropout) => {
            let mut layer =
                Dropout::new(dropout.clone(), &node.input_shapes[0]).map_err(core_error)?;
            if node.call > 0 {
                layer.distinguish_call(node.call);
            }
            match layer.drops() {
                true => Op::Dropout(Box::new(layer)),
                false => Op::Identity,
            }
        }
        LayerSpec::Reshape(_) => Op::Identity,
        // An output's activation is its head's (the spec keeps a linear one).
        LayerSpec::Activation(a) if a.activation == Activation::Linear => Op::Identity,
        LayerSpec::Activation(a) => Op::Activation(Epilogue::function(
            a.activation,
            *node.output_shape.last().expect("an output has axes"),
        )),
        LayerSpec::Merge(spec) => {
            if node.inputs.len() > MAX_MERGE_INPUTS {
                return Err(unsupported(format!(
                    "merges of more than {MAX_MERGE_INPUTS} inputs"
                )));
            }
            let merge = Merge::new(spec, &node.input_shapes).map_err(core_error)?;
            let operands = merge
                .operands()
                .map(|(size, map)| Operand {
                    size,
                    map: map.map(<[u32]>::to_vec),
                })
                .collect();
            Op::Merge {
                op: merge.op(),
                activation: merge.activation(),
                operands,
            }
        }
        LayerSpec::Concatenate(spec) => {
            let concatenate = Concatenate::new(spec, &node.input_shapes).map_err(core_error)?;
            let (outer, runs) = concatenate.layout();
            Op::Concatenate {
                outer,
                runs: runs.to_vec(),
            }
        }
        LayerSpec::Dot(spec) => {
            let dot = Dot::new(spec, &node.input_shapes).map_err(core_error)?;
            Op::Dot {
                sides: dot.sides(),
                normalize: dot.normalizes(),
            }
        }
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
