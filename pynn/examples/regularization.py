"""Chapter 5 of the textbook, "Regularization", on the bundled iris data: the same
4-256-256-256-3 network trained with a 30 % validation split, plain, with early stopping (patience
10, best weights restored), with an L2 penalty (0.01) on the hidden kernels, and with dropout
(0.3) before each Dense layer.

    python -m pynn.examples.regularization [--quick] [--out DIR] [--seed S]

For each variant it prints the epoch training stopped at, the epoch with the lowest validation
loss, and the final model's loss and accuracy on the training and validation parts; and writes
`regularization.png`, the four runs' validation losses. Each variant has its own example with its
own figure: `early_stopping`, `l2_penalty`, `dropout`.
"""

from __future__ import annotations

import numpy as np

from pynn.examples import _cli
from pynn.examples._textbook import (
    IRIS_EPOCHS,
    REGULARIZATION_VARIANTS,
    VALIDATION_SPLIT,
    regularized_fit,
    standardized_iris,
)
from pynn.utils import plot_history


def run(variant: str, x, y, epochs: int, seed: int) -> dict:
    model, history = regularized_fit(variant, x, y, epochs, seed)
    split = int(len(x) * (1 - VALIDATION_SPLIT))
    return {
        "history": history,
        "stopped": len(history.history["loss"]),
        "best": int(np.argmin(history.history["val_loss"])) + 1,
        "train": model.evaluate(x[:split], y[:split], verbose=0, return_dict=True),
        "val": model.evaluate(x[split:], y[split:], verbose=0, return_dict=True),
    }


def main(argv: list[str] | None = None) -> dict[str, dict]:
    args = _cli.parser(__doc__, __spec__.name).parse_args(argv)
    epochs = IRIS_EPOCHS  # the whole run takes about a second: `--quick` keeps it
    x, y = standardized_iris(args.seed)

    results = {v: run(v, x, y, epochs, args.seed) for v in REGULARIZATION_VARIANTS}
    print(
        f"iris, 4-256-256-256-3, Adam, batch 30, up to {epochs} epochs, "
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

    figure, ax = _cli.pyplot().subplots(figsize=(7, 4.5))
    for variant, r in results.items():
        plot_history(r["history"], metrics=("val_loss",), ax=ax, label=variant)
    styles = {"plain": ("-", 2.5), "early stopping": ("--", 1.5), "l2": ("-", 1.0)}
    for line, variant in zip(ax.get_lines(), results):
        style, width = styles.get(variant, (":", 1.5))
        line.set_linestyle(style)
        line.set_linewidth(width)
    stop = results["early stopping"]
    ax.plot(stop["stopped"], stop["history"].history["val_loss"][-1], "kx", label="early stop")
    # The L2 run's loss includes its penalty, large at first: a log scale keeps every run in view.
    ax.set_yscale("log")
    ax.legend()
    ax.set_title("Iris: validation loss with each regularization (plain overfits)")
    _cli.save(figure, args.out, "regularization.png")
    return results


if __name__ == "__main__":
    _cli.run(main)
