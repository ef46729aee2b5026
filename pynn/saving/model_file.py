"""`.pynn` model files and `.weights.safetensors` weight files.

A model file is a zip archive (stored, not compressed) of three members:

- `metadata.json`: the format name and version, the pynn version, the date;
- `config.json`: the architecture and the compile settings, as `{"class_name", "config"}` dicts;
- `model.weights.safetensors`: every weight (`layers/<index>/vars/<index>`, the layers that hold
  weights numbered as `model.weights` orders them: a model inside a model by its own layers, a
  shared layer once) and the optimizer's state (`optimizer/vars/<slot>`, its iterations in the
  safetensors metadata).

Reading checks every size against the bytes actually present before it allocates anything, and
reports anything malformed as `ValueError`.
"""

from __future__ import annotations

import functools
import io
import json
import os
import time
import zipfile

import numpy as np

from pynn import _core, _graph
from pynn.saving.atomic import atomic_file
from pynn.saving.serialization import deserialize, nesting_checked, serialize
from pynn.saving.weight_budget import weight_budget

FORMAT = "pynn.model"
FORMAT_VERSION = 1
MODEL_SUFFIX = ".pynn"
WEIGHTS_SUFFIX = ".weights.safetensors"
_METADATA, _CONFIG, _WEIGHTS = "metadata.json", "config.json", "model.weights.safetensors"
_ITERATIONS = "optimizer_iterations"
_OPTIMIZER_PREFIX = "optimizer/vars/"
_MODEL_CLASSES = ("Sequential", "Functional", "Model")
#: The optimizer's step counter is an int64 in Keras.
_MAX_ITERATIONS = 2**63 - 1


def _weight_name(layer_index: int, weight_index: int) -> str:
    return f"layers/{layer_index}/vars/{weight_index}"


#: File kinds of Keras that pynn does not read or write yet.
_KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")


def refuse_keras_format(filepath) -> None:
    """Raises `NotImplementedError` for a path of Keras's own formats (`.keras`, `.h5`)."""
    path = str(os.fspath(filepath))
    if path.lower().endswith(_KERAS_SUFFIXES):
        raise NotImplementedError(
            f"pynn does not read or write Keras's `.keras` and `.h5` files yet "
            f"(filepath={filepath!r}). Save a model to a `{MODEL_SUFFIX}` file and weights to a "
            f"`{WEIGHTS_SUFFIX}` file."
        )


def _check_suffix(filepath, suffix: str, what: str) -> str:
    refuse_keras_format(filepath)
    path = os.fspath(filepath)
    if not str(path).endswith(suffix):
        raise ValueError(
            f"The filepath of {what} must end in `{suffix}`. Received: filepath={filepath!r}"
        )
    return path


# Saving


def _weight_tensors(model) -> list[tuple[str, tuple[int, ...], object]]:
    """Each weight's name, shape and a function that reads it from the engine."""
    engine, tensors, index = model._engine, [], 0
    for i, layer in enumerate(_graph.flat_layers(model)):
        for j, shape in enumerate(layer._weight_shapes):
            tensors.append((_weight_name(i, j), shape, functools.partial(engine.weight, index)))
            index += 1
    return tensors


def _optimizer_tensors(model):
    """The optimizer's iterations and its slots as `(name, shape, read)`, or None when it has
    no state yet."""
    saved = model._saved_optimizer_state
    if saved is not None:
        iterations, slots = saved
        reads = [functools.partial(np.asarray, slot) for slot in slots]
    elif model._compiled_outputs is None:  # never trained since compile: no state yet
        return None
    else:
        engine = model._engine
        iterations = engine.iterations()
        reads = [
            functools.partial(engine.optimizer_slot, k) for k in range(engine.optimizer_slots())
        ]
    shape = (model.count_params(),)
    slots = [(f"{_OPTIMIZER_PREFIX}{k}", shape, read) for k, read in enumerate(reads)]
    return iterations, slots


def _write_tensors(stream, tensors, metadata=None) -> None:
    """A safetensors file of `tensors` (`(name, shape, read)`), each read from the engine and
    written in turn, so that saving holds one weight's copy at a time, never the model's."""
    stream.write(
        _core.tensor_file_header([(name, list(shape)) for name, shape, _ in tensors], metadata)
    )
    for name, shape, read in tensors:
        values = np.asarray(read(), dtype="<f4")
        if values.shape != tuple(shape):
            raise RuntimeError(f"tensor '{name}' changed shape while it was saved")
        stream.write(memoryview(np.ascontiguousarray(values)).cast("B"))


def _refuse_layers_in_two_models(model) -> None:
    """A layer (or a model) with weights inside two of the models a file holds would be rebuilt
    twice from the config, each with weights of its own: refused, naming it. (One without
    weights, such as an `Input` both models start from, rebuilds twice harmlessly.)"""
    from pynn.models import Model

    owners: dict[int, list[str]] = {}

    def walk(owner) -> None:
        for layer in owner.layers:
            names = owners.setdefault(id(layer), [])
            names.append(owner.name)
            if len(names) == 2 and layer.count_params():
                raise NotImplementedError(
                    f"Layer '{layer.name}' is inside both model '{names[0]}' and model "
                    f"'{names[1]}': pynn does not save a layer shared across models inside a "
                    "model yet (each would load with weights of its own)."
                )
            if len(names) == 1 and isinstance(layer, Model):
                walk(layer)

    walk(model)


def save_model(model, filepath, overwrite: bool = True, training_state=None) -> None:
    """Writes `model` (architecture, weights, compile settings, optimizer state) to a `.pynn`
    file, atomically. `training_state` (a JSON dict, e.g. the epoch a backup was taken at) is
    stored in the same file, so that it can never disagree with the weights. The weights go
    straight from the engine to the file, one at a time."""
    path = _check_suffix(filepath, MODEL_SUFFIX, "a saved model")
    model._require_built()
    _refuse_layers_in_two_models(model)
    config = serialize(model)
    config["compile_config"] = model.get_compile_config()
    tensors = _weight_tensors(model)
    file_metadata = {}
    optimizer = _optimizer_tensors(model)
    if optimizer is not None:
        iterations, slots = optimizer
        tensors += slots
        file_metadata[_ITERATIONS] = str(int(iterations))
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "pynn_version": _version(),
        "date_saved": time.strftime("%Y-%m-%d@%H:%M:%S"),
    }
    if training_state is not None:
        metadata["training_state"] = training_state
    with atomic_file(path, overwrite) as file:
        with zipfile.ZipFile(file, "w", zipfile.ZIP_STORED) as archive:
            archive.writestr(_METADATA, json.dumps(metadata))
            archive.writestr(_CONFIG, json.dumps(config))
            with archive.open(_WEIGHTS, "w", force_zip64=True) as member:
                _write_tensors(member, tensors, file_metadata)


def save_weights(model, filepath, overwrite: bool = True) -> None:
    """Writes `model`'s weights to a `.weights.safetensors` file, atomically, one weight at a
    time."""
    path = _check_suffix(filepath, WEIGHTS_SUFFIX, "a weights file")
    model._require_built()
    with atomic_file(path, overwrite) as file:
        _write_tensors(file, _weight_tensors(model))


def _version() -> str:
    from pynn import __version__

    return __version__


# Loading


def _read_file(filepath) -> tuple[str, bytes]:
    refuse_keras_format(filepath)
    path = os.fspath(filepath)
    if not os.path.exists(path):
        raise ValueError(f"File not found: filepath={filepath!r}. Please ensure the file exists.")
    if os.path.isdir(path):
        raise ValueError(f"filepath={filepath!r} is a directory, not a model or weights file.")
    if not os.path.isfile(path):
        # A FIFO or a device would block or never end: only regular files are read.
        raise ValueError(
            f"filepath={filepath!r} is not a regular file (a pipe, socket or device); pynn "
            "reads model and weights files only."
        )
    with open(path, "rb") as file:
        return path, file.read()


def _member(archive: zipfile.ZipFile, name: str, size: int, path: str) -> bytes:
    """One member's bytes, after checking that it is stored whole in the archive."""
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise ValueError(f"{path} is not a pynn model file: it has no '{name}'.") from None
    if info.compress_type != zipfile.ZIP_STORED or info.file_size > size:
        raise ValueError(f"{path} is corrupted: member '{name}' declares an impossible size.")
    return archive.read(name)


def _json(data: bytes, name: str, path: str) -> dict:
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is corrupted: '{name}' is not valid JSON ({error}).") from None
    except RecursionError:
        raise ValueError(f"{path} is corrupted: '{name}' nests its JSON too deeply.") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path} is corrupted: '{name}' must hold a JSON object.")
    return value


def _open(path: str, data: bytes) -> tuple[dict, dict, bytes]:
    """The metadata, the config and the tensor bytes of a model file."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = [_member(archive, name, len(data), path) for name in (_METADATA, _CONFIG)]
        tensors = _member(archive, _WEIGHTS, len(data), path)
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        EOFError,
        NotImplementedError,
        RuntimeError,  # zipfile's "encrypted, password required"
    ) as error:
        raise ValueError(f"{path} is not a valid pynn model file: {error}") from None
    metadata, config = (_json(m, n, path) for m, n in zip(members, (_METADATA, _CONFIG)))
    if metadata.get("format") != FORMAT:
        raise ValueError(f"{path} is not a pynn model file (format {metadata.get('format')!r}).")
    version = metadata.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError(f"{path} is corrupted: invalid format version {version!r}.")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{path} has format version {version!r}, written by a newer pynn "
            f"({metadata.get('pynn_version')!r}); this pynn ({_version()}) reads versions up to "
            f"{FORMAT_VERSION}. Upgrade pynn to load it."
        )
    return metadata, config, tensors


def _build(config: dict, tensors: dict[str, np.ndarray], path: str):
    """The model `config` describes, after checking that `tensors` hold exactly its weights:
    no model of more weights than the file holds is ever built."""
    if config.get("class_name") not in _MODEL_CLASSES or not isinstance(config.get("config"), dict):
        raise ValueError(f"{path}: the config does not describe a Sequential or functional model.")
    stored = sum(a.size for name, a in tensors.items() if name.startswith("layers/"))
    with weight_budget(stored, path), nesting_checked(path):
        model = deserialize(config, "pynn.models")
    model._require_built()
    if model.count_params() != stored:
        raise ValueError(
            f"{path}: the architecture has {model.count_params()} weight values, but the file "
            f"holds {stored}."
        )
    return model


def _set_weights(model, tensors: dict[str, np.ndarray], path: str) -> None:
    """Sets each layer's weights from `tensors`, checking names and shapes."""
    weights, expected = [], set()
    for i, layer in enumerate(_graph.flat_layers(model)):
        for j, shape in enumerate(layer._weight_shapes):
            name = _weight_name(i, j)
            if name not in tensors:
                raise ValueError(f"{path} has no weight {j} for layer {i} ('{layer.name}').")
            if tuple(tensors[name].shape) != tuple(shape):
                raise ValueError(
                    f"{path}: weight {j} of layer {i} ('{layer.name}') has shape "
                    f"{tuple(tensors[name].shape)}, but the model expects {tuple(shape)}."
                )
            weights.append(tensors[name])
            expected.add(name)
    extra = sorted(n for n in tensors if n.startswith("layers/") and n not in expected)
    if extra:
        raise ValueError(f"{path} holds weights the model does not have: {', '.join(extra[:5])}.")
    model.set_weights(weights)


def _decode(data: bytes) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    tensors, metadata = _core.decode_tensors(data)
    return dict(tensors), metadata


def load_model(filepath, compile: bool = True):
    """The model saved in a `.pynn` file, with its weights, and (with `compile`) compiled with
    its optimizer's state, ready to resume training where it stopped."""
    path, data = _read_file(filepath)
    _, config, tensor_bytes = _open(path, data)
    tensors, tensor_metadata = _decode(tensor_bytes)
    model = _build(config, tensors, path)
    _set_weights(model, tensors, path)
    compile_config = config.get("compile_config")
    if compile and compile_config is not None:
        model.compile_from_config(compile_config)
        state = _optimizer_slots(model, tensors, tensor_metadata, path)
        if state is not None:
            model._saved_optimizer_state = state
            model.optimizer._restored_iterations = state[0]
    return model


def _optimizer_slots(model, tensors, metadata, path):
    """The optimizer's `(iterations, [slots])` from the file, or None when none was saved (SGD
    without momentum saves its iterations and no slot)."""
    slots = sorted(
        (int(name[len(_OPTIMIZER_PREFIX) :]), array)
        for name, array in tensors.items()
        if name.startswith(_OPTIMIZER_PREFIX) and _is_count(name[len(_OPTIMIZER_PREFIX) :])
    )
    if not slots and _ITERATIONS not in metadata:
        return None
    n_weights = model.count_params()
    if [k for k, _ in slots] != list(range(len(slots))) or any(
        a.ndim != 1 or a.size != n_weights for _, a in slots
    ):
        raise ValueError(f"{path}: the optimizer state does not match the model's weights.")
    iterations = metadata.get(_ITERATIONS, "")
    if not _is_count(iterations) or int(iterations) > _MAX_ITERATIONS:
        raise ValueError(
            f"{path}: the optimizer state has no valid iteration count (an integer from 0 to "
            f"2**63 - 1, as Keras's int64 counter holds); got {iterations[:30]!r}."
        )
    return int(iterations), [a for _, a in slots]


def _is_count(text: str) -> bool:
    """Whether `text` is a non-negative integer of at most 19 ASCII digits."""
    return text.isascii() and text.isdigit() and len(text) <= 19


def restore_training(model, filepath) -> dict:
    """Sets `model`'s weights and optimizer state from a model file of the same architecture
    (a backup); returns the file's training state."""
    path, data = _read_file(filepath)
    metadata, _, tensor_bytes = _open(path, data)
    state = metadata.get("training_state")
    if not isinstance(state, dict) or not isinstance(state.get("epoch"), int):
        raise ValueError(f"{path} is not a training backup (it has no training state).")
    tensors, tensor_metadata = _decode(tensor_bytes)
    _set_weights(model, tensors, path)
    slots = _optimizer_slots(model, tensors, tensor_metadata, path)
    if slots is not None:
        if model._compiled_outputs is None:
            model._saved_optimizer_state = slots
            model.optimizer._restored_iterations = slots[0]
        else:
            model._engine.set_optimizer_state(*slots)
    return state


def load_weights(model, filepath) -> None:
    """Sets `model`'s weights from a `.weights.safetensors` file or a `.pynn` model file."""
    path, data = _read_file(filepath)
    model._require_built()
    if path.endswith(MODEL_SUFFIX):
        data = _open(path, data)[2]
    elif not path.endswith(WEIGHTS_SUFFIX):
        raise ValueError(
            f"Weights are loaded from `{WEIGHTS_SUFFIX}` or `{MODEL_SUFFIX}` files. "
            f"Received: filepath={filepath!r}"
        )
    tensors, _ = _decode(data)
    _set_weights(model, tensors, path)
