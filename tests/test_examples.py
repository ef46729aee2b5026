"""Every example runs with `--quick`, writes its PNG figures, and shows what its section of the
textbook shows."""

import importlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FIGURES = {
    "gradient_descent": ["gd_vs_sgd.png", "loss_landscape.png"],
    "adam": ["adam.png"],
    "curse_of_depth": ["activation_derivatives.png", "gradient_norms.png"],
    "standardization": ["standardization.png"],
    "early_stopping": ["early_stopping.png"],
    "l2_penalty": ["l2_penalty.png"],
    "dropout": ["dropout.png"],
    "regularization": ["regularization.png"],
    "conv1d": ["conv1d.png"],
    "conv2d_blur": ["conv2d_blur.png", "image_channels.png", "max_pooling.png"],
    "lenet": ["lenet.png"],
}


def run(name, out):
    if name == "lenet":
        from pynn.datasets import fashion_mnist

        try:
            fashion_mnist.load_data()
        except FileNotFoundError:
            if os.environ.get("CI"):
                raise  # CI installs the data: its absence there is a failure.
            pytest.skip("Fashion-MNIST is not installed here")
    module = importlib.import_module(f"pynn.examples.{name}")
    return module.main(["--quick", "--out", str(out)])


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_example_writes_its_figures(name, tmp_path, capsys):
    run(name, tmp_path)
    out = capsys.readouterr().out
    for figure in FIGURES[name]:
        path = tmp_path / figure
        assert path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 5000
        assert f"wrote {path}" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(FIGURES[name])


def test_every_example_module_is_listed():
    import pynn.examples

    folder = os.path.dirname(pynn.examples.__file__)
    modules = {f[:-3] for f in os.listdir(folder) if f.endswith(".py") and f[0] != "_"}
    assert modules == set(FIGURES)


def test_the_examples_list_themselves():
    done = subprocess.run(
        [sys.executable, "-m", "pynn.examples"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    for name in FIGURES:
        assert f"  {name} " in done.stdout
    assert 'lenet             Section 6.2.2 of the textbook, "LeNet-5"' in done.stdout


def test_help_names_the_module_and_says_what_the_example_does():
    done = subprocess.run(
        [sys.executable, "-m", "pynn.examples.standardization", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0
    assert done.stdout.startswith("usage: python -m pynn.examples.standardization")
    description = done.stdout.split("\n\n")[1]
    assert " ".join(description.split()).endswith("trains faster and further.")
    flat = " ".join(done.stdout.split())
    assert "--seed SEED the seed" in flat and "(default: ./pynn-figures)" in flat


def test_figures_go_to_an_ignored_folder_by_default(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "pynn.examples.conv1d", "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "pynn-figures" / "conv1d.png").exists()
    ignored = (Path(__file__).parents[1] / ".gitignore").read_text().split()
    assert "/pynn-figures/" in ignored


def test_an_example_without_matplotlib_says_how_to_install_it():
    code = (
        "import runpy, sys\n"
        "sys.modules['matplotlib'] = None  # as if it were not installed\n"
        "sys.argv = ['adam', '--quick']\n"
        "runpy.run_module('pynn.examples.adam', run_name='__main__')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 1
    assert "pip install pynn[plot]" in done.stderr
    assert "Traceback" not in done.stderr


def test_runs_as_a_module(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "pynn.examples.conv2d_blur", "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "conv2d_blur.png").exists()


def test_gradient_descent_updates_once_per_epoch_and_sgd_per_batch(tmp_path):
    paths = run("gradient_descent", tmp_path)["paths"]
    gd, sgd = paths.values()
    assert len(gd) == 5 + 1 and len(sgd) == 5 * 10 + 1
    # In as many epochs, SGD's more frequent updates get closer to the fit of y = 2x + 1.
    distance = [np.hypot(path[-1][0] - 2, path[-1][1] - 1) for path in (gd, sgd)]
    assert distance[1] < 0.2 < distance[0]


def test_loss_landscape_has_two_minima(tmp_path):
    result = run("gradient_descent", tmp_path)
    grid, losses = result["grid"], result["losses"]
    # The network is odd in (w1, w2): the landscape is symmetric and its minima come in pairs.
    np.testing.assert_allclose(losses, losses[::-1, ::-1], rtol=1e-4, atol=1e-6)
    i, j = np.unravel_index(np.argmin(losses), losses.shape)
    assert grid[i] * grid[j] > 0 and losses[i, j] < 0.05
    assert losses[len(grid) // 2, len(grid) // 2] > 10 * losses[i, j]


def test_adam_beats_sgd(tmp_path):
    histories = run("adam", tmp_path)
    assert histories["Adam()"]["loss"][-1] < histories["SGD(learning_rate=0.01)"]["loss"][-1]


def test_curse_of_depth(tmp_path):
    norms = run("curse_of_depth", tmp_path)
    assert len(norms["sigmoid"]) == len(norms["relu"]) == 11
    assert norms["sigmoid"][0] < 1e-3 * norms["relu"][0]
    assert norms["sigmoid"][0] < norms["sigmoid"][-1]


def test_standardization_trains_further(tmp_path):
    histories = run("standardization", tmp_path)
    raw, standardized = histories["raw"]["loss"], histories["standardized"]["loss"]
    assert len(standardized) == 100
    # What the figure shows: the standardized run ends far lower, and leads on average.
    assert standardized[-1] < 0.1 * raw[-1]
    assert np.mean(standardized) < np.mean(raw)
    assert histories["standardized"]["accuracy"][-1] >= 0.99


def test_early_stopping_stops_early_and_restores_the_best_weights(tmp_path):
    results = run("early_stopping", tmp_path)
    plain, stopped = results["plain"], results["early stopping"]
    assert len(plain["history"]["loss"]) == 100
    # The plain run overfits: its validation loss turns up after its best epoch ...
    assert plain["history"]["val_loss"][-1] > 1.1 * min(plain["history"]["val_loss"])
    # ... and early stopping ends patience (10) epochs after that best epoch, keeping it.
    best = int(np.argmin(stopped["history"]["val_loss"]))
    assert len(stopped["history"]["loss"]) == best + 11 < 100
    assert stopped["final_val_loss"] == pytest.approx(min(stopped["history"]["val_loss"]), 1e-5)
    assert stopped["final_val_loss"] < plain["final_val_loss"]


def test_regularization_compares_the_four_variants(tmp_path):
    results = run("regularization", tmp_path)
    plain = results["plain"]["history"].history["val_loss"]
    assert plain[-1] > 1.1 * min(plain)  # plain overfits
    assert results["early stopping"]["stopped"] < 100
    assert results["early stopping"]["val"]["loss"] < results["plain"]["val"]["loss"]
    assert all(r["val"]["accuracy"] > 0.85 for r in results.values())


def test_l2_shrinks_the_kernels(tmp_path):
    results = run("l2_penalty", tmp_path)
    assert results["l2"]["kernel_norm"] < 0.5 * results["plain"]["kernel_norm"]


def test_dropout_validation_loss_below_training_loss(tmp_path):
    results = run("dropout", tmp_path)
    assert results["epochs_below"] > len(results["history"]["loss"]) / 2


def test_conv1d_is_numpy_convolve_and_translation_equivariant(tmp_path):
    results = run("conv1d", tmp_path)
    assert results["filter_error"] < 1e-5 and results["shift_error"] < 1e-5
    assert results["accuracy"] >= 0.9


def test_conv2d_blur_is_the_written_out_sum(tmp_path):
    results = run("conv2d_blur", tmp_path)
    image, blurred = results["image"], results["blurred"]
    assert blurred.shape == image.shape[:2]
    ci, cj = image.shape[0] // 2, image.shape[1] // 2
    assert blurred[ci, cj] == pytest.approx(results["direct"], abs=1e-5)
    # Blurring smooths: neighbouring pixels differ less than in the grey input.
    grey = image.mean(axis=2)
    assert (
        np.abs(np.diff(blurred[8:-8, 8:-8], axis=1)).mean() < np.abs(np.diff(grey, axis=1)).mean()
    )


def test_lenet_learns(tmp_path):
    results = run("lenet", tmp_path)
    assert results["accuracy"] > 0.5 and len(results["seconds"]) == 3
    # The quick figure's curves: three epochs whose loss falls.
    losses = results["history"]["loss"]
    assert losses[0] > losses[1] > losses[2]


def test_max_pooling_takes_each_window_maximum(tmp_path):
    results = run("conv2d_blur", tmp_path)
    expected = results["grid"].reshape(2, 2, 2, 2).max(axis=(1, 3))
    np.testing.assert_array_equal(results["pooled"], expected)
