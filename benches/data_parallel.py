"""W2 (the textbook's LeNet-5 on Fashion-MNIST, Adam, global batch 128) trained data-parallel:
2 processes x 1 thread against 1 process x 2 threads, on the same machine.

    python benches/data_parallel.py [--train-size N]

Runs itself under `mpirun -np 2` for the data-parallel side, prints images per second of each,
their ratio, and the data-parallel run's all-reduce time per step.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time


def epoch(train_size: int, parallel: bool) -> dict:
    import numpy as np

    import pynn
    from pynn.datasets import fashion_mnist
    from pynn.examples.lenet import lenet, prepare

    if parallel:
        pynn.distribution.set_distribution(pynn.distribution.DataParallel())
    (x, y), _ = fashion_mnist.load_data()
    x, y = prepare(x[:train_size]), y[:train_size]
    pynn.utils.set_random_seed(0)
    model = lenet()
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    model.fit(x[:256], y[:256], batch_size=128, verbose=0)  # warm-up
    start = time.perf_counter()
    model.fit(x, y, batch_size=128, epochs=1, verbose=0)
    seconds = time.perf_counter() - start
    result = {"images_per_s": len(x) / seconds, "seconds": seconds}
    if parallel:
        comm = pynn.distribution.distribution().communicator
        result["allreduce_ms_per_step"] = 1e3 * comm.allreduce_seconds / comm.allreduce_calls
        result["rank"] = comm.rank
    return {k: float(v) if isinstance(v, (float, np.floating)) else v for k, v in result.items()}


def run_child(mode: str, train_size: int, threads: int, processes: int) -> dict:
    """`epoch` in fresh processes: under mpirun for the data-parallel mode."""
    env = {**os.environ, "PYNN_NUM_THREADS": str(threads)}
    command = [sys.executable, __file__, "--child", mode, "--train-size", str(train_size)]
    if processes > 1:
        mpirun = [shutil.which("mpirun") or "mpirun", "--allow-run-as-root", "--oversubscribe"]
        command = mpirun + ["-np", str(processes)] + command
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-size", type=int, default=60000)
    parser.add_argument("--child", choices=["parallel", "single"], default=None)
    args = parser.parse_args()
    if args.child:
        result = epoch(args.train_size, parallel=args.child == "parallel")
        if result.get("rank", 0) == 0:
            print(json.dumps(result))
        return
    single = run_child("single", args.train_size, threads=2, processes=1)
    parallel = run_child("parallel", args.train_size, threads=1, processes=2)
    ratio = parallel["images_per_s"] / single["images_per_s"]
    for name, result in (("1 process x 2 threads", single), ("2 processes x 1 thread", parallel)):
        print(f"{name}: {result['images_per_s']:,.0f} images/s ({result['seconds']:.2f} s)")
    print(f"ratio (2 processes / 1 process): {ratio:.2f}")
    print(f"all-reduce per step: {parallel['allreduce_ms_per_step']:.3f} ms")


if __name__ == "__main__":
    main()
