"""`MonitorCallback`: the shared logic of callbacks that watch one logged quantity
(`keras/src/callbacks/monitor_callback.py`)."""

from __future__ import annotations

import operator
import warnings

from pynn import _checks
from pynn.callbacks.callback import Callback


class MonitorCallback(Callback):
    """Base of callbacks that watch one logged quantity (`monitor`) for improvements: `mode`
    "min", "max" or "auto" (max for accuracy-like names), by more than `min_delta`, starting
    from `baseline`."""

    def __init__(self, monitor="val_loss", mode="auto", baseline=None, min_delta=0):
        super().__init__()
        if mode not in ("auto", "min", "max"):
            warnings.warn(
                f"{type(self).__name__} mode '{mode}' is unknown, fallback to auto mode.",
                stacklevel=3,
            )
            mode = "auto"
        self.monitor = monitor
        self.mode = mode
        # NaN would compare as "no improvement" for ever: training stops, silently.
        if baseline is not None:
            baseline = _checks.real(baseline, "baseline")
        self.best = baseline
        self.min_delta = abs(_checks.real(min_delta, "min_delta"))
        self.monitor_op = None

    def _set_monitor_op(self) -> None:
        """Chooses `<` or `>` once, at the first epoch end, when the model's metrics exist."""
        if self.mode == "min":
            self.monitor_op = operator.lt
        elif self.mode == "max":
            self.monitor_op = operator.gt
        else:
            name = self.monitor.removeprefix("val_")
            direction = "down" if name == "loss" else None
            if direction is None and hasattr(self.model, "_log_direction"):
                direction = self.model._log_direction(name)
            if direction is not None:
                self.monitor_op = operator.gt if direction == "up" else operator.lt
            if self.monitor_op is None:
                raise ValueError(
                    f"{type(self).__name__} callback received monitor={self.monitor}, but pynn "
                    "isn't able to automatically determine whether that metric should be "
                    "maximized or minimized. Pass `mode='max'` in order to monitor based on the "
                    "highest metric value, or pass `mode='min'` in order to use the lowest value."
                )
        if self.monitor_op is operator.lt:
            self.min_delta *= -1

    def _is_improvement(self, value, reference) -> bool:
        """Strictly better than `reference` by more than `min_delta` (any value beats None)."""
        if reference is None:
            return True
        return self.monitor_op(value - self.min_delta, reference)
