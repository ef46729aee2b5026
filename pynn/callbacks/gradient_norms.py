"""`GradientNorms`: each layer's gradient norm after every epoch, to watch gradients vanish with
depth (the textbook's section 4.3, "the curse of depth")."""

from __future__ import annotations

import numpy as np

from pynn.callbacks.callback import Callback


class GradientNorms(Callback):
    """Records, after every epoch, the L2 norm of each layer's gradient (all its weights
    together: kernel and bias).

    Args:
        x, y: the samples the gradients are computed on, as one batch
            (`model.compute_gradients`): a fixed sample, so that epochs compare.

    Attributes:
        norms: `{layer name: [norm after epoch 1, after epoch 2, ...]}` for every layer that has
            weights, in the model's order.
    """

    def __init__(self, x, y):
        super().__init__()
        self.x, self.y = x, y
        self.norms: dict[str, list[float]] = {}

    def on_train_begin(self, logs=None):
        self.norms = {}

    def on_epoch_end(self, epoch, logs=None):
        gradients = self.model.compute_gradients(self.x, self.y)
        for name, layer_gradients in _by_layer(self.model, gradients):
            squares = sum(float(np.sum(np.square(g, dtype=np.float64))) for g in layer_gradients)
            self.norms.setdefault(name, []).append(squares**0.5)


def _by_layer(model, gradients):
    """`(layer name, [its weights' gradients])` for each layer with weights."""
    gradients = iter(gradients)
    for layer, shapes in zip(model.layers, model._engine.layer_weight_shapes()):
        if shapes:
            yield layer.name, [next(gradients) for _ in shapes]
