"""Callbacks: Keras 3's hooks and built-ins, driven by unit scripts and by real fits."""

import csv
import math

import numpy as np
import pytest

import pynn
from pynn.callbacks import (
    Callback,
    CSVLogger,
    EarlyStopping,
    LambdaCallback,
    LearningRateScheduler,
    ReduceLROnPlateau,
    TerminateOnNaN,
)
from pynn.layers import Dense

RNG = np.random.default_rng(8)
X = RNG.normal(size=(30, 3))
Y = np.eye(3)[RNG.integers(0, 3, size=30)]


def make_model(optimizer="adam"):
    pynn.utils.set_random_seed(1)
    model = pynn.Sequential(
        [pynn.Input(shape=(3,)), Dense(6, activation="relu"), Dense(3, activation="softmax")]
    )
    model.compile(loss="categorical_crossentropy", optimizer=optimizer, metrics=["accuracy"])
    return model


class Script(Callback):
    """Overwrites `monitor` in each epoch's logs with a scripted value and records the weights,
    so the callbacks after it see the script."""

    def __init__(self, values, monitor="val_loss"):
        super().__init__()
        self.values, self.monitor, self.weights = values, monitor, []

    def on_epoch_end(self, epoch, logs=None):
        logs[self.monitor] = self.values[epoch]
        self.weights.append(self.model.get_weights())


def run_script(values, epochs=None, **early_stopping):
    script = Script(values, early_stopping.get("monitor", "val_loss"))
    stopper = EarlyStopping(**early_stopping)
    model = make_model()
    history = model.fit(
        X,
        Y,
        epochs=epochs or len(values),
        batch_size=10,
        verbose=0,
        validation_split=0.2,
        callbacks=[script, stopper],
    )
    return model, stopper, script, history


@pytest.mark.parametrize(
    "values,kwargs,stopped",
    [
        ([5, 4, 3, 4, 4, 4, 4], {"patience": 2}, 4),
        ([3, 4, 5], {"patience": 0}, 1),  # patience 0 acts as patience 1
        ([3, 3, 3], {"patience": 1}, 1),  # equal is no improvement
        ([1.0, 0.95, 0.9, 0.8], {"patience": 1, "min_delta": 0.1}, 1),
        ([0.5, 0.6, 0.7, 0.8], {"patience": 2, "baseline": 0.3}, 1),
        ([0.5, 0.45, 0.44, 0.43, 0.42], {"patience": 2, "baseline": 0.3}, 0),  # improving
        ([9, 9, 9, 1, 2, 3], {"patience": 2, "start_from_epoch": 3}, 5),
        ([0.2, 0.5, 0.4, 0.3], {"patience": 1, "monitor": "val_accuracy"}, 2),  # auto: max
        ([0.2, 0.1, 0.3, 0.4], {"patience": 2, "mode": "min", "monitor": "val_accuracy"}, 3),
    ],
)
def test_early_stopping_follows_keras(values, kwargs, stopped):
    _, stopper, _, history = run_script(values, **kwargs)
    assert stopper.stopped_epoch == stopped
    assert len(history.history["loss"]) == (stopped + 1 if stopped else len(values))


def test_never_stops_after_the_first_epoch():
    _, stopper, _, history = run_script([1, 2], patience=0, epochs=1)
    assert stopper.stopped_epoch == 0 and len(history.epoch) == 1


def test_restores_the_best_weights_when_it_stops():
    model, stopper, script, _ = run_script(
        [5, 3, 4, 6, 7, 8], patience=3, restore_best_weights=True
    )
    assert stopper.stopped_epoch == 4 and stopper.best_epoch == 1
    for restored, saved in zip(model.get_weights(), script.weights[1]):
        np.testing.assert_array_equal(restored, saved)


def test_restores_the_best_weights_even_when_the_epochs_run_out():
    # Keras 3's behaviour (Keras 2 restored only when it stopped training itself).
    model, stopper, script, _ = run_script([5, 3, 4, 4], patience=100, restore_best_weights=True)
    assert stopper.stopped_epoch == 0 and stopper.best_epoch == 1
    for restored, saved in zip(model.get_weights(), script.weights[1]):
        np.testing.assert_array_equal(restored, saved)


def test_verbose_messages(capsys):
    run_script([5, 3, 4, 6], patience=2, verbose=1, restore_best_weights=True)
    out = capsys.readouterr().out
    assert "Epoch 4: early stopping" in out
    assert "Restoring model weights from the end of the best epoch: 2." in out


def test_unknown_monitor_warns_with_the_available_keys():
    model = make_model()
    with pytest.warns(
        UserWarning, match="`val_los` which is not available. Available metrics are: accuracy,loss"
    ):
        model.fit(
            X, Y, epochs=1, verbose=0, callbacks=[EarlyStopping(monitor="val_los", mode="min")]
        )
    with pytest.raises(ValueError, match="automatically determine"):
        model.fit(X, Y, epochs=1, verbose=0, callbacks=[EarlyStopping(monitor="val_los")])


class BatchRecorder(Callback):
    def __init__(self):
        super().__init__()
        self.events = []

    def on_train_batch_begin(self, batch, logs=None):
        self.events.append(("begin", batch))

    def on_train_batch_end(self, batch, logs=None):
        self.events.append(("end", batch, dict(logs)))

    def on_epoch_end(self, epoch, logs=None):
        self.events.append(("epoch", epoch, dict(logs)))


def test_batch_hooks_see_every_batch_in_order_with_running_logs():
    recorder = BatchRecorder()
    hooked = make_model()
    hooked.fit(X, Y, epochs=2, batch_size=8, verbose=0, callbacks=[recorder])
    plain = make_model()
    plain_history = plain.fit(X, Y, epochs=2, batch_size=8, verbose=0)

    steps = [e[:2] for e in recorder.events if e[0] != "epoch"]
    assert steps == [(kind, b) for _ in range(2) for b in range(4) for kind in ("begin", "end")]
    ends = [e for e in recorder.events if e[0] in ("end", "epoch")]
    for last_batch, epoch_end in zip(ends[3::5], ends[4::5]):
        # The epoch's logs are the running means after its last batch.
        assert last_batch[2]["loss"] == pytest.approx(epoch_end[2]["loss"], rel=1e-9)
        assert last_batch[2]["accuracy"] == pytest.approx(epoch_end[2]["accuracy"])
    assert ends[4][2]["loss"] == pytest.approx(plain_history.history["loss"][0], rel=1e-6)
    # Running batch by batch trains exactly as one call per epoch does.
    for a, b in zip(hooked.get_weights(), plain.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_batch_hook_can_stop_training_mid_epoch():
    class StopAtBatch(Callback):
        def on_batch_end(self, batch, logs=None):
            if batch == 1:
                self.model.stop_training = True

    model = make_model()
    history = model.fit(X, Y, epochs=5, batch_size=8, verbose=0, callbacks=[StopAtBatch()])
    assert len(history.epoch) == 1
    assert model.optimizer.iterations == 2


def test_test_and_predict_hooks():
    calls = []

    class Hooks(Callback):
        def on_test_begin(self, logs=None):
            calls.append("test_begin")

        def on_test_batch_end(self, batch, logs=None):
            calls.append(("test_batch", batch, round(logs["loss"], 6)))

        def on_test_end(self, logs=None):
            calls.append(("test_end", round(logs["loss"], 6)))

        def on_predict_batch_end(self, batch, logs=None):
            calls.append(("predict_batch", batch, logs["outputs"].shape))

    model = make_model()
    loss = model.evaluate(X, Y, batch_size=16, verbose=0, callbacks=[Hooks()])[0]
    assert calls[0] == "test_begin" and [c[1] for c in calls[1:3]] == [0, 1]
    assert calls[-1] == ("test_end", round(loss, 6))
    assert loss == pytest.approx(model.evaluate(X, Y, batch_size=16, verbose=0)[0], rel=1e-6)
    calls.clear()
    out = model.predict(X, batch_size=16, verbose=0, callbacks=[Hooks()])
    assert calls == [("predict_batch", 0, (16, 3)), ("predict_batch", 1, (14, 3))]
    np.testing.assert_array_equal(out, model.predict(X, verbose=0))
    calls.clear()
    model.fit(X, Y, epochs=2, verbose=0, validation_split=0.2, callbacks=[Hooks()])
    assert calls.count("test_begin") == 2


def test_lambda_callback():
    seen = []
    callback = LambdaCallback(
        on_epoch_end=lambda epoch, logs: seen.append((epoch, logs["loss"])),
        on_train_end=lambda logs: seen.append("end"),
    )
    history = make_model().fit(X, Y, epochs=3, verbose=0, callbacks=[callback])
    assert seen == [(i, history.history["loss"][i]) for i in range(3)] + ["end"]


def test_terminate_on_nan_stops_at_the_first_bad_batch(capsys):
    model = pynn.Sequential([pynn.Input(shape=(3,)), Dense(1)])
    model.compile(loss="mse", optimizer="sgd")
    history = model.fit(
        X, np.full(30, 1e30), epochs=3, batch_size=10, verbose=0, callbacks=[TerminateOnNaN()]
    )
    assert len(history.epoch) == 1 and math.isinf(history.history["loss"][0])
    assert model.optimizer.iterations == 1
    assert "Batch 0: Invalid loss, terminating training" in capsys.readouterr().out
    with pytest.raises(RuntimeError, match="NaN or Inf loss encountered at batch 0"):
        model.fit(X, np.full(30, 1e30), verbose=0, callbacks=[TerminateOnNaN(raise_error=True)])


def test_learning_rate_scheduler_changes_the_engine_rate():
    model = make_model(optimizer=pynn.optimizers.SGD(learning_rate=0.1))
    scheduler = LearningRateScheduler(lambda epoch, lr: 0.0 if epoch >= 1 else lr)
    weights = []
    model.fit(
        X,
        Y,
        epochs=3,
        verbose=0,
        callbacks=[
            scheduler,
            LambdaCallback(on_epoch_end=lambda e, logs: weights.append(model.get_weights())),
        ],
    )
    assert model.history.history["learning_rate"] == [pytest.approx(0.1), 0.0, 0.0]
    np.testing.assert_array_equal(weights[1][0], weights[2][0])  # lr 0: no more change
    with pytest.raises(ValueError, match="should be a float"):
        make_model().fit(X, Y, verbose=0, callbacks=[LearningRateScheduler(lambda e, lr: "x")])


def test_reduce_lr_on_plateau():
    values = [1.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9]
    script = Script(values)
    reducer = ReduceLROnPlateau(factor=0.5, patience=2, cooldown=1, min_lr=0.0003)
    model = make_model(optimizer=pynn.optimizers.Adam(learning_rate=0.001))
    history = model.fit(
        X, Y, epochs=7, verbose=0, validation_split=0.2, callbacks=[script, reducer]
    )
    # The logs carry the rate the epoch ran with: the cut after epoch 4 shows from epoch 5 on;
    # after one epoch of cooldown and two of patience it is cut again, to min_lr.
    expected = [0.001, 0.001, 0.001, 0.001, 0.0005, 0.0005, 0.0003]
    np.testing.assert_allclose(history.history["learning_rate"], expected, rtol=1e-6)
    assert model.optimizer.learning_rate == pytest.approx(0.0003)
    with pytest.raises(ValueError, match="factor >= 1.0"):
        ReduceLROnPlateau(factor=1.0)


def test_csv_logger(tmp_path):
    path = tmp_path / "log.csv"
    make_model().fit(X, Y, epochs=2, verbose=0, callbacks=[CSVLogger(path)])
    rows = list(csv.reader(path.open()))
    assert rows[0] == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]
    assert [r[0] for r in rows[1:]] == ["0", "1"] and rows[1][3] == "NA"
    make_model().fit(
        X, Y, epochs=1, verbose=0, validation_split=0.2, callbacks=[CSVLogger(path, append=True)]
    )
    rows = list(csv.reader(path.open()))
    assert len(rows) == 4 and rows[3][0] == "0" and rows[3][3] != "NA"


def test_callbacks_must_be_callbacks():
    with pytest.raises(TypeError, match="Callback instances"):
        make_model().fit(X, Y, verbose=0, callbacks=[lambda: None])


class FakeModel:
    """Just what EarlyStopping touches: weights that record the epoch they came from."""

    def __init__(self):
        self.epoch, self.stop_training, self.restored = 0, False, None

    def get_weights(self):
        return [self.epoch]

    def set_weights(self, weights):
        self.restored = weights[0]


@pytest.mark.parametrize(
    "values,kwargs,stopped,best",
    [
        ([4, 3, 3.5, 3.2, 3.1], {"patience": 3}, 4, 1),
        ([4, 3, 3.5, 2.0], {"patience": 3}, 0, 3),
        ([1.0, 0.99, 0.98, 0.97], {"patience": 2, "min_delta": 0.05}, 2, 0),
    ],
)
def test_early_stopping_as_a_unit(values, kwargs, stopped, best):
    model = FakeModel()
    callback = EarlyStopping(restore_best_weights=True, **kwargs)
    callback.set_model(model)
    callback.on_train_begin()
    for epoch, value in enumerate(values):
        model.epoch = epoch
        callback.on_epoch_end(epoch, {"val_loss": value})
        if model.stop_training:
            break
    callback.on_train_end()
    assert callback.stopped_epoch == stopped
    assert callback.best_epoch == best and model.restored == best
