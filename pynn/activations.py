"""Activation functions, by name or as functions (`keras.activations`).

Each function here computes with the engine's kernel, so `pynn.activations.relu(x)` gives exactly
what a layer with `activation="relu"` computes. Layers take the name, the function, or `None`
(which means `"linear"`).
"""

from __future__ import annotations

from typing import Callable, Union

import numpy as np

from pynn import _core

_ALIASES = {"swish": "silu"}
NAMES = (
    "linear",
    "relu",
    "sigmoid",
    "tanh",
    "softmax",
    "elu",
    "selu",
    "gelu",
    "softplus",
    "leaky_relu",
    "silu",
)


def _apply(name: str, x) -> np.ndarray:
    values = np.ascontiguousarray(x, dtype=np.float32)
    width = values.shape[-1] if values.ndim else 1
    flat = values.reshape(-1)
    out, _ = _core.activation(name, flat, np.zeros_like(flat), max(width, 1))
    return out.reshape(values.shape)


def _make(name: str) -> Callable[[np.ndarray], np.ndarray]:
    def activation(x):
        return _apply(name, x)

    activation.__name__ = name
    activation.__qualname__ = name
    activation.__doc__ = (
        f"The `{name}` activation, applied element-wise (softmax: on the last axis)."
    )
    return activation


linear = _make("linear")
relu = _make("relu")
sigmoid = _make("sigmoid")
tanh = _make("tanh")
softmax = _make("softmax")
elu = _make("elu")
selu = _make("selu")
gelu = _make("gelu")
softplus = _make("softplus")
leaky_relu = _make("leaky_relu")
silu = _make("silu")
swish = silu

Identifier = Union[str, Callable, None]


def get(identifier: Identifier) -> str:
    """Resolves an activation given as a name, one of this module's functions, or `None`.

    Returns the canonical name, which is what layers store in their config.
    """
    if identifier is None:
        return "linear"
    if isinstance(identifier, str):
        name = _ALIASES.get(identifier, identifier)
    elif callable(identifier):
        name = _ALIASES.get(
            getattr(identifier, "__name__", ""), getattr(identifier, "__name__", "")
        )
    else:
        raise ValueError(
            f"Could not interpret activation function identifier: {identifier!r}. "
            f"Expected a name, a function from pynn.activations, or None."
        )
    if name not in NAMES:
        valid = ", ".join(sorted(NAMES + tuple(_ALIASES)))
        raise ValueError(f"Unknown activation: {identifier!r}. Valid activations are: {valid}.")
    return name


def serialize(activation: Identifier) -> str:
    return get(activation)
