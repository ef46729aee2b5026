"""Writes keras_multi_io.json: what Keras 3 computes for the models of tests/multi_io_models.py
from fixed initial weights: predictions, one SGD step's gradients on every sample, a fit's
history (with validation) and weights, and `evaluate` as a list and as a dict. Run it by hand
where `keras` and `tensorflow-cpu` are installed:

    python tests/golden/make_keras_multi_io_golden.py
"""

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from multi_io_models import CASES, OTHER_LENGTH, data  # noqa: E402

# Batches of equal size: on TensorFlow, Keras weights each batch of an output's running loss
# equally (its batch size is unknown in the traced step), other backends by samples, as pynn.
N, BATCH, EPOCHS, LEARNING_RATE, VALIDATION_SPLIT = 24, 6, 3, 0.01, 0.25


def plain(value):
    """Arrays (in lists or dicts) as JSON lists."""
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return np.asarray(value).tolist()


def run(name):
    build, loss, loss_weights, metrics = CASES[name]
    rng = np.random.default_rng(11)
    model = build(keras)
    weights = [rng.uniform(-0.5, 0.5, size=w.shape).astype("float32") for w in model.get_weights()]
    model.set_weights(weights)
    x, y = data(name, model, rng, N)
    predictions = model.predict(x, verbose=0)

    def compiled(optimizer):
        model.set_weights(weights)
        model.compile(optimizer, loss=loss, loss_weights=loss_weights, metrics=metrics)

    compiled(keras.optimizers.SGD(learning_rate=1.0))
    model.train_on_batch(x, y)
    gradients = [w0 - w1 for w0, w1 in zip(weights, model.get_weights())]
    compiled(keras.optimizers.Adam(learning_rate=LEARNING_RATE))
    history = model.fit(
        x,
        y,
        batch_size=BATCH,
        epochs=EPOCHS,
        shuffle=False,
        verbose=0,
        validation_split=VALIDATION_SPLIT,
    )
    other = {}
    if any(None in tuple(t.shape)[1:] for t in model.inputs):
        other_x, _ = data(name, model, rng, 5, OTHER_LENGTH)
        other = {"x": plain(other_x), "predictions": plain(model.predict(other_x, verbose=0))}
    return {
        "other_length": other,
        "layers": [layer.name for layer in model.layers],
        "output_names": model.output_names,
        "initial_weights": plain(weights),
        "x": plain(x),
        "y": plain(y),
        "predictions": plain(predictions),
        "gradients": plain(gradients),
        "history": history.history,
        "weights": plain(model.get_weights()),
        "evaluate": model.evaluate(x, y, verbose=0),
        "evaluate_dict": model.evaluate(x, y, verbose=0, return_dict=True),
        "metrics_names": model.metrics_names,
    }


if __name__ == "__main__":
    out = {
        "keras_version": keras.__version__,
        "settings": {
            "n": N,
            "batch_size": BATCH,
            "epochs": EPOCHS,
            "learning_rate": LEARNING_RATE,
            "validation_split": VALIDATION_SPLIT,
        },
        "cases": {name: run(name) for name in CASES},
    }
    path = Path(__file__).with_name("keras_multi_io.json")
    path.write_text(json.dumps(out))
    print(f"wrote {path}")
