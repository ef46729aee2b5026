"""`Flatten` and `Reshape`: the same values under another per-sample shape."""

from __future__ import annotations

from pynn import _checks
from pynn.layers.conv import check_data_format
from pynn.layers.layer import Layer


class Flatten(Layer):
    """`(batch, ...)` becomes `(batch, prod(...))`, in channels-last order as in Keras."""

    def __init__(self, data_format=None, **kwargs):
        check_data_format(data_format)
        super().__init__(**kwargs)

    def spec(self):
        return {"kind": "reshape", "target_shape": [-1]}


class Reshape(Layer):
    """Reshapes each sample to `target_shape`; one entry may be -1, inferred from the rest."""

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        shape = tuple(target_shape)
        if (
            not shape
            or not all(
                _checks.is_integer(d) and (0 < d <= _checks.MAX_SIZE or d == -1) for d in shape
            )
            or shape.count(-1) > 1
        ):
            raise ValueError(
                "`target_shape` must hold positive integers and at most one -1. "
                f"Received: target_shape={target_shape!r}"
            )
        self.target_shape = shape

    def spec(self):
        return {"kind": "reshape", "target_shape": list(self.target_shape)}

    def get_config(self):
        return {**super().get_config(), "target_shape": self.target_shape}
