"""Writes keras_functional.json: what Keras 3 computes for the functional models of
tests/functional_models.py from fixed initial weights: the layer order, the first predictions,
a fit's history and the weights it ends with (the same fit with a frozen part, then unfrozen).
Run it by hand where `keras` and `tensorflow-cpu` are installed:

    python tests/golden/make_keras_functional_golden.py
"""

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from functional_models import BUILDERS  # noqa: E402

N, BATCH, EPOCHS = 24, 8, 3
#: Per model: the loss, and the layers frozen for the first fit (then unfrozen for a second).
SETTINGS = {
    "residual_cnn": ("sparse_categorical_crossentropy", ["stem"]),
    "merges": ("mse", ["a"]),
    "shared_layer": ("mse", []),
    "nested": ("sparse_categorical_crossentropy", ["encoder"]),
}


def data(model, rng):
    x = rng.normal(size=(N,) + model.input_shape[1:]).astype("float32")
    width = model.output_shape[-1]
    if SETTINGS[model.name][0] == "mse":
        return x, rng.normal(size=(N, width)).astype("float32")
    return x, rng.integers(0, width, size=N).astype("int64")


def fit(model, x, y, loss):
    model.compile(loss=loss, optimizer=keras.optimizers.Adam(learning_rate=0.01))
    history = model.fit(x, y, batch_size=BATCH, epochs=EPOCHS, shuffle=False, verbose=0)
    return history.history["loss"]


def run(name):
    rng = np.random.default_rng(5)
    model = BUILDERS[name](keras)
    weights = [rng.uniform(-0.5, 0.5, size=w.shape).astype("float32") for w in model.get_weights()]
    model.set_weights(weights)
    x, y = data(model, rng)
    loss, frozen = SETTINGS[name]
    result = {
        "layers": [layer.name for layer in model.layers],
        "weight_shapes": [list(w.shape) for w in weights],
        "initial_weights": [w.tolist() for w in weights],
        "x": x.tolist(),
        "y": y.tolist(),
        "predictions": model.predict(x, verbose=0).tolist(),
        "history": fit(model, x, y, loss),
        "weights": [w.tolist() for w in model.get_weights()],
    }
    if frozen:
        model.set_weights(weights)
        for layer_name in frozen:
            model.get_layer(layer_name).trainable = False
        result["frozen_history"] = fit(model, x, y, loss)
        result["frozen_weights"] = [w.tolist() for w in model.get_weights()]
        for layer_name in frozen:
            model.get_layer(layer_name).trainable = True
        result["unfrozen_history"] = fit(model, x, y, loss)
        result["unfrozen_weights"] = [w.tolist() for w in model.get_weights()]
    return result


if __name__ == "__main__":
    out = {
        "keras_version": keras.__version__,
        "settings": {"n": N, "batch_size": BATCH, "epochs": EPOCHS, "learning_rate": 0.01},
        "models": {name: run(name) for name in BUILDERS},
    }
    path = Path(__file__).with_name("keras_functional.json")
    path.write_text(json.dumps(out))
    print(f"wrote {path}")
