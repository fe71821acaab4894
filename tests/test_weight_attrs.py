"""A layer's weights are views of the model's flat buffers, never replaced after build (`_Weight`):
``layer.kernel = w`` refuses with a message naming the layer and pointing to set_weights or an
in-place write, for every layer with weights (Dense, the convolutions, the recurrent layers,
Bidirectional, the normalizations, Embedding, the int8 forms, a user's own layer); writes in place
are seen by every call path (model(x), predict_on_batch, predict on one batch and in batches; the
medium MLP at awkward batches: tests/test_dense_chain.py)."""
import pickle

import numpy as np
import pytest

import nncore
from nncore._kernels import runtime
from nncore.layers import (GRU, LSTM, BatchNormalization, Bidirectional, Conv1D, Conv2D, Dense, Embedding, Flatten,
                           Layer, LayerNormalization, SimpleRNN)
from nncore.models import Sequential
from nncore.saving import model_from_bytes, model_to_bytes



@pytest.fixture(autouse=True)
def _restore():
    old = nncore.get_num_threads()
    yield
    runtime.set_simd_level(-1)
    nncore.set_num_threads(old)


class _Scale(Layer):
    """A user's layer with a weight of its own: y = x * w."""

    def build(self, input_shape):
        self.add_weight("w", (input_shape[-1],), "ones")

    def forward(self, x, training=False):
        return x * self.w


def _models():
    """(name, model, input) for every layer with weights, float and int8."""
    rng = np.random.default_rng(3)
    seq = rng.standard_normal((5, 6, 4)).astype(np.float32)
    img = rng.standard_normal((5, 7, 7, 8)).astype(np.float32)
    flat = rng.standard_normal((5, 12)).astype(np.float32)
    ids = rng.integers(0, 9, (5, 6)).astype(np.float32)
    out = [("dense", Sequential([Dense(8, activation="relu", input_dim=12), Dense(3, activation="softmax")]), flat),
           ("conv2d", Sequential([Conv2D(4, 3, activation="relu", input_shape=(7, 7, 8)), Flatten(), Dense(2)]), img),
           ("conv1d", Sequential([Conv1D(3, 2, input_shape=(6, 4)), Flatten(), Dense(2)]), seq),
           ("simple_rnn", Sequential([SimpleRNN(5, input_shape=(6, 4)), Dense(2)]), seq),
           ("lstm", Sequential([LSTM(5, input_shape=(6, 4)), Dense(2)]), seq),
           ("gru", Sequential([GRU(5, input_shape=(6, 4)), Dense(2)]), seq),
           ("bidirectional", Sequential([Bidirectional(LSTM(3), input_shape=(6, 4)), Dense(2)]), seq),
           ("batch_norm", Sequential([Dense(6, input_dim=12), BatchNormalization(), Dense(2)]), flat),
           ("layer_norm", Sequential([Dense(6, input_dim=12), LayerNormalization(), Dense(2)]), flat),
           ("embedding", Sequential([Embedding(9, 4, input_shape=(6,)), Flatten(), Dense(2)]), ids),
           ("user", Sequential([_Scale(input_shape=(12,)), Dense(2)]), flat)]
    for name, build, x in (("dense_int8", out[0][1], flat), ("conv2d_int8", out[1][1], img),
                           ("embedding_int8", out[9][1], ids)):
        m = model_from_bytes(model_to_bytes(build))
        m.quantize("int8", filters=lambda layer: True)
        out.append((name, m, x))
    return out


def _weight_layers(model):
    return [layer for layer in model.layers if layer._specs or layer._held]


def _paths(model, x):
    """Every call path's output for x: model(x), predict_on_batch, predict in one batch and in batches."""
    return [model(x), model.predict_on_batch(x), model.predict(x, verbose=0),
            model.predict(x, batch_size=2, verbose=0)]


@pytest.mark.parametrize("name,model,x", _models(), ids=lambda v: v if isinstance(v, str) else "")
def test_a_weight_is_not_replaced_after_build(name, model, x):
    before = _paths(model, x)
    for layer in _weight_layers(model):
        for attr in [a for a, *_ in layer._specs] + [a for a, *_ in layer._held]:
            w = getattr(layer, attr)
            how = "set_weights" if not w.flags.writeable else f"layer.{attr}\\[...\\] = value.*set_weights"
            with pytest.raises(AttributeError, match=f"layer '{layer.name}' \\({type(layer).__name__}\\): its weight "
                                                     f"'{attr}' cannot be replaced after build.*{how}"):
                setattr(layer, attr, np.zeros_like(w))
            with pytest.raises(AttributeError):
                delattr(layer, attr)
            assert getattr(layer, attr) is w
    for a, b in zip(before, _paths(model, x)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name,model,x", _models(), ids=lambda v: v if isinstance(v, str) else "")
def test_writes_in_place_are_seen_by_every_call_path(name, model, x):
    """Each float weight written in place (int8 ones through set_weights): every path then gives what a
    fresh model with those values gives."""
    rng = np.random.default_rng(8)
    _paths(model, x)                             # every path's caches made
    for layer in _weight_layers(model):
        for w in layer.weights:
            if w.flags.writeable:
                w[...] = w + rng.uniform(0.05, 0.2, w.shape).astype(w.dtype)
            else:                                # a held int8 weight: through set_weights
                layer.set_weights([u[::-1].copy() if u.dtype == np.int8 else u for u in layer.get_weights()])
                break
    fresh = model_from_bytes(model_to_bytes(model), custom_objects={"_Scale": _Scale})
    want = fresh.predict_on_batch(x)
    for y in _paths(model, x):
        np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)


def test_before_build_a_weight_is_an_ordinary_attribute_and_a_layer_pickles():
    layer = Dense(3)
    with pytest.raises(AttributeError):
        layer.kernel
    m = Sequential([Dense(3, input_dim=2)])
    built = m.layers[0]
    state = pickle.loads(pickle.dumps(built))
    np.testing.assert_array_equal(state.kernel, built.kernel)
    with pytest.raises(AttributeError, match="cannot be replaced"):
        state.kernel = state.kernel.copy()
    built.set_weights([w + 1 for w in built.get_weights()])          # set_weights writes in place
    np.testing.assert_array_equal(m.get_weights()[0], built.kernel)


def test_flat_buffers_share_huge_pages():
    """The flat weights come from the huge-page arena (where the platform has MADV_HUGEPAGE): zeroed,
    64-byte aligned, never overlapping; small buffers share 2 MiB chunks (fifty of 600 KB take ~15), a
    buffer larger than a chunk starts one, a chunk is unmapped when its last buffer is gone. Either way
    an ordinary writeable C-contiguous array that saves, loads and pickles."""
    import gc
    import mmap

    from nncore._params import _ARENA, HUGE_PAGE, weight_buffer
    huge = hasattr(mmap, "MADV_HUGEPAGE")
    bufs = []
    for n, dtype in ((HUGE_PAGE // 16 - 1, np.float32), (HUGE_PAGE // 16, np.float32), (300_000, np.float64),
                     (HUGE_PAGE, np.float32), (1, np.float64), (0, np.float32), (37, np.float32)):
        a = weight_buffer(n, dtype)
        assert a.shape == (n,) and a.dtype == dtype and a.flags.writeable and a.flags.c_contiguous
        assert not a.any()
        if huge and n:
            assert a.ctypes.data % 64 == 0
            if a.nbytes > HUGE_PAGE:
                assert a.ctypes.data % HUGE_PAGE == 0
        a[...] = 1
        assert a.sum() == n
        bufs.append(a)
    small = [weight_buffer(150_000, np.float32) for _ in range(50)]         # 600 KB each
    for a in small:
        a[...] = 2
    spans = sorted((a.ctypes.data, a.ctypes.data + a.nbytes) for a in bufs + small if a.size)
    assert all(end <= start for (_, end), (start, _) in zip(spans, spans[1:]))        # no two overlap
    assert all(a.sum() == a.size for a in bufs) and all((a == 2).all() for a in small)
    if huge:
        assert len({a.ctypes.data // HUGE_PAGE for a in small}) <= 18            # not 50 huge pages
        chunk = _ARENA._chunk
        assert chunk() is not None
        del a, bufs, small, spans
        gc.collect()
        assert chunk() is None                  # every buffer of the arena's chunk gone: unmapped
    m = Sequential([Dense(256, activation="relu", input_dim=784), Dense(10)])
    x = np.random.default_rng(2).standard_normal((3, 784)).astype(np.float32)
    for again in (model_from_bytes(model_to_bytes(m)), pickle.loads(pickle.dumps(m))):
        np.testing.assert_array_equal(again(x), m(x))


def test_a_large_buffers_chunk_is_its_own_and_a_forked_child_gets_a_fresh_arena():
    # a small buffer after one larger than a chunk never lands in the large one's tail (it would keep all of
    # that mapping alive); a fork while the arena's lock is held (another thread inside take) cannot hang
    # the child
    import mmap
    import os
    import signal

    from nncore._params import _ARENA, HUGE_PAGE, weight_buffer
    if not hasattr(mmap, "MADV_HUGEPAGE"):
        pytest.skip("no MADV_HUGEPAGE: no arena")
    _ARENA.__init__()                    # no current chunk (buffers already carved keep theirs)
    big = weight_buffer(HUGE_PAGE // 4 + 25_000, np.float32)
    small = weight_buffer(10, np.float32)
    assert big.nbytes > HUGE_PAGE and small.base.obj is not big.base.obj     # memoryviews of their mappings
    with _ARENA._lock:
        pid = os.fork()
        if pid == 0:                                                      # the child
            signal.alarm(10)
            try:
                ok = weight_buffer(1000, np.float32).sum() == 0
            finally:
                os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status


def test_a_recurrent_layer_on_a_large_flat_buffer_runs():
    # its [W; U; b] is one view of the flat buffer (recurrent._stacked takes the views' base): the buffer is
    # its views' base in the weights' dtype wherever it lies (a 1.3 MB model: a huge-page chunk of its own)
    from nncore.layers import LSTM

    m = Sequential([LSTM(256, input_shape=(5, 200)), Dense(3)])
    assert m._params.nbytes > 1 << 20 and m.layers[0].weights[0].base is m._params
    x = np.random.default_rng(0).standard_normal((4, 5, 200)).astype(np.float32)
    assert m.predict(x, verbose=0).shape == (4, 3)
