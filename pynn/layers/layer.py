"""The base of every layer: a named configuration that the model turns into engine specs.

A pynn layer holds no tensors of its own. Once its model is built, the engine owns the weights
and the layer reads and writes its share of them through the model.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from pynn import _checks
from pynn._naming import auto_name, to_snake_case

_INPUT_SHAPE_WARNING = (
    "Do not pass an `input_shape`/`input_dim` argument to a layer. When using Sequential "
    "models, prefer using an `Input(shape)` object as the first layer in the model instead."
)


class Layer:
    """Base class of layers: a configuration that the model hands to the engine, which builds
    the layer, keeps its weights and computes it.

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
        self.trainable = bool(trainable)
        self.built = False
        self._model = None
        self._weight_index = 0
        self._input_shape: tuple[int, ...] = ()
        self._output_shape: tuple[int, ...] = ()
        self._weight_shapes: list[tuple[int, ...]] = []

    # Configuration: what subclasses define.

    def spec(self) -> dict[str, Any]:
        """What the engine builds for this layer. The engine also works out its output shape
        and its weights' shapes, and rejects inputs the layer cannot take."""
        raise NotImplementedError(
            f"Layer '{self.name}' ({type(self).__name__}) is a custom layer: pynn does not run "
            "layers written in Python (a `call` method) yet. Its models are made of pynn's "
            "built-in layers (see pynn.layers)."
        )

    def __call__(self, *args, **kwargs):
        raise NotImplementedError(
            f"Calling layer '{self.name}' on a tensor or an array (`layer(x)`, the functional "
            "API) is not supported by pynn yet. Put the layer in a model, "
            "`pynn.Sequential([pynn.Input(shape), ...])`, and call `model.predict(x)`."
        )

    def get_config(self) -> dict[str, Any]:
        """The constructor's arguments (Keras's names and defaults), from which `from_config`
        rebuilds the layer."""
        return {"name": self.name, "trainable": self.trainable, "dtype": "float32"}

    @classmethod
    def from_config(cls, config):
        """Builds an object from what `get_config()` returned."""
        from pynn.saving.serialization import from_config

        return from_config(cls, config)

    # State: read through the model that built this layer.

    def _attach(self, model, input_shape, output_shape, weight_shapes, weight_index) -> None:
        self._model = model
        self._input_shape = tuple(input_shape)
        self._output_shape = tuple(output_shape)
        self._weight_shapes = [tuple(s) for s in weight_shapes]
        self._weight_index = weight_index
        self.built = True

    def _detach(self) -> None:
        self._model, self.built = None, False

    @property
    def input_shape(self) -> tuple:
        self._require_built("input shape")
        return (None,) + self._input_shape

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

    def get_weights(self) -> list[np.ndarray]:
        """The layer's weights as NumPy arrays (e.g. kernel, then bias); none before it is
        built."""
        if not self.built:
            return []
        end = self._weight_index + len(self._weight_shapes)
        return self._model.get_weights()[self._weight_index : end]

    def set_weights(self, weights) -> None:
        """Sets the layer's weights from arrays shaped as `get_weights()` returns them."""
        if not self.built:
            raise ValueError(f"Layer '{self.name}' is not built yet; it has no weights to set.")
        all_weights = self._model.get_weights()
        n = len(self._weight_shapes)
        if len(weights) != n:
            raise ValueError(
                f"Layer {self.name} weight shape mismatch: expected {n} arrays, got {len(weights)}."
            )
        all_weights[self._weight_index : self._weight_index + n] = list(weights)
        self._model.set_weights(all_weights)

    @property
    def weights(self) -> list[np.ndarray]:
        return self.get_weights()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"


def is_custom(layer: Layer) -> bool:
    """Whether `layer` is a subclass written outside pynn (no engine spec), which the engine
    cannot run."""
    return type(layer).spec is Layer.spec


def _as_shape(shape, argument: str) -> tuple[int, ...]:
    if isinstance(shape, int) and not isinstance(shape, bool):
        shape = (shape,)
    try:
        dims = tuple(shape)
    except TypeError:
        raise ValueError(
            f"`{argument}` must be a tuple of positive integers. Received: {argument}={shape!r}"
        ) from None
    if any(d is None for d in dims):
        raise NotImplementedError(
            f"`{argument}` has a None dimension ({argument}={shape!r}): pynn does not support "
            "variable dimensions yet; give each dimension's size (the batch axis is not part "
            "of `shape`)."
        )
    if not all(_checks.is_integer(d) and 0 < d <= _checks.MAX_SIZE for d in dims):
        raise ValueError(
            f"`{argument}` must be a tuple of positive integers. Received: {argument}={shape!r}"
        )
    return tuple(int(d) for d in dims)
