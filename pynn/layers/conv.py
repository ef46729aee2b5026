"""`Conv1D` and `Conv2D`: convolutions over channels-last inputs (`keras.layers.Conv1D/2D`)."""

from __future__ import annotations

from pynn import _checks
from pynn.layers.kernel_layer import KernelLayer


def standardize_tuple(value, rank: int, name: str) -> tuple[int, ...]:
    """An int or a tuple of `rank` positive ints, as Keras's `standardize_tuple` accepts."""
    values = (value,) * rank if isinstance(value, int) and not isinstance(value, bool) else value
    try:
        values = tuple(values)
    except TypeError:
        values = ()
    if len(values) != rank or not all(
        isinstance(v, int) and not isinstance(v, bool) and 0 < v <= _checks.MAX_SIZE for v in values
    ):
        raise ValueError(
            f"The `{name}` argument must be a tuple of {rank} positive integers or a single "
            f"positive integer. Received: {name}={value!r}"
        )
    return values


def check_data_format(data_format) -> None:
    if data_format not in (None, "channels_last"):
        raise ValueError(
            f"pynn supports data_format='channels_last' only. Received: data_format={data_format!r}"
        )


class BaseConv(KernelLayer):
    """What Conv1D and Conv2D share; `rank` is their number of spatial axes.

    Args:
        filters: how many output channels.
        kernel_size: an int or a tuple of `rank` ints.
        strides: an int or a tuple; strides > 1 cannot be combined with dilation > 1.
        padding: `"valid"` (no padding), `"same"` (output size `ceil(n / stride)`, the odd
            padding pixel at the end as in Keras) or, for Conv1D, `"causal"`.
        dilation_rate: spacing between kernel taps.
        activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
        bias_regularizer, activity_regularizer: as for `Dense`.

    The kernel has shape `kernel_size + (in_channels, filters)`; the bias `(filters,)`.
    """

    rank = 2
    paddings = ("valid", "same")

    def __init__(
        self,
        filters,
        kernel_size,
        strides=1,
        padding="valid",
        data_format=None,
        dilation_rate=1,
        groups=1,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        **kwargs,
    ):
        filters = _checks.size(filters, "filters")
        check_data_format(data_format)
        if groups != 1:
            raise ValueError(f"pynn supports groups=1 only. Received: groups={groups!r}")
        super().__init__(
            activation,
            use_bias,
            kernel_initializer,
            bias_initializer,
            kernel_regularizer,
            bias_regularizer,
            activity_regularizer,
            **kwargs,
        )
        self.filters = filters
        self.kernel_size = standardize_tuple(kernel_size, self.rank, "kernel_size")
        self.strides = standardize_tuple(strides, self.rank, "strides")
        self.dilation_rate = standardize_tuple(dilation_rate, self.rank, "dilation_rate")
        self.padding = str(padding).lower()
        if self.padding not in self.paddings:
            raise ValueError(
                f"Invalid `padding` for {type(self).__name__}: {padding!r}. Expected one of "
                f"{self.paddings}."
            )
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(
                "`strides > 1` not supported in conjunction with `dilation_rate > 1`. "
                f"Received: strides={self.strides} and dilation_rate={self.dilation_rate}"
            )

    def spec(self):
        return {
            "kind": "conv",
            "filters": self.filters,
            "kernel_size": list(self.kernel_size),
            "strides": list(self.strides),
            "padding": self.padding,
            "dilation_rate": list(self.dilation_rate),
            **self._weights_spec(),
        }

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "data_format": "channels_last",
            "dilation_rate": self.dilation_rate,
        }


class Conv1D(BaseConv):
    """1D convolution over `(steps, channels)` inputs; kernel `(kernel_size, in, filters)`."""

    rank = 1
    paddings = ("valid", "same", "causal")


class Conv2D(BaseConv):
    """2D convolution over `(height, width, channels)` inputs; kernel `(kh, kw, in, filters)`."""

    rank = 2


Convolution1D, Convolution2D = Conv1D, Conv2D
