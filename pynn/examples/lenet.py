"""Section 6.2.2 of the textbook: LeNet-5 trained on Fashion-MNIST. The 28x28 images are
zero-padded to 32x32 and scaled to [0, 1]; Adam, batch 128, 3 epochs. Prints the test accuracy
and the seconds each epoch took.

    python -m pynn.examples.lenet [--epochs N] [--train-size N] [--path FOLDER]

The data comes from `pynn.datasets.fashion_mnist` (Debian's `dataset-fashion-mnist` package, or
the four IDX files in `--path` or `$PYNN_DATA/fashion-mnist`).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from pynn.callbacks import Callback
from pynn.datasets import fashion_mnist
from pynn.layers import Conv2D, Dense, Flatten, InputLayer, MaxPool2D
from pynn.models import Sequential
from pynn.utils import set_random_seed


def lenet() -> Sequential:
    return Sequential(
        [
            InputLayer(shape=(32, 32, 1)),
            Conv2D(filters=6, kernel_size=5, padding="valid", activation="relu"),
            MaxPool2D(pool_size=2),
            Conv2D(filters=16, kernel_size=5, padding="valid", activation="relu"),
            MaxPool2D(pool_size=2),
            Flatten(),
            Dense(120, activation="relu"),
            Dense(84, activation="relu"),
            Dense(10, activation="softmax"),
        ]
    )


def prepare(images: np.ndarray) -> np.ndarray:
    """(n, 28, 28) uint8 -> (n, 32, 32, 1) float32 in [0, 1], with a 2-pixel zero border."""
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2)))
    return (padded.astype(np.float32) / 255.0)[..., None]


class EpochTimer(Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds = getattr(self, "seconds", []) + [time.perf_counter() - self.start]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-size", type=int, default=60000)
    parser.add_argument("--path", default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data(args.path)
    x_train, y_train = prepare(x_train[: args.train_size]), y_train[: args.train_size]
    x_test = prepare(x_test)

    set_random_seed(args.seed)
    model = lenet()
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    timer = EpochTimer()
    model.fit(x_train, y_train, epochs=args.epochs, batch_size=128, verbose=0, callbacks=[timer])
    test_loss, test_accuracy = model.evaluate(x_test, y_test, batch_size=512, verbose=0)
    print(
        f"LeNet-5 on Fashion-MNIST: {len(x_train)} training images, {args.epochs} epochs, "
        "Adam, batch 128"
    )
    print(f"test accuracy {test_accuracy:.4f}, test loss {test_loss:.4f}")
    print("seconds per epoch: " + ", ".join(f"{s:.1f}" for s in timer.seconds))
    return {"accuracy": test_accuracy, "loss": test_loss, "seconds": timer.seconds}


if __name__ == "__main__":
    main()
