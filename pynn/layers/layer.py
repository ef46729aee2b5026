"""The base of every layer: a named configuration that the model turns into engine specs.

A pynn layer computes nothing in Python. Called on symbolic tensors it records the call (a
`Node`) and learns its shapes from the engine; in a model, the model's engine computes it. Its
weights belong to it: they live in the engine of the model that last used the layer (its
"home"), or with the layer itself while no engine holds them, and a model that uses the layer
takes them over before it computes (so a layer shared by several models, such as an encoder
inside an autoencoder, trains as one).
"""

from __future__ import annotations

import json
import warnings
from typing import Any

import numpy as np

from pynn import _checks, _core, _data
from pynn._naming import auto_name, to_snake_case
from pynn._random import eager_stream
from pynn._symbolic import KerasTensor, Node, constant_sample, flatten, is_keras_tensor
from pynn.variable import Variable

_INPUT_SHAPE_WARNING = (
    "Do not pass an `input_shape`/`input_dim` argument to a layer. When using Sequential "
    "models, prefer using an `Input(shape)` object as the first layer in the model instead."
)


class Layer:
    """Base class of layers: a configuration that the model hands to the engine, which builds
    the layer, keeps its weights and computes it. Called on arrays (`layer(x)`), a layer
    computes in an engine of its own and returns NumPy.

    Args:
        name: a unique name; by default the snake-cased class name with a counter.
        trainable: kept in the config (every weight trains).
        dtype: accepted for Keras compatibility; computations are float32.
        input_shape, input_dim: Keras 2's way to give the input shape (warns, as Keras 3
            does); prefer an `Input` or `InputLayer` first.
    """

    def __init__(
        self,
        name: str | None = None,
        trainable: bool = True,
        dtype=None,
        input_shape=None,
        input_dim: int | None = None,
        **kwargs,
    ):
        if kwargs:
            raise ValueError(
                f"Unrecognized keyword arguments passed to {type(self).__name__}: {kwargs}"
            )
        if input_dim is not None:
            input_shape = (input_dim,)
        self._input_shape_arg = None
        if input_shape is not None:
            warnings.warn(_INPUT_SHAPE_WARNING, UserWarning, stacklevel=3)
            self._input_shape_arg = _as_shape(input_shape, "input_shape")
        if name is not None and not isinstance(name, str):
            raise ValueError(f"`name` must be a string. Received: name={name!r}")
        self.name = name or auto_name(to_snake_case(type(self).__name__))
        self._trainable = bool(trainable)
        self.built = False
        self._inbound_nodes: list[Node] = []
        self._outbound_nodes: list[Node] = []
        #: The model whose engine holds this layer's latest weights, or the weights themselves
        #: while no engine holds them.
        self._home = None
        self._values: list[np.ndarray] | None = None
        #: The per-sample shapes of the inputs of the first call, which built the layer.
        self._build_shapes: list[tuple[int, ...]] = []
        self._output_shape: tuple[int, ...] = ()
        self._weight_shapes: list[tuple[int, ...]] = []
        #: The engine of eager calls (`layer(x)`), and the spec and shapes it was built for.
        self._eager: tuple | None = None

    #: Whether the layer computes differently in training (Dropout): `layer(x, training=True)`
    #: then runs the engine in training mode.
    _training_dependent = False
    #: Calls on arrays in training mode so far (see `_random.eager_stream`).
    _training_calls = 0

    @property
    def trainable(self) -> bool:
        """Whether the layer's weights train (read by `fit`)."""
        return self._trainable

    @trainable.setter
    def trainable(self, value) -> None:
        self._trainable = bool(value)

    # Configuration: what subclasses define.

    def spec(self) -> dict[str, Any]:
        """What the engine builds for this layer. The engine also works out its output shape
        and its weights' shapes, and rejects inputs the layer cannot take."""
        raise NotImplementedError(
            f"Layer '{self.name}' ({type(self).__name__}) is a custom layer: pynn does not run "
            "layers written in Python (a `call` method) yet. Its models are made of pynn's "
            "built-in layers (see pynn.layers)."
        )

    def __call__(self, inputs, *args, training=None, mask=None, **kwargs):
        """On symbolic tensors (`pynn.Input(...)` and what layers return from them), records the
        call and returns the output's symbolic tensor: how functional models are built. On
        arrays (a batch, or a list of batches for a merge layer), builds the layer where it is
        not built and returns its output for them as a NumPy array (inference). An array beside
        symbolic tensors is a constant of the model: the same for every sample (see
        `_symbolic.constant_sample`)."""
        if args or kwargs:
            unexpected = [repr(a) for a in args] + list(kwargs)
            raise TypeError(
                f"Layer '{self.name}' ({type(self).__name__}) takes its inputs and `training`; "
                f"received other arguments: {', '.join(unexpected)}"
            )
        if mask is not None:
            raise NotImplementedError("pynn does not support masks yet (`mask=`).")
        items = flatten(inputs)
        if any(is_keras_tensor(t) for t in items):
            return self._call_symbolic(inputs, items, training)
        return self._call_eager(inputs, training)

    def _call_eager(self, inputs, training) -> np.ndarray:
        """The layer's output for arrays `inputs`, computed by an engine of this one call; in
        training mode where `training` is true (a Dropout draws a new mask each call)."""
        arrays = _eager_arrays(inputs, self.name)
        engine, output_shape = self._eager_engine([a.shape[1:] for a in arrays])
        n = arrays[0].shape[0]
        out = np.empty((n, *output_shape), np.float32)
        flat = [a.reshape(-1) for a in arrays]
        if training and self._training_dependent:
            self._training_calls += 1
            engine.forward_in_mode(flat, n, [out], True, eager_stream(self._training_calls))
        else:
            engine.predict(flat, n, max(n, 1), [out], None, False)
        return out

    def _eager_engine(self, shapes):
        """An engine of one call of the layer on inputs of `shapes`, holding its weights, and
        its output shape; built (with the layer's shape checks) only when the spec or the
        shapes changed since the last call."""
        spec = self.spec()
        key = (json.dumps(spec), [tuple(s) for s in shapes])
        if self._eager is None or self._eager[0] != key:
            output_shape, weight_shapes = self._shapes_for(shapes)
            self._build_for(shapes, output_shape, weight_shapes)
            graph = json.dumps(_single_call_graph(spec, shapes))
            engine = _core.Engine.from_graph(graph, [self.name])
            self._eager = (key, engine, output_shape)
        _, engine, output_shape = self._eager
        if self._home is None and self._values is None:
            self._values = engine.get_weights()  # its initializers' draws, as any engine's
        elif self._weight_shapes:
            values = [np.asarray(w, np.float32).reshape(-1) for w in self.get_weights()]
            engine.set_weights(np.concatenate(values))
        return engine, output_shape

    def build(self, input_shape) -> None:
        """Creates the weights for inputs of `input_shape` (batch axis first, e.g.
        `(None, 4)`; a list of shapes for a merge layer)."""
        shapes = _sample_shapes(input_shape, self.name)
        output_shape, weight_shapes = self._shapes_for(shapes)
        self._build_for(shapes, output_shape, weight_shapes)

    def _call_symbolic(self, inputs, items: list, training=None) -> KerasTensor:
        tensors = [t for t in items if is_keras_tensor(t)]
        rank = max(t.ndim for t in tensors)
        arguments = [
            item if is_keras_tensor(item) else constant_sample(item, rank, self.name)
            for item in items
        ]
        shapes = [a.sample_shape if is_keras_tensor(a) else a.shape for a in arguments]
        output_shape, weight_shapes = self._shapes_for(shapes)
        self._build_for(shapes, output_shape, weight_shapes)
        output = KerasTensor((None,) + output_shape)
        Node(self, tensors, [output], structure=inputs, training=training, arguments=arguments)
        return output

    def _shapes_for(self, shapes) -> tuple[tuple, list[tuple[int, ...]]]:
        """The per-sample output shape and the weights' shapes of a call on inputs of
        `shapes`, as the engine works them out (it raises where the layer cannot take them).
        Where an input has a variable (`None`) dimension, the engine works them out for two
        sizes of it: output dimensions that follow it are variable, and weights must not."""
        if not any(d is None for shape in shapes for d in shape):
            return self._fixed_shapes_for(shapes)
        (first, weights), (second, other) = (
            self._fixed_shapes_for([sized(s, size) for s in shapes]) for size in PROBE_SIZES
        )
        if weights != other:
            raise ValueError(
                "Shapes used to initialize variables must be fully-defined (no `None` "
                f"dimensions). Layer '{self.name}' received inputs of shape "
                f"{', '.join(str((None,) + tuple(s)) for s in shapes)}, and its weights would "
                "depend on their `None` dimensions."
            )
        return tuple(a if a == b else None for a, b in zip(first, second)), weights

    def _fixed_shapes_for(self, shapes) -> tuple[tuple[int, ...], list[tuple[int, ...]]]:
        graph = _single_call_graph(self.spec(), shapes)
        outputs, weights = _core.graph_shapes(json.dumps(graph), [self.name])
        return tuple(outputs[0]), [tuple(w) for w in weights[0]]

    def _build_for(self, shapes, output_shape, weight_shapes) -> None:
        """Records the first call's shapes; later calls must fit the weights it built."""
        if not self.built:
            self._build_shapes = [tuple(s) for s in shapes]
            self._output_shape = tuple(output_shape)
            self._weight_shapes = list(weight_shapes)
            self.built = True
        elif list(weight_shapes) != self._weight_shapes:
            received = ", ".join(str((None,) + tuple(s)) for s in shapes)
            raise ValueError(
                f'Input of layer "{self.name}" is incompatible with the layer: it was built for '
                f"inputs of shape {', '.join(str((None,) + s) for s in self._build_shapes)} "
                f"(weights {self._weight_shapes}), and received inputs of shape {received}, "
                f"which would need weights {list(weight_shapes)}."
            )

    @property
    def input(self):
        """The input tensor(s) of the layer's first call."""
        return self._first_node("input").input_structure

    @property
    def output(self):
        """The output tensor of the layer's first call."""
        return self._first_node("output").output_structure

    def _first_node(self, what: str) -> Node:
        if not self._inbound_nodes:
            raise AttributeError(
                f"The layer {self.name} has never been called and thus has no defined {what}."
            )
        return self._inbound_nodes[0]

    def get_config(self) -> dict[str, Any]:
        """The constructor's arguments (Keras's names and defaults), from which `from_config`
        rebuilds the layer."""
        return {"name": self.name, "trainable": self.trainable, "dtype": "float32"}

    @classmethod
    def from_config(cls, config):
        """Builds an object from what `get_config()` returned."""
        from pynn.saving.serialization import from_config

        return from_config(cls, config)

    # Shapes, from the first call.

    @property
    def input_shape(self):
        self._require_built("input shape")
        shapes = [(None,) + s for s in self._build_shapes]
        return shapes[0] if len(shapes) == 1 else shapes

    @property
    def output_shape(self) -> tuple:
        self._require_built("output shape")
        return (None,) + self._output_shape

    def _require_built(self, what: str) -> None:
        if not self.built:
            raise AttributeError(
                f"The layer {self.name} has never been called and thus has no defined {what}."
            )

    def count_params(self) -> int:
        """How many weight values the layer holds."""
        if not self.built:
            raise ValueError(
                f"You tried to call `count_params` on layer '{self.name}', but the layer isn't "
                "built. You can build it manually via: `layer.build(input_shape)`."
            )
        return sum(int(np.prod(s)) for s in self._weight_shapes)

    # Weights: in the home model's engine, or held here.

    def get_weights(self) -> list[np.ndarray]:
        """The layer's weights as NumPy arrays (e.g. kernel, then bias); none before it is
        built."""
        if self._home is not None:
            return self._home._weights_of(self)
        if not self.built or not self._weight_shapes:
            return []
        if self._values is None:
            self._values = self._initial_values()
        return [value.copy() for value in self._values]

    def set_weights(self, weights) -> None:
        """Sets the layer's weights from arrays shaped as `get_weights()` returns them."""
        if not self.built:
            raise ValueError(f"Layer '{self.name}' is not built yet; it has no weights to set.")
        arrays = checked_weights(weights, self._weight_shapes, f"layer '{self.name}'")
        if self._home is not None:
            self._home._set_weights_of(self, arrays)
        else:
            self._values = arrays

    def _weight_value(self, index: int) -> np.ndarray:
        """A copy of weight `index` alone."""
        if self._home is not None:
            return self._home._weight_value_of(self, index)
        return self.get_weights()[index]

    def _initial_values(self) -> list[np.ndarray]:
        """The weights the layer's initializers draw (from their seeds: every engine that
        builds the layer draws the same)."""
        shapes = [sized(shape) for shape in self._build_shapes]
        graph = _single_call_graph(self.spec(), shapes)
        return _core.Engine.from_graph(json.dumps(graph), [self.name]).get_weights()

    def _leave(self, model) -> None:
        """`model` gives up its engine: where it held this layer's weights, the layer keeps
        them."""
        if self._home is model:
            self._values = model._weights_of(self)
            self._home = None

    def _variable_names(self) -> list[str]:
        """The names of the layer's weights, in the order of `get_weights()`."""
        return [f"variable_{i}" for i in range(len(self._weight_shapes))]

    @property
    def weights(self) -> list[Variable]:
        """The layer's weights as variables (`.numpy()`, `.assign(value)`, `.shape`, `.path`);
        none before it is built."""
        if not self.built:
            return []
        names = self._variable_names()
        return [Variable(self, i, name) for i, name in enumerate(names)]

    @property
    def trainable_weights(self) -> list[Variable]:
        return self.weights if self.trainable else []

    @property
    def non_trainable_weights(self) -> list[Variable]:
        return [] if self.trainable else self.weights

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"


def checked_weights(weights, shapes, owner: str) -> list[np.ndarray]:
    """`weights` as float32 arrays of `shapes` (what `owner`, "the model" or "layer 'dense'",
    expects), or a `ValueError` naming what differs."""
    weights = list(weights)
    if len(weights) != len(shapes):
        raise ValueError(
            f"{owner[0].upper()}{owner[1:]} expects {len(shapes)} weight arrays, "
            f"got {len(weights)}."
        )
    arrays = []
    for i, (value, shape) in enumerate(zip(weights, shapes)):
        array = np.array(value, dtype=np.float32)
        if array.shape != tuple(shape):
            raise ValueError(f"Weight {i} has shape {array.shape}, but {owner} expects {shape}.")
        if not np.all(np.isfinite(array)):
            raise ValueError(f"Weight {i} contains NaN or infinite values.")
        arrays.append(array)
    return arrays


def _single_call_graph(spec: dict, shapes) -> dict:
    """The graph of one call of a layer of `spec` on inputs of `shapes`."""
    return {
        "inputs": [list(s) for s in shapes],
        "layers": [spec],
        "nodes": [{"layer": 0, "inputs": [{"input": i} for i in range(len(shapes))]}],
        "outputs": [{"node": 0}],
    }


def _eager_arrays(inputs, name: str) -> list[np.ndarray]:
    """The batches a layer is called on: one array-like, or a list of arrays (a merge
    layer's inputs), as float32 with a batch axis and the same number of samples."""
    several = isinstance(inputs, (list, tuple)) and all(
        isinstance(item, (np.ndarray, Variable)) for item in inputs
    )
    items = list(inputs) if several and inputs else [inputs]
    labels = [f"inputs[{i}]" for i in range(len(items))] if several else ["inputs"]
    arrays = []
    for item, label in zip(items, labels):
        array = _data.to_array(np.asarray(item), label)
        if array.ndim < 2:
            raise ValueError(
                f"Layer '{name}' takes batches: `{label}` needs a batch axis first, e.g. shape "
                f"(1, {array.shape[0]}) for one sample; got shape {array.shape}."
            )
        arrays.append(_data.as_float32(array))
    _data.check_lengths(arrays, labels)
    return arrays


def _sample_shapes(input_shape, name: str) -> list[tuple[int, ...]]:
    """`build`'s `input_shape` (one shape or a list of them, batch axis first) as per-sample
    shapes."""
    try:
        several = len(input_shape) > 0 and isinstance(input_shape[0], (list, tuple))
        shapes = list(input_shape) if several else [input_shape]
        per_sample = [tuple(shape)[1:] for shape in shapes]
    except TypeError:
        raise ValueError(
            f"`input_shape` of layer '{name}' must be a tuple such as (None, 4) (batch axis "
            f"first), or a list of them. Received: input_shape={input_shape!r}"
        ) from None
    return [_as_shape(shape, "input_shape") for shape in per_sample]


def is_custom(layer: Layer) -> bool:
    """Whether `layer` is a subclass written outside pynn (no engine spec), which the engine
    cannot run."""
    return type(layer).spec is Layer.spec


def _as_shape(shape, argument: str) -> tuple[int | None, ...]:
    """A per-sample shape: positive sizes, `None` where a dimension varies."""
    if isinstance(shape, int) and not isinstance(shape, bool):
        shape = (shape,)
    try:
        dims = tuple(shape)
    except TypeError:
        raise ValueError(
            f"`{argument}` must be a tuple of positive integers (or None for a variable "
            f"dimension). Received: {argument}={shape!r}"
        ) from None
    if not all(d is None or (_checks.is_integer(d) and 0 < d <= _checks.MAX_SIZE) for d in dims):
        raise ValueError(
            f"`{argument}` must be a tuple of positive integers (or None for a variable "
            f"dimension). Received: {argument}={shape!r}"
        )
    return tuple(None if d is None else int(d) for d in dims)


#: Sizes that a variable dimension takes while the engine works out a call's shapes (an output
#: dimension that differs between the two is variable too); engines are built for the first.
PROBE_SIZES = (67, 131)


def sized(shape, size: int = PROBE_SIZES[0]) -> tuple[int, ...]:
    """`shape` with its variable (`None`) dimensions of `size`."""
    return tuple(size if d is None else d for d in shape)
