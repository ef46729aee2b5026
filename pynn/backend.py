"""The parts of `keras.backend` that Keras code calls."""

from pynn._naming import reset as _reset_names
from pynn.config import epsilon, floatx, image_data_format

__all__ = ["clear_session", "epsilon", "floatx", "image_data_format"]


def clear_session() -> None:
    """Resets automatic layer and model names, so the next model's layers are `dense`, ... again."""
    _reset_names()
