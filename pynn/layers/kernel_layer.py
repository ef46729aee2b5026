"""`KernelLayer`: what Dense and the convolutions share: a kernel and an optional bias with their
initializers and regularizers, an activation, and an activity regularizer."""

from __future__ import annotations

from typing import Any

from pynn import activations, initializers, regularizers
from pynn._checks import refuse_unless_default
from pynn.layers.layer import Layer


class KernelLayer(Layer):
    def __init__(
        self,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        quantization_config=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        refuse_unless_default(
            self,
            kernel_constraint=kernel_constraint,
            bias_constraint=bias_constraint,
            quantization_config=quantization_config,
        )
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.activity_regularizer = regularizers.get(activity_regularizer)

    def _weights_spec(self) -> dict[str, Any]:
        """The engine spec's entries for the activation, the weights and the penalties."""
        return {
            "activation": self.activation.__name__,
            "use_bias": self.use_bias,
            "kernel_initializer": self.kernel_initializer.spec(),
            "bias_initializer": self.bias_initializer.spec(),
            "kernel_regularizer": regularizers.spec(self.kernel_regularizer),
            "bias_regularizer": regularizers.spec(self.bias_regularizer),
            "activity_regularizer": regularizers.spec(self.activity_regularizer),
        }

    def _variable_names(self) -> list[str]:
        return ["kernel", "bias"] if self.use_bias else ["kernel"]

    @property
    def kernel(self):
        """The kernel variable."""
        return self.weights[0]

    @property
    def bias(self):
        """The bias variable, or None without a bias."""
        return self.weights[1] if self.use_bias else None

    def get_config(self):
        def described(obj):
            return (
                None
                if obj is None
                else {"class_name": type(obj).__name__, "config": obj.get_config()}
            )

        return {
            **super().get_config(),
            "activation": self.activation.__name__,
            "use_bias": self.use_bias,
            "kernel_initializer": described(self.kernel_initializer),
            "bias_initializer": described(self.bias_initializer),
            "kernel_regularizer": described(self.kernel_regularizer),
            "bias_regularizer": described(self.bias_regularizer),
            "activity_regularizer": described(self.activity_regularizer),
        }
