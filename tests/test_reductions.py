"""Reductions (colsum, sumsq, all_finite) and the row gather against NumPy in float64."""
import numpy as np
import pytest

from nncore._kernels import elementwise as ew
from nncore._kernels import runtime as rt

# every test here runs at each SIMD level this machine runs (conftest.simd_level)
pytestmark = pytest.mark.usefixtures("simd_level")

SHAPES = [(1, 1), (1, 13), (13, 1), (7, 127), (4095, 3), (4097, 2), (257, 257), (3000, 41), (50, 4097), (300, 9000)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
def test_colsum(shape, dtype):
    x = np.random.default_rng(shape[0]).normal(size=shape).astype(dtype)
    out = np.full(shape[1], np.nan, dtype)
    ew.colsum(x, out, 1)
    tol = dict(rtol=1e-5, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-11)
    np.testing.assert_allclose(out, x.astype(np.float64).sum(axis=0), **tol)
    out2 = np.empty_like(out)
    ew.colsum(x, out2, 2)
    np.testing.assert_array_equal(out, out2)  # each column is summed in row order on any team


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [0, 1, 7, 4095, 4096, 4097, 300007])
def test_sumsq(n, dtype):
    x = np.random.default_rng(n).normal(size=n).astype(dtype)
    s1 = ew.sumsq(x, 1)
    want = float((x.astype(np.float64) ** 2).sum())
    np.testing.assert_allclose(s1, want, rtol=1e-12, atol=0)  # accumulated in double
    for nt in (2, 3):
        assert ew.sumsq(x, nt) == s1  # fixed chunks combined in a fixed order


def test_sumsq_team_really_forms():
    assert rt.team_size(2, 300007.0) == min(2, rt.omp_max_threads())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_all_finite(dtype):
    x = np.ones(10007, dtype)
    assert ew.all_finite(x, 2)
    for bad in (np.nan, np.inf, -np.inf):
        y = x.copy()
        y[5003] = bad
        assert not ew.all_finite(y, 2)
    assert ew.all_finite(np.array([np.finfo(dtype).max, -np.finfo(dtype).max], dtype), 1)
    assert ew.all_finite(np.zeros(0, dtype), 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_take_rows(dtype):
    src = np.arange(35, dtype=dtype).reshape(7, 5)
    idx = np.array([6, 0, 3, 3], np.int64)
    dst = np.empty((4, 5), dtype)
    ew.take_rows(src, idx, dst)
    np.testing.assert_array_equal(dst, src[idx])
    with pytest.raises(IndexError, match="out of range"):
        ew.take_rows(src, np.array([7], np.int64), np.empty((1, 5), dtype))
    with pytest.raises(IndexError, match="out of range"):
        ew.take_rows(src, np.array([-1], np.int64), np.empty((1, 5), dtype))


def test_errors():
    with pytest.raises(ValueError, match=r"expected shape \(3,\)"):
        ew.colsum(np.zeros((2, 3)), np.zeros(4), 1)
    with pytest.raises(ValueError, match="2-D"):
        ew.colsum(np.zeros(3), np.zeros(3), 1)
    with pytest.raises(TypeError, match="float32 or float64"):
        ew.sumsq(np.zeros(3, np.int64), 1)
    with pytest.raises(TypeError, match="int64"):
        ew.take_rows(np.zeros((2, 2)), np.zeros(1, np.int32), np.zeros((1, 2)))
