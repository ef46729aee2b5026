"""Models (`keras.Model`, `keras.Sequential`): layers joined into a graph whose weights live in
the Rust engine. Training and inference come from `pynn.trainer.Trainer`; the functional model
(`Model(inputs, outputs)`) is in `pynn.functional`.

A model builds one engine for its whole graph (nested models inlined) and takes over its
layers' weights before it computes (see `pynn.layers.layer`).
"""

from __future__ import annotations

import json
import math

import numpy as np

from pynn import _core, _graph, _summary
from pynn._custom import refuse_custom
from pynn._naming import auto_name
from pynn._symbolic import KerasTensor, Node, flatten, is_keras_tensor
from pynn.layers.core import InputLayer
from pynn.layers.layer import Layer, checked_weights, is_custom, sized
from pynn.saving.weight_budget import check_weight_budget
from pynn.trainer import Trainer

_BYTES_PER_VALUE = 4
#: The optimizer's `iterations` counter is an int64: 4 bytes more than a float32 value.
_ITERATIONS_EXTRA_BYTES = 4


class Model(Layer, Trainer):
    """A model: `Model(inputs, outputs)` builds a functional model from symbolic tensors (see
    `pynn.Input`); `Sequential` stacks layers. Subclassing `Model` with a `call` method of
    your own is not supported yet and raises `NotImplementedError` saying so."""

    _engine = None
    #: The layers whose weights the engine holds, in its order, and where each one's start.
    _engine_layers: list = []
    _weight_slots: dict = {}
    #: The per-sample input shapes the engine is planned for, and whether the model's inputs
    #: have variable (`None`) dimensions, for which each batch shape gets its own plan.
    _engine_input_shapes: list = []
    _variable_inputs = False

    def __new__(cls, *args, **kwargs):
        if cls is Model:
            from pynn.functional import Functional

            return Functional.__new__(Functional)
        if not issubclass(cls, _BUILT_IN_MODELS()):
            raise NotImplementedError(
                f"pynn does not support subclassing `Model` ({cls.__name__}) yet: build a "
                "functional model, `pynn.Model(inputs, outputs)`, or a `pynn.Sequential`."
            )
        return super().__new__(cls)

    # What subclasses provide

    def _graph_io(self) -> tuple[list[KerasTensor], list[KerasTensor]]:
        """The symbolic inputs and outputs of the model's graph (once built)."""
        raise NotImplementedError

    @property
    def layers(self) -> list:
        raise NotImplementedError

    # Engine and weights

    def _build_engine(self) -> None:
        """Builds one engine for the whole graph and takes over the layers' weights."""
        layers = _graph.flat_layers(self)
        check_weight_budget(
            sum(math.prod(shape) for layer in layers for shape in layer._weight_shapes)
        )
        spec = _graph.engine_graph(self, layers)
        self._variable_inputs = any(d is None for shape in spec["inputs"] for d in shape)
        spec["inputs"] = [list(sized(shape)) for shape in spec["inputs"]]
        engine = _core.Engine.from_graph(json.dumps(spec), [layer.name for layer in layers])
        self._release_engine()
        self._engine = engine
        self._engine_input_shapes = [tuple(shape) for shape in spec["inputs"]]
        self._engine_layers = layers
        slots, start = {}, 0
        for layer, shapes in zip(layers, engine.layer_weight_shapes()):
            slots[id(layer)] = (start, len(shapes))
            start += len(shapes)
        self._weight_slots = slots
        self._claim_weights()
        self._compiled_outputs = None
        self._optimizer_built = False
        self._trained_layers = None
        self._engine_flags = None

    def _engine_for(self, xs: list[np.ndarray]):
        """The engine, planned for batches of `xs` (checked inputs): a model whose inputs have
        variable dimensions is planned anew when the sizes change; its weights stay."""
        shapes = [tuple(x.shape[1:]) for x in xs]
        if self._variable_inputs and shapes != self._engine_input_shapes:
            self._engine.reshape_inputs([list(shape) for shape in shapes])
            self._engine_input_shapes = shapes
        return self._engine

    def _release_engine(self) -> None:
        """Gives up the engine; the layers whose weights it held keep them."""
        if self._engine is not None:
            for layer in self._engine_layers:
                layer._leave(self)
        self._engine, self._engine_layers, self._weight_slots = None, [], {}

    def _claim_weights(self) -> None:
        """Copies into the engine the weights of layers whose latest values are elsewhere (in
        another model that shares them, or held by the layer), and becomes their home."""
        weights = None
        for layer in self._engine_layers:
            if layer._home is self:
                continue
            if layer._home is not None or layer._values is not None:
                if weights is None:
                    weights = self._engine.get_weights()
                start, count = self._weight_slots[id(layer)]
                weights[start : start + count] = layer.get_weights()
            layer._home, layer._values = self, None
        if weights is not None:
            self._set_flat_weights(weights)

    def _weights_of(self, layer) -> list[np.ndarray]:
        start, count = self._weight_slots[id(layer)]
        return [self._engine.weight(i) for i in range(start, start + count)]

    def _weight_value_of(self, layer, index: int) -> np.ndarray:
        start, _ = self._weight_slots[id(layer)]
        return self._engine.weight(start + index)

    def _set_weights_of(self, layer, arrays: list[np.ndarray]) -> None:
        weights = self._engine.get_weights()
        start, count = self._weight_slots[id(layer)]
        weights[start : start + count] = arrays
        self._set_flat_weights(weights)

    def _set_flat_weights(self, arrays) -> None:
        flat = [np.asarray(a, np.float32).reshape(-1) for a in arrays]
        values = np.concatenate(flat) if flat else np.zeros(0, np.float32)
        self._engine.set_weights(np.ascontiguousarray(values, dtype=np.float32))

    def _require_built(self, xs: list | None = None) -> None:
        if self._engine is None:
            raise ValueError(f"Model '{self.name}' has not been built.")
        self._claim_weights()

    def get_weights(self) -> list[np.ndarray]:
        """Every weight as a NumPy array, layer by layer (Dense: kernel `(in, units)`, bias); a
        layer shared by several calls, once."""
        if self._engine is None:
            return []
        self._claim_weights()
        return self._engine.get_weights()

    def set_weights(self, weights) -> None:
        """Sets every weight from a list shaped as `get_weights()` returns it."""
        self._require_built()
        shapes = [tuple(s) for s in self._engine.weight_shapes()]
        weights = list(weights)
        if len(weights) != len(shapes):
            raise ValueError(
                f"You called `set_weights(weights)` on model '{self.name}' with a weight list of "
                f"length {len(weights)}, but the model was expecting {len(shapes)} weights."
            )
        self._set_flat_weights(checked_weights(weights, shapes, "the model"))

    @property
    def weights(self) -> list:
        """Every layer's weights as variables, in the order of `get_weights()`."""
        if self._engine is None:
            return []
        self._claim_weights()
        return [v for layer in self._engine_layers for v in layer.weights]

    @property
    def trainable_weights(self) -> list:
        """The variables that `fit` trains: those of layers that train, in this model."""
        return self._weights_where(True)

    @property
    def non_trainable_weights(self) -> list:
        return self._weights_where(False)

    def _weights_where(self, trains: bool) -> list:
        if self._engine is None:
            return []
        flags = self._trainable_layers()
        layers = [layer for layer, flag in zip(self._engine_layers, flags) if flag == trains]
        return [v for layer in layers for v in layer.weights]

    def build(self, input_shape=None) -> None:
        """A functional model is built when it is made; nothing to do."""

    def count_params(self) -> int:
        """How many weight values the model holds."""
        if self._engine is None:
            raise ValueError(
                f"You tried to call `count_params` on model '{self.name}', but the model isn't "
                "built. You can build it manually via: `model.build(input_shape)`."
            )
        return sum(int(np.prod(s)) for s in self._engine.weight_shapes())

    @property
    def _weight_shapes(self) -> list[tuple[int, ...]]:
        if self._engine is None:
            return []
        return [tuple(s) for s in self._engine.weight_shapes()]

    @_weight_shapes.setter
    def _weight_shapes(self, _) -> None:
        pass  # a model's weights are its layers'

    def _leave(self, model) -> None:
        pass  # a model's weights are its layers'

    # Structure

    @property
    def trainable(self) -> bool:
        """Whether the model's weights train. Setting it sets every layer's `trainable` too,
        as in Keras; a layer's weights train only where the flags of the layer and of every
        model around it are true."""
        return self._trainable

    @trainable.setter
    def trainable(self, value) -> None:
        self._trainable = bool(value)
        for layer in self.layers:
            if not isinstance(layer, InputLayer):
                layer.trainable = self._trainable

    def _trainable_layers(self) -> list[bool]:
        """Whether each of the engine's layers trains."""
        flags: dict[int, bool] = {}

        def walk(model, trains: bool) -> None:
            for layer in model.layers:
                if isinstance(layer, Model):
                    walk(layer, trains and layer.trainable)
                elif id(layer) not in flags:
                    flags[id(layer)] = trains and bool(layer.trainable)

        walk(self, self.trainable)
        return [flags[id(layer)] for layer in self._engine_layers]

    def get_layer(self, name=None, index=None):
        """The layer named `name`, or at position `index` of `layers`."""
        if index is not None and name is not None:
            raise ValueError(
                f"Provide only a layer name or a layer index. Received: index={index}, name={name}."
            )
        if index is not None:
            if len(self.layers) <= index:
                raise ValueError(
                    f"Was asked to retrieve layer at index {index} but model only has "
                    f"{len(self.layers)} layers."
                )
            return self.layers[index]
        if name is not None:
            for layer in self.layers:
                if layer.name == name:
                    return layer
            raise ValueError(
                f"No such layer: {name}. Existing layers are: "
                f"{list(layer.name for layer in self.layers)}."
            )
        raise ValueError("Provide either a layer name or layer index at `get_layer`.")

    @property
    def inputs(self) -> list[KerasTensor]:
        return self._graph_io()[0]

    @property
    def input(self):
        inputs = self._graph_io()[0]
        return inputs[0] if len(inputs) == 1 else inputs

    @property
    def output(self):
        outputs = self._graph_io()[1]
        return outputs[0] if len(outputs) == 1 else outputs

    @property
    def outputs(self) -> list[KerasTensor]:
        return self._graph_io()[1]

    def _output_sample_shapes(self) -> list[tuple[int, ...]]:
        return [tuple(shape) for shape in self._engine.output_shapes()]

    def _input_sample_shapes(self) -> list[tuple[int, ...]]:
        return [t.sample_shape for t in self._graph_io()[0]]

    def _input_names(self) -> list[str]:
        """What a dict of inputs is keyed by: the input layers' names."""
        return [t._keras_history.operation.name for t in self._graph_io()[0]]

    def _output_names(self) -> list[str]:
        """What losses, metrics and logs name each output by: the name of the layer that
        computes it."""
        return [t._keras_history.operation.name for t in self._graph_io()[1]]

    @property
    def output_names(self) -> list[str]:
        """The names of the layers that compute the outputs, as Keras lists them."""
        return Model._output_names(self)

    def _output_activations(self) -> list[str | None]:
        """The name of the activation each output's layer ends in, where it has one."""
        names = []
        for tensor in self._graph_io()[1]:
            node = _graph.node_of(tensor)
            activation = getattr(node.operation, "activation", None) if node else None
            names.append(getattr(activation, "__name__", None))
        return names

    def _output_structure(self, arrays: list[np.ndarray]):
        """Arrays, one per output, in the structure of the model's outputs: one array for one
        output, else a list."""
        return arrays[0] if len(arrays) == 1 else list(arrays)

    # Calls

    def __call__(self, inputs, *args, training=None, mask=None, **kwargs):
        """On symbolic tensors, records the model as one call (a nested model); on arrays,
        returns its outputs as NumPy arrays, with its Dropout layers in training mode where
        `training=True` (each call draws new masks), as their calls were recorded where
        `training=None`, in inference where `training=False`."""
        if args or kwargs or mask is not None:
            raise TypeError(f"Model '{self.name}' takes its inputs and `training` only.")
        tensors = flatten(inputs)
        if tensors and all(is_keras_tensor(t) for t in tensors):
            return self._call_symbolic(inputs, tensors, training)
        if any(is_keras_tensor(t) for t in tensors):
            raise ValueError(
                f"Model '{self.name}' received symbolic tensors mixed with arrays: a model "
                "takes arrays as constants only inside, where a layer is called on them."
            )
        if training is False or not self._trains_in_call(training):
            return self.predict_on_batch(inputs)
        return self._call_in_mode(inputs, training)

    def _trains_in_call(self, training=None) -> bool:
        """Whether a call with `training` runs a layer that behaves differently in training
        (Dropout) in training mode. With `training=None`, a call runs as it was recorded,
        unless an enclosing model's call was recorded with a value, which overrides it (as
        Keras passes `training` down)."""
        for node in _graph.ordered_nodes(*self._graph_io()):
            trains = node.training_under(training)
            operation = node.operation
            if isinstance(operation, Model):
                if operation._trains_in_call(trains):
                    return True
            elif trains and operation._training_dependent:
                return True
        return False

    def _call_symbolic(self, inputs, tensors, training=None):
        self._build_for_call(tensors)
        model_inputs, model_outputs = self._graph_io()
        if len(tensors) != len(model_inputs):
            raise ValueError(
                f"Model '{self.name}' expects {len(model_inputs)} input(s), but it received "
                f"{len(tensors)} input tensors."
            )
        for tensor, expected in zip(tensors, model_inputs):
            if not _compatible(tensor.sample_shape, expected.sample_shape):
                raise ValueError(
                    f'Input of model "{self.name}" is incompatible: expected shape '
                    f"{expected.shape}, received {tensor.shape}."
                )
        outputs = [KerasTensor(t.shape) for t in model_outputs]
        node = Node(self, tensors, outputs, structure=inputs, training=training)
        self.built = True
        return node.output_structure

    def _build_for_call(self, tensors) -> None:
        """Builds the model for the inputs of a first symbolic call, where it can."""

    def spec(self):
        raise TypeError(f"Model '{self.name}' is not one layer: its graph is inlined.")

    # Configuration and saving

    @classmethod
    def from_config(cls, config: dict):
        """A new, untrained model with the architecture `get_config()` described: a functional
        model's config (it has `layers`, `input_layers` and `output_layers`) builds one."""
        from pynn.functional import Functional
        from pynn.saving.functional_config import functional_from_config

        functional_keys = ("name", "layers", "input_layers", "output_layers")
        if issubclass(cls, Functional) or (
            isinstance(config, dict) and all(key in config for key in functional_keys)
        ):
            return functional_from_config(config)
        return super().from_config(config)

    def to_json(self, **kwargs) -> str:
        """The architecture as a JSON string; `pynn.models.model_from_json` rebuilds it (weights
        not included: see `save`)."""
        from pynn.saving.serialization import serialize

        return json.dumps(serialize(self), **kwargs)

    def save(self, filepath, overwrite: bool = True) -> None:
        """Writes the architecture, the weights, the compile settings and the optimizer's state
        to a `.pynn` file (atomically); `pynn.models.load_model` reads it back."""
        from pynn.saving import save_model

        save_model(self, filepath, overwrite=overwrite)

    def save_weights(self, filepath, overwrite: bool = True) -> None:
        """Writes the weights alone to a `.weights.safetensors` file (atomically)."""
        from pynn.saving import save_weights

        save_weights(self, filepath, overwrite=overwrite)

    def load_weights(self, filepath) -> None:
        """Reads weights saved by `save_weights` (or `save`) into this model, which must have
        the same architecture."""
        from pynn.saving import load_weights

        load_weights(self, filepath)

    # Display

    def summary(self, line_length=None, print_fn=None, expand_nested=False) -> None:
        """Prints Keras 3's summary table: each layer's output shape and parameter count; with
        `expand_nested`, a nested model's layers under it, indented (`└`)."""
        connected = self._summary_connections()
        rows = []

        def add_rows(layer, level: int) -> None:
            prefix = "   " * level + "└ " if level else ""
            name = f"{prefix}{layer.name} ({type(layer).__name__})"
            if not layer.built:
                row = (name, "?", "0 (unbuilt)")
            else:
                row = (name, str(layer.output_shape), f"{layer.count_params():,}")
            # A nested model's layers are not connected in this model's graph.
            inputs = "-" if level else None
            rows.append(row if connected is None else (*row, inputs or connected(layer)))
            if expand_nested and isinstance(layer, Model):
                for inner in layer.layers:
                    add_rows(inner, level + 1)

        for layer in self._summary_layers():
            add_rows(layer, 0)
        trainable = non_trainable = 0
        if self._engine is not None:
            for layer, trains in zip(self._engine_layers, self._trainable_layers()):
                if trains:
                    trainable += layer.count_params()
                else:
                    non_trainable += layer.count_params()
        optimizer = 0
        if self._optimizer_built:
            # Slots for the trainable weights, then `iterations` (an int64) and the learning
            # rate, as Keras counts them.
            optimizer = self._engine.optimizer_slots() * trainable + 2
        weights = trainable + non_trainable

        def count(n: int, extra_bytes: int = 0) -> str:
            size = n * _BYTES_PER_VALUE + extra_bytes
            return f"{n:,} ({_summary.readable_size(size)})"

        optimizer_bytes = _ITERATIONS_EXTRA_BYTES if self._optimizer_built else 0
        totals = [
            f"Total params: {count(weights + optimizer, optimizer_bytes)}",
            f"Trainable params: {count(trainable)}",
            f"Non-trainable params: {count(non_trainable)}",
        ]
        if self._optimizer_built:
            totals.append(f"Optimizer params: {count(optimizer, optimizer_bytes)}")
        text = _summary.render(self.name, rows, totals, line_length)
        (print_fn or print)(text)

    def _summary_layers(self) -> list:
        return self.layers

    def _summary_connections(self):
        """`connections(layer)` -> what the summary's "Connected to" column shows, or None for
        a model drawn as a stack (Keras's rule: one call per depth, each of one input)."""
        if self._engine is None:
            return None
        inputs, outputs = self._graph_io()
        if isinstance(self, Sequential) or _graph.is_sequential_like(inputs, outputs):
            return None
        nodes = _graph.ordered_nodes(inputs, outputs)
        return lambda layer: _graph.connections(layer, nodes)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"


def _BUILT_IN_MODELS() -> tuple:  # noqa: N802
    from pynn.functional import Functional

    return (Sequential, Functional)


class Sequential(Model):
    """A linear stack of layers.

    Args:
        layers: the layers, in order; may start with an `InputLayer` or `pynn.Input(shape)`.
        name: the model's name; defaults to `sequential`, `sequential_1`, ...
    """

    def __init__(self, layers=None, trainable: bool = True, name: str | None = None):
        self._input_layer: InputLayer | None = None
        self._layers: list[Layer] = []
        self._output_tensor: KerasTensor | None = None
        Layer.__init__(self, name=name or auto_name("sequential"), trainable=trainable)
        for layer in layers or []:
            self._add(layer, rebuild=False)
        self._rebuild()

    # Structure

    @property
    def layers(self) -> list[Layer]:
        """The layers, without the input layer (as in Keras)."""
        return list(self._layers)

    def add(self, layer) -> None:
        """Appends a layer; the model is built as soon as it knows its input shape."""
        self._refuse_while_running("add a layer to")
        self._add(layer, rebuild=True)

    def _add(self, layer, rebuild: bool) -> None:
        if isinstance(layer, KerasTensor):
            layer = layer._keras_history.operation
        if not isinstance(layer, Layer):
            raise ValueError(
                "Only instances of `pynn.layers.Layer` can be added to a Sequential model. "
                f"Received: {layer!r} (of type {type(layer).__name__})"
            )
        if not isinstance(layer, Model):
            refuse_custom(layer, "layer")
            if is_custom(layer):
                layer.spec()  # raises NotImplementedError, naming the layer
        if isinstance(layer, InputLayer):
            if self._input_layer is not None or self._layers:
                raise ValueError(
                    "Sequential model '{}' has already been configured to use input shape {}. "
                    "You cannot add a different Input layer to it.".format(
                        self.name, self._input_layer.batch_shape if self._input_layer else "?"
                    )
                )
            self._input_layer = layer
            return
        if not self._layers and self._input_layer is None:
            if getattr(layer, "_input_shape_arg", None):
                self._input_layer = InputLayer(shape=layer._input_shape_arg)
        if any(existing.name == layer.name for existing in self._layers):
            raise ValueError(
                f"All layers added to a Sequential model should have unique names. Name "
                f"'{layer.name}' is already the name of a layer in this model. Update the `name` "
                "argument to pass a unique name."
            )
        self._layers.append(layer)
        if rebuild:
            try:
                self._rebuild()
            except Exception:
                self._layers.pop()
                self._rebuild()
                raise

    def pop(self) -> Layer:
        """Removes and returns the last layer."""
        self._refuse_while_running("pop a layer from")
        if not self._layers:
            raise IndexError("There are no layers in the model.")
        self._release_engine()
        layer = self._layers.pop()
        self._rebuild()
        return layer

    def build(self, input_shape=None) -> None:
        """Builds the model for batches of `input_shape` (e.g. `(None, 4)`)."""
        self._refuse_while_running("build")
        if input_shape is None:
            if self._input_layer is None:
                raise ValueError("You must provide an `input_shape` argument.")
        else:
            self._input_layer = InputLayer(batch_shape=tuple(input_shape))
        self._rebuild()

    def _rebuild(self) -> None:
        """Calls the layers on the input's symbolic tensor and builds the engine; layers that
        held weights keep them."""
        self._release_engine()
        self._output_tensor = None
        self.built = False
        if self._input_layer is None or not self._layers:
            return
        x = self._input_layer.output
        for layer in self._layers:
            x = layer(x)
        self._output_tensor = x
        self._build_engine()
        self.built = True

    def _graph_io(self):
        if self._output_tensor is None:
            raise ValueError(f"Sequential model '{self.name}' has not been built yet.")
        return [self._input_layer.output], [self._output_tensor]

    def _build_for_call(self, tensors) -> None:
        if self._engine is None and self._input_layer is None and len(tensors) == 1:
            self.build(tensors[0].shape)

    def _require_built(self, xs: list | None = None) -> None:
        if self._engine is None and xs and self._layers:
            self._input_layer = InputLayer(shape=xs[0].shape[1:])
            self._rebuild()
        if self._engine is None:
            raise ValueError(
                f"Sequential model '{self.name}' has not been built: give it an input shape "
                "with `pynn.Input(shape)` or `InputLayer(shape=...)` as first layer, or call "
                "`build(input_shape)`."
            )
        self._claim_weights()

    @property
    def input_shape(self) -> tuple:
        self._require_built()
        return self._input_layer.batch_shape

    @property
    def output_shape(self) -> tuple:
        self._require_built()
        return (None,) + self._output_sample_shapes()[0]

    def _input_names(self) -> list[str]:
        return [self._input_layer.name if self._input_layer else "input_layer"]

    def _output_names(self) -> list[str]:
        return [self._layers[-1].name if self._layers else "output"]

    # Configuration and saving

    def get_config(self) -> dict:
        """The architecture: the name and every layer's class and config, the input first."""
        from pynn.saving.serialization import serialize

        layers = ([] if self._input_layer is None else [self._input_layer]) + self._layers
        return {
            "name": self.name,
            "trainable": self.trainable,
            "layers": [serialize(layer) for layer in layers],
        }

    @classmethod
    def from_config(cls, config: dict) -> Sequential:
        """A new, untrained model with the architecture `get_config()` described."""
        from pynn.saving.serialization import deserialize_layer

        layers = config.get("layers")
        if not isinstance(layers, list):
            raise ValueError("A Sequential config needs a list of 'layers'.")
        name = config.get("name")
        if name is not None and not isinstance(name, str):
            raise ValueError(f"A Sequential config's 'name' must be a string; got {name!r}.")
        trainable = bool(config.get("trainable", True))
        return cls([deserialize_layer(layer) for layer in layers], trainable=trainable, name=name)


def load_model(filepath, compile: bool = True) -> Model:
    """The model saved by `model.save(filepath)`: architecture, weights and, with `compile`,
    the compile settings and optimizer state. Reading never runs code from the file."""
    from pynn.saving import load_model as load

    return load(filepath, compile=compile)


def clone_model(model, input_tensors=None, clone_function=None, recursive=False, **kwargs):
    """A new model of `model`'s architecture, with new layers and freshly initialized weights
    (see `pynn._cloning.clone_model`, Keras's `keras.models.clone_model`)."""
    from pynn._cloning import clone_model as clone

    return clone(model, input_tensors, clone_function, recursive, **kwargs)


def model_from_json(json_string: str) -> Model:
    """A new, untrained model with the architecture `model.to_json()` described."""
    from pynn.saving.serialization import deserialize, nesting_checked

    try:
        config = json.loads(json_string)
    except (TypeError, json.JSONDecodeError) as error:
        raise ValueError(f"`json_string` is not valid JSON: {error}") from None
    except RecursionError:
        raise ValueError("`json_string` nests its JSON too deeply to be a model.") from None
    with nesting_checked("`json_string`"):
        return deserialize(config, "pynn.models")


def _compatible(shape: tuple, expected: tuple) -> bool:
    """Whether a tensor of per-sample `shape` fits an input of `expected`: the same sizes
    where both are known (`None`, a variable dimension, fits any)."""
    return len(shape) == len(expected) and all(
        a is None or b is None or a == b for a, b in zip(shape, expected)
    )
