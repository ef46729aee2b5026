"""Validation in fit: Keras's split, validation_data, frequency and batch size."""

import numpy as np
import pytest

import pynn
from pynn.layers import Dense


def make_model():
    pynn.utils.set_random_seed(3)
    model = pynn.Sequential(
        [pynn.Input(shape=(3,)), Dense(5, activation="tanh"), Dense(2, activation="softmax")]
    )
    model.compile(loss="categorical_crossentropy", optimizer="sgd", metrics=["accuracy"])
    return model


RNG = np.random.default_rng(4)
X = RNG.normal(size=(23, 3))
Y = np.eye(2)[RNG.integers(0, 2, size=23)]


def test_validation_split_holds_out_the_last_rows_before_shuffling():
    """floor(23 * 0.7) = 16 rows train; rows 16..22 validate, as Keras picks them."""
    seen = []

    class Recorder(pynn.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(logs)

    model = make_model()
    history = model.fit(
        X, Y, epochs=3, batch_size=4, validation_split=0.3, verbose=0, callbacks=[Recorder()]
    )
    assert history.params["steps"] == 4  # 16 training rows in batches of 4
    assert sorted(history.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    # The val metrics are exactly `evaluate` on rows 16..22 with the epoch's final weights.
    val = model.evaluate(X[16:], Y[16:], verbose=0, return_dict=True)
    assert history.history["val_loss"][-1] == pytest.approx(val["loss"], rel=1e-6)
    assert history.history["val_accuracy"][-1] == pytest.approx(val["accuracy"])
    assert seen[-1]["val_loss"] == history.history["val_loss"][-1]


def test_validation_split_trains_on_the_first_rows_only():
    split, plain = make_model(), make_model()
    split.fit(X, Y, epochs=2, batch_size=4, validation_split=0.3, shuffle=False, verbose=0)
    plain.fit(X[:16], Y[:16], epochs=2, batch_size=4, shuffle=False, verbose=0)
    for a, b in zip(split.get_weights(), plain.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_validation_data_frequency_and_batch_size():
    model = make_model()
    history = model.fit(
        X[:15],
        Y[:15],
        epochs=4,
        verbose=0,
        validation_data=(X[15:], Y[15:]),
        validation_freq=2,
        validation_batch_size=3,
    )
    assert len(history.history["loss"]) == 4
    assert len(history.history["val_loss"]) == 2  # after epochs 2 and 4
    val = model.evaluate(X[15:], Y[15:], batch_size=3, verbose=0)
    assert history.history["val_loss"][-1] == pytest.approx(val[0], rel=1e-6)


@pytest.mark.parametrize("split", [-0.1, 1.0, 1.5, "0.2"])
def test_bad_validation_split(split):
    with pytest.raises(ValueError, match="validation_split"):
        make_model().fit(X, Y, validation_split=split, verbose=0)


def test_validation_split_leaving_no_training_data():
    with pytest.raises(ValueError, match="not sufficient to split"):
        make_model().fit(X[:2], Y[:2], validation_split=0.6, verbose=0)


def test_bad_validation_data():
    model = make_model()
    with pytest.raises(ValueError, match="`x_val` has shape"):
        model.fit(X, Y, validation_data=(np.zeros((5, 4)), Y[:5]), verbose=0)
    with pytest.raises(ValueError, match="`x_val` and `y_val` must hold the same number"):
        model.fit(X, Y, validation_data=(X[:5], Y[:4]), verbose=0)
    with pytest.raises(ValueError, match="`y_val` has shape"):
        model.fit(X, Y, validation_data=(X[:5], np.zeros((5, 3))), verbose=0)
    with pytest.raises(ValueError, match=r"`validation_data` must be a tuple `\(x_val, y_val\)`"):
        model.fit(X, Y, validation_data=(X[:5],), verbose=0)
    with pytest.raises(ValueError, match="validation_freq"):
        model.fit(X, Y, validation_data=(X, Y), validation_freq=0, verbose=0)


def classifier(loss, units, activation):
    pynn.utils.set_random_seed(0)
    model = pynn.Sequential([pynn.Input((4,)), Dense(units, activation=activation)])
    model.compile(loss=loss, optimizer="sgd")
    return model


SORTED = np.repeat([0, 1, 2], 50)  # iris as usually shipped
FEATURES = np.random.default_rng(5).normal(size=(150, 4))


@pytest.mark.parametrize(
    "loss, units, activation, targets",
    [
        ("sparse_categorical_crossentropy", 3, "softmax", SORTED),
        ("categorical_crossentropy", 3, "softmax", np.eye(3)[SORTED]),
    ],
)
def test_a_split_of_data_sorted_by_class_warns_naming_the_classes(loss, units, activation, targets):
    model = classifier(loss, units, activation)
    with pytest.warns(UserWarning, match=r"validation_split=0.3.*before any shuffling") as caught:
        model.fit(FEATURES, targets, validation_split=0.3, epochs=2, verbose=0)
    assert len(caught) == 1
    assert "the training part holds classes [0, 1] that the validation part lacks" in str(
        caught[0].message
    )
    assert "np.random.permutation" in str(caught[0].message)


def test_a_split_whose_validation_holds_a_class_the_training_lacks_says_it_is_never_learned():
    labels = (np.arange(150) >= 140).astype(float)  # ones only in the last rows
    model = classifier("binary_crossentropy", 1, "sigmoid")
    with pytest.warns(UserWarning) as caught:
        model.fit(FEATURES, labels, validation_split=0.2, verbose=0)
    message = str(caught[0].message)
    assert "the validation part holds classes [1] that the training part lacks" in message
    assert "never learns them" in message


def test_shuffled_data_regression_and_validation_data_do_not_warn(recwarn):
    order = np.random.default_rng(0).permutation(150)
    classifier("sparse_categorical_crossentropy", 3, "softmax").fit(
        FEATURES[order], SORTED[order], validation_split=0.3, verbose=0
    )
    classifier("mse", 1, None).fit(FEATURES, SORTED / 2.0, validation_split=0.3, verbose=0)
    classifier("sparse_categorical_crossentropy", 3, "softmax").fit(
        FEATURES[:100], SORTED[:100], validation_data=(FEATURES[100:], SORTED[100:]), verbose=0
    )
    assert not [w for w in recwarn if "validation_split" in str(w.message)]
