"""`Activation`: an activation function as a layer of its own (`keras.layers.Activation`),
e.g. the relu after a residual block's `Add`."""

from __future__ import annotations

from pynn import activations
from pynn.layers.layer import Layer


class Activation(Layer):
    """Applies `activation` (a name or a function from `pynn.activations`) to its input."""

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = activations.get(activation)

    def spec(self):
        return {"kind": "activation", "activation": self.activation.__name__}

    def get_config(self):
        return {**super().get_config(), "activation": activations.serialize(self.activation)}
