"""`Trainer`: compile, fit, evaluate and predict for a model whose engine holds the network
(`keras/src/trainers/trainer.py`).

Python checks and converts the data once, then hands whole arrays to the engine: one call per
epoch runs every batch (shuffle, forward, loss, backward, optimizer step, metrics) with the GIL
released. Python only sees epochs: it prints progress and runs callbacks.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import threading
import warnings

import numpy as np

from pynn import _compile, _data, _progress, config
from pynn import distribution as distribution_module
from pynn import losses as losses_module
from pynn import metrics as metrics_module
from pynn import optimizers as optimizers_module
from pynn._random import draw_seed, eager_stream, epoch_seed, visiting_order
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
    """Mixed into models that provide `name`, `_engine`, `_engine_for(xs)` (the engine planned
    for batches like `xs`), `_require_built(xs)`, `_trainable_layers()` and, per input and
    output, `_input_names()`, `_input_sample_shapes()`, `_output_names()`,
    `_output_sample_shapes()`, `_output_activations()` and `_output_structure(arrays)`.

    Data travels as lists of arrays, one per model input and one per output."""

    _compile_args = None
    #: Each output's loss, weight and metrics, as `compile` received them.
    _compile_outputs: list = []
    #: The same, resolved for the data's shapes and handed to the engine (None: not yet).
    _compiled_outputs = None
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
    #: Calls on arrays in training mode so far (see `_random.eager_stream`).
    _training_calls = 0
    _running_call = None
    #: Which layers train, taken at the first training call after `compile` and handed to
    #: the engine (None: not yet).
    _trained_layers = None
    #: A change of `trainable` since, already warned about.
    _warned_trainable = None
    #: The flags the engine holds now (None: unknown).
    _engine_flags = None

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
        loss_weights=None,
        metrics=None,
        run_eagerly=False,
        steps_per_execution=1,
        jit_compile="auto",
        auto_scale_loss=True,
    ) -> None:
        """Sets the optimizer, the loss and the metrics (names or objects) used by `fit`.

        With several outputs, `loss` is one loss for all of them, a list of one per output or
        a dict by output name (an output without a loss gets no gradient); `loss_weights`
        scales each output's loss in the total (a list or a dict); `metrics` is a list per
        output or a dict. `"accuracy"` becomes binary, sparse or categorical accuracy from the
        shapes of the data at the first `fit`/`evaluate`, as Keras decides.
        """
        self._refuse_while_running("compile")
        self.optimizer = optimizers_module.get(optimizer)
        names = self._output_names() if self.built else ["output"]
        self._compile_outputs = _compile.outputs(loss, loss_weights, metrics, names)
        self._compile_args = (loss, loss_weights, metrics)
        self._compiled_outputs = None
        self._optimizer_built = False
        self._saved_optimizer_state = None
        self._trained_layers = None

    @property
    def compiled(self) -> bool:
        return self._compile_args is not None

    def get_compile_config(self) -> dict | None:
        """What `compile` received (optimizer, loss, metrics) as plain JSON values."""
        if self._compile_args is None:
            return None
        loss, loss_weights, metrics = self._compile_args
        config = {
            "optimizer": serialize(self.optimizer),
            "loss": _identifier_config(loss),
            "metrics": _identifier_config(metrics or []),
        }
        if loss_weights is not None:
            config["loss_weights"] = loss_weights
        return config

    def compile_from_config(self, config: dict) -> None:
        """Compiles with what `get_compile_config()` returned."""
        if not isinstance(config, dict) or not isinstance(config.get("metrics", []), list | dict):
            raise ValueError(f"Invalid compile config: {config!r}")
        self.compile(
            optimizer=config.get("optimizer"),
            loss=_loss_from_config(config.get("loss")),
            loss_weights=config.get("loss_weights"),
            metrics=config.get("metrics"),
        )

    @property
    def metrics_names(self) -> list[str]:
        """`loss`, `compile_metrics` where there are metrics, then each output's loss where
        several outputs have one, as Keras names its metric objects."""
        compiled = self._compiled_outputs or []
        names = ["loss"]
        if any(o.metrics for o in compiled):
            names.append("compile_metrics")
        return names + _compile.output_loss_names(compiled, self._loss_order())

    def _loss_order(self) -> list[str] | None:
        """Where a model's outputs are a dict and so is its loss: the outputs that have a loss,
        in the loss dict's order, which Keras lists their losses in."""
        loss = self._compile_args[0] if self._compile_args else None
        if isinstance(loss, dict) and isinstance(getattr(self, "_outputs_struct", None), dict):
            return [key for key, value in loss.items() if value is not None]
        return None

    def _targets(self, ys: list, method: str, labels: list[str]) -> list[np.ndarray]:
        """Checks each output's targets against its loss and metrics and returns them in the
        engine's layout. The first time after `compile`, also resolves the losses and metrics
        for these shapes and hands them to the engine."""
        if self._compile_args is None:
            raise ValueError(f"You must call `compile()` before calling `{method}()`.")
        if all(o.loss_id is None for o in self._compile_outputs):
            raise ValueError("No loss to compute. Provide a `loss` argument in `compile()`.")
        self._hand_trainable(training=method in _TRAINING_METHODS)
        compiled = self._compiled_outputs or self._resolve_outputs(ys)
        shapes = self._output_sample_shapes()
        targets = [
            _prepared_targets(output, y, shape, label)
            for output, y, shape, label in zip(compiled, ys, shapes, labels)
        ]
        if self._compiled_outputs is None:
            for output, y, shape, label in zip(compiled, ys, shapes, labels):
                reader = output.loss or (output.metrics[0] if output.metrics else None)
                for metric in output.metrics:
                    if metric.sparse != reader.sparse:
                        raise ValueError(_mismatch(metric, reader, y.shape, shape, label))
            self._engine.compile(
                json.dumps([o.spec() for o in compiled]), json.dumps(self.optimizer.spec())
            )
            self.optimizer._engine = self._engine
            self._compiled_outputs = compiled
            if self._saved_optimizer_state is not None:
                self._engine.set_optimizer_state(*self._saved_optimizer_state)
                self._saved_optimizer_state = None
                self._optimizer_built = True
        return targets

    def _resolve_outputs(self, ys: list) -> list[_compile.Output]:
        """The compiled outputs with their losses and metrics picked for targets `ys`."""
        if len(self._compile_outputs) != len(self._output_names()):
            # Compiled before the model knew its outputs: take the arguments again.
            self._compile_outputs = _compile.outputs(*self._compile_args, self._output_names())
        resolved = []
        shapes = self._output_sample_shapes()
        activations = self._output_activations()
        for output, y, shape, activation in zip(self._compile_outputs, ys, shapes, activations):
            loss = None
            if output.loss_id is not None:
                loss = losses_module.get(output.loss_id, y.shape, shape)
                _warn_logits_of_probabilities(loss, activation)
            metrics = [metrics_module.get(m, y.shape, shape) for m in output.metric_ids]
            resolved.append(dataclasses.replace(output, loss=loss, metrics=metrics))
        return resolved

    def _hand_trainable(self, training: bool) -> None:
        """Hands the engine which layers train. Training takes them at its first call after
        `compile`, as Keras does when it makes its train function; a later change of
        `trainable` takes effect at the next `compile`, and pynn warns about it (Keras means
        to, and does not). An evaluation's weight penalties follow the current flags, as
        Keras's `model.losses` does."""
        trainable = self._trainable_layers()
        if training:
            self._check_trained_layers(trainable)
            trainable = self._trained_layers
        if trainable != self._engine_flags:
            self._engine.set_trainable(trainable)
            self._engine_flags = trainable

    def _check_trained_layers(self, trainable: list[bool]) -> None:
        """Takes `trainable` as the trained layers at the first training call after `compile`;
        warns, once per change, when they differ later."""
        if self._trained_layers is None:
            self._trained_layers = trainable
        elif trainable != self._trained_layers and trainable != self._warned_trainable:
            changed = [
                layer.name
                for layer, now, then in zip(self._engine_layers, trainable, self._trained_layers)
                if now != then
            ]
            warnings.warn(
                "A layer's `trainable` state has changed since the model was compiled. This "
                "can result in unexpected behavior, as the compiled optimizer and loss "
                "functions may not track the correct variables. Please recompile your model "
                "(e.g. `model.compile(...)`) before calling `fit()` or `evaluate()` so the "
                f"change takes effect. Changed layers: {changed}",
                UserWarning,
                stacklevel=4,
            )
            self._warned_trainable = trainable

    # Data

    def _inputs(self, x, name: str = "x") -> list[np.ndarray]:
        return self._model_inputs(*_data.to_arrays(x, self._input_names(), name, "inputs"))

    def _model_inputs(self, xs: list, labels: list[str]) -> list[np.ndarray]:
        """Inputs already read by `_data.to_arrays`, checked against the model, as float32."""
        self._require_built(xs)
        shapes = self._input_sample_shapes()
        _data.check_lengths(xs, labels)
        return [
            _data.as_float32(_data.match_input(x, shape, self.name, label))
            for x, shape, label in zip(xs, shapes, labels)
        ]

    def _read_pair(self, x, y, names=("x", "y")) -> tuple:
        """`(xs, x labels), (ys, y labels)` as `_data.to_arrays` reads them."""
        xs = _data.to_arrays(x, self._input_names(), names[0], "inputs")
        if not self.built:  # a Sequential learns its input shape from `x`
            self._require_built(xs[0])
        ys = _data.to_arrays(y, self._output_names(), names[1], "outputs")
        return xs, ys

    def _inputs_and_targets(self, x, y, method: str) -> tuple[list, list]:
        return self._model_pair(*self._read_pair(x, y), method)

    def _model_pair(self, xs, ys, method: str) -> tuple[list, list]:
        """Inputs and targets already read by `_data.to_arrays` (each with its labels), checked
        against the model and the losses. Reading an array scans it for NaN, so `fit` reads
        each array only once."""
        (xs, x_labels), (ys, y_labels) = xs, ys
        xs = self._model_inputs(xs, x_labels)
        _data.check_lengths([xs[0], *ys], [x_labels[0], *y_labels])
        return xs, self._targets(ys, method, y_labels)

    def _logs_names(self) -> list[str]:
        """The names of the values the engine logs: `loss`, each output's loss, each metric."""
        loss_names, metric_names = _compile.log_names(self._compiled_outputs)
        return ["loss", *loss_names, *metric_names]

    def _log_direction(self, name: str) -> str | None:
        """Whether the logged value `name` improves going `"up"` or `"down"` (None: no such
        value): losses go down, metrics as each metric says."""
        loss_names, metric_names = _compile.log_names(self._compiled_outputs or [])
        if name == "loss" or name in loss_names:
            return "down"
        metrics = [m for o in self._compiled_outputs or [] for m in o.metrics]
        for metric_name, metric in zip(metric_names, metrics):
            if metric_name == name:
                return metric.direction
        return None

    def _logs(self, values) -> dict[str, float]:
        """The logs of `values` (in the order of `_logs_names`), by name and sorted (Keras's
        order of keys)."""
        return dict(sorted(zip(self._logs_names(), map(float, values))))

    def _on_gpu(self) -> bool:
        """Whether the engine computes on the GPU, as `pynn.config.set_device` chose (once the
        model is compiled: the GPU copy needs the loss and optimizer)."""
        device = config.get_device()
        if device == "cpu" or self._compiled_outputs is None:
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
        """The engine's progress, `(batches, [loss, output losses..., metrics...])`, shown as
        logs by `show` (without logs when the engine keeps them until the epoch's end, as on
        the GPU)."""

        def report(batches, means):
            show(batches, self._logs(means) if means else {})

        return report

    def _run_batches(self, step, n, batch_size, order, begin, end, stoppable):
        """Runs `step(rows)` -> `[loss, output losses..., metrics...]` on each batch of `order`
        (a permutation of the `n` samples, or `None` for their order), telling `begin(batch)`
        and `end(batch, logs)` with the running means, as the engine computes them in one
        call."""
        sums, seen = 0.0, 0
        for batch, start in enumerate(range(0, n, batch_size)):
            stop = min(start + batch_size, n)
            rows = slice(start, stop) if order is None else order[start:stop]
            begin(batch)
            sums = sums + np.asarray(step(rows), np.float64) * (stop - start)
            seen += stop - start
            end(batch, self._logs(sums / seen))
            if stoppable and self.stop_training:
                break
        return list(sums / seen)

    def _train_epoch(self, xs, ys, batch_size, seed, callbacks):
        """One epoch: one engine call, or one call per batch when a callback hooks batches.
        Returns the logged values and the first batch whose loss was not finite (or None)."""
        n = xs[0].shape[0]
        bar = callbacks.live_progress()
        on_gpu = self._on_gpu()
        if not callbacks.needs_batches("train"):
            report = None if bar is None else self._progress_report(bar.show_progress)
            *values, bad = self._engine_for(xs).fit_epoch(
                _flat(xs), _flat(ys), n, batch_size, seed, report, on_gpu
            )
            return _values(*values), bad
        order = visiting_order(seed, n)
        not_finite = []  # per batch run: whether its loss was NaN or infinite

        def step(rows):
            xb, yb = _rows(xs, rows), _rows(ys, rows)
            m = xb[0].shape[0]
            *values, bad = self._engine_for(xb).fit_epoch(
                _flat(xb), _flat(yb), m, m, None, None, on_gpu
            )
            not_finite.append(bad is not None)
            return _values(*values)

        values = self._run_batches(
            step,
            n,
            batch_size,
            order,
            callbacks.on_train_batch_begin,
            _then_show(callbacks.on_train_batch_end, None if bar is None else bar.show_progress),
            stoppable=True,
        )
        return values, (not_finite.index(True) if any(not_finite) else None)

    def _test(self, xs, ys, batch_size, callbacks, bar=None) -> dict[str, float]:
        """Losses and metrics with fixed weights, telling the callbacks' test hooks and showing
        the running logs on `bar` (a `Progbar`) while it runs."""
        callbacks.on_test_begin()
        n = xs[0].shape[0]
        show = _live_show(bar)
        on_gpu = self._on_gpu()
        parallel = distribution_module.distribution()
        if parallel is not None:
            values = parallel.evaluate(self, xs, ys, batch_size)
        elif callbacks.needs_batches("test"):

            def step(rows):
                xb, yb = _rows(xs, rows), _rows(ys, rows)
                m = xb[0].shape[0]
                return _values(
                    *self._engine_for(xb).evaluate(_flat(xb), _flat(yb), m, m, None, on_gpu)
                )

            values = self._run_batches(
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
            values = _values(
                *self._engine_for(xs).evaluate(_flat(xs), _flat(ys), n, batch_size, report, on_gpu)
            )
        logs = self._logs(values)
        callbacks.on_test_end(logs)
        return logs

    def _validation(self, xs, ys, validation_split, validation_data):
        """Splits off or reads the validation set (each array with its labels), to be checked
        like the training set."""
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError(
                    "`validation_data` must be a tuple `(x_val, y_val)`. "
                    f"Received: {type(validation_data).__name__} of length "
                    f"{len(validation_data) if hasattr(validation_data, '__len__') else '?'}"
                )
            return xs, ys, self._read_pair(*validation_data, names=("x_val", "y_val"))
        if validation_split:
            at = _data.validation_split_index(xs[0][0].shape[0], validation_split)
            (x_arrays, x_labels), (y_arrays, y_labels) = xs, ys
            train = (([a[:at] for a in x_arrays], x_labels), ([a[:at] for a in y_arrays], y_labels))
            validation = (
                ([a[at:] for a in x_arrays], x_labels),
                ([a[at:] for a in y_arrays], y_labels),
            )
            return *train, validation
        return xs, ys, None

    def _warn_about_a_lopsided_split(self, ys, ys_val, validation_split) -> None:
        """pynn's own help (Keras is silent): data sorted by class, split before shuffling,
        validates on classes the model never trains on."""
        for output, y, y_val in zip(self._compiled_outputs, ys, ys_val):
            if output.loss is None:
                continue
            mismatch = _data.split_class_mismatch(output.loss.kind, y, y_val)
            if mismatch is None:
                continue
            where = f" (output '{output.name}')" if len(ys) > 1 else ""
            warnings.warn(
                f"`validation_split={validation_split}` takes the last samples, before any "
                f"shuffling{where}: {mismatch}. Data sorted by class does this; shuffle `x` and "
                "`y` together before `fit` (`order = np.random.permutation(len(x))`, then "
                "`x[order], y[order]`) or pass `validation_data`.",
                UserWarning,
                stacklevel=4,
            )
            return

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

        `x` and `y` are arrays, or for a model of several inputs or outputs lists of arrays
        (in the order of `model.inputs`, `model.outputs`) or dicts by input and output name.
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
        xs, ys = self._read_pair(x, y)
        _data.check_lengths([*xs[0], *ys[0]], [*xs[1], *ys[1]])
        xs, ys, validation = self._validation(xs, ys, validation_split, validation_data)
        xs, ys = self._model_pair(xs, ys, "fit")
        if validation is not None:
            validation = self._model_pair(*validation, "fit")
            if validation_data is None:
                self._warn_about_a_lopsided_split(ys, validation[1], validation_split)

        n = xs[0].shape[0]
        steps = math.ceil(n / batch_size)
        parallel = distribution_module.distribution()
        if parallel is not None:
            parallel.check_agreement(
                "fit",
                samples=n,
                sample_shapes=[x.shape[1:] for x in xs],
                target_shapes=[y.shape[1:] for y in ys],
                weights=self.count_params(),
                batch_size=batch_size,
                epochs=epochs,
                validation_samples=None if validation is None else validation[0][0].shape[0],
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
                values, bad_batch = self._train_epoch(xs, ys, batch_size, seed, callbacks)
            else:
                values, bad_batch = parallel.train_epoch(self, xs, ys, batch_size, seed, callbacks)
            self._optimizer_built = True
            if bad_batch is not None and not warned and not self.stop_training:
                warned = _warn_non_finite_loss(epoch, bad_batch)
            logs = self._logs(values)
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
        else a list as Keras orders it (the loss, the metrics in compile order or, with several
        outputs, each output's loss in output order and then the metrics by name), or a dict
        with `return_dict=True`."""
        verbose = _quiet_beside_process_0(_progress.resolve_verbose(verbose))
        batch_size = _data.check_batch_size(batch_size)
        xs, ys = self._inputs_and_targets(x, y, "evaluate")
        bar = _progbar(xs[0].shape[0], batch_size, verbose)
        logs = self._test(xs, ys, batch_size, CallbackList(callbacks, model=self), bar)
        if bar is not None:
            bar.update(bar.target, list(logs.items()), finalize=True)
        return self._results(logs, return_dict)

    @_running
    def predict(self, x, batch_size=None, verbose="auto", callbacks=None):
        """The model's outputs for `x`, as a float32 array `(n,) + output_shape`; for a model
        of several outputs, one such array per output, in the structure of `model.outputs`
        (a list, or a dict by name)."""
        verbose = _quiet_beside_process_0(_progress.resolve_verbose(verbose))
        batch_size = _data.check_batch_size(batch_size)
        xs = self._inputs(x)
        n = xs[0].shape[0]
        callbacks = CallbackList(callbacks, model=self)
        bar = _progbar(n, batch_size, verbose)
        show = _live_show(bar)
        on_gpu = self._on_gpu()
        parallel = distribution_module.distribution()
        callbacks.on_predict_begin()
        if parallel is not None:
            outs = parallel.predict(self, xs, batch_size)
        elif callbacks.needs_batches("predict"):
            parts = []
            for batch, first in enumerate(range(0, n, batch_size)):
                callbacks.on_predict_batch_begin(batch)
                part = _rows(xs, slice(first, first + batch_size))
                parts.append(self._predict_part(part, batch_size, None, on_gpu))
                outputs = self._output_structure(parts[-1])
                callbacks.on_predict_batch_end(batch, {"outputs": outputs})
                if show is not None:
                    show(batch + 1, {})
            outs = [np.concatenate(arrays) for arrays in zip(*parts)]
        else:
            report = None if show is None else (lambda batches, _: show(batches, {}))
            outs = self._predict_part(xs, batch_size, report, on_gpu)
        callbacks.on_predict_end()
        if bar is not None:
            bar.update(bar.target, finalize=True)
        return self._output_structure(outs)

    @_running
    def train_on_batch(self, x, y, return_dict=False):
        """One optimizer step on the whole of `(x, y)`; returns that batch's loss and metrics."""
        xs, ys = self._inputs_and_targets(x, y, "train_on_batch")
        n = xs[0].shape[0]
        *values, _ = self._engine_for(xs).fit_epoch(
            _flat(xs), _flat(ys), n, n, None, None, self._on_gpu()
        )
        self._optimizer_built = True
        return self._results(self._logs(_values(*values)), return_dict)

    @_running
    def test_on_batch(self, x, y, return_dict=False):
        """The loss and metrics on one batch `(x, y)`, without updating weights."""
        xs, ys = self._inputs_and_targets(x, y, "test_on_batch")
        n = xs[0].shape[0]
        values = self._engine_for(xs).evaluate(_flat(xs), _flat(ys), n, n, None, self._on_gpu())
        return self._results(self._logs(_values(*values)), return_dict)

    @_running
    def predict_on_batch(self, x):
        """The model's outputs for one batch `x`."""
        xs = self._inputs(x)
        outs = self._predict_part(xs, xs[0].shape[0], None, self._on_gpu())
        return self._output_structure(outs)

    def _call_in_mode(self, x, training):
        """The model's outputs for one batch `x` with its Dropout layers in training mode
        (`training=True`) or as their calls were recorded (`training=None`): Keras's
        `model(x, training=...)`. Each call draws new masks."""
        xs = self._inputs(x)
        n = xs[0].shape[0]
        outs = [_output_array((n, *shape)) for shape in self._output_sample_shapes()]
        self._training_calls = self._training_calls + 1
        stream = eager_stream(self._training_calls)
        self._engine_for(xs).forward_in_mode(_flat(xs), n, outs, training, stream)
        return self._output_structure(outs)

    def _predict_part(self, xs, batch_size: int, report, on_gpu: bool) -> list[np.ndarray]:
        """The engine's outputs for `xs` (checked inputs), computed in batches of `batch_size`
        into arrays allocated here: NumPy reports a size no memory holds before any work."""
        n = xs[0].shape[0]
        outs = [_output_array((n, *shape)) for shape in self._output_sample_shapes()]
        self._engine_for(xs).predict(_flat(xs), n, batch_size, outs, report, on_gpu)
        return outs

    def _results(self, logs: dict[str, float], return_dict: bool):
        """What `evaluate` and the batch methods return: the logs, or their values in Keras's
        order (the loss alone when there is nothing else)."""
        if return_dict:
            return logs
        values = _compile.in_keras_order(logs, self._compiled_outputs, self._loss_order())
        return values[0] if len(values) == 1 else values

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
        xs, ys = self._inputs_and_targets(x, y, "compute_gradients")
        _, flat = self._engine_for(xs).compute_gradients(_flat(xs), _flat(ys), xs[0].shape[0])
        return _split(flat, self._engine.weight_shapes())


#: The calls that train, and so take the set of trained layers.
_TRAINING_METHODS = ("fit", "train_on_batch", "compute_gradients")


def _flat(arrays: list[np.ndarray]) -> list[np.ndarray]:
    """Each array as the engine reads it: flat, C-contiguous float32 (no copy where it is)."""
    return [np.ascontiguousarray(a).reshape(-1) for a in arrays]


def _rows(arrays: list[np.ndarray], rows) -> list[np.ndarray]:
    """The samples `rows` (a slice or indices) of each array."""
    return [a[rows] for a in arrays]


def _values(loss, output_losses, metrics) -> list[float]:
    """The engine's `(loss, [output losses], [metrics])` as one list, the logs' order."""
    return [loss, *output_losses, *metrics]


def _prepared_targets(output, y: np.ndarray, shape, label: str) -> np.ndarray:
    """Targets `y` of one output checked and laid out for its loss, or where it has none, for
    its metrics (none: the engine reads nothing)."""
    if output.loss is not None:
        return output.loss.prepare_targets(y, shape, label)
    if output.metrics:
        kind = "sparse_categorical_crossentropy" if output.metrics[0].sparse else "mse"
        return losses_module.get(kind).prepare_targets(y, shape, label)
    return np.zeros(0, np.float32)


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
    """A loss or metric given to `compile` as JSON: names stay names, objects become configs,
    lists and dicts (per output) keep their structure."""
    if identifier is None or isinstance(identifier, str):
        return identifier
    if isinstance(identifier, (list, tuple)):
        return [_identifier_config(item) for item in identifier]
    if isinstance(identifier, dict):
        return {key: _identifier_config(item) for key, item in identifier.items()}
    if isinstance(identifier, type):
        return identifier.__name__
    if hasattr(identifier, "get_config"):
        return serialize(identifier)
    return getattr(identifier, "__name__", repr(identifier))


def _loss_from_config(config):
    """A compile config's loss: a serialized loss object (a dict with `class_name`) becomes the
    object again; lists and dicts (per output) keep their structure."""
    if isinstance(config, dict) and "class_name" in config:
        return losses_module.get(config)
    if isinstance(config, list):
        return [_loss_from_config(item) for item in config]
    if isinstance(config, dict):
        return {key: _loss_from_config(item) for key, item in config.items()}
    return config
