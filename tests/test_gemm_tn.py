"""gemm_tn (csrc/gemm_kernel.h): C := A^T B with A (k x m) and B (k x n) read in place, k their rows,
nothing packed (Winograd's dU = V^T dM). Against a float64 reference on every SIMD level, with edge
tiles in both directions, row strides wider than the rows, k over several k blocks; the same bits as
gemm(trans_a=True) where that packs both operands; C only written; bad input refused."""
import numpy as np
import pytest

from nncore._kernels import runtime
from nncore._kernels.gemm import gemm, gemm_tile, gemm_tn

LEVELS = list(range(runtime.simd_level() + 1))


@pytest.fixture(autouse=True)
def _restore_simd_level():
    yield
    runtime.set_simd_level(-1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("level", LEVELS)
def test_against_reference(dtype, level):
    runtime.set_simd_level(level)
    rng = np.random.default_rng(40 + level)
    tol = 1e-4 if dtype == np.float32 else 1e-12
    for k, m, n, pa, pb in [(1, 1, 1, 0, 0), (3, 5, 7, 1, 2), (1152, 32, 64, 0, 0), (1152, 96, 64, 3, 0),
                            (777, 13, 33, 0, 5), (40, 7, 17, 9, 0), (2, 100, 3, 0, 0), (1000, 8, 16, 0, 0),
                            (385, 9, 31, 2, 1)]:
        a = rng.standard_normal((k, m + pa)).astype(dtype)[:, :m]    # row stride m + pa
        b = rng.standard_normal((k, n + pb)).astype(dtype)[:, :n]
        c = np.full((m, n), np.nan, dtype)                           # never read
        assert gemm_tn(a, b, c) is c
        ref = a.astype(np.float64).T @ b.astype(np.float64)
        np.testing.assert_allclose(c, ref, rtol=tol, atol=tol * np.sqrt(k))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("level", LEVELS)
def test_same_bits_as_the_packed_gemm(dtype, level):
    """gemm(trans_a=True) packs both operands for more than 4 row panels and m n k > 128^3: the same k
    blocks and register tiles, so the same sums in the same order."""
    runtime.set_simd_level(level)
    mr, nr = gemm_tile(dtype)
    rng = np.random.default_rng(7)
    for k, m, n in [(1152, 4 * mr + 1, 64), (2000, 6 * mr + 3, nr + 5), (1153, 96, 3 * nr - 1)]:
        k = max(k, 128 ** 3 // (m * n) + 1)          # past the direct path's work
        a = rng.standard_normal((k, m)).astype(dtype)
        b = rng.standard_normal((k, n)).astype(dtype)
        ref = gemm(a, b, np.empty((m, n), dtype), trans_a=True)
        out = gemm_tn(a, b, np.empty((m, n), dtype))
        assert np.array_equal(out, ref), (k, m, n)


def test_empty_and_k_zero():
    c = np.full((3, 4), np.nan, np.float32)
    gemm_tn(np.empty((0, 3), np.float32), np.empty((0, 4), np.float32), c)
    assert np.array_equal(c, np.zeros((3, 4), np.float32))
    gemm_tn(np.empty((5, 0), np.float32), np.ones((5, 4), np.float32), np.empty((0, 4), np.float32))


def test_bad_input_is_refused():
    a, b = np.ones((5, 3), np.float32), np.ones((5, 4), np.float32)
    with pytest.raises(ValueError, match="gemm_tn: b: expected 5 rows"):
        gemm_tn(a, np.ones((6, 4), np.float32), np.empty((3, 4), np.float32))
    with pytest.raises(ValueError, match=r"c: expected shape \(3, 4\)"):
        gemm_tn(a, b, np.empty((4, 3), np.float32))
    with pytest.raises(TypeError, match="expected dtype float32"):
        gemm_tn(a, b.astype(np.float64), np.empty((3, 4), np.float32))
    with pytest.raises(ValueError, match="C-contiguous"):
        gemm_tn(np.ones((3, 5), np.float32).T, b, np.empty((3, 4), np.float32))
    with pytest.raises(ValueError, match="read-only"):
        c = np.empty((3, 4), np.float32)
        c.flags.writeable = False
        gemm_tn(a, b, c)
