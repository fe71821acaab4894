"""NumPy float64 oracles written from the formulas (../shared/FORMULAS.md).

Every function takes and returns float64 arrays; it is deliberately plain and
slow. Tests compare nncore's kernels against these.
"""
import math

import numpy as np

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
EPS = 1e-7  # Keras's probability clip

_erf = np.vectorize(math.erf, otypes=[np.float64])


def sigmoid(x):
    x = np.asarray(x, np.float64)
    # 1 / (1 + e^-x) for x >= 0, e^x / (1 + e^x) otherwise: no overflow
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def softplus(x):
    x = np.asarray(x, np.float64)
    return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))


def act_forward(name, x, alpha=None):
    """y = f(x) for the activation `name` (Keras 3 definitions)."""
    x = np.asarray(x, np.float64)
    if name == "linear":
        return x.copy()
    if name == "step":
        return (x >= 0).astype(np.float64)
    if name == "sigmoid":
        return sigmoid(x)
    if name == "tanh":
        return np.tanh(x)
    if name == "relu":
        return np.maximum(x, 0.0)
    if name == "leaky_relu":
        a = 0.2 if alpha is None else alpha
        return np.where(x > 0, x, a * x)
    if name == "elu":
        a = 1.0 if alpha is None else alpha
        return np.where(x > 0, x, a * np.expm1(np.minimum(x, 0.0)))
    if name == "selu":
        return SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(np.minimum(x, 0.0)))
    if name == "gelu":
        return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))
    if name == "gelu_tanh":
        return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))
    if name == "softplus":
        return softplus(x)
    if name == "hard_sigmoid":
        return np.clip(x / 6.0 + 0.5, 0.0, 1.0)
    if name in ("swish", "silu"):
        return x * sigmoid(x)
    raise ValueError(name)


def act_derivative(name, x, alpha=None):
    """f'(x), written from the formula in x (not through y), Keras's choice at kinks (relu'(0) = 0)."""
    x = np.asarray(x, np.float64)
    if name == "linear":
        return np.ones_like(x)
    if name == "step":
        return np.zeros_like(x)
    if name == "sigmoid":
        s = sigmoid(x)
        return s * (1.0 - s)
    if name == "tanh":
        return 1.0 / np.cosh(np.clip(x, -300, 300)) ** 2
    if name == "relu":
        return (x > 0).astype(np.float64)
    if name == "leaky_relu":
        a = 0.2 if alpha is None else alpha
        return np.where(x > 0, 1.0, a)
    if name == "elu":
        a = 1.0 if alpha is None else alpha
        return np.where(x > 0, 1.0, a * np.exp(np.minimum(x, 0.0)))
    if name == "selu":
        return SELU_SCALE * np.where(x > 0, 1.0, SELU_ALPHA * np.exp(np.minimum(x, 0.0)))
    if name == "gelu":
        return 0.5 * (1.0 + _erf(x / math.sqrt(2.0))) + x * np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
    if name == "gelu_tanh":
        c = math.sqrt(2.0 / math.pi)
        t = np.tanh(c * (x + 0.044715 * x**3))
        return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * c * (1.0 + 3 * 0.044715 * x * x)
    if name == "softplus":
        return sigmoid(x)
    if name == "hard_sigmoid":
        return np.where((x > -3) & (x < 3), 1.0 / 6.0, 0.0)
    if name in ("swish", "silu"):
        s = sigmoid(x)
        return s + x * s * (1.0 - s)
    raise ValueError(name)


def log_softmax(z):
    z = np.asarray(z, np.float64)
    m = z.max(axis=-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))


def softmax(z):
    return np.exp(log_softmax(z))


def softmax_backward(y, dy):
    y, dy = np.asarray(y, np.float64), np.asarray(dy, np.float64)
    return y * (dy - (dy * y).sum(axis=-1, keepdims=True))


def _log_clip(logp):
    # log(clip(p, eps, 1 - eps)), with log p given (Keras clips p itself)
    return np.clip(logp, math.log(EPS), math.log1p(-EPS))


def _weights(w, n):
    return np.ones(n) if w is None else np.asarray(w, np.float64)


# Losses: each returns (per-sample losses l_i, gradient of sum_i w_i l_i w.r.t. the predictions).

def softmax_xent(z, y, w=None):
    z, y = np.asarray(z, np.float64), np.asarray(y, np.float64)
    w = _weights(w, z.shape[0])
    lp = log_softmax(z)
    loss = -(y * _log_clip(lp)).sum(axis=1)
    p = np.exp(lp)
    grad = w[:, None] * (p * y.sum(axis=1, keepdims=True) - y)
    return loss, grad


def sparse_softmax_xent(z, labels, w=None):
    z = np.asarray(z, np.float64)
    y = np.zeros_like(z)
    y[np.arange(z.shape[0]), np.asarray(labels)] = 1.0
    return softmax_xent(z, y, w)


def sigmoid_bce(z, y, w=None):
    z, y = np.asarray(z, np.float64), np.asarray(y, np.float64)
    w = _weights(w, z.shape[0])
    logp, logq = -softplus(-z), -softplus(z)  # log p, log(1 - p)
    loss = -(y * _log_clip(logp) + (1.0 - y) * _log_clip(logq)).mean(axis=1)
    grad = w[:, None] * (sigmoid(z) - y) / z.shape[1]
    return loss, grad


def mse(yhat, y, w=None):
    yhat, y = np.asarray(yhat, np.float64), np.asarray(y, np.float64)
    w = _weights(w, yhat.shape[0])
    r = yhat - y
    return (r**2).mean(axis=1), w[:, None] * 2.0 * r / yhat.shape[1]


def mae(yhat, y, w=None):
    yhat, y = np.asarray(yhat, np.float64), np.asarray(y, np.float64)
    w = _weights(w, yhat.shape[0])
    r = yhat - y
    return np.abs(r).mean(axis=1), w[:, None] * np.sign(r) / yhat.shape[1]


def numerical_grad(f, x, h=1e-6):
    """Central differences of a scalar function f at float64 x (same shape as x)."""
    x = np.array(x, np.float64)
    g = np.empty_like(x)
    flat, gf = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        fp = f(x)
        flat[i] = old - h
        fm = f(x)
        flat[i] = old
        gf[i] = (fp - fm) / (2 * h)
    return g
