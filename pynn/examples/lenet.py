"""Section 6.2.2 of the textbook, "LeNet-5": trained on Fashion-MNIST. The 28x28 images are
zero-padded to 32x32 and scaled to [0, 1]; Adam, batch 128, 3 epochs. Prints the model's summary,
the test accuracy and the seconds each epoch took.

    python -m pynn.examples.lenet [--quick] [--out DIR] [--epochs N] [--train-size N]
                                  [--path FOLDER]

`--quick` trains its 3 epochs on 2,048 images. Writes `lenet.png`: loss and accuracy per epoch
on the training and test images.

The data comes from `pynn.datasets.fashion_mnist` (Debian's `dataset-fashion-mnist` package, or
the four IDX files in `--path` or `$PYNN_DATA/fashion-mnist`).
"""

from __future__ import annotations

import time

import numpy as np

from pynn.callbacks import Callback
from pynn.datasets import fashion_mnist
from pynn.examples import _cli
from pynn.layers import Conv2D, Dense, Flatten, InputLayer, MaxPool2D
from pynn.models import Sequential
from pynn.utils import plot_history, set_random_seed


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
    parser = _cli.parser(__doc__, __spec__.name)
    parser.add_argument("--epochs", type=int, default=None, help="default: 3")
    parser.add_argument(
        "--train-size", type=int, default=None, help="default: 60000 (2048 with --quick)"
    )
    parser.add_argument(
        "--path",
        default=None,
        help="the folder of Fashion-MNIST's four IDX files (default: $PYNN_DATA/fashion-mnist, "
        "then /usr/share/datasets/fashion-mnist)",
    )
    args = parser.parse_args(argv)
    epochs = args.epochs or 3
    train_size = args.train_size or (2048 if args.quick else 60000)

    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data(args.path)
    x_train, y_train = prepare(x_train[:train_size]), y_train[:train_size]
    x_test = prepare(x_test)

    set_random_seed(args.seed)
    model = lenet()
    model.summary()
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    timer = EpochTimer()
    history = model.fit(
        x_train,
        y_train,
        epochs=epochs,
        batch_size=128,
        verbose=0,
        callbacks=[timer],
        validation_data=(x_test, y_test),
        validation_batch_size=512,
    )
    test_loss = history.history["val_loss"][-1]
    test_accuracy = history.history["val_accuracy"][-1]
    print(f"LeNet-5 on Fashion-MNIST: {len(x_train)} training images, {epochs} epochs, batch 128")
    print(f"test accuracy {test_accuracy:.4f}, test loss {test_loss:.4f}")
    seconds = ", ".join(f"{s:.1f}" for s in timer.seconds)
    print(f"seconds per epoch, test pass included: {seconds}")

    figure, (left, right) = _cli.pyplot().subplots(1, 2, figsize=(11, 4))
    plot_history(history, metrics=("loss", "val_loss"), ax=left)
    plot_history(history, metrics=("accuracy", "val_accuracy"), ax=right)
    left.set_title("loss (val: the 10,000 test images)")
    right.set_title("accuracy")
    _cli.save(figure, args.out, "lenet.png")
    return {
        "accuracy": test_accuracy,
        "loss": test_loss,
        "seconds": timer.seconds,
        "history": history.history,
    }


if __name__ == "__main__":
    _cli.run(main)
