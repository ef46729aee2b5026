"""`InputLayer` and `Input`: where a model learns the shape of one sample."""

from __future__ import annotations

import warnings

from pynn._checks import refuse_unless_default
from pynn._symbolic import KerasTensor, Node
from pynn.layers.layer import Layer, _as_shape


class InputLayer(Layer):
    """Declares the per-sample input shape of a model.

    Args:
        shape: the shape of one sample, without the batch axis, e.g. `(4,)`.
        batch_size: optional fixed batch size (recorded, not enforced).
        batch_shape: `(batch_size,) + shape`, instead of `shape`.
        input_shape: the deprecated name of `shape` (warns, as in Keras 3).
    """

    def __init__(
        self,
        shape=None,
        batch_size=None,
        dtype=None,
        batch_shape=None,
        name=None,
        input_shape=None,
        batch_input_shape=None,
        sparse=False,
        ragged=False,
        optional=False,
        **kwargs,
    ):
        refuse_unless_default(self, sparse=sparse, ragged=ragged, optional=optional)
        if input_shape is not None:
            warnings.warn(
                "Argument `input_shape` is deprecated. Use `shape` instead.",
                UserWarning,
                stacklevel=2,
            )
            shape = input_shape
        if batch_input_shape is not None:
            batch_shape = batch_input_shape
        if shape is not None and batch_shape is not None:
            raise ValueError("You cannot pass both `shape` and `batch_shape` at the same time.")
        if batch_shape is not None:
            if not isinstance(batch_shape, (list, tuple)) or not batch_shape:
                raise ValueError(
                    "`batch_shape` must be a tuple: the batch size (or None), then the shape of "
                    f"one sample. Received: batch_shape={batch_shape!r}"
                )
            batch_size, shape = batch_shape[0], batch_shape[1:]
        if shape is None:
            raise ValueError("You must pass a `shape` argument.")
        super().__init__(name=name, dtype=dtype, **kwargs)
        self.shape = _as_shape(shape, "shape")
        self.batch_size = batch_size
        self.built = True
        self._output_shape = self.shape
        Node(self, [], [KerasTensor(self.batch_shape, name=name)])

    @property
    def batch_shape(self) -> tuple:
        return (self.batch_size,) + self.shape

    def spec(self):
        raise TypeError("An InputLayer computes nothing; the engine never receives it.")

    def get_config(self):
        return {"batch_shape": self.batch_shape, "dtype": "float32", "name": self.name}

    _is_input_layer = True


def Input(shape=None, batch_size=None, dtype=None, batch_shape=None, name=None):  # noqa: N802
    """A symbolic input of per-sample `shape`: the start of a functional model
    (`pynn.Model(inputs, outputs)`) or of a `Sequential` one."""
    layer = InputLayer(
        shape=shape, batch_size=batch_size, dtype=dtype, batch_shape=batch_shape, name=name
    )
    return layer.output
