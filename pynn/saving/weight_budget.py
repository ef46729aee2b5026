"""While a model file is read, the weight values it holds: no model of more is built, so that
an architecture in a file can never make pynn allocate more than the file carries."""

from __future__ import annotations

import contextlib
from contextvars import ContextVar

_BUDGET: ContextVar[tuple[int, str] | None] = ContextVar("weight_budget", default=None)


@contextlib.contextmanager
def weight_budget(values: int, path: str):
    """Within the block, building a model of more than `values` weight values raises
    `ValueError` naming the file at `path`."""
    token = _BUDGET.set((values, path))
    try:
        yield
    finally:
        _BUDGET.reset(token)


def check_weight_budget(values: int) -> None:
    """Raises `ValueError` where a model file is being read that holds fewer than `values`
    weight values."""
    budget = _BUDGET.get()
    if budget is not None and values > budget[0]:
        raise ValueError(
            f"{budget[1]}: the architecture has {values} weight values, but the file holds "
            f"{budget[0]}."
        )
