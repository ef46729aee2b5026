"""Saving and loading (`keras.saving`): model files, weight files and configs."""

from pynn.saving.model_file import load_model, load_weights, save_model, save_weights
from pynn.saving.serialization import deserialize, serialize

__all__ = [
    "deserialize",
    "load_model",
    "load_weights",
    "save_model",
    "save_weights",
    "serialize",
]
