"""Models with models inside them, written once for both Keras 3 and pynn (`k` is either
module), for `summary(expand_nested=True)`: `golden/keras_summaries.json` holds what Keras
prints for them."""


def graph_with_a_sequential(k):
    """Two inputs, a shared layer, and a Sequential called inside the graph."""
    a, b = k.Input((6,), name="a"), k.Input((4,), name="b")
    ha = k.layers.Dense(8, activation="relu", name="da")(a)
    hb = k.layers.Dense(8, name="db")(b)
    shared = k.layers.Dense(8, name="shared")
    h = k.layers.Concatenate(name="cat")([shared(ha), shared(hb), ha])
    inner = k.Sequential([k.Input((24,)), k.layers.Dense(5, name="in5")], name="inner")
    outputs = [k.layers.Dense(3, name="cls")(inner(h)), k.layers.Dense(1, name="reg")(h)]
    return k.Model([a, b], outputs, name="demo")


def sequentials_two_deep(k):
    """A Sequential inside a Sequential inside a Sequential."""
    innermost = k.Sequential([k.layers.Dense(2, name="d")], name="innermost")
    middle = k.Sequential([innermost, k.layers.Dense(4, name="e")], name="middle")
    return k.Sequential([k.Input((3,)), middle, k.layers.Dense(1, name="f")], name="outer")


def functional_inside_functional(k):
    """tests/functional_models.py's `nested`: a Sequential and a Functional inside."""
    import functional_models

    return functional_models.nested(k)


BUILDERS = {
    "graph_with_a_sequential": graph_with_a_sequential,
    "sequentials_two_deep": sequentials_two_deep,
    "functional_inside_functional": functional_inside_functional,
}
