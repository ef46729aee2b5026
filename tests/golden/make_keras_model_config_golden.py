"""Writes keras_model_configs.json: the JSON that Keras 3's `model.to_json()` writes for the
functional, multi-input and nested test models (tests/functional_models.py,
multi_io_models.py, summary_models.py, config_models.py), with weights drawn in Keras's
order, inputs and Keras's predictions, so that pynn's reading and writing of model configs are
checked against Keras's own. Run it by hand where `keras` and `tensorflow-cpu` are installed:

    python tests/golden/make_keras_model_config_golden.py
"""

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import config_models  # noqa: E402
import functional_models  # noqa: E402
import multi_io_models  # noqa: E402
import summary_models  # noqa: E402

N, LENGTH = 3, 7
BUILDERS = {
    **functional_models.BUILDERS,
    **{builder.__name__: builder for builder, *_ in multi_io_models.CASES.values()},
    **summary_models.BUILDERS,
    **config_models.BUILDERS,
}


def inputs(model, rng):
    """Random inputs in the structure of `model.input` (a variable length is `LENGTH`)."""

    def draw(tensor):
        shape = [N] + [LENGTH if d is None else d for d in tensor.shape[1:]]
        return rng.normal(size=shape).astype("float32")

    structure = model.inputs[0] if isinstance(model, keras.Sequential) else model.input
    return keras.tree.map_structure(draw, structure)


def run(name):
    rng = np.random.default_rng(3)
    model = BUILDERS[name](keras)
    weights = [rng.uniform(-0.5, 0.5, size=w.shape).astype("float32") for w in model.get_weights()]
    model.set_weights(weights)
    x = inputs(model, rng)
    predictions = model.predict(x, verbose=0)
    return {
        "json": model.to_json(),
        "count_params": model.count_params(),
        "weights": [w.tolist() for w in weights],
        "x": keras.tree.map_structure(lambda a: a.tolist(), x),
        "predictions": keras.tree.map_structure(lambda a: a.tolist(), predictions),
    }


if __name__ == "__main__":
    out = {"keras_version": keras.__version__, "models": {name: run(name) for name in BUILDERS}}
    path = Path(__file__).with_name("keras_model_configs.json")
    path.write_text(json.dumps(out, separators=(",", ":")) + "\n")
    print(f"wrote {path}")
