"""Fisher's iris data: 150 flowers, 4 measurements in cm, 3 species (0 setosa, 1 versicolor,
2 virginica). Bundled as `data/iris.csv` in the layout the textbook reads: an index column, the four
features, and `target`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

FEATURES = ("sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)")
CLASSES = ("setosa", "versicolor", "virginica")


def path() -> str:
    """The bundled CSV, e.g. for `pandas.read_csv(pynn.datasets.iris.path(), index_col=0)`."""
    return str(Path(__file__).parent / "data" / "iris.csv")


def load_data(as_frame: bool = False):
    """Returns `(x, y)`: float32 features `(150, 4)` and int64 classes `(150,)`, in file order.

    With `as_frame=True`, returns the pandas DataFrame of the CSV instead (needs pandas).
    """
    if as_frame:
        import pandas as pd

        return pd.read_csv(path(), index_col=0)
    table = np.loadtxt(path(), delimiter=",", skiprows=1)
    return table[:, 1:5].astype(np.float32), table[:, 5].astype(np.int64)
