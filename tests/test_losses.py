"""Every loss and its gradient against NumPy formulas and finite differences."""

import json

import numpy as np
import pytest
from reference import loss_per_row, numeric_gradient

import pynn
from pynn import _core

PROBS = np.array([[0.2, 0.5, 0.3], [0.7, 0.1, 0.2], [0.05, 0.05, 0.9], [0.3, 0.3, 0.4]], np.float32)
ONE_HOT = np.eye(3, dtype=np.float32)[[1, 0, 2, 0]]
LOGITS = np.array(
    [[1.5, -0.3, 0.2], [-2.0, 0.4, 1.1], [0.0, 3.0, -1.0], [0.5, 0.5, 0.6]], np.float32
)
REAL = np.array([[0.3, -1.2, 2.0], [1.0, 0.0, -0.5], [2.2, 0.4, 0.1], [-1.0, 1.0, 0.3]], np.float32)

CASES = [
    ({"kind": "mean_squared_error"}, REAL, LOGITS),
    ({"kind": "mean_absolute_error"}, REAL, LOGITS),
    ({"kind": "binary_crossentropy"}, ONE_HOT, PROBS),
    ({"kind": "binary_crossentropy", "from_logits": True, "label_smoothing": 0.1}, ONE_HOT, LOGITS),
    ({"kind": "categorical_crossentropy"}, ONE_HOT, PROBS),
    ({"kind": "categorical_crossentropy", "label_smoothing": 0.2}, ONE_HOT, PROBS * 1.7),
    ({"kind": "categorical_crossentropy", "from_logits": True}, ONE_HOT, LOGITS),
    ({"kind": "sparse_categorical_crossentropy"}, np.array([1, 0, 2, 0], np.float32), PROBS),
    (
        {"kind": "sparse_categorical_crossentropy", "from_logits": True},
        np.array([2, 1, 1, 0], np.float32),
        LOGITS,
    ),
]


def engine_loss(spec, y, p):
    y, p = np.asarray(y, np.float32), np.asarray(p, np.float32)
    values, grad = _core.loss(json.dumps(spec), y.reshape(-1), p.reshape(-1), p.shape[-1])
    return values, grad.reshape(p.shape)


def reference_mean(spec, y, p):
    args = {k: v for k, v in spec.items() if k != "kind"}
    return loss_per_row(spec["kind"], y.astype(np.float64), p, **args).mean()


@pytest.mark.parametrize(
    "spec,y,p", CASES, ids=lambda c: json.dumps(c) if isinstance(c, dict) else ""
)
def test_values_match_numpy(spec, y, p):
    values, _ = engine_loss(spec, y, p)
    args = {k: v for k, v in spec.items() if k != "kind"}
    expected = loss_per_row(spec["kind"], y.astype(np.float64), p.astype(np.float64), **args)
    np.testing.assert_allclose(values, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "spec,y,p", CASES, ids=lambda c: json.dumps(c) if isinstance(c, dict) else ""
)
def test_gradient_matches_finite_differences(spec, y, p):
    _, grad = engine_loss(spec, y, p)
    numeric = numeric_gradient(lambda q: reference_mean(spec, y, q), p.astype(np.float64))
    np.testing.assert_allclose(grad, numeric, rtol=1e-3, atol=1e-5)


def test_clipping_bounds_crossentropy_and_zeroes_its_gradient():
    values, grad = engine_loss(
        {"kind": "binary_crossentropy"}, np.array([[1.0]]), np.array([[0.0]])
    )
    assert values[0] == pytest.approx(-np.log(1e-7), rel=1e-4)
    assert grad[0, 0] == 0.0


def test_loss_classes_and_functions_follow_keras():
    y, p = ONE_HOT, PROBS
    expected = loss_per_row("categorical_crossentropy", y.astype(np.float64), p.astype(np.float64))
    np.testing.assert_allclose(pynn.losses.categorical_crossentropy(y, p), expected, rtol=1e-5)
    loss = pynn.losses.CategoricalCrossentropy()
    assert loss(y, p) == pytest.approx(expected.mean(), rel=1e-5)
    # y (n,) with y_pred (n, 1) is expanded, never broadcast to (n, n).
    mse = pynn.losses.MeanSquaredError()
    assert mse(np.array([1.0, 2.0]), np.array([[1.5], [2.0]])) == pytest.approx(0.125)


def test_lookup_by_string():
    assert isinstance(pynn.losses.get("mse"), pynn.losses.MeanSquaredError)
    assert isinstance(pynn.losses.get("bce"), pynn.losses.BinaryCrossentropy)
    auto = pynn.losses.get("crossentropy", y_shape=(5,), output_shape=(3,))
    assert isinstance(auto, pynn.losses.SparseCategoricalCrossentropy)
    with pytest.raises(ValueError, match="Valid names:.*categorical_crossentropy"):
        pynn.losses.get("categorial_crossentropy")
