"""nncore.ops: conversion rules, layouts, errors, and results against float64 references."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nncore
from nncore import ops

import reference as ref

RNG = np.random.default_rng(42)


def _readonly(a):
    a = np.array(a)
    a.flags.writeable = False
    return a


# ---------------------------------------------------------------- matmul


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
@pytest.mark.parametrize("mnk", [(1, 1, 1), (1, 13, 7), (13, 1, 7), (7, 13, 1), (127, 33, 257)])
def test_matmul_matches_numpy(mnk, ta, tb, dtype):
    m, n, k = mnk
    a = RNG.normal(size=(k, m) if ta else (m, k)).astype(dtype)
    b = RNG.normal(size=(n, k) if tb else (k, n)).astype(dtype)
    c = ops.matmul(a, b, transpose_a=ta, transpose_b=tb)
    want = (a.T if ta else a).astype(np.float64) @ (b.T if tb else b).astype(np.float64)
    assert c.dtype == dtype and c.shape == (m, n)
    np.testing.assert_allclose(c, want, rtol=1e-4 if dtype == np.float32 else 1e-12, atol=1e-4 if dtype ==
                               np.float32 else 1e-12)


@pytest.mark.parametrize("layout", ["fortran", "strided", "readonly", "list", "transposed_view"])
def test_matmul_layouts(layout):
    a0 = RNG.normal(size=(6, 5))
    b0 = RNG.normal(size=(5, 4))
    if layout == "fortran":
        a, b = np.asfortranarray(a0), np.asfortranarray(b0)
    elif layout == "strided":
        a = np.zeros((12, 10))[::2, ::2]
        a[...] = a0
        b = np.zeros((5, 8))[:, ::2]
        b[...] = b0
    elif layout == "readonly":
        a, b = _readonly(a0), _readonly(b0)
    elif layout == "list":
        a, b = a0.tolist(), b0.tolist()
    else:
        a, b = np.ascontiguousarray(a0.T).T, np.ascontiguousarray(b0.T).T
    np.testing.assert_allclose(ops.matmul(a, b), a0 @ b0, rtol=1e-12)
    # transposes of non-contiguous inputs too
    np.testing.assert_allclose(ops.matmul(np.asarray(a).T, np.asarray(b).T, transpose_a=True, transpose_b=True),
                               a0 @ b0, rtol=1e-12)


def test_matmul_dtype_rules_and_vectors():
    a32 = np.ones((2, 3), np.float32)
    assert ops.matmul(a32, a32.T).dtype == np.float32
    assert ops.matmul(a32, np.ones((3, 2))).dtype == np.float64
    assert ops.matmul([[1, 2]], [[3], [4]]).dtype == np.dtype(nncore.floatx())
    assert ops.matmul([[True]], [[True]]).dtype == np.dtype(nncore.floatx())
    assert ops.matmul([[1, 2]], [[3], [4]])[0, 0] == 11
    v = np.arange(3.0)
    np.testing.assert_allclose(ops.matmul(v, np.eye(3)), v)
    np.testing.assert_allclose(ops.matmul(np.eye(3), v), v)
    assert ops.matmul(np.zeros((2, 0)), np.zeros((0, 3))).tolist() == [[0.0] * 3] * 2
    assert ops.matmul(np.zeros((0, 4)), np.zeros((4, 3))).shape == (0, 3)


def test_matmul_out():
    a, b = RNG.normal(size=(4, 3)), RNG.normal(size=(3, 5))
    out = np.full((4, 5), np.nan)
    assert ops.matmul(a, b, out=out) is out
    np.testing.assert_allclose(out, a @ b, rtol=1e-12)
    big = np.zeros((4, 10))
    res = ops.matmul(a, b, out=big[:, ::2])  # a non-contiguous out is filled too
    np.testing.assert_allclose(big[:, ::2], a @ b, rtol=1e-12)
    assert res.base is big
    sq = RNG.normal(size=(3, 3))
    want = sq @ sq
    ops.matmul(sq, sq, out=sq)  # out aliasing an input
    np.testing.assert_allclose(sq, want, rtol=1e-12)


def test_matmul_errors():
    with pytest.raises(ValueError, match=r"inner dimensions differ: op\(a\) has shape \(2, 3\).*\(4, 5\)"):
        ops.matmul(np.zeros((2, 3)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match="1-D or 2-D"):
        ops.matmul(np.zeros((2, 2, 2)), np.zeros((2, 2)))
    with pytest.raises(TypeError, match="dtype complex128"):
        ops.matmul(np.zeros((2, 2), complex), np.zeros((2, 2)))
    with pytest.raises(TypeError, match="dtype"):
        ops.matmul([["a"]], [[1.0]])
    with pytest.raises(TypeError, match="out must have dtype float64, got float32"):
        ops.matmul(np.zeros((2, 2)), np.zeros((2, 2)), out=np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match=r"out must have shape \(2, 2\), got \(3, 2\)"):
        ops.matmul(np.zeros((2, 2)), np.zeros((2, 2)), out=np.zeros((3, 2)))
    with pytest.raises(ValueError, match="read-only"):
        ops.matmul(np.zeros((2, 2)), np.zeros((2, 2)), out=_readonly(np.zeros((2, 2))))
    with pytest.raises(ValueError, match="n_threads"):
        ops.matmul(np.zeros((2, 2)), np.zeros((2, 2)), n_threads=0)


# ---------------------------------------------------------------- dense


@pytest.mark.parametrize("name", [None] + list(ops.ACTIVATIONS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dense_matches_reference(name, dtype):
    x = RNG.normal(size=(13, 7)).astype(dtype)
    W = RNG.normal(size=(7, 5)).astype(dtype)
    b = RNG.normal(size=5).astype(dtype)
    y = ops.dense(x, W, b, activation=name)
    z = x.astype(np.float64) @ W.astype(np.float64) + b
    want = ref.softmax(z) if name == "softmax" else ref.act_forward(name or "linear", z)
    assert y.dtype == dtype and y.shape == (13, 5)
    np.testing.assert_allclose(y, want, rtol=1e-4 if dtype == np.float32 else 1e-12,
                               atol=1e-5 if dtype == np.float32 else 1e-12)


def test_dense_shapes_and_errors():
    W = np.ones((3, 2))
    assert ops.dense(np.ones(3), W).shape == (2,)
    assert ops.dense(np.ones((4, 5, 3)), W, [1.0, 2.0]).shape == (4, 5, 2)
    np.testing.assert_allclose(ops.dense(np.ones((2, 0)), np.ones((0, 2)), [1.0, -1.0], "relu"), [[1, 0], [1, 0]])
    with pytest.raises(ValueError, match=r"x has shape \(4, 2\), expected last dimension 3"):
        ops.dense(np.ones((4, 2)), W)
    with pytest.raises(ValueError, match=r"bias must have shape \(2,\), got \(3,\)"):
        ops.dense(np.ones((4, 3)), W, np.ones(3))
    with pytest.raises(ValueError, match="unknown activation 'nope'"):
        ops.dense(np.ones((4, 3)), W, activation="nope")
    with pytest.raises(ValueError, match="kernel must be 2-D"):
        ops.dense(np.ones((4, 3)), np.ones(3))


# ---------------------------------------------------------------- activations


@pytest.mark.parametrize("name", ops.ACTIVATIONS)
def test_activation_and_grad_by_name(name):
    x = np.asfortranarray(RNG.normal(size=(9, 4)) * 2)  # Fortran order is handled
    y = ops.activation(x, name)
    want = ref.softmax(x) if name == "softmax" else ref.act_forward(name, x)
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-14)
    dy = RNG.normal(size=x.shape)
    dx = ops.activation_grad(dy, y, name, x=x)
    if name == "softmax":
        want_dx = ref.softmax_backward(want, dy)
    else:
        want_dx = dy * ref.act_derivative(name, x)
    np.testing.assert_allclose(dx, want_dx, rtol=1e-10, atol=1e-12)


def test_activation_conversions_and_out():
    assert ops.activation([[-1, 2]], "relu").dtype == np.dtype(nncore.floatx())
    x32 = np.linspace(-2, 2, 12, dtype=np.float32).reshape(3, 4)
    assert ops.activation(x32, "tanh").dtype == np.float32
    ro = _readonly(x32)
    np.testing.assert_allclose(ops.activation(ro, "sigmoid"), ref.sigmoid(x32), rtol=1e-6)
    out = x32.copy()
    assert ops.activation(out, "relu", out=out) is out  # in place
    np.testing.assert_array_equal(out, np.maximum(x32, 0))
    np.testing.assert_allclose(ops.activation(x32[:, ::2], "relu"), np.maximum(x32[:, ::2], 0))
    np.testing.assert_allclose(ops.activation([-1.0, 1.0], "leaky_relu", alpha=0.5), [-0.5, 1.0])
    np.testing.assert_allclose(ops.softmax(np.zeros((2, 3)), axis=0), np.full((2, 3), 0.5))


def test_activation_errors():
    with pytest.raises(ValueError, match="unknown activation"):
        ops.activation([1.0], "relu6")
    with pytest.raises(TypeError, match="name"):
        ops.activation([1.0], 3)
    with pytest.raises(ValueError, match="needs the forward input x"):
        ops.activation_grad([1.0], [1.0], "gelu")
    with pytest.raises(ValueError, match=r"dy has shape \(3,\), expected \(2,\)"):
        ops.activation_grad([1.0, 1.0, 1.0], [1.0, 2.0], "relu")
    with pytest.raises(ValueError, match=r"x has shape \(1,\), expected \(2,\)"):
        ops.activation_grad([1.0, 1.0], [1.0, 2.0], "swish", x=[1.0])
    with pytest.raises(ValueError, match="empty"):
        ops.softmax(np.zeros((2, 0)))


# ---------------------------------------------------------------- reductions


def test_colsum_sumsq():
    x = RNG.normal(size=(5, 4, 3))
    np.testing.assert_allclose(ops.colsum(x), x.reshape(-1, 3).sum(0), rtol=1e-12)
    np.testing.assert_allclose(ops.colsum(np.asfortranarray(x[0])), x[0].sum(0), rtol=1e-12)
    assert ops.colsum([[1, 2], [3, 4]]).tolist() == [4.0, 6.0]
    np.testing.assert_allclose(ops.sumsq(x[:, ::2]), (x[:, ::2] ** 2).sum(), rtol=1e-12)
    with pytest.raises(ValueError, match="scalar"):
        ops.colsum(3.0)


# ---------------------------------------------------------------- losses


def _per_sample(kind, y_true, y_pred, w):
    P = np.asarray(y_pred, np.float64)
    k = P.shape[-1]
    if kind == "sparse_softmax_xent":
        lab = np.asarray(y_true).reshape(-1)
        return getattr(ref, kind)(P.reshape(-1, k), lab, w)
    return getattr(ref, kind)(P.reshape(-1, k), np.asarray(y_true, np.float64).reshape(-1, k), w)


@pytest.mark.parametrize("kind", ["softmax_xent", "sparse_softmax_xent", "sigmoid_bce", "mse", "mae"])
@pytest.mark.parametrize("lead", [(1,), (6,), (3, 4)])
@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum"])
def test_losses_match_reference(kind, lead, reduction):
    k = 5
    z = RNG.normal(size=lead + (k,))
    if kind == "softmax_xent":
        y = np.eye(k)[RNG.integers(0, k, lead)]
    elif kind == "sparse_softmax_xent":
        y = RNG.integers(0, k, lead)
    elif kind == "sigmoid_bce":
        y = RNG.integers(0, 2, lead + (k,))
    else:
        y = RNG.normal(size=lead + (k,))
    w = RNG.uniform(0.5, 2, lead)
    loss, grad = getattr(ops, kind)(y, z, sample_weight=w, reduction=reduction)
    li, g = _per_sample(kind, y, z, w.reshape(-1))
    N = int(np.prod(lead))
    scale = 1.0 / N if reduction == "sum_over_batch_size" else 1.0
    np.testing.assert_allclose(loss, scale * float(w.reshape(-1) @ li), rtol=1e-12)
    np.testing.assert_allclose(grad, scale * g.reshape(z.shape), rtol=1e-12, atol=1e-15)
    # the gradient is that of the returned loss (finite differences on a few entries)
    f = lambda v: getattr(ops, kind)(y, v, sample_weight=w, reduction=reduction)[0]  # noqa: E731
    if z.size <= 30 and kind != "mae":
        np.testing.assert_allclose(grad, ref.numerical_grad(f, z), rtol=1e-6, atol=1e-9)


def test_loss_conversions():
    # float32 predictions keep float32; targets follow them; ints become floatx
    loss, g = ops.mse(np.ones((2, 3)), np.zeros((2, 3), np.float32))
    assert g.dtype == np.float32 and loss == pytest.approx(1.0)
    loss, g = ops.mse([1, 2, 3], [1, 2, 5])
    assert g.shape == (3,) and loss == pytest.approx(4 / 3) and g.dtype == np.dtype(nncore.floatx())
    loss, g, p = ops.sparse_softmax_xent([[1], [0]], np.zeros((2, 2)), return_prob=True)
    assert loss == pytest.approx(np.log(2)) and np.allclose(p, 0.5)
    loss, _ = ops.sparse_softmax_xent(np.array([1.0, 0.0]), np.zeros((2, 2)))
    assert loss == pytest.approx(np.log(2))
    loss, g, p = ops.sigmoid_bce([1, 0], np.asfortranarray([[0.0], [0.0]]).T.T, return_prob=True)
    assert loss == pytest.approx(np.log(2)) and p.shape == (2, 1)
    big, _ = ops.softmax_xent([[0, 1]], [[1e4, -1e4]])
    assert big == pytest.approx(-np.log(1e-7))


def test_loss_errors():
    with pytest.raises(ValueError, match=r"y_true has shape \(2, 2\), expected \(2, 3\)"):
        ops.mse(np.zeros((2, 2)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\), got values in \[0, 3\]"):
        ops.sparse_softmax_xent([0, 3], np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        ops.sparse_softmax_xent([-1, 0], np.zeros((2, 3)))
    with pytest.raises(ValueError, match="non-integral"):
        ops.sparse_softmax_xent([0.5, 1], np.zeros((2, 3)))
    with pytest.raises(TypeError, match="integer class labels"):
        ops.sparse_softmax_xent(np.array(["a", "b"]), np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"y_true has shape \(3,\), expected \(2,\)"):
        ops.sparse_softmax_xent([0, 1, 1], np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"logits must be at least 2-D"):
        ops.sparse_softmax_xent([0, 1], np.zeros(2))
    with pytest.raises(ValueError, match=r"sample_weight must have shape \(2,\)"):
        ops.mae(np.zeros((2, 3)), np.zeros((2, 3)), sample_weight=[1, 2, 3])
    with pytest.raises(ValueError, match="reduction"):
        ops.mae(np.zeros((2, 3)), np.zeros((2, 3)), reduction="mean")
    with pytest.raises(ValueError, match="at least one output column"):
        ops.mse(np.zeros((2, 0)), np.zeros((2, 0)))
    with pytest.raises(TypeError, match="dtype"):
        ops.softmax_xent(np.zeros((2, 2)), np.zeros((2, 2), complex))


# ---------------------------------------------------------------- properties

dims = st.integers(min_value=0, max_value=9)
floats_dtype = st.sampled_from([np.float32, np.float64])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(m=dims, n=dims, k=dims, ka=dims, ta=st.booleans(), tb=st.booleans(), dtype=floats_dtype,
       seed=st.integers(0, 2**16))
def test_matmul_property(m, n, k, ka, ta, tb, dtype, seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(ka, m) if ta else (m, ka)).astype(dtype)
    b = rng.normal(size=(n, k) if tb else (k, n)).astype(dtype)
    if ka != k:
        with pytest.raises(ValueError, match="inner dimensions"):
            ops.matmul(a, b, transpose_a=ta, transpose_b=tb)
        return
    c = ops.matmul(a, b, transpose_a=ta, transpose_b=tb)
    want = (a.T if ta else a).astype(np.float64) @ (b.T if tb else b).astype(np.float64)
    np.testing.assert_allclose(c, want, rtol=1e-4, atol=1e-4)


@settings(max_examples=60, deadline=None)
@given(shape=st.lists(st.integers(0, 6), min_size=1, max_size=3), name=st.sampled_from(ops.ACTIVATIONS),
       dtype=floats_dtype, seed=st.integers(0, 2**16))
def test_activation_property(shape, name, dtype, seed):
    x = (np.random.default_rng(seed).normal(size=shape) * 4).astype(dtype)
    if name == "softmax" and shape[-1] == 0:
        with pytest.raises(ValueError):
            ops.activation(x, name)
        return
    y = ops.activation(x, name)
    want = ref.softmax(x) if name == "softmax" else ref.act_forward(name, x)
    assert y.shape == x.shape and y.dtype == dtype
    np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-5)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 8), k=st.integers(0, 6), kind=st.sampled_from(["softmax_xent", "sigmoid_bce", "mse", "mae",
                                                                       "sparse_softmax_xent"]),
       k_true=st.integers(0, 6), seed=st.integers(0, 2**16))
def test_loss_property(n, k, kind, k_true, seed):
    """Random shapes: a correct result or a clean ValueError, never a crash."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, k)) * 5
    if kind == "sparse_softmax_xent":
        y = rng.integers(-1, k + 1, n) if n else np.zeros(0, int)
    else:
        y = rng.uniform(size=(n, k_true))
    try:
        loss, grad = getattr(ops, kind)(y, z)
    except ValueError:
        bad_labels = kind == "sparse_softmax_xent" and n and (y.min() < 0 or y.max() >= k)
        assert k == 0 or bad_labels or (kind != "sparse_softmax_xent" and k_true != k)
        return
    assert np.isfinite(loss) and grad.shape == z.shape and np.all(np.isfinite(grad))
    if n:
        li, g = _per_sample(kind, y, z, None)
        np.testing.assert_allclose(loss, li.mean(), rtol=1e-10)
        np.testing.assert_allclose(grad, g / n, rtol=1e-10, atol=1e-14)
