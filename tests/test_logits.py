"""Crossentropy on an output layer that ends in a sigmoid or a softmax is computed from that
layer's pre-activations (its logits), as Keras 3 on TensorFlow does: exact where the outputs
saturate, with a gradient that does not vanish there. Checked against numbers Keras computed
for the same models and weights (`golden/keras_logits.json`)."""

import json
from pathlib import Path

import numpy as np
import pytest

import pynn
from pynn import layers

GOLDEN = json.loads((Path(__file__).parent / "golden" / "keras_logits.json").read_text())


def build(case):
    model = pynn.Sequential([pynn.Input(tuple(case["input_shape"]))])
    for spec in case["layers"]:
        if spec["kind"] == "dense":
            model.add(layers.Dense(spec["units"], activation=spec["activation"]))
        else:
            model.add(layers.Conv1D(spec["filters"], spec["size"], activation=spec["activation"]))
    model.set_weights([np.array(w, np.float32) for w in case["weights"]])
    loss_name, loss_args = case["loss"]
    loss = type(pynn.losses.get(loss_name))(**loss_args) if loss_args else loss_name
    optimizer = getattr(pynn.optimizers, case["optimizer"][0])(learning_rate=case["optimizer"][1])
    model.compile(optimizer=optimizer, loss=loss, metrics=list(case["metrics"]))
    return model


@pytest.mark.filterwarnings("ignore:.*received `from_logits=True`")
@pytest.mark.parametrize("name", sorted(GOLDEN["cases"]))
def test_crossentropy_heads_match_keras(name):
    case = GOLDEN["cases"][name]
    keras = case["keras"]
    x, y = np.array(case["x"], np.float32), np.array(case["y"], np.float32)
    model = build(case)
    evaluation = model.evaluate(x, y, batch_size=len(x), verbose=0, return_dict=True)
    assert evaluation.keys() == keras["evaluation"].keys()
    for key, value in keras["evaluation"].items():
        assert evaluation[key] == pytest.approx(value, rel=2e-5, abs=1e-6), key
    np.testing.assert_allclose(
        model.predict(x, verbose=0), keras["predictions"], rtol=1e-5, atol=1e-7
    )
    history = model.fit(x, y, batch_size=4, epochs=case["epochs"], shuffle=False, verbose=0)
    for key, values in keras["history"].items():
        np.testing.assert_allclose(history.history[key], values, rtol=5e-5, atol=1e-6)
    for got, want in zip(model.get_weights(), keras["weights"]):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_a_saturated_sigmoid_still_learns():
    # Keras: loss 30 at x=30, y=0, and a kernel gradient of 30 (sigmoid(30) - 0 times x); a
    # loss from clipped probabilities is 15.9 with a gradient of 0, and training stops.
    model = pynn.Sequential(
        [pynn.Input((1,)), layers.Dense(1, activation="sigmoid", kernel_initializer="ones")]
    )
    model.compile(optimizer="sgd", loss="binary_crossentropy")
    x, y = np.array([[30.0]]), np.array([[0.0]])
    assert model.evaluate(x, y, verbose=0) == pytest.approx(30.0, rel=1e-6)
    kernel_gradient = model.compute_gradients(x, y)[0]
    assert kernel_gradient[0, 0] == pytest.approx(30.0, rel=1e-6)
    model.fit(x, y, epochs=3, verbose=0)
    assert model.layers[0].get_weights()[0][0, 0] < 0.2  # 1 - 3 steps of 0.01 * 30


def test_from_logits_on_a_sigmoid_output_warns_as_keras_does():
    model = pynn.Sequential([pynn.Input((2,)), layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="sgd", loss=pynn.losses.BinaryCrossentropy(from_logits=True))
    with pytest.warns(UserWarning, match="produced by a Sigmoid activation"):
        model.fit(np.ones((2, 2)), np.ones((2, 1)), verbose=0)
