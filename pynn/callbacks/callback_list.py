"""`CallbackList`: calls every callback's hook in order, with the same `logs` dict, so what one
callback adds (e.g. `learning_rate`) the next ones see."""

from __future__ import annotations

from pynn.callbacks.callback import Callback
from pynn.callbacks.history import History
from pynn.callbacks.progbar_logger import ProgbarLogger

_BATCH_HOOKS = {
    "train": ("on_train_batch_begin", "on_train_batch_end", "on_batch_begin", "on_batch_end"),
    "test": ("on_test_batch_begin", "on_test_batch_end"),
    "predict": ("on_predict_batch_begin", "on_predict_batch_end"),
}


def _overrides(callback: Callback, hook: str) -> bool:
    """Whether `callback` does something in `hook`: a subclass method or an instance attribute
    (as `LambdaCallback` sets them) other than the base class's no-op."""
    if hook in vars(callback):
        return True
    return getattr(type(callback), hook) is not getattr(Callback, hook)


class CallbackList:
    """The callbacks of one `fit`, `evaluate` or `predict` call, each hook called on every one
    in order; adds a `History` (and a `ProgbarLogger` when printing) as Keras does."""

    def __init__(self, callbacks=None, model=None, add_history=False, add_progbar=False, **params):
        self.callbacks = _as_list(callbacks)
        self.history = next((c for c in self.callbacks if isinstance(c, History)), None)
        if add_history and self.history is None:
            self.history = History()
            self.callbacks.append(self.history)
        if add_progbar and not any(isinstance(c, ProgbarLogger) for c in self.callbacks):
            self.callbacks.append(ProgbarLogger())
        for callback in self.callbacks:
            callback.set_model(model)
            callback.set_params(params)

    def needs_batches(self, mode: str) -> bool:
        """Whether some callback wants to hear about every batch of `mode` (train, test,
        predict)."""
        return any(_overrides(c, hook) for c in self.callbacks for hook in _BATCH_HOOKS[mode])

    def live_progress(self):
        """The progress bar that shows an epoch while it runs, or `None` when none does."""
        bar = next((c for c in self.callbacks if isinstance(c, ProgbarLogger)), None)
        return bar if bar is not None and bar.live else None


def _as_list(callbacks) -> list[Callback]:
    """`callbacks` (None, one callback, or a list or tuple of them) as a new list."""
    if callbacks is None:
        return []
    if isinstance(callbacks, Callback):
        return [callbacks]
    if not isinstance(callbacks, (list, tuple)):
        raise TypeError(
            "`callbacks` must be a list of pynn.callbacks.Callback instances. "
            f"Received: callbacks={callbacks!r} (of type {type(callbacks).__name__})"
        )
    for callback in callbacks:
        if not isinstance(callback, Callback):
            raise TypeError(
                f"`callbacks` must hold pynn.callbacks.Callback instances; got {callback!r}."
            )
    return list(callbacks)


def _forwarding(hook: str, indexed: bool):
    """The list's `hook`: every callback's, in order, with one logs dict (a new empty one when
    none is given, as Keras passes a dict to every hook). As Keras calls them, batch hooks get
    `logs` by keyword, the others by position."""
    by_keyword = "batch" in hook
    if indexed:

        def forward(self, index, logs=None):
            logs = {} if logs is None else logs
            for callback in self.callbacks:
                if by_keyword:
                    getattr(callback, hook)(index, logs=logs)
                else:
                    getattr(callback, hook)(index, logs)

    else:

        def forward(self, logs=None):
            logs = {} if logs is None else logs
            for callback in self.callbacks:
                getattr(callback, hook)(logs)

    forward.__name__ = forward.__qualname__ = hook
    forward.__doc__ = f"Calls `{hook}` of every callback, in order."
    return forward


for _hook in (
    "on_train_begin",
    "on_train_end",
    "on_test_begin",
    "on_test_end",
    "on_predict_begin",
    "on_predict_end",
):
    setattr(CallbackList, _hook, _forwarding(_hook, indexed=False))
for _hook in (
    "on_epoch_begin",
    "on_epoch_end",
    "on_train_batch_begin",
    "on_train_batch_end",
    "on_test_batch_begin",
    "on_test_batch_end",
    "on_predict_batch_begin",
    "on_predict_batch_end",
):
    setattr(CallbackList, _hook, _forwarding(_hook, indexed=True))
