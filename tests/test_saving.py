"""Model files, weight files and configs: every layer kind, optimizer and loss survives a
round trip bit for bit, and training continued after loading equals an uninterrupted run."""

import json
from pathlib import Path

import numpy as np
import pytest

import pynn
from pynn import layers, losses, optimizers
from pynn.utils import set_random_seed


def _image_model():
    return pynn.Sequential(
        [
            pynn.Input((12, 12, 2)),
            layers.Conv2D(4, 3, padding="same", activation="relu", kernel_regularizer="l2"),
            layers.MaxPooling2D(),
            layers.Conv2D(3, 2, strides=2, bias_regularizer=pynn.regularizers.L1(0.01)),
            layers.AveragePooling2D(pool_size=1),
            layers.Dropout(0.25, noise_shape=(None, 1, 1, 3)),
            layers.Flatten(),
            layers.Dense(5, activation="tanh", activity_regularizer="l1_l2"),
            layers.Reshape((5, 1)),
            layers.GlobalMaxPooling1D(),
            layers.Dense(3, activation="softmax", kernel_initializer="he_normal"),
        ]
    )


def _sequence_model():
    return pynn.Sequential(
        [
            pynn.Input((16, 3)),
            layers.Conv1D(4, 3, padding="causal", dilation_rate=2, activation="relu"),
            layers.MaxPooling1D(2),
            layers.AveragePooling1D(2, padding="same"),
            layers.Dropout(0.1),
            layers.Conv1D(2, 1),
            layers.GlobalAveragePooling1D(),
            layers.Dense(1, activation="sigmoid"),
        ]
    )


def _image_pooling_model():
    return pynn.Sequential(
        [
            pynn.Input((6, 6, 1)),
            layers.Conv2D(2, 3),
            layers.GlobalAveragePooling2D(keepdims=True),
            layers.Flatten(),
            layers.Dense(2),
        ]
    )


def _global_max_model():
    return pynn.Sequential(
        [
            pynn.Input((5, 5, 2)),
            layers.Conv2D(3, 2, activation="sigmoid"),
            layers.GlobalMaxPooling2D(),
            layers.Dense(2, activation="softmax"),
        ]
    )


def _data(model, n=48, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n,) + model.input_shape[1:]).astype(np.float32)


CASES = [
    (_image_model, optimizers.Adam(amsgrad=True), "sparse_categorical_crossentropy", 3),
    (_image_model, optimizers.RMSprop(momentum=0.5, centered=True), "categorical_crossentropy", 3),
    (_sequence_model, optimizers.SGD(0.05, momentum=0.9, nesterov=True), "binary_crossentropy", 1),
    (_sequence_model, optimizers.Adagrad(0.05), losses.BinaryCrossentropy(label_smoothing=0.1), 1),
    (_image_pooling_model, optimizers.SGD(0.01), "mse", 2),
    (_image_pooling_model, "adam", losses.MeanAbsoluteError(), 2),
    (
        _global_max_model,
        optimizers.RMSprop(0.01),
        losses.CategoricalCrossentropy(label_smoothing=0.1),
        2,
    ),
]


def _targets(loss, classes, n, seed=1):
    rng = np.random.default_rng(seed)
    if loss == "sparse_categorical_crossentropy":
        return rng.integers(0, classes, n)
    if loss == "categorical_crossentropy" or isinstance(loss, losses.CategoricalCrossentropy):
        return pynn.utils.to_categorical(rng.integers(0, classes, n), classes)
    if classes == 1:
        return rng.integers(0, 2, (n, 1)).astype(np.float32)
    return rng.normal(size=(n, classes)).astype(np.float32)


def _weights_equal(a, b):
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("build, optimizer, loss, classes", CASES)
def test_round_trip_then_resume_equals_uninterrupted(tmp_path, build, optimizer, loss, classes):
    set_random_seed(3)
    model = build()
    metrics = ["mae"] if classes == 2 else ["accuracy"]
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics)
    x = _data(model)
    y = _targets(loss, classes, len(x))
    model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    path = tmp_path / "model.pynn"
    model.save(path)

    loaded = pynn.models.load_model(path)
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in model.layers]
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    assert _weights_equal(model.get_weights(), loaded.get_weights())
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))
    assert loaded.optimizer.iterations == model.optimizer.iterations == 6
    assert loaded.optimizer.get_config() == model.optimizer.get_config()

    # Same seed before each continuation: the shuffles and dropout masks match.
    set_random_seed(11)
    original = model.fit(x, y, batch_size=16, epochs=4, initial_epoch=2, verbose=0)
    set_random_seed(11)
    resumed = loaded.fit(x, y, batch_size=16, epochs=4, initial_epoch=2, verbose=0)
    assert original.history == resumed.history
    assert _weights_equal(model.get_weights(), loaded.get_weights())


def test_a_loaded_file_saves_again_identically(tmp_path):
    model = _sequence_model()
    model.compile(optimizer="adam", loss="binary_crossentropy")
    x = _data(model)
    model.fit(x, _targets("bce", 1, len(x)), epochs=1, verbose=0)
    model.save(tmp_path / "a.pynn")
    # Not trained since loading: the optimizer state read from the file is written back.
    pynn.models.load_model(tmp_path / "a.pynn").save(tmp_path / "b.pynn")
    again = pynn.models.load_model(tmp_path / "b.pynn")
    assert again.optimizer.iterations == model.optimizer.iterations
    assert _weights_equal(model.get_weights(), again.get_weights())


def test_load_without_compile_and_uncompiled_models(tmp_path):
    model = _image_pooling_model()
    model.save(tmp_path / "m.pynn")
    loaded = pynn.models.load_model(tmp_path / "m.pynn")
    assert not loaded.compiled
    model.compile(optimizer="sgd", loss="mse")
    model.save(tmp_path / "m.pynn")
    assert not pynn.models.load_model(tmp_path / "m.pynn", compile=False).compiled
    assert pynn.models.load_model(tmp_path / "m.pynn").compiled


def test_file_layout_is_a_zip_of_json_and_safetensors(tmp_path):
    import zipfile

    model = _image_pooling_model()
    model.compile(optimizer="adam", loss="mse")
    model.fit(_data(model), np.zeros((48, 2), np.float32), epochs=1, verbose=0)
    model.save(tmp_path / "m.pynn")
    with zipfile.ZipFile(tmp_path / "m.pynn") as archive:
        assert sorted(archive.namelist()) == [
            "config.json",
            "metadata.json",
            "model.weights.safetensors",
        ]
        metadata = json.loads(archive.read("metadata.json"))
        config = json.loads(archive.read("config.json"))
        tensors = archive.read("model.weights.safetensors")
    assert metadata["format"] == "pynn.model" and metadata["format_version"] == 1
    assert config["class_name"] == "Sequential"
    assert config["compile_config"]["optimizer"]["class_name"] == "Adam"
    # safetensors: an 8-byte little-endian header length, then a JSON header.
    header_len = int.from_bytes(tensors[:8], "little")
    header = json.loads(tensors[8 : 8 + header_len])
    assert header["layers/0/vars/0"] == {
        "dtype": "F32",
        "shape": [3, 3, 1, 2],
        "data_offsets": header["layers/0/vars/0"]["data_offsets"],
    }
    assert header["__metadata__"]["optimizer_iterations"] == "2"
    assert {"optimizer/vars/0", "optimizer/vars/1"} <= set(header)


def test_save_weights_and_load_weights(tmp_path):
    set_random_seed(1)
    model = _image_model()
    other = _image_model()  # different initial weights, different layer names
    assert not _weights_equal(model.get_weights(), other.get_weights())
    model.save_weights(tmp_path / "w.weights.safetensors")
    other.load_weights(tmp_path / "w.weights.safetensors")
    assert _weights_equal(model.get_weights(), other.get_weights())
    # A model file's weights load too.
    third = _image_model()
    model.save(tmp_path / "m.pynn")
    third.load_weights(tmp_path / "m.pynn")
    assert _weights_equal(model.get_weights(), third.get_weights())


def test_weights_of_another_architecture_are_refused(tmp_path):
    _image_pooling_model().save_weights(tmp_path / "w.weights.safetensors")
    smaller = pynn.Sequential([pynn.Input((6, 6, 1)), layers.Conv2D(2, 3), layers.Flatten()])
    with pytest.raises(ValueError, match="weights the model does not have"):
        smaller.load_weights(tmp_path / "w.weights.safetensors")
    wider = pynn.Sequential([pynn.Input((6, 6, 1)), layers.Conv2D(3, 3)])
    with pytest.raises(ValueError, match=r"has shape \(3, 3, 1, 2\), but the model expects"):
        wider.load_weights(tmp_path / "w.weights.safetensors")


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda m, p: m.save(p), "m.zip"),
        (lambda m, p: m.save_weights(p), "w.weights.bin"),
        (lambda m, p: m.load_weights(p), "w.bin"),
    ],
)
def test_file_names_say_what_they_hold(tmp_path, call, name):
    model = _image_pooling_model()
    (tmp_path / name).write_bytes(b"")
    with pytest.raises(ValueError, match=r"\.pynn|\.weights\.safetensors"):
        call(model, tmp_path / name)


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda m, p: m.save(p), "m.keras"),
        (lambda m, p: m.save_weights(p), "w.weights.h5"),
        (lambda m, p: m.load_weights(p), "w.h5"),
        (lambda m, p: pynn.models.load_model(p), "m.keras"),
        (lambda m, p: pynn.saving.load_model(p), "M.H5"),
    ],
)
def test_keras_file_formats_say_they_are_not_supported_yet(tmp_path, call, name):
    model = _image_pooling_model()
    (tmp_path / name).write_bytes(b"")
    with pytest.raises(NotImplementedError, match=r"`\.keras` and `\.h5` files yet.*\.pynn"):
        call(model, tmp_path / name)


def test_overwrite_false_keeps_the_file(tmp_path):
    model = _image_pooling_model()
    model.save(tmp_path / "m.pynn")
    before = (tmp_path / "m.pynn").read_bytes()
    with pytest.raises(FileExistsError):
        model.save(tmp_path / "m.pynn", overwrite=False)
    assert (tmp_path / "m.pynn").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.pynn"]  # no temporary left behind


def test_configs_name_keras_modules_and_older_pynn_modules_still_load():
    """Keras 3 reads a config by its module (`keras.layers`, `keras` for a Sequential): pynn
    writes those, so `keras.models.model_from_json(model.to_json())` rebuilds the model (checked
    in the Keras venv for every layer type). Files written with `pynn.*` modules still load."""
    config = json.loads(_image_model().to_json())
    assert config["module"] == "keras"
    layer_config = config["config"]["layers"][1]
    assert layer_config["module"] == "keras.layers"
    kernel = layer_config["config"]["kernel_initializer"]
    assert kernel["class_name"] == "GlorotUniform"
    legacy = json.dumps(config).replace('"keras.layers"', '"pynn.layers"')
    legacy = legacy.replace('"module": "keras"', '"module": "pynn.models"')
    rebuilt = pynn.models.model_from_json(legacy)
    assert json.loads(rebuilt.to_json()) == config


KERAS_CONFIGS = json.loads((Path(__file__).parent / "golden" / "keras_configs.json").read_text())


@pytest.mark.parametrize("entry", KERAS_CONFIGS["layers"], ids=lambda e: e["class_name"])
def test_every_layer_reads_the_config_keras_writes(entry):
    """Keras 3's layer configs (dtype policies, constraints and quantization at their
    defaults, initializers' axes) build the same pynn layer."""
    layer = pynn.saving.deserialize(entry, "keras.layers")
    assert type(layer).__name__ == entry["class_name"]
    settings = ("units", "filters", "kernel_size", "strides", "padding", "rate", "axis", "axes")
    for key in settings:
        if key in entry["config"]:
            assert _plain(layer.get_config()[key]) == _plain(entry["config"][key]), key


def test_a_sequential_keras_wrote_loads_with_its_layers_and_parameter_count():
    model = pynn.models.model_from_json(KERAS_CONFIGS["sequential"])
    assert model.name == "keras_written"
    assert model.count_params() == KERAS_CONFIGS["sequential_params"]
    assert [type(layer).__name__ for layer in model.layers] == [
        "Conv2D",
        "MaxPooling2D",
        "Dropout",
        "Flatten",
        "Dense",
    ]
    with pytest.raises(NotImplementedError, match="kernel_constraint"):
        layers.Dense(2, kernel_constraint="non_neg")
    with pytest.raises(NotImplementedError, match="sparse"):
        layers.InputLayer(shape=(3,), sparse=True)


def _plain(value):
    return list(value) if isinstance(value, (list, tuple)) else value


def test_json_round_trip_rebuilds_the_architecture():
    model = _image_model()
    text = model.to_json()
    rebuilt = pynn.models.model_from_json(text)
    assert json.loads(rebuilt.to_json()) == json.loads(text)
    assert rebuilt.count_params() == model.count_params()
    assert [layer.output_shape for layer in rebuilt.layers] == [
        layer.output_shape for layer in model.layers
    ]
    with pytest.raises(ValueError, match="not valid JSON"):
        pynn.models.model_from_json("{")
    with pytest.raises(ValueError, match="Unknown pynn.models class"):
        pynn.models.model_from_json('{"class_name": "os.system", "config": {}}')


def _every_layer():
    return [
        layers.Dense(3, activation="relu", use_bias=False, kernel_regularizer="l1"),
        layers.Conv1D(2, 3, strides=2, padding="same"),
        layers.Conv2D(2, (2, 3), dilation_rate=2, kernel_initializer="lecun_uniform"),
        layers.MaxPooling1D(3, strides=1, padding="same"),
        layers.MaxPooling2D((2, 3)),
        layers.AveragePooling1D(2),
        layers.AveragePooling2D(2, padding="same"),
        layers.GlobalMaxPooling1D(),
        layers.GlobalMaxPooling2D(keepdims=True),
        layers.GlobalAveragePooling1D(),
        layers.GlobalAveragePooling2D(),
        layers.Flatten(),
        layers.Reshape((-1, 2)),
        layers.Dropout(0.5, seed=3),
        layers.InputLayer(shape=(4, 5)),
    ]


@pytest.mark.parametrize("layer", _every_layer(), ids=lambda layer: type(layer).__name__)
def test_every_layer_config_round_trips(layer):
    config = json.loads(json.dumps(layer.get_config()))
    clone = type(layer).from_config(config)
    assert type(clone) is type(layer)
    assert json.loads(json.dumps(clone.get_config())) == config


@pytest.mark.parametrize(
    "obj",
    [
        optimizers.SGD(0.1, momentum=0.5, nesterov=True),
        optimizers.Adam(0.01, beta_1=0.8, amsgrad=True),
        optimizers.RMSprop(rho=0.8, momentum=0.1, centered=True),
        optimizers.Adagrad(initial_accumulator_value=0.2),
        losses.MeanSquaredError(),
        losses.MeanAbsoluteError(),
        losses.BinaryCrossentropy(from_logits=True),
        losses.CategoricalCrossentropy(label_smoothing=0.2),
        losses.SparseCategoricalCrossentropy(from_logits=True),
        pynn.regularizers.L1(0.3),
        pynn.regularizers.L2(0.2),
        pynn.regularizers.L1L2(0.1, 0.2),
        pynn.initializers.Constant(2.0),
        pynn.initializers.RandomNormal(0.5, 2.0, seed=4),
        pynn.initializers.VarianceScaling(2.0, "fan_out", "uniform", seed=1),
        pynn.initializers.GlorotUniform(seed=7),
        pynn.metrics.BinaryAccuracy(threshold=0.3),
        pynn.metrics.CategoricalAccuracy(),
        pynn.metrics.MeanSquaredError(),
    ],
    ids=lambda obj: type(obj).__name__,
)
def test_every_optimizer_loss_regularizer_initializer_and_metric_round_trips(obj):
    serialized = json.loads(json.dumps(pynn.saving.serialize(obj)))
    clone = pynn.saving.deserialize(serialized, serialized["module"])
    assert type(clone) is type(obj)
    assert clone.get_config() == obj.get_config()
    if hasattr(obj, "spec"):
        assert clone.spec() == obj.spec()


def test_deserializing_never_reaches_outside_pynn():
    for config in (
        {"class_name": "Popen", "config": {"args": ["true"]}},
        {"class_name": "__import__", "config": {}},
        {"class_name": "Layer", "config": {"name": 3}},
    ):
        with pytest.raises(ValueError):
            pynn.saving.deserialize(config, "pynn.layers")
    with pytest.raises(ValueError, match="Invalid config for Dense"):
        pynn.saving.deserialize({"class_name": "Dense", "config": {"unit": 3}}, "pynn.layers")
