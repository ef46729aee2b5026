"""The functional API: `pynn.Input`, layers called on symbolic tensors, `pynn.Model(inputs,
outputs)`, merge layers, shared and nested layers, frozen weights. Whole models are checked
against Keras 3 (the same builders, tests/functional_models.py, run in Keras:
`tests/golden/keras_functional.json`) and against NumPy references."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

import pynn
from pynn import layers

sys.path.insert(0, str(Path(__file__).parent))
from functional_models import BUILDERS  # noqa: E402
from threads import weights_after_fit  # noqa: E402

GOLDEN = json.loads((Path(__file__).parent / "golden" / "keras_functional.json").read_text())
SETTINGS = {
    "residual_cnn": ("sparse_categorical_crossentropy", ["stem"]),
    "merges": ("mse", ["a"]),
    "shared_layer": ("mse", []),
    "nested": ("sparse_categorical_crossentropy", ["encoder"]),
}


def keras_case(name):
    case = GOLDEN["models"][name]
    model = BUILDERS[name](pynn)
    initial = [np.array(w, np.float32) for w in case["initial_weights"]]
    model.set_weights(initial)
    x = np.array(case["x"], np.float32)
    y = np.array(case["y"])
    return model, initial, x, y, case


def fit(model, x, y, loss):
    settings = GOLDEN["settings"]
    model.compile(loss=loss, optimizer=pynn.optimizers.Adam(settings["learning_rate"]))
    history = model.fit(
        x,
        y,
        batch_size=settings["batch_size"],
        epochs=settings["epochs"],
        shuffle=False,
        verbose=0,
    )
    return history.history["loss"]


def assert_weights(model, expected, atol=2e-5):
    for got, want in zip(model.get_weights(), expected):
        np.testing.assert_allclose(got, np.array(want, np.float32), rtol=1e-4, atol=atol)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_layers_weights_predictions_and_fits_match_keras(name):
    model, _, x, y, case = keras_case(name)
    assert [layer.name for layer in model.layers] == case["layers"]
    assert [list(w.shape) for w in model.get_weights()] == case["weight_shapes"]
    np.testing.assert_allclose(
        model.predict(x, verbose=0), np.array(case["predictions"]), rtol=1e-5, atol=1e-6
    )
    loss = SETTINGS[name][0]
    np.testing.assert_allclose(fit(model, x, y, loss), case["history"], rtol=1e-5)
    assert_weights(model, case["weights"])


@pytest.mark.parametrize("name", [n for n in sorted(BUILDERS) if SETTINGS[n][1]])
def test_a_frozen_part_stays_bit_identical_then_trains_once_unfrozen_as_in_keras(name):
    model, initial, x, y, case = keras_case(name)
    loss, frozen = SETTINGS[name]
    for layer_name in frozen:
        model.get_layer(layer_name).trainable = False
    frozen_before = [w.copy() for w in _weights_of(model, frozen)]
    np.testing.assert_allclose(fit(model, x, y, loss), case["frozen_history"], rtol=1e-5)
    for before, after in zip(frozen_before, _weights_of(model, frozen)):
        np.testing.assert_array_equal(before, after)
    assert_weights(model, case["frozen_weights"])
    for layer_name in frozen:
        model.get_layer(layer_name).trainable = True
    np.testing.assert_allclose(fit(model, x, y, loss), case["unfrozen_history"], rtol=1e-5)
    assert_weights(model, case["unfrozen_weights"])


def _weights_of(model, names):
    return [w for name in names for w in model.get_layer(name).get_weights()]


def dense(x, kernel, bias):
    return x @ kernel + bias


def test_a_residual_mlp_computes_what_numpy_computes():
    inputs = pynn.Input((4,))
    a = layers.Dense(6, activation="tanh")(inputs)
    b = layers.Dense(6, activation="tanh")(a)
    joined = layers.Concatenate()([layers.add([a, b]), a])
    outputs = layers.Dense(3, activation="softmax")(layers.Activation("relu")(joined))
    model = pynn.Model(inputs, outputs)
    w = model.get_weights()
    x = np.random.default_rng(0).normal(size=(70, 4)).astype(np.float32)
    first = np.tanh(dense(x, w[0], w[1]))
    second = np.tanh(dense(first, w[2], w[3]))
    z = dense(np.maximum(np.concatenate([first + second, first], -1), 0), w[4], w[5])
    expected = np.exp(z - z.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model(x), expected, rtol=1e-5, atol=1e-6)


def test_gradients_of_a_graph_match_finite_differences_of_its_loss():
    # Weights of a fixed seed, away from a kink of the maximum within the step.
    pynn.utils.set_random_seed(2)
    inputs = pynn.Input((3,))
    shared = layers.Dense(3, activation="tanh")
    h = shared(inputs)
    merged = layers.multiply([h, shared(h)])
    model = pynn.Model(inputs, layers.Dense(2)(layers.maximum([merged, h])))
    model.compile(loss="mse", optimizer="sgd")
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(5, 3)).astype(np.float32), rng.normal(size=(5, 2)).astype(np.float32)
    gradients = model.compute_gradients(x, y)
    weights = model.get_weights()
    h = 1e-2
    for i, w in enumerate(weights):
        for j in range(w.size):
            shifted = [v.copy() for v in weights]
            shifted[i].flat[j] += h
            model.set_weights(shifted)
            plus = model.evaluate(x, y, verbose=0)
            shifted[i].flat[j] -= 2 * h
            model.set_weights(shifted)
            minus = model.evaluate(x, y, verbose=0)
            numeric = (plus - minus) / (2 * h)
            assert gradients[i].flat[j] == pytest.approx(numeric, rel=2e-2, abs=2e-3)
        model.set_weights(weights)


def test_layers_shared_between_models_train_as_one():
    encoder = pynn.Sequential([pynn.Input((4,)), layers.Dense(3, activation="tanh")])
    inputs = pynn.Input((4,))
    autoencoder = pynn.Model(inputs, layers.Dense(4)(encoder(inputs)))
    x = np.random.default_rng(2).normal(size=(64, 4)).astype(np.float32)
    before = encoder.predict(x, verbose=0)
    autoencoder.compile(loss="mse", optimizer="adam")
    autoencoder.fit(x, x, epochs=3, verbose=0)
    kernel, bias = encoder.layers[0].get_weights()
    after = encoder.predict(x, verbose=0)
    assert np.abs(after - before).max() > 1e-3
    np.testing.assert_allclose(after, np.tanh(dense(x, kernel, bias)), rtol=1e-5, atol=1e-6)
    # The encoder's own training carries back into the autoencoder.
    encoder.compile(loss="mse", optimizer="sgd")
    encoder.fit(x, after + 1.0, epochs=1, verbose=0)
    assert autoencoder.get_weights()[0].tolist() == encoder.get_weights()[0].tolist()


def test_a_shared_layers_weights_count_once_and_its_calls_add_their_gradients():
    shared = layers.Dense(4, activation="tanh")
    inputs = pynn.Input((4,))
    model = pynn.Model(inputs, shared(shared(inputs)))
    assert len(model.get_weights()) == 2 and model.count_params() == 20
    kernel, bias = shared.get_weights()
    x = np.random.default_rng(3).normal(size=(8, 4)).astype(np.float32)
    expected = np.tanh(dense(np.tanh(dense(x, kernel, bias)), kernel, bias))
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)


def test_feature_extraction_and_a_built_sequential_as_a_graph():
    sequential = pynn.Sequential(
        [pynn.Input((4,)), layers.Dense(5, activation="relu"), layers.Dense(2)]
    )
    features = pynn.Model(sequential.inputs, sequential.layers[-2].output)
    assert features.output_shape == (None, 5)
    x = np.random.default_rng(4).normal(size=(6, 4)).astype(np.float32)
    kernel, bias = sequential.layers[0].get_weights()
    np.testing.assert_allclose(
        features.predict(x, verbose=0), np.maximum(dense(x, kernel, bias), 0), rtol=1e-6
    )
    every = pynn.Model(sequential.inputs, [layer.output for layer in sequential.layers][-1])
    np.testing.assert_array_equal(every.predict(x, verbose=0), sequential.predict(x, verbose=0))


def test_a_sequential_inside_a_sequential():
    inner = pynn.Sequential([layers.Dense(3, activation="relu")], name="inner")
    outer = pynn.Sequential([pynn.Input((4,)), inner, layers.Dense(2)])
    assert [layer.name for layer in outer.layers] == ["inner", outer.layers[1].name]
    assert outer.count_params() == 4 * 3 + 3 + 3 * 2 + 2
    x = np.random.default_rng(5).normal(size=(3, 4)).astype(np.float32)
    k1, b1, k2, b2 = outer.get_weights()
    np.testing.assert_allclose(
        outer.predict(x, verbose=0), dense(np.maximum(dense(x, k1, b1), 0), k2, b2), rtol=1e-6
    )


def test_graph_models_are_bit_identical_for_one_and_two_threads():
    def make_model():
        model = BUILDERS["residual_cnn"](pynn)
        model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
        return model

    x = np.random.default_rng(6).normal(size=(150, 8, 8, 2)).astype(np.float32)
    y = np.arange(150) % 3
    one, two = (
        weights_after_fit(make_model, x, y, threads, batch_size=130, epochs=2) for threads in (1, 2)
    )
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)


def test_model_attributes_as_keras_names_them():
    inputs = pynn.Input((4,), name="x")
    hidden = layers.Dense(3, name="hidden")
    outputs = hidden(inputs)
    model = pynn.Model(inputs=inputs, outputs=outputs, name="tiny")
    assert model.name == "tiny" and model.inputs == [inputs] and model.outputs == [outputs]
    assert model.input is inputs and model.output is outputs
    assert model.get_layer("hidden") is hidden and model.get_layer(index=0).name == "x"
    assert hidden.input is inputs and hidden.output is outputs
    assert model.input_shape == (None, 4) and model.output_shape == (None, 3)
    assert isinstance(pynn.models.Model(inputs, outputs), pynn.Model)
    assert pynn.Model(inputs, outputs).name.startswith("functional")
    with pytest.raises(ValueError, match="No such layer: nope"):
        model.get_layer("nope")


def test_graph_errors_are_keras_errors():
    a, b = pynn.Input((3,)), pynn.Input((3,))
    with pytest.raises(ValueError, match=r"Output with path `` is not connected to `inputs`"):
        pynn.Model(a, layers.Dense(2)(b))
    with pytest.raises(ValueError, match="All `inputs` values must be KerasTensors"):
        pynn.Model([a, 5], a)
    x = layers.Dense(2)(a)
    with pytest.raises(
        ValueError,
        match=r"Inputs have incompatible shapes. Received shapes "
        r"\(2,\) and \(3,\)",
    ):
        layers.Add()([x, b])
    with pytest.raises(ValueError, match="exactly 2 inputs"):
        layers.Subtract()([a, b, a])
    with pytest.raises(ValueError, match="should be called on a list of inputs"):
        layers.Add()(a)
    with pytest.raises(ValueError, match="matching shapes except for the concatenation axis"):
        layers.Concatenate(axis=1)([a, pynn.Input((3, 1))])
    dense = layers.Dense(2)
    dense(a)
    with pytest.raises(ValueError, match=r'Input of layer "dense_\d+" is incompatible'):
        dense(pynn.Input((5,)))


def test_training_recorded_on_a_call_is_overridden_by_fit_and_predict_as_in_keras():
    inputs = pynn.Input((4,))
    dropped = layers.Dropout(0.9)(layers.Dense(4)(inputs), training=True)
    model = pynn.Model(inputs, layers.Dense(1)(dropped))
    assert model.layers[2]._inbound_nodes[0].training is True
    x = np.ones((3, 4), np.float32)
    # predict (training=False) overrides the recorded value: no dropout, the same every time.
    np.testing.assert_array_equal(model.predict(x, verbose=0), model.predict(x, verbose=0))
    np.testing.assert_array_equal(model(x, training=False), model.predict(x, verbose=0))
    # model(x) runs the call as recorded: in training mode.
    assert not np.array_equal(model(x), model(x))
    # A model calling it with training=False overrides what its nodes recorded.
    outer_inputs = pynn.Input((4,))
    outer = pynn.Model(outer_inputs, model(outer_inputs, training=False))
    np.testing.assert_array_equal(outer(x), model.predict(x, verbose=0))


def test_a_model_called_in_training_mode_drops_as_recorded_or_as_told_as_in_keras():
    x = np.ones((64, 8), np.float32)
    inputs = pynn.Input((8,))
    never = pynn.Model(inputs, layers.Dropout(0.5)(inputs, training=False))
    outer_inputs = pynn.Input((8,))
    outer = pynn.Model(outer_inputs, never(outer_inputs, training=True))
    assert set(np.unique(outer(x))) == {0.0, 2.0}  # the enclosing call's True overrides
    np.testing.assert_array_equal(outer(x, training=False), x)
    np.testing.assert_array_equal(never(x), x)
    assert set(np.unique(never(x, training=True))) == {0.0, 2.0}  # the outer call's value wins

    dense = layers.Dense(3)
    dropped = layers.Dropout(0.5)(layers.Dense(8)(inputs))
    both = pynn.Model(inputs, [dropped, dense(dropped)])
    first, second = both(x, training=True)
    kernel, bias = dense.get_weights()
    np.testing.assert_allclose(second, first @ kernel + bias, rtol=1e-5, atol=1e-6)
    assert (first == 0).any()
    np.testing.assert_array_equal(both(x)[0], both.predict(x, verbose=0)[0])


def test_a_call_in_training_mode_leaves_the_masks_of_fit_unchanged():
    def fitted(call_first):
        pynn.utils.set_random_seed(2)
        inputs = pynn.Input((6,))
        model = pynn.Model(inputs, layers.Dense(1)(layers.Dropout(0.3)(inputs)))
        model.compile(loss="mse", optimizer="sgd")
        x, y = np.ones((16, 6), np.float32), np.zeros((16, 1), np.float32)
        model.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
        if call_first:
            model(x, training=True)
        model.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
        return model.get_weights()

    for a, b in zip(fitted(False), fitted(True)):
        np.testing.assert_array_equal(a, b)


def test_an_activation_fused_into_its_merge_computes_the_same_bits():
    # An Activation reading a merge's output alone runs inside the merge (graph::fuse); the
    # merge's output read a second time, as a model output, keeps them apart.
    def model(keep_apart):
        inputs = pynn.Input((6,))
        a = layers.Dense(5, name="a")(inputs)
        b = layers.Dense(5, name="b")(inputs)
        merged = layers.Add(name="add")([a, b])
        out = layers.Dense(2, name="out")(layers.Activation("relu", name="relu")(merged))
        return pynn.Model(inputs, [out, merged] if keep_apart else out)

    fused, apart = model(False), model(True)
    apart.set_weights(fused.get_weights())
    # The fused engine never calls the Activation layer: it has no output shape of its own.
    for engine_model, shape in ((fused, []), (apart, [5])):
        relu = [layer.name for layer in engine_model._engine_layers].index("relu")
        assert engine_model._engine.layer_output_shapes()[relu] == shape
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(70, 6)).astype(np.float32), rng.normal(size=(70, 2))
    np.testing.assert_array_equal(fused.predict(x, verbose=0), apart.predict(x, verbose=0)[0])
    fused.compile(loss="mse", optimizer="sgd")
    apart.compile(loss=["mse", None], optimizer="sgd")
    gradients = fused.compute_gradients(x, y)
    for got, want in zip(apart.compute_gradients(x, [y, np.zeros((70, 5))]), gradients):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("make", ["dense", "conv"])
def test_an_activation_after_a_layer_without_one_runs_inside_it_with_the_same_bits(make):
    def model(fused_by_hand):
        inputs = pynn.Input((6, 6, 2))
        activation = "gelu" if make == "dense" else "relu"
        first = (
            layers.Dense(4, activation=activation if fused_by_hand else None, name="first")
            if make == "dense"
            else layers.Conv2D(
                4, 3, padding="same", activation=activation if fused_by_hand else None, name="first"
            )
        )
        x = first(inputs)
        if not fused_by_hand:
            x = layers.Activation(activation, name="act")(x)
        return pynn.Model(inputs, layers.Dense(2, name="out")(layers.Flatten()(x)))

    graph, by_hand = model(False), model(True)
    by_hand.set_weights(graph.get_weights())
    act = [layer.name for layer in graph._engine_layers].index("act")
    assert graph._engine.layer_output_shapes()[act] == []  # fused: never called
    x = np.random.default_rng(5).normal(size=(9, 6, 6, 2)).astype(np.float32)
    y = np.random.default_rng(6).normal(size=(9, 2)).astype(np.float32)
    np.testing.assert_array_equal(graph.predict(x, verbose=0), by_hand.predict(x, verbose=0))
    for model_ in (graph, by_hand):
        model_.compile(loss="mse", optimizer="sgd")
    for got, want in zip(graph.compute_gradients(x, y), by_hand.compute_gradients(x, y)):
        np.testing.assert_array_equal(got, want)


def test_arrays_beside_symbolic_tensors_are_constants_of_the_model():
    inputs = pynn.Input((3,))
    shift = np.array([[1.0, -2.0, 0.5]], np.float32)
    extra = np.array([4.0, 5.0], np.float32)  # no batch axis: one sample's values
    shifted = layers.Add()([inputs, shift])
    joined = layers.Concatenate()([shifted, extra])
    floored = layers.Maximum()([joined, np.float32(0.25)])
    model = pynn.Model(inputs, floored)
    x = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    want = np.maximum(np.concatenate([x + shift, np.tile(extra, (5, 1))], axis=1), 0.25)
    np.testing.assert_array_equal(model.predict(x, verbose=0), want)
    assert model.output.shape == (None, 5)
    model.compile(loss="mse", optimizer="sgd")
    assert model.compute_gradients(x, np.zeros((5, 5))) == []


def test_arrays_beside_symbolic_tensors_that_cannot_be_constants_are_refused():
    inputs = pynn.Input((3,))
    with pytest.raises(ValueError, match="Only input tensors may be passed as positional"):
        layers.Add()([inputs, 2.0])
    with pytest.raises(ValueError, match=r"received an array of shape \(2, 3\).*batch axis of 1"):
        layers.Add()([inputs, np.ones((2, 3), np.float32)])
    with pytest.raises(ValueError, match=r"Inputs have incompatible shapes"):
        layers.Add()([inputs, np.ones((1, 4), np.float32)])
    with pytest.raises(ValueError, match="NaN or infinite values"):
        layers.Add()([inputs, np.array([1.0, np.nan, 2.0])])
    inner = pynn.Model(inputs, layers.Dense(2)(inputs))
    with pytest.raises(ValueError, match="mixed with arrays"):
        inner([pynn.Input((3,)), np.ones((1, 3))])


def test_variable_dimensions_give_a_plan_per_batch_shape_and_refuse_weights_that_follow_them():
    sequence = pynn.Input((None, 3))
    conv = layers.Conv1D(4, 3, activation="relu")
    features = conv(sequence)
    assert features.shape == (None, None, 4)
    pooled = layers.GlobalAveragePooling1D()(features)
    model = pynn.Model(sequence, layers.Dense(2)(pooled))
    assert model.output.shape == (None, 2)
    lines = []
    model.summary(print_fn=lines.append)
    assert "(None, None, 4)" in "\n".join(lines)
    rng = np.random.default_rng(0)
    kernel, bias = conv.get_weights()
    dense_kernel, dense_bias = model.layers[-1].get_weights()
    for length in (5, 9, 5):
        x = rng.normal(size=(2, length, 3)).astype(np.float32)
        windows = np.stack([x[:, i : i + 3].reshape(2, -1) for i in range(length - 2)], 1)
        relu = np.maximum(windows @ kernel.reshape(-1, 4) + bias, 0)
        want = relu.mean(1) @ dense_kernel + dense_bias
        np.testing.assert_allclose(model.predict(x, verbose=0), want, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(conv(x), relu, rtol=1e-5, atol=1e-6)
    model.compile(loss="mse", optimizer="adam")
    before = [w.copy() for w in model.get_weights()]
    model.fit(rng.normal(size=(8, 6, 3)), np.zeros((8, 2)), epochs=2, verbose=0)
    model.fit(rng.normal(size=(8, 4, 3)), np.zeros((8, 2)), epochs=1, verbose=0)
    assert all(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    with pytest.raises(ValueError, match="must be fully-defined .no `None` dimensions"):
        layers.Dense(2)(layers.Flatten()(pynn.Input((None, 3))))
    with pytest.raises(ValueError, match="incompatible"):
        model.predict(np.zeros((2, 5, 4)), verbose=0)


def test_an_intermediate_tensor_as_input_gets_an_input_layer_of_its_own_as_in_keras():
    x = pynn.Input((3,))
    hidden = layers.Dense(4, name="hidden")
    h = hidden(x)
    head = layers.Dense(2, name="head")
    model = pynn.Model(h, head(h))
    # Keras 3 roots the graph at a new Input named after the tensor (`clone_graph_nodes`).
    assert [layer.name for layer in model.layers] == [f"{h.name}CLONE", "head"]
    assert isinstance(model.layers[0], layers.InputLayer) and model.input_shape == (None, 4)
    assert len(head._inbound_nodes) == 2 and head.output is not model.output
    values = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    expected = values @ head.kernel.numpy() + head.bias.numpy()
    np.testing.assert_allclose(model.predict(values, verbose=0), expected, rtol=1e-6)
    rebuilt = pynn.Model.from_config(model.get_config())
    assert [layer.name for layer in rebuilt.layers] == [layer.name for layer in model.layers]
    # The whole graph is unchanged by the new records.
    assert [layer.name for layer in pynn.Model(x, head.output).layers][1:] == ["hidden", "head"]
