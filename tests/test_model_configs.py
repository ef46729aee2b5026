"""Functional and nested models' configs in Keras 3's structure: pynn reads the JSON Keras
writes (golden/keras_model_configs.json) into models that predict as Keras's, writes the same
structure Keras writes, round-trips its own bit for bit, and refuses corrupted configs naming
the layer."""

import copy
import json
from pathlib import Path

import config_models
import functional_models
import multi_io_models
import numpy as np
import pytest
import summary_models

import pynn
from pynn.models import model_from_json

GOLDEN = json.loads((Path(__file__).parent / "golden" / "keras_model_configs.json").read_text())
MODELS = GOLDEN["models"]
BUILDERS = {
    **functional_models.BUILDERS,
    **{builder.__name__: builder for builder, *_ in multi_io_models.CASES.values()},
    **summary_models.BUILDERS,
    **config_models.BUILDERS,
}


def _arrays(values, model):
    """Golden inputs in the structure of the model's inputs."""
    structure = getattr(model, "_inputs_struct", None)
    if isinstance(structure, dict):
        return {key: np.asarray(values[key], np.float32) for key in structure}
    if isinstance(structure, list) and len(structure) > 1:
        return [np.asarray(v, np.float32) for v in values]
    return np.asarray(values, np.float32)


def _flat(predictions):
    if isinstance(predictions, dict):
        return [np.asarray(predictions[key]) for key in sorted(predictions)]
    if isinstance(predictions, list) and not np.isscalar(predictions[0][0]):
        return [np.asarray(p) for p in predictions]
    return [np.asarray(predictions)]


def _predict(model, name):
    golden = MODELS[name]
    model.set_weights([np.asarray(w, np.float32) for w in golden["weights"]])
    return model.predict(_arrays(golden["x"], model), verbose=0)


def _structure(config):
    """What a config says beyond each layer's own settings (those are checked layer by layer
    in test_saving.py): classes, names, calls, tensors, nesting. Keras's extra records of
    builds and compiles are left out, and so is a tensor's batch size (Keras gives layers after
    an array constant a batch of 1; see the README)."""
    if isinstance(config, list):
        return [_structure(item) for item in config]
    if not isinstance(config, dict):
        return config
    kind = config.get("class_name")
    kept = {}
    for key, value in config.items():
        if key in ("build_config", "compile_config", "dtype", "build_input_shape"):
            continue
        if key == "config" and kind not in (
            "__keras_tensor__",
            "__numpy__",
            "Sequential",
            "Functional",
        ):
            continue
        if key == "shape":
            value = [None] + value[1:]
        kept[key] = _structure(value)
    return kept


@pytest.mark.parametrize("name", sorted(MODELS))
def test_keras_written_configs_build_models_that_predict_as_keras(name):
    golden = MODELS[name]
    model = model_from_json(golden["json"])
    assert model.count_params() == golden["count_params"]
    expected = _flat(golden["predictions"])
    for got, want in zip(_flat(_predict(model, name)), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    config = json.loads(golden["json"])
    rebuilt = type(model).from_config(config["config"])
    assert [layer.name for layer in rebuilt.layers] == [layer.name for layer in model.layers]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_pynn_writes_the_structure_keras_writes(name):
    written = json.loads(BUILDERS[name](pynn).to_json())
    keras_written = json.loads(MODELS[name]["json"])
    assert _structure(written) == _structure(keras_written)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_configs_and_json_round_trip_bit_for_bit(name):
    model = BUILDERS[name](pynn)
    config = model.get_config()
    from_config = type(model).from_config(copy.deepcopy(config))
    from_json = model_from_json(model.to_json())
    assert from_config.get_config() == config
    assert json.loads(from_json.to_json()) == json.loads(model.to_json())
    expected = _flat(_predict(model, name))
    for rebuilt in (from_config, from_json):
        assert len(rebuilt.weights) == len(model.weights)
        for got, want in zip(_flat(_predict(rebuilt, name)), expected, strict=True):
            np.testing.assert_array_equal(got, want)


def test_model_from_config_builds_a_functional_model_and_sequential_nests_models():
    inputs = pynn.Input((32,))
    model = pynn.Model(inputs, pynn.layers.Dense(1)(inputs))
    rebuilt = pynn.Model.from_config(model.get_config())
    assert type(rebuilt) is type(model) and rebuilt.count_params() == 33
    outer = summary_models.sequentials_two_deep(pynn)
    again = pynn.Sequential.from_config(outer.get_config())
    assert [type(layer).__name__ for layer in again.layers] == ["Sequential", "Dense"]
    with pytest.raises(ValueError, match="needs 'input_layers'"):
        type(model).from_config({"name": "m", "layers": []})


def _legacy(config):
    """The config with each call in Keras 2's form: `[[layer, node, tensor, kwargs], ...]`."""
    config = copy.deepcopy(config)
    for layer in config["layers"]:
        calls = []
        for call in layer["inbound_nodes"]:
            (argument,) = call["args"]
            tensors = argument if isinstance(argument, list) else [argument]
            calls.append([t["config"]["keras_history"] + [call["kwargs"]] for t in tensors])
        layer["inbound_nodes"] = calls
    return config


@pytest.mark.parametrize("name", ["two_in_two_out", "shared_at_depths", "nested_output"])
def test_the_legacy_form_of_calls_still_loads(name):
    keras_written = json.loads(MODELS[name]["json"])["config"]
    model = pynn.Model.from_config(_legacy(keras_written))
    reference = pynn.Model.from_config(keras_written)
    for got, want in zip(
        _flat(_predict(model, name)), _flat(_predict(reference, name)), strict=True
    ):
        np.testing.assert_array_equal(got, want)


def _corrupted(name, change):
    config = json.loads(MODELS[name]["json"])["config"]
    change({layer["name"]: layer for layer in config["layers"]}, config)
    return config


def _history(layer, call=0, argument=0):
    args = layer["inbound_nodes"][call]["args"][0]
    tensor = args[argument] if isinstance(args, list) else args
    return tensor["config"]["keras_history"]


@pytest.mark.parametrize(
    ("name", "change", "message"),
    [
        (
            "two_in_two_out",
            lambda layers, _: _history(layers["trunk"]).__setitem__(0, "nowhere"),
            "Layer 'trunk' reads the output of an unknown layer 'nowhere'",
        ),
        (
            "residual_cnn",  # stem reads conv_b, which reads conv_a, which reads stem
            lambda layers, _: _history(layers["stem"]).__setitem__(0, "conv_b"),
            "does not make a graph: the calls of layer\\(s\\) 'stem', 'conv_a', 'conv_b'",
        ),
        (
            "shared_layer",
            lambda layers, _: _history(layers["both"], argument=1).__setitem__(1, 5),
            "the calls of layer\\(s\\) 'both'",
        ),
        (
            "shared_layer",
            lambda layers, _: _history(layers["out"]).__setitem__(2, 3),
            "Layer 'out' reads output 3 of call 0 of layer 'both', which has 1 output",
        ),
        (
            "two_in_two_out",
            lambda _, config: config["output_layers"][1].__setitem__(0, "ghost"),
            "outputs name an unknown layer 'ghost'",
        ),
        (
            "nested_output",  # Keras counts the block's calls from 1 there: 3 does not exist
            lambda _, config: config["output_layers"][0].__setitem__(1, 3),
            "name call 3, output 0 of layer 'block'",
        ),
        (
            "siamese",
            lambda layers, _: layers["same"].__setitem__("name", "embed"),
            "Two layers of the functional config are named 'embed'",
        ),
        (
            "siamese",
            lambda layers, _: layers["same"].__setitem__("class_name", "Exec"),
            "Layer 'same' of the functional config: Unknown pynn.layers class 'Exec'",
        ),
        (
            "siamese",
            lambda layers, _: layers["diff"]["inbound_nodes"][0].__setitem__("args", "x"),
            "Layer 'diff': a call must be a dict of 'args' and 'kwargs'",
        ),
        (
            "siamese",
            lambda layers, _: _history(layers["same"]).__setitem__(1, -1),
            "Layer 'same' reads a tensor with no valid keras_history",
        ),
        (
            "constants",
            lambda layers, _: layers["shift"]["inbound_nodes"][0]["args"][0][1]["config"].update(
                value=[["a"]]
            ),
            "Layer 'shift' has a constant that is not an array of numbers",
        ),
        (
            "siamese",
            lambda layers, _: layers["left"]["config"].update(batch_shape={}),
            "Layer 'left' of the functional config: `batch_shape` must be a tuple",
        ),
        (
            "siamese",
            lambda layers, _: layers["same"]["inbound_nodes"][0]["kwargs"].update(scale=2),
            "Layer 'same' cannot be called as the config says",
        ),
    ],
)
def test_corrupted_functional_configs_raise_value_errors_naming_the_layer(name, change, message):
    with pytest.raises(ValueError, match=message):
        pynn.Model.from_config(_corrupted(name, change))


def test_serialize_keras_object_round_trips_and_builds_pynn_classes_only():
    regularizer = pynn.regularizers.L1(0.005)
    config = pynn.saving.serialize_keras_object(regularizer)
    assert config == {
        "module": "keras.regularizers",
        "class_name": "L1",
        "config": {"l1": 0.005},
        "registered_name": None,
    }
    rebuilt = pynn.saving.deserialize_keras_object(config)
    assert isinstance(rebuilt, pynn.regularizers.L1) and rebuilt.get_config() == {"l1": 0.005}
    layer = pynn.saving.deserialize_keras_object(
        pynn.saving.serialize_keras_object(pynn.layers.Dense(3))
    )
    assert isinstance(layer, pynn.layers.Dense) and layer.units == 3
    assert pynn.saving.deserialize_keras_object(["relu", None, 2]) == ["relu", None, 2]
    with pytest.raises(ValueError, match="Unknown pynn.layers class 'Popen'"):
        pynn.saving.deserialize_keras_object({"module": "keras.layers", "class_name": "Popen"})
    with pytest.raises(ValueError, match="Unknown module 'os'"):
        pynn.saving.deserialize_keras_object({"module": "os", "class_name": "system"})
    with pytest.raises(NotImplementedError, match="custom_objects"):
        pynn.saving.deserialize_keras_object(config, custom_objects={"L1": object})


@pytest.mark.parametrize("name", ["nested", "sequentials_two_deep", "graph_with_a_sequential"])
def test_frozen_layers_and_models_stay_frozen_through_configs_and_files(tmp_path, name):
    model = BUILDERS[name](pynn)
    nested = next(layer for layer in model.layers if isinstance(layer, pynn.Model))
    nested.trainable = False
    for rebuilt in (
        type(model).from_config(model.get_config()),
        pynn.models.load_model(_saved(model, tmp_path)),
    ):
        assert rebuilt.get_config() == model.get_config()
        assert [layer.trainable for layer in rebuilt.layers] == [
            layer.trainable for layer in model.layers
        ]
        assert len(rebuilt.trainable_weights) == len(model.trainable_weights) > 0
    model.trainable = False
    assert type(model).from_config(model.get_config()).trainable_weights == []


def _saved(model, tmp_path):
    model.save(tmp_path / "m.pynn")
    return tmp_path / "m.pynn"


def test_a_graph_thousands_of_layers_deep_builds_and_reads_in_any_layer_order():
    """No recursion as deep as the graph (Python's stack holds about 1,000 calls), and reading
    stays linear when each layer's inputs come later in the config."""
    x = pynn.Input((2,), name="x")
    h = x
    for i in range(2500):
        h = pynn.layers.Activation("linear", name=f"a{i}")(h)
    model = pynn.Model(x, pynn.layers.Dense(1, name="out")(h))
    config = model.get_config()
    config["layers"] = config["layers"][:1] + config["layers"][:0:-1]
    rebuilt = pynn.Model.from_config(config)
    assert [layer.name for layer in rebuilt.layers] == [layer.name for layer in model.layers]
    rebuilt.set_weights(model.get_weights())
    values = np.ones((3, 2), np.float32)
    np.testing.assert_array_equal(
        rebuilt.predict(values, verbose=0), model.predict(values, verbose=0)
    )
