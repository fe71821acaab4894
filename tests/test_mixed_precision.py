"""mixed_bfloat16 (nncore.mixed_precision): the policies and their refusals as Keras 3 names them;
a layer's dtype argument, config, save/load; Dense and Conv2D under the policy to the bit against
the NumPy oracle (tests/reference_bf16.py: operands rounded to bfloat16, vdpbf16ps's float32 chain,
the float32 epilogue, outputs and gradients rounded to bfloat16); float32 variables and optimizer
state; the float paths it must keep off (DenseChain, Winograd); thread counts give the same bits;
the digits MLP trains to the float32 accuracy within 0.5 points (the cnn example: test_examples)."""
import warnings

import numpy as np
import pytest

import nncore
import reference_bf16 as ref
from nncore import mixed_precision as mp
from nncore._kernels import conv as _conv
from nncore.layers import Conv2D, Dense, Flatten, MaxPooling2D
from nncore.models import Sequential

pytestmark = pytest.mark.filterwarnings("ignore:mixed_bfloat16:RuntimeWarning")   # the emulation's (tested once)


@pytest.fixture(autouse=True)
def _default_policy():
    yield
    mp.set_global_policy(None)


def _bits(x):
    return np.ascontiguousarray(x, np.float32).view(np.uint32)


def _is_bf16(x):
    return np.array_equal(_bits(x), _bits(ref.bf16(x)))


def test_policies_and_refusals():
    p = mp.Policy("mixed_bfloat16")
    assert (p.name, p.compute_dtype, p.variable_dtype) == ("mixed_bfloat16", "bfloat16", "float32")
    assert repr(p) == '<DTypePolicy "mixed_bfloat16">' and mp.DTypePolicy is mp.Policy
    assert mp.Policy("float64").compute_dtype == "float64"
    assert mp.global_policy().name == "float32"
    with nncore._config.using_floatx("float64"):
        assert mp.global_policy().name == "float64"
    with pytest.raises(ValueError, match="mixed_float16.*use 'mixed_bfloat16'"):
        mp.set_global_policy("mixed_float16")
    with pytest.raises(ValueError, match="float32"):
        mp.Policy("bfloat16")
    with pytest.raises(ValueError, match="valid policies"):
        mp.Policy("int4")
    with pytest.raises(TypeError, match="string"):
        mp.Policy(32)
    with pytest.raises(ValueError, match="mixed_float16"):
        Dense(3, dtype="mixed_float16")
    assert mp.get({"class_name": "DTypePolicy", "config": {"name": "mixed_bfloat16"}}) == p


def test_global_and_per_layer_policy():
    before = Dense(4)
    with pytest.warns(RuntimeWarning, match="no speed-up") if mp.bf16_kernel() != "avx512bf16" else warnings.catch_warnings():
        mp._warned = False
        mp.set_global_policy("mixed_bfloat16")
    assert mp.global_policy().name == "mixed_bfloat16"
    d, c, pool = Dense(4), Conv2D(2, 3), MaxPooling2D(2)
    assert d.dtype_policy.name == "mixed_bfloat16" and d.compute_dtype == "bfloat16" and d.variable_dtype == "float32"
    assert c.compute_dtype == "bfloat16"
    assert pool.dtype_policy.name == "mixed_bfloat16" and pool.compute_dtype == "float32"   # computes in float32
    assert before.compute_dtype == "float32"                  # taken when created, as in Keras
    assert Dense(4, dtype="float32").compute_dtype == "float32"
    mp.set_global_policy(None)
    assert Dense(4, dtype=mp.Policy("mixed_bfloat16")).compute_dtype == "bfloat16"
    cfg = Dense(4, dtype="mixed_bfloat16").get_config()
    assert cfg["dtype"] == "mixed_bfloat16"
    assert Dense.from_config(cfg).compute_dtype == "bfloat16"
    assert "dtype" not in Dense(4).get_config()               # no policy set: the float configs are unchanged


def _model(policy, seed=0):
    nncore.set_seed(seed)
    m = Sequential([Dense(32, input_dim=12, activation="relu", dtype=policy), Dense(5, activation="softmax",
                                                                                   dtype=policy)])
    m.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
    return m


def test_variables_and_optimizer_state_stay_float32_and_save_load(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((40, 12)).astype(np.float32), rng.integers(0, 5, 40)
    m = _model("mixed_bfloat16")
    m.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert all(w.dtype == np.float32 for w in m.get_weights())
    assert not _is_bf16(m.layers[0].kernel)                   # float32 updates of float32 variables
    state = m.optimizer.get_state()
    assert all(a.dtype == np.float32 for a in state.values() if isinstance(a, np.ndarray))
    m.save(tmp_path / "m.nncore")
    m2 = nncore.load_model(tmp_path / "m.nncore")
    assert [layer.compute_dtype for layer in m2.layers] == ["bfloat16", "bfloat16"]
    assert np.array_equal(m.predict(x, verbose=0), m2.predict(x, verbose=0))
    with nncore._config.using_floatx("float64"):
        with pytest.raises(ValueError, match="mixed_bfloat16.*float64"):
            Sequential([Dense(3, input_dim=2, dtype="mixed_bfloat16")])


def test_dense_to_the_bit():
    # k >= _BF16_SHORT_K and u >= _BF16_NARROW_N: the bf16 GEMM
    rng = np.random.default_rng(1)
    n, k, u = 37, 67, 19
    layer = Dense(u, activation="relu", dtype="mixed_bfloat16")
    x = rng.standard_normal((n, k)).astype(np.float32)
    layer(x)
    layer.kernel[...] = rng.standard_normal(layer.kernel.shape)
    layer.bias[...] = rng.standard_normal(u)
    W, b = layer.kernel, layer.bias
    y = layer.forward(x, True).copy()
    want = ref.bf16(np.maximum(ref.gemm_chain(x, W) + b, 0))
    assert np.array_equal(_bits(y), _bits(want))
    dy = rng.standard_normal((n, u)).astype(np.float32)
    dx = layer.backward(dy).copy()
    delta = np.where(want > 0, dy, np.float32(0))
    assert np.array_equal(_bits(layer._grad_of["kernel"]), _bits(ref.bf16(ref.gemm_chain(x.T, delta))))
    assert np.array_equal(_bits(dx), _bits(ref.bf16(ref.gemm_chain(delta, W.T))))
    db = layer._grad_of["bias"]
    assert _is_bf16(db) and np.allclose(db, delta.sum(0), rtol=2 ** -8, atol=1e-6)


def test_dense_short_k_same_bits_on_every_simd_level_and_bf16_kernel():
    # the float32 route of a short k: exact products summed in order p = 0 .. k-1 by every float32 GEMM
    # kernel, so y, dW and dx are the same bits at every SIMD level and with every bf16 kernel set
    from nncore._kernels import gemm as G
    from nncore._kernels import runtime
    rng = np.random.default_rng(12)
    x = rng.standard_normal((53, 19)).astype(np.float32)
    dy = rng.standard_normal((53, 29)).astype(np.float32)
    layer = Dense(29, activation="relu", dtype="mixed_bfloat16")
    layer(x)
    layer.kernel[...] = rng.standard_normal(layer.kernel.shape)
    runs = []
    try:
        for lv in range(runtime.simd_level() + 1):
            runtime.set_simd_level(lv)
            for kernel in ("avx512bf16", "avx2-emulated", "generic-emulated"):
                if G.bf16_available(kernel):
                    G.bf16_set_kernel(kernel)
                    y = layer.forward(x, True).copy()
                    assert layer._cur[4] is not None
                    runs.append((y, layer.backward(dy).copy(), layer._grad_of["kernel"].copy()))
    finally:
        G.bf16_set_kernel(None)
        runtime.set_simd_level(-1)
    assert len(runs) > 1
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            assert np.array_equal(_bits(a), _bits(b))


@pytest.mark.parametrize("k,u", [(19, 29), (5, 3), (63, 1), (40, 100), (100, 10), (1600, 15)])
@pytest.mark.parametrize("act", ["relu", "linear", "softmax"])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_dense_short_or_narrow_on_the_float32_gemm(k, u, act, n_threads):
    # k < _BF16_SHORT_K or u < _BF16_NARROW_N: the float32 GEMM on x and W rounded to bfloat16, z, dW, dx
    # rounded in its epilogue, delta rounded before: the same bits as those products made by hand with
    # nncore's gemm, within float32 summation order of the vdpbf16ps chain oracle; the fused loss's route too
    from nncore._kernels import ACT_BF16
    from nncore._kernels.gemm import gemm
    rng = np.random.default_rng(11)
    n = 41
    layer = Dense(u, activation=act, dtype="mixed_bfloat16")
    x = rng.standard_normal((n, k)).astype(np.float32)
    layer(x)
    layer._n_threads = n_threads
    layer.kernel[...] = rng.standard_normal(layer.kernel.shape)
    layer.bias[...] = rng.standard_normal(u)
    xb, Wb = ref.bf16(x), ref.bf16(layer.kernel)
    y = layer.forward(x, True).copy()
    assert layer._cur[4] is not None
    z = np.empty((n, u), np.float32)
    gemm(xb, Wb, z, bias=layer.bias, act=ACT_BF16, n_threads=n_threads)
    if act == "softmax":
        want = np.exp(z - z.max(1, keepdims=True))
        want /= want.sum(1, keepdims=True)
        np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-7)
    else:
        want = np.maximum(z, 0) if act == "relu" else z
        assert _is_bf16(y) and np.array_equal(_bits(y), _bits(want))
    np.testing.assert_allclose(z, ref.bf16(ref.gemm_chain(x, layer.kernel) + layer.bias), rtol=2.0 ** -7, atol=1e-5)
    dy = rng.standard_normal((n, u)).astype(np.float32)
    if act == "softmax":
        delta = ref.bf16(y * (dy - (dy * y).sum(1, keepdims=True)))
        dx = layer.backward(dy).copy()
        np.testing.assert_allclose(layer._cur[2], delta, rtol=2.0 ** -7, atol=1e-6)
        delta = layer._cur[2].copy()
    else:
        delta = ref.bf16(np.where(want > 0, dy, np.float32(0)) if act == "relu" else dy)
        dx = layer.backward(dy).copy()
    dW, want_dx = np.empty((k, u), np.float32), np.empty((n, k), np.float32)
    gemm(xb, delta, dW, trans_a=True, act=ACT_BF16, n_threads=n_threads)
    gemm(delta, Wb, want_dx, trans_b=True, act=ACT_BF16, n_threads=n_threads)
    assert _is_bf16(layer._grad_of["kernel"]) and _is_bf16(dx)
    assert np.array_equal(_bits(layer._grad_of["kernel"]), _bits(dW))
    assert np.array_equal(_bits(dx), _bits(want_dx))
    np.testing.assert_allclose(dW, ref.bf16(ref.gemm_chain(xb.T, delta)), rtol=2.0 ** -7, atol=1e-5)
    # the fused loss's route: z from forward_logits, the loss's delta rounded by the layer
    zl, _ = layer.forward_logits(x)
    assert np.array_equal(_bits(zl), _bits(z))
    g = rng.standard_normal((n, u)).astype(np.float32)
    dx2 = layer.backward_logits(g.copy())
    gemm(ref.bf16(g), Wb, want_dx, trans_b=True, act=ACT_BF16, n_threads=n_threads)
    assert np.array_equal(_bits(dx2), _bits(want_dx))


def test_softmax_and_loss_in_float32():
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((16, 12)).astype(np.float32), rng.integers(0, 5, 16)
    m = _model("mixed_bfloat16")
    p = m.predict(x, verbose=0)
    probs = m.layers[1].forward(m.layers[0].forward(x))
    assert _is_bf16(m.layers[1]._cur[0])                      # the logits z: bfloat16 values ...
    logits = ref.bf16(ref.gemm_chain(m.layers[0].forward(x), m.layers[1].kernel) + m.layers[1].bias)
    want = np.exp(logits - logits.max(1, keepdims=True))
    want /= want.sum(1, keepdims=True)
    assert not _is_bf16(p)                                    # ... the probabilities float32
    np.testing.assert_allclose(p, want, rtol=1e-5, atol=1e-7)
    assert np.array_equal(probs, p)
    loss = m.evaluate(x, y, verbose=0)
    assert np.isclose(loss, -np.mean(np.log(want[np.arange(16), y])), rtol=1e-5)


def test_conv2d_on_the_bf16_gemm_to_the_bit():
    rng = np.random.default_rng(3)
    layer = Conv2D(29, 3, activation="relu", dtype="mixed_bfloat16")
    x = rng.standard_normal((3, 9, 8, 8)).astype(np.float32)
    layer(x)
    layer.kernel[...] = rng.standard_normal(layer.kernel.shape)
    layer.bias[...] = rng.standard_normal(29)
    y = layer.forward(x, True).copy()
    assert layer._cur[6] is None and layer._cur[7] is None    # im2col + the bf16 GEMM (k = 72, 29 filters: the rule)
    cols = np.empty((3 * 7 * 6, 72), np.float32)
    _conv.im2col(x, cols, (3, 3), (1, 1), (1, 1), (0, 0), (7, 6), 1)
    K = layer.kernel.reshape(72, 29)
    z = ref.bf16(np.maximum(ref.gemm_chain(cols, K) + layer.bias, 0))
    assert np.array_equal(_bits(y), _bits(z.reshape(y.shape)))
    dy = rng.standard_normal(y.shape).astype(np.float32)
    layer.backward(dy)
    delta = np.where(z > 0, dy.reshape(z.shape), np.float32(0))
    assert np.array_equal(_bits(layer._grad_of["kernel"].reshape(72, 29)), _bits(ref.bf16(ref.gemm_chain(cols.T, delta))))


@pytest.mark.parametrize("act", ["relu", "linear", "tanh"])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_conv2d_short_k_on_the_float32_gemm(act, n_threads):
    # k = 3 3 2 = 18 < _BF16_SHORT_K: the float32 GEMM on operands rounded to bfloat16 (x before im2col, the
    # kernel, delta), y, dK and dcols rounded after: the same bits as that product made by hand with nncore's
    # gemm, and within float32 summation order (one bfloat16 rounding of y, dK) of the vdpbf16ps chain oracle
    from nncore._kernels import ACT_BF16
    from nncore._kernels.gemm import gemm
    rng = np.random.default_rng(7)
    layer = Conv2D(5, 3, activation=act, dtype="mixed_bfloat16")
    x = rng.standard_normal((3, 9, 8, 2)).astype(np.float32)
    layer(x)
    layer._n_threads = n_threads
    layer.kernel[...] = rng.standard_normal(layer.kernel.shape)
    layer.bias[...] = rng.standard_normal(5)
    y = layer.forward(x, True).copy()
    assert layer._cur[6] is None and layer._cur[7] is not None
    assert _is_bf16(y)
    cols = np.empty((3 * 7 * 6, 18), np.float32)
    _conv.im2col(ref.bf16(x), cols, (3, 3), (1, 1), (1, 1), (0, 0), (7, 6), 1)
    Kb = ref.bf16(layer.kernel.reshape(18, 5))
    z = np.empty((126, 5), np.float32)
    gemm(cols, Kb, z, bias=layer.bias, n_threads=n_threads)
    f = {"relu": lambda v: np.maximum(v, 0), "linear": lambda v: v, "tanh": np.tanh}[act]
    want = ref.bf16(f(z))
    if act != "tanh":                                         # tanh: nncore's own tanh, not NumPy's
        assert np.array_equal(_bits(y), _bits(want.reshape(y.shape)))
    chain = ref.bf16(f(ref.gemm_chain(cols, Kb) + layer.bias))
    np.testing.assert_allclose(y.reshape(chain.shape), chain, rtol=2.0 ** -7, atol=1e-6)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = layer.backward(dy).copy()
    fy = y.reshape(z.shape)
    dz = {"relu": lambda: np.where(fy > 0, dy.reshape(z.shape), 0), "linear": lambda: dy.reshape(z.shape),
          "tanh": lambda: dy.reshape(z.shape) * (1 - fy * fy)}[act]()
    delta = ref.bf16(dz.astype(np.float32))
    dk = layer._grad_of["kernel"].reshape(18, 5)
    assert _is_bf16(dk)
    want_dk = np.empty((18, 5), np.float32)
    gemm(cols, delta, want_dk, trans_a=True, n_threads=n_threads)
    if act != "tanh":
        assert np.array_equal(_bits(dk), _bits(ref.bf16(want_dk)))
    np.testing.assert_allclose(dk, ref.bf16(ref.gemm_chain(cols.T, delta)), rtol=2.0 ** -7, atol=1e-5)
    dcols = np.empty((126, 18), np.float32)                  # dcols rounded, as the bf16 GEMM gives it
    gemm(delta, Kb, dcols, trans_b=True, act=ACT_BF16, n_threads=n_threads)
    want_dx = np.zeros(x.shape, np.float32)
    _conv.col2im(dcols, want_dx, (3, 3), (1, 1), (1, 1), (0, 0), (7, 6), 1)
    if act != "tanh":
        assert np.array_equal(_bits(dx), _bits(want_dx))
    np.testing.assert_allclose(dx, want_dx, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("tile", [None, 2, 4])
def test_conv2d_on_the_winograd_path_is_the_bf16_convolution(monkeypatch, tile):
    # where the rule (None) or a forced tile takes Winograd: the bf16 form of csrc/winograd.c, the operands
    # rounded to bfloat16 and float32 sums; against the same layer on im2col + the bf16 GEMM (the reference
    # route) within a bfloat16 rounding of y and dK (Winograd's float32 error flips a few ties), dx close
    rng = np.random.default_rng(6)
    x = rng.standard_normal((16, 13, 13, 32)).astype(np.float32)
    dy = rng.standard_normal((16, 11, 11, 8)).astype(np.float32)
    import nncore.layers.conv as conv_mod
    outs = []
    for force in (tile, 0):
        with monkeypatch.context() as m:
            if force is not None:
                m.setattr(conv_mod, "winograd_tile", lambda *a, _t=force: _t)
            layer = Conv2D(8, 3, activation="relu", dtype="mixed_bfloat16")
            layer(x[:1])
            layer.kernel[...] = rng.standard_normal(layer.kernel.shape) * 0.2 if not outs else outs[0][3]
            layer.bias[...] = 0.1
            y = layer.forward(x, True).copy()
            dx = layer.backward(dy).copy()
            outs.append((y, layer._grad_of["kernel"].copy(), dx, layer.kernel.copy(),
                         layer._cur[6][0] if layer._cur[6] else 0))
    (yw, dkw, dxw, _, path), (yi, dki, dxi, _, ipath) = outs
    assert path == (tile or 4) and ipath == 0
    assert _is_bf16(yw) and _is_bf16(dkw)
    for a, b in ((yw, yi), (dkw, dki)):
        assert np.all(np.abs(a - b) <= 2.0 ** -7 * np.abs(b) + 1e-5 * np.abs(b).max())
        assert np.mean(a != b) < 0.05                        # most values the same bfloat16
    assert np.abs(dxw - dxi).max() <= 2e-2 * np.abs(dxi).max()


def test_digits_cnn_on_winograd_reaches_the_float32_accuracy(monkeypatch):
    # the cnn example with every 3x3 convolution on Winograd F(4x4) (the rule leaves its 16-channel layer on
    # im2col): mixed_bfloat16 within 0.5 points of float32
    import importlib.util
    import os
    import nncore.layers.conv as conv_mod
    path = os.path.join(os.path.dirname(__file__), os.pardir, "examples", "cnn_digits.py")
    spec = importlib.util.spec_from_file_location("cnn_digits_wino", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(conv_mod, "winograd_tile", lambda *a: 4)
    f32 = module.main(epochs=5)
    bf16 = module.main(epochs=5, policy="mixed_bfloat16")
    assert f32["accuracy"] > 0.95
    assert bf16["accuracy"] >= f32["accuracy"] - 0.005, (f32, bf16)


def test_fit_same_bits_for_1_and_2_threads_and_predict_off_the_dense_chain():
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((300, 12)).astype(np.float32), rng.integers(0, 5, 300)
    runs = []
    for nt in (1, 2):
        m = _model("mixed_bfloat16")
        m.compile(loss="sparse_categorical_crossentropy", optimizer="adam", n_threads=nt)
        m.fit(x, y, epochs=2, batch_size=150, verbose=0)
        runs.append(m.get_weights())
        p = m.predict(x, verbose=0)
        h = ref.bf16(np.maximum(ref.gemm_chain(x, m.layers[0].kernel) + m.layers[0].bias, 0))
        assert np.array_equal(_bits(m.layers[0].forward(x)), _bits(h))
        assert np.allclose(p, m.layers[1].forward(h), rtol=1e-6)
    for a, b in zip(*runs):
        assert np.array_equal(a, b)


def _digits():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    return train_test_split((X / 16).astype(np.float32), y, test_size=0.25, random_state=0, stratify=y)


def test_digits_mlp_reaches_the_float32_accuracy():
    Xtr, Xte, ytr, yte = _digits()
    acc = {}
    for policy in ("float32", "mixed_bfloat16"):
        mp.set_global_policy(policy)
        nncore.set_seed(0)
        m = Sequential([Dense(128, input_dim=64, activation="relu"), Dense(10, activation="softmax")])
        m.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
        m.fit(Xtr, ytr, epochs=15, batch_size=32, verbose=0)
        acc[policy] = m.evaluate(Xte, yte, verbose=0)[1]
    assert acc["float32"] > 0.95
    assert acc["mixed_bfloat16"] >= acc["float32"] - 0.005, acc


def test_no_allocation_in_steady_state():
    from steady_state import growth_between_epochs

    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((160, 8, 8, 1)).astype(np.float32), rng.integers(0, 3, 160)
    mp.set_global_policy("mixed_bfloat16")
    m = Sequential([nncore.Input(shape=(8, 8, 1)), Conv2D(4, 3, activation="relu"), MaxPooling2D(2), Flatten(),
                    Dense(3, activation="softmax")])
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    growth = growth_between_epochs(m, x, y, batch_size=16, verbose=0)   # 4 epochs x 10 steps
    assert growth < 3000, growth


@pytest.mark.parametrize("rows", [1, 64])
def test_inference_fast_paths_keep_the_policy(rows):
    # model(x), predict_on_batch and predict of a Dense(+Dropout) model take one-call float32 paths
    # (DenseLayers, DenseChain) under the float32 policy; under mixed_bfloat16 they must not
    from nncore.layers import Dropout, Input

    rng = np.random.default_rng(rows)
    x = rng.standard_normal((rows, 40)).astype(np.float32)

    def build(policy):
        mp.set_global_policy(policy)
        try:
            return Sequential([Input((40,)), Dense(24, activation="relu"), Dropout(0.2), Dense(5)])
        finally:
            mp.set_global_policy("float32")

    bf, fl = build("mixed_bfloat16"), build("float32")
    fl.set_weights(bf.get_weights())
    want = x
    for layer in (bf.layers[0], bf.layers[2]):   # the bf16 oracle: operands rounded, float32 sums, bf16 outputs
        W, b = layer.get_weights()
        z = ref.bf16(want).astype(np.float64) @ ref.bf16(W).astype(np.float64) + b
        want = ref.bf16((np.maximum(z, 0) if layer is bf.layers[0] else z).astype(np.float32))
    for y in (np.asarray(bf(x)), bf.predict_on_batch(x), bf.predict(x, verbose=0)):
        np.testing.assert_allclose(y, want, rtol=8e-3, atol=1e-5)      # one bf16 ulp: rounding ties
        assert np.abs(y - np.asarray(fl(x))).max() > 1e-4              # not the float32 numbers


@pytest.mark.parametrize("shape,route", [((4, 12, 11, 2), "short k"), ((16, 13, 13, 32), "winograd")])
def test_conv_routes_are_the_same_bits_on_every_bf16_kernel(shape, route):
    # neither route runs the bf16 GEMM, so the bf16 kernel in use (avx512bf16, the emulations) cannot change
    # a bit; the short-k route (exact products summed in order p = 0 .. k-1 by every float32 GEMM kernel) is
    # also the same bits at every SIMD level, Winograd's float32 transforms are not (FMA contraction)
    from nncore._kernels import gemm as G
    from nncore._kernels import runtime
    rng = np.random.default_rng(9)
    x = rng.standard_normal(shape).astype(np.float32)
    layer = Conv2D(8, 3, activation="relu", dtype="mixed_bfloat16")
    layer(x[:1])
    layer.kernel[...] = rng.standard_normal(layer.kernel.shape) * 0.3
    dy = rng.standard_normal((shape[0], shape[1] - 2, shape[2] - 2, 8)).astype(np.float32)

    def run():
        y = layer.forward(x, True).copy()
        dx = layer.backward(dy).copy()
        assert (layer._cur[7] is not None) == (route == "short k") and bool(layer._cur[6]) == (route == "winograd")
        return y, layer._grad_of["kernel"].copy(), dx

    runs = []
    levels = range(runtime.simd_level() + 1) if route == "short k" else [runtime.simd_level()]
    try:
        for lv in levels:
            runtime.set_simd_level(lv)
            for kernel in ("avx512bf16", "avx2-emulated", "generic-emulated"):
                if G.bf16_available(kernel):
                    G.bf16_set_kernel(kernel)
                    runs.append(run())
    finally:
        G.bf16_set_kernel(None)
        runtime.set_simd_level(-1)
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            assert np.array_equal(_bits(a), _bits(b))


def test_cnn_fit_same_bits_for_1_and_2_threads():
    # conv1 on the short-k route, conv2 on Winograd's bf16 form, the Dense on the bf16 GEMM
    rng = np.random.default_rng(10)
    x, y = rng.standard_normal((96, 12, 12, 1)).astype(np.float32), rng.integers(0, 4, 96)
    runs = []
    for nt in (1, 2):
        mp.set_global_policy("mixed_bfloat16")
        nncore.set_seed(3)
        m = Sequential([nncore.Input(shape=(12, 12, 1)), Conv2D(32, 3, activation="relu"),
                        Conv2D(16, 3, activation="relu"), MaxPooling2D(2), Flatten(), Dense(4, activation="softmax")])
        mp.set_global_policy(None)
        m.compile(loss="sparse_categorical_crossentropy", optimizer="adam", n_threads=nt)
        m.fit(x, y, epochs=2, batch_size=48, verbose=0)
        assert m.layers[0]._cur[7] is not None and m.layers[1]._cur[6][0] == 4
        runs.append(m.get_weights())
    for a, b in zip(*runs):
        assert np.array_equal(_bits(a), _bits(b))
