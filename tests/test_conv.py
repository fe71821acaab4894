"""Convolution and pooling: kernels against plain NumPy float64 references, layers against a direct
convolution and central differences, a model on sklearn's digits, saving, errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nncore
from nncore._kernels import ACT_CODES
from nncore._kernels import conv as K
from nncore._kernels import elementwise as E
from nncore.layers import (AveragePooling1D, AveragePooling2D, Conv1D, Conv2D, Dense, Flatten,
                           GlobalAveragePooling1D, GlobalAveragePooling2D, GlobalMaxPooling1D, GlobalMaxPooling2D, Input,
                           MaxPooling1D, MaxPooling2D, get_layer_class)
from reference_layers import ACTIVATIONS, check_layer_gradients as _check_layer_gradients
from steady_state import peak_above_start

# every test here runs at each SIMD level this machine runs (conftest.simd_level)
pytestmark = pytest.mark.usefixtures("simd_level")


# ------------------------------------------------------------------------------------- references
def ref_out(size, k, s, d, padding):
    """(out, pad_before) from Keras's rules, written independently of the layer code."""
    span = d * (k - 1) + 1
    if padding == "valid":
        return int(np.floor((size - span) / s)) + 1, 0
    if padding == "causal":
        return int(np.ceil(size / s)), span - 1
    out = int(np.ceil(size / s))
    return out, max((out - 1) * s + span - size, 0) // 2


def ref_im2col(x, win, st, dil, pad, out):
    """cols[(b, oh, ow), (i, j, c)] by explicit loops."""
    n, h, w, c = x.shape
    (kh, kw), (sh, sw), (dh, dw), (pt, pl), (oh, ow) = win, st, dil, pad, out
    cols = np.zeros((n, oh, ow, kh, kw, c))
    for a in range(oh):
        for b in range(ow):
            for i in range(kh):
                for j in range(kw):
                    ih, iw = a * sh - pt + i * dh, b * sw - pl + j * dw
                    if 0 <= ih < h and 0 <= iw < w:
                        cols[:, a, b, i, j] = x[:, ih, iw]
    return cols.reshape(n * oh * ow, kh * kw * c)


def ref_col2im(cols, xshape, win, st, dil, pad, out):
    n, h, w, c = xshape
    (kh, kw), (sh, sw), (dh, dw), (pt, pl), (oh, ow) = win, st, dil, pad, out
    cols = cols.reshape(n, oh, ow, kh, kw, c)
    x = np.zeros(xshape)
    for a in range(oh):
        for b in range(ow):
            for i in range(kh):
                for j in range(kw):
                    ih, iw = a * sh - pt + i * dh, b * sw - pl + j * dw
                    if 0 <= ih < h and 0 <= iw < w:
                        x[:, ih, iw] += cols[:, a, b, i, j]
    return x


def ref_conv2d(x, kernel, bias, st, dil, padding):
    """Direct convolution on the zero-padded input (Keras's formula), float64."""
    n, h, w, c = x.shape
    kh, kw, _, f = kernel.shape
    (oh, pt), (ow, pl) = ref_out(h, kh, st[0], dil[0], padding), ref_out(w, kw, st[1], dil[1], padding)
    big = np.zeros((n, h + 2 * kh * dil[0] + oh * st[0], w + 2 * kw * dil[1] + ow * st[1], c))
    big[:, pt:pt + h, pl:pl + w] = x
    z = np.zeros((n, oh, ow, f)) + (0 if bias is None else bias)
    for i in range(kh):
        for j in range(kw):
            patch = big[:, i * dil[0]:i * dil[0] + oh * st[0]:st[0], j * dil[1]:j * dil[1] + ow * st[1]:st[1]]
            z += patch @ kernel[i, j]
    return z


def ref_pool(x, pool, st, padding, kind):
    """Max/mean over the taps inside the input; for max also the dx of dy = 1 (first maximum wins)."""
    n, h, w, c = x.shape
    (oh, pt), (ow, pl) = ref_out(h, pool[0], st[0], 1, padding), ref_out(w, pool[1], st[1], 1, padding)
    y = np.zeros((n, oh, ow, c))
    for a in range(oh):
        for b in range(ow):
            r0, c0 = a * st[0] - pt, b * st[1] - pl
            win = x[:, max(r0, 0):min(r0 + pool[0], h), max(c0, 0):min(c0 + pool[1], w)]
            y[:, a, b] = win.max(axis=(1, 2)) if kind == "max" else win.mean(axis=(1, 2))
    return y


def ref_pool_backward(x, dy, pool, st, padding, kind):
    n, h, w, c = x.shape
    (oh, pt), (ow, pl) = ref_out(h, pool[0], st[0], 1, padding), ref_out(w, pool[1], st[1], 1, padding)
    dx = np.zeros(x.shape)
    for a in range(oh):
        for b in range(ow):
            r0, c0 = a * st[0] - pt, b * st[1] - pl
            rs, cs = slice(max(r0, 0), min(r0 + pool[0], h)), slice(max(c0, 0), min(c0 + pool[1], w))
            win = x[:, rs, cs]
            if kind == "avg":
                dx[:, rs, cs] += dy[:, a, b][:, None, None] / (win.shape[1] * win.shape[2])
                continue
            flat = win.reshape(n, -1, c)
            first = flat.argmax(axis=1)                        # NumPy's argmax: the first maximum
            for bi in range(n):
                for ci in range(c):
                    i, j = divmod(first[bi, ci], win.shape[2])
                    dx[bi, rs.start + i, cs.start + j, ci] += dy[bi, a, b, ci]
    return dx


# ------------------------------------------------------------------------------------- kernels
# (x shape, window, strides, dilation, padding): 1x1, odd sizes, stride > kernel, dilation, batch 1
GEOMS = [
    ((2, 5, 7, 3), (3, 3), (1, 1), (1, 1), "valid"),
    ((1, 5, 7, 3), (3, 3), (1, 1), (1, 1), "same"),
    ((3, 4, 6, 2), (1, 1), (1, 1), (1, 1), "valid"),
    ((2, 9, 8, 1), (2, 3), (3, 4), (1, 1), "valid"),
    ((2, 9, 8, 1), (2, 3), (3, 4), (1, 1), "same"),
    ((2, 7, 9, 4), (3, 2), (1, 1), (2, 3), "same"),
    ((1, 11, 6, 5), (4, 1), (2, 1), (1, 1), "same"),
    ((2, 3, 3, 2), (3, 3), (2, 2), (1, 1), "same"),
]


def _geom(xshape, win, st, dil, padding):
    (oh, pt), (ow, pl) = (ref_out(s, k, t, d, padding) for s, k, t, d in zip(xshape[1:3], win, st, dil))
    return (pt, pl), (oh, ow)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("geom", GEOMS)
def test_im2col_col2im_match_references(dtype, geom):
    xshape, win, st, dil, padding = geom
    pad, out = _geom(xshape, win, st, dil, padding)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(xshape).astype(dtype)
    m, k = xshape[0] * out[0] * out[1], win[0] * win[1] * xshape[3]
    cols = np.full((m, k), np.nan, dtype)                    # every entry must be written, padding as 0
    K.im2col(x, cols, win, st, dil, pad, out, n_threads=2)
    np.testing.assert_array_equal(cols, ref_im2col(x, win, st, dil, pad, out).astype(dtype))
    g = rng.standard_normal((m, k)).astype(dtype)
    dx = np.full(xshape, np.nan, dtype)
    K.col2im(g, dx, win, st, dil, pad, out, n_threads=2)
    tol = 1e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(dx, ref_col2im(g.astype(np.float64), xshape, win, st, dil, pad, out),
                               rtol=tol, atol=tol)


# Short window runs (kw c values, or c a tap when dilated, at most 64 bytes: one fixed-size copy each, the
# copy reaching past the run) over many row blocks of conv_forward, odd sizes, batch 1 and 1023
FAST_GEOMS = [
    ((5, 29, 31, 1), (3, 3), (1, 1), (1, 1), "valid"),
    ((3, 28, 27, 3), (3, 3), (1, 1), (1, 1), "same"),
    ((1, 33, 30, 2), (5, 5), (2, 2), (1, 1), "same"),
    ((4, 25, 23, 1), (3, 3), (1, 1), (2, 2), "same"),
    ((2, 17, 19, 5), (3, 3), (2, 1), (1, 1), "valid"),
    ((2, 15, 13, 16), (1, 2), (1, 1), (1, 1), "valid"),
    ((1023, 6, 7, 1), (3, 3), (1, 1), (1, 1), "same"),
    ((1, 4, 3, 1), (3, 3), (1, 1), (1, 1), "valid"),
    ((3, 8, 6, 4), (1, 4), (1, 1), (3, 3), "same"),      # 'same' padding wider than the image's inside
    ((2, 3, 11, 2), (2, 3), (1, 3), (1, 1), "same"),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("geom", FAST_GEOMS + GEOMS)
def test_conv_forward_matches_im2col_and_gemm_references(dtype, geom):
    # y = relu(im2col(x) W + b) made a row block at a time; cols (when given) the im2col reference
    xshape, win, st, dil, padding = geom
    pad, out = _geom(xshape, win, st, dil, padding)
    rng = np.random.default_rng(3)
    x = rng.standard_normal(xshape).astype(dtype)
    m, k, f = xshape[0] * out[0] * out[1], win[0] * win[1] * xshape[3], 37
    w, b = rng.standard_normal((k, f)).astype(dtype), rng.standard_normal(f).astype(dtype)
    ref_cols = ref_im2col(x, win, st, dil, pad, out)
    cols = np.full((m, k), np.nan, dtype)
    K.im2col(x, cols, win, st, dil, pad, out, n_threads=2)
    np.testing.assert_array_equal(cols, ref_cols.astype(dtype))
    ref = np.maximum(ref_cols @ w.astype(np.float64) + b, 0)
    tol = 2e-5 if dtype == np.float32 else 1e-12
    ys = []
    for nt, keep in ((1, False), (2, False), (2, True)):
        y = np.full((m, f), np.nan, dtype)
        cols = np.full((m, k), np.nan, dtype) if keep else None
        K.conv_forward(x, w, y, b, ACT_CODES["relu"], 0.0, win, st, dil, pad, out, cols=cols, n_threads=nt)
        np.testing.assert_allclose(y, ref, rtol=tol, atol=tol * np.sqrt(k))
        if keep:
            np.testing.assert_array_equal(cols, ref_cols.astype(dtype))
        ys.append(y)
    np.testing.assert_array_equal(ys[0], ys[1])           # any thread count: the same bits
    np.testing.assert_array_equal(ys[0], ys[2])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("act", ["relu", "linear", "tanh", "gelu"])
@pytest.mark.parametrize("geom", FAST_GEOMS + GEOMS)
def test_conv_backward_weights_matches_the_references(dtype, act, geom):
    # delta = dy f'(z), dK = im2col(x)^T delta, db = sum_rows delta, a row block at a time in fixed parts:
    # against float64 NumPy, the same bits for 1 and 2 threads, delta written only when asked for
    xshape, win, st, dil, padding = geom
    pad, out = _geom(xshape, win, st, dil, padding)
    rng = np.random.default_rng(4)
    x = rng.standard_normal(xshape).astype(dtype)
    m, k, f = xshape[0] * out[0] * out[1], win[0] * win[1] * xshape[3], 19
    z = rng.standard_normal((m, f)).astype(dtype)
    y = ACTIVATIONS[act](z.astype(np.float64)).astype(dtype)
    dy = rng.standard_normal((m, f)).astype(dtype)
    zd, yd = z.astype(np.float64), y.astype(np.float64)
    if act == "gelu":                                   # f' needs z: the activation kernel's own derivative
        ref_delta = np.empty((m, f))
        E.act_backward(ACT_CODES[act], 0.0, zd, yd, dy.astype(np.float64), ref_delta)
    else:
        deriv = {"relu": yd > 0, "linear": np.ones_like(yd), "tanh": 1 - yd * yd}[act]
        ref_delta = dy * deriv
    cols = ref_im2col(x.astype(np.float64), win, st, dil, pad, out)
    ref_dk, ref_db = cols.T @ ref_delta, ref_delta.sum(axis=0)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    outs = []
    for nt, bias, keep in ((1, True, True), (2, True, True), (2, False, False)):
        dk = np.full((k, f), np.nan, dtype)
        db = np.full(f, np.nan, dtype) if bias else None
        delta = np.full((m, f), np.nan, dtype) if keep else None
        ret = K.conv_backward_weights(x, dy, y, dk, db, ACT_CODES[act], 0.0, z if act == "gelu" else None, delta,
                                      win, st, dil, pad, out, n_threads=nt)
        if act == "linear":
            assert ret is dy
        elif keep:
            assert ret is delta
            np.testing.assert_allclose(delta, ref_delta, rtol=tol, atol=tol)
        else:
            assert ret is None
        scale = np.sqrt(m) * tol
        np.testing.assert_allclose(dk, ref_dk, rtol=tol, atol=scale * max(np.abs(ref_dk).max(), 1))
        if bias:
            np.testing.assert_allclose(db, ref_db, rtol=tol, atol=scale * max(np.abs(ref_db).max(), 1))
        outs.append((dk, db))
    np.testing.assert_array_equal(outs[0][0], outs[1][0])   # any thread count: the same bits
    np.testing.assert_array_equal(outs[0][0], outs[2][0])
    np.testing.assert_array_equal(outs[0][1], outs[1][1])


@pytest.mark.parametrize("act", ["gelu", "gelu_tanh", "swish"])
def test_conv_backward_weights_refuses_a_missing_z_where_the_derivative_needs_it(act):
    # these activations' derivatives read z: z=None is a ValueError, never a NULL read in C
    x = np.ones((1, 4, 4, 1), np.float32)
    y = np.ones((4, 3), np.float32)
    dk = np.empty((9, 3), np.float32)
    with pytest.raises(ValueError, match="needs its pre-activation z"):
        K.conv_backward_weights(x, y.copy(), y, dk, None, ACT_CODES[act], 0.0, None, None, (3, 3), (1, 1), (1, 1),
                                (0, 0), (2, 2))



@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("geom", [((2, 5, 7, 3), (2, 2), (2, 2), "valid"), ((1, 5, 7, 3), (2, 2), (2, 2), "same"),
                                  ((2, 6, 5, 2), (3, 3), (1, 1), "same"), ((2, 7, 8, 1), (2, 3), (3, 1), "same"),
                                  ((3, 4, 4, 5), (1, 1), (2, 2), "valid"), ((1, 9, 9, 2), (4, 4), (3, 2), "same"),
                                  ((2, 3, 5, 2), (3, 5), (1, 1), "valid")])
def test_pooling_kernels_match_references(dtype, kind, geom):
    xshape, pool, st, padding = geom
    pad, out = _geom(xshape, pool, st, (1, 1), padding)
    rng = np.random.default_rng(1)
    x = rng.standard_normal(xshape).astype(dtype)
    y = np.full((xshape[0],) + out + (xshape[3],), np.nan, dtype)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = np.full(xshape, np.nan, dtype)
    tol = 1e-6 if dtype == np.float32 else 1e-13
    if kind == "max":
        idx = np.full(y.shape, -7, np.int32)
        K.maxpool_forward(x, y, idx, pool, st, pad, n_threads=2)
        np.testing.assert_array_equal(y, ref_pool(x, pool, st, padding, "max").astype(dtype))
        K.maxpool_backward(idx, dy, dx, pool, st, pad, n_threads=2)
        y2 = np.empty_like(y)                                 # inference: no index, same values
        K.maxpool_forward(x, y2, None, pool, st, pad)
        np.testing.assert_array_equal(y2, y)
    else:
        K.avgpool_forward(x, y, pool, st, pad, n_threads=2)
        np.testing.assert_allclose(y, ref_pool(x.astype(np.float64), pool, st, padding, "avg"), rtol=tol, atol=tol)
        K.avgpool_backward(dy, dx, pool, st, pad, n_threads=2)
    np.testing.assert_allclose(dx, ref_pool_backward(x, dy.astype(np.float64), pool, st, padding, kind),
                               rtol=tol, atol=tol)


def test_maxpool_ties_go_to_the_first_element_and_nan_propagates():
    x = np.zeros((1, 4, 4, 2))
    x[0, 1, 1, 1] = x[0, 0, 1, 1] = 3.0                       # a tie inside the first window of channel 1
    x[0, 3, 3, 0] = np.nan
    y, idx, dx = np.empty((1, 2, 2, 2)), np.empty((1, 2, 2, 2), np.int32), np.empty_like(x)
    K.maxpool_forward(x, y, idx, (2, 2), (2, 2))
    K.maxpool_backward(idx, np.ones_like(y), dx, (2, 2), (2, 2))
    assert idx[0, 0, 0].tolist() == [0, 1]                    # flat pixels: (0, 0) for the zeros, (0, 1) for 3
    assert np.isnan(y[0, 1, 1, 0]) and idx[0, 1, 1, 0] == 15
    assert dx[0, 0, 1, 1] == 1 and dx[0, 1, 1, 1] == 0 and dx[0, 0, 0, 0] == 1 and dx.sum() == 8


def test_kernels_give_the_same_bits_for_one_and_two_threads():
    # large enough for a team (the work threshold), with overlapping windows and padding
    rng = np.random.default_rng(2)
    x = rng.standard_normal((16, 30, 31, 8)).astype(np.float32)
    win, st, dil, pad, out = (3, 3), (1, 1), (1, 1), (1, 1), (30, 31)
    c1 = np.empty((16 * 30 * 31, 72), np.float32)
    c2 = np.empty_like(c1)
    K.im2col(x, c1, win, st, dil, pad, out, n_threads=1)
    K.im2col(x, c2, win, st, dil, pad, out, n_threads=2)
    np.testing.assert_array_equal(c1, c2)
    d1, d2 = np.empty_like(x), np.empty_like(x)
    K.col2im(c1, d1, win, st, dil, pad, out, n_threads=1)
    K.col2im(c1, d2, win, st, dil, pad, out, n_threads=2)
    np.testing.assert_array_equal(d1, d2)
    for kind in ("max", "avg"):
        ys = [np.empty((16, 15, 16, 8), np.float32) for _ in range(2)]
        dxs = [np.empty_like(x) for _ in range(2)]
        idx = np.empty(ys[0].shape, np.int32)
        for t, y, dx in zip((1, 2), ys, dxs):
            if kind == "max":
                K.maxpool_forward(x, y, idx, (3, 3), (2, 2), (1, 1), n_threads=t)
                K.maxpool_backward(idx, ys[0], dx, (3, 3), (2, 2), (1, 1), n_threads=t)
            else:
                K.avgpool_forward(x, y, (3, 3), (2, 2), (1, 1), n_threads=t)
                K.avgpool_backward(ys[0], dx, (3, 3), (2, 2), (1, 1), n_threads=t)
        np.testing.assert_array_equal(ys[0], ys[1])
        np.testing.assert_array_equal(dxs[0], dxs[1])


def test_kernel_wrappers_refuse_bad_arguments():
    x = np.zeros((2, 5, 5, 3), np.float32)
    cols = np.zeros((2 * 9, 27), np.float32)
    K.im2col(x, cols, (3, 3), (1, 1), (1, 1), (0, 0), (3, 3))
    with pytest.raises(ValueError, match=r"cols: expected shape \(18, 27\)"):
        K.im2col(x, cols[:, :26].copy(), (3, 3), (1, 1), (1, 1), (0, 0), (3, 3))
    with pytest.raises(TypeError, match="cols: expected dtype float32"):
        K.im2col(x, cols.astype(np.float64), (3, 3), (1, 1), (1, 1), (0, 0), (3, 3))
    with pytest.raises(ValueError, match="x: expected a 4-D array"):
        K.im2col(x[0], cols, (3, 3), (1, 1), (1, 1), (0, 0), (3, 3))
    with pytest.raises(ValueError, match="C-contiguous"):
        K.im2col(np.zeros((2, 5, 5, 6), np.float32)[..., ::2], cols, (3, 3), (1, 1), (1, 1), (0, 0), (3, 3))
    with pytest.raises(ValueError, match="strides: expected values >= 1"):
        K.im2col(x, cols, (3, 3), (0, 1), (1, 1), (0, 0), (3, 3))
    with pytest.raises(ValueError, match="pad: expected values >= 0"):
        K.im2col(x, cols, (3, 3), (1, 1), (1, 1), (-1, 0), (3, 3))
    with pytest.raises(TypeError, match="window: expected a pair of ints"):
        K.im2col(x, cols, 3, (1, 1), (1, 1), (0, 0), (3, 3))
    with pytest.raises(ValueError, match="read-only"):
        ro = cols.copy()
        ro.flags.writeable = False
        K.im2col(x, ro, (3, 3), (1, 1), (1, 1), (0, 0), (3, 3))
    y = np.zeros((2, 2, 2, 3), np.float32)
    with pytest.raises(TypeError, match="idx: expected a C-contiguous int32"):
        K.maxpool_forward(x, y, np.zeros(y.shape, np.int64))
    with pytest.raises(ValueError, match="idx: expected shape"):
        K.maxpool_backward(np.zeros((2, 2, 2, 2), np.int32), y, x)
    with pytest.raises(ValueError, match=r"y: expected shape \(2, 2, 2, 3\)"):
        K.avgpool_forward(x, np.zeros((2, 2, 2, 4), np.float32))
    with pytest.raises(TypeError, match="dy: expected a numpy.ndarray"):
        K.avgpool_backward([[1.0]], x)
    # indices that no forward made are skipped, never written out of bounds
    idx = np.full(y.shape, 10 ** 6, np.int32)
    dx = np.full(x.shape, np.nan, np.float32)
    K.maxpool_backward(idx, np.ones_like(y), dx)
    assert not dx.any()


@settings(max_examples=60, deadline=None, derandomize=True)
@given(n=st.integers(1, 3), h=st.integers(1, 9), w=st.integers(1, 9), c=st.integers(1, 4), f=st.integers(1, 3),
       kh=st.integers(1, 4), kw=st.integers(1, 4), sh=st.integers(1, 3), sw=st.integers(1, 3),
       dil=st.integers(1, 3), padding=st.sampled_from(["valid", "same"]))
def test_property_conv2d_and_pooling_on_random_geometries(n, h, w, c, f, kh, kw, sh, sw, dil, padding):
    # any geometry Keras accepts: the layer against the direct convolution, col2im as im2col's adjoint
    # (<im2col(x), g> = <x, col2im(g)>) and both poolings against their references
    d = (1, 1) if max(sh, sw) > 1 else (dil, dil)
    (oh, pt), (ow, pl) = ref_out(h, kh, sh, d[0], padding), ref_out(w, kw, sw, d[1], padding)
    rng = np.random.default_rng(n * 1000 + h * 100 + w * 10 + c)
    x = rng.standard_normal((n, h, w, c))
    if oh < 1 or ow < 1:                                      # the window does not fit: a clear error
        with pytest.raises(ValueError, match="larger than"):
            Conv2D(f, (kh, kw), strides=(sh, sw), padding=padding, dilation_rate=d)(x)
        return
    layer = Conv2D(f, (kh, kw), strides=(sh, sw), padding=padding, dilation_rate=d)
    nncore.set_floatx("float64")
    try:
        y = layer(x)
    finally:
        nncore.set_floatx("float32")
    np.testing.assert_allclose(y, ref_conv2d(x, layer.kernel, layer.bias, (sh, sw), d, padding), rtol=1e-12,
                               atol=1e-12)
    cols = np.empty((n * oh * ow, kh * kw * c))
    K.im2col(x, cols, (kh, kw), (sh, sw), d, (pt, pl), (oh, ow))
    g = rng.standard_normal(cols.shape)
    dx = np.empty_like(x)
    K.col2im(g, dx, (kh, kw), (sh, sw), d, (pt, pl), (oh, ow))
    assert np.sum(cols * g) == pytest.approx(np.sum(x * dx), rel=1e-12, abs=1e-12)
    (oh, pt), (ow, pl) = ref_out(h, kh, sh, 1, padding), ref_out(w, kw, sw, 1, padding)   # pooling: no dilation
    if oh >= 1 and ow >= 1:
        y = np.empty((n, oh, ow, c))
        K.maxpool_forward(x, y, None, (kh, kw), (sh, sw), (pt, pl))
        np.testing.assert_array_equal(y, ref_pool(x, (kh, kw), (sh, sw), padding, "max"))
        K.avgpool_forward(x, y, (kh, kw), (sh, sw), (pt, pl))
        np.testing.assert_allclose(y, ref_pool(x, (kh, kw), (sh, sw), padding, "avg"), rtol=1e-13, atol=1e-13)


# ------------------------------------------------------------------------------------- layers
CONV_CASES = [  # (x shape, filters, kernel_size, strides, padding, dilation)
    ((2, 6, 7, 3), 4, 3, 1, "valid", 1),
    ((1, 5, 5, 2), 3, (3, 2), 1, "same", 1),
    ((3, 4, 5, 3), 5, 1, 1, "valid", 1),                    # 1x1: no im2col
    ((2, 7, 6, 1), 2, 2, 3, "valid", 1),                    # stride > kernel
    ((2, 7, 8, 2), 3, 3, (2, 3), "same", 1),
    ((1, 8, 7, 2), 2, (2, 3), 1, "same", (2, 2)),           # dilation
    ((2, 6, 6, 3), 4, 1, 2, "same", 1),                     # 1x1 with stride: im2col
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize("act", ["linear", "relu", "gelu", "softmax"])
def test_conv2d_forward_matches_direct_convolution(dtype, case, act):
    xshape, f, k, s, padding, d = case
    rng = np.random.default_rng(3)
    nncore.set_floatx(dtype)
    try:
        layer = Conv2D(f, k, strides=s, padding=padding, dilation_rate=d, activation=act)
        x = rng.standard_normal(xshape).astype(dtype)
        layer(x)
    finally:
        nncore.set_floatx("float32")
    layer.set_weights([rng.standard_normal(layer.kernel.shape), rng.standard_normal(f)])
    y = layer(x)
    st, dl = layer.strides, layer.dilation_rate
    ref = ACTIVATIONS[act](ref_conv2d(x.astype(np.float64), layer.kernel.astype(np.float64),
                                      layer.bias.astype(np.float64), st, dl, padding))
    assert y.dtype == dtype and y.shape == ref.shape == layer.output_shape[:0] + (xshape[0],) + layer.output_shape[1:]
    tol = 2e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(y, ref, rtol=tol, atol=tol)


@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize("act", ["linear", "tanh", "swish"])
def test_conv2d_gradients_finite_differences(float64, case, act):
    xshape, f, k, s, padding, d = case
    rng = np.random.default_rng(4)
    layer = Conv2D(f, k, strides=s, padding=padding, dilation_rate=d, activation=act)
    _check_layer_gradients(layer, rng.standard_normal(xshape), rng)


def test_conv2d_softmax_and_no_bias_gradients(float64):
    rng = np.random.default_rng(5)
    _check_layer_gradients(Conv2D(3, 2, padding="same", activation="softmax"), rng.standard_normal((2, 3, 5, 2)), rng)
    _check_layer_gradients(Conv2D(2, 3, use_bias=False), rng.standard_normal((1, 4, 5, 3)), rng, params=("kernel",))


@pytest.mark.parametrize("padding,k,s,d", [("valid", 3, 1, 1), ("same", 4, 2, 1), ("causal", 3, 1, 2),
                                           ("same", 1, 1, 1), ("causal", 2, 3, 1)])
def test_conv1d_forward_and_gradients(float64, padding, k, s, d):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 9, 3))
    layer = Conv1D(4, k, strides=s, padding=padding, dilation_rate=d, activation="tanh")
    y = layer(x)
    assert layer.kernel.shape == (k, 3, 4)
    # a Conv1D is the Conv2D of height 1 with the causal padding put in front by hand
    if padding == "causal":
        xp, pad2 = np.concatenate([np.zeros((2, (k - 1) * d, 3)), x], axis=1), "valid"
    else:
        xp, pad2 = x, padding
    ref = np.tanh(ref_conv2d(xp[:, None], layer.kernel[None], layer.bias, (1, s), (1, d), pad2))[:, 0]
    np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-12)
    if padding == "causal":
        assert y.shape[1] == -(-9 // s)
    _check_layer_gradients(Conv1D(4, k, strides=s, padding=padding, dilation_rate=d, activation="tanh"), x, rng)


POOL_CASES = [((2, 6, 7, 3), 2, None, "valid"), ((1, 5, 5, 2), 3, 2, "same"), ((2, 7, 6, 1), (2, 3), (3, 1), "same"),
              ((3, 4, 4, 2), 1, 2, "valid"), ((1, 5, 7, 2), 3, 1, "same")]


@pytest.mark.parametrize("cls", [MaxPooling2D, AveragePooling2D])
@pytest.mark.parametrize("case", POOL_CASES)
def test_pooling_layers_forward_and_gradients(float64, cls, case):
    xshape, pool, st, padding = case
    rng = np.random.default_rng(7)
    x = rng.standard_normal(xshape)
    layer = cls(pool, strides=st, padding=padding)
    y = layer(x)
    p2, s2 = layer.pool_size, layer.strides
    ref = ref_pool(x, p2, s2, padding, "max" if cls is MaxPooling2D else "avg")
    np.testing.assert_allclose(y, ref, rtol=1e-13, atol=1e-13)
    assert y.shape == (xshape[0],) + layer.output_shape[1:]
    _check_layer_gradients(layer, x, rng, params=())


@pytest.mark.parametrize("cls,fn", [(GlobalMaxPooling2D, np.max), (GlobalAveragePooling2D, np.mean)])
@pytest.mark.parametrize("keepdims", [False, True])
def test_global_pooling_forward_and_gradients(float64, cls, fn, keepdims):
    rng = np.random.default_rng(8)
    for xshape in [(2, 5, 3, 4), (1, 1, 1, 3)]:
        x = rng.standard_normal(xshape)
        layer = cls(keepdims=keepdims)
        y = layer(x)
        np.testing.assert_allclose(y, fn(x, axis=(1, 2), keepdims=keepdims), rtol=1e-13, atol=1e-13)
        _check_layer_gradients(cls(keepdims=keepdims), x, rng, params=())


@pytest.mark.parametrize("cls,kind", [(MaxPooling1D, "max"), (AveragePooling1D, "avg")])
@pytest.mark.parametrize("pool,st,padding", [(2, None, "valid"), (3, 2, "same"), (4, 1, "same"), (3, 4, "valid")])
def test_pooling1d_forward_and_gradients(float64, cls, kind, pool, st, padding):
    rng = np.random.default_rng(10)
    x = rng.standard_normal((2, 11, 3))
    layer = cls(pool, strides=st, padding=padding)
    y = layer(x)
    ref = ref_pool(x[:, None], (1, pool), (1, pool if st is None else st), padding, kind)[:, 0]
    assert y.shape == ref.shape == (2,) + layer.output_shape[1:]
    np.testing.assert_allclose(y, ref, rtol=1e-13, atol=1e-13)
    _check_layer_gradients(layer, x, rng, params=())


@pytest.mark.parametrize("cls,fn", [(GlobalMaxPooling1D, np.max), (GlobalAveragePooling1D, np.mean)])
@pytest.mark.parametrize("keepdims", [False, True])
def test_global_pooling1d_forward_and_gradients(float64, cls, fn, keepdims):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((3, 7, 2))
    layer = cls(keepdims=keepdims)
    np.testing.assert_allclose(layer(x), fn(x, axis=1, keepdims=keepdims), rtol=1e-13, atol=1e-13)
    _check_layer_gradients(cls(keepdims=keepdims), x, rng, params=())


def test_conv1d_model_on_sequences():
    rng = np.random.default_rng(12)
    x = rng.standard_normal((96, 20, 2)).astype(np.float32)
    y = (x[:, :, 0].sum(axis=1) > 0).astype(np.int64)        # the sign of a sum over the steps
    nncore.set_seed(4)
    model = nncore.Sequential([Input(shape=(20, 2)), Conv1D(8, 3, padding="causal", activation="relu"),
                               MaxPooling1D(2), Conv1D(8, 3, activation="tanh"), GlobalAveragePooling1D(),
                               Dense(2, activation="softmax")])
    model.compile(optimizer=nncore.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    hist = model.fit(x, y, epochs=30, batch_size=32, verbose=0)
    assert hist.history["loss"][-1] < 0.5 * hist.history["loss"][0]
    assert model.output_shape == (None, 2) and model.layers[1].output_shape == (None, 10, 8)


# ------------------------------------------------------------------------------------- models
def _digits():
    datasets = pytest.importorskip("sklearn.datasets")
    d = datasets.load_digits()
    x = (d.data / 16.0).reshape(-1, 8, 8, 1).astype(np.float32)
    return x, d.target.astype(np.int64)


def _cnn(pool=MaxPooling2D):
    return nncore.Sequential([Input(shape=(8, 8, 1)), Conv2D(16, 3, padding="same", activation="relu"), pool(2),
                              Conv2D(32, 3, activation="relu"), Flatten(), Dense(10, activation="softmax")])


def test_cnn_learns_digits():
    x, y = _digits()
    perm = np.random.default_rng(0).permutation(len(y))      # the last digits are another set of writers
    x, y = x[perm], y[perm]
    nncore.set_seed(0)
    model = _cnn()
    model.compile(optimizer=nncore.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    hist = model.fit(x[:1400], y[:1400], epochs=8, batch_size=32, verbose=0)
    assert hist.history["loss"][-1] < 0.3 * hist.history["loss"][0]
    loss, acc = model.evaluate(x[1400:], y[1400:], verbose=0)
    assert acc > 0.95, (loss, acc)


def test_summary_and_config_round_trip(capsys):
    model = _cnn(AveragePooling2D)
    model.add(Dense(3))
    model.summary()
    out = capsys.readouterr().out
    for text in ("(Conv2D)", "(None, 8, 8, 16)", "(AveragePooling2D)", "(None, 4, 4, 16)", "(None, 2, 2, 32)",
                 "160", "4640"):
        assert text in out
    cfg = model.get_config()
    again = nncore.Sequential.from_config(cfg)
    assert again.get_config() == cfg
    for name in ("Conv1D", "Conv2D", "MaxPooling1D", "MaxPooling2D", "AveragePooling1D", "AveragePooling2D",
                 "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalAveragePooling1D", "GlobalAveragePooling2D"):
        assert get_layer_class(name).__name__ == name
    assert Conv2D(2, 3).name.startswith("conv2d") and MaxPooling2D().name.startswith("max_pooling2d")


@pytest.mark.parametrize("floatx", ["float32", "float64"])
def test_save_load_round_trip_and_bit_identical_resume(tmp_path, floatx):
    x, y = _digits()
    x, y = x[:256], y[:256]
    nncore.set_floatx(floatx)
    try:
        nncore.set_seed(1)
        model = nncore.Sequential([Input(shape=(8, 8, 1)),
                                   Conv2D(6, (3, 2), strides=(1, 2), padding="same", dilation_rate=1,
                                          activation="relu", kernel_regularizer="l2"),
                                   MaxPooling2D(2, padding="same"), Conv2D(8, 1), AveragePooling2D((2, 1)),
                                   Conv2D(5, 2, activation="tanh"), GlobalMaxPooling2D(keepdims=True), Flatten(),
                                   Dense(10, activation="softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(x, y, epochs=2, batch_size=32, verbose=0)
        path = tmp_path / "cnn.nncore"
        model.save(path)
        loaded = nncore.load_model(path)
    finally:
        nncore.set_floatx("float32")
    assert loaded.get_config() == model.get_config()
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        assert a.dtype == b.dtype == np.dtype(floatx)
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))
    nncore.set_seed(2)
    h1 = model.fit(x, y, epochs=2, batch_size=32, verbose=0).history
    nncore.set_seed(2)
    h2 = loaded.fit(x, y, epochs=2, batch_size=32, verbose=0).history
    assert h1 == h2
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


def one_epoch_weights(layers, x, y, n_threads, batch_size=128):
    """The weights after one epoch of Adam of Sequential([Input, *layers()]) from seed 3."""
    nncore.set_seed(3)
    model = nncore.Sequential([Input(shape=x.shape[1:])] + layers())
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", n_threads=n_threads)
    model.fit(x, y, epochs=1, batch_size=batch_size, verbose=0)
    return model, model.get_weights()


def test_training_is_the_same_for_one_and_two_threads():
    # images large enough that im2col, col2im and pooling run a team at 2 threads
    rng = np.random.default_rng(9)
    x = rng.standard_normal((256, 16, 16, 3)).astype(np.float32)
    y = rng.integers(0, 10, 256)
    layers = lambda: [Conv2D(16, 3, padding="same", activation="relu"), MaxPooling2D(3, strides=2, padding="same"),
                      Conv2D(8, 3, activation="relu"), AveragePooling2D(2), Flatten(), Dense(10, activation="softmax")]
    w1, w2 = (one_epoch_weights(layers, x, y, t)[1] for t in (1, 2))
    for a, b in zip(w1, w2):   # gemm, im2col/col2im and pooling promise the same bits for any thread count
        np.testing.assert_array_equal(a, b)


def test_steady_state_steps_allocate_no_work_buffers():
    x, y = _digits()
    x, y = x[:256], y[:256]
    model = _cnn()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=2, batch_size=64, verbose=0)          # buffers for the batch size exist now
    above = peak_above_start(lambda: model.fit(x, y, epochs=2, batch_size=64, verbose=0))
    # the smallest per-batch work buffer (the last pool's 64 x 4 x 4 x 16 float32 output) is 64 KiB:
    # a fit of 8 steps that allocated any per-step buffer would peak above this
    smallest = 64 * 4 * 4 * 16 * 4
    print("peak above the steady state during 2 epochs:", above, "bytes")
    assert above < smallest, above


# ------------------------------------------------------------------------------------- errors
def test_bad_arguments_and_inputs_are_refused():
    with pytest.raises(ValueError, match="filters must be a positive int"):
        Conv2D(0, 3)
    with pytest.raises(ValueError, match="kernel_size must be an int or a tuple of 2 ints"):
        Conv2D(2, (3, 3, 3))
    with pytest.raises(ValueError, match="strides must be positive"):
        Conv2D(2, 3, strides=0)
    with pytest.raises(ValueError, match="padding must be one of"):
        Conv2D(2, 3, padding="causal")
    with pytest.raises(ValueError, match="strides > 1 together with dilation_rate > 1"):
        Conv2D(2, 3, strides=2, dilation_rate=2)
    with pytest.raises(ValueError, match="channels_last"):
        Conv2D(2, 3, data_format="channels_first")
    with pytest.raises(ValueError, match="unknown"):
        Conv2D(2, 3, activation="nope")
    with pytest.raises(ValueError, match="pool_size must be positive"):
        MaxPooling2D(0)
    with pytest.raises(TypeError, match="pool_size must be an int or a tuple"):
        AveragePooling2D(2.5)
    # the kernel larger than the padded input: names the layer and the shapes
    with pytest.raises(ValueError, match=r"layer 'big' \(Conv2D\): window \(5, 5\).*larger than the 'valid'-padded "
                                         r"input of spatial shape \(4, 6\)"):
        Conv2D(2, 5, name="big")(np.zeros((1, 4, 6, 1)))
    with pytest.raises(ValueError, match=r"window \(3, 3\) \(dilation \(2, 2\)\) is larger"):
        Conv2D(2, 3, dilation_rate=2)(np.zeros((1, 4, 9, 1)))
    with pytest.raises(ValueError, match=r"\(MaxPooling2D\): window \(3, 3\).*larger"):
        MaxPooling2D(3)(np.zeros((1, 2, 5, 1)))
    Conv2D(2, 5, padding="same")(np.zeros((1, 4, 6, 1)))        # 'same' always fits
    # wrong rank, naming the layer, the expected and the actual shape
    with pytest.raises(ValueError, match=r"layer 'c' \(Conv2D\): expected 4-D inputs \(batch, height, width, "
                                         r"channels\), got shape \(2, 8, 8\)"):
        Conv2D(2, 3, name="c")(np.zeros((2, 8, 8)))
    with pytest.raises(ValueError, match=r"\(Conv1D\): expected 3-D inputs \(batch, steps, channels\)"):
        Conv1D(2, 3)(np.zeros((2, 8, 8, 1)))
    with pytest.raises(ValueError, match=r"\(GlobalAveragePooling2D\): expected 4-D inputs"):
        GlobalAveragePooling2D()(np.zeros((2, 8)))
    # a built layer meeting another image size
    layer = Conv2D(2, 3, name="fixed")
    layer(np.zeros((1, 5, 5, 1)))
    with pytest.raises(ValueError, match=r"layer 'fixed' \(Conv2D\): expected input of shape \(batch, 5, 5, 1\), "
                                         r"got \(1, 6, 5, 1\)"):
        layer.forward(np.zeros((1, 6, 5, 1), np.float32))
    model = _cnn()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match=r"expects input of shape \(n_samples, 8, 8, 1\), got \(4, 8, 8\)"):
        model.predict(np.zeros((4, 8, 8)), verbose=0)
