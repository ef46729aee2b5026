"""The seed's workloads timed in pynn and, where installed, in Keras and PyTorch, in one run.

    python benches/compare.py [--workload iris|lenet] [--threads N] [--repeats R]

Workload "iris": section 4.5's 4-256-256-256-3 network, Adam, batch 30, 100 epochs on the 150 iris
samples (standardized). Workload "lenet": section 6.2.2's LeNet-5, Adam, batch 128, one epoch on
Fashion-MNIST's 60,000 training images (needs the data, see pynn.datasets.fashion_mnist).
Each framework trains from its own initial weights; what is compared is the wall time of `fit`
(median of the repeats) and the final training loss, which should be of the same order. Ratios
are against pynn measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np


def iris_data():
    from pynn.datasets import iris
    from pynn.utils import to_categorical

    x, labels = iris.load_data()
    x = (x - x.mean(axis=0)) / x.std(axis=0, ddof=1)
    return x.astype(np.float32), to_categorical(labels).astype(np.float32)


def lenet_data():
    from pynn.datasets import fashion_mnist
    from pynn.examples.lenet import prepare

    (x, y), _ = fashion_mnist.load_data()
    return prepare(x), y.astype(np.int64)


def lenet_layers(layers):
    """The LeNet-5 stack in a Keras-like `layers` module (pynn's or Keras's)."""
    return [
        layers.Conv2D(6, 5, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Conv2D(16, 5, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dense(120, activation="relu"),
        layers.Dense(84, activation="relu"),
        layers.Dense(10, activation="softmax"),
    ]


def time_pynn_lenet(x, y, epochs):
    import pynn

    pynn.utils.set_random_seed(0)
    model = pynn.Sequential([pynn.Input(shape=(32, 32, 1))] + lenet_layers(pynn.layers))
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
    start = time.perf_counter()
    history = model.fit(x, y, epochs=epochs, batch_size=128, verbose=0)
    return time.perf_counter() - start, history.history["loss"][-1]


def time_keras_lenet(x, y, epochs):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(shape=(32, 32, 1))] + lenet_layers(keras.layers))
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
    start = time.perf_counter()
    history = model.fit(x, y, epochs=epochs, batch_size=128, verbose=0)
    return time.perf_counter() - start, history.history["loss"][-1]


def time_pynn(x, y, epochs):
    import pynn

    pynn.utils.set_random_seed(0)
    model = pynn.Sequential(
        [pynn.Input(shape=(4,))]
        + [pynn.layers.Dense(256, activation="relu") for _ in range(3)]
        + [pynn.layers.Dense(3, activation="softmax")]
    )
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    start = time.perf_counter()
    history = model.fit(x, y, epochs=epochs, batch_size=30, verbose=0)
    return time.perf_counter() - start, history.history["loss"][-1]


def time_keras(x, y, epochs):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input(shape=(4,))]
        + [keras.layers.Dense(256, activation="relu") for _ in range(3)]
        + [keras.layers.Dense(3, activation="softmax")]
    )
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    start = time.perf_counter()
    history = model.fit(x, y, epochs=epochs, batch_size=30, verbose=0)
    return time.perf_counter() - start, history.history["loss"][-1]


def time_torch(x, y, epochs):
    import torch

    torch.manual_seed(0)
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
        order = torch.randperm(len(xt))
        total = 0.0
        for i in range(0, len(xt), 30):
            idx = order[i : i + 30]
            optimizer.zero_grad()
            loss = loss_fn(model(xt[idx]), yt[idx])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
    return time.perf_counter() - start, total / len(xt)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=0, help="0: all cores")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workload", choices=("iris", "lenet"), default="iris")
    parser.add_argument("--epochs", type=int, default=None)
    args = parser.parse_args()

    import pynn

    pynn.config.set_num_threads(args.threads)
    threads = pynn.config.get_num_threads()
    # TensorFlow reads its pool sizes from the environment when it starts.
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(threads))
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:
        pass
    if args.workload == "iris":
        x, y = iris_data()
        epochs = args.epochs or 100
        runners = (("pynn", time_pynn), ("keras", time_keras), ("torch", time_torch))
        what = "4-256-256-256-3, Adam, batch 30"
    else:
        x, y = lenet_data()
        epochs = args.epochs or 1
        runners = (("pynn", time_pynn_lenet), ("keras", time_keras_lenet))
        what = "LeNet-5 on 60,000 Fashion-MNIST images, Adam, batch 128"
    print(
        f"workload {args.workload}: {what}, {epochs} epoch(s), {threads} thread(s), "
        f"median of {args.repeats}"
    )
    results = {}
    for name, run in runners:
        try:
            runs = [run(x, y, epochs) for _ in range(args.repeats)]
        except ImportError:
            print(f"{name:>6}: not installed")
            continue
        seconds = statistics.median(r[0] for r in runs)
        results[name] = seconds
        ratio = seconds / results["pynn"]
        print(f"{name:>6}: {seconds:7.3f} s  ({ratio:5.2f}x pynn)  final loss {runs[-1][1]:.4f}")


if __name__ == "__main__":
    main()
