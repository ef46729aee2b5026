"""Section 6.1 of the textbook, ConvNets for time series.

1. A Conv1D whose kernel is set to a Gaussian filter computes `(x * f)(t) = sum_k f_k x_{t+k}`:
   the same as `numpy.convolve(x, f, mode="same")` (a symmetric filter is its own flip).
2. Convolution is translation equivariant: shifting the input shifts the output.
3. A small Conv1D classifier learns to tell series holding a short bump from series holding a
   long one, at random positions.

    python -m pynn.examples.conv1d [--quick] [--out DIR] [--seed S]

Writes `conv1d.png`: a random walk, its Gaussian-filtered version, and the filtered version of
the shifted walk.
"""

from __future__ import annotations

import numpy as np

from pynn.examples import _cli
from pynn.layers import Conv1D, Dense, GlobalMaxPooling1D, InputLayer, MaxPooling1D
from pynn.models import Sequential
from pynn.utils import set_random_seed


def gaussian_filter(half_width: int, sigma: float) -> np.ndarray:
    k = np.arange(-half_width, half_width + 1)
    f = np.exp(-(k**2) / (2 * sigma**2))
    return f / f.sum()


def filter_layer(f: np.ndarray, length: int) -> Sequential:
    model = Sequential(
        [InputLayer(shape=(length, 1)), Conv1D(1, len(f), padding="same", use_bias=False)]
    )
    model.set_weights([f.reshape(-1, 1, 1)])
    return model


def bumps(n: int, length: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Noisy series holding one bump: short (class 0) or long (class 1), anywhere."""
    t = np.arange(length)
    labels = rng.integers(0, 2, size=n)
    centres = rng.uniform(10, length - 10, size=n)
    widths = np.where(labels == 1, 6.0, 1.5)
    x = np.exp(-((t - centres[:, None]) ** 2) / (2 * widths[:, None] ** 2))
    x += rng.normal(scale=0.2, size=x.shape)
    return x[..., None].astype(np.float32), labels


def classifier(length: int) -> Sequential:
    return Sequential(
        [
            InputLayer(shape=(length, 1)),
            Conv1D(8, 5, activation="relu"),
            MaxPooling1D(2),
            Conv1D(8, 5, activation="relu"),
            GlobalMaxPooling1D(),
            Dense(2, activation="softmax"),
        ]
    )


def plot(x, smoothed, shifted, out: str) -> None:
    figure, (top, bottom) = _cli.pyplot().subplots(2, 1, figsize=(8, 5), sharex=True)
    top.plot(x, color="lightgrey", label="x")
    top.plot(smoothed, label="Conv1D(x), Gaussian kernel")
    top.legend()
    top.set_title("A Gaussian filter as a Conv1D")
    bottom.plot(smoothed, label="Conv1D(x)")
    bottom.plot(shifted, label="Conv1D(x shifted by 7 steps)")
    bottom.legend()
    bottom.set_title("Translation equivariance")
    bottom.set_xlabel("t")
    _cli.save(figure, out, "conv1d.png")


def main(argv: list[str] | None = None) -> dict:
    args = _cli.parser(__doc__, __spec__.name).parse_args(argv)
    epochs = 4 if args.quick else 10
    rng = np.random.default_rng(args.seed)
    length = 100

    x = np.cumsum(rng.normal(size=length)).astype(np.float32)
    f = gaussian_filter(half_width=4, sigma=2.0)
    layer = filter_layer(f, length)
    smoothed = layer.predict(x.reshape(1, -1, 1), verbose=0).ravel()
    reference = np.convolve(x, f, mode="same")
    error = float(np.abs(smoothed - reference).max())
    print(f"1. Conv1D with a Gaussian kernel vs numpy.convolve: max difference {error:.2e}")

    shifted = layer.predict(np.roll(x, 7).reshape(1, -1, 1), verbose=0).ravel()
    shift_error = float(np.abs(shifted[7 + 4 : -4] - smoothed[4 : -7 - 4]).max())
    print(
        f"2. input shifted by 7 steps: output shifted by 7 steps (max difference away from "
        f"the edges {shift_error:.2e})"
    )

    set_random_seed(args.seed)
    x_train, y_train = bumps(2000, length, rng)
    x_test, y_test = bumps(500, length, rng)
    model = classifier(length)
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=epochs, batch_size=32, verbose=0)
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"3. Conv1D classifier, short vs long bumps: test accuracy {accuracy:.4f}")
    plot(x, smoothed, shifted, args.out)
    return {"filter_error": error, "shift_error": shift_error, "accuracy": accuracy}


if __name__ == "__main__":
    _cli.run(main)
