"""`Variable`: one weight of a layer as Keras's `layer.weights` lists it (`keras.Variable`).

The value lives where the layer's weights live (the engine of the model that last used the
layer, or the layer itself); a variable reads it with `numpy()` and writes it with `assign`,
so it never goes stale.
"""

from __future__ import annotations

import numpy as np


class Variable:
    """Weight `index` of `layer`, named `name` (`kernel`, `bias`, ...)."""

    dtype = "float32"

    def __init__(self, layer, index: int, name: str):
        self._layer = layer
        self._index = index
        self.name = name

    @property
    def path(self) -> str:
        """`<layer name>/<variable name>`, as Keras names variables."""
        return f"{self._layer.name}/{self.name}"

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self._layer._weight_shapes[self._index])

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def trainable(self) -> bool:
        """Whether the weight trains: the layer's `trainable`."""
        return self._layer.trainable

    def numpy(self) -> np.ndarray:
        """A copy of the current value."""
        return self._layer._weight_value(self._index)

    @property
    def value(self) -> np.ndarray:
        return self.numpy()

    def assign(self, value) -> Variable:
        """Sets the value (an array of this variable's shape)."""
        weights = self._layer.get_weights()
        weights[self._index] = value
        self._layer.set_weights(weights)
        return self

    def assign_add(self, delta) -> Variable:
        return self.assign(self.numpy() + np.asarray(delta, np.float32))

    def assign_sub(self, delta) -> Variable:
        return self.assign(self.numpy() - np.asarray(delta, np.float32))

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        value = self.numpy()
        return value if dtype is None else value.astype(dtype)

    def __getitem__(self, index):
        return self.numpy()[index]

    def __len__(self) -> int:
        return self.shape[0]

    def __add__(self, other):
        return self.numpy() + np.asarray(other)

    def __radd__(self, other):
        return np.asarray(other) + self.numpy()

    def __sub__(self, other):
        return self.numpy() - np.asarray(other)

    def __rsub__(self, other):
        return np.asarray(other) - self.numpy()

    def __mul__(self, other):
        return self.numpy() * np.asarray(other)

    def __rmul__(self, other):
        return np.asarray(other) * self.numpy()

    def __neg__(self):
        return -self.numpy()

    def __repr__(self) -> str:
        return (
            f"<Variable path={self.path}, shape={self.shape}, dtype={self.dtype}, "
            f"value={self.numpy()}>"
        )
