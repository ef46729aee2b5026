"""`Dense`: `output = activation(dot(input, kernel) + bias)` on the last axis."""

from __future__ import annotations

from pynn import activations, initializers, regularizers
from pynn.layers.layer import Layer


class Dense(Layer):
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
        if isinstance(units, bool) or not isinstance(units, int) or units <= 0:
            raise ValueError(
                "Received an invalid value for `units`, expected a positive integer. "
                f"Received: units={units!r}"
            )
        super().__init__(**kwargs)
        self.units = units
        self.activation = getattr(activations, activations.get(activation))
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.activity_regularizer = regularizers.get(activity_regularizer)

    def spec(self):
        return {
            "kind": "dense",
            "units": self.units,
            "activation": self.activation.__name__,
            "use_bias": self.use_bias,
            "kernel_initializer": self.kernel_initializer.spec(),
            "bias_initializer": self.bias_initializer.spec(),
            "kernel_regularizer": regularizers.spec(self.kernel_regularizer),
            "bias_regularizer": regularizers.spec(self.bias_regularizer),
            "activity_regularizer": regularizers.spec(self.activity_regularizer),
        }

    @property
    def kernel(self):
        return self.get_weights()[0]

    @property
    def bias(self):
        return self.get_weights()[1] if self.use_bias else None

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "activation": self.activation.__name__,
            "use_bias": self.use_bias,
            "kernel_initializer": {
                "class_name": type(self.kernel_initializer).__name__,
                "config": self.kernel_initializer.get_config(),
            },
            "bias_initializer": {
                "class_name": type(self.bias_initializer).__name__,
                "config": self.bias_initializer.get_config(),
            },
        }
