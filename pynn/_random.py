"""Seeds for the engine, drawn from Python's `random` as Keras draws them, so that
`pynn.utils.set_random_seed` makes initial weights and shuffling reproducible."""

import random

import numpy as np

from pynn import _core

_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


def draw_seed() -> int:
    return random.randint(1, 10**9)


def visiting_order(seed, n: int) -> np.ndarray:
    """The order in which an epoch with shuffle seed `seed` (None: no shuffling) visits `n`
    samples: the engine's own, for loops that run the batches from Python."""
    return np.arange(n) if seed is None else np.asarray(_core.shuffled_order(seed, n))


def epoch_seed(fit_seed: int, epoch: int) -> int:
    """The shuffle seed of epoch `epoch` of a fit that drew `fit_seed`. It depends on the epoch
    index, not on how many epochs ran before, so a fit resumed at an epoch shuffles as an
    uninterrupted one would."""
    return (fit_seed * _GOLDEN + epoch) & _MASK


def eager_stream(calls: int) -> int:
    """The mask stream of the `calls`-th call of a layer or model on arrays in training mode
    (`layer(x, training=True)`): apart from the streams of optimizer steps, which `fit` draws
    from, so that each such call draws its own masks and leaves training's unchanged."""
    return (1 << 63) | (calls & ((1 << 63) - 1))
