"""What `fit`, `evaluate` and `predict` print besides the bar (`pynn.utils.Progbar`)."""

from __future__ import annotations

import sys


def resolve_verbose(verbose) -> int:
    if verbose == "auto":
        return 1
    if verbose not in (0, 1, 2) or isinstance(verbose, bool):
        raise ValueError(f"`verbose` must be 'auto', 0, 1 or 2. Received: verbose={verbose!r}")
    return int(verbose)


def say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
