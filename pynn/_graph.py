"""A model's graph, collected from its symbolic tensors: the calls between its inputs and
outputs in Keras's order (`model.layers`), and the spec the engine builds (nodes of layers,
nested models inlined, each layer's weights once).
"""

from __future__ import annotations

import collections

import numpy as np

from pynn._symbolic import KerasTensor, Node, flatten, is_keras_tensor, map_structure


def node_of(tensor: KerasTensor) -> Node | None:
    history = getattr(tensor, "_keras_history", None)
    if history is None:
        return None
    return history.operation._inbound_nodes[history.node_index]


def ordered_nodes(inputs: list[KerasTensor], outputs: list[KerasTensor]) -> list[Node]:
    """The nodes between `inputs` and `outputs`, each after the nodes it reads (Keras's depth-
    first walk from the outputs); a declared input stops the walk."""
    return _build_map(inputs, outputs)[0]


def _build_map(inputs, outputs) -> tuple[list[Node], dict[int, int]]:
    """Keras's walk: the nodes from the inputs to the outputs, and each operation's index in
    the order the walk first entered one of its nodes (what orders layers of equal depth). A
    depth-first walk from each output, parents in order, kept on a stack of its own so that
    graphs thousands of layers deep do not exhaust Python's."""
    input_ids = {id(t) for t in inputs}
    finished: set[int] = set()
    in_progress: set[int] = set()
    order: list[Node] = []
    first_seen: dict[int, int] = {}
    for output in outputs:
        stack = [(output, False)]
        while stack:
            tensor, parents_done = stack.pop()
            node = node_of(tensor)
            if parents_done:
                in_progress.discard(id(node))
                finished.add(id(node))
                order.append(node)
                continue
            if node is None or id(node) in finished:
                continue
            if not node.is_input and id(tensor) in input_ids:
                finished.add(id(node))
                continue
            if id(node) in in_progress:
                raise ValueError(
                    f"Tensor {tensor} from operation '{node.operation.name}' is part of a cycle."
                )
            first_seen.setdefault(id(node.operation), len(first_seen))
            in_progress.add(id(node))
            stack.append((tensor, True))
            stack.extend((parent, False) for parent in reversed(node.input_tensors))
    return order, first_seen


def _depths(nodes: list[Node]) -> tuple[dict[int, int], dict[int, int], dict[int, object]]:
    """Keras's depths from the outputs: each node's, each operation's (its deepest node's), and
    the operations by id."""
    in_graph = {id(n) for n in nodes}
    node_depth: dict[int, int] = {}
    op_depth: dict[int, int] = {}
    operations: dict[int, object] = {}
    for node in reversed(nodes):
        depth = max(node_depth.setdefault(id(node), 0), op_depth.get(id(node.operation), 0))
        op_depth[id(node.operation)] = depth
        operations[id(node.operation)] = node.operation
        node_depth[id(node)] = depth
        for parent in node.parent_nodes:
            if id(parent) in in_graph:
                node_depth[id(parent)] = max(depth + 1, node_depth.get(id(parent), 0))
    return node_depth, op_depth, operations


def is_sequential_like(inputs: list[KerasTensor], outputs: list[KerasTensor]) -> bool:
    """Whether Keras's summary draws the graph as a stack (no "Connected to" column): one node
    at each depth, each with one input, and no layer called twice."""
    nodes = ordered_nodes(inputs, outputs)
    node_depth = _depths(nodes)[0]
    depths = collections.Counter(node_depth[id(n)] for n in nodes)
    calls = collections.Counter(id(n.operation) for n in nodes)
    return (
        max(depths.values(), default=1) == 1
        and all(len(n.input_tensors) <= 1 for n in nodes)
        and max(calls.values(), default=1) == 1
    )


def connections(layer, nodes: list[Node]) -> str:
    """What Keras's summary shows as a layer's inputs: `name[node][tensor]` of each input of
    each of its calls among `nodes`, or `-`."""
    in_graph = {id(n) for n in nodes}
    histories = [
        t._keras_history
        for node in layer._inbound_nodes
        if id(node) in in_graph
        for t in node.input_tensors
    ]
    texts = [f"{h.operation.name}[{h.node_index}][{h.tensor_index}]" for h in histories]
    return ", ".join(texts) or "-"


def ordered_operations(inputs: list[KerasTensor], outputs: list[KerasTensor]) -> list:
    """The layers (and nested models) of the graph, as Keras lists them in `model.layers`: by
    depth from the outputs, deepest first, then in the order the walk first met them;
    `InputLayer`s included, an unused input too."""
    nodes, first_seen = _build_map(inputs, outputs)
    _, op_depth, operations = _depths(nodes)
    for tensor in inputs:
        node = node_of(tensor)
        if node is not None and node.is_input and id(node.operation) not in op_depth:
            op_depth[id(node.operation)] = 0
            operations[id(node.operation)] = node.operation
            first_seen[id(node.operation)] = -1
    by_depth = collections.defaultdict(list)
    for key, depth in op_depth.items():
        by_depth[depth].append(operations[key])
    ordered = []
    for depth in sorted(by_depth, reverse=True):
        ordered.extend(sorted(by_depth[depth], key=lambda op: first_seen[id(op)]))
    return ordered


def check_connected(inputs, outputs, output_paths) -> None:
    """Raises Keras's `ValueError` for an output that the inputs do not compute."""
    computable = {id(t) for t in inputs}
    for node in ordered_nodes(inputs, outputs):
        if not node.is_input and all(id(t) in computable for t in node.input_tensors):
            computable.update(id(t) for t in node.outputs)
    for tensor, path in zip(outputs, output_paths):
        if id(tensor) not in computable:
            raise ValueError(f"Output with path `{path}` is not connected to `inputs`")


def rooted_at_input_layers(inputs, outputs) -> tuple:
    """Keras's `clone_graph_nodes`: where a model's input is an intermediate tensor (not an
    `Input`), an `Input` of its shape named `<tensor name>CLONE` takes its place, and the calls
    between the inputs and the outputs are recorded again on the new tensors (the same layers,
    new nodes and tensors). Returns the inputs and outputs in their structures."""
    from pynn.layers.core import Input

    flat_inputs = flatten(inputs)
    if all(node_of(t) is not None and node_of(t).is_input for t in flat_inputs):
        return inputs, outputs
    new = {}
    for tensor in flat_inputs:
        node = node_of(tensor)
        if node is not None and node.is_input:
            new[id(tensor)] = tensor
        else:
            new[id(tensor)] = Input(batch_shape=tensor.shape, name=f"{tensor.name}CLONE")

    def renewed(item):
        return new[id(item)] if is_keras_tensor(item) else item

    for node in ordered_nodes(flat_inputs, flatten(outputs)):
        if node.is_input:
            continue
        copies = [KerasTensor(t.shape, t.dtype) for t in node.outputs]
        Node(
            node.operation,
            [new[id(t)] for t in node.input_tensors],
            copies,
            structure=map_structure(renewed, node.input_structure),
            training=node.training,
            arguments=[renewed(a) for a in node.arguments],
        )
        new.update(zip(map(id, node.outputs), copies))
    return map_structure(renewed, inputs), map_structure(renewed, outputs)


def flat_layers(model) -> list:
    """The layers that hold the model's weights, each once, in the order of `model.weights`:
    `model.layers` in order, a nested model's own layers in its place."""
    found: list = []
    seen: set[int] = set()

    def collect(owner) -> None:
        for layer in owner.layers:
            if id(layer) in seen:
                continue
            seen.add(id(layer))
            if hasattr(layer, "_graph_io"):
                collect(layer)
            elif not getattr(layer, "_is_input_layer", False):
                found.append(layer)

    collect(model)
    return found


def engine_graph(model, layers: list) -> dict:
    """The spec of the model's graph for the engine: its inputs' per-sample shapes, the specs of
    `layers` (see `flat_layers`), one node per call of a layer (a nested model's calls inlined)
    and its outputs."""
    index = {id(layer): i for i, layer in enumerate(layers)}
    nodes: list[dict] = []
    inputs, outputs = model._graph_io()
    refs = {id(t): {"input": i} for i, t in enumerate(inputs)}
    constants: list[np.ndarray] = []
    _emit(model, refs, index, (nodes, constants))
    graph = {
        "inputs": [list(t.sample_shape) for t in inputs],
        "layers": [layer.spec() for layer in layers],
        "nodes": nodes,
        "outputs": [refs[id(t)] for t in outputs],
    }
    if constants:
        graph["constants"] = [
            {"shape": list(c.shape), "values": c.reshape(-1).tolist()} for c in constants
        ]
    return graph


def _emit(model, refs: dict, index: dict, found: tuple[list, list], training=None) -> None:
    """Appends the engine nodes of `model`'s calls and the constants they read to `found`,
    `refs` mapping each of its tensors already computed (and each constant) to where the engine
    finds it. A node is marked `training` where its call runs in training mode when the model
    is called with `training=None` (Keras's `model(x)`): as its call was recorded, unless the
    call of an enclosing model (`training`) was recorded with a value, which overrides it."""
    nodes, constants = found
    inputs, outputs = model._graph_io()
    for node in ordered_nodes(inputs, outputs):
        if node.is_input or id(node.outputs[0]) in refs:
            continue
        operation = node.operation
        trains = node.training_under(training)
        if hasattr(operation, "_graph_io"):
            inner_inputs, inner_outputs = operation._graph_io()
            inner = {id(i): refs[id(t)] for i, t in zip(inner_inputs, node.input_tensors)}
            _emit(operation, inner, index, found, trains)
            for inner_output, output in zip(inner_outputs, node.outputs):
                refs[id(output)] = inner[id(inner_output)]
            continue
        for argument in node.arguments:
            if id(argument) not in refs:  # a constant
                refs[id(argument)] = {"constant": len(constants)}
                constants.append(argument)
        emitted = {"layer": index[id(operation)], "inputs": [refs[id(a)] for a in node.arguments]}
        if trains:
            emitted["training"] = True
        nodes.append(emitted)
        refs[id(node.outputs[0])] = {"node": len(nodes) - 1}
