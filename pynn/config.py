"""Global settings: engine threads and Keras's backend constants."""

from __future__ import annotations

from pynn import _core


def set_num_threads(n: int) -> None:
    """Sets how many CPU threads training uses; `0` means all cores.

    The default is all cores, or the `PYNN_NUM_THREADS` environment variable when set. Results are
    bit-identical for a given seed whatever the number of threads.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"`n` must be an integer >= 0 (0 means all cores). Received: n={n!r}")
    _core.set_num_threads(n)


def get_num_threads() -> int:
    """How many CPU threads training uses."""
    return _core.get_num_threads()


def epsilon() -> float:
    """The fuzz factor used by losses, as `keras.config.epsilon()`."""
    return 1e-7


def floatx() -> str:
    """The float type of weights and computations: always `"float32"`."""
    return "float32"


def image_data_format() -> str:
    """The layout of images: always `"channels_last"` (`(height, width, channels)`)."""
    return "channels_last"


def backend() -> str:
    """The name of the engine computing: `"pynn"`."""
    return "pynn"
