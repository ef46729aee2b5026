"""Layers called on arrays (`layer(x)`), `layer.build(input_shape)`, and weights as variables
(`layer.weights`, `trainable_weights`, `.numpy()`, `.assign`): against NumPy and against the
same layers inside a model."""

import numpy as np
import pytest

import pynn
from pynn import layers

RNG = np.random.default_rng(8)


def test_a_dense_layer_on_arrays_computes_what_numpy_computes():
    dense = layers.Dense(3, activation="tanh")
    assert dense.weights == []
    x = RNG.normal(size=(70, 4)).astype(np.float32)
    y = dense(x)
    assert isinstance(y, np.ndarray) and y.dtype == np.float32
    kernel, bias = dense.get_weights()
    assert kernel.shape == (4, 3)
    np.testing.assert_allclose(y, np.tanh(x @ kernel + bias), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(dense(x), y)  # the same weights on every call


def test_layers_on_arrays_equal_the_same_layers_inside_a_trained_model():
    inputs = pynn.Input((8, 8, 2))
    conv = layers.Conv2D(4, 3, padding="same", activation="relu")
    pool = layers.MaxPooling2D(2)
    skip = layers.Conv2D(4, 1)
    add = layers.Add()
    head = layers.Dense(3)
    flat = layers.Flatten()
    merged = add([pool(conv(inputs)), pool(skip(inputs))])
    model = pynn.Model(inputs, head(flat(merged)))
    x = RNG.normal(size=(20, 8, 8, 2)).astype(np.float32)
    model.compile(loss="mse", optimizer="adam")
    model.fit(x, RNG.normal(size=(20, 3)), epochs=2, verbose=0)
    step_by_step = head(flat(add([pool(conv(x)), pool(skip(x))])))
    np.testing.assert_allclose(step_by_step, model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_merge_layers_on_arrays_broadcast_as_keras():
    a = RNG.normal(size=(2, 4, 4, 3)).astype(np.float32)
    b = RNG.normal(size=(2, 1, 1, 3)).astype(np.float32)
    np.testing.assert_allclose(layers.Multiply()([a, b]), a * b, rtol=1e-6)
    np.testing.assert_allclose(layers.Maximum()([a, b]), np.maximum(a, b), rtol=1e-6)
    np.testing.assert_array_equal(layers.Concatenate()([a, a]), np.concatenate([a, a], -1))
    np.testing.assert_allclose(layers.Activation("relu")(a), np.maximum(a, 0))


def test_build_creates_the_weights_as_variables():
    dense = layers.Dense(3)
    dense.build((None, 4))
    assert [v.path for v in dense.weights] == [f"{dense.name}/kernel", f"{dense.name}/bias"]
    assert [v.shape for v in dense.weights] == [(4, 3), (3,)]
    assert len(dense.trainable_weights) == 2 and dense.non_trainable_weights == []
    dense.trainable = False
    assert dense.trainable_weights == [] and len(dense.non_trainable_weights) == 2
    dense.kernel.assign(np.ones((4, 3)))
    np.testing.assert_array_equal(dense.kernel.numpy(), np.ones((4, 3)))
    np.testing.assert_array_equal(dense(np.ones((1, 4))), np.full((1, 3), 4.0))
    copy = layers.Dense(3)
    copy.build((None, 4))
    copy.set_weights(dense.get_weights())
    np.testing.assert_array_equal(np.asarray(copy.kernel), np.ones((4, 3)))
    with pytest.raises(ValueError, match="Weight 0 has shape"):
        dense.kernel.assign(np.ones((3, 3)))


def test_a_variable_reads_and_writes_the_model_that_holds_the_weights():
    dense = layers.Dense(2, use_bias=False)
    model = pynn.Sequential([pynn.Input((3,)), dense])
    kernel = dense.kernel
    assert [v.name for v in model.weights] == ["kernel"]
    kernel.assign(np.eye(3, 2))
    np.testing.assert_array_equal(model.predict(np.eye(3), verbose=0), np.eye(3, 2))
    model.compile(loss="mse", optimizer="sgd")
    model.fit(np.eye(3), np.zeros((3, 2)), verbose=0)
    np.testing.assert_array_equal(kernel.numpy(), model.get_weights()[0])
    assert not np.array_equal(kernel.numpy(), np.eye(3, 2))


def test_a_models_trainable_weights_follow_its_frozen_layers():
    base, head = layers.Dense(4), layers.Dense(1)
    model = pynn.Sequential([pynn.Input((2,)), base, head])
    assert len(model.weights) == 4 and len(model.trainable_weights) == 4
    base.trainable = False
    assert [v.path for v in model.non_trainable_weights] == [
        f"{base.name}/kernel",
        f"{base.name}/bias",
    ]
    assert [v.path for v in model.trainable_weights] == [f"{head.name}/kernel", f"{head.name}/bias"]


def test_dropout_on_arrays_is_the_identity_in_inference_and_drops_in_training():
    x = RNG.normal(size=(400, 50)).astype(np.float32)
    dropout = layers.Dropout(0.25)
    np.testing.assert_array_equal(dropout(x), x)
    np.testing.assert_array_equal(dropout(x, training=False), x)
    first, second = dropout(x, training=True), dropout(x, training=True)
    for dropped in (first, second):
        kept = dropped != 0
        np.testing.assert_allclose(dropped[kept], x[kept] / 0.75, rtol=1e-6)
        assert abs(1 - kept.mean() - 0.25) < 0.01
    assert (first != second).mean() > 0.2  # each call draws its own mask
    pynn.utils.set_random_seed(4)
    again = [layers.Dropout(0.25)(x, training=True) for _ in range(2)]
    pynn.utils.set_random_seed(4)
    np.testing.assert_array_equal(layers.Dropout(0.25)(x, training=True), again[0])
    shared = layers.Dropout(0.5, noise_shape=(None, 1))(x, training=True)
    assert all(len(set(row != 0)) == 1 for row in shared)  # one draw per sample


def test_arrays_a_layer_cannot_take_raise_naming_them():
    dense = layers.Dense(2)
    with pytest.raises(ValueError, match=r"needs a batch axis first, e.g. shape \(1, 4\)"):
        dense(np.ones(4))
    dense(np.ones((2, 4)))
    with pytest.raises(ValueError, match="is incompatible with the layer"):
        dense(np.ones((2, 5)))
    with pytest.raises(ValueError, match=r"`inputs\[0\]` and `inputs\[1\]` must hold the same"):
        layers.Add()([np.ones((2, 3)), np.ones((3, 3))])
    with pytest.raises(ValueError, match="NaN"):
        layers.Dense(2)(np.full((1, 2), np.nan))
    with pytest.raises(ValueError, match="input_shape"):
        layers.Dense(2).build(4)


@pytest.mark.parametrize(
    "axes,a,b,subscripts",
    [
        (1, (3, 8), (3, 8), "bi,bi->b"),
        ((1, 2), (2, 5, 2), (2, 2, 5), "bki,bjk->bij"),
        (-1, (2, 3, 4), (2, 5, 4), "bik,bjk->bij"),
        ((2, 1), (2, 3, 4), (2, 4), "bik,bk->bi"),
    ],
)
def test_dot_on_arrays_is_keras_batch_dot(axes, a, b, subscripts):
    x, y = RNG.normal(size=a).astype(np.float32), RNG.normal(size=b).astype(np.float32)
    expected = np.einsum(subscripts, x, y)
    got = layers.Dot(axes=axes)([x, y])
    np.testing.assert_allclose(got.reshape(expected.shape), expected, rtol=1e-5, atol=1e-6)
    if expected.ndim == 1:
        assert got.shape == (a[0], 1)


def test_a_normalized_dot_is_the_cosine_similarity():
    x, y = RNG.normal(size=(4, 6)), RNG.normal(size=(4, 6))
    cosine = (x * y).sum(1) / np.linalg.norm(x, axis=1) / np.linalg.norm(y, axis=1)
    got = layers.dot([x.astype(np.float32), y.astype(np.float32)], axes=1, normalize=True)
    np.testing.assert_allclose(got[:, 0], cosine, rtol=1e-5)
    with pytest.raises(ValueError, match=r"axis values 6 \(at axis 1\) != 5 \(at axis 1\)"):
        layers.Dot(axes=1)([pynn.Input((6,)), pynn.Input((5,))])
    with pytest.raises(ValueError, match="Cannot perform batch_dot over axis 0"):
        layers.Dot(axes=0)([pynn.Input((6,)), pynn.Input((6,))])
    with pytest.raises(ValueError, match="should contain two elements"):
        layers.Dot(axes=(1, 2, 3))
