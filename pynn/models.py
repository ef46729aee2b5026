"""`Sequential`: a stack of layers whose weights live in the Rust engine
(`keras.models.Sequential`). Training and inference come from `pynn.trainer.Trainer`."""

from __future__ import annotations

import json

import numpy as np

from pynn import _core, _summary
from pynn._custom import refuse_custom
from pynn._naming import auto_name
from pynn.layers.core import InputLayer, KerasTensor
from pynn.layers.layer import Layer, is_custom
from pynn.trainer import Trainer

_BYTES_PER_VALUE = 4
#: The optimizer's `iterations` counter is an int64: 4 bytes more than a float32 value.
_ITERATIONS_EXTRA_BYTES = 4


class Model(Trainer):
    """Keras's `Model`. pynn builds `Sequential` models; the functional API
    (`Model(inputs, outputs)`) and subclassing `Model` with a `call` method are not supported
    yet, and raise `NotImplementedError` saying so."""

    def __new__(cls, *args, **kwargs):
        if not issubclass(cls, Sequential):
            raise NotImplementedError(
                "pynn does not support `Model(inputs, outputs)` (the functional API) or "
                "subclassing `Model` yet: build a `pynn.Sequential([pynn.Input(shape), ...])`."
            )
        return super().__new__(cls)


class Sequential(Model):
    """A linear stack of layers.

    Args:
        layers: the layers, in order; may start with an `InputLayer` or `pynn.Input(shape)`.
        name: the model's name; defaults to `sequential`, `sequential_1`, ...
    """

    def __init__(self, layers=None, trainable: bool = True, name: str | None = None):
        self.name = name or auto_name("sequential")
        self._input_layer: InputLayer | None = None
        self._layers: list[Layer] = []
        self._engine = None
        self._trainable = bool(trainable)
        for layer in layers or []:
            self.add(layer)

    @property
    def trainable(self) -> bool:
        """Whether the model's weights train. Setting it sets every layer's `trainable` too,
        as in Keras; a layer's weights train only where the model's and the layer's flags are
        both true. `fit` reads the flags at every call: a frozen layer's weights stay as they
        are, and its weight penalties leave the loss."""
        return self._trainable

    @trainable.setter
    def trainable(self, value) -> None:
        self._trainable = bool(value)
        for layer in self._layers:
            layer.trainable = self._trainable

    def _output_activation(self) -> str | None:
        """The name of the activation the output layer ends in, if it has one."""
        activation = getattr(self._layers[-1], "activation", None) if self._layers else None
        return getattr(activation, "__name__", None)

    def _trainable_layers(self) -> list[bool]:
        """Whether each layer's weights train."""
        return [self._trainable and bool(layer.trainable) for layer in self._layers]

    # Structure

    @property
    def layers(self) -> list[Layer]:
        """The layers, without the input layer (as in Keras)."""
        return list(self._layers)

    def add(self, layer) -> None:
        """Appends a layer; the model is built as soon as it knows its input shape."""
        self._refuse_while_running("add a layer to")
        if isinstance(layer, KerasTensor):
            layer = layer._input_layer
        if not isinstance(layer, Layer):
            raise ValueError(
                "Only instances of `pynn.layers.Layer` can be added to a Sequential model. "
                f"Received: {layer!r} (of type {type(layer).__name__})"
            )
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
        if not self._layers and self._input_layer is None and layer._input_shape_arg:
            self._input_layer = InputLayer(shape=layer._input_shape_arg)
        if any(existing.name == layer.name for existing in self._layers):
            raise ValueError(
                f"All layers added to a Sequential model should have unique names. Name "
                f"'{layer.name}' is already the name of a layer in this model. Update the `name` "
                "argument to pass a unique name."
            )
        self._layers.append(layer)
        self._rebuild()

    def pop(self) -> Layer:
        """Removes and returns the last layer."""
        self._refuse_while_running("pop a layer from")
        if not self._layers:
            raise IndexError("There are no layers in the model.")
        layer = self._layers.pop()
        layer._detach()
        self._rebuild()
        return layer

    @property
    def built(self) -> bool:
        return self._engine is not None

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
        """(Re)creates the engine; layers that were built keep their weights."""
        kept = {id(layer): layer.get_weights() for layer in self._layers if layer.built}
        self._engine = None
        if self._input_layer is None or not self._layers:
            return
        specs = json.dumps([layer.spec() for layer in self._layers])
        names = [layer.name for layer in self._layers]
        self._engine = _core.Engine(list(self._input_layer.shape), specs, names)
        shape, index = self._input_layer.shape, 0
        for layer, output_shape, weight_shapes in zip(
            self._layers, self._engine.layer_output_shapes(), self._engine.layer_weight_shapes()
        ):
            layer._attach(self, shape, output_shape, weight_shapes, index)
            shape, index = tuple(output_shape), index + len(weight_shapes)
        for layer in self._layers:
            if kept.get(id(layer)):
                layer.set_weights(kept[id(layer)])
        self._loss = None
        self._optimizer_built = False
        self._engine_trainable = None

    def _require_built(self, x: np.ndarray | None = None) -> None:
        if self._engine is None and x is not None and self._layers:
            self._input_layer = InputLayer(shape=x.shape[1:])
            self._rebuild()
        if self._engine is None:
            raise ValueError(
                f"Sequential model '{self.name}' has not been built: give it an input shape "
                "with `pynn.Input(shape)` or `InputLayer(shape=...)` as first layer, or call "
                "`build(input_shape)`."
            )

    @property
    def input_shape(self) -> tuple:
        self._require_built()
        return self._input_layer.batch_shape

    @property
    def output_shape(self) -> tuple:
        self._require_built()
        return (None,) + self._per_sample_output_shape()

    def _per_sample_output_shape(self) -> tuple[int, ...]:
        return tuple(self._engine.output_shape())

    # Weights

    def get_weights(self) -> list[np.ndarray]:
        """Every weight as a NumPy array, layer by layer (Dense: kernel `(in, units)`, bias)."""
        return [] if self._engine is None else self._engine.get_weights()

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
        arrays = []
        for i, (value, shape) in enumerate(zip(weights, shapes)):
            array = np.asarray(value, dtype=np.float32)
            if array.shape != shape:
                raise ValueError(
                    f"Weight {i} has shape {array.shape}, but the model expects {shape}."
                )
            if not np.all(np.isfinite(array)):
                raise ValueError(f"Weight {i} contains NaN or infinite values.")
            arrays.append(array.reshape(-1))
        flat = np.concatenate(arrays) if arrays else np.zeros(0, np.float32)
        self._engine.set_weights(np.ascontiguousarray(flat, dtype=np.float32))

    def count_params(self) -> int:
        """How many weight values the model holds."""
        if self._engine is None:
            raise ValueError(
                f"You tried to call `count_params` on model '{self.name}', but the model isn't "
                "built. You can build it manually via: `model.build(input_shape)`."
            )
        return sum(int(np.prod(s)) for s in self._engine.weight_shapes())

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
        from pynn.saving.serialization import deserialize

        layers = config.get("layers")
        if not isinstance(layers, list):
            raise ValueError("A Sequential config needs a list of 'layers'.")
        name = config.get("name")
        if name is not None and not isinstance(name, str):
            raise ValueError(f"A Sequential config's 'name' must be a string; got {name!r}.")
        return cls([deserialize(layer, "pynn.layers") for layer in layers], name=name)

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

    def summary(self, line_length=None, print_fn=None) -> None:
        """Prints Keras 3's summary table: each layer's output shape and parameter count."""
        rows = []
        for layer in self._layers:
            name = f"{layer.name} ({type(layer).__name__})"
            if self._engine is None:
                rows.append((name, "?", "0 (unbuilt)"))
            else:
                rows.append((name, str(layer.output_shape), f"{layer.count_params():,}"))
        trainable = non_trainable = 0
        if self._engine is not None:
            for layer, trains in zip(self._layers, self._trainable_layers()):
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

        # Keras's `iterations` is an int64: 4 bytes more than a float32.
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

    def __repr__(self) -> str:
        return f"<Sequential name={self.name}, built={self.built}>"


def load_model(filepath, compile: bool = True) -> Sequential:
    """The model saved by `model.save(filepath)`: architecture, weights and, with `compile`,
    the compile settings and optimizer state. Reading never runs code from the file."""
    from pynn.saving import load_model as load

    return load(filepath, compile=compile)


def model_from_json(json_string: str) -> Sequential:
    """A new, untrained model with the architecture `model.to_json()` described."""
    from pynn.saving.serialization import deserialize

    try:
        config = json.loads(json_string)
    except (TypeError, json.JSONDecodeError) as error:
        raise ValueError(f"`json_string` is not valid JSON: {error}") from None
    except RecursionError:
        raise ValueError("`json_string` nests its JSON too deeply to be a model.") from None
    return deserialize(config, "pynn.models")
