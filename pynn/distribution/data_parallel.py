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

    def train_epoch(self, model, x, y, batch_size: int, seed, callbacks):
        """One epoch of synchronous data-parallel training, telling the callbacks' batch hooks;
        returns the epoch's loss, metrics and first batch whose loss was not finite, the same
        on every process."""
        engine, n = model._engine, x.shape[0]
        order = visiting_order(seed, n)
        n_metrics = len(model._metrics)
        loss_sum, metric_sums, bad_batch = 0.0, np.zeros(n_metrics), None
        for batch, first in enumerate(range(0, n, batch_size)):
            rows = order[first : first + batch_size]
            callbacks.on_train_batch_begin(batch)
            buffer = self._summed_gradients(model, x, y, rows, n_metrics)
            n_weights = buffer.size - 1 - n_metrics
            engine.apply_gradients(buffer[:n_weights])
            batch_loss, batch_metrics = buffer[n_weights], buffer[n_weights + 1 :]
            if not np.isfinite(batch_loss) and bad_batch is None:
                bad_batch = batch
            loss_sum += float(batch_loss) * len(rows)
            metric_sums += batch_metrics.astype(np.float64) * len(rows)
            seen = first + len(rows)
            callbacks.on_train_batch_end(batch, model._logs(loss_sum / seen, metric_sums / seen))
            if model.stop_training:
                break
        return loss_sum / seen, list(metric_sums / seen), bad_batch

    def callbacks(self, callbacks):
        """The callbacks this process runs: all of them on process 0; elsewhere all but those
        that write files (checkpoints, backups, CSV logs), which process 0 writes alone."""
        if self.process_id == 0 or callbacks is None:
            return callbacks
        from pynn.callbacks import BackupAndRestore, CSVLogger, ModelCheckpoint

        writers = (BackupAndRestore, CSVLogger, ModelCheckpoint)
        return [c for c in callbacks if not isinstance(c, writers)]

    def _summed_gradients(self, model, x, y, rows, n_metrics: int) -> np.ndarray:
        """This process's shard of the batch `rows`: its gradients, loss and metrics weighted by
        its share, summed over every process in one all-reduce."""
        engine = model._engine
        start, stop = shard(len(rows), self.num_processes, self.process_id)
        mine = rows[start:stop]
        if len(mine):
            xs, ys = np.ascontiguousarray(x[mine]), np.ascontiguousarray(y[mine])
            loss, metrics, grads = engine.compute_gradients(
                xs.reshape(-1), ys.reshape(-1), len(mine)
            )
            share = np.float32(len(mine) / len(rows))
        else:
            loss, metrics, grads = 0.0, [0.0] * n_metrics, None
            share = np.float32(0.0)
        size = model.count_params() + 1 + n_metrics
        if self._buffer is None or self._buffer.size != size:
            self._buffer = np.empty(size, np.float32)
        buffer = self._buffer
        n_weights = size - 1 - n_metrics
        if grads is None:
            buffer[:] = 0.0
        else:
            np.multiply(grads, share, out=buffer[:n_weights])
            buffer[n_weights] = loss * share
            buffer[n_weights + 1 :] = np.asarray(metrics, np.float32) * share
        return self.communicator.allreduce_sum(buffer)

    def evaluate(self, model, x, y, batch_size: int):
        """Loss and metrics over all of `(x, y)`, each process evaluating its shard."""
        start, stop = shard(x.shape[0], self.num_processes, self.process_id)
        n = stop - start
        values = np.zeros(2 + len(model._metrics))
        if n:
            xs, ys = x[start:stop], y[start:stop]
            loss, metrics = model._engine.evaluate(xs.reshape(-1), ys.reshape(-1), n, batch_size)
            values[:-1] = np.array([loss, *metrics]) * n
            values[-1] = n
        totals = self.communicator.allreduce_sum(values)
        means = totals[:-1] / totals[-1]
        return float(means[0]), [float(m) for m in means[1:]]

    def predict(self, model, x, batch_size: int) -> np.ndarray:
        """The outputs for all of `x`, each process predicting its shard, gathered in order."""
        start, stop = shard(x.shape[0], self.num_processes, self.process_id)
        part = x[start:stop]
        if len(part):
            mine = model._predict_part(part, batch_size, None, False)
        else:
            mine = np.zeros((0, *model._per_sample_output_shape()), np.float32)
        return np.concatenate(self.communicator.allgather(mine))
