"""`Sequential`: a stack of layers trained by the Rust engine (`keras.models.Sequential`).

Python checks and converts the data once, then hands whole arrays to the engine: one call per
epoch runs every batch (shuffle, forward, loss, backward, optimizer step, metrics) with the GIL
released. Python only sees epochs: it prints progress and runs callbacks.
"""

from __future__ import annotations

import json
import math
import time

import numpy as np

from pynn import _core, _data, _progress, _summary
from pynn import losses as losses_module
from pynn import metrics as metrics_module
from pynn import optimizers as optimizers_module
from pynn._naming import auto_name
from pynn._random import draw_seed
from pynn.callbacks import Callback, History
from pynn.layers.core import InputLayer, KerasTensor
from pynn.layers.layer import Layer

_BYTES_PER_VALUE = 4


class Sequential:
    """A linear stack of layers.

    Args:
        layers: the layers, in order; may start with an `InputLayer` or `pynn.Input(shape)`.
        name: the model's name; defaults to `sequential`, `sequential_1`, ...
    """

    def __init__(self, layers=None, trainable: bool = True, name: str | None = None):
        self.name = name or auto_name("sequential")
        self.trainable = trainable
        self._input_layer: InputLayer | None = None
        self._layers: list[Layer] = []
        self._engine = None
        self._compile_args = None
        self._loss = None
        self._metrics: list = []
        self._optimizer_built = False
        self.optimizer = None
        self.history = None
        self.stop_training = False
        for layer in layers or []:
            self.add(layer)

    # Structure

    @property
    def layers(self) -> list[Layer]:
        """The layers, without the input layer (as in Keras)."""
        return list(self._layers)

    def add(self, layer) -> None:
        """Appends a layer; the model is built as soon as it knows its input shape."""
        if isinstance(layer, KerasTensor):
            layer = layer._input_layer
        if not isinstance(layer, Layer):
            raise ValueError(
                "Only instances of `pynn.layers.Layer` can be added to a Sequential model. "
                f"Received: {layer!r} (of type {type(layer).__name__})"
            )
        if isinstance(layer, InputLayer):
            if self._input_layer is not None or self._layers:
                raise ValueError(
                    "Sequential model '{}' has already been configured to use input shape {}. "
                    "You cannot add a different Input layer to it.".format(
                        self.name, self._input_layer.batch_shape if self._input_layer else "?"
                    )
                )
            self._input_layer = layer
            return
        if not self._layers and self._input_layer is None and layer._input_shape_arg:
            self._input_layer = InputLayer(shape=layer._input_shape_arg)
        if any(existing.name == layer.name for existing in self._layers):
            raise ValueError(
                f"All layers added to a Sequential model should have unique names. Name "
                f"'{layer.name}' is already the name of a layer in this model. Update the `name` "
                "argument to pass a unique name."
            )
        self._layers.append(layer)
        self._rebuild()

    def pop(self) -> Layer:
        """Removes and returns the last layer."""
        if not self._layers:
            raise IndexError("There are no layers in the model.")
        layer = self._layers.pop()
        layer._detach()
        self._rebuild()
        return layer

    @property
    def built(self) -> bool:
        return self._engine is not None

    def build(self, input_shape=None) -> None:
        """Builds the model for batches of `input_shape` (e.g. `(None, 4)`)."""
        if input_shape is None:
            if self._input_layer is None:
                raise ValueError("You must provide an `input_shape` argument.")
        else:
            self._input_layer = InputLayer(batch_shape=tuple(input_shape))
        self._rebuild()

    def _rebuild(self) -> None:
        """(Re)creates the engine; layers that were built keep their weights."""
        kept = {id(layer): layer.get_weights() for layer in self._layers if layer.built}
        self._engine = None
        if self._input_layer is None or not self._layers:
            return
        shape = self._input_layer.shape
        specs, index = [], 0
        for layer in self._layers:
            layer._attach(self, shape, index)
            index += len(layer.weight_shapes(shape))
            specs.append(layer.spec())
            shape = layer.compute_output_shape(shape)
        self._engine = _core.Engine(list(self._input_layer.shape), json.dumps(specs))
        for layer in self._layers:
            if kept.get(id(layer)):
                layer.set_weights(kept[id(layer)])
        self._loss = None
        self._optimizer_built = False

    def _require_built(self, x: np.ndarray | None = None) -> None:
        if self._engine is None and x is not None and self._layers:
            self._input_layer = InputLayer(shape=x.shape[1:])
            self._rebuild()
        if self._engine is None:
            raise ValueError(
                f"Sequential model '{self.name}' has not been built: give it an input shape "
                "with `pynn.Input(shape)` or `InputLayer(shape=...)` as first layer, or call "
                "`build(input_shape)`."
            )

    @property
    def input_shape(self) -> tuple:
        self._require_built()
        return self._input_layer.batch_shape

    @property
    def output_shape(self) -> tuple:
        self._require_built()
        return (None,) + self._per_sample_output_shape()

    def _per_sample_output_shape(self) -> tuple[int, ...]:
        return tuple(self._engine.output_shape())

    # Weights

    def get_weights(self) -> list[np.ndarray]:
        """Every weight as a NumPy array, layer by layer (Dense: kernel `(in, units)`, bias)."""
        return [] if self._engine is None else self._engine.get_weights()

    def set_weights(self, weights) -> None:
        """Sets every weight from a list shaped as `get_weights()` returns it."""
        self._require_built()
        shapes = [tuple(s) for s in self._engine.weight_shapes()]
        weights = list(weights)
        if len(weights) != len(shapes):
            raise ValueError(
                f"You called `set_weights(weights)` on model '{self.name}' with a weight list of "
                f"length {len(weights)}, but the model was expecting {len(shapes)} weights."
            )
        arrays = []
        for i, (value, shape) in enumerate(zip(weights, shapes)):
            array = np.asarray(value, dtype=np.float32)
            if array.shape != shape:
                raise ValueError(
                    f"Weight {i} has shape {array.shape}, but the model expects {shape}."
                )
            if not np.all(np.isfinite(array)):
                raise ValueError(f"Weight {i} contains NaN or infinite values.")
            arrays.append(array.reshape(-1))
        flat = np.concatenate(arrays) if arrays else np.zeros(0, np.float32)
        self._engine.set_weights(np.ascontiguousarray(flat, dtype=np.float32))

    def count_params(self) -> int:
        if self._engine is None:
            raise ValueError(
                f"You tried to call `count_params` on model '{self.name}', but the model isn't "
                "built. You can build it manually via: `model.build(input_shape)`."
            )
        return sum(int(np.prod(s)) for s in self._engine.weight_shapes())

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

    # Display

    def summary(self, line_length=None, print_fn=None) -> None:
        """Prints Keras 3's summary table: each layer's output shape and parameter count."""
        rows = []
        for layer in self._layers:
            name = f"{layer.name} ({type(layer).__name__})"
            if self._engine is None:
                rows.append((name, "?", "0 (unbuilt)"))
            else:
                rows.append((name, str(layer.output_shape), f"{layer.count_params():,}"))
        trainable = self.count_params() if self._engine is not None else 0
        optimizer = 0
        if self._optimizer_built:
            optimizer = self._engine.optimizer_slots() * trainable + 2
        total = trainable + optimizer

        def count(n: int) -> str:
            return f"{n:,} ({_summary.readable_size(n * _BYTES_PER_VALUE)})"

        totals = [
            f"Total params: {count(total)}",
            f"Trainable params: {count(trainable)}",
            f"Non-trainable params: {count(0)}",
        ]
        if self._optimizer_built:
            totals.append(f"Optimizer params: {count(optimizer)}")
        text = _summary.render(self.name, rows, totals, line_length)
        (print_fn or print)(text)

    def __repr__(self) -> str:
        return f"<Sequential name={self.name}, built={self.built}>"


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
