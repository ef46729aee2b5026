"""Objects to and from their configs (`keras.saving.serialize_keras_object` and
`deserialize_keras_object`): `{"module", "class_name", "config"}` dicts of plain JSON values,
with Keras's module names, so that a config pynn writes is one Keras reads.

Deserializing looks class names up in pynn's own tables only. It never imports a module,
evaluates code or unpickles, so a config from an untrusted file can build pynn objects and
nothing else.
"""

from __future__ import annotations

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
        "pynn.models": {"Sequential": models.Sequential},
    }


def _module_of(obj) -> str:
    """The Keras module of the public pynn module an object's class belongs to (`pynn.layers`
    for `pynn.layers.dense`, written `keras.layers`; a model, `keras`), so that Keras reads
    the config too. Reading looks classes up by the caller's family, whatever the module says
    (files that pynn wrote with `pynn.*` modules still load)."""
    family = type(obj).__module__.split(".")[1]
    return "keras" if family == "models" else f"keras.{family}"


def serialize(obj) -> dict[str, Any] | None:
    """`obj`'s class and config, or `None` for `None`."""
    if obj is None:
        return None
    class_name = getattr(type(obj), "registered_name", type(obj).__name__)
    return {"module": _module_of(obj), "class_name": class_name, "config": obj.get_config()}


def deserialize(config, module: str):
    """Builds the object `config` describes, from the pynn module `module` only (given as
    `pynn.layers` or as Keras names it, `keras.layers`; `keras` is `pynn.models`)."""
    if module == "keras" or module.startswith("keras."):
        module = "pynn." + (module.split(".")[1] if "." in module else "models")
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


def from_config(cls: type, config: dict[str, Any]):
    """`cls(**config)`, with a wrong or missing argument reported as `ValueError`."""
    try:
        return cls(**config)
    except TypeError as error:
        raise ValueError(f"Invalid config for {cls.__name__}: {error}") from None


def _short(value, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
