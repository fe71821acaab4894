"""BatchNormalization and LayerNormalization: the fused kernels (csrc/norm_body.h) against NumPy float64
references on awkward shapes, both dtypes, 1 vs 2 threads bit-identical, every SIMD level; the layers'
finite-difference gradients (training and inference), the moving statistics, trainable=False, weights
order, saving and resume, and errors. Keras parity: tests/test_keras_parity_norm.py."""
import numpy as np
import pytest

import nncore
import reference_layers as ref
from nncore import Sequential
from nncore._kernels import norm as K
from nncore._kernels import runtime
from nncore.layers import BatchNormalization, Conv2D, Dense, Flatten, Input, LayerNormalization
from reference_layers import check_layer_gradients

LEVELS = list(range(runtime.simd_level() + 1))   # 0 generic, 1 avx2+fma, 2 avx512
# 1 row, 1 channel, primes, a tail of fewer than 4 rows, several chunks (16384 / C rows each, at most 256)
SHAPES = [(1, 1), (1, 5), (2, 3), (7, 1), (13, 17), (257, 3), (1031, 33), (4099, 8), (70001, 2)]
TOL = {np.float64: 1e-11, np.float32: 2e-5}


@pytest.fixture(autouse=True)
def _restore_simd_level():
    yield
    runtime.set_simd_level(-1)


def _data(shape, dtype, seed=0, loc=3.0):
    rng = np.random.default_rng(seed)
    R, C = shape
    x = (rng.normal(size=shape) * rng.uniform(0.5, 2, C) + loc).astype(dtype)
    gamma, beta = rng.normal(size=C).astype(dtype), rng.normal(size=C).astype(dtype)
    dy = rng.normal(size=shape).astype(dtype)
    return x, gamma, beta, dy


def _close(got, want, dtype, scale=1.0):
    np.testing.assert_allclose(got, want, rtol=TOL[dtype], atol=TOL[dtype] * scale)


def _bn_run(x, gamma, beta, dy, training, nt, mm=None, mv=None):
    R, C = x.shape
    mm = np.zeros(C, x.dtype) if mm is None else mm.copy()
    mv = np.ones(C, x.dtype) if mv is None else mv.copy()
    y, stats, work = np.empty_like(x), np.empty((2, C)), np.empty(K.work_size(R, C))
    K.batchnorm_forward(x, gamma, beta, mm, mv, y, stats, work, 0.9, 1e-3, training, nt)
    dx, dg, db = np.empty_like(x), np.empty(C, x.dtype), np.empty(C, x.dtype)
    K.batchnorm_backward(x, dy, gamma, stats, dx, dg, db, work, training, nt)
    return y, mm, mv, dx, dg, db


def _ln_run(x, gamma, beta, dy, nt):
    R, C = x.shape
    y, stats, work = np.empty_like(x), np.empty((2, R)), np.empty(K.work_size(R, C))
    K.layernorm_forward(x, gamma, beta, y, stats, 1e-3, nt)
    dx, dg, db = np.empty_like(x), np.empty(C, x.dtype), np.empty(C, x.dtype)
    K.layernorm_backward(x, dy, gamma, stats, dx, dg, db, work, nt)
    return y, dx, dg, db


# ---------------------------------------------------------------------------------------------- kernels
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("level", LEVELS)
def test_batchnorm_kernels_match_reference(dtype, shape, level):
    runtime.set_simd_level(level)
    x, gamma, beta, dy = _data(shape, dtype)
    xd, gd, bd, dyd = (a.astype(np.float64) for a in (x, gamma, beta, dy))
    C = shape[1]
    # training: batch statistics, moving update, gradients through the statistics
    y, mm, mv, dx, dg, db = _bn_run(x, gamma, beta, dy, True, 2)
    y_ref, mm_ref, mv_ref = ref.batchnorm_train(xd, gd, bd, np.zeros(C), np.ones(C), 0.9, 1e-3)
    dx_ref, dg_ref, db_ref = ref.batchnorm_train_backward(xd, dyd, gd, 1e-3)
    _close(y, y_ref, dtype, np.abs(y_ref).max())
    _close(mm, mm_ref, dtype, np.abs(mm_ref).max())
    _close(mv, mv_ref, dtype, np.abs(mv_ref).max())
    _close(dx, dx_ref, dtype, np.abs(dx_ref).max() + 1)
    _close(dg, dg_ref, dtype, np.abs(dg_ref).max() + 1)
    _close(db, db_ref, dtype, np.abs(db_ref).max() + 1)
    # inference: the moving statistics, unchanged; dx = gamma dy / std
    mm0, mv0 = mm_ref.astype(dtype), (mv_ref * 2).astype(dtype)
    y, mm, mv, dx, dg, db = _bn_run(x, gamma, beta, dy, False, 2, mm0, mv0)
    np.testing.assert_array_equal(mm, mm0)
    np.testing.assert_array_equal(mv, mv0)
    std = np.sqrt(mv0.astype(np.float64) + 1e-3)
    y_ref = ref.batchnorm_forward(xd, gd, bd, mm0, mv0.astype(np.float64), 1e-3)
    _close(y, y_ref, dtype, np.abs(y_ref).max())
    _close(dx, dyd * gd / std, dtype, np.abs(dyd * gd / std).max())
    _close(dg, np.sum(dyd * (xd - mm0) / std, axis=0), dtype, np.abs(dg).max() + 1)
    _close(db, dyd.sum(axis=0), dtype, np.abs(db).max() + 1)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("level", LEVELS)
def test_layernorm_kernels_match_reference(dtype, shape, level):
    runtime.set_simd_level(level)
    x, gamma, beta, dy = _data(shape, dtype, seed=1)
    xd, gd, bd, dyd = (a.astype(np.float64) for a in (x, gamma, beta, dy))
    y, dx, dg, db = _ln_run(x, gamma, beta, dy, 2)
    y_ref = ref.layernorm_forward(xd, gd, bd, 1e-3)
    dx_ref, dg_ref, db_ref = ref.layernorm_backward(xd, dyd, gd, 1e-3)
    _close(y, y_ref, dtype, np.abs(y_ref).max())
    # float32: dx is formed from float32 products of size ~ |dy gamma| / std, whose rounding stays
    _close(dx, dx_ref, dtype, np.abs(dyd * gd).max() / np.sqrt(xd.var(axis=1) + 1e-3).min() + 1)
    _close(dg, dg_ref, dtype, np.abs(dg_ref).max() + 1)
    _close(db, db_ref, dtype, np.abs(db_ref).max() + 1)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(86528 // 8, 32), (5003, 7), (40000, 3), (64, 1024)], ids=str)
def test_kernels_are_bit_identical_for_any_thread_count(dtype, shape):
    x, gamma, beta, dy = _data(shape, dtype, seed=2)
    for training in (True, False):
        one = _bn_run(x, gamma, beta, dy, training, 1)
        for nt in (2, 3):
            for a, b in zip(one, _bn_run(x, gamma, beta, dy, training, nt)):
                np.testing.assert_array_equal(a, b)
    one = _ln_run(x, gamma, beta, dy, 1)
    for nt in (2, 3):
        for a, b in zip(one, _ln_run(x, gamma, beta, dy, nt)):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batch_statistics_keep_their_digits_under_a_large_mean(dtype):
    # shifted sums in double: a mean 10^4 standard deviations away costs no digits of the variance
    rng = np.random.default_rng(3)
    x = (1e4 + rng.normal(size=(50000, 4))).astype(dtype)
    y, mm, mv, *_ = _bn_run(x, np.ones(4, dtype), np.zeros(4, dtype), x, True, 2)
    var = x.astype(np.float64).var(axis=0)
    np.testing.assert_allclose((mv - 0.9) / 0.1, var, rtol=1e-6 if dtype == np.float32 else 1e-12)
    np.testing.assert_allclose(y.astype(np.float64).std(axis=0), np.sqrt(var / (var + 1e-3)), rtol=1e-4)


def test_optional_outputs_give_the_same_values():
    x, gamma, beta, dy = _data((300, 5), np.float64, seed=4)
    y, mm, mv, dx, dg, db = _bn_run(x, gamma, beta, dy, True, 1)
    R, C = x.shape
    stats, work = np.empty((2, C)), np.empty(K.work_size(R, C))
    K.batchnorm_forward(x, gamma, beta, None, None, np.empty_like(x), stats, work, 0.9, 1e-3, True, 1)
    dg2, dx2 = np.empty(C), np.empty_like(x)
    K.batchnorm_backward(x, dy, gamma, stats, None, dg2, None, work, True, 1)
    np.testing.assert_array_equal(dg2, dg)
    K.batchnorm_backward(x, dy, gamma, stats, dx2, None, None, work, True, 1)
    np.testing.assert_array_equal(dx2, dx)
    y, dx, dg, db = _ln_run(x, gamma, beta, dy, 1)
    stats = np.empty((2, R))
    K.layernorm_forward(x, gamma, beta, np.empty_like(x), stats, 1e-3, 1)
    K.layernorm_backward(x, dy, gamma, stats, None, None, dg2, work, 1)
    np.testing.assert_array_equal(dg2, db)
    K.layernorm_backward(x, dy, gamma, stats, dx2, None, None, work, 1)
    np.testing.assert_array_equal(dx2, dx)


def test_simd_level_reaches_the_norm_module():
    for level in LEVELS:
        assert K._set_simd_level_here(level) == level


def test_wrappers_check_their_arguments():
    x, gamma, beta, dy = _data((10, 3), np.float64)
    C = 3
    y, stats, work = np.empty_like(x), np.empty((2, C)), np.empty(K.work_size(10, C))
    mm, mv = np.zeros(C), np.ones(C)
    fwd = K.batchnorm_forward
    with pytest.raises(TypeError, match="gamma: expected dtype float64"):
        fwd(x, gamma.astype(np.float32), beta, mm, mv, y, stats, work, 0.9, 1e-3, True, 1)
    with pytest.raises(ValueError, match=r"beta: expected shape \(3,\)"):
        fwd(x, gamma, beta[:2], mm, mv, y, stats, work, 0.9, 1e-3, True, 1)
    with pytest.raises(ValueError, match="work: expected at least"):
        fwd(x, gamma, beta, mm, mv, y, stats, work[:3], 0.9, 1e-3, True, 1)
    with pytest.raises(TypeError, match="stats: expected a C-contiguous float64"):
        fwd(x, gamma, beta, mm, mv, y, stats.astype(np.float32), work, 0.9, 1e-3, True, 1)
    with pytest.raises(ValueError, match="inference needs moving_mean"):
        fwd(x, gamma, beta, None, None, y, stats, work, 0.9, 1e-3, False, 1)
    with pytest.raises(ValueError, match="non-empty"):
        fwd(x[:0], gamma, beta, mm, mv, y[:0], stats, work, 0.9, 1e-3, True, 1)
    with pytest.raises(ValueError, match="epsilon must be > 0"):
        fwd(x, gamma, beta, mm, mv, y, stats, work, 0.9, 0.0, True, 1)
    y.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        fwd(x, gamma, beta, mm, mv, y, stats, work, 0.9, 1e-3, True, 1)
    with pytest.raises(ValueError, match="expected a C-contiguous array"):
        K.layernorm_forward(np.asfortranarray(x), gamma, beta, np.empty_like(x), np.empty((2, 10)), 1e-3, 1)
    with pytest.raises(ValueError, match="stats: expected at least 20"):
        K.layernorm_forward(x, gamma, beta, np.empty_like(x), np.empty((2, 3)), 1e-3, 1)
    with pytest.raises(ValueError, match=r"dy: expected shape \(10, 3\)"):
        K.layernorm_backward(x, dy[:5], gamma, np.empty((2, 10)), None, None, None, work, 1)


# ---------------------------------------------------------------------------------------------- layers
@pytest.mark.parametrize("xshape", [(6, 4), (3, 5, 2), (2, 3, 4, 3), (1, 3, 2)], ids=str)
@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_gradients_finite_differences(float64, xshape, training):
    rng = np.random.default_rng(5)
    layer = BatchNormalization()
    x = rng.standard_normal(xshape) * 2 + 1
    layer(x)
    layer.moving_mean[...] = rng.standard_normal(xshape[-1])
    layer.moving_variance[...] = rng.uniform(0.5, 2, xshape[-1])
    check_layer_gradients(layer, x, rng, params=("gamma", "beta"), training=training)


@pytest.mark.parametrize("center,scale", [(False, True), (True, False), (False, False)])
def test_batchnorm_without_center_or_scale(float64, center, scale):
    rng = np.random.default_rng(6)
    layer = BatchNormalization(center=center, scale=scale)
    x = rng.standard_normal((7, 3))
    params = tuple(p for p, on in (("gamma", scale), ("beta", center)) if on)
    check_layer_gradients(layer, x, rng, params=params, training=True)
    assert [w.shape for w in layer.weights] == [(3,)] * (len(params) + 2)
    xd = x.astype(np.float64)
    g = layer.gamma if scale else 1.0
    b = layer.beta if center else 0.0
    np.testing.assert_allclose(layer(x, training=True), g * (xd - xd.mean(0)) / np.sqrt(xd.var(0) + 1e-3) + b,
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("axis,xshape", [(-1, (5, 4)), (-1, (3, 4, 5)), ([1, 2], (3, 2, 5)),
                                         ([-3, -2, -1], (2, 3, 2, 2)),
                                         (2, (2, 3, 4))], ids=str)
def test_layernorm_gradients_finite_differences(float64, axis, xshape):
    rng = np.random.default_rng(7)
    layer = LayerNormalization(axis=axis)
    x = rng.standard_normal(xshape) * 3 - 1
    check_layer_gradients(layer, x, rng, params=("gamma", "beta"))
    naxes = 1 if isinstance(axis, int) else len(axis)
    assert layer.gamma.shape == xshape[-naxes:]
    np.testing.assert_allclose(layer(x), ref.layernorm_forward(x, layer.gamma, layer.beta, 1e-3, naxes),
                               rtol=1e-12, atol=1e-12)


def test_layernorm_without_weights_follows_its_input(float64):
    layer = LayerNormalization(center=False, scale=False)
    x = np.random.default_rng(8).standard_normal((4, 6))
    assert layer.weights == []
    np.testing.assert_allclose(layer(x), ref.layernorm_forward(x, 1.0, 0.0, 1e-3), rtol=1e-12, atol=1e-12)
    assert layer(x.astype(np.float32)).dtype == np.float32
    check_layer_gradients(LayerNormalization(center=False, scale=False), x, np.random.default_rng(9), params=())


def test_moving_statistics_follow_keras_rule_in_training_only(float64):
    rng = np.random.default_rng(10)
    layer = BatchNormalization(momentum=0.8)
    xs = [rng.standard_normal((5, 2, 3)) * (i + 1) for i in range(3)]
    layer(xs[0])                                 # inference: builds, statistics unchanged
    mm, mv = np.zeros(3), np.ones(3)
    np.testing.assert_array_equal(layer.moving_mean, mm)
    for x in xs:
        y = layer(x, training=True)
        y_ref, mm, mv = ref.batchnorm_train(x, 1.0, 0.0, mm, mv, 0.8, 1e-3)
        np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(layer.moving_mean, mm, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(layer.moving_variance, mv, rtol=1e-13)
    y = layer(xs[0])
    np.testing.assert_allclose(y, ref.batchnorm_forward(xs[0], 1.0, 0.0, mm, mv, 1e-3), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.moving_mean, mm, rtol=1e-13, atol=1e-15)


def _bn_model(seed=0, **bn):
    nncore.set_seed(seed)
    return Sequential([Input((6, 6, 2)), Conv2D(4, 3, padding="same"), BatchNormalization(**bn),
                       Flatten(), Dense(8, activation="relu"), BatchNormalization(),
                       Dense(3, activation="softmax")])


def _clf(n=64, seed=1):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 6, 6, 2)), rng.integers(0, 3, n)


def test_fit_updates_moving_statistics_and_evaluate_predict_do_not():
    x, y = _clf()
    m = _bn_model()
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    bn = m.layers[1]
    m.fit(x, y, epochs=2, batch_size=16, verbose=0)
    assert not np.array_equal(bn.moving_mean, 0) and not np.array_equal(bn.moving_variance, 1)
    before = [w.copy() for w in m.weights]
    m.evaluate(x, y, verbose=0)
    m.predict(x, verbose=0)
    for a, b in zip(before, m.weights):
        np.testing.assert_array_equal(a, b)
    # inference normalizes with the moving statistics
    h = m.layers[0](x.astype(np.float32))
    np.testing.assert_allclose(bn(h), ref.batchnorm_forward(h, bn.gamma, bn.beta, bn.moving_mean,
                                                             bn.moving_variance, 1e-3), rtol=2e-5, atol=2e-5)


def test_weights_order_and_trainable_split():
    m = _bn_model()
    bn = m.layers[1]
    assert [w.shape for w in bn.get_weights()] == [(4,)] * 4
    names = ["gamma", "beta", "moving_mean", "moving_variance"]
    for w, name in zip(bn.weights, names):
        assert w is getattr(bn, name) or np.shares_memory(w, getattr(bn, name))
    assert len(bn.trainable_weights) == 2 and len(bn.non_trainable_weights) == 2
    np.testing.assert_array_equal(bn.moving_variance, 1)
    assert m.count_params() == sum(w.size for w in m.weights) == m._params.size    # all weights count
    assert len(m.trainable_weights) == 2 + 2 + 2 + 2 + 2 and len(m.non_trainable_weights) == 4
    # non-trainable weights lie after the optimizer's range, which is one contiguous view
    n = sum(w.size for w in m.trainable_weights)
    assert m._train_params.size == n and np.shares_memory(m._train_params, m._params)
    for w in m.non_trainable_weights:
        assert np.shares_memory(w, m._params[n:])
    lines = []
    m.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert f"Trainable params: {n:,}" in text and "Non-trainable params: 24 " in text
    assert "(BatchNormalization)" in text and "Optimizer params" not in text


def test_frozen_batchnorm_runs_in_inference_mode_and_stays_unchanged():
    x, y = _clf()
    m = _bn_model()
    bn = m.layers[1]
    bn.moving_mean[...] = 0.1
    bn.trainable = False
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    frozen = [w.copy() for w in bn.weights]
    m.fit(x, y, epochs=2, batch_size=16, verbose=0)
    for a, b in zip(frozen, bn.weights):
        np.testing.assert_array_equal(a, b)
    h = m.layers[0](x[:5].astype(np.float32))
    np.testing.assert_array_equal(bn.forward(h, True), bn.forward(h, False))
    assert bn.trainable_weights == [] and len(bn.non_trainable_weights) == 4
    assert sum(w.size for w in m.non_trainable_weights) == 16 + 16


def test_resume_after_save_is_bit_identical(tmp_path):
    x, y = _clf()
    m = _bn_model(seed=3, momentum=0.9)
    m.layers[3].trainable = False              # a frozen Dense in the middle too
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    m.fit(x, y, epochs=2, batch_size=16, verbose=0)
    path = tmp_path / "bn.nncore"
    m.save(path)
    again = nncore.load_model(path)
    assert not again.layers[3].trainable and again.layers[1].momentum == 0.9
    for a, b in zip(m.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)
    h1 = m.fit(x, y, epochs=2, batch_size=16, verbose=0, shuffle=False).history
    h2 = again.fit(x, y, epochs=2, batch_size=16, verbose=0, shuffle=False).history
    assert h1 == h2
    for a, b in zip(m.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_training_with_batchnorm_is_bit_identical_for_1_and_2_threads():
    x, y = _clf(n=96)
    weights = []
    for nt in (1, 2):
        m = _bn_model(seed=4)
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", n_threads=nt)
        m.fit(x, y, epochs=2, batch_size=32, verbose=0)
        weights.append(m.get_weights())
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)


def test_errors_name_the_layer_and_the_shapes():
    with pytest.raises(ValueError, match=r"only the last axis .* axis=1 for inputs of shape \(None, 4, 4, 3\)"):
        Sequential([Input((4, 4, 3)), BatchNormalization(axis=1)])
    with pytest.raises(ValueError, match="expected inputs"):
        BatchNormalization().build((None,))
    with pytest.raises(ValueError, match=r"must name trailing axes .* shape \(None, 4, 3\)"):
        Sequential([Input((4, 3)), LayerNormalization(axis=1)])
    with pytest.raises(ValueError, match="trailing axes"):
        Sequential([Input((4, 3)), LayerNormalization(axis=[0, 1, 2])])
    with pytest.raises(ValueError, match="epsilon must be a positive number"):
        BatchNormalization(epsilon=0)
    with pytest.raises(TypeError, match="axis must be an int"):
        BatchNormalization(axis=[1, 2])
    with pytest.raises(ValueError, match="renorm=True is not supported"):
        BatchNormalization(renorm=True)
    with pytest.raises(TypeError, match="center must be a bool"):
        LayerNormalization(center="yes")
    layer = BatchNormalization(name="bn")
    layer(np.ones((2, 3)))
    with pytest.raises(ValueError,
                       match=r"'bn' \(BatchNormalization\): expected input of shape \(batch, 3\), got \(2, 4\)"):
        layer(np.ones((2, 4)))
    m = Sequential([Input((3,)), BatchNormalization(name="bn2")])
    with pytest.raises(ValueError, match=r"expects input of shape \(n_samples, 3\)"):
        m.predict(np.ones((2, 5)), verbose=0)
    with pytest.raises(TypeError, match="trainable must be a bool"):
        layer.trainable = "no"


def test_steady_state_epochs_allocate_nothing_that_persists():
    import tracemalloc
    from nncore.layers import SpatialDropout2D, UpSampling2D, ZeroPadding2D
    rng = np.random.default_rng(11)
    x, y = rng.normal(size=(160, 6, 6, 2)), rng.integers(0, 3, 160)
    nncore.set_seed(0)
    m = Sequential([Input((6, 6, 2)), Conv2D(4, 3, padding="same"), BatchNormalization(), ZeroPadding2D(1),
                    UpSampling2D(), SpatialDropout2D(0.1), Flatten(), Dense(8), LayerNormalization(),
                    Dense(3, activation="softmax")])
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    snaps = {}

    class Snap(nncore.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch in (1, 4):
                snaps[epoch] = tracemalloc.take_snapshot()

    tracemalloc.start()
    try:
        m.fit(x, y, epochs=5, batch_size=16, verbose=0, validation_split=0.2, callbacks=[Snap()])
    finally:
        tracemalloc.stop()
    own = [tracemalloc.Filter(True, "*/nncore/*")]
    later, first = snaps[4].filter_traces(own), snaps[1].filter_traces(own)
    growth = sum(s.size_diff for s in later.compare_to(first, "filename") if s.size_diff > 0)
    assert growth < 3000, growth          # 3 epochs x 8 steps; History's entries remain
