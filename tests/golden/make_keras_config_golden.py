"""Writes keras_configs.json: configs as Keras 3 writes them, for pynn to read: each layer type
pynn has (default arguments but the required ones), and a Sequential's `to_json()` with its
parameter count. Run it by hand where `keras` and `tensorflow-cpu` are installed:

    python tests/golden/make_keras_config_golden.py
"""

import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402

L = keras.layers


def main() -> None:
    layers = [
        L.InputLayer(shape=(3,)),
        L.Dense(2),
        L.Dropout(0.2),
        L.Conv1D(2, 3),
        L.Conv2D(2, 3, strides=2, padding="same", activation="relu"),
        L.MaxPooling1D(),
        L.MaxPooling2D(),
        L.AveragePooling1D(2),
        L.AveragePooling2D(2),
        L.GlobalAveragePooling1D(),
        L.GlobalAveragePooling2D(),
        L.GlobalMaxPooling1D(),
        L.GlobalMaxPooling2D(),
        L.Flatten(),
        L.Reshape((3, 1)),
        L.Activation("relu"),
        L.Add(),
        L.Subtract(),
        L.Multiply(),
        L.Average(),
        L.Maximum(),
        L.Minimum(),
        L.Concatenate(),
        L.Dot(axes=1, normalize=True),
    ]
    model = keras.Sequential(
        [
            keras.Input((12, 12, 1)),
            L.Conv2D(4, 3, activation="relu", kernel_regularizer="l2"),
            L.MaxPooling2D(2),
            L.Dropout(0.25),
            L.Flatten(),
            L.Dense(5, activation="softmax", kernel_initializer="he_normal"),
        ],
        name="keras_written",
    )
    golden = {
        "keras_version": keras.__version__,
        "layers": [
            {"class_name": type(layer).__name__, "config": layer.get_config()} for layer in layers
        ],
        "sequential": model.to_json(),
        "sequential_params": model.count_params(),
    }
    path = Path(__file__).with_name("keras_configs.json")
    path.write_text(json.dumps(golden, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
