"""`pynn.models.clone_model`: the same architecture with new layers and fresh weights, as
Keras's `keras.models.clone_model` (`keras/src/models/cloning.py`)."""

import sys
from pathlib import Path

import numpy as np
import pytest

import pynn
from pynn import layers
from pynn.models import clone_model

sys.path.insert(0, str(Path(__file__).parent))
from functional_models import BUILDERS  # noqa: E402
from multi_io_models import CASES  # noqa: E402
from multi_io_models import data as multi_io_data  # noqa: E402

MODELS = {**BUILDERS, **{name: case[0] for name, case in CASES.items()}}


def inputs_of(model, name):
    rng = np.random.default_rng(0)
    if name in CASES:
        return multi_io_data(name, model, rng, 5)[0]
    return rng.normal(size=(5, *model.input_shape[1:])).astype(np.float32)


def flat(value):
    if isinstance(value, dict):
        return [value[key] for key in sorted(value)]
    return value if isinstance(value, list) else [value]


def layer_configs(model):
    return [
        (type(layer).__name__, None if isinstance(layer, pynn.Model) else layer.get_config())
        for layer in model.layers
    ]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_a_clone_has_the_same_graph_and_new_weights(name):
    pynn.utils.set_random_seed(1)
    model = MODELS[name](pynn)
    clone = clone_model(model)
    assert clone is not model and clone.name == model.name
    assert layer_configs(clone) == layer_configs(model)
    assert not any(a is b for a, b in zip(clone.layers, model.layers))
    original = model.get_weights()
    assert [w.shape for w in clone.get_weights()] == [w.shape for w in original]
    assert any(not np.array_equal(a, b) for a, b in zip(clone.get_weights(), original))
    clone.set_weights(original)
    x = inputs_of(model, name)
    for a, b in zip(flat(clone.predict(x, verbose=0)), flat(model.predict(x, verbose=0))):
        np.testing.assert_array_equal(a, b)
    clone.set_weights([w + 1 for w in original])
    for a, b in zip(model.get_weights(), original):
        np.testing.assert_array_equal(a, b)


def test_a_shared_layer_is_cloned_once_and_stays_shared():
    model = BUILDERS["shared_layer"](pynn)
    clone = clone_model(model)
    shared = clone.get_layer("shared")
    assert len([layer for layer in clone.layers if layer.name == "shared"]) == 1
    assert clone.count_params() == model.count_params()
    assert shared is not model.get_layer("shared")


def test_a_sequential_clone_keeps_its_input_and_takes_given_input_tensors():
    model = pynn.Sequential(
        [pynn.Input((4,), name="features"), layers.Dense(3, name="d")], name="stack"
    )
    clone = clone_model(model)
    assert clone.name == "stack" and clone.input_shape == (None, 4)
    assert [layer.name for layer in clone.layers] == ["d"]
    on_new = clone_model(model, input_tensors=pynn.Input((4,), name="other"))
    assert on_new.input_shape == (None, 4)
    with pytest.raises(ValueError, match="must contain a single tensor"):
        clone_model(model, input_tensors=[pynn.Input((4,)), pynn.Input((4,))])
    with pytest.raises(ValueError, match="must be a KerasTensor"):
        clone_model(model, input_tensors=np.ones((2, 4)))


def test_a_clone_function_replaces_layers_and_recursive_reaches_into_nested_models():
    model = BUILDERS["nested"](pynn)
    seen = []

    def relu_everywhere(layer):
        seen.append(layer.name)
        config = layer.get_config()
        if isinstance(layer, layers.Dense):
            config = {**config, "activation": "relu"}
        return layer.__class__.from_config(config)

    # Not recursive: the nested models go to the clone function whole (rebuilt from their
    # configs, their layers' activations kept).
    whole = clone_model(model, clone_function=relu_everywhere)
    assert seen == ["encoder", "block", "head"]
    assert whole.get_layer("head").get_config()["activation"] == "relu"
    assert whole.get_layer("encoder").get_layer("e2").get_config()["activation"] == "tanh"
    assert whole.get_layer("block").get_layer("inner").get_config()["activation"] == "tanh"
    assert whole.get_layer("block") is not model.get_layer("block")
    seen.clear()
    clone = clone_model(model, clone_function=relu_everywhere, recursive=True)
    assert seen == ["e1", "e2", "inner", "skip", "head"]
    assert clone.get_layer("head").get_config()["activation"] == "relu"
    assert clone.get_layer("encoder").get_layer("e2").get_config()["activation"] == "relu"


def test_input_tensors_of_a_functional_model_must_match_its_inputs():
    model = CASES["weighted_dicts"][0](pynn)
    a, b = pynn.Input((6,), name="a2"), pynn.Input((4,), name="b2")
    clone = clone_model(model, input_tensors=[a, b])
    assert [layer.name for layer in clone.layers][:2] == ["a2", "b2"]
    with pytest.raises(ValueError, match="same structure as model.input"):
        clone_model(model, input_tensors=[a])
    with pytest.raises(ValueError, match="must be KerasTensors"):
        clone_model(model, input_tensors=[a, np.ones((1, 4))])
    with pytest.raises(ValueError, match="Unexpected keyword argument"):
        clone_model(model, copies=2)
    with pytest.raises(NotImplementedError, match="call_function"):
        clone_model(model, call_function=None)
