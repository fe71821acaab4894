"""The ACT_BF16 modifier of the activation codes (csrc/act_body.h): the result of any activation rounded to
bfloat16 after it, in nc_act_forward/backward and so in every float32 GEMM epilogue that runs its activation
through them (mixed_bfloat16's short-k convolutions). Bit for bit against the unmodified kernel followed by
the NumPy rounding oracle (tests/reference_bf16.py), every activation, every SIMD level, the GEMM's paths
(dot, rows, packed tiles), conv_forward's (im2col a block of rows at a time) and conv_backward_weights'
(delta and dK rounded), 1 and 2 threads; float64 refuses it."""
import numpy as np
import pytest

from nncore._kernels import ACT_BF16, ACT_CODES, ACT_DEFAULT_ALPHA, runtime
from nncore._kernels import conv as K
from nncore._kernels import elementwise as ew
from nncore._kernels.gemm import gemm
import reference_bf16 as ref

LEVELS = list(range(runtime.simd_level() + 1))
CODES = sorted(set(ACT_CODES) - {"silu"})


@pytest.fixture(params=LEVELS, ids=lambda v: runtime.simd_name(v))
def level(request):
    runtime.set_simd_level(request.param)
    yield request.param
    runtime.set_simd_level(-1)


def _bits(a):
    return np.ascontiguousarray(a, np.float32).view(np.uint32)


@pytest.mark.parametrize("size", [1037, 2 * 2048 + 517])   # under and over act_body.h's rounding block
@pytest.mark.parametrize("name", CODES)
def test_activation_then_rounding(level, name, size):
    rng = np.random.default_rng(ACT_CODES[name])
    x = (rng.standard_normal(size) * 3).astype(np.float32)
    x[:4] = [0.0, -0.0, 1e-40, -3e-39]                       # zeros and denormals (rounded to signed zero)
    x[4:8] = [np.inf, -np.inf, np.nan, 3.3895314e38]         # and the values that stay or become special
    x[8:9].view(np.uint32)[:] = 0x7F800001                   # a signalling NaN: made quiet
    code, alpha = ACT_CODES[name], ACT_DEFAULT_ALPHA.get(name, 0.0)
    y, yb = np.empty_like(x), np.empty_like(x)
    ew.act_forward(code, alpha, x, y)
    ew.act_forward(code | ACT_BF16, alpha, x, yb, 2)
    np.testing.assert_array_equal(_bits(yb), _bits(ref.bf16(y)))
    dy = rng.standard_normal(x.shape).astype(np.float32)
    d, db = np.empty_like(x), np.empty_like(x)
    ew.act_backward(code, alpha, x, y, dy, d)
    ew.act_backward(code | ACT_BF16, alpha, x, y, dy, db, 2)
    np.testing.assert_array_equal(_bits(db), _bits(ref.bf16(d)))


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("shape", [(1, 37, 9), (2, 64, 5), (7, 33, 18), (300, 32, 9), (129, 70, 40)], ids=str)
@pytest.mark.parametrize("name", ["linear", "relu", "tanh"])
def test_gemm_epilogue(level, shape, name, n_threads):
    m, n, k = shape
    rng = np.random.default_rng(m + n + k)
    a = ref.bf16(rng.standard_normal((m, k)).astype(np.float32))
    b = ref.bf16(rng.standard_normal((k, n)).astype(np.float32))
    bias = rng.standard_normal(n).astype(np.float32)
    c, cb = np.empty((m, n), np.float32), np.empty((m, n), np.float32)
    gemm(a, b, c, bias=bias, act=ACT_CODES[name], n_threads=n_threads)
    gemm(a, b, cb, bias=bias, act=ACT_CODES[name] | ACT_BF16, n_threads=n_threads)
    np.testing.assert_array_equal(_bits(cb), _bits(ref.bf16(c)))


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("xshape, window", [((3, 9, 11, 1), (3, 3)), ((5, 28, 28, 1), (3, 3)),
                                            ((2, 7, 6, 3), (2, 3)), ((1, 4, 40, 7), (1, 5))], ids=str)
@pytest.mark.parametrize("name", ["linear", "relu", "tanh"])
def test_conv_forward_epilogue(level, xshape, window, name, n_threads):
    # mixed_bfloat16's short-k Conv2D route: conv_forward on rounded x and kernel, y rounded in the epilogue
    n, h, w, c = xshape
    rng = np.random.default_rng(h + w + c)
    x = ref.bf16(rng.standard_normal(xshape).astype(np.float32))
    k = ref.bf16(rng.standard_normal((window[0] * window[1] * c, 13)).astype(np.float32))
    bias = rng.standard_normal(13).astype(np.float32)
    out = (h - window[0] + 1, w - window[1] + 1)
    y, yb = (np.empty((n * out[0] * out[1], 13), np.float32) for _ in range(2))
    cols = np.empty((y.shape[0], k.shape[0]), np.float32)
    K.conv_forward(x, k, y, bias, ACT_CODES[name], 0.0, window, out_hw=out, n_threads=n_threads)
    K.conv_forward(x, k, yb, bias, ACT_CODES[name] | ACT_BF16, 0.0, window, out_hw=out, cols=cols,
                   n_threads=n_threads)
    np.testing.assert_array_equal(_bits(yb), _bits(ref.bf16(y)))
    c2 = np.empty_like(y)                      # the same bits as the GEMM's epilogue on the cols matrix
    gemm(cols, k, c2, bias=bias, act=ACT_CODES[name] | ACT_BF16)
    np.testing.assert_array_equal(_bits(yb), _bits(c2))
    with pytest.raises(TypeError, match="ACT_BF16"):
        K.conv_forward(x.astype(np.float64), k.astype(np.float64), y.astype(np.float64), None, ACT_BF16, 0.0,
                       window, out_hw=out)


@pytest.mark.parametrize("xshape, window", [((3, 9, 11, 1), (3, 3)), ((40, 28, 28, 1), (3, 3)),
                                            ((2, 7, 6, 3), (2, 3)), ((1, 4, 40, 7), (1, 5))], ids=str)
@pytest.mark.parametrize("name", ["linear", "relu", "tanh"])
def test_conv_backward_weights_rounded(level, xshape, window, name):
    # mixed_bfloat16's short-k Conv2D backward: delta = bf(dy f'(z)) block by block, dK = bf(cols^T delta) of
    # the rounded x, db the float32 sum of the rounded delta: the same bits as the float32 kernel on the
    # rounded delta (linear) with dK rounded after, for 1 and 2 threads
    n, h, w, c = xshape
    rng = np.random.default_rng(h + w + c)
    out = (h - window[0] + 1, w - window[1] + 1)
    m, k, f = n * out[0] * out[1], window[0] * window[1] * c, 13
    x = ref.bf16(rng.standard_normal(xshape).astype(np.float32))
    y = ew.act_forward(ACT_CODES[name], 0.0, rng.standard_normal((m, f)).astype(np.float32),
                       np.empty((m, f), np.float32))
    dy = rng.standard_normal((m, f)).astype(np.float32)
    d32 = np.empty_like(dy)
    ew.act_backward(ACT_CODES[name], 0.0, None, y, dy, d32)
    delta_r = ref.bf16(d32)
    dk32, db32 = np.empty((k, f), np.float32), np.empty(f, np.float32)
    K.conv_backward_weights(x, delta_r, y, dk32, db32, 0, 0.0, None, None, window, out_hw=out)
    for nt in (1, 2):
        dk, db, delta = np.empty_like(dk32), np.empty_like(db32), np.full_like(dy, np.nan)
        ret = K.conv_backward_weights(x, dy, y, dk, db, ACT_CODES[name] | ACT_BF16, 0.0, None, delta, window,
                                      out_hw=out, n_threads=nt)
        assert ret is delta
        np.testing.assert_array_equal(_bits(delta), _bits(delta_r))
        np.testing.assert_array_equal(_bits(dk), _bits(ref.bf16(dk32)))
        np.testing.assert_array_equal(_bits(db), _bits(db32))
    with pytest.raises(TypeError, match="ACT_BF16"):
        K.conv_backward_weights(x.astype(np.float64), dy.astype(np.float64), y.astype(np.float64),
                                dk32.astype(np.float64), None, ACT_BF16, 0.0, None, None, window, out_hw=out)


def test_rounding_of_every_exponent_and_tie(level):
    # ties to even, the carries into the exponent and to infinity, every exponent incl. denormals and NaN,
    # through the paths that round a whole buffer (act_forward's; the hardware conversion where it runs)
    e = np.arange(256, dtype=np.uint32) << 23
    low = np.array([0, 1, 0x7FFF, 0x8000, 0x8001, 0x17FFF, 0x18000, 0x7FFFFF, 0x3F8000, 0x7F8000], np.uint32)
    u = (e[:, None] | low[None, :]).ravel()
    x = np.concatenate([u, u | 0x80000000]).view(np.float32)
    y = np.empty_like(x)
    ew.act_forward(ACT_BF16, 0.0, x, y)
    np.testing.assert_array_equal(_bits(y), _bits(ref.bf16(x)))


def test_float64_and_unknown_codes_refused():
    x = np.zeros(4)
    with pytest.raises(TypeError, match="ACT_BF16"):
        ew.act_forward(ACT_CODES["relu"] | ACT_BF16, 0.0, x, x)
    with pytest.raises(TypeError, match="ACT_BF16"):
        gemm(np.zeros((2, 2)), np.zeros((2, 2)), np.zeros((2, 2)), act=ACT_BF16)
    with pytest.raises(ValueError, match="unknown activation code"):
        ew.act_forward(99 | ACT_BF16, 0.0, x.astype(np.float32), x.astype(np.float32))
