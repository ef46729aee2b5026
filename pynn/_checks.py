"""Checks of the numbers a user passes to constructors (sizes, seeds, hyperparameters), so that
what reaches the engine is a value its float32 math can take, and a bad one is a `ValueError`
naming the argument, in Keras's words, never a message from the engine's spec parser."""

from __future__ import annotations

import math
import numbers

import numpy as np

#: The largest finite float32: hyperparameters and initial values become float32 in the engine.
FLOAT32_MAX = float(np.finfo(np.float32).max)
#: Sizes (units, filters, kernel sizes) are at most this: a signed 64-bit integer, as config files
#: and the engine carry them. Larger sizes no machine has memory for.
MAX_SIZE = 2**63 - 1
#: Seeds are unsigned 64-bit integers.
MAX_SEED = 2**64 - 1


def is_integer(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _received(name: str, value) -> str:
    return f"Received: {name}={value!r}"


def real(
    value,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    why: str = "",
) -> float:
    """`value` as a float, after checking that it is a finite number float32 can hold and lies
    within `[low, high]` (an open end with `low_open` / `high_open`). `why` says what a value
    outside the bounds would do."""
    if not is_real(value):
        raise ValueError(f"Argument `{name}` must be a number. {_received(name, value)}")
    number = float(value)
    if not math.isfinite(number) or abs(number) > FLOAT32_MAX:
        raise ValueError(
            f"Argument `{name}` must be a finite number within float32's range "
            f"(|{name}| <= {FLOAT32_MAX:.4g}). {_received(name, value)}"
        )
    below = low is not None and (number <= low if low_open else number < low)
    above = high is not None and (number >= high if high_open else number > high)
    if below or above:
        left = "-inf" if low is None else f"{low:g}"
        right = "inf" if high is None else f"{high:g}"
        interval = f"{'(' if low_open or low is None else '['}{left}, {right}"
        interval += ")" if high_open or high is None else "]"
        reason = f" {why}" if why else ""
        raise ValueError(
            f"Argument `{name}` must be in {interval}.{reason} {_received(name, value)}"
        )
    return number


def size(value, name: str, *, minimum: int = 1) -> int:
    """A size argument (units, filters, a kernel size): an integer from `minimum` (1: a positive
    integer) up to `MAX_SIZE`."""
    expected = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
    if is_integer(value) and value > MAX_SIZE:
        expected += " below 2**63 (no machine holds more values)"
    if not is_integer(value) or not minimum <= value <= MAX_SIZE:
        raise ValueError(
            f"Received an invalid value for `{name}`, expected {expected}. {_received(name, value)}"
        )
    return int(value)


def seed(value, name: str = "seed") -> int | None:
    """A seed: `None` or an integer in `[0, 2**64)`."""
    if value is None:
        return None
    if not is_integer(value) or not 0 <= value <= MAX_SEED:
        raise ValueError(
            f"Argument `{name}` must be None or an integer in [0, 2**64). {_received(name, value)}"
        )
    return int(value)


def refuse_unless_default(owner, **arguments) -> None:
    """Refuses an argument of Keras's that pynn takes only at its default (`None` or `False`):
    Keras's configs name it, and another value would be silently ignored."""
    for argument, value in arguments.items():
        if value is not None and value is not False:
            raise NotImplementedError(
                f"pynn does not support `{argument}` yet: {type(owner).__name__} takes "
                f"{argument}={value!r} only at its default."
            )
