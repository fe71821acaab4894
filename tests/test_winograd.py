"""Winograd F(2x2, 3x3) and F(4x4, 3x3) (csrc/winograd.c): the kernels against the direct float64
convolution on awkward shapes, both dtypes, forward, dK and dx, every SIMD level, 1 vs 2 threads; the
layers that take the path against finite differences and im2col; the rule that picks it."""
import numpy as np
import pytest

import nncore
import nncore.layers.conv as conv_mod
from nncore._kernels import conv as K
from nncore._kernels import runtime
from nncore.layers import Conv1D, Conv2D, Dense, Flatten, Input, MaxPooling2D
import reference_bf16 as ref_bf16
from reference_layers import ACTIVATIONS
from test_conv import _check_layer_gradients, one_epoch_weights, ref_col2im, ref_im2col, ref_out

LEVELS = list(range(runtime.simd_level() + 1))   # 0 generic, 1 avx2+fma, 2 avx512


@pytest.fixture(params=LEVELS, ids=lambda v: runtime.simd_name(v))
def level(request):
    runtime.set_simd_level(request.param)
    yield request.param
    runtime.set_simd_level(-1)


class Conv:
    """One convolution's arrays and Winograd work buffers; `run` does forward and backward."""

    def __init__(self, xshape, f, kh, padding, m, dtype, seed=0, act="linear"):
        rng = np.random.default_rng(seed)
        n, h, w, c = xshape
        (oh, pt), (ow, pl) = ref_out(h, kh, 1, 1, padding), ref_out(w, 3, 1, 1, padding)
        self.kh, self.m, self.pad, self.act = kh, m, (pt, pl), act
        self.x = rng.standard_normal(xshape).astype(dtype)
        self.k = rng.standard_normal((kh, 3, c, f)).astype(dtype)
        self.b = rng.standard_normal(f).astype(dtype)
        self.delta = rng.standard_normal((n, oh, ow, f)).astype(dtype)
        sizes = K.wino_sizes(xshape, self.k.shape, m, (oh, ow))
        self.work = [np.full(s, np.nan, dtype) for s in sizes + sizes[:1]]   # NaN: every value is written

    def run(self, n_threads=1, bias=True, dx=True, bf16=False):
        U, V, M, dU = self.work
        code = nncore._kernels.ACT_CODES[self.act]
        y = np.full(self.delta.shape, np.nan, self.x.dtype)
        alpha = nncore._kernels.ACT_DEFAULT_ALPHA.get(self.act, 0.0)
        K.wino_forward(self.x, self.k, self.b if bias else None, U, V, y, self.m, self.pad, code, alpha,
                       n_threads, bf16)
        # inference (V, M None: a block of tiles at a time, nothing kept): the same sums, up to the GEMM's
        # k blocks (c past its KC) adding partial sums; the same bits for any thread count
        yi = np.full(y.shape, np.nan, self.x.dtype)
        for nt in (1, 2):
            K.wino_forward(self.x, self.k, self.b if bias else None, np.full(U.shape, np.nan, U.dtype), None,
                           yi, self.m, self.pad, code, alpha, nt, bf16)
            if nt == 1:
                y1 = yi.copy()
            tol = 1e-5 if self.x.dtype == np.float32 else 1e-12
            np.testing.assert_allclose(yi, y, rtol=tol, atol=tol * np.abs(y).max())
        np.testing.assert_array_equal(yi, y1)
        dk = np.full(self.k.shape, np.nan, self.x.dtype)
        dxa = np.full(self.x.shape, np.nan, self.x.dtype) if dx else None
        out = K.wino_backward(self.delta, U, V, M, dU, dk, dxa, self.x.shape[1:3], self.m, self.pad, n_threads,
                              bf16)
        assert out is dxa
        return y, dk, dxa

    def reference(self, bias=True):
        """The direct float64 convolution, its dK = cols^T delta and dx = col2im(delta K^T)."""
        x, k, d = (a.astype(np.float64) for a in (self.x, self.k, self.delta))
        n, f = x.shape[0], k.shape[3]
        (pt, pl), (oh, ow) = self.pad, d.shape[1:3]
        cols = ref_im2col(x, (self.kh, 3), (1, 1), (1, 1), (pt, pl), (oh, ow))
        z = (cols @ k.reshape(-1, f)).reshape(n, oh, ow, f) + (self.b.astype(np.float64) if bias else 0)
        dk = (cols.T @ d.reshape(-1, f)).reshape(k.shape)
        dx = ref_col2im(d.reshape(-1, f) @ k.reshape(-1, f).T, x.shape, (self.kh, 3), (1, 1), (1, 1), (pt, pl),
                        (oh, ow))
        return ACTIVATIONS[self.act](z), dk, dx


def _rel(a, ref):
    return np.abs(a - ref).max() / max(np.abs(ref).max(), 1e-300)


# F(4x4) loses about a digit in float32 (docs/models.md): tolerances relative to the largest value
TOL = {(np.float64, 2): 1e-13, (np.float64, 4): 1e-12, (np.float32, 2): 2e-6, (np.float32, 4): 4e-5}

# (x shape, filters, kernel height, padding): 1 channel, primes, batch 1, images smaller than a tile,
# partial tiles on both edges, channel and filter counts past a transform chunk (128 float, 64 double)
SHAPES = [
    ((1, 1, 1, 1), 1, 3, "same"),
    ((2, 5, 7, 3), 4, 3, "valid"),
    ((1, 7, 5, 1), 2, 3, "same"),
    ((3, 2, 9, 5), 7, 3, "same"),
    ((2, 11, 6, 13), 5, 3, "valid"),
    ((1, 13, 17, 8), 11, 3, "same"),
    ((2, 3, 3, 131), 67, 3, "valid"),
    ((1, 6, 5, 67), 131, 3, "same"),
    ((2, 1, 17, 7), 3, 1, "same"),       # Conv1D: F(m, 3) along the width
    ((3, 1, 9, 70), 5, 1, "valid"),
    ((1, 1, 4, 2), 3, 1, "same"),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_kernels_match_the_direct_convolution(level, dtype, m, shape):
    xshape, f, kh, padding = shape
    case = Conv(xshape, f, kh, padding, m, dtype, seed=sum(xshape) + f)
    y, dk, dx = case.run()
    ry, rdk, rdx = case.reference()
    tol = TOL[(dtype, m)]
    assert y.dtype == dk.dtype == dx.dtype == dtype
    assert _rel(y, ry) < tol and _rel(dk, rdk) < tol and _rel(dx, rdx) < tol, (_rel(y, ry), _rel(dk, rdk),
                                                                               _rel(dx, rdx))


@pytest.mark.parametrize("act", ["relu", "gelu", "tanh"])
def test_activation_in_the_output_transform_and_no_bias(level, act):
    case = Conv((2, 9, 10, 6), 5, 3, "same", 4, np.float64, act=act)
    y, dk, _ = case.run(bias=False, dx=False)
    ry, rdk, _ = case.reference(bias=False)
    assert _rel(y, ry) < 1e-12 and _rel(dk, rdk) < 1e-12


def test_one_and_two_threads_give_the_same_bits(level):
    # large enough for a team in every phase; partial tiles, channels past one chunk
    for m, shape in ((2, (8, 15, 14, 40)), (4, (8, 15, 14, 40)), (4, (16, 1, 50, 24))):
        outs = []
        for t in (1, 2):
            case = Conv(shape, 20, 3 if shape[1] > 1 else 1, "same", m, np.float32, seed=5)
            outs.append(case.run(n_threads=t))
        for a, b in zip(*outs):
            np.testing.assert_array_equal(a, b)


def test_levels_agree():
    # every SIMD level computes the same convolution (to rounding: FMA contraction and vector widths)
    outs = []
    for lv in LEVELS:
        runtime.set_simd_level(lv)
        try:
            outs.append(Conv((2, 9, 11, 20), 9, 3, "same", 4, np.float32, seed=3).run())
        finally:
            runtime.set_simd_level(-1)
    for other in outs[1:]:
        for a, b in zip(outs[0], other):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * np.abs(a).max())


# ---------------------------------------------------------------- the bf16 form (mixed_bfloat16)
def _bf16_valued(a):
    return not np.any(a.view(np.uint32) & 0xFFFF)


@pytest.mark.parametrize("act", ["relu", "linear", "tanh"])
@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("shape", SHAPES[1:6] + SHAPES[8:10], ids=str)
def test_bf16_form_is_the_float32_path_on_rounded_operands(level, m, shape, act):
    # bf16=True rounds x, the kernel and delta as they are read and y, dK as they are written: the same
    # bits as the float32 path on pre-rounded operands with its y and dK rounded after; dx unrounded
    xshape, f, kh, padding = shape
    case = Conv(xshape, f, kh, padding, m, np.float32, seed=sum(xshape) + f, act=act)
    y, dk, dx = case.run(bf16=True)
    rounded = Conv(xshape, f, kh, padding, m, np.float32, seed=sum(xshape) + f, act=act)
    rounded.x, rounded.k, rounded.delta = ref_bf16.bf16(case.x), ref_bf16.bf16(case.k), ref_bf16.bf16(case.delta)
    y32, dk32, dx32 = rounded.run()
    assert _bf16_valued(y) and _bf16_valued(dk)
    np.testing.assert_array_equal(y.view(np.uint32), ref_bf16.bf16(y32).view(np.uint32))
    np.testing.assert_array_equal(dk.view(np.uint32), ref_bf16.bf16(dk32).view(np.uint32))
    np.testing.assert_array_equal(dx.view(np.uint32), dx32.view(np.uint32))
    # against the NumPy bf16 reference (operands rounded, float64 sums): within one bfloat16 rounding of
    # the result plus Winograd's float32 error (TOL) before it
    ry, rdk, rdx = rounded.reference()
    tol = TOL[(np.float32, m)]
    for a, r in ((y, ry), (dk, rdk)):
        assert np.all(np.abs(a - r) <= 2.0 ** -8 * np.abs(r) + tol * np.abs(r).max()), _rel(a, r)
    assert _rel(dx, rdx) < tol


def test_bf16_form_one_and_two_threads_give_the_same_bits(level):
    for m, shape in ((2, (8, 15, 14, 40)), (4, (8, 15, 14, 40)), (4, (16, 1, 50, 24))):
        outs = [Conv(shape, 20, 3 if shape[1] > 1 else 1, "same", m, np.float32, seed=7, act="relu").run(
            n_threads=t, bf16=True) for t in (1, 2)]
        for a, b in zip(*outs):
            np.testing.assert_array_equal(a, b)


def test_bf16_form_needs_float32():
    case = Conv((2, 6, 6, 3), 4, 3, "same", 2, np.float64)
    U, V, M, dU = case.work
    with pytest.raises(TypeError, match="bf16=True needs float32"):
        K.wino_forward(case.x, case.k, case.b, U, V, np.empty(case.delta.shape), 2, case.pad, bf16=True)
    with pytest.raises(TypeError, match="bf16=True needs float32"):
        K.wino_backward(case.delta, U, V, M, dU, np.empty_like(case.k), None, (6, 6), 2, case.pad, bf16=True)


def test_wrappers_refuse_bad_arguments():
    case = Conv((2, 6, 6, 3), 4, 3, "same", 2, np.float32)
    U, V, M, dU = case.work
    y = np.empty(case.delta.shape, np.float32)
    with pytest.raises(ValueError, match="m: expected 2 or 4"):
        K.wino_forward(case.x, case.k, case.b, U, V, y, 3, case.pad)
    with pytest.raises(ValueError, match="kernel: expected shape"):
        K.wino_forward(case.x, np.zeros((2, 3, 3, 4), np.float32), case.b, U, V, y, 2, case.pad)
    with pytest.raises(ValueError, match="V: expected shape"):
        K.wino_forward(case.x, case.k, case.b, U, V[:-1], y, 2, case.pad)
    with pytest.raises(TypeError, match="V: expected dtype float32"):
        K.wino_forward(case.x, case.k, case.b, U, V.astype(np.float64), y, 2, case.pad)
    with pytest.raises(ValueError, match="x: expected shape"):
        K.wino_forward(np.ascontiguousarray(case.x[:, :, :, :2]), case.k, case.b, U, V, y, 2, case.pad)
    with pytest.raises(ValueError, match="y: expected shape"):
        K.wino_forward(case.x, case.k, case.b, U, V, np.empty((2, 6, 6, 3), np.float32), 2, case.pad)
    with pytest.raises(ValueError, match="bias: expected shape"):
        K.wino_forward(case.x, case.k, case.b[:3], U, V, y, 2, case.pad)
    with pytest.raises(ValueError, match="read-only"):
        K.wino_forward(case.x, case.k, case.b, U, V, np.broadcast_to(y, y.shape), 2, case.pad)
    dk = np.empty_like(case.k)
    with pytest.raises(ValueError, match="dx: expected shape"):
        K.wino_backward(case.delta, U, V, M, dU, dk, np.empty((2, 6, 5, 3), np.float32), (6, 6), 2, case.pad)
    with pytest.raises(ValueError, match="dU: expected shape"):
        K.wino_backward(case.delta, U, V, M, dU[:1], dk, None, (6, 6), 2, case.pad)
    with pytest.raises(TypeError, match="M: expected dtype float32"):
        K.wino_backward(case.delta, U, V, M.astype(np.float64), dU, dk, None, (6, 6), 2, case.pad)


# ------------------------------------------------------------------------------------- the layers
def test_the_rule_is_a_function_of_the_shapes():
    tile = conv_mod.winograd_tile
    assert tile(128, (11, 11), 32, 3) == 4                      # the cnn row's second convolution
    assert tile(128, (26, 26), 1, 3) == 0                       # one channel: im2col
    assert tile(1, (3, 3), 32, 3) == 0                          # a tiny problem
    assert tile(32, (5, 5), 32, 3) == 0                         # mostly padding in 8 x 8 tiles
    assert tile(32, (28, 28), 64, 3) == 4 and tile(32, (1, 128), 128, 1) == 4
    for args in [(32, (28, 28), 64, 3), (8, (7, 7), 16, 3), (4, (1, 100), 32, 1), (64, (6, 6), 64, 3)]:
        assert tile(*args) == tile(*args) in (0, 2, 4)


def _wino_path(layer, n):
    """The tile m the layer runs at batch n (0: im2col)."""
    bufs = layer._bufs.get(n)
    return bufs[6][0] if bufs and bufs[6] else 0


def _force(monkeypatch, m):
    """Every convolution built from now on takes tile m (0: im2col), whatever the rule says."""
    monkeypatch.setattr(conv_mod, "winograd_tile", lambda *a: m)


@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("act", ["linear", "tanh", "swish"])
def test_conv2d_on_the_winograd_path_finite_differences(float64, monkeypatch, m, padding, act):
    rng = np.random.default_rng(11)
    _force(monkeypatch, m)
    layer = Conv2D(4, 3, padding=padding, activation=act)
    _check_layer_gradients(layer, rng.standard_normal((2, 7, 9, 3)) * 0.5, rng)
    assert _wino_path(layer, 2) == m


@pytest.mark.parametrize("m", [2, 4])
def test_conv1d_on_the_winograd_path_finite_differences(float64, monkeypatch, m):
    rng = np.random.default_rng(12)
    _force(monkeypatch, m)
    for padding in ("valid", "same", "causal"):
        layer = Conv1D(5, 3, padding=padding, activation="tanh")
        _check_layer_gradients(layer, rng.standard_normal((3, 13, 4)) * 0.5, rng)
        assert _wino_path(layer, 3) == m, padding


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_layers_match_im2col(monkeypatch, dtype):
    # the same layer on im2col (the reference path) computes the same forward, dK, db and dx
    rng = np.random.default_rng(13)
    x = rng.standard_normal((64, 12, 13, 32)).astype(dtype)
    r = rng.standard_normal((64, 12, 13, 8)).astype(dtype)
    outs = []
    for m in (None, 0):
        if m == 0:
            _force(monkeypatch, 0)
        nncore.set_floatx(dtype)
        try:
            nncore.set_seed(1)
            layer = Conv2D(8, 3, padding="same", activation="relu")
            layer(x)
        finally:
            nncore.set_floatx("float32")
        y = layer.forward(x, True).copy()
        dx = layer.backward(r).copy()
        outs.append((y, layer._grad_of["kernel"].copy(), layer._grad_of["bias"].copy(), dx))
        assert _wino_path(layer, 64) == (4 if m is None else 0)    # the rule's own choice, then im2col
    tol = 3e-5 if dtype == "float32" else 1e-12
    for a, b in zip(*outs):
        assert _rel(a, b) < tol


def _step_gradients(monkeypatch, x, y, dtype, winograd):
    """The flat gradient after one step of an MNIST-shaped CNN (the cnn bench row's), and each
    convolution's tile."""
    with monkeypatch.context() as mp:
        if not winograd:
            _force(mp, 0)
        nncore.set_floatx(dtype)
        try:
            nncore.set_seed(4)
            model = nncore.Sequential([Input(shape=x.shape[1:]), Conv2D(32, 3, activation="relu"), MaxPooling2D(2),
                                       Conv2D(64, 3, activation="relu"), MaxPooling2D(2), Flatten(),
                                       Dense(10, activation="softmax")])
            model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
            model.fit(x.astype(dtype), y, epochs=1, batch_size=len(x), shuffle=False, verbose=0)
        finally:
            nncore.set_floatx("float32")
    paths = [_wino_path(layer, len(x)) for layer in model.layers if isinstance(layer, Conv2D)]
    return model._grads.astype(np.float64), paths


def test_training_step_error(monkeypatch):
    # the bound: a float32 training step by Winograd within 1e-5 (relative) of im2col's
    rng = np.random.default_rng(14)
    x, y = rng.random((64, 28, 28, 1)), rng.integers(0, 10, 64)
    gw, paths = _step_gradients(monkeypatch, x, y, "float32", True)
    gi, ipaths = _step_gradients(monkeypatch, x, y, "float32", False)
    g64, _ = _step_gradients(monkeypatch, x, y, "float64", False)
    assert paths == [0, 4] and ipaths == [0, 0]
    rel = lambda a, b: np.linalg.norm(a - b) / np.linalg.norm(b)
    assert rel(gw, gi) < 1e-5, rel(gw, gi)
    assert rel(gw, g64) < 1e-5 and rel(gi, g64) < 1e-5


def test_training_on_the_winograd_path_is_the_same_for_one_and_two_threads():
    rng = np.random.default_rng(15)
    x = rng.standard_normal((128, 12, 12, 32)).astype(np.float32)
    y = rng.integers(0, 10, 128)
    layers = lambda: [Conv2D(32, 3, padding="same", activation="relu"), Conv2D(16, 3, activation="relu"), Flatten(),
                      Dense(10, activation="softmax")]
    runs = [one_epoch_weights(layers, x, y, t, batch_size=64) for t in (1, 2)]
    for model, _ in runs:
        assert [_wino_path(layer, 64) for layer in model.layers[:2]] == [4, 4]
    for a, b in zip(runs[0][1], runs[1][1]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("winograd", [True, False], ids=["winograd", "im2col"])
def test_a_shared_convolution_in_a_functional_model(monkeypatch, winograd):
    # one Conv2D called on two inputs: each node runs the path on buffers of its own, and the kernel's
    # gradient is the sum of the two nodes' (float64 against the same model with im2col forced)
    rng = np.random.default_rng(16)
    xa, xb = rng.standard_normal((2, 16, 12, 12, 32))
    y = rng.standard_normal((16, 1))

    def step(m):
        with monkeypatch.context() as mp:
            if m is not None:
                _force(mp, m)
            nncore.set_floatx("float64")
            try:
                nncore.set_seed(6)
                a, b = Input(shape=(12, 12, 32)), Input(shape=(12, 12, 32))
                conv = Conv2D(8, 3, padding="same", activation="relu")
                z = nncore.layers.Add()([conv(a), conv(b)])
                model = nncore.Model([a, b], Dense(1)(Flatten()(z)))
                model.compile(optimizer="sgd", loss="mse")
                model.fit([xa, xb], y, epochs=1, batch_size=16, shuffle=False, verbose=0)
            finally:
                nncore.set_floatx("float32")
        return model.predict([xa, xb], batch_size=16, verbose=0), model._grads.copy(), _wino_path(conv, 16)

    pw, gw, path = step(None if winograd else 0)
    assert path == (4 if winograd else 0)
    pr, gr, _ = step(0)
    assert _rel(pw, pr) < 1e-12 and _rel(gw, gr) < 1e-12
