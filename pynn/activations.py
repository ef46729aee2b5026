"""Activation functions, by name or as functions (`keras.activations`).

Each function here computes with the engine's kernel, so `pynn.activations.relu(x)` gives exactly
what a layer with `activation="relu"` computes, and `relu.derivative(x)` the derivative the
engine's backward uses (the textbook's figure of activation derivatives). Layers take the name,
the function, or `None` (which means `"linear"`).
"""

from __future__ import annotations

from typing import Callable, Union

import numpy as np

from pynn import _core
from pynn._custom import refuse_function
from pynn._data import as_float32

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


def _flat(x) -> tuple[np.ndarray, int]:
    values = as_float32(x)
    return values, max(values.shape[-1] if values.ndim else 1, 1)


def _apply(name: str, x) -> np.ndarray:
    values, width = _flat(x)
    flat = values.reshape(-1)
    out, _ = _core.activation(name, flat, np.zeros_like(flat), width)
    return out.reshape(values.shape)


def _derivative(name: str, x) -> np.ndarray:
    values, width = _flat(x)
    flat = values.reshape(-1)
    if name == "softmax":
        # Not element-wise: the diagonal of its Jacobian, ∂softmax(x)_i / ∂x_i.
        s = _apply(name, values)
        return s * (1 - s)
    _, slope = _core.activation(name, flat, np.ones_like(flat), width)
    return slope.reshape(values.shape)


def _make(name: str) -> Callable[[np.ndarray], np.ndarray]:
    def activation(x):
        return _apply(name, x)

    def derivative(x):
        return _derivative(name, x)

    activation.__name__ = name
    activation.__qualname__ = name
    activation.__doc__ = (
        f"The `{name}` activation, applied element-wise (softmax: on the last axis). "
        f"`{name}.derivative(x)` is its derivative at `x`"
        + (" (the diagonal of the Jacobian)." if name == "softmax" else ".")
    )
    derivative.__name__ = f"{name}_derivative"
    derivative.__doc__ = f"The derivative of `{name}` at `x`, element-wise."
    activation.derivative = derivative
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


def get(identifier: Identifier) -> Callable[[np.ndarray], np.ndarray]:
    """The activation function for a name (`"relu"`), one of this module's functions, or `None`
    (linear), as `keras.activations.get` returns it; its `.derivative(x)` gives the slope.

    Raises:
        ValueError: for a name or object that is not one of pynn's activations.
    """
    return globals()[_name(identifier)]


def _name(identifier: Identifier) -> str:
    """The canonical name of an activation, which layers store in their config."""
    if identifier is None:
        return "linear"
    if isinstance(identifier, str):
        name = _ALIASES.get(identifier, identifier)
    elif callable(identifier):
        name = _ALIASES.get(
            getattr(identifier, "__name__", ""), getattr(identifier, "__name__", "")
        )
        if globals().get(name) is not identifier and identifier is not swish:
            refuse_function(identifier, "activation")
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
    """The activation's name, as Keras stores built-in activations in a config."""
    return _name(activation)


def deserialize(name: str) -> Callable[[np.ndarray], np.ndarray]:
    """The activation function named `name`."""
    return get(name)
