"""Data-parallel training over MPI: `tests/mpi_job.py` runs under `mpirun -np 2` (two processes
of one thread each, over loopback) and is compared with the same training in one process."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import pynn
from pynn.distribution.data_parallel import shard

sys.path.insert(0, str(Path(__file__).parent))
import mpi_job  # noqa: E402

MPIRUN = shutil.which("mpirun")
try:
    import mpi4py  # noqa: F401

    HAVE_MPI4PY = True
except ImportError:
    HAVE_MPI4PY = False

if not (MPIRUN and HAVE_MPI4PY):
    if os.environ.get("CI"):
        raise RuntimeError("CI installs OpenMPI and mpi4py: mpirun or mpi4py is missing")
    pytest.skip("OpenMPI or mpi4py is not installed", allow_module_level=True)

JOB = Path(__file__).parent / "mpi_job.py"


def mpirun(scenario, out, timeout=300, env=None):
    command = [MPIRUN, "--allow-run-as-root", "--oversubscribe", "-np", "2"]
    command += [sys.executable, str(JOB), scenario, str(out)]
    environment = {**os.environ, "PYNN_NUM_THREADS": "1", "PYNN_DEVICE": "cpu", **(env or {})}
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=environment)


def single_process(scenario):
    """The same training in this process, without a distribution."""
    build, data, fit_args = mpi_job.SCENARIOS[scenario]
    x, y = data()
    model = build()
    history = model.fit(x, y, shuffle=False, verbose=0, **fit_args)
    return model, history.history, x, y


def results(out, scenario):
    ranks = [np.load(out / f"{scenario}-{rank}.npz") for rank in range(2)]
    return ranks


@pytest.fixture(scope="module")
def jobs(tmp_path_factory):
    out = tmp_path_factory.mktemp("mpi")
    for scenario in ("dense", "dense_odd_batch", "lenet", "graph", "early_stopping"):
        done = mpirun(scenario, out)
        assert done.returncode == 0, done.stderr[-3000:]
    return out


def weights_of(npz):
    return [npz[f"arr_{i}"] for i in range(len([k for k in npz.files if k.startswith("arr_")]))]


@pytest.mark.parametrize("scenario", ["dense", "dense_odd_batch", "lenet", "graph"])
def test_two_processes_train_as_one(jobs, scenario):
    """With shuffle=False, 2 processes at global batch B end where 1 process at batch B ends,
    with the same History, and every process holds the same weights, History and outputs."""
    rank0, rank1 = results(jobs, scenario)
    for a, b in zip(weights_of(rank0), weights_of(rank1)):
        np.testing.assert_array_equal(a, b)
    for key in ("history", "predictions", "evaluation"):
        np.testing.assert_array_equal(rank0[key], rank1[key])
    model, history, x, y = single_process(scenario)
    for got, want in zip(weights_of(rank0), model.get_weights()):
        np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-6)
    keys = list(rank0["keys"])
    assert keys == sorted(history)
    for key, values in zip(keys, rank0["history"]):
        np.testing.assert_allclose(values, history[key], rtol=1e-4)
    predictions = mpi_job.flat_outputs(model.predict(x, verbose=0))
    np.testing.assert_allclose(rank0["predictions"], predictions, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(rank0["evaluation"], model.evaluate(x, y, verbose=0), rtol=1e-4)


def test_early_stopping_stops_every_process_at_the_same_epoch(jobs):
    rank0, rank1 = results(jobs, "early_stopping")
    np.testing.assert_array_equal(rank0["history"], rank1["history"])
    assert rank0["history"].shape[1] < 40


@pytest.mark.parametrize("how", ["kill", "hang"])
def test_a_dead_process_ends_the_job_within_the_timeout(tmp_path, how):
    """A killed process: mpirun ends the job. A hung one: the other's all-reduce gives up
    after PYNN_MPI_TIMEOUT seconds, says so, and aborts the job."""
    start = time.monotonic()
    done = mpirun(how, tmp_path, timeout=120, env={"PYNN_MPI_TIMEOUT": "5"})
    elapsed = time.monotonic() - start
    assert done.returncode != 0
    assert elapsed < 60, f"the surviving process waited {elapsed:.0f} s"
    if how == "hang":
        assert "no answer from the other processes within 5 s" in done.stderr
        assert elapsed >= 5


@pytest.mark.parametrize(
    "how, message",
    [
        ("raise", "an uncaught RuntimeError; the other processes would wait for this one"),
        ("exit", "sys.exit(3) during fit; the other processes would wait for this one"),
    ],
)
def test_a_process_that_leaves_during_fit_ends_the_job_at_once(tmp_path, how, message):
    """No waiting for PYNN_MPI_TIMEOUT (300 s by default): the leaving process aborts the job."""
    start = time.monotonic()
    done = mpirun(how, tmp_path, timeout=120)
    elapsed = time.monotonic() - start
    assert done.returncode != 0
    assert message in done.stderr, done.stderr[-2000:]
    if how == "raise":
        assert "a bug in process 1's callback" in done.stderr  # the traceback comes first
    assert elapsed < 30, f"the job took {elapsed:.0f} s to end"


def test_processes_that_disagree_fail_at_the_start_of_fit_naming_the_difference(tmp_path):
    start = time.monotonic()
    done = mpirun("disagree", tmp_path, timeout=120)
    assert done.returncode != 0
    assert time.monotonic() - start < 30
    assert "disagree at the start of `fit`" in done.stderr, done.stderr[-2000:]
    assert "`samples`: process 0 has 100, process 1 has 90" in done.stderr
    assert "`batch_size`: process 0 has 32, process 1 has 16" in done.stderr
    assert "`weights`: process 0 has 163, process 1 has 173" in done.stderr


BAR = "from pynn.utils import Progbar; bar = Progbar(3)\nfor i in range(3): bar.update(i + 1)"


def test_a_bar_under_mpirun_is_drawn_as_for_a_log_when_mpiruns_output_is_piped():
    """mpirun gives each process a terminal: the launcher's own output decides."""
    command = [MPIRUN, "--allow-run-as-root", "--oversubscribe", "-np", "1"]
    command += [sys.executable, "-c", BAR]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
    assert "3/3" in done.stdout
    assert "\x1b" not in done.stdout and "\r" not in done.stdout


def test_a_bar_under_mpirun_on_a_terminal_keeps_its_colours():
    primary, secondary = os.openpty()
    command = [MPIRUN, "--allow-run-as-root", "--oversubscribe", "-np", "1"]
    job = subprocess.Popen(command + [sys.executable, "-c", BAR], stdout=secondary)
    os.close(secondary)
    shown = b""
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:  # EIO: the terminal's other side closed
            break
        if not chunk:
            break
        shown += chunk
    os.close(primary)
    assert job.wait(timeout=120) == 0
    assert b"3/3" in shown and b"\x1b[32m" in shown


def test_shards_split_a_batch_evenly():
    assert [shard(32, 2, r) for r in range(2)] == [(0, 16), (16, 32)]
    assert [shard(31, 2, r) for r in range(2)] == [(0, 16), (16, 31)]
    assert [shard(7, 3, r) for r in range(3)] == [(0, 3), (3, 5), (5, 7)]
    assert [shard(1, 2, r) for r in range(2)] == [(0, 1), (1, 1)]


def test_set_distribution_takes_a_data_parallel_or_none():
    with pytest.raises(ValueError, match="DataParallel"):
        pynn.distribution.set_distribution("mpi")
    pynn.distribution.set_distribution(None)
    assert pynn.distribution.distribution() is None
    assert pynn.distribution.list_devices() == ["cpu:0"]


@pytest.mark.skipif(pynn.config.gpu_info() is None, reason="no Vulkan adapter")
def test_a_data_parallel_job_runs_the_cpu_engine_whatever_the_device():
    """A model the GPU engine cannot run (five metrics) trains under "gpu" in a job of one."""
    x, y = np.ones((8, 3), np.float32), np.zeros(8, int)
    model = pynn.Sequential([pynn.Input((3,)), pynn.layers.Dense(2, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd", metrics=["acc"] * 5)
    pynn.config.set_device("gpu")
    pynn.distribution.set_distribution(pynn.distribution.DataParallel())
    try:
        model.fit(x, y, verbose=0)
        in_the_job = model.evaluate(x, y, verbose=0), model.predict(x, verbose=0)
    finally:
        pynn.distribution.set_distribution(None)
        pynn.config.set_device("cpu")
    assert in_the_job[0] == model.evaluate(x, y, verbose=0)
    np.testing.assert_array_equal(in_the_job[1], model.predict(x, verbose=0))
