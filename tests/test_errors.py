"""Bad input raises a clear exception that names the problem; nothing crashes."""

import numpy as np
import pytest

import pynn
from pynn import _core
from pynn.layers import Dense


@pytest.fixture
def model():
    model = pynn.Sequential(
        [pynn.Input(shape=(4,)), Dense(8, activation="relu"), Dense(3, activation="softmax")]
    )
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


X = np.random.default_rng(0).normal(size=(10, 4))
Y = np.eye(3)[np.arange(10) % 3]


def test_wrong_feature_count(model):
    with pytest.raises(ValueError, match=r"expects samples of shape \(4,\).*\(10, 5\)"):
        model.fit(np.zeros((10, 5)), Y, verbose=0)


def test_wrong_input_rank(model):
    with pytest.raises(ValueError, match=r"\(10, 2, 2\)"):
        model.predict(np.zeros((10, 2, 2)), verbose=0)


def test_x_and_y_of_different_lengths(model):
    with pytest.raises(ValueError, match="same number of samples; got 10 in `x` and 9 in `y`"):
        model.fit(X, Y[:9], verbose=0)


def test_class_indices_for_categorical_crossentropy_hint_to_categorical(model):
    with pytest.raises(ValueError, match=r"to_categorical\(y, 3\).*sparse_categorical"):
        model.fit(X, np.arange(10) % 3, verbose=0)


def test_sparse_labels_out_of_range_or_fractional():
    model = pynn.Sequential([pynn.Input(shape=(4,)), Dense(3, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd")
    with pytest.raises(ValueError, match=r"class indices in \[0, 3\); `y` holds 3"):
        model.fit(X, np.arange(10) % 4, verbose=0)
    with pytest.raises(ValueError, match="holds 0.5"):
        model.fit(X, np.full(10, 0.5), verbose=0)
    with pytest.raises(ValueError, match="one-hot: use loss='categorical_crossentropy'"):
        model.fit(X, Y, verbose=0)


def test_binary_labels_outside_zero_one():
    model = pynn.Sequential([pynn.Input(shape=(4,)), Dense(1, activation="sigmoid")])
    model.compile(loss="binary_crossentropy", optimizer="sgd")
    with pytest.raises(ValueError, match=r"targets in \[0, 1\]"):
        model.fit(X, np.arange(10), verbose=0)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_infinite_x(model, bad):
    x = X.copy()
    x[3, 2] = bad
    with pytest.raises(
        ValueError, match=r"`x` contains NaN or infinite values \(first at index \(3, 2\)\)"
    ):
        model.fit(x, Y, verbose=0)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("order", ["C", "F", "strided"])
def test_nan_found_in_every_float_layout(model, dtype, order):
    # Long enough to be scanned in parallel chunks (either order: only the values matter);
    # float16 and a strided view take NumPy's path.
    x = np.asarray(np.tile(X, (2000, 1)), dtype=dtype, order="F" if order == "F" else "C")
    if order == "strided":
        x = np.repeat(x, 2, axis=1)[:, ::2]
    x[-1, 3] = np.nan
    engine_scans = dtype != np.float16 and order != "strided"
    assert _core.all_finite(x) is (False if engine_scans else None)
    with pytest.raises(ValueError, match=rf"first at index \({len(x) - 1}, 3\)"):
        model.predict(x, verbose=0)
    x[-1, 3] = 0.5
    assert model.predict(x, verbose=0).shape == (len(x), 3)


def test_nan_in_y(model):
    y = Y.copy()
    y[0, 0] = np.nan
    with pytest.raises(ValueError, match="`y` contains NaN"):
        model.fit(X, y, verbose=0)


def test_empty_data(model):
    with pytest.raises(ValueError, match="`x` is empty"):
        model.fit(np.zeros((0, 4)), np.zeros((0, 3)), verbose=0)


@pytest.mark.parametrize("batch_size", [0, -3, 2.5, True])
def test_bad_batch_size(model, batch_size):
    with pytest.raises(ValueError, match="`batch_size` must be a positive integer"):
        model.fit(X, Y, batch_size=batch_size, verbose=0)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"loss": "categorical_crossentropy", "optimizer": "adamw2"}, "Valid names: adagrad, adam"),
        ({"loss": "cross_entropy", "optimizer": "adam"}, "Valid names:.*binary_crossentropy"),
        ({"loss": "mse", "optimizer": "adam", "metrics": ["accuracyy"]}, "Valid names:.*accuracy"),
    ],
)
def test_unknown_names_list_the_valid_ones(model, kwargs, match):
    with pytest.raises(ValueError, match=match):
        model.compile(**kwargs)


def test_unknown_activation_lists_the_valid_ones():
    with pytest.raises(
        ValueError, match="Unknown activation: 'rleu'. Valid activations are:.*relu"
    ):
        Dense(3, activation="rleu")


def test_fit_before_compile():
    model = pynn.Sequential([pynn.Input(shape=(4,)), Dense(3)])
    with pytest.raises(ValueError, match=r"You must call `compile\(\)` before calling `fit\(\)`"):
        model.fit(X, Y, verbose=0)


def test_non_numeric_dataframe_columns(model):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(X, columns=list("abcd"))
    frame["d"] = ["x"] * 10
    with pytest.raises(TypeError, match="non-numeric columns: d"):
        model.fit(frame, Y, verbose=0)


def test_strings_and_ragged_lists(model):
    with pytest.raises(TypeError, match="`x` must hold numbers"):
        model.fit(np.array([["a"] * 4] * 10), Y, verbose=0)
    with pytest.raises((TypeError, ValueError), match="`x`"):
        model.fit([[1, 2, 3, 4], [1, 2]], Y[:2], verbose=0)


def test_bad_layer_and_weight_arguments(model):
    with pytest.raises(ValueError, match="expected a positive integer. Received: units=0"):
        Dense(0)
    with pytest.raises(ValueError, match="Unrecognized keyword arguments passed to Dense"):
        Dense(3, activaton="relu")
    with pytest.raises(ValueError, match="expecting 4 weights"):
        model.set_weights([np.zeros((4, 8))])
    with pytest.raises(ValueError, match=r"Weight 0 has shape \(4, 7\)"):
        model.set_weights([np.zeros((4, 7)), np.zeros(8), np.zeros((8, 3)), np.zeros(3)])
    with pytest.raises(ValueError, match="seed"):
        pynn.utils.set_random_seed("0")


def test_metric_that_does_not_fit_the_loss(model):
    model.compile(
        loss="categorical_crossentropy", optimizer="adam", metrics=["sparse_categorical_accuracy"]
    )
    with pytest.raises(ValueError, match="needs class indices"):
        model.fit(X, Y, verbose=0)


def test_engine_rejects_bad_specs_without_panicking():
    from pynn import _core

    with pytest.raises(ValueError, match="Invalid layer spec"):
        _core.Engine([4], '[{"kind": "dense", "units": -1}]')
    with pytest.raises(ValueError, match="Invalid `input_shape`"):
        _core.Engine([0], "[]")
    engine = _core.Engine([2], "[]")
    with pytest.raises(RuntimeError, match="no loss and optimizer"):
        engine.iterations()
    out = np.zeros((2, 2), np.float32)
    with pytest.raises(TypeError, match="float64"):
        engine.predict([np.zeros(4)], 2, 1, [out])
    with pytest.raises(ValueError, match="C-contiguous float32"):
        engine.predict([np.zeros(8, np.float32)[::2]], 2, 1, [out])
    with pytest.raises(ValueError, match="Shape mismatch for `x`"):
        engine.predict([np.zeros(3, np.float32)], 2, 1, [out])
    with pytest.raises(ValueError, match="Shape mismatch for `out`"):
        engine.predict([np.zeros(4, np.float32)], 2, 1, [np.zeros(3, np.float32)])
    with pytest.raises(ValueError, match="1 inputs and 1 outputs"):
        engine.predict([np.zeros(4, np.float32)] * 2, 2, 1, [out])


def test_a_model_too_large_for_memory_is_an_error_not_a_crash():
    with pytest.raises(MemoryError, match=r"model's weights .*4\.0 EiB.*Lower the layers' `units`"):
        pynn.Sequential([pynn.Input(shape=(2**20,)), Dense(2**40)])
    with pytest.raises(ValueError, match="fits in memory"):
        pynn.Sequential([pynn.Input(shape=(2**40, 2**30)), Dense(2**3)])
