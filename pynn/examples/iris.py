"""Section 4.5 of the textbook, "Data preprocessing": the same 4-256-256-256-3 network, trained with
Adam (batch 30, 100 epochs) on raw and on standardized iris features, from the same initial
weights. Standardizing the inputs trains faster and further.

    python -m pynn.examples.iris [--epochs N] [--seed S]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from pynn.examples._textbook import iris_network, shuffled_iris, standardized
from pynn.utils import set_random_seed


def train(x: np.ndarray, y: np.ndarray, epochs: int, seed: int) -> dict[str, list[float]]:
    set_random_seed(seed)
    model = iris_network()
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model.fit(x, y, epochs=epochs, batch_size=30, verbose=0).history


def main(argv: list[str] | None = None) -> dict[str, dict[str, list[float]]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    x, y = shuffled_iris(args.seed)

    start = time.perf_counter()
    histories = {
        "raw": train(x, y, args.epochs, args.seed),
        "standardized": train(standardized(x), y, args.epochs, args.seed),
    }
    seconds = time.perf_counter() - start

    print(f"iris, 4-256-256-256-3, Adam, batch 30, {args.epochs} epochs")
    print(f"{'features':<14}{'final loss':>12}{'final accuracy':>16}")
    for name, history in histories.items():
        print(f"{name:<14}{history['loss'][-1]:>12.4f}{history['accuracy'][-1]:>16.4f}")
    print(f"trained both models in {seconds:.1f} s")
    return histories


if __name__ == "__main__":
    main()
