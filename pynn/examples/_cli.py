"""What every example shares: its command line (`--quick`, `--out`, `--seed`), how it saves
figures, and how it starts. Examples only write PNG files; they never open a window."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

#: Where figures go unless `--out` says otherwise: a folder of the current directory that the
#: project's `.gitignore` ignores, so that figures drawn in a clone stay out of `git status`.
DEFAULT_OUT = "pynn-figures"


def parser(doc: str, module: str) -> argparse.ArgumentParser:
    """The argument parser of the example `module` (`pynn.examples.<name>`), described by the
    first paragraph of its docstring."""
    first_paragraph = doc.strip().split("\n\n")[0]
    parser = argparse.ArgumentParser(
        prog=f"python -m {module}",
        description=" ".join(first_paragraph.split()),
    )
    parser.add_argument(
        "--quick", action="store_true", help="a reduced size that finishes in seconds"
    )
    parser.add_argument(
        "--out",
        default=DEFAULT_OUT,
        help=f"the folder the PNG figures go to (default: ./{DEFAULT_OUT})",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="the seed of the data's order and the initial weights (default: 0)",
    )
    return parser


def pyplot():
    """matplotlib's pyplot on the Agg backend (files only), with a clear message when missing."""
    from pynn.utils.plotting import _pyplot

    plt = _pyplot()
    plt.switch_backend("Agg")
    return plt


def save(figure, out: str, name: str) -> Path:
    """Writes `figure` to `out/name` (creating the folder), closes it and says where it went.
    The saved area takes in every title and label (none is cut at an edge)."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    figure.tight_layout()
    figure.savefig(path, dpi=100, bbox_inches="tight", pad_inches=0.1)
    pyplot().close(figure)
    print(f"wrote {path}")
    return path


def run(main) -> None:
    """Runs an example's `main` from the command line: a missing optional dependency (matplotlib)
    or data set (Fashion-MNIST) prints how to install it and exits with status 1, without a
    traceback."""
    try:
        main()
    except (ImportError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
