"""`ModelCheckpoint`: saves the model (or its weights) during training, every epoch or every
`save_freq` batches, optionally only when a monitored quantity improves
(`keras/src/callbacks/model_checkpoint.py`). Every save is atomic."""

from __future__ import annotations

import os
import warnings

from pynn import _progress
from pynn.callbacks.monitor_callback import MonitorCallback
from pynn.saving.model_file import MODEL_SUFFIX, WEIGHTS_SUFFIX, refuse_keras_format


class ModelCheckpoint(MonitorCallback):
    """Args:
    filepath: where to save; may hold `{epoch:02d}`-style fields filled from the epoch
        (1-based), the batch (1-based, with an integer `save_freq`) and the logs, e.g.
        `"model-{epoch:02d}-{val_loss:.2f}.pynn"`. It must end in `.pynn`, or in
        `.weights.safetensors` with `save_weights_only=True`.
    monitor: the logged quantity that `save_best_only` compares.
    verbose: 1 prints a line per save (or skipped save).
    save_best_only: save only when `monitor` improves on the best value so far.
    save_weights_only: save the weights alone (`model.save_weights`).
    mode: `"min"`, `"max"` or `"auto"` (from the quantity's name).
    save_freq: `"epoch"`, or a number of batches between saves.
    initial_value_threshold: the value `monitor` must beat before the first save.
    """

    def __init__(
        self,
        filepath,
        monitor="val_loss",
        verbose=0,
        save_best_only=False,
        save_weights_only=False,
        mode="auto",
        save_freq="epoch",
        initial_value_threshold=None,
    ):
        super().__init__(monitor, mode, baseline=initial_value_threshold)
        self.filepath = os.fspath(filepath)
        self.verbose = verbose
        self.save_best_only = save_best_only
        self.save_weights_only = save_weights_only
        suffix = WEIGHTS_SUFFIX if save_weights_only else MODEL_SUFFIX
        refuse_keras_format(self.filepath)
        if not self.filepath.endswith(suffix):
            raise ValueError(
                f"When using `save_weights_only={save_weights_only}` in `ModelCheckpoint`, the "
                f"filepath provided must end in `{suffix}`. Received: filepath={self.filepath}"
            )
        if save_freq != "epoch" and (
            isinstance(save_freq, bool) or not isinstance(save_freq, int) or save_freq <= 0
        ):
            raise ValueError(
                f"Unrecognized save_freq: {save_freq!r}. Expected save_freq are 'epoch' or a "
                "positive integer."
            )
        self.save_freq = save_freq
        self._batches_seen = 0
        self._epoch = 0
        if save_freq != "epoch":
            # Only then does this callback need every batch (which runs them one call each).
            self.on_train_batch_end = self._on_train_batch_end

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def _on_train_batch_end(self, batch, logs=None):
        self._batches_seen += 1
        if self._batches_seen % self.save_freq == 0:
            self._save(self._epoch, batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor_op is None:
            self._set_monitor_op()
        if self.save_freq == "epoch":
            self._save(epoch, None, logs)

    def _path(self, epoch, batch, logs) -> str:
        fields = dict(logs or {})
        fields["epoch"] = epoch + 1
        if batch is not None:
            fields["batch"] = batch + 1
        try:
            return self.filepath.format(**fields)
        except KeyError as error:
            raise KeyError(
                f'Failed to format this callback filepath: "{self.filepath}". Reason: {error}'
            ) from None

    def _save(self, epoch, batch, logs) -> None:
        if self.monitor_op is None:
            self._set_monitor_op()
        path = self._path(epoch, batch, logs)
        if self.save_best_only:
            current = (logs or {}).get(self.monitor)
            if current is None:
                warnings.warn(
                    f"Can save best model only with {self.monitor} available, skipping.",
                    stacklevel=2,
                )
            elif not self._is_improvement(current, self.best):
                if self.verbose > 0:
                    _progress.say(
                        f"\nEpoch {epoch + 1}: {self.monitor} did not improve from "
                        f"{_value(self.best)}"
                    )
                return
            else:
                if self.verbose > 0:
                    _progress.say(
                        f"\nEpoch {epoch + 1}: {self.monitor} improved from {_value(self.best)} "
                        f"to {current:.5f}, saving model to {path}"
                    )
                self.best = current
        elif self.verbose > 0:
            _progress.say(f"\nEpoch {epoch + 1}: saving model to {path}")
        folder = os.path.dirname(path)
        if folder:
            os.makedirs(folder, exist_ok=True)
        if self.save_weights_only:
            self.model.save_weights(path, overwrite=True)
        else:
            self.model.save(path, overwrite=True)


def _value(value) -> str:
    return "None" if value is None else f"{value:.5f}"
