"""Every activation and its gradient against NumPy formulas and finite differences."""

import json
from pathlib import Path

import numpy as np
import pytest
from reference import ACTIVATIONS, activation_grad, numeric_gradient

import pynn
from pynn import _core

Z = np.array([[-3.0, -1.2, -0.3, 0.2], [0.7, 1.5, 2.5, -0.05], [4.0, -4.0, 0.01, 1.0]], np.float32)
DA = np.array([[0.3, -1.1, 0.8, 0.5], [-0.2, 0.9, 1.3, -0.7], [0.4, 0.6, -0.5, 1.2]], np.float32)


def run(name, z=Z, da=DA):
    a, dz = _core.activation(name, z.reshape(-1), da.reshape(-1), z.shape[-1])
    return a.reshape(z.shape), dz.reshape(z.shape)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_forward_matches_numpy(name):
    a, _ = run(name)
    np.testing.assert_allclose(a, ACTIVATIONS[name](Z.astype(np.float64)), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_gradient_matches_numpy_formula(name):
    _, dz = run(name)
    expected = activation_grad(name, Z.astype(np.float64), DA.astype(np.float64))
    np.testing.assert_allclose(dz, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_gradient_matches_finite_differences(name):
    _, dz = run(name)
    numeric = numeric_gradient(lambda z: (ACTIVATIONS[name](z) * DA).sum(), Z)
    np.testing.assert_allclose(dz, numeric, rtol=1e-4, atol=1e-5)


def test_keras_reference_values():
    # Observed in Keras 3: gelu(1) = 0.8413447; leaky_relu's function slope is 0.2.
    assert pynn.activations.gelu(np.array([1.0]))[0] == pytest.approx(0.8413447, abs=1e-7)
    assert pynn.activations.leaky_relu(np.array([-1.0]))[0] == pytest.approx(-0.2)
    np.testing.assert_allclose(pynn.activations.softmax(np.array([[1e3, 1e3]])), [[0.5, 0.5]])


KERAS = json.loads((Path(__file__).parent / "golden" / "keras_activations.json").read_text())


@pytest.mark.parametrize("name", sorted(KERAS["cases"]))
def test_values_and_slopes_match_keras_on_tensorflow_also_at_the_kinks(name):
    # Written by tests/golden/make_keras_activation_golden.py: Keras 3 on TensorFlow, at points
    # that include -0, 0 and tiny values, where a piecewise activation's slope is the branch
    # TensorFlow's gradient picks (selu at 0: 1.0507, its positive branch).
    x = np.array(KERAS["points"], np.float32)
    expected = KERAS["cases"][name]
    function = pynn.activations.get(name)
    np.testing.assert_allclose(function(x), expected["value"], rtol=2e-6, atol=1e-7)
    # 1 - tanh(3)**2 cancels in float32: a last-bit difference of 1.2e-7.
    np.testing.assert_allclose(function.derivative(x), expected["derivative"], rtol=2e-6, atol=2e-7)


def test_lookup_by_name_function_and_alias():
    assert pynn.activations.get(None) is pynn.activations.linear
    assert pynn.activations.get("swish") is pynn.activations.silu
    assert pynn.activations.get(pynn.activations.relu) is pynn.activations.relu
    assert pynn.activations.serialize(pynn.activations.swish) == "silu"
    assert pynn.activations.deserialize("tanh") is pynn.activations.tanh
    with pytest.raises(ValueError, match="Unknown activation: 'rleu'.*relu"):
        pynn.activations.get("rleu")


@pytest.mark.parametrize("name", sorted(set(ACTIVATIONS) - {"softmax"}))
def test_derivative_for_plotting(name):
    """`get(name).derivative(x)`: the slope the engine's backward uses, against the NumPy
    formula and against finite differences of the function itself."""
    x = np.linspace(-4, 4, 41, dtype=np.float32)
    x = x[np.abs(x) > 1e-3]  # away from relu's kink
    slope = pynn.activations.get(name).derivative(x)
    expected = activation_grad(name, x[None].astype(np.float64), np.ones((1, x.size)))[0]
    np.testing.assert_allclose(slope, expected, rtol=1e-5, atol=1e-6)
    f = pynn.activations.get(name)
    h = 1e-3
    numeric = (f(x.astype(np.float64) + h) - f(x.astype(np.float64) - h)) / (2 * h)
    np.testing.assert_allclose(slope, numeric, rtol=2e-2, atol=2e-3)


def test_softmax_derivative_is_the_jacobian_diagonal():
    x = np.array([[0.5, -1.0, 2.0]], np.float32)
    s = pynn.activations.softmax(x)
    np.testing.assert_allclose(pynn.activations.softmax.derivative(x), s * (1 - s), rtol=1e-6)


def test_relu_and_sigmoid_derivatives_as_in_the_textbook():
    x = np.array([-2.0, -0.5, 0.5, 2.0], np.float32)
    np.testing.assert_array_equal(pynn.activations.get("relu").derivative(x), [0, 0, 1, 1])
    sig = 1 / (1 + np.exp(-x.astype(np.float64)))
    np.testing.assert_allclose(
        pynn.activations.get("sigmoid").derivative(x), sig * (1 - sig), rtol=1e-6
    )
    assert pynn.activations.sigmoid.derivative(np.array([0.0]))[0] == pytest.approx(0.25)
