"""Losses (`keras.losses`) with Keras 3's formulas, computed by the engine.

Each loss also knows which targets it takes: one-hot or real-valued targets shaped like the
model's output, or (sparse categorical crossentropy) class indices. `prepare_targets` checks the
user's `y` against that before training starts, so bad labels fail with a clear message instead
of training on garbage.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from pynn import _core
from pynn._custom import refuse_custom, refuse_function
from pynn._data import as_float32


def _as_float_rows(y_true, y_pred) -> tuple[np.ndarray, np.ndarray, int]:
    t = as_float32(y_true)
    p = as_float32(y_pred)
    if t.ndim == p.ndim - 1 and p.shape[-1] == 1:
        t = t[..., None]
    elif p.ndim == t.ndim - 1 and t.shape[-1] == 1:
        p = p[..., None]
    width = p.shape[-1] if p.ndim else 1
    return t, p, width


class Loss:
    """Base class. `kind` names the engine's loss; `sparse` losses take class indices."""

    kind = ""
    sparse = False

    def __init__(self, name: str | None = None):
        self.name = name or self.kind

    def _options(self) -> dict[str, Any]:
        return {}

    def spec(self) -> dict[str, Any]:
        """What the engine receives."""
        return {"kind": self.kind, **self._options()}

    def get_config(self) -> dict[str, Any]:
        """The constructor's arguments, from which `from_config` rebuilds the object."""
        return {"name": self.name, **self._options()}

    @classmethod
    def from_config(cls, config):
        """Builds an object from what `get_config()` returned."""
        from pynn.saving.serialization import from_config

        return from_config(cls, config)

    def per_sample(self, y_true, y_pred) -> np.ndarray:
        """One loss value per row of `y_pred` (rows are its last axis), as Keras's loss functions
        return them."""
        t, p, width = _as_float_rows(y_true, y_pred)
        values, _ = _core.loss(json.dumps(self.spec()), t.reshape(-1), p.reshape(-1), width)
        return values.reshape(p.shape[:-1])

    def __call__(self, y_true, y_pred) -> np.float32:
        """The mean loss over rows (Keras's default `sum_over_batch_size` reduction)."""
        return np.float32(self.per_sample(y_true, y_pred).mean())

    def prepare_targets(
        self, y: np.ndarray, output_shape: tuple[int, ...], name: str = "y"
    ) -> np.ndarray:
        """Checks targets `y` (n, ...) against a model output of per-sample `output_shape` and
        returns them as float32 in the engine's layout. `name` is the argument `y` came from."""
        y = _match_rank(y, output_shape, self.name, name)
        return as_float32(y)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name}>"


def _shape_text(shape) -> str:
    return str((None,) + tuple(shape))


def _match_rank(
    y: np.ndarray, output_shape: tuple[int, ...], loss_name: str, name: str
) -> np.ndarray:
    """Keras's `squeeze_or_expand_to_same_rank`: a missing or extra trailing axis of size 1 is
    added or dropped; any other difference is an error."""
    expected = (y.shape[0],) + tuple(output_shape)
    if y.shape == expected:
        return y
    if y.ndim == len(expected) - 1 and expected[-1] == 1 and y.shape == expected[:-1]:
        return y.reshape(expected)
    if y.ndim == len(expected) + 1 and y.shape[-1] == 1 and y.shape[:-1] == expected:
        return y.reshape(expected)
    raise ValueError(
        f"`{name}` has shape {y.shape}, which does not fit the model's output "
        f"{_shape_text(output_shape)} for loss '{loss_name}': expected targets of shape {expected}."
    )


class MeanSquaredError(Loss):
    """`mean((y_true - y_pred)**2)` over the last axis, then over the batch."""

    kind = "mean_squared_error"


class MeanAbsoluteError(Loss):
    """`mean(|y_true - y_pred|)` over the last axis, then over the batch."""

    kind = "mean_absolute_error"


class _Crossentropy(Loss):
    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0, name=None):
        super().__init__(name)
        self.from_logits = bool(from_logits)
        self.label_smoothing = _check_smoothing(label_smoothing)

    def _options(self):
        return {"from_logits": self.from_logits, "label_smoothing": self.label_smoothing}


class BinaryCrossentropy(_Crossentropy):
    """`-(y log p + (1-y) log(1-p))` averaged over the last axis, with `p` clipped to
    `[1e-7, 1 - 1e-7]` (or computed from logits when `from_logits=True`). Targets are in [0, 1]."""

    kind = "binary_crossentropy"

    def prepare_targets(self, y, output_shape, name="y"):
        y = super().prepare_targets(y, output_shape, name)
        if y.size and (y.min() < 0 or y.max() > 1):
            raise ValueError(
                f"Loss '{self.name}' expects targets in [0, 1]; `{name}` holds values from "
                f"{y.min():g} to {y.max():g}."
            )
        return y


class CategoricalCrossentropy(_Crossentropy):
    """`-sum(y log p)` over the last axis, with `p` renormalised to sum to one and clipped (or
    `log_softmax` of logits when `from_logits=True`). Targets are one-hot rows."""

    kind = "categorical_crossentropy"

    def prepare_targets(self, y, output_shape, name="y"):
        classes = output_shape[-1]
        looks_sparse = y.shape[1:] in (tuple(output_shape[:-1]), tuple(output_shape[:-1]) + (1,))
        if classes > 1 and looks_sparse:
            raise ValueError(
                f"Loss '{self.name}' expects one-hot targets of shape "
                f"{(y.shape[0],) + tuple(output_shape)}, but `{name}` has shape {y.shape}: it "
                f"looks like class indices. Convert it with "
                f"pynn.utils.to_categorical({name}, {classes}), "
                f"or use loss='sparse_categorical_crossentropy'."
            )
        return super().prepare_targets(y, output_shape, name)


class SparseCategoricalCrossentropy(Loss):
    """Categorical crossentropy with integer class indices as targets."""

    kind = "sparse_categorical_crossentropy"
    sparse = True

    def __init__(self, from_logits: bool = False, name=None):
        super().__init__(name)
        self.from_logits = bool(from_logits)

    def _options(self):
        return {"from_logits": self.from_logits}

    def per_sample(self, y_true, y_pred):
        p = as_float32(y_pred)
        t = as_float32(y_true).reshape(p.shape[:-1] + (1,))
        values, _ = _core.loss(json.dumps(self.spec()), t.reshape(-1), p.reshape(-1), p.shape[-1])
        return values.reshape(p.shape[:-1])

    def prepare_targets(self, y, output_shape, name="y"):
        return sparse_targets(y, output_shape, f"Loss '{self.name}'", name)


def sparse_targets(
    y: np.ndarray, output_shape: tuple[int, ...], who: str, name: str = "y"
) -> np.ndarray:
    """Checks class-index targets for an output of `output_shape` (classes on the last axis)."""
    classes = output_shape[-1]
    expected = (y.shape[0],) + tuple(output_shape[:-1])
    if y.shape == expected + (1,):
        y = y.reshape(expected)
    if y.shape != expected:
        hint = (
            " It looks one-hot: use loss='categorical_crossentropy' for one-hot targets."
            if y.shape == expected + (classes,)
            else ""
        )
        raise ValueError(
            f"{who} expects integer class indices of shape {expected}, but `{name}` has shape "
            f"{y.shape}.{hint}"
        )
    values = np.asarray(y, dtype=np.float64)
    bad = (values != np.round(values)) | (values < 0) | (values >= classes)
    if bad.any():
        first = values.reshape(-1)[np.argmax(bad.reshape(-1))]
        raise ValueError(
            f"{who} expects integer class indices in [0, {classes}); `{name}` holds {first:g}."
        )
    return as_float32(y)


def _check_smoothing(value: float) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"`label_smoothing` must be in [0, 1]. Received: {value}")
    return value


def _function(cls: type, name: str):
    def loss(y_true, y_pred):
        return cls().per_sample(y_true, y_pred)

    loss.__name__ = name
    loss.__doc__ = f"Per-sample {name} (one value per row), as `keras.losses.{name}`."
    return loss


mean_squared_error = _function(MeanSquaredError, "mean_squared_error")
mean_absolute_error = _function(MeanAbsoluteError, "mean_absolute_error")
binary_crossentropy = _function(BinaryCrossentropy, "binary_crossentropy")
categorical_crossentropy = _function(CategoricalCrossentropy, "categorical_crossentropy")
sparse_categorical_crossentropy = _function(
    SparseCategoricalCrossentropy, "sparse_categorical_crossentropy"
)
mse, mae = mean_squared_error, mean_absolute_error

_BY_NAME: dict[str, type] = {
    "mse": MeanSquaredError,
    "mean_squared_error": MeanSquaredError,
    "MeanSquaredError": MeanSquaredError,
    "mae": MeanAbsoluteError,
    "mean_absolute_error": MeanAbsoluteError,
    "MeanAbsoluteError": MeanAbsoluteError,
    "bce": BinaryCrossentropy,
    "binary_crossentropy": BinaryCrossentropy,
    "BinaryCrossentropy": BinaryCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "CategoricalCrossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "SparseCategoricalCrossentropy": SparseCategoricalCrossentropy,
}
_AUTO_CROSSENTROPY = ("crossentropy", "ce")
NAMES = tuple(sorted(set(_BY_NAME) | set(_AUTO_CROSSENTROPY)))


def get(identifier, y_shape=None, output_shape=None) -> Loss:
    """Resolves a loss given as a name, a class, an instance or one of this module's functions.

    `"crossentropy"` (or `"ce"`) picks binary, sparse or categorical crossentropy from the shapes
    of `y` and of the model's output, as Keras does.
    """
    if isinstance(identifier, Loss):
        refuse_custom(identifier, "loss")
        return identifier
    if isinstance(identifier, dict):
        from pynn.saving.serialization import deserialize

        return deserialize(identifier, "pynn.losses")
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return get(identifier(), y_shape, output_shape)
    name = identifier if isinstance(identifier, str) else getattr(identifier, "__name__", None)
    if callable(identifier) and not isinstance(identifier, type) and name not in _BY_NAME:
        refuse_function(identifier, "loss")
    if name in _AUTO_CROSSENTROPY and y_shape is not None:
        from pynn.metrics import shape_kind

        cls = {
            "binary": BinaryCrossentropy,
            "sparse": SparseCategoricalCrossentropy,
            "categorical": CategoricalCrossentropy,
        }[shape_kind(y_shape, output_shape)]
        return cls(name=name)
    if name in _BY_NAME:
        loss = _BY_NAME[name]()
        loss.name = name
        return loss
    raise ValueError(
        f"Could not interpret loss identifier: {identifier!r}. Valid names: {', '.join(NAMES)}."
    )
