"""Keras-style automatic names: `dense`, `dense_1`, ..., one counter per prefix per process."""

from __future__ import annotations

import re
from collections import defaultdict

_counters: defaultdict[str, int] = defaultdict(int)


def to_snake_case(name: str) -> str:
    """`MaxPooling2D` -> `max_pooling2d`, as Keras names layers."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def auto_name(prefix: str) -> str:
    """The next free name for `prefix`: the bare prefix first, then `prefix_1`, `prefix_2`, ..."""
    count = _counters[prefix]
    _counters[prefix] += 1
    return prefix if count == 0 else f"{prefix}_{count}"


def reset() -> None:
    _counters.clear()
