"""The Keras import paths and helpers, and the seed's code cells run as written with `pynn`."""

import importlib.metadata
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

import pynn


def test_keras_import_paths():
    import pynn as keras
    from pynn.layers import Dense, InputLayer  # noqa: F401
    from pynn.models import Sequential
    from pynn.optimizers import SGD, Adam  # noqa: F401
    from pynn.utils import set_random_seed, to_categorical  # noqa: F401

    assert keras.Sequential is Sequential
    assert keras.layers.Dense is Dense
    assert keras.Input(shape=(3,)).shape == (None, 3)
    for module in ("losses", "metrics", "callbacks", "initializers", "activations", "config"):
        assert hasattr(keras, module)


def test_to_categorical_follows_keras():
    out = pynn.utils.to_categorical([[1], [0]], 3)
    np.testing.assert_array_equal(out, [[0, 1, 0], [1, 0, 0]])
    assert out.dtype == np.float64
    assert pynn.utils.to_categorical(np.array([2, 0, 1])).shape == (3, 3)
    assert pynn.utils.to_categorical(np.zeros((2, 4), int), 5).shape == (2, 4, 5)
    with pytest.raises(ValueError, match="num_classes=2"):
        pynn.utils.to_categorical([0, 2], 2)


@pytest.mark.parametrize(
    "name,expected_std",
    [
        ("glorot_uniform", np.sqrt(2 / 700)),
        ("he_normal", np.sqrt(2 / 300)),
        ("lecun_normal", np.sqrt(1 / 300)),
        ("glorot_normal", np.sqrt(2 / 700)),
        ("he_uniform", np.sqrt(2 / 300)),
    ],
)
def test_initializers_have_keras_variance(name, expected_std):
    model = pynn.Sequential(
        [pynn.Input(shape=(300,)), pynn.layers.Dense(400, kernel_initializer=name)]
    )
    kernel = model.get_weights()[0]
    assert kernel.std() == pytest.approx(expected_std, rel=0.03)
    assert abs(kernel.mean()) < 0.1 * expected_std


def test_initializer_objects_and_bias_initializers():
    init = pynn.initializers
    model = pynn.Sequential(
        [
            pynn.Input(shape=(50,)),
            pynn.layers.Dense(
                60,
                kernel_initializer=init.RandomUniform(-0.2, 0.3, seed=1),
                bias_initializer="ones",
            ),
            pynn.layers.Dense(
                2, kernel_initializer="zeros", bias_initializer=init.Constant(0.5), use_bias=True
            ),
        ]
    )
    kernel, bias, kernel2, bias2 = model.get_weights()
    assert -0.2 <= kernel.min() and kernel.max() < 0.3
    np.testing.assert_array_equal(bias, np.ones(60))
    np.testing.assert_array_equal(kernel2, 0)
    np.testing.assert_array_equal(bias2, 0.5)
    with pytest.raises(ValueError, match="glorot_uniform"):
        init.get("glorot")


def test_inputs_as_dataframe_series_and_nested_lists():
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(3)
    x = rng.normal(size=(12, 2))
    y = (x[:, 0] > 0).astype(int)
    model = pynn.Sequential([pynn.Input(shape=(2,)), pynn.layers.Dense(1, activation="sigmoid")])
    model.compile(loss="binary_crossentropy", optimizer="sgd", metrics=["accuracy"])
    weights = model.get_weights()
    from_frame = model.evaluate(pd.DataFrame(x, columns=["a", "b"]), pd.Series(y), verbose=0)
    from_lists = model.evaluate(x.tolist(), y.tolist(), verbose=0)
    from_ints = model.evaluate(x.astype(np.float16), y.astype(np.int8), verbose=0)
    assert from_frame == from_lists
    assert from_frame == pytest.approx(from_ints, rel=1e-3)
    model.set_weights(weights)


def test_model_structure_add_pop_build_and_layer_weights():
    model = pynn.Sequential()
    model.add(pynn.Input(shape=(3,)))
    model.add(pynn.layers.Dense(4, name="hidden"))
    first = model.layers[0].get_weights()
    model.add(pynn.layers.Dense(2))
    assert model.built and model.output_shape == (None, 2)
    np.testing.assert_array_equal(model.layers[0].kernel, first[0])  # adding keeps weights
    assert model.layers[1].name == "dense"
    popped = model.pop()
    assert popped.name == "dense" and model.output_shape == (None, 4)
    with pytest.raises(ValueError, match="unique names"):
        model.add(pynn.layers.Dense(2, name="hidden"))
    model.layers[0].set_weights([np.ones((3, 4)), np.zeros(4)])
    np.testing.assert_array_equal(model.predict(np.ones((1, 3)), verbose=0), [[3, 3, 3, 3]])

    lazy = pynn.Sequential([pynn.layers.Dense(2)])
    assert not lazy.built
    lazy.compile(loss="mse", optimizer="sgd")
    lazy.fit(np.ones((4, 5)), np.ones((4, 2)), verbose=0)  # built from the data, as Keras does
    assert lazy.input_shape == (None, 5)

    with pytest.warns(UserWarning, match="Do not pass an `input_shape`"):
        dense = pynn.layers.Dense(2, input_shape=(7,))
    assert pynn.Sequential([dense]).input_shape == (None, 7)


def test_a_layer_added_after_fit_trains_with_the_compiled_loss():
    model = pynn.Sequential([pynn.Input(shape=(3,)), pynn.layers.Dense(4)])
    model.compile(loss="mse", optimizer="sgd", metrics=["mae"])
    model.fit(np.ones((4, 3)), np.ones((4, 4)), verbose=0)
    model.add(pynn.layers.Dense(2))
    history = model.fit(np.ones((4, 3)), np.ones((4, 2)), epochs=2, verbose=0).history
    assert sorted(history) == ["loss", "mae"] and history["loss"][1] < history["loss"][0]


def test_single_feature_inputs_gain_their_axis():
    model = pynn.Sequential([pynn.Input(shape=(1,)), pynn.layers.Dense(1)])
    model.compile(loss="mse", optimizer="sgd")
    model.fit(np.arange(6.0), np.arange(6.0), verbose=0)
    assert model.predict(np.arange(3.0), verbose=0).shape == (3, 1)


def test_num_threads_setting():
    pynn.config.set_num_threads(1)
    try:
        assert pynn.config.get_num_threads() == 1
    finally:
        pynn.config.set_num_threads(0)
    with pytest.raises(ValueError, match="`n` must be an integer"):
        pynn.config.set_num_threads(-1)


def test_num_threads_from_environment():
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYNN_NUM_THREADS": "1"}
    code = "import pynn; print(pynn.config.get_num_threads())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "1", out.stderr


def test_iris_dataset():
    x, y = pynn.datasets.iris.load_data()
    assert x.shape == (150, 4) and x.dtype == np.float32
    np.testing.assert_array_equal(np.bincount(y), [50, 50, 50])
    np.testing.assert_allclose(x[0], [5.1, 3.5, 1.4, 0.2])


def test_seed_section_4_4_cells(capsys):
    """Section 4.4's cells with `keras` replaced by `pynn` (and `import pynn as keras`)."""
    import pynn as keras  # noqa: F401  (the seed's `import keras_core as keras`)
    from pynn.layers import Dense, InputLayer
    from pynn.models import Sequential

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model = Sequential(
            [
                InputLayer(input_shape=(10,)),
                Dense(units=20, activation="relu"),
                Dense(units=3, activation="softmax"),
            ]
        )

    model.summary()
    out = capsys.readouterr().out
    for expected in (
        "dense (Dense)",
        "(None, 20)",
        "220",
        "dense_1 (Dense)",
        "(None, 3)",
        "63",
        "Total params: 283 (1.11 KB)",
        "Trainable params: 283 (1.11 KB)",
    ):
        assert expected in out

    model.compile(loss="categorical_crossentropy", optimizer="adam")

    from pynn.optimizers import SGD, Adam  # noqa: F401

    adam_opt = Adam(learning_rate=0.001, beta_1=0.9, beta_2=0.9)
    model.compile(loss="categorical_crossentropy", optimizer=adam_opt)
    assert model.optimizer is adam_opt


def test_seed_section_4_5_cells():
    """Section 4.5's cells, reading the bundled iris CSV as the seed reads its own copy."""
    pd = pytest.importorskip("pandas")
    from pynn.layers import Dense, InputLayer
    from pynn.models import Sequential
    from pynn.utils import set_random_seed, to_categorical

    iris = pd.read_csv(pynn.datasets.iris.path(), index_col=0)
    iris = iris.sample(frac=1)
    y = to_categorical(iris["target"])
    X = iris.drop(columns=["target"])

    histories = []
    for standardize in (False, True):
        if standardize:
            X -= X.mean(axis=0)
            X /= X.std(axis=0)
        set_random_seed(0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            model = Sequential(
                [
                    InputLayer(input_shape=(4,)),
                    Dense(units=256, activation="relu"),
                    Dense(units=256, activation="relu"),
                    Dense(units=256, activation="relu"),
                    Dense(units=3, activation="softmax"),
                ]
            )
        n_epochs = 100
        model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
        histories.append(model.fit(X, y, epochs=n_epochs, batch_size=30, verbose=0))

    h, h_standardized = histories
    assert len(h.history["loss"]) == len(h_standardized.history["loss"]) == 100
    # What the chapter shows: standardized inputs train to a lower loss.
    assert h_standardized.history["loss"][-1] < h.history["loss"][-1]
    assert h_standardized.history["accuracy"][-1] >= 0.95


def test_the_version_is_the_installed_distributions_and_the_changelogs_latest():
    assert re.fullmatch(r"\d+\.\d+\.\d+", pynn.__version__)
    assert importlib.metadata.version("pynn") == pynn.__version__
    changelog = Path(__file__).parent.parent / "CHANGELOG.md"
    if changelog.exists():  # a source tree; an installed wheel's tests may run without it
        latest = re.search(r"^## \[(.+?)\]", changelog.read_text(), re.MULTILINE).group(1)
        assert latest == pynn.__version__
