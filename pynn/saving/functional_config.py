"""A functional model's config in Keras 3's structure (`Functional.get_config` and
`functional_from_config` in `keras/src/models/functional.py`), written and read.

```
{"name", "trainable",
 "layers": [{<the layer's serialized config>, "name", "inbound_nodes": [
     {"args": [<tensor>] or [[<tensor or array>, ...]], "kwargs": {"training"?, "mask"?}}]}],
 "input_layers": <[layer, node, tensor] in the structure of model.input>,
 "output_layers": <the same of model.output>}
```

A tensor is `{"class_name": "__keras_tensor__", "config": {"shape", "dtype", "keras_history":
[layer, node, tensor]}}`, where `node` counts only the layer's calls inside this model; an
array beside tensors is `{"class_name": "__numpy__", "config": {"value", "dtype"}}`. Keras
counts a functional layer's calls from 1 in `input_layers` and `output_layers` (it once
started them with a call of its own), from 0 everywhere else; pynn writes and reads the same.
The legacy form of a call, a list of `[layer, node, tensor, kwargs]`, is read too.

Reading deserializes every layer first, then calls each on its inputs once they exist, so that
a layer shared at several depths finds its earlier calls. Anything that does not make a graph
(a name no layer has, a call that does not exist, a cycle) is a `ValueError` naming the layer.
"""

from __future__ import annotations

import collections

import numpy as np

from pynn import _graph
from pynn._symbolic import is_keras_tensor, map_structure
from pynn.saving.serialization import _short, deserialize_layer, serialize

_TENSOR, _ARRAY = "__keras_tensor__", "__numpy__"


# Writing


def functional_config(model) -> dict:
    """The config of a functional model, as Keras 3's `Functional.get_config` writes it."""
    inputs, outputs = model._graph_io()
    own = {id(node) for node in _graph.ordered_nodes(inputs, outputs)}
    layers = []
    for operation in model._operations:
        entry = serialize(operation)
        entry["name"] = operation.name
        entry["inbound_nodes"] = [
            _call_config(node, own)
            for node in operation._inbound_nodes
            if id(node) in own and not node.is_input
        ]
        layers.append(entry)

    def reference(tensor) -> list:
        operation, node_index, tensor_index = tensor._keras_history
        index = _own_index(operation, node_index, own) + _first_call_index(operation)
        return [operation.name, index, tensor_index]

    return {
        "name": model.name,
        "trainable": model.trainable,
        "layers": layers,
        "input_layers": map_structure(reference, model._inputs_struct),
        "output_layers": map_structure(reference, model._outputs_struct),
    }


def _own_index(operation, node_index: int, own: set[int]) -> int:
    """The index of a call among the operation's calls inside the model."""
    return sum(id(node) in own for node in operation._inbound_nodes[:node_index])


def _first_call_index(operation) -> int:
    """Where Keras starts counting an operation's calls in `input_layers` and `output_layers`:
    1 for a functional model, 0 for anything else."""
    from pynn.functional import Functional

    return 1 if isinstance(operation, Functional) else 0


def _call_config(node, own: set[int]) -> dict:
    """`{"args", "kwargs"}` of one call: its inputs as it was called (one tensor, or a list of
    tensors and arrays), and `training` where the call gave one."""
    arguments = iter(node.arguments)

    def argument(_) -> dict:
        value = next(arguments)
        if not is_keras_tensor(value):
            # One sample's values: Keras takes a constant with a batch axis of 1.
            array = np.asarray(value, np.float32)[None]
            return {"class_name": _ARRAY, "config": {"value": array.tolist(), "dtype": "float32"}}
        operation, node_index, tensor_index = value._keras_history
        history = [operation.name, _own_index(operation, node_index, own), tensor_index]
        shape = list(value.shape)
        return {
            "class_name": _TENSOR,
            "config": {"shape": shape, "dtype": value.dtype, "keras_history": history},
        }

    kwargs = {}
    if node.training is not None:
        kwargs["training"] = bool(node.training)
    if _records_mask(node):
        kwargs["mask"] = None
    return {"args": [map_structure(argument, node.input_structure)], "kwargs": kwargs}


def _records_mask(node) -> bool:
    """Whether Keras records `mask=None` in a call's kwargs: for a model's call (Keras fills
    in the mask of a one-tensor call), except a Sequential's called with `training`."""
    from pynn.functional import Functional
    from pynn.models import Sequential

    operation = node.operation
    return isinstance(operation, Functional) or (
        isinstance(operation, Sequential) and node.training is None
    )


# Reading


def functional_from_config(config) -> object:
    """The functional model a config describes (Keras's or pynn's), with new layers."""
    from pynn.functional import Functional

    if not isinstance(config, dict):
        raise ValueError(f"A functional model's config must be a dict; got {_short(config)}.")
    for key in ("layers", "input_layers", "output_layers"):
        if key not in config:
            raise ValueError(f"A functional model's config needs '{key}'; it has none.")
    entries = config["layers"]
    if not isinstance(entries, list):
        raise ValueError(f"A functional model's 'layers' must be a list; got {_short(entries)}.")
    layers, pending = _create_layers(entries)
    _call_layers(layers, pending)
    name, trainable = config.get("name"), config.get("trainable", True)
    if name is not None and not isinstance(name, str):
        raise ValueError(f"A functional model's 'name' must be a string; got {_short(name)}.")

    def tensor(leaf):
        return _model_tensor(leaf, layers)

    inputs = _read_leaves(tensor, config["input_layers"], "input_layers")
    outputs = _read_leaves(tensor, config["output_layers"], "output_layers")
    return Functional(inputs, outputs, name=name, trainable=bool(trainable))


def _create_layers(entries: list) -> tuple[dict, dict]:
    """Each entry's layer by name, and its calls still to make."""
    layers: dict[str, object] = {}
    pending: dict[str, list] = {}
    for entry in entries:
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str):
            raise ValueError(
                f"Each layer of a functional config needs a 'name'; got {_short(entry)}."
            )
        if name in layers:
            raise ValueError(f"Two layers of the functional config are named '{name}'.")
        try:
            layers[name] = deserialize_layer(entry)
        except ValueError as error:
            raise ValueError(f"Layer '{name}' of the functional config: {error}") from None
        calls = entry.get("inbound_nodes", [])
        if not isinstance(calls, list):
            raise ValueError(
                f"Layer '{name}': 'inbound_nodes' must be a list; got {_short(calls)}."
            )
        pending[name] = collections.deque(calls)
    return layers, pending


def _call_layers(layers: dict, pending: dict) -> None:
    """Makes every recorded call, each layer's calls in their order, a call waiting until the
    calls it reads exist: a layer that waits is taken up again when the layer it waits for
    makes a call, so that the work stays linear in the calls whatever the layers' order."""
    queue = collections.deque(pending)
    waiting: dict[str, list[str]] = {}
    while queue:
        name = queue.popleft()
        calls = pending[name]
        while calls:
            missing: list[str] = []
            arguments = _call_arguments(calls[0], layers, name, missing)
            if arguments is None:
                waiting.setdefault(missing[0], []).append(name)
                break
            args, kwargs = arguments
            try:
                layers[name](*args, **kwargs)
            except (TypeError, ValueError) as error:
                raise ValueError(
                    f"Layer '{name}' cannot be called as the config says: {error}"
                ) from None
            calls.popleft()
            queue.extend(waiting.pop(name, []))
    stuck = ", ".join(f"'{name}'" for name, calls in pending.items() if calls)
    if stuck:
        raise ValueError(
            "The functional config does not make a graph: the calls of layer(s) "
            f"{stuck} read calls that never happen (a cycle, or a wrong node index)."
        )


def _call_arguments(call, layers: dict, name: str, missing: list[str]):
    """The `(args, kwargs)` of a recorded call, or `None` while a call it reads is still to
    be made (the layers whose calls it waits for added to `missing`)."""
    if isinstance(call, list):
        return _legacy_call_arguments(call, layers, name, missing)
    if not isinstance(call, dict) or not isinstance(call.get("args", []), list):
        raise ValueError(
            f"Layer '{name}': a call must be a dict of 'args' and 'kwargs'; got {_short(call)}."
        )
    kwargs = call.get("kwargs", {})
    if not isinstance(kwargs, dict):
        raise ValueError(f"Layer '{name}': a call's 'kwargs' must be a dict; got {_short(kwargs)}.")

    def value(item):
        if isinstance(item, dict) and item.get("class_name") == _TENSOR:
            history = _history(item, name)
            found = _history_tensor(history, layers, name)
            if found is None:
                missing.append(history[0])
            return found
        if isinstance(item, dict) and item.get("class_name") == _ARRAY:
            return _array(item, name)
        if isinstance(item, (dict, list)):
            return _read_nested(value, item)
        return item

    args = [value(item) for item in call.get("args", [])]
    kwargs = {key: value(item) for key, item in kwargs.items()}
    return None if missing else (args, kwargs)


def _read_nested(fn, structure):
    if isinstance(structure, dict):
        return {key: fn(item) for key, item in structure.items()}
    return [fn(item) for item in structure]


def _legacy_call_arguments(call: list, layers: dict, name: str, missing: list[str]):
    """Keras 2's form of a call: a list of `[layer, node, tensor]` (and kwargs) per input."""
    tensors, kwargs = [], {}
    for item in call:
        if not isinstance(item, list) or len(item) not in (3, 4):
            raise ValueError(f"Layer '{name}': cannot read the call input {_short(item)}.")
        if len(item) == 4:
            kwargs = item[3]
            if not isinstance(kwargs, dict):
                raise ValueError(
                    f"Layer '{name}': a call's kwargs must be a dict; got {_short(kwargs)}."
                )
        history = _checked_history(item[:3], name)
        tensors.append(_history_tensor(history, layers, name))
        if tensors[-1] is None:
            missing.append(history[0])
    if missing:
        return None
    return [tensors[0] if len(tensors) == 1 else tensors], kwargs


def _history(item: dict, name: str) -> list:
    config = item.get("config")
    history = config.get("keras_history") if isinstance(config, dict) else None
    return _checked_history(history, name)


def _checked_history(history, name: str) -> list:
    if (
        not isinstance(history, list)
        or len(history) != 3
        or not isinstance(history[0], str)
        or not all(_is_index(i) for i in history[1:])
    ):
        raise ValueError(
            f"Layer '{name}' reads a tensor with no valid keras_history ([layer name, node "
            f"index, tensor index]); got {_short(history)}."
        )
    return history


def _is_index(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _history_tensor(history: list, layers: dict, name: str):
    """The tensor `[layer, node, tensor]` names, or `None` while that call is not made yet."""
    source, node_index, tensor_index = history
    if source not in layers:
        raise ValueError(f"Layer '{name}' reads the output of an unknown layer '{source}'.")
    nodes = layers[source]._inbound_nodes
    if node_index >= len(nodes):
        return None
    outputs = nodes[node_index].outputs
    if tensor_index >= len(outputs):
        raise ValueError(
            f"Layer '{name}' reads output {tensor_index} of call {node_index} of layer "
            f"'{source}', which has {len(outputs)} output(s)."
        )
    return outputs[tensor_index]


def _array(item: dict, name: str) -> np.ndarray:
    """A constant beside tensors (Keras's `__numpy__`): numbers only."""
    config = item.get("config")
    values = config.get("value") if isinstance(config, dict) else None
    try:
        array = None if values is None else np.asarray(values, dtype=np.float32)
    except (TypeError, ValueError):
        array = None
    if array is None:
        raise ValueError(f"Layer '{name}' has a constant that is not an array of numbers.")
    return array


def _model_tensor(leaf, layers: dict):
    """A model input or output, `[layer, node, tensor]` as Keras counts them there."""
    history = _checked_history(leaf, "input_layers/output_layers")
    source, node_index, tensor_index = history
    if source not in layers:
        raise ValueError(f"The model's inputs or outputs name an unknown layer '{source}'.")
    node_index -= _first_call_index(layers[source])
    nodes = layers[source]._inbound_nodes
    if not 0 <= node_index < len(nodes) or tensor_index >= len(nodes[node_index].outputs):
        raise ValueError(
            f"The model's inputs or outputs name call {history[1]}, output {tensor_index} of "
            f"layer '{source}', which the config does not make."
        )
    return nodes[node_index].outputs[tensor_index]


def _read_leaves(fn, structure, key: str):
    """`input_layers` or `output_layers`: a `[layer, node, tensor]` triple, or a list or dict
    of them."""
    if isinstance(structure, list) and len(structure) == 3 and isinstance(structure[0], str):
        return fn(structure)
    if isinstance(structure, dict):
        return {k: _read_leaves(fn, v, key) for k, v in structure.items()}
    if isinstance(structure, list) and structure:
        return [_read_leaves(fn, item, key) for item in structure]
    raise ValueError(f"The functional config's '{key}' cannot be read: {_short(structure)}.")
