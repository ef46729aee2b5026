"""Fashion-MNIST: 70,000 28x28 grey images of clothes in 10 classes, read from the four IDX gzip
files of the original distribution (nothing is downloaded)."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}
#: Where Debian's package `dataset-fashion-mnist` installs the files.
SYSTEM_PATH = "/usr/share/datasets/fashion-mnist"
CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


def _candidates(path) -> list[Path]:
    if path is not None:
        return [Path(path)]
    found = []
    if os.environ.get("PYNN_DATA"):
        found.append(Path(os.environ["PYNN_DATA"]) / "fashion-mnist")
    found.append(Path(SYSTEM_PATH))
    return found


def find(path=None) -> Path:
    """The folder holding the four files: `path`, else `$PYNN_DATA/fashion-mnist`, else
    `/usr/share/datasets/fashion-mnist`."""
    looked = _candidates(path)
    for folder in looked:
        if all((folder / name).is_file() for name in FILES.values()):
            return folder
    places = ", ".join(str(p) for p in looked)
    raise FileNotFoundError(
        f"Fashion-MNIST was not found: looked for {', '.join(FILES.values())} in {places}. "
        "Install them with `apt-get install dataset-fashion-mnist` (Debian/Ubuntu), or download "
        "the four files from the Fashion-MNIST project and pass their folder as `path=` or in "
        "the PYNN_DATA environment variable (as $PYNN_DATA/fashion-mnist)."
    )


def read_idx(file: Path) -> np.ndarray:
    """An IDX file (gzip or not): a magic number giving the type and rank, the dimensions, then
    the values, big-endian."""
    opener = gzip.open if file.suffix == ".gz" else open
    with opener(file, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{file} is not an IDX file of unsigned bytes.")
    rank = data[3]
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(rank))
    values = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * rank)
    if values.size != int(np.prod(dims)):
        raise ValueError(f"{file} holds {values.size} values, its header says {dims}.")
    return values.reshape(dims)


def load_data(path=None):
    """Returns `(x_train, y_train), (x_test, y_test)` as uint8 arrays, as Keras's
    `fashion_mnist.load_data()`: images `(60000, 28, 28)` and `(10000, 28, 28)`, labels
    `(60000,)` and `(10000,)`."""
    folder = find(path)
    arrays = {key: read_idx(folder / name) for key, name in FILES.items()}
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])
