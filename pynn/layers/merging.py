"""Merge layers (`keras.layers.Add`, `Concatenate`, ...): several inputs into one, element by
element or side by side, and their functional forms (`pynn.layers.add([x, y])`).

Element-wise merges broadcast as Keras does: per-sample shapes aligned at their last axes, an
axis of 1 (or a missing leading axis) stretching to the other inputs'.
"""

from __future__ import annotations

from pynn import _checks
from pynn.layers.layer import Layer


def _shape_text(shape) -> str:
    return str(tuple(shape))


class _Merge(Layer):
    """A merge of a list of inputs, element by element (the engine's `merge` op)."""

    _op = ""

    def __call__(self, inputs, *args, **kwargs):
        if not isinstance(inputs, (list, tuple)):
            raise ValueError(
                "A merge layer should be called on a list of inputs. "
                f"Received: inputs={inputs} (not a list of tensors)"
            )
        return super().__call__(list(inputs), *args, **kwargs)

    def _shapes_for(self, shapes):
        if len(shapes) < 1:
            raise ValueError(
                "A merge layer should be called on a list of at least 1 input. "
                f"Received {len(shapes)} inputs. Full input_shape received: {shapes}"
            )
        output = tuple(shapes[0])
        for shape in shapes[1:]:
            output = _elementwise_shape(output, tuple(shape))
        return super()._shapes_for(shapes)

    def spec(self):
        return {"kind": "merge", "op": self._op}


def _elementwise_shape(shape1: tuple, shape2: tuple) -> tuple:
    """Keras's shape of an element-wise op on two per-sample shapes, aligned at the end."""
    if len(shape1) < len(shape2):
        return _elementwise_shape(shape2, shape1)
    if not shape2:
        return shape1
    output = list(shape1[: -len(shape2)])
    for i, j in zip(shape1[-len(shape2) :], shape2):
        if i != 1 and j != 1 and i != j:
            raise ValueError(
                f"Inputs have incompatible shapes. Received shapes {_shape_text(shape1)} and "
                f"{_shape_text(shape2)}"
            )
        output.append(j if i == 1 else i)
    return tuple(output)


class Add(_Merge):
    """The sum of its inputs: `Add()([x1, x2])`."""

    _op = "add"


class Subtract(_Merge):
    """The difference of exactly two inputs: `Subtract()([x1, x2])` is `x1 - x2`."""

    _op = "subtract"

    def _shapes_for(self, shapes):
        if len(shapes) != 2:
            raise ValueError(
                "A `Subtract` layer should be called on exactly 2 inputs. "
                f"Received: input_shape={[(None,) + tuple(s) for s in shapes]}"
            )
        return super()._shapes_for(shapes)


class Multiply(_Merge):
    """The element-wise product of its inputs."""

    _op = "multiply"


class Average(_Merge):
    """The element-wise mean of its inputs."""

    _op = "average"


class Maximum(_Merge):
    """The element-wise maximum of its inputs (a tie's gradient goes to the first input)."""

    _op = "maximum"


class Minimum(_Merge):
    """The element-wise minimum of its inputs (a tie's gradient goes to the first input)."""

    _op = "minimum"


class Concatenate(Layer):
    """Its inputs side by side along `axis` (`-1`, the last, by default; the batch axis is 0
    and cannot be joined); the other axes must match.

    Args:
        axis: the axis to concatenate along.
    """

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if not _checks.is_integer(axis):
            raise ValueError(f"`axis` must be an integer. Received: axis={axis!r}")
        self.axis = int(axis)

    def __call__(self, inputs, *args, **kwargs):
        if not isinstance(inputs, (list, tuple)) or not inputs:
            raise ValueError(
                "A `Concatenate` layer should be called on a list of at least 1 input. "
                f"Received: input_shape={getattr(inputs, 'shape', inputs)}"
            )
        return super().__call__(list(inputs), *args, **kwargs)

    def _shapes_for(self, shapes):
        rank = len(shapes[0])
        axis = self.axis % (rank + 1) if -(rank + 1) <= self.axis <= rank else None
        mismatch = axis in (None, 0) or any(
            len(s) != rank
            or any(a != axis - 1 and d != s0 for a, (d, s0) in enumerate(zip(s, shapes[0])))
            for s in shapes
        )
        if mismatch:
            raise ValueError(
                "A `Concatenate` layer requires inputs with matching shapes except for the "
                f"concatenation axis. Received: input_shape={[(None,) + tuple(s) for s in shapes]}"
            )
        return super()._shapes_for(shapes)

    def spec(self):
        return {"kind": "concatenate", "axis": self.axis}

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


def add(inputs, **kwargs):
    """`Add(**kwargs)(inputs)`: the sum of a list of tensors."""
    return Add(**kwargs)(inputs)


def subtract(inputs, **kwargs):
    """`Subtract(**kwargs)(inputs)`: the difference of two tensors."""
    return Subtract(**kwargs)(inputs)


def multiply(inputs, **kwargs):
    """`Multiply(**kwargs)(inputs)`: the element-wise product of a list of tensors."""
    return Multiply(**kwargs)(inputs)


def average(inputs, **kwargs):
    """`Average(**kwargs)(inputs)`: the element-wise mean of a list of tensors."""
    return Average(**kwargs)(inputs)


def maximum(inputs, **kwargs):
    """`Maximum(**kwargs)(inputs)`: the element-wise maximum of a list of tensors."""
    return Maximum(**kwargs)(inputs)


def minimum(inputs, **kwargs):
    """`Minimum(**kwargs)(inputs)`: the element-wise minimum of a list of tensors."""
    return Minimum(**kwargs)(inputs)


def concatenate(inputs, axis=-1, **kwargs):
    """`Concatenate(axis, **kwargs)(inputs)`: a list of tensors side by side along `axis`."""
    return Concatenate(axis=axis, **kwargs)(inputs)
