"""Whole fits: against Keras's own numbers, against a NumPy re-implementation, across threads."""

import json
from pathlib import Path

import numpy as np
import pytest
from reference import ACTIVATIONS, activation_grad, loss_per_row, numeric_gradient
from threads import weights_after_fit

import pynn
from pynn.layers import Dense

GOLDEN = json.loads((Path(__file__).parent / "golden" / "keras_fit.json").read_text())


def golden_regularizers(spec):
    """{"kernel_regularizer": ("L2", 0.01)} -> {"kernel_regularizer": L2(0.01)}, as the golden
    script builds them (L1L2 gets the factor as both l1 and l2)."""
    made = {}
    for argument, (name, factor) in spec.items():
        cls = getattr(pynn.regularizers, name)
        made[argument] = cls(factor, factor) if name == "L1L2" else cls(factor)
    return made


def golden_model(case):
    model = pynn.Sequential(
        [
            pynn.Input(shape=(4,)),
            Dense(
                8,
                activation=case["hidden"],
                **golden_regularizers(case.get("hidden_regularizers", {})),
            ),
            Dense(
                case["units"],
                activation=case["out"],
                **golden_regularizers(case.get("output_regularizers", {})),
            ),
        ]
    )
    name, kwargs = case["optimizer"]
    model.compile(
        loss=case["loss"],
        optimizer=getattr(pynn.optimizers, name)(**kwargs),
        metrics=case["metrics"],
    )
    return model


@pytest.mark.parametrize("name", sorted(GOLDEN["cases"]))
def test_fit_matches_keras(name):
    """Keras 3 (TensorFlow backend) trained the same model from the same weights; see
    golden/make_keras_golden.py."""
    golden = GOLDEN["cases"][name]
    x, y = np.array(golden["x"]), np.array(golden["y"])
    model = golden_model(golden["case"])
    model.set_weights([np.array(w, np.float32) for w in golden["initial_weights"]])
    history = model.fit(
        x,
        y,
        batch_size=GOLDEN["batch_size"],
        epochs=GOLDEN["epochs"],
        shuffle=False,
        verbose=0,
        validation_split=golden["case"].get("validation_split", 0.0),
    )
    assert sorted(history.history) == sorted(golden["history"])
    for key, values in golden["history"].items():
        np.testing.assert_allclose(history.history[key], values, rtol=1e-5, atol=1e-6)
    for ours, theirs in zip(model.get_weights(), golden["final_weights"]):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    evaluated = model.evaluate(x, y, batch_size=GOLDEN["batch_size"], verbose=0, return_dict=True)
    for key, value in golden["evaluate"].items():
        assert evaluated[key] == pytest.approx(value, rel=1e-5, abs=1e-6)
    np.testing.assert_allclose(model.predict(x, verbose=0), golden["predict"], rtol=1e-5, atol=1e-6)


def numpy_fit(x, y, weights, epochs, batch_size, lr):
    """The same training written out in NumPy: tanh hidden layer, softmax output, categorical
    crossentropy, plain SGD, batches in order. Returns per-epoch (loss, accuracy) and weights."""
    w1, b1, w2, b2 = (w.astype(np.float64) for w in weights)
    logs = []
    for _ in range(epochs):
        loss_sum = hits = 0.0
        for start in range(0, len(x), batch_size):
            xb, yb = x[start : start + batch_size], y[start : start + batch_size]
            z1 = xb @ w1 + b1
            a1 = np.tanh(z1)
            p = ACTIVATIONS["softmax"](a1 @ w2 + b2)
            loss_sum += loss_per_row("categorical_crossentropy", yb, p).mean() * len(xb)
            hits += (p.argmax(-1) == yb.argmax(-1)).sum()
            dz2 = (p - yb) / len(xb)
            dz1 = activation_grad("tanh", z1, dz2 @ w2.T)
            gw2, gb2, gw1, gb1 = a1.T @ dz2, dz2.sum(0), xb.T @ dz1, dz1.sum(0)
            w1, b1, w2, b2 = w1 - lr * gw1, b1 - lr * gb1, w2 - lr * gw2, b2 - lr * gb2
        logs.append((loss_sum / len(x), hits / len(x)))
    return logs, [w1, b1, w2, b2]


def test_fit_matches_numpy_epoch_by_epoch():
    rng = np.random.default_rng(11)
    x = rng.normal(size=(37, 5))
    y = np.eye(4)[rng.integers(0, 4, size=37)]
    weights = [
        rng.normal(scale=0.5, size=s).astype(np.float32) for s in [(5, 6), (6,), (6, 4), (4,)]
    ]
    model = pynn.Sequential(
        [pynn.Input(shape=(5,)), Dense(6, activation="tanh"), Dense(4, activation="softmax")]
    )
    model.set_weights(weights)
    model.compile(
        loss="categorical_crossentropy", optimizer=pynn.optimizers.SGD(0.3), metrics=["accuracy"]
    )
    expected, final = numpy_fit(x, y, weights, epochs=6, batch_size=8, lr=0.3)
    history = model.fit(x, y, epochs=6, batch_size=8, shuffle=False, verbose=0).history
    np.testing.assert_allclose(history["loss"], [e[0] for e in expected], rtol=1e-5)
    np.testing.assert_allclose(history["accuracy"], [e[1] for e in expected], atol=1e-7)
    for ours, theirs in zip(model.get_weights(), final):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)


def test_dense_gradients_match_finite_differences():
    """The engine's gradient of the batch loss, read after one step, against finite differences
    of the NumPy loss of the same network."""
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(6, 3)), rng.normal(size=(6, 2))
    weights = [rng.normal(size=s).astype(np.float32) for s in [(3, 4), (4,), (4, 2), (2,)]]
    model = pynn.Sequential([pynn.Input(shape=(3,)), Dense(4, activation="sigmoid"), Dense(2)])
    model.set_weights(weights)
    model.compile(loss="mse", optimizer=pynn.optimizers.SGD(0.0))
    model.train_on_batch(x, y)
    flat_grads = model._engine.get_gradients()

    def loss(flat):
        parts = np.split(flat, np.cumsum([w.size for w in weights])[:-1])
        w1, b1, w2, b2 = (p.reshape(w.shape) for p, w in zip(parts, weights))
        out = ACTIVATIONS["sigmoid"](x @ w1 + b1) @ w2 + b2
        return loss_per_row("mean_squared_error", y, out).mean()

    flat = np.concatenate([w.reshape(-1) for w in weights]).astype(np.float64)
    np.testing.assert_allclose(flat_grads, numeric_gradient(loss, flat), rtol=1e-4, atol=1e-6)


def test_same_seed_same_bits_with_one_and_two_threads():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(512, 64)).astype(np.float32)
    y = np.eye(10)[rng.integers(0, 10, size=512)]

    def make_model():
        # Wide enough that the products and element-wise kernels really split across threads.
        model = pynn.Sequential(
            [
                pynn.Input(shape=(64,)),
                Dense(512, activation="relu"),
                Dense(512, activation="gelu"),
                Dense(10, activation="softmax"),
            ]
        )
        model.compile(loss="categorical_crossentropy", optimizer="adam")
        return model

    one = weights_after_fit(make_model, x, y, threads=1, epochs=2, batch_size=256)
    two = weights_after_fit(make_model, x, y, threads=2, epochs=2, batch_size=256)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)


def test_seed_reproduces_initial_weights_and_shuffling():
    x = np.random.default_rng(0).normal(size=(40, 3))
    y = (x.sum(axis=1) > 0).astype(float)

    def run():
        pynn.utils.set_random_seed(7)
        model = pynn.Sequential(
            [pynn.Input(shape=(3,)), Dense(5, activation="relu"), Dense(1, activation="sigmoid")]
        )
        start = model.get_weights()
        model.compile(loss="binary_crossentropy", optimizer="sgd", metrics=["accuracy"])
        return start, model.fit(x, y, epochs=3, batch_size=7, verbose=0).history

    (w1, h1), (w2, h2) = run(), run()
    for a, b in zip(w1, w2):
        np.testing.assert_array_equal(a, b)
    assert h1 == h2


def test_iris_standardized_reaches_high_accuracy():
    pynn.utils.set_random_seed(0)
    x, labels = pynn.datasets.iris.load_data()
    x = (x - x.mean(axis=0)) / x.std(axis=0, ddof=1)
    model = pynn.Sequential(
        [
            pynn.layers.InputLayer(shape=(4,)),
            Dense(256, activation="relu"),
            Dense(256, activation="relu"),
            Dense(256, activation="relu"),
            Dense(3, activation="softmax"),
        ]
    )
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    history = model.fit(x, pynn.utils.to_categorical(labels), epochs=100, batch_size=30, verbose=0)
    assert history.history["accuracy"][-1] >= 0.95
    assert history.history["loss"][-1] < history.history["loss"][0] / 5


def test_history_evaluate_and_batch_methods_follow_keras():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(20, 2)), rng.integers(0, 3, size=20)
    model = pynn.Sequential([pynn.Input(shape=(2,)), Dense(3, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd", metrics=["acc"])
    history = model.fit(x, y, epochs=3, batch_size=6, verbose=0)
    assert list(history.history) == ["acc", "loss"]
    assert history.epoch == [0, 1, 2] and history.params == {"verbose": 0, "epochs": 3, "steps": 4}
    assert model.history is history
    result = model.evaluate(x, y, verbose=0)
    assert isinstance(result, list) and len(result) == 2
    assert model.evaluate(x, y, verbose=0, return_dict=True) == {
        "acc": result[1],
        "loss": result[0],
    }
    assert model.predict(x, verbose=0).shape == (20, 3)
    assert model.predict(x, verbose=0).dtype == np.float32
    before = model.get_weights()
    batch_logs = model.test_on_batch(x, y, return_dict=True)
    assert batch_logs["loss"] == pytest.approx(result[0], rel=1e-6)
    np.testing.assert_array_equal(model.get_weights()[0], before[0])
    model.train_on_batch(x, y)
    assert not np.array_equal(model.get_weights()[0], before[0])
    assert model.optimizer.iterations == 4 * 3 + 1
    np.testing.assert_allclose(model.predict_on_batch(x), model.predict(x, verbose=0))


def test_evaluate_returns_a_float_without_metrics_and_initial_epoch_counts():
    x, y = np.ones((4, 1)), np.zeros((4, 1))
    model = pynn.Sequential([pynn.Input(shape=(1,)), Dense(1)])
    model.compile(loss="mse", optimizer="sgd")
    history = model.fit(x, y, epochs=5, initial_epoch=3, verbose=0)
    assert history.epoch == [3, 4]
    assert isinstance(model.evaluate(x, y, verbose=0), float)


def test_verbose_prints_keras_lines(capsys):
    x, y = np.ones((10, 1)), np.zeros((10, 1))
    model = pynn.Sequential([pynn.Input(shape=(1,)), Dense(1)])
    model.compile(loss="mse", optimizer="sgd", metrics=["mae"])
    model.fit(x, y, epochs=2, batch_size=4)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2"
    assert lines[1].startswith("3/3 ━━━━━━━━━━━━━━━━━━━━ ")
    assert " - loss: " in lines[1] and " - mae: " in lines[1]
    model.fit(x, y, epochs=1, verbose=2)
    assert capsys.readouterr().out.startswith("1/1 - ")
