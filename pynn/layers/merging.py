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


class Dot(Layer):
    """The dot product of two inputs along one axis of each, per sample (Keras's
    `batch_dot`): inputs `(batch, 5, 2)` and `(batch, 2, 5)` with `axes=(1, 2)` give
    `(batch, 2, 2)`; two `(batch, n)` vectors with `axes=1` give `(batch, 1)`.

    Args:
        axes: the axis of both inputs, or a pair `(axis of the first, axis of the second)`;
            counted with the batch axis (0, which cannot be used), negative from the end.
        normalize: scale each input to unit length along its axis first, so that the output
            is the cosine similarity.
    """

    def __init__(self, axes, normalize=False, **kwargs):
        super().__init__(**kwargs)
        if not _checks.is_integer(axes):
            if not isinstance(axes, (list, tuple)):
                raise TypeError(
                    "Invalid type for argument `axes`: it should be a list or an int. "
                    f"Received: axes={axes}"
                )
            if len(axes) != 2:
                raise ValueError(
                    "Invalid format for argument `axes`: it should contain two elements. "
                    f"Received: axes={axes}"
                )
            if not all(_checks.is_integer(a) for a in axes):
                raise ValueError(
                    "Invalid format for argument `axes`: list elements should be integers. "
                    f"Received: axes={axes}"
                )
        self.axes = int(axes) if _checks.is_integer(axes) else [int(a) for a in axes]
        self.normalize = bool(normalize)

    def __call__(self, inputs, *args, **kwargs):
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
            raise ValueError(
                "A `Dot` layer should be called on a list of 2 inputs. "
                f"Received: input_shape={getattr(inputs, 'shape', inputs)}"
            )
        return super().__call__(list(inputs), *args, **kwargs)

    def _full_axes(self, shapes) -> list[int]:
        """Each input's axis as Keras resolves `axes` (with the batch axis, non-negative)."""
        axes = [self.axes] * 2 if isinstance(self.axes, int) else list(self.axes)
        return [a % (len(s) + 1) if a < 0 else a for a, s in zip(axes, shapes)]

    def _shapes_for(self, shapes):
        axes = self._full_axes(shapes)
        if 0 in axes:
            raise ValueError(
                "Cannot perform batch_dot over axis 0. If your inputs are not batched, add a "
                "dummy batch dimension to your inputs using keras.ops.expand_dims(x, 0)"
            )
        sizes = [s[a - 1] if 0 < a <= len(s) else None for a, s in zip(axes, shapes)]
        if None in sizes or sizes[0] != sizes[1]:
            full = [(None,) + tuple(s) for s in shapes]
            raise ValueError(
                f"Incompatible input shapes: axis values {sizes[0]} (at axis {axes[0]}) != "
                f"{sizes[1]} (at axis {axes[1]}). Full input shapes: {full[0]}, {full[1]}"
            )
        return super()._shapes_for(shapes)

    def spec(self):
        axes = [self.axes] * 2 if isinstance(self.axes, int) else self.axes
        return {"kind": "dot", "axes": list(axes), "normalize": self.normalize}

    def get_config(self):
        return {**super().get_config(), "axes": self.axes, "normalize": self.normalize}


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


def dot(inputs, axes=-1, **kwargs):
    """`Dot(axes, **kwargs)(inputs)`: the dot product of two tensors along `axes`."""
    return Dot(axes=axes, **kwargs)(inputs)
