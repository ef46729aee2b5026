"""Objects carrying code written outside pynn (a layer's `call`, a loss's `call`, a metric's
`update_state`, ...). The engine computes every built-in object from its config and never calls
back into Python, so such code would be silently skipped: it is refused instead, saying so."""

from __future__ import annotations

#: Methods a subclass may define without changing what the engine computes.
_HARMLESS = frozenset({"__init__", "get_config", "from_config", "__repr__", "__str__"})


def _outside_pynn(cls: type) -> bool:
    return not cls.__module__.split(".")[0] == "pynn"


def custom_methods(obj) -> list[str]:
    """The methods that classes outside pynn define in `obj`'s class hierarchy."""
    names = []
    for cls in type(obj).__mro__:
        if cls is object or not _outside_pynn(cls):
            continue
        names += [
            name
            for name, value in vars(cls).items()
            if callable(value) and name not in _HARMLESS and name not in names
        ]
    return names


def refuse_custom(obj, kind: str) -> None:
    """Raises `NotImplementedError` when `obj` (a `kind`: "layer", "loss", ...) runs code
    written outside pynn."""
    methods = custom_methods(obj)
    if methods:
        listed = ", ".join(f"`{name}`" for name in sorted(methods))
        raise NotImplementedError(
            f"{type(obj).__name__} is a custom {kind} (it defines {listed}): pynn does not run "
            f"code written in Python inside a {kind} yet, only its built-in ones, which the "
            "engine computes from their configuration."
        )


def refuse_function(function, kind: str) -> None:
    """Raises `NotImplementedError` for a user's Python function given as a `kind`."""
    name = getattr(function, "__name__", repr(function))
    raise NotImplementedError(
        f"`{name}` is a custom {kind} function: pynn does not run {kind} functions written in "
        f"Python yet; give one of pynn's built-in ones by name or class."
    )
