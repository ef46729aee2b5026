"""What `compile` receives, taken per model output as Keras takes it
(`keras/src/trainers/compile_utils.py`): a loss for every output, a list of one per output or a
dict by output name; `loss_weights` likewise; metrics as a list (one output) or as a list per
output or a dict (several outputs). Resolved against the data's shapes at the first
`fit`/`evaluate` into what the engine computes."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from pynn import losses as losses_module
from pynn import metrics as metrics_module


@dataclass
class Output:
    """One model output as compiled: its name, loss and metric identifiers and loss weight;
    `loss` and `metrics` are the objects resolved for the data's shapes."""

    name: str
    loss_id: object
    weight: float
    metric_ids: list
    loss: object = None
    metrics: list = field(default_factory=list)

    def spec(self) -> dict:
        """What the engine computes for this output."""
        return {
            "loss": None if self.loss is None else self.loss.spec(),
            "weight": self.weight,
            "metrics": [m.spec() for m in self.metrics],
        }


def outputs(loss, loss_weights, metrics, names: list[str]) -> list[Output]:
    """Each output's loss, weight and metrics from `compile`'s arguments, checked: names and
    classes are looked up now, so that a typo fails at `compile`."""
    structured = (list, tuple, dict)
    if not isinstance(loss, structured) and isinstance(loss_weights, structured):
        if len(loss_weights) != 1:
            raise ValueError(
                "`loss_weights` must match the number of losses, got 1 losses and "
                f"{len(loss_weights)} weights."
            )
    losses = _losses(loss, names)
    weights = _weights(loss_weights, names)
    metric_lists = _metrics(metrics, names)
    for loss_id in losses:
        if loss_id is not None:
            losses_module.get(loss_id, y_shape=(1, 1), output_shape=(1,))
    for metric_list in metric_lists:
        for metric in metric_list:
            metrics_module.get(metric, y_shape=(1, 1), output_shape=(1,))
    return [Output(*args) for args in zip(names, losses, weights, metric_lists)]


def _by_name(value: dict, names: list[str], argument: str) -> None:
    unknown = [key for key in value if key not in names]
    if unknown:
        raise ValueError(
            f"Expected keys {names} in {argument} dict, but found "
            f"{argument}.keys()={list(value.keys())}"
        )


def _losses(loss, names: list[str]) -> list:
    if isinstance(loss, dict):
        _by_name(loss, names, "loss")
        return [loss.get(name) for name in names]
    if isinstance(loss, (list, tuple)):
        if len(loss) != len(names):
            raise ValueError(
                f"`loss` has {len(loss)} entries, but the model has {len(names)} outputs "
                f"({names}): give one loss for all of them, one per output, or a dict by "
                "output name."
            )
        return list(loss)
    return [loss] * len(names)


def _weights(loss_weights, names: list[str]) -> list[float]:
    if loss_weights is None:
        weights = [1.0] * len(names)
    elif isinstance(loss_weights, dict):
        _by_name(loss_weights, names, "loss_weights")
        weights = [loss_weights.get(name, 1.0) for name in names]
    elif isinstance(loss_weights, (list, tuple)):
        if len(loss_weights) != len(names):
            raise ValueError(
                f"`loss_weights` must match the number of losses, got {len(names)} losses "
                f"and {len(loss_weights)} weights."
            )
        weights = list(loss_weights)
    else:
        weights = [loss_weights] * len(names)
    for weight in weights:
        if (
            isinstance(weight, bool)
            or not isinstance(weight, (int, float, np.number))
            or not math.isfinite(weight)
            or weight < 0
        ):
            raise ValueError(
                "`loss_weights` must be finite numbers >= 0. "
                f"Received: loss_weights={loss_weights!r}"
            )
    return [float(w) for w in weights]


def _metric_list(value) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _metrics(metrics, names: list[str]) -> list[list]:
    if metrics is None:
        return [[] for _ in names]
    if isinstance(metrics, dict):
        _by_name(metrics, names, "metrics")
        return [_metric_list(metrics.get(name)) for name in names]
    if not isinstance(metrics, (list, tuple)):
        raise TypeError(
            "Expected `metrics` argument to be a list, tuple, or dict. "
            f"Received instead: metrics={metrics!r} of type {type(metrics)}"
        )
    if len(names) == 1:
        return [list(metrics)]
    if len(metrics) == len(names):
        return [_metric_list(m) for m in metrics]
    raise ValueError(
        "Invalid `metrics`. `metrics` should contain metrics objects and either be a dict or a "
        f"list matching the output names of the functional model {names} or match the output "
        f"structure of the model: {['X'] * len(names)}.\nReceived: metrics={metrics}"
    )


def log_names(compiled: list[Output]) -> tuple[list[str], list[str]]:
    """The logs' keys besides `loss`, in the engine's order: each output's own loss (where
    more than one output has a loss) and each metric, named by its output where there are
    several (`<output>_loss`, `<output>_<metric>`)."""
    with_loss = [o for o in compiled if o.loss is not None]
    loss_names = [f"{o.name}_loss" for o in with_loss] if len(with_loss) > 1 else []
    several = len(compiled) > 1
    metric_names = [
        f"{o.name}_{m.name}" if several else m.name for o in compiled for m in o.metrics
    ]
    return loss_names, metric_names


def output_loss_names(compiled: list[Output], loss_order: list[str] | None) -> list[str]:
    """The names of the outputs' own losses (see `log_names`) in Keras's order: the outputs'
    order, or `loss_order` (the keys of a loss dict for a model whose outputs are a dict)."""
    loss_names, _ = log_names(compiled)
    if loss_order is not None and loss_names:
        return [f"{name}_loss" for name in loss_order]
    return loss_names


def in_keras_order(
    logs: dict[str, float], compiled: list[Output], loss_order: list[str] | None = None
) -> list[float]:
    """The values of `logs` as Keras's `evaluate` lists them: the loss, the metrics in compile
    order (one output), each output's loss (`output_loss_names`), then the rest by name."""
    loss_names = output_loss_names(compiled, loss_order)
    first = ["loss"]
    if len(compiled) == 1:
        first += [m.name for m in compiled[0].metrics]
    first += loss_names
    first = [name for name in first if name in logs]
    rest = sorted(name for name in logs if name not in first)
    return [logs[name] for name in first + rest]
