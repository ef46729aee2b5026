"""Writes keras_logits.json: crossentropies on models whose output layer ends in a sigmoid or a
softmax, as Keras 3 on TensorFlow computes them: from the output layer's pre-activations (the
logits the activation attaches to its output), whatever crossentropy meets them, as a loss or
as a metric; and sparse categorical crossentropy on outputs that are not probabilities.

Run it by hand in an environment with `keras` and `tensorflow-cpu` (never needed by the tests):

    python tests/golden/make_keras_logits_golden.py
"""

import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

RNG = np.random.default_rng(7)
LOSS_CLASSES = {
    "binary_crossentropy": keras.losses.BinaryCrossentropy,
    "categorical_crossentropy": keras.losses.CategoricalCrossentropy,
    "sparse_categorical_crossentropy": keras.losses.SparseCategoricalCrossentropy,
}


def dense(units, activation, inputs, scale=1.0):
    kernel = (RNG.normal(size=(inputs, units)) * scale).astype(np.float32)
    bias = (RNG.normal(size=units) * 0.1).astype(np.float32)
    return {"kind": "dense", "units": units, "activation": activation}, [kernel, bias]


def conv1d(filters, size, activation, channels, scale=1.0):
    kernel = (RNG.normal(size=(size, channels, filters)) * scale).astype(np.float32)
    bias = (RNG.normal(size=filters) * 0.1).astype(np.float32)
    spec = {"kind": "conv1d", "filters": filters, "size": size, "activation": activation}
    return spec, [kernel, bias]


def one_hot(labels, classes):
    return np.eye(classes, dtype=np.float32)[labels]


def case(input_shape, layers, loss, metrics, x, y, optimizer=("SGD", 0.1), epochs=3):
    specs, weights = zip(*layers)
    return {
        "input_shape": list(input_shape),
        "layers": list(specs),
        "weights": [w.tolist() for ws in weights for w in ws],
        "loss": loss,
        "metrics": metrics,
        "optimizer": optimizer,
        "epochs": epochs,
        "x": x.tolist(),
        "y": y.tolist(),
    }


def cases():
    x4 = RNG.normal(size=(12, 4)).astype(np.float32)
    labels3 = RNG.integers(0, 3, 12)
    big = x4 * 40  # saturates the output layers
    seq = RNG.normal(size=(6, 5, 2)).astype(np.float32) * 8
    return {
        # The examples: a saturated sigmoid, a saturated softmax.
        "sigmoid_saturated_bce": case(
            (1,),
            [
                (
                    {"kind": "dense", "units": 1, "activation": "sigmoid"},
                    [np.ones((1, 1)), np.zeros(1)],
                )
            ],
            ("binary_crossentropy", {}),
            ["binary_crossentropy", "accuracy"],
            np.array([[30.0], [-5.0]], np.float32),
            np.array([[0.0], [1.0]], np.float32),
        ),
        "softmax_saturated_cce": case(
            (1,),
            [
                (
                    {"kind": "dense", "units": 2, "activation": "softmax"},
                    [np.array([[1.0, -1.0]]), np.zeros(2)],
                )
            ],
            ("categorical_crossentropy", {}),
            ["accuracy"],
            np.array([[90.0], [3.0]], np.float32),
            np.array([[0.0, 1.0], [0.0, 1.0]], np.float32),
        ),
        "softmax_head_bce": case(
            (4,),
            [dense(2, "softmax", 4)],
            ("binary_crossentropy", {}),
            ["binary_accuracy"],
            x4,
            one_hot(labels3 % 2, 2),
        ),
        "sigmoid_head_cce": case(
            (4,),
            [dense(3, "sigmoid", 4)],
            ("categorical_crossentropy", {"label_smoothing": 0.1}),
            ["categorical_accuracy"],
            x4,
            one_hot(labels3, 3),
        ),
        "sigmoid_head_scce": case(
            (4,),
            [dense(5, "relu", 4), dense(3, "sigmoid", 5, scale=4.0)],
            ("sparse_categorical_crossentropy", {}),
            ["sparse_categorical_accuracy"],
            big,
            labels3.astype(np.float32),
        ),
        "softmax_saturated_scce_adam": case(
            (4,),
            [dense(3, "softmax", 4)],
            ("sparse_categorical_crossentropy", {}),
            ["sparse_categorical_crossentropy", "accuracy"],
            big,
            labels3.astype(np.float32),
            optimizer=("Adam", 0.01),
            epochs=5,
        ),
        "bce_smoothing_from_logits_flag": case(
            (4,),
            [dense(2, "sigmoid", 4, scale=10.0)],
            ("binary_crossentropy", {"label_smoothing": 0.2, "from_logits": True}),
            ["binary_accuracy"],
            x4,
            one_hot(labels3 % 2, 2),
        ),
        "mse_loss_with_crossentropy_metrics": case(
            (4,),
            [dense(3, "softmax", 4, scale=10.0)],
            ("mse", {}),
            ["categorical_crossentropy", "binary_crossentropy", "accuracy"],
            x4,
            one_hot(labels3, 3),
        ),
        "conv_softmax_head": case(
            (5, 2),
            [conv1d(3, 2, "softmax", 2, scale=3.0)],
            ("categorical_crossentropy", {}),
            ["accuracy"],
            seq,
            one_hot(RNG.integers(0, 3, (6, 4)), 3),
        ),
        # Not probabilities: sparse categorical crossentropy clips each value, then takes the
        # log-softmax (an all-zero row gives log 3).
        "scce_metric_on_linear_zeros": case(
            (4,),
            [
                (
                    {"kind": "dense", "units": 3, "activation": "linear"},
                    [np.zeros((4, 3)), np.zeros(3)],
                )
            ],
            ("sparse_categorical_crossentropy", {"from_logits": True}),
            ["sparse_categorical_crossentropy"],
            x4,
            labels3.astype(np.float32),
        ),
        "scce_loss_on_unnormalised_outputs": case(
            (4,),
            [dense(3, "relu", 4)],
            ("sparse_categorical_crossentropy", {}),
            ["sparse_categorical_crossentropy", "accuracy"],
            x4,
            labels3.astype(np.float32),
        ),
    }


def build(spec_case):
    layers = [keras.Input(tuple(spec_case["input_shape"]))]
    for spec in spec_case["layers"]:
        if spec["kind"] == "dense":
            layers.append(keras.layers.Dense(spec["units"], activation=spec["activation"]))
        else:
            layers.append(
                keras.layers.Conv1D(spec["filters"], spec["size"], activation=spec["activation"])
            )
    model = keras.Sequential(layers)
    model.set_weights([np.array(w, np.float32) for w in spec_case["weights"]])
    loss_name, loss_args = spec_case["loss"]
    # A loss with arguments is built from its class (`keras.losses.get` of a config naming a
    # function would drop the arguments).
    loss = LOSS_CLASSES[loss_name](**loss_args) if loss_args else loss_name
    name, rate = spec_case["optimizer"]
    optimizer = getattr(keras.optimizers, name)(learning_rate=rate)
    model.compile(optimizer=optimizer, loss=loss, metrics=list(spec_case["metrics"]))
    return model


def run(spec_case):
    x = np.array(spec_case["x"], np.float32)
    y = np.array(spec_case["y"], np.float32)
    model = build(spec_case)
    evaluation = model.evaluate(x, y, batch_size=len(x), verbose=0, return_dict=True)
    predictions = model.predict(x, verbose=0)
    history = model.fit(
        x, y, batch_size=4, epochs=spec_case["epochs"], shuffle=False, verbose=0
    ).history
    return {
        "evaluation": {k: float(v) for k, v in evaluation.items()},
        "predictions": predictions.tolist(),
        "history": {k: [float(v) for v in vs] for k, vs in history.items()},
        "weights": [w.tolist() for w in model.get_weights()],
    }


def main() -> None:
    all_cases = cases()
    for name, spec_case in all_cases.items():
        spec_case["keras"] = run(spec_case)
        print(name, spec_case["keras"]["evaluation"])
    golden = {
        "keras_version": keras.__version__,
        "backend": keras.backend.backend(),
        "cases": all_cases,
    }
    path = Path(__file__).with_name("keras_logits.json")
    path.write_text(json.dumps(golden) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
