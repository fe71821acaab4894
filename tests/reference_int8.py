"""NumPy oracles of the int8 kernels (Keras 3's int8 formulas, nncore.quantizers), exact in integers
and in the dtype of the input for the float steps, as Keras computes them."""
import numpy as np


def quantize_rows(x, qmax):
    """Keras's AbsMaxQuantizer(axis=-1, value_range=(-qmax, qmax)): (int8 q, scale of x's dtype);
    a row holding NaN/inf gets scale NaN and q 0 (nncore's rule)."""
    x = np.asarray(x)
    dt = x.dtype.type
    amax = np.max(np.abs(x), axis=-1) if x.shape[-1] else np.zeros(x.shape[:-1], x.dtype)
    scale = (dt(qmax) / (amax + dt(1e-7))).astype(x.dtype)
    bad = ~np.isfinite(x).all(axis=-1) if x.shape[-1] else np.zeros(x.shape[:-1], bool)
    scale[bad] = np.nan
    with np.errstate(invalid="ignore"):
        q = np.clip(np.round(x * scale[..., None]), -qmax, qmax)
    q[bad] = 0
    return q.astype(np.int8), scale


def matmul_s32(a, b):
    """The exact int32 product of int8 matrices (through int64)."""
    c = a.astype(np.int64) @ b.astype(np.int64)
    assert np.abs(c).max(initial=0) < 2 ** 31
    return c.astype(np.int32)


def int8_dense(x, w, w_scale, bias, qmax):
    """Keras's int8 Dense before the activation: (xq @ W) cast to x's dtype, / (w_scale s), + bias."""
    q, s = quantize_rows(x, qmax)
    acc = matmul_s32(q, w).astype(x.dtype)
    with np.errstate(invalid="ignore"):
        z = acc / (w_scale[None, :] * s[:, None])
    return z + bias if bias is not None else z


def im2col(x, window, strides, dilation, pad, out_hw):
    """The cols matrix of a convolution, channels_last (nncore.layers.conv's geometry): row (b, i, j) holds
    x[b, i sh - pt + p dh, j sw - pl + q dw, :] for the taps (p, q) in row-major order, 0 outside x."""
    n, h, w, c = x.shape
    (kh, kw), (sh, sw), (dh, dw), (pt, pl), (oh, ow) = window, strides, dilation, pad, out_hw
    big = np.zeros((n, h + 2 * (pt + kh * dh + oh * sh), w + 2 * (pl + kw * dw + ow * sw), c), x.dtype)
    ot, ol = pt + kh * dh + oh * sh, pl + kw * dw + ow * sw   # x's corner inside the zero frame
    big[:, ot:ot + h, ol:ol + w] = x
    cols = np.empty((n, oh, ow, kh, kw, c), x.dtype)
    for p in range(kh):
        for q in range(kw):
            r0, c0 = ot - pt + p * dh, ol - pl + q * dw
            cols[:, :, :, p, q] = big[:, r0:r0 + oh * sh:sh, c0:c0 + ow * sw:sw][:, :oh, :ow]
    return cols.reshape(n * oh * ow, kh * kw * c)
