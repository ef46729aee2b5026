"""What every example shares: its command line (`--quick`, `--out`, `--seed`) and how it saves
figures. Examples only write PNG files; they never open a window."""

from __future__ import annotations

import argparse
from pathlib import Path


def parser(doc: str) -> argparse.ArgumentParser:
    """The example's argument parser, described by the first line of its docstring."""
    parser = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="a reduced size that finishes in seconds"
    )
    parser.add_argument("--out", default=".", help="the folder the PNG figures go to")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def pyplot():
    """matplotlib's pyplot on the Agg backend (files only), with a clear message when missing."""
    from pynn.utils.plotting import _pyplot

    plt = _pyplot()
    plt.switch_backend("Agg")
    return plt


def save(figure, out: str, name: str) -> Path:
    """Writes `figure` to `out/name` (creating the folder), closes it and says where it went."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot().close(figure)
    print(f"wrote {path}")
    return path
