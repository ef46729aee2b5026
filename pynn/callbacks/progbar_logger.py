"""`ProgbarLogger`: what `fit` prints with `verbose=1` or `2`, in Keras 3's format. The engine
runs a whole epoch per call, so the bar is drawn once, complete, at the end of each epoch."""

from __future__ import annotations

import time

from pynn import _progress
from pynn.callbacks.callback import Callback


class ProgbarLogger(Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()
        if self.params.get("verbose") and self.params.get("epochs", 1) > 1:
            _progress.say(f"Epoch {epoch + 1}/{self.params['epochs']}")

    def on_epoch_end(self, epoch, logs=None):
        verbose = self.params.get("verbose", 0)
        if verbose:
            elapsed = time.perf_counter() - self._start
            _progress.say(_progress.line(self.params["steps"], elapsed, logs or {}, verbose))
