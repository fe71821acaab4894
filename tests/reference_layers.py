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


# ---- recurrent layers: Keras 3's equations one step at a time, float64 ------------
_RNN_DF = {"tanh": lambda y: 1 - y * y, "sigmoid": lambda y: y * (1 - y), "relu": lambda y: (y > 0) * 1.0,
           "linear": lambda y: np.ones_like(y), "hard_sigmoid": lambda y: ((y > 0) & (y < 1)) / 6.0}


def rnn_dropout_mask(rng, shape, rate):
    """An inverted-dropout mask: [u >= rate] / (1 - rate), u ~ U[0, 1) (what the layers draw)."""
    return (rng.random(shape) >= rate) / (1.0 - rate)


def rnn_step(kind, x, states, W, U, b, a="tanh", ra="sigmoid", reset_after=True, xm=None, hm=None):
    """One step of SimpleRNN / LSTM / GRU as Keras 3 writes its cells (implementation 1: one matmul per
    gate block); xm / hm: the per-gate-block input / recurrent dropout masks (lists, or None)."""
    f, g = ACTIVATIONS[a], ACTIVATIONS[ra]
    h = states[0]
    k = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}[kind]
    u = h.shape[1]
    xs = [x * (xm[i] if xm is not None else 1) for i in range(k)]
    hs = [h * (hm[i] if hm is not None else 1) for i in range(k)]
    blk = lambda M, i: M[..., i * u:(i + 1) * u]   # noqa: E731
    if kind == "SimpleRNN":
        hn = f(xs[0] @ W + hs[0] @ U + b)
        return hn, [hn]
    if kind == "LSTM":
        zs = [xs[i] @ blk(W, i) + hs[i] @ blk(U, i) + blk(b, i) for i in range(4)]
        i_, f_, c_, o_ = g(zs[0]), g(zs[1]), f(zs[2]), g(zs[3])
        c = f_ * states[1] + i_ * c_
        hn = o_ * f(c)
        return hn, [hn, c]
    bx, bh = (b[0], b[1]) if reset_after else (b, np.zeros_like(b))
    xz, xr, xh = (xs[i] @ blk(W, i) + blk(bx, i) for i in range(3))
    z = g(xz + hs[0] @ blk(U, 0) + blk(bh, 0))
    r = g(xr + hs[1] @ blk(U, 1) + blk(bh, 1))
    if reset_after:
        hh = f(xh + r * (hs[2] @ blk(U, 2) + blk(bh, 2)))
    else:
        hh = f(xh + (r * hs[2]) @ blk(U, 2))
    hn = z * h + (1 - z) * hh
    return hn, [hn]


def rnn_layer(kind, x, weights, return_sequences=False, go_backwards=False, mask=None, initial_state=None,
              a="tanh", ra="sigmoid", reset_after=True, xm=None, hm=None, zero_output_for_mask=False):
    """The whole layer as Keras 3's RNN runs it (torch backend's loop): returns (output, final states).

    mask (batch, T) bool: a masked step keeps the states (where) and outputs the previous output
    (zeros before the first valid step), or zeros with zero_output_for_mask."""
    W, U = weights[0], weights[1]
    n, T = x.shape[:2]
    u = U.shape[0]
    if len(weights) > 2:
        b = weights[2]
    else:
        b = np.zeros((2, W.shape[1])) if kind == "GRU" and reset_after else np.zeros(W.shape[1])
    n_states = 2 if kind == "LSTM" else 1
    states = [np.zeros((n, u)) for _ in range(n_states)] if initial_state is None else \
        [np.array(s, dtype=float) for s in initial_state]
    order = range(T - 1, -1, -1) if go_backwards else range(T)
    prev_out, outs = np.zeros((n, u)), []
    for t in order:
        out, new = rnn_step(kind, x[:, t], states, W, U, b, a, ra, reset_after, xm, hm)
        if mask is not None:
            m = mask[:, t][:, None].astype(bool)
            out = np.where(m, out, 0.0 if zero_output_for_mask else prev_out)
            new = [np.where(m, s1, s0) for s1, s0 in zip(new, states)]
        states, prev_out = new, out
        outs.append(out)
    y = np.stack(outs, 1) if return_sequences else outs[-1]
    return y, states


def lstm_cell(z, cp, a="tanh", ra="sigmoid"):
    """One LSTM step from z = x W + h U + b: (gates, c, a(c), h)."""
    u = cp.shape[1]
    f, g = ACTIVATIONS[a], ACTIVATIONS[ra]
    i, fg, gg, o = g(z[:, :u]), g(z[:, u:2 * u]), f(z[:, 2 * u:3 * u]), g(z[:, 3 * u:])
    c = fg * cp + i * gg
    tc = f(c)
    return np.concatenate([i, fg, gg, o], 1), c, tc, o * tc


def lstm_cell_backward(gates, cp, tc, dh, dc, a="tanh", ra="sigmoid"):
    """(delta = dL/dz, dL/dc_prev) of one LSTM step, from its gates and dL/dh, dL/dc."""
    u = cp.shape[1]
    i, f, g, o = (gates[:, k * u:(k + 1) * u] for k in range(4))
    dct = dc + dh * o * _RNN_DF[a](tc)
    delta = np.concatenate([dct * g * _RNN_DF[ra](i), dct * cp * _RNN_DF[ra](f), dct * i * _RNN_DF[a](g),
                            dh * tc * _RNN_DF[ra](o)], 1)
    return delta, dct * f


def gru_cell(x, rec, hp, a="tanh", ra="sigmoid"):
    """One GRU (reset_after) step from x = x W + b_in, rec = h U + b_rec: (gates, h)."""
    u = hp.shape[1]
    f, g = ACTIVATIONS[a], ACTIVATIONS[ra]
    z = g(x[:, :u] + rec[:, :u])
    r = g(x[:, u:2 * u] + rec[:, u:2 * u])
    hh = f(x[:, 2 * u:] + r * rec[:, 2 * u:])
    return np.concatenate([z, r, hh], 1), z * hp + (1 - z) * hh


def gru_cell_backward(gates, rec, hp, dh, a="tanh", ra="sigmoid"):
    """(dL/dx, dL/drec, the direct dL/dh_prev) of one GRU (reset_after) step."""
    u = hp.shape[1]
    z, r, hh = gates[:, :u], gates[:, u:2 * u], gates[:, 2 * u:]
    dhh = dh * (1 - z) * _RNN_DF[a](hh)
    dz = dh * (hp - hh) * _RNN_DF[ra](z)
    dr = dhh * rec[:, 2 * u:] * _RNN_DF[ra](r)
    return np.concatenate([dz, dr, dhh], 1), np.concatenate([dz, dr, dhh * r], 1), dh * z


def gru_rb_cell(x, hp, U, a="tanh", ra="sigmoid", rm=None):
    """One GRU reset_after=False step from x = x W + b: (gates (z, r, hh), q, h)."""
    u = hp.shape[1]
    f, g = ACTIVATIONS[a], ACTIVATIONS[ra]
    z = g(x[:, :u] + hp @ U[:, :u])
    r = g(x[:, u:2 * u] + hp @ U[:, u:2 * u])
    q = r * hp * (1 if rm is None else rm)
    hh = f(x[:, 2 * u:] + q @ U[:, 2 * u:])
    return np.concatenate([z, r, hh], 1), q, z * hp + (1 - z) * hh


def gru_rb_cell_backward(gates, hp, dh, U, a="tanh", ra="sigmoid", rm=None):
    """(delta = dL/d(x W + b), dL/dh_prev) of one GRU reset_after=False step."""
    u = hp.shape[1]
    z, r, hh = gates[:, :u], gates[:, u:2 * u], gates[:, 2 * u:]
    rm = 1 if rm is None else rm
    dz = dh * (hp - hh) * _RNN_DF[ra](z)
    dhh = dh * (1 - z) * _RNN_DF[a](hh)
    dq = dhh @ U[:, 2 * u:].T
    dr = dq * hp * rm * _RNN_DF[ra](r)
    dhp = dh * z + dq * r * rm + np.concatenate([dz, dr], 1) @ U[:, :2 * u].T
    return np.concatenate([dz, dr, dhh], 1), dhp


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
