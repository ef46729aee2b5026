"""Pooling layers (`keras.layers.MaxPooling2D`, ...): max or average over windows of the
spatial axes, or over all of them (`Global*`). Channels last."""

from __future__ import annotations

from pynn.layers.conv import check_data_format, standardize_tuple
from pynn.layers.layer import Layer


class BasePooling(Layer):
    """Args:
    pool_size: an int or a tuple of `rank` ints.
    strides: defaults to `pool_size`.
    padding: `"valid"` or `"same"` (Keras's placement; average pooling then divides by the
        number of real values in each window).
    """

    rank = 2
    kind = "max"

    def __init__(
        self, pool_size, strides=None, padding="valid", data_format=None, name=None, **kwargs
    ):
        check_data_format(data_format)
        super().__init__(name=name, **kwargs)
        self.pool_size = standardize_tuple(pool_size, self.rank, "pool_size")
        self.strides = (
            self.pool_size if strides is None else standardize_tuple(strides, self.rank, "strides")
        )
        self.padding = str(padding).lower()
        if self.padding not in ("valid", "same"):
            raise ValueError(
                f"Invalid `padding` for {type(self).__name__}: {padding!r}. "
                "Expected 'valid' or 'same'."
            )

    def spec(self):
        return {
            "kind": "pool",
            "op": self.kind,
            "pool_size": list(self.pool_size),
            "strides": list(self.strides),
            "padding": self.padding,
        }

    def get_config(self):
        return {
            **super().get_config(),
            "pool_size": self.pool_size,
            "strides": self.strides,
            "padding": self.padding,
            "data_format": "channels_last",
        }


class MaxPooling1D(BasePooling):
    """The maximum over windows of `pool_size` steps, every `strides` (default: `pool_size`)
    steps; `padding` "valid" or "same". Input `(batch, steps, channels)`."""

    rank, kind = 1, "max"

    def __init__(
        self, pool_size=2, strides=None, padding="valid", data_format=None, name=None, **kwargs
    ):
        super().__init__(pool_size, strides, padding, data_format, name, **kwargs)


class MaxPooling2D(BasePooling):
    """The maximum over windows of `pool_size` pixels (an int or a pair), every `strides`
    (default: `pool_size`); `padding` "valid" or "same". Input `(batch, rows, cols, channels)`."""

    rank, kind = 2, "max"

    def __init__(
        self, pool_size=(2, 2), strides=None, padding="valid", data_format=None, name=None, **kwargs
    ):
        super().__init__(pool_size, strides, padding, data_format, name, **kwargs)


class AveragePooling1D(BasePooling):
    """`pool_size` has no default, as in Keras 3."""

    rank, kind = 1, "average"


class AveragePooling2D(BasePooling):
    """`pool_size` has no default, as in Keras 3."""

    rank, kind = 2, "average"


class BaseGlobalPooling(Layer):
    """Pools over every spatial axis: `(batch, ..., channels)` becomes `(batch, channels)`, or
    keeps the spatial axes with size 1 when `keepdims=True`."""

    rank = 2
    kind = "max"

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        check_data_format(data_format)
        super().__init__(**kwargs)
        self.keepdims = bool(keepdims)

    def spec(self):
        return {"kind": "pool", "op": self.kind, "global": True, "keepdims": self.keepdims}

    def get_config(self):
        return {**super().get_config(), "data_format": "channels_last", "keepdims": self.keepdims}


class GlobalMaxPooling1D(BaseGlobalPooling):
    """The maximum over all steps of each channel."""

    rank, kind = 1, "max"


class GlobalMaxPooling2D(BaseGlobalPooling):
    """The maximum over all pixels of each channel."""

    rank, kind = 2, "max"


class GlobalAveragePooling1D(BaseGlobalPooling):
    """The mean over all steps of each channel."""

    rank, kind = 1, "average"


class GlobalAveragePooling2D(BaseGlobalPooling):
    """The mean over all pixels of each channel."""

    rank, kind = 2, "average"


MaxPool1D, MaxPool2D = MaxPooling1D, MaxPooling2D
AvgPool1D, AvgPool2D = AveragePooling1D, AveragePooling2D
GlobalMaxPool1D, GlobalMaxPool2D = GlobalMaxPooling1D, GlobalMaxPooling2D
GlobalAvgPool1D, GlobalAvgPool2D = GlobalAveragePooling1D, GlobalAveragePooling2D
