"""TEMPORARY NumPy stand-in for nncore._kernels.losses (same signatures, see
docs/design.md) until the fused C kernels are merged. Not public."""
import numpy as np


def _finish(per, g, w, d, grad_scale):
    if d is not None:
        s = grad_scale if w is None else grad_scale * w[:, None]
        np.multiply(g, s, out=d)
    return float(np.sum(per if w is None else per * w))


def softmax_xent(z, y, w, prob, d, grad_scale, n_threads=1):
    s = z - z.max(axis=1, keepdims=True)
    logp = s - np.log(np.exp(s).sum(axis=1, keepdims=True))
    p = np.exp(logp)
    if prob is not None:
        prob[...] = p
    return _finish(-np.sum(y * logp, axis=1), p - y, w, d, grad_scale)


def sparse_softmax_xent(z, labels, w, prob, d, grad_scale, n_threads=1):
    y = (labels[:, None] == np.arange(z.shape[1])).astype(z.dtype)
    return softmax_xent(z, y, w, prob, d, grad_scale, n_threads)


def sigmoid_bce(z, y, w, prob, d, grad_scale, n_threads=1):
    p = 1 / (1 + np.exp(-z))
    if prob is not None:
        prob[...] = p
    ls = np.minimum(z, 0) - np.log1p(np.exp(-np.abs(z)))
    lms = np.minimum(-z, 0) - np.log1p(np.exp(-np.abs(z)))
    per = -np.mean(y * ls + (1 - y) * lms, axis=1)
    return _finish(per, (p - y) / z.shape[1], w, d, grad_scale)


def mse(yhat, y, w, d, grad_scale, n_threads=1):
    e = yhat - y
    return _finish(np.mean(e * e, axis=1), 2 * e / y.shape[1], w, d, grad_scale)


def mae(yhat, y, w, d, grad_scale, n_threads=1):
    e = yhat - y
    return _finish(np.mean(np.abs(e), axis=1), np.sign(e) / y.shape[1], w, d, grad_scale)
