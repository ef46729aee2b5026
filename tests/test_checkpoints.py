"""ModelCheckpoint and BackupAndRestore: work saved during training, and a killed run that
resumes to the same weights as an uninterrupted one."""

import os
import signal
import subprocess
import sys

import numpy as np
import pytest

import pynn
from pynn import layers
from pynn.callbacks import BackupAndRestore, ModelCheckpoint


def _model():
    pynn.utils.set_random_seed(2)
    model = pynn.Sequential([pynn.Input((4,)), layers.Dense(8, activation="relu"), layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    return model


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype(np.float32)
    return x, x.sum(axis=1, keepdims=True)


def test_templates_fill_epoch_and_logs(tmp_path):
    x, y = _data()
    template = str(tmp_path / "m-{epoch:02d}-{val_loss:.3f}.pynn")
    history = _model().fit(
        x, y, epochs=3, validation_split=0.25, verbose=0, callbacks=[ModelCheckpoint(template)]
    )
    names = sorted(p.name for p in tmp_path.iterdir())
    expected = [f"m-{e + 1:02d}-{v:.3f}.pynn" for e, v in enumerate(history.history["val_loss"])]
    assert names == sorted(expected)
    assert pynn.models.load_model(tmp_path / expected[-1]).optimizer.iterations == 3 * 2


def test_save_best_only_keeps_the_best_epoch(tmp_path, capsys):
    x, y = _data()
    model = _model()
    saved_weights = {}

    class Record(pynn.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            saved_weights[epoch] = model.get_weights()

    checkpoint = ModelCheckpoint(
        tmp_path / "best.weights.safetensors",
        monitor="loss",
        save_best_only=True,
        save_weights_only=True,
        verbose=1,
        initial_value_threshold=1e9,
    )
    # A learning rate that makes the loss go up after a while.
    model.optimizer.learning_rate = 0.3
    history = model.fit(x, y, epochs=8, verbose=0, callbacks=[Record(), checkpoint])
    losses = history.history["loss"]
    best = int(np.argmin(losses))
    restored = _model()
    restored.load_weights(tmp_path / "best.weights.safetensors")
    for a, b in zip(restored.get_weights(), saved_weights[best]):
        np.testing.assert_array_equal(a, b)
    out = capsys.readouterr().out
    assert (
        f"Epoch 1: loss improved from 1000000000.00000 to {losses[0]:.5f}, saving model to" in out
    )
    if best < 7:
        assert f"did not improve from {min(losses[: best + 1]):.5f}" in out


def test_batch_frequency_and_missing_monitor(tmp_path):
    x, y = _data()
    template = str(tmp_path / "b{epoch}-{batch}.pynn")
    _model().fit(
        x, y, epochs=2, batch_size=16, verbose=0, callbacks=[ModelCheckpoint(template, save_freq=3)]
    )
    # 4 batches per epoch: saves after batches 3, 6 (epoch 2, batch 2).
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b1-3.pynn", "b2-2.pynn"]
    with pytest.warns(UserWarning, match="Can save best model only with val_loss available"):
        _model().fit(
            x,
            y,
            verbose=0,
            callbacks=[ModelCheckpoint(tmp_path / "x.pynn", save_best_only=True)],
        )


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"filepath": "m.txt"}, "must end in `.pynn`"),
        ({"filepath": "m.pynn", "save_weights_only": True}, "must end in `.weights.safetensors`"),
        ({"filepath": "m.pynn", "save_freq": 0}, "Unrecognized save_freq"),
    ],
)
def test_checkpoint_arguments_are_checked(arguments, message):
    with pytest.raises(ValueError, match=message):
        ModelCheckpoint(**arguments)


@pytest.mark.parametrize("filepath", ["m.keras", "m.h5", "w.weights.h5"])
def test_checkpoints_in_keras_formats_say_they_are_not_supported_yet(filepath):
    with pytest.raises(NotImplementedError, match=r"Keras's `\.keras` and `\.h5` files"):
        ModelCheckpoint(filepath)


RESUMABLE_CHILD = """
import os, signal, sys, numpy as np, pynn
from pynn import layers
backup_dir, out, kill_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
pynn.utils.set_random_seed(7)
model = pynn.Sequential([pynn.Input((6, 6, 1)), layers.Conv2D(3, 3, activation="relu"),
                         layers.Flatten(), layers.Dropout(0.3),
                         layers.Dense(2, activation="softmax")])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
rng = np.random.default_rng(0)
x = rng.normal(size=(96, 6, 6, 1)).astype(np.float32)
y = (x.mean(axis=(1, 2, 3)) > 0).astype(np.int64)

class Kill(pynn.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

callbacks = [Kill(), pynn.callbacks.BackupAndRestore(backup_dir)]
history = model.fit(x, y, epochs=6, batch_size=16, verbose=0, callbacks=callbacks)
np.savez(out, *model.get_weights(), epochs=len(history.history["loss"]))
"""


def _run(tmp_path, backup, out, kill_at):
    return subprocess.run(
        [sys.executable, "-c", RESUMABLE_CHILD, str(backup), str(out), str(kill_at)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_killed_run_resumes_to_the_weights_of_an_uninterrupted_one(tmp_path):
    uninterrupted = _run(tmp_path, tmp_path / "backup_a", tmp_path / "a.npz", -1)
    assert uninterrupted.returncode == 0, uninterrupted.stderr

    killed = _run(tmp_path, tmp_path / "backup_b", tmp_path / "b.npz", 3)
    assert killed.returncode == -signal.SIGKILL
    assert os.path.exists(tmp_path / "backup_b" / "backup.pynn")
    resumed = _run(tmp_path, tmp_path / "backup_b", tmp_path / "b.npz", -1)
    assert resumed.returncode == 0, resumed.stderr

    a, b = np.load(tmp_path / "a.npz"), np.load(tmp_path / "b.npz")
    assert int(a["epochs"]) == 6 and int(b["epochs"]) == 3  # epochs 3, 4, 5 after the restart
    for key in a.files:
        if key != "epochs":
            np.testing.assert_array_equal(a[key], b[key])
    # Finished: the backup is gone.
    assert not os.path.exists(tmp_path / "backup_b")


def test_double_checkpoint_falls_back_to_the_previous_backup(tmp_path):
    x, y = _data()
    backup = tmp_path / "backup"

    class Stop(pynn.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 2:
                raise KeyboardInterrupt  # as a Ctrl-C would: the backup stays

    keep = BackupAndRestore(backup, double_checkpoint=True)
    with pytest.raises(KeyboardInterrupt):
        _model().fit(x, y, epochs=5, verbose=0, callbacks=[keep, Stop()])
    assert sorted(p.name for p in backup.iterdir()) == ["backup.previous.pynn", "backup.pynn"]
    (backup / "backup.pynn").write_bytes(b"damaged")
    history = _model().fit(
        x, y, epochs=5, verbose=0, callbacks=[BackupAndRestore(backup, double_checkpoint=True)]
    )
    assert len(history.history["loss"]) == 3  # the previous backup is epoch 1: epochs 2-4 run
    assert not backup.exists()
    with pytest.raises(ValueError, match="not a valid pynn model file"):
        backup.mkdir()
        (backup / "backup.pynn").write_bytes(b"damaged")
        _model().fit(x, y, epochs=5, verbose=0, callbacks=[BackupAndRestore(backup)])


def test_backup_arguments_are_checked():
    with pytest.raises(ValueError, match="Empty `backup_dir`"):
        BackupAndRestore("")
    with pytest.raises(ValueError, match="save_freq"):
        BackupAndRestore("b", save_freq="often")
