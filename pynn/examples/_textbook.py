"""What the textbook's iris chapters share: the shuffled data set and the 4-256-256-256-3
network."""

from __future__ import annotations

import numpy as np

from pynn.datasets import iris
from pynn.layers import Dense, Dropout, InputLayer
from pynn.models import Sequential
from pynn.utils import to_categorical


def shuffled_iris(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Features and one-hot labels in a random order, as the chapters' `iris.sample(frac=1)`."""
    x, labels = iris.load_data()
    order = np.random.default_rng(seed).permutation(len(x))
    return x[order], to_categorical(labels[order])


def standardized(x: np.ndarray) -> np.ndarray:
    """`X -= X.mean(axis=0); X /= X.std(axis=0)`, with pandas's `std` (ddof=1)."""
    return (x - x.mean(axis=0)) / x.std(axis=0, ddof=1)


def iris_network(dropout: float = 0.0, kernel_regularizer=None) -> Sequential:
    """The chapters' network; with `dropout`, a Dropout layer before each Dense layer."""
    layers = [InputLayer(shape=(4,))]
    for units, activation in [(256, "relu")] * 3 + [(3, "softmax")]:
        if dropout:
            layers.append(Dropout(rate=dropout))
        regularizer = kernel_regularizer if activation == "relu" else None
        layers.append(Dense(units=units, activation=activation, kernel_regularizer=regularizer))
    return Sequential(layers)
