"""NumPy float64 oracles for the layers, activations and losses, written from
the formulas (shared/FORMULAS.md), independent of the kernels."""
import math

import numpy as np

EPS = 1e-7
SELU_ALPHA = 1.6732632423543772
SELU_SCALE = 1.0507009873554805


def _sigmoid(x):
    return np.where(x >= 0, 1 / (1 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1 + np.exp(-np.abs(x))))


def _phi(x):
    erf = np.vectorize(math.erf)
    return 0.5 * (1 + erf(x / np.sqrt(2)))


ACTIVATIONS = {
    "linear": lambda x: x,
    "step": lambda x: (x >= 0).astype(float),
    "sigmoid": _sigmoid,
    "tanh": np.tanh,
    "relu": lambda x: np.maximum(x, 0),
    "leaky_relu": lambda x: np.where(x > 0, x, 0.2 * x),
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))),
    "selu": lambda x: SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(np.minimum(x, 0))),
    "gelu": lambda x: x * _phi(x),
    "softplus": lambda x: np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x))),
    "hard_sigmoid": lambda x: np.clip(x / 6 + 0.5, 0, 1),
    "swish": lambda x: x * _sigmoid(x),
    "softmax": lambda x: np.exp(x - x.max(-1, keepdims=True)) / np.exp(x - x.max(-1, keepdims=True)).sum(
        -1, keepdims=True),
}
KINKS = {"relu": [0.0], "leaky_relu": [0.0], "elu": [0.0], "selu": [0.0], "hard_sigmoid": [-3.0, 3.0],
         "step": [0.0]}


def dense_forward(x, W, b, act):
    """y = f(x W + b)."""
    z = x @ W + (0 if b is None else b)
    return ACTIVATIONS[act](z)


def numeric_grad(f, a, h=1e-6):
    """Central differences of the scalar f() with respect to every entry of a (changed in place, restored)."""
    g = np.zeros(a.shape)
    flat, gflat = a.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        fp = f()
        flat[i] = old - h
        fm = f()
        flat[i] = old
        gflat[i] = (fp - fm) / (2 * h)
    return g


def check_layer_gradients(layer, x, rng, params=("kernel", "bias"), training=True, rtol=1e-6, atol=1e-8):
    """L = sum(y * r): backward(r) must give dL/dx and dL/dparam (float64 central differences)."""
    layer(x)                                                 # build and bind
    for p in params:
        w = getattr(layer, p)
        w[...] = rng.standard_normal(w.shape) * 0.5
    r = rng.standard_normal(layer.forward(x, training).shape)

    def loss():
        return float(np.sum(layer.forward(x, training) * r))

    layer.forward(x, training)
    dx = layer.backward(r).copy()
    grads = {p: layer._grad_of[p].copy() for p in params}
    np.testing.assert_allclose(dx, numeric_grad(loss, x), rtol=rtol, atol=atol)
    for p in params:
        np.testing.assert_allclose(grads[p], numeric_grad(loss, getattr(layer, p)), rtol=rtol, atol=atol,
                                   err_msg=p)


# ---- losses: per-sample values (Keras 3 definitions), float64 -----------------
def mse(y, p):
    return np.mean((y - p) ** 2, axis=-1)


def mae(y, p):
    return np.mean(np.abs(y - p), axis=-1)


def bce(y, p, from_logits=False, s=0.0):
    y = y * (1 - s) + 0.5 * s
    if from_logits:
        p = _sigmoid(p)
    p = np.clip(p, EPS, 1 - EPS)
    return -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p), axis=-1)


def cce(y, p, from_logits=False, s=0.0):
    y = y * (1 - s) + s / y.shape[-1]
    if from_logits:
        z = p - p.max(-1, keepdims=True)
        return -np.sum(y * (z - np.log(np.exp(z).sum(-1, keepdims=True))), axis=-1)
    p = np.clip(p / p.sum(-1, keepdims=True), EPS, 1 - EPS)
    return -np.sum(y * np.log(p), axis=-1)


def sparse_cce(labels, p, from_logits=False):
    return cce(np.eye(p.shape[-1])[np.asarray(labels).reshape(-1)], p, from_logits)


def huber(y, p, delta=1.0):
    e = np.abs(p - y)
    return np.mean(np.where(e <= delta, 0.5 * e ** 2, delta * (e - 0.5 * delta)), axis=-1)


def hinge(y, p):
    if np.all((y == 0) | (y == 1)):
        y = 2 * y - 1
    return np.mean(np.maximum(1 - y * p, 0), axis=-1)


def reduce(per, w=None):
    """sum_over_batch_size: sum(w l) / N."""
    return np.sum(per if w is None else per * w) / per.size


# ---- normalization, float64 ----------------------------------------------------
def batchnorm_forward(x, gamma, beta, mean, var, eps):
    """y = gamma (x - mean) / sqrt(var + eps) + beta over the last axis."""
    return gamma * (x - mean) / np.sqrt(var + eps) + beta


def batchnorm_train(x, gamma, beta, moving_mean, moving_var, momentum, eps):
    """Training batch norm over every axis but the last: (y, new moving mean, new moving var), Keras's rule
    (biased batch variance; moving = moving momentum + batch (1 - momentum))."""
    axes = tuple(range(x.ndim - 1))
    mean, var = x.mean(axis=axes), x.var(axis=axes)
    return (batchnorm_forward(x, gamma, beta, mean, var, eps), moving_mean * momentum + mean * (1 - momentum),
            moving_var * momentum + var * (1 - momentum))


def _norm_backward(x, dy, gamma, eps, axes):
    """(dx, dgamma, dbeta) of y = gamma (x - mean) / sqrt(var + eps) + beta with mean and var over `axes`
    (batch norm: every axis but the last; layer norm: the last), by the textbook chain rule."""
    n = math.prod(x.shape[a] for a in axes)
    mean, var = x.mean(axis=axes, keepdims=True), x.var(axis=axes, keepdims=True)
    std = np.sqrt(var + eps)
    dxhat = dy * gamma
    dvar = np.sum(dxhat * (x - mean), axis=axes, keepdims=True) * -0.5 * std ** -3
    dmean = -np.sum(dxhat, axis=axes, keepdims=True) / std + dvar * np.sum(-2 * (x - mean), axis=axes,
                                                                           keepdims=True) / n
    dx = dxhat / std + dvar * 2 * (x - mean) / n + dmean / n
    rows = tuple(range(x.ndim - 1))
    return dx, np.sum(dy * (x - mean) / std, axis=rows), np.sum(dy, axis=rows)


def batchnorm_train_backward(x, dy, gamma, eps):
    return _norm_backward(x, dy, gamma, eps, tuple(range(x.ndim - 1)))


def layernorm_forward(x, gamma, beta, eps, naxes=1):
    """Layer norm of each sample over its last `naxes` axes."""
    axes = tuple(range(x.ndim - naxes, x.ndim))
    mean, var = x.mean(axis=axes, keepdims=True), x.var(axis=axes, keepdims=True)
    return gamma * (x - mean) / np.sqrt(var + eps) + beta


def layernorm_backward(x, dy, gamma, eps):
    return _norm_backward(x, dy, gamma, eps, (x.ndim - 1,))
