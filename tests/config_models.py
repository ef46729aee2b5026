"""Models whose configs exercise the corners of Keras 3's functional config, written once for
both Keras 3 and pynn (`k` is either module): `golden/keras_model_configs.json` holds the
configs Keras writes for them (and for the other test models) and its predictions."""


def nested_output(k):
    """A functional block called twice, its second call the model's first output: Keras counts
    a functional layer's calls from 1 in `output_layers`."""
    block_in = k.Input((4,), name="block_in")
    block = k.Model(
        block_in, k.layers.Dense(4, activation="tanh", name="inner")(block_in), name="block"
    )
    x = k.Input((4,), name="x")
    once = block(x)
    twice = block(once)
    return k.Model(x, [twice, k.layers.Dense(2, name="head")(once)], name="nested_output")


def dict_inputs(k):
    """Inputs given as a dict, and a constant beside a tensor in a merge."""
    import numpy as np

    a, b = k.Input((3,), name="a"), k.Input((3,), name="b")
    summed = k.layers.Add(name="sum")([a, b, np.array([[1.0, -1.0, 0.5]], "float32")])
    return k.Model({"a": a, "b": b}, k.layers.Dense(2, name="out")(summed), name="dict_inputs")


def training_flags(k):
    """Calls recorded with `training`: a Dropout that always drops nothing at inference, and a
    Sequential called with `training=False`."""
    x = k.Input((5,), name="x")
    h = k.layers.Dropout(0.5, name="drop")(x, training=False)
    inner = k.Sequential([k.Input((5,)), k.layers.Dense(3, name="d")], name="inner")
    return k.Model(x, k.layers.Dense(1, name="out")(inner(h, training=False)), name="flags")


def shared_at_depths(k):
    """Two layers shared at different depths, `a(b(a(b(x))))`: reading must wait for a
    layer's earlier call before making its later one."""
    x = k.Input((3,), name="x")
    a = k.layers.Dense(3, activation="tanh", name="a")
    b = k.layers.Dense(3, activation="relu", name="b")
    return k.Model(x, a(b(a(b(x)))), name="shared_at_depths")


BUILDERS = {
    "nested_output": nested_output,
    "dict_inputs": dict_inputs,
    "training_flags": training_flags,
    "shared_at_depths": shared_at_depths,
}
