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
