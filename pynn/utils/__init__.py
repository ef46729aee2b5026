"""`keras.utils`: label encoding, seeding, the progress bar, learning-curve plots and model
drawings."""

from __future__ import annotations

import random

import numpy as np

from pynn.backend import clear_session
from pynn.utils.model_visualization import model_to_dot, plot_model
from pynn.utils.plotting import plot_history
from pynn.utils.progbar import Progbar

__all__ = [
    "Progbar",
    "clear_session",
    "model_to_dot",
    "plot_history",
    "plot_model",
    "set_random_seed",
    "to_categorical",
]


def to_categorical(x, num_classes: int | None = None) -> np.ndarray:
    """One-hot encodes class indices, as `keras.utils.to_categorical`.

    Args:
        x: class indices (array-like of integers, pandas Series included). A trailing axis of
            size 1 is dropped.
        num_classes: how many classes; defaults to `max(x) + 1`.

    Returns:
        A float64 array of shape `x.shape + (num_classes,)` (Keras's dtype on this path).
    """
    values = np.asarray(x)
    if values.size and not np.all(np.isfinite(values.astype(np.float64, copy=False))):
        raise ValueError("`x` must hold integer class indices; it contains NaN or infinity.")
    labels = values.astype("int64")
    if values.size and not np.array_equal(labels, values):
        raise ValueError("`x` must hold integer class indices; it contains non-integer values.")
    if labels.ndim > 1 and labels.shape[-1] == 1:
        labels = labels.reshape(labels.shape[:-1])
    if labels.size and labels.min() < 0:
        raise ValueError(f"`x` must hold class indices >= 0; got {labels.min()}.")
    if not num_classes:
        num_classes = int(labels.max()) + 1 if labels.size else 0
    if labels.size and labels.max() >= num_classes:
        raise ValueError(
            f"`x` holds class index {labels.max()}, which does not fit num_classes={num_classes}."
        )
    flat = labels.reshape(-1)
    categorical = np.zeros((flat.shape[0], num_classes))
    categorical[np.arange(flat.shape[0]), flat] = 1
    return categorical.reshape(labels.shape + (num_classes,))


def set_random_seed(seed: int) -> None:
    """Seeds Python's `random`, NumPy's global generator and pynn's engine.

    Initial weights and the order in which `fit` shuffles samples then repeat from run to run.
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(
            "Expected `seed` argument to be an integer. "
            f"Received: seed={seed} (of type {type(seed)})"
        )
    random.seed(seed)
    np.random.seed(seed % 2**32)
