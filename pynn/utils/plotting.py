"""`plot_history`: learning curves from a `History`, as the textbook draws them.

matplotlib is an optional dependency (`pip install pynn[plot]`); it is imported only here, only
when a plot is asked for."""

from __future__ import annotations

from collections.abc import Iterable


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError(
            "pynn.utils.plot_history needs matplotlib, which is not installed. "
            "Install it with `pip install pynn[plot]` (or `pip install matplotlib`)."
        ) from error
    return plt


def _ticker():
    import matplotlib.ticker

    return matplotlib.ticker


def plot_history(history, metrics: Iterable[str] = ("loss",), ax=None, label: str | None = None):
    """Draws the learning curves of a fit and returns the matplotlib figure.

    Args:
        history: what `fit` returned (a `History`), or its `.history` dict.
        metrics: names of the curves to draw, e.g. `("loss", "val_loss")`; one line each,
            against the epoch number (1-based).
        ax: the matplotlib `Axes` to draw on (to overlay runs); a new figure by default.
        label: a prefix for each line's legend entry (e.g. the run's name).

    Returns:
        The `matplotlib.figure.Figure` holding the plot.
    """
    curves = getattr(history, "history", history)
    if not isinstance(curves, dict):
        raise TypeError(
            f"`history` must be what fit returned (a History) or its .history dict; "
            f"got {type(history).__name__}."
        )
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    missing = [m for m in metrics if m not in curves]
    if missing:
        raise ValueError(
            f"`metrics` names {missing}, which the history does not hold; "
            f"it holds {sorted(curves)}."
        )
    if ax is None:
        figure, ax = _pyplot().subplots()
    else:
        figure = ax.figure
    epochs = getattr(history, "epoch", None)
    for name in metrics:
        values = curves[name]
        x = [e + 1 for e in epochs] if epochs and len(epochs) == len(values) else None
        x = x or list(range(1, len(values) + 1))
        # Markers where there are few epochs: a single epoch still shows as a point.
        marker = "o" if len(values) <= 10 else None
        ax.plot(x, values, marker=marker, label=f"{label} {name}" if label else name)
    ax.xaxis.set_major_locator(_ticker().MaxNLocator(integer=True))
    ax.set_xlabel("Epoch")
    ax.set_ylabel(metrics[0] if len(metrics) == 1 else "value")
    ax.legend()
    return figure
