"""`TerminateOnNaN`: stops training at the first batch whose loss is NaN or infinite."""

from __future__ import annotations

import math

from pynn import _progress
from pynn.callbacks.callback import Callback


class TerminateOnNaN(Callback):
    """Args:
    raise_error: raise `RuntimeError` instead of stopping quietly.
    """

    def __init__(self, raise_error: bool = False):
        super().__init__()
        self.raise_error = raise_error

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and (math.isnan(loss) or math.isinf(loss)):
            if self.raise_error:
                raise RuntimeError(
                    f"NaN or Inf loss encountered at batch {batch}. Loss value: {loss}. "
                    "Terminating training immediately."
                )
            _progress.say(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True
