"""Python-level losses: Keras 3 values, sum_over_batch_size reduction, gradients by central differences."""
import numpy as np
import pytest

from nncore import losses
import reference_layers as ref
from reference_layers import numeric_grad

rng = np.random.default_rng(0)
N, K = 7, 3
P = rng.uniform(0.05, 0.95, size=(N, K))
Z = rng.normal(size=(N, K)) * 2
Y01 = (rng.uniform(size=(N, K)) > 0.5).astype(float)
YONE = np.eye(K)[rng.integers(0, K, N)]
LABELS = rng.integers(0, K, N)
YREG = rng.normal(size=(N, K))
W = rng.uniform(0.1, 2.0, N)

# (loss object, y_true, y_pred, per-sample oracle)
CASES = {
    "mse": (losses.MeanSquaredError(), YREG, Z, lambda y, p: ref.mse(y, p)),
    "mae": (losses.MeanAbsoluteError(), YREG, Z, lambda y, p: ref.mae(y, p)),
    "bce": (losses.BinaryCrossentropy(), Y01, P, lambda y, p: ref.bce(y, p)),
    "bce_logits": (losses.BinaryCrossentropy(from_logits=True), Y01, Z, lambda y, p: ref.bce(y, p, True)),
    "bce_smooth": (losses.BinaryCrossentropy(label_smoothing=0.2), Y01, P, lambda y, p: ref.bce(y, p, s=0.2)),
    "cce": (losses.CategoricalCrossentropy(), YONE, P, lambda y, p: ref.cce(y, p)),
    "cce_logits": (losses.CategoricalCrossentropy(from_logits=True), YONE, Z, lambda y, p: ref.cce(y, p, True)),
    "cce_smooth": (losses.CategoricalCrossentropy(label_smoothing=0.1), YONE, P,
                   lambda y, p: ref.cce(y, p, s=0.1)),
    "sparse": (losses.SparseCategoricalCrossentropy(), LABELS, P, lambda y, p: ref.sparse_cce(y, p)),
    "sparse_logits": (losses.SparseCategoricalCrossentropy(from_logits=True), LABELS, Z,
                      lambda y, p: ref.sparse_cce(y, p, True)),
    "huber": (losses.Huber(delta=0.7), YREG, Z, lambda y, p: ref.huber(y, p, 0.7)),
    "hinge": (losses.Hinge(), Y01, Z, lambda y, p: ref.hinge(y, p)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_value_and_reduction(case):
    loss, y, p, oracle = CASES[case]
    per = oracle(y, p)
    np.testing.assert_allclose(loss.call(y, p), per, rtol=1e-12)
    np.testing.assert_allclose(loss(y, p), per.mean(), rtol=1e-12)
    # sample weights multiply per-sample losses; the divisor stays N
    np.testing.assert_allclose(loss(y, p, sample_weight=W), np.sum(per * W) / N, rtol=1e-12)
    np.testing.assert_allclose(loss(y, p, sample_weight=np.zeros(N)), 0.0)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("weighted", [False, True])
def test_training_gradient_finite_differences(case, weighted):
    # _grad writes grad_scale * d(sum_i w_i l_i)/dp and returns sum_i w_i l_i
    loss, y, p, oracle = CASES[case]
    p = p.copy()
    w = W if weighted else None
    yt = loss._prepare(y, p.shape, np.float64)
    d = np.empty_like(p)
    total = loss._grad(p, yt, w, d, 1.0 / N, 1)
    np.testing.assert_allclose(total, np.sum(oracle(y, p) * (1 if w is None else w)), rtol=1e-10)
    num = numeric_grad(lambda: loss._grad(p, yt, w, None, 1.0, 1) / N, p)
    np.testing.assert_allclose(d, num, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("case", ["bce", "cce", "sparse"])
def test_fused_logits_path(case):
    # sigmoid/softmax output + matching cross-entropy: one pass on z, gradient p - y
    loss, y, _, oracle = CASES[case]
    z = Z.copy()
    yt = loss._prepare(y, z.shape, np.float64)
    prob, d = np.empty_like(z), np.empty_like(z)
    total = loss._logits_grad(z, yt, W, prob, d, 1.0 / N, 1)
    act = ref.ACTIVATIONS["sigmoid" if case == "bce" else "softmax"]
    np.testing.assert_allclose(prob, act(z), rtol=1e-12)
    np.testing.assert_allclose(total, np.sum(oracle(y, act(z)) * W), rtol=1e-9)
    num = numeric_grad(lambda: loss._logits_grad(z, yt, W, None, None, 1.0, 1) / N, z)
    np.testing.assert_allclose(d, num, rtol=1e-5, atol=1e-8)
    yone = yt if case != "sparse" else np.eye(K)[LABELS]
    scale = 1.0 / K if case == "bce" else 1.0
    np.testing.assert_allclose(d, (act(z) - yone) * scale * W[:, None] / N, rtol=1e-10, atol=1e-15)


def test_probability_clipping_and_renormalisation():
    # p = 0 and p = 1 are clipped to [1e-7, 1 - 1e-7]: finite, Keras's values
    y = np.array([[1.0], [0.0]])
    p = np.array([[0.0], [0.0]])
    np.testing.assert_allclose(losses.binary_crossentropy(y, p), [-np.log(1e-7), -np.log(1 - 1e-7)])
    # categorical probabilities are renormalised to sum to 1 first
    np.testing.assert_allclose(losses.categorical_crossentropy([[0, 1.0]], [[1.0, 3.0]]), [-np.log(0.75)])


def test_shapes_labels_and_lookup():
    # y of shape (N,) meets a prediction of shape (N, 1) as in Keras
    np.testing.assert_allclose(losses.mse(np.zeros(3), np.ones((3, 1))), np.ones(3))
    with pytest.raises(ValueError, match="shape"):
        losses.mse(np.zeros((3, 2)), np.ones((3, 3)))
    with pytest.raises(ValueError, match=r"label 3 out of range.*\[0, 2\]"):
        losses.sparse_categorical_crossentropy([0, 3], np.full((2, 3), 1 / 3))
    with pytest.raises(ValueError, match="label -1"):
        losses.SparseCategoricalCrossentropy()._prepare(np.array([0, -1]), (2, 3), np.float64)
    with pytest.raises(ValueError, match="integers"):
        losses.sparse_categorical_crossentropy([0.5], [[0.5, 0.5]])
    assert isinstance(losses.get("mse"), losses.MeanSquaredError)
    assert isinstance(losses.get("binary_crossentropy"), losses.BinaryCrossentropy)
    assert isinstance(losses.get(losses.huber), losses.Huber)
    cfg = losses.serialize(losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1))
    again = losses.get(cfg)
    assert again.from_logits and again.label_smoothing == 0.1
    with pytest.raises(ValueError, match="unknown loss 'msee'"):
        losses.get("msee")
    with pytest.raises(ValueError, match="label_smoothing"):
        losses.BinaryCrossentropy(label_smoothing=2)


def test_float32_stays_float32():
    y = Y01.astype(np.float32)
    p = P.astype(np.float32)
    assert losses.BinaryCrossentropy()(y, p).dtype == np.float32
    np.testing.assert_allclose(losses.BinaryCrossentropy()(y, p), ref.bce(Y01, P).mean(), rtol=1e-5)
