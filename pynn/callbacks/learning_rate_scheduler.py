"""`LearningRateScheduler`: sets the learning rate at the start of every epoch."""

from __future__ import annotations

import numpy as np

from pynn import _progress
from pynn.callbacks.callback import Callback


class LearningRateScheduler(Callback):
    """Args:
    schedule: `schedule(epoch, lr) -> new_lr` (or `schedule(epoch)`), called before each
        epoch with the 0-based epoch index and the current learning rate.
    verbose: 1 prints each change.

    Each epoch's logs get a `learning_rate` entry.
    """

    def __init__(self, schedule, verbose=0):
        super().__init__()
        self.schedule = schedule
        self.verbose = verbose

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        try:
            learning_rate = self.schedule(epoch, float(optimizer.learning_rate))
        except TypeError:  # a one-argument schedule, as older code writes them
            learning_rate = self.schedule(epoch)
        if not isinstance(learning_rate, (float, np.float32, np.float64)):
            raise ValueError(
                f"The output of the `schedule` function should be a float. Got: {learning_rate}"
            )
        optimizer.learning_rate = float(learning_rate)
        if self.verbose > 0:
            _progress.say(
                f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to "
                f"{learning_rate}."
            )

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(self.model.optimizer.learning_rate)
