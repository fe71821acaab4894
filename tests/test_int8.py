"""The int8 kernels against NumPy integer references (tests/reference_int8.py): the int32 product on
every micro-kernel (generic C, AVX2 u8 x s8, AVX2 sign trick, the VNNI kernels through their C
emulation of vpdpbusd, the real VNNI ones where the CPU has them; up to 8 rows take the direct
path's row kernels, B unpacked) bit for bit, on awkward shapes, the int8 convolution (its cols rows made
inside the GEMM) against NumPy's im2col + int8 Dense,
the extremes that would saturate vpmaddubsw, 1 and 2 threads, every SIMD level; the row quantizer
and the fused int8 GEMM (quantize, int32 sums, dequantizing epilogue) to the bit; the row gather;
bad input."""
import itertools
import platform
import shutil
import subprocess

import numpy as np
import pytest

import reference_int8 as ref
from cpu_flags import cpu_flags
from nncore._kernels import ACT_CODES, conv, int8, runtime

LEVELS = list(range(runtime.simd_level() + 1))
KERNELS = list(int8.KERNELS)
DTYPES = [np.float32, np.float64]
# around every kernel's MR (4, 6, 8) and NR (8, 16, 32), and the k groups of 4
SIZES = [1, 2, 3, 4, 5, 7, 8, 9, 13, 16, 17, 31, 33, 64, 65]
K_SIZES = [1, 2, 3, 4, 5, 7, 8, 63, 64, 65, 257]


@pytest.fixture(autouse=True)
def _restore():
    yield
    int8.set_kernel(None)
    runtime.set_simd_level(-1)


def _runs(level, qmax):
    """The kernels that run inputs in [-qmax, qmax] at this SIMD level (setting it)."""
    runtime.set_simd_level(level)
    return [k for k in KERNELS if int8.available(k, qmax)]


def _use(kernel, qmax):
    int8.set_kernel(kernel)
    assert int8.kernel(qmax) == kernel


def _s32(a, b, qmax, n_threads=1):
    c = np.full((a.shape[0], b.shape[1]), -7, np.int32)   # every element is overwritten
    return int8.gemm_s8s32(a, b, c, qmax=qmax, n_threads=n_threads)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("qmax", [63, 127])
def test_every_kernel_exact_on_awkward_shapes(level, qmax):
    rng = np.random.default_rng(level * 1000 + qmax)
    kernels = _runs(level, qmax)
    assert "generic" in kernels
    if level >= 1:
        assert {"avx2-sign", "avxvnni-emulated", "avx512vnni-emulated"} <= set(kernels)
        assert ("avx2" in kernels) == (qmax <= 63)
    shapes = [(m, n, k) for m, n, k in itertools.product(SIZES, SIZES, K_SIZES) if (m * 7 + n * 3 + k) % 5 == 0]
    for m, n, k in shapes + [(100, 70, 784), (7, 300, 130)]:
        a = rng.integers(-qmax, qmax + 1, (m, k)).astype(np.int8)
        b = rng.integers(-128, 128, (k, n)).astype(np.int8)
        want = ref.matmul_s32(a, b)
        for kernel in kernels:
            _use(kernel, qmax)
            np.testing.assert_array_equal(_s32(a, b, qmax), want, err_msg=f"{kernel} {m}x{n}x{k}")


@pytest.mark.parametrize("qmax", [63, 127])
def test_extremes_that_would_saturate(qmax):
    # every pair of products at its largest magnitude, both signs: vpmaddubsw would saturate on 8-bit
    # x + 128 (2 * 255 * 128 > 2^15); the kernels' choices must stay exact
    k = 4 * 97
    a = np.empty((9, k), np.int8)
    a[0], a[1], a[2] = qmax, -qmax, np.resize([qmax, -qmax], k)
    a[3:] = np.random.default_rng(0).choice([-qmax, qmax, 0], (6, k))
    b = np.empty((k, 19), np.int8)
    b[:, 0], b[:, 1], b[:, 2], b[:, 3] = -128, 127, np.resize([-128, 127], k), np.resize([127, -128], k)
    b[:, 4:] = np.random.default_rng(1).choice([-128, 127, -127, 0], (k, 15))
    want = ref.matmul_s32(a, b)
    for level in LEVELS:
        for kernel in _runs(level, qmax):
            _use(kernel, qmax)
            np.testing.assert_array_equal(_s32(a, b, qmax), want, err_msg=kernel)


@pytest.mark.parametrize("qmax", [63, 127])
def test_direct_rows_exact_on_awkward_shapes(qmax):
    # batch 1..8 (the direct path, B unpacked: the row kernels of int8_gemv.h);
    # n around their 32- and 64-column blocks, k around the groups of 4; the extremes included
    rng = np.random.default_rng(qmax)
    shapes = [(m, n, k) for m in range(1, 9) for n in (1, 10, 31, 32, 33, 63, 64, 65, 130)
              for k in (1, 2, 3, 5, 7, 129, 784) if (m + n + k) % 3 == 0 or m <= 2]
    for level in LEVELS:
        kernels = _runs(level, qmax)
        for m, n, k in shapes:
            a = rng.integers(-qmax, qmax + 1, (m, k)).astype(np.int8)
            b = rng.integers(-128, 128, (k, n)).astype(np.int8)
            if m <= 2 and n == 65:                            # the largest products, both signs
                a[0], b[:, 0], b[:, 1] = qmax, -128, np.resize([-128, 127], k)
            want = ref.matmul_s32(a, b)
            for kernel in kernels:
                _use(kernel, qmax)
                np.testing.assert_array_equal(_s32(a, b, qmax), want, err_msg=f"{level} {kernel} {m}x{n}x{k}")
                np.testing.assert_array_equal(_s32(a, b, qmax, 2), want, err_msg=f"{level} {kernel} 2 threads")


def test_largest_k_stays_exact():
    k = int8.MAX_K
    a = np.full((2, k), 127, np.int8)
    a[1] = -127
    b = np.full((k, 3), -128, np.int8)
    b[:, 1] = 127
    want = ref.matmul_s32(a, b)          # |c| up to 16256 k, just below 2^31
    assert np.abs(want.astype(np.int64)).max() > 2 ** 31 - 20000
    for level in LEVELS:
        for kernel in _runs(level, 127):
            _use(kernel, 127)
            np.testing.assert_array_equal(_s32(a, b, 127), want, err_msg=kernel)


@pytest.mark.parametrize("kernel", KERNELS)
def test_threads_bit_identical(kernel):
    if not int8.available(kernel, 63):
        pytest.skip(f"{kernel} does not run here")
    _use(kernel, 63)
    rng = np.random.default_rng(5)
    for m, n, k in [(300, 40, 200), (3, 500, 300), (257, 129, 65)]:
        a = rng.integers(-63, 64, (m, k)).astype(np.int8)
        b = rng.integers(-128, 128, (k, n)).astype(np.int8)
        c1, c2 = _s32(a, b, 63, 1), _s32(a, b, 63, 2)
        np.testing.assert_array_equal(c1, c2)
        np.testing.assert_array_equal(c1, ref.matmul_s32(a, b))
        x = rng.standard_normal((m, k)).astype(np.float32)
        ws = rng.uniform(10, 100, n).astype(np.float32)
        y1, y2 = np.empty((m, n), np.float32), np.empty((m, n), np.float32)
        int8.gemm_int8(x, b, ws, y1, None, ACT_CODES["relu"], qmax=63, n_threads=1)
        int8.gemm_int8(x, b, ws, y2, None, ACT_CODES["relu"], qmax=63, n_threads=2)
        np.testing.assert_array_equal(y1, y2)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("level", LEVELS)
def test_quantize_rows_is_keras_abs_max(dtype, level):
    runtime.set_simd_level(level)
    rng = np.random.default_rng(2)
    for qmax in (63, 127, 1):
        for m, k in [(1, 1), (5, 7), (33, 300), (4, 0), (4, 9), (4, 15), (4, 16), (4, 17), (4, 33), (5, 288)]:
            x = (rng.standard_normal((m, k)) * rng.uniform(1e-3, 1e3, (m, 1))).astype(dtype)
            if m > 3 and k > 3:
                x[1] = 0                     # all zero: scale qmax / 1e-7, q 0
                x[2, :4] = [2.0, 0.5, -0.5, 1.5]   # ties: round half to even
                x[2, 4:] = 0
                x[3, 1] = np.nan             # a NaN or an infinity: scale NaN, q 0
                x[0, 2] = -np.inf
            q, s = np.empty((m, k), np.int8), np.empty(m, dtype)
            int8.quantize_rows(x, q, s, qmax=qmax, n_threads=2)
            q0, s0 = ref.quantize_rows(x, qmax)
            np.testing.assert_array_equal(s, s0)
            np.testing.assert_array_equal(q, q0)
    # exact ties x s = j + 1/2 round half to even (Keras's round), not away from zero
    amax = dtype(100)
    scale = dtype(63) / (amax + dtype(1e-7))
    ties = [v for v in (dtype((j + 0.5) / scale) for j in range(-62, 62)) if v * scale == np.floor(v * scale) + 0.5]
    assert len(ties) > 20
    x = np.array([[amax] + ties], dtype)
    q, s = np.empty(x.shape, np.int8), np.empty(1, dtype)
    int8.quantize_rows(x, q, s, qmax=63)
    assert s[0] == scale
    np.testing.assert_array_equal(q[0, 1:], np.round(np.array(ties) * scale))   # half to even
    assert (q[0, 1:] % 2 == 0).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("level", LEVELS)
def test_quantize_rows_clip_never_acts_at_the_row_scale(dtype, level):
    # the kernels leave Keras's clip out (it cannot act at the row's own scale): rows whose elements
    # sit at and just below +-max|x|, at every magnitude (subnormal, below and above the epsilon, where
    # max + 1e-7 rounds to max, near the largest float), are Keras's q to the bit
    runtime.set_simd_level(level)
    info = np.finfo(dtype)
    rng = np.random.default_rng(5)
    amaxes = [info.smallest_subnormal, info.tiny, 1e-9, 1e-7, 3e-7, 1e-3, 0.7, 1.0, 1.5, 100.0, 3e5, 1e30,
              info.max / 4, info.max]
    amaxes += list(rng.uniform(0.5, 2, 200) * 10.0 ** rng.integers(-12, 12, 200))
    for qmax in (1, 63, 127):
        for amax in amaxes:
            a = dtype(amax)
            row = np.array([a, -a, np.nextafter(a, dtype(0)), -np.nextafter(a, dtype(0)), a / 2, -a / 3,
                            a * dtype(0.999), a * dtype(0.501), a * dtype(0.499)] + list(a * rng.uniform(-1, 1, 23)),
                           dtype)
            x = row[None, :]
            q, s = np.empty(x.shape, np.int8), np.empty(1, dtype)
            int8.quantize_rows(x, q, s, qmax=qmax)
            q0, s0 = ref.quantize_rows(x, qmax)
            np.testing.assert_array_equal(s, s0, err_msg=f"amax {amax} qmax {qmax}")
            np.testing.assert_array_equal(q, q0, err_msg=f"amax {amax} qmax {qmax}")
            if amax > 1e-4:                               # (below: q 0, the epsilon dominates)
                assert q[0, 0] == qmax and q[0, 1] == -qmax


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("level", LEVELS)
def test_gemm_int8_is_keras_int8_dense_to_the_bit(dtype, level):
    rng = np.random.default_rng(3)
    for qmax in (63, 127):
        kernels = _runs(level, qmax)
        for m, n, k in [(1, 1, 1), (7, 13, 29), (64, 100, 784), (17, 33, 5), (40, 32, 9), (21, 7, 16), (19, 5, 47)]:
            x = rng.standard_normal((m, k)).astype(dtype)
            w = rng.integers(-127, 128, (k, n)).astype(np.int8)
            ws = rng.uniform(20, 400, n).astype(dtype)
            b = rng.standard_normal(n).astype(dtype)
            for bias in (b, None):
                z = ref.int8_dense(x, w, ws, bias, qmax)
                for kernel in kernels:
                    _use(kernel, qmax)
                    for act, want in (("linear", z), ("relu", np.maximum(z, 0))):
                        y = np.full((m, n), np.nan, dtype)
                        int8.gemm_int8(x, w, ws, y, bias, ACT_CODES[act], qmax=qmax)
                        np.testing.assert_array_equal(y, want, err_msg=f"{kernel} {act} {m}x{n}x{k}")


# (batch, h, w, c, window, strides, dilation, pad, filters): a 3x3 on one channel (k = 9, the cnn's first
# layer), its second (k = 288), strides, dilations, padding on both sides, 1-D (h = 1), a k past the gathering
# chunk (16 KiB of float32: k = 4608), few output rows (the direct path), n = 1 and n past a panel
CONV_CASES = [(3, 10, 9, 1, (3, 3), (1, 1), (1, 1), (0, 0), 32), (2, 7, 6, 32, (3, 3), (1, 1), (1, 1), (0, 0), 64),
              (2, 9, 7, 3, (3, 2), (2, 1), (1, 1), (1, 1), 5), (1, 8, 8, 5, (3, 3), (1, 1), (2, 2), (2, 1), 1),
              (2, 1, 17, 4, (1, 3), (1, 2), (1, 1), (0, 1), 33), (1, 5, 5, 512, (3, 3), (1, 1), (1, 1), (0, 0), 3),
              (1, 4, 4, 2, (3, 3), (1, 1), (1, 1), (0, 0), 9), (5, 6, 6, 1, (2, 2), (2, 2), (1, 1), (0, 0), 17)]


def _conv_case(rng, case, dtype):
    n, h, w, c, (kh, kw), (sh, sw), (dh, dw), (pt, pl), f = case
    oh = (h + 2 * pt - (kh - 1) * dh - 1) // sh + 1
    ow = (w + 2 * pl - (kw - 1) * dw - 1) // sw + 1
    x = rng.standard_normal((n, h, w, c)).astype(dtype)
    x[0, 0, 0, 0] = 5.0                                   # one large value: patch rows differ in scale
    wk = rng.integers(-127, 128, (kh * kw * c, f)).astype(np.int8)
    ws = rng.uniform(20, 400, f).astype(dtype)
    b = rng.standard_normal(f).astype(dtype)
    geom = ((kh, kw), (sh, sw), (dh, dw), (pt, pl), (oh, ow))
    return x, wk, ws, b, geom


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("level", LEVELS)
def test_conv_int8_is_keras_int8_conv_to_the_bit(dtype, level):
    # the int8 convolution (cols rows made and quantized inside the GEMM) against NumPy: im2col, each patch
    # row quantized as one input row, the int32 product, the dequantizing epilogue; every kernel, 1 and 2
    # threads the same bits
    rng = np.random.default_rng(4)
    for qmax in (63, 127):
        kernels = _runs(level, qmax)
        for case in CONV_CASES:
            x, wk, ws, b, geom = _conv_case(rng, case, dtype)
            cols = ref.im2col(x, *geom)
            for bias in (b, None):
                z = ref.int8_dense(cols, wk, ws, bias, qmax)
                for kernel in kernels:
                    _use(kernel, qmax)
                    for act, want in (("linear", z), ("relu", np.maximum(z, 0))):
                        for nt in (1, 2):
                            y = np.full(z.shape, np.nan, dtype)
                            conv.conv_int8(x, wk, ws, y, bias, ACT_CODES[act], 0.0, *geom, qmax=qmax, n_threads=nt)
                            np.testing.assert_array_equal(y, want, err_msg=f"{kernel} {act} {case} {nt} threads")


# The pixels of one output row share their windows' column maxima (csrc/int8_rows.h, i8_conv_rows) while
# c (kw - 1) dw + c fits 2048 bit patterns: several A blocks (484 rows of k = 288: the second block starts
# inside an output row), output rows cut into several shared passes (c = 64, 80 columns: 30 pixels a
# pass), strides and dilations with padding, the widest window that fits (c = 682: one pixel a pass) and
# the ones past it (c = 700, 1024: each row's own max); a NaN and an infinity in single pixels
SHARED_CASES = [(4, 13, 13, 32, (3, 3), (1, 1), (1, 1), (0, 0), 64), (1, 5, 80, 64, (3, 3), (1, 1), (1, 1), (1, 1), 7),
                (2, 9, 40, 6, (2, 3), (2, 3), (1, 2), (1, 2), 5), (1, 4, 5, 682, (2, 3), (1, 1), (1, 1), (0, 0), 3),
                (1, 4, 5, 700, (2, 3), (1, 1), (1, 1), (0, 0), 3), (1, 3, 4, 1024, (2, 2), (1, 1), (1, 1), (0, 1), 2)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("level", LEVELS)
def test_conv_int8_shared_column_maxima_give_the_row_scales_bits(dtype, level):
    rng = np.random.default_rng(9)
    kernels = _runs(level, 127)
    for case in SHARED_CASES:
        x, wk, ws, b, geom = _conv_case(rng, case, dtype)
        x[-1, 1, 2, 0] = np.nan
        x[-1, -1, -2, -1] = -np.inf
        z = ref.int8_dense(ref.im2col(x, *geom), wk, ws, b, 127)
        assert np.isnan(z).any() and not np.isnan(z).all()
        for kernel in kernels:
            _use(kernel, 127)
            for nt in (1, 2):
                y = np.full(z.shape, 3.0, dtype)
                conv.conv_int8(x, wk, ws, y, b, 0, 0.0, *geom, qmax=127, n_threads=nt)
                np.testing.assert_array_equal(y, z, err_msg=f"{kernel} {case} {nt} threads")


def test_conv_int8_nonfinite_patch_and_bad_input():
    rng = np.random.default_rng(5)
    x, wk, ws, b, geom = _conv_case(rng, CONV_CASES[0], np.float32)
    x[1, 4, 4, 0] = np.nan                                # every patch row holding it: scale NaN, a NaN row
    y = conv.conv_int8(x, wk, ws, np.empty((3 * 8 * 7, 32), np.float32), b, 0, 0.0, *geom, qmax=63)
    bad = np.isnan(ref.im2col(x, *geom)).any(axis=1)
    assert bad.sum() == 9 and np.isnan(y[bad]).all() and np.isfinite(y[~bad]).all()
    y = np.empty((3 * 8 * 7, 32), np.float32)
    with pytest.raises(ValueError, match="rows"):
        conv.conv_int8(x, wk[:8], ws, y, b, 0, 0.0, *geom, qmax=63)
    with pytest.raises(ValueError, match="qmax"):
        conv.conv_int8(x, wk, ws, y, b, 0, 0.0, *geom, qmax=128)
    with pytest.raises(ValueError, match="shape"):
        conv.conv_int8(x, wk, ws, y[:-1], b, 0, 0.0, *geom, qmax=63)
    with pytest.raises(TypeError, match="float64"):
        conv.conv_int8(x.astype(np.float64), wk, ws, y, b, 0, 0.0, *geom, qmax=63)
    with pytest.raises(TypeError, match="int8"):
        conv.conv_int8(x, wk.astype(np.int16), ws, y, b, 0, 0.0, *geom, qmax=63)


def _chain_ref(x, ws, scales, biases, acts, qmaxs):
    """The layers one by one: NumPy's int8 Dense, relu by NumPy, other codes and softmax by nncore's own
    kernels on the NumPy z (the chain must give these bits)."""
    from nncore._kernels import elementwise

    h = x
    for w, s, b, act, q in zip(ws, scales, biases, acts, qmaxs):
        z = ref.int8_dense(h, w, s, b, q)
        if act == -1:
            elementwise.softmax_forward(z, z)
        elif act == ACT_CODES["relu"]:
            z = np.maximum(z, 0)
        elif act != ACT_CODES["linear"]:
            elementwise.act_forward(act, 0.0, z, z)
        h = z
    return h


def _layers_case(rng, m, dims, acts, dtype):
    """Random int8 layers of these dims (a bias on every other one, qmax 63 / 127 / 63), an input of m
    rows and the layers' output by `_chain_ref`: (x, kernels, scales, biases, qmaxs, want)."""
    L = len(dims) - 1
    ws = [rng.integers(-127, 128, (dims[i], dims[i + 1])).astype(np.int8) for i in range(L)]
    scales = [rng.uniform(20, 400, d).astype(dtype) for d in dims[1:]]
    biases = [rng.standard_normal(d).astype(dtype) if i % 2 == 0 else None for i, d in enumerate(dims[1:])]
    qmaxs = [63, 127, 63][:L]
    x = rng.standard_normal((m, dims[0])).astype(dtype)
    return x, ws, scales, biases, qmaxs, _chain_ref(x, ws, scales, biases, acts, qmaxs)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("level", LEVELS)
def test_chain_is_the_layers_one_by_one_to_the_bit(dtype, level):
    rng = np.random.default_rng(11)
    relu, gelu = ACT_CODES["relu"], ACT_CODES["gelu"]
    cases = [(1, (5, 3), [relu]), (7, (13, 7, 5), [relu, -1]), (129, (65, 33, 17, 3), [relu, gelu, -1]),
             (300, (784, 40, 10), [relu, -1]), (1030, (30, 70, 2), [ACT_CODES["linear"], relu]),
             (1001, (200, 64, 10), [relu, -1])]      # a team's row blocks taken one at a time, a tail of 41
    for m, dims, acts in cases:
        L = len(dims) - 1
        x, ws, scales, biases, qmaxs, want = _layers_case(rng, m, dims, acts, dtype)
        for kernel in _runs(level, 127):
            _use(kernel, 127)
            packed = [int8.pack(w, q) for w, q in zip(ws, qmaxs)]
            for nt in (1, 2):
                y = np.full((m, dims[-1]), np.nan, dtype)
                int8.chain(x, packed, scales, biases, acts, [0.0] * L, qmaxs, y, True, nt)
                np.testing.assert_array_equal(y, want, err_msg=f"{kernel} {m} {dims} {nt} threads")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("level", LEVELS)
def test_int8_layers_are_the_layers_one_by_one_to_the_bit(dtype, level):
    # Int8Layers (model(x), predict_on_batch, predict of a few rows): the layers' own products in one call,
    # batch 1..7 (1 and 2 rows on the direct path's row kernels), 1 and 2 threads
    rng = np.random.default_rng(13)
    relu, gelu = ACT_CODES["relu"], ACT_CODES["gelu"]
    cases = [(m, (784, 256, 128, 10), [relu, relu, -1]) for m in range(1, 8)]
    cases += [(1, (5, 3), [relu]), (2, (13, 7, 5), [gelu, -1]), (3, (65, 33, 17, 3), [relu, gelu, -1]),
              (40, (30, 70, 2), [ACT_CODES["linear"], relu])]
    for m, dims, acts in cases:
        L = len(dims) - 1
        x, ws, scales, biases, qmaxs, want = _layers_case(rng, m, dims, acts, dtype)
        run = int8.Int8Layers(ws, scales, biases, acts, [a == gelu for a in acts], [0.0] * L, qmaxs)
        for kernel in _runs(level, 127):
            _use(kernel, 127)
            for nt in (1, 2):
                np.testing.assert_array_equal(run(x, None, True, nt), want, err_msg=f"{kernel} {m} {dims} {nt}")
    x[0, 1] = np.inf
    with pytest.raises(ValueError, match="NaN"):
        run(x, None, True)


def test_chain_refuses_nonfinite_input_and_stale_packs():
    rng = np.random.default_rng(12)
    w = rng.integers(-127, 128, (9, 4)).astype(np.int8)
    s, y = np.full(4, 100.0, np.float32), np.empty((40, 4), np.float32)
    x = rng.standard_normal((40, 9)).astype(np.float32)
    packed = [int8.pack(w, 127)]
    int8.chain(x, packed, [s], [None], [0], [0.0], [127], y, True)
    int8.set_kernel("generic")                       # another kernel in use now: pack again
    with pytest.raises(ValueError, match="pack it again"):
        int8.chain(x, packed, [s], [None], [0], [0.0], [127], y)
    int8.set_kernel(None)
    x[33, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        int8.chain(x, packed, [s], [None], [0], [0.0], [127], y, True)
    w = rng.integers(-127, 128, (300, 64)).astype(np.int8)    # a team: the NaN in a late block, or the first
    s, packed = np.full(64, 100.0, np.float32), [int8.pack(w, 127)]
    for row in (0, 999, 1000):
        x = rng.standard_normal((1001, 300)).astype(np.float32)
        x[row, 7] = np.inf
        with pytest.raises(ValueError, match="NaN"):
            int8.chain(x, packed, [s], [None], [0], [0.0], [127], np.empty((1001, 64), np.float32), True, 2)


@pytest.mark.parametrize("act", ["sigmoid", "tanh", "elu", "leaky_relu", "gelu", "swish", "softplus"])
def test_gemm_int8_epilogue_activations(act):
    import reference

    rng = np.random.default_rng(4)
    x = rng.standard_normal((37, 50)).astype(np.float32)
    w = rng.integers(-127, 128, (50, 21)).astype(np.int8)
    ws = np.full(21, 300.0, np.float32)
    b = rng.standard_normal(21).astype(np.float32)
    z = ref.int8_dense(x, w, ws, b, 63).astype(np.float64)
    alpha = {"leaky_relu": 0.2, "elu": 1.0}.get(act, 0.0)
    y = np.empty((37, 21), np.float32)
    int8.gemm_int8(x, w, ws, y, b, ACT_CODES[act], alpha, qmax=63, n_threads=2)
    np.testing.assert_allclose(y, reference.act_forward(act, z, alpha or None), rtol=2e-6, atol=2e-6)


def test_nonfinite_row_gives_nan_row():
    x = np.ones((3, 9), np.float32)
    x[1, 4] = np.inf
    w = np.ones((9, 5), np.int8)
    y = np.empty((3, 5), np.float32)
    int8.gemm_int8(x, w, np.ones(5, np.float32), y, np.zeros(5, np.float32), qmax=63)
    assert np.isnan(y[1]).all() and np.isfinite(y[[0, 2]]).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_take_rows_int8(dtype):
    rng = np.random.default_rng(6)
    table = rng.integers(-127, 128, (11, 6)).astype(np.int8)
    scale = rng.uniform(1, 100, 11).astype(dtype)
    idx = np.array([0, 10, 3, 3, 7], np.int64)
    out = np.empty((5, 6), dtype)
    int8.take_rows_int8(table, scale, idx, out)
    np.testing.assert_array_equal(out, table[idx].astype(dtype) / scale[idx, None])
    with pytest.raises(IndexError, match="out of range"):
        int8.take_rows_int8(table, scale, np.array([11], np.int64), np.empty((1, 6), dtype))


def test_bad_input():
    a = np.zeros((3, 4), np.int8)
    b = np.zeros((4, 5), np.int8)
    c = np.zeros((3, 5), np.int32)
    with pytest.raises(TypeError, match="a: expected dtype int8"):
        int8.gemm_s8s32(a.astype(np.int16), b, c, qmax=63)
    with pytest.raises(TypeError, match="c: expected dtype int32"):
        int8.gemm_s8s32(a, b, c.astype(np.int64), qmax=63)
    with pytest.raises(ValueError, match="inner dimensions"):
        int8.gemm_s8s32(a, b[:3], c, qmax=63)
    with pytest.raises(ValueError, match=r"outside \[-63, 63\]"):
        int8.gemm_s8s32(np.full((3, 4), 64, np.int8), b, c, qmax=63)
    with pytest.raises(ValueError, match=r"outside \[-127, 127\]"):
        int8.gemm_s8s32(np.full((3, 4), -128, np.int8), b, c, qmax=127)
    with pytest.raises(ValueError, match="qmax must be in"):
        int8.gemm_s8s32(a, b, c, qmax=128)
    x = np.zeros((3, 4), np.float32)
    y = np.zeros((3, 5), np.float32)
    with pytest.raises(TypeError, match="w_scale: expected dtype float32"):
        int8.gemm_int8(x, b, np.ones(5), y, qmax=63)
    with pytest.raises(ValueError, match=r"w_scale: expected shape \(5,\)"):
        int8.gemm_int8(x, b, np.ones(4, np.float32), y, qmax=63)
    with pytest.raises(ValueError, match="y: expected shape"):
        int8.gemm_int8(x, b, np.ones(5, np.float32), y[:2], qmax=63)
    with pytest.raises(TypeError, match="w: expected dtype int8"):
        int8.gemm_int8(x, b.astype(np.float32), np.ones(5, np.float32), y, qmax=63)
    with pytest.raises(ValueError, match="unknown activation"):
        int8.gemm_int8(x, b, np.ones(5, np.float32), y, act=99, qmax=63)
    big = np.zeros((1, int8.MAX_K + 1), np.int8)
    with pytest.raises(ValueError, match="may overflow"):
        int8.gemm_s8s32(big, np.zeros((int8.MAX_K + 1, 1), np.int8), np.zeros((1, 1), np.int32), qmax=63)
    with pytest.raises(ValueError, match="unknown int8 kernel"):
        int8.set_kernel("avx3")
    for k in KERNELS:
        if not int8.available(k, 1):
            with pytest.raises(ValueError, match="does not run"):
                int8.set_kernel(k)


def test_real_vnni_kernels_are_built_and_guarded():
    # the real vpdpbusd kernels are compiled in on x86-64 (their C emulations run everywhere); they are
    # offered exactly when the CPU has the instruction and the SIMD level in use allows it
    assert {"avxvnni", "avx512vnni"} <= set(KERNELS)
    flags = cpu_flags()
    if flags is None or "avx2" not in flags:
        pytest.skip("needs an x86-64 Linux CPU with AVX2 and /proc/cpuinfo")
    top = runtime.simd_level()
    assert int8.available("avxvnni", 127) == ("avx_vnni" in flags)
    assert int8.available("avx512vnni", 127) == ("avx512_vnni" in flags and top >= 2)
    runtime.set_simd_level(0)
    for name in ("avxvnni", "avx512vnni", "avx2", "avx2-sign"):
        assert not int8.available(name, 63)
        with pytest.raises(ValueError, match="does not run"):
            int8.set_kernel(name)
    assert int8.kernel(127) == "generic"


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64") or shutil.which("objdump") is None,
                    reason="needs x86-64 and objdump")
def test_real_vnni_instructions_are_compiled():
    # the AVX-VNNI (ymm) and AVX512-VNNI (zmm) kernels are in the extension as real vpdpbusd, even on a
    # CPU that cannot run them (their arithmetic is tested through the emulations above)
    if not int8.available("avx2-sign", 127):
        pytest.skip("a build without the x86 kernels (NNCORE_GENERIC_ONLY) or a CPU without AVX2")
    asm = subprocess.run(["objdump", "-d", "--no-show-raw-insn", int8.__file__], capture_output=True, text=True,
                         check=True).stdout
    dp = [line for line in asm.splitlines() if "vpdpbusd" in line]
    assert any("%ymm" in line for line in dp) and any("%zmm" in line for line in dp)
