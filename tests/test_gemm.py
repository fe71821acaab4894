"""nc_gemm against a float64 NumPy reference: every transpose pair, both
dtypes, awkward shapes around the blocking table, alpha/beta, the fused
bias + activation epilogue, threads, every SIMD level, and bad input."""
import itertools
import math

import numpy as np
import pytest
from scipy.special import erf

from nncore._kernels import ACT_CODES, ACT_DEFAULT_ALPHA, runtime
from nncore._kernels import gemm as gemm_module
from nncore._kernels.gemm import gemm, gemm_packed, gemm_ref, pack_b

DTYPES = [np.float32, np.float64]
TRANS = list(itertools.product([False, True], repeat=2))
LEVELS = list(range(runtime.simd_level() + 1))  # 0 generic, 1 avx2+fma, 2 avx512

# The blocking table of csrc/gemm_config.h, per level: MR, NR (f32, f64), MC, KC.
# Sizes one below, at and one above each of them hit every edge of the loops.
EDGE_SIZES = sorted({1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 15, 16, 17, 31, 32, 33, 63, 64, 65, 95, 96, 97, 127, 128, 129})
KC_SIZES = [255, 256, 257, 383, 384, 385, 511, 512, 513]


@pytest.fixture(autouse=True)
def _restore_simd_level():
    yield
    runtime.set_simd_level(-1)


def _act_ref(name, z, alpha):
    """float64 activations from FORMULAS.md (Keras 3)."""
    if name == "linear":
        return z
    if name == "step":
        return (z >= 0).astype(np.float64)
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-z))
    if name == "tanh":
        return np.tanh(z)
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "leaky_relu":
        return np.where(z > 0, z, alpha * z)
    if name == "elu":
        return np.where(z > 0, z, alpha * np.expm1(z))
    if name == "selu":
        return 1.0507009873554805 * np.where(z > 0, z, 1.6732632423543772 * np.expm1(z))
    if name == "gelu":
        return 0.5 * z * (1.0 + erf(z / math.sqrt(2.0)))
    if name == "gelu_tanh":
        return 0.5 * z * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (z + 0.044715 * z**3)))
    if name == "softplus":
        return np.logaddexp(0.0, z)
    if name == "hard_sigmoid":
        return np.clip(z / 6.0 + 0.5, 0.0, 1.0)
    if name in ("swish", "silu"):
        return z / (1.0 + np.exp(-z))
    raise KeyError(name)


def _operands(rng, m, n, k, ta, tb, dtype):
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
    return a, b


def _ref(a, b, ta, tb, alpha=1.0, beta=0.0, c0=None, bias=None):
    A = a.astype(np.float64)
    B = b.astype(np.float64)
    z = alpha * ((A.T if ta else A) @ (B.T if tb else B))
    if beta != 0:
        z = z + beta * c0.astype(np.float64)
    if bias is not None:
        z = z + bias.astype(np.float64)
    return z


def _tol(dtype, k, scale=1.0):
    # |error| of a k-term dot product of N(0,1) values: terms and partial sums
    # are O(sqrt(k)) and round-off adds up like sqrt(k) eps of them; a wrong
    # index or a dropped term errs by O(1) instead
    return 64.0 * np.finfo(dtype).eps * max(k, 1) * max(scale, 1.0)


def _check(c, ref, dtype, k, scale=1.0):
    assert c.dtype == dtype
    err = np.abs(c.astype(np.float64) - ref).max() if c.size else 0.0
    assert err <= _tol(dtype, k, scale), f"max error {err:.3g} > {_tol(dtype, k, scale):.3g}"


# ---------------------------------------------------------------- shapes

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ta,tb", TRANS)
@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (1, 37, 5), (37, 1, 5), (1, 1, 64), (7, 13, 127), (13, 7, 257),
                                   (127, 257, 13), (257, 127, 7), (3, 300, 2), (300, 3, 300)])
def test_shapes_all_transposes(dtype, ta, tb, m, n, k):
    rng = np.random.default_rng(m * 1000 + n * 10 + k)
    a, b = _operands(rng, m, n, k, ta, tb, dtype)
    c = np.full((m, n), np.nan, dtype)
    out = gemm(a, b, c, trans_a=ta, trans_b=tb)
    assert out is c
    _check(c, _ref(a, b, ta, tb), dtype, k)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("level", LEVELS)
def test_block_edges_every_level(dtype, level):
    """m, n around MR/NR/MC multiples and k around KC, on each SIMD level."""
    runtime.set_simd_level(level)
    rng = np.random.default_rng(level)
    for ta, tb in TRANS:
        for m, n in [(s, t) for s in EDGE_SIZES[::3] for t in EDGE_SIZES[1::4]]:
            k = int(rng.integers(1, 40))
            a, b = _operands(rng, m, n, k, ta, tb, dtype)
            c = rng.standard_normal((m, n)).astype(dtype)
            c0 = c.copy()
            gemm(a, b, c, trans_a=ta, trans_b=tb, alpha=0.75, beta=-0.5)
            _check(c, _ref(a, b, ta, tb, 0.75, -0.5, c0), dtype, k)
        for k in KC_SIZES:
            m, n = 97, 65
            a, b = _operands(rng, m, n, k, ta, tb, dtype)
            c = rng.standard_normal((m, n)).astype(dtype)
            c0 = c.copy()
            gemm(a, b, c, trans_a=ta, trans_b=tb, alpha=1.25, beta=2.0)
            _check(c, _ref(a, b, ta, tb, 1.25, 2.0, c0), dtype, k, scale=2.0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ta,tb", TRANS)
def test_mc_nc_blocks_and_threads(dtype, ta, tb):
    """Several MC and KC blocks of A, several NR panels; 1 and 2 threads agree."""
    rng = np.random.default_rng(7)
    m, n, k = 289, 131, 520
    a, b = _operands(rng, m, n, k, ta, tb, dtype)
    c0 = rng.standard_normal((m, n)).astype(dtype)
    ref = _ref(a, b, ta, tb, -1.0, 0.5, c0)
    outs = []
    for nt in (1, 2):
        c = c0.copy()
        gemm(a, b, c, trans_a=ta, trans_b=tb, alpha=-1.0, beta=0.5, n_threads=nt)
        _check(c, ref, dtype, k)
        outs.append(c)
    # each element is summed in the same order whatever the thread count
    np.testing.assert_array_equal(outs[0], outs[1])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ta,tb", TRANS)
def test_large_random_vector_check(dtype, ta, tb):
    """1025 x 513 x 257: C t == beta C0 t + alpha A (B t), cheap in float64."""
    rng = np.random.default_rng(11)
    m, n, k = 1025, 513, 257
    a, b = _operands(rng, m, n, k, ta, tb, dtype)
    c0 = rng.standard_normal((m, n)).astype(dtype)
    c = c0.copy()
    alpha, beta = 0.5, -1.5
    gemm(a, b, c, trans_a=ta, trans_b=tb, alpha=alpha, beta=beta, n_threads=2)
    t = rng.standard_normal(n)
    A = a.astype(np.float64).T if ta else a.astype(np.float64)
    B = b.astype(np.float64).T if tb else b.astype(np.float64)
    want = beta * (c0.astype(np.float64) @ t) + alpha * (A @ (B @ t))
    got = c.astype(np.float64) @ t
    tol = _tol(dtype, k, 2.0) * math.sqrt(n) * 4
    assert np.abs(got - want).max() <= tol


@pytest.mark.parametrize("dtype", DTYPES)
def test_several_nc_blocks(dtype):
    """n above NC (3072 float32, 2048 float64): the jc loop of the packed path."""
    rng = np.random.default_rng(13)
    m, n, k = 41, 3090, 70
    for ta, tb in [(False, False), (True, True)]:
        a, b = _operands(rng, m, n, k, ta, tb, dtype)
        bias = rng.standard_normal(n).astype(dtype)
        c = np.full((m, n), np.nan, dtype)
        gemm(a, b, c, trans_a=ta, trans_b=tb, bias=bias, act=ACT_CODES["relu"], n_threads=1)
        _check(c, np.maximum(_ref(a, b, ta, tb, bias=bias), 0), dtype, k)


def test_concurrent_calls_from_python_threads():
    """No shared buffers: calls running at once (GIL released) stay correct."""
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(17)
    jobs = []
    for i in range(8):
        m, n, k = 60 + 13 * i, 150 - 7 * i, 300 + i
        a, b = _operands(rng, m, n, k, False, bool(i % 2), np.float32)
        jobs.append((a, b, bool(i % 2), np.full((m, n), np.nan, np.float32)))

    def run(job):
        a, b, tb, c = job
        for _ in range(5):
            gemm(a, b, c, trans_b=tb, n_threads=2)
        return c

    with ThreadPoolExecutor(4) as ex:
        outs = list(ex.map(run, jobs))
    for (a, b, tb, _), c in zip(jobs, outs):
        _check(c, _ref(a, b, False, tb), np.float32, a.shape[1])


def test_thin_and_wide_shapes_two_threads():
    """The thread grid splits rows or columns; both directions and direct path."""
    rng = np.random.default_rng(3)
    for m, n, k in [(2, 3000, 70), (3000, 2, 70), (5, 4000, 33), (700, 700, 3)]:
        for dtype in DTYPES:
            for ta, tb in TRANS:
                a, b = _operands(rng, m, n, k, ta, tb, dtype)
                c1 = np.full((m, n), np.nan, dtype)
                c2 = np.full((m, n), np.nan, dtype)
                gemm(a, b, c1, trans_a=ta, trans_b=tb, n_threads=1)
                gemm(a, b, c2, trans_a=ta, trans_b=tb, n_threads=2)
                _check(c1, _ref(a, b, ta, tb), dtype, k)
                np.testing.assert_array_equal(c1, c2)


# ---------------------------------------------------------------- alpha, beta, k = 0

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("alpha,beta", [(1.0, 0.0), (1.0, 1.0), (-2.0, 0.5), (0.0, 3.0), (0.0, 0.0), (0.3, -1.0)])
@pytest.mark.parametrize("m,n,k", [(5, 9, 3), (70, 90, 300)])
def test_alpha_beta(dtype, alpha, beta, m, n, k):
    rng = np.random.default_rng(5)
    a, b = _operands(rng, m, n, k, False, False, dtype)
    c0 = rng.standard_normal((m, n)).astype(dtype)
    c = c0.copy()
    gemm(a, b, c, alpha=alpha, beta=beta)
    _check(c, _ref(a, b, False, False, alpha, beta, c0), dtype, k, scale=abs(alpha) + abs(beta))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("m,n,k", [(3, 5, 4), (40, 70, 50), (130, 150, 600)])
def test_beta_zero_ignores_nan_in_c(dtype, level, m, n, k):
    runtime.set_simd_level(level)
    rng = np.random.default_rng(9)
    for ta, tb in TRANS:
        a, b = _operands(rng, m, n, k, ta, tb, dtype)
        c = np.full((m, n), np.nan, dtype)
        gemm(a, b, c, trans_a=ta, trans_b=tb, alpha=2.0, beta=0.0)
        assert np.isfinite(c).all()
        _check(c, _ref(a, b, ta, tb, 2.0), dtype, k, scale=2.0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_k_zero(dtype):
    """op(A) op(B) is an empty sum: C := act(beta C + bias)."""
    a = np.zeros((4, 0), dtype)
    b = np.zeros((0, 6), dtype)
    c0 = np.arange(24, dtype=dtype).reshape(4, 6) - 10
    bias = np.linspace(-1, 1, 6).astype(dtype)
    c = c0.copy()
    gemm(a, b, c, alpha=2.0, beta=0.5, bias=bias, act=ACT_CODES["relu"])
    np.testing.assert_allclose(c, np.maximum(0.5 * c0 + bias, 0), rtol=1e-6)
    c = np.full((4, 6), np.nan, dtype)
    gemm(a, b, c, beta=0.0)
    np.testing.assert_array_equal(c, np.zeros((4, 6), dtype))


def test_empty_outputs():
    for m, n in [(0, 5), (5, 0), (0, 0)]:
        a = np.ones((m, 3), np.float32)
        b = np.ones((3, n), np.float32)
        c = np.ones((m, n), np.float32)
        gemm(a, b, c)
        assert c.shape == (m, n)


# ---------------------------------------------------------------- epilogue

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", sorted(set(ACT_CODES) - {"silu"}))
def test_bias_activation_epilogue(dtype, act):
    rng = np.random.default_rng(ACT_CODES[act])
    alpha_act = ACT_DEFAULT_ALPHA.get(act, 0.0)
    for (m, n, k), (ta, tb), level in zip(
        [(1, 1, 1), (9, 33, 17), (130, 70, 600), (64, 512, 96)], TRANS, [0, LEVELS[-1], LEVELS[-1], LEVELS[-1] // 2]
    ):
        runtime.set_simd_level(level)
        a, b = _operands(rng, m, n, k, ta, tb, dtype)
        a *= 1.0 / math.sqrt(k)  # keep z = O(1) where the activations bend
        bias = rng.standard_normal(n).astype(dtype)
        c0 = rng.standard_normal((m, n)).astype(dtype)
        c = c0.copy()
        gemm(a, b, c, trans_a=ta, trans_b=tb, alpha=1.5, beta=0.25, bias=bias, act=ACT_CODES[act],
             act_alpha=alpha_act, n_threads=2)
        z = _ref(a, b, ta, tb, 1.5, 0.25, c0, bias)
        want = _act_ref(act, z, alpha_act)
        if act == "step":  # a z within round-off of 0 may land either side
            ok = (c == want) | (np.abs(z) < 1e-4)
            assert ok.all()
        else:
            _check(c, want, dtype, k, scale=2.0)


def test_relu_epilogue_maps_nan_like_act_forward():
    """The in-kernel relu and nc_act_forward agree: relu(NaN) == 0 there."""
    a = np.array([[np.nan, 1.0]], np.float32)
    b = np.ones((2, 3), np.float32)
    for level in LEVELS:
        runtime.set_simd_level(level)
        c = np.zeros((1, 3), np.float32)
        gemm(a, b, c, act=ACT_CODES["relu"])
        from nncore._kernels.elementwise import act_forward

        x = np.full((1, 3), np.nan, np.float32)
        y = np.empty_like(x)
        act_forward(ACT_CODES["relu"], 0.0, x, y, 1)
        np.testing.assert_array_equal(c, y)


# ---------------------------------------------------------------- SIMD levels agree

@pytest.mark.parametrize("dtype", DTYPES)
def test_simd_levels_agree(dtype):
    rng = np.random.default_rng(21)
    m, n, k = 75, 99, 401
    outs = {}
    for ta, tb in TRANS:
        a, b = _operands(rng, m, n, k, ta, tb, dtype)
        for level in LEVELS:
            runtime.set_simd_level(level)
            # each extension holds its own copy of the level: check gemm's
            assert gemm_module._set_simd_level_here(level) == level
            c = np.full((m, n), np.nan, dtype)
            gemm(a, b, c, trans_a=ta, trans_b=tb, n_threads=2)
            outs[level] = c
        for level in LEVELS[1:]:
            np.testing.assert_allclose(outs[level], outs[0], rtol=0, atol=_tol(dtype, k))


@pytest.mark.parametrize("dtype", DTYPES)
def test_matches_c_oracle(dtype):
    rng = np.random.default_rng(2)
    for ta, tb in TRANS:
        a, b = _operands(rng, 33, 47, 29, ta, tb, dtype)
        c0 = rng.standard_normal((33, 47)).astype(dtype)
        c1, c2 = c0.copy(), c0.copy()
        gemm(a, b, c1, trans_a=ta, trans_b=tb, alpha=0.5, beta=2.0)
        gemm_ref(a, b, c2, trans_a=ta, trans_b=tb, alpha=0.5, beta=2.0)
        np.testing.assert_allclose(c1, c2, rtol=0, atol=_tol(dtype, 29, 2.0))


# ---------------------------------------------------------------- bad input

def _ok(dtype=np.float32):
    return np.ones((4, 3), dtype), np.ones((3, 5), dtype), np.zeros((4, 5), dtype)


def test_shape_mismatch_raises():
    a, b, c = _ok()
    with pytest.raises(ValueError, match="inner dimensions"):
        gemm(a, np.ones((4, 5), np.float32), c)
    with pytest.raises(ValueError, match="inner dimensions"):
        gemm(a, b, c, trans_a=True)
    with pytest.raises(ValueError, match=r"c: expected shape \(4, 5\), got \(5, 4\)"):
        gemm(a, b, np.zeros((5, 4), np.float32))
    with pytest.raises(ValueError, match="a: expected a 2-D array"):
        gemm(np.ones(3, np.float32), b, c)
    with pytest.raises(ValueError, match="inner dimensions"):
        gemm_ref(a, np.ones((4, 5), np.float32), c)


def test_dtype_mismatch_raises():
    a, b, c = _ok()
    with pytest.raises(TypeError, match="b: expected dtype float32, got float64"):
        gemm(a, b.astype(np.float64), c)
    with pytest.raises(TypeError, match="c: expected dtype float32, got float64"):
        gemm(a, b, c.astype(np.float64))
    with pytest.raises(TypeError, match="a: expected dtype float32 or float64, got int64"):
        gemm(a.astype(np.int64), b, c)
    with pytest.raises(TypeError, match="a: expected a numpy.ndarray"):
        gemm(a.tolist(), b, c)
    with pytest.raises(TypeError, match="bias: expected dtype float32, got float64"):
        gemm(a, b, c, bias=np.zeros(5))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("ta,tb", TRANS)
@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (2, 5, 3), (17, 13, 9), (128, 64, 128), (300, 33, 70)])
def test_column_blocks_in_place(dtype, level, ta, tb, m, n, k):
    """a, b, c given as column blocks x[:, i:j] of wider matrices (the recurrent layers' gate blocks):
    the gemm reads and writes them in place through their row stride; the columns around c stay."""
    runtime.set_simd_level(level)
    rng = np.random.default_rng(m + 7 * n + 31 * k)
    a, b = _operands(rng, m, n, k, ta, tb, dtype)
    wa = rng.standard_normal((a.shape[0], a.shape[1] + 5)).astype(dtype)
    wb = rng.standard_normal((b.shape[0], b.shape[1] + 3)).astype(dtype)
    wa[:, 2:2 + a.shape[1]], wb[:, 1:1 + b.shape[1]] = a, b
    wc = rng.standard_normal((m, n + 7)).astype(dtype)
    c0 = wc.copy()
    bias = rng.standard_normal(n).astype(dtype)
    for nt in (1, 2):
        wc[...] = c0
        gemm(wa[:, 2:2 + a.shape[1]], wb[:, 1:1 + b.shape[1]], wc[:, 4:4 + n], trans_a=ta, trans_b=tb,
             beta=1.0, bias=bias, n_threads=nt)
        _check(wc[:, 4:4 + n], _ref(a, b, ta, tb, beta=1.0, c0=c0[:, 4:4 + n], bias=bias), dtype, k)
        np.testing.assert_array_equal(wc[:, :4], c0[:, :4])
        np.testing.assert_array_equal(wc[:, 4 + n:], c0[:, 4 + n:])
        if nt == 1:
            first = wc.copy()
    np.testing.assert_array_equal(wc, first)                  # 1 and 2 threads: bit-identical
    if m > 1:                                                 # rows in reverse: not a row-strided block
        with pytest.raises(ValueError, match="c: expected a C-contiguous array or a column block"):
            gemm(a, b, wc[::-1, 4:4 + n], trans_a=ta, trans_b=tb)


def test_non_contiguous_and_read_only_raise():
    a, b, c = _ok()
    with pytest.raises(ValueError, match="a: expected a C-contiguous array"):
        gemm(np.ones((3, 4), np.float32).T, b, c)
    with pytest.raises(ValueError, match="b: expected a C-contiguous array"):
        gemm(a, np.ones((3, 10), np.float32)[:, ::2], c)
    with pytest.raises(ValueError, match="c: expected a C-contiguous array"):
        gemm(a, b, np.zeros((5, 4), np.float32).T)
    c.setflags(write=False)
    with pytest.raises(ValueError, match="c: output array is read-only"):
        gemm(a, b, c)


def test_bad_bias_and_activation_raise():
    a, b, c = _ok()
    with pytest.raises(ValueError, match=r"bias: expected shape \(5,\), got \(4,\)"):
        gemm(a, b, c, bias=np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="bias: expected a 1-D array"):
        gemm(a, b, c, bias=np.zeros((1, 5), np.float32))
    with pytest.raises(ValueError, match="unknown activation code"):
        gemm(a, b, c, act=99)
    with pytest.raises(ValueError, match="unknown activation code"):
        gemm(a, b, c, act=-1)


# ---------------------------------------------------------------- few rows of op(A): dot and row paths

# The dot path (transposed B, at most 16 rows of op(A)) and the row path (B not
# transposed, 1 or 2 rows, blocks of 128/256 columns of C) around their edges:
# column counts either side of the row blocks, k either side of a vector.
FEW_ROWS = [1, 2, 3, 4, 5, 16, 17]
FEW_COLS = [1, 7, 127, 128, 129, 255, 256, 257, 513]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("ta,tb", TRANS)
def test_few_rows_paths(dtype, level, ta, tb):
    runtime.set_simd_level(level)
    rng = np.random.default_rng(level * 4 + 2 * ta + tb)
    for m in FEW_ROWS:
        for n, k in zip(FEW_COLS, [1, 15, 17, 784, 16, 33, 9, 100, 64]):
            a, b = _operands(rng, m, n, k, ta, tb, dtype)
            c = np.full((m, n), np.nan, dtype)
            gemm(a, b, c, trans_a=ta, trans_b=tb)
            _check(c, _ref(a, b, ta, tb), dtype, k)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", ["relu", "tanh", "linear"])
@pytest.mark.parametrize("tb", [False, True])
def test_few_rows_epilogue_alpha_beta(dtype, act, tb):
    rng = np.random.default_rng(ACT_CODES[act] + 10 * tb)
    for level in LEVELS:
        runtime.set_simd_level(level)
        for m, n, k in [(1, 300, 50), (2, 257, 31), (4, 100, 200), (1, 5, 3)]:
            a, b = _operands(rng, m, n, k, False, tb, dtype)
            a *= 1.0 / math.sqrt(k)
            bias = rng.standard_normal(n).astype(dtype)
            c0 = rng.standard_normal((m, n)).astype(dtype)
            c = c0.copy()
            gemm(a, b, c, trans_b=tb, alpha=-1.5, beta=0.5, bias=bias, act=ACT_CODES[act])
            _check(c, _act_ref(act, _ref(a, b, False, tb, -1.5, 0.5, c0, bias), 0.0), dtype, k, scale=2.0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ta,tb", TRANS)
def test_few_rows_threads_bit_identical(dtype, ta, tb):
    """Big enough for a team: the split follows the row blocks, so 1 and 2 threads agree bit for bit."""
    rng = np.random.default_rng(11)
    for m, n, k in [(1, 2100, 2050), (2, 1500, 1500), (5, 1100, 800)]:
        a, b = _operands(rng, m, n, k, ta, tb, dtype)
        c1 = np.empty((m, n), dtype)
        c2 = np.empty((m, n), dtype)
        gemm(a, b, c1, trans_a=ta, trans_b=tb, n_threads=1)
        gemm(a, b, c2, trans_a=ta, trans_b=tb, n_threads=2)
        _check(c1, _ref(a, b, ta, tb), dtype, k)
        np.testing.assert_array_equal(c1, c2)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("ta", [False, True])
def test_direct_path_threads_bit_identical(dtype, level, ta):
    """The direct path (a few row panels, or a narrow B over a long k) blocks k by the operands' shape,
    not by a thread's part of C: 1 and 2 threads agree bit for bit (a split of n = 100 into 48 + 52
    columns used to change the blocking, and the sums)."""
    runtime.set_simd_level(level)
    rng = np.random.default_rng(12)
    for m, n, k in [(16, 100, 5000), (24, 72, 4000), (9, 32, 3001), (7, 33, 700)]:
        a, b = _operands(rng, m, n, k, ta, False, dtype)
        c1 = np.empty((m, n), dtype)
        c2 = np.empty((m, n), dtype)
        gemm(a, b, c1, trans_a=ta, n_threads=1)
        gemm(a, b, c2, trans_a=ta, n_threads=2)
        _check(c1, _ref(a, b, ta, False), dtype, k)
        np.testing.assert_array_equal(c1, c2)


# ---------------------------------------------------------------- op(B) packed once

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("ta,tb", TRANS)
def test_packed_b_every_level(dtype, level, ta, tb):
    """pack_b + gemm_packed against the float64 reference, with alpha, beta, bias and an activation, on
    awkward shapes (1, primes, around MR/NR/KC), and 1 vs 2 threads bit for bit."""
    runtime.set_simd_level(level)
    rng = np.random.default_rng(level * 10 + 2 * ta + tb)
    for m, n, k in [(1, 1, 1), (7, 13, 5), (97, 33, 255), (130, 17, 257), (61, 129, 600), (200, 300, 3)]:
        a, b = _operands(rng, m, n, k, ta, tb, dtype)
        bias = rng.standard_normal(n).astype(dtype)
        c0 = rng.standard_normal((m, n)).astype(dtype)
        packed = pack_b(b, trans_b=tb)
        assert packed.ndim == 1 and packed.dtype == dtype
        c1, c2 = c0.copy(), c0.copy()
        gemm_packed(a, packed, c1, trans_a=ta, alpha=-1.5, beta=0.5, bias=bias, act=ACT_CODES["tanh"],
                    n_threads=1)
        gemm_packed(a, packed, c2, trans_a=ta, alpha=-1.5, beta=0.5, bias=bias, act=ACT_CODES["tanh"],
                    n_threads=2)
        _check(c1, np.tanh(_ref(a, b, ta, tb, -1.5, 0.5, c0, bias)), dtype, k, scale=2.0)
        np.testing.assert_array_equal(c1, c2)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("tb", [False, True])
def test_packed_b_equals_gemm_on_the_packed_path(dtype, tb):
    """Where gemm packs op(B) itself (enough rows, enough work) the packed product is bit for bit gemm's,
    the relu epilogue and beta = 1 included (the recurrent step z_t += h_{t-1} U)."""
    rng = np.random.default_rng(5)
    for m, n, k in [(128, 512, 128), (128, 128, 512), (100, 70, 1000)]:
        a, b = _operands(rng, m, n, k, False, tb, dtype)
        c0 = rng.standard_normal((m, n)).astype(dtype)
        c1, c2 = c0.copy(), c0.copy()
        gemm(a, b, c1, trans_b=tb, beta=1.0, act=ACT_CODES["relu"], n_threads=2)
        gemm_packed(a, pack_b(b, trans_b=tb), c2, beta=1.0, act=ACT_CODES["relu"], n_threads=2)
        np.testing.assert_array_equal(c1, c2)


def test_pack_b_reuses_its_buffer():
    rng = np.random.default_rng(6)
    b = rng.standard_normal((40, 50)).astype(np.float32)
    p = pack_b(b)
    assert pack_b(b * 2, out=p) is p                       # refilled in place
    assert pack_b(b.astype(np.float64), out=p) is not p   # another dtype: a new buffer
    assert pack_b(b[:30].copy(), out=p) is not p           # another size: a new buffer


def test_gemm_packed_refuses_a_stale_or_foreign_buffer():
    rng = np.random.default_rng(7)
    a = rng.standard_normal((20, 40)).astype(np.float32)
    b = rng.standard_normal((40, 50)).astype(np.float32)
    c = np.empty((20, 50), np.float32)
    p = pack_b(b)
    with pytest.raises(ValueError, match="pack it again"):
        gemm_packed(a[:, :39].copy(), p, c)                            # another k
    with pytest.raises(ValueError, match="pack it again"):
        gemm_packed(a, p[:-1].copy(), c)                            # a cut buffer
    q = p.copy()
    q[:16] = 0                                                         # the head wiped
    with pytest.raises(ValueError, match="pack it again"):
        gemm_packed(a, q, c)
    with pytest.raises(TypeError, match="packed"):
        gemm_packed(a, p.astype(np.float64), c)
    if runtime.simd_level() > 0:
        runtime.set_simd_level(runtime.simd_level() - 1)
        with pytest.raises(ValueError, match="pack it again"):        # packed for another SIMD level
            gemm_packed(a, p, c)
