"""Every activation and its gradient against NumPy formulas and finite differences."""

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


def test_lookup_by_name_function_and_alias():
    assert pynn.activations.get(None) == "linear"
    assert pynn.activations.get("swish") == "silu"
    assert pynn.activations.get(pynn.activations.relu) == "relu"
    with pytest.raises(ValueError, match="Unknown activation: 'rleu'.*relu"):
        pynn.activations.get("rleu")
