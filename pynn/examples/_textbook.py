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


def standardized_iris(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Chapter 5's data: `shuffled_iris(seed)` with standardized features."""
    x, y = shuffled_iris(seed)
    return standardized(x), y


def iris_network(dropout: float = 0.0, kernel_regularizer=None) -> Sequential:
    """The chapters' network; with `dropout`, a Dropout layer before each Dense layer."""
    layers = [InputLayer(shape=(4,))]
    for units, activation in [(256, "relu")] * 3 + [(3, "softmax")]:
        if dropout:
            layers.append(Dropout(rate=dropout))
        regularizer = kernel_regularizer if activation == "relu" else None
        layers.append(Dense(units=units, activation=activation, kernel_regularizer=regularizer))
    return Sequential(layers)


#: The iris chapters' epochs: so fast (about a second a run) that `--quick` keeps them all, and
#: with them what each chapter shows (early stopping's stop, standardization's lead).
IRIS_EPOCHS = 100
VALIDATION_SPLIT = 0.3
REGULARIZATION_VARIANTS = ("plain", "early stopping", "l2", "dropout")


def regularized_fit(variant: str, x, y, epochs: int, seed: int):
    """Chapter 5's training of `iris_network` (Adam, batch 30, validation_split=0.3) in one of
    `REGULARIZATION_VARIANTS`: plain, with early stopping (patience 10, best weights restored),
    with an L2 penalty of 0.01 on the hidden kernels, or with dropout 0.3 before each Dense.
    Returns the model and its History."""
    from pynn.callbacks import EarlyStopping
    from pynn.regularizers import L2
    from pynn.utils import set_random_seed

    if variant not in REGULARIZATION_VARIANTS:
        raise ValueError(f"`variant` must be one of {REGULARIZATION_VARIANTS}; got {variant!r}.")
    set_random_seed(seed)
    model = iris_network(
        dropout=0.3 if variant == "dropout" else 0.0,
        kernel_regularizer=L2(0.01) if variant == "l2" else None,
    )
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    callbacks = []
    if variant == "early stopping":
        callbacks.append(EarlyStopping(monitor="val_loss", patience=10, restore_best_weights=True))
    history = model.fit(
        x,
        y,
        validation_split=VALIDATION_SPLIT,
        epochs=epochs,
        batch_size=30,
        verbose=0,
        callbacks=callbacks,
    )
    return model, history


def plot_train_and_validation(ax, history, title: str) -> None:
    """The chapter's figure: training and validation loss per epoch, the best epoch marked."""
    from pynn.utils import plot_history

    plot_history(history, metrics=("loss", "val_loss"), ax=ax)
    best = int(np.argmin(history.history["val_loss"])) + 1
    ax.axvline(best, color="grey", linestyle=":", label=f"best epoch ({best})")
    ax.legend()
    ax.set_title(title)
