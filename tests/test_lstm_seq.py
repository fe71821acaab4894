"""The LSTM's step loop in one kernel call (lstm_seq_forward / lstm_seq_backward): against a float64 NumPy
reference of the whole sequence on every SIMD level, awkward shapes (one row, one unit, primes, rows past
a multiple of the micro-tile and of the row blocks), float32 and float64, 1 vs 2 threads bit for bit, the
initial state and its gradient, stale packed kernels and bad shapes."""
import numpy as np
import pytest

from nncore._kernels import ACT_CODES, runtime
from nncore._kernels.gemm import lstm_seq_backward, lstm_seq_forward, pack_b

LEVELS = list(range(runtime.simd_level() + 1))
SIG, TANH = ACT_CODES["sigmoid"], ACT_CODES["tanh"]


@pytest.fixture(autouse=True)
def _restore_simd_level():
    yield
    runtime.set_simd_level(-1)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _reference(zx, U, h0, c0, dh_out, dc_last, with_h0):
    """Forward and backward of the sequence in float64: gates, c, h; delta, dh (with the recurrent
    contributions) and dc of the initial state."""
    T, B, G = zx.shape
    u = G // 4
    h, c = np.zeros((T + 1, B, u)), np.zeros((T + 1, B, u))
    h[0], c[0] = h0, c0
    gates, tc = np.zeros((T, B, G)), np.zeros((T, B, u))
    for t in range(T):
        z = zx[t] + h[t] @ U
        i, f, g, o = _sigmoid(z[:, :u]), _sigmoid(z[:, u:2 * u]), np.tanh(z[:, 2 * u:3 * u]), _sigmoid(z[:, 3 * u:])
        c[t + 1] = f * c[t] + i * g
        tc[t] = np.tanh(c[t + 1])
        h[t + 1] = o * tc[t]
        gates[t] = np.concatenate([i, f, g, o], axis=1)
    dh, dc, delta = dh_out.astype(np.float64).copy(), dc_last.astype(np.float64).copy(), np.zeros((T, B, G))
    for t in range(T - 1, -1, -1):
        i, f, g, o = (gates[t][:, k * u:(k + 1) * u] for k in range(4))
        dct = dc + dh[t + 1] * o * (1 - tc[t] ** 2)
        delta[t] = np.concatenate([dct * g * i * (1 - i), dct * c[t] * f * (1 - f), dct * i * (1 - g ** 2),
                                   dh[t + 1] * tc[t] * o * (1 - o)], axis=1)
        dc = dct * f
        if t or with_h0:
            dh[t] += delta[t] @ U.T
    return gates, c, h, tc, delta, dh, dc


def _run(zx, U, h0, c0, dh_out, dc_last, with_h0, n_threads):
    T, B, G = zx.shape
    u = G // 4
    z, dt = zx.copy(), zx.dtype
    h, c = np.zeros((T + 1, B, u), dt), np.zeros((T + 1, B, u), dt)
    h[0], c[0] = h0, c0
    tc = np.empty((T, B, u), dt)
    lstm_seq_forward(TANH, 0.0, SIG, 0.0, pack_b(U), z, c, tc, h, with_h0, n_threads)
    dh, dc, delta = dh_out.copy(), dc_last.copy(), np.empty((T, B, G), dt)
    lstm_seq_backward(TANH, 0.0, SIG, 0.0, pack_b(U, trans_b=True), z, c, tc, dh, dc, delta, with_h0, n_threads)
    return z, c, h, tc, delta, dh, dc


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("level", LEVELS)
def test_against_reference_and_threads(dtype, level):
    runtime.set_simd_level(level)
    rng = np.random.default_rng(level)
    for T, B, u, with_h0 in [(1, 1, 1, False), (3, 7, 5, True), (5, 29, 13, False), (4, 131, 37, True),
                             (2, 256, 64, False)]:
        G = 4 * u
        zx = rng.standard_normal((T, B, G)).astype(dtype)
        U = (rng.standard_normal((u, G)) / np.sqrt(u)).astype(dtype)
        h0 = (rng.standard_normal((B, u)) if with_h0 else np.zeros((B, u))).astype(dtype)
        c0 = (rng.standard_normal((B, u)) if with_h0 else np.zeros((B, u))).astype(dtype)
        dh_out = rng.standard_normal((T + 1, B, u)).astype(dtype)
        dh_out[0] = 0
        dc_last = rng.standard_normal((B, u)).astype(dtype)
        ref = _reference(zx.astype(np.float64), U.astype(np.float64), h0, c0, dh_out, dc_last, with_h0)
        one = _run(zx, U, h0, c0, dh_out, dc_last, with_h0, 1)
        two = _run(zx, U, h0, c0, dh_out, dc_last, with_h0, 2)
        tol = 2e-4 if dtype == np.float32 else 1e-11
        for name, r, a, b in zip(("gates", "c", "h", "tc", "delta", "dh", "dc"), ref, one, two):
            np.testing.assert_allclose(a, r, rtol=tol, atol=tol, err_msg=f"{name} T={T} B={B} u={u}")
            np.testing.assert_array_equal(a, b, err_msg=f"{name}: 1 vs 2 threads")
        if not with_h0:
            assert not one[5][0].any()       # dh[0] untouched without an initial state


def _inputs(rng, T, B, D, u, with_h0, dtype):
    """x, W, U, bias and the initial state (zeros unless with_h0) of a one-product sequence."""
    G = 4 * u
    x = rng.standard_normal((T, B, D)).astype(dtype)
    W = (rng.standard_normal((D, G)) / np.sqrt(D)).astype(dtype)
    U = (rng.standard_normal((u, G)) / np.sqrt(u)).astype(dtype)
    bias = rng.standard_normal(G).astype(dtype)
    h0 = (rng.standard_normal((B, u)) if with_h0 else np.zeros((B, u))).astype(dtype)
    c0 = (rng.standard_normal((B, u)) if with_h0 else np.zeros((B, u))).astype(dtype)
    return x, W, U, bias, h0, c0


def _run_xh(x, W, U, bias, h0, c0, n_threads):
    """The one-product form: z_t = [x_t | h_{t-1} | 1] [W; U; b] inside the kernel."""
    T, B, D = x.shape
    u, dt = U.shape[0], x.dtype
    h, c = np.zeros((T + 1, B, u), dt), np.zeros((T + 1, B, u), dt)
    h[0], c[0] = h0, c0
    z, tc, xh = np.empty((T, B, 4 * u), dt), np.empty((T, B, u), dt), np.empty((T, B, D + u + 1), dt)
    lstm_seq_forward(TANH, 0.0, SIG, 0.0, pack_b(np.vstack([W, U, bias[None]])), z, c, tc, h, n_threads=n_threads,
                     x=x, xh=xh)
    return z, c, h, tc, xh


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("level", LEVELS)
def test_one_product_against_reference_and_threads(dtype, level):
    runtime.set_simd_level(level)
    rng = np.random.default_rng(10 + level)
    for T, B, D, u, with_h0 in [(1, 1, 1, 1, False), (3, 7, 2, 5, True), (5, 29, 11, 13, False),
                                (4, 131, 28, 37, True), (2, 256, 3, 64, False)]:
        G = 4 * u
        x, W, U, bias, h0, c0 = _inputs(rng, T, B, D, u, with_h0, dtype)
        x64 = x.astype(np.float64)
        zx = x64 @ W.astype(np.float64) + bias.astype(np.float64)
        zero = np.zeros((T + 1, B, u))
        gates, c, h, tc = _reference(zx, U.astype(np.float64), h0, c0, zero, np.zeros((B, u)), with_h0)[:4]
        one = _run_xh(x, W, U, bias, h0, c0, 1)
        two = _run_xh(x, W, U, bias, h0, c0, 2)
        tol = 2e-4 if dtype == np.float32 else 1e-11
        for name, r, a in zip(("gates", "c", "h", "tc"), (gates, c, h, tc), one):
            np.testing.assert_allclose(a, r, rtol=tol, atol=tol, err_msg=f"{name} T={T} B={B} D={D} u={u}")
        for name, a, b in zip(("gates", "c", "h", "tc", "xh"), one, two):
            np.testing.assert_array_equal(a, b, err_msg=f"{name}: 1 vs 2 threads")
        xh = one[4]   # the rows [x_t | h_{t-1} | 1], to the bit
        np.testing.assert_array_equal(xh[:, :, :D], x)
        np.testing.assert_array_equal(xh[:, :, D:D + u], one[2][:T])
        np.testing.assert_array_equal(xh[:, :, D + u], 1)


def _run_fused(x, W, U, bias, h0, c0, dh_out, dc_last, with_h0, keep_delta, n_threads):
    """Forward in the one-product form, then the backward loop that also sums [dW; dU; db] = xh^T delta."""
    z, c, h, tc, xh = _run_xh(x, W, U, bias, h0, c0, n_threads)
    T, B, G = z.shape
    dh, dc = dh_out.copy(), dc_last.copy()
    delta = np.empty((T, B, G), x.dtype) if keep_delta else None
    dP = np.full((xh.shape[2], G), np.nan, x.dtype)     # overwritten, never read
    lstm_seq_backward(TANH, 0.0, SIG, 0.0, pack_b(U, trans_b=True), z, c, tc, dh, dc, delta, with_h0, n_threads,
                      xh=xh, dP=dP)
    return dP, dh, dc, delta


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("level", LEVELS)
def test_fused_weight_gradient(dtype, level):
    """dP = xh^T delta summed inside the backward loop, with and without keeping delta: against the float64
    reference, the same bits for 1 and 2 threads and with or without delta, awkward batches (one row, rows
    past a multiple of the micro-tile and of the row blocks, an odd count of blocks made even)."""
    runtime.set_simd_level(level)
    rng = np.random.default_rng(20 + level)
    for T, B, D, u, with_h0 in [(1, 1, 1, 1, False), (3, 7, 2, 5, True), (5, 29, 11, 13, False),
                                (4, 131, 28, 37, True), (2, 200, 3, 16, False), (3, 72, 4, 8, True),
                                (6, 100, 5, 64, False)]:   # the last one large enough for a team of two
        G = 4 * u
        x, W, U, bias, h0, c0 = _inputs(rng, T, B, D, u, with_h0, dtype)
        dh_out = rng.standard_normal((T + 1, B, u)).astype(dtype)
        dh_out[0] = 0
        dc_last = rng.standard_normal((B, u)).astype(dtype)
        zx = x.astype(np.float64) @ W.astype(np.float64) + bias.astype(np.float64)
        ref = _reference(zx, U.astype(np.float64), h0, c0, dh_out, dc_last, with_h0)
        hr, dr = ref[2], ref[4]
        xh_ref = np.concatenate([x.astype(np.float64), hr[:T], np.ones((T, B, 1))], axis=2)
        dP_ref = xh_ref.reshape(T * B, -1).T @ dr.reshape(T * B, G)
        runs = {(keep, nt): _run_fused(x, W, U, bias, h0, c0, dh_out, dc_last, with_h0, keep, nt)
                for keep in (True, False) for nt in (1, 2)}
        tol = 5e-4 if dtype == np.float32 else 1e-10
        dP, dh, dc, delta = runs[True, 1]
        np.testing.assert_allclose(dP, dP_ref, rtol=tol, atol=tol * np.abs(dP_ref).max(),
                                   err_msg=f"dP T={T} B={B} D={D} u={u}")
        np.testing.assert_allclose(delta, dr, rtol=2e-4 if dtype == np.float32 else 1e-11,
                                   atol=2e-4 if dtype == np.float32 else 1e-11)
        for key, (dP2, dh2, dc2, _) in runs.items():
            np.testing.assert_array_equal(dP2, dP, err_msg=f"dP {key} vs (keep delta, 1 thread)")
            np.testing.assert_array_equal(dh2, dh, err_msg=f"dh {key}")
            np.testing.assert_array_equal(dc2, dc, err_msg=f"dc {key}")
        np.testing.assert_array_equal(runs[True, 2][3], delta)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("level", LEVELS)
def test_add_dh_false(dtype, level):
    """add_dh=False (only the last output has a gradient): dh[0:T] are written, never read (NaN there on
    entry), and everything equals add_dh=True on zeros there, bit for bit, with and without dP, 1 and 2
    threads."""
    runtime.set_simd_level(level)
    rng = np.random.default_rng(30 + level)
    for T, B, D, u, with_h0 in [(1, 1, 1, 1, True), (3, 7, 2, 5, False), (4, 131, 28, 37, True),
                                (6, 100, 5, 64, False)]:
        G = 4 * u
        x, W, U, bias, h0, c0 = _inputs(rng, T, B, D, u, with_h0, dtype)
        z, c, h, tc, xh = _run_xh(x, W, U, bias, h0, c0, 1)
        Ut = pack_b(U, trans_b=True)
        dh_out = np.zeros((T + 1, B, u), dtype)
        dh_out[T] = rng.standard_normal((B, u))
        dc_last = rng.standard_normal((B, u)).astype(dtype)
        first = 0 if with_h0 else 1                 # dh[0] is written only with an initial state
        for fused in (False, True):
            got = {}
            for add, nt in ((True, 1), (False, 1), (False, 2)):
                dh = dh_out.copy()
                if not add:
                    dh[:T] = np.nan
                dc, delta = dc_last.copy(), np.empty((T, B, G), dtype)
                dP = np.empty((xh.shape[2], G), dtype) if fused else None
                lstm_seq_backward(TANH, 0.0, SIG, 0.0, Ut, z, c, tc, dh, dc, delta, with_h0, nt,
                                  xh=xh if fused else None, dP=dP, add_dh=add)
                got[add, nt] = (dh[first:], dc, delta) + ((dP,) if fused else ())
            for key in ((False, 1), (False, 2)):
                for a, b in zip(got[True, 1], got[key]):
                    np.testing.assert_array_equal(b, a, err_msg=f"add_dh {key} T={T} B={B} u={u} fused={fused}")


def test_errors():
    rng = np.random.default_rng(1)
    T, B, u = 3, 5, 4
    U = rng.standard_normal((u, 4 * u)).astype(np.float32)
    z = np.zeros((T, B, 4 * u), np.float32)
    c, h, tc = (np.zeros((T + 1, B, u), np.float32), np.zeros((T + 1, B, u), np.float32),
                np.zeros((T, B, u), np.float32))
    with pytest.raises(ValueError, match="pack it again"):
        lstm_seq_forward(TANH, 0.0, SIG, 0.0, pack_b(U, trans_b=True), z, c, tc, h)   # U^T: (16, 4) not (4, 16)
    with pytest.raises(ValueError, match="pack it again"):
        lstm_seq_forward(TANH, 0.0, SIG, 0.0, pack_b(np.ascontiguousarray(U[:, :12])), z, c, tc, h)
    with pytest.raises(ValueError, match=r"h: expected shape \(4, 5, 4\)"):
        lstm_seq_forward(TANH, 0.0, SIG, 0.0, pack_b(U), z, c, tc, h[1:])
    with pytest.raises(ValueError, match="4 \\* units"):
        lstm_seq_forward(TANH, 0.0, SIG, 0.0, pack_b(U), np.zeros((T, B, 15), np.float32), c, tc, h)
    with pytest.raises(TypeError, match="float32"):
        lstm_seq_forward(TANH, 0.0, SIG, 0.0, pack_b(U), z, c.astype(np.float64), tc, h)
    with pytest.raises(ValueError, match="activation"):
        lstm_seq_forward(ACT_CODES["gelu"], 0.0, SIG, 0.0, pack_b(U), z, c, tc, h)
    dh, dc, d = np.zeros((T + 1, B, u), np.float32), np.zeros((B, u), np.float32), np.zeros_like(z)
    with pytest.raises(ValueError, match=r"dh: expected shape \(4, 5, 4\)"):
        lstm_seq_backward(TANH, 0.0, SIG, 0.0, pack_b(U, trans_b=True), z, c, tc, dh[1:], dc, d)
    with pytest.raises(ValueError, match="pack it again"):
        lstm_seq_backward(TANH, 0.0, SIG, 0.0, pack_b(U), z, c, tc, dh, dc, d)
    with pytest.raises(ValueError, match="delta may be None only"):
        lstm_seq_backward(TANH, 0.0, SIG, 0.0, pack_b(U, trans_b=True), z, c, tc, dh, dc, None)
    xk = np.zeros((T, B, u + 3), np.float32)
    with pytest.raises(ValueError, match="go together"):
        lstm_seq_backward(TANH, 0.0, SIG, 0.0, pack_b(U, trans_b=True), z, c, tc, dh, dc, d, xh=xk)
    with pytest.raises(ValueError, match="dP"):
        lstm_seq_backward(TANH, 0.0, SIG, 0.0, pack_b(U, trans_b=True), z, c, tc, dh, dc, d, xh=xk,
                          dP=np.zeros((u + 2, 4 * u), np.float32))
    with pytest.raises(ValueError, match="read-only"):
        d.flags.writeable = False
        lstm_seq_backward(TANH, 0.0, SIG, 0.0, pack_b(U, trans_b=True), z, c, tc, dh, dc, d)
    xs, xh = np.zeros((T, B, 2), np.float32), np.zeros((T, B, 2 + u + 1), np.float32)
    P = pack_b(rng.standard_normal((2 + u + 1, 4 * u)).astype(np.float32))
    with pytest.raises(ValueError, match="go together"):
        lstm_seq_forward(TANH, 0.0, SIG, 0.0, P, z, c, tc, h, x=xs)
    with pytest.raises(ValueError, match=r"xh: expected shape \(3, 5, 7\)"):
        lstm_seq_forward(TANH, 0.0, SIG, 0.0, P, z, c, tc, h, x=xs, xh=np.zeros((T, B, 2 + u), np.float32))
    with pytest.raises(ValueError, match="pack it again"):
        lstm_seq_forward(TANH, 0.0, SIG, 0.0, pack_b(U), z, c, tc, h, x=xs, xh=xh)   # U alone, not [W; U; b]
    with pytest.raises(TypeError, match="float32"):
        lstm_seq_forward(TANH, 0.0, SIG, 0.0, P, z, c, tc, h, x=xs.astype(np.float64), xh=xh)
