"""gemm_panels (csrc/gemm_kernel.h): A read in place over a packed B, each register tile summed over the
whole k. Against a float64 reference on every SIMD level, with edge tiles in both directions, beta, bias,
the fused activations, a row stride wider than k, a B wider than C; row blocks cut at multiples of MR give
the same bits as one call."""
import numpy as np
import pytest

from nncore._kernels import ACT_CODES, runtime
from nncore._kernels.gemm import gemm_panels, gemm_tile, pack_b

LEVELS = list(range(runtime.simd_level() + 1))


@pytest.fixture(autouse=True)
def _restore_simd_level():
    yield
    runtime.set_simd_level(-1)


def _act(z, name):
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "tanh":
        return np.tanh(z)
    return z


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("level", LEVELS)
def test_against_reference(dtype, level):
    runtime.set_simd_level(level)
    rng = np.random.default_rng(20 + level)
    tol = 1e-4 if dtype == np.float32 else 1e-12
    for m, k, n, nb, act, beta, with_bias, pad in [
            (1, 1, 1, 1, "linear", 0.0, False, 0), (5, 3, 7, 7, "relu", 0.0, True, 0),
            (17, 784, 256, 256, "relu", 0.0, True, 3), (13, 300, 33, 40, "tanh", 0.5, True, 0),
            (1023, 256, 128, 128, "relu", 0.0, True, 0), (1025, 128, 10, 10, "linear", 1.0, False, 1),
            (40, 1000, 65, 65, "linear", -2.0, True, 0)]:
        a = rng.standard_normal((m, k + pad)).astype(dtype)[:, :k]       # row stride k + pad
        B = rng.standard_normal((k, nb)).astype(dtype)
        bias = rng.standard_normal(n).astype(dtype) if with_bias else None
        c0 = rng.standard_normal((m, n)).astype(dtype)
        c = c0.copy()
        gemm_panels(a, pack_b(B), c, beta=beta, bias=bias, act=ACT_CODES[act])
        ref = a.astype(np.float64) @ B[:, :n].astype(np.float64) + beta * c0
        if bias is not None:
            ref += bias
        np.testing.assert_allclose(c, _act(ref, act), rtol=tol, atol=tol * np.sqrt(k))


@pytest.mark.parametrize("level", LEVELS)
def test_row_blocks_at_multiples_of_mr_give_the_same_bits(level):
    runtime.set_simd_level(level)
    rng = np.random.default_rng(3)
    mr, nr = gemm_tile(np.float32)
    for m, k, n in [(1025, 784, 256), (37, 129, 10), (mr * 3 + 1, 5, nr + 1)]:
        a = rng.standard_normal((m, k)).astype(np.float32)
        b = rng.standard_normal(n).astype(np.float32)
        packed = pack_b(rng.standard_normal((k, n)).astype(np.float32))
        whole = gemm_panels(a, packed, np.empty((m, n), np.float32), bias=b, act=ACT_CODES["relu"])
        parts = np.empty((m, n), np.float32)
        for r0 in range(0, m, 2 * mr):
            gemm_panels(a[r0:r0 + 2 * mr], packed, parts[r0:r0 + 2 * mr], bias=b, act=ACT_CODES["relu"])
        np.testing.assert_array_equal(whole, parts)


def test_argument_checks():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((4, 6)).astype(np.float32)
    packed = pack_b(rng.standard_normal((6, 3)).astype(np.float32))
    with pytest.raises(ValueError, match="pack it again"):
        gemm_panels(a[:, :5], packed, np.empty((4, 3), np.float32))
    with pytest.raises(ValueError, match="pack it again"):
        gemm_panels(a, packed, np.empty((4, 4), np.float32))
    with pytest.raises(TypeError):
        gemm_panels(a, packed, np.empty((4, 3), np.float64))
    if runtime.simd_level() > 0:
        runtime.set_simd_level(0)
        with pytest.raises(ValueError, match="SIMD level"):
            gemm_panels(a, packed, np.empty((4, 3), np.float32))
