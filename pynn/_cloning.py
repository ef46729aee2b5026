"""`clone_model` (`keras/src/models/cloning.py`): the same architecture with new layers and new
weights. A Sequential's layers are cloned in order; a functional model's graph is run again on
new inputs, each layer cloned once (a shared layer stays shared in the clone) and called as the
original was called.
"""

from __future__ import annotations

import numpy as np

from pynn import _graph
from pynn._symbolic import flatten, is_keras_tensor, map_structure


def clone_model(model, input_tensors=None, clone_function=None, recursive=False, **kwargs):
    """A new model of `model`'s architecture: new layers, new (freshly initialized) weights.

    Args:
        model: a `Sequential` or a functional `Model`.
        input_tensors: optional `Input` tensors to build the clone on, in the structure of
            `model.input` (one for a Sequential); new ones by default.
        clone_function: `fn(layer) -> layer` for each layer except `InputLayer`s; by default
            `layer.__class__.from_config(layer.get_config())` (a model inside is cloned too).
        recursive: whether a model inside is cloned layer by layer with `clone_function`.
    """
    from pynn.functional import Functional
    from pynn.models import Sequential

    cache = kwargs.pop("cache", None)
    if "call_function" in kwargs:
        raise NotImplementedError("pynn's clone_model does not take `call_function` yet.")
    if kwargs:
        raise ValueError(f"Unexpected keyword argument(s): {', '.join(kwargs)}")
    clone = _cached(clone_function, recursive, {} if cache is None else cache)
    if isinstance(model, Sequential):
        return _clone_sequential(model, clone, input_tensors)
    if isinstance(model, Functional):
        return _clone_functional(model, clone, input_tensors)
    raise ValueError(
        "Arguments clone_function and input_tensors are only supported for Sequential models "
        f"or Functional models. Received model of type '{type(model).__name__}', with "
        f"clone_function={clone_function} and input_tensors={input_tensors}"
    )


def _clone_layer(layer):
    """A new layer of `layer`'s config; a model inside is cloned whole."""
    from pynn.models import Model

    if isinstance(layer, Model):
        return clone_model(layer)
    return layer.__class__.from_config(layer.get_config())


def _cached(clone_function, recursive: bool, cache: dict):
    """`clone_function` (or the default) applied once per layer: a layer met again (a shared
    layer) gets the same clone. With `recursive`, a model inside is cloned layer by layer."""
    from pynn.models import Model

    base = clone_function or _clone_layer
    if not callable(base):
        raise ValueError(
            "Expected `clone_function` argument to be a callable. "
            f"Received: clone_function={clone_function} (of type {type(clone_function)})"
        )

    def clone(layer):
        if id(layer) not in cache:
            if recursive and isinstance(layer, Model):
                cache[id(layer)] = clone_model(
                    layer, clone_function=clone_function, recursive=True, cache=cache
                )
            else:
                cache[id(layer)] = base(layer)
        return cache[id(layer)]

    return clone


def _clone_sequential(model, clone, input_tensors):
    from pynn.layers import Input
    from pynn.models import Sequential

    layers = [clone(layer) for layer in model.layers]
    reference = model._input_layer
    name = None if reference is None else reference.name
    if input_tensors is not None:
        if isinstance(input_tensors, (list, tuple)):
            if len(input_tensors) != 1:
                raise ValueError("Argument `input_tensors` must contain a single tensor.")
            input_tensors = input_tensors[0]
        if not is_keras_tensor(input_tensors):
            raise ValueError(
                "Argument `input_tensors` must be a KerasTensor. "
                f"Received invalid value: input_tensors={input_tensors}"
            )
        layers = [input_tensors] + layers
    elif reference is not None:
        layers = [Input(batch_shape=reference.batch_shape, name=name)] + layers
    return Sequential(layers, name=model.name, trainable=model.trainable)


def _clone_functional(model, clone, input_tensors):
    from pynn.functional import Functional
    from pynn.layers import Input

    originals = model._input_tensors
    if input_tensors is None:
        input_tensors = map_structure(
            lambda t: Input(batch_shape=t.shape, name=t._keras_history.operation.name),
            model._inputs_struct,
        )
    else:
        given = flatten(input_tensors)
        if not all(is_keras_tensor(t) for t in given):
            raise ValueError(
                "All entries in `input_tensors` must be KerasTensors. Received invalid values: "
                f"inputs_tensors={input_tensors}"
            )
        if not _same_structure(input_tensors, model._inputs_struct):
            raise ValueError(
                "`input_tensors` must have the same structure as model.input\n"
                f"Reference structure: {model._inputs_struct}\n"
                f"Received structure: {input_tensors}"
            )
    new = dict(zip(map(id, originals), flatten(input_tensors)))
    for node in _graph.ordered_nodes(originals, model._output_tensors):
        if node.is_input:
            continue
        arguments = [new[id(a)] if is_keras_tensor(a) else a for a in node.arguments]
        # Called on one tensor, or on a list (a merge; constants beside the tensors).
        inputs = arguments[0] if is_keras_tensor(node.input_structure) else arguments
        outputs = clone(node.operation)(inputs, training=node.training)
        for old, tensor in zip(node.outputs, flatten(outputs)):
            new[id(old)] = tensor
    outputs = map_structure(lambda t: new[id(t)], model._outputs_struct)
    return Functional(input_tensors, outputs, name=model.name, trainable=model.trainable)


def _same_structure(a, b) -> bool:
    if isinstance(b, dict):
        return (
            isinstance(a, dict)
            and sorted(a) == sorted(b)
            and all(_same_structure(a[k], b[k]) for k in b)
        )
    if isinstance(b, (list, tuple)):
        return (
            isinstance(a, (list, tuple))
            and len(a) == len(b)
            and all(_same_structure(x, y) for x, y in zip(a, b))
        )
    return not isinstance(a, (dict, list, tuple, np.ndarray))
