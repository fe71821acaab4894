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
@pytest.mark.parametrize("level", range(runtime.simd_level() + 1))
def test_conv_pool_pair_kernels_read_only_inside_their_arrays(level):
    from nncore._kernels import ACT_CODES
    from nncore._kernels import conv

    runtime.set_simd_level(level)
    rng = np.random.default_rng(level)
    relu = ACT_CODES["relu"]
    # odd conv outputs (the dropped row and column), c = 1 (3-value runs of im2col), a padded case
    for n, h, w, c, f, pad, out in ((3, 9, 7, 1, 5, (0, 0), (7, 5)), (2, 6, 8, 3, 17, (1, 1), (6, 8)),
                                    (1, 4, 4, 2, 1, (0, 0), (2, 2))):
        x = guarded((n, h, w, c), np.float32)
        x[...] = rng.standard_normal(x.shape)
        kern = guarded((9 * c, f), np.float32)
        kern[...] = rng.standard_normal(kern.shape)
        bias = guarded((f,), np.float32)
        bias[...] = 0.1
        ps = (n, out[0] // 2, out[1] // 2, f)
        yp, ix, dyp = guarded(ps, np.float32), guarded(ps, np.uint8), guarded(ps, np.float32)
        dyp[...] = rng.standard_normal(ps)
        geo = ((3, 3), (1, 1), (1, 1), pad, out)
        conv.conv_pool_forward(x, kern, yp, bias, relu, 0.0, *geo, idx=ix)
        dk, db = guarded(kern.shape, np.float32), guarded((f,), np.float32)
        delta = guarded((n * out[0] * out[1], f), np.float32)
        conv.conv_pool_backward_weights(x, dyp, yp, ix, dk, db, relu, delta, *geo)
        conv.conv_pool_backward_weights(x, dyp, yp, ix, dk, None, relu, None, *geo)


@pytest.mark.skipif(not LINUX, reason="mprotect through ctypes")
@pytest.mark.parametrize("level", range(runtime.simd_level() + 1))
def test_winograd_pair_kernels_read_only_inside_their_arrays(level):
    from nncore._kernels import ACT_CODES
    from nncore._kernels import conv

    runtime.set_simd_level(level)
    rng = np.random.default_rng(level + 10)
    relu = ACT_CODES["relu"]
    for m in (2, 4):
        for n, h, w, c, f, pad, out in ((2, 13, 13, 3, 5, (0, 0), (11, 11)), (1, 6, 9, 20, 17, (1, 1), (6, 9))):
            x = guarded((n, h, w, c), np.float32)
            x[...] = rng.standard_normal(x.shape)
            kern = guarded((3, 3, c, f), np.float32)
            kern[...] = rng.standard_normal(kern.shape)
            bias = guarded((f,), np.float32)
            bias[...] = 0.1
            su, sv, sm = conv.wino_sizes(x.shape, kern.shape, m, out)
            U, V, M, dU = (guarded((s,), np.float32) for s in (su, sv, sm, su))
            ps = (n, out[0] // 2, out[1] // 2, f)
            yp, ix, dyp = guarded(ps, np.float32), guarded(ps, np.uint8), guarded(ps, np.float32)
            dyp[...] = rng.standard_normal(ps)
            for bf16 in (False, True):
                conv.wino_pool_forward(x, kern, bias, U, V, yp, ix, out, m, pad, relu, 0.0, 1, bf16)
                dk, dx = guarded(kern.shape, np.float32), guarded(x.shape, np.float32)
                conv.wino_pool_backward(dyp, yp, ix, U, V, M, dU, dk, dx, (h, w), out, m, pad, relu, 2, bf16)
                conv.unpool2_colsum(yp, ix, dyp, guarded((f,), np.float32), out, relu)


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


@pytest.mark.skipif(not LINUX, reason="mprotect through ctypes")
@pytest.mark.parametrize("level", range(runtime.simd_level() + 1))
def test_lstm_step_loops_read_only_inside_their_arrays(level):
    # the step loops' arrays each end at a PROT_NONE page: their reads and writes stay inside (a prefetch
    # never faults, so the backward's requests for the next panel's lines are not checked here: they are
    # counted from each range's start, csrc/gemm_rnn_body.h rnn_pf_add); a batch of a partial last tile,
    # one and two threads: the same bits as on ordinary arrays
    from nncore._kernels import ACT_CODES
    from nncore._kernels.gemm import lstm_seq_backward, lstm_seq_forward, pack_b

    runtime.set_simd_level(level)
    tanh, sig = ACT_CODES["tanh"], ACT_CODES["sigmoid"]
    rng = np.random.default_rng(level)
    for T, B, D, u in ((3, 13, 5, 7), (2, 17, 3, 16)):
        G, K = 4 * u, D + u + 1
        P = (rng.standard_normal((K, G)) * 0.3).astype(np.float32)
        U = np.ascontiguousarray(P[D:D + u])
        x0 = rng.standard_normal((T, B, D)).astype(np.float32)
        dh0 = rng.standard_normal((T + 1, B, u)).astype(np.float32)
        runs = []
        for place, nt in ((np.empty, 1), (guarded, 1), (guarded, 2)):
            def arr(shape, init=None):
                a = place(shape, np.float32) if place is guarded else np.empty(shape, np.float32)
                a[...] = 0 if init is None else init
                return a
            x, z, c, tc, h = arr((T, B, D), x0), arr((T, B, G)), arr((T + 1, B, u)), arr((T, B, u)), arr((T + 1, B, u))
            xh, dh, dc, dP = arr((T, B, K)), arr((T + 1, B, u), dh0), arr((B, u)), arr((K, G))
            Pp, Utp = pack_b(P), pack_b(U, trans_b=True)
            lstm_seq_forward(tanh, 0, sig, 0, Pp, z, c, tc, h, n_threads=nt, x=x, xh=xh)
            lstm_seq_backward(tanh, 0, sig, 0, Utp, z, c, tc, dh, dc, None, n_threads=nt, xh=xh, dP=dP, add_dh=False)
            runs.append([np.array(a) for a in (h, c, dh, dc, dP)])
        for other in runs[1:]:
            for a, b in zip(runs[0], other):
                np.testing.assert_array_equal(a, b)
