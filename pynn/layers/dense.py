"""`Dense`: `output = activation(dot(input, kernel) + bias)` on the last axis."""

from __future__ import annotations

from pynn import _checks
from pynn.layers.kernel_layer import KernelLayer


class Dense(KernelLayer):
    """A fully connected layer.

    Args:
        units: positive integer, the size of the output's last axis.
        activation: a name, a function from `pynn.activations`, or `None` (linear).
        use_bias: whether to add a bias vector.
        kernel_initializer: initializer of the `(in, units)` kernel; defaults to `"glorot_uniform"`.
        bias_initializer: initializer of the `(units,)` bias; defaults to `"zeros"`.
        kernel_regularizer, bias_regularizer: penalties on the kernel and the bias
            (`pynn.regularizers.L2(0.01)`, `"l2"`, ...), added to the loss.
        activity_regularizer: penalty on the layer's output, divided by the batch size.

    Input of shape `(batch, ..., in)` gives output `(batch, ..., units)`.
    """

    def __init__(
        self,
        units,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        **kwargs,
    ):
        units = _checks.size(units, "units")
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
        self.units = units

    def spec(self):
        return {"kind": "dense", "units": self.units, **self._weights_spec()}

    def get_config(self):
        return {**super().get_config(), "units": self.units}
