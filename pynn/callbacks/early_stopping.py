"""`EarlyStopping`: stops training when a monitored quantity stops improving, with exactly Keras
3's algorithm (`keras/src/callbacks/early_stopping.py`)."""

from __future__ import annotations

import warnings

from pynn import _checks, _progress
from pynn.callbacks.monitor_callback import MonitorCallback


class EarlyStopping(MonitorCallback):
    """Stops `fit` once `monitor` has not improved for `patience` epochs.

    Args:
        monitor: the logged quantity to watch, e.g. `"val_loss"` (default) or `"val_accuracy"`.
        min_delta: an improvement must be larger than this.
        patience: epochs without improvement before stopping. The count starts at the epoch
            that improved, so `patience=0` stops at the first epoch that does not improve, like
            `patience=1`. Training never stops after its first epoch.
        verbose: 1 prints the stopping epoch and the restore.
        mode: `"min"`, `"max"` or `"auto"` (from the quantity's name).
        baseline: an improvement resets the patience only once the value beats `baseline`.
        restore_best_weights: when training ends, for whatever reason (patience ran out, the
            epochs ran out, or another callback stopped it), restore the weights of the best
            epoch seen. This is Keras 3's behaviour; Keras 2 restored them only when this
            callback itself stopped training.
        start_from_epoch: epochs to wait before watching.

    After training, `stopped_epoch` is the 0-based epoch at which it stopped (0 if it never did)
    and `best_epoch` the 0-based best epoch.
    """

    def __init__(
        self,
        monitor="val_loss",
        min_delta=0,
        patience=0,
        verbose=0,
        mode="auto",
        baseline=None,
        restore_best_weights=False,
        start_from_epoch=0,
    ):
        super().__init__(monitor, mode, min_delta=min_delta)
        self.patience = patience
        self.verbose = verbose
        self.baseline = None if baseline is None else _checks.real(baseline, "baseline")
        self.restore_best_weights = restore_best_weights
        self.start_from_epoch = start_from_epoch
        self.wait = 0
        self.stopped_epoch = 0
        self.best_weights = None
        self.best_epoch = 0

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights = None
        self.best_epoch = 0

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor_op is None:
            self._set_monitor_op()
        current = self._monitor_value(logs)
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
            self.best_epoch = epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            _progress.say(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                _progress.say(
                    "Restoring model weights from the end of the best epoch: "
                    f"{self.best_epoch + 1}."
                )
            self.model.set_weights(self.best_weights)

    def _monitor_value(self, logs):
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is None:
            warnings.warn(
                f"Early stopping conditioned on metric `{self.monitor}` which is not available. "
                f"Available metrics are: {','.join(logs)}",
                stacklevel=2,
            )
        return value
