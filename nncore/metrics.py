"""Stateful metrics with Keras 3 semantics.

A metric accumulates over batches: ``update_state(y_true, y_pred, sample_weight=None)`` once per
batch, ``result()`` for the value so far, ``reset_state()`` at the start of an epoch. State is kept
in float64 Python scalars or small float64 arrays whatever the input dtype, and every update is a
handful of vectorised NumPy calls (it runs every batch).

Mean-style metrics (accuracies, mse, mae) follow Keras's ``MeanMetricWrapper``: a per-sample value
(the mean over the last axis where Keras takes one), then a weighted mean over samples,
``result = sum_i w_i v_i / sum_i w_i`` (0 when nothing was seen). Confusion-matrix metrics
(Precision, Recall, AUC) accumulate weighted true/false positive/negative counts per threshold.
"""
import difflib

import numpy as np

__all__ = [
    "Metric", "Mean", "MeanMetricWrapper", "BinaryAccuracy", "CategoricalAccuracy",
    "SparseCategoricalAccuracy", "MeanSquaredError", "MeanAbsoluteError", "Precision", "Recall",
    "AUC", "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy",
    "mean_squared_error", "mean_absolute_error", "get", "serialize", "deserialize",
]

_EPSILON = 1e-7  # Keras backend.epsilon(): the outer AUC thresholds sit this far outside [0, 1]


def _as_array(x, what, owner):
    """x as an ndarray without copying when it already is one; reject non-numeric data."""
    a = x if isinstance(x, np.ndarray) else np.asarray(x)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{owner}: {what} must be numeric, got dtype {a.dtype}")
    return a


def _same_rank(a, b):
    """Keras's squeeze_or_expand_to_same_rank: when the ranks differ by one and the array of
    higher rank ends in an axis of size 1, expand the other if it is 1-D, else squeeze that axis."""
    if a.ndim == b.ndim + 1 and a.shape[-1] == 1:
        return (a, b[:, None]) if b.ndim == 1 else (a[..., 0], b)
    if b.ndim == a.ndim + 1 and b.shape[-1] == 1:
        return (a[:, None], b) if a.ndim == 1 else (a, b[..., 0])
    return a, b


def _check_pair(y_true, y_pred, owner):
    y_true = _as_array(y_true, "y_true", owner)
    y_pred = _as_array(y_pred, "y_pred", owner)
    if y_pred.ndim == 0:
        raise ValueError(f"{owner}: y_pred must have at least one axis (the samples), got a scalar")
    return y_true, y_pred


# ---------------------------------------------------------------- per-sample metric functions

def binary_accuracy(y_true, y_pred, threshold=0.5):
    """Per-sample binary accuracy: mean over the last axis of (y_pred > threshold) == y_true.

    Returns ndarray of shape y_pred.shape[:-1] (after Keras's rank matching of y_true and y_pred).
    """
    y_true, y_pred = _check_pair(y_true, y_pred, "binary_accuracy")
    y_true, y_pred = _same_rank(y_true, y_pred)
    _check_broadcast(y_true, y_pred, "binary_accuracy")
    hit = (y_pred > threshold) == y_true
    return hit.mean(axis=-1)


def categorical_accuracy(y_true, y_pred):
    """Per-sample categorical accuracy: argmax(y_true, -1) == argmax(y_pred, -1) (one-hot targets)."""
    y_true, y_pred = _check_pair(y_true, y_pred, "categorical_accuracy")
    if y_true.shape != y_pred.shape:
        raise ValueError("categorical_accuracy: y_true (one-hot) must have the shape of y_pred "
                         f"{y_pred.shape}, got {y_true.shape}")
    return (np.argmax(y_true, axis=-1) == np.argmax(y_pred, axis=-1)).astype(np.float64)


def sparse_categorical_accuracy(y_true, y_pred):
    """Per-sample sparse categorical accuracy: y_true == argmax(y_pred, -1) (integer labels)."""
    y_true, y_pred = _check_pair(y_true, y_pred, "sparse_categorical_accuracy")
    if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1:
        y_true = y_true[..., 0]
    if y_true.shape != y_pred.shape[:-1]:
        raise ValueError("sparse_categorical_accuracy: y_true (integer labels) must have shape "
                         f"{y_pred.shape[:-1]} or {y_pred.shape[:-1] + (1,)} for y_pred of shape "
                         f"{y_pred.shape}, got {y_true.shape}")
    return (np.argmax(y_pred, axis=-1) == y_true).astype(np.float64)


def mean_squared_error(y_true, y_pred):
    """Per-sample mean squared error: mean over the last axis of (y_true - y_pred)^2."""
    y_true, y_pred = _check_pair(y_true, y_pred, "mean_squared_error")
    y_true, y_pred = _same_rank(y_true, y_pred)
    _check_broadcast(y_true, y_pred, "mean_squared_error")
    d = np.subtract(y_true, y_pred, dtype=np.float64)
    np.multiply(d, d, out=d)
    return d.mean(axis=-1)


def mean_absolute_error(y_true, y_pred):
    """Per-sample mean absolute error: mean over the last axis of |y_true - y_pred|."""
    y_true, y_pred = _check_pair(y_true, y_pred, "mean_absolute_error")
    y_true, y_pred = _same_rank(y_true, y_pred)
    _check_broadcast(y_true, y_pred, "mean_absolute_error")
    d = np.subtract(y_true, y_pred, dtype=np.float64)
    np.abs(d, out=d)
    return d.mean(axis=-1)


def _check_broadcast(y_true, y_pred, owner):
    if y_true.shape != y_pred.shape:
        try:
            shape = np.broadcast_shapes(y_true.shape, y_pred.shape)
        except ValueError:
            shape = None
        if shape != y_pred.shape:
            raise ValueError(f"{owner}: y_true of shape {y_true.shape} does not match y_pred of "
                             f"shape {y_pred.shape}")


# ---------------------------------------------------------------- base classes

class Metric:
    """Base class of stateful metrics.

    Subclasses implement ``update_state``, ``result`` and ``reset_state``. ``name`` is the key the
    value gets in ``logs`` and History. ``_direction`` ("up" or "down") tells monitoring callbacks
    whether larger is better.

    Parameters
    ----------
    name : str, default=None
        Defaults to the snake_case class name.
    dtype : str, default=None
        Kept for Keras compatibility; the state is always accumulated in float64 and ``result``
        returns a Python float.
    """

    _direction = None
    # names of the attributes holding the state, each a sum over samples (float, list of
    # floats or float array): nncore.distributed combines a metric across ranks by summing them
    sum_state = None

    def __init__(self, name=None, dtype=None):
        if name is None:
            name = _snake(type(self).__name__)
        if not isinstance(name, str) or not name:
            raise TypeError(f"{type(self).__name__}: name must be a non-empty str, got {name!r}")
        self.name = name
        self.dtype = dtype

    def update_state(self, *args, **kwargs):
        raise NotImplementedError

    def result(self):
        raise NotImplementedError

    def reset_state(self):
        raise NotImplementedError

    def __call__(self, *args, **kwargs):
        """Update with one batch and return the result so far (Keras's stateful call)."""
        self.update_state(*args, **kwargs)
        return self.result()

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r}>"


def _snake(name):
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i and (not name[i - 1].isupper() or
                                   (i + 1 < len(name) and name[i + 1].islower())):
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


class Mean(Metric):
    """Weighted mean of the values passed to ``update_state(values, sample_weight=None)``.

    Notes
    -----
    total += sum_i w_i v_i ; count += sum_i w_i ; result = total / count (0 if count == 0).
    Values with more axes than the weights are averaged over the extra axes first; weights of
    higher rank are averaged over their trailing axes for the count (Keras's
    ``reduce_to_samplewise_values``).
    """

    sum_state = ("total", "count")

    def __init__(self, name="mean", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.total = 0.0
        self.count = 0.0

    def update_state(self, values, sample_weight=None):
        v = _as_array(values, "values", self.name)
        if sample_weight is None:
            if v.ndim > 1:
                v = v.reshape(v.shape[0], -1).mean(axis=1, dtype=np.float64)
            self.total += float(np.sum(v, dtype=np.float64))
            self.count += float(v.shape[0]) if v.ndim else 1.0
            return
        w = _as_array(sample_weight, "sample_weight", self.name)
        if v.ndim == 0 and w.ndim == 0:
            self.total += float(v) * float(w)
            self.count += float(w)
            return
        v, w = _same_rank(v, w)
        if v.ndim > w.ndim:  # average the values down to the weights' rank
            v = v.mean(axis=tuple(range(w.ndim, v.ndim)), dtype=np.float64)
        try:
            w = np.broadcast_to(w, v.shape)
        except ValueError:
            raise ValueError(f"{self.name}: sample_weight of shape {np.shape(sample_weight)} does "
                             f"not match values of shape {np.shape(values)}") from None
        vw = np.multiply(v, w, dtype=np.float64)
        if w.ndim > 1:  # per sample: the means over the trailing axes of v w and of w (Keras)
            vw = vw.mean(axis=tuple(range(1, w.ndim)))
            w = w.mean(axis=tuple(range(1, w.ndim)), dtype=np.float64)
        self.total += float(np.sum(vw))
        self.count += float(np.sum(w, dtype=np.float64))

    def result(self):
        return self.total / self.count if self.count != 0 else 0.0

    def reset_state(self):
        self.total = 0.0
        self.count = 0.0


class MeanMetricWrapper(Mean):
    """Weighted mean of a per-sample function ``fn(y_true, y_pred, **kwargs)``.

    Parameters
    ----------
    fn : callable
        Returns an array of per-sample values of shape (n_samples,) (or more axes, averaged).
    name : str, default=None
        Defaults to ``fn.__name__``.
    """

    _takes_mask = True     # in a model, a mask of the output (masked time steps) becomes its sample weight

    def __init__(self, fn, name=None, dtype=None, **kwargs):
        if not callable(fn):
            raise TypeError(f"MeanMetricWrapper: fn must be callable, got {type(fn).__name__}")
        super().__init__(name=name or getattr(fn, "__name__", "mean_metric_wrapper"), dtype=dtype)
        self._fn = fn
        self._fn_kwargs = kwargs

    def update_state(self, y_true, y_pred, sample_weight=None):
        v = None
        if type(y_pred) is np.ndarray and type(y_true) is np.ndarray and y_pred.ndim == 2:
            if sample_weight is None:
                total = self._unweighted_sum(y_true, y_pred)
                if total is not None:
                    self.total += total
                    self.count += y_pred.shape[0]
                    return
            v = self._per_sample(y_true, y_pred)
        if v is None:  # general shapes: the per-sample function, then Keras's weighting rules
            Mean.update_state(self, self._fn(y_true, y_pred, **self._fn_kwargs), sample_weight)
            return
        # fast path (2-D y_pred, 1-D per-sample values): a few ufunc calls per batch
        if sample_weight is None:
            self.total += np.count_nonzero(v) if v.dtype == bool else float(v.sum())
            self.count += v.shape[0]
            return
        w = sample_weight
        if type(w) is not np.ndarray or w.shape != v.shape or w.dtype.kind != "f":
            Mean.update_state(self, v, sample_weight)
            return
        if w.dtype != np.float64:
            w = w.astype(np.float64)
        self.total += float(np.dot(v, w))
        self.count += float(w.sum())

    def _per_sample(self, y_true, y_pred):
        """Per-sample values of shape (n,) for a 2-D y_pred, or None for the general path."""
        return None

    def _unweighted_sum(self, y_true, y_pred):
        """Sum over samples of the per-sample values for a 2-D y_pred without weights, or None."""
        return None

    def get_config(self):
        return {**super().get_config(), **self._fn_kwargs}


class BinaryAccuracy(MeanMetricWrapper):
    """How often predictions match binary labels: mean of (y_pred > threshold) == y_true.

    Parameters
    ----------
    name : str, default="binary_accuracy"
    dtype : str, default=None
    threshold : float, default=0.5
        A prediction counts as 1 when strictly above it.
    """

    _direction = "up"

    def __init__(self, name="binary_accuracy", dtype=None, threshold=0.5):
        if not isinstance(threshold, (int, float, np.floating)) or not 0 < threshold < 1:
            raise ValueError(f"BinaryAccuracy: threshold must be a float in (0, 1), "
                             f"got {threshold!r}")
        super().__init__(binary_accuracy, name=name, dtype=dtype, threshold=float(threshold))
        self.threshold = float(threshold)

    def _per_sample(self, y_true, y_pred):
        n = y_pred.shape[0]
        if y_pred.shape[1] != 1 or y_true.shape not in ((n,), (n, 1)) or \
                y_true.dtype.kind not in "biuf":
            return None
        # compare in y_true's dtype: a bool-to-float comparison costs several microseconds
        return (y_pred[:, 0] > self.threshold).astype(y_true.dtype) == y_true.reshape(n)


class CategoricalAccuracy(MeanMetricWrapper):
    """How often argmax(y_pred) equals argmax of the one-hot y_true."""

    _direction = "up"

    def __init__(self, name="categorical_accuracy", dtype=None):
        super().__init__(categorical_accuracy, name=name, dtype=dtype)

    def _per_sample(self, y_true, y_pred):
        if y_true.shape != y_pred.shape or y_true.dtype.kind not in "biuf":
            return None
        return y_true.argmax(-1) == y_pred.argmax(-1)


class SparseCategoricalAccuracy(MeanMetricWrapper):
    """How often argmax(y_pred) equals the integer label y_true (shape (n,) or (n, 1))."""

    _direction = "up"

    def __init__(self, name="sparse_categorical_accuracy", dtype=None):
        super().__init__(sparse_categorical_accuracy, name=name, dtype=dtype)

    def _per_sample(self, y_true, y_pred):
        n = y_pred.shape[0]
        if y_true.shape not in ((n,), (n, 1)) or y_true.dtype.kind not in "biuf":
            return None
        return y_pred.argmax(-1) == y_true.reshape(n)


class MeanSquaredError(MeanMetricWrapper):
    """Weighted mean over samples of mean((y_true - y_pred)^2, axis=-1)."""

    _direction = "down"

    def __init__(self, name="mean_squared_error", dtype=None):
        super().__init__(mean_squared_error, name=name, dtype=dtype)

    def _per_sample(self, y_true, y_pred):
        d = _diff64(y_true, y_pred)
        if d is None:
            return None
        return d[:, 0] * d[:, 0] if d.shape[1] == 1 else np.einsum("ij,ij->i", d, d) / d.shape[1]

    def _unweighted_sum(self, y_true, y_pred):
        d = _diff64(y_true, y_pred)
        if d is None:
            return None
        flat = d.ravel()
        return float(flat @ flat) / d.shape[1]  # sum over samples of mean over the last axis


class MeanAbsoluteError(MeanMetricWrapper):
    """Weighted mean over samples of mean(|y_true - y_pred|, axis=-1)."""

    _direction = "down"

    def __init__(self, name="mean_absolute_error", dtype=None):
        super().__init__(mean_absolute_error, name=name, dtype=dtype)

    def _per_sample(self, y_true, y_pred):
        d = _diff64(y_true, y_pred)
        if d is None:
            return None
        np.abs(d, out=d)
        return d[:, 0] if d.shape[1] == 1 else d.mean(axis=1)

    def _unweighted_sum(self, y_true, y_pred):
        d = _diff64(y_true, y_pred)
        if d is None:
            return None
        np.abs(d, out=d)
        return float(d.sum()) / d.shape[1]


def _diff64(y_true, y_pred):
    """y_true - y_pred in float64 for a 2-D y_pred and y_true of the same shape (or (n,) against
    (n, 1)); None for other shapes."""
    n = y_pred.shape[0]
    if y_true.shape != y_pred.shape:
        if y_pred.shape[1] != 1 or y_true.shape != (n,):
            return None
        y_true = y_true.reshape(n, 1)
    if y_true.dtype.kind not in "biuf":
        return None
    d = y_true.astype(np.float64)
    d -= y_pred
    return d


class _AutoAccuracy(MeanMetricWrapper):
    """'accuracy' whose kind is chosen from the shapes of the first batch, by Keras 3's rule:
    y_pred with last axis 1 -> binary; y_true of lower rank than y_pred, or with last axis 1 ->
    sparse categorical; otherwise categorical."""

    _direction = "up"

    def __init__(self, name="accuracy", dtype=None):
        super().__init__(self._first, name=name, dtype=dtype)
        self.kind = None
        self._kind_cls = None
        self.threshold = 0.5

    def _first(self, y_true, y_pred):
        y_true, y_pred = _check_pair(y_true, y_pred, self.name)
        if y_pred.shape[-1] == 1:
            self._kind_cls, self._fn = BinaryAccuracy, binary_accuracy
        elif y_true.ndim < y_pred.ndim or y_true.shape[-1] == 1:
            self._kind_cls, self._fn = SparseCategoricalAccuracy, sparse_categorical_accuracy
        else:
            self._kind_cls, self._fn = CategoricalAccuracy, categorical_accuracy
        self.kind = self._fn.__name__
        return self._fn(y_true, y_pred)

    def _per_sample(self, y_true, y_pred):
        # after the first batch, the chosen kind's fast path
        return None if self._kind_cls is None else self._kind_cls._per_sample(self, y_true, y_pred)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


# ---------------------------------------------------------------- confusion-matrix metrics

def _keep_top_k(y_pred, k):
    """y_pred with every value outside the k largest of its last axis set to -inf (Keras's top_k
    filter); among equal values the lower index is kept."""
    y_pred = np.asarray(y_pred, dtype=np.result_type(y_pred, np.float32))
    if y_pred.ndim == 0 or k >= y_pred.shape[-1]:
        return y_pred
    order = np.argsort(-y_pred, axis=-1, kind="stable")
    out = np.full_like(y_pred, -np.inf)
    keep = order[..., :k]
    np.put_along_axis(out, keep, np.take_along_axis(y_pred, keep, axis=-1), axis=-1)
    return out


def _prep_confusion(y_true, y_pred, sample_weight, class_id, owner, top_k=None):
    """Flattened predictions, boolean labels and float64 weights for the confusion counts."""
    if top_k is not None:
        y_true, y_pred = _check_pair(y_true, y_pred, owner)
        y_pred = _keep_top_k(y_pred, top_k)
    if class_id is None and sample_weight is None and type(y_true) is np.ndarray and \
            type(y_pred) is np.ndarray and y_pred.ndim >= 1 and y_true.dtype.kind in "biuf" and \
            y_pred.dtype.kind in "biuf" and (y_true.shape == y_pred.shape or (
                y_pred.ndim == 2 and y_pred.shape[1] == 1 and y_true.shape == y_pred.shape[:1])):
        return (y_true != 0).ravel(), y_pred.ravel(), None  # the common case, without broadcasting
    y_true, y_pred = _check_pair(y_true, y_pred, owner)
    y_true, y_pred = _same_rank(y_true, y_pred)
    if class_id is not None:
        if y_pred.shape[-1] <= class_id:
            raise ValueError(f"{owner}: class_id={class_id} needs y_pred with more than {class_id} "
                             f"columns, got shape {y_pred.shape}")
        y_true, y_pred = y_true[..., class_id], y_pred[..., class_id]
    _check_broadcast(y_true, y_pred, owner)
    y_true = np.broadcast_to(y_true, y_pred.shape)
    label = (y_true != 0).ravel()
    pred = y_pred.ravel()
    if sample_weight is None:
        return label, pred, None
    w = _as_array(sample_weight, "sample_weight", owner)
    if class_id is not None and w.ndim == y_pred.ndim + 1:
        w = w[..., class_id]
    if w.ndim == y_pred.ndim + 1 and w.shape[-1] == 1:
        w = w[..., 0]
    while w.ndim < y_pred.ndim:
        w = w[..., None]
    try:
        w = np.broadcast_to(w, y_pred.shape)
    except ValueError:
        raise ValueError(f"{owner}: sample_weight of shape {np.shape(sample_weight)} does not "
                         f"match y_pred of shape {y_pred.shape}") from None
    return label, pred, w.ravel().astype(np.float64, copy=False)


class _Thresholded(Metric):
    """true/false positives/negatives at given thresholds; a prediction is positive when
    strictly above the threshold (Keras)."""

    _direction = "up"
    sum_state = ("_counts", "_one")

    def __init__(self, thresholds=None, class_id=None, name=None, dtype=None, top_k=None):
        super().__init__(name=name, dtype=dtype)
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer))
                                  or top_k < 1):
            raise ValueError(f"{type(self).__name__}: top_k must be None or a positive int, got {top_k!r}")
        self.top_k = None if top_k is None else int(top_k)
        self._default_thresholds = thresholds is None
        if thresholds is None:
            # with top_k every kept prediction is positive (Keras: threshold NEG_INF)
            thresholds = 0.5 if top_k is None else -np.inf
        self._single = np.ndim(thresholds) == 0
        t = np.atleast_1d(np.asarray(thresholds, dtype=np.float64))
        if t.ndim != 1 or t.size == 0 or not np.all(np.isfinite(t) | (self._default_thresholds & (t == -np.inf))):
            raise ValueError(f"{type(self).__name__}: thresholds must be a finite float or a "
                             f"non-empty list of them, got {thresholds!r}")
        if not self._default_thresholds and np.any((t < 0) | (t > 1)):   # Keras's rule: predictions are in [0, 1]
            raise ValueError(f"{type(self).__name__}: thresholds must lie in [0, 1], got {thresholds!r}")
        if class_id is not None and (isinstance(class_id, bool) or
                                     not isinstance(class_id, (int, np.integer)) or class_id < 0):
            raise ValueError(f"{type(self).__name__}: class_id must be a non-negative int, "
                             f"got {class_id!r}")
        self.thresholds = t
        self.class_id = class_id
        self.reset_state()

    def reset_state(self):
        k = self.thresholds.size
        # rows: true positives, false positives, true negatives, false negatives per threshold;
        # with one threshold, four Python floats (adding to them is cheaper than to arrays)
        self._counts = np.zeros((4, k))
        self._one = [0.0, 0.0, 0.0, 0.0]

    def _row(self, i):
        return np.array([self._one[i]]) if self.thresholds.size == 1 else self._counts[i].copy()

    true_positives = property(lambda self: self._row(0))
    false_positives = property(lambda self: self._row(1))
    true_negatives = property(lambda self: self._row(2))
    false_negatives = property(lambda self: self._row(3))

    def update_state(self, y_true, y_pred, sample_weight=None):
        label, pred, w = _prep_confusion(y_true, y_pred, sample_weight, self.class_id, self.name,
                                         self.top_k)
        if self.thresholds.size == 1:  # the common case: one comparison, a few counts
            pos = pred > self.thresholds[0]
            if w is None:
                tp = np.count_nonzero(pos & label)
                fp = np.count_nonzero(pos) - tp
                fn = np.count_nonzero(label) - tp
                tn = label.size - tp - fp - fn
            else:
                tp = float(w[pos & label].sum())
                fp = float(w[pos].sum()) - tp
                fn = float(w[label].sum()) - tp
                tn = float(w.sum()) - tp - fp - fn
            c = self._one
            c[0] += tp
            c[1] += fp
            c[2] += tn
            c[3] += fn
            return
        pos = pred[None, :] > self.thresholds[:, None]  # (k, n)
        wv = np.ones(label.size) if w is None else w
        lab_w = wv * label
        neg_w = wv - lab_w
        tp = pos @ lab_w
        fp = pos @ neg_w
        self._counts += (tp, fp, neg_w.sum() - fp, lab_w.sum() - tp)

    def _out(self, values):
        return float(values[0]) if self._single else [float(v) for v in values]

    def get_config(self):
        t = None if self._default_thresholds else (
            float(self.thresholds[0]) if self._single else self.thresholds.tolist())
        return {"thresholds": t, "class_id": self.class_id, "top_k": self.top_k, **super().get_config()}


def _sigmoid(z):
    """1 / (1 + e^-z) without overflow: exp(-log(1 + e^-z))."""
    z = np.asarray(z, dtype=np.result_type(z, np.float32))
    return np.exp(-np.logaddexp(0.0, -z))


def _divide_no_nan(a, b):
    return np.divide(a, b, out=np.zeros_like(a), where=b != 0)


class Precision(_Thresholded):
    """Precision tp / (tp + fp) of predictions thresholded at ``thresholds`` (0 when undefined).

    Parameters
    ----------
    thresholds : float or list of float, default=None
        None means 0.5. A list gives a list of results, one per threshold.
        With ``top_k`` and no thresholds, every kept prediction counts as positive.
    class_id : int, default=None
        Only this column of y_true / y_pred counts.
    name : str, default="precision"
    top_k : int, default=None
        Only the top_k largest predictions of each row (last axis) can be positive; the others
        count as -inf. Applied before class_id, as in Keras. Among equal values the lower index is
        kept.
    """

    def __init__(self, thresholds=None, class_id=None, name="precision", dtype=None, top_k=None):
        super().__init__(thresholds, class_id, name, dtype, top_k)

    def result(self):
        if self._single:
            tp, fp = self._one[0], self._one[1]
            return tp / (tp + fp) if tp + fp else 0.0
        tp, fp = self.true_positives, self.false_positives
        return self._out(_divide_no_nan(tp, tp + fp))


class Recall(_Thresholded):
    """Recall tp / (tp + fn) of predictions thresholded at ``thresholds`` (0 when undefined).

    Parameters are those of :class:`Precision`; name defaults to "recall".
    """

    def __init__(self, thresholds=None, class_id=None, name="recall", dtype=None, top_k=None):
        super().__init__(thresholds, class_id, name, dtype, top_k)

    def result(self):
        if self._single:
            tp, fn = self._one[0], self._one[3]
            return tp / (tp + fn) if tp + fn else 0.0
        tp, fn = self.true_positives, self.false_negatives
        return self._out(_divide_no_nan(tp, tp + fn))


class AUC(Metric):
    """Area under the ROC curve, approximated on a grid of thresholds as Keras does.

    Parameters
    ----------
    num_thresholds : int, default=200
        Thresholds t_0 = -eps, t_i = i / (num_thresholds - 1) for i = 1..num_thresholds-2,
        t_last = 1 + eps (eps = 1e-7), so predictions of exactly 0 and 1 are handled.
    curve : {"ROC", "PR"}, default="ROC"
        The receiver operating characteristic or the precision-recall curve (Keras's
        "PRGAIN" is not implemented).
    summation_method : {"interpolation", "minoring", "majoring"}, default="interpolation"
    name : str, default="auc"
    from_logits : bool, default=False
        Predictions are logits: sigmoid(y_pred) is bucketed.

    Notes
    -----
    A prediction p is positive at threshold t when p > t. With weighted counts tp, fp, tn, fn
    per threshold: x_i = fp_i / (fp_i + tn_i), y_i = tp_i / (tp_i + fn_i) (0 when undefined),
    AUC = sum_i (x_i - x_{i+1}) h_i, with h_i = (y_i + y_{i+1}) / 2 ("interpolation", the
    trapezoidal rule), min(y_i, y_{i+1}) ("minoring") or max ("majoring"). For curve="PR",
    x_i = recall tp_i / (tp_i + fn_i) and y_i = precision tp_i / (tp_i + fp_i) (0 when undefined);
    PR with "interpolation" follows Davis & Goadrich (2006) as Keras does: with P_i = tp_i + fp_i,
    dtp = tp_i - tp_{i+1}, s = dtp / max(P_i - P_{i+1}, 0) and c = tp_{i+1} - s P_{i+1}, each interval
    adds s (dtp + c log(P_i / P_{i+1})) / n_pos (log term 0 unless both P are > 0; 0 / 0 = 0).
    Predictions must lie in [0, 1] (after the sigmoid when from_logits). The update buckets each prediction once (O(n + num_thresholds)), like Keras's path
    for evenly spaced thresholds.
    """

    _direction = "up"
    sum_state = ("_pos_hist", "_all_hist")

    def __init__(self, num_thresholds=200, curve="ROC", summation_method="interpolation",
                 name="auc", dtype=None, from_logits=False):
        super().__init__(name=name, dtype=dtype)
        if isinstance(num_thresholds, bool) or not isinstance(num_thresholds, (int, np.integer)) \
                or num_thresholds <= 1:
            raise ValueError(f"AUC: num_thresholds must be an int > 1, got {num_thresholds!r}")
        if not isinstance(curve, str) or curve.upper() not in ("ROC", "PR"):
            raise ValueError(f"AUC: curve must be 'ROC' or 'PR', got {curve!r}")
        if not isinstance(from_logits, (bool, np.bool_)):
            raise TypeError(f"AUC: from_logits must be a bool, got {type(from_logits).__name__}")
        methods = ("interpolation", "minoring", "majoring")
        if summation_method not in methods:
            raise ValueError(f"AUC: summation_method must be one of {methods}, "
                             f"got {summation_method!r}")
        self.num_thresholds = int(num_thresholds)
        self.curve = curve.upper()
        self.from_logits = bool(from_logits)
        self.summation_method = summation_method
        inner = [(i + 1) / (self.num_thresholds - 1) for i in range(self.num_thresholds - 2)]
        self.thresholds = np.array([0.0 - _EPSILON] + inner + [1.0 + _EPSILON])
        self.reset_state()

    def reset_state(self):
        # weighted counts per bucket: bucket i holds the predictions p with
        # t_i < p <= t_{i+1}; counts above threshold i are sums over the buckets >= i
        self._pos_hist = np.zeros(self.num_thresholds)
        self._all_hist = np.zeros(self.num_thresholds)

    def update_state(self, y_true, y_pred, sample_weight=None):
        label, pred, w = _prep_confusion(y_true, y_pred, sample_weight, None, self.name)
        if pred.size == 0:
            return
        if self.from_logits:
            pred = _sigmoid(pred)
        lo, hi = pred.min(), pred.max()
        if not (lo >= 0.0 and hi <= 1.0):  # also catches NaN
            raise ValueError(f"{self.name}: predictions must be probabilities in [0, 1], got "
                             f"values in [{lo}, {hi}]")
        n = self.num_thresholds
        # p > t_i exactly for i <= ceil(p (n-1)) - 1 (and always for i = 0): bucket of p
        b = np.ceil(pred * (n - 1)).astype(np.intp)  # in the predictions' dtype, as Keras
        b -= 1
        np.maximum(b, 0, out=b)
        if w is None:
            self._pos_hist += np.bincount(b[label], minlength=n)
            self._all_hist += np.bincount(b, minlength=n)
        else:
            self._pos_hist += np.bincount(b, weights=w * label, minlength=n)
            self._all_hist += np.bincount(b, weights=w, minlength=n)

    # the four confusion counts per threshold, derived from the histograms
    @property
    def true_positives(self):
        return np.cumsum(self._pos_hist[::-1])[::-1]

    @property
    def false_positives(self):
        return np.cumsum((self._all_hist - self._pos_hist)[::-1])[::-1]

    @property
    def false_negatives(self):
        return self._pos_hist.sum() - self.true_positives

    @property
    def true_negatives(self):
        return (self._all_hist.sum() - self._pos_hist.sum()) - self.false_positives

    def result(self):
        tp, fp = self.true_positives, self.false_positives
        n_pos, n_neg = tp[0], fp[0]  # every prediction is above t_0 = -eps
        if self.curve == "PR" and self.summation_method == "interpolation":
            return self._interpolated_pr(tp, fp, n_pos)
        # tp + fn and fp + tn are the same at every threshold: the rates are plain scalings
        tpr = tp / n_pos if n_pos > 0 else np.zeros_like(tp)
        if self.curve == "PR":
            x, y = tpr, _divide_no_nan(tp, tp + fp)      # recall, precision
        else:
            x, y = (fp / n_neg if n_neg > 0 else np.zeros_like(fp)), tpr
        if self.summation_method == "interpolation":
            h = (y[:-1] + y[1:]) * 0.5
        elif self.summation_method == "minoring":
            h = np.minimum(y[:-1], y[1:])
        else:
            h = np.maximum(y[:-1], y[1:])
        return float(np.dot(x[:-1] - x[1:], h))

    @staticmethod
    def _interpolated_pr(tp, fp, n_pos):
        # precision varies linearly in P = tp + fp within each interval (Davis & Goadrich):
        # area = s (dtp + c log(P_a / P_b)) / n_pos with s = dtp / dP, c = tp_b - s P_b
        p = tp + fp
        dtp = tp[:-1] - tp[1:]
        s = _divide_no_nan(dtp, np.maximum(p[:-1] - p[1:], 0.0))
        c = tp[1:] - s * p[1:]
        both = (p[:-1] > 0) & (p[1:] > 0)
        ratio = np.ones_like(dtp)
        np.divide(p[:-1], p[1:], out=ratio, where=both)
        if n_pos <= 0:
            return 0.0
        return float(np.sum(s * (dtp + c * np.log(ratio))) / n_pos)

    def get_config(self):
        return {"num_thresholds": self.num_thresholds, "curve": self.curve,
                "summation_method": self.summation_method, "from_logits": self.from_logits,
                **super().get_config()}


# ---------------------------------------------------------------- lookup

_CLASSES = {c.__name__: c for c in (
    Mean, BinaryAccuracy, CategoricalAccuracy, SparseCategoricalAccuracy, MeanSquaredError,
    MeanAbsoluteError, Precision, Recall, AUC)}

_NAMES = {
    "binary_accuracy": BinaryAccuracy,
    "categorical_accuracy": CategoricalAccuracy,
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "mse": MeanSquaredError, "mean_squared_error": MeanSquaredError,
    "mae": MeanAbsoluteError, "mean_absolute_error": MeanAbsoluteError,
    "precision": Precision, "recall": Recall, "auc": AUC, "mean": Mean,
}

_ACCURACY_FOR_LOSS = {
    "binary_crossentropy": BinaryAccuracy,
    "categorical_crossentropy": CategoricalAccuracy,
    "sparse_categorical_crossentropy": SparseCategoricalAccuracy,
}


def _loss_name(loss):
    """A loss identifier as a snake_case name: 'binary_crossentropy' for the string, the function
    binary_crossentropy, or a BinaryCrossentropy instance."""
    if loss is None:
        return None
    if isinstance(loss, str):
        name = loss
    elif isinstance(loss, dict):
        name = loss.get("class_name", "")
    elif hasattr(loss, "__name__"):
        name = loss.__name__
    else:
        name = type(loss).__name__
    name = _snake(name) if any(c.isupper() for c in name) else name.lower()
    return {"bce": "binary_crossentropy", "cce": "categorical_crossentropy",
            "scce": "sparse_categorical_crossentropy"}.get(name, name)


def get(identifier, loss=None):
    """Resolve a metric identifier to a Metric instance.

    Parameters
    ----------
    identifier : str, dict, Metric or callable
        - ``'accuracy'`` / ``'acc'``: resolved from ``loss`` as Keras 2 did: binary_crossentropy ->
          BinaryAccuracy, categorical_crossentropy -> CategoricalAccuracy,
          sparse_categorical_crossentropy -> SparseCategoricalAccuracy. For any other loss (or none)
          the choice is made from the shapes of the first batch by Keras 3's rule: y_pred whose
          last axis is 1 -> binary; y_true of lower rank than y_pred or with last axis 1 -> sparse
          categorical; otherwise categorical. The metric is named after the identifier
          ("accuracy" or "acc"), as in Keras's History.
        - other names ('mse', 'mae', 'binary_accuracy', 'categorical_accuracy',
          'sparse_categorical_accuracy', 'precision', 'recall', 'auc', 'mean_squared_error',
          'mean_absolute_error') or class names ('AUC', ...): a new instance named by the string
          (the key it gets in History, as in Keras 3).
        - a dict ``{"class_name": ..., "config": {...}}`` (from :func:`serialize`).
        - a Metric instance: returned as is.
        - a callable ``fn(y_true, y_pred)`` returning per-sample values: wrapped in a
          MeanMetricWrapper named ``fn.__name__``.
    loss : str, Loss or callable, default=None
        The compiled loss, used only to resolve 'accuracy'.

    Raises
    ------
    ValueError
        For an unknown name, with the closest known names.
    """
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        key = identifier.strip()
        low = key.lower()
        if low in ("accuracy", "acc"):
            cls = _ACCURACY_FOR_LOSS.get(_loss_name(loss))
            return cls(name=key) if cls is not None else _AutoAccuracy(name=key)
        if low in _NAMES:
            return _NAMES[low](name=key)
        if key in _CLASSES:
            return _CLASSES[key](name=key)
        known = sorted(set(_NAMES) | set(_CLASSES) | {"accuracy", "acc"})
        close = difflib.get_close_matches(key, known, n=3, cutoff=0.5)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(f"Unknown metric {identifier!r}.{hint} Known metrics: {', '.join(known)}")
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return identifier()
    if callable(identifier):
        return MeanMetricWrapper(identifier)
    raise TypeError(f"metrics.get: expected a str, dict, Metric or callable, got "
                    f"{type(identifier).__name__}")


def serialize(metric):
    """``{"class_name": ..., "config": ...}`` for a built-in Metric (JSON-able)."""
    if type(metric).__name__ not in _CLASSES:
        raise ValueError(f"serialize: {type(metric).__name__} is not a built-in metric class")
    return {"class_name": type(metric).__name__, "config": metric.get_config()}


def deserialize(config):
    """Inverse of :func:`serialize` (closed list of classes)."""
    name = config.get("class_name") if isinstance(config, dict) else None
    if name not in _CLASSES:
        close = difflib.get_close_matches(str(name), sorted(_CLASSES), n=3, cutoff=0.5)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(f"Unknown metric class {name!r}.{hint}")
    return _CLASSES[name].from_config(dict(config.get("config", {})))
