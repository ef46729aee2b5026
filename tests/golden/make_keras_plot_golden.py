"""Writes keras_plots.json: the boxes and arrows Keras 3's `model_to_dot` draws for the models
of tests/functional_models.py, tests/multi_io_models.py and tests/summary_models.py: each box's
label (every detail shown) and each arrow as the labels' indices, flat and with nested models
expanded. Run it by hand where `keras`, `tensorflow-cpu` and `pydot` are installed:

    python tests/golden/make_keras_plot_golden.py
"""

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from plot_drawings import DETAILS, MODELS, drawing  # noqa: E402


def main() -> None:
    golden = {"keras_version": keras.__version__, "models": {}}
    for name, build in MODELS.items():
        keras.utils.clear_session()  # automatic names counted from this model only
        model = build(keras)
        golden["models"][name] = {
            nested: drawing(keras.utils.model_to_dot(model, expand_nested=nested, **DETAILS))
            for nested in (False, True)
        }
        golden["models"][name] = {str(k): v for k, v in golden["models"][name].items()}
    path = Path(__file__).with_name("keras_plots.json")
    path.write_text(json.dumps(golden, indent=1) + "\n")


if __name__ == "__main__":
    main()
