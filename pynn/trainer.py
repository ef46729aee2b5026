"""`Trainer`: compile, fit, evaluate and predict for a model whose engine holds the network
(`keras/src/trainers/trainer.py`).

Python checks and converts the data once, then hands whole arrays to the engine: one call per
epoch runs every batch (shuffle, forward, loss, backward, optimizer step, metrics) with the GIL
released. Python only sees epochs: it prints progress and runs callbacks.
"""

from __future__ import annotations

import json
import math
import time

import numpy as np

from pynn import _data, _progress
from pynn import losses as losses_module
from pynn import metrics as metrics_module
from pynn import optimizers as optimizers_module
from pynn._random import draw_seed
from pynn.callbacks import Callback, History


class Trainer:
    """Mixed into models that provide `name`, `_engine`, `_input_layer`, `_require_built(x)` and
    `_per_sample_output_shape()`."""

    _compile_args = None
    _loss = None
    _metrics: tuple = ()
    _optimizer_built = False
    optimizer = None
    history = None
    stop_training = False

    # Compile

    def compile(
        self,
        optimizer="rmsprop",
        loss=None,
        metrics=None,
        run_eagerly=False,
        steps_per_execution=1,
        jit_compile="auto",
        auto_scale_loss=True,
    ) -> None:
        """Sets the optimizer, the loss and the metrics (names or objects) used by `fit`.

        `"accuracy"` becomes binary, sparse or categorical accuracy from the shapes of the data
        at the first `fit`/`evaluate`, as Keras decides.
        """
        self.optimizer = optimizers_module.get(optimizer)
        if loss is not None:
            losses_module.get(loss, y_shape=(1, 1), output_shape=(1,))  # fail early on a typo
        metrics = list(metrics or [])
        for metric in metrics:
            metrics_module.get(metric, y_shape=(1, 1), output_shape=(1,))
        self._compile_args = (loss, metrics)
        self._loss = None
        self._optimizer_built = False

    @property
    def compiled(self) -> bool:
        return self._compile_args is not None

    @property
    def metrics_names(self) -> list[str]:
        return ["loss"] + ([] if not self._metrics else ["compile_metrics"])

    def _targets(self, y: np.ndarray, method: str) -> np.ndarray:
        """Checks `y` against the compiled loss and returns it in the engine's layout. The first
        time after `compile`, also resolves the loss and metrics for these shapes and hands them
        to the engine."""
        if self._compile_args is None:
            raise ValueError(f"You must call `compile()` before calling `{method}()`.")
        loss_id, metric_ids = self._compile_args
        if loss_id is None:
            raise ValueError("No loss to compute. Provide a `loss` argument in `compile()`.")
        output_shape = self._per_sample_output_shape()
        loss = self._loss or losses_module.get(loss_id, y.shape, output_shape)
        targets = loss.prepare_targets(y, output_shape)
        if self._loss is None:
            metrics = [metrics_module.get(m, y.shape, output_shape) for m in metric_ids]
            for metric in metrics:
                if metric.sparse != loss.sparse:
                    wanted = "class indices" if metric.sparse else "one-hot or real-valued targets"
                    raise ValueError(
                        f"Metric '{metric.name}' needs {wanted}, which loss '{loss.name}' does "
                        "not take; choose a metric that matches the loss."
                    )
            self._engine.compile(
                json.dumps(loss.spec()),
                json.dumps(self.optimizer.spec()),
                json.dumps([m.spec() for m in metrics]),
            )
            self.optimizer._engine = self._engine
            self._loss, self._metrics = loss, metrics
        return targets

    # Data

    def _inputs(self, x) -> np.ndarray:
        x = _data.to_array(x, "x")
        self._require_built(x)
        return _data.as_float32(_data.match_input(x, self._input_layer.shape, self.name))

    def _inputs_and_targets(self, x, y, method: str) -> tuple[np.ndarray, np.ndarray]:
        x = self._inputs(x)
        y = _data.to_array(y, "y")
        _data.check_same_length(x, y)
        return x, self._targets(y, method)

    def _logs(self, loss: float, metric_values: list[float]) -> dict[str, float]:
        logs = {"loss": float(loss)}
        logs.update((m.name, float(v)) for m, v in zip(self._metrics, metric_values))
        return dict(sorted(logs.items()))

    # Training and inference

    def fit(
        self,
        x=None,
        y=None,
        batch_size=None,
        epochs=1,
        verbose="auto",
        callbacks=None,
        shuffle=True,
        initial_epoch=0,
    ) -> History:
        """Trains for `epochs` epochs (epoch indices `initial_epoch` to `epochs - 1`) and returns a
        `History` whose `.history` maps `loss` and each metric to one value per epoch."""
        verbose = _progress.resolve_verbose(verbose)
        batch_size = _data.check_batch_size(batch_size)
        for name, value in (("epochs", epochs), ("initial_epoch", initial_epoch)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"`{name}` must be an integer >= 0. Received: {name}={value!r}")
        x, y = self._inputs_and_targets(x, y, "fit")
        n = x.shape[0]
        steps = math.ceil(n / batch_size)
        history = History()
        callback_list = _callbacks(callbacks) + [history]
        params = {"verbose": verbose, "epochs": epochs, "steps": steps}
        for callback in callback_list:
            callback.set_model(self)
            callback.set_params(params)
        self.stop_training = False
        x_flat, y_flat = x.reshape(-1), y.reshape(-1)
        for callback in callback_list:
            callback.on_train_begin()
        for epoch in range(initial_epoch, epochs):
            for callback in callback_list:
                callback.on_epoch_begin(epoch)
            seed = draw_seed() if shuffle else None
            start = time.perf_counter()
            loss, metric_values = self._engine.fit_epoch(x_flat, y_flat, n, batch_size, seed)
            self._optimizer_built = True
            logs = self._logs(loss, metric_values)
            if verbose:
                if epochs > 1:
                    _progress.say(f"Epoch {epoch + 1}/{epochs}")
                elapsed = time.perf_counter() - start
                _progress.say(_progress.line(steps, elapsed, logs, verbose))
            for callback in callback_list:
                callback.on_epoch_end(epoch, dict(logs))
            if self.stop_training:
                break
        for callback in callback_list:
            callback.on_train_end()
        self.history = history
        return history

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", return_dict=False):
        """The loss and metrics on `(x, y)` with fixed weights: a float when there are no metrics,
        else `[loss, metric, ...]` in compile order, or a dict with `return_dict=True`."""
        verbose = _progress.resolve_verbose(verbose)
        batch_size = _data.check_batch_size(batch_size)
        x, y = self._inputs_and_targets(x, y, "evaluate")
        n = x.shape[0]
        start = time.perf_counter()
        loss, metric_values = self._engine.evaluate(x.reshape(-1), y.reshape(-1), n, batch_size)
        logs = self._logs(loss, metric_values)
        if verbose:
            elapsed = time.perf_counter() - start
            _progress.say(_progress.line(math.ceil(n / batch_size), elapsed, logs, verbose))
        return _results(logs, loss, metric_values, return_dict)

    def predict(self, x, batch_size=None, verbose="auto") -> np.ndarray:
        """The model's outputs for `x`, as a float32 array `(n,) + output_shape`."""
        verbose = _progress.resolve_verbose(verbose)
        batch_size = _data.check_batch_size(batch_size)
        x = self._inputs(x)
        n = x.shape[0]
        start = time.perf_counter()
        out = self._engine.predict(x.reshape(-1), n, batch_size)
        if verbose:
            elapsed = time.perf_counter() - start
            _progress.say(_progress.line(math.ceil(n / batch_size), elapsed, {}, verbose))
        return out

    def train_on_batch(self, x, y, return_dict=False):
        """One optimizer step on the whole of `(x, y)`; returns that batch's loss and metrics."""
        x, y = self._inputs_and_targets(x, y, "train_on_batch")
        n = x.shape[0]
        loss, metric_values = self._engine.fit_epoch(x.reshape(-1), y.reshape(-1), n, n, None)
        self._optimizer_built = True
        return _results(self._logs(loss, metric_values), loss, metric_values, return_dict)

    def test_on_batch(self, x, y, return_dict=False):
        """The loss and metrics on one batch `(x, y)`, without updating weights."""
        x, y = self._inputs_and_targets(x, y, "test_on_batch")
        n = x.shape[0]
        loss, metric_values = self._engine.evaluate(x.reshape(-1), y.reshape(-1), n, n)
        return _results(self._logs(loss, metric_values), loss, metric_values, return_dict)

    def predict_on_batch(self, x) -> np.ndarray:
        """The model's outputs for one batch `x`."""
        x = self._inputs(x)
        n = x.shape[0]
        return self._engine.predict(x.reshape(-1), n, n)

    def __call__(self, x, training=False) -> np.ndarray:
        return self.predict_on_batch(x)


def _callbacks(callbacks) -> list[Callback]:
    callbacks = list(callbacks or [])
    for callback in callbacks:
        if not isinstance(callback, Callback):
            raise TypeError(
                f"`callbacks` must hold pynn.callbacks.Callback instances; got {callback!r}."
            )
    return callbacks


def _results(logs: dict[str, float], loss: float, metric_values, return_dict: bool):
    if return_dict:
        return logs
    if not metric_values:
        return float(loss)
    return [float(loss)] + [float(v) for v in metric_values]
