"""Optimizers: 20 steps on fixed gradients against NumPy implementations of Keras's equations."""

import json

import numpy as np
import pytest
from reference import optimizer_trajectory

import pynn
from pynn import _core

RNG = np.random.default_rng(3)
WEIGHTS = RNG.normal(size=12).astype(np.float32)
GRADS = RNG.normal(size=(20, 12)).astype(np.float32)

CASES = [
    pynn.optimizers.SGD(learning_rate=0.1),
    pynn.optimizers.SGD(learning_rate=0.05, momentum=0.9),
    pynn.optimizers.SGD(learning_rate=0.05, momentum=0.9, nesterov=True),
    pynn.optimizers.Adam(learning_rate=0.01),
    pynn.optimizers.Adam(learning_rate=0.01, beta_1=0.8, beta_2=0.9, amsgrad=True),
    pynn.optimizers.RMSprop(learning_rate=0.01),
    pynn.optimizers.RMSprop(learning_rate=0.01, momentum=0.5, centered=True),
    pynn.optimizers.Adagrad(learning_rate=0.1),
]


@pytest.mark.parametrize("optimizer", CASES, ids=lambda o: json.dumps(o.spec()))
def test_twenty_steps_match_keras_equations(optimizer):
    spec = optimizer.spec()
    trajectory = _core.optimizer_steps(json.dumps(spec), WEIGHTS, GRADS.reshape(-1))
    kind = spec.pop("kind")
    expected = optimizer_trajectory(kind, WEIGHTS, GRADS, **spec)
    np.testing.assert_allclose(trajectory.reshape(20, 12), expected, rtol=1e-6, atol=1e-6)


def test_keras_observed_first_steps():
    # Observed in Keras 3: Adam(0.1) from w=[1,-2] with g=[.5,-.25] gives [0.9000013, -1.9000019].
    adam = json.dumps(pynn.optimizers.Adam(learning_rate=0.1).spec())
    w = _core.optimizer_steps(
        adam, np.array([1, -2], np.float32), np.array([0.5, -0.25], np.float32)
    )
    np.testing.assert_allclose(w, [0.9000013, -1.9000019], rtol=0, atol=1e-7)
    # SGD(0.1, momentum=0.9, nesterov=True), g=1: w 1 -> 0.81.
    sgd = json.dumps(pynn.optimizers.SGD(learning_rate=0.1, momentum=0.9, nesterov=True).spec())
    w = _core.optimizer_steps(sgd, np.ones(1, np.float32), np.ones(1, np.float32))
    assert w[0] == pytest.approx(0.81)


def test_keras_argument_checks():
    with pytest.raises(ValueError, match="learning_rate"):
        pynn.optimizers.SGD(learning_rate=1)  # an int, as Keras rejects it
    with pytest.raises(ValueError, match="momentum"):
        pynn.optimizers.SGD(momentum=1)
    with pytest.raises(ValueError, match="Valid names: adagrad, adam, rmsprop, sgd"):
        pynn.optimizers.get("adamm")
    assert isinstance(pynn.optimizers.get("Adam"), pynn.optimizers.Adam)
    assert pynn.optimizers.Adam().get_config()["epsilon"] == 1e-7
