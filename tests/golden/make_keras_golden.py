"""Writes keras_fit.json: what Keras 3 computes for small fits from fixed initial weights.

Run it by hand in an environment with `keras` and `tensorflow-cpu` (never needed by the tests):

    python tests/golden/make_keras_golden.py
"""

import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

CASES = {
    "cce_adam": dict(
        hidden="relu",
        units=3,
        out="softmax",
        loss="categorical_crossentropy",
        optimizer=("Adam", {"learning_rate": 0.01}),
        metrics=["accuracy"],
    ),
    "bce_sgd_nesterov": dict(
        hidden="tanh",
        units=1,
        out="sigmoid",
        loss="binary_crossentropy",
        optimizer=("SGD", {"learning_rate": 0.1, "momentum": 0.9, "nesterov": True}),
        metrics=["accuracy"],
    ),
    "mse_rmsprop": dict(
        hidden="elu",
        units=2,
        out="linear",
        loss="mse",
        optimizer=("RMSprop", {"learning_rate": 0.01, "momentum": 0.5, "centered": True}),
        metrics=["mae"],
    ),
    "scce_adagrad": dict(
        hidden="gelu",
        units=3,
        out="softmax",
        loss="sparse_categorical_crossentropy",
        optimizer=("Adagrad", {"learning_rate": 0.1}),
        metrics=["accuracy"],
    ),
    "cce_amsgrad_sgd_plain": dict(
        hidden="silu",
        units=3,
        out="softmax",
        loss="categorical_crossentropy",
        optimizer=("Adam", {"learning_rate": 0.02, "amsgrad": True}),
        metrics=["categorical_accuracy"],
    ),
    "mae_sgd": dict(
        hidden="selu",
        units=2,
        out="linear",
        loss="mae",
        optimizer=("SGD", {"learning_rate": 0.05}),
        metrics=["mse"],
    ),
    "penalties_validation_split": dict(
        hidden="relu",
        units=3,
        out="softmax",
        loss="categorical_crossentropy",
        optimizer=("Adam", {"learning_rate": 0.01}),
        metrics=["accuracy"],
        hidden_regularizers={
            "kernel_regularizer": ("L2", 0.01),
            "bias_regularizer": ("L1", 0.02),
            "activity_regularizer": ("L2", 0.001),
        },
        output_regularizers={"kernel_regularizer": ("L1L2", 0.003)},
        validation_split=0.3,
    ),
}
N, FEATURES, HIDDEN, BATCH, EPOCHS = 23, 4, 8, 5, 4


def data(case):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(N, FEATURES)).astype("float32")
    classes = rng.integers(0, 3, size=N)
    if case["loss"] == "categorical_crossentropy":
        y = np.eye(3, dtype="float32")[classes]
    elif case["loss"] == "sparse_categorical_crossentropy":
        y = classes.astype("float32")
    elif case["units"] == 1:
        y = (classes == 1).astype("float32").reshape(-1, 1)
    else:
        y = rng.normal(size=(N, case["units"])).astype("float32")
    weights = [
        rng.uniform(-0.6, 0.6, size=(FEATURES, HIDDEN)).astype("float32"),
        rng.uniform(-0.1, 0.1, size=(HIDDEN,)).astype("float32"),
        rng.uniform(-0.6, 0.6, size=(HIDDEN, case["units"])).astype("float32"),
        rng.uniform(-0.1, 0.1, size=(case["units"],)).astype("float32"),
    ]
    return x, y, weights


def regularizers(spec):
    """{"kernel_regularizer": ("L2", 0.01)} -> {"kernel_regularizer": L2(0.01)}; L1L2 gets the
    factor as both l1 and l2."""
    made = {}
    for argument, (name, factor) in spec.items():
        cls = getattr(keras.regularizers, name)
        made[argument] = cls(factor, factor) if name == "L1L2" else cls(factor)
    return made


def run(case):
    x, y, weights = data(case)
    model = keras.Sequential(
        [
            keras.Input(shape=(FEATURES,)),
            keras.layers.Dense(
                HIDDEN,
                activation=case["hidden"],
                **regularizers(case.get("hidden_regularizers", {})),
            ),
            keras.layers.Dense(
                case["units"],
                activation=case["out"],
                **regularizers(case.get("output_regularizers", {})),
            ),
        ]
    )
    model.set_weights(weights)
    name, kwargs = case["optimizer"]
    model.compile(
        loss=case["loss"],
        optimizer=getattr(keras.optimizers, name)(**kwargs),
        metrics=case["metrics"],
    )
    history = model.fit(
        x,
        y,
        batch_size=BATCH,
        epochs=EPOCHS,
        shuffle=False,
        verbose=0,
        validation_split=case.get("validation_split", 0.0),
    )
    return {
        "case": case,
        "x": x.tolist(),
        "y": y.tolist(),
        "initial_weights": [w.tolist() for w in weights],
        "history": history.history,
        "final_weights": [w.tolist() for w in model.get_weights()],
        "evaluate": model.evaluate(x, y, batch_size=BATCH, verbose=0, return_dict=True),
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
    out = Path(__file__).with_name("keras_fit.json")
    out.write_text(json.dumps(golden, indent=1))
    print(f"wrote {out}")
