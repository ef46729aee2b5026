"""`benches/compare.py --quick`: the benchmark script still runs end to end (pynn only, reduced
sizes). A smoke test: it asserts what was measured, never how fast."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benches" / "compare.py"


def test_compare_quick_measures_every_workload(tmp_path):
    out = tmp_path / "results.json"
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "| w2 | epoch_s |" in run.stdout
    results = json.loads(out.read_text())["results"]
    expected = {
        "w1": {"fit_s"},
        "w2": {"epoch_s", "inference_images_per_s", "peak_rss_mib"},
        "w3": {"forward_gflops", "train_gflops"},
        "w4": {"epoch_s", "train_gflops", "test_accuracy"},
        "sgemm": {"gflops"},
    }
    assert set(results) == set(expected)
    for workload, metrics in expected.items():
        (measured,) = results[workload]["pynn"]
        assert set(measured) == metrics
        assert all(value > 0 for value in measured.values())


def test_compare_measures_thread_counts_in_turn_and_their_speedup(tmp_path):
    out = tmp_path / "results.json"
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--workloads", "w1", "--threads", "2,1"]
        + ["--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "pynn w1 fit_s: " in run.stdout and "as fast on 2 threads as on 1" in run.stdout
    saved = json.loads(out.read_text())
    assert saved["threads"] == 2 and set(saved["by_threads"]) == {"2", "1"}
    assert saved["results"] == saved["by_threads"]["2"]
    for results in saved["by_threads"].values():
        (measured,) = results["w1"]["pynn"]
        assert measured["fit_s"] > 0


def test_speedups_read_seconds_and_rates_each_their_way(capsys):
    spec = importlib.util.spec_from_file_location("compare", SCRIPT)
    compare = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(compare)
    measured = {
        2: {"w2": {"pynn": [{"epoch_s": 1.0, "inference_images_per_s": 300.0}]}},
        1: {"w2": {"pynn": [{"epoch_s": 1.5, "inference_images_per_s": 100.0}]}},
    }
    compare.print_scaling(measured)
    out = capsys.readouterr().out
    assert "w2 epoch_s: 1.50x as fast on 2 threads as on 1" in out
    assert "w2 inference_images_per_s: 3.00x as fast on 2 threads as on 1" in out
