"""Writes keras_conv_fit.json: what Keras 3 computes for small convolutional fits from fixed
initial weights. Run it by hand where `keras` and `tensorflow-cpu` are installed:

    python tests/golden/make_keras_conv_golden.py
"""

import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

# Each layer: [class name, positional args, keyword args]; the tests build the same in pynn.
CASES = {
    "conv2d_pools": {
        "input_shape": [9, 8, 2],
        "layers": [
            ["Conv2D", [3, 3], {"padding": "same", "activation": "relu"}],
            ["MaxPooling2D", [2], {"padding": "same"}],
            ["Conv2D", [4, [2, 3]], {"strides": [1, 2], "activation": "tanh"}],
            ["AveragePooling2D", [2], {"strides": 1, "padding": "same"}],
            ["Flatten", [], {}],
            ["Dense", [3], {"activation": "softmax"}],
        ],
        "loss": "categorical_crossentropy",
    },
    "conv1d_dilated_global": {
        "input_shape": [12, 3],
        "layers": [
            ["Conv1D", [4, 3], {"padding": "causal", "dilation_rate": 2, "activation": "elu"}],
            ["Conv1D", [5, 2], {"strides": 2, "padding": "same", "activation": "relu"}],
            ["GlobalAveragePooling1D", [], {}],
            ["Dense", [2], {"activation": "softmax"}],
        ],
        "loss": "categorical_crossentropy",
    },
}
N, BATCH, EPOCHS = 13, 4, 3


def run(case):
    rng = np.random.default_rng(11)
    model = keras.Sequential(
        [keras.Input(shape=case["input_shape"])]
        + [getattr(keras.layers, name)(*args, **kwargs) for name, args, kwargs in case["layers"]]
    )
    weights = [rng.uniform(-0.5, 0.5, size=w.shape).astype("float32") for w in model.get_weights()]
    model.set_weights(weights)
    x = rng.normal(size=[N] + case["input_shape"]).astype("float32")
    classes = model.output_shape[-1]
    y = np.eye(classes, dtype="float32")[rng.integers(0, classes, size=N)]
    model.compile(
        loss=case["loss"], optimizer=keras.optimizers.Adam(learning_rate=0.01), metrics=["accuracy"]
    )
    history = model.fit(x, y, batch_size=BATCH, epochs=EPOCHS, shuffle=False, verbose=0)
    return {
        "case": case,
        "x": x.tolist(),
        "y": y.tolist(),
        "initial_weights": [w.tolist() for w in weights],
        "history": history.history,
        "final_weights": [w.tolist() for w in model.get_weights()],
        "predict": model.predict(x, verbose=0).tolist(),
    }


if __name__ == "__main__":
    golden = {
        "keras_version": keras.__version__,
        "backend": keras.backend.backend(),
        "batch_size": BATCH,
        "epochs": EPOCHS,
        "cases": {name: run(case) for name, case in CASES.items()},
    }
    out = Path(__file__).with_name("keras_conv_fit.json")
    out.write_text(json.dumps(golden, indent=1))
    print(f"wrote {out}")
