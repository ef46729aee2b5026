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
from functional_models import BUILDERS  # noqa: E402
from multi_io_models import CASES  # noqa: E402
from summary_models import BUILDERS as NESTED  # noqa: E402

MODELS = {**BUILDERS, **{name: case[0] for name, case in CASES.items()}, **NESTED}
DETAILS = {
    "show_shapes": True,
    "show_dtype": True,
    "show_layer_names": True,
    "show_layer_activations": True,
    "show_trainable": True,
}


def drawing(dot) -> dict:
    """The boxes' labels in the order they were added (clusters' boxes where they come), and
    the arrows as pairs of box indices, in order."""
    boxes, clusters = [], []

    def walk(graph):
        for node in graph.get_nodes():
            if node.get_name() not in ("node", "edge", "graph"):
                boxes.append((node.get_name(), node.get("label")))
        for cluster in graph.get_subgraphs():
            clusters.append(cluster.get("label"))
            walk(cluster)

    walk(dot)
    index = {name: i for i, (name, _) in enumerate(boxes)}
    edges = []

    def arrows(graph):
        for edge in graph.get_edges():
            edges.append([index[edge.get_source()], index[edge.get_destination()]])
        for cluster in graph.get_subgraphs():
            arrows(cluster)

    arrows(dot)
    return {"labels": [label for _, label in boxes], "edges": edges, "clusters": clusters}


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
