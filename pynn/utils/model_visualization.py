"""`plot_model` and `model_to_dot` (`keras/src/utils/model_visualization.py`): a model's layers
as boxes and its connections as arrows, drawn by Graphviz through pydot (`pip install
pynn[plot]` and the system's Graphviz). The boxes are Keras's HTML-like tables, so a plot
looks as Keras draws it.
"""

from __future__ import annotations

import os

try:
    import pydot
except ImportError:  # pragma: no cover - depends on what is installed
    pydot = None

__all__ = ["model_to_dot", "plot_model"]


def check_pydot() -> bool:
    return pydot is not None


def check_graphviz() -> bool:
    """Whether pydot finds Graphviz's `dot` (by drawing an empty graph)."""
    if not check_pydot():
        return False
    try:
        pydot.Dot.create(pydot.Dot())
        return True
    except (OSError, pydot.PydotException):
        return False


def _cell(text: str, color: str = "white", font: str = "") -> str:
    return f'<td bgcolor="{color}"><font point-size="14"{font}>{text}</font></td>'


def _shape_text(value) -> str:
    if value is None:
        return "?"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in value.items())
    return str(value)


def _shapes(tensors):
    if isinstance(tensors, dict):
        return {k: v.shape for k, v in tensors.items()}
    if isinstance(tensors, (list, tuple)):
        return [_shapes(t) for t in tensors]
    return tensors.shape


def _io_shapes(layer):
    """The shapes of the layer's first call's inputs and outputs (an `InputLayer` has only an
    output), or `None` where it was never called."""
    try:
        if type(layer).__name__ == "InputLayer":
            return None, _shapes(layer.output)
        return _shapes(layer.input), _shapes(layer.output)
    except (ValueError, AttributeError):
        return None, None


def _label(layer, details: dict) -> str:
    """The box of `layer`: its name (or class), then a row of what `details` asks for."""
    class_name = type(layer).__name__
    span = int(details["show_dtype"]) + int(details["show_trainable"])
    span = max(1, span + (2 if details["show_shapes"] else 0))
    title = (
        f"<b>{layer.name}</b> ({class_name})"
        if details["show_layer_names"]
        else (f"<b>{class_name}</b>")
    )
    table = '<<table border="0" cellborder="1" bgcolor="black" cellpadding="10">'
    table += (
        f'<tr><td colspan="{span}" bgcolor="black">'
        f'<font point-size="16" color="white">{title}</font></td></tr>'
    )
    activation = getattr(layer, "activation", None)
    if details["show_layer_activations"] and activation is not None:
        name = getattr(activation, "__name__", str(activation))
        table += (
            f'<tr><td bgcolor="white" colspan="{span}"><font point-size="14">'
            f"Activation: <b>{name}</b></font></td></tr>"
        )
    cells = []
    if details["show_shapes"]:
        input_shape, output_shape = _io_shapes(layer)
        if class_name != "InputLayer":
            cells.append(_cell(f"Input shape: <b>{_shape_text(input_shape)}</b>"))
        cells.append(_cell(f"Output shape: <b>{_shape_text(output_shape)}</b>"))
    if details["show_dtype"]:
        dtype = "float32" if _io_shapes(layer)[1] is not None else "?"
        cells.append(_cell(f"Output dtype: <b>{dtype}</b>"))
    if details["show_trainable"] and layer.weights:
        color, text = (
            ("forestgreen", "Trainable")
            if layer.trainable
            else (
                "firebrick",
                "Non-trainable",
            )
        )
        cells.append(_cell(f"<b>{text}</b>", color, ' color="white"'))
    if cells:
        table += f"<tr>{''.join(cells)}</tr>"
    return table + "</table>>"


def _box(layer, details: dict):
    node = pydot.Node(str(id(layer)), label=_label(layer, details))
    node.set("fontname", "Helvetica")
    node.set("border", "0")
    node.set("margin", "0")
    return node


def _arrow(dot, source, destination) -> None:
    ids = str(id(source)), str(id(destination))
    if not dot.get_edge(*ids):
        edge = pydot.Edge(*ids)
        edge.set("penwidth", "2")
        dot.add_edge(edge)


def model_to_dot(
    model,
    show_shapes=False,
    show_dtype=False,
    show_layer_names=True,
    rankdir="TB",
    expand_nested=False,
    dpi=200,
    subgraph=False,
    show_layer_activations=False,
    show_trainable=False,
    splines="ortho",
    **kwargs,
):
    """The model as a `pydot.Dot` graph (a `pydot.Cluster` with `subgraph`): a box per layer
    (a nested model's layers in a cluster with `expand_nested`), an arrow per connection."""
    from pynn.functional import Functional
    from pynn.models import Sequential

    if not model.built:
        raise ValueError(
            "This model has not yet been built. Build the model first by calling `build()` or "
            "by calling the model on a batch of data."
        )
    if not check_pydot():
        raise ImportError("You must install pydot (`pip install pydot`) for model_to_dot to work.")
    if kwargs.pop("layer_range", None) is not None:
        raise ValueError("Argument `layer_range` is no longer supported.")
    if kwargs:
        raise ValueError(f"Unrecognized keyword arguments: {kwargs}")
    if subgraph:
        dot = pydot.Cluster(style="dashed", graph_name=model.name)
        dot.set("label", model.name)
        dot.set("labeljust", "l")
    else:
        dot = pydot.Dot()
        dot.set("rankdir", rankdir)
        dot.set("concentrate", True)
        dot.set("dpi", dpi)
        dot.set("splines", splines)
        dot.set_node_defaults(shape="record")
    details = {
        "show_layer_names": show_layer_names,
        "show_layer_activations": show_layer_activations,
        "show_dtype": show_dtype,
        "show_shapes": show_shapes,
        "show_trainable": show_trainable,
    }
    models = (Functional, Sequential)
    layers = model.layers if isinstance(model, Sequential) else model._operations
    for layer in layers:
        if expand_nested and isinstance(layer, models):
            inner = dict(details, rankdir=rankdir, expand_nested=True)
            dot.add_subgraph(model_to_dot(layer, subgraph=True, **inner))
        else:
            dot.add_node(_box(layer, details))
    if isinstance(model, Sequential) and not expand_nested:
        for before, after in zip(layers, layers[1:]):
            _arrow(dot, before, after)
        return dot
    if isinstance(model, Sequential):
        # The first layer's arrow comes from outside, to the Sequential's own box.
        layers = model.layers[1:]
    _connect(dot, model, layers, expand_nested)
    return dot


def _connect(dot, model, layers, expand_nested: bool) -> None:
    """An arrow from each layer's inputs' producers to it, for its calls in `model`; with
    `expand_nested`, from and to the layers inside nested models."""
    from pynn import _graph
    from pynn.functional import Functional
    from pynn.models import Sequential

    in_model = None
    if isinstance(model, Functional):
        nodes = _graph.ordered_nodes(model._input_tensors, model._output_tensors)
        in_model = {id(n) for n in nodes}
    for layer in layers:
        for node in layer._inbound_nodes:
            if in_model is not None and id(node) not in in_model:
                continue
            for input_index, tensor in enumerate(node.input_tensors):
                history = tensor._keras_history
                source, output_index = history.operation, history.tensor_index
                destination = layer
                if expand_nested:
                    while isinstance(source, (Functional, Sequential)):
                        history = source.outputs[output_index]._keras_history
                        source, output_index = history.operation, history.tensor_index
                    while isinstance(destination, (Functional, Sequential)):
                        if isinstance(destination, Functional):
                            entry = destination.inputs[input_index]
                            destination = entry._keras_history.operation
                        else:
                            destination = destination.layers[0]
                _arrow(dot, source, destination)


def plot_model(
    model,
    to_file="model.png",
    show_shapes=False,
    show_dtype=False,
    show_layer_names=False,
    rankdir="TB",
    expand_nested=False,
    dpi=200,
    show_layer_activations=False,
    show_trainable=False,
    splines="ortho",
    **kwargs,
):
    """Draws the model into `to_file` (its extension picks the format: png by default, svg,
    pdf, ...), as Keras 3's `keras.utils.plot_model` draws it."""
    if not model.built:
        raise ValueError(
            "This model has not yet been built. Build the model first by calling `build()` or "
            "by calling the model on a batch of data."
        )
    if not check_pydot():
        raise ImportError(
            "You must install pydot (`pip install pydot`, or `pip install pynn[plot]`) for "
            "`plot_model` to work."
        )
    if not check_graphviz():
        raise ImportError(
            "You must install graphviz (see instructions at "
            "https://graphviz.gitlab.io/download/; `apt-get install graphviz` on Debian) for "
            "`plot_model` to work."
        )
    if kwargs.pop("layer_range", None) is not None:
        raise ValueError("Argument `layer_range` is no longer supported.")
    if kwargs:
        raise ValueError(f"Unrecognized keyword arguments: {kwargs}")
    dot = model_to_dot(
        model,
        show_shapes=show_shapes,
        show_dtype=show_dtype,
        show_layer_names=show_layer_names,
        rankdir=rankdir,
        expand_nested=expand_nested,
        dpi=dpi,
        show_layer_activations=show_layer_activations,
        show_trainable=show_trainable,
        splines=splines,
    )
    to_file = str(to_file)
    extension = os.path.splitext(to_file)[1][1:] or "png"
    dot.write(to_file, format=extension)
