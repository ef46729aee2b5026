"""Optimizers (`keras.optimizers`) with Keras 3's defaults, argument checks and update equations.

The engine applies the updates; these classes hold the configuration and report the state Keras
reports (`iterations`, `learning_rate`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pynn import _checks
from pynn._custom import refuse_custom


def _check_learning_rate(learning_rate) -> float:
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, float):
        raise ValueError(
            "Argument `learning_rate` should be float, or an instance of LearningRateSchedule, "
            f"or a callable (that takes in the current iteration value and returns the "
            f"corresponding learning rate value). Received instead: learning_rate={learning_rate!r}"
        )
    return _checks.real(learning_rate, "learning_rate", low=0.0)


def _check_fraction(name: str, value, why: str = "") -> float:
    """A hyperparameter in [0, 1], or in [0, 1) when `why` says what 1 would do."""
    return _checks.real(value, name, low=0.0, high=1.0, high_open=bool(why), why=why)


def _check_epsilon(epsilon) -> float:
    return _checks.real(
        epsilon, "epsilon", low=0.0, low_open=True, why="With 0, a zero gradient divides 0 by 0."
    )


class Optimizer:
    """Base class. `kind` names the engine's optimizer; `_options()` are its hyperparameters."""

    kind = ""
    #: Iterations read from a model file, until the engine receives the saved state.
    _restored_iterations = 0

    def __init__(self, learning_rate: float, name: str | None = None):
        self._engine = None
        self.learning_rate = _check_learning_rate(learning_rate)
        self.name = name or type(self).__name__.lower()

    @property
    def learning_rate(self) -> float:
        """The learning rate, held as float32 as Keras holds it. Setting it takes effect from
        the next step, also in the middle of `fit` (schedules and callbacks do this)."""
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value) -> None:
        if isinstance(value, (int, np.floating)) and not isinstance(value, bool):
            value = float(value)
        self._learning_rate = float(np.float32(_check_learning_rate(value)))
        if self._engine is not None:
            self._engine.set_learning_rate(self._learning_rate)

    @property
    def iterations(self) -> int:
        """How many updates have been applied (by this model, or before it was saved)."""
        return self._restored_iterations if self._engine is None else self._engine.iterations()

    def _options(self) -> dict[str, Any]:
        return {}

    def spec(self) -> dict[str, Any]:
        """What the engine receives."""
        return {"kind": self.kind, "learning_rate": self.learning_rate, **self._options()}

    def get_config(self) -> dict[str, Any]:
        """The constructor's arguments, from which `from_config` rebuilds the object."""
        return {"name": self.name, "learning_rate": self.learning_rate, **self._options()}

    @classmethod
    def from_config(cls, config):
        """Builds an object from what `get_config()` returned."""
        from pynn.saving.serialization import from_config

        return from_config(cls, config)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} learning_rate={self.learning_rate}>"


class SGD(Optimizer):
    """Gradient descent with optional momentum: `m = momentum*m - lr*g`, then `w += m`, or
    `w += momentum*m - lr*g` with `nesterov=True`. Without momentum, `w -= lr*g`."""

    kind = "sgd"

    def __init__(
        self,
        learning_rate: float = 0.01,
        momentum: float = 0.0,
        nesterov: bool = False,
        name: str = "SGD",
    ):
        super().__init__(learning_rate, name)
        if isinstance(momentum, bool) or not isinstance(momentum, float):
            raise ValueError(f"`momentum` must be a float between [0, 1]. Received: {momentum!r}")
        self.momentum, self.nesterov = _check_fraction("momentum", momentum), bool(nesterov)

    def _options(self):
        return {"momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    """Adam in Keras's form: `alpha = lr*sqrt(1-beta_2^t)/(1-beta_1^t)`, `m += (g-m)(1-beta_1)`,
    `v += (g^2-v)(1-beta_2)`, `w -= m*alpha/(sqrt(v)+epsilon)`; `amsgrad` uses `max(v)`."""

    kind = "adam"

    def __init__(
        self,
        learning_rate: float = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        amsgrad: bool = False,
        name: str = "adam",
    ):
        super().__init__(learning_rate, name)
        self.beta_1 = _check_fraction(
            "beta_1", beta_1, "With 1, the bias correction divides by 1 - beta_1**t = 0."
        )
        self.beta_2 = _check_fraction(
            "beta_2", beta_2, "With 1, every step is zero: its size has sqrt(1 - beta_2**t) = 0."
        )
        self.epsilon, self.amsgrad = _check_epsilon(epsilon), bool(amsgrad)

    def _options(self):
        return {
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
            "epsilon": self.epsilon,
            "amsgrad": self.amsgrad,
        }


class RMSprop(Optimizer):
    """`v = rho*v + (1-rho)*g^2`; `w -= lr*g/sqrt(v + epsilon)` (centered: `v - mean(g)^2`),
    through a momentum buffer when `momentum > 0`."""

    kind = "rmsprop"

    def __init__(
        self,
        learning_rate: float = 0.001,
        rho: float = 0.9,
        momentum: float = 0.0,
        epsilon: float = 1e-7,
        centered: bool = False,
        name: str = "rmsprop",
    ):
        super().__init__(learning_rate, name)
        self.rho = _check_fraction("rho", rho)
        self.momentum = _check_fraction("momentum", momentum)
        self.epsilon, self.centered = _check_epsilon(epsilon), bool(centered)

    def _options(self):
        return {
            "rho": self.rho,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "centered": self.centered,
        }


class Adagrad(Optimizer):
    """`acc += g^2`; `w -= lr*g/sqrt(acc + epsilon)`, with `acc` starting at
    `initial_accumulator_value`."""

    kind = "adagrad"

    def __init__(
        self,
        learning_rate: float = 0.001,
        initial_accumulator_value: float = 0.1,
        epsilon: float = 1e-7,
        name: str = "adagrad",
    ):
        super().__init__(learning_rate, name)
        self.initial_accumulator_value = _checks.real(
            initial_accumulator_value, "initial_accumulator_value", low=0.0
        )
        self.epsilon = _check_epsilon(epsilon)

    def _options(self):
        return {
            "initial_accumulator_value": self.initial_accumulator_value,
            "epsilon": self.epsilon,
        }


_BY_NAME = {cls.__name__.lower(): cls for cls in (SGD, Adam, RMSprop, Adagrad)}


def get(identifier) -> Optimizer:
    """Resolves an optimizer given as a name (case-insensitive, `"sgd"`, `"adam"`, `"rmsprop"`,
    `"adagrad"`), a class or an instance. A name builds the optimizer with its defaults."""
    if isinstance(identifier, Optimizer):
        refuse_custom(identifier, "optimizer")
        return identifier
    if isinstance(identifier, dict):
        from pynn.saving.serialization import deserialize

        return deserialize(identifier, "pynn.optimizers")
    if isinstance(identifier, type) and issubclass(identifier, Optimizer):
        return get(identifier())
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    raise ValueError(
        f"Could not interpret optimizer identifier: {identifier!r}. "
        f"Valid names: {', '.join(sorted(_BY_NAME))}."
    )
