"""Layers (`keras.layers`): one module per family."""

from pynn.layers.core import Input, InputLayer, KerasTensor
from pynn.layers.dense import Dense
from pynn.layers.layer import Layer

__all__ = ["Dense", "Input", "InputLayer", "KerasTensor", "Layer"]
