"""Turns what a user passes as `x` and `y` into float32 C-contiguous arrays, once, and rejects
what cannot be trained on with a message that names the argument."""

from __future__ import annotations

import math

import numpy as np

from pynn import _core


def _is_pandas(data) -> bool:
    return type(data).__module__.split(".")[0] == "pandas"


def to_array(data, name: str) -> np.ndarray:
    """NumPy arrays of any numeric dtype, pandas DataFrames and Series, and nested lists of
    numbers become a NumPy array (not yet float32: callers may need the integer values)."""
    if data is None:
        raise ValueError(f"`{name}` is required; got None.")
    if _is_pandas(data):
        from pandas.api.types import is_bool_dtype, is_numeric_dtype

        frame = data.to_frame() if data.ndim == 1 else data
        non_numeric = [
            str(c) for c, t in frame.dtypes.items() if not (is_numeric_dtype(t) or is_bool_dtype(t))
        ]
        if non_numeric:
            raise TypeError(
                f"`{name}` has non-numeric columns: {', '.join(non_numeric)}. Encode them as "
                "numbers (e.g. with pandas.get_dummies) or drop them first."
            )
        if any(not isinstance(t, np.dtype) for t in frame.dtypes):
            # Nullable columns (Int64, Float64, boolean) would come out as objects; their
            # missing values become NaN, which the check below reports.
            data = data.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            data = data.to_numpy()
    elif isinstance(data, dict):
        raise TypeError(
            f"`{name}` must be an array, a DataFrame or a list of numbers; got a dict, which "
            "only models of several named inputs or outputs take."
        )
    try:
        array = np.asarray(data)
    except ValueError as error:
        raise ValueError(f"`{name}` could not be read as an array: {error}") from None
    if array.dtype == object or not (
        np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.bool_)
    ):
        raise TypeError(
            f"`{name}` must hold numbers; got an array of dtype {array.dtype}. Ragged lists and "
            "strings cannot be trained on."
        )
    if np.issubdtype(array.dtype, np.complexfloating):
        raise TypeError(f"`{name}` must hold real numbers; got dtype {array.dtype}.")
    if array.ndim == 0:
        raise ValueError(f"`{name}` must have a batch axis; got a scalar.")
    if array.shape[0] == 0:
        raise ValueError(f"`{name}` is empty: it holds no samples.")
    if np.issubdtype(array.dtype, np.floating) and not _all_finite(array):
        _raise_not_finite(array, name)
    return array


def to_arrays(data, names: list[str], name: str, what: str) -> tuple[list, list[str]]:
    """`data` for a model's inputs or outputs (`what`) named `names`: one array-like for one,
    a list or tuple of one per name, or a dict by name (extra keys are ignored, as in Keras).
    Returns the arrays, each read by `to_array`, and the name of each in errors (`x`, `x[1]`,
    `y['score']`)."""
    if isinstance(data, dict):
        missing = [key for key in names if key not in data]
        if missing:
            raise ValueError(
                f"`{name}` has no entry for {what} {missing}: the model's {what} are {names}, "
                f"and `{name}` has keys {list(data)}."
            )
        labels = [f"{name}[{key!r}]" for key in names]
        return [to_array(data[key], label) for key, label in zip(names, labels)], labels
    if isinstance(data, (list, tuple)) and (len(names) > 1 or _one_array_in_a_list(data)):
        if len(data) != len(names):
            raise ValueError(
                f"The model has {len(names)} {what} ({names}), but `{name}` holds {len(data)} "
                "arrays."
            )
        labels = [f"{name}[{i}]" for i in range(len(data))]
        return [to_array(item, label) for item, label in zip(data, labels)], labels
    if len(names) != 1:
        raise ValueError(
            f"The model has {len(names)} {what} ({names}): pass `{name}` as a list of "
            f"{len(names)} arrays or as a dict keyed by those names."
        )
    return [to_array(data, name)], [name]


def _one_array_in_a_list(data) -> bool:
    """`[array]`: one model input given in a list (rather than a list of numbers)."""
    return len(data) == 1 and (isinstance(data[0], np.ndarray) or _is_pandas(data[0]))


def check_lengths(arrays: list[np.ndarray], names: list[str]) -> None:
    """Every array of `arrays` (from arguments `names`) holds as many samples as the first."""
    for array, name in zip(arrays[1:], names[1:]):
        check_same_length(arrays[0], array, names[0], name)


def _all_finite(array: np.ndarray) -> bool:
    """Whether `array` holds no NaN or infinity once converted to float32 (so a float64 beyond
    float32's range counts as infinite): scanned by the engine on all threads where it can read
    the array, else by NumPy."""
    finite = _core.all_finite(array)
    return bool(np.all(_as_float32_values(array))) if finite is None else finite


def _as_float32_values(array: np.ndarray) -> np.ndarray:
    """Where `array`'s values are finite float32s."""
    with np.errstate(over="ignore"):
        return np.isfinite(array.astype(np.float32, copy=False))


def _raise_not_finite(array: np.ndarray, name: str):
    bad = tuple(int(i) for i in np.argwhere(~_as_float32_values(array))[0])
    value = array[bad]
    if np.isfinite(value):
        raise ValueError(
            f"`{name}` holds values beyond float32's range (first at index {bad}: {value:g}); "
            "pynn computes in float32, where they would be infinite. Rescale them first."
        )
    raise ValueError(
        f"`{name}` contains NaN or infinite values (first at index {bad}); clean or impute them "
        "first."
    )


def as_float32(array) -> np.ndarray:
    """float32, C-contiguous and aligned, as the engine reads arrays; no copy when it already
    is (a view at an odd offset into a buffer is copied)."""
    return np.require(np.asarray(array), np.float32, ["C_CONTIGUOUS", "ALIGNED"])


def match_input(
    x: np.ndarray, input_shape: tuple[int, ...], model_name: str, name: str = "x"
) -> np.ndarray:
    """Checks inputs `x` (from argument `name`) against the model's per-sample input shape. As
    in Keras, a missing trailing axis of size 1 is added."""
    expected = (x.shape[0],) + tuple(input_shape)
    if _fits(x.shape, expected):
        return x
    if _fits(x.shape, expected[:-1]) and input_shape[-1] == 1:
        return x.reshape(x.shape + (1,))
    raise ValueError(
        f"Input of model '{model_name}' is incompatible: the model expects samples of shape "
        f"{tuple(input_shape)} (batches of shape {(None,) + tuple(input_shape)}), "
        f"but `{name}` has shape {x.shape}."
    )


def _fits(shape: tuple, expected: tuple) -> bool:
    """Whether `shape` is `expected`, a `None` (a variable dimension) matching any size."""
    return len(shape) == len(expected) and all(e is None or s == e for s, e in zip(shape, expected))


def check_same_length(x: np.ndarray, y: np.ndarray, x_name="x", y_name="y") -> None:
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"`{x_name}` and `{y_name}` must hold the same number of samples; got {x.shape[0]} "
            f"in `{x_name}` and {y.shape[0]} in `{y_name}`."
        )


def check_count(value, name: str, minimum: int) -> int:
    """An integer argument (epochs, frequencies) that must be at least `minimum`."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}. Received: {name}={value!r}")
    return int(value)


def check_batch_size(batch_size, name: str = "batch_size") -> int:
    if batch_size is None:
        return 32
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, (int, np.integer))
        or batch_size <= 0
    ):
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={batch_size!r}")
    return int(batch_size)


def validation_split_index(n: int, validation_split) -> int:
    """Keras's split: the first `floor(n * (1 - validation_split))` samples train, the rest
    validate, taken before any shuffling."""
    if (
        isinstance(validation_split, bool)
        or not isinstance(validation_split, (int, float))
        or not 0 <= validation_split < 1
    ):
        raise ValueError(
            "`validation_split` must be a float in [0, 1). "
            f"Received: validation_split={validation_split!r}"
        )
    split_at = int(math.floor(n * (1.0 - validation_split)))
    if split_at == 0 or split_at == n:
        raise ValueError(
            f"Training data contains {n} samples, which is not sufficient to split it into a "
            f"validation and training set as specified by `validation_split={validation_split}`. "
            "Either provide more data, or a different value for the `validation_split` argument."
        )
    return split_at


def split_class_mismatch(loss_kind: str, y_train: np.ndarray, y_val: np.ndarray) -> str | None:
    """For a classification loss, what `validation_split` left lopsided: the classes that only
    one side of the split holds, in words, or None when both hold the same classes."""
    train, val = _classes(loss_kind, y_train), _classes(loss_kind, y_val)
    if train is None or val is None:
        return None
    only_val, only_train = sorted(val - train), sorted(train - val)
    parts = []
    if only_val:
        parts.append(
            f"the validation part holds classes {only_val} that the training part lacks "
            "(the model never learns them)"
        )
    if only_train:
        parts.append(f"the training part holds classes {only_train} that the validation part lacks")
    return "; ".join(parts) or None


def _classes(loss_kind: str, y: np.ndarray) -> set[int] | None:
    if loss_kind == "sparse_categorical_crossentropy":
        labels = y
    elif loss_kind == "categorical_crossentropy":
        labels = np.argmax(y, axis=-1)
    elif loss_kind == "binary_crossentropy" and y.size == y.shape[0]:
        labels = y
        if not np.isin(labels, (0, 1)).all():  # soft targets: no classes to compare
            return None
    else:
        return None
    # With counts, NumPy 2's `unique` does not import `numpy.ma` (10 ms, a twentieth of W1).
    classes, _ = np.unique(labels, return_counts=True)
    return {int(c) for c in classes}
