"""Fused loss kernels (nncore._kernels.losses) against the float64 oracles."""
import numpy as np
import pytest

from nncore._kernels import losses as L
from nncore._kernels import runtime as rt

import reference as ref

# every test here runs at each SIMD level this machine runs (conftest.simd_level)
pytestmark = pytest.mark.usefixtures("simd_level")

# (n, k): 1x1, 1xN, Nx1, primes, the row-chunk size (4096 elements) +- 1 both ways
SHAPES = [(1, 1), (1, 13), (7, 1), (13, 7), (127, 3), (4095, 1), (4096, 1), (4097, 1), (3, 4095), (2, 4097),
          (257, 33)]
DTYPES = [np.float32, np.float64]
KINDS = ["softmax_xent", "sparse_softmax_xent", "sigmoid_bce", "mse", "mae"]


def _tol(dtype):
    return dict(rtol=2e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)


def _data(kind, n, k, dtype, seed=0, scale=3.0):
    """(prediction, target) for a loss kind; targets valid for that loss."""
    rng = np.random.default_rng(seed + 7 * n + k)
    z = (rng.normal(size=(n, k)) * scale).astype(dtype)
    if kind == "softmax_xent":
        y = rng.dirichlet(np.ones(k), size=n) if seed % 2 else np.eye(k)[rng.integers(0, k, n)]
    elif kind == "sparse_softmax_xent":
        y = rng.integers(0, k, n).astype(np.int64)
        return z, y
    elif kind == "sigmoid_bce":
        y = rng.uniform(size=(n, k)) if seed % 2 else rng.integers(0, 2, (n, k))
    else:
        y = rng.normal(size=(n, k))
    return z, np.ascontiguousarray(y, dtype=dtype)


def _call(kind, z, y, w=None, prob=None, d=None, grad_scale=1.0, n_threads=1):
    fn = getattr(L, kind)
    if kind in ("mse", "mae"):
        return fn(z, y, w, d, grad_scale, n_threads)
    return fn(z, y, w, prob, d, grad_scale, n_threads)


def _ref(kind, z, y, w=None):
    return getattr(ref, kind)(z.astype(np.float64), y if kind == "sparse_softmax_xent" else y.astype(np.float64), w)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kind", KINDS)
def test_value_and_gradient_match_reference(kind, shape, dtype, weighted):
    n, k = shape
    z, y = _data(kind, n, k, dtype, seed=int(weighted))
    w = np.random.default_rng(5).uniform(0.1, 2.0, n).astype(dtype) if weighted else None
    d = np.full_like(z, np.nan)
    scale = 1.0 / n
    total = _call(kind, z, y, w, d=d, grad_scale=scale)
    loss_i, grad = _ref(kind, z, y, None if w is None else w.astype(np.float64))
    wv = np.ones(n) if w is None else w.astype(np.float64)
    np.testing.assert_allclose(total, float(wv @ loss_i), **_tol(dtype))
    np.testing.assert_allclose(d, scale * grad, **_tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["softmax_xent", "sparse_softmax_xent", "sigmoid_bce"])
def test_probabilities_are_written(kind, dtype):
    z, y = _data(kind, 37, 5, dtype)
    prob = np.empty_like(z)
    _call(kind, z, y, prob=prob)
    want = ref.sigmoid(z) if kind == "sigmoid_bce" else ref.softmax(z)
    np.testing.assert_allclose(prob, want, **_tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", KINDS)
def test_optional_outputs_do_not_change_the_value(kind, dtype):
    z, y = _data(kind, 50, 6, dtype)
    base = _call(kind, z, y)
    assert _call(kind, z, y, d=np.empty_like(z)) == base
    if kind not in ("mse", "mae"):
        assert _call(kind, z, y, prob=np.empty_like(z)) == base
        assert _call(kind, z, y, prob=np.empty_like(z), d=np.empty_like(z)) == base


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", KINDS)
def test_thread_count_does_not_change_a_bit(kind, dtype):
    n, k = 3001, 37  # many row chunks, enough work for a team of two
    assert rt.team_size(2, n * k * 2.0) == min(2, rt.omp_max_threads())
    z, y = _data(kind, n, k, dtype)
    w = np.random.default_rng(2).uniform(0.5, 1.5, n).astype(dtype)
    outs = []
    for nt in (1, 2, 3):
        d, p = np.empty_like(z), np.empty_like(z)
        outs.append((_call(kind, z, y, w, p, d, 1.0 / n, nt), d, p))
    for total, d, p in outs[1:]:
        assert total == outs[0][0]  # bit-identical sums: fixed chunking and combination order
        np.testing.assert_array_equal(d, outs[0][1])
        if kind not in ("mse", "mae"):
            np.testing.assert_array_equal(p, outs[0][2])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["softmax_xent", "sparse_softmax_xent", "sigmoid_bce"])
def test_huge_logits_are_stable(kind, dtype):
    z = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 5.0], [3.0, 2.0, -1e4]], dtype)
    if kind == "softmax_xent":
        y = np.eye(3, dtype=dtype)
    elif kind == "sparse_softmax_xent":
        y = np.array([0, 0, 2], np.int64)
    else:
        y = np.array([[1, 0, 1], [1, 1, 0], [0, 1, 1]], dtype)
    d, p = np.empty_like(z), np.empty_like(z)
    total = _call(kind, z, y, prob=p, d=d)
    loss_i, grad = _ref(kind, z, y)
    assert np.isfinite(total) and np.all(np.isfinite(d)) and np.all(np.isfinite(p))
    np.testing.assert_allclose(total, loss_i.sum(), rtol=1e-6)
    np.testing.assert_allclose(d, grad, rtol=1e-6, atol=1e-7)
    # a confidently wrong prediction costs -log(1e-7) per element, not 1e4 (Keras's clip)
    assert total <= 3 * 16.2


@pytest.mark.parametrize("kind", KINDS)
def test_gradient_equals_finite_differences(kind):
    n, k = 4, 5
    z, y = _data(kind, n, k, np.float64, seed=1, scale=1.0)
    if kind == "mae":
        z = y + np.where(np.arange(n * k).reshape(n, k) % 2, 0.3, -0.4)  # away from the kink at 0
    w = np.array([0.5, 1.0, 2.0, 1.5])
    scale = 0.25
    d = np.empty_like(z)
    _call(kind, z, y, w, d=d, grad_scale=scale)
    num = ref.numerical_grad(lambda v: scale * _call(kind, v, y, w), z)
    np.testing.assert_allclose(d, num, rtol=1e-6, atol=1e-9)


def test_soft_targets_not_summing_to_one_get_the_exact_gradient():
    z = np.array([[0.2, -0.4, 1.0]])
    y = np.array([[0.5, 0.9, 0.1]])
    d = np.empty_like(z)
    L.softmax_xent(z, y, None, None, d, 1.0, 1)
    num = ref.numerical_grad(lambda v: L.softmax_xent(v, y), z)
    np.testing.assert_allclose(d, num, rtol=1e-7, atol=1e-9)


def test_mae_gradient_at_zero_residual_is_zero():
    y = np.array([[1.0, 2.0, 3.0]])
    d = np.empty_like(y)
    assert L.mae(y.copy(), y, None, d, 1.0, 1) == 0.0
    np.testing.assert_array_equal(d, 0.0)


@pytest.mark.parametrize("bad", [-1, 3, 2**40])
def test_sparse_labels_out_of_range_raise(bad):
    z = np.zeros((2, 3))
    d = np.full_like(z, 7.0)
    with pytest.raises(ValueError, match="out of range"):
        L.sparse_softmax_xent(z, np.array([0, bad], np.int64), None, None, d, 1.0, 1)
    np.testing.assert_array_equal(d, 7.0)  # nothing written: checked before the C call


def test_argument_errors():
    z = np.zeros((4, 3))
    y = np.zeros((4, 3))
    with pytest.raises(ValueError, match=r"shape of z"):
        L.softmax_xent(z, np.zeros((4, 2)))
    with pytest.raises(TypeError, match="float64"):
        L.softmax_xent(z, y.astype(np.float32))
    with pytest.raises(ValueError, match=r"\(4,\)"):
        L.mse(z, y, np.ones(3))
    with pytest.raises(ValueError, match="2-D"):
        L.mse(np.zeros(4), np.zeros(4))
    with pytest.raises(ValueError, match="at least one column"):
        L.sigmoid_bce(np.zeros((4, 0)), np.zeros((4, 0)))
    ro = np.zeros((4, 3))
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        L.mae(z, y, None, ro)
    with pytest.raises(ValueError, match=r"d must have shape"):
        L.mae(z, y, None, np.zeros((3, 4)))
    with pytest.raises(TypeError, match="int64"):
        L.sparse_softmax_xent(z, np.zeros(4, np.int32))
    with pytest.raises(ValueError, match=r"labels must have shape \(4,\)"):
        L.sparse_softmax_xent(z, np.zeros(5, np.int64))
    with pytest.raises(ValueError, match="C-contiguous"):
        L.mse(np.zeros((4, 6))[:, ::2], y)
    with pytest.raises(TypeError, match="ndarray"):
        L.mse([[0.0]], [[0.0]])


def test_empty_batch_is_zero():
    z = np.zeros((0, 3))
    assert L.softmax_xent(z, z, None, None, np.zeros((0, 3))) == 0.0
    assert L.sparse_softmax_xent(z, np.zeros(0, np.int64)) == 0.0
