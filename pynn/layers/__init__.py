"""Layers (`keras.layers`): one module per family."""

from pynn.layers.core import Input, InputLayer, KerasTensor
from pynn.layers.dense import Dense
from pynn.layers.dropout import Dropout
from pynn.layers.layer import Layer

__all__ = ["Dense", "Dropout", "Input", "InputLayer", "KerasTensor", "Layer"]
