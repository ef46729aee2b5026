"""What tests/test_plot_model.py and tests/golden/make_keras_plot_golden.py share: the models
drawn (from tests/functional_models.py, multi_io_models.py and summary_models.py; each builder
takes `keras` or `pynn`), the details shown, and how a drawing is read back."""

from functional_models import BUILDERS
from multi_io_models import CASES
from summary_models import BUILDERS as NESTED

MODELS = {**BUILDERS, **{name: case[0] for name, case in CASES.items()}, **NESTED}
DETAILS = {
    "show_shapes": True,
    "show_dtype": True,
    "show_layer_names": True,
    "show_layer_activations": True,
    "show_trainable": True,
}


def drawing(dot) -> dict:
    """The boxes' labels in the order they were added, cluster by cluster, the clusters'
    labels, and the arrows as pairs of box indices."""
    boxes, clusters, edges = [], [], []

    def walk(graph):
        for node in graph.get_nodes():
            if node.get_name() not in ("node", "edge", "graph"):
                boxes.append((node.get_name(), node.get("label")))
        for cluster in graph.get_subgraphs():
            clusters.append(cluster.get("label"))
            walk(cluster)

    def arrows(graph, index):
        for edge in graph.get_edges():
            edges.append([index[edge.get_source()], index[edge.get_destination()]])
        for cluster in graph.get_subgraphs():
            arrows(cluster, index)

    walk(dot)
    arrows(dot, {name: i for i, (name, _) in enumerate(boxes)})
    return {"labels": [label for _, label in boxes], "edges": edges, "clusters": clusters}
