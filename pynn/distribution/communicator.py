"""The processes of an MPI job (through mpi4py), with a deadline on every collective operation.

A process that dies inside a collective would leave the others waiting forever. Every
operation here is started non-blocking and polled until it completes or `timeout` seconds pass;
then the process prints what happened and aborts the MPI job (exit status 1), which ends every
process, since a collective that lost a member cannot be recovered. A process that is about to
leave the job without its collectives (an uncaught exception, `sys.exit` during `fit`) aborts
the job at once, so that the others do not wait out the timeout.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import sys
import time
import traceback

import numpy as np

DEFAULT_TIMEOUT = 300.0


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError as error:
        raise ImportError(
            "Data-parallel training needs mpi4py and an MPI library: "
            "`pip install pynn[mpi]`, and OpenMPI (`apt-get install openmpi-bin libopenmpi-dev`)."
        ) from error
    return MPI


def timeout_from_environment() -> float:
    """`PYNN_MPI_TIMEOUT` (seconds), or the default of 300."""
    value = os.environ.get("PYNN_MPI_TIMEOUT", "")
    try:
        seconds = float(value) if value.strip() else DEFAULT_TIMEOUT
    except ValueError:
        raise ValueError(f"PYNN_MPI_TIMEOUT must be a number of seconds; got {value!r}.") from None
    if seconds <= 0:
        raise ValueError(f"PYNN_MPI_TIMEOUT must be positive; got {seconds}.")
    return seconds


class Communicator:
    """MPI's world communicator: this process's `rank` among `size`, and the collectives that
    data-parallel training uses."""

    def __init__(self, timeout: float | None = None):
        self.MPI = _mpi()
        self.comm = self.MPI.COMM_WORLD
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()
        self.timeout = timeout_from_environment() if timeout is None else float(timeout)
        #: Seconds spent waiting in gradient all-reduces, for measuring the overhead.
        self.allreduce_seconds = 0.0
        self.allreduce_calls = 0
        if self.size > 1:
            self._abort_on_uncaught_exceptions()

    def _abort_on_uncaught_exceptions(self) -> None:
        """Makes an uncaught exception end the job: Python prints it, then the job aborts (as
        `python -m mpi4py` does), instead of this process leaving while the others wait."""
        previous = sys.excepthook

        def hook(kind, value, trace):
            previous(kind, value, trace)
            self._abort(f"an uncaught {kind.__name__}", waited=False)

        sys.excepthook = hook

    @contextlib.contextmanager
    def leaving_aborts(self, call: str):
        """Aborts the job when `sys.exit` leaves `call` (the others would wait in its next
        collective); other exceptions pass on, and end the job only if nothing catches them."""
        try:
            yield
        except SystemExit as exit:
            sys.stderr.write(traceback.format_exc())
            code = exit.code if isinstance(exit.code, int) and exit.code else 1
            self._abort(f"sys.exit({exit.code!r}) during {call}", waited=False, code=code)

    def _wait(self, request, what: str) -> None:
        deadline = time.monotonic() + self.timeout
        pause = 1e-5
        while not request.Test():
            if time.monotonic() > deadline:
                self._abort(what)
            time.sleep(pause)
            pause = min(pause * 2, 1e-3)

    def _abort(self, what: str, waited: bool = True, code: int = 1):
        if waited:
            message = (
                f"no answer from the other processes within {self.timeout:g} s during {what} "
                "(PYNN_MPI_TIMEOUT); one of them has probably died"
            )
        else:
            message = f"{what}; the other processes would wait for this one"
        sys.stderr.write(
            f"pynn: process {self.rank} of {self.size}: {message}. Aborting the MPI job.\n"
        )
        sys.stderr.flush()
        self.comm.Abort(code)

    def allreduce_sum(self, values: np.ndarray) -> np.ndarray:
        """Sums `values` (a contiguous array) over every process, in place."""
        start = time.perf_counter()
        self._wait(
            self.comm.Iallreduce(self.MPI.IN_PLACE, values, op=self.MPI.SUM), "an all-reduce"
        )
        self.allreduce_seconds += time.perf_counter() - start
        self.allreduce_calls += 1
        return values

    def broadcast(self, value, root: int = 0):
        """`value` as `root` has it, on every process (any picklable object)."""
        data = pickle.dumps(value) if self.rank == root else b""
        length = np.array([len(data)], np.int64)
        self._wait(self.comm.Ibcast(length, root=root), "a broadcast")
        buffer = np.frombuffer(data, np.uint8).copy() if self.rank == root else None
        if buffer is None:
            buffer = np.empty(int(length[0]), np.uint8)
        self._wait(self.comm.Ibcast(buffer, root=root), "a broadcast")
        return value if self.rank == root else pickle.loads(buffer.tobytes())

    def allgather(self, value) -> list:
        """Every process's `value`, in rank order (any picklable object)."""
        data = np.frombuffer(pickle.dumps(value), np.uint8)
        lengths = np.zeros(self.size, np.int64)
        mine = np.array([len(data)], np.int64)
        self._wait(self.comm.Iallgather(mine, lengths), "a gather")
        gathered = np.empty(int(lengths.sum()), np.uint8)
        counts = [int(n) for n in lengths]
        self._wait(self.comm.Iallgatherv(data, [gathered, counts]), "a gather")
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        return [
            pickle.loads(gathered[offsets[i] : offsets[i + 1]].tobytes()) for i in range(self.size)
        ]
