"""The dense chain (inference through consecutive Dense layers a block of rows at a time): the kernel
against a float64 reference on every SIMD level, awkward shapes, 1 vs 2 threads bit for bit, the NaN
check, stale packed kernels; Sequential.predict on it equals the layer-by-layer forward."""
import numpy as np
import pytest

import nncore
from nncore._kernels import ACT_CODES, runtime
from nncore._kernels.gemm import dense_chain, pack_b
from nncore.layers import Dense
from nncore.layers.core import DenseChain
from nncore.models import Sequential

LEVELS = list(range(runtime.simd_level() + 1))


@pytest.fixture(autouse=True)
def _restore_simd_level():
    yield
    runtime.set_simd_level(-1)


def _ref(x, Ws, bs, acts):
    h = x.astype(np.float64)
    for W, b, a in zip(Ws, bs, acts):
        h = h @ W.astype(np.float64) + (0.0 if b is None else b.astype(np.float64))
        if a == "relu":
            h = np.maximum(h, 0.0)
        elif a == "tanh":
            h = np.tanh(h)
        elif a == "softmax":
            h = np.exp(h - h.max(axis=1, keepdims=True))
            h /= h.sum(axis=1, keepdims=True)
    return h


def _chain(rng, widths, acts, dtype, bias_every=True):
    Ws = [(rng.standard_normal((a, b)) / np.sqrt(a)).astype(dtype) for a, b in zip(widths, widths[1:])]
    bs = [rng.standard_normal(b).astype(dtype) if (bias_every or i % 2 == 0) else None
          for i, b in enumerate(widths[1:])]
    codes = [-1 if a == "softmax" else ACT_CODES[a] for a in acts]
    return Ws, bs, codes


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("level", LEVELS)
def test_kernel_against_reference(dtype, level):
    runtime.set_simd_level(level)
    rng = np.random.default_rng(level)
    for m, widths, acts in [(1, [3, 5, 2], ["relu", "softmax"]),
                            (7, [13, 1, 17], ["tanh", "linear"]),
                            (397, [29, 37, 13, 5], ["relu", "tanh", "softmax"]),
                            (1025, [64, 97, 10], ["relu", "linear"])]:
        Ws, bs, codes = _chain(rng, widths, acts, dtype, bias_every=m != 397)
        x = rng.standard_normal((m, widths[0])).astype(dtype)
        packed = [pack_b(W) for W in Ws]
        y1 = np.empty((m, widths[-1]), dtype)
        y2 = np.full((m, widths[-1]), np.nan, dtype)
        dense_chain(x, packed, bs, codes, [0.0] * len(Ws), y1, n_threads=1)
        dense_chain(x, packed, bs, codes, [0.0] * len(Ws), y2, check_finite=True, n_threads=2)
        tol = 1e-4 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(y1, _ref(x, Ws, bs, acts), rtol=tol, atol=tol)
        np.testing.assert_array_equal(y1, y2)


def test_kernel_finds_a_nan_in_any_block_and_refuses_stale_kernels():
    rng = np.random.default_rng(1)
    Ws, bs, codes = _chain(rng, [20, 30, 4], ["relu", "softmax"], np.float32)
    packed = [pack_b(W) for W in Ws]
    y = np.empty((600, 4), np.float32)
    for row in (0, 311, 599):
        x = rng.standard_normal((600, 20)).astype(np.float32)
        x[row, 7] = np.inf if row % 2 else np.nan
        with pytest.raises(ValueError, match="NaN or infinity"):
            dense_chain(x, packed, bs, codes, [0.0, 0.0], y, check_finite=True, n_threads=2)
        dense_chain(x, packed, bs, codes, [0.0, 0.0], y)            # unchecked: runs (NaN flows through)
    x = rng.standard_normal((600, 20)).astype(np.float32)
    with pytest.raises(ValueError, match="pack it again"):
        dense_chain(x, [packed[1], packed[0]], bs, codes, [0.0, 0.0], y)
    with pytest.raises(ValueError, match="as many"):
        dense_chain(x, packed, bs[:1], codes, [0.0, 0.0], y)
    with pytest.raises(ValueError, match="expected shape"):
        dense_chain(x, packed, bs, codes, [0.0, 0.0], np.empty((600, 5), np.float32))
    with pytest.raises(TypeError):
        dense_chain(x.astype(np.float64), packed, bs, codes, [0.0, 0.0], y)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_predict_of_a_dense_model_equals_the_layer_by_layer_forward(dtype):
    nncore.set_floatx(dtype)
    try:
        rng = np.random.default_rng(2)
        m = Sequential([Dense(37, activation="relu", input_dim=29), Dense(13, activation="gelu", use_bias=False),
                        Dense(5, activation="softmax")])
        m.compile("adam", "sparse_categorical_crossentropy")
        x = rng.standard_normal((1001, 29)).astype(dtype)
        h = x
        for layer in m._layers:
            h = layer.forward(h, False)
        for bs in (1, 300, 1001, 4096):
            np.testing.assert_allclose(m.predict(x, batch_size=bs, verbose=0), h, rtol=1e-5, atol=1e-6)
        m.fit(x, rng.integers(0, 5, 1001), epochs=1, verbose=0)   # new weights: predict packs them again
        h = x
        for layer in m._layers:
            h = layer.forward(h, False)
        np.testing.assert_allclose(m.predict(x, batch_size=256, verbose=0), h, rtol=1e-5, atol=1e-6)
        x[500, 3] = np.nan
        with pytest.raises(ValueError, match="x.*NaN"):
            m.predict(x, batch_size=256, verbose=0)
    finally:
        nncore.set_floatx("float32")


def test_predict_takes_the_chain_only_for_a_chain_of_dense_layers():
    from nncore.layers import Dropout
    rng = np.random.default_rng(3)
    x = rng.standard_normal((50, 6)).astype(np.float32)
    from nncore.layers import Activation
    dense = Sequential([Dense(7, activation="relu", input_dim=6), Dense(3, activation="softmax")])
    dropped = Sequential([Dense(7, activation="relu", input_dim=6), Dropout(0.5), Dense(3, activation="softmax")])
    other = Sequential([Dense(7, activation="relu", input_dim=6), Activation("tanh"), Dense(3, activation="softmax")])
    for m in (dense, dropped, other):
        m.compile("adam", "sparse_categorical_crossentropy")
        m.predict(x, verbose=0)
    assert dense._dense_chain() is not None
    assert len(dropped._dense_chain().layers) == 2           # Dropout: the identity in inference
    assert other._dense_chain() is None
    h = x
    for layer in dropped._layers:
        h = layer.forward(h, False)
    h = h.copy()                                               # (out of the layer's buffer)
    np.testing.assert_array_equal(dropped(x), h)               # the layers' own products, bit for bit
    np.testing.assert_allclose(dropped.predict(x, verbose=0), h, rtol=1e-6)
    assert not np.array_equal(dropped(x, training=True), h)    # training: the layers, dropout on
    h = x
    for layer in other._layers:
        h = layer.forward(h, False)
    np.testing.assert_allclose(other.predict(x, verbose=0), h, rtol=1e-6)


def _layer_by_layer(x, Ws, bs, codes, separate, nt):
    """The calls a Dense layer's own forward makes, one kernel call each."""
    from nncore._kernels.elementwise import act_forward, softmax_forward
    from nncore._kernels.gemm import gemm
    h = x
    for W, b, code, sep in zip(Ws, bs, codes, separate):
        z = np.empty((len(x), W.shape[1]), x.dtype)
        gemm(h, W, z, bias=b, act=0 if code < 0 or sep else code, n_threads=nt)
        if code < 0:
            y = np.empty_like(z)
            softmax_forward(z, y)
            z = y
        elif sep:
            y = np.empty_like(z)
            act_forward(code, 0.0, z, y, nt)
            z = y
        h = z
    return h


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("level", LEVELS)
def test_dense_layers_kernel_against_reference_and_the_layer_calls(dtype, level):
    from nncore._kernels.gemm import DenseLayers
    runtime.set_simd_level(level)
    rng = np.random.default_rng(10 + level)
    for m, widths, acts, sep in [(1, [3, 5, 2], ["relu", "softmax"], [False, False]),
                                 (2, [13, 1, 17], ["tanh", "linear"], [False, False]),
                                 (3, [784, 256, 128, 10], ["relu", "relu", "softmax"], [False, False, False]),
                                 (31, [29, 37, 13, 5], ["relu", "gelu", "softmax"], [False, True, False]),
                                 (397, [64, 97, 10], ["swish", "linear"], [True, False])]:
        Ws, bs, codes = _chain(rng, widths, acts, dtype, bias_every=m != 31)
        x = rng.standard_normal((m, widths[0])).astype(dtype)
        run = DenseLayers(Ws, bs, codes, sep, [0.0] * len(Ws))
        y1 = np.full((m, widths[-1]), np.nan, dtype)
        run(x[:1], n_threads=1)                                   # a smaller work buffer first: grown
        run(x, y1, n_threads=1)
        y2 = run(x, check_finite=True, n_threads=2)
        tol = 1e-4 if dtype == np.float32 else 1e-12
        if "gelu" not in acts and "swish" not in acts:
            np.testing.assert_allclose(y1, _ref(x, Ws, bs, acts), rtol=tol, atol=tol)
        np.testing.assert_array_equal(y1, y2)                     # 1 vs 2 threads, bit for bit
        np.testing.assert_array_equal(y1, _layer_by_layer(x, Ws, bs, codes, sep, 2))


def test_dense_layers_checks_its_arguments_and_finds_a_nan():
    from nncore._kernels.gemm import DenseLayers
    rng = np.random.default_rng(4)
    Ws, bs, codes = _chain(rng, [20, 30, 4], ["relu", "softmax"], np.float32)
    run = DenseLayers(Ws, bs, codes, [False, False], [0.0, 0.0])
    x = rng.standard_normal((5, 20)).astype(np.float32)
    y = np.zeros((5, 4), np.float32)
    x[4, 19] = np.nan
    with pytest.raises(ValueError, match="NaN or infinity"):
        run(x, y, check_finite=True)
    assert not y.any()                                             # untouched
    with pytest.raises(ValueError, match="features"):
        run(x[:, :19].copy(), y)
    with pytest.raises(ValueError, match=r"y: expected shape \(5, 4\)"):
        run(x, np.zeros((4, 4), np.float32))
    frozen = np.zeros((5, 4), np.float32)
    frozen.setflags(write=False)
    with pytest.raises(ValueError, match="y: output array is read-only"):
        run(x, frozen)
    with pytest.raises(TypeError, match="x: expected dtype float32"):
        run(x.astype(np.float64), y)
    with pytest.raises(ValueError, match="kernels\\[1\\] has 20 rows, the layer before gives 30"):
        DenseLayers([Ws[0], Ws[0]], bs, codes, [False, False], [0.0, 0.0])
    with pytest.raises(ValueError, match="as many"):
        DenseLayers(Ws, bs[:1], codes, [False, False], [0.0, 0.0])


@pytest.mark.parametrize("level", LEVELS)
def test_the_predict_mlp_at_awkward_batches(level):
    """784-256-128-10 (relu, relu, softmax) at batches 1, 5, 1023, 1025: the reference, and 1 vs 2
    threads bit for bit (rows are cut at multiples of MR, each tile sums over the whole k)."""
    runtime.set_simd_level(level)
    rng = np.random.default_rng(40 + level)
    Ws, bs, codes = _chain(rng, [784, 256, 128, 10], ["relu", "relu", "softmax"], np.float32)
    packed = [pack_b(W) for W in Ws]
    for m in (1, 5, 1023, 1025):
        x = rng.standard_normal((m, 784)).astype(np.float32)
        y1, y2 = np.empty((m, 10), np.float32), np.empty((m, 10), np.float32)
        dense_chain(x, packed, bs, codes, [0.0] * 3, y1, n_threads=1)
        dense_chain(x, packed, bs, codes, [0.0] * 3, y2, n_threads=2)
        np.testing.assert_allclose(y1, _ref(x, Ws, bs, ["relu", "relu", "softmax"]), rtol=1e-4, atol=1e-6)
        np.testing.assert_array_equal(y1, y2)


def _packed_equal(a, b):
    """Two pack_b results hold the same packing (the head's shape words and every micro-panel; the head's
    last 32 bytes are unused)."""
    h = 64 // a.itemsize
    return a[:h // 2].tobytes() == b[:h // 2].tobytes() and a[h:].tobytes() == b[h:].tobytes()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("level", LEVELS)
def test_pack_b_refresh_stores_exactly_the_packing(dtype, level):
    """pack_b(refresh=True) over a kept copy gives the bits of a fresh packing: from garbage, after one
    element changed (to -0.0 too: bitwise, not ==), after a NaN, for a copy of another shape or level."""
    runtime.set_simd_level(level)
    rng = np.random.default_rng(50 + level)
    for k, n in [(784, 256), (1, 1), (7, 3), (100, 33), (513, 10), (31, 129)]:
        for trans in (False, True):
            b = rng.standard_normal((n, k) if trans else (k, n)).astype(dtype)
            ref = pack_b(b, trans_b=trans)
            kept = pack_b(b, trans_b=trans, out=np.full_like(ref, np.nan), refresh=True)
            assert _packed_equal(kept, ref)
            for value in (-0.0, np.nan, 3.5):
                b.flat[rng.integers(b.size)] = value
                b.flat[-1] = -b.flat[-1]
                assert pack_b(b, trans_b=trans, out=kept, refresh=True) is kept
                assert _packed_equal(kept, pack_b(b, trans_b=trans)), (k, n, trans, value)
    other = pack_b(rng.standard_normal((5, 8)).astype(dtype))
    b = rng.standard_normal((8, 5)).astype(dtype)
    assert _packed_equal(pack_b(b, out=np.resize(other, pack_b(b).shape), refresh=True), pack_b(b))


@pytest.mark.parametrize("level", LEVELS)
def test_predict_keeps_no_stale_packed_kernel(level):
    """predict's packed kernels are kept across calls: every way the kernels change between two calls
    (the optimizer writing the flat buffer in place, a user writing layer.kernel in place, a bias,
    set_weights, another SIMD level) shows in the next predict, which equals the layers' own forward
    each time, at 1 and 2 threads."""
    runtime.set_simd_level(level)
    rng = np.random.default_rng(5)
    m = Sequential([Dense(40, activation="relu", input_dim=30), Dense(20, activation="relu"),
                    Dense(6, activation="softmax")])
    m.compile("adam", "sparse_categorical_crossentropy")
    x = rng.standard_normal((257, 30)).astype(np.float32)

    def check():
        for nt in (1, 2):
            nncore.set_num_threads(nt)
            np.testing.assert_allclose(m.predict(x, batch_size=257, verbose=0), m(x), rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(m.predict(x, batch_size=100, verbose=0), m(x), rtol=1e-5, atol=1e-6)

    old = nncore.get_num_threads()
    try:
        check()
        m.fit(x, rng.integers(0, 6, 257), epochs=1, verbose=0)          # the optimizer, in place
        check()
        first, last = m._layers[0], m._layers[-1]
        first.kernel[3, 7] += 1.0                                         # a user, in place
        check()
        first.kernel[...] = -first.kernel                                 # all of it
        check()
        last.bias[2] = 4.0
        check()
        m.set_weights([w * 0.5 for w in m.get_weights()])
        check()
        runtime.set_simd_level(0 if level else -1)                      # another layout of the packing
        check()
    finally:
        nncore.set_num_threads(old)


@pytest.mark.parametrize("level", LEVELS)
def test_the_medium_mlp_through_every_call_path_at_awkward_batches(level):
    """784-256-128-10 at batches 1..9, 31, 32, 1023, 1025, a kernel and a bias written in place after each
    batch's first calls: model(x) and predict_on_batch the same bits (the layers' own kernels); predict
    equal to them (the packed chain from 32 rows, the layers below), the same bits as model(x) below 32
    rows; each path the same bits at 1 and 2 threads, and seeing the writes; NaN refused by every path."""
    runtime.set_simd_level(level)
    rng = np.random.default_rng(60 + level)
    m = Sequential([Dense(256, activation="relu", input_dim=784), Dense(128, activation="relu"),
                    Dense(10, activation="softmax")])
    old = nncore.get_num_threads()
    try:
        for n in list(range(1, 10)) + [31, 32, 1023, 1025]:
            x = rng.standard_normal((n, 784)).astype(np.float32)
            m(x), m.predict(x, verbose=0)
            m._layers[0].kernel[n % 784] *= -1.0               # in place, after calls: seen by the next
            m._layers[-1].bias[n % 10] += 0.125
            out = {}
            for nt in (1, 2):
                nncore.set_num_threads(nt)
                out[nt] = (m(x), m.predict_on_batch(x), m.predict(x, batch_size=n, verbose=0),
                           m.predict(x, batch_size=500, verbose=0))
            for a, b in zip(out[1], out[2]):
                np.testing.assert_array_equal(a, b)
            call, on_batch, predict, batched = out[1]
            np.testing.assert_array_equal(call, on_batch)
            if n < 32:
                np.testing.assert_array_equal(predict, call)
            np.testing.assert_allclose(predict, call, rtol=1e-5, atol=1e-7)
            np.testing.assert_allclose(batched, call, rtol=1e-5, atol=1e-7)
            np.testing.assert_allclose(call, _ref(x, [la.kernel for la in m._layers], [la.bias for la in m._layers],
                                                  ["relu", "relu", "softmax"]), rtol=1e-4, atol=1e-6)
        x[n // 2, 100] = np.nan
        for xs in (x, x[n // 2 - 2:n // 2 + 1]):             # the chain, the layers
            for f in (m, m.predict_on_batch, lambda a: m.predict(a, verbose=0)):
                with pytest.raises(ValueError, match="NaN"):
                    f(xs)
    finally:
        nncore.set_num_threads(old)


@pytest.mark.parametrize("level", LEVELS)
def test_kernel_refreshes_kept_packed_copies_from_the_kernels(level):
    """dense_chain(kernels=...): entries of `packed` that are None or of the wrong size are replaced, all
    are refreshed from the kernels in the call (a stale one, one packed at another level), and the
    result is the bits of packing them anew, at 1 and 2 threads."""
    runtime.set_simd_level(level)
    rng = np.random.default_rng(70 + level)
    Ws, bs, codes = _chain(rng, [784, 256, 128, 10], ["relu", "relu", "softmax"], np.float32)
    x = rng.standard_normal((300, 784)).astype(np.float32)
    want = np.empty((300, 10), np.float32)
    dense_chain(x, [pack_b(W) for W in Ws], bs, codes, [0.0] * 3, want, n_threads=1)
    stale = pack_b(Ws[1] + 1.0)
    for nt in (1, 2):
        kept = [None, stale.copy(), np.zeros(3, np.float32)]
        y = np.full((300, 10), np.nan, np.float32)
        dense_chain(x, kept, bs, codes, [0.0] * 3, y, n_threads=nt, kernels=Ws)
        np.testing.assert_array_equal(y, want)
        assert all(_packed_equal(p, pack_b(W)) for p, W in zip(kept, Ws))
        other = 0 if level else runtime.simd_level()
        runtime.set_simd_level(other)                      # the kept copies are of another level now
        dense_chain(x, kept, bs, codes, [0.0] * 3, y, n_threads=nt, kernels=Ws)
        runtime.set_simd_level(level)
        dense_chain(x, kept, bs, codes, [0.0] * 3, y, n_threads=nt, kernels=Ws)
        np.testing.assert_array_equal(y, want)
    with pytest.raises(ValueError, match="kernels"):
        dense_chain(x, [None] * 3, bs, codes, [0.0] * 3, y, kernels=Ws[:2])


def test_an_empty_batch_does_not_use_up_the_refresh():
    """The refresh of the kept packed kernels belongs to the first batch with rows after `prepare`: a
    0-row batch first (the direct API allows it) leaves it to the next one."""
    rng = np.random.default_rng(8)
    m = Sequential([Dense(24, activation="relu", input_dim=12), Dense(5, activation="softmax")])
    x = rng.standard_normal((64, 12)).astype(np.float32)
    chain = DenseChain([m._layers[0], m._layers[1]])
    chain.prepare()(x, np.empty((64, 5), np.float32))                 # packed copies kept
    m._layers[0].kernel[...] = -m._layers[0].kernel
    chain.prepare()
    for rows in (0, 64):
        y = np.empty((rows, 5), np.float32)
        chain(np.ascontiguousarray(x[:rows]), y)
    np.testing.assert_allclose(y, m(x), rtol=1e-5, atol=1e-6)
