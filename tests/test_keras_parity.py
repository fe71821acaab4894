"""Parity with the real Keras 3 (torch backend): the same settings must give the same numbers.

Skipped when keras is not installed (it is an optional test dependency, in no extra).
Keras runs in float64 (keras.config.set_floatx) wherever it allows, so agreement is
checked to ~1e-12 unless a comment says why a wider tolerance is needed.
"""
from keras_parity_common import float64_both, keras, pytestmark  # noqa: F401 (skips without keras)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import nncore  # noqa: E402
from nncore import activations as nact, losses as nloss, metrics as nmet  # noqa: E402
from nncore import initializers as ninit, optimizers as nopt, regularizers as nreg  # noqa: E402
from nncore.optimizers import schedules as nsch  # noqa: E402
from nncore.layers import Dense, Input  # noqa: E402
from nncore.models import Sequential  # noqa: E402


kops = keras.ops
ksch = keras.optimizers.schedules


def kt(x, dtype="float64"):
    return kops.convert_to_tensor(np.asarray(x), dtype=dtype)


def kn(x):
    return np.asarray(kops.convert_to_numpy(x), dtype=np.float64)


# --------------------------------------------------------------------------- optimizers
# One configuration per option of each optimizer (a full cross product would cost seconds of Keras
# overhead for no new code path: clipping and weight decay are shared by all rules in both libraries).
_OPT_CASES = [
    ("SGD", {}), ("SGD", {"momentum": 0.9}), ("SGD", {"momentum": 0.9, "nesterov": True}),
    ("SGD", {"momentum": 0.5, "weight_decay": 0.01}), ("SGD", {"clipvalue": 0.3}),
    ("SGD", {"momentum": 0.9, "clipnorm": 0.5}), ("SGD", {"global_clipnorm": 0.7}),
    ("Adagrad", {"initial_accumulator_value": 0.3, "epsilon": 1e-6}), ("Adagrad", {"weight_decay": 0.02}),
    ("RMSprop", {}), ("RMSprop", {"centered": True}), ("RMSprop", {"momentum": 0.5}),
    ("RMSprop", {"momentum": 0.5, "centered": True, "rho": 0.8, "clipvalue": 0.4}),
    ("Adam", {}), ("Adam", {"amsgrad": True}), ("Adam", {"beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-4}),
    ("Adam", {"weight_decay": 0.01, "global_clipnorm": 0.7}), ("Adam", {"amsgrad": True, "clipnorm": 0.5}),
    ("AdamW", {}), ("AdamW", {"weight_decay": 0.05, "amsgrad": True}),
    ("Adadelta", {}), ("Adadelta", {"learning_rate": 1.0, "rho": 0.9}),
    ("Adamax", {}), ("Adamax", {"weight_decay": 0.01, "clipvalue": 0.2}),
    ("Nadam", {}), ("Nadam", {"beta_1": 0.8, "clipnorm": 0.5}),
    ("Ftrl", {}),
    ("Ftrl", {"learning_rate": 0.05, "learning_rate_power": -0.3, "l1_regularization_strength": 0.01,
              "l2_regularization_strength": 0.02, "l2_shrinkage_regularization_strength": 0.01, "beta": 0.1}),
]


def _run_optimizers(kopt, nopt_, steps=50, seed=0):
    rng = np.random.default_rng(seed)
    shapes = [(3, 4), (5,), (1,)]
    w0 = [rng.normal(size=s) for s in shapes]
    kv = [keras.Variable(w.copy(), dtype="float64") for w in w0]
    nv = [w.copy() for w in w0]
    for i in range(steps):
        # every 7th step is large so that clipping engages; a zero gradient on step 3 (clipnorm 0/0)
        g = [rng.normal(size=s) * (4.0 if i % 7 == 0 else 1.0) * (i != 3) for s in shapes]
        kopt.apply_gradients([(kt(x), v) for x, v in zip(g, kv)])
        nopt_.apply_gradients([(x.copy(), v) for x, v in zip(g, nv)])
    assert nopt_.iterations == int(kn(kopt.iterations)) == steps
    return [kn(v) for v in kv], nv


def _clip_tol(kw):
    # Keras's clipnorm/global_clipnorm in float64 promote max(norm, c) / min(1/N, 1/c) with a Python
    # float to float32 on the torch backend (keras.ops.maximum(float64 tensor, 0.5).dtype is float32),
    # so its clipped gradient carries a float32 rounding (~3e-8 relative). That is Keras's rounding,
    # not a different rule: nncore keeps the norm in double.
    return 1e-6 if ("clipnorm" in kw or "global_clipnorm" in kw) else 1e-11


@pytest.mark.parametrize("name,kw", _OPT_CASES, ids=[f"{n}-{'-'.join(k) or 'default'}" for n, k in _OPT_CASES])
def test_optimizer_matches_keras(name, kw):
    kw_k = dict(kw)
    kw_k.setdefault("learning_rate", 0.01 if name != "Adadelta" else 0.001)
    kv, nv = _run_optimizers(getattr(keras.optimizers, name)(**kw_k), getattr(nopt, name)(**kw_k))
    tol = _clip_tol(kw)
    for a, b in zip(kv, nv):
        np.testing.assert_allclose(b, a, rtol=tol, atol=tol)


@pytest.mark.parametrize("name", ["SGD", "Adagrad", "RMSprop", "Adam", "AdamW", "Adadelta", "Adamax", "Nadam",
                                  "Ftrl"])
def test_optimizer_defaults_match_keras(name):
    kc = getattr(keras.optimizers, name)().get_config()
    nc = getattr(nopt, name)().get_config()
    for key, val in kc.items():
        if key in ("name", "use_ema", "ema_momentum", "ema_overwrite_frequency", "loss_scale_factor",
                   "gradient_accumulation_steps"):
            continue
        assert key in nc, f"{name}: Keras config key {key!r} missing from nncore's get_config"
        if isinstance(val, float):
            assert nc[key] == pytest.approx(val, rel=1e-7), key
        else:
            assert nc[key] == val, key


_SCHED_PAIRS = [
    (lambda m: m.ExponentialDecay(0.1, 10, 0.5), "exp"),
    (lambda m: m.ExponentialDecay(0.1, 10, 0.5, staircase=True), "exp-stair"),
    (lambda m: m.InverseTimeDecay(0.1, 10, 0.5), "inv"),
    (lambda m: m.InverseTimeDecay(0.1, 10, 0.5, staircase=True), "inv-stair"),
    (lambda m: m.PiecewiseConstantDecay([10, 20], [0.1, 0.05, 0.01]), "piecewise"),
    (lambda m: m.PolynomialDecay(0.1, 20, 0.01, power=2.0), "poly"),
    (lambda m: m.PolynomialDecay(0.1, 20, 0.01, power=0.5, cycle=True), "poly-cycle"),
    (lambda m: m.CosineDecay(0.1, 30, alpha=0.1), "cos"),
    (lambda m: m.CosineDecay(0.1, 30, alpha=0.1, warmup_target=0.2, warmup_steps=10), "cos-warmup"),
    (lambda m: m.CosineDecayRestarts(0.1, 10, t_mul=2.0, m_mul=0.5, alpha=0.05), "cos-restarts"),
    (lambda m: m.CosineDecayRestarts(0.1, 7, t_mul=1.0, m_mul=1.0), "cos-restarts-tmul1"),
]


@pytest.mark.parametrize("make", [p[0] for p in _SCHED_PAIRS], ids=[p[1] for p in _SCHED_PAIRS])
def test_schedule_values_match_keras(make):
    ks, ns = make(ksch), make(nsch)
    # every step up to 80 covers each boundary (10, 20, 30, 40, 70), the step before and after it,
    # the end of decay_steps and the far side of a cycle
    for step in list(range(0, 81)) + [150, 1000]:
        assert float(ns(step)) == pytest.approx(float(kn(ks(step))), rel=1e-6, abs=1e-12), step


def test_schedule_drives_optimizer_like_keras():
    kv, nv = _run_optimizers(keras.optimizers.SGD(ksch.PiecewiseConstantDecay([10, 20], [0.1, 0.05, 0.01]),
                                                  momentum=0.9),
                             nopt.SGD(nsch.PiecewiseConstantDecay([10, 20], [0.1, 0.05, 0.01]), momentum=0.9))
    for a, b in zip(kv, nv):
        np.testing.assert_allclose(b, a, rtol=1e-11, atol=1e-11)
    kv, nv = _run_optimizers(keras.optimizers.Adam(ksch.CosineDecay(0.05, 30, alpha=0.1, warmup_target=0.1,
                                                                    warmup_steps=10)),
                             nopt.Adam(nsch.CosineDecay(0.05, 30, alpha=0.1, warmup_target=0.1,
                                                        warmup_steps=10)))
    for a, b in zip(kv, nv):
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-11)


# --------------------------------------------------------------------------- activations
_X = np.concatenate([np.linspace(-40, 40, 161), [-800.0, -3.0, -1e-9, 0.0, 1e-9, 3.0, 800.0, 2.5, -2.5]])

_ACTS = [
    ("relu", {}), ("sigmoid", {}), ("tanh", {}), ("leaky_relu", {}), ("leaky_relu", {"negative_slope": 0.05}),
    ("elu", {}), ("elu", {"alpha": 0.7}), ("selu", {}), ("gelu", {}), ("gelu", {"approximate": True}),
    ("hard_sigmoid", {}), ("softplus", {}), ("swish", {}), ("silu", {}), ("linear", {}),
]


@pytest.mark.parametrize("name,kw", _ACTS, ids=[n + ("-" + "-".join(map(str, k.values())) if k else "")
                                                for n, k in _ACTS])
def test_activation_matches_keras(name, kw):
    want = kn(getattr(keras.activations, name)(kt(_X), **kw))
    got = getattr(nact, name)(_X.copy(), **kw)
    # softplus: Keras's torch backend calls torch.nn.functional.softplus, whose default threshold 20
    # returns x itself for x > 20 (the true value is x + log1p(e^-x), 2e-9 more at x = 20): nncore keeps
    # the exact value, hence rtol 1e-10 there (6e-11 relative at x = 20.5).
    # gelu(approximate=True) far left: 0.5 x (1 + tanh(.)) cancels; both are 0 up to 1e-16 absolute.
    np.testing.assert_allclose(got, want, rtol=1e-10 if name == "softplus" else 1e-12, atol=1e-15)


def test_softmax_matches_keras():
    x = np.random.default_rng(1).normal(size=(4, 3, 5)) * 30
    x[0, 0] = [1000, -1000, 0, 5, 1000]
    for axis in (-1, 0, 1):
        np.testing.assert_allclose(nact.softmax(x, axis=axis), kn(keras.activations.softmax(kt(x), axis=axis)),
                                   rtol=1e-12, atol=1e-300)


# --------------------------------------------------------------------------- losses
def _probs(rng, n, k, extreme=True):
    p = rng.uniform(0.01, 1, size=(n, k))
    p /= p.sum(axis=1, keepdims=True)
    if extreme:     # exact 0 and 1 and values inside the clip band [1e-7, 1 - 1e-7]
        p[0] = 0.0
        p[0, 0] = 1.0
        p[1, :2] = [1e-9, 1 - 1e-9] if k > 1 else [1e-9]
    return p


def _loss_cases():
    rng = np.random.default_rng(2)
    n, k = 9, 4
    yb = rng.integers(0, 2, size=(n, k)).astype(float)
    labels = rng.integers(0, k, n)
    yc = np.eye(k)[labels]
    pb = rng.uniform(size=(n, k))
    pb[0] = [0.0, 1.0, 1e-9, 1 - 1e-9]
    z = rng.normal(size=(n, k)) * 8
    z[0] = [60.0, -60.0, 0.0, 800.0]
    pc = _probs(rng, n, k)
    pc_unnorm = pc * rng.uniform(0.5, 2.0, size=(n, 1))   # Keras renormalises the probabilities
    yr = rng.normal(size=(n, k))
    return [
        ("MeanSquaredError", {}, yr, z),
        ("MeanAbsoluteError", {}, yr, z),
        ("BinaryCrossentropy", {}, yb, pb),
        ("BinaryCrossentropy", {"from_logits": True}, yb, z),
        ("BinaryCrossentropy", {"label_smoothing": 0.2}, yb, pb),
        ("BinaryCrossentropy", {"from_logits": True, "label_smoothing": 0.1}, yb, z),
        ("CategoricalCrossentropy", {}, yc, pc),
        ("CategoricalCrossentropy", {}, yc, pc_unnorm),
        ("CategoricalCrossentropy", {"from_logits": True}, yc, z),
        ("CategoricalCrossentropy", {"label_smoothing": 0.2}, yc, pc),
        ("CategoricalCrossentropy", {"from_logits": True, "label_smoothing": 0.1}, yc, z),
        ("SparseCategoricalCrossentropy", {}, labels, pc),
        ("SparseCategoricalCrossentropy", {"from_logits": True}, labels, z),
        ("Huber", {}, yr, z / 4),
        ("Huber", {"delta": 0.5}, yr, z / 4),
        ("Hinge", {}, yb, z / 8),
        ("Hinge", {}, 2 * yb - 1, z / 8),
    ]


_LOSSES = _loss_cases()


_LOSS_FN = {"MeanSquaredError": "mean_squared_error", "MeanAbsoluteError": "mean_absolute_error",
            "BinaryCrossentropy": "binary_crossentropy", "CategoricalCrossentropy": "categorical_crossentropy",
            "SparseCategoricalCrossentropy": "sparse_categorical_crossentropy", "Huber": "huber",
            "Hinge": "hinge"}


def _keras_per_sample(name, kw, y, p):
    """Keras's per-sample losses (its functional form, before the reduction)."""
    return getattr(keras.losses, _LOSS_FN[name])(kt(y), p if hasattr(p, "grad") else kt(p), **kw)


# Keras 3.15's torch backend cannot compute in float64 throughout: its dtypes.result_type answers
# float32 for a torch.float64 dtype object, so keras.ops.mean (the mean over the last axis of every
# loss) and keras.ops.matmul (every Dense forward) round float64 inputs to float32, and
# Loss.__call__'s reduction calls keras.ops.divide_no_nan, whose result_type(float64, float64, float)
# is float32 as well. Keras's losses (and so its training
# gradients, History and metrics built on them) carry float32 rounding even under floatx float64, and
# are compared at that precision here; nncore's float64 formulas are checked to 1e-12 against the
# NumPy oracle in tests/reference.py.
_F32 = dict(rel=5e-7, abs=1e-9)


@pytest.mark.parametrize("case", range(len(_LOSSES)),
                         ids=[f"{c[0]}-{'-'.join(f'{k}={v}' for k, v in c[1].items()) or 'default'}-{i}"
                              for i, c in enumerate(_LOSSES)])
@pytest.mark.parametrize("weighted", [False, True])
def test_loss_value_matches_keras(case, weighted):
    name, kw, y, p = _LOSSES[case]
    w = np.random.default_rng(3).uniform(0, 2, size=len(p)) if weighted else None
    if weighted:
        w[2] = 0.0
    want = float(kn(getattr(keras.losses, name)(**kw)(kt(y), kt(p), sample_weight=None if w is None else kt(w))))
    got = float(getattr(nloss, name)(**kw)(y, p, sample_weight=w))
    assert got == pytest.approx(want, **_F32)
    per = kn(_keras_per_sample(name, kw, y, p))
    np.testing.assert_allclose(getattr(nloss, name)(**kw).call(y, p), per, rtol=_F32["rel"], atol=_F32["abs"])


@pytest.mark.parametrize("name,kw", [("BinaryCrossentropy", {}), ("CategoricalCrossentropy", {}),
                                     ("BinaryCrossentropy", {"from_logits": True})])
def test_crossentropy_clips_extremes_like_keras(name, kw):
    # predictions exactly 0 and 1 on the wrong class: the clip at 1e-7 bounds the loss at -log(1e-7)
    y = np.array([[1.0, 0.0], [0.0, 1.0]])
    p = np.array([[0.0, 1.0], [1.0, 0.0]]) * (1000.0 if kw else 1.0)
    want = float(kn(getattr(keras.losses, name)(**kw)(kt(y), kt(p))))
    got = float(getattr(nloss, name)(**kw)(y, p))
    assert np.isfinite(got)
    assert got == pytest.approx(want, **_F32)
    per = kn(_keras_per_sample(name, kw, y, p))
    np.testing.assert_allclose(getattr(nloss, name)(**kw).call(y, p), per, rtol=_F32["rel"])


def _keras_grad(name, kw, y, p, w):
    import torch
    pt = torch.tensor(p, dtype=torch.float64, requires_grad=True)
    per = _keras_per_sample(name, kw, y, pt)      # the mean over the last axis rounds to float32 (_F32)
    loss = (per * torch.tensor(w, dtype=torch.float64)).sum() / per.shape[0]
    loss.backward()
    return pt.grad.numpy()


@pytest.mark.parametrize("case", [0, 1, 3, 8, 12, 14], ids=lambda i: _LOSSES[i][0] + str(i))
def test_loss_gradient_matches_keras_autograd(case):
    # the gradient nncore trains with (Loss._grad, used by fit) against torch autograd through Keras's loss
    name, kw, y, p = _LOSSES[case]
    n = len(p)
    w = np.random.default_rng(4).uniform(0.1, 2, size=n)
    lossobj = getattr(nloss, name)(**kw)
    yy = lossobj._prepare(y, p.shape, np.float64)
    d = np.zeros_like(p)
    lossobj._grad(np.ascontiguousarray(p), yy, w, d, 1.0 / n, 1)
    np.testing.assert_allclose(d, _keras_grad(name, kw, y, p, w), rtol=_F32["rel"], atol=1e-12)


# --------------------------------------------------------------------------- metrics
def _update_both(km, nm, batches):
    for y, p, w in batches:
        km.update_state(kt(y), kt(p), sample_weight=None if w is None else kt(w))
        nm.update_state(y, p, sample_weight=w)
    return kn(km.result()), np.asarray(nm.result(), dtype=np.float64)


def _metric_batches(kind, weighted, seed=5):
    rng = np.random.default_rng(seed)
    out = []
    for n in (7, 1, 12):       # several update_state calls, one of a single sample
        w = rng.uniform(0, 2, size=n) if weighted else None
        if kind == "binary":
            y = rng.integers(0, 2, size=(n, 1)).astype(float)
            p = rng.uniform(size=(n, 1))
            p[0, 0] = 0.5      # exactly at the threshold
        elif kind == "multilabel":
            y = rng.integers(0, 2, size=(n, 3)).astype(float)
            p = rng.uniform(size=(n, 3))
            p[0] = [0.0, 1.0, 0.5]
        elif kind == "categorical":
            lab = rng.integers(0, 4, n)
            y = np.eye(4)[lab]
            p = _probs(rng, n, 4, extreme=False)
        elif kind == "sparse":
            y = rng.integers(0, 4, n).astype(float)
            p = _probs(rng, n, 4, extreme=False)
        elif kind == "logits":
            y = rng.integers(0, 2, size=(n, 2)).astype(float)
            p = rng.normal(size=(n, 2)) * 3
        else:                  # regression
            y = rng.normal(size=(n, 2))
            p = rng.normal(size=(n, 2))
        out.append((y, p, w))
    return out


_METRICS = [
    ("BinaryAccuracy", {}, "binary"), ("BinaryAccuracy", {"threshold": 0.3}, "multilabel"),
    ("CategoricalAccuracy", {}, "categorical"), ("SparseCategoricalAccuracy", {}, "sparse"),
    ("MeanSquaredError", {}, "regression"), ("MeanAbsoluteError", {}, "regression"),
    ("Precision", {}, "binary"), ("Precision", {}, "multilabel"), ("Precision", {"thresholds": 0.3}, "multilabel"),
    ("Precision", {"thresholds": [0.2, 0.5, 0.8]}, "binary"), ("Precision", {"class_id": 1}, "multilabel"),
    ("Recall", {}, "binary"), ("Recall", {}, "multilabel"), ("Recall", {"thresholds": [0.2, 0.5, 0.8]}, "binary"),
    ("Recall", {"class_id": 2}, "multilabel"),
    ("Precision", {"top_k": 2}, "multilabel"), ("Recall", {"top_k": 1}, "multilabel"),
    ("Precision", {"top_k": 2, "thresholds": 0.4}, "multilabel"), ("Recall", {"top_k": 2, "class_id": 1}, "multilabel"),
    ("AUC", {}, "binary"), ("AUC", {}, "multilabel"), ("AUC", {"num_thresholds": 7}, "binary"),
    ("AUC", {"summation_method": "minoring"}, "binary"), ("AUC", {"summation_method": "majoring"}, "multilabel"),
    ("AUC", {"curve": "PR"}, "binary"), ("AUC", {"curve": "PR", "num_thresholds": 9}, "multilabel"),
    ("AUC", {"curve": "PR", "summation_method": "minoring"}, "multilabel"),
    ("AUC", {"curve": "PR", "summation_method": "majoring"}, "binary"),
    ("AUC", {"from_logits": True}, "logits"), ("AUC", {"curve": "PR", "from_logits": True}, "logits"),
]


@pytest.mark.parametrize("name,kw,kind", _METRICS,
                         ids=[f"{n}-{'-'.join(f'{k}={v}' for k, v in kw.items()) or 'default'}-{d}"
                              for n, kw, d in _METRICS])
@pytest.mark.parametrize("weighted", [False, True])
def test_metric_matches_keras(name, kw, kind, weighted):
    km, nm = getattr(keras.metrics, name)(**kw), getattr(nmet, name)(**kw)
    batches = _metric_batches(kind, weighted)
    want, got = _update_both(km, nm, batches)
    # (several thresholds: the result is a vector in both). Keras's mean metrics accumulate through
    # the same float32-rounding ops as its losses (see _F32).
    # PR "interpolation" goes through Keras's float32 divide_no_nan into sums of s (dtp + c log(.)) whose
    # terms cancel, so its float32 rounding shows at up to ~1e-5 there (nncore agrees with a float64
    # reference in test_metrics.py to 1e-9)
    rtol = 3e-5 if kw.get("curve") == "PR" else _F32["rel"]
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=rtol, atol=_F32["abs"])
    km.reset_state()
    nm.reset_state()
    want2, got2 = _update_both(km, nm, batches[:1])
    np.testing.assert_allclose(got2, want2, rtol=rtol, atol=_F32["abs"])


# --------------------------------------------------------------------------- initializers
_INITS = [
    ("GlorotUniform", {}), ("GlorotNormal", {}), ("HeUniform", {}), ("HeNormal", {}), ("LecunUniform", {}),
    ("LecunNormal", {}), ("RandomUniform", {"minval": -0.3, "maxval": 0.1}),
    ("RandomNormal", {"mean": 0.2, "stddev": 0.3}), ("TruncatedNormal", {"mean": -0.1, "stddev": 0.2}),
    ("VarianceScaling", {"scale": 2.0, "mode": "fan_avg", "distribution": "uniform"}),
    ("VarianceScaling", {"scale": 0.5, "mode": "fan_out", "distribution": "untruncated_normal"}),
    ("Orthogonal", {"gain": 1.5}),
    ("GlorotUniform", {}, (3, 3, 40, 50)), ("HeNormal", {}, (5, 30, 40)), ("Orthogonal", {}, (60, 150)),
]


@pytest.mark.parametrize("case", _INITS, ids=[c[0] + "-" + "-".join(map(str, c[1].values())) + (
    "-" + "x".join(map(str, c[2])) if len(c) > 2 else "") for c in _INITS])
def test_initializer_statistics_match_keras(case):
    # conv-shaped kernels: the fans multiply by the receptive field; wide orthogonal: orthonormal rows
    name, kw = case[:2]
    # values differ (different RNGs), so compare the distributions: mean, std, range and the
    # quartiles on 120 000 draws (8 000 for Orthogonal); tolerances ~6 standard errors
    shape = case[2] if len(case) > 2 else (300, 400) if name != "Orthogonal" else (100, 80)  # QR costs
    a = kn(getattr(keras.initializers, name)(seed=1, **kw)(shape, dtype="float64"))
    b = getattr(ninit, name)(seed=1, **kw)(shape, dtype="float64")
    assert b.shape == a.shape and b.dtype == np.float64
    sd = a.std()
    assert b.mean() == pytest.approx(a.mean(), abs=6 * sd / np.sqrt(a.size) * 1.5 + 1e-12)
    assert b.std() == pytest.approx(sd, rel=0.02)
    if name in ("GlorotUniform", "HeUniform", "LecunUniform", "RandomUniform") or kw.get("distribution") == "uniform":
        # bounded: both fill the same interval (the extremes of 120 000 draws sit within 1e-3 of it)
        assert b.min() == pytest.approx(a.min(), abs=2e-3 * sd * 10)
        assert b.max() == pytest.approx(a.max(), abs=2e-3 * sd * 10)
    elif "Normal" in name and name != "RandomNormal" or name == "TruncatedNormal":
        # truncated at 2 standard deviations of the untruncated normal: same cut in both
        assert b.min() >= a.min() - 0.05 * sd and b.max() <= a.max() + 0.05 * sd
    np.testing.assert_allclose(np.quantile(b, [0.1, 0.25, 0.5, 0.75, 0.9]),
                               np.quantile(a, [0.1, 0.25, 0.5, 0.75, 0.9]),
                               atol=(0.03 if a.size > 100000 else 0.08) * sd)
    if name == "Orthogonal":
        q = b.T @ b if shape[0] >= shape[1] else b @ b.T
        gain = kw.get("gain", 1.0)
        np.testing.assert_allclose(q, gain ** 2 * np.eye(len(q)), atol=1e-10)


# --------------------------------------------------------------------------- a whole fit
def _twin_models(d, k, out, reg=None, seed=0):
    """The same MLP in Keras and nncore, with nncore's initial weights copied into Keras."""
    def kreg():
        return None if reg is None else keras.regularizers.L2(reg)

    def nreg_():
        return None if reg is None else nreg.L2(reg)

    km = keras.Sequential([keras.Input(shape=(d,)), keras.layers.Dense(6, activation="tanh", kernel_regularizer=kreg()),
                           keras.layers.Dropout(0.0), keras.layers.Dense(5, activation="relu", bias_regularizer=kreg()),
                           keras.layers.Dense(k, activation=out)])
    nncore.set_seed(seed)
    nm = Sequential([Input(shape=(d,)), Dense(6, activation="tanh", kernel_regularizer=nreg_()),
                     nncore.layers.Dropout(0.0), Dense(5, activation="relu", bias_regularizer=nreg_()),
                     Dense(k, activation=out)])
    w = [np.random.default_rng(seed + 1).normal(scale=0.6, size=v.shape) for v in km.get_weights()]
    km.set_weights(w)
    nm.set_weights(w)
    return km, nm


def _fit_case(km, nm, x, y, opt, loss, metrics, fit_kw, eval_kw=None):
    km.compile(optimizer=getattr(keras.optimizers, opt[0])(**opt[1]), loss=loss, metrics=list(metrics))
    nm.compile(optimizer=getattr(nopt, opt[0])(**opt[1]), loss=loss, metrics=list(metrics))
    hk = km.fit(x, y, shuffle=False, verbose=0, **fit_kw).history
    hn = nm.fit(x, y, shuffle=False, verbose=0, **fit_kw).history
    return hk, hn


def _assert_history(hk, hn, rtol=1e-9):
    assert sorted(hn) == sorted(hk)
    for key in hk:
        # Keras's metric trackers are float32 even under floatx float64 (its loss tracker too)
        np.testing.assert_allclose(hn[key], hk[key], rtol=max(rtol, 1e-6), atol=1e-7, err_msg=key)


def _data(n, d, k, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    labels = rng.integers(0, k, n)
    return x, labels


_FIT_CASES = {
    # name: (output activation, loss, metrics, optimizer, target kind, fit keywords, L2 factor)
    "softmax-cce-sgd-valsplit": ("softmax", "categorical_crossentropy", ["accuracy"], ("SGD", {"learning_rate": 0.1,
                                 "momentum": 0.9}), "onehot", {"batch_size": 7, "epochs": 3,
                                 "validation_split": 0.2}, None),
    "softmax-sparse-adam-classweight": ("softmax", "sparse_categorical_crossentropy", ["accuracy"],
                                        ("Adam", {"learning_rate": 0.01}), "sparse",
                                        {"batch_size": 8, "epochs": 3, "class_weight": {0: 1.0, 1: 2.5, 2: 0.5}},
                                        None),
    "sigmoid-bce-rmsprop-sampleweight-l2": ("sigmoid", "binary_crossentropy", ["accuracy", "precision"],
                                            ("RMSprop", {"learning_rate": 0.01}), "binary",
                                            {"batch_size": 11, "epochs": 3, "validation_split": 0.25,
                                             "sample_weight": "random"}, 0.01),
    "linear-mse-adamw-l2": ("linear", "mse", ["mae"], ("AdamW", {"learning_rate": 0.01}), "regression",
                            {"batch_size": 16, "epochs": 3}, 0.02),
}


@pytest.mark.parametrize("case", sorted(_FIT_CASES))
def test_fit_matches_keras(case):
    out, loss, metrics, opt, target, fit_kw, reg = _FIT_CASES[case]
    n, d = 45, 4
    k = 1 if target in ("binary", "regression") else 3
    x, labels = _data(n, d, 3)
    y = {"onehot": np.eye(3)[labels], "sparse": labels, "binary": (labels > 0).astype(float)[:, None],
         "regression": np.sin(x[:, :1]) + 0.1 * x[:, 1:2]}[target]
    fit_kw = dict(fit_kw)
    if fit_kw.get("sample_weight") == "random":
        fit_kw["sample_weight"] = np.random.default_rng(9).uniform(0.2, 2.0, size=n)
    km, nm = _twin_models(d, k, out, reg=reg)
    hk, hn = _fit_case(km, nm, x, y, opt, loss, metrics, fit_kw)
    _assert_history(hk, hn)
    # Keras's float32 loss reduction (see _F32) scales each step's gradient with a float32 rounding,
    # so after 12-21 steps the weights agree to ~1e-7 relative, not to float64 precision
    for a, b in zip(km.get_weights(), nm.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7)
    sw = np.random.default_rng(10).uniform(0.2, 2.0, size=n)
    ek = km.evaluate(x, y, batch_size=13, sample_weight=sw, verbose=0, return_dict=True)
    en = nm.evaluate(x, y, batch_size=13, sample_weight=sw, verbose=0, return_dict=True)
    assert sorted(en) == sorted(ek)
    for key in ek:
        assert en[key] == pytest.approx(ek[key], rel=1e-6, abs=1e-7), key
    np.testing.assert_allclose(nm.predict(x, batch_size=13, verbose=0), km.predict(x, batch_size=13, verbose=0),
                               rtol=1e-6, atol=1e-7)
    # with the same weights the forward passes agree to Keras's float32 matmul (see _F32)
    km.set_weights(nm.get_weights())
    np.testing.assert_allclose(nm.predict(x, batch_size=13, verbose=0), km.predict(x, batch_size=13, verbose=0),
                               rtol=2e-6, atol=2e-7)


# --------------------------------------------------------------------------- callbacks
_VAL = [1.0, 0.9, 0.95, 0.9, 0.89995, 0.7, 0.71, 0.72, 0.69, 0.8, 0.8, 0.85, 0.6, 0.61, 0.62, 0.63, 0.64, 0.65]


def _callback_twins():
    km, nm = _twin_models(3, 1, "sigmoid")
    km.compile(optimizer=keras.optimizers.SGD(0.1), loss="binary_crossentropy", metrics=["accuracy"])
    nm.compile(optimizer=nopt.SGD(0.1), loss="binary_crossentropy", metrics=["accuracy"])
    x = np.random.default_rng(0).normal(size=(4, 3))
    km.evaluate(x, (x[:, 0] > 0) * 1.0, verbose=0)   # builds Keras's metrics: its mode="auto" reads them
    return km, nm


def _drive(cb_k, cb_n, km, nm, values, key):
    """Feed the same epoch-end logs to a Keras and an nncore callback; return what each did per epoch."""
    cb_k.set_model(km)
    cb_n.set_model(nm)
    cb_k.on_train_begin({})
    cb_n.on_train_begin({})
    trace_k, trace_n = [], []
    for epoch, v in enumerate(values):
        for cb, m, trace in ((cb_k, km, trace_k), (cb_n, nm, trace_n)):
            m.stop_training = False
            logs = {key: v, "loss": 1.0}
            cb.on_epoch_begin(epoch, logs)
            cb.on_epoch_end(epoch, logs)
            lr = m.optimizer.learning_rate
            trace.append((bool(m.stop_training), float(kn(lr)) if m is km else float(lr)))
    return trace_k, trace_n


@pytest.mark.parametrize("kw", [{}, {"patience": 2}, {"patience": 1, "min_delta": 0.02},
                                {"patience": 3, "baseline": 0.75}, {"patience": 1, "start_from_epoch": 4},
                                {"monitor": "val_accuracy", "patience": 2}, {"mode": "max", "patience": 2}])
def test_early_stopping_matches_keras(kw):
    kw = dict(kw)
    key = kw.get("monitor", "val_loss")
    km, nm = _callback_twins()
    cb_k, cb_n = keras.callbacks.EarlyStopping(**kw), nncore.callbacks.EarlyStopping(**kw)
    tk, tn = _drive(cb_k, cb_n, km, nm, _VAL, key)
    assert [s for s, _ in tn] == [s for s, _ in tk]
    assert cb_n.wait == cb_k.wait and cb_n.best == pytest.approx(float(cb_k.best))


@pytest.mark.parametrize("kw", [{"patience": 1}, {"patience": 2, "factor": 0.5, "cooldown": 1},
                                {"patience": 1, "factor": 0.2, "min_lr": 0.003, "min_delta": 0.05},
                                {"monitor": "val_accuracy", "patience": 1, "factor": 0.5}])
def test_reduce_lr_on_plateau_matches_keras(kw):
    kw = dict(kw)
    key = kw.get("monitor", "val_loss")
    km, nm = _callback_twins()
    cb_k, cb_n = keras.callbacks.ReduceLROnPlateau(**kw), nncore.callbacks.ReduceLROnPlateau(**kw)
    tk, tn = _drive(cb_k, cb_n, km, nm, _VAL, key)
    np.testing.assert_allclose([lr for _, lr in tn], [lr for _, lr in tk], rtol=1e-7)


def test_regularizer_penalties_match_keras():
    w = np.random.default_rng(6).normal(size=(7, 5))
    for name, kw in [("L1", {"l1": 0.03}), ("L2", {"l2": 0.02}), ("L1L2", {"l1": 0.01, "l2": 0.05}),
                     ("L2", {})]:
        want = float(kn(getattr(keras.regularizers, name)(**kw)(kt(w))))
        assert float(getattr(nreg, name)(**kw)(w)) == pytest.approx(want, rel=1e-12), name


@pytest.mark.parametrize("loss,out,k", [("mse", "sigmoid", 1), ("binary_crossentropy", "sigmoid", 1),
                                        ("categorical_crossentropy", "softmax", 3),
                                        ("sparse_categorical_crossentropy", "softmax", 3), ("mse", "softmax", 3)])
def test_accuracy_resolution_and_evaluate_shape_match_keras(loss, out, k):
    # 'accuracy' becomes binary / categorical / sparse accuracy from the loss and the shapes
    x, labels = _data(30, 3, 3, seed=3)
    y = np.eye(3)[labels] if (k == 3 and "sparse" not in loss) else (labels if k == 3 else (labels > 0) * 1.0)
    km, nm = _twin_models(3, k, out)
    for m, opt in ((km, keras.optimizers.SGD(0.05)), (nm, nopt.SGD(0.05))):
        m.compile(optimizer=opt, loss=loss, metrics=["accuracy"])
    ek = km.evaluate(x, y, batch_size=8, verbose=0)
    en = nm.evaluate(x, y, batch_size=8, verbose=0)
    assert len(en) == len(ek) == 2
    np.testing.assert_allclose(en, ek, rtol=1e-6, atol=1e-7)
    # no metrics: a bare float in both (fresh models: Keras keeps a built metric on recompile)
    km, nm = _twin_models(3, k, out)
    km.compile(optimizer="sgd", loss=loss)
    nm.compile(optimizer="sgd", loss=loss)
    assert float(nm.evaluate(x, y, verbose=0)) == pytest.approx(float(km.evaluate(x, y, verbose=0)), rel=1e-6)


def _shape_cases():
    rng = np.random.default_rng(7)
    p1 = rng.uniform(size=(6, 1))
    y1 = (rng.uniform(size=6) > 0.5) * 1.0
    p3 = rng.uniform(size=(4, 5, 3))
    p3 /= p3.sum(-1, keepdims=True)
    lab = rng.integers(0, 3, (4, 5))
    w = rng.uniform(size=4)
    return [
        ("BinaryCrossentropy", y1, p1, None), ("BinaryCrossentropy", y1[:, None], p1[:, 0], None),
        ("BinaryCrossentropy", y1, p1[:, 0], None), ("MeanSquaredError", y1, p1, None),
        ("CategoricalCrossentropy", np.eye(3)[lab], p3, w[:, None]),
        ("CategoricalCrossentropy", np.eye(3)[lab], p3, rng.uniform(size=(4, 5))),
        ("SparseCategoricalCrossentropy", lab, p3, w[:, None]),
        ("SparseCategoricalCrossentropy", lab[:, :1], p3[:, 0], w),
    ]


@pytest.mark.parametrize("case", range(8))
def test_loss_awkward_shapes_match_keras(case):
    # rank mismatches Keras squeezes or expands ((n,) vs (n, 1)), sequence outputs (n, t, k) whose
    # reduction divides by n t, and sample weights of shape (n, 1) or (n, t)
    name, y, p, w = _shape_cases()[case]
    want = float(kn(getattr(keras.losses, name)()(kt(y), kt(p), sample_weight=None if w is None else kt(w))))
    assert float(getattr(nloss, name)()(y, p, sample_weight=w)) == pytest.approx(want, **_F32)


def test_loss_one_dimensional_pair_with_weights_like_keras():
    y = np.array([1.0, 0.0, 1.0, 1.0, 0.0, 0.0])
    p = np.array([0.8, 0.3, 0.4, 0.9, 0.1, 0.6])
    w = np.array([0.5, 0.5, 0.2, 0.2, 0.9, 0.9])
    want = float(kn(keras.losses.BinaryCrossentropy()(kt(y), kt(p), sample_weight=kt(w))))
    assert float(nloss.BinaryCrossentropy()(y, p, sample_weight=w)) == pytest.approx(want, **_F32)


def test_fit_validation_data_with_weights_nadam_matches_keras():
    x, labels = _data(45, 4, 3, seed=4)
    yb = (labels > 0)[:, None] * 1.0
    sw = np.random.default_rng(11).uniform(0.2, 2.0, size=45)
    km, nm = _twin_models(4, 1, "sigmoid")
    fit_kw = {"batch_size": 7, "epochs": 2, "validation_data": (x[:9], yb[:9], sw[:9]), "sample_weight": sw}
    hk, hn = _fit_case(km, nm, x, yb, ("Nadam", {"learning_rate": 0.01}), "binary_crossentropy",
                       ["binary_accuracy", "recall", "auc"], fit_kw)
    _assert_history(hk, hn)
    for a, b in zip(km.get_weights(), nm.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("kind", ["cce-logits-smoothing", "sparse-logits", "bce-smoothing"])
def test_fit_loss_options_match_keras(kind):
    x, labels = _data(40, 4, 3, seed=5)
    loss, k, out, y = {
        "cce-logits-smoothing": ("CategoricalCrossentropy", 3, "linear", np.eye(3)[labels]),
        "sparse-logits": ("SparseCategoricalCrossentropy", 3, "linear", labels),
        "bce-smoothing": ("BinaryCrossentropy", 1, "sigmoid", (labels > 0) * 1.0)}[kind]
    kw = {"from_logits": True} if out == "linear" else {}
    if kind != "sparse-logits":
        kw["label_smoothing"] = 0.1
    km, nm = _twin_models(4, k, out)
    km.compile(optimizer=keras.optimizers.Adam(0.01), loss=getattr(keras.losses, loss)(**kw), metrics=["accuracy"])
    nm.compile(optimizer=nopt.Adam(0.01), loss=getattr(nloss, loss)(**kw), metrics=["accuracy"])
    hk = km.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, validation_split=0.2).history
    hn = nm.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, validation_split=0.2).history
    _assert_history(hk, hn)


def test_fit_float32_matches_keras():
    # the default precision: both in float32, so agreement is to float32 rounding after 15 steps
    old_policy = keras.config.dtype_policy()
    keras.config.set_floatx("float32")
    keras.config.set_dtype_policy("float32")
    nncore.set_floatx("float32")
    try:
        x, labels = _data(45, 4, 3, seed=6)
        km, nm = _twin_models(4, 3, "softmax", reg=0.01)
        assert km.weights[0].dtype == "float32" and nm.get_weights()[0].dtype == np.float32
        fit_kw = {"batch_size": 8, "epochs": 3, "validation_split": 0.2}
        hk, hn = _fit_case(km, nm, x, np.eye(3)[labels], ("Adam", {"learning_rate": 0.01}),
                           "categorical_crossentropy", ["accuracy"], fit_kw)
        assert sorted(hn) == sorted(hk)
        for key in hk:
            np.testing.assert_allclose(hn[key], hk[key], rtol=1e-5, atol=1e-6, err_msg=key)
        for a, b in zip(km.get_weights(), nm.get_weights()):
            np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)
    finally:
        keras.config.set_floatx("float64")
        keras.config.set_dtype_policy(old_policy)
        nncore.set_floatx("float64")


def test_class_weight_with_sample_weight_is_refused_like_keras():
    x, labels = _data(20, 4, 3)
    km, nm = _twin_models(4, 3, "softmax")
    km.compile(optimizer="sgd", loss="categorical_crossentropy")
    nm.compile(optimizer="sgd", loss="categorical_crossentropy")
    for m in (km, nm):
        with pytest.raises(ValueError, match="class_weight"):
            m.fit(x, np.eye(3)[labels], class_weight={0: 1.0, 1: 2.0, 2: 1.0}, sample_weight=np.ones(20), verbose=0)
