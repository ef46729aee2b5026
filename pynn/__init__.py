"""pynn: the Keras API on a Rust engine.

import pynn as keras
model = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(3, activation="softmax")])
"""

from pynn import (
    _core,
    activations,
    backend,
    callbacks,
    config,
    datasets,
    distribution,
    initializers,
    layers,
    losses,
    metrics,
    models,
    optimizers,
    saving,
    utils,
)
from pynn.layers import Input, InputLayer
from pynn.models import Model, Sequential

__version__: str = _core.__version__

__all__ = [
    "Input",
    "InputLayer",
    "Model",
    "Sequential",
    "activations",
    "backend",
    "callbacks",
    "config",
    "datasets",
    "distribution",
    "initializers",
    "layers",
    "losses",
    "metrics",
    "models",
    "optimizers",
    "saving",
    "utils",
]
