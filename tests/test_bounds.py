"""Reads stay inside their arrays, and inputs the kernels cannot read are refused or converted.

The operands are placed so that they end where a page that cannot be read begins (`guarded`): a kernel
that reads one byte past its array faults there (the test process dies), where an ordinary heap
allocation would give it whatever lies beyond. Found by the review of session 14: the AVX2 one-row int8
kernel read B's rows k..k+2 in its last group of 4 (k % 4 != 0) in place (found by engineer i8avx2 too,
whose test of it this one takes in: every kernel, both activation ranges, A guarded as well).
"""
import ctypes
import mmap
import platform

import numpy as np
import pytest

from nncore._kernels import int8, runtime
from nncore._kernels.gemm import gemm_tn
from nncore.layers import Dense
from nncore.models import Sequential

PAGE = mmap.PAGESIZE
LINUX = platform.system() == "Linux"
if LINUX:
    _libc = ctypes.CDLL(None)
    _libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_regions = []   # the mappings stay alive while their arrays may still be read


def guarded(shape, dtype):
    """An uninitialised C-contiguous array whose last byte lies just before a PROT_NONE page."""
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    pages = -(-max(nbytes, 1) // PAGE)
    region = mmap.mmap(-1, (pages + 1) * PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    raw = np.frombuffer(region, np.uint8)
    assert _libc.mprotect(raw.ctypes.data + pages * PAGE, PAGE, 0) == 0
    _regions.append(region)
    return raw[pages * PAGE - nbytes:pages * PAGE].view(dtype).reshape(shape)


@pytest.fixture(autouse=True)
def _restore():
    yield
    int8.set_kernel(None)
    runtime.set_simd_level(-1)


@pytest.mark.skipif(not LINUX, reason="mprotect through ctypes")
@pytest.mark.parametrize("qmax", [63, 127])
@pytest.mark.parametrize("kernel", list(int8.KERNELS))
def test_int8_few_row_kernels_read_only_inside_a_and_b(kernel, qmax):
    if not int8.available(kernel, qmax):
        pytest.skip(f"{kernel} does not run inputs of |x| <= {qmax} here")
    int8.set_kernel(kernel)
    assert int8.kernel(qmax) == kernel
    rng = np.random.default_rng(kernel.__len__() + qmax)
    for m in (1, 2, 3, 5, 8, 9):                   # the direct path (<= 8 rows) and one past it
        for k in (1, 2, 3, 5, 29, 63, 65):         # k % 4 != 0: the last group of 4 is partial
            for n in (1, 31, 33, 40, 63, 64, 65, 100):
                a, b = guarded((m, k), np.int8), guarded((k, n), np.int8)
                a[...] = rng.integers(-qmax, qmax + 1, (m, k))
                b[...] = rng.integers(-127, 128, (k, n))
                c = np.full((m, n), -7, np.int32)
                int8.gemm_s8s32(a, b, c, qmax=qmax)
                np.testing.assert_array_equal(c, a.astype(np.int64) @ b.astype(np.int64),
                                              err_msg=f"{kernel} m={m} k={k} n={n}")


def test_foreign_byte_order_is_converted_on_the_model_paths_and_refused_by_the_kernels():
    rng = np.random.default_rng(0)
    model = Sequential([Dense(8, activation="relu", input_dim=5), Dense(3)])
    x = rng.standard_normal((4, 5)).astype(np.float32)
    want = model(x)
    swapped = x.astype(">f4")
    assert swapped.dtype.num == x.dtype.num           # the same NPY_FLOAT32 type number: only the order differs
    np.testing.assert_array_equal(model(swapped), want)
    np.testing.assert_array_equal(model.predict_on_batch(swapped), want)
    np.testing.assert_array_equal(model.predict(swapped, verbose=0), want)
    assert model._dense_chain().take(swapped, 1) is None
    with pytest.raises(TypeError, match="byte order"):
        int8.gemm_int8(swapped, np.ones((5, 3), np.int8), np.ones(3, np.float32), np.empty((4, 3), np.float32),
                       qmax=127)


@pytest.mark.skipif(not LINUX, reason="mprotect through ctypes")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_tn_reads_only_inside_a_and_b(simd_level, dtype):
    """gemm_tn reads A and B in place: a column edge's last vector of B is loaded masked, a row edge
    reads only its rows of A, on every SIMD level."""
    rng = np.random.default_rng(11)
    for k in (1, 3, 385):
        for m in (1, 5, 7, 9, 33):
            for n in (1, 3, 15, 17, 33):
                a, b = guarded((k, m), dtype), guarded((k, n), dtype)
                a[...] = rng.standard_normal((k, m))
                b[...] = rng.standard_normal((k, n))
                c = gemm_tn(a, b, np.empty((m, n), dtype))
                np.testing.assert_allclose(c, a.T.astype(np.float64) @ b, rtol=1e-4, atol=1e-4 * np.sqrt(k))
