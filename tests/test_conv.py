"""Conv1D/Conv2D, pooling, Flatten and Reshape against loop-based NumPy references and finite
differences."""

import itertools
import json

import numpy as np
import pytest
from reference import numeric_gradient

import pynn
from pynn.layers import (
    AveragePooling1D,
    AveragePooling2D,
    Conv1D,
    Conv2D,
    Dense,
    Flatten,
    GlobalAveragePooling1D,
    GlobalAveragePooling2D,
    GlobalMaxPooling1D,
    GlobalMaxPooling2D,
    MaxPooling1D,
    MaxPooling2D,
    Reshape,
)


def same_padding(n, k, s, d):
    """Keras/TensorFlow "same": out = ceil(n/s), the odd pixel at the end."""
    out = -(-n // s)
    total = max(0, (out - 1) * s + (k - 1) * d + 1 - n)
    return total // 2, total - total // 2


def conv2d_reference(x, kernel, bias, strides, padding, dilation):
    """A direct loop over output pixels and taps; x (n, h, w, c), kernel (kh, kw, c, f)."""
    n, h, w, c = x.shape
    kh, kw, _, f = kernel.shape
    (sh, sw), (dh, dw) = strides, dilation
    if padding == "same":
        (top, bottom), (left, right) = same_padding(h, kh, sh, dh), same_padding(w, kw, sw, dw)
        x = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    elif padding == "causal":
        x = np.pad(x, ((0, 0), (0, 0), ((kw - 1) * dw, 0), (0, 0)))
    _, hp, wp, _ = x.shape
    oh, ow = (hp - (kh - 1) * dh - 1) // sh + 1, (wp - (kw - 1) * dw - 1) // sw + 1
    out = np.zeros((n, oh, ow, f))
    for i in range(oh):
        for j in range(ow):
            for a in range(kh):
                for b in range(kw):
                    out[:, i, j] += x[:, i * sh + a * dh, j * sw + b * dw] @ kernel[a, b]
    return out + bias


def conv_model(layer, input_shape):
    model = pynn.Sequential([pynn.Input(shape=input_shape), layer])
    model.compile(loss="mse", optimizer=pynn.optimizers.SGD(learning_rate=0.0))
    return model


CASES_2D = [
    (k, s, p, d, batch, c)
    for (k, s, d), p, (batch, c) in itertools.product(
        [(1, 1, 1), (2, 1, 1), (3, 2, 1), (4, 3, 1), (5, 1, 2), (3, 1, 2), (2, 2, 1)],
        ["valid", "same"],
        [(1, 1), (7, 3), (2, 8)],
    )
]


@pytest.mark.parametrize("k,s,padding,d,batch,c", CASES_2D)
def test_conv2d_forward_matches_numpy(k, s, padding, d, batch, c):
    rng = np.random.default_rng(k * 100 + s * 10 + d)
    kernel_size = (k, max(1, k - 1))
    layer = Conv2D(
        4,
        kernel_size,
        strides=(s, max(1, s - 1)),
        padding=padding,
        dilation_rate=d,
        bias_initializer="random_normal",
    )
    model = conv_model(layer, (9, 8, c))
    x = rng.normal(size=(batch, 9, 8, c)).astype(np.float32)
    kernel, bias = model.get_weights()
    assert kernel.shape == kernel_size + (c, 4)
    expected = conv2d_reference(x, kernel, bias, layer.strides, padding, layer.dilation_rate)
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "k,s,padding,d",
    [
        (1, 1, "valid", 1),
        (2, 1, "same", 1),
        (3, 2, "same", 1),
        (5, 3, "valid", 1),
        (3, 1, "causal", 2),
        (4, 1, "same", 2),
        (2, 1, "causal", 1),
    ],
)
@pytest.mark.parametrize("batch,c", [(1, 1), (7, 3), (2, 8)])
def test_conv1d_forward_matches_numpy(k, s, padding, d, batch, c):
    rng = np.random.default_rng(k + 10 * s)
    layer = Conv1D(
        5, k, strides=s, padding=padding, dilation_rate=d, bias_initializer="random_normal"
    )
    model = conv_model(layer, (11, c))
    x = rng.normal(size=(batch, 11, c)).astype(np.float32)
    kernel, bias = model.get_weights()
    assert kernel.shape == (k, c, 5)
    expected = conv2d_reference(x[:, None], kernel[None], bias, (1, s), padding, (1, d))[:, 0]
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-5)


def test_keras_observed_conv1d_same_padding():
    # Keras 3: Conv1D(k=2, s=1, "same"), kernel ones, on [1..5] gives [3, 5, 7, 9, 5];
    # k=3, s=2, n=6 gives [6, 12, 11].
    def run(k, s, x):
        model = conv_model(Conv1D(1, k, strides=s, padding="same", use_bias=False), (len(x), 1))
        model.set_weights([np.ones((k, 1, 1))])
        return model.predict(np.array(x, float).reshape(1, -1, 1), verbose=0).ravel()

    np.testing.assert_array_equal(run(2, 1, [1, 2, 3, 4, 5]), [3, 5, 7, 9, 5])
    np.testing.assert_array_equal(run(3, 2, [1, 2, 3, 4, 5, 6]), [6, 12, 11])


def parameter_gradients_match(layers, input_shape, activation_of):
    """Trains one step at learning rate 0 and compares the engine's gradient of every weight
    with finite differences of `forward` (a NumPy re-implementation of `layers`). A leading 1x1
    convolution makes the gradient of its kernel depend on every later layer's input gradient,
    so those are checked too."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2,) + input_shape).astype(np.float32)
    model = pynn.Sequential([pynn.Input(shape=input_shape)] + layers + [Flatten(), Dense(1)])
    model.compile(loss="mse", optimizer=pynn.optimizers.SGD(learning_rate=0.0))
    model.set_weights([w + rng.normal(scale=0.1, size=w.shape) for w in model.get_weights()])
    y = rng.normal(size=(2, 1))
    weights = model.get_weights()
    model.train_on_batch(x, y)
    return x, y, weights, model._engine.get_gradients()


def check_against(forward, x, y, weights, grads):
    def loss(flat):
        parts = np.split(flat, np.cumsum([w.size for w in weights])[:-1])
        params = [p.reshape(w.shape) for p, w in zip(parts, weights)]
        out = forward(x.astype(np.float64), params)
        return ((out - y) ** 2).mean()

    flat = np.concatenate([w.ravel() for w in weights]).astype(np.float64)
    np.testing.assert_allclose(grads, numeric_gradient(loss, flat), rtol=2e-3, atol=2e-5)


@pytest.mark.parametrize(
    "conv_args",
    [
        dict(filters=3, kernel_size=3, padding="same", activation="tanh"),
        dict(filters=2, kernel_size=(2, 3), strides=2, padding="valid", activation="relu"),
        dict(filters=2, kernel_size=2, dilation_rate=2, padding="same", activation="linear"),
    ],
)
def test_conv2d_gradients_match_finite_differences(conv_args):
    from reference import ACTIVATIONS

    first = Conv2D(2, 1, use_bias=False)
    conv = Conv2D(**conv_args)
    x, y, weights, grads = parameter_gradients_match([first, conv], (5, 6, 2), None)

    def forward(x, params):
        w1, kernel, bias, dense, dense_bias = params
        h = conv2d_reference(x, w1, 0.0, (1, 1), "valid", (1, 1))
        z = conv2d_reference(h, kernel, bias, conv.strides, conv.padding, conv.dilation_rate)
        a = ACTIVATIONS[conv_args["activation"]](z)
        return a.reshape(len(x), -1) @ dense + dense_bias

    check_against(forward, x, y, weights, grads)


def test_conv1d_gradients_match_finite_differences():
    first = Conv1D(2, 1, use_bias=False)
    conv = Conv1D(3, 3, padding="causal", dilation_rate=2, activation="linear")
    x, y, weights, grads = parameter_gradients_match([first, conv], (7, 2), None)

    def forward(x, params):
        w1, kernel, bias, dense, dense_bias = params
        h = conv2d_reference(x[:, None], w1[None], 0.0, (1, 1), "valid", (1, 1))
        z = conv2d_reference(h, kernel[None], bias, (1, 1), "causal", (1, 2))
        return z.reshape(len(x), -1) @ dense + dense_bias

    check_against(forward, x, y, weights, grads)


def pool2d_reference(x, kind, pool, strides, padding):
    n, h, w, c = x.shape
    if padding == "same":
        (top, bottom), (left, right) = (
            same_padding(h, pool[0], strides[0], 1),
            same_padding(w, pool[1], strides[1], 1),
        )
        x = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=np.nan)
    _, hp, wp, _ = x.shape
    oh, ow = (hp - pool[0]) // strides[0] + 1, (wp - pool[1]) // strides[1] + 1
    out = np.zeros((n, oh, ow, c))
    for i in range(oh):
        for j in range(ow):
            window = x[
                :,
                i * strides[0] : i * strides[0] + pool[0],
                j * strides[1] : j * strides[1] + pool[1],
            ]
            out[:, i, j] = (np.nanmax if kind == "max" else np.nanmean)(window, axis=(1, 2))
    return out


@pytest.mark.parametrize("cls,kind", [(MaxPooling2D, "max"), (AveragePooling2D, "average")])
@pytest.mark.parametrize(
    "pool,strides,padding",
    [
        ((2, 2), None, "valid"),
        ((3, 2), (1, 2), "same"),
        ((2, 3), (3, 1), "valid"),
        ((3, 3), (2, 2), "same"),
    ],
)
def test_pooling2d_forward_matches_numpy(cls, kind, pool, strides, padding):
    x = np.random.default_rng(1).normal(size=(3, 7, 8, 2)).astype(np.float32)
    model = conv_model(cls(pool, strides=strides, padding=padding), (7, 8, 2))
    expected = pool2d_reference(x, kind, pool, strides or pool, padding)
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("cls,kind", [(MaxPooling1D, "max"), (AveragePooling1D, "average")])
def test_pooling1d_forward_matches_numpy(cls, kind):
    x = np.random.default_rng(2).normal(size=(2, 9, 3)).astype(np.float32)
    model = conv_model(cls(3, strides=2, padding="same"), (9, 3))
    expected = pool2d_reference(x[:, None], kind, (1, 3), (1, 2), "same")[:, 0]
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "pool_layer,kind",
    [
        (MaxPooling2D(2, strides=1, padding="same"), "max"),
        (AveragePooling2D(3, strides=2, padding="same"), "average"),
    ],
)
def test_pooling_gradients_match_finite_differences(pool_layer, kind):
    first = Conv2D(2, 1, use_bias=False)
    x, y, weights, grads = parameter_gradients_match([first, pool_layer], (5, 4, 2), None)

    def forward(x, params):
        w1, dense, dense_bias = params
        h = conv2d_reference(x, w1, 0.0, (1, 1), "valid", (1, 1))
        p = pool2d_reference(h, kind, pool_layer.pool_size, pool_layer.strides, "same")
        return p.reshape(len(x), -1) @ dense + dense_bias

    check_against(forward, x, y, weights, grads)


def test_max_pooling_ties_send_the_gradient_to_the_first_maximum():
    """As TensorFlow does (checked with Keras 3): in a window of equal values the whole
    gradient goes to the first one in row-major order, the top-left."""
    model = pynn.Sequential(
        [
            pynn.Input(shape=(2, 2, 1)),
            Conv2D(1, 2, padding="same", use_bias=False),
            MaxPooling2D(2),
            Flatten(),
        ]
    )
    model.compile(loss="mse", optimizer=pynn.optimizers.SGD(learning_rate=0.0))
    # A kernel with 1 at its top-left tap copies the input: four equal values, one window.
    model.set_weights([np.array([1.0, 0, 0, 0]).reshape(2, 2, 1, 1)])
    model.train_on_batch(np.ones((1, 2, 2, 1)), np.zeros((1, 1)))
    # ∂loss/∂max = 2. Tap t's gradient sums x[p + t] · ∂loss/∂p over pixels p; "same" pads
    # after the input, so only p = (0, 0) sees four real inputs and gives [2, 2, 2, 2]
    # ((1, 1) would give [2, 0, 0, 0], (0, 1) [2, 0, 2, 0]).
    np.testing.assert_allclose(model._engine.get_gradients(), [2.0, 2.0, 2.0, 2.0])


@pytest.mark.parametrize(
    "cls,reduce",
    [
        (GlobalMaxPooling2D, np.max),
        (GlobalAveragePooling2D, np.mean),
    ],
)
def test_global_pooling_2d(cls, reduce):
    x = np.random.default_rng(3).normal(size=(4, 3, 5, 2))
    model = conv_model(cls(), (3, 5, 2))
    # float32 sums of 15 values, in the engine's order, against float64.
    expected = reduce(x, axis=(1, 2))
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-7)
    assert conv_model(cls(keepdims=True), (3, 5, 2)).output_shape == (None, 1, 1, 2)


@pytest.mark.parametrize(
    "cls,reduce",
    [
        (GlobalMaxPooling1D, np.max),
        (GlobalAveragePooling1D, np.mean),
    ],
)
def test_global_pooling_1d(cls, reduce):
    x = np.random.default_rng(3).normal(size=(4, 6, 2))
    model = conv_model(cls(), (6, 2))
    np.testing.assert_allclose(model.predict(x, verbose=0), reduce(x, axis=1), rtol=1e-6)


def test_flatten_and_reshape_keep_channels_last_order():
    x = np.arange(24.0).reshape(1, 2, 3, 4)
    np.testing.assert_array_equal(
        conv_model(Flatten(), (2, 3, 4)).predict(x, verbose=0), x.reshape(1, -1)
    )
    np.testing.assert_array_equal(
        conv_model(Reshape((6, -1)), (2, 3, 4)).predict(x, verbose=0), x.reshape(1, 6, 4)
    )


@pytest.mark.parametrize(
    "layers,match",
    [
        (lambda: [Conv2D(2, 7)], r"Layer 'conv2d': .*window spanning 7.*input shape \[5, 5, 1\]"),
        (lambda: [Conv2D(2, 3), MaxPooling2D(4)], "Layer 'max_pooling2d': .*size 3"),
        (lambda: [Conv1D(2, 3)], r"Layer 'conv1d': .*2 axes"),
        (lambda: [Reshape((7, -1))], "Layer 'reshape'"),
    ],
)
def test_layers_that_do_not_fit_their_input_name_themselves(layers, match):
    with pytest.raises(ValueError, match=match):
        pynn.Sequential([pynn.Input(shape=(5, 5, 1))] + layers())


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: Conv2D(2, 0), "kernel_size"),
        (lambda: Conv2D(2, 3, strides=-1), "strides"),
        (lambda: Conv2D(0, 3), "filters"),
        (lambda: Conv2D(2, 3, strides=2, dilation_rate=2), "dilation_rate > 1"),
        (lambda: Conv2D(2, 3, padding="causal"), "padding"),
        (lambda: Conv2D(2, 3, data_format="channels_first"), "channels_last"),
        (lambda: MaxPooling2D(0), "pool_size"),
        (lambda: AveragePooling2D(), "pool_size"),
    ],
)
def test_bad_layer_arguments(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_lenet_weights_in_keras_layout():
    model = pynn.Sequential([pynn.Input(shape=(8, 8, 1)), Conv2D(2, 3), Flatten(), Dense(3)])
    assert [w.shape for w in model.get_weights()] == [(3, 3, 1, 2), (2,), (72, 3), (3,)]
    spec = json.loads(json.dumps(model.layers[0].spec()))
    assert spec["kernel_size"] == [3, 3]


CONV_GOLDEN = json.loads(
    (__import__("pathlib").Path(__file__).parent / "golden" / "keras_conv_fit.json").read_text()
)


@pytest.mark.parametrize("name", sorted(CONV_GOLDEN["cases"]))
def test_conv_fit_matches_keras(name):
    """Keras 3 (TensorFlow backend) trained the same networks from the same weights; see
    golden/make_keras_conv_golden.py."""
    golden = CONV_GOLDEN["cases"][name]
    case = golden["case"]
    layers = [
        getattr(pynn.layers, cls)(
            *[tuple(a) if isinstance(a, list) else a for a in args],
            **{k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()},
        )
        for cls, args, kwargs in case["layers"]
    ]
    model = pynn.Sequential([pynn.Input(shape=tuple(case["input_shape"]))] + layers)
    model.set_weights([np.array(w, np.float32) for w in golden["initial_weights"]])
    model.compile(
        loss=case["loss"], optimizer=pynn.optimizers.Adam(learning_rate=0.01), metrics=["accuracy"]
    )
    x, y = np.array(golden["x"]), np.array(golden["y"])
    history = model.fit(
        x,
        y,
        batch_size=CONV_GOLDEN["batch_size"],
        epochs=CONV_GOLDEN["epochs"],
        shuffle=False,
        verbose=0,
    )
    for key, values in golden["history"].items():
        np.testing.assert_allclose(history.history[key], values, rtol=1e-5, atol=1e-6)
    for ours, theirs in zip(model.get_weights(), golden["final_weights"]):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(model.predict(x, verbose=0), golden["predict"], rtol=1e-4, atol=1e-5)


def test_single_channel_conv_gradients_match_finite_differences():
    """One input channel, stride 1, valid padding, as LeNet's first layer (the engine's direct
    kernel): the kernel and bias gradients against finite differences."""
    from reference import ACTIVATIONS

    conv = Conv2D(3, (3, 2), activation="tanh")
    x, y, weights, grads = parameter_gradients_match([conv], (5, 6, 1), None)

    def forward(x, params):
        kernel, bias, dense, dense_bias = params
        z = conv2d_reference(x, kernel, bias, (1, 1), "valid", (1, 1))
        return ACTIVATIONS["tanh"](z).reshape(len(x), -1) @ dense + dense_bias

    check_against(forward, x, y, weights, grads)


@pytest.mark.parametrize(
    "conv_args",
    [
        dict(filters=9, kernel_size=3, padding="same", dilation_rate=2, activation="tanh"),
        dict(filters=2, kernel_size=(2, 4), padding="same", activation="linear"),
    ],
)
def test_single_channel_conv_inside_a_network_passes_input_gradients(conv_args):
    """The direct kernel behind a 1x1 convolution down to one channel: its input gradient
    reaches the first kernel; "same" padding, dilation and more than 8 filters included."""
    from reference import ACTIVATIONS

    first = Conv2D(1, 1, use_bias=False)
    conv = Conv2D(**conv_args)
    x, y, weights, grads = parameter_gradients_match([first, conv], (5, 7, 2), None)

    def forward(x, params):
        w1, kernel, bias, dense, dense_bias = params
        h = conv2d_reference(x, w1, 0.0, (1, 1), "valid", (1, 1))
        z = conv2d_reference(h, kernel, bias, (1, 1), "same", conv.dilation_rate)
        a = ACTIVATIONS[conv_args["activation"]](z)
        return a.reshape(len(x), -1) @ dense + dense_bias

    check_against(forward, x, y, weights, grads)


def test_wide_convolution_predicts_with_parallel_activation_tiles():
    """128 filters make each 512-row tile's activation large enough to run in parallel inside
    the convolution's own parallel loop: predictions still match NumPy, call after call."""
    rng = np.random.default_rng(5)
    model = conv_model(Conv2D(128, 3, padding="same", activation="relu"), (8, 8, 2))
    x = rng.normal(size=(64, 8, 8, 2)).astype(np.float32)
    kernel, bias = model.get_weights()
    expected = np.maximum(conv2d_reference(x, kernel, bias, (1, 1), "same", (1, 1)), 0.0)
    for _ in range(3):
        np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "conv_args",
    [
        # ∂x by the flipped convolution ("same", whole vectors of channels).
        dict(filters=8, kernel_size=3, padding="same", activation="tanh"),
        # ∂x by ∂cols and col2im ("valid" with a large kernel).
        dict(filters=16, kernel_size=(4, 3), padding="valid", activation="relu"),
    ],
)
def test_implicit_gemm_convolutions_train_with_exact_gradients(conv_args):
    """Stride 1, several channels, filters in whole vectors of 8: forward and kernel gradient
    by the engine's implicit GEMM (no im2col), the input gradient reaching the first layer."""
    from reference import ACTIVATIONS

    first = Conv2D(8, 1, use_bias=False)
    conv = Conv2D(**conv_args)
    x, y, weights, grads = parameter_gradients_match([first, conv], (6, 5, 2), None)

    def forward(x, params):
        w1, kernel, bias, dense, dense_bias = params
        h = conv2d_reference(x, w1, 0.0, (1, 1), "valid", (1, 1))
        z = conv2d_reference(h, kernel, bias, (1, 1), conv.padding, (1, 1))
        a = ACTIVATIONS[conv_args["activation"]](z)
        return a.reshape(len(x), -1) @ dense + dense_bias

    check_against(forward, x, y, weights, grads)


@pytest.mark.parametrize("activation", ["relu", "tanh", "softmax"])
@pytest.mark.parametrize("shape, kernel_size", [((32, 32, 1), 5), ((14, 14, 6), 5), ((9, 7, 3), 3)])
def test_valid_convolution_read_in_place_predicts_and_trains_as_the_reference(
    activation, shape, kernel_size
):
    """ "Valid" layers whose padded image would be a copy of the image read it in place (LeNet's
    two among them): inference and the training forward against the reference."""
    from reference import ACTIVATIONS

    rng = np.random.default_rng(4)
    conv = Conv2D(8, kernel_size, activation=activation)
    model = pynn.Sequential([pynn.Input(shape=shape), conv])
    model.compile(loss="mse", optimizer=pynn.optimizers.SGD(learning_rate=0.0))
    x = rng.normal(size=(3, *shape)).astype(np.float32)
    kernel, bias = model.get_weights()
    expected = ACTIVATIONS[activation](conv2d_reference(x, kernel, bias, (1, 1), "valid", (1, 1)))
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-5)
    # The loss of a training step reads the training forward's outputs.
    loss = model.train_on_batch(x, np.zeros_like(expected))
    np.testing.assert_allclose(loss, np.mean(expected**2), rtol=1e-5)
