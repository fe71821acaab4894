"""Metrics: Keras 3 values (docstring examples), float64 references from the definitions,
accumulation over batches, sample weights, name resolution and bad input."""
import json

import numpy as np
import pytest

from nncore import metrics as M


# ---------------------------------------------------------------- Keras documentation examples

def test_mean_keras_example():
    m = M.Mean()
    m.update_state([1, 3, 5, 7])
    assert m.result() == 4.0
    m.reset_state()
    m.update_state([1, 3, 5, 7], sample_weight=[1, 1, 0, 0])
    assert m.result() == 2.0


def test_binary_accuracy_keras_example():
    m = M.BinaryAccuracy()
    m.update_state([[1], [1], [0], [0]], [[0.98], [1], [0], [0.6]])
    assert m.result() == pytest.approx(0.75)
    m.reset_state()
    m.update_state([[1], [1], [0], [0]], [[0.98], [1], [0], [0.6]], sample_weight=[1, 0, 0, 1])
    assert m.result() == pytest.approx(0.5)


def test_categorical_accuracy_keras_example():
    y, p = [[0, 0, 1], [0, 1, 0]], [[0.1, 0.9, 0.8], [0.05, 0.95, 0]]
    m = M.CategoricalAccuracy()
    m.update_state(y, p)
    assert m.result() == pytest.approx(0.5)
    m.reset_state()
    m.update_state(y, p, sample_weight=[0.7, 0.3])
    assert m.result() == pytest.approx(0.3)


def test_sparse_categorical_accuracy_keras_example():
    p = [[0.1, 0.6, 0.3], [0.05, 0.95, 0]]
    for y in ([[2], [1]], [2, 1]):
        m = M.SparseCategoricalAccuracy()
        m.update_state(y, p)
        assert m.result() == pytest.approx(0.5)
        m.reset_state()
        m.update_state(y, p, sample_weight=[0.7, 0.3])
        assert m.result() == pytest.approx(0.3)


def test_auc_keras_example():
    # thresholds [-1e-7, 0.5, 1+1e-7]: tpr = [1, .5, 0], fpr = [1, 0, 0]
    # auc = (1 + .5)/2 * (1 - 0) + (.5 + 0)/2 * (0 - 0) = 0.75
    m = M.AUC(num_thresholds=3)
    m.update_state([0, 0, 1, 1], [0, 0.5, 0.3, 0.9])
    assert m.result() == pytest.approx(0.75)
    np.testing.assert_array_equal(m.true_positives, [2, 1, 0])
    np.testing.assert_array_equal(m.false_positives, [2, 0, 0])
    np.testing.assert_array_equal(m.true_negatives, [0, 2, 2])
    np.testing.assert_array_equal(m.false_negatives, [0, 1, 2])


def test_precision_recall_keras_examples():
    p = M.Precision()
    p.update_state([0, 1, 1, 1], [1, 0, 1, 1])
    assert p.result() == pytest.approx(2 / 3)
    p.reset_state()
    p.update_state([0, 1, 1, 1], [1, 0, 1, 1], sample_weight=[0, 0, 1, 0])
    assert p.result() == pytest.approx(1.0)
    r = M.Recall()
    r.update_state([0, 1, 1, 1], [1, 0, 1, 1])
    assert r.result() == pytest.approx(2 / 3)
    r.reset_state()
    r.update_state([0, 1, 1, 1], [1, 0, 1, 1], sample_weight=[0, 0, 1, 0])
    assert r.result() == pytest.approx(1.0)


# ---------------------------------------------------------------- float64 references

def _batches(n, size):
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mean_wrappers_match_reference_over_batches(weighted, dtype):
    rng = np.random.default_rng(0)
    n, k = 103, 4  # a prime, with a partial last batch
    y = rng.normal(size=(n, k)).astype(dtype)
    p = rng.normal(size=(n, k)).astype(dtype)
    w = rng.uniform(0, 2, size=n) if weighted else np.ones(n)
    yd, pd = y.astype(np.float64), p.astype(np.float64)
    refs = {
        "mse": ((yd - pd) ** 2).mean(axis=1),
        "mae": np.abs(yd - pd).mean(axis=1),
        "categorical_accuracy": (yd.argmax(1) == pd.argmax(1)).astype(float),
        "binary_accuracy": ((pd > 0.5) == yd).mean(axis=1),
    }
    for name, per_sample in refs.items():
        m = M.get(name)
        for s in _batches(n, 16):
            m.update_state(y[s], p[s], sample_weight=w[s] if weighted else None)
        expected = np.sum(w * per_sample) / np.sum(w)
        assert m.result() == pytest.approx(expected, rel=1e-12), name
        m.reset_state()
        assert m.result() == 0.0


def test_binary_accuracy_ranks_and_threshold():
    y = np.array([1, 0, 1, 0])
    p = np.array([[0.7], [0.2], [0.4], [0.8]])
    m = M.BinaryAccuracy()
    m.update_state(y, p)   # y (n,) is expanded to (n, 1): per-sample values
    assert m.result() == pytest.approx(0.5)
    assert m.count == 4
    m = M.BinaryAccuracy(threshold=0.3)
    m.update_state(y, p)
    assert m.result() == pytest.approx(0.75)
    with pytest.raises(ValueError, match="threshold"):
        M.BinaryAccuracy(threshold=1.5)


def test_sample_weight_column_shape():
    m = M.MeanSquaredError()
    y = np.array([[1.0], [2.0], [3.0]])
    p = np.array([[1.5], [2.0], [5.0]])
    m.update_state(y, p, sample_weight=np.array([[1.0], [0.0], [2.0]]))
    assert m.result() == pytest.approx((0.25 * 1 + 4.0 * 2) / 3)


def _confusion_ref(y, p, w, t):
    pos = p > t
    lab = y != 0
    return (np.sum(w * (pos & lab)), np.sum(w * (pos & ~lab)), np.sum(w * (~pos & ~lab)),
            np.sum(w * (~pos & lab)))


@pytest.mark.parametrize("weighted", [False, True])
def test_precision_recall_reference_and_thresholds(weighted):
    rng = np.random.default_rng(1)
    n = 97
    y = rng.integers(0, 2, size=(n, 1))
    p = rng.uniform(size=(n, 1))
    w = rng.uniform(0, 3, size=n) if weighted else np.ones(n)
    ts = [0.2, 0.5, 0.77]
    prec, rec = M.Precision(thresholds=ts), M.Recall(thresholds=ts)
    prec1 = M.Precision()
    for s in _batches(n, 10):
        sw = w[s] if weighted else None
        prec.update_state(y[s], p[s], sw)
        rec.update_state(y[s], p[s], sw)
        prec1.update_state(y[s], p[s], sw)
    for i, t in enumerate(ts):
        tp, fp, tn, fn = _confusion_ref(y[:, 0], p[:, 0], w, t)
        assert prec.result()[i] == pytest.approx(tp / (tp + fp), rel=1e-12)
        assert rec.result()[i] == pytest.approx(tp / (tp + fn), rel=1e-12)
        assert prec.true_negatives[i] == pytest.approx(tn)
    tp, fp, _, _ = _confusion_ref(y[:, 0], p[:, 0], w, 0.5)
    assert prec1.result() == pytest.approx(tp / (tp + fp), rel=1e-12)


def test_precision_class_id_and_empty():
    y = np.array([[1, 0], [0, 1], [0, 1]])
    p = np.array([[0.9, 0.8], [0.1, 0.7], [0.2, 0.3]])
    m = M.Precision(class_id=1)
    assert m.result() == 0.0  # nothing seen: 0, not NaN
    m.update_state(y, p)
    assert m.result() == pytest.approx(0.5)  # column 1: predicted pos rows 0, 1; true pos row 1
    r = M.Recall(class_id=1)
    r.update_state(y, p)
    assert r.result() == pytest.approx(0.5)


def _auc_reference(y, p, w, num_thresholds, method="interpolation"):
    """Direct Keras definition: explicit thresholds, explicit counts, Riemann sum."""
    eps = 1e-7
    ts = [0 - eps] + [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)] + [1 + eps]
    tpr, fpr = [], []
    for t in ts:
        tp, fp, tn, fn = _confusion_ref(y, p, w, t)
        tpr.append(tp / (tp + fn) if tp + fn else 0.0)
        fpr.append(fp / (fp + tn) if fp + tn else 0.0)
    total = 0.0
    for i in range(num_thresholds - 1):
        if method == "interpolation":
            h = (tpr[i] + tpr[i + 1]) / 2
        elif method == "minoring":
            h = min(tpr[i], tpr[i + 1])
        else:
            h = max(tpr[i], tpr[i + 1])
        total += (fpr[i] - fpr[i + 1]) * h
    return total


@pytest.mark.parametrize("method", ["interpolation", "minoring", "majoring"])
@pytest.mark.parametrize("num_thresholds", [2, 3, 7, 200])
def test_auc_matches_reference(method, num_thresholds):
    rng = np.random.default_rng(num_thresholds)
    n = 211
    y = rng.integers(0, 2, size=n)
    # include the awkward values: exactly 0, 1 and grid points
    p = rng.uniform(size=n)
    p[:5] = [0.0, 1.0, 0.5, 1 / (num_thresholds - 1), 2 / 3]
    w = rng.uniform(0, 2, size=n)
    m = M.AUC(num_thresholds=num_thresholds, summation_method=method)
    for s in _batches(n, 32):
        m.update_state(y[s], p[s], sample_weight=w[s])
    assert m.result() == pytest.approx(_auc_reference(y, p, w, num_thresholds, method), abs=1e-12)


def _pr_auc_reference(y, p, w, num_thresholds, method):
    """PR curve by Keras's definition: recall on x, precision on y; "interpolation" integrates a
    precision that is linear in the predicted-positive weight P inside each interval (Davis & Goadrich),
    here by a fine midpoint rule instead of the closed form."""
    eps = 1e-7
    ts = [0 - eps] + [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)] + [1 + eps]
    counts = [_confusion_ref(y, p, w, t) for t in ts]
    n_pos = counts[0][0] + counts[0][3]
    total = 0.0
    for (tp_a, fp_a, _, _), (tp_b, fp_b, _, _) in zip(counts[:-1], counts[1:]):
        if method != "interpolation":
            ya = tp_a / (tp_a + fp_a) if tp_a + fp_a else 0.0
            yb = tp_b / (tp_b + fp_b) if tp_b + fp_b else 0.0
            h = min(ya, yb) if method == "minoring" else max(ya, yb)
            total += (tp_a - tp_b) / n_pos * h
            continue
        pa, pb = tp_a + fp_a, tp_b + fp_b
        if tp_a == tp_b or pa <= pb:
            continue
        if pb == 0:      # P from 0: precision is the interval's constant slope
            total += (tp_a - tp_b) ** 2 / (pa - pb) / n_pos
            continue
        k = 2000         # d(recall) = slope dP / n_pos; precision(P) = (tp_b + slope (P - pb)) / P
        slope = (tp_a - tp_b) / (pa - pb)
        for j in range(k):
            pm = pb + (j + 0.5) * (pa - pb) / k
            total += (tp_b + slope * (pm - pb)) / pm * slope * (pa - pb) / k / n_pos
    return total


@pytest.mark.parametrize("method", ["interpolation", "minoring", "majoring"])
@pytest.mark.parametrize("num_thresholds", [2, 7, 50])
def test_pr_auc_matches_reference(method, num_thresholds):
    rng = np.random.default_rng(num_thresholds + 1)
    n = 97
    y = rng.integers(0, 2, size=n)
    p = np.clip(0.4 * y + 0.6 * rng.uniform(size=n), 0, 1)
    p[:3] = [0.0, 1.0, 0.5]
    w = rng.uniform(0, 2, size=n)
    m = M.AUC(num_thresholds=num_thresholds, curve="PR", summation_method=method)
    for s in _batches(n, 20):
        m.update_state(y[s], p[s], sample_weight=w[s])
    tol = 1e-6 if method == "interpolation" else 1e-12   # the reference integrates numerically
    assert m.result() == pytest.approx(_pr_auc_reference(y, p, w, num_thresholds, method), abs=tol)


def test_pr_auc_close_to_average_precision_and_from_logits():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, size=4000)
    z = 1.5 * (2 * y - 1) + rng.normal(size=4000) * 1.5
    p = 1 / (1 + np.exp(-z))
    m = M.AUC(num_thresholds=1000, curve="PR")
    m.update_state(y, p)
    assert m.result() == pytest.approx(sklearn_metrics.average_precision_score(y, p), abs=5e-3)
    ml = M.AUC(num_thresholds=1000, curve="PR", from_logits=True)
    ml.update_state(y, z)
    assert ml.result() == pytest.approx(m.result(), abs=1e-9)
    assert M.AUC.from_config(ml.get_config()).from_logits is True


def test_auc_close_to_exact_roc_auc():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, size=5000)
    p = np.clip(0.3 * y + rng.uniform(size=5000) * 0.7, 0, 1)
    m = M.AUC(num_thresholds=1000)
    m.update_state(y, p)
    assert m.result() == pytest.approx(sklearn_metrics.roc_auc_score(y, p), abs=2e-3)


def test_auc_rejects_non_probabilities():
    m = M.AUC()
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        m.update_state([0, 1], [0.5, 1.5])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        m.update_state([0, 1], [0.5, np.nan])
    with pytest.raises(ValueError, match="num_thresholds"):
        M.AUC(num_thresholds=1)
    with pytest.raises(ValueError, match="curve"):
        M.AUC(curve="PRGAIN")
    with pytest.raises(TypeError, match="from_logits"):
        M.AUC(from_logits="yes")


# ---------------------------------------------------------------- get()

@pytest.mark.parametrize("loss, y, p, kind", [
    ("binary_crossentropy", [[1], [0]], [[0.7], [0.6]], M.BinaryAccuracy),
    ("categorical_crossentropy", [[0, 1], [1, 0]], [[0.3, 0.7], [0.4, 0.6]], M.CategoricalAccuracy),
    ("sparse_categorical_crossentropy", [1, 0], [[0.3, 0.7], [0.4, 0.6]],
     M.SparseCategoricalAccuracy),
])
def test_accuracy_resolved_from_loss(loss, y, p, kind):
    for ident in ("accuracy", "acc"):
        m = M.get(ident, loss=loss)
        assert type(m) is kind and m.name == ident
        m.update_state(y, p)
        assert m.result() == pytest.approx(0.5)


def test_accuracy_resolved_from_loss_objects():
    class BinaryCrossentropy:  # a loss instance: resolved by its class name
        pass

    def sparse_categorical_crossentropy(y, p):
        return 0

    assert type(M.get("accuracy", loss=BinaryCrossentropy())) is M.BinaryAccuracy
    assert type(M.get("accuracy", loss=sparse_categorical_crossentropy)) is \
        M.SparseCategoricalAccuracy


@pytest.mark.parametrize("y, p, kind", [
    ([[1], [0]], [[0.7], [0.6]], "binary_accuracy"),
    ([1, 0], [[0.3, 0.7], [0.4, 0.6]], "sparse_categorical_accuracy"),
    ([[1], [0]], [[0.3, 0.7], [0.4, 0.6]], "sparse_categorical_accuracy"),
    ([[0, 1], [1, 0]], [[0.3, 0.7], [0.4, 0.6]], "categorical_accuracy"),
])
def test_accuracy_from_shapes_for_other_losses(y, p, kind):
    m = M.get("accuracy", loss="mse")
    m.update_state(y, p)
    assert m.kind == kind and m.result() == pytest.approx(0.5)
    m.update_state(y, p)  # the choice sticks
    assert m.result() == pytest.approx(0.5)


def test_get_names_instances_callables():
    assert type(M.get("mse")) is M.MeanSquaredError and M.get("mse").name == "mse"
    assert type(M.get("mean_absolute_error")) is M.MeanAbsoluteError
    assert type(M.get("auc")) is M.AUC and type(M.get("AUC")) is M.AUC
    assert M.get("AUC").name == "AUC" and M.get("acc", loss="bce").name == "acc"
    assert type(M.get("precision")) is M.Precision and type(M.get("recall")) is M.Recall
    inst = M.Recall()
    assert M.get(inst) is inst

    def my_metric(y_true, y_pred):
        return np.abs(np.asarray(y_true) - np.asarray(y_pred)).max(axis=-1)

    m = M.get(my_metric)
    assert m.name == "my_metric"
    m.update_state([[1.0, 2.0], [0.0, 0.0]], [[1.5, 2.0], [0.0, 3.0]])
    assert m.result() == pytest.approx((0.5 + 3.0) / 2)


def test_unknown_name_suggests_closest():
    with pytest.raises(ValueError, match="Did you mean 'accuracy'"):
        M.get("acuracy")
    with pytest.raises(ValueError, match="precision"):
        M.get("precison")
    with pytest.raises(TypeError):
        M.get(3.5)


def test_serialize_roundtrip():
    for m in (M.AUC(num_thresholds=50, name="a"), M.Precision(thresholds=[0.3, 0.6]),
              M.BinaryAccuracy(threshold=0.3), M.MeanSquaredError(name="m")):
        cfg = json.loads(json.dumps(M.serialize(m)))
        m2 = M.get(cfg)
        assert type(m2) is type(m) and m2.get_config() == m.get_config()


def test_bad_shapes_raise_named_errors():
    with pytest.raises(ValueError, match=r"mean_squared_error.*\(3, 2\).*\(3, 4\)"):
        M.MeanSquaredError().update_state(np.zeros((3, 2)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="categorical_accuracy"):
        M.CategoricalAccuracy().update_state(np.zeros((3, 2)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="sparse_categorical_accuracy"):
        M.SparseCategoricalAccuracy().update_state(np.zeros((4,)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="sample_weight"):
        M.MeanSquaredError().update_state(np.zeros((3, 2)), np.zeros((3, 2)),
                                          sample_weight=np.ones(5))
    with pytest.raises(TypeError, match="numeric"):
        M.MeanSquaredError().update_state(np.array(["a", "b"]), np.zeros(2))


def test_direction_attributes():
    assert M.BinaryAccuracy()._direction == "up" and M.AUC()._direction == "up"
    assert M.MeanSquaredError()._direction == "down"
    assert M.get("accuracy")._direction == "up"


def test_precision_recall_top_k_by_hand():
    # rows: top-2 of [0.9, 0.1, 0.5, 0.3] is {0, 2}; of [0.2, 0.8, 0.7, 0.6] is {1, 2}
    y = np.array([[1, 1, 0, 0], [0, 0, 1, 1]])
    p = np.array([[0.9, 0.1, 0.5, 0.3], [0.2, 0.8, 0.7, 0.6]])
    # kept and positive (threshold -inf): (0,0) tp, (0,2) fp, (1,1) fp, (1,2) tp -> precision 2/4
    # positives not kept: (0,1), (1,3) -> recall 2/4
    assert M.Precision(top_k=2).result() == 0.0
    m, r = M.Precision(top_k=2), M.Recall(top_k=2)
    m.update_state(y, p)
    r.update_state(y, p)
    assert m.result() == pytest.approx(0.5) and r.result() == pytest.approx(0.5)
    # with a threshold 0.6 as well: kept and > 0.6: (0,0) tp, (1,1) fp, (1,2) tp -> 2/3; recall 2/4
    m = M.Precision(top_k=2, thresholds=0.6)
    m.update_state(y, p)
    assert m.result() == pytest.approx(2 / 3)
    # class_id after top_k: column 2 kept in both rows; y = [0, 1] -> precision 1/2, recall 1/1
    m, r = M.Precision(top_k=2, class_id=2), M.Recall(top_k=2, class_id=2)
    m.update_state(y, p)
    r.update_state(y, p)
    assert m.result() == pytest.approx(0.5) and r.result() == pytest.approx(1.0)
    cfg = M.Precision(top_k=2).get_config()
    assert cfg["top_k"] == 2 and cfg["thresholds"] is None
    assert M.Precision.from_config(cfg).top_k == 2
    with pytest.raises(ValueError, match="top_k"):
        M.Recall(top_k=0)
    with pytest.raises(ValueError, match="thresholds"):
        M.Recall(thresholds=-np.inf)
