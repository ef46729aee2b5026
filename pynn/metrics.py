"""Metrics (`keras.metrics`), computed by the engine as exact means over an epoch's samples.

`"accuracy"` (or `"acc"`) becomes binary, sparse or categorical accuracy from the shapes of `y`
and of the model's output, as Keras 3 decides (the loss plays no part).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from pynn import _core
from pynn import losses as losses_module


class Metric:
    """Base class. `spec()` is what the engine receives; `sparse` metrics take class indices."""

    sparse = False
    #: Whether larger values are better ("up") or worse ("down"); monitors read it.
    direction = "down"

    def __init__(self, name: str):
        self.name = name

    def spec(self) -> dict[str, Any]:
        """What the engine receives."""
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        """The constructor's arguments, from which `from_config` rebuilds the object."""
        return {"name": self.name}

    @classmethod
    def from_config(cls, config):
        """Builds an object from what `get_config()` returned."""
        from pynn.saving.serialization import from_config

        return from_config(cls, config)

    def __call__(self, y_true, y_pred) -> np.float32:
        """The metric's mean over rows of `y_pred`."""
        p = np.ascontiguousarray(y_pred, dtype=np.float32)
        t = np.ascontiguousarray(y_true, dtype=np.float32)
        width = p.shape[-1] if p.ndim else 1
        value = _core.metric(json.dumps(self.spec()), t.reshape(-1), p.reshape(-1), width)
        return np.float32(value)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name}>"


class BinaryAccuracy(Metric):
    """How often `y_pred > threshold` equals `y_true`."""

    direction = "up"

    def __init__(self, name: str = "binary_accuracy", threshold: float = 0.5):
        super().__init__(name)
        self.threshold = float(threshold)

    def get_config(self):
        return {"name": self.name, "threshold": self.threshold}

    def spec(self):
        return {"kind": "binary_accuracy", "threshold": self.threshold}


class CategoricalAccuracy(Metric):
    """How often `argmax(y_pred)` equals `argmax(y_true)` (one-hot targets)."""

    direction = "up"

    def __init__(self, name: str = "categorical_accuracy"):
        super().__init__(name)

    def spec(self):
        return {"kind": "categorical_accuracy"}


class SparseCategoricalAccuracy(Metric):
    """How often `argmax(y_pred)` equals the class index `y_true`."""

    direction = "up"

    sparse = True

    def __init__(self, name: str = "sparse_categorical_accuracy"):
        super().__init__(name)

    def spec(self):
        return {"kind": "sparse_categorical_accuracy"}


class _LossMetric(Metric):
    """A loss tracked as a metric (`"mse"`, `"categorical_crossentropy"`, ...)."""

    registered_name = "LossMetric"

    def __init__(self, loss: losses_module.Loss, name: str):
        super().__init__(name)
        self.loss = losses_module.get(loss)
        self.sparse = self.loss.sparse

    def get_config(self):
        from pynn.saving.serialization import serialize

        return {"name": self.name, "loss": serialize(self.loss)}

    def spec(self):
        return {"kind": "loss", "loss": self.loss.spec()}


def MeanSquaredError(name: str = "mean_squared_error") -> Metric:  # noqa: N802 (Keras's name)
    """The mean squared error, tracked as a metric (`metrics=["mse"]`)."""
    return _LossMetric(losses_module.MeanSquaredError(), name)


def MeanAbsoluteError(name: str = "mean_absolute_error") -> Metric:  # noqa: N802
    """The mean absolute error, tracked as a metric (`metrics=["mae"]`)."""
    return _LossMetric(losses_module.MeanAbsoluteError(), name)


def shape_kind(y_shape: tuple[int, ...], output_shape: tuple[int, ...]) -> str:
    """Keras 3's rule: `"binary"` for one output unit, `"sparse"` when `y` lacks the class axis
    (or has it as 1), else `"categorical"`. `output_shape` excludes the batch axis."""
    out_last = output_shape[-1] if output_shape else 1
    if out_last == 1:
        return "binary"
    y_rank, out_rank = len(y_shape), len(output_shape) + 1
    if y_rank < out_rank or (y_shape[-1] == 1 and out_last > 1):
        return "sparse"
    return "categorical"


_ACCURACY = {
    "binary": BinaryAccuracy,
    "sparse": SparseCategoricalAccuracy,
    "categorical": CategoricalAccuracy,
}
_BY_NAME = {
    "binary_accuracy": BinaryAccuracy,
    "BinaryAccuracy": BinaryAccuracy,
    "categorical_accuracy": CategoricalAccuracy,
    "CategoricalAccuracy": CategoricalAccuracy,
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "SparseCategoricalAccuracy": SparseCategoricalAccuracy,
}
NAMES = tuple(sorted(set(_BY_NAME) | {"accuracy", "acc"} | set(losses_module.NAMES)))


def get(identifier, y_shape: tuple[int, ...], output_shape: tuple[int, ...]) -> Metric:
    """Resolves a metric given as a name, an instance or a loss function, for targets of
    `y_shape` (batch axis included) and a model output of `output_shape` (without it)."""
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, dict):
        from pynn.saving.serialization import deserialize

        return deserialize(identifier, "pynn.metrics")
    name = identifier if isinstance(identifier, str) else getattr(identifier, "__name__", None)
    if name in ("accuracy", "acc"):
        return _ACCURACY[shape_kind(y_shape, output_shape)](name=name)
    if name in _BY_NAME:
        return _BY_NAME[name](name=name)
    if name in losses_module.NAMES:
        return _LossMetric(losses_module.get(name, y_shape, output_shape), name)
    raise ValueError(
        f"Could not interpret metric identifier: {identifier!r}. Valid names: {', '.join(NAMES)}."
    )
