"""Saving and loading (`keras.saving`): model files, weight files and configs."""

from pynn.saving.model_file import load_model, load_weights, save_model, save_weights
from pynn.saving.serialization import (
    deserialize,
    deserialize_keras_object,
    serialize,
    serialize_keras_object,
)

__all__ = [
    "deserialize",
    "deserialize_keras_object",
    "load_model",
    "load_weights",
    "save_model",
    "save_weights",
    "serialize",
    "serialize_keras_object",
]
