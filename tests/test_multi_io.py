"""Models of several inputs and outputs: `compile` with a loss per output, `loss_weights` and
metrics per output; data as lists or dicts; logs, `evaluate` and `predict` as Keras 3 gives
them. Whole models are checked against Keras 3 (tests/multi_io_models.py, run in Keras:
`tests/golden/keras_multi_io.json`)."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

import pynn
from pynn import layers
from pynn._random import draw_seed, epoch_seed, visiting_order

sys.path.insert(0, str(Path(__file__).parent))
from multi_io_models import CASES, two_in_two_out  # noqa: E402
from threads import weights_after_fit  # noqa: E402

GOLDEN = json.loads((Path(__file__).parent / "golden" / "keras_multi_io.json").read_text())
SETTINGS = GOLDEN["settings"]


def arrays(value):
    """JSON lists back as float32 arrays, in the same lists and dicts."""
    if isinstance(value, dict):
        return {key: arrays(item) for key, item in value.items()}
    if isinstance(value, list) and value and isinstance(value[0], list):
        return np.array(value, np.float32)
    return [arrays(item) for item in value] if isinstance(value, list) else value


def keras_case(name):
    """The case's model with Keras's initial weights, compiled with `optimizer`, and its data."""
    case = GOLDEN["cases"][name]
    build, *_ = CASES[name]
    model = build(pynn)
    initial = [np.array(w, np.float32) for w in case["initial_weights"]]
    model.set_weights(initial)
    x = [np.array(v, np.float32) for v in case["x"]]
    y = case["y"]
    if isinstance(y, dict):
        y = {key: np.array(v, np.float32) for key, v in y.items()}
    elif name in ("siamese", "cosine", "attention_scores", "constants"):
        y = np.array(y, np.float32)
    else:
        y = [np.array(y[0], np.int64), np.array(y[1], np.float32)]
    return model, initial, x, y, case


def compiled(model, name, optimizer):
    _, loss, loss_weights, metrics = CASES[name]
    model.compile(optimizer, loss=loss, loss_weights=loss_weights, metrics=metrics)


def assert_close(got, want, rtol=1e-4, atol=2e-5):
    if isinstance(want, dict):
        assert sorted(got) == sorted(want)
        for key in want:
            assert_close(got[key], want[key], rtol, atol)
    elif isinstance(got, list):
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert_close(g, w, rtol, atol)
    else:
        np.testing.assert_allclose(got, np.array(want, np.float64), rtol=rtol, atol=atol)


@pytest.mark.parametrize("name", sorted(CASES))
def test_predictions_gradients_fit_and_evaluate_match_keras(name):
    model, initial, x, y, case = keras_case(name)
    assert [layer.name for layer in model.layers] == case["layers"]
    assert model.output_names == case["output_names"]
    assert_close(model.predict(x, verbose=0), case["predictions"], 1e-5, 1e-6)

    compiled(model, name, pynn.optimizers.SGD(learning_rate=1.0))
    model.train_on_batch(x, y)
    steps = [w0 - w1 for w0, w1 in zip(initial, model.get_weights())]
    assert_close(steps, case["gradients"], 1e-4, 1e-5)

    model.set_weights(initial)
    compiled(model, name, pynn.optimizers.Adam(learning_rate=SETTINGS["learning_rate"]))
    history = model.fit(
        x,
        y,
        batch_size=SETTINGS["batch_size"],
        epochs=SETTINGS["epochs"],
        shuffle=False,
        verbose=0,
        validation_split=SETTINGS["validation_split"],
    )
    assert list(history.history) == sorted(case["history"])
    assert_close(history.history, case["history"])
    assert_close(model.get_weights(), case["weights"])
    assert model.metrics_names == case["metrics_names"]
    assert_close(model.evaluate(x, y, verbose=0), case["evaluate"])
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    assert list(logs) == sorted(case["evaluate_dict"])
    assert_close(logs, case["evaluate_dict"])
    if case.get("other_length"):  # inputs of a variable length: another length after the fit
        other = [np.array(v, np.float32) for v in case["other_length"]["x"]]
        assert_close(model.predict(other, verbose=0), case["other_length"]["predictions"])


def test_an_output_without_a_loss_gets_no_gradient():
    model, _, x, y, _ = keras_case("lists_one_loss")
    compiled(model, "lists_one_loss", "sgd")
    gradients = dict(
        zip(
            ["da", "da_b", "db", "db_b", "trunk", "trunk_b", "cls", "cls_b", "reg", "reg_b"],
            model.compute_gradients(x, y),
        )
    )
    assert not gradients["reg"].any() and not gradients["reg_b"].any()
    assert gradients["cls"].any() and gradients["da"].any()


def test_inputs_and_targets_as_dicts_equal_lists():
    model, initial, x, y, _ = keras_case("weighted_dicts")
    compiled(model, "weighted_dicts", "adam")
    as_lists = model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history
    after_lists = model.get_weights()
    model.set_weights(initial)
    compiled(model, "weighted_dicts", "adam")
    as_dicts = model.fit(
        {"b": x[1], "a": x[0], "unused": x[0]},
        {"reg": y[1], "cls": y[0]},
        batch_size=8,
        epochs=2,
        shuffle=False,
        verbose=0,
    ).history
    assert as_dicts == as_lists
    for a, b in zip(model.get_weights(), after_lists):
        np.testing.assert_array_equal(a, b)


def test_predict_returns_the_structure_of_the_outputs():
    model, _, x, _, _ = keras_case("dict_outputs")
    predictions = model.predict(x[0], verbose=0)
    assert sorted(predictions) == ["price", "volume"]
    assert predictions["volume"].shape == (24, 2)
    pair = two_in_two_out(pynn)
    classes, values = pair.predict([np.zeros((3, 6)), np.zeros((3, 4))], verbose=0)
    assert classes.shape == (3, 3) and values.shape == (3, 2)
    np.testing.assert_allclose(classes.sum(1), 1, rtol=1e-6)
    single = pynn.Input((2,))
    in_a_list = pynn.Model([single], [layers.Dense(1)(single)])
    assert in_a_list.predict(np.zeros((4, 2)), verbose=0).shape == (4, 1)


def test_batch_callbacks_see_the_same_logs_as_one_call_per_epoch():
    class Batches(pynn.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.logs = []

        def on_train_batch_end(self, batch, logs=None):
            self.logs.append(logs)

    results = []
    for callbacks in ([], [Batches()]):
        model, _, x, y, _ = keras_case("weighted_dicts")
        compiled(model, "weighted_dicts", "adam")
        history = model.fit(
            x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, callbacks=callbacks
        )
        results.append((history.history, model.get_weights()))
    assert sorted(callbacks[0].logs[-1]) == [
        "cls_accuracy",
        "cls_loss",
        "loss",
        "reg_loss",
        "reg_mae",
    ]
    assert_close(results[1][0], results[0][0], 1e-6, 1e-7)
    for a, b in zip(results[1][1], results[0][1]):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_shuffling_moves_every_input_and_target_with_one_permutation():
    model, initial, x, y, _ = keras_case("weighted_dicts")
    compiled(model, "weighted_dicts", "sgd")
    pynn.utils.set_random_seed(3)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    shuffled = model.get_weights()
    pynn.utils.set_random_seed(3)
    order = visiting_order(epoch_seed(draw_seed(), 0), 24)
    model.set_weights(initial)
    compiled(model, "weighted_dicts", "sgd")
    model.fit([a[order] for a in x], [a[order] for a in y], batch_size=8, shuffle=False, verbose=0)
    for a, b in zip(model.get_weights(), shuffled):
        np.testing.assert_array_equal(a, b)


def test_two_threads_train_a_multi_output_model_bit_identically_to_one():
    _, initial, x, y, _ = keras_case("weighted_dicts")

    def make():
        model = two_in_two_out(pynn)
        model.set_weights(initial)
        compiled(model, "weighted_dicts", "adam")
        return model

    one = weights_after_fit(make, x, y, 1, batch_size=24, epochs=2)
    two = weights_after_fit(make, x, y, 2, batch_size=24, epochs=2)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)


def test_compile_arguments_that_do_not_fit_the_outputs_raise_as_in_keras():
    model = two_in_two_out(pynn)
    with pytest.raises(ValueError, match=r"Invalid `metrics`.*\['cls', 'reg'\]"):
        model.compile("sgd", loss="mse", metrics=["accuracy"])
    with pytest.raises(ValueError, match=r"Expected keys \['cls', 'reg'\] in loss dict"):
        model.compile("sgd", loss={"cls": "mse", "score": "mse"})
    with pytest.raises(ValueError, match="`loss` has 3 entries, but the model has 2 outputs"):
        model.compile("sgd", loss=["mse"] * 3)
    with pytest.raises(ValueError, match="got 1 losses and 2 weights"):
        model.compile("sgd", loss="mse", loss_weights=[1.0, 2.0])
    with pytest.raises(ValueError, match="finite numbers >= 0"):
        model.compile("sgd", loss=["mse", "mse"], loss_weights=[1.0, -2.0])
    model.compile("sgd", loss=[None, None])
    with pytest.raises(ValueError, match="No loss to compute"):
        model.fit([np.zeros((2, 6)), np.zeros((2, 4))], [np.zeros(2), np.zeros((2, 2))])


def test_data_that_does_not_fit_the_inputs_or_outputs_is_named():
    model = two_in_two_out(pynn)
    model.compile("sgd", loss=["sparse_categorical_crossentropy", "mse"])
    xa, xb, yc, yr = np.zeros((4, 6)), np.zeros((4, 4)), np.zeros(4), np.zeros((4, 2))
    with pytest.raises(
        ValueError, match=r"model has 2 inputs \(\['a', 'b'\]\): pass `x` as a list"
    ):
        model.fit(xa, [yc, yr], verbose=0)
    with pytest.raises(ValueError, match=r"`x` has no entry for inputs \['b'\]"):
        model.fit({"a": xa}, [yc, yr], verbose=0)
    with pytest.raises(ValueError, match=r"2 outputs \(\['cls', 'reg'\]\), but `y` holds 3"):
        model.fit([xa, xb], [yc, yr, yr], verbose=0)
    with pytest.raises(ValueError, match=r"`x\[0\]` and `x\[1\]` must hold the same number"):
        model.fit([xa, xb[:3]], [yc, yr], verbose=0)
    with pytest.raises(ValueError, match=r"`y\[1\]` has shape \(4, 3\)"):
        model.fit([xa, xb], [yc, np.zeros((4, 3))], verbose=0)
    with pytest.raises(ValueError, match=r"samples of shape \(4,\).*`x\['b'\]` has shape \(4, 5\)"):
        model.predict({"a": xa, "b": np.zeros((4, 5))}, verbose=0)


def test_the_compile_config_of_several_outputs_compiles_the_same_model_again():
    model, initial, x, y, _ = keras_case("weighted_dicts")
    model.compile(
        "adam",
        loss={"cls": "sparse_categorical_crossentropy", "reg": pynn.losses.MeanSquaredError()},
        loss_weights={"cls": 1.0, "reg": 0.5},
        metrics={"cls": ["accuracy"], "reg": [pynn.metrics.MeanAbsoluteError()]},
    )
    config = json.loads(json.dumps(model.get_compile_config()))
    first = model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history
    model.set_weights(initial)
    model.compile_from_config(config)
    again = model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history
    assert again == first
