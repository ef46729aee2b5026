"""Writes keras_activations.json: each activation's value and derivative as Keras 3 on
TensorFlow computes them, at points that include 0, where a piecewise function's derivative is
whichever branch TensorFlow's gradient kernel picks.

Run it by hand in an environment with `keras` and `tensorflow-cpu` (never needed by the tests):

    python tests/golden/make_keras_activation_golden.py
"""

import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

NAMES = [
    "linear",
    "relu",
    "sigmoid",
    "tanh",
    "elu",
    "selu",
    "gelu",
    "softplus",
    "leaky_relu",
    "silu",
]
POINTS = [-30.0, -3.0, -1.0, -1e-3, -1e-30, -0.0, 0.0, 1e-30, 1e-3, 0.5, 1.0, 3.0, 30.0]


def main() -> None:
    x = tf.constant(np.array(POINTS, np.float32))
    cases = {}
    for name in NAMES:
        function = keras.activations.get(name)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = function(x)
        slope = tape.gradient(y, x)
        cases[name] = {
            "value": [float(v) for v in y.numpy()],
            "derivative": [float(v) for v in slope.numpy()],
        }
    golden = {
        "keras_version": keras.__version__,
        "backend": keras.backend.backend(),
        "points": POINTS,
        "cases": cases,
    }
    path = Path(__file__).with_name("keras_activations.json")
    path.write_text(json.dumps(golden, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
