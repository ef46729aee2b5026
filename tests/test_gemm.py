"""The engine's GEMM (`pynn._core.matmul`) against NumPy, on shapes that exercise the tails of
its microkernels, and its argument checks."""

import numpy as np
import pytest

from pynn import _core

SHAPES = [(1, 1, 1), (3, 5, 7), (17, 33, 9), (128, 400, 120), (100, 25, 6), (0, 4, 3), (2, 0, 3)]


@pytest.mark.parametrize("m,k,n", SHAPES)
def test_matmul_matches_numpy(m, k, n):
    rng = np.random.default_rng(m * 1000 + k * 10 + n)
    a = rng.normal(size=(m, k)).astype(np.float32)
    b = rng.normal(size=(k, n)).astype(np.float32)
    expected = a.astype(np.float64) @ b.astype(np.float64)
    np.testing.assert_allclose(_core.matmul(a, b), expected, rtol=1e-5, atol=1e-5 * np.sqrt(k))


def test_matmul_names_mismatched_shapes():
    with pytest.raises(ValueError, match="`b` needs 3 rows"):
        _core.matmul(np.ones((2, 3), np.float32), np.ones((4, 2), np.float32))


def test_matmul_rejects_strided_views():
    a = np.ones((4, 6), np.float32)[:, ::2]
    with pytest.raises(ValueError, match="a"):
        _core.matmul(a, np.ones((3, 2), np.float32))
