"""Chapter 5's cells ("Regularization") with `keras` replaced by `pynn` in the imports."""

import warnings

import pytest

import pynn

pd = pytest.importorskip("pandas")


@pytest.fixture
def iris_data():
    from pynn.utils import set_random_seed, to_categorical

    set_random_seed(0)
    iris = pd.read_csv(pynn.datasets.iris.path(), index_col=0)
    iris = iris.sample(frac=1)
    y = to_categorical(iris["target"])
    X = iris.drop(columns=["target"])
    X -= X.mean(axis=0)
    X /= X.std(axis=0)
    return X, y


@pytest.fixture(autouse=True)
def no_input_shape_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield


def test_validation_split_cell(iris_data):
    X, y = iris_data
    import pynn as keras  # noqa: F401  (the seed's `import keras_core as keras`)
    from pynn.layers import Dense, InputLayer
    from pynn.models import Sequential
    from pynn.utils import set_random_seed

    set_random_seed(0)
    model = Sequential([
        InputLayer(input_shape=(4, )),
        Dense(units=256, activation="relu"),
        Dense(units=256, activation="relu"),
        Dense(units=256, activation="relu"),
        Dense(units=3, activation="softmax")
    ])

    n_epochs = 100
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    h = model.fit(X, y, validation_split=0.3, epochs=n_epochs, batch_size=30, verbose=0)
    # What the chapter shows: the validation loss bottoms out long before the last epoch.
    best = min(range(n_epochs), key=h.history["val_loss"].__getitem__)
    assert best < n_epochs - 20
    assert h.history["val_loss"][-1] > h.history["val_loss"][best]


def test_early_stopping_cell(iris_data):
    """Training stops before epoch 100 and the final weights are those of the best epoch."""
    X, y = iris_data
    import numpy as np

    from pynn.callbacks import EarlyStopping, LambdaCallback
    from pynn.layers import Dense, InputLayer
    from pynn.models import Sequential
    from pynn.utils import set_random_seed

    set_random_seed(0)
    model = Sequential([
        InputLayer(input_shape=(4, )),
        Dense(units=256, activation="relu"),
        Dense(units=256, activation="relu"),
        Dense(units=256, activation="relu"),
        Dense(units=3, activation="softmax")
    ])

    cb_es = EarlyStopping(monitor="val_loss", patience=10, restore_best_weights=True)

    saved = []
    recorder = LambdaCallback(on_epoch_end=lambda epoch, logs: saved.append(model.get_weights()))
    n_epochs = 100
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    h = model.fit(X, y,
                  validation_split=0.3, epochs=n_epochs, batch_size=30,
                  verbose=0, callbacks=[recorder, cb_es])

    assert 0 < cb_es.stopped_epoch < n_epochs - 1
    assert len(h.history["val_loss"]) == cb_es.stopped_epoch + 1
    best = int(np.argmin(h.history["val_loss"]))
    assert cb_es.best_epoch == best and cb_es.stopped_epoch == best + 10
    for restored, at_best in zip(model.get_weights(), saved[best]):
        np.testing.assert_array_equal(restored, at_best)


def test_l2_cell(iris_data):
    X, y = iris_data
    from pynn.layers import Dense, InputLayer
    from pynn.models import Sequential
    from pynn.regularizers import L2
    from pynn.utils import set_random_seed

    λ = 0.01

    set_random_seed(0)
    model = Sequential([
        InputLayer(input_shape=(4, )),
        Dense(units=256, activation="relu", kernel_regularizer=L2(λ)),
        Dense(units=256, activation="relu", kernel_regularizer=L2(λ)),
        Dense(units=256, activation="relu", kernel_regularizer=L2(λ)),
        Dense(units=3, activation="softmax")
    ])

    n_epochs = 100
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    h = model.fit(X, y, validation_split=0.3, epochs=n_epochs, batch_size=30, verbose=0)
    # The penalty keeps the validation loss from climbing back up as the plain model's does.
    # Final/best validation loss over seeds 0-7: 1.00-1.31 with L2, 1.38-11.1 without.
    assert h.history["val_loss"][-1] < 1.35 * min(h.history["val_loss"])
    assert h.history["val_accuracy"][-1] >= 0.9


def test_dropout_cell(iris_data):
    X, y = iris_data
    from pynn.layers import Dense, Dropout, InputLayer
    from pynn.models import Sequential
    from pynn.utils import set_random_seed

    set_random_seed(0)
    switchoff_proba = 0.3
    model = Sequential([
        InputLayer(input_shape=(4, )),
        Dropout(rate=switchoff_proba),
        Dense(units=256, activation="relu"),
        Dropout(rate=switchoff_proba),
        Dense(units=256, activation="relu"),
        Dropout(rate=switchoff_proba),
        Dense(units=256, activation="relu"),
        Dropout(rate=switchoff_proba),
        Dense(units=3, activation="softmax")
    ])

    n_epochs = 100
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    h = model.fit(X, y, validation_split=0.3, epochs=n_epochs, batch_size=30, verbose=0)
    # The exercise's observation: with neurons switched off while training, the validation
    # loss sits below the training loss on most epochs.
    below = sum(v < t for v, t in zip(h.history["val_loss"], h.history["loss"]))
    assert below > n_epochs / 2
