"""Chapter 5 of the textbook, "Regularization", on the bundled iris data: the same
4-256-256-256-3 network trained with a 30 % validation split, plain, with early stopping (patience
10, best weights restored), with an L2 penalty (0.01) on the hidden kernels, and with dropout
(0.3) before each Dense layer.

    python -m pynn.examples.regularization [--epochs N] [--seed S]

For each variant it prints the epoch training stopped at, the epoch with the lowest validation
loss, and the final model's loss and accuracy on the training and validation parts.
"""

from __future__ import annotations

import argparse

import numpy as np

from pynn.callbacks import EarlyStopping
from pynn.examples._textbook import iris_network, shuffled_iris, standardized
from pynn.regularizers import L2
from pynn.utils import set_random_seed

VALIDATION_SPLIT = 0.3


def build(variant: str):
    if variant == "dropout":
        return iris_network(dropout=0.3)
    if variant == "l2":
        return iris_network(kernel_regularizer=L2(0.01))
    return iris_network()


def run(variant: str, x, y, epochs: int, seed: int) -> dict:
    set_random_seed(seed)
    model = build(variant)
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    callbacks = []
    if variant == "early stopping":
        callbacks.append(EarlyStopping(monitor="val_loss", patience=10, restore_best_weights=True))
    history = model.fit(
        x,
        y,
        validation_split=VALIDATION_SPLIT,
        epochs=epochs,
        batch_size=30,
        verbose=0,
        callbacks=callbacks,
    ).history
    split = int(len(x) * (1 - VALIDATION_SPLIT))
    train = model.evaluate(x[:split], y[:split], verbose=0, return_dict=True)
    val = model.evaluate(x[split:], y[split:], verbose=0, return_dict=True)
    return {
        "stopped": len(history["loss"]),
        "best": int(np.argmin(history["val_loss"])) + 1,
        "train": train,
        "val": val,
    }


def main(argv: list[str] | None = None) -> dict[str, dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    x, y = shuffled_iris(args.seed)
    x = standardized(x)

    results = {
        v: run(v, x, y, args.epochs, args.seed)
        for v in ("plain", "early stopping", "l2", "dropout")
    }
    print(
        f"iris, 4-256-256-256-3, Adam, batch 30, up to {args.epochs} epochs, "
        f"validation_split={VALIDATION_SPLIT}"
    )
    print(
        f"{'variant':<16}{'stopped at':>11}{'best epoch':>11}{'train loss':>12}"
        f"{'train acc':>10}{'val loss':>10}{'val acc':>9}"
    )
    for variant, r in results.items():
        print(
            f"{variant:<16}{r['stopped']:>11}{r['best']:>11}{r['train']['loss']:>12.4f}"
            f"{r['train']['accuracy']:>10.4f}{r['val']['loss']:>10.4f}"
            f"{r['val']['accuracy']:>9.4f}"
        )
    return results


if __name__ == "__main__":
    main()
