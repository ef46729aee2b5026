"""Section 4.3 of the textbook, "The curse of depth": the derivatives of the standard activation
functions, and gradients vanishing in the first layers of a deep sigmoid network but not of the
same network with ReLU.

1. `pynn.activations.get(name).derivative(x)` for relu, sigmoid and tanh: the sigmoid's slope is
   at most 0.25, so each sigmoid layer shrinks the gradient flowing back through it.
2. Two networks of 10 hidden Dense layers (32 units) from the same initial weights, one with
   sigmoid and one with ReLU, trained with SGD on a two-class problem; the `GradientNorms`
   callback records each layer's gradient norm after every epoch.

    python -m pynn.examples.curse_of_depth [--quick] [--out DIR] [--seed S]

Writes `activation_derivatives.png` and `gradient_norms.png`.
"""

from __future__ import annotations

import numpy as np

from pynn import activations
from pynn.callbacks import GradientNorms
from pynn.examples import _cli
from pynn.layers import Dense, InputLayer
from pynn.models import Sequential
from pynn.utils import set_random_seed, to_categorical

DEPTH = 10


def deep_network(activation: str) -> Sequential:
    layers = [Dense(32, activation=activation) for _ in range(DEPTH)]
    return Sequential([InputLayer(shape=(8,)), *layers, Dense(2, activation="softmax")])


def gradient_norms(activation: str, x, y, epochs: int, seed: int) -> list[float]:
    """Each layer's gradient norm after the last epoch, first layer first."""
    set_random_seed(seed)
    model = deep_network(activation)
    model.compile(loss="categorical_crossentropy", optimizer="sgd")
    norms = GradientNorms(x, y)
    model.fit(x, y, epochs=epochs, batch_size=32, verbose=0, callbacks=[norms])
    return [values[-1] for values in norms.norms.values()]


def main(argv: list[str] | None = None) -> dict:
    args = _cli.parser(__doc__, __spec__.name).parse_args(argv)
    plt = _cli.pyplot()

    z = np.linspace(-6, 6, 241, dtype=np.float32)
    figure, ax = plt.subplots(figsize=(6, 4))
    for name in ("relu", "sigmoid", "tanh"):
        ax.plot(z, activations.get(name).derivative(z), label=f"{name}'")
    ax.set_xlabel("o")
    ax.set_title("Derivatives of activation functions")
    ax.legend()
    _cli.save(figure, args.out, "activation_derivatives.png")

    rng = np.random.default_rng(args.seed)
    x = rng.normal(size=(512, 8)).astype(np.float32)
    y = to_categorical((x[:, 0] + x[:, 1] > 0).astype(int), 2)
    epochs = 1 if args.quick else 5
    norms = {a: gradient_norms(a, x, y, epochs, args.seed) for a in ("sigmoid", "relu")}
    print(f"gradient norm per layer after {epochs} epoch(s), first layer first:")
    for activation, values in norms.items():
        print(f"{activation:<8}" + " ".join(f"{v:.1e}" for v in values))

    figure, ax = plt.subplots(figsize=(6, 4))
    layers = np.arange(1, DEPTH + 2)
    for activation, values in norms.items():
        ax.semilogy(layers, values, marker="o", label=activation)
    ax.set_xlabel("layer (1 = closest to the input)")
    ax.set_ylabel("gradient norm")
    ax.set_title(f"{DEPTH} hidden layers: gradients vanish with sigmoid")
    ax.legend()
    _cli.save(figure, args.out, "gradient_norms.png")
    return norms


if __name__ == "__main__":
    _cli.run(main)
