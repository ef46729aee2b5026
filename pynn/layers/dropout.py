"""`Dropout`: switches off a random fraction of its inputs while training."""

from __future__ import annotations

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

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
            raise ValueError(
                "Invalid value received for argument `rate`. Expected a float value in [0, 1). "
                f"Received: rate={rate!r}"
            )
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise ValueError(f"`seed` must be an integer >= 0 or None. Received: seed={seed!r}")
        super().__init__(**kwargs)
        self.rate = float(rate)
        self.noise_shape = None if noise_shape is None else tuple(noise_shape)
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
