"""Seeds for the engine, drawn from Python's `random` as Keras draws them, so that
`pynn.utils.set_random_seed` makes initial weights and shuffling reproducible."""

import random


def draw_seed() -> int:
    return random.randint(1, 10**9)
