"""Functional models written once for both Keras and pynn: each builder takes the library
(`keras` or `pynn`) and returns an uncompiled model. `tests/golden/make_keras_functional_golden.py`
runs them in Keras 3; `tests/test_functional.py` runs the same code in pynn and compares."""


def residual_cnn(k):
    inputs = k.Input(shape=(8, 8, 2), name="image")
    stem = k.layers.Conv2D(4, 3, padding="same", activation="relu", name="stem")(inputs)
    x = k.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv_a")(stem)
    x = k.layers.Conv2D(4, 3, padding="same", name="conv_b")(x)
    x = k.layers.Add(name="residual")([stem, x])
    x = k.layers.Activation("relu", name="relu")(x)
    x = k.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = k.layers.Dense(3, activation="softmax", name="classes")(x)
    return k.Model(inputs, outputs, name="residual_cnn")


def merges(k):
    """Every element-wise merge and a concatenation, with broadcasting."""
    inputs = k.Input(shape=(6,), name="features")
    a = k.layers.Dense(4, activation="tanh", name="a")(inputs)
    b = k.layers.Dense(4, activation="tanh", name="b")(inputs)
    row = k.layers.Reshape((1, 4), name="row")(a)
    grid = k.layers.Reshape((2, 2), name="grid")(b)
    product = k.layers.Multiply(name="product")([a, b])
    top = k.layers.Maximum(name="top")([a, b, product])
    low = k.layers.Minimum(name="low")([a, b])
    difference = k.layers.Subtract(name="difference")([top, low])
    mean = k.layers.Average(name="mean")([difference, a])
    broadcast = k.layers.Add(name="broadcast")(
        [
            k.layers.Reshape((2, 2), name="square")(mean),
            k.layers.Reshape((1, 2), name="half")(k.layers.Dense(2, name="c")(inputs)),
        ]
    )
    joined = k.layers.Concatenate(name="joined")(
        [
            k.layers.Flatten(name="flat")(broadcast),
            mean,
            k.layers.Flatten(name="r")(row),
            k.layers.Flatten(name="g")(grid),
        ]
    )
    outputs = k.layers.Dense(2, name="out")(joined)
    return k.Model(inputs, outputs, name="merges")


def shared_layer(k):
    """One Dense called twice in sequence, both calls' outputs joined."""
    inputs = k.Input(shape=(4,), name="x")
    shared = k.layers.Dense(4, activation="tanh", name="shared")
    first = shared(inputs)
    second = shared(first)
    joined = k.layers.Concatenate(name="both")([first, second])
    outputs = k.layers.Dense(2, name="out")(joined)
    return k.Model(inputs, outputs, name="shared_layer")


def nested(k):
    """A Sequential encoder inside a functional model, and a functional block inside it."""
    encoder = k.Sequential(
        [
            k.Input(shape=(5,)),
            k.layers.Dense(4, activation="relu", name="e1"),
            k.layers.Dense(3, activation="tanh", name="e2"),
        ],
        name="encoder",
    )
    block_in = k.Input(shape=(3,), name="block_in")
    block_out = k.layers.Add(name="skip")(
        [block_in, k.layers.Dense(3, activation="tanh", name="inner")(block_in)]
    )
    block = k.Model(block_in, block_out, name="block")
    inputs = k.Input(shape=(5,), name="x")
    outputs = k.layers.Dense(2, activation="softmax", name="head")(block(encoder(inputs)))
    return k.Model(inputs, outputs, name="nested")


BUILDERS = {
    "residual_cnn": residual_cnn,
    "merges": merges,
    "shared_layer": shared_layer,
    "nested": nested,
}
