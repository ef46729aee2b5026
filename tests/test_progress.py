"""What fit, evaluate and predict print (Keras 3's progress bar), in a log, a terminal and a
notebook, and the engine's progress reports during an epoch."""

import io
import re
import sys
import types

import numpy as np
import pytest

import pynn
from pynn.layers import Dense
from pynn.utils import Progbar

X = np.random.default_rng(0).normal(size=(120, 4)).astype(np.float32)
Y = (X[:, 0] > 0).astype(np.float32)
NUMBER = r"-?\d+\.\d{4}(e[-+]\d+)?"
FINAL = re.compile(
    rf"^(\d+)/\1 ━{{20}} \d+s \d+(us|ms|s)/step - accuracy: {NUMBER} - loss: {NUMBER}"
    rf"( - val_accuracy: {NUMBER} - val_loss: {NUMBER})?$"
)


class Terminal(io.StringIO):
    def isatty(self):
        return True


def model():
    pynn.utils.set_random_seed(0)
    net = pynn.Sequential([pynn.Input((4,)), Dense(8, activation="relu"), Dense(1, "sigmoid")])
    net.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    return net


def test_log_gets_the_final_lines_only(capsys):
    model().fit(X, Y, epochs=3, batch_size=16, validation_split=0.25)
    out = capsys.readouterr().out
    assert "\r" not in out and "\x1b" not in out
    lines = out.splitlines()
    assert lines[0::2] == ["Epoch 1/3", "Epoch 2/3", "Epoch 3/3"]
    for line in lines[1::2]:
        match = FINAL.match(line)
        assert match and match.group(1) == "6" and "val_loss" in line, line


def test_values_on_the_bar_are_the_history(capsys):
    history = model().fit(X, Y, epochs=2, batch_size=16)
    lines = capsys.readouterr().out.splitlines()
    for epoch, line in enumerate(lines[1::2]):
        shown = dict(re.findall(r" - (\w+): (\S+)", line))
        for name in ("loss", "accuracy"):
            assert float(shown[name]) == pytest.approx(history.history[name][epoch], abs=5e-5)


def test_one_epoch_prints_no_epoch_line(capsys):
    model().fit(X, Y, epochs=1, batch_size=32)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and FINAL.match(lines[0])


def test_verbose_0_prints_nothing(capsys):
    net = model()
    net.fit(X, Y, epochs=2, verbose=0)
    net.evaluate(X, Y, verbose=0)
    net.predict(X, verbose=0)
    assert capsys.readouterr().out == ""


def test_verbose_2_prints_one_line_per_epoch(capsys):
    model().fit(X, Y, epochs=2, batch_size=16, verbose=2)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0::2] == ["Epoch 1/2", "Epoch 2/2"]
    for line in lines[1::2]:
        assert re.match(
            rf"^8/8 - \d+s - \d+(us|ms|s)/step - accuracy: {NUMBER} - loss: {NUMBER}$", line
        ), line


def test_evaluate_and_predict_lines(capsys):
    net = model()
    net.evaluate(X, Y, batch_size=50)
    net.predict(X, batch_size=50)
    evaluate, predict = capsys.readouterr().out.splitlines()
    assert FINAL.match(evaluate) and evaluate.startswith("3/3 ")
    assert re.match(r"^3/3 ━{20} \d+s \d+(us|ms|s)/step$", predict), predict


def test_terminal_redraws_with_colours(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    stream = Terminal()
    bar = Progbar(4, interval=0.0, stream=stream)
    for step in range(1, 5):
        bar.update(step, [("loss", 1.0 / step)])
    out = stream.getvalue()
    assert out.count("\r") == 4 and out.endswith("\n")
    assert "\x1b[1m2/4\x1b[0m \x1b[32m" + "━" * 10 + "\x1b[0m\x1b[37m" + "━" * 10 in out
    # Keras averages values that are not stateful: (1 + 1/2) / 2 after two steps.
    assert "loss: 0.7500" in out.split("\r")[2]
    # The final line shows the last value as given.
    assert out.split("\r")[-1].rstrip().endswith("loss: 0.2500")


def test_no_colour_when_asked(monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    stream = Terminal()
    bar = Progbar(2, interval=0.0, stream=stream)
    bar.update(1)
    bar.update(2)
    assert "\x1b" not in stream.getvalue() and stream.getvalue().count("\r") == 2


def test_notebook_redraws_without_control_codes(monkeypatch):
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    stream = io.StringIO()
    bar = Progbar(3, interval=0.0, stream=stream)
    for step in range(1, 4):
        bar.update(step, [("loss", 0.5)])
    out = stream.getvalue()
    assert "\x1b" not in out and "\b" not in out
    assert out.count("\r") == 3 and out.endswith("\n")


def test_shorter_redraw_pads_over_the_longer_one():
    stream = Terminal()
    bar = Progbar(100, interval=0.0, stream=stream)
    bar.update(1, [("loss", 123456.0)])
    bar.update(2, [("loss", -1.0)], finalize=False)
    first, second = stream.getvalue().split("\r")[1:]
    strip = re.compile(r"\x1b\[\d+m")
    assert len(strip.sub("", second)) >= len(strip.sub("", first))


def test_eta_and_time_formats():
    from pynn.utils.progbar import format_eta, format_time, format_value

    assert format_eta(5.4) == "5s"
    assert format_eta(125) == "2:05"
    assert format_eta(3725) == "1:02:05"
    assert format_time(0.0005) == " 500us/step"
    assert format_time(0.25) == " 250ms/step"
    assert format_time(2.0) == " 2s/step"
    assert format_value(0.0005) == "5.0000e-04"
    assert format_value(-0.5) == "-0.5000"
    assert format_value(-0.5, verbose=2) == "-5.0000e-01"


@pytest.fixture(scope="module")
def long_epoch():
    """A compiled model and data whose epoch at batch size 4 (25,000 batches) lasts several of
    the engine's report intervals (0.05 s)."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(100_000, 32)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.float32)
    net = pynn.Sequential(
        [pynn.Input((32,)), Dense(512, activation="relu"), Dense(1, activation="sigmoid")]
    )
    net.compile(loss="binary_crossentropy", optimizer="sgd", metrics=["accuracy"])
    net.evaluate(x[:4], y[:4], verbose=0)  # hands the loss and metrics to the engine
    return net, x, y


def test_engine_reports_progress_during_an_epoch(long_epoch):
    """A Python callable receives `(batches, [loss, metrics])` from the waiting thread while
    the epoch runs: counts increase, the values are running means."""
    net, x, y = long_epoch
    reports = []
    report = lambda b, v: reports.append((b, v))  # noqa: E731
    net._engine.fit_epoch([x.reshape(-1)], [y], len(x), 4, None, report)
    assert reports
    counts = [b for b, _ in reports]
    assert counts == sorted(set(counts)) and 0 < counts[-1] <= 25_000
    for _, values in reports:
        assert len(values) == 2 and 0 < values[0] < 1 and 0 <= values[1] <= 1


def test_exception_in_the_report_stops_the_epoch(long_epoch):
    net, x, y = long_epoch

    def report(batches, values):
        raise OSError("the terminal went away")

    with pytest.raises(OSError, match="terminal went away"):
        net._engine.fit_epoch([x.reshape(-1)], [y], len(x), 4, None, report)
