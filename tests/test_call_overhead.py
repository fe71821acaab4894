"""The inference call path (`model(x)`, `predict_on_batch`, `predict` of one batch): inputs checked once
per signature, the set-up skipped while it holds, Dense-only models in one kernel call. Results are
bit-identical to the uncached path, a new signature is checked afresh, bad input raises the same errors,
returned arrays are never overwritten by later calls, and a call allocates nothing but its outputs."""
import gc
import tracemalloc

import numpy as np
import pytest

import nncore
from nncore.layers import (Concatenate, Conv2D, Dense, Dropout, Flatten, Input, MaxPooling2D)
from nncore.models import Model, Sequential


def _uncached(model, x, training=False):
    """The forward pass as it ran before the call cache: full input checks, full set-up, the layers'
    forward methods through the plan; outputs copied."""
    xs = model._prepare_inputs(x)
    model._setup()
    plan = model._plan
    plan.infer(xs, training)
    return model._structured([plan.values[s].copy() for s in plan.out_slots])


def _mlp(dtype="float32", **kw):
    nncore.set_seed(0)
    m = Sequential([Dense(37, input_dim=29, activation="relu"), Dense(13, activation="gelu"),
                    Dense(5, activation="softmax")])
    m.compile("adam", "sparse_categorical_crossentropy", **kw)
    return m


def _cnn():
    nncore.set_seed(1)
    m = Sequential([Conv2D(4, 3, activation="relu", input_shape=(9, 9, 2)), MaxPooling2D(2), Flatten(),
                    Dropout(0.3), Dense(3, activation="softmax")])
    m.compile("adam", "sparse_categorical_crossentropy")
    return m


def _two_inputs():
    nncore.set_seed(2)
    a, b = Input((6,), name="a"), Input((4,), name="b")
    h = Concatenate()([Dense(8, activation="tanh")(a), b])
    m = Model([a, b], [Dense(3, activation="softmax", name="p")(h), Dense(1, name="q")(h)])
    m.compile("adam", ["sparse_categorical_crossentropy", "mse"])
    return m


def _data(model, n, rng, dtype=np.float32):
    shapes = [t.shape[1:] for t in model.inputs]
    xs = [rng.standard_normal((n,) + tuple(s)).astype(dtype) for s in shapes]
    return xs[0] if len(xs) == 1 else xs


def _same(a, b):
    if isinstance(a, list):
        assert len(a) == len(b)
        for u, v in zip(a, b):
            np.testing.assert_array_equal(u, v)
    else:
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("make", [_mlp, _cnn, _two_inputs])
def test_cached_calls_equal_the_uncached_path_bit_for_bit(make):
    rng = np.random.default_rng(0)
    model = make()
    for n in (1, 2, 7, 40):
        x = _data(model, n, rng)
        want = _uncached(model, x)
        for _ in range(3):                                  # first call (checks), then cached ones
            _same(model(x), want)
            _same(model.predict_on_batch(x), want)
        _same(model.predict(x, verbose=0), _uncached_predict(model, x))


def _uncached_predict(model, x):
    """predict through its batch loop (a callback keeps the lean one-batch path off)."""
    return model.predict(x, verbose=0, callbacks=[nncore.callbacks.Callback()])


def test_a_dense_model_in_one_kernel_call_equals_its_layers():
    rng = np.random.default_rng(1)
    for dtype in ("float32", "float64"):
        nncore.set_floatx(dtype)
        try:
            m = _mlp()
            for n in (1, 3, 31, 32, 300):
                x = rng.standard_normal((n, 29)).astype(dtype)
                h = x
                for layer in m.layers:
                    h = layer.forward(h, False)
                _same(m(x), h)
                _same(m.predict(x, verbose=0), _uncached_predict(m, x))
        finally:
            nncore.set_floatx("float32")


def test_a_new_signature_after_a_cached_one_is_checked_and_converted():
    rng = np.random.default_rng(2)
    m = _mlp()
    x = rng.standard_normal((3, 29))                          # float64 into a float32 model
    x32 = x.astype(np.float32)
    for _ in range(2):
        _same(m(x32), _uncached(m, x32))
        _same(m(x), _uncached(m, x32))                        # converted, into a kept buffer
        _same(m(np.asfortranarray(x32)), _uncached(m, x32))   # another layout
        _same(m(x32[::-1][::-1]), _uncached(m, x32))
        _same(m(x[:, ::1]), _uncached(m, x32))
        _same(m([x32]), _uncached(m, x32))                    # a list of one array
        xi = (x * 3).astype(np.int64)
        _same(m(xi), _uncached(m, xi.astype(np.float32)))
        _same(m(x32[:1]), _uncached(m, x32[:1]))              # another batch size
    # a one-feature model takes a 1-D input as a column, cached as such
    one = Sequential([Dense(2, input_dim=1)])
    v = rng.standard_normal(5).astype(np.float32)
    for _ in range(2):
        _same(one(v), _uncached(one, v.reshape(-1, 1)))
        _same(one(v.astype(np.float64)), _uncached(one, v.reshape(-1, 1)))


def test_bad_input_raises_the_same_clear_errors_after_calls_were_cached():
    rng = np.random.default_rng(3)
    m, f = _mlp(), _two_inputs()
    x = rng.standard_normal((4, 29)).astype(np.float32)
    a, b = rng.standard_normal((4, 6)).astype(np.float32), rng.standard_normal((4, 4)).astype(np.float32)
    m(x), m(x), f([a, b]), f({"a": a, "b": b})
    for _ in range(2):
        with pytest.raises(ValueError, match=r"expects input of shape \(n_samples, 29\), got \(4, 28\)"):
            m(x[:, :28])
        with pytest.raises(TypeError, match="expected numeric inputs"):
            m(x.astype(str))
        bad = x.copy()
        bad[3, 5] = np.nan
        for call in (m, m.predict_on_batch, lambda v: m.predict(v, verbose=0)):
            with pytest.raises(ValueError, match="x: inputs contain NaN or infinity"):
                call(bad)
        with pytest.raises(ValueError, match=r"x\['b'\]: inputs contain NaN"):
            f([a, np.full_like(b, np.inf)])
        with pytest.raises(ValueError, match="2 inputs"):
            f([a])
        with pytest.raises(ValueError, match="has no input named 'c'"):
            f({"a": a, "c": b})
        with pytest.raises(ValueError, match="missing data for input 'b'"):
            f({"a": a})
        with pytest.raises(ValueError, match="3 samples, but the first input has 4"):
            f([a, b[:3]])
    _same(m(x), _uncached(m, x))                              # and the good signatures still work


def test_returned_arrays_are_not_overwritten_by_later_calls():
    rng = np.random.default_rng(4)
    for model in (_mlp(), _cnn(), _two_inputs()):
        x1, x2 = _data(model, 2, rng), _data(model, 2, rng)
        for call in (model, model.predict_on_batch, lambda v: model.predict(v, verbose=0)):
            first = call(x1)
            keep = [a.copy() for a in first] if isinstance(first, list) else first.copy()
            second = call(x2)
            call(x1)
            _same(first, keep)
            assert not np.shares_memory(first[0] if isinstance(first, list) else first,
                                        second[0] if isinstance(second, list) else second)
    m = _mlp()
    x = rng.standard_normal((2, 29))                          # float64: converted into a kept buffer
    y = m(x)
    keep = y.copy()
    m(x + 1.0)
    _same(y, keep)


def _peak_per_call(call, x, calls=20):
    """The most memory one call held beyond what was allocated when it started, over `calls` calls
    (results dropped at once), after warm-up calls, and what the calls left allocated (after a garbage
    collection: under tracemalloc the interpreter's comprehension frames are freed by the collector)."""
    for _ in range(3):
        call(x)
    gc.collect()
    tracemalloc.start()
    try:
        peak, start = 0, tracemalloc.get_traced_memory()[0]
        for _ in range(calls):
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            call(x)
            peak = max(peak, tracemalloc.get_traced_memory()[1] - base)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - start
    finally:
        tracemalloc.stop()
    return peak, grown


@pytest.mark.parametrize("make", [_mlp, _cnn, _two_inputs])
def test_a_call_allocates_nothing_but_its_outputs_in_steady_state(make):
    rng = np.random.default_rng(5)
    model = make()
    x = _data(model, 256, rng)
    out = model(x)
    out_bytes = sum(a.nbytes for a in out) if isinstance(out, list) else out.nbytes
    calls = [model, model.predict_on_batch, lambda v: model.predict(v, batch_size=256, verbose=0)]
    for call in calls:
        peak, grown = _peak_per_call(call, x)
        # every layer buffer for 256 rows is >= 8 KB (a converted input 29 KB): none is made again (the
        # allowance is the interpreter's frames), and nothing is kept
        assert peak <= out_bytes + 4096, (call, peak, out_bytes)
        assert grown <= 1024, (call, grown)
    if make is _mlp:                                          # converted inputs: into a kept buffer
        x64 = x.astype(np.float64)
        peak, grown = _peak_per_call(model, x64)
        assert peak <= out_bytes + 4096 and grown <= 1024, (peak, grown)


def test_the_cache_follows_weights_threads_layouts_and_shared_layers():
    rng = np.random.default_rng(6)
    m = _mlp()
    x = rng.standard_normal((3, 29)).astype(np.float32)
    m(x)
    m.set_weights([w * 0.5 for w in m.get_weights()])
    _same(m(x), _uncached(m, x))
    m.compile("adam", "sparse_categorical_crossentropy", n_threads=2)
    _same(m(x), _uncached(m, x))
    assert m._nt == nncore._threads.effective_n_threads(2)
    m.fit(x, np.array([0, 1, 2]), epochs=2, verbose=0)
    _same(m(x), _uncached(m, x))
    # two models sharing a layer, called in turn: each sees its own buffer's values
    shared = Dense(4, activation="relu")
    a_in, b_in = Input((29,)), Input((29,))
    ma = Model(a_in, Dense(2)(shared(a_in)))
    mb = Model(b_in, shared(b_in))
    for _ in range(3):
        ya, yb = ma(x), mb(x)
        _same(ya, _uncached(ma, x))
        _same(yb, _uncached(mb, x))
        mb.set_weights([w + 0.25 for w in mb.get_weights()])
    # quantized after cached calls: the int8 layers run
    q = _mlp()
    q(x)
    q.quantize("int8")
    yq = q(x)
    _same(yq, _uncached(q, x))
    assert type(q._dense_chain()).__name__ == "Int8DenseChain"     # the int8 chain, never the float one


def test_training_flag_goes_through_the_cached_path():
    rng = np.random.default_rng(7)
    m = _cnn()
    x = _data(m, 5, rng)
    m(x), m(x, training=True)
    dropout = m.layers[3]
    dropout._rng = nncore._random.make_rng(11)
    a = m(x, training=True)
    dropout._rng = nncore._random.make_rng(11)
    _same(a, _uncached(m, x, training=True))
    assert not np.array_equal(a, m(x))                         # dropout acts in training only


def test_a_layer_added_after_calls_takes_part_in_the_next_call():
    rng = np.random.default_rng(8)
    m = Sequential([Dense(6, input_dim=5, activation="relu")])
    x = rng.standard_normal((2, 5)).astype(np.float32)
    m(x), m(x)
    m.add(Dense(3, activation="softmax"))
    y = m(x)
    assert y.shape == (2, 3)
    _same(y, _uncached(m, x))
    late = Sequential()
    late.add(Dense(4))
    late(x), late(x)
    late.add(Dense(2))
    assert late(x).shape == (2, 2)


def test_a_dense_chain_takes_x_as_is_and_the_checked_path_takes_the_rest():
    """model(x) of a Dense chain hands x to its kernel when x is as the kernel reads it (`DenseChain.take`);
    any other x (another dtype or layout, a list, 0 rows, other features, a subclass) goes through the
    model's checks and conversion: the same bits, the model's own errors. The int8 chain the same."""
    rng = np.random.default_rng(12)
    x = rng.standard_normal((3, 29)).astype(np.float32)
    m = _mlp()
    for step in range(2):                                     # float32, then quantized to int8
        want = _uncached(m, x)
        chain = m._dense_chain()
        assert chain.take(x, 1) is not None
        for other in (x.astype(np.float64), np.asfortranarray(x), x[::2], [x], x.view(np.memmap),
                      x[:0], x[:, :28], x.reshape(-1)):
            assert chain.take(other, 1) is None
        for call in (m, m.predict_on_batch):
            _same(call(x), want)
            _same(call(x.astype(np.float64)), want)
            _same(call(np.asfortranarray(x)), want)
            with pytest.raises(ValueError, match=r"empty input \(0 samples\)"):
                call(x[:0])
            with pytest.raises(ValueError, match=r"expects input of shape \(n_samples, 29\), got \(3, 28\)"):
                call(x[:, :28])
        if step == 0:
            m.quantize("int8")
