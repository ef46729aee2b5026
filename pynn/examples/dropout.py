"""Section 5.3 of the textbook, "DropOut": `Dropout(rate=0.3)` before each Dense layer of the
iris network. The exercise's observation: the validation loss sits below the training loss on
most epochs, because the training loss is measured with 30 % of the neurons switched off while
validation uses the whole network.

    python -m pynn.examples.dropout [--quick] [--out DIR] [--seed S]

Writes `dropout.png`: training and validation loss with dropout.
"""

from __future__ import annotations

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

    _, history = regularized_fit("dropout", x, y, epochs, args.seed)
    losses = history.history
    below = sum(v < t for v, t in zip(losses["val_loss"], losses["loss"]))
    print(f"dropout 0.3: validation loss below training loss on {below} of {epochs} epochs")

    figure, ax = _cli.pyplot().subplots(figsize=(6, 4))
    plot_train_and_validation(ax, history, "Dropout(0.3) before each Dense layer")
    _cli.save(figure, args.out, "dropout.png")
    return {"history": losses, "epochs_below": below}


if __name__ == "__main__":
    _cli.run(main)
