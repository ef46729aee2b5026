"""Weight penalties (`keras.regularizers`): `l1 * sum(|x|) + l2 * sum(x**2)`, no factor 1/2.

A layer's penalties are added in full to every batch's mean loss, so the reported `loss` (and
`val_loss`, and `evaluate`) include them; the engine applies their gradient in the same step.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pynn import _checks
from pynn._custom import refuse_custom


def _check_factor(value, name: str) -> float:
    if not _checks.is_real(value) or not 0 <= value <= _checks.FLOAT32_MAX:
        raise ValueError(
            f"Invalid value for argument {name}: expected a non-negative float (finite in "
            f"float32). Received: {name}={value!r}"
        )
    return float(value)


class Regularizer:
    """Base class: a penalty on a weight or on a layer's output."""

    l1 = 0.0
    l2 = 0.0

    def __call__(self, x) -> np.float32:
        """The penalty of `x`."""
        x = np.asarray(x, dtype=np.float64)
        return np.float32(self.l1 * np.abs(x).sum() + self.l2 * np.square(x).sum())

    def spec(self) -> dict[str, Any]:
        """What the engine receives."""
        return {"l1": self.l1, "l2": self.l2}

    def get_config(self) -> dict[str, Any]:
        """The constructor's arguments, from which `from_config` rebuilds the object."""
        return {"l1": self.l1, "l2": self.l2}

    @classmethod
    def from_config(cls, config):
        """Builds an object from what `get_config()` returned."""
        from pynn.saving.serialization import from_config

        return from_config(cls, config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class L1(Regularizer):
    """`l1 * sum(|x|)`."""

    def __init__(self, l1: float = 0.01):
        self.l1 = _check_factor(l1, "l1")

    def get_config(self):
        return {"l1": self.l1}


class L2(Regularizer):
    """`l2 * sum(x**2)`."""

    def __init__(self, l2: float = 0.01):
        self.l2 = _check_factor(l2, "l2")

    def get_config(self):
        return {"l2": self.l2}


class L1L2(Regularizer):
    """`l1 * sum(|x|) + l2 * sum(x**2)`; both factors default to 0, as in Keras 3."""

    def __init__(self, l1: float = 0.0, l2: float = 0.0):
        self.l1 = _check_factor(l1, "l1")
        self.l2 = _check_factor(l2, "l2")


l1, l2, l1_l2 = L1, L2, L1L2
_BY_NAME = {"l1": L1, "L1": L1, "l2": L2, "L2": L2, "l1l2": L1L2, "l1_l2": L1L2, "L1L2": L1L2}


def get(identifier) -> Regularizer | None:
    """Resolves a regularizer given as an instance, a class, a name (`"l1"`, `"l2"`, `"l1_l2"`)
    or `None`."""
    if identifier is None:
        return None
    if isinstance(identifier, Regularizer):
        refuse_custom(identifier, "regularizer")
        return identifier
    if isinstance(identifier, dict):
        from pynn.saving.serialization import deserialize

        return deserialize(identifier, "pynn.regularizers")
    if isinstance(identifier, type) and issubclass(identifier, Regularizer):
        return get(identifier())
    if isinstance(identifier, str) and identifier in _BY_NAME:
        return _BY_NAME[identifier]()
    raise ValueError(
        f"Could not interpret regularizer identifier: {identifier!r}. "
        "Valid names: l1, l2, l1_l2 (or a pynn.regularizers object)."
    )


def spec(regularizer: Regularizer | None) -> dict[str, Any] | None:
    """What the engine receives for `regularizer` (`None` for none)."""
    return None if regularizer is None else regularizer.spec()
