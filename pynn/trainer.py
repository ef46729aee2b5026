"""`Trainer`: compile, fit, evaluate and predict for a model whose engine holds the network
(`keras/src/trainers/trainer.py`).

Python checks and converts the data once, then hands whole arrays to the engine: one call per
epoch runs every batch (shuffle, forward, loss, backward, optimizer step, metrics) with the GIL
released. Python only sees epochs: it prints progress and runs callbacks.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import threading
import warnings

import numpy as np

from pynn import _data, _progress, config
from pynn import distribution as distribution_module
from pynn import losses as losses_module
from pynn import metrics as metrics_module
from pynn import optimizers as optimizers_module
from pynn._random import draw_seed, epoch_seed, visiting_order
from pynn.callbacks import CallbackList, History
from pynn.saving.serialization import serialize
from pynn.utils.progbar import ALL_STATEFUL, Progbar

#: The most bytes one buffer can have: a signed 64-bit size.
_MAX_BYTES = 2**63 - 1
#: Guards every model's count of calls in progress.
_RUNNING_LOCK = threading.Lock()


def _running(method):
    """Marks a model as running `method` while it runs (see `Trainer._refuse_while_running`);
    in a data-parallel job, `sys.exit` inside it aborts the job rather than leave the other
    processes waiting."""

    @functools.wraps(method)
    def run(self, *args, **kwargs):
        with _RUNNING_LOCK:
            self._calls_running = self._calls_running + 1
            self._running_call = self._running_call or method.__name__
        parallel = distribution_module.distribution()
        leaving = contextlib.nullcontext()
        if parallel is not None:
            leaving = parallel.leaving_aborts(method.__name__)
        try:
            with leaving:
                return method(self, *args, **kwargs)
        finally:
            with _RUNNING_LOCK:
                self._calls_running -= 1
                if not self._calls_running:
                    self._running_call = None

    return run


class Trainer:
    """Mixed into models that provide `name`, `_engine`, `_input_sample_shape()`,
    `_require_built(x)`, `_per_sample_output_shape()`, `_trainable_layers()` and
    `_output_activation()`."""

    _compile_args = None
    _loss = None
    _metrics: tuple = ()
    _optimizer_built = False
    #: `(iterations, [slot vectors])` read from a model file, handed to the engine when it
    #: receives the loss and optimizer (at the first fit or evaluate).
    _saved_optimizer_state = None
    _initial_epoch = 0
    _warned_gpu = False
    optimizer = None
    history = None
    stop_training = False
    #: The calls in progress (`fit`, `evaluate`, `predict`, ...), and the first one's name.
    _calls_running = 0
    _running_call = None
    #: The trainable flags last handed to the engine (None: none yet).
    _engine_trainable = None

    def _refuse_while_running(self, change: str) -> None:
        """Raises `RuntimeError` when a call of this model is in progress: its engine and
        layers cannot change under it."""
        if self._running_call is not None:
            raise RuntimeError(
                f"Cannot {change} model '{self.name}' while its `{self._running_call}` runs (from "
                "a callback, or in another thread); change the model before or after that call."
            )

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
        self._refuse_while_running("compile")
        self.optimizer = optimizers_module.get(optimizer)
        if loss is not None:
            losses_module.get(loss, y_shape=(1, 1), output_shape=(1,))  # fail early on a typo
        metrics = list(metrics or [])
        for metric in metrics:
            metrics_module.get(metric, y_shape=(1, 1), output_shape=(1,))
        self._compile_args = (loss, metrics)
        self._loss = None
        self._optimizer_built = False
        self._saved_optimizer_state = None

    @property
    def compiled(self) -> bool:
        return self._compile_args is not None

    def get_compile_config(self) -> dict | None:
        """What `compile` received (optimizer, loss, metrics) as plain JSON values."""
        if self._compile_args is None:
            return None
        loss, metrics = self._compile_args
        return {
            "optimizer": serialize(self.optimizer),
            "loss": _identifier_config(loss),
            "metrics": [_identifier_config(m) for m in metrics],
        }

    def compile_from_config(self, config: dict) -> None:
        """Compiles with what `get_compile_config()` returned."""
        if not isinstance(config, dict) or not isinstance(config.get("metrics", []), list):
            raise ValueError(f"Invalid compile config: {config!r}")
        self.compile(
            optimizer=config.get("optimizer"),
            loss=config.get("loss"),
            metrics=config.get("metrics"),
        )

    @property
    def metrics_names(self) -> list[str]:
        return ["loss"] + ([] if not self._metrics else ["compile_metrics"])

    def _targets(self, y: np.ndarray, method: str, name: str = "y") -> np.ndarray:
        """Checks `y` against the compiled loss and returns it in the engine's layout. The first
        time after `compile`, also resolves the loss and metrics for these shapes and hands them
        to the engine."""
        if self._compile_args is None:
            raise ValueError(f"You must call `compile()` before calling `{method}()`.")
        loss_id, metric_ids = self._compile_args
        if loss_id is None:
            raise ValueError("No loss to compute. Provide a `loss` argument in `compile()`.")
        self._sync_trainable()
        output_shape = self._per_sample_output_shape()
        loss = self._loss or losses_module.get(loss_id, y.shape, output_shape)
        targets = loss.prepare_targets(y, output_shape, name)
        if self._loss is None:
            _warn_logits_of_probabilities(loss, self._output_activation())
            metrics = [metrics_module.get(m, y.shape, output_shape) for m in metric_ids]
            for metric in metrics:
                if metric.sparse != loss.sparse:
                    raise ValueError(_mismatch(metric, loss, y.shape, output_shape, name))
            self._engine.compile(
                json.dumps(loss.spec()),
                json.dumps(self.optimizer.spec()),
                json.dumps([m.spec() for m in metrics]),
            )
            self.optimizer._engine = self._engine
            self._loss, self._metrics = loss, metrics
            if self._saved_optimizer_state is not None:
                self._engine.set_optimizer_state(*self._saved_optimizer_state)
                self._saved_optimizer_state = None
                self._optimizer_built = True
        return targets

    def _sync_trainable(self) -> None:
        """Hands the engine which layers train, when that changed since it last heard."""
        trainable = self._trainable_layers()
        if trainable != self._engine_trainable:
            self._engine.set_trainable(trainable)
            self._engine_trainable = trainable

    # Data

    def _inputs(self, x, name: str = "x") -> np.ndarray:
        return self._model_inputs(_data.to_array(x, name), name)

    def _model_inputs(self, x: np.ndarray, name: str) -> np.ndarray:
        """Inputs already read by `_data.to_array`, checked against the model, as float32."""
        self._require_built(x)
        shape = self._input_sample_shape()
        return _data.as_float32(_data.match_input(x, shape, self.name, name))

    def _inputs_and_targets(self, x, y, method: str) -> tuple[np.ndarray, np.ndarray]:
        return self._model_pair(_data.to_array(x, "x"), _data.to_array(y, "y"), method)

    def _model_pair(self, x, y, method: str, names=("x", "y")) -> tuple[np.ndarray, np.ndarray]:
        """Inputs and targets already read by `_data.to_array`, checked against the model and
        the loss. Reading an array scans it for NaN, so `fit` reads each array only once."""
        x = self._model_inputs(x, names[0])
        _data.check_same_length(x, y, *names)
        return x, self._targets(y, method, names[1])

    def _logs(self, loss: float, metric_values) -> dict[str, float]:
        logs = {"loss": float(loss)}
        logs.update((m.name, float(v)) for m, v in zip(self._metrics, metric_values))
        return dict(sorted(logs.items()))

    def _on_gpu(self) -> bool:
        """Whether the engine computes on the GPU, as `pynn.config.set_device` chose (once the
        model is compiled: the GPU copy needs the loss and optimizer)."""
        device = config.get_device()
        if device == "cpu" or self._loss is None:
            return False
        if distribution_module.distribution() is not None:  # data-parallel: the CPU engine
            return False
        if device == "auto":
            info = config.gpu_info()
            if info is None or not info["is_gpu"]:
                return False
        try:
            reason = self._engine.gpu_unsupported()
        except MemoryError as error:
            if device == "gpu":
                raise
            reason = f"this model: {error}"
        if reason is None:
            return True
        if device == "gpu":
            raise NotImplementedError(
                f"The GPU engine does not run {reason} yet; train this model on the CPU with "
                "pynn.config.set_device('cpu')."
            )
        if not self._warned_gpu:
            warnings.warn(
                f"Training on the CPU: the GPU engine does not run {reason} yet.",
                RuntimeWarning,
                stacklevel=4,
            )
            self._warned_gpu = True
        return False

    def _progress_report(self, show):
        """The engine's progress, `(batches, [loss, metrics...])`, shown as logs by `show`
        (without logs when the engine keeps them until the epoch's end, as on the GPU)."""

        def report(batches, means):
            show(batches, self._logs(means[0], means[1:]) if means else {})

        return report

    def _run_batches(self, step, n, batch_size, order, begin, end, stoppable):
        """Runs `step(rows)` -> `(loss, metrics)` on each batch of `order` (a permutation of the
        `n` samples, or `None` for their order), telling `begin(batch)` and `end(batch, logs)`
        with the running means, as the engine computes them in one call."""
        loss_sum, metric_sums, seen = 0.0, np.zeros(len(self._metrics)), 0
        for batch, start in enumerate(range(0, n, batch_size)):
            stop = min(start + batch_size, n)
            rows = slice(start, stop) if order is None else order[start:stop]
            begin(batch)
            loss, metric_values = step(rows)
            loss_sum += loss * (stop - start)
            metric_sums += np.asarray(metric_values) * (stop - start)
            seen += stop - start
            end(batch, self._logs(loss_sum / seen, metric_sums / seen))
            if stoppable and self.stop_training:
                break
        return loss_sum / seen, list(metric_sums / seen)

    def _train_epoch(self, x, y, batch_size, seed, callbacks):
        """One epoch: one engine call, or one call per batch when a callback hooks batches.
        Returns the loss, the metrics and the first batch whose loss was not finite (or None)."""
        n = x.shape[0]
        bar = callbacks.live_progress()
        on_gpu = self._on_gpu()
        if not callbacks.needs_batches("train"):
            report = None if bar is None else self._progress_report(bar.show_progress)
            return self._engine.fit_epoch(
                x.reshape(-1), y.reshape(-1), n, batch_size, seed, report, on_gpu
            )
        order = visiting_order(seed, n)
        not_finite = []  # per batch run: whether its loss was NaN or infinite

        def step(rows):
            xb, yb = np.ascontiguousarray(x[rows]), np.ascontiguousarray(y[rows])
            loss, metric_values, bad = self._engine.fit_epoch(
                xb.reshape(-1), yb.reshape(-1), len(xb), len(xb), None, None, on_gpu
            )
            not_finite.append(bad is not None)
            return loss, metric_values

        loss, metric_values = self._run_batches(
            step,
            n,
            batch_size,
            order,
            callbacks.on_train_batch_begin,
            _then_show(callbacks.on_train_batch_end, None if bar is None else bar.show_progress),
            stoppable=True,
        )
        return loss, metric_values, (not_finite.index(True) if any(not_finite) else None)

    def _test(self, x, y, batch_size, callbacks, bar=None) -> dict[str, float]:
        """Loss and metrics with fixed weights, telling the callbacks' test hooks and showing
        the running logs on `bar` (a `Progbar`) while it runs."""
        callbacks.on_test_begin()
        n = x.shape[0]
        show = _live_show(bar)
        on_gpu = self._on_gpu()
        parallel = distribution_module.distribution()
        if parallel is not None:
            loss, metric_values = parallel.evaluate(self, x, y, batch_size)
        elif callbacks.needs_batches("test"):

            def step(rows):
                xb, yb = x[rows], y[rows]
                n = len(xb)
                return self._engine.evaluate(xb.reshape(-1), yb.reshape(-1), n, n, None, on_gpu)

            loss, metric_values = self._run_batches(
                step,
                n,
                batch_size,
                None,
                callbacks.on_test_batch_begin,
                _then_show(callbacks.on_test_batch_end, show),
                stoppable=False,
            )
        else:
            report = None if show is None else self._progress_report(show)
            loss, metric_values = self._engine.evaluate(
                x.reshape(-1), y.reshape(-1), n, batch_size, report, on_gpu
            )
        logs = self._logs(loss, metric_values)
        callbacks.on_test_end(logs)
        return logs

    def _validation(self, x, y, validation_split, validation_data):
        """Splits off or converts the validation set, checked like the training set."""
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError(
                    "`validation_data` must be a tuple `(x_val, y_val)`. "
                    f"Received: {type(validation_data).__name__} of length "
                    f"{len(validation_data) if hasattr(validation_data, '__len__') else '?'}"
                )
            x_val, y_val = validation_data
            return x, y, (_data.to_array(x_val, "x_val"), _data.to_array(y_val, "y_val"))
        if validation_split:
            split_at = _data.validation_split_index(x.shape[0], validation_split)
            return x[:split_at], y[:split_at], (x[split_at:], y[split_at:])
        return x, y, None

    def _warn_about_a_lopsided_split(self, y, y_val, validation_split) -> None:
        """pynn's own help (Keras is silent): data sorted by class, split before shuffling,
        validates on classes the model never trains on."""
        mismatch = _data.split_class_mismatch(self._loss.kind, y, y_val)
        if mismatch is not None:
            warnings.warn(
                f"`validation_split={validation_split}` takes the last samples, before any "
                f"shuffling: {mismatch}. Data sorted by class does this; shuffle `x` and `y` "
                "together before `fit` (`order = np.random.permutation(len(x))`, then "
                "`x[order], y[order]`) or pass `validation_data`.",
                UserWarning,
                stacklevel=4,
            )

    # Training and inference

    @_running
    def fit(
        self,
        x=None,
        y=None,
        batch_size=None,
        epochs=1,
        verbose="auto",
        callbacks=None,
        validation_split=0.0,
        validation_data=None,
        shuffle=True,
        initial_epoch=0,
        validation_batch_size=None,
        validation_freq=1,
    ) -> History:
        """Trains for `epochs` epochs (epoch indices `initial_epoch` to `epochs - 1`) and returns a
        `History` whose `.history` maps `loss`, each metric and their `val_` counterparts to one
        value per epoch.

        `batch_size` samples make one gradient update (`None`: 32, as in Keras).
        `validation_split` holds out the last fraction of the samples, taken before any
        shuffling (as Keras does; pynn warns when, for a classification loss, one side of the
        split holds classes the other lacks); `validation_data=(x_val, y_val)` takes
        precedence. Validation
        runs after every `validation_freq`-th epoch, in batches of `validation_batch_size`
        (default `batch_size`).
        """
        verbose = _progress.resolve_verbose(verbose)
        batch_size = _data.check_batch_size(batch_size)
        validation_batch_size = _data.check_batch_size(
            batch_size if validation_batch_size is None else validation_batch_size,
            "validation_batch_size",
        )
        for name, value in (("epochs", epochs), ("initial_epoch", initial_epoch)):
            _data.check_count(value, name, minimum=0)
        _data.check_count(validation_freq, "validation_freq", minimum=1)
        x, y = _data.to_array(x, "x"), _data.to_array(y, "y")
        _data.check_same_length(x, y)
        x, y, validation = self._validation(x, y, validation_split, validation_data)
        x, y = self._model_pair(x, y, "fit")
        if validation is not None:
            validation = self._model_pair(*validation, "fit", ("x_val", "y_val"))
            if validation_data is None:
                self._warn_about_a_lopsided_split(y, validation[1], validation_split)

        steps = math.ceil(x.shape[0] / batch_size)
        parallel = distribution_module.distribution()
        if parallel is not None:
            parallel.check_agreement(
                "fit",
                samples=x.shape[0],
                sample_shape=x.shape[1:],
                target_shape=y.shape[1:],
                weights=self.count_params(),
                batch_size=batch_size,
                epochs=epochs,
                validation_samples=None if validation is None else validation[0].shape[0],
                validation_batch_size=validation_batch_size,
                validation_freq=validation_freq,
            )
            # Process 0 alone prints and writes files.
            callbacks = parallel.callbacks(callbacks)
            verbose = verbose if parallel.process_id == 0 else 0
        callbacks = CallbackList(
            callbacks,
            model=self,
            add_history=True,
            add_progbar=verbose != 0,
            verbose=verbose,
            epochs=epochs,
            steps=steps,
        )
        self.stop_training = False
        self._initial_epoch = initial_epoch
        callbacks.on_train_begin()
        # `on_train_begin` may move the start (BackupAndRestore resuming a run).
        initial_epoch = self._initial_epoch
        fit_seed = draw_seed() if shuffle else None
        if parallel is not None:
            parallel.broadcast_model(self)
            fit_seed, initial_epoch = parallel.broadcast((fit_seed, initial_epoch))
        logs: dict[str, float] = {}
        warned = False
        for epoch in range(initial_epoch, epochs):
            callbacks.on_epoch_begin(epoch)
            seed = None if fit_seed is None else epoch_seed(fit_seed, epoch)
            if parallel is None:
                epoch_logs = self._train_epoch(x, y, batch_size, seed, callbacks)
            else:
                epoch_logs = parallel.train_epoch(self, x, y, batch_size, seed, callbacks)
            loss, metric_values, bad_batch = epoch_logs
            self._optimizer_built = True
            if bad_batch is not None and not warned and not self.stop_training:
                warned = _warn_non_finite_loss(epoch, bad_batch)
            logs = self._logs(loss, metric_values)
            if validation is not None and (epoch + 1) % validation_freq == 0:
                val_logs = self._test(*validation, validation_batch_size, callbacks)
                logs = dict(
                    sorted({**logs, **{f"val_{k}": v for k, v in val_logs.items()}}.items())
                )
            callbacks.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        callbacks.on_train_end(logs)
        self.history = callbacks.history
        return callbacks.history

    @_running
    def evaluate(
        self, x=None, y=None, batch_size=None, verbose="auto", callbacks=None, return_dict=False
    ):
        """The loss and metrics on `(x, y)` with fixed weights: a float when there are no metrics,
        else `[loss, metric, ...]` in compile order, or a dict with `return_dict=True`."""
        verbose = _quiet_beside_process_0(_progress.resolve_verbose(verbose))
        batch_size = _data.check_batch_size(batch_size)
        x, y = self._inputs_and_targets(x, y, "evaluate")
        bar = _progbar(x.shape[0], batch_size, verbose)
        logs = self._test(x, y, batch_size, CallbackList(callbacks, model=self), bar)
        if bar is not None:
            bar.update(bar.target, list(logs.items()), finalize=True)
        return _results(logs, [m.name for m in self._metrics], return_dict)

    @_running
    def predict(self, x, batch_size=None, verbose="auto", callbacks=None) -> np.ndarray:
        """The model's outputs for `x`, as a float32 array `(n,) + output_shape`."""
        verbose = _quiet_beside_process_0(_progress.resolve_verbose(verbose))
        batch_size = _data.check_batch_size(batch_size)
        x = self._inputs(x)
        n = x.shape[0]
        callbacks = CallbackList(callbacks, model=self)
        bar = _progbar(n, batch_size, verbose)
        show = _live_show(bar)
        on_gpu = self._on_gpu()
        parallel = distribution_module.distribution()
        callbacks.on_predict_begin()
        if parallel is not None:
            out = parallel.predict(self, x, batch_size)
        elif callbacks.needs_batches("predict"):
            parts = []
            for batch, first in enumerate(range(0, n, batch_size)):
                callbacks.on_predict_batch_begin(batch)
                part = x[first : first + batch_size]
                n_part = len(part)
                parts.append(self._predict_part(part, n_part, None, on_gpu))
                callbacks.on_predict_batch_end(batch, {"outputs": parts[-1]})
                if show is not None:
                    show(batch + 1, {})
            out = np.concatenate(parts)
        else:
            report = None if show is None else (lambda batches, _: show(batches, {}))
            out = self._predict_part(x, batch_size, report, on_gpu)
        callbacks.on_predict_end()
        if bar is not None:
            bar.update(bar.target, finalize=True)
        return out

    @_running
    def train_on_batch(self, x, y, return_dict=False):
        """One optimizer step on the whole of `(x, y)`; returns that batch's loss and metrics."""
        x, y = self._inputs_and_targets(x, y, "train_on_batch")
        n = x.shape[0]
        loss, metric_values, _ = self._engine.fit_epoch(
            x.reshape(-1), y.reshape(-1), n, n, None, None, self._on_gpu()
        )
        self._optimizer_built = True
        names = [m.name for m in self._metrics]
        return _results(self._logs(loss, metric_values), names, return_dict)

    @_running
    def test_on_batch(self, x, y, return_dict=False):
        """The loss and metrics on one batch `(x, y)`, without updating weights."""
        x, y = self._inputs_and_targets(x, y, "test_on_batch")
        n = x.shape[0]
        loss, metric_values = self._engine.evaluate(
            x.reshape(-1), y.reshape(-1), n, n, None, self._on_gpu()
        )
        names = [m.name for m in self._metrics]
        return _results(self._logs(loss, metric_values), names, return_dict)

    @_running
    def predict_on_batch(self, x) -> np.ndarray:
        """The model's outputs for one batch `x`."""
        x = self._inputs(x)
        n = x.shape[0]
        return self._predict_part(x, n, None, self._on_gpu())

    def _predict_part(self, x: np.ndarray, batch_size: int, report, on_gpu: bool) -> np.ndarray:
        """The engine's outputs for `x` (checked inputs), computed in batches of `batch_size`
        into an array allocated here: NumPy reports a size no memory holds before any work."""
        out = _output_array((x.shape[0], *self._per_sample_output_shape()))
        self._engine.predict(x.reshape(-1), x.shape[0], batch_size, out, report, on_gpu)
        return out

    def __call__(self, x, training=False) -> np.ndarray:
        return self.predict_on_batch(x)

    # Inspection

    @_running
    def compute_gradients(self, x, y) -> list[np.ndarray]:
        """The gradient of the loss with respect to every weight, on all of `(x, y)` as one
        batch: what a training step on it would apply before the optimizer, i.e. Keras's
        `tape.gradient(loss, model.trainable_weights)` for `model(x, training=True)`, weight
        penalties included. Nothing is updated (Dropout draws the masks of the next step).

        Returns:
            One float32 array per weight, in the order and shapes of `get_weights()`.
        """
        x, y = self._inputs_and_targets(x, y, "compute_gradients")
        _, _, flat = self._engine.compute_gradients(x.reshape(-1), y.reshape(-1), x.shape[0])
        return _split(flat, self._engine.weight_shapes())


def _output_array(shape: tuple[int, ...]) -> np.ndarray:
    """An uninitialised float32 array of `shape` for predictions, or an error naming `x`."""
    values = math.prod(shape)
    if values * 4 > _MAX_BYTES:
        raise ValueError(
            f"The predictions for `x` would need {values * 4:,} bytes (shape {shape}), more than "
            "any machine can address; predict fewer samples at a time."
        )
    try:
        return np.empty(shape, np.float32)
    except MemoryError:
        raise MemoryError(
            f"Not enough memory for the predictions of `x`: {values * 4 / 2**30:,.1f} GiB "
            f"(shape {shape}); predict fewer samples at a time."
        ) from None


def _warn_logits_of_probabilities(loss, activation: str | None) -> None:
    """Keras's warning for `from_logits=True` on an output that ends in a sigmoid or a softmax:
    crossentropy then reads that layer's logits anyway (see `pynn.losses`)."""
    if not getattr(loss, "from_logits", False) or activation not in ("sigmoid", "softmax"):
        return
    op = "Sigmoid" if loss.kind == "binary_crossentropy" else "Softmax"
    warnings.warn(
        f'"`{loss.kind}` received `from_logits=True`, but the `output` argument was produced by '
        f"a {op} activation and thus does not represent logits. Was this intended?",
        UserWarning,
        stacklevel=5,
    )


def _mismatch(metric, loss, y_shape, output_shape, name: str) -> str:
    """Why `metric` and `loss` cannot both read targets of `y_shape`."""
    wanted = "class indices" if metric.sparse else "one-hot or real-valued targets"
    message = (
        f"Metric '{metric.name}' needs {wanted}, which loss '{loss.name}' does not take; "
        "choose a metric that matches the loss"
    )
    if metric.sparse and metric.name in ("accuracy", "acc"):
        expected = (y_shape[0], *output_shape)
        message = (
            f"`{name}` has shape {tuple(y_shape)}: with its last axis of 1, metric "
            f"'{metric.name}' reads it as class indices, which loss '{loss.name}' does not take. "
            f"Give `{name}` the model's output shape, {expected}"
        )
    return message + "."


def _split(flat: np.ndarray, shapes) -> list[np.ndarray]:
    """`flat` cut into consecutive arrays of `shapes`."""
    sizes = [int(np.prod(shape)) for shape in shapes]
    parts = np.split(flat, np.cumsum(sizes)[:-1]) if sizes else []
    return [part.reshape(shape) for part, shape in zip(parts, shapes)]


def _quiet_beside_process_0(verbose: int) -> int:
    """`verbose` on process 0 of a distributed job (or outside one), 0 on the others."""
    parallel = distribution_module.distribution()
    return verbose if parallel is None or parallel.process_id == 0 else 0


def _progbar(n: int, batch_size: int, verbose: int):
    """The bar of an evaluation or prediction over `n` samples, or None when silent."""
    if not verbose:
        return None
    return Progbar(math.ceil(n / batch_size), verbose=verbose, stateful_metrics=ALL_STATEFUL)


def _live_show(bar):
    """`show(batches, logs)` redrawing `bar` during a run, or None when it shows only the end."""
    if bar is None or not bar.redraws:
        return None

    def show(batches, logs):
        bar.update(batches, list(logs.items()), finalize=False)

    return show


def _then_show(end_batch, show):
    """`end_batch(batch, logs)`, followed by `show(batches done, logs)` when there is a `show`."""
    if show is None:
        return end_batch

    def end_and_show(batch, logs):
        end_batch(batch, logs)
        show(batch + 1, logs)

    return end_and_show


def _warn_non_finite_loss(epoch: int, batch: int) -> bool:
    warnings.warn(
        f"Epoch {epoch + 1}, batch {batch}: the loss is NaN or infinite, and the weights may no "
        "longer be finite. Lower the learning rate or check the data; "
        "pynn.callbacks.TerminateOnNaN() stops training at the first such batch.",
        RuntimeWarning,
        stacklevel=3,
    )
    return True


def _identifier_config(identifier):
    """A loss or metric given to `compile` as JSON: names stay names, objects become configs."""
    if identifier is None or isinstance(identifier, str):
        return identifier
    if isinstance(identifier, type):
        return identifier.__name__
    if hasattr(identifier, "get_config"):
        return serialize(identifier)
    return getattr(identifier, "__name__", repr(identifier))


def _results(logs: dict[str, float], metric_names: list[str], return_dict: bool):
    """What `evaluate` and the batch methods return: the logs, the loss alone, or
    `[loss, *metrics]` in compile order."""
    if return_dict:
        return logs
    if not metric_names:
        return logs["loss"]
    return [logs["loss"]] + [logs[name] for name in metric_names]
