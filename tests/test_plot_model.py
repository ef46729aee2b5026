"""`pynn.utils.plot_model` and `model_to_dot` draw what Keras 3 draws: the same boxes (labels
with every detail) and arrows for the functional, multi-output and nested test models
(`golden/keras_plots.json`), flat and expanded; a PNG with Graphviz, a clear error without."""

import json
import os
import sys
from pathlib import Path

import pytest

import pynn
from pynn.utils import model_visualization

pydot = pytest.importorskip("pydot")

sys.path.insert(0, str(Path(__file__).parent))
from functional_models import BUILDERS  # noqa: E402
from plot_drawings import DETAILS, MODELS, drawing  # noqa: E402

GOLDEN = json.loads((Path(__file__).parent / "golden" / "keras_plots.json").read_text())


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("nested", [False, True])
def test_boxes_and_arrows_are_the_ones_keras_draws(name, nested):
    pynn.utils.clear_session()  # automatic names counted from this model only
    model = MODELS[name](pynn)
    got = drawing(pynn.utils.model_to_dot(model, expand_nested=nested, **DETAILS))
    want = GOLDEN["models"][name][str(nested)]
    if name == "constants":
        # Keras gives the layers after an array constant the constant's batch axis of 1 and
        # takes the array for an input only in part; pynn keeps `None` and lists both inputs
        # (the README's note on constants). The boxes and arrows are the same.
        assert (len(got["labels"]), got["edges"]) == (len(want["labels"]), want["edges"])
        return
    assert got == want


def test_plot_model_writes_a_png_with_a_box_per_layer(tmp_path):
    if not model_visualization.check_graphviz():
        if os.environ.get("CI"):
            pytest.fail("CI installs Graphviz, but pydot does not find its dot")
        pytest.skip("Graphviz's dot is not installed")
    model = BUILDERS["residual_cnn"](pynn)
    path = tmp_path / "model.png"
    pynn.utils.plot_model(model, to_file=path, show_shapes=True)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = tmp_path / "model.svg"
    pynn.utils.plot_model(model, to_file=svg, show_layer_names=True)
    text = svg.read_text()
    for layer in model.layers:
        assert text.count(f">{layer.name}</text>") == 1, layer.name


def test_missing_pydot_or_graphviz_says_what_to_install(monkeypatch):
    model = BUILDERS["merges"](pynn)
    monkeypatch.setattr(model_visualization, "check_graphviz", lambda: False)
    with pytest.raises(ImportError, match="You must install graphviz"):
        pynn.utils.plot_model(model)
    monkeypatch.setattr(model_visualization, "pydot", None)
    with pytest.raises(ImportError, match=r"pip install pynn\[plot\]"):
        pynn.utils.plot_model(model)
    with pytest.raises(ImportError, match="You must install pydot"):
        pynn.utils.model_to_dot(model)


def test_unknown_arguments_are_refused_as_in_keras():
    model = BUILDERS["merges"](pynn)
    with pytest.raises(ValueError, match="no longer supported"):
        pynn.utils.model_to_dot(model, layer_range=["a", "b"])
    with pytest.raises(ValueError, match="Unrecognized keyword arguments"):
        pynn.utils.model_to_dot(model, colour="red")
