"""`pynn.utils.plot_history` draws one line per requested metric (matplotlib's Agg backend)."""

import sys

import numpy as np
import pytest

import pynn
from pynn.layers import Dense
from pynn.utils import plot_history

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")


@pytest.fixture(scope="module")
def history():
    pynn.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(60, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.float32)
    model = pynn.Sequential([pynn.Input((3,)), Dense(4, "relu"), Dense(1, "sigmoid")])
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model.fit(x, y, epochs=4, validation_split=0.25, verbose=0)


def test_one_line_per_metric(history):
    figure = plot_history(history, metrics=("loss", "val_loss", "accuracy"))
    (ax,) = figure.axes
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == ["loss", "val_loss", "accuracy"]
    for line, name in zip(lines, ["loss", "val_loss", "accuracy"]):
        np.testing.assert_array_equal(line.get_xdata(), [1, 2, 3, 4])
        np.testing.assert_allclose(line.get_ydata(), history.history[name])
    assert ax.get_xlabel() == "Epoch"


def test_default_is_the_loss_and_runs_overlay_on_one_axes(history):
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots()
    assert plot_history(history, ax=ax, label="raw") is figure
    plot_history(history.history, ax=ax, label="standardized")
    assert [line.get_label() for line in ax.get_lines()] == ["raw loss", "standardized loss"]


def test_unknown_metric_and_wrong_history(history):
    with pytest.raises(ValueError, match="val_acc"):
        plot_history(history, metrics=["val_acc"])
    with pytest.raises(TypeError, match="History"):
        plot_history([1, 2, 3])


def test_missing_matplotlib_says_how_to_install(history, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r"pip install pynn\[plot\]"):
        plot_history(history)
