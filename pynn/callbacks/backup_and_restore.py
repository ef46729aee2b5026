"""`BackupAndRestore`: survives a killed process. After every epoch it saves the model, its
optimizer state and the epoch to `backup_dir` (atomically); a rerun of the same script finds the
backup at the start of `fit` and resumes after the last finished epoch
(`keras/src/callbacks/backup_and_restore.py`).

With the same script and seeds, the resumed run ends with the same weights as an uninterrupted
one: shuffling depends on the epoch index, dropout masks on the optimizer step, and both are
restored."""

from __future__ import annotations

import contextlib
import os

from pynn.callbacks.callback import Callback
from pynn.saving import model_file


class BackupAndRestore(Callback):
    """Args:
    backup_dir: the folder that holds the backup (created if needed). Use one folder per
        training run.
    save_freq: `"epoch"`, or a number of batches between backups.
    double_checkpoint: keep the previous backup too, and fall back to it when the latest one
        cannot be read (saves are atomic, so this guards against the disk, not against a crash).
    delete_checkpoint: delete the backup when training ends normally.
    """

    _FILE = "backup.pynn"
    _PREVIOUS = "backup.previous.pynn"

    def __init__(
        self, backup_dir, save_freq="epoch", double_checkpoint=False, delete_checkpoint=True
    ):
        super().__init__()
        if not backup_dir:
            raise ValueError("Empty `backup_dir` argument passed")
        if save_freq != "epoch" and (
            isinstance(save_freq, bool) or not isinstance(save_freq, int) or save_freq <= 0
        ):
            raise ValueError(
                f"Invalid value for argument `save_freq`. Received: save_freq={save_freq!r}. "
                "Expected either 'epoch' or an integer value."
            )
        self.backup_dir = os.fspath(backup_dir)
        self.save_freq = save_freq
        self.double_checkpoint = double_checkpoint
        self.delete_checkpoint = delete_checkpoint
        self._path = os.path.join(self.backup_dir, self._FILE)
        self._previous = os.path.join(self.backup_dir, self._PREVIOUS)
        self._epoch = 0
        self._batches_seen = 0
        if save_freq != "epoch":
            self.on_train_batch_end = self._on_train_batch_end

    def on_train_begin(self, logs=None):
        if not os.path.exists(self._path):
            return
        try:
            state = model_file.restore_training(self.model, self._path)
        except ValueError:
            if not (self.double_checkpoint and os.path.exists(self._previous)):
                raise
            state = model_file.restore_training(self.model, self._previous)
        self.model._initial_epoch = state["epoch"] + 1

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def _on_train_batch_end(self, batch, logs=None):
        self._batches_seen += 1
        if self._batches_seen % self.save_freq == 0:
            # The epoch is not finished: a resumed run starts it again from this backup.
            self._backup(self._epoch - 1)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._backup(epoch)

    def on_train_end(self, logs=None):
        if not self.delete_checkpoint:
            return
        for path in (self._path, self._previous):
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
        with contextlib.suppress(OSError):
            os.rmdir(self.backup_dir)  # only when nothing else is in it

    def _backup(self, epoch) -> None:
        os.makedirs(self.backup_dir, exist_ok=True)
        if self.double_checkpoint and os.path.exists(self._path):
            os.replace(self._path, self._previous)
        model_file.save_model(self.model, self._path, training_state={"epoch": epoch})
