"""Run by tests/test_distribution.py under `mpirun -np 2`: one scenario of data-parallel
training, each process writing what it ended with to `<out>/<scenario>-<rank>.npz`."""

import os
import signal
import sys
import time

import numpy as np

import pynn
from pynn.callbacks import EarlyStopping
from pynn.distribution import DataParallel, set_distribution


def dense_model():
    pynn.utils.set_random_seed(0)
    model = pynn.Sequential(
        [
            pynn.Input((6,)),
            pynn.layers.Dense(16, activation="relu", kernel_regularizer="l2"),
            pynn.layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


def overfitting_model():
    """Large and fast to learn random labels: its validation loss turns up within epochs."""
    pynn.utils.set_random_seed(0)
    model = pynn.Sequential(
        [
            pynn.Input((6,)),
            pynn.layers.Dense(128, activation="relu"),
            pynn.layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile(loss="sparse_categorical_crossentropy", optimizer=pynn.optimizers.Adam(0.05))
    return model


def lenet_model():
    from pynn.examples.lenet import lenet

    pynn.utils.set_random_seed(0)
    model = lenet()
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


def graph_model():
    """Two inputs and two outputs, losses weighted, metrics per output."""
    from multi_io_models import two_in_two_out

    pynn.utils.set_random_seed(0)
    model = two_in_two_out(pynn)
    model.compile(
        loss=["sparse_categorical_crossentropy", "mse"],
        loss_weights=[1.0, 0.5],
        optimizer="adam",
        metrics=[["accuracy"], ["mae"]],
    )
    return model


def graph_data():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(90, 6)), rng.normal(size=(90, 4))
    return [a, b], [(a[:, 0] > 0).astype(int) + (b[:, 1] > 1), a[:, :2] * b[:, 2:]]


def flat_outputs(outputs):
    """Predictions of one output or several, as one flat array."""
    outputs = outputs if isinstance(outputs, list) else [outputs]
    return np.concatenate([o.reshape(-1) for o in outputs])


def dense_data():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(100, 6)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(int) + (x[:, 1] > 1)


def lenet_data():
    rng = np.random.default_rng(2)
    return rng.random((72, 32, 32, 1), dtype=np.float32), np.arange(72) % 10


SCENARIOS = {
    # name: (model, data, fit arguments)
    "dense": (dense_model, dense_data, dict(epochs=3, batch_size=32, validation_split=0.2)),
    "dense_odd_batch": (dense_model, dense_data, dict(epochs=2, batch_size=31)),
    "lenet": (lenet_model, lenet_data, dict(epochs=1, batch_size=32)),
    "graph": (graph_model, graph_data, dict(epochs=2, batch_size=16, validation_split=0.2)),
}


def run(scenario: str, out: str) -> None:
    if scenario in ("kill", "hang"):
        return stop_process_1(scenario)
    if scenario in ("raise", "exit"):
        return leave_from_process_1(scenario)
    if scenario == "disagree":
        return disagree()
    build, data, fit_args = SCENARIOS.get(scenario, SCENARIOS["dense"])
    x, y = data()
    callbacks = []
    if scenario == "early_stopping":
        # Random labels: the validation loss soon rises.
        y = np.random.default_rng(3).integers(0, 3, size=len(x))
        fit_args = dict(epochs=40, batch_size=16, validation_split=0.3)
        callbacks = [EarlyStopping(monitor="val_loss", patience=2)]
        build = overfitting_model
    model = build()
    history = model.fit(x, y, shuffle=False, verbose=0, callbacks=callbacks, **fit_args)
    rank = pynn.distribution.distribution().process_id
    np.savez(
        os.path.join(out, f"{scenario}-{rank}.npz"),
        *model.get_weights(),
        history=np.array([history.history[k] for k in sorted(history.history)]),
        keys=np.array(sorted(history.history)),
        predictions=flat_outputs(model.predict(x, batch_size=8, verbose=0)),
        evaluation=np.array(model.evaluate(x, y, batch_size=8, verbose=0)),
    )


def stop_process_1(how: str) -> None:
    """After the first epoch process 1 is killed, or hangs (a dead process that MPI does not
    notice); process 0 must not wait forever."""
    x, y = dense_data()
    model = dense_model()

    class StopAfterFirstEpoch(pynn.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if pynn.distribution.distribution().process_id == 1:
                if how == "kill":
                    os.kill(os.getpid(), signal.SIGKILL)
                time.sleep(1000)

    model.fit(x, y, epochs=5, batch_size=8, verbose=0, callbacks=[StopAfterFirstEpoch()])


def leave_from_process_1(how: str) -> None:
    """Process 1 raises an exception that nothing catches, or calls sys.exit, in a callback
    during the first epoch; process 0 goes on into the next all-reduce."""
    x, y = dense_data()
    model = dense_model()

    class Leave(pynn.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 2 and pynn.distribution.distribution().process_id == 1:
                if how == "raise":
                    raise RuntimeError("a bug in process 1's callback")
                sys.exit(3)

    model.fit(x, y, epochs=5, batch_size=8, verbose=0, callbacks=[Leave()])


def disagree() -> None:
    """Process 1 has fewer samples, another batch size and a wider model."""
    x, y = dense_data()
    rank = pynn.distribution.distribution().process_id
    pynn.utils.set_random_seed(0)
    model = pynn.Sequential([pynn.Input((6,)), pynn.layers.Dense(16 + rank), pynn.layers.Dense(3)])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
    n, batch = (100, 32) if rank == 0 else (90, 16)
    model.fit(x[:n], y[:n], batch_size=batch, verbose=0)


if __name__ == "__main__":
    set_distribution(DataParallel())
    run(sys.argv[1], sys.argv[2])
