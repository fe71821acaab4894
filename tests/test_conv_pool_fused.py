"""Conv2D (relu or linear) -> MaxPooling2D(2x2, stride 2, 'valid') run as one step (nncore/_plan.py pairs them;
`_Conv._pool_pair`): the kernels against the unfused ones bit for bit (conv_forward + maxpool_forward,
maxpool_backward + conv_backward_weights), on every SIMD level, odd sizes, 1 and 2 threads, float32 /
float64 / ACT_BF16; models with the pair against the same models with the pairing off (forward outputs,
fit steps), a float64 finite-difference check of the pair, and the wrappers' bad input."""
import numpy as np
import pytest

import nncore
import nncore._plan as plan_mod
from nncore._kernels import ACT_BF16, ACT_CODES
from nncore._kernels import conv as K
from nncore.layers import Conv2D, Dense, Flatten, MaxPooling2D
from nncore.models import Model, Sequential

from reference_layers import numeric_grad

pytestmark = pytest.mark.usefixtures("simd_level")
RELU = ACT_CODES["relu"]

# (n, h, w, c, f, window, strides, pad, out_hw): odd and even conv outputs, a padded one, a strided one,
# c = 1 (the cnn's first layer), wide f (several column panels)
GEOMS = [
    (3, 11, 9, 2, 5, (3, 3), (1, 1), (0, 0), (9, 7)),
    (2, 8, 8, 1, 32, (3, 3), (1, 1), (0, 0), (6, 6)),
    (2, 7, 10, 3, 17, (3, 3), (1, 1), (1, 1), (7, 10)),
    (1, 13, 13, 4, 40, (2, 3), (2, 1), (0, 0), (6, 11)),
    (5, 5, 5, 2, 3, (3, 3), (1, 1), (0, 0), (3, 3)),
]


def _data(geom, dtype, seed=0):
    n, h, w, c, f, win, st, pad, out = geom
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h, w, c)).astype(dtype)
    x[0, 0, :, 0] = 0.0                      # ties in the conv output (zeros after relu, equal values)
    kernel = (rng.standard_normal((win[0] * win[1] * c, f)) * 0.5).astype(dtype)
    bias = rng.standard_normal(f).astype(dtype)
    return x, kernel, bias


def _unfused_forward(x, kernel, bias, act, geom, nt=1):
    n, h, w, c, f, win, st, pad, out = geom
    y = np.empty((n * out[0] * out[1], f), x.dtype)
    K.conv_forward(x, kernel, y, bias, act, 0.0, win, st, (1, 1), pad, out, n_threads=nt)
    y4 = y.reshape(n, out[0], out[1], f)
    yp = np.empty((n, out[0] // 2, out[1] // 2, f), x.dtype)
    idx = np.empty(yp.shape, np.int32)
    K.maxpool_forward(y4[:, :out[0] // 2 * 2, :out[1] // 2 * 2].copy(), yp, idx, (2, 2), (2, 2), (0, 0), nt)
    return y4, yp, idx


def _code_of(idx, pw2):
    """maxpool_forward's pixel index (of the cropped conv output, width pw2) as the pair's 2 di + dj."""
    i, j = idx // pw2, idx % pw2
    return ((i % 2) * 2 + j % 2).astype(np.uint8)


# ACT_BF16 (the rounding of mixed_bfloat16's outputs) is float32's only
@pytest.mark.parametrize("dtype, act", [("float32", a) for a in (0, RELU, RELU | ACT_BF16, ACT_BF16)]
                         + [("float64", a) for a in (0, RELU)])
@pytest.mark.parametrize("geom", GEOMS)
def test_conv_pool_forward_gives_conv_forward_then_maxpool_bits(dtype, act, geom):
    n, h, w, c, f, win, st, pad, out = geom
    x, kernel, bias = _data(geom, dtype)
    _, yp_ref, idx_ref = _unfused_forward(x, kernel, bias, act, geom)
    code_ref = _code_of(idx_ref, out[1] // 2 * 2)
    for nt in (1, 2):
        yp = np.full(yp_ref.shape, np.nan, dtype)
        ix = np.full(yp_ref.shape, 9, np.uint8)
        K.conv_pool_forward(x, kernel, yp, bias, act, 0.0, win, st, (1, 1), pad, out, idx=ix, n_threads=nt)
        np.testing.assert_array_equal(yp.view(np.uint8), yp_ref.view(np.uint8))
        np.testing.assert_array_equal(ix, code_ref)
        yp2 = np.full(yp_ref.shape, np.nan, dtype)          # inference: no index
        K.conv_pool_forward(x, kernel, yp2, None if nt == 2 else bias, act, 0.0, win, st, (1, 1), pad, out,
                            n_threads=nt)
        if nt == 1:
            np.testing.assert_array_equal(yp2.view(np.uint8), yp_ref.view(np.uint8))


@pytest.mark.parametrize("dtype, act", [("float32", a) for a in (0, RELU, RELU | ACT_BF16)]
                         + [("float64", a) for a in (0, RELU)])
@pytest.mark.parametrize("geom", GEOMS)
def test_conv_pool_backward_weights_gives_the_unfused_bits(dtype, act, geom):
    n, h, w, c, f, win, st, pad, out = geom
    x, kernel, bias = _data(geom, dtype, 1)
    y4, yp, idx = _unfused_forward(x, kernel, bias, act, geom)
    ix = _code_of(idx, out[1] // 2 * 2)
    rng = np.random.default_rng(2)
    dyp = rng.standard_normal(yp.shape).astype(dtype)
    dyp[0, 0, 0, :] = -0.0                                   # signed zeros: 0 + dy as maxpool_backward adds it
    dyp[0, 0, -1, :] = -1e-40                                # float32 denormals (ACT_BF16: rounded to signed 0)
    dyp[-1, -1, 0, :] = 1e-40
    dyp[-1, 0, 0, :] = 1 + 2.0 ** -8                         # a bfloat16 tie (to even: 1)
    # the unfused pair: the pool's dx (the dropped row / column 0), then relu' and the weight gradient
    ho, wo = out[0] // 2 * 2, out[1] // 2 * 2
    dxc = np.empty((n, ho, wo, f), dtype)
    K.maxpool_backward(idx, dyp, dxc, (2, 2), (2, 2), (0, 0), 1)
    dy = np.zeros((n, out[0], out[1], f), dtype)
    dy[:, :ho, :wo] = dxc
    dy = dy.reshape(-1, f)
    y = np.ascontiguousarray(y4).reshape(-1, f)
    dk_ref, db_ref, delta_ref = np.empty_like(kernel), np.empty_like(bias), np.empty_like(y)
    d_ref = K.conv_backward_weights(x, dy, y, dk_ref, db_ref, act, 0.0, None, delta_ref, win, st, (1, 1), pad, out, 1)
    for nt in (1, 2):
        for with_delta in (True, False):
            dk, db = np.full_like(kernel, np.nan), np.full_like(bias, np.nan)
            delta = np.full_like(y, np.nan) if with_delta else None
            K.conv_pool_backward_weights(x, dyp, yp, ix, dk, db, act, delta, win, st, (1, 1), pad, out, nt)
            np.testing.assert_array_equal(dk.view(np.uint8), dk_ref.view(np.uint8))
            np.testing.assert_array_equal(db.view(np.uint8), db_ref.view(np.uint8))
            if with_delta:
                np.testing.assert_array_equal(delta.view(np.uint8), d_ref.view(np.uint8))


def test_the_wrappers_refuse_bad_arguments():
    geom = GEOMS[0]
    n, h, w, c, f, win, st, pad, out = geom
    x, kernel, bias = _data(geom, "float32")
    yp = np.empty((n, 4, 3, f), np.float32)
    ix = np.empty(yp.shape, np.uint8)
    args = (win, st, (1, 1), pad, out)
    with pytest.raises(ValueError, match=r"yp: expected shape \(3, 4, 3, 5\), got \(3, 4, 4, 5\)"):
        K.conv_pool_forward(x, kernel, np.empty((n, 4, 4, f), np.float32), bias, RELU, 0.0, *args)
    with pytest.raises(TypeError, match="idx: expected a C-contiguous uint8 ndarray, got int32"):
        K.conv_pool_forward(x, kernel, yp, bias, RELU, 0.0, *args, idx=ix.astype(np.int32))
    with pytest.raises(ValueError, match=r"idx: expected shape \(3, 4, 3, 5\), got \(3, 4, 3, 4\)"):
        K.conv_pool_forward(x, kernel, yp, bias, RELU, 0.0, *args, idx=ix[..., :4].copy())
    with pytest.raises(ValueError, match="conv_pool_forward: the conv \\+ max pool pair takes relu"):
        K.conv_pool_forward(x, kernel, yp, bias, ACT_CODES["tanh"], 0.0, *args)
    with pytest.raises(ValueError, match="kernel has 17 rows, the window takes kh kw c = 18"):
        K.conv_pool_forward(x, kernel[:17].copy(), yp, bias, RELU, 0.0, *args)
    with pytest.raises(TypeError, match="yp: expected dtype float32, got float64"):
        K.conv_pool_forward(x, kernel, yp.astype(np.float64), bias, RELU, 0.0, *args)
    with pytest.raises(TypeError, match="needs float32"):
        K.conv_pool_forward(x.astype(np.float64), kernel.astype(np.float64), yp.astype(np.float64), None,
                            RELU | ACT_BF16, 0.0, *args)
    dk, db = np.empty_like(kernel), np.empty_like(bias)
    with pytest.raises(ValueError, match=r"dyp: expected shape \(3, 4, 3, 5\), got \(3, 4, 3, 4\)"):
        K.conv_pool_backward_weights(x, yp[..., :4].copy(), yp, ix, dk, db, RELU, None, *args)
    with pytest.raises(ValueError, match=r"delta: expected shape \(189, 5\)"):
        K.conv_pool_backward_weights(x, yp, yp, ix, dk, db, RELU, np.empty((188, f), np.float32), *args)
    with pytest.raises(ValueError, match="dkernel has 17 rows"):
        K.conv_pool_backward_weights(x, yp, yp, ix, dk[:17].copy(), db, RELU, None, *args)
    with pytest.raises(ValueError, match="read-only"):
        ro = yp.copy()
        ro.flags.writeable = False
        K.conv_pool_forward(x, kernel, ro, bias, RELU, 0.0, *args)


# ---- models: the pair against the two layers (the plan's pairing off) ----------------------------------------
def _cnn(shape, policy=None, act="relu"):
    kw = {} if policy is None else {"dtype": policy}
    return Sequential([Conv2D(4, 3, activation=act, input_shape=shape, **kw), MaxPooling2D(2),
                       Conv2D(6, 3, activation=act, **kw), MaxPooling2D(),
                       Flatten(), Dense(3, activation="softmax", **kw)])


def _run(monkeypatch, fuse, shape, policy, nt, act="relu", epochs=2, build=_cnn):
    monkeypatch.setattr(plan_mod, "FUSE_CONV_POOL", fuse)
    old = nncore.get_num_threads()
    nncore.set_num_threads(nt)
    try:
        return _train(build(shape, policy, act), shape, epochs)
    finally:
        nncore.set_num_threads(old)


def _assert_same_bits(got, ref):
    """Two _run results: the predictions before and after fit, then every weight, bit for bit."""
    for a, b in zip(got[:2] + tuple(got[2]), ref[:2] + tuple(ref[2])):
        np.testing.assert_array_equal(np.asarray(a).view(np.uint8), np.asarray(b).view(np.uint8))


def _train(model, shape, epochs):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((37,) + shape).astype(nncore.floatx())
    y = rng.integers(0, 3, 37)
    model.build((None,) + shape)
    wrng = np.random.default_rng(3)
    model.set_weights([(wrng.standard_normal(w.shape) * 0.4).astype(w.dtype) for w in model.get_weights()])
    model.compile(optimizer=nncore.optimizers.SGD(0.05), loss="sparse_categorical_crossentropy")
    p0 = model.predict(x, batch_size=16, verbose=0)
    model.fit(x, y, batch_size=10, epochs=epochs, shuffle=False, verbose=0)
    p1 = model.predict(x[:7], batch_size=7, verbose=0)
    pairs = len(model._plan.pairs)
    return p0, p1, model.get_weights(), pairs


@pytest.mark.parametrize("policy", [None, "mixed_bfloat16"])
@pytest.mark.parametrize("shape", [(12, 12, 1), (13, 11, 2), (15, 16, 3)])
def test_models_with_the_pair_give_the_unfused_bits(monkeypatch, policy, shape):
    ref = _run(monkeypatch, False, shape, policy, 1)
    assert ref[3] == 0
    for nt in (1, 2):
        got = _run(monkeypatch, True, shape, policy, nt)
        assert got[3] == 2
        _assert_same_bits(got, ref)


@pytest.mark.parametrize("act", ["linear", "relu"])
def test_models_with_the_pair_give_the_unfused_bits_float64(monkeypatch, float64, act):
    ref = _run(monkeypatch, False, (11, 13, 2), None, 1, act)
    got = _run(monkeypatch, True, (11, 13, 2), None, 2, act)
    assert got[3] == 2
    _assert_same_bits(got, ref)


def test_only_a_conv_whose_output_only_the_pool_reads_is_paired():
    inp = nncore.layers.Input((10, 10, 2))
    c = Conv2D(3, 3, activation="relu")(inp)
    out = Flatten()(MaxPooling2D(2)(c))
    both = Model(inp, [Dense(2)(out), Flatten()(c)])                        # the conv's output read twice
    both.predict(np.zeros((2, 10, 10, 2), np.float32), verbose=0)
    assert both._plan.pairs == {}
    as_output = Model(inp, [Dense(2)(out), c])                              # the conv's output a model output
    as_output.predict(np.zeros((2, 10, 10, 2), np.float32), verbose=0)
    assert as_output._plan.pairs == {}
    for layers in ([Conv2D(3, 3, activation="tanh", input_shape=(8, 8, 1)), MaxPooling2D(2)],
                   [Conv2D(3, 3, activation="relu", input_shape=(8, 8, 1)), MaxPooling2D(2, strides=1)],
                   [Conv2D(3, 3, activation="relu", input_shape=(8, 8, 1)), MaxPooling2D(3)],
                   [Conv2D(3, 3, activation="relu", input_shape=(8, 8, 1)), MaxPooling2D(2, padding="same")]):
        m = Sequential(layers + [Flatten(), Dense(2)])
        m.predict(np.zeros((2, 8, 8, 1), np.float32), verbose=0)
        assert m._plan.pairs == {}, layers
    m = Sequential([Conv2D(3, 3, activation="relu", input_shape=(8, 8, 1)), MaxPooling2D(2), Flatten(), Dense(2)])
    y = m.predict(np.ones((2, 8, 8, 1), np.float32), verbose=0)
    assert list(m._plan.pairs) == [0] and y.shape == (2, 2)


@pytest.mark.parametrize("act", ["relu", "linear"])
@pytest.mark.parametrize("shape,pad", [((2, 7, 9, 2), "valid"), ((1, 6, 5, 3), "same")])
def test_the_pair_gradients_finite_differences(float64, act, shape, pad):
    rng = np.random.default_rng(8)
    x = rng.standard_normal(shape)
    conv, pool = Conv2D(3, 3, padding=pad, activation=act), MaxPooling2D(2)
    pool(conv(x))
    conv.kernel[...] = rng.standard_normal(conv.kernel.shape) * 0.5
    conv.bias[...] = rng.standard_normal(conv.bias.shape) * 0.5
    forward, backward = conv._pool_pair(pool)
    r = rng.standard_normal(forward(x, True).shape)

    def loss():
        return float(np.sum(forward(x, False) * r))

    forward(x, True)
    dx = backward(r).copy()
    dk, db = conv._grad_of["kernel"].copy(), conv._grad_of["bias"].copy()
    np.testing.assert_allclose(dx, numeric_grad(loss, x), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dk, numeric_grad(loss, conv.kernel), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(db, numeric_grad(loss, conv.bias), rtol=1e-6, atol=1e-8)


# ---- the pair on Winograd: the pool in the output transform, delta in the output-gradient transform ----------
WINO_GEOMS = [   # (n, h, w, c, f, pad, out_hw): odd and even outputs, partial tiles, padding
    (2, 13, 13, 5, 7, (0, 0), (11, 11)),
    (1, 10, 12, 3, 20, (0, 0), (8, 10)),
    (3, 7, 9, 2, 4, (1, 1), (7, 9)),
]


@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("dtype,act,bf16", [("float32", RELU, False), ("float32", 0, False), ("float32", RELU, True),
                                            ("float32", 0, True), ("float64", RELU, False), ("float64", 0, False)])
@pytest.mark.parametrize("geom", WINO_GEOMS)
def test_winograd_pair_gives_the_unfused_bits(m, dtype, act, bf16, geom):
    n, h, w, c, f, pad, out = geom
    rng = np.random.default_rng(5)
    x = rng.standard_normal((n, h, w, c)).astype(dtype)
    x[0, :2] = 0.0                                            # ties
    kernel = (rng.standard_normal((3, 3, c, f)) * 0.4).astype(dtype)
    bias = rng.standard_normal(f).astype(dtype)
    su, sv, sm = K.wino_sizes(x.shape, kernel.shape, m, out)
    U, V = np.empty(su, dtype), np.empty(sv, dtype)
    y = np.empty((n,) + out + (f,), dtype)
    K.wino_forward(x, kernel, bias, U, V, y, m, pad, act, 0.0, 1, bf16)
    ho, wo = out[0] // 2, out[1] // 2
    yp_ref, idx = np.empty((n, ho, wo, f), dtype), np.empty((n, ho, wo, f), np.int32)
    K.maxpool_forward(np.ascontiguousarray(y[:, :2 * ho, :2 * wo]), yp_ref, idx, (2, 2), (2, 2), (0, 0), 1)
    ix_ref = _code_of(idx, 2 * wo)
    dyp = rng.standard_normal(yp_ref.shape).astype(dtype)
    # unfused backward: the pool's dx, relu', colsum, wino_backward
    dxc = np.empty((n, 2 * ho, 2 * wo, f), dtype)
    K.maxpool_backward(idx, dyp, dxc, (2, 2), (2, 2), (0, 0), 1)
    dyf = np.zeros(y.shape, dtype)
    dyf[:, :2 * ho, :2 * wo] = dxc
    delta = dyf if act == 0 else np.where(y > 0, dyf, 0).astype(dtype)
    db_ref = np.empty(f, dtype)
    from nncore._kernels import elementwise as E
    E.colsum(delta.reshape(-1, f), db_ref, 1)
    M, dU = np.empty(sm, dtype), np.empty(su, dtype)
    dk_ref, dx_ref = np.empty_like(kernel), np.empty_like(x)
    K.wino_backward(delta, U, V, M, dU, dk_ref, dx_ref, (h, w), m, pad, 1, bf16)
    for nt in (1, 2):
        U2, V2 = np.empty(su, dtype), np.empty(sv, dtype)
        yp, ix = np.full(yp_ref.shape, np.nan, dtype), np.full(yp_ref.shape, 7, np.uint8)
        K.wino_pool_forward(x, kernel, bias, U2, V2, yp, ix, out, m, pad, act, 0.0, nt, bf16)
        np.testing.assert_array_equal(yp.view(np.uint8), yp_ref.view(np.uint8))
        np.testing.assert_array_equal(ix, ix_ref)
        yp3 = np.full(yp_ref.shape, np.nan, dtype)
        K.wino_pool_forward(x, kernel, bias, U2, None, yp3, None, out, m, pad, act, 0.0, nt, bf16)
        np.testing.assert_array_equal(yp3.view(np.uint8), yp_ref.view(np.uint8))
        dk, dx = np.full_like(kernel, np.nan), np.full_like(x, np.nan)
        K.wino_pool_backward(dyp, yp, ix, U2, V2, np.empty(sm, dtype), np.empty(su, dtype), dk, dx, (h, w), out, m,
                             pad, act, nt, bf16)
        np.testing.assert_array_equal(dk.view(np.uint8), dk_ref.view(np.uint8))
        np.testing.assert_array_equal(dx.view(np.uint8), dx_ref.view(np.uint8))
        db = np.full(f, np.nan, dtype)
        K.unpool2_colsum(yp, ix, dyp, db, out, act)
        np.testing.assert_array_equal(db.view(np.uint8), db_ref.view(np.uint8))


def test_the_winograd_pair_wrappers_refuse_bad_arguments():
    x = np.zeros((2, 9, 9, 3), np.float32)
    kernel = np.zeros((3, 3, 3, 4), np.float32)
    su, sv, sm = K.wino_sizes(x.shape, kernel.shape, 4, (7, 7))
    U, V = np.empty(su, np.float32), np.empty(sv, np.float32)
    yp, ix = np.empty((2, 3, 3, 4), np.float32), np.empty((2, 3, 3, 4), np.uint8)
    with pytest.raises(ValueError, match=r"yp: expected shape \(2, 3, 3, 4\), got \(2, 3, 4, 4\)"):
        K.wino_pool_forward(x, kernel, None, U, V, np.empty((2, 3, 4, 4), np.float32), ix, (7, 7), 4)
    with pytest.raises(ValueError, match=r"the pair takes a \(3, 3, c, f\) kernel"):
        K.wino_pool_forward(x, np.zeros((1, 3, 3, 4), np.float32), None, U, V, yp, ix, (7, 7), 4)
    for bad in (None, [[1.0]], 3.0):                 # not an ndarray: a TypeError before its shape is read
        with pytest.raises(TypeError, match="yp: expected a numpy.ndarray"):
            K.wino_pool_forward(x, kernel, None, U, V, bad, ix, (7, 7), 4)
    with pytest.raises(ValueError, match="wino_pool_forward: the conv \\+ max pool pair takes relu"):
        K.wino_pool_forward(x, kernel, None, U, V, yp, ix, (7, 7), 4, act=ACT_CODES["sigmoid"])
    with pytest.raises(TypeError, match="idx: expected a C-contiguous uint8 ndarray"):
        K.wino_pool_forward(x, kernel, None, U, V, yp, ix.astype(np.float32), (7, 7), 4)
    with pytest.raises(ValueError, match=r"V: expected shape"):
        K.wino_pool_forward(x, kernel, None, U, V[:-1], yp, ix, (7, 7), 4)
    with pytest.raises(ValueError, match=r"dyp: expected shape \(2, 3, 3, 4\)"):
        K.wino_pool_backward(np.empty((2, 3, 2, 4), np.float32), yp, ix, U, V, np.empty(sm, np.float32),
                             np.empty(su, np.float32), kernel.copy(), None, (9, 9), (7, 7), 4)
    with pytest.raises(ValueError, match=r"db: expected shape \(4,\)"):
        K.unpool2_colsum(yp, ix, yp, np.empty(3, np.float32), (7, 7))


@pytest.mark.parametrize("policy", [None, "mixed_bfloat16"])
@pytest.mark.parametrize("shape", [(16, 16, 32), (15, 17, 32)])
def test_models_with_the_winograd_pair_give_the_unfused_bits(monkeypatch, policy, shape):
    def wide(shape, policy, act):
        kw = {} if policy is None else {"dtype": policy}
        return Sequential([Conv2D(24, 3, activation=act, input_shape=shape, **kw), MaxPooling2D(2),
                           Conv2D(32, 3, activation=act, **kw), MaxPooling2D(),
                           Flatten(), Dense(3, activation="softmax", **kw)])
    from nncore.layers.conv import winograd_tile
    assert winograd_tile(10, (shape[0] - 2, shape[1] - 2), shape[2], 3)       # the first conv takes Winograd
    ref = _run(monkeypatch, False, shape, policy, 1, build=wide)
    for nt in (1, 2):
        got = _run(monkeypatch, True, shape, policy, nt, build=wide)
        assert got[3] == 2
        _assert_same_bits(got, ref)


@pytest.mark.parametrize("act", ["relu", "linear"])
def test_the_winograd_pair_gradients_finite_differences(float64, act):
    """Winograd takes the conv here (F(2x2) for 2 images of 14 x 13 outputs on 64 channels): central
    differences of 40 random entries of x, the kernel and the bias each."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 17, 16, 64))
    conv, pool = Conv2D(5, 3, activation=act), MaxPooling2D(2)
    pool(conv(x))
    conv.kernel[...] = rng.standard_normal(conv.kernel.shape) * 0.2
    conv.bias[...] = rng.standard_normal(conv.bias.shape) * 0.2
    forward, backward = conv._pool_pair(pool)
    forward(x, True)
    assert conv._cur[6] is not None                                  # the Winograd route
    r = rng.standard_normal(forward(x, True).shape)
    dx = backward(r).copy()
    grads = {"x": (x, dx), "kernel": (conv.kernel, conv._grad_of["kernel"].copy()),
             "bias": (conv.bias, conv._grad_of["bias"].copy())}
    for name, (a, g) in grads.items():
        for flat in rng.choice(a.size, 40 if a.size > 40 else a.size, replace=False):
            i = np.unravel_index(flat, a.shape)
            old = a[i]
            a[i] = old + 1e-6
            up = float(np.sum(forward(x, False) * r))
            a[i] = old - 1e-6
            down = float(np.sum(forward(x, False) * r))
            a[i] = old
            np.testing.assert_allclose(g[i], (up - down) / 2e-6, rtol=1e-5, atol=1e-7, err_msg=f"{name}{i}")


def test_paired_models_hook_quantize_and_save_as_the_unpaired(monkeypatch, tmp_path):
    """The pair keeps the layers what users see: a backward hook (nncore.distributed's) wraps the pair's
    step as the conv's (every layer with weights; the pool, which has none, runs inside it), quantize's
    int8 convs run the two layers inside the step, save/load and the weights are the layers'."""
    shape = (12, 12, 1)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((20,) + shape).astype(np.float32)
    y = rng.integers(0, 3, 20)
    outs = {}
    for fuse in (True, False):
        monkeypatch.setattr(plan_mod, "FUSE_CONV_POOL", fuse)
        model = _cnn(shape)
        model.build((None,) + shape)
        wrng = np.random.default_rng(3)
        model.set_weights([(wrng.standard_normal(w.shape) * 0.4).astype(w.dtype) for w in model.get_weights()])
        model.compile(optimizer=nncore.optimizers.SGD(0.05), loss="sparse_categorical_crossentropy")
        model.predict(x, verbose=0)
        seen = []
        model._plan.hook_backward(lambda b, layer: (lambda dy: (seen.append(layer.name), b(dy))[1]))
        model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
        assert len(model._plan.pairs) == (2 if fuse else 0)
        weighted = {layer.name for layer in model.layers if layer.weights}
        pools = {layer.name for layer in model.layers if type(layer) is MaxPooling2D}
        assert weighted <= set(seen) and (set(seen).isdisjoint(pools) if fuse else pools <= set(seen))
        path = tmp_path / f"m{fuse}.keras"
        model.save(path)
        loaded = nncore.load_model(path)
        p_loaded = loaded.predict(x, verbose=0)
        model.quantize("int8")
        outs[fuse] = (model.predict(x, verbose=0), p_loaded, model.get_weights())
    for a, b in zip(outs[True][:2] + tuple(outs[True][2]), outs[False][:2] + tuple(outs[False][2])):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
