"""Models of several inputs or outputs, written once for both Keras 3 and pynn (`k` is either
module), with how each is compiled and trained: the golden file
`golden/keras_multi_io.json` holds what Keras computes for them."""


def two_in_two_out(k):
    """Two inputs, a merged trunk, a classifier and a regressor."""
    a, b = k.Input((6,), name="a"), k.Input((4,), name="b")
    ha = k.layers.Dense(8, activation="relu", name="da")(a)
    hb = k.layers.Dense(8, activation="tanh", name="db")(b)
    h = k.layers.Dense(8, activation="relu", name="trunk")(
        k.layers.Concatenate(name="cat")([ha, hb])
    )
    cls = k.layers.Dense(3, activation="softmax", name="cls")(h)
    reg = k.layers.Dense(2, name="reg")(k.layers.Add(name="skip")([h, ha]))
    return k.Model([a, b], [cls, reg], name="two_in_two_out")


def siamese(k):
    """One Dense shared by two inputs; the squared difference of the embeddings decides."""
    left, right = k.Input((5,), name="left"), k.Input((5,), name="right")
    embed = k.layers.Dense(4, activation="tanh", name="embed")
    diff = k.layers.Subtract(name="diff")([embed(left), embed(right)])
    square = k.layers.Multiply(name="square")([diff, diff])
    same = k.layers.Dense(1, activation="sigmoid", name="same")(square)
    return k.Model([left, right], same, name="siamese")


def dict_outputs(k):
    """One input, two regression outputs given as a dict (their keys name them)."""
    x = k.Input((5,), name="features")
    h = k.layers.Dense(6, activation="relu", name="hidden")(x)
    return k.Model(
        x,
        {"price": k.layers.Dense(1, name="p")(h), "volume": k.layers.Dense(2, name="v")(h)},
        name="dict_outputs",
    )


def cosine(k):
    """Two inputs embedded by one Dense, compared by their cosine (`Dot(normalize=True)`)."""
    left, right = k.Input((6,), name="left"), k.Input((6,), name="right")
    embed = k.layers.Dense(4, activation="tanh", name="embed")
    similarity = k.layers.Dot(axes=1, normalize=True, name="cosine")([embed(left), embed(right)])
    return k.Model([left, right], k.layers.Dense(1, name="score")(similarity), name="cosine")


def attention_scores(k):
    """Queries against keys, `Dot(axes=2)` of `(3, 4)` and `(5, 4)` sequences, then a Dense."""
    queries, keys = k.Input((3, 4), name="queries"), k.Input((5, 4), name="keys")
    scores = k.layers.Dot(axes=2, name="scores")([k.layers.Dense(4, name="q")(queries), keys])
    return k.Model(
        [queries, keys], k.layers.Dense(2, name="out")(k.layers.Flatten()(scores)), name="attn"
    )


def constants(k):
    """Arrays beside symbolic tensors, taken as constants (with a batch axis of 1, which Keras
    needs): a shift added to a hidden layer, a maximum with a floor broadcast along the
    features, a scale multiplied in."""
    import numpy as np

    x = k.Input((5,), name="x")
    h = k.layers.Dense(4, activation="tanh", name="hidden")(x)
    h = k.layers.Add(name="shift")([h, np.array([[0.5, -0.25, 1.0, 0.0]], "float32")])
    h = k.layers.Maximum(name="floor")([h, np.full((1, 1), -0.1, "float32")])
    h = k.layers.Multiply(name="scale")([h, np.array([[2.0, 1.0, -1.0, 0.5]], "float32")])
    return k.Model(x, k.layers.Dense(2, name="out")(h), name="constants")


def variable_length(k):
    """Sequences of any length (`Input((None, 4))`) beside fixed features, as in Keras's guide
    on training with built-in methods: a Conv1D and a global max pooling make the length go."""
    sequence, features = k.Input((None, 4), name="sequence"), k.Input((6,), name="features")
    pooled = k.layers.GlobalMaxPooling1D(name="pool")(
        k.layers.Conv1D(5, 3, activation="relu", name="conv")(sequence)
    )
    h = k.layers.concatenate([pooled, k.layers.Dense(4, name="dense")(features)], name="cat")
    cls = k.layers.Dense(3, activation="softmax", name="cls")(h)
    return k.Model([sequence, features], [cls, k.layers.Dense(2, name="reg")(h)], name="varlen")


#: Per case: the builder, and compile's `loss`, `loss_weights` and `metrics`.
CASES = {
    "weighted_dicts": (
        two_in_two_out,
        {"cls": "sparse_categorical_crossentropy", "reg": "mse"},
        {"cls": 1.0, "reg": 0.5},
        {"cls": ["accuracy"], "reg": ["mae"]},
    ),
    "lists_one_loss": (
        two_in_two_out,
        ["sparse_categorical_crossentropy", None],
        None,
        [["accuracy"], ["mae", "mse"]],
    ),
    "siamese": (siamese, "binary_crossentropy", None, ["accuracy"]),
    "cosine": (cosine, "mse", None, None),
    "constants": (constants, "mse", None, ["mae"]),
    "variable_length": (
        variable_length,
        ["sparse_categorical_crossentropy", "mse"],
        None,
        [["accuracy"], ["mae"]],
    ),
    "attention_scores": (attention_scores, "mse", None, ["mae"]),
    "dict_outputs": (
        dict_outputs,
        {"volume": "mse", "price": "mae"},
        {"price": 0.3, "volume": 2.0},
        {"volume": ["mae"]},
    ),
}


#: The size a variable (`None`) dimension of the data takes, and the other size predicted for.
LENGTH, OTHER_LENGTH = 7, 11


def data(name, model, rng, n, length=LENGTH):
    """Inputs and targets of `n` samples for case `name`, as lists (dicts for dict outputs);
    variable dimensions of `length`."""
    xs = [
        rng.normal(size=(n, *(length if d is None else d for d in shape[1:]))).astype("float32")
        for shape in _input_shapes(model)
    ]
    if name in ("cosine", "attention_scores", "constants"):
        width = 1 if name == "cosine" else 2
        return xs, rng.normal(size=(n, width)).astype("float32")
    if name == "siamese":
        return xs, rng.integers(0, 2, size=(n, 1)).astype("float32")
    if name == "dict_outputs":
        return xs, {
            "price": rng.normal(size=(n, 1)).astype("float32"),
            "volume": rng.normal(size=(n, 2)).astype("float32"),
        }
    return xs, [
        rng.integers(0, 3, size=n).astype("int64"),
        rng.normal(size=(n, 2)).astype("float32"),
    ]


def _input_shapes(model):
    shapes = model.input_shape
    return shapes if isinstance(shapes, list) else [shapes]
