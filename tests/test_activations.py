"""Activation kernels (forward, backward, softmax) against the float64 oracles."""
import numpy as np
import pytest

from nncore._kernels import ACT_CODES, ACT_DEFAULT_ALPHA
from nncore._kernels import elementwise as ew
from nncore._kernels import runtime as rt

import reference as ref

# every test here runs at each SIMD level this machine runs (conftest.simd_level)
pytestmark = pytest.mark.usefixtures("simd_level")

NAMES = sorted(ACT_CODES)
# 1, primes, the parallel chunk (8192) +- 1, and a size large enough for a team of 2
SIZES = [1, 7, 13, 127, 257, 8191, 8192, 8193, 40961]
TOL = {np.float32: dict(rtol=2e-6, atol=2e-6), np.float64: dict(rtol=1e-13, atol=1e-12)}
# float32 kernels go through float32 libm (erff, expm1f, tanhf): a few ulp
TOL32_LOOSE = dict(rtol=2e-5, atol=2e-6)


def _x(n, dtype, seed=0):
    rng = np.random.default_rng(seed + n)
    x = rng.normal(scale=3.0, size=n)
    x[: min(n, 4)] = [0.0, -0.5, 2.5, -7.0][: min(n, 4)]
    return x.astype(dtype)


def _alpha(name):
    return ACT_DEFAULT_ALPHA.get(name, 0.0)


def _tol(dtype, name):
    if dtype == np.float32 and name in ("gelu", "gelu_tanh", "elu", "selu", "softplus", "swish", "silu"):
        return TOL32_LOOSE
    return TOL[dtype]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("name", NAMES)
def test_forward_matches_reference(name, n, dtype):
    x = _x(n, dtype)
    y = np.empty_like(x)
    ew.act_forward(ACT_CODES[name], _alpha(name), x, y, 1)
    want = ref.act_forward(name, x.astype(np.float64))
    np.testing.assert_allclose(y, want, **_tol(dtype, name))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("name", NAMES)
def test_backward_matches_reference(name, n, dtype):
    x = _x(n, dtype)
    y = np.empty_like(x)
    code = ACT_CODES[name]
    ew.act_forward(code, _alpha(name), x, y, 1)
    dy = np.random.default_rng(1).normal(size=n).astype(dtype)
    dx = np.empty_like(x)
    ew.act_backward(code, _alpha(name), x if ew.needs_input(code) else None, y, dy, dx, 1)
    want = dy.astype(np.float64) * ref.act_derivative(name, x.astype(np.float64))
    np.testing.assert_allclose(dx, want, **_tol(dtype, name))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", NAMES)
def test_one_and_two_threads_are_identical(name, dtype):
    n = 300007
    assert rt.team_size(2, n * 1.0) == min(2, rt.omp_max_threads())  # the team forms even for relu
    x = _x(n, dtype)
    code = ACT_CODES[name]
    y1, y2 = np.empty_like(x), np.empty_like(x)
    ew.act_forward(code, _alpha(name), x, y1, 1)
    ew.act_forward(code, _alpha(name), x, y2, 2)
    np.testing.assert_array_equal(y1, y2)
    dy = np.ones_like(x)
    d1, d2 = np.empty_like(x), np.empty_like(x)
    ew.act_backward(code, _alpha(name), x, y1, dy, d1, 1)
    ew.act_backward(code, _alpha(name), x, y1, dy, d2, 2)
    np.testing.assert_array_equal(d1, d2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", NAMES)
def test_extreme_inputs_stay_finite(name, dtype):
    x = np.array([-1e4, -100.0, -30.0, 30.0, 100.0, 1e4], dtype)
    y = np.empty_like(x)
    ew.act_forward(ACT_CODES[name], _alpha(name), x, y, 1)
    want = ref.act_forward(name, x.astype(np.float64))
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y, want.astype(dtype), rtol=1e-6, atol=1e-30)
    dx = np.empty_like(x)
    ew.act_backward(ACT_CODES[name], _alpha(name), x, y, np.ones_like(x), dx, 1)
    assert np.all(np.isfinite(dx))


@pytest.mark.parametrize("name", NAMES)
def test_backward_equals_finite_differences(name):
    # float64, points away from the kinks (0 for relu-like, +-3 for hard_sigmoid)
    x = np.array([-4.1, -2.2, -0.7, -0.3, 0.4, 0.9, 1.7, 2.6, 4.3])
    code, alpha = ACT_CODES[name], _alpha(name)
    dy = np.linspace(-1.0, 2.0, x.size)

    def f(v):
        out = np.empty_like(v)
        ew.act_forward(code, alpha, v, out, 1)
        return float(dy @ out)

    y = np.empty_like(x)
    ew.act_forward(code, alpha, x, y, 1)
    dx = np.empty_like(x)
    ew.act_backward(code, alpha, x, y, dy, dx, 1)
    np.testing.assert_allclose(dx, ref.numerical_grad(f, x), rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("name", ["leaky_relu", "elu"])
def test_custom_alpha(name):
    x = np.linspace(-3, 3, 11)
    y = np.empty_like(x)
    ew.act_forward(ACT_CODES[name], 0.5, x, y, 1)
    np.testing.assert_allclose(y, ref.act_forward(name, x, alpha=0.5), rtol=1e-14)


def test_in_place_forward_and_backward():
    x = _x(1000, np.float64)
    want = ref.act_forward("tanh", x)
    ew.act_forward(ACT_CODES["tanh"], 0.0, x, x, 2)
    np.testing.assert_allclose(x, want, rtol=1e-14)
    dy = np.ones_like(x)
    ew.act_backward(ACT_CODES["tanh"], 0.0, None, x, dy, dy, 2)
    np.testing.assert_allclose(dy, 1 - want**2, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1), (1, 13), (13, 1), (7, 127), (257, 10)])
def test_softmax_forward_backward(shape, dtype):
    rng = np.random.default_rng(3)
    x = (rng.normal(size=shape) * 5).astype(dtype)
    y = np.empty_like(x)
    ew.softmax_forward(x, y)
    tol = TOL[dtype]
    np.testing.assert_allclose(y, ref.softmax(x), **tol)
    dy = rng.normal(size=shape).astype(dtype)
    dx = np.empty_like(x)
    ew.softmax_backward(y, dy, dx)
    np.testing.assert_allclose(dx, ref.softmax_backward(ref.softmax(x), dy), rtol=1e-5 if dtype == np.float32
                               else 1e-12, atol=1e-6 if dtype == np.float32 else 1e-14)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cols", [1, 3, 8, 10, 17, 100, 2047, 2049])
def test_softmax_of_a_row_does_not_depend_on_the_rows_around_it(cols, dtype):
    """Rows are taken together (a block of about 2048 elements: the exponentials of narrow rows fill the
    vector lanes): each row's result is the same bits alone, at any offset in a block, in place or
    not; equal to the float64 oracle; large and tiny logits neither overflow nor lose the row."""
    rng = np.random.default_rng(cols)
    rows = 3 * 2048 // cols + 5
    x = (rng.normal(size=(rows, cols)) * 5).astype(dtype)
    x[rows // 2] += 80.0                      # e^80 would overflow float32 without the row's max
    x[rows // 3] -= 120.0                     # and e^-120 underflow without it
    y = np.empty_like(x)
    ew.softmax_forward(x, y)
    np.testing.assert_allclose(y, ref.softmax(x), **TOL[dtype])
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5 if dtype == np.float32 else 1e-13)
    for r in sorted({0, 1, rows // 3, rows // 2, rows - 1}):
        for lo in (r, max(r - 7, 0)):            # the row alone, and a few rows before it
            part = np.empty_like(x[lo:r + 1])
            ew.softmax_forward(np.ascontiguousarray(x[lo:r + 1]), part)
            np.testing.assert_array_equal(part[-1], y[r])
    z = x.copy()
    ew.softmax_forward(z, z)                  # in place: the same bits
    np.testing.assert_array_equal(z, y)


def test_softmax_large_logits_and_gradient():
    x = np.array([[1e4, 0.0, -1e4], [1000.0, 1000.0, 999.0]])
    y = np.empty_like(x)
    ew.softmax_forward(x, y)
    np.testing.assert_allclose(y, ref.softmax(x), rtol=1e-14, atol=1e-300)
    z = np.array([[0.3, -1.2, 2.0, 0.1]])
    w = np.array([[0.5, -1.0, 2.0, 0.3]])

    def f(v):
        out = np.empty_like(v)
        ew.softmax_forward(v, out)
        return float((w * out).sum())

    p = np.empty_like(z)
    ew.softmax_forward(z, p)
    dx = np.empty_like(z)
    ew.softmax_backward(p, w, dx)
    np.testing.assert_allclose(dx, ref.numerical_grad(f, z), rtol=1e-7, atol=1e-9)


def test_errors():
    x = np.zeros(5)
    with pytest.raises(ValueError, match="unknown activation"):
        ew.act_forward(99, 0.0, x, x, 1)
    with pytest.raises(TypeError, match="float32"):
        ew.act_forward(0, 0.0, x, np.zeros(5, np.float32), 1)
    with pytest.raises(ValueError, match="shape"):
        ew.act_forward(0, 0.0, x, np.zeros(6), 1)
    ro = np.zeros(5)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        ew.act_forward(0, 0.0, x, ro, 1)
    with pytest.raises(ValueError, match="needs its input"):
        ew.act_backward(ACT_CODES["gelu"], 0.0, None, x, x, np.zeros(5), 1)
    with pytest.raises(ValueError, match="C-contiguous"):
        ew.act_forward(0, 0.0, np.zeros(10)[::2], np.zeros(5), 1)
    with pytest.raises(TypeError, match="ndarray"):
        ew.act_forward(0, 0.0, [1.0], np.zeros(1), 1)
    with pytest.raises(ValueError, match="at least one column"):
        ew.softmax_forward(np.zeros((2, 0)), np.zeros((2, 0)))
