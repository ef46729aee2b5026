"""Weight initializers (`keras.initializers`), with Keras 3's formulas.

An unseeded initializer draws its seed from Python's `random` when created, as Keras does, so
`pynn.utils.set_random_seed` makes initial weights reproducible.
"""

from __future__ import annotations

from typing import Any

from pynn import _checks
from pynn._custom import refuse_custom
from pynn._naming import to_snake_case
from pynn._random import draw_seed


class Initializer:
    """Base class. `kind` names the engine's initializer; `_options()` are its arguments."""

    kind = ""

    def _options(self) -> dict[str, Any]:
        return {}

    def spec(self) -> dict[str, Any]:
        """What the engine receives."""
        return {"kind": self.kind, **self._options()}

    def get_config(self) -> dict[str, Any]:
        """The constructor's arguments, as Keras's `get_config` returns them."""
        return self._options()

    @classmethod
    def from_config(cls, config):
        """Builds an object from what `get_config()` returned."""
        from pynn.saving.serialization import from_config

        return from_config(cls, config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class Zeros(Initializer):
    """Initializes with 0 (Keras's default for biases)."""

    kind = "zeros"


class Ones(Initializer):
    """Initializes with 1."""

    kind = "ones"


class Constant(Initializer):
    """Initializes every value with `value`."""

    kind = "constant"

    def __init__(self, value: float = 0.0):
        self.value = _checks.real(value, "value")

    def _options(self):
        return {"value": self.value}


class _Seeded(Initializer):
    """An initializer that draws random values: its seed, if not given, comes from Python's
    `random` when it is created."""

    def __init__(self, seed: int | None = None):
        seed = _checks.seed(seed)
        self._init_seed = seed
        self.seed = draw_seed() if seed is None else seed

    def spec(self):
        return {**super().spec(), "seed": self.seed}

    def get_config(self):
        return {**self._options(), "seed": self._init_seed}


class RandomNormal(_Seeded):
    """Samples from a normal distribution.

    Args:
        mean: the distribution's mean.
        stddev: its standard deviation.
        seed: an integer for reproducible values; by default drawn from Python's `random`
            (which `pynn.utils.set_random_seed` seeds).
    """

    kind = "random_normal"

    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None):
        super().__init__(seed)
        self.mean = _checks.real(mean, "mean")
        self.stddev = _checks.real(stddev, "stddev", low=0.0)

    def _options(self):
        return {"mean": self.mean, "stddev": self.stddev}


class TruncatedNormal(RandomNormal):
    """Normal samples redrawn until they lie within two standard deviations of the mean."""

    kind = "truncated_normal"


class RandomUniform(_Seeded):
    """Samples uniformly from `[minval, maxval)`; `seed` as for `RandomNormal`."""

    kind = "random_uniform"

    def __init__(self, minval: float = -0.05, maxval: float = 0.05, seed: int | None = None):
        super().__init__(seed)
        self.minval = _checks.real(minval, "minval")
        self.maxval = _checks.real(maxval, "maxval")

    def _options(self):
        return {"minval": self.minval, "maxval": self.maxval}


class VarianceScaling(_Seeded):
    """Samples with variance `scale / fan`, where fan is `fan_in`, `fan_out` or their mean."""

    kind = "variance_scaling"
    _MODES = ("fan_in", "fan_out", "fan_avg")
    _DISTRIBUTIONS = ("uniform", "truncated_normal", "untruncated_normal")

    def __init__(
        self,
        scale: float = 1.0,
        mode: str = "fan_in",
        distribution: str = "truncated_normal",
        seed: int | None = None,
        input_axes=None,
        output_axes=None,
    ):
        super().__init__(seed)
        _checks.refuse_unless_default(self, input_axes=input_axes, output_axes=output_axes)
        scale = _checks.real(scale, "scale", low=0.0, low_open=True)
        if mode not in self._MODES:
            raise ValueError(f"Invalid `mode` argument: {mode!r}. Expected one of {self._MODES}.")
        distribution = distribution.lower()
        if distribution == "normal":
            distribution = "truncated_normal"
        if distribution not in self._DISTRIBUTIONS:
            raise ValueError(
                f"Invalid `distribution` argument: {distribution!r}. "
                f"Expected one of {self._DISTRIBUTIONS}."
            )
        self.scale, self.mode, self.distribution = float(scale), mode, distribution

    def _options(self):
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution}


def _preset(name: str, scale: float, mode: str, distribution: str) -> type:
    def __init__(self, seed: int | None = None, input_axes=None, output_axes=None):
        VarianceScaling.__init__(self, scale, mode, distribution, seed, input_axes, output_axes)

    def get_config(self):
        """`{"seed": ...}`: the scale, mode and distribution are the class's own."""
        return {"seed": self._init_seed}

    doc = (
        f"`VarianceScaling(scale={scale}, mode={mode!r}, distribution={distribution!r})`; "
        "`seed` as for `RandomNormal`."
    )
    namespace = {"__init__": __init__, "get_config": get_config, "__doc__": doc}
    return type(name, (VarianceScaling,), namespace)


GlorotUniform = _preset("GlorotUniform", 1.0, "fan_avg", "uniform")
GlorotNormal = _preset("GlorotNormal", 1.0, "fan_avg", "truncated_normal")
HeUniform = _preset("HeUniform", 2.0, "fan_in", "uniform")
HeNormal = _preset("HeNormal", 2.0, "fan_in", "truncated_normal")
LecunUniform = _preset("LecunUniform", 1.0, "fan_in", "uniform")
LecunNormal = _preset("LecunNormal", 1.0, "fan_in", "truncated_normal")

_CLASSES = [
    Zeros,
    Ones,
    Constant,
    RandomNormal,
    RandomUniform,
    TruncatedNormal,
    VarianceScaling,
    GlorotUniform,
    GlorotNormal,
    HeUniform,
    HeNormal,
    LecunUniform,
    LecunNormal,
]
_BY_NAME = {cls.__name__: cls for cls in _CLASSES}
_BY_NAME.update({to_snake_case(cls.__name__): cls for cls in _CLASSES})

zeros, ones, constant = Zeros, Ones, Constant
random_normal, random_uniform, truncated_normal = RandomNormal, RandomUniform, TruncatedNormal
glorot_uniform, glorot_normal = GlorotUniform, GlorotNormal
he_uniform, he_normal, lecun_uniform, lecun_normal = HeUniform, HeNormal, LecunUniform, LecunNormal


def get(identifier) -> Initializer:
    """Resolves an initializer given as a name (`"glorot_uniform"` or `"GlorotUniform"`), a class,
    or an instance."""
    if isinstance(identifier, Initializer):
        refuse_custom(identifier, "initializer")
        return identifier
    if isinstance(identifier, dict):
        from pynn.saving.serialization import deserialize

        return deserialize(identifier, "pynn.initializers")
    if isinstance(identifier, type) and issubclass(identifier, Initializer):
        return get(identifier())
    if isinstance(identifier, str) and identifier in _BY_NAME:
        return _BY_NAME[identifier]()
    valid = ", ".join(sorted(name for name in _BY_NAME if name.islower()))
    raise ValueError(f"Could not interpret initializer identifier: {identifier!r}. Valid: {valid}.")
