"""`ProgbarLogger`: what `fit` prints with `verbose=1` or `2`, in Keras 3's format.

The engine runs an epoch in one call; while it runs, the calling thread hands the running loss
and metrics to [`ProgbarLogger.show_progress`] at most every 0.05 s, so the bar moves during the
epoch without a Python call per batch."""

from __future__ import annotations

from pynn import _progress
from pynn.callbacks.callback import Callback
from pynn.utils.progbar import ALL_STATEFUL, Progbar


class ProgbarLogger(Callback):
    """Prints `Epoch i/E` and a progress bar per epoch (`verbose=1`) or one line per epoch
    (`verbose=2`); `fit` adds it unless `verbose=0`."""

    def __init__(self):
        super().__init__()
        self._bar = None

    def on_epoch_begin(self, epoch, logs=None):
        verbose = self.params.get("verbose", 0)
        if verbose and self.params.get("epochs", 1) > 1:
            _progress.say(f"Epoch {epoch + 1}/{self.params['epochs']}")
        # The engine's logs are running means already: shown as they come.
        self._bar = Progbar(
            self.params.get("steps"), verbose=verbose, stateful_metrics=ALL_STATEFUL
        )

    @property
    def live(self) -> bool:
        """Whether the bar shows progress during an epoch (verbose=1 on a terminal or notebook)."""
        return self._bar is not None and self._bar.redraws

    def show_progress(self, batches: int, logs: dict[str, float]) -> None:
        """Redraws the bar after `batches` batches of the epoch, with the running `logs`."""
        if self._bar is not None:
            self._bar.update(batches, list(logs.items()), finalize=False)

    def on_epoch_end(self, epoch, logs=None):
        if self._bar is not None:
            self._bar.update(self.params.get("steps", 0), list((logs or {}).items()), finalize=True)
            self._bar = None
