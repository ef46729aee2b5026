"""What `fit`, `evaluate` and `predict` print, in Keras 3's format. Training reports once per
epoch (the engine runs a whole epoch per call), so the bar is drawn complete."""

from __future__ import annotations

import sys

_BAR = "━" * 20


def resolve_verbose(verbose) -> int:
    if verbose == "auto":
        return 1
    if verbose not in (0, 1, 2) or isinstance(verbose, bool):
        raise ValueError(f"`verbose` must be 'auto', 0, 1 or 2. Received: verbose={verbose!r}")
    return int(verbose)


def _format_value(value: float) -> str:
    return f"{value:.4e}" if abs(value) <= 1e-3 else f"{value:.4f}"


def _per_step(seconds: float, steps: int) -> str:
    per = seconds / max(steps, 1)
    if per >= 1:
        return f"{per:.0f}s/step"
    if per >= 1e-3:
        return f"{per * 1e3:.0f}ms/step"
    return f"{per * 1e6:.0f}us/step"


def line(steps: int, seconds: float, logs: dict[str, float], verbose: int) -> str:
    """The final progress line of a run of `steps` batches that took `seconds`."""
    metrics = "".join(f" - {k}: {_format_value(v)}" for k, v in logs.items())
    if verbose == 2:
        return f"{steps}/{steps} - {seconds:.0f}s - {_per_step(seconds, steps)}{metrics}"
    return f"{steps}/{steps} {_BAR} {seconds:.0f}s {_per_step(seconds, steps)}{metrics}"


def say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
