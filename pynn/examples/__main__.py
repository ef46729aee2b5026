"""`python -m pynn.examples`: lists the examples, each with what it shows, and how to run one."""

from __future__ import annotations

import importlib
import pkgutil

import pynn.examples


def examples() -> dict[str, str]:
    """Each example's module name and the first sentence of its docstring."""
    found = {}
    for module in pkgutil.iter_modules(pynn.examples.__path__):
        if module.name.startswith("_"):
            continue
        doc = importlib.import_module(f"pynn.examples.{module.name}").__doc__ or ""
        first_paragraph = " ".join(doc.strip().split("\n\n")[0].split())
        found[module.name] = first_paragraph.split(": ")[0].split(". ")[0].rstrip(".")
    return found


def main() -> None:
    print("The textbook's figures: chapters 4-6 (optimization, regularization, convolutional")
    print("networks) of a deep-learning course's lecture notes written for Keras 3, one example")
    print("each. Run one with `python -m pynn.examples.<name> [--quick]` (`--help` for its")
    print("options). Figures go to ./pynn-figures unless `--out` says otherwise.")
    print()
    listed = examples()
    width = max(map(len, listed))
    for name, summary in listed.items():
        print(f"  {name:<{width}}  {summary}")


if __name__ == "__main__":
    main()
