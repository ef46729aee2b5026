//! What a model's graph is, as the Python face describes it (JSON through serde).

use serde::{Deserialize, Serialize};

use crate::layers::LayerSpec;

/// A model: its inputs' per-sample shapes, the constants its calls read, its layers, the calls
/// of those layers (in an order where every node comes after the nodes it reads) and which
/// tensors it outputs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphSpec {
    pub inputs: Vec<Vec<usize>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constants: Vec<ConstantSpec>,
    pub layers: Vec<LayerSpec>,
    pub nodes: Vec<NodeSpec>,
    pub outputs: Vec<TensorRef>,
}

/// One call of layer `layer` on `inputs`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    pub layer: usize,
    pub inputs: Vec<TensorRef>,
    /// The call was recorded with `training=True` (Keras's `Dropout(0.5)(x, training=True)`
    /// in a model): a forward [`Mode::AsRecorded`] runs it in training mode.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub training: bool,
    /// The edge Keras's masks will travel on (one per input, the tensor holding its mask, as
    /// `Embedding(mask_zero=True)` produces them), kept in the format now so that graphs stay
    /// readable when masking lands; until then a graph that sets one is refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub masks: Vec<Option<TensorRef>>,
}

impl NodeSpec {
    /// A call of `layer` on `inputs` recorded without `training=True`.
    pub fn new(layer: usize, inputs: Vec<TensorRef>) -> Self {
        NodeSpec {
            layer,
            inputs,
            training: false,
            masks: Vec::new(),
        }
    }
}

/// How a forward runs the layers that behave differently in training (Dropout): as `fit`
/// does, as `predict` does, or as each call was recorded (Keras's `model(x)`, where a call
/// recorded with `training=True` trains).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Training,
    Inference,
    AsRecorded,
}

impl Mode {
    /// `fit`'s mode where `training`, else `predict`'s.
    pub fn of_training(training: bool) -> Self {
        if training {
            Mode::Training
        } else {
            Mode::Inference
        }
    }
}

/// An array a call reads beside its tensors (Keras takes an array mixed with symbolic tensors
/// as a constant): one sample's values, the same for every sample of a batch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConstantSpec {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

/// A tensor of the graph: one of the model's inputs, a constant, or a node's output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TensorRef {
    Input(usize),
    Constant(usize),
    Node(usize),
}

impl GraphSpec {
    /// A `Sequential` model: each layer called once, on the previous layer's output.
    pub fn chain(input_shape: &[usize], layers: &[LayerSpec]) -> Self {
        let nodes = (0..layers.len())
            .map(|i| {
                let input = match i {
                    0 => TensorRef::Input(0),
                    _ => TensorRef::Node(i - 1),
                };
                NodeSpec::new(i, vec![input])
            })
            .collect();
        let output = match layers.len() {
            0 => TensorRef::Input(0),
            n => TensorRef::Node(n - 1),
        };
        GraphSpec {
            inputs: vec![input_shape.to_vec()],
            constants: Vec::new(),
            layers: layers.to_vec(),
            nodes,
            outputs: vec![output],
        }
    }

    /// The input shape and the layers of a graph that is a chain (each layer called once, on
    /// the previous node's output, the last node the output): what engines that run a stack
    /// of layers (the GPU's) can take; `None` for any other graph.
    pub fn as_chain(&self) -> Option<(&[usize], &[LayerSpec])> {
        let [input_shape] = self.inputs.as_slice() else {
            return None;
        };
        (*self == GraphSpec::chain(input_shape, &self.layers))
            .then_some((input_shape.as_slice(), self.layers.as_slice()))
    }
}
