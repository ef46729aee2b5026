"""Distributed training (`keras.distribution`): data parallelism across the processes of an MPI
job. Start the same script on N processes and set the distribution before building the model::

    # mpirun -np 2 python train.py
    import pynn
    pynn.distribution.set_distribution(pynn.distribution.DataParallel())
    model = ...; model.compile(...); model.fit(x, y, batch_size=64)

Needs mpi4py (`pip install pynn[mpi]`) and an MPI library (OpenMPI: `apt-get install openmpi-bin
libopenmpi-dev`).
"""

from __future__ import annotations

from pynn.distribution.data_parallel import DataParallel

__all__ = ["DataParallel", "distribution", "list_devices", "set_distribution"]

_distribution = None


def set_distribution(value) -> None:
    """Makes `fit`, `evaluate` and `predict` use `value` (a `DataParallel`), or plain
    single-process training again with `None`."""
    global _distribution
    if value is not None and not isinstance(value, DataParallel):
        raise ValueError(
            "`value` must be a pynn.distribution.DataParallel or None. "
            f"Received: {type(value).__name__}"
        )
    _distribution = value


def distribution():
    """The distribution set by `set_distribution`, or None."""
    return _distribution


def list_devices(device_type=None) -> list[str]:
    """The devices of this process: its CPU (`"cpu:<rank>"` inside an MPI job)."""
    if device_type not in (None, "cpu", "CPU"):
        return []
    rank = _distribution.process_id if _distribution is not None else 0
    return [f"cpu:{rank}"]
