"""`Progbar`: Keras 3's progress bar (`keras.utils.Progbar`), safe in terminals, notebooks and
logs.

In a terminal the line is redrawn in place with a carriage return, the count in bold and the bar
in green and white as Keras draws it (no colours when `NO_COLOR` is set). In a Jupyter notebook
the line is redrawn the same way without colour codes. Anywhere else (output piped to a file, a
CI log, a captured stream, `mpirun ... > log` although mpirun hands each process a terminal)
only the final line of each bar is written, so a log holds no control characters and no partial
lines.
"""

from __future__ import annotations

import math
import os
import sys
import time

_BOLD, _GREEN, _WHITE, _RESET = "\x1b[1m", "\x1b[32m", "\x1b[37m", "\x1b[0m"


class _Everything:
    """`stateful_metrics` that holds every name: values already running means, shown as-is."""

    def __contains__(self, name) -> bool:
        return True


ALL_STATEFUL = _Everything()


def _in_notebook() -> bool:
    return "ipykernel" in sys.modules


def _is_terminal(stream) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        if not (isatty and isatty()):
            return False
    except ValueError:  # a closed stream
        return False
    return not _launched_by_mpi() or _launcher_writes_to_a_terminal()


_MPI_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK")


def _launched_by_mpi() -> bool:
    return any(name in os.environ for name in _MPI_VARIABLES)


def _launcher_writes_to_a_terminal() -> bool:
    """mpirun gives every process a terminal of its own even when its own output goes to a
    file or a pipe: the launcher's (the parent's) standard output tells. Where that cannot be
    read (not Linux, another node), the bar is drawn as for a log."""
    try:
        target = os.readlink(f"/proc/{os.getppid()}/fd/1")
    except OSError:
        return False
    return target.startswith(("/dev/pts/", "/dev/tty"))


def format_time(seconds: float, unit_name: str = "step") -> str:
    """`" 5ms/step"`: Keras's time per unit, in s, ms or us."""
    if seconds >= 1 or seconds == 0:
        return f" {seconds:.0f}s/{unit_name}"
    if seconds >= 1e-3:
        return f" {seconds * 1e3:.0f}ms/{unit_name}"
    return f" {seconds * 1e6:.0f}us/{unit_name}"


def format_eta(seconds: float) -> str:
    """Keras's time left: `%ds`, `m:ss` or `h:mm:ss`."""
    if seconds > 3600:
        return f"{seconds // 3600:.0f}:{(seconds % 3600) // 60:02.0f}:{seconds % 60:02.0f}"
    if seconds > 60:
        return f"{seconds // 60:.0f}:{seconds % 60:02.0f}"
    return f"{seconds:.0f}s"


def format_value(value: float, verbose: int = 1) -> str:
    """A metric as Keras shows it: 4 decimals, or 4 significant digits when small. (Keras tests
    `abs(value) > 1e-3` on the bar and `value > 1e-3` on verbose=2 lines.)"""
    large = abs(value) > 1e-3 if verbose == 1 else value > 1e-3
    return f"{value:.4f}" if large else f"{value:.4e}"


class Progbar:
    """Displays a progress bar.

    Args:
        target: total number of steps expected; `None` if unknown.
        width: the bar's width in characters.
        verbose: 0 (silent), 1 (a bar redrawn as it goes) or 2 (one line when done).
        interval: minimum time in seconds between two redraws.
        stateful_metrics: names of values shown as given; the others are averaged over the
            steps reported so far, as Keras does.
        unit_name: what a step is called on screen (`"step"`, `"sample"`).
        stream: where to write; `sys.stdout` at the time of writing by default.
    """

    def __init__(
        self,
        target,
        width=20,
        verbose=1,
        interval=0.05,
        stateful_metrics=None,
        unit_name="step",
        stream=None,
    ):
        self.target = target
        self.width = width
        self.verbose = verbose
        self.interval = interval
        self.stateful_metrics = set() if stateful_metrics is None else stateful_metrics
        self.unit_name = unit_name
        self._stream = stream
        stream = self.stream
        self.dynamic = _is_terminal(stream) or _in_notebook()
        self._colour = _is_terminal(stream) and not os.environ.get("NO_COLOR")
        self._values: dict[str, list[float]] = {}
        self._seen_so_far = 0
        self._start = time.perf_counter()
        self._last_update = 0.0
        self._first_report = None  # (time, step): steps before it are left out of the per-step time
        self._previous_width = 0

    @property
    def stream(self):
        return self._stream if self._stream is not None else sys.stdout

    @property
    def redraws(self) -> bool:
        """Whether updates before the last one show anything (verbose=1 on a live display)."""
        return self.verbose == 1 and self.dynamic

    def update(self, current, values=None, finalize=None):
        """Shows `current` steps done and `values` (`(name, value)` pairs); `finalize` (by
        default: `current >= target`) draws the final line."""
        if finalize is None:
            finalize = self.target is not None and current >= self.target
        self._record(current, values or [], finalize)
        now = time.perf_counter()
        per_step = self._step_time(current, now)
        if self.verbose == 1 and (finalize or self.redraws):
            if finalize or now - self._last_update >= self.interval:
                self._draw(current, now, per_step, finalize)
                self._last_update = now
        elif self.verbose == 2 and finalize:
            self._write(self._summary_line(current, now, per_step) + "\n")

    def add(self, n, values=None):
        """`update` with `n` more steps done."""
        self.update(self._seen_so_far + n, values)

    def _record(self, current, values, finalize):
        for name, value in values:
            value = float(value)
            if name in self.stateful_metrics or finalize:
                self._values[name] = [value, 1]
            else:
                steps = max(current - self._seen_so_far, 1)
                total, count = self._values.get(name, [0.0, 0])
                self._values[name] = [total + value * steps, count + steps]
        self._seen_so_far = current

    def _step_time(self, current, now) -> float:
        if not current:
            return 0.0
        if self._first_report is None:
            self._first_report = (now, current)
        first_time, first_step = self._first_report
        if current > first_step:
            return (now - first_time) / (current - first_step)
        return (now - self._start) / current

    def _metrics(self, verbose: int) -> str:
        return "".join(
            f" - {name}: {format_value(total / max(1, count), verbose)}"
            for name, (total, count) in self._values.items()
        )

    def _count(self, current) -> str:
        digits = int(math.log10(self.target)) + 1
        return f"{current:{digits}d}/{self.target}"

    def _bold(self, text: str) -> str:
        return f"{_BOLD}{text}{_RESET}" if self._colour else text

    def _bar(self, current) -> str:
        if not self.target:
            return f"{current:7d}/Unknown"
        done = int(self.width * min(current / self.target, 1.0))
        if self._colour:
            filled = f"{_GREEN}{'━' * done}{_RESET}" if done else ""
            rest = f"{_WHITE}{'━' * (self.width - done)}{_RESET}"
        else:
            filled, rest = "━" * done, "━" * (self.width - done)
        return f"{self._bold(self._count(current))} {filled}{rest}"

    def _draw(self, current, now, per_step, finalize):
        if self.target and not finalize:
            timing = self._bold(format_eta(per_step * (self.target - current)))
        else:
            timing = self._bold(f"{now - self._start:.0f}s")
        text = f"{self._bar(current)} {timing}{format_time(per_step, self.unit_name)}"
        text += self._metrics(1)
        width = len(_plain(text))
        padding = " " * max(self._previous_width - width, 0)
        self._previous_width = width
        if self.dynamic:
            self._write("\r" + text + padding + ("\n" if finalize else ""))
        else:
            self._write(text + "\n")

    def _summary_line(self, current, now, per_step) -> str:
        count = self._count(current) if self.target else str(current)
        timing = f"{now - self._start:.0f}s -{format_time(per_step, self.unit_name)}"
        return f"{count} - {timing}{self._metrics(2)}"

    def _write(self, text: str) -> None:
        stream = self.stream
        stream.write(text)
        stream.flush()


def _plain(text: str) -> str:
    """`text` without colour codes: what takes room on screen."""
    for code in (_BOLD, _GREEN, _WHITE, _RESET):
        text = text.replace(code, "")
    return text
