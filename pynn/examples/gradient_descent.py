"""Chapter 4 of the textbook, "Optimization": gradient descent (one update per epoch, on the
whole data set) against stochastic gradient descent (one update per minibatch), and the loss
landscape of a network with a hidden layer.

1. A linear model `y = w x + b` fitted by `SGD(learning_rate=0.1)` with `batch_size=len(x)`
   (gradient descent) and `batch_size=10` (SGD): SGD updates more often, along noisy directions.
2. The mean squared error of a 1-1-1 network (tanh hidden unit) as a function of its two
   weights is not convex: it has two minima, at (w1, w2) and (-w1, -w2).

    python -m pynn.examples.gradient_descent [--quick] [--out DIR] [--seed S]

Writes `gd_vs_sgd.png` (both paths over the loss contours) and `loss_landscape.png`.
"""

from __future__ import annotations

import numpy as np

from pynn.callbacks import Callback
from pynn.examples import _cli
from pynn.layers import Dense, InputLayer
from pynn.models import Sequential
from pynn.optimizers import SGD
from pynn.utils import set_random_seed


class WeightPath(Callback):
    """The weights `(w, b)` of a one-unit linear model before training and after every batch."""

    def on_train_begin(self, logs=None):
        self.path = [self._weights()]

    def on_train_batch_end(self, batch, logs=None):
        self.path.append(self._weights())

    def _weights(self):
        kernel, bias = self.model.get_weights()
        return float(kernel[0, 0]), float(bias[0])


def linear_data(rng, n: int = 100):
    x = rng.uniform(-2, 2, size=(n, 1)).astype(np.float32)
    y = (2.0 * x + 1.0 + rng.normal(scale=0.5, size=(n, 1))).astype(np.float32)
    return x, y


def descend(x, y, batch_size: int, epochs: int) -> np.ndarray:
    """The path of `(w, b)` from `(-2, -2)` under SGD with learning rate 0.1."""
    model = Sequential([InputLayer(shape=(1,)), Dense(1)])
    model.set_weights([np.array([[-2.0]]), np.array([-2.0])])
    model.compile(loss="mse", optimizer=SGD(learning_rate=0.1))
    path = WeightPath()
    model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0, callbacks=[path])
    return np.array(path.path)


def mse_grid(x, y, w, b):
    """The mean squared error of `w x + b` for every `(w, b)` of the grids."""
    residuals = w[..., None] * x[:, 0] + b[..., None] - y[:, 0]
    return np.mean(residuals**2, axis=-1)


def tiny_network_losses(rng, steps: int):
    """MSE of the 1-1-1 tanh network over a grid of its two weights (biases zero), on data the
    network with weights (1.5, 2) produced."""
    x = rng.uniform(-2, 2, size=(200, 1)).astype(np.float32)
    y = 2.0 * np.tanh(1.5 * x)
    model = Sequential([InputLayer(shape=(1,)), Dense(1, activation="tanh"), Dense(1)])
    model.compile(loss="mse", optimizer="sgd")
    grid = np.linspace(-3, 3, steps)
    losses = np.empty((steps, steps))
    for i, w2 in enumerate(grid):
        for j, w1 in enumerate(grid):
            model.set_weights([np.array([[w1]]), np.zeros(1), np.array([[w2]]), np.zeros(1)])
            losses[i, j] = model.evaluate(x, y, batch_size=200, verbose=0)
    return grid, losses


def main(argv: list[str] | None = None) -> dict:
    args = _cli.parser(__doc__, __spec__.name).parse_args(argv)
    rng = np.random.default_rng(args.seed)
    set_random_seed(args.seed)
    epochs = 5 if args.quick else 20
    x, y = linear_data(rng)
    paths = {
        "gradient descent (batch 100)": descend(x, y, len(x), epochs),
        "SGD (batch 10)": descend(x, y, 10, epochs),
    }
    for name, path in paths.items():
        w, b = path[-1]
        print(f"{name:<30} {len(path) - 1:>4} updates, ends at w={w:.3f}, b={b:.3f}")

    plt = _cli.pyplot()
    figure, ax = plt.subplots(figsize=(6, 5))
    w, b = np.meshgrid(np.linspace(-3, 4, 80), np.linspace(-3, 3, 80))
    surface = mse_grid(x, y, w, b)
    levels = np.geomspace(surface.min() * 1.05, surface.max(), 20)  # dense near the minimum
    ax.contour(w, b, surface, levels=levels, cmap="Greys_r")
    for name, path in paths.items():
        ax.plot(path[:, 0], path[:, 1], marker=".", markersize=3, label=name)
    ax.set_xlabel("w")
    ax.set_ylabel("b")
    ax.set_title(f"{epochs} epochs from (w, b) = (-2, -2)")
    ax.legend()
    _cli.save(figure, args.out, "gd_vs_sgd.png")

    grid, losses = tiny_network_losses(rng, steps=15 if args.quick else 61)
    figure, ax = plt.subplots(figsize=(6, 5))
    contours = ax.contourf(grid, grid, losses, levels=30, cmap="viridis")
    figure.colorbar(contours, ax=ax, label="MSE")
    ax.set_xlabel("w1 (hidden layer)")
    ax.set_ylabel("w2 (output layer)")
    ax.set_title("Loss landscape of a 1-1-1 tanh network")
    _cli.save(figure, args.out, "loss_landscape.png")
    return {"paths": paths, "grid": grid, "losses": losses}


if __name__ == "__main__":
    _cli.run(main)
