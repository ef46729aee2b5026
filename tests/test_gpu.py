"""Training on the GPU engine (wgpu on Vulkan) against the CPU engine. CI runs these on lavapipe,
Mesa's Vulkan driver for the CPU, with PYNN_REQUIRE_GPU=1; elsewhere they skip without a GPU."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import pynn
from pynn.callbacks import EarlyStopping
from pynn.layers import Dense, Dropout

sys.path.insert(0, str(Path(__file__).parent))
from functional_models import BUILDERS  # noqa: E402
from multi_io_models import CASES  # noqa: E402
from multi_io_models import data as multi_io_data  # noqa: E402

REQUIRED = os.environ.get("PYNN_REQUIRE_GPU") == "1"
if pynn.config.gpu_info() is None:
    if REQUIRED:
        raise RuntimeError(f"PYNN_REQUIRE_GPU=1 but {pynn.config.gpu_error()}")
    pytest.skip(f"no GPU: {pynn.config.gpu_error()}", allow_module_level=True)

RNG = np.random.default_rng(0)
X = RNG.normal(size=(300, 6)).astype(np.float32)
LABELS = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 1)


@pytest.fixture(autouse=True)
def back_to_cpu():
    yield
    pynn.config.set_device("cpu")


def mlp(optimizer="adam"):
    pynn.utils.set_random_seed(1)
    model = pynn.Sequential(
        [pynn.Input((6,)), Dense(37, "relu"), Dense(19, "tanh"), Dense(3, "softmax")]
    )
    model.compile(loss="sparse_categorical_crossentropy", optimizer=optimizer, metrics=["accuracy"])
    return model


def fit_on(device, build=mlp, **fit_args):
    pynn.config.set_device(device)
    model = build()
    history = model.fit(X, LABELS, epochs=3, batch_size=32, verbose=0, **fit_args)
    return model, history.history


@pytest.mark.parametrize(
    "optimizer", ["adam", "sgd", "rmsprop", "adagrad", pynn.optimizers.Adam(amsgrad=True)]
)
def test_three_epochs_agree_with_the_cpu(optimizer):
    cpu, cpu_history = fit_on("cpu", lambda: mlp(optimizer), validation_split=0.2)
    gpu, gpu_history = fit_on("gpu", lambda: mlp(optimizer), validation_split=0.2)
    assert gpu_history.keys() == cpu_history.keys()
    for key, values in cpu_history.items():
        np.testing.assert_allclose(gpu_history[key], values, rtol=1e-3, atol=1e-6)
    for g, c in zip(gpu.get_weights(), cpu.get_weights()):
        np.testing.assert_allclose(g, c, rtol=1e-3, atol=1e-5)
    pynn.config.set_device("cpu")
    np.testing.assert_allclose(gpu.predict(X, verbose=0), cpu.predict(X, verbose=0), atol=1e-5)


def test_predict_and_evaluate_on_the_gpu_match_the_cpu():
    """The same model's forward on both engines: outputs within 1e-5 relative, same loss."""
    pynn.config.set_device("cpu")
    pynn.utils.set_random_seed(2)
    model = pynn.Sequential(
        [
            pynn.Input((8, 8, 2)),
            pynn.layers.Conv2D(4, 3, padding="same", activation="relu"),
            pynn.layers.MaxPooling2D(2),
            pynn.layers.Flatten(),
            Dropout(0.4),
            Dense(3, activation="softmax"),
        ]
    )
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    images = RNG.normal(size=(50, 8, 8, 2)).astype(np.float32)
    labels = np.arange(50) % 3
    model.fit(images, labels, epochs=1, batch_size=16, verbose=0)
    results = {}
    for device in ("cpu", "gpu"):
        pynn.config.set_device(device)
        results[device] = (
            model.predict(images, batch_size=16, verbose=0),
            model.evaluate(images, labels, batch_size=16, verbose=0),
            model(images[:5]),
        )
    (cpu_out, cpu_eval, cpu_call), (gpu_out, gpu_eval, gpu_call) = results.values()
    np.testing.assert_allclose(gpu_out, cpu_out, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(gpu_call, cpu_call, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(gpu_eval, cpu_eval, rtol=1e-5)


def test_weights_set_between_epochs_go_up_and_fit_resumes():
    model, _ = fit_on("gpu")
    weights = model.get_weights()
    model.set_weights([w * 0.5 for w in weights])
    np.testing.assert_allclose(model.get_weights()[0], weights[0] * 0.5)
    model.fit(X, LABELS, epochs=1, batch_size=32, verbose=0)
    assert not np.allclose(model.get_weights()[0], weights[0] * 0.5)
    assert model.optimizer.iterations == 4 * 10


def test_callbacks_and_saving_see_the_gpu_weights(tmp_path):
    pynn.config.set_device("gpu")
    model = mlp()
    stop = EarlyStopping(monitor="loss", patience=0, restore_best_weights=True)
    model.fit(X, LABELS, epochs=4, batch_size=32, verbose=0, callbacks=[stop])
    model.save(tmp_path / "m.pynn")
    loaded = pynn.models.load_model(tmp_path / "m.pynn")
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert loaded.optimizer.iterations == model.optimizer.iterations


def test_a_model_the_gpu_does_not_run_is_named():
    """More than four metrics: the CPU engine runs them, the GPU names what it lacks."""
    pynn.config.set_device("gpu")
    model = pynn.Sequential([pynn.Input((6,)), Dense(1, activation="sigmoid")])
    metrics = ["accuracy", "mse", "mae", "binary_crossentropy", "binary_accuracy"]
    model.compile(loss="binary_crossentropy", optimizer="sgd", metrics=metrics)
    with pytest.raises(NotImplementedError, match="more than 4 metrics.*set_device\\('cpu'\\)"):
        model.fit(X, (X[:, 0] > 0).astype(np.float32), verbose=0)


def test_merges_of_more_than_16_inputs_are_named():
    inputs = pynn.Input((3,))
    wide = pynn.Model(inputs, pynn.layers.add([inputs] * 17))
    wide.compile(loss="mse", optimizer="sgd")
    pynn.config.set_device("gpu")
    with pytest.raises(NotImplementedError, match="does not run merges of more than 16 inputs"):
        wide.fit(np.ones((4, 3)), np.ones((4, 3)), verbose=0)


def test_dense_on_sequences_trains_as_on_the_cpu():
    """Dense on the last axis of (steps, channels) outputs, as Keras applies it."""
    series = RNG.normal(size=(40, 9, 2)).astype(np.float32)
    target = series.sum(axis=2, keepdims=True)
    weights = []
    for device in ("cpu", "gpu"):
        pynn.config.set_device(device)
        pynn.utils.set_random_seed(4)
        model = pynn.Sequential(
            [
                pynn.Input((9, 2)),
                pynn.layers.Conv1D(4, 3, padding="causal", activation="relu"),
                Dense(1),
            ]
        )
        model.compile(loss="mse", optimizer="adam")
        model.fit(series, target, epochs=3, batch_size=8, verbose=0)
        weights.append(model.get_weights())
    for g, c in zip(*weights):
        np.testing.assert_allclose(g, c, rtol=1e-3, atol=1e-5)


def test_sequences_of_varying_length_train_as_on_the_cpu():
    """`Input((None, 2))`: each length gets its own plan, and its own GPU copy."""
    results = []
    for device in ("cpu", "gpu"):
        pynn.config.set_device(device)
        pynn.utils.set_random_seed(4)
        model = pynn.Sequential(
            [
                pynn.Input((None, 2)),
                pynn.layers.Conv1D(4, 3, activation="relu"),
                pynn.layers.GlobalMaxPooling1D(),
                Dense(1),
            ]
        )
        model.compile(loss="mse", optimizer="adam")
        for length in (9, 5, 9):
            series = np.random.default_rng(length).normal(size=(40, length, 2))
            model.fit(series, series.sum(axis=(1, 2))[:, None], epochs=2, batch_size=8, verbose=0)
        results.append((model.get_weights(), model.predict(series[:4], verbose=0)))
    (cpu_weights, cpu_out), (gpu_weights, gpu_out) = results
    np.testing.assert_allclose(gpu_out, cpu_out, rtol=1e-4, atol=1e-5)
    for g, c in zip(gpu_weights, cpu_weights):
        np.testing.assert_allclose(g, c, rtol=1e-3, atol=1e-5)


def lenet():
    from pynn.examples.lenet import lenet as build

    pynn.utils.set_random_seed(3)
    model = build()
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


def test_lenet_trains_a_few_batches_as_on_the_cpu():
    """The textbook's LeNet-5 (convolutions, max pooling, Dense) on 32x32 images: four Adam
    steps on the GPU end where the CPU's do."""
    images = np.random.default_rng(5).random((256, 32, 32, 1), dtype=np.float32)
    labels = np.arange(256) % 10
    results = []
    for device in ("cpu", "gpu"):
        pynn.config.set_device(device)
        model = lenet()
        history = model.fit(images, labels, batch_size=64, epochs=1, verbose=0).history
        results.append((model.get_weights(), history))
    (cpu_weights, cpu_history), (gpu_weights, gpu_history) = results
    np.testing.assert_allclose(gpu_history["loss"], cpu_history["loss"], rtol=1e-4)
    for g, c in zip(gpu_weights, cpu_weights):
        np.testing.assert_allclose(g, c, rtol=1e-3, atol=1e-5)


def test_auto_trains_on_the_cpu_without_a_real_gpu(recwarn):
    if pynn.config.gpu_info()["is_gpu"]:
        pytest.skip("a real GPU is present")
    pynn.config.set_device("auto")
    model = pynn.Sequential([pynn.Input((6,)), Dropout(0.5), Dense(1, activity_regularizer="l2")])
    model.compile(loss="mse", optimizer="sgd")
    model.fit(X, X[:, :1], verbose=0)
    assert not [w for w in recwarn if "GPU" in str(w.message)]


def test_device_names_and_environment():
    with pytest.raises(ValueError, match="'cpu', 'gpu', 'auto'"):
        pynn.config.set_device("cuda")
    code = "import pynn; print(pynn.config.get_device())"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYNN_DEVICE": "gpu"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == "gpu"


def test_probing_without_a_runtime_dir_prints_nothing():
    code = "import pynn; pynn.config.set_device('gpu'); print(pynn.config.gpu_info()['name'])"
    env = {k: v for k, v in os.environ.items() if k not in ("XDG_RUNTIME_DIR", "NODEVICE_SELECT")}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == pynn.config.gpu_info()["name"]
    assert done.stderr == ""


def test_asking_for_a_gpu_that_is_not_there_says_what_was_found():
    code = "import pynn; pynn.config.set_device('gpu')"
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "WGPU_ADAPTER_NAME": "no such adapter"},
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0
    assert "RuntimeError" in done.stderr
    assert "no Vulkan adapter matches" in done.stderr and "found: " in done.stderr


def test_the_textbooks_l2_network_trains_as_on_the_cpu():
    """Chapter 5's iris network with L2(0.01) on its hidden kernels: the penalty's gradient
    and its value in the loss, on both engines."""
    from pynn.examples._textbook import iris_network, standardized_iris
    from pynn.regularizers import L2

    x, y = standardized_iris(0)
    histories = []
    for device in ("cpu", "gpu"):
        pynn.config.set_device(device)
        pynn.utils.set_random_seed(0)
        model = iris_network(kernel_regularizer=L2(0.01))
        model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
        histories.append(
            model.fit(x, y, validation_split=0.3, epochs=3, batch_size=30, verbose=0).history
        )
    for key, values in histories[0].items():
        np.testing.assert_allclose(histories[1][key], values, rtol=1e-4)


def with_activation_layers():
    pynn.utils.set_random_seed(1)
    model = pynn.Sequential(
        [
            pynn.Input((6,)),
            Dense(16),
            pynn.layers.Activation("tanh"),
            Dense(8, "relu"),
            pynn.layers.Activation("sigmoid"),
            Dense(3),
            pynn.layers.Activation("softmax"),
        ]
    )
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


def trained_alike(build):
    """The model `build` makes, trained on the GPU, after checking that its history and weights
    are the CPU's."""
    cpu, cpu_history = fit_on("cpu", build)
    gpu, gpu_history = fit_on("gpu", build)
    for key, values in cpu_history.items():
        np.testing.assert_allclose(gpu_history[key], values, rtol=1e-3, atol=1e-6)
    for g, c in zip(gpu.get_weights(), cpu.get_weights()):
        np.testing.assert_allclose(g, c, rtol=1e-3, atol=1e-5)
    return gpu


def test_activation_layers_train_on_the_gpu_as_on_the_cpu():
    trained_alike(with_activation_layers)


def weighted_loss():
    model = mlp()
    model.compile(
        loss="sparse_categorical_crossentropy",
        loss_weights=[0.25],
        optimizer="adam",
        metrics=["accuracy"],
    )
    return model


def test_a_weighted_loss_trains_on_the_gpu_as_on_the_cpu():
    gpu = trained_alike(weighted_loss)
    # The loss is the weighted one, as Keras reports it: a quarter of the same weights' loss.
    weighted = gpu.evaluate(X, LABELS, verbose=0)[0]
    gpu.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
    np.testing.assert_allclose(weighted, gpu.evaluate(X, LABELS, verbose=0) / 4, rtol=1e-5)


def frozen_base():
    model = mlp()
    model.layers[0].trainable = False
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


def test_frozen_layers_stay_on_the_gpu_and_the_rest_trains_as_on_the_cpu():
    before = mlp().get_weights()
    gpu = trained_alike(frozen_base)
    after = gpu.get_weights()
    for frozen, was in zip(after[:2], before[:2]):
        np.testing.assert_array_equal(frozen, was)
    assert not np.array_equal(after[2], before[2])
    # Unfrozen and compiled again, the GPU trains every layer.
    gpu.layers[0].trainable = True
    gpu.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
    gpu.fit(X, LABELS, epochs=1, batch_size=32, verbose=0)
    assert not np.array_equal(gpu.get_weights()[0], before[0])


def test_a_batch_too_large_for_the_gpu_is_a_memory_error():
    pynn.config.set_device("gpu")
    model = pynn.Sequential([pynn.Input((1,)), Dense(2**20), Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x = np.zeros((2**16, 1), np.float32)  # 2**36 values in one activation: beyond any GPU
    with pytest.raises(MemoryError, match=r"a batch of 65536 samples.*lower `batch_size`"):
        model.fit(x, x, batch_size=2**16, verbose=0)
    with pytest.raises(MemoryError, match="a batch of 65536 samples"):
        model.predict(x, batch_size=2**16, verbose=0)
    model.fit(x[:8], x[:8], batch_size=4, verbose=0)  # batches that fit still train


@pytest.mark.skipif(
    (pynn.config.gpu_info() or {}).get("is_gpu", True),
    reason="sized for lavapipe's buffers of 2**25 values; a real GPU's hold more",
)
def test_a_model_too_large_for_the_gpus_buffers_is_a_memory_error():
    model = pynn.Sequential([pynn.Input((2**13,)), Dense(2**13)])  # 2**26 weights
    model.compile(optimizer="sgd", loss="mse")
    x = np.zeros((2, 2**13), np.float32)
    pynn.config.set_device("gpu")
    with pytest.raises(MemoryError, match="weights need a GPU buffer larger than"):
        model.fit(x, x, verbose=0)


@pytest.mark.filterwarnings("ignore:.*received `from_logits=True`")
@pytest.mark.parametrize(
    "name",
    [
        "sigmoid_saturated_bce",
        "softmax_saturated_cce",
        "softmax_head_bce",
        "mse_loss_with_crossentropy_metrics",
        "conv_softmax_head",
        "scce_loss_on_unnormalised_outputs",
    ],
)
def test_crossentropy_heads_on_the_gpu_match_keras(name):
    """The GPU engine computes crossentropy from the output layer's logits too (see
    test_logits.py): the same numbers as Keras, also where the outputs saturate."""
    from test_logits import GOLDEN, build

    case = GOLDEN["cases"][name]
    keras = case["keras"]
    x, y = np.array(case["x"], np.float32), np.array(case["y"], np.float32)
    pynn.config.set_device("gpu")
    model = build(case)
    history = model.fit(x, y, batch_size=4, epochs=case["epochs"], shuffle=False, verbose=0)
    for key, values in keras["history"].items():
        np.testing.assert_allclose(history.history[key], values, rtol=2e-4, atol=1e-5)
    for got, want in zip(model.get_weights(), keras["weights"]):
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)
    evaluation = model.evaluate(x, y, batch_size=len(x), verbose=0, return_dict=True)
    pynn.config.set_device("cpu")
    expected = model.evaluate(x, y, batch_size=len(x), verbose=0, return_dict=True)
    for key, value in expected.items():
        assert evaluation[key] == pytest.approx(value, rel=1e-4, abs=1e-6), key


#: The graphs of the functional and multi-output tests, each with compile's `loss`,
#: `loss_weights` and `metrics`, and the layers a frozen run freezes.
GRAPHS = {
    "residual_cnn": (
        BUILDERS["residual_cnn"],
        "sparse_categorical_crossentropy",
        None,
        ["accuracy"],
        ["stem"],
    ),
    "merges": (BUILDERS["merges"], "mse", None, ["mae"], ["a"]),
    "shared_layer": (BUILDERS["shared_layer"], "mse", None, None, []),
    "nested": (BUILDERS["nested"], "sparse_categorical_crossentropy", None, None, ["encoder"]),
    **{
        name: (*CASES[name], [])
        for name in (
            "weighted_dicts",
            "lists_one_loss",
            "siamese",
            "constants",
            "dict_outputs",
            "cosine",
            "attention_scores",
        )
    },
    "variable_length": (*CASES["variable_length"], ["conv"]),
}


def graph_data(name, model, n=40):
    rng = np.random.default_rng(6)
    if name in CASES:
        return multi_io_data(name, model, rng, n)
    x = rng.normal(size=(n, *model.input_shape[1:])).astype(np.float32)
    if name in ("residual_cnn", "nested"):
        return x, rng.integers(0, model.output_shape[-1], size=n)
    return x, rng.normal(size=(n, 2)).astype(np.float32)


def graph_on(device, name, frozen=False):
    """Graph `name` trained for three shuffled epochs of Adam on `device`: the model, its
    history and its data."""
    build, loss, loss_weights, metrics, frozen_layers = GRAPHS[name]
    pynn.config.set_device(device)
    pynn.utils.set_random_seed(7)
    model = build(pynn)
    for layer in frozen_layers if frozen else []:
        model.get_layer(layer).trainable = False
    x, y = graph_data(name, model)
    model.compile("adam", loss=loss, loss_weights=loss_weights, metrics=metrics)
    history = model.fit(x, y, batch_size=8, epochs=3, verbose=0).history
    return model, history, x, y


@pytest.mark.parametrize(
    "name, frozen",
    [(name, False) for name in GRAPHS] + [(name, True) for name in GRAPHS if GRAPHS[name][4]],
)
def test_graph_models_train_on_the_gpu_as_on_the_cpu(tmp_path, name, frozen):
    """Residual, merged (every merge, broadcasting, concatenation, `Dot` with and without
    `normalize`), shared, nested, several inputs and outputs (weighted, one without a loss),
    constants, frozen parts; saved from the GPU, each loads with its weights."""
    cpu, cpu_history, x, y = graph_on("cpu", name, frozen)
    gpu, gpu_history, _, _ = graph_on("gpu", name, frozen)
    assert gpu_history.keys() == cpu_history.keys()
    for key, values in cpu_history.items():
        np.testing.assert_allclose(gpu_history[key], values, rtol=1e-4, atol=1e-6, err_msg=key)
    for g, c in zip(gpu.get_weights(), cpu.get_weights()):
        np.testing.assert_allclose(g, c, rtol=1e-4, atol=1e-4)
    gpu.save(tmp_path / "gpu.pynn")
    loaded = pynn.models.load_model(tmp_path / "gpu.pynn")
    for a, b in zip(loaded.get_weights(), gpu.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert loaded.optimizer.iterations == gpu.optimizer.iterations
    on_gpu = (gpu.predict(x, verbose=0), gpu.evaluate(x, y, verbose=0))
    pynn.config.set_device("cpu")
    on_cpu = (gpu.predict(x, verbose=0), gpu.evaluate(x, y, verbose=0))
    for g, c in zip(flat(on_gpu), flat(on_cpu)):
        np.testing.assert_allclose(g, c, rtol=1e-5, atol=1e-6)


def flat(value):
    """The arrays and numbers of nested lists, tuples and dicts (dicts in key order)."""
    if isinstance(value, dict):
        return [a for key in sorted(value) for a in flat(value[key])]
    if isinstance(value, (list, tuple)):
        return [a for item in value for a in flat(item)]
    return [value]
