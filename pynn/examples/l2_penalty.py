"""Section 5.2 of the textbook, "Loss penalization": an L2 penalty (λ = 0.01) on the hidden
kernels of the iris network, `Dense(..., kernel_regularizer=L2(λ))`. The penalty shrinks the
weights and keeps the validation loss from climbing as the unpenalized network's does.

    python -m pynn.examples.l2_penalty [--quick] [--out DIR] [--seed S]

Writes `l2_penalty.png`: training and validation loss without and with the penalty.
"""

from __future__ import annotations

import numpy as np

from pynn.examples import _cli
from pynn.examples._textbook import (
    IRIS_EPOCHS,
    plot_train_and_validation,
    regularized_fit,
    standardized_iris,
)


def main(argv: list[str] | None = None) -> dict:
    args = _cli.parser(__doc__, __spec__.name).parse_args(argv)
    epochs = IRIS_EPOCHS  # the whole run takes about a second: `--quick` keeps it
    x, y = standardized_iris(args.seed)

    results = {}
    figure, axes = _cli.pyplot().subplots(1, 2, figsize=(11, 4))
    for ax, variant in zip(axes, ("plain", "l2")):
        model, history = regularized_fit(variant, x, y, epochs, args.seed)
        kernels = [w for w in model.get_weights() if w.ndim == 2]
        norm = float(np.sqrt(sum(np.sum(k.astype(np.float64) ** 2) for k in kernels)))
        results[variant] = {"history": history.history, "kernel_norm": norm}
        plot_train_and_validation(ax, history, "no penalty" if variant == "plain" else "L2(0.01)")
        print(
            f"{variant:<6} final validation loss {history.history['val_loss'][-1]:.4f}, "
            f"norm of all kernels {norm:.2f}"
        )
    _cli.save(figure, args.out, "l2_penalty.png")
    return results


if __name__ == "__main__":
    _cli.run(main)
