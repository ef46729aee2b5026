"""`model.compute_gradients` against finite differences of a NumPy reference loss, and the
`GradientNorms` callback on the textbook's "curse of depth" (section 4.3)."""

import numpy as np
import pytest

import pynn
from pynn.callbacks import GradientNorms
from pynn.layers import Conv2D, Dense, Dropout, Flatten, MaxPooling2D
from pynn.regularizers import L2

RNG = np.random.default_rng(3)
X = RNG.normal(size=(12, 3)).astype(np.float32)
Y = pynn.utils.to_categorical(RNG.integers(0, 2, size=12), 2)


def small_model():
    pynn.utils.set_random_seed(1)
    model = pynn.Sequential(
        [
            pynn.Input((3,)),
            Dense(4, activation="tanh", kernel_regularizer=L2(0.05)),
            Dense(2, activation="softmax"),
        ]
    )
    model.compile(loss="categorical_crossentropy", optimizer="sgd")
    return model


def reference_loss(weights, x=X, y=Y):
    """The model's loss in float64: mean cross-entropy plus 0.05 * sum(kernel_1 ** 2)."""
    k1, b1, k2, b2 = (np.asarray(w, np.float64) for w in weights)
    logits = np.tanh(x @ k1 + b1) @ k2 + b2
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    return -np.mean(np.sum(y * np.log(p), axis=1)) + 0.05 * np.sum(k1**2)


def finite_differences(weights, eps=1e-6):
    grads = []
    for i, w in enumerate(weights):
        g = np.zeros(w.shape)
        for index in np.ndindex(w.shape):
            shifted = [np.asarray(v, np.float64).copy() for v in weights]
            shifted[i][index] += eps
            up = reference_loss(shifted)
            shifted[i][index] -= 2 * eps
            g[index] = (up - reference_loss(shifted)) / (2 * eps)
        grads.append(g)
    return grads


def test_gradients_match_finite_differences():
    model = small_model()
    weights = model.get_weights()
    # The reference is the model's loss.
    assert model.test_on_batch(X, Y) == pytest.approx(reference_loss(weights), rel=1e-5)
    gradients = model.compute_gradients(X, Y)
    assert [g.shape for g in gradients] == [w.shape for w in weights]
    for got, want in zip(gradients, finite_differences(weights)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    # Nothing moved.
    for before, after in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(before, after)


def test_gradients_are_what_a_training_step_applies():
    """SGD with learning rate 1 moves each weight by exactly its gradient; with Dropout, the
    gradients use the masks of the step that follows."""
    pynn.utils.set_random_seed(2)
    model = pynn.Sequential(
        [
            pynn.Input((6, 6, 1)),
            Conv2D(3, 3, activation="relu"),
            MaxPooling2D(2),
            Flatten(),
            Dropout(0.5),
            Dense(2, activation="softmax"),
        ]
    )
    model.compile(loss="sparse_categorical_crossentropy", optimizer=pynn.optimizers.SGD(1.0))
    x = RNG.normal(size=(5, 6, 6, 1)).astype(np.float32)
    y = np.array([0, 1, 1, 0, 1])
    model.train_on_batch(x, y)  # a step first, so the next one is not the first
    before = model.get_weights()
    gradients = model.compute_gradients(x, y)
    model.train_on_batch(x, y)
    for w0, w1, g in zip(before, model.get_weights(), gradients):
        np.testing.assert_allclose(w0 - w1, g, rtol=1e-5, atol=1e-7)
    assert any(np.any(g != 0) for g in gradients)


def test_compute_gradients_needs_compile_and_matching_data():
    model = pynn.Sequential([pynn.Input((3,)), Dense(2)])
    with pytest.raises(ValueError, match="compile"):
        model.compute_gradients(X, Y)
    model.compile(loss="mse", optimizer="sgd")
    with pytest.raises(ValueError, match="x"):
        model.compute_gradients(np.ones((4, 5)), np.ones((4, 2)))


def deep_net(activation: str):
    pynn.utils.set_random_seed(0)
    layers = [Dense(32, activation=activation) for _ in range(10)]
    model = pynn.Sequential([pynn.Input((8,)), *layers, Dense(2, activation="softmax")])
    model.compile(loss="categorical_crossentropy", optimizer="sgd")
    return model


def test_gradients_vanish_in_a_deep_sigmoid_network():
    x = RNG.normal(size=(256, 8)).astype(np.float32)
    y = pynn.utils.to_categorical((x[:, 0] > 0).astype(int), 2)
    first_layer = {}
    for activation in ("sigmoid", "relu"):
        norms = GradientNorms(x, y)
        model = deep_net(activation)
        model.fit(x, y, epochs=2, batch_size=32, verbose=0, callbacks=[norms])
        names = [layer.name for layer in model.layers]
        assert list(norms.norms) == names
        assert all(len(values) == 2 for values in norms.norms.values())
        # Each norm is that of the layer's gradients computed directly.
        direct = model.compute_gradients(x, y)
        last = np.sqrt(sum(np.sum(g.astype(np.float64) ** 2) for g in direct[-2:]))
        assert norms.norms[names[-1]][-1] == pytest.approx(last, rel=1e-6)
        first_layer[activation] = norms.norms[names[0]][0]
    assert first_layer["sigmoid"] < 1e-3 * first_layer["relu"]
