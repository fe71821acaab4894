"""Losses with Keras 3 definitions and the `sum_over_batch_size` reduction.

A loss object called as ``loss(y_true, y_pred, sample_weight=None)`` returns
``sum_i w_i l_i / N``: sample weights multiply the per-sample losses, the
divisor stays the number of samples N. The snake_case functions return the
per-sample losses l_i (shape (N,) for 2-D predictions).

Inside `Sequential.fit` a loss also gives its gradient: ``_grad`` writes
``d = grad_scale * d(sum_i w_i l_i)/d y_pred`` into a preallocated buffer and
returns the weighted sum. MSE, MAE and the cross-entropies on logits call the
fused kernels of ``nncore._kernels.losses``; when the last layer's activation
is sigmoid/softmax and the loss the matching cross-entropy, the model calls
``_logits_grad`` on the pre-activation z instead (one stable pass, gradient
p - y). Huber, Hinge and the cross-entropies on probabilities from other
activations compute their gradient here in NumPy.
"""
import numpy as np

from nncore._config import floatx

__all__ = ["Loss", "MeanSquaredError", "MeanAbsoluteError", "BinaryCrossentropy", "CategoricalCrossentropy",
           "SparseCategoricalCrossentropy", "Huber", "Hinge", "mean_squared_error", "mean_absolute_error",
           "binary_crossentropy", "categorical_crossentropy", "sparse_categorical_crossentropy", "huber",
           "hinge", "mse", "mae", "get", "serialize"]

EPSILON = 1e-7  # Keras backend.epsilon(): probabilities are clipped to [EPSILON, 1 - EPSILON]


from nncore._kernels import losses as _kl


# --------------------------------------------------------------------------- helpers
def _float(a, dtype=None):
    a = np.asarray(a)
    if dtype is None:
        dtype = a.dtype if a.dtype in (np.float32, np.float64) else floatx()
    return np.asarray(a, dtype=dtype)


def _pair(y_true, y_pred):
    """Float arrays of one shape; y_true of shape (N,) meets y_pred (N, 1) as in Keras."""
    y_pred = _float(y_pred)
    y_true = _float(y_true, y_pred.dtype)
    if y_true.ndim == y_pred.ndim - 1 and y_pred.shape[-1] == 1:
        y_true = y_true.reshape(y_true.shape + (1,))
    elif y_pred.ndim == y_true.ndim - 1 and y_true.shape[-1] == 1:
        y_pred = y_pred.reshape(y_pred.shape + (1,))
    if y_true.shape != y_pred.shape:
        raise ValueError(f"loss: y_true has shape {y_true.shape}, y_pred has shape {y_pred.shape}; "
                         "expected the same shape")
    return y_true, y_pred


def _log_sigmoid(z):
    # log sigmoid(z) = -log(1 + exp(-z)) = min(z, 0) - log1p(exp(-|z|)), no overflow
    return np.minimum(z, 0) - np.log1p(np.exp(-np.abs(z)))


def _log_softmax(z):
    s = z - z.max(axis=-1, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=-1, keepdims=True))


def _sparse_labels(y_true, n_classes, name="y_true"):
    y = np.asarray(y_true)
    if y.ndim >= 1 and y.shape[-1:] == (1,):
        y = y.reshape(y.shape[:-1])
    if y.size and not np.all(np.isfinite(y)):
        raise ValueError(f"{name}: sparse labels contain NaN or infinity")
    # the range in the labels' own dtype, before the cast (uint64 2**64 - 1 or a float 1e20 would wrap)
    if y.size and y.dtype.kind != "b" and (y.min() < 0 or y.max() >= n_classes):
        bad = y.min() if y.min() < 0 else y.max()
        raise ValueError(f"{name}: label {bad} out of range; expected integers in [0, {n_classes - 1}] "
                         f"for {n_classes} classes")
    labels = y.astype(np.int64)
    if y.dtype.kind == "f" and not np.array_equal(labels, y):
        raise ValueError(f"{name}: sparse labels must be integers, got non-integer values")
    if labels.size and labels.max() >= n_classes:       # bools: True is class 1
        raise ValueError(f"{name}: label {labels.max()} out of range; expected integers in [0, {n_classes - 1}] "
                         f"for {n_classes} classes")
    return labels


# --------------------------------------------------------------------------- per-sample functions
def mean_squared_error(y_true, y_pred):
    """Per-sample mean over the last axis of (y_true - y_pred)^2."""
    y_true, y_pred = _pair(y_true, y_pred)
    return np.mean((y_true - y_pred) ** 2, axis=-1)


def mean_absolute_error(y_true, y_pred):
    """Per-sample mean over the last axis of |y_true - y_pred|."""
    y_true, y_pred = _pair(y_true, y_pred)
    return np.mean(np.abs(y_true - y_pred), axis=-1)


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0):
    """Per-sample mean over the last axis of -(y log p + (1 - y) log(1 - p)).

    p is clipped to [1e-7, 1 - 1e-7]; from_logits: p = sigmoid(z), computed
    stably from z. Label smoothing s: y <- y (1 - s) + s / 2.
    """
    y_true, y_pred = _pair(y_true, y_pred)
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:
        return -np.mean(y_true * _log_sigmoid(y_pred) + (1 - y_true) * _log_sigmoid(-y_pred), axis=-1)
    p = np.clip(y_pred, EPSILON, 1 - EPSILON)
    return -np.mean(y_true * np.log(p) + (1 - y_true) * np.log(1 - p), axis=-1)


def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0):
    """Per-sample -sum_k y_k log p_k over the last axis.

    p is renormalised to sum to 1, then clipped to [1e-7, 1 - 1e-7];
    from_logits: log p = log_softmax(z). Label smoothing s: y <- y (1 - s) + s / K.
    """
    y_true, y_pred = _pair(y_true, y_pred)
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + label_smoothing / y_true.shape[-1]
    if from_logits:
        return -np.sum(y_true * _log_softmax(y_pred), axis=-1)
    p = np.clip(y_pred / y_pred.sum(axis=-1, keepdims=True), EPSILON, 1 - EPSILON)
    return -np.sum(y_true * np.log(p), axis=-1)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False):
    """categorical_crossentropy with integer labels (shape (N,) or (N, 1)) in place of one-hot rows."""
    y_pred = _float(y_pred)
    labels = _sparse_labels(y_true, y_pred.shape[-1])
    if labels.shape != y_pred.shape[:-1]:
        raise ValueError(f"loss: y_true has {labels.shape} labels, y_pred has shape {y_pred.shape}")
    onehot = (labels[..., None] == np.arange(y_pred.shape[-1])).astype(y_pred.dtype)
    return categorical_crossentropy(onehot, y_pred, from_logits=from_logits)


def huber(y_true, y_pred, delta=1.0):
    """Per-sample mean over the last axis of 0.5 e^2 if |e| <= delta else delta (|e| - 0.5 delta).

    e = y_pred - y_true.
    """
    y_true, y_pred = _pair(y_true, y_pred)
    a = np.abs(y_pred - y_true)
    return np.mean(np.where(a <= delta, 0.5 * a * a, delta * a - 0.5 * delta * delta), axis=-1)


def _hinge_labels(y):
    # Keras 3: labels that are all 0/1 become -1/+1
    if np.all((y == 0) | (y == 1)):
        return 2.0 * y - 1.0
    return y


def hinge(y_true, y_pred):
    """Per-sample mean over the last axis of max(1 - y_true y_pred, 0); 0/1 labels become -1/+1."""
    y_true, y_pred = _pair(y_true, y_pred)
    return np.mean(np.maximum(1.0 - _hinge_labels(y_true) * y_pred, 0.0), axis=-1)


mse = mean_squared_error
mae = mean_absolute_error


# --------------------------------------------------------------------------- loss classes
class Loss:
    """Base class: `call` gives per-sample losses, `__call__` reduces them.

    Subclasses used by Sequential.fit also implement `_grad` (and the
    cross-entropies `_logits_grad`). Reduction is Keras's
    `sum_over_batch_size`: sum(w * l) / N.
    """
    name = "loss"
    fn = None                 # the per-sample function
    fused_activation = None   # 'sigmoid' / 'softmax' when the fused p - y path applies
    sparse = False

    def __init__(self, name=None):
        if name is not None:
            self.name = name

    def call(self, y_true, y_pred):
        return type(self).fn(y_true, y_pred, **self._fn_kwargs())

    def _fn_kwargs(self):
        return {}

    def __call__(self, y_true, y_pred, sample_weight=None):
        per = self.call(y_true, y_pred)
        n = per.size
        if n == 0:
            raise ValueError(f"{self.name}: empty batch")
        if sample_weight is not None:
            w = np.asarray(sample_weight, dtype=per.dtype)
            while w.ndim > per.ndim and w.ndim > 0 and w.shape[-1] == 1:
                w = w[..., 0]                    # (n, 1) weights for (n,) losses
            if w.shape != per.shape:
                if w.ndim < per.ndim:
                    w = w.reshape(w.shape + (1,) * (per.ndim - w.ndim))
                try:
                    # a 1-D pair reduces to one loss value: Keras broadcasts it
                    # against the weights, giving loss * mean(w)
                    shape = np.broadcast_shapes(per.shape, w.shape) if per.ndim == 0 else per.shape
                    w = np.broadcast_to(w, shape)
                except ValueError:
                    raise ValueError(f"{self.name}: sample_weight has shape {np.shape(sample_weight)}, "
                                     f"expected {per.shape}") from None
            per = per * w
            n = per.size
        return per.dtype.type(per.sum() / n)

    def get_config(self):
        return {"name": self.name, **self._fn_kwargs()}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    # ---- model hooks -------------------------------------------------------
    def _prepare(self, y, out_shape, dtype, arg="y"):
        """Validate and convert the whole target array once per fit/evaluate."""
        y = np.asarray(y)
        if y.dtype.kind not in "biuf":
            raise TypeError(f"{arg}: expected numeric targets, got dtype {y.dtype}")
        if y.ndim == 1 and out_shape[-1] == 1 and len(out_shape) == 2:
            y = y.reshape(-1, 1)
        if y.shape[1:] != tuple(out_shape[1:]):
            raise ValueError(f"{arg}: expected targets of shape (n_samples, {', '.join(map(str, out_shape[1:]))}) "
                             f"to match the model output {tuple(out_shape)}, got {y.shape}")
        y = np.ascontiguousarray(y, dtype=dtype)
        if not np.all(np.isfinite(y)):
            raise ValueError(f"{arg}: targets contain NaN or infinity")
        return y

    def _grad(self, y_pred, y, w, d, grad_scale, n_threads):
        """Write grad_scale * d(sum_i w_i l_i)/d y_pred into d; return sum_i w_i l_i."""
        raise NotImplementedError(f"{type(self).__name__} cannot be trained with (no gradient)")


class MeanSquaredError(Loss):
    """mean((y_true - y_pred)^2, axis=-1), reduced by sum_over_batch_size."""
    name = "mean_squared_error"
    fn = staticmethod(mean_squared_error)

    def _grad(self, y_pred, y, w, d, grad_scale, n_threads):
        return _kl.mse(y_pred, y, w, d, grad_scale, n_threads)


class MeanAbsoluteError(Loss):
    """mean(|y_true - y_pred|, axis=-1), reduced by sum_over_batch_size."""
    name = "mean_absolute_error"
    fn = staticmethod(mean_absolute_error)

    def _grad(self, y_pred, y, w, d, grad_scale, n_threads):
        return _kl.mae(y_pred, y, w, d, grad_scale, n_threads)


class _Crossentropy(Loss):
    def __init__(self, from_logits=False, label_smoothing=0.0, name=None):
        super().__init__(name)
        if not 0.0 <= float(label_smoothing) <= 1.0:
            raise ValueError(f"{type(self).__name__}: label_smoothing must be in [0, 1], got {label_smoothing}")
        self.from_logits = bool(from_logits)
        self.label_smoothing = float(label_smoothing)

    def _fn_kwargs(self):
        return {"from_logits": self.from_logits, "label_smoothing": self.label_smoothing}

    @property
    def fused_activation(self):
        return None if self.from_logits else self._activation

    def _grad(self, y_pred, y, w, d, grad_scale, n_threads):
        if self.from_logits:
            return self._logits_grad(y_pred, y, w, None, d, grad_scale, n_threads)
        return self._prob_grad(y_pred, y, w, d, grad_scale)


class BinaryCrossentropy(_Crossentropy):
    """Binary cross-entropy (see `binary_crossentropy`), reduced by sum_over_batch_size."""
    name = "binary_crossentropy"
    fn = staticmethod(binary_crossentropy)
    _activation = "sigmoid"

    def _prepare(self, y, out_shape, dtype, arg="y"):
        y = super()._prepare(y, out_shape, dtype, arg)
        if self.label_smoothing:
            y = y * (1.0 - self.label_smoothing) + 0.5 * self.label_smoothing
        return y

    def _logits_grad(self, z, y, w, prob, d, grad_scale, n_threads):
        return _kl.sigmoid_bce(z, y, w, prob, d, grad_scale, n_threads)

    def _prob_grad(self, p, y, w, d, grad_scale):
        # l = -mean_k(y log pc + (1-y) log(1-pc)), pc = clip(p); dl/dp = (pc - y) / (pc (1 - pc) K) inside the clip
        pc = np.clip(p, EPSILON, 1 - EPSILON)
        per = -np.mean(y * np.log(pc) + (1 - y) * np.log(1 - pc), axis=-1)
        g = (pc - y) / (pc * (1 - pc) * p.shape[-1]) * ((p > EPSILON) & (p < 1 - EPSILON))
        return _weighted_finish(per, g, w, d, grad_scale)


class CategoricalCrossentropy(_Crossentropy):
    """Categorical cross-entropy on one-hot targets (see `categorical_crossentropy`)."""
    name = "categorical_crossentropy"
    fn = staticmethod(categorical_crossentropy)
    _activation = "softmax"

    def _prepare(self, y, out_shape, dtype, arg="y"):
        y = super()._prepare(y, out_shape, dtype, arg)
        if self.label_smoothing:
            y = y * (1.0 - self.label_smoothing) + self.label_smoothing / y.shape[-1]
        return y

    def _logits_grad(self, z, y, w, prob, d, grad_scale, n_threads):
        return _kl.softmax_xent(z, y, w, prob, d, grad_scale, n_threads)

    def _prob_grad(self, p, y, w, d, grad_scale):
        return _categorical_prob_grad(p, y, w, d, grad_scale)


class SparseCategoricalCrossentropy(Loss):
    """Categorical cross-entropy with integer labels (see `sparse_categorical_crossentropy`)."""
    name = "sparse_categorical_crossentropy"
    fn = staticmethod(sparse_categorical_crossentropy)
    sparse = True

    def __init__(self, from_logits=False, name=None):
        super().__init__(name)
        self.from_logits = bool(from_logits)

    def _fn_kwargs(self):
        return {"from_logits": self.from_logits}

    @property
    def fused_activation(self):
        return None if self.from_logits else "softmax"

    def _prepare(self, y, out_shape, dtype, arg="y"):
        y = np.asarray(y)
        if y.dtype.kind not in "biuf":
            raise TypeError(f"{arg}: expected integer class labels, got dtype {y.dtype}")
        steps = tuple(out_shape[1:-1])            # outputs with time steps: one label per step
        if y.ndim == 2 + len(steps) and y.shape[-1] == 1:
            y = y.reshape(y.shape[:-1])
        if y.ndim != 1 + len(steps) or y.shape[1:] != steps:
            want = f"(n_samples, {', '.join(map(str, steps))})" if steps else "(n_samples,) or (n_samples, 1)"
            raise ValueError(f"{arg}: sparse_categorical_crossentropy expects labels of shape {want} for "
                             f"outputs of shape {tuple(out_shape)}, got {y.shape}")
        return np.ascontiguousarray(_sparse_labels(y, out_shape[-1], arg))

    def _logits_grad(self, z, labels, w, prob, d, grad_scale, n_threads):
        return _kl.sparse_softmax_xent(z, labels, w, prob, d, grad_scale, n_threads)

    def _grad(self, y_pred, labels, w, d, grad_scale, n_threads):
        if self.from_logits:
            return self._logits_grad(y_pred, labels, w, None, d, grad_scale, n_threads)
        onehot = (labels[:, None] == np.arange(y_pred.shape[-1])).astype(y_pred.dtype)
        return _categorical_prob_grad(y_pred, onehot, w, d, grad_scale)


class Huber(Loss):
    """Huber loss with threshold `delta` (see `huber`)."""
    name = "huber_loss"
    fn = staticmethod(huber)

    def __init__(self, delta=1.0, name=None):
        super().__init__(name)
        if not float(delta) > 0:
            raise ValueError(f"Huber: delta must be positive, got {delta}")
        self.delta = float(delta)

    def _fn_kwargs(self):
        return {"delta": self.delta}

    def _grad(self, y_pred, y, w, d, grad_scale, n_threads):
        e = y_pred - y
        a = np.abs(e)
        per = np.mean(np.where(a <= self.delta, 0.5 * e * e, self.delta * a - 0.5 * self.delta ** 2), axis=-1)
        return _weighted_finish(per, np.clip(e, -self.delta, self.delta) / y.shape[-1], w, d, grad_scale)


class Hinge(Loss):
    """Hinge loss (see `hinge`)."""
    name = "hinge"
    fn = staticmethod(hinge)

    def _prepare(self, y, out_shape, dtype, arg="y"):
        return _hinge_labels(super()._prepare(y, out_shape, dtype, arg))

    def _grad(self, y_pred, y, w, d, grad_scale, n_threads):
        m = 1.0 - y * y_pred
        per = np.mean(np.maximum(m, 0.0), axis=-1)
        return _weighted_finish(per, -y * (m > 0) / y.shape[-1], w, d, grad_scale)


class _PerStep:
    """A model's loss gradient (``_grad`` or ``_logits_grad``) for outputs with time steps,
    (batch, T, ..., k), as Keras reduces them: one loss per step, batch loss = sum_{b,t} w_b m_bt l_bt /
    sum_{b,t} m_bt, where m is the output's mask (``get_mask()``: masked steps count for nothing) or 1
    (the divisor is then B T). The kernels see the steps as rows, (B T ..., k), with row weights w_b m_bt.
    Called as the model calls a loss (grad_scale = weight / B, the sum returned per sample), it returns
    B sum(w m l) / sum m and writes weight d(sum(w m l) / sum m) / d out."""

    def __init__(self, fn, get_mask=None):
        self.fn, self.get_mask = fn, get_mask
        self._weights = {}

    def __call__(self, out, y, w, *rest):
        # rest: (d, grad_scale, n_threads) for _grad, (prob, d, grad_scale, n_threads) for _logits_grad
        n, k = out.shape[0], out.shape[-1]
        rows = out.size // k
        mask = None if self.get_mask is None else self.get_mask()
        if mask is not None and mask.shape != out.shape[:-1]:
            mask = None
        wr, count = None, rows
        if w is not None or mask is not None:
            wr = self._weights.get(rows)
            if wr is None or wr.dtype != out.dtype:
                wr = self._weights[rows] = np.empty(rows, out.dtype)
            wr2 = wr.reshape(n, -1)
            if mask is None:
                wr2.fill(1)
            else:
                np.copyto(wr2, mask.reshape(n, -1))
                count = int(np.count_nonzero(mask))
            if w is not None:
                wr2 *= w[:, None]
        per_row = n / count if count else 0.0              # from the per-sample convention to per step
        y2 = y.reshape(rows) if y.ndim == out.ndim - 1 else y.reshape(rows, k)      # sparse labels: one per row
        arrays = [None if a is None else a.reshape(rows, k) for a in rest[:-2]]
        s = self.fn(out.reshape(rows, k), y2, wr, *arrays, rest[-2] * per_row, rest[-1])
        return s * per_row


def _categorical_prob_grad(p, y, w, d, grad_scale):
    # q = p / s, s = sum_k p_k; l = -sum_j y_j log clip(q_j)
    # g_j = dl/dq_j = -y_j / q_j inside the clip; dl/dp_i = (g_i - sum_j g_j q_j) / s
    s = p.sum(axis=-1, keepdims=True)
    q = p / s
    qc = np.clip(q, EPSILON, 1 - EPSILON)
    per = -np.sum(y * np.log(qc), axis=-1)
    g = -y / qc * ((q > EPSILON) & (q < 1 - EPSILON))
    return _weighted_finish(per, (g - np.sum(g * q, axis=-1, keepdims=True)) / s, w, d, grad_scale)


def _weighted_finish(per, dl, w, d, grad_scale):
    """d = grad_scale * w_i * dl_i/dy_pred; return sum_i w_i l_i."""
    scale = grad_scale if w is None else grad_scale * w.reshape((-1,) + (1,) * (dl.ndim - 1))
    if d is not None:
        np.multiply(dl, scale, out=d)
    return float(np.sum(per if w is None else per * w))


# --------------------------------------------------------------------------- lookup
_CLASSES = {c.__name__: c for c in (MeanSquaredError, MeanAbsoluteError, BinaryCrossentropy,
                                    CategoricalCrossentropy, SparseCategoricalCrossentropy, Huber, Hinge)}
_ALIASES = {
    "mse": MeanSquaredError, "mean_squared_error": MeanSquaredError,
    "mae": MeanAbsoluteError, "mean_absolute_error": MeanAbsoluteError,
    "binary_crossentropy": BinaryCrossentropy, "bce": BinaryCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "huber": Huber, "huber_loss": Huber, "hinge": Hinge,
}
_FUNCS = {mean_squared_error: MeanSquaredError, mean_absolute_error: MeanAbsoluteError,
          binary_crossentropy: BinaryCrossentropy, categorical_crossentropy: CategoricalCrossentropy,
          sparse_categorical_crossentropy: SparseCategoricalCrossentropy, huber: Huber, hinge: Hinge}


def get(identifier):
    """Resolve a loss: a Loss instance, a name, a class name, a {'class_name', 'config'} dict or a function here."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str):
        cls = _ALIASES.get(identifier) or _CLASSES.get(identifier)
        if cls is None:
            from nncore.validation import unknown_name

            raise unknown_name("loss", identifier, _ALIASES)
        return cls()
    if isinstance(identifier, dict):
        cls = _CLASSES.get(identifier.get("class_name"))
        if cls is None:
            raise ValueError(f"loss: unknown class_name {identifier.get('class_name')!r} in config; "
                             f"expected one of {sorted(_CLASSES)}")
        return cls.from_config(identifier.get("config", {}))
    if identifier in _FUNCS:
        return _FUNCS[identifier]()
    raise ValueError(f"loss: expected a name, a config dict or an nncore.losses Loss/function, got {identifier!r}")


def serialize(loss):
    """{'class_name': ..., 'config': ...} for a loss object."""
    return {"class_name": type(loss).__name__, "config": loss.get_config()}
