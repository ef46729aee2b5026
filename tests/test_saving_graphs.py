"""Functional and nested models in `.pynn` files, weight files and training backups: a round
trip keeps every weight, prediction and the optimizer's state bit for bit, training resumed
from a file equals an uninterrupted run, and a shared layer's weights are stored once."""

import json
import zipfile

import config_models
import functional_models
import multi_io_models
import numpy as np
import pytest

import pynn
from pynn import layers
from pynn.callbacks import BackupAndRestore, ModelCheckpoint
from pynn.utils import set_random_seed


def _functional_case(name):
    def compiled():
        model = functional_models.BUILDERS[name](pynn)
        model.compile(optimizer=pynn.optimizers.Adam(0.01), loss="mse", metrics=["mae"])
        return model

    def data(model, rng, n):
        x = rng.normal(size=(n, *model.input_shape[1:])).astype("float32")
        return x, rng.normal(size=(n, *model.output_shape[1:])).astype("float32")

    return compiled, data


def _multi_io_case(name):
    builder, loss, loss_weights, metrics = multi_io_models.CASES[name]

    def compiled():
        model = builder(pynn)
        model.compile(
            optimizer=pynn.optimizers.RMSprop(0.01, momentum=0.5),
            loss=loss,
            loss_weights=loss_weights,
            metrics=metrics,
        )
        return model

    def data(model, rng, n):
        return multi_io_models.data(name, model, rng, n)

    return compiled, data


CASES = {
    **{name: _functional_case(name) for name in functional_models.BUILDERS},
    **{name: _multi_io_case(name) for name in multi_io_models.CASES},
}


def _flat(values):
    if isinstance(values, dict):
        return [values[key] for key in sorted(values)]
    return values if isinstance(values, list) else [values]


def _assert_same(a, b):
    for x, y in zip(_flat(a), _flat(b), strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_saved_graph_model_loads_and_resumes_as_an_uninterrupted_run(tmp_path, name):
    compiled, data = CASES[name]
    set_random_seed(3)
    model = compiled()
    x, y = data(model, np.random.default_rng(0), 24)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    model.save(tmp_path / "model.pynn")

    loaded = pynn.models.load_model(tmp_path / "model.pynn")
    assert type(loaded) is type(model)
    assert loaded.get_config() == model.get_config()
    _assert_same(loaded.get_weights(), model.get_weights())
    _assert_same(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.optimizer.iterations == model.optimizer.iterations == 6

    set_random_seed(11)
    original = model.fit(x, y, batch_size=8, epochs=4, initial_epoch=2, verbose=0)
    set_random_seed(11)
    resumed = loaded.fit(x, y, batch_size=8, epochs=4, initial_epoch=2, verbose=0)
    assert original.history == resumed.history
    _assert_same(loaded.get_weights(), model.get_weights())


def _stored_weights(path):
    with zipfile.ZipFile(path) as archive:
        tensors, _ = pynn._core.decode_tensors(archive.read("model.weights.safetensors"))
    return dict(tensors)


def test_shared_layers_and_nested_models_store_each_weight_once(tmp_path):
    model = multi_io_models.siamese(pynn)  # one Dense for both inputs
    model.save(tmp_path / "siamese.pynn")
    stored = _stored_weights(tmp_path / "siamese.pynn")
    assert sorted(stored) == [f"layers/{i}/vars/{j}" for i in (0, 3) for j in (0, 1)]
    _assert_same([stored[f"layers/{i}/vars/{j}"] for i in (0, 3) for j in (0, 1)], model.weights)

    # Models inside a model, one of them called twice: each weight once.
    for nested in (functional_models.nested(pynn), config_models.nested_output(pynn)):
        nested.save(tmp_path / "nested.pynn")
        assert len(_stored_weights(tmp_path / "nested.pynn")) == len(nested.weights)
        loaded = pynn.models.load_model(tmp_path / "nested.pynn")
        x = np.random.default_rng(1).normal(size=(5, *nested.input_shape[1:])).astype("float32")
        _assert_same(loaded.predict(x, verbose=0), nested.predict(x, verbose=0))
    assert len(nested.weights) == 4


def test_an_encoder_and_the_autoencoder_that_shares_its_layers_save_and_load(tmp_path):
    """The functional API guide's encoder and autoencoder: one graph, two models."""
    image = pynn.Input((6, 6, 1), name="img")
    h = layers.Conv2D(4, 3, activation="relu")(image)
    code = layers.GlobalMaxPooling2D()(h)
    encoder = pynn.Model(image, code, name="encoder")
    decoded = layers.Dense(36, activation="sigmoid")(layers.Dense(8, activation="relu")(code))
    autoencoder = pynn.Model(image, layers.Reshape((6, 6, 1))(decoded), name="autoencoder")
    x = np.random.default_rng(2).random((16, 6, 6, 1)).astype("float32")
    autoencoder.compile(optimizer="adam", loss="mse")
    autoencoder.fit(x, x, epochs=2, verbose=0)
    encoder.save(tmp_path / "encoder.pynn")
    autoencoder.save(tmp_path / "autoencoder.pynn")

    loaded_encoder = pynn.models.load_model(tmp_path / "encoder.pynn")
    loaded = pynn.models.load_model(tmp_path / "autoencoder.pynn")
    assert loaded.count_params() == autoencoder.count_params()
    _assert_same(loaded.predict(x, verbose=0), autoencoder.predict(x, verbose=0))
    _assert_same(loaded_encoder.predict(x, verbose=0), encoder.predict(x, verbose=0))


def test_models_inside_a_sequential_save_and_load(tmp_path):
    inner = pynn.Sequential([layers.Dense(4, activation="relu", name="d")], name="inner")
    block_in = pynn.Input((4,))
    block = pynn.Model(block_in, layers.Dense(2, name="e")(block_in), name="block")
    model = pynn.Sequential([pynn.Input((3,)), inner, block, layers.Dense(1)], name="outer")
    model.save(tmp_path / "outer.pynn")
    loaded = pynn.models.load_model(tmp_path / "outer.pynn")
    assert [type(layer).__name__ for layer in loaded.layers] == [
        "Sequential",
        "Functional",
        "Dense",
    ]
    x = np.random.default_rng(0).normal(size=(4, 3)).astype("float32")
    _assert_same(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_weight_files_of_graph_models(tmp_path):
    model = multi_io_models.two_in_two_out(pynn)
    model.save_weights(tmp_path / "w.weights.safetensors")
    other = multi_io_models.two_in_two_out(pynn)
    other.load_weights(tmp_path / "w.weights.safetensors")
    _assert_same(other.get_weights(), model.get_weights())
    wrong = multi_io_models.siamese(pynn)
    with pytest.raises(ValueError, match="has shape|has no weight|holds weights"):
        wrong.load_weights(tmp_path / "w.weights.safetensors")


def _stop_at(epoch_to_stop):
    class Stop(pynn.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == epoch_to_stop:
                raise KeyboardInterrupt  # as a Ctrl-C would: the backup stays

    return Stop()


def test_backup_and_restore_resumes_a_graph_model_as_an_uninterrupted_run(tmp_path):
    compiled, data = CASES["weighted_dicts"]
    x, y = data(compiled(), np.random.default_rng(0), 24)

    def run(callbacks):
        set_random_seed(5)
        model = compiled()
        history = model.fit(x, y, batch_size=8, epochs=5, verbose=0, callbacks=callbacks)
        return model, history

    uninterrupted, full = run([])
    with pytest.raises(KeyboardInterrupt):
        run([BackupAndRestore(tmp_path / "backup"), _stop_at(2)])
    resumed, rest = run([BackupAndRestore(tmp_path / "backup")])
    assert {key: values[3:] for key, values in full.history.items()} == rest.history
    _assert_same(resumed.get_weights(), uninterrupted.get_weights())


def test_model_checkpoint_saves_a_graph_model_each_epoch(tmp_path):
    compiled, data = CASES["dict_outputs"]
    model = compiled()
    x, y = data(model, np.random.default_rng(0), 24)
    saved = {}

    class Remember(pynn.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            saved[epoch] = model.predict(x, verbose=0)

    path = str(tmp_path / "model_{epoch}.pynn")
    model.fit(x, y, epochs=2, verbose=0, callbacks=[ModelCheckpoint(path), Remember()])
    for epoch in (0, 1):
        loaded = pynn.models.load_model(path.format(epoch=epoch + 1))
        _assert_same(loaded.predict(x, verbose=0), saved[epoch])


def test_a_layer_inside_two_models_of_a_file_is_refused_naming_it(tmp_path):
    shared = layers.Dense(3, name="shared")
    inner_in = pynn.Input((3,))
    inner = pynn.Model(inner_in, shared(inner_in), name="inner")
    x = pynn.Input((3,))
    model = pynn.Model(x, inner(shared(x)), name="outer")
    with pytest.raises(NotImplementedError, match="Layer 'shared' is inside both model"):
        model.save(tmp_path / "m.pynn")
    # Without weights, a layer in two models (here the Input both start from) is no trouble.
    block = pynn.Model(x, layers.Dense(3, name="d")(x), name="block")
    both = pynn.Model(x, layers.Dense(1, name="head")(block(x)), name="both")
    both.save(tmp_path / "both.pynn")
    loaded = pynn.models.load_model(tmp_path / "both.pynn")
    values = np.ones((2, 3), np.float32)
    _assert_same(loaded.predict(values, verbose=0), both.predict(values, verbose=0))


def test_an_architecture_larger_than_its_weights_is_refused_before_it_is_built(tmp_path):
    model = functional_models.shared_layer(pynn)
    model.save(tmp_path / "m.pynn")
    with zipfile.ZipFile(tmp_path / "m.pynn") as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(members["config.json"])
    out = next(layer for layer in config["config"]["layers"] if layer["name"] == "out")
    out["config"]["units"] = 10**9  # would need gigabytes
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(tmp_path / "big.pynn", "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(
        ValueError, match="the architecture has 9000000020 weight values, but the file holds 38"
    ):
        pynn.models.load_model(tmp_path / "big.pynn")
