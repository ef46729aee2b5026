"""Every public class, function and method of the Keras-facing API has a docstring (a method
overriding a documented one inherits its docstring, as `help()` shows it)."""

import importlib
import inspect

import pytest

PUBLIC_MODULES = [
    "pynn",
    "pynn.activations",
    "pynn.backend",
    "pynn.callbacks",
    "pynn.config",
    "pynn.datasets.fashion_mnist",
    "pynn.distribution",
    "pynn.datasets.iris",
    "pynn.initializers",
    "pynn.layers",
    "pynn.losses",
    "pynn.metrics",
    "pynn.models",
    "pynn.optimizers",
    "pynn.regularizers",
    "pynn.utils",
]


def public_objects():
    for name in PUBLIC_MODULES:
        module = importlib.import_module(name)
        for attribute in getattr(module, "__all__", None) or dir(module):
            obj = getattr(module, attribute, None)
            if attribute.startswith("_") or not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue
            if not obj.__module__.startswith("pynn") or "._" in obj.__module__:
                continue
            yield f"{obj.__module__}.{obj.__qualname__}", obj


def undocumented():
    missing = set()
    for name, obj in public_objects():
        if not (obj.__doc__ or "").strip():
            missing.add(name)
        if inspect.isclass(obj):
            for attribute, member in vars(obj).items():
                if attribute.startswith("_") or not inspect.isfunction(member):
                    continue
                if not inspect.getdoc(getattr(obj, attribute)):
                    missing.add(f"{name}.{attribute}")
    return sorted(missing)


def test_public_api_is_documented():
    assert undocumented() == []


@pytest.mark.parametrize("module", PUBLIC_MODULES)
def test_modules_are_documented(module):
    assert (importlib.import_module(module).__doc__ or "").strip()


def test_core_stubs_match_the_compiled_module():
    """`pynn/_core.pyi` declares exactly what `pynn._core` exports, and `py.typed` ships."""
    import ast
    from pathlib import Path

    import pynn
    from pynn import _core

    folder = Path(pynn.__file__).parent
    assert (folder / "py.typed").exists()
    tree = ast.parse((folder / "_core.pyi").read_text())
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    (engine,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Engine"]
    methods = {n.name for n in engine.body if isinstance(n, ast.FunctionDef)} - {"__init__"}
    exported = {n for n in dir(_core) if not n.startswith("__") and n != "Engine"}
    assert functions == {n for n in exported if callable(getattr(_core, n))}
    assert methods == {n for n in dir(_core.Engine) if not n.startswith("_")}
