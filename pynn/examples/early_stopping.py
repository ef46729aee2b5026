"""Section 5.1 of the textbook, "Early Stopping": trained for 100 epochs, the iris network
overfits (its validation loss turns back up); `EarlyStopping(monitor="val_loss", patience=10,
restore_best_weights=True)` stops 10 epochs after the best one and restores its weights.

    python -m pynn.examples.early_stopping [--quick] [--out DIR] [--seed S]

Writes `early_stopping.png`: training and validation loss without and with the callback.
"""

from __future__ import annotations

from pynn.examples import _cli
from pynn.examples._textbook import (
    IRIS_EPOCHS,
    VALIDATION_SPLIT,
    plot_train_and_validation,
    regularized_fit,
    standardized_iris,
)


def main(argv: list[str] | None = None) -> dict:
    args = _cli.parser(__doc__, __spec__.name).parse_args(argv)
    epochs = IRIS_EPOCHS  # the whole run takes about a second: `--quick` keeps it
    x, y = standardized_iris(args.seed)

    split = int(len(x) * (1 - VALIDATION_SPLIT))
    results = {}
    figure, axes = _cli.pyplot().subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, variant in zip(axes, ("plain", "early stopping")):
        model, history = regularized_fit(variant, x, y, epochs, args.seed)
        val_loss = model.evaluate(x[split:], y[split:], verbose=0)[0]
        results[variant] = {"history": history.history, "final_val_loss": val_loss}
        plot_train_and_validation(ax, history, f"{variant} ({len(history.epoch)} epochs)")
        print(
            f"{variant:<15} trained {len(history.epoch):>3} epochs, lowest validation loss "
            f"{min(history.history['val_loss']):.4f}, validation loss of the final weights "
            f"{val_loss:.4f}"
        )
    _cli.save(figure, args.out, "early_stopping.png")
    return results


if __name__ == "__main__":
    _cli.run(main)
