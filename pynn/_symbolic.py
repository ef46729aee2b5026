"""Symbolic tensors and the records of calls that made them (Keras's `KerasTensor`, `Node` and
`KerasHistory`): what a functional model is collected from.

Calling a layer on `KerasTensor`s computes nothing: the engine works out the output's shape (and
the layer's weights' shapes), and a `Node` records the call on the layer's `_inbound_nodes`.
Every output tensor carries `_keras_history = (layer, node_index, tensor_index)`, so that a
model walks back from its outputs to its inputs.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from pynn._naming import auto_name


class KerasHistory(NamedTuple):
    operation: Any
    node_index: int
    tensor_index: int


class KerasTensor:
    """A symbolic tensor: a shape (the batch axis first, `None` when unknown) and a dtype.

    Calling a layer or a model on `KerasTensor`s returns `KerasTensor`s; `pynn.Model(inputs,
    outputs)` collects the layers between them.
    """

    def __init__(self, shape, dtype="float32", sparse=False, ragged=False, name=None):
        self.shape = tuple(None if d is None else int(d) for d in shape)
        self.dtype = "float32" if dtype is None else str(dtype)
        self.sparse = bool(sparse)
        self.ragged = bool(ragged)
        self.name = name or auto_name("keras_tensor")

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """The shape of one sample: the shape without its batch axis."""
        return self.shape[1:]

    def __repr__(self) -> str:
        return (
            f"<KerasTensor shape={self.shape}, dtype={self.dtype}, sparse={self.sparse}, "
            f"ragged={self.ragged}, name={self.name}>"
        )

    def __iter__(self):
        raise NotImplementedError("Iterating over a symbolic KerasTensor is not supported.")

    def __array__(self, *args, **kwargs):
        raise ValueError(
            "A KerasTensor is symbolic: it holds no values and cannot become a NumPy array. Call "
            "a model on arrays (`model.predict(x)`) to compute values."
        )


def is_keras_tensor(x) -> bool:
    """Whether `x` is a symbolic `KerasTensor`."""
    return isinstance(x, KerasTensor)


class Node:
    """One call of an operation (a layer or a model): its input tensors and its outputs. An
    `InputLayer`'s node has no inputs (`is_input`)."""

    def __init__(
        self, operation, input_tensors, outputs, structure=None, training=None, arguments=None
    ):
        self.operation = operation
        self.input_tensors = list(input_tensors)
        #: The call's inputs in order: its symbolic tensors and the constants beside them (one
        #: sample's values, see `constant_sample`).
        self.arguments = self.input_tensors if arguments is None else list(arguments)
        self.outputs = list(outputs)
        #: The call's `training` argument: what a model called with `training=None` runs
        #: this call with (a model's `fit`, `evaluate` and `predict` always override it).
        self.training = training
        #: How the inputs were passed (one tensor, or a list): what `layer.input` returns.
        self.input_structure = structure
        operation._inbound_nodes.append(self)
        for tensor in self.input_tensors:
            history = getattr(tensor, "_keras_history", None)
            if history is not None:
                history.operation._outbound_nodes.append(self)
        node_index = len(operation._inbound_nodes) - 1
        for i, tensor in enumerate(self.outputs):
            tensor._keras_history = KerasHistory(operation, node_index, i)

    def training_under(self, outer):
        """The `training` this call runs with inside a call of its model with `outer`: the
        outer value where there is one (Keras passes it down), else the recorded one."""
        return self.training if outer is None else outer

    @property
    def is_input(self) -> bool:
        return not self.input_tensors

    @property
    def parent_nodes(self) -> list[Node]:
        """The nodes that produced this node's inputs."""
        parents = []
        for tensor in self.input_tensors:
            history = getattr(tensor, "_keras_history", None)
            if history is not None:
                parents.append(history.operation._inbound_nodes[history.node_index])
        return parents

    @property
    def output_structure(self):
        return self.outputs[0] if len(self.outputs) == 1 else list(self.outputs)


def flatten(structure) -> list:
    """The tensors of one tensor, a list or tuple, or a dict (in sorted key order, as Keras
    flattens dicts)."""
    return [item for _, item in flatten_with_paths(structure)]


def map_structure(fn, structure):
    """`structure` (one item, a list or tuple, or a dict) with `fn` applied to each item, in
    `flatten`'s order (a dict's keys sorted)."""
    if isinstance(structure, dict):
        return {key: map_structure(fn, structure[key]) for key in sorted(structure)}
    if isinstance(structure, (list, tuple)):
        return type(structure)(map_structure(fn, item) for item in structure)
    return fn(structure)


def flatten_with_paths(structure, path: str = "") -> list[tuple[str, object]]:
    """`flatten`, each item with its path as Keras writes it in messages (`""` for a single
    tensor, `"1"`, `"q"`, `"0.b"`)."""
    if isinstance(structure, dict):
        items = [(str(key), structure[key]) for key in sorted(structure)]
    elif isinstance(structure, (list, tuple)):
        items = [(str(i), item) for i, item in enumerate(structure)]
    else:
        return [(path, structure)]
    return [
        pair
        for key, item in items
        for pair in flatten_with_paths(item, f"{path}.{key}" if path else key)
    ]


def constant_sample(value, rank: int, layer_name: str) -> np.ndarray:
    """The values of one sample of an array passed beside symbolic tensors of `rank` axes (with
    the batch axis): Keras takes such an array as a constant. An array of that rank has a batch
    axis, which must be 1 (pynn applies it to every sample, where Keras needs it to be 1 or the
    batch size); a lower-rank array is one sample's values, aligned with the tensors at their
    last axes."""
    if not isinstance(value, (np.ndarray, np.generic)):
        raise ValueError(
            "Only input tensors may be passed as positional arguments. The following argument "
            f"value should be passed as a keyword argument: {value} (of type {type(value)})"
        )
    array = np.asarray(value, np.float32)
    if not np.isfinite(array).all():
        raise ValueError(
            f"Layer '{layer_name}' received an array holding NaN or infinite values beside "
            "symbolic tensors; a constant of a model must be finite."
        )
    if array.ndim > rank or (array.ndim == rank and array.shape[0] != 1):
        raise ValueError(
            f"Layer '{layer_name}' received an array of shape {array.shape} beside symbolic "
            f"tensors of {rank} axes (the batch axis first). pynn takes such an array as a "
            "constant, the same for every sample: give it a batch axis of 1, e.g. shape "
            f"{(1,) + array.shape[-(rank - 1) :] if rank > 1 else (1,)}, or leave the batch "
            "axis out."
        )
    return array[0] if array.ndim == rank else array
