"""`Callback`: the hooks that `fit`, `evaluate` and `predict` call (`keras.callbacks.Callback`)."""

from __future__ import annotations


class Callback:
    """Base class: override the hooks you need. `self.model` is the model being trained and
    `self.params` holds `verbose`, `epochs` and `steps`. Setting `self.model.stop_training = True`
    stops `fit` after the current batch (from a batch hook) or epoch.

    Overriding a batch hook (`on_train_batch_begin/end`, `on_batch_begin/end`,
    `on_test_batch_*`, `on_predict_batch_*`) makes the loop report every batch to Python;
    otherwise the engine runs whole epochs in one call.
    """

    def __init__(self):
        self.model = None
        self.params: dict = {}

    def set_model(self, model) -> None:
        """Called by `fit`, `evaluate` and `predict` with the model the callback serves."""
        self.model = model

    def set_params(self, params: dict) -> None:
        """Called with `{'verbose', 'epochs', 'steps'}` before training starts."""
        self.params = params

    def on_train_begin(self, logs=None):
        """Called once at the start of `fit`."""

    def on_train_end(self, logs=None):
        """Called once at the end of `fit`, with the last epoch's logs."""

    def on_epoch_begin(self, epoch, logs=None):
        """Called at the start of epoch `epoch` (0-based)."""

    def on_epoch_end(self, epoch, logs=None):
        """Called at the end of epoch `epoch` with its logs: the loss, the metrics and
        their `val_` counterparts when validation ran."""

    def on_train_batch_begin(self, batch, logs=None):
        """Called before each training batch; calls `on_batch_begin` unless overridden."""
        self.on_batch_begin(batch, logs=logs)

    def on_train_batch_end(self, batch, logs=None):
        """Called after each training batch with the epoch's running logs; calls `on_batch_end`
        unless overridden."""
        self.on_batch_end(batch, logs=logs)

    def on_batch_begin(self, batch, logs=None):
        """Legacy name of `on_train_batch_begin`."""

    def on_batch_end(self, batch, logs=None):
        """Legacy name of `on_train_batch_end`."""

    def on_test_begin(self, logs=None):
        """Called at the start of `evaluate` and of each validation."""

    def on_test_end(self, logs=None):
        """Called at the end of `evaluate` and of each validation, with its logs."""

    def on_test_batch_begin(self, batch, logs=None):
        """Called before each batch of `evaluate` or validation."""

    def on_test_batch_end(self, batch, logs=None):
        """Called after each batch of `evaluate` or validation, with the running logs."""

    def on_predict_begin(self, logs=None):
        """Called at the start of `predict`."""

    def on_predict_end(self, logs=None):
        """Called at the end of `predict`."""

    def on_predict_batch_begin(self, batch, logs=None):
        """Called before each batch of `predict`."""

    def on_predict_batch_end(self, batch, logs=None):
        """Called after each batch of `predict`; `logs['outputs']` holds its output."""
