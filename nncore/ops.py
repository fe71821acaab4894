"""nncore.ops: the public face of the compiled kernels on any array-like.

Rules shared by every function here:

- Inputs may be any array-like: lists, scalars where it makes sense,
  non-contiguous views, Fortran-ordered or read-only arrays. Each is copied at
  most once (to a C-contiguous array of the compute dtype) and only when needed.
- float32 and float64 are kept as given; integers and booleans (and float16)
  become ``nncore.floatx()``. With several float inputs the wider one wins;
  targets (``y_true``) follow the predictions' dtype, as in Keras.
- Bad shapes and dtypes raise ValueError / TypeError naming the argument, the
  expected and the actual shape or dtype, before any kernel runs.
- ``n_threads`` (default None) is resolved by
  :func:`nncore._threads.effective_n_threads`: None is the global setting.
- Loss functions follow Keras's argument order ``(y_true, y_pred)`` and its
  ``sum_over_batch_size`` reduction, and return ``(loss, grad)`` where ``grad``
  is the gradient of the returned loss with respect to ``y_pred`` (the logits
  for the ``*_xent``/``*_bce`` functions).
"""
import numpy as np

from nncore._config import floatx
from nncore._kernels import ACT_CODES, ACT_DEFAULT_ALPHA
from nncore._kernels import elementwise as _ew
from nncore._kernels import gemm as _gemm
from nncore._kernels import losses as _loss
from nncore._threads import effective_n_threads
from nncore.validation import unknown_name

__all__ = [
    "matmul", "dense", "activation", "activation_grad", "softmax", "softmax_grad",
    "softmax_xent", "sparse_softmax_xent", "sigmoid_bce", "mse", "mae",
    "colsum", "sumsq", "ACTIVATIONS",
]

#: every activation name accepted by :func:`activation` and :func:`dense`
ACTIVATIONS = tuple(sorted(ACT_CODES)) + ("softmax",)

_REDUCTIONS = ("sum_over_batch_size", "sum")


# ---------------------------------------------------------------- conversion


def _float_dtype(a, name, fn):
    """The compute dtype an array converts to (float32/float64), or TypeError."""
    kind = a.dtype.kind
    if a.dtype == np.float32 or a.dtype == np.float64:
        return a.dtype
    if kind in "biu" or a.dtype == np.float16:
        return np.dtype(floatx())
    raise TypeError(f"{fn}: {name} must hold real numbers (float32, float64, int or bool), got dtype {a.dtype}")


def _asarray(x, name, fn):
    try:
        a = np.asarray(x)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{fn}: {name} cannot be converted to an array ({exc})") from None
    if a.dtype == object:
        raise TypeError(f"{fn}: {name} must hold real numbers, got dtype object")
    return a


def _prepare(x, name, fn, dtype=None):
    """Return x as a C-contiguous ndarray of `dtype` (default: its own float dtype), copying at most once."""
    a = _asarray(x, name, fn)
    want = _float_dtype(a, name, fn) if dtype is None else np.dtype(dtype)
    if dtype is not None and a.dtype.kind not in "biuf":
        raise TypeError(f"{fn}: {name} must hold real numbers, got dtype {a.dtype}")
    return np.asarray(a, dtype=want, order="C")  # unlike ascontiguousarray, keeps 0-d arrays 0-d


def _common(*dtypes):
    return np.dtype(np.float64) if any(d == np.float64 for d in dtypes) else np.dtype(np.float32)


def _check_out(out, shape, dtype, fn):
    """Validate a user `out` array; returns (array to compute into, needs copy back)."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{fn}: out must be a numpy.ndarray, got {type(out).__name__}")
    if out.shape != tuple(shape):
        raise ValueError(f"{fn}: out must have shape {tuple(shape)}, got {out.shape}")
    if out.dtype != dtype:
        raise TypeError(f"{fn}: out must have dtype {dtype}, got {out.dtype}")
    if not out.flags.writeable:
        raise ValueError(f"{fn}: out is read-only")
    if out.flags.c_contiguous:
        return out, False
    return np.empty(shape, dtype), True


def _act_code(name, fn):
    if not isinstance(name, str):
        raise TypeError(f"{fn}: activation must be a name (str), got {type(name).__name__}")
    key = name.lower()
    if key not in ACT_CODES and key != "softmax":
        raise ValueError(f"{fn}: {unknown_name('activation', name, ACTIVATIONS)}")
    return key


def _alpha(key, alpha):
    if alpha is None:
        return float(ACT_DEFAULT_ALPHA.get(key, 0.0))
    return float(alpha)


# ---------------------------------------------------------------- GEMM and dense


def matmul(a, b, transpose_a=False, transpose_b=False, out=None, n_threads=None):
    """Matrix product ``op(a) @ op(b)`` with our GEMM.

    Parameters
    ----------
    a : array-like of shape (m, k), or (k, m) when transpose_a
        A 1-D array is a row vector (1, k); the result then drops that axis.
    b : array-like of shape (k, n), or (n, k) when transpose_b
        A 1-D array is a column vector (k, 1); the result then drops that axis.
    transpose_a, transpose_b : bool, default=False
        Use the transpose of a / b.
    out : ndarray of shape (m, n), optional
        Where to write the result (dtype must be the result dtype).
    n_threads : int or None, default=None

    Returns
    -------
    c : ndarray of shape (m, n)
    """
    fn = "matmul"
    A, B = _asarray(a, "a", fn), _asarray(b, "b", fn)
    dt = _common(_float_dtype(A, "a", fn), _float_dtype(B, "b", fn))
    squeeze = []
    if A.ndim == 1:
        A, transpose_a = A[None, :], False
        squeeze.append(0)
    if B.ndim == 1:
        B, transpose_b = B[:, None], False
        squeeze.append(1)
    if A.ndim != 2 or B.ndim != 2:
        raise ValueError(f"{fn}: expected 1-D or 2-D arrays, got a of shape {np.shape(a)} and b of shape {np.shape(b)}")
    transpose_a, transpose_b = bool(transpose_a), bool(transpose_b)
    m, k = (A.shape[1], A.shape[0]) if transpose_a else A.shape
    kb, n = (B.shape[1], B.shape[0]) if transpose_b else B.shape
    if k != kb:
        raise ValueError(
            f"{fn}: inner dimensions differ: op(a) has shape ({m}, {k}) and op(b) has shape ({kb}, {n})"
        )
    # A Fortran-ordered operand is the C-ordered transpose of a C array: flip the flag instead of copying
    if not A.flags.c_contiguous and A.T.flags.c_contiguous:
        A, transpose_a = A.T, not transpose_a
    if not B.flags.c_contiguous and B.T.flags.c_contiguous:
        B, transpose_b = B.T, not transpose_b
    A = np.ascontiguousarray(A, dtype=dt)
    B = np.ascontiguousarray(B, dtype=dt)
    shape = tuple(s for i, s in enumerate((m, n)) if i not in squeeze)
    if out is not None:
        res, copy_back = _check_out(out, shape, dt, fn)
        if not copy_back and (np.may_share_memory(res, A) or np.may_share_memory(res, B)):
            res, copy_back = np.empty(shape, dt), True
    else:
        res, copy_back = np.empty(shape, dt), False
    C = res.reshape(m, n)
    if m and n:
        if k == 0:
            C.fill(0)
        else:
            _gemm.gemm(A, B, C, trans_a=transpose_a, trans_b=transpose_b, n_threads=effective_n_threads(n_threads))
    if copy_back:
        out[...] = res
        return out
    return res


def dense(x, kernel, bias=None, activation=None, alpha=None, n_threads=None):
    """A dense layer's forward pass: ``activation(x @ kernel + bias)``, fused in one GEMM call.

    Parameters
    ----------
    x : array-like of shape (..., n_in)
    kernel : array-like of shape (n_in, units)
    bias : array-like of shape (units,), optional
    activation : str or None, default=None
        One of :data:`ACTIVATIONS` ('softmax' runs after the GEMM); None is linear.
    alpha : float, optional
        Parameter of leaky_relu (0.2) / elu (1.0).
    n_threads : int or None, default=None

    Returns
    -------
    y : ndarray of shape (..., units)
    """
    fn = "dense"
    X, W = _asarray(x, "x", fn), _asarray(kernel, "kernel", fn)
    dts = [_float_dtype(X, "x", fn), _float_dtype(W, "kernel", fn)]
    if bias is not None:
        bvec = _asarray(bias, "bias", fn)
        dts.append(_float_dtype(bvec, "bias", fn))
    dt = _common(*dts)
    if W.ndim != 2:
        raise ValueError(f"{fn}: kernel must be 2-D (n_in, units), got shape {W.shape}")
    if X.ndim < 1:
        raise ValueError(f"{fn}: x must be at least 1-D (..., n_in), got shape {X.shape}")
    n_in, units = W.shape
    if X.shape[-1] != n_in:
        raise ValueError(f"{fn}: x has shape {X.shape}, expected last dimension {n_in} (kernel shape {W.shape})")
    key = "linear" if activation is None else _act_code(activation, fn)
    if bias is not None:
        if bvec.shape != (units,):
            raise ValueError(f"{fn}: bias must have shape ({units},), got {bvec.shape}")
        bvec = np.ascontiguousarray(bvec, dtype=dt)
    else:
        bvec = None
    lead = X.shape[:-1]
    X2 = np.ascontiguousarray(X, dtype=dt).reshape(int(np.prod(lead, dtype=np.int64)), n_in)
    W = np.ascontiguousarray(W, dtype=dt)
    Y = np.empty((X2.shape[0], units), dt)
    nt = effective_n_threads(n_threads)
    code = ACT_CODES["linear"] if key == "softmax" else ACT_CODES[key]
    if Y.size:
        if n_in == 0:  # an empty product: act(0 + bias)
            Y[...] = 0 if bvec is None else bvec
            _ew.act_forward(code, _alpha(key, alpha), Y, Y, nt)
        else:
            _gemm.gemm(X2, W, Y, bias=bvec, act=code, act_alpha=_alpha(key, alpha), n_threads=nt)
        if key == "softmax":
            _ew.softmax_forward(Y, Y)
    return Y.reshape(lead + (units,))


# ---------------------------------------------------------------- activations


def softmax(x, axis=-1, out=None):
    """Softmax along `axis` (max-subtracted, so large inputs do not overflow)."""
    fn = "softmax"
    X = _prepare(x, "x", fn)
    if X.ndim == 0:
        raise ValueError(f"{fn}: x must be at least 1-D, got a scalar")
    moved = np.moveaxis(X, axis, -1)
    if moved.shape[-1] == 0:
        raise ValueError(f"{fn}: the softmax axis of x (shape {X.shape}) is empty")
    M = np.ascontiguousarray(moved)
    Y = np.empty_like(M)
    _ew.softmax_forward(M.reshape(-1, M.shape[-1]), Y.reshape(-1, M.shape[-1]))
    Y = np.moveaxis(Y, -1, axis)
    if out is not None:
        _check_out(out, X.shape, X.dtype, fn)  # validates; the result is copied in below
        out[...] = Y
        return out
    return np.ascontiguousarray(Y)


def softmax_grad(dy, y, axis=-1):
    """Backward of :func:`softmax` from its output y: ``dx = y * (dy - sum(dy * y, axis))``."""
    fn = "softmax_grad"
    Y = _prepare(y, "y", fn)
    G = _prepare(dy, "dy", fn, dtype=Y.dtype)
    if G.shape != Y.shape:
        raise ValueError(f"{fn}: dy has shape {G.shape}, expected {Y.shape} (the shape of y)")
    if Y.ndim == 0:
        raise ValueError(f"{fn}: y must be at least 1-D, got a scalar")
    Ym = np.ascontiguousarray(np.moveaxis(Y, axis, -1))
    Gm = np.ascontiguousarray(np.moveaxis(G, axis, -1))
    D = np.empty_like(Ym)
    c = Ym.shape[-1]
    if D.size:
        _ew.softmax_backward(Ym.reshape(-1, c), Gm.reshape(-1, c), D.reshape(-1, c))
    return np.ascontiguousarray(np.moveaxis(D, -1, axis))


def activation(x, name, alpha=None, out=None, n_threads=None):
    """Apply an activation elementwise (softmax: along the last axis).

    Parameters
    ----------
    x : array-like
    name : str
        One of :data:`ACTIVATIONS`.
    alpha : float, optional
        leaky_relu slope (default 0.2), elu alpha (default 1.0).
    out : ndarray, optional
        Same shape and dtype as the result; may be x itself (in place).
    n_threads : int or None, default=None

    Returns
    -------
    y : ndarray of the shape of x
    """
    fn = "activation"
    key = _act_code(name, fn)
    if key == "softmax":
        return softmax(x, -1, out=out)
    X = _prepare(x, "x", fn)
    if out is not None:
        Y, copy_back = _check_out(out, X.shape, X.dtype, fn)
    else:
        Y, copy_back = np.empty_like(X), False
    _ew.act_forward(ACT_CODES[key], _alpha(key, alpha), X, Y, effective_n_threads(n_threads))
    if copy_back:
        out[...] = Y
        return out
    return Y


def activation_grad(dy, y, name, x=None, alpha=None, n_threads=None):
    """Backward of :func:`activation`: ``dx = dy * f'(x)``, written through the output y.

    Parameters
    ----------
    dy : array-like
        Upstream gradient, shape of y.
    y : array-like
        The forward output ``activation(x, name)``.
    name : str
    x : array-like, optional
        The forward input; required for 'gelu', 'gelu_tanh', 'swish'/'silu'.
    alpha : float, optional
    n_threads : int or None, default=None

    Returns
    -------
    dx : ndarray of the shape of y

    Notes
    -----
    At the kinks the derivative is taken from the right-open side, as Keras
    does: relu'(0) = 0, and step has zero gradient everywhere.
    """
    fn = "activation_grad"
    key = _act_code(name, fn)
    if key == "softmax":
        return softmax_grad(dy, y)
    Y = _prepare(y, "y", fn)
    G = _prepare(dy, "dy", fn, dtype=Y.dtype)
    if G.shape != Y.shape:
        raise ValueError(f"{fn}: dy has shape {G.shape}, expected {Y.shape} (the shape of y)")
    code = ACT_CODES[key]
    X = None
    if x is not None:
        X = _prepare(x, "x", fn, dtype=Y.dtype)
        if X.shape != Y.shape:
            raise ValueError(f"{fn}: x has shape {X.shape}, expected {Y.shape} (the shape of y)")
    elif _ew.needs_input(code):
        raise ValueError(f"{fn}: the gradient of {key!r} needs the forward input x")
    D = np.empty_like(Y)
    _ew.act_backward(code, _alpha(key, alpha), X, Y, G, D, effective_n_threads(n_threads))
    return D


# ---------------------------------------------------------------- reductions


def colsum(x, n_threads=None):
    """Sum over every axis but the last (the bias gradient): shape (x.shape[-1],)."""
    fn = "colsum"
    X = _prepare(x, "x", fn)
    if X.ndim == 0:
        raise ValueError(f"{fn}: x must be at least 1-D, got a scalar")
    X2 = X.reshape(int(np.prod(X.shape[:-1], dtype=np.int64)), X.shape[-1])
    outv = np.empty(X.shape[-1], X.dtype)
    _ew.colsum(X2, outv, effective_n_threads(n_threads))
    return outv


def sumsq(x, n_threads=None):
    """Sum of squares of all elements, accumulated in double in a fixed order (a Python float)."""
    X = _prepare(x, "x", "sumsq")
    return _ew.sumsq(X, effective_n_threads(n_threads))


# ---------------------------------------------------------------- losses


def _loss_inputs(fn, y_true, y_pred, sample_weight, reduction):
    """Predictions as (N, k) rows plus targets of their dtype; returns (P, lead, k, dt, w)."""
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{fn}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    P = _prepare(y_pred, "y_pred", fn)
    if P.ndim == 0:
        raise ValueError(f"{fn}: y_pred must be at least 1-D, got a scalar")
    if P.ndim == 1:  # a vector of single-output samples
        P = P[:, None]
    k = P.shape[-1]
    if k == 0:
        raise ValueError(f"{fn}: y_pred must have at least one output column, got shape {P.shape}")
    lead = P.shape[:-1]
    w = None
    if sample_weight is not None:
        W = _prepare(sample_weight, "sample_weight", fn, dtype=P.dtype)
        try:
            W = np.broadcast_to(W, lead) if W.ndim <= len(lead) else W
        except ValueError:
            W = None
        if W is None or W.shape != lead:
            raise ValueError(
                f"{fn}: sample_weight must have shape {lead} (one weight per sample), "
                f"got {np.shape(sample_weight)}"
            )
        w = np.ascontiguousarray(W).reshape(-1)
    return P, lead, k, P.dtype, w


def _dense_targets(fn, y_true, dt, P):
    """Targets as an array of P's shape and dtype; (..., ) against (..., 1) predictions is accepted."""
    Y = _prepare(y_true, "y_true", fn, dtype=dt)
    if Y.shape != P.shape and Y.shape + (1,) != P.shape:
        raise ValueError(f"{fn}: y_true has shape {Y.shape}, expected {P.shape} (the shape of y_pred)")
    return Y.reshape(P.shape)


def _run_dense_loss(fn, kernel, y_true, y_pred, sample_weight, reduction, n_threads, with_prob):
    """Shared body of the losses with dense targets. with_prob: True/False for the kernels that
    take a `prob` output (cross-entropies), None for those that do not (mse, mae)."""
    P, lead, k, dt, w = _loss_inputs(fn, y_true, y_pred, sample_weight, reduction)
    Y = _dense_targets(fn, y_true, dt, P)
    N = int(np.prod(lead, dtype=np.int64))
    P2, Y2 = P.reshape(N, k), Y.reshape(N, k)
    D = np.empty_like(P2)
    prob = np.empty_like(P2) if with_prob else None
    scale = 1.0 / N if (reduction == "sum_over_batch_size" and N) else 1.0
    args = (P2, Y2, w, prob, D) if with_prob is not None else (P2, Y2, w, D)
    total = kernel(*args, grad_scale=scale, n_threads=effective_n_threads(n_threads)) if N else 0.0
    shape = np.shape(y_pred)  # the gradient has the caller's shape, (n,) included
    loss = total * scale
    if with_prob:
        return loss, D.reshape(shape), prob.reshape(shape)
    return loss, D.reshape(shape)


def softmax_xent(y_true, logits, sample_weight=None, reduction="sum_over_batch_size", return_prob=False,
                 n_threads=None):
    """Categorical cross-entropy of softmax(logits) against (one-hot or soft) targets, fused.

    Parameters
    ----------
    y_true : array-like of shape (..., k)
        Targets, normally rows summing to 1 (one-hot or label-smoothed); the
        gradient is exact for any targets.
    logits : array-like of shape (..., k)
    sample_weight : array-like of shape (...), optional
    reduction : {'sum_over_batch_size', 'sum'}, default='sum_over_batch_size'
    return_prob : bool, default=False
        Also return p = softmax(logits).
    n_threads : int or None, default=None

    Returns
    -------
    loss : float
    grad : ndarray of the shape of logits
        d loss / d logits = scale * w * (p sum(y) - y), i.e. scale * w * (p - y).
    prob : ndarray, only with return_prob

    Notes
    -----
    loss_i = -sum_j y_ij log(clip(p_ij, 1e-7, 1 - 1e-7)) (Keras), computed in
    the log domain: no overflow for logits of +-1e4.
    """
    return _run_dense_loss("softmax_xent", _loss.softmax_xent, y_true, logits, sample_weight, reduction,
                           n_threads, bool(return_prob))


def sigmoid_bce(y_true, logits, sample_weight=None, reduction="sum_over_batch_size", return_prob=False,
                n_threads=None):
    """Binary cross-entropy of sigmoid(logits), mean over the last axis, fused.

    Parameters
    ----------
    y_true : array-like of shape (..., k) (or (n,) for logits of shape (n,))
    logits : array-like of shape (..., k)
    sample_weight : array-like of shape (...), optional
    reduction : {'sum_over_batch_size', 'sum'}, default='sum_over_batch_size'
    return_prob : bool, default=False
    n_threads : int or None, default=None

    Returns
    -------
    loss : float
    grad : ndarray of the shape of logits, scale * w * (p - y) / k
    prob : ndarray, only with return_prob

    Notes
    -----
    loss_i = mean_j -(y log clip(p) + (1 - y) log(1 - clip(p))), p = sigmoid(z),
    clip to [1e-7, 1 - 1e-7] (Keras); log p = -softplus(-z) is used, so it is stable.
    """
    return _run_dense_loss("sigmoid_bce", _loss.sigmoid_bce, y_true, logits, sample_weight, reduction,
                           n_threads, bool(return_prob))


def mse(y_true, y_pred, sample_weight=None, reduction="sum_over_batch_size", n_threads=None):
    """Mean squared error (mean over the last axis, then the reduction) and its gradient.

    Returns
    -------
    loss : float
    grad : ndarray of the shape of y_pred, scale * w * 2 (y_pred - y_true) / k
    """
    return _run_dense_loss("mse", _loss.mse, y_true, y_pred, sample_weight, reduction, n_threads, None)


def mae(y_true, y_pred, sample_weight=None, reduction="sum_over_batch_size", n_threads=None):
    """Mean absolute error (mean over the last axis, then the reduction) and its gradient.

    Returns
    -------
    loss : float
    grad : ndarray of the shape of y_pred, scale * w * sign(y_pred - y_true) / k (sign(0) = 0)
    """
    return _run_dense_loss("mae", _loss.mae, y_true, y_pred, sample_weight, reduction, n_threads, None)


def sparse_softmax_xent(y_true, logits, sample_weight=None, reduction="sum_over_batch_size",
                        return_prob=False, n_threads=None):
    """Softmax cross-entropy with integer class labels, fused.

    Parameters
    ----------
    y_true : array-like of ints of shape (...) or (..., 1)
        Labels in [0, k); integral floats are accepted.
    logits : array-like of shape (..., k)
    sample_weight : array-like of shape (...), optional
    reduction : {'sum_over_batch_size', 'sum'}, default='sum_over_batch_size'
    return_prob : bool, default=False
    n_threads : int or None, default=None

    Returns
    -------
    loss : float
    grad : ndarray of the shape of logits, scale * w * (p - onehot(y_true))
    prob : ndarray, only with return_prob
    """
    fn = "sparse_softmax_xent"
    Z = _asarray(logits, "logits", fn)
    if Z.ndim < 2:
        raise ValueError(f"{fn}: logits must be at least 2-D (n_samples, n_classes), got shape {Z.shape}")
    P, lead, k, dt, w = _loss_inputs(fn, None, Z, sample_weight, reduction)
    L = _asarray(y_true, "y_true", fn)
    if L.shape == lead + (1,):
        L = L.reshape(lead)
    if L.shape != lead:
        raise ValueError(f"{fn}: y_true has shape {L.shape}, expected {lead} or {lead + (1,)} (one label per sample)")
    if L.dtype.kind == "f":
        if L.size and not np.all(np.isfinite(L) & (L == np.floor(L))):
            raise ValueError(f"{fn}: y_true must hold integer class labels, got non-integral values")
    elif L.dtype.kind not in "iu":
        raise TypeError(f"{fn}: y_true must hold integer class labels, got dtype {L.dtype}")
    if L.size and (L.min() < 0 or L.max() >= k):
        raise ValueError(f"{fn}: labels must lie in [0, {k}), got values in [{L.min()}, {L.max()}]")
    labels = np.ascontiguousarray(L, dtype=np.int64).reshape(-1)
    N = labels.shape[0]
    P2 = P.reshape(N, k)
    D = np.empty_like(P2)
    prob = np.empty_like(P2) if return_prob else None
    scale = 1.0 / N if (reduction == "sum_over_batch_size" and N) else 1.0
    total = _loss.sparse_softmax_xent(P2, labels, w, prob, D, grad_scale=scale,
                                      n_threads=effective_n_threads(n_threads)) if N else 0.0
    if return_prob:
        return total * scale, D.reshape(P.shape), prob.reshape(P.shape)
    return total * scale, D.reshape(P.shape)
