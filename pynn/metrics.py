"""Metrics (`keras.metrics`), computed by the engine as exact means over an epoch's samples.

`"accuracy"` (or `"acc"`) becomes binary, sparse or categorical accuracy from the shapes of `y`
and of the model's output, as Keras 3 decides (the loss plays no part).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from pynn import _checks, _core
from pynn import losses as losses_module
from pynn._custom import refuse_custom, refuse_function
from pynn._data import as_float32


class Metric:
    """Base class. `spec()` is what the engine receives; `sparse` metrics take class indices.

    In `compile`, the engine computes a metric over every batch of an epoch. On its own, a metric
    object keeps a running weighted mean, as in Keras: `update_state(y_true, y_pred,
    sample_weight=None)` adds a batch, `result()` gives the mean so far, `reset_state()` starts
    again, and calling the metric does `update_state` and returns `result()`.
    """

    sparse = False
    #: Whether larger values are better ("up") or worse ("down"); monitors read it.
    direction = "down"

    def __init__(self, name: str):
        self.name = name
        self.reset_state()

    def spec(self) -> dict[str, Any]:
        """What the engine receives."""
        raise NotImplementedError(
            f"Metric '{self.name}' ({type(self).__name__}) computes nothing: use one of "
            "pynn's built-in metrics."
        )

    def get_config(self) -> dict[str, Any]:
        """The constructor's arguments, from which `from_config` rebuilds the object."""
        return {"name": self.name}

    @classmethod
    def from_config(cls, config):
        """Builds an object from what `get_config()` returned."""
        from pynn.saving.serialization import from_config

        return from_config(cls, config)

    def reset_state(self) -> None:
        """Forgets every batch `update_state` has seen."""
        self._total, self._count = 0.0, 0.0

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        """Adds a batch: the metric's value for each row of `y_pred` (rows are its last axis),
        weighted by `sample_weight` (one weight per row, or one for all)."""
        values = self._row_values(y_true, y_pred)
        weights = (
            np.ones_like(values)
            if sample_weight is None
            else _row_weights(sample_weight, values.shape)
        )
        self._total += float(np.sum(values * weights))
        self._count += float(np.sum(weights))

    def result(self) -> np.float32:
        """The weighted mean of every row seen since the last `reset_state` (0 before any)."""
        return np.float32(self._total / self._count if self._count else 0.0)

    def __call__(self, y_true, y_pred, sample_weight=None) -> np.float32:
        """`update_state(y_true, y_pred, sample_weight)`, then `result()`, as Keras does."""
        self.update_state(y_true, y_pred, sample_weight)
        return self.result()

    def _row_values(self, y_true, y_pred) -> np.ndarray:
        p = as_float32(y_pred)
        t = as_float32(y_true)
        width = p.shape[-1] if p.ndim else 1
        values = _core.metric(json.dumps(self.spec()), t.reshape(-1), p.reshape(-1), width)
        return values.reshape(p.shape[:-1] if p.ndim > 1 else (values.size,)).astype(np.float64)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name}>"


def _row_weights(sample_weight, shape: tuple[int, ...]) -> np.ndarray:
    """`sample_weight` broadcast to the rows' `shape` (a trailing axis of 1 dropped)."""
    weights = np.asarray(sample_weight, dtype=np.float64)
    while weights.ndim > len(shape) and weights.shape[-1] == 1:
        weights = weights[..., 0]
    try:
        return np.broadcast_to(weights, shape)
    except ValueError:
        raise ValueError(
            f"`sample_weight` of shape {weights.shape} does not fit the {shape} rows of "
            "`y_pred`: give one weight per row."
        ) from None


class Accuracy(Metric):
    """How often `y_pred` equals `y_true` exactly, value by value (Keras's `Accuracy`; the
    string `"accuracy"` in `compile` picks binary, categorical or sparse accuracy instead)."""

    direction = "up"

    def __init__(self, name: str = "accuracy"):
        super().__init__(name)

    def spec(self):
        return {"kind": "accuracy"}


class BinaryAccuracy(Metric):
    """How often `y_pred > threshold` equals `y_true`."""

    direction = "up"

    def __init__(self, name: str = "binary_accuracy", threshold: float = 0.5):
        super().__init__(name)
        self.threshold = _checks.real(threshold, "threshold")

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


#: The names Keras gives a loss metric built from a short name outside `compile`.
_LOSS_METRIC_NAMES = {
    "mse": "mean_squared_error",
    "mae": "mean_absolute_error",
    "bce": "binary_crossentropy",
    "MeanSquaredError": "mean_squared_error",
    "MeanAbsoluteError": "mean_absolute_error",
    "BinaryCrossentropy": "binary_crossentropy",
    "CategoricalCrossentropy": "categorical_crossentropy",
    "SparseCategoricalCrossentropy": "sparse_categorical_crossentropy",
}

_ACCURACY = {
    "binary": BinaryAccuracy,
    "sparse": SparseCategoricalAccuracy,
    "categorical": CategoricalAccuracy,
}
_BY_NAME = {
    "Accuracy": Accuracy,
    "binary_accuracy": BinaryAccuracy,
    "BinaryAccuracy": BinaryAccuracy,
    "categorical_accuracy": CategoricalAccuracy,
    "CategoricalAccuracy": CategoricalAccuracy,
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "SparseCategoricalAccuracy": SparseCategoricalAccuracy,
}
NAMES = tuple(sorted(set(_BY_NAME) | {"accuracy", "acc"} | set(losses_module.NAMES)))


def get(identifier, y_shape=None, output_shape=None) -> Metric:
    """Resolves a metric given as a name, a class, an instance or a loss function, as
    `keras.metrics.get` does. In `compile`, `y_shape` (targets, batch axis included) and
    `output_shape` (the model's output, without it) let `"accuracy"` and `"crossentropy"` pick
    binary, sparse or categorical forms, and names stay as given (the logs' keys)."""
    if isinstance(identifier, Metric):
        refuse_custom(identifier, "metric")
        return identifier
    if isinstance(identifier, dict):
        from pynn.saving.serialization import deserialize

        return deserialize(identifier, "pynn.metrics")
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return get(identifier(), y_shape, output_shape)
    name = identifier if isinstance(identifier, str) else getattr(identifier, "__name__", None)
    by_shapes = y_shape is not None and output_shape is not None
    if name in ("accuracy", "acc"):
        if not by_shapes:
            return Accuracy(name=name)
        return _ACCURACY[shape_kind(y_shape, output_shape)](name=name)
    if name in _BY_NAME:
        return _BY_NAME[name](name=name)
    if name in losses_module.NAMES and (by_shapes or name not in ("crossentropy", "ce")):
        loss = losses_module.get(name, y_shape, output_shape)
        return _LossMetric(loss, name if by_shapes else _LOSS_METRIC_NAMES.get(name, name))
    if callable(identifier) and not isinstance(identifier, type):
        refuse_function(identifier, "metric")
    raise ValueError(
        f"Could not interpret metric identifier: {identifier!r}. Valid names: {', '.join(NAMES)}."
    )
