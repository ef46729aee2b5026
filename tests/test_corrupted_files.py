"""A model or weights file that is truncated, corrupted, from a newer format, or that lies about
its shapes or sizes raises ValueError: no crash, no read past the data, no huge allocation."""

import io
import json
import struct
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pynn
from pynn import layers


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """The bytes of a small trained model's file."""
    model = pynn.Sequential(
        [pynn.Input((6, 6, 1)), layers.Conv2D(2, 3), layers.Flatten(), layers.Dense(3)]
    )
    model.compile(optimizer="adam", loss="mse")
    model.fit(np.ones((8, 6, 6, 1), np.float32), np.zeros((8, 3), np.float32), verbose=0)
    path = tmp_path_factory.mktemp("saved") / "m.pynn"
    model.save(path)
    return path.read_bytes()


def _members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _archive(members: dict[str, bytes], compression=zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _load(tmp_path, data: bytes, name="m.pynn"):
    path = tmp_path / name
    path.write_bytes(data)
    return pynn.models.load_model(path)


def _edit_json(data: bytes, member: str, edit) -> bytes:
    members = _members(data)
    value = json.loads(members[member])
    edit(value)
    members[member] = json.dumps(value).encode()
    return _archive(members)


def test_the_fixture_loads(tmp_path, saved):
    assert _load(tmp_path, saved).count_params() == 2 * 9 + 2 + 32 * 3 + 3


@pytest.mark.parametrize("keep", [0, 1, 10, 100, 0.5, 0.9, -1])
def test_truncated_files(tmp_path, saved, keep):
    size = int(len(saved) * keep) if isinstance(keep, float) else keep % len(saved)
    with pytest.raises(ValueError):
        _load(tmp_path, saved[:size])


def test_missing_files_and_other_formats(tmp_path, saved):
    with pytest.raises(ValueError, match="File not found"):
        pynn.models.load_model(tmp_path / "absent.pynn")
    with pytest.raises(ValueError, match="not a valid pynn model file"):
        _load(tmp_path, b"just some text")
    members = _members(saved)
    del members["config.json"]
    with pytest.raises(ValueError, match="has no 'config.json'"):
        _load(tmp_path, _archive(members))
    with pytest.raises(ValueError, match="impossible size"):
        _load(tmp_path, _archive(_members(saved), zipfile.ZIP_DEFLATED))


def test_a_member_flagged_as_encrypted(tmp_path, saved):
    # Found by the mutation test below: zipfile raises RuntimeError for it.
    data = bytearray(saved)
    data[6] |= 1  # the first local header's "encrypted" flag
    central = data.find(b"PK\x01\x02")
    data[central + 8] |= 1  # and the central directory's
    with pytest.raises(ValueError, match="encrypted"):
        _load(tmp_path, bytes(data))


def test_a_newer_format_version_asks_for_an_upgrade(tmp_path, saved):
    data = _edit_json(saved, "metadata.json", lambda m: m.update(format_version=2))
    with pytest.raises(ValueError, match="format version 2.*Upgrade pynn"):
        _load(tmp_path, data)
    data = _edit_json(saved, "metadata.json", lambda m: m.update(format="keras"))
    with pytest.raises(ValueError, match="not a pynn model file"):
        _load(tmp_path, data)


def test_a_config_that_does_not_match_the_weights(tmp_path, saved):
    def widen(config):
        config["config"]["layers"][3]["config"]["units"] = 4

    with pytest.raises(ValueError, match="has 152 weight values, but the file holds 119"):
        _load(tmp_path, _edit_json(saved, "config.json", widen))


def test_absurd_sizes_are_refused_before_allocating(tmp_path, saved):
    def huge(config):
        config["config"]["layers"][3]["config"]["units"] = 10**12

    # 32e12 weights would need ~128 TB: refused from the count, nothing allocated.
    with pytest.raises(ValueError, match="weight values, but the file holds 119"):
        _load(tmp_path, _edit_json(saved, "config.json", huge))

    # A safetensors header declaring a tensor far larger than its data.
    members = _members(saved)
    tensors = members["model.weights.safetensors"]
    n = struct.unpack("<Q", tensors[:8])[0]
    header = json.loads(tensors[8 : 8 + n])
    header["layers/0/vars/0"]["shape"] = [10**6, 10**6]
    encoded = json.dumps(header).encode()
    members["model.weights.safetensors"] = (
        struct.pack("<Q", len(encoded)) + encoded + tensors[8 + n :]
    )
    with pytest.raises(ValueError, match="Invalid tensor data"):
        _load(tmp_path, _archive(members))

    # A header length beyond the data.
    members["model.weights.safetensors"] = struct.pack("<Q", 2**62) + tensors[8:]
    with pytest.raises(ValueError, match="Invalid tensor data"):
        _load(tmp_path, _archive(members))


def test_weights_of_the_wrong_dtype(tmp_path, saved):
    members = _members(saved)
    tensors = members["model.weights.safetensors"]
    n = struct.unpack("<Q", tensors[:8])[0]
    header = tensors[8 : 8 + n].replace(b'"F32"', b'"I32"', 1)
    members["model.weights.safetensors"] = tensors[:8] + header + tensors[8 + n :]
    with pytest.raises(ValueError, match="pynn stores float32"):
        _load(tmp_path, _archive(members))


def test_a_weights_file_that_is_not_safetensors(tmp_path):
    model = pynn.Sequential([pynn.Input((2,)), layers.Dense(1)])
    path = tmp_path / "w.weights.safetensors"
    path.write_bytes(b"\x00" * 3)
    with pytest.raises(ValueError, match="Invalid tensor data"):
        model.load_weights(path)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    edits=st.lists(
        st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=8
    )
)
def test_mutated_files_load_or_raise_value_error(tmp_path, saved, edits):
    data = bytearray(saved)
    for where, value in edits:
        data[int(where * len(data))] = value
    try:
        model = _load(tmp_path, bytes(data))
    except ValueError:
        return
    # A mutation the format cannot see (e.g. inside a weight) still gives a working model.
    model.predict(np.zeros((2, 6, 6, 1), np.float32), verbose=0)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    member=st.sampled_from(["config.json", "metadata.json"]),
    text=st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=8), children, max_size=4)
        ),
        max_leaves=12,
    ),
)
def test_arbitrary_json_in_a_member_raises_value_error(tmp_path, saved, member, text):
    members = _members(saved)
    members[member] = json.dumps(text).encode()
    with pytest.raises(ValueError):
        _load(tmp_path, _archive(members))


@pytest.fixture(scope="module")
def saved_graph(tmp_path_factory):
    """The bytes of a functional model's file: a shared layer, a merge with a constant, a
    Sequential and a functional block inside."""
    x = pynn.Input((4,), name="x")
    shared = layers.Dense(4, activation="tanh", name="shared")
    h = layers.Add(name="add")([shared(x), shared(shared(x)), np.ones((1, 4), np.float32)])
    inner = pynn.Sequential([pynn.Input((4,)), layers.Dense(3, name="d")], name="inner")
    block_in = pynn.Input((3,), name="block_in")
    block = pynn.Model(block_in, layers.Dense(2, name="e")(block_in), name="block")
    model = pynn.Model(x, [block(inner(h)), layers.Dense(1, name="out")(h)], name="graph")
    path = tmp_path_factory.mktemp("saved") / "graph.pynn"
    model.save(path)
    return path.read_bytes()


def _paths(value, path=()):
    """Every place inside a JSON value, as the keys and indices that lead to it."""
    yield path
    if isinstance(value, (dict, list)):
        for key, item in value.items() if isinstance(value, dict) else enumerate(value):
            yield from _paths(item, (*path, key))


def test_the_graph_fixture_loads(tmp_path, saved_graph):
    model = _load(tmp_path, saved_graph)
    assert [layer.name for layer in model.layers] == ["x", "shared", "add", "inner", "block", "out"]


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    where=st.floats(0, 1, exclude_max=True),
    value=st.recursive(
        st.none() | st.booleans() | st.integers(-3, 10**13) | st.floats() | st.text(max_size=8),
        lambda children: (
            st.lists(children, max_size=3)
            | st.dictionaries(st.text(max_size=8), children, max_size=3)
        ),
        max_leaves=6,
    ),
)
def test_any_part_of_a_functional_config_replaced_loads_or_raises_value_error(
    tmp_path, saved_graph, where, value
):
    config = json.loads(_members(saved_graph)["config.json"])
    paths = list(_paths(config))[1:]
    *parents, last = paths[int(where * len(paths))]
    target = config
    for key in parents:
        target = target[key]
    target[last] = value
    members = _members(saved_graph)
    members["config.json"] = json.dumps(config).encode()
    try:
        model = _load(tmp_path, _archive(members))
    except (ValueError, NotImplementedError):
        return
    model.predict(np.zeros((2, 4), np.float32), verbose=0)


def _models_inside_models(depth: int) -> dict:
    config = {"module": "keras.layers", "class_name": "Dense", "config": {"units": 3}}
    for level in range(depth):
        config = {
            "module": "keras",
            "class_name": "Sequential",
            "config": {
                "name": f"level_{level}",
                "layers": [
                    {
                        "module": "keras.layers",
                        "class_name": "InputLayer",
                        "config": {"batch_shape": [None, 32]},
                    },
                    config,
                ],
            },
        }
    return config


def test_models_nested_hundreds_deep_raise_value_error(tmp_path, saved):
    # 32 * 3 + 3 weight values, as the fixture's last Dense holds: only the nesting is wrong.
    data = _edit_json(saved, "config.json", lambda c: c.update(_models_inside_models(300)))
    with pytest.raises(ValueError, match="nests models inside models too deeply"):
        _load(tmp_path, data)
    with pytest.raises(ValueError, match="nests models inside models too deeply"):
        pynn.models.model_from_json(json.dumps(_models_inside_models(300)))
    assert pynn.models.model_from_json(json.dumps(_models_inside_models(50))).count_params() == 99
