"""`DataParallel` (`keras.distribution.DataParallel`): the same script started on N processes
(`mpirun -np N python train.py`) trains one model on N times the data per step.

Every process holds the whole model. `fit` broadcasts rank 0's weights and optimizer state, then
splits every global batch of `batch_size` samples into N contiguous shards (the first
`batch_size % N` processes take one sample more; a shard may be empty in a last, small batch).
Each process computes its shard's gradients with the engine, weighted by its share of the batch;
one in-place all-reduce sums them (with the batch's loss and metrics riding in the same buffer),
and every process applies the same optimizer step. Evaluation and prediction shard the data the
same way and combine the results in order, so every process ends with the same weights, the
same `History` and the same predictions.
"""

from __future__ import annotations

import numpy as np

from pynn._random import visiting_order
from pynn.distribution.communicator import Communicator


def shard(n: int, size: int, rank: int) -> tuple[int, int]:
    """`[start, stop)` of process `rank`'s part of `n` samples split over `size` processes."""
    base, extra = divmod(n, size)
    start = rank * base + min(rank, extra)
    return start, start + base + (rank < extra)


class DataParallel:
    """Data parallelism over the processes of an MPI job.

    Args:
        device_mesh, devices: accepted for Keras compatibility; each process is one replica.
        auto_shard_dataset: accepted; pynn always shards the arrays given to `fit`,
            `evaluate` and `predict`.
        timeout: seconds any collective operation may wait for the other processes before the
            job is aborted; `PYNN_MPI_TIMEOUT` or 300 by default.
    """

    def __init__(self, device_mesh=None, devices=None, auto_shard_dataset=True, timeout=None):
        self.communicator = Communicator(timeout)
        self.device_mesh = device_mesh
        self.devices = devices or [f"cpu:{self.communicator.rank}"]
        self.auto_shard_dataset = auto_shard_dataset
        self._buffer = None

    @property
    def num_processes(self) -> int:
        """How many processes the MPI job has."""
        return self.communicator.size

    @property
    def process_id(self) -> int:
        """This process's rank, 0 to `num_processes - 1`; process 0 prints and writes files."""
        return self.communicator.rank

    def __repr__(self) -> str:
        return f"<DataParallel process {self.process_id} of {self.num_processes}>"

    # What fit asks for

    def broadcast_model(self, model) -> None:
        """Rank 0's weights and optimizer state on every process."""
        engine = model._engine
        state = None
        if self.process_id == 0:
            weights = [np.asarray(w) for w in engine.get_weights()]
            state = (weights, engine.optimizer_state())
        weights, (iterations, slots) = self.communicator.broadcast(state)
        if self.process_id != 0:
            engine.set_weights(np.concatenate([w.reshape(-1) for w in weights]))
            engine.set_optimizer_state(iterations, list(slots))

    def broadcast(self, value):
        """Rank 0's `value` (a seed, an initial epoch) on every process."""
        return self.communicator.broadcast(value)

    def check_agreement(self, call: str, **settings) -> None:
        """Raises `ValueError` on every process when the processes' `settings` (sample counts,
        batch sizes, weight counts, ...) differ: they would run different numbers of collective
        operations and wait for each other until the timeout."""
        gathered = self.communicator.allgather(settings)
        differences = [
            f"`{key}`: "
            + ", ".join(
                f"process {rank} has {values[key]!r}" for rank, values in enumerate(gathered)
            )
            for key in settings
            if len({repr(values[key]) for values in gathered}) > 1
        ]
        if differences:
            raise ValueError(
                f"The {self.num_processes} processes of the data-parallel job disagree at the "
                f"start of `{call}`; each must get the same arguments and model. "
                + "; ".join(differences)
                + "."
            )

    def leaving_aborts(self, call: str):
        """A context in which `sys.exit` aborts the job (see `Communicator.leaving_aborts`)."""
        return self.communicator.leaving_aborts(call)

    def train_epoch(self, model, xs, ys, batch_size: int, seed, callbacks):
        """One epoch of synchronous data-parallel training on `xs` and `ys` (one array per
        model input and output), telling the callbacks' batch hooks; returns the epoch's logged
        values and first batch whose loss was not finite, the same on every process."""
        engine, n = model._engine_for(xs), xs[0].shape[0]
        order = visiting_order(seed, n)
        n_values = len(model._logs_names())
        sums, bad_batch = np.zeros(n_values), None
        for batch, first in enumerate(range(0, n, batch_size)):
            rows = order[first : first + batch_size]
            callbacks.on_train_batch_begin(batch)
            buffer = self._summed_gradients(model, xs, ys, rows, n_values)
            n_weights = buffer.size - n_values
            engine.apply_gradients(buffer[:n_weights])
            values = buffer[n_weights:]
            if not np.isfinite(values[0]) and bad_batch is None:
                bad_batch = batch
            sums += values.astype(np.float64) * len(rows)
            seen = first + len(rows)
            callbacks.on_train_batch_end(batch, model._logs(sums / seen))
            if model.stop_training:
                break
        return list(sums / seen), bad_batch

    def callbacks(self, callbacks):
        """The callbacks this process runs: all of them on process 0; elsewhere all but those
        that write files (checkpoints, backups, CSV logs), which process 0 writes alone."""
        if self.process_id == 0 or callbacks is None:
            return callbacks
        from pynn.callbacks import BackupAndRestore, CSVLogger, ModelCheckpoint

        writers = (BackupAndRestore, CSVLogger, ModelCheckpoint)
        return [c for c in callbacks if not isinstance(c, writers)]

    def _summed_gradients(self, model, xs, ys, rows, n_values: int) -> np.ndarray:
        """This process's shard of the batch `rows`: its gradients and logged values weighted
        by its share, summed over every process in one all-reduce."""
        engine = model._engine_for(xs)
        start, stop = shard(len(rows), self.num_processes, self.process_id)
        mine = rows[start:stop]
        size = model.count_params() + n_values
        if self._buffer is None or self._buffer.size != size:
            self._buffer = np.empty(size, np.float32)
        buffer = self._buffer
        n_weights = size - n_values
        if len(mine):
            parts = [np.ascontiguousarray(a[mine]).reshape(-1) for a in (*xs, *ys)]
            (loss, output_losses, metrics), grads = engine.compute_gradients(
                parts[: len(xs)], parts[len(xs) :], len(mine)
            )
            share = np.float32(len(mine) / len(rows))
            np.multiply(grads, share, out=buffer[:n_weights])
            values = np.asarray([loss, *output_losses, *metrics], np.float32)
            buffer[n_weights:] = values * share
        else:
            buffer[:] = 0.0
        return self.communicator.allreduce_sum(buffer)

    def evaluate(self, model, xs, ys, batch_size: int) -> list[float]:
        """The logged values over all of `xs` and `ys`, each process evaluating its shard."""
        start, stop = shard(xs[0].shape[0], self.num_processes, self.process_id)
        n = stop - start
        values = np.zeros(len(model._logs_names()) + 1)
        if n:
            parts = [np.ascontiguousarray(a[start:stop]).reshape(-1) for a in (*xs, *ys)]
            loss, output_losses, metrics = model._engine_for(xs).evaluate(
                parts[: len(xs)], parts[len(xs) :], n, batch_size
            )
            values[:-1] = np.array([loss, *output_losses, *metrics]) * n
            values[-1] = n
        totals = self.communicator.allreduce_sum(values)
        return [float(m) for m in totals[:-1] / totals[-1]]

    def predict(self, model, xs, batch_size: int) -> list[np.ndarray]:
        """The outputs for all of `xs`, each process predicting its shard, gathered in order."""
        start, stop = shard(xs[0].shape[0], self.num_processes, self.process_id)
        if stop > start:
            mine = model._predict_part([x[start:stop] for x in xs], batch_size, None, False)
        else:
            mine = [np.zeros((0, *shape), np.float32) for shape in model._output_sample_shapes()]
        gathered = self.communicator.allgather(mine)
        return [np.concatenate(parts) for parts in zip(*gathered)]
