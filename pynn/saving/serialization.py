"""Objects to and from their configs (`keras.saving.serialize_keras_object` and
`deserialize_keras_object`): `{"module", "class_name", "config"}` dicts of plain JSON values,
with Keras's module names, so that a config pynn writes is one Keras reads.

Deserializing looks class names up in pynn's own tables only. It never imports a module,
evaluates code or unpickles, so a config from an untrusted file can build pynn objects and
nothing else.
"""

from __future__ import annotations

import contextlib
from typing import Any


def _classes(module, base: type, *abstract: type) -> dict[str, type]:
    """The public classes of a pynn module that build objects of `base`, by name. `base` and the
    other `abstract` classes compute nothing themselves and are left out."""
    return {
        name: value
        for name, value in vars(module).items()
        if isinstance(value, type)
        and issubclass(value, base)
        and value is not base
        and value not in abstract
        and not name.startswith("_")
    }


def _registry() -> dict[str, dict[str, type]]:
    from pynn import initializers, layers, losses, metrics, models, optimizers, regularizers
    from pynn.functional import Functional
    from pynn.layers.kernel_layer import KernelLayer

    return {
        "pynn.layers": _classes(layers, layers.Layer, KernelLayer),
        "pynn.initializers": _classes(initializers, initializers.Initializer),
        "pynn.regularizers": _classes(regularizers, regularizers.Regularizer),
        "pynn.optimizers": _classes(optimizers, optimizers.Optimizer),
        "pynn.losses": _classes(losses, losses.Loss),
        "pynn.metrics": {
            **_classes(metrics, metrics.Metric),
            "LossMetric": metrics._LossMetric,
        },
        "pynn.models": {
            "Sequential": models.Sequential,
            "Functional": Functional,
            # Configs of Keras 2's HDF5 files name a functional model `Model`.
            "Model": Functional,
        },
    }


def _module_of(obj) -> str:
    """The Keras module of the public pynn module an object's class belongs to (`pynn.layers`
    for `pynn.layers.dense`, written `keras.layers`; a Sequential, `keras`), or the class's own
    `_keras_module` (a functional model's), so that Keras reads the config too. Reading looks
    classes up by family, whatever the module says (files that pynn wrote with `pynn.*`
    modules still load)."""
    own = getattr(type(obj), "_keras_module", None)
    if own is not None:
        return own
    family = type(obj).__module__.split(".")[1]
    return "keras" if family == "models" else f"keras.{family}"


def _family(module: str) -> str:
    """The pynn module whose table holds the classes of a config's `module`: `keras.layers`,
    `keras.src.layers.core.dense` and `pynn.layers` are `pynn.layers`; `keras`,
    `keras.src.models.functional` and `pynn.models` are `pynn.models`."""
    parts = module.split(".")
    if parts[0] != "keras":
        return module
    if len(parts) == 1:
        return "pynn.models"
    return "pynn." + (parts[2] if parts[1] == "src" and len(parts) > 2 else parts[1])


def serialize(obj) -> dict[str, Any] | None:
    """`obj`'s class and config, or `None` for `None`."""
    if obj is None:
        return None
    cls = type(obj)
    return {
        "module": _module_of(obj),
        "class_name": getattr(cls, "registered_name", cls.__name__),
        "config": obj.get_config(),
        # Keras writes a name here for the classes it registers by name (`Functional`).
        "registered_name": getattr(cls, "_keras_registered_name", None),
    }


def deserialize(config, module: str):
    """Builds the object `config` describes, from the pynn module `module` only (given as
    `pynn.layers` or as Keras names it, `keras.layers`; `keras` is `pynn.models`)."""
    module = _family(module)
    if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
        raise ValueError(
            f"Expected a dict with a 'class_name' and a 'config' to build a {module} object; "
            f"got {_short(config)}."
        )
    registry = _registry()
    if module not in registry:
        raise ValueError(f"Unknown module {_short(module)}; known: {', '.join(sorted(registry))}.")
    classes = registry[module]
    class_name = config["class_name"]
    if class_name not in classes:
        raise ValueError(
            f"Unknown {module} class {_short(class_name)}. Known: {', '.join(sorted(classes))}."
        )
    arguments = config.get("config", {})
    if not isinstance(arguments, dict):
        raise ValueError(f"The config of '{class_name}' must be a dict; got {_short(arguments)}.")
    return classes[class_name].from_config(arguments)


@contextlib.contextmanager
def nesting_checked(what: str):
    """Reports models nested too deeply to build (a crafted config hundreds of models deep
    exhausts Python's stack) as `ValueError` about `what`, not `RecursionError`."""
    try:
        yield
    except RecursionError:
        raise ValueError(f"{what} nests models inside models too deeply to be built.") from None


def deserialize_layer(config):
    """A layer, or a model inside a model, from its config: the family its `module` names, or
    (a config without one, as Keras 2 wrote) the models' table for a model's class name."""
    module = config.get("module") if isinstance(config, dict) else None
    if module is None and isinstance(config, dict):
        model_classes = _registry()["pynn.models"]
        module = "pynn.models" if config.get("class_name") in model_classes else "pynn.layers"
    if not isinstance(module, str) or _family(module) not in ("pynn.layers", "pynn.models"):
        raise ValueError(f"Expected the config of a layer or a model; got {_short(config)}.")
    return deserialize(config, module)


def serialize_keras_object(obj):
    """`keras.saving.serialize_keras_object`: `obj`'s `{"module", "class_name", "config",
    "registered_name"}` dict (see `serialize`); `None`, strings, numbers and lists of them as
    they are."""
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    if isinstance(obj, (list, tuple)):
        return [serialize_keras_object(item) for item in obj]
    if not hasattr(obj, "get_config"):
        raise ValueError(f"Cannot serialize {_short(obj)} (of type {type(obj).__name__}).")
    return serialize(obj)


def deserialize_keras_object(config, custom_objects=None, safe_mode=True, **kwargs):
    """`keras.saving.deserialize_keras_object`: the object a config of
    `serialize_keras_object` describes, built from pynn's own classes only (the config's
    `module` says which family: `keras.regularizers`, `keras.layers`, ...)."""
    if custom_objects:
        raise NotImplementedError(
            "pynn builds its own classes only and does not take `custom_objects` yet; got "
            f"{', '.join(map(str, custom_objects))}."
        )
    if config is None or isinstance(config, (str, int, float, bool)):
        return config
    if isinstance(config, list):
        return [deserialize_keras_object(item) for item in config]
    module = config.get("module") if isinstance(config, dict) else None
    if not isinstance(module, str):
        raise ValueError(
            f"Expected a dict with a 'module', a 'class_name' and a 'config'; got {_short(config)}."
        )
    with nesting_checked("The config"):
        return deserialize(config, module)


def from_config(cls: type, config: dict[str, Any]):
    """`cls(**config)`, with a wrong or missing argument reported as `ValueError`."""
    try:
        return cls(**config)
    except TypeError as error:
        raise ValueError(f"Invalid config for {cls.__name__}: {error}") from None


def _short(value, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
