"""The seed's workloads timed in pynn and, where installed, in Keras and PyTorch.

    python benches/compare.py [--workloads w1,w4] [--threads N[,M]] [--repeats R] [--json FILE]
    python benches/compare.py --quick      # pynn only, reduced sizes: a smoke test, no timing

Each measurement runs in a fresh process (so imports, memory and thread pools do not leak from
one framework into another), frameworks alternate within each repeat, and the table shows
medians with ratios against pynn from the same run. With several thread counts (`--threads
2,1`), each repeat measures them in turn too, one table each, followed by pynn's speed-up from
the first count: both counts then share the machine's minutes, which on a noisy machine a
ratio of two separate runs does not.

- W1: section 4.5's iris MLP 4-256-256-256-3, Adam, batch 30, 100 epochs, validation_split 0.3:
  seconds of `fit`.
- W2: section 6.2.2's LeNet-5 on Fashion-MNIST (32x32 padded), Adam, batch 128: seconds per
  epoch (after a warm-up epoch of 256 images); inference images/s at batch 1000 over the 10,000
  test images (after predicting 1,000); peak RSS of the process.
- W3: Conv2D 3x3 "same", batch 64, 32x32x16 -> 32 filters, bias + relu: forward GFLOP/s and
  forward + backward GFLOP/s, each from the median of 20 timed calls.
- W4: a small residual CNN (a 3x3 Conv2D stem of 16 filters, three blocks of two 3x3 Conv2D
  and an Add, global average pooling, Dense 10) on Fashion-MNIST 32x32, Adam, batch 128, 3
  epochs: the median epoch's seconds, its training GFLOP/s (3x the forward's arithmetic), and
  the test accuracy after the 3 epochs.
- sgemm: float32 2048^3 products, GFLOP/s (pynn's GEMM through `pynn._core.matmul`): the
  reference W3 is read against.

Keras runs on TensorFlow (`pip install keras tensorflow-cpu`); PyTorch is optional and runs
channels_last, its faster CPU layout. Peers are never dependencies of pynn; install them with
pynn's wheel in a separate virtual environment. Before each measurement the script waits (up to
15 s) for a second in which the CPUs were 90 % idle.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

FRAMEWORKS = ("pynn", "keras", "torch")
W3_SHAPE = (64, 32, 32, 16, 32)  # batch, height, width, in channels, filters


# --- data ---


def iris_data():
    from pynn.datasets import iris

    x, labels = iris.load_data()
    order = np.random.default_rng(0).permutation(len(x))
    x, labels = x[order], labels[order]
    x = (x - x.mean(axis=0)) / x.std(axis=0, ddof=1)
    return x.astype(np.float32), np.eye(3, dtype=np.float32)[labels]


def lenet_data(quick):
    from pynn.datasets import fashion_mnist
    from pynn.examples.lenet import prepare

    (x, y), (x_test, _) = fashion_mnist.load_data()
    n = 2048 if quick else len(x)
    return prepare(x[:n]), y[:n].astype(np.int64), prepare(x_test[: 1000 if quick else 10000])


# --- models, the same in each framework ---


def mlp(lib):
    layers = [lib.layers.Dense(256, activation="relu") for _ in range(3)]
    return lib.Sequential(
        [lib.Input(shape=(4,))] + layers + [lib.layers.Dense(3, activation="softmax")]
    )


def lenet(lib):
    L = lib.layers
    return lib.Sequential(
        [
            lib.Input(shape=(32, 32, 1)),
            L.Conv2D(6, 5, activation="relu"),
            L.MaxPooling2D(2),
            L.Conv2D(16, 5, activation="relu"),
            L.MaxPooling2D(2),
            L.Flatten(),
            L.Dense(120, activation="relu"),
            L.Dense(84, activation="relu"),
            L.Dense(10, activation="softmax"),
        ]
    )


#: W4's convolutions: the stem and three blocks of two, 16 filters each.
W4_FILTERS, W4_BLOCKS, W4_EPOCHS = 16, 3, 3


def residual_cnn(lib):
    L = lib.layers
    inputs = lib.Input(shape=(32, 32, 1))
    x = L.Conv2D(W4_FILTERS, 3, padding="same", activation="relu")(inputs)
    for _ in range(W4_BLOCKS):
        y = L.Conv2D(W4_FILTERS, 3, padding="same", activation="relu")(x)
        y = L.Conv2D(W4_FILTERS, 3, padding="same")(y)
        x = L.Activation("relu")(L.Add()([x, y]))
    x = L.GlobalAveragePooling2D()(x)
    return lib.Model(inputs, L.Dense(10, activation="softmax")(x))


def w4_forward_flops_per_image():
    """Multiply-adds of the convolutions and the Dense, times 2."""
    pixels = 32 * 32
    stem = pixels * 9 * 1 * W4_FILTERS
    blocks = 2 * W4_BLOCKS * pixels * 9 * W4_FILTERS * W4_FILTERS
    return 2 * (stem + blocks + W4_FILTERS * 10)


def keras_like(framework):
    if framework == "pynn":
        import pynn

        pynn.utils.set_random_seed(0)
        return pynn
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    keras.utils.set_random_seed(0)
    return keras


# --- one measurement, in its own process ---


def run_w1(framework, quick):
    x, y = iris_data()
    epochs = 5 if quick else 100
    if framework == "torch":
        return {"fit_s": torch_mlp_fit(x, y, epochs)}
    lib = keras_like(framework)
    model = mlp(lib)
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(x, y, epochs=epochs, batch_size=30, validation_split=0.3, verbose=0)
    return {"fit_s": time.perf_counter() - start}


def run_w2(framework, quick):
    x, y, x_test = lenet_data(quick)
    if framework == "torch":
        return torch_lenet(x, y, x_test)
    lib = keras_like(framework)
    model = lenet(lib)
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
    model.fit(x[:256], y[:256], epochs=1, batch_size=128, verbose=0)  # warm-up
    start = time.perf_counter()
    model.fit(x, y, epochs=1, batch_size=128, verbose=0)
    epoch = time.perf_counter() - start
    model.predict(x_test[:1000], batch_size=1000, verbose=0)  # warm-up
    start = time.perf_counter()
    model.predict(x_test, batch_size=1000, verbose=0)
    images_per_s = len(x_test) / (time.perf_counter() - start)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"epoch_s": epoch, "inference_images_per_s": images_per_s, "peak_rss_mib": rss}


def run_w4(framework, quick):
    x, y, x_test = lenet_data(quick)
    y_test = w4_test_labels(quick)
    epochs = 1 if quick else W4_EPOCHS
    if framework == "torch":
        seconds, predictions = torch_residual_cnn(x, y, x_test, epochs)
    else:
        lib = keras_like(framework)
        model = residual_cnn(lib)
        model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
        seconds = []
        for _ in range(epochs):
            start = time.perf_counter()
            model.fit(x, y, epochs=1, batch_size=128, verbose=0)
            seconds.append(time.perf_counter() - start)
        predictions = model.predict(x_test, batch_size=1000, verbose=0)
    epoch = statistics.median(seconds)
    flops = 3 * w4_forward_flops_per_image() * len(x)
    accuracy = float(np.mean(np.argmax(predictions, axis=1) == y_test))
    return {"epoch_s": epoch, "train_gflops": flops / epoch / 1e9, "test_accuracy": accuracy}


def w4_test_labels(quick):
    from pynn.datasets import fashion_mnist

    (_, _), (_, y_test) = fashion_mnist.load_data()
    return y_test[: 1000 if quick else 10000]


def run_w3(framework, quick):
    if framework == "torch":
        return torch_conv(quick)
    batch, h, w, c, f = W3_SHAPE
    lib = keras_like(framework)
    model = lib.Sequential(
        [lib.Input(shape=(h, w, c)), lib.layers.Conv2D(f, 3, padding="same", activation="relu")]
    )
    model.compile(loss="mse", optimizer=lib.optimizers.SGD(learning_rate=0.0))
    x = np.random.default_rng(0).normal(size=(batch, h, w, c)).astype(np.float32)
    y = np.zeros((batch, h, w, f), np.float32)
    flops = 2 * batch * h * w * 9 * c * f
    forward = median_call_seconds(lambda: model.predict_on_batch(x), quick)
    step = median_call_seconds(lambda: model.train_on_batch(x, y), quick)
    # A training step is one forward and a backward of about twice its work.
    return {"forward_gflops": flops / forward / 1e9, "train_gflops": 3 * flops / step / 1e9}


def median_call_seconds(call, quick):
    """The median time of 20 calls (2 with `quick`) after a warm-up call: W3's calls take a few
    milliseconds, and a mean would let one call caught by the machine's noise move the figure."""
    call()
    times = []
    for _ in range(2 if quick else 20):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def torch_mlp_fit(x, y, epochs):
    import torch

    torch.manual_seed(0)
    split = int(len(x) * 0.7)
    layers, width = [], 4
    for _ in range(3):
        layers += [torch.nn.Linear(width, 256), torch.nn.ReLU()]
        width = 256
    model = torch.nn.Sequential(*layers, torch.nn.Linear(width, 3))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.001, eps=1e-7)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.argmax(axis=1))
    loss_fn = torch.nn.CrossEntropyLoss()
    start = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(split)
        for i in range(0, split, 30):
            idx = order[i : i + 30]
            optimizer.zero_grad()
            loss = loss_fn(model(xt[idx]), yt[idx])
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            loss_fn(model(xt[split:]), yt[split:])
    return time.perf_counter() - start


def torch_lenet(x, y, x_test):
    """The same LeNet in PyTorch, channels_last (its faster layout on the CPU)."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
    ).to(memory_format=torch.channels_last)  # fmt: skip
    optimizer = torch.optim.Adam(model.parameters(), lr=0.001, eps=1e-7)
    loss_fn = nn.CrossEntropyLoss()
    # NHWC arrays seen as NCHW tensors: already channels_last in memory.
    xt, yt = torch.from_numpy(x).permute(0, 3, 1, 2), torch.from_numpy(y)

    def epoch(n):
        order = torch.randperm(n)
        for i in range(0, n, 128):
            idx = order[i : i + 128]
            optimizer.zero_grad()
            loss_fn(model(xt[idx]), yt[idx]).backward()
            optimizer.step()

    epoch(256)  # warm-up
    start = time.perf_counter()
    epoch(len(x))
    seconds = time.perf_counter() - start
    test = torch.from_numpy(x_test).permute(0, 3, 1, 2)

    def predict(images):
        with torch.inference_mode():
            for i in range(0, len(images), 1000):
                model(images[i : i + 1000])

    predict(test[:1000])  # warm-up
    start = time.perf_counter()
    predict(test)
    images_per_s = len(test) / (time.perf_counter() - start)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"epoch_s": seconds, "inference_images_per_s": images_per_s, "peak_rss_mib": rss}


def torch_residual_cnn(x, y, x_test, epochs):
    """W4 in PyTorch, channels_last: seconds of each epoch and the test predictions."""
    import torch
    from torch import nn

    torch.manual_seed(0)

    def conv(channels_in):
        return nn.Conv2d(channels_in, W4_FILTERS, 3, padding=1)

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.first, self.second = conv(W4_FILTERS), conv(W4_FILTERS)

        def forward(self, x):
            return torch.relu(x + self.second(torch.relu(self.first(x))))

    model = nn.Sequential(
        conv(1), nn.ReLU(), *[Block() for _ in range(W4_BLOCKS)],
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(W4_FILTERS, 10),
    ).to(memory_format=torch.channels_last)  # fmt: skip
    optimizer = torch.optim.Adam(model.parameters(), lr=0.001, eps=1e-7)
    loss_fn = nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x).permute(0, 3, 1, 2), torch.from_numpy(y)
    seconds = []
    for _ in range(epochs):
        start = time.perf_counter()
        order = torch.randperm(len(x))
        for i in range(0, len(x), 128):
            idx = order[i : i + 128]
            optimizer.zero_grad()
            loss_fn(model(xt[idx]), yt[idx]).backward()
            optimizer.step()
        seconds.append(time.perf_counter() - start)
    with torch.inference_mode():
        test = torch.from_numpy(x_test).permute(0, 3, 1, 2)
        logits = torch.cat([model(test[i : i + 1000]) for i in range(0, len(test), 1000)])
    return seconds, logits.numpy()


def torch_conv(quick):
    import torch

    batch, h, w, c, f = W3_SHAPE
    conv = torch.nn.Conv2d(c, f, 3, padding=1).to(memory_format=torch.channels_last)
    x = torch.randn(batch, h, w, c).permute(0, 3, 1, 2)
    flops = 2 * batch * h * w * 9 * c * f

    def forward():
        with torch.inference_mode():
            torch.relu(conv(x))

    def step():
        conv.zero_grad()
        (torch.relu(conv(x)) ** 2).mean().backward()

    forward_s, step_s = (median_call_seconds(run, quick) for run in (forward, step))
    return {"forward_gflops": flops / forward_s / 1e9, "train_gflops": 3 * flops / step_s / 1e9}


def run_sgemm(framework, quick):
    """float32 2048^3 matrix products: the machine's reference for W3, as each library runs it."""
    n = 256 if quick else 2048
    a, b = (np.random.default_rng(i).normal(size=(n, n)).astype(np.float32) for i in (0, 1))
    if framework == "pynn":
        from pynn import _core

        product = _core.matmul
    elif framework == "torch":
        import torch

        a, b = torch.from_numpy(a), torch.from_numpy(b)
        product = torch.mm
    else:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import tensorflow as tf

        a, b = tf.constant(a), tf.constant(b)

        def product(a, b):
            return tf.matmul(a, b).numpy()

    product(a, b)
    times = []
    for _ in range(2 if quick else 5):
        start = time.perf_counter()
        product(a, b)
        times.append(time.perf_counter() - start)
    return {"gflops": 2 * n**3 / statistics.median(times) / 1e9}


RUNNERS = {"w1": run_w1, "w2": run_w2, "w3": run_w3, "w4": run_w4, "sgemm": run_sgemm}


def child(framework, workload, threads, quick):
    os.environ["PYNN_NUM_THREADS"] = str(threads)
    os.environ["TF_NUM_INTRAOP_THREADS"] = str(threads)
    os.environ["TF_NUM_INTEROP_THREADS"] = "1"
    try:
        if framework == "torch":
            import torch

            torch.set_num_threads(threads)
        print(json.dumps(RUNNERS[workload](framework, quick)))
    except ImportError as error:
        print(json.dumps({"unavailable": str(error)}))


def wait_until_quiet(idle_share=0.9, longest_s=15.0):
    """Waits (at most `longest_s`) for a second in which the CPUs were at least `idle_share`
    idle, so that one measurement's process has gone before the next starts."""

    def idle_and_total():
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
        return values[3] + values[4], sum(values)

    deadline = time.monotonic() + longest_s
    while time.monotonic() < deadline:
        idle0, total0 = idle_and_total()
        time.sleep(1.0)
        idle1, total1 = idle_and_total()
        if (idle1 - idle0) >= idle_share * max(1, total1 - total0):
            return


def measure(framework, workload, threads, quick):
    if not quick and os.path.exists("/proc/stat"):
        wait_until_quiet()
    out = subprocess.run(
        [sys.executable, __file__, "--child", framework, workload, "--threads", str(threads)]
        + (["--quick"] if quick else []),
        capture_output=True,
        text=True,
    )
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"{framework} {workload} failed:\n{out.stderr[-2000:]}")
    return json.loads(lines[-1])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--workloads", default="w1,w2,w3,w4,sgemm")
    parser.add_argument(
        "--threads",
        default=str(os.cpu_count() or 1),
        help="thread counts, comma-separated (e.g. 2,1): each repeat measures them in turn",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", default=None)
    parser.add_argument("--child", nargs=2, metavar=("FRAMEWORK", "WORKLOAD"))
    args = parser.parse_args()
    thread_counts = [int(t) for t in args.threads.split(",")]
    if args.child:
        return child(*args.child, thread_counts[0], args.quick)

    frameworks = ("pynn",) if args.quick else FRAMEWORKS
    repeats = 1 if args.quick else args.repeats
    by_threads = {threads: {} for threads in thread_counts}
    for workload in args.workloads.split(","):
        for _ in range(repeats):
            for threads in thread_counts:
                for framework in frameworks:
                    runs = by_threads[threads].setdefault(workload, {}).setdefault(framework, [])
                    runs.append(measure(framework, workload, threads, args.quick))
    for threads, results in by_threads.items():
        if len(thread_counts) > 1:
            print(f"\n{threads} thread(s):\n")
        print_table(results, frameworks)
    if len(thread_counts) > 1:
        print_scaling(by_threads)
    if args.json:
        first = thread_counts[0]
        with open(args.json, "w") as f:
            json.dump(
                {
                    "threads": first,
                    "results": by_threads[first],
                    "by_threads": {str(t): r for t, r in by_threads.items()},
                },
                f,
                indent=1,
            )


def median_of(runs, metric):
    values = [r[metric] for r in runs if metric in r]
    return statistics.median(values) if values else None


def print_table(results, frameworks):
    print(f"| workload | metric | {' | '.join(frameworks)} | (ratios to pynn) |")
    print("|---|---|" + "---|" * (len(frameworks) + 1))
    for workload, by_framework in results.items():
        for metric in by_framework["pynn"][0]:
            medians = {f: median_of(runs, metric) for f, runs in by_framework.items()}
            cells = [f"{v:.3g}" if v is not None else "n/a" for v in medians.values()]
            ratios = [f"{v / medians['pynn']:.2f}" if v else "n/a" for v in medians.values()]
            print(f"| {workload} | {metric} | {' | '.join(cells)} | {' / '.join(ratios)} |")


def print_scaling(by_threads):
    """pynn's speed-up from the first thread count over each other one, per timed metric, from
    measurements taken in turn (so in the same minutes of a noisy machine)."""
    (first, first_results), *others = by_threads.items()
    print()
    for threads, results in others:
        for workload, by_framework in first_results.items():
            for metric in by_framework["pynn"][0]:
                if metric == "peak_rss_mib":
                    continue
                a = median_of(by_framework["pynn"], metric)
                b = median_of(results[workload]["pynn"], metric)
                rate = "per_s" in metric or metric.endswith("gflops")
                speedup = a / b if rate else b / a  # seconds fall as speed rises
                pair = f"on {first} threads as on {threads}"
                print(f"pynn {workload} {metric}: {speedup:.2f}x as fast {pair}")


if __name__ == "__main__":
    main()
