"""Section 4.2 (and 4.4) of the textbook, "A note on Adam": the iris network trained with plain
SGD and with Adam, whose momentum and per-parameter learning rates reach a low loss in far fewer
epochs; and with the chapter's `Adam(learning_rate=0.001, beta_1=0.9, beta_2=0.9)`, which it
warns is "not a very good idea".

    python -m pynn.examples.adam [--quick] [--out DIR] [--seed S]

Writes `adam.png`: the training loss per epoch of each optimizer.
"""

from __future__ import annotations

from pynn.examples import _cli
from pynn.examples._textbook import iris_network, standardized_iris
from pynn.optimizers import SGD, Adam
from pynn.utils import plot_history, set_random_seed

OPTIMIZERS = {
    "SGD(learning_rate=0.01)": lambda: SGD(learning_rate=0.01),
    "Adam()": lambda: Adam(),
    "Adam(beta_1=0.9, beta_2=0.9)": lambda: Adam(learning_rate=0.001, beta_1=0.9, beta_2=0.9),
}


def main(argv: list[str] | None = None) -> dict:
    args = _cli.parser(__doc__, __spec__.name).parse_args(argv)
    epochs = 10 if args.quick else 100
    x, y = standardized_iris(args.seed)

    histories = {}
    for name, optimizer in OPTIMIZERS.items():
        set_random_seed(args.seed)
        model = iris_network()
        model.compile(loss="categorical_crossentropy", optimizer=optimizer(), metrics=["accuracy"])
        histories[name] = model.fit(x, y, epochs=epochs, batch_size=30, verbose=0)
        final = histories[name].history
        print(
            f"{name:<30} final loss {final['loss'][-1]:.4f}, accuracy {final['accuracy'][-1]:.4f}"
        )

    figure, ax = _cli.pyplot().subplots(figsize=(6, 4))
    for name, history in histories.items():
        plot_history(history, ax=ax, label=name)
    ax.set_yscale("log")
    ax.set_title(f"Iris, batch 30, {epochs} epochs")
    _cli.save(figure, args.out, "adam.png")
    return {name: history.history for name, history in histories.items()}


if __name__ == "__main__":
    _cli.run(main)
