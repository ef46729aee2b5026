"""`History`: added to every `fit`, which returns it."""

from __future__ import annotations

from pynn.callbacks.callback import Callback


class History(Callback):
    """Records every epoch's logs: `history[key]` is a list of floats, one per epoch, and
    `epoch` the epoch indices."""

    def __init__(self):
        super().__init__()
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)
        self.model.history = self
