"""L1/L2 penalties and Dropout."""

import numpy as np
import pytest

import pynn
from pynn.layers import Dense, Dropout
from pynn.regularizers import L1, L1L2, L2


def test_regularizer_values_match_numpy():
    x = np.array([[1.0, -2.0], [0.5, 0.0]])
    assert L1(0.1)(x) == pytest.approx(0.1 * 3.5)
    assert L2(0.2)(x) == pytest.approx(0.2 * 5.25)
    assert L1L2(0.1, 0.2)(x) == pytest.approx(0.35 + 1.05)
    assert L1L2().get_config() == {"l1": 0.0, "l2": 0.0}  # Keras 3's defaults
    for name, cls in [("l1", L1), ("l2", L2), ("l1_l2", L1L2), ("L1L2", L1L2)]:
        assert isinstance(pynn.regularizers.get(name), cls)
    with pytest.raises(ValueError, match="expected a non-negative float"):
        L2(-0.1)
    with pytest.raises(ValueError, match="expected a non-negative float"):
        L1(float("nan"))
    with pytest.raises(ValueError, match="Valid names: l1, l2, l1_l2"):
        Dense(2, kernel_regularizer="l3")


def test_reported_loss_includes_the_penalty_as_keras_observed():
    # Keras 3: a weight of ones (3,), L2(0.5), mse 9.0 gives loss = val_loss = evaluate = 10.5.
    model = pynn.Sequential(
        [pynn.Input(shape=(3,)), Dense(1, use_bias=False, kernel_regularizer=L2(0.5))]
    )
    model.set_weights([np.ones((3, 1))])
    model.compile(loss="mse", optimizer=pynn.optimizers.SGD(learning_rate=0.0))
    x, y = np.zeros((4, 3)), np.full((4, 1), 3.0)
    history = model.fit(x, y, verbose=0, validation_data=(x, y))
    assert history.history["loss"] == [pytest.approx(10.5)]
    assert history.history["val_loss"] == [pytest.approx(10.5)]
    assert model.evaluate(x, y, verbose=0) == pytest.approx(10.5)


@pytest.mark.parametrize(
    "regularizers",
    [
        {"kernel_regularizer": L2(0.3)},
        {"kernel_regularizer": L1(0.2), "bias_regularizer": L2(0.4)},
        {"kernel_regularizer": L1L2(0.1, 0.2), "activity_regularizer": L2(0.05)},
    ],
)
def test_penalty_gradient_matches_numpy(regularizers):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(5, 3)), rng.normal(size=(5, 2))
    kernel, bias = rng.normal(size=(3, 2)).astype(np.float32), rng.normal(size=2)
    model = pynn.Sequential([pynn.Input(shape=(3,)), Dense(2, **regularizers)])
    model.set_weights([kernel, bias])
    model.compile(loss="mse", optimizer=pynn.optimizers.SGD(learning_rate=0.0))
    loss = model.train_on_batch(x, y)
    grads = model._engine.get_gradients()

    out = x @ kernel + bias
    data_grad = 2 * (out - y) / out.size
    penalty = 0.0
    g_kernel, g_bias = x.T @ data_grad, data_grad.sum(0)
    if "activity_regularizer" in regularizers:
        act = regularizers["activity_regularizer"]
        penalty += act(out) / len(x)
        extra = (act.l1 * np.sign(out) + 2 * act.l2 * out) / len(x)
        g_kernel, g_bias = g_kernel + x.T @ extra, g_bias + extra.sum(0)
    for name, weight, grad in [
        ("kernel_regularizer", kernel, g_kernel),
        ("bias_regularizer", bias, g_bias),
    ]:
        if name in regularizers:
            reg = regularizers[name]
            penalty += reg(weight)
            grad += reg.l1 * np.sign(weight) + 2 * reg.l2 * weight
    assert loss == pytest.approx(((out - y) ** 2).mean() + penalty, rel=1e-5)
    np.testing.assert_allclose(
        grads, np.concatenate([g_kernel.ravel(), g_bias]), rtol=1e-5, atol=1e-6
    )


def test_l2_shrinks_the_kernels():
    x, labels = pynn.datasets.iris.load_data()
    x = (x - x.mean(0)) / x.std(0)
    y = pynn.utils.to_categorical(labels)

    def kernel_norm(regularizer):
        pynn.utils.set_random_seed(0)
        model = pynn.Sequential(
            [
                pynn.Input(shape=(4,)),
                Dense(64, activation="relu", kernel_regularizer=regularizer),
                Dense(3, activation="softmax"),
            ]
        )
        model.compile(loss="categorical_crossentropy", optimizer="adam")
        model.fit(x, y, epochs=30, batch_size=30, verbose=0)
        return np.linalg.norm(model.get_weights()[0])

    assert kernel_norm(L2(0.01)) < 0.95 * kernel_norm(None)


def dropout_probe(rate, seed=5, n=4000):
    """The gradient of a ones kernel behind Dropout: 2·y·mask, so it shows the mask."""
    model = pynn.Sequential(
        [
            pynn.Input(shape=(n,)),
            Dropout(rate, seed=seed),
            Dense(1, use_bias=False, kernel_initializer="ones"),
        ]
    )
    model.compile(loss="mse", optimizer=pynn.optimizers.SGD(learning_rate=0.0))
    model.train_on_batch(np.ones((1, n)), np.zeros((1, 1)))
    return model, model._engine.get_gradients()


def test_dropout_drops_the_rate_and_keeps_the_mean():
    rate, n = 0.3, 4000
    model, grads = dropout_probe(rate, n=n)
    kept = grads != 0
    assert abs((~kept).mean() - rate) < 4 * np.sqrt(rate * (1 - rate) / n)
    # Kept values are scaled by 1/(1-rate), so the output's expectation is unchanged.
    y = grads[kept][0] / 2 / (1 / (1 - rate))
    assert np.allclose(grads[kept], grads[kept][0])
    assert abs(y - n) < 4 * np.sqrt(n * rate / (1 - rate))
    # At inference the layer is the identity.
    np.testing.assert_allclose(model.predict(np.ones((2, n)), verbose=0), [[n], [n]])


def test_dropout_masks_repeat_with_the_seed():
    _, a = dropout_probe(0.5, seed=9)
    _, b = dropout_probe(0.5, seed=9)
    _, c = dropout_probe(0.5, seed=10)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    pynn.utils.set_random_seed(3)
    first = Dropout(0.5)._mask_seed
    pynn.utils.set_random_seed(3)
    assert Dropout(0.5)._mask_seed == first


def test_dropout_is_identity_in_evaluate_and_keras_shaped_in_summary():
    model = pynn.Sequential([pynn.Input(shape=(4,)), Dropout(0.5), Dense(2)])
    x = np.ones((3, 4))
    plain = x @ model.get_weights()[0] + model.get_weights()[1]
    np.testing.assert_allclose(model.predict(x, verbose=0), plain, rtol=1e-6)
    lines = []
    model.summary(print_fn=lines.append, line_length=88)
    assert (
        "│ dropout (Dropout)                    │ (None, 4)                   │               0 │"
        in lines[0]
    )


def test_dropout_noise_shape_shares_masks():
    model = pynn.Sequential(
        [
            pynn.Input(shape=(50, 8)),
            Dropout(0.5, noise_shape=(None, 1, 8)),
            Dense(1, use_bias=False, kernel_initializer="ones"),
        ]
    )
    model.compile(loss="mse", optimizer="sgd")
    # Through the output's gradient: the same features are dropped at every timestep.
    model.train_on_batch(np.ones((1, 50, 8)), np.zeros((1, 50, 1)))
    out = model._engine.get_gradients()
    assert out.shape == (8,)
    assert set(np.round(out / out.max(), 6)) <= {0.0, 1.0}


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5, "0.5"])
def test_dropout_rate_is_checked(rate):
    with pytest.raises(ValueError, match=r"Expected a float value in \[0, 1\)"):
        Dropout(rate)
