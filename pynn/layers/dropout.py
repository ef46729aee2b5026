"""`Dropout`: switches off a random fraction of its inputs while training."""

from __future__ import annotations

from pynn import _checks
from pynn._random import draw_seed
from pynn.layers.layer import Layer


class Dropout(Layer):
    """Inverted dropout: in training, each value is set to 0 with probability `rate` and the
    others are scaled by `1 / (1 - rate)`, so the expected sum is unchanged; in `evaluate` and
    `predict` the layer is the identity.

    Args:
        rate: the fraction of values to drop, in [0, 1).
        noise_shape: the mask's shape, batch axis first, e.g. `(None, 1, features)` to drop the
            same features at every timestep; `None` entries take the input's size.
        seed: the seed of the layer's masks; by default drawn from Python's `random`, so
            `pynn.utils.set_random_seed` reproduces them.
    """

    _training_dependent = True

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        if not _checks.is_real(rate) or not 0 <= rate < 1:
            raise ValueError(
                "Invalid value received for argument `rate`. Expected a float value in [0, 1). "
                f"Received: rate={rate!r}"
            )
        seed = _checks.seed(seed)
        super().__init__(**kwargs)
        self.rate = float(rate)
        self.noise_shape = _noise_shape(noise_shape)
        self.seed = seed
        self._mask_seed = draw_seed() if seed is None else seed

    def _noise_spec(self) -> list[int] | None:
        """The mask's shape for the engine, batch first; 0 stands for `None` (the input's size),
        and a batch entry other than 1 draws one mask per sample."""
        if self.noise_shape is None:
            return None
        batch, *rest = self.noise_shape
        return [1 if batch == 1 else 0] + [0 if n is None else int(n) for n in rest]

    def spec(self):
        return {
            "kind": "dropout",
            "rate": self.rate,
            "noise_shape": self._noise_spec(),
            "seed": self._mask_seed,
        }

    def get_config(self):
        return {
            **super().get_config(),
            "rate": self.rate,
            "noise_shape": self.noise_shape,
            # The seed in use, drawn or given: a model rebuilt from this config (a loaded
            # file) draws the same masks.
            "seed": self._mask_seed,
        }


def _noise_shape(noise_shape) -> tuple | None:
    """`noise_shape` as a tuple of positive sizes or `None`s, batch axis first."""
    if noise_shape is None:
        return None
    try:
        shape = tuple(noise_shape)
    except TypeError:
        shape = None
    if not shape or not all(
        n is None or (_checks.is_integer(n) and 0 < n <= _checks.MAX_SIZE) for n in shape
    ):
        raise ValueError(
            "`noise_shape` must be a tuple of positive integers or None, batch axis first, "
            f"e.g. (None, 1, features). Received: noise_shape={noise_shape!r}"
        )
    return tuple(None if n is None else int(n) for n in shape)
