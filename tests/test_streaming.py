"""Training from data larger than memory: memmaps, sequences of batches (Keras's PyDataset
protocol), generators and iterables with steps_per_epoch, background prefetch."""
import os
import threading
import time
import warnings

import numpy as np
import pytest

import nncore
from nncore.data import MemmapBatches, PyDataset, Stream, memmap_of
from nncore.layers import Dense


def _data(n=90, d=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.float32)
    return x, y


def _model(seed=1):
    nncore.set_seed(seed)
    m = nncore.Sequential([Dense(8, activation="relu", input_shape=(6,)), Dense(1, activation="sigmoid")])
    m.compile("adam", "binary_crossentropy", metrics=["accuracy"])
    return m


class Rows(PyDataset):
    """Batch i = rows [i b, (i + 1) b); records which indices were read, when, and from which thread."""

    def __init__(self, x, y, b, w=None, delay=0.0, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y, self.b, self.w, self.delay = x, y, b, w, delay
        self.reads, self.threads, self.calls = [], set(), []

    def __len__(self):
        return -(-len(self.x) // self.b)

    def __getitem__(self, i):
        if self.delay:
            time.sleep(self.delay)
        self.reads.append(i)
        self.threads.add(threading.get_ident())
        s = slice(i * self.b, (i + 1) * self.b)
        return (self.x[s], self.y[s]) if self.w is None else (self.x[s], self.y[s], self.w[s])

    def on_epoch_begin(self):
        self.calls.append("begin")

    def on_epoch_end(self):
        self.calls.append("end")


def _same_weights(a, b):
    for u, v in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(u, v)


# ---------------------------------------------------------------- sequences
def test_sequence_trains_exactly_like_the_arrays_it_cuts():
    x, y = _data()
    w = np.linspace(0.5, 1.5, len(x))
    a, b = _model(), _model()
    ha = a.fit(x, y, sample_weight=w, batch_size=16, epochs=3, shuffle=False, verbose=0, validation_data=(x, y))
    seq = Rows(x, y, 16, w)
    hb = b.fit(seq, epochs=3, shuffle=False, verbose=0, validation_data=Rows(x, y, 16))
    assert ha.history == hb.history
    _same_weights(a, b)
    assert seq.calls == ["begin", "end"] * 3
    assert threading.get_ident() not in seq.threads           # read in the background
    assert a.evaluate(x, y, batch_size=16, verbose=0) == b.evaluate(Rows(x, y, 16), verbose=0)
    # other batch sizes: the GEMM may take other paths (round-off)
    np.testing.assert_allclose(a.predict(x, verbose=0), b.predict(Rows(x, y, 7), verbose=0), rtol=1e-6)


def test_sequence_shuffles_the_batch_order_each_epoch_with_nncores_generator():
    x, y = _data()
    seq = Rows(x, y, 10)
    _model().fit(seq, epochs=2, verbose=0)
    first, second = seq.reads[:9], seq.reads[9:]
    assert sorted(first) == sorted(second) == list(range(9)) and first != list(range(9)) and first != second
    nncore.set_seed(5)
    again = Rows(x, y, 10)
    m = nncore.Sequential([Dense(1, input_shape=(6,))])
    m.compile("sgd", "mse")
    nncore.set_seed(5)
    order = list(np.random.default_rng(5).permutation(9))
    m.fit(again, epochs=1, verbose=0)
    assert again.reads == order                               # the permutation of nncore.set_seed's generator


@pytest.mark.parametrize("workers, processes", [(3, False), (2, True)])
def test_parallel_workers_keep_the_order(workers, processes):
    x, y = _data(n=120)
    a, b = _model(), _model()
    a.fit(Rows(x, y, 8), epochs=2, shuffle=False, verbose=0)
    seq = Rows(x, y, 8, workers=workers, use_multiprocessing=processes)
    b.fit(seq, epochs=2, shuffle=False, verbose=0)
    _same_weights(a, b)
    if processes:
        assert seq.reads == []                              # read in other processes
    else:
        assert len(seq.threads) > 1


def test_prefetch_is_bounded_by_max_queue_size():
    x, y = _data(n=200)
    seq = Rows(x, y, 5, max_queue_size=3)
    in_step = []

    class Watch(nncore.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            time.sleep(0.01)                                # the reader gets ahead as far as it may
            in_step.append(len(seq.reads) - (batch + 1))

    _model().fit(seq, epochs=1, shuffle=False, verbose=0, callbacks=[Watch()])
    assert max(in_step) == 3                                # never more than 3 batches ahead


def test_unbuilt_model_builds_from_the_first_batch():
    x, y = _data()
    m = nncore.Sequential([Dense(4, activation="relu"), Dense(1, activation="sigmoid")])
    m.compile("adam", "binary_crossentropy")
    m.fit(Rows(x, y, 32), epochs=1, verbose=0)
    assert m.input_shape == (None, 6)
    g = nncore.Sequential([Dense(1)])
    g.compile("sgd", "mse")
    batches = [(x[i:i + 30], y[i:i + 30]) for i in range(0, 90, 30)]
    h = g.fit(iter(batches), epochs=1, verbose=0)
    assert g.optimizer.iterations == 3 and len(h.history["loss"]) == 1   # the peeked batch is trained on


# ---------------------------------------------------------------- generators and iterables
def _gen(x, y, b, n_batches=None):
    k = 0
    while n_batches is None or k < n_batches:
        i = (k * b) % len(x)
        yield x[i:i + b], y[i:i + b]
        k += 1


def test_generator_with_steps_per_epoch_continues_across_epochs():
    x, y = _data()
    a, b = _model(), _model()
    a.fit(x, y, batch_size=15, epochs=2, shuffle=False, verbose=0)         # 6 batches per epoch
    h = b.fit(_gen(x, y, 15), steps_per_epoch=6, epochs=2, verbose=0)
    _same_weights(a, b)
    assert len(h.history["loss"]) == 2 and b.optimizer.iterations == 12


def test_generator_running_out_warns_ends_the_epoch_then_training():
    x, y = _data()
    m = _model()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        h = m.fit(_gen(x, y, 15, n_batches=6), steps_per_epoch=4, epochs=5, verbose=0)
    assert [str(c.message)[:60] for c in caught] == [
        "Your input ran out of data after 2 of steps_per_epoch=4 batc",     # epoch 2 ends early
        "Your input ran out of data; interrupting training. Make sure"]     # epoch 3 finds none
    assert m.optimizer.iterations == 6 and len(h.history["loss"]) == 2
    m2 = _model()
    with pytest.warns(UserWarning, match="ran out of data; interrupting training"):
        h2 = m2.fit(_gen(x, y, 15, n_batches=6), epochs=3, verbose=0)    # no steps: epoch 1 is the pass
    assert m2.optimizer.iterations == 6 and len(h2.history["loss"]) == 1


def test_one_line_per_epoch_counts_the_steps_of_an_iterable_of_unknown_length(capsys):
    x, y = _data()
    m = _model()
    batches = [(x[i:i + 20], y[i:i + 20]) for i in range(0, len(x), 20)]

    class Again:
        def __iter__(self):
            return iter(batches)

    m.fit(Again(), epochs=2, verbose=2, validation_data=Again())
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split(" - ")[0] for ln in lines] == ["Epoch 1/2", "5/5", "Epoch 2/2", "5/5"] and "val_loss" in lines[1]
    m.evaluate(Again(), verbose=2)
    assert capsys.readouterr().out.startswith("5/5 - ")


def test_reiterable_restarts_each_epoch():
    x, y = _data()
    batches = [(x[i:i + 30], y[i:i + 30]) for i in range(0, 90, 30)]

    class Again:
        def __iter__(self):
            return iter(batches)

    m = _model()
    with warnings.catch_warnings():
        warnings.simplefilter("error")                       # a full pass per epoch: no warning
        h = m.fit(Again(), epochs=3, verbose=0, validation_data=Again())
    assert m.optimizer.iterations == 9 and len(h.history["val_loss"]) == 3


def test_predict_and_evaluate_with_steps():
    x, y = _data()
    m = _model()
    p = m.predict(_gen(x, y, 20), steps=3, verbose=0)
    np.testing.assert_allclose(p, m.predict(x[:60], batch_size=20, verbose=0), rtol=1e-6)
    p = m.predict((xb for xb, _ in _gen(x, y, 20, 2)), verbose=0)    # batches of inputs alone
    assert p.shape == (40, 1)
    loss = m.evaluate(_gen(x, y, 30), steps=3, verbose=0)[0]
    assert loss == m.evaluate(x, y, batch_size=30, verbose=0)[0]


# ---------------------------------------------------------------- bad batches
@pytest.mark.parametrize("bad, error, message", [
    (lambda x, y: (x[:, :5], y), ValueError,
     r"x of batch 2: layer 'dense\w*' \(Dense\) of model '\w+' expects input of shape \(n_samples, 6\), got \(10, 5\)"),
    (lambda x, y: (x.astype(str), y), TypeError, "x of batch 2: expected numeric inputs, got dtype <U"),
    (lambda x, y: (x, y[:4]), ValueError, "y of batch 2: expected 10 targets to match the 10 input samples"),
    (lambda x, y: (x, y, np.ones(3)), ValueError, r"sample_weight of batch 2: expected shape \(10,\)"),
    (lambda x, y: (np.full_like(x, np.nan), y), ValueError, "x of batch 2: inputs contain NaN or infinity"),
    (lambda x, y: (x, y, None, None), ValueError, r"batch 2: expected \(x,\), \(x, y\) or \(x, y, sample_weight\)"),
    (lambda x, y: x, ValueError, "batch 2: expected .x, y. or .x, y, sample_weight., got inputs without targets"),
])
def test_a_bad_batch_names_its_index_and_what_was_expected(bad, error, message):
    x, y = _data()

    def gen():
        for k, i in enumerate(range(0, 90, 10)):
            xb, yb = x[i:i + 10], y[i:i + 10]
            yield bad(xb, yb) if k == 2 else (xb, yb)

    with pytest.raises(error, match=message):
        _model().fit(gen(), epochs=1, verbose=0)


def test_stream_arguments_are_checked():
    x, y = _data()
    m = _model()
    with pytest.raises(ValueError, match="x is a sequence or generator of batches.*do not pass y"):
        m.fit(Rows(x, y, 10), y)
    with pytest.raises(ValueError, match="validation_split needs arrays"):
        m.fit(Rows(x, y, 10), validation_split=0.2)
    with pytest.raises(ValueError, match="the sequence has no batches"):
        m.fit(Rows(x[:0], y[:0], 10))
    with pytest.raises(ValueError, match="Rows.max_queue_size: expected an int >= 1, got 0"):
        m.fit(Rows(x, y, 10, max_queue_size=0))
    with pytest.raises(ValueError, match="steps_per_epoch: expected an int >= 1"):
        m.fit(iter([]), steps_per_epoch=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                   # not training: no "interrupting training" warning
        with pytest.raises(ValueError, match=r"predict: x \(a sequence or generator of batches\) yielded no batch"):
            m.predict(iter([]))
        with pytest.raises(ValueError, match=r"the data to evaluate .* yielded no batch; a generator is used up"):
            m.evaluate(iter([]))
    once = ((x[i:i + 30], y[i:i + 30]) for i in range(0, 90, 30))       # used up by the first validation pass
    with pytest.raises(ValueError, match="yielded no batch; a generator is used up after one pass"):
        m.fit(x, y, epochs=2, verbose=0, validation_data=once)


def test_stream_interface_is_shared():
    x, y = _data()
    s = Stream(Rows(x, y, 40), lambda b, i: b, steps=None)
    assert s.steps == 3 and [len(b[0]) for b in s] == [40, 40, 10] and s.rows == 10
    s.release()


# ---------------------------------------------------------------- memmaps
def test_memmap_trains_like_the_array_and_converts_batch_by_batch(tmp_path):
    x, y = _data(n=103)
    path = tmp_path / "x.npy"
    np.save(path, x.astype(np.float16))
    xm = np.load(path, mmap_mode="r")
    assert memmap_of(xm[3:]) is not None and memmap_of(np.asarray(xm)) is not None and memmap_of(x) is None
    a = _model()                                            # seeds nncore's generator: the same shuffles
    ha = a.fit(x.astype(np.float16), y, batch_size=16, epochs=3, verbose=0, validation_split=0.2)
    b = _model()
    hb = b.fit(xm, y, batch_size=16, epochs=3, verbose=0, validation_split=0.2)
    assert ha.history == hb.history                         # the same shuffles, rows and conversions
    _same_weights(a, b)
    np.testing.assert_array_equal(a.predict(x.astype(np.float16), verbose=0), b.predict(xm, verbose=0))
    bad = np.lib.format.open_memmap(tmp_path / "bad.npy", mode="w+", dtype=np.float32, shape=x.shape)
    bad[:] = x
    bad[50, 1] = np.inf
    bad.flush()
    with pytest.raises(ValueError, match=r"x: the inputs of batch 3 \(rows of the memmap\) contain NaN or infinity"):
        _model().fit(np.load(tmp_path / "bad.npy", mmap_mode="r"), y, batch_size=16, shuffle=False, verbose=0)


def _two_inputs(seed=2):
    from nncore.layers import Concatenate, Input
    nncore.set_seed(seed)
    a, c = Input((4,), name="a"), Input((2,), name="c")
    z = Concatenate()([Dense(5, activation="tanh")(a), c])
    m = nncore.Model([a, c], {"p": Dense(1, activation="sigmoid", name="p")(z), "r": Dense(2, name="r")(z)})
    m.compile("adam", {"p": "binary_crossentropy", "r": "mse"}, metrics={"p": ["accuracy"]})
    return m


class DictRows(PyDataset):
    """Batch i of a two-input, two-output model: ({"a": ..., "c": ...}, {"p": ..., "r": ...})."""

    def __init__(self, x, y, r, b):
        super().__init__()
        self.x, self.y, self.r, self.b = x, y, r, b

    def __len__(self):
        return -(-len(self.x) // self.b)

    def __getitem__(self, i):
        s = slice(i * self.b, (i + 1) * self.b)
        return {"a": self.x[s, :4], "c": self.x[s, 4:]}, {"p": self.y[s], "r": self.r[s]}


def test_a_functional_model_trains_from_memmaps_and_sequences_like_from_arrays(tmp_path):
    x, y = _data(n=77)
    r = np.stack([x[:, 0] - x[:, 5], x[:, 2]], axis=1)
    np.save(tmp_path / "a.npy", x[:, :4])
    np.save(tmp_path / "c.npy", x[:, 4:].astype(np.float64))     # converted to float32 batch by batch
    am, cm = np.load(tmp_path / "a.npy", mmap_mode="r"), np.load(tmp_path / "c.npy", mmap_mode="r")
    want = _two_inputs()                      # seeds nncore's generator: the same shuffles
    hw = want.fit([x[:, :4], x[:, 4:]], {"p": y, "r": r}, batch_size=16, epochs=3, verbose=0, validation_split=0.25)
    got = _two_inputs()
    hg = got.fit([am, cm], {"p": y, "r": r}, batch_size=16, epochs=3, verbose=0, validation_split=0.25)
    assert hw.history == hg.history and "val_p_accuracy" in hg.history
    _same_weights(want, got)
    pw, pg = want.predict([x[:, :4], x[:, 4:]], verbose=0), got.predict([am, cm], verbose=0)
    np.testing.assert_array_equal(pw["r"], pg["r"])
    want, got = _two_inputs(), _two_inputs()
    hw = want.fit({"a": x[:, :4], "c": x[:, 4:]}, {"p": y, "r": r}, batch_size=16, epochs=2, shuffle=False,
                  verbose=0)
    hg = got.fit(DictRows(x, y, r, 16), epochs=2, shuffle=False, verbose=0)
    assert hw.history == hg.history
    _same_weights(want, got)
    assert want.evaluate([x[:, :4], x[:, 4:]], {"p": y, "r": r}, batch_size=16, verbose=0) == \
        got.evaluate(DictRows(x, y, r, 16), verbose=0)
    np.testing.assert_array_equal(want.predict([x[:, :4], x[:, 4:]], batch_size=16, verbose=0)["p"],
                                  got.predict(DictRows(x, y, r, 16), verbose=0)["p"])
    with pytest.raises(ValueError, match=r"x of batch 0: model '\w+' has no input named 'b'"):
        got.fit(iter([({"a": x[:3, :4], "b": x[:3, 4:]}, {"p": y[:3], "r": r[:3]})]), verbose=0)


@pytest.mark.parametrize("mode", ["c", "r+"])
def test_memmap_changes_not_yet_in_the_file_are_seen(tmp_path, mode):
    # copy-on-write ('c'): the changes live in the mapping only, so its rows are read through it;
    # 'r+' without flush: the file's pages are the mapping's (one page cache), pread sees them
    x, y = _data(n=40)
    np.save(tmp_path / "x.npy", x)
    xm = np.load(tmp_path / "x.npy", mmap_mode=mode)
    xm[5:] = -x[5:]
    m = _model()
    np.testing.assert_array_equal(m.predict(xm, batch_size=8, verbose=0), m.predict(np.array(xm), batch_size=8,
                                                                                      verbose=0))


def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc (Linux)")
def test_memmap_resident_memory_stays_bounded(tmp_path):
    rows, cols = 24576, 1024                                 # 96 MiB of float32
    path = tmp_path / "big.npy"
    big = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, cols))
    for i in range(0, rows, 4096):
        big[i:i + 4096] = np.random.default_rng(i).random((min(4096, rows - i), cols), dtype=np.float32)
    big.flush()
    del big
    y = np.zeros(rows, np.float32)
    xm = np.load(path, mmap_mode="r")
    nncore.set_seed(0)
    m = nncore.Sequential([Dense(1, input_shape=(cols,))])
    m.compile(nncore.optimizers.SGD(1e-5), "mse")
    before = _rss_bytes()
    m.fit(xm, y, batch_size=256, epochs=1, verbose=0)
    grown = _rss_bytes() - before
    assert grown < 64 << 20, f"resident memory grew by {grown >> 20} MiB over a 96 MiB memmap"
    control = np.load(path, mmap_mode="r")
    before = _rss_bytes()
    float(control.sum())                                     # reading the whole map does show in RSS
    assert _rss_bytes() - before > 80 << 20


def test_memmap_batches_use_a_fixed_ring_of_buffers(tmp_path):
    x, y = _data(n=64)
    np.save(tmp_path / "x.npy", x)
    xm = np.load(tmp_path / "x.npy", mmap_mode="r")
    b = MemmapBatches([xm, y], 8, np.float32, shuffle=True, rng=np.random.default_rng(0))
    ids = set()
    for _ in range(3):
        for xb, yb in b:
            ids.add(id(xb))
            rows = [int(np.flatnonzero((x == r).all(axis=1))[0]) for r in xb]
            np.testing.assert_array_equal(y[rows], yb)
    assert len(ids) == b.depth + 1


@pytest.mark.skipif(os.name != "posix", reason="pread")
@pytest.mark.parametrize("dtype, shape", [(np.float32, (13, 7)), (np.float64, (1, 1)), (np.uint8, (29, 3, 5)),
                                          (np.int64, (17,))])
def test_read_rows_matches_numpy_indexing(tmp_path, dtype, shape):
    from nncore._kernels.elementwise import read_rows
    a = (np.arange(np.prod(shape)) % 251).astype(dtype).reshape(shape)
    np.save(tmp_path / "a.npy", a)
    m = np.load(tmp_path / "a.npy", mmap_mode="r")
    fd = os.open(tmp_path / "a.npy", os.O_RDONLY)
    try:
        idx = np.random.default_rng(0).integers(0, shape[0], size=11).astype(np.int64)
        got = np.empty((11,) + shape[1:], dtype)
        np.testing.assert_array_equal(read_rows(fd, m.offset, idx, got), a[idx])
        part = np.empty((shape[0] - 1,) + shape[1:], dtype)
        np.testing.assert_array_equal(read_rows(fd, m.offset, None, part, 1), a[1:])
        with pytest.raises(OSError, match="the file ended before the rows"):
            read_rows(fd, m.offset, np.array([shape[0] + 5], np.int64), got[:1])
        with pytest.raises(ValueError, match="3 indices for 11 rows"):
            read_rows(fd, m.offset, idx[:3], got)
        with pytest.raises(TypeError, match="idx must be a contiguous 1-D int64 array"):
            read_rows(fd, m.offset, idx.astype(np.int32), got)
        with pytest.raises(ValueError, match="output array is read-only"):
            read_rows(fd, m.offset, idx, np.asarray(m)[:11])
    finally:
        os.close(fd)
    with pytest.raises(OSError, match="Bad file descriptor"):
        read_rows(fd, 0, None, got)


def test_a_keras_pydataset_is_a_sequence(monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    x, y = _data()

    class KerasRows(keras.utils.PyDataset):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.ends = 0

        def __len__(self):
            return 5

        def __getitem__(self, i):
            return x[i * 18:(i + 1) * 18], y[i * 18:(i + 1) * 18]

        def on_epoch_end(self):
            self.ends += 1

    a, b = _model(), _model()
    a.fit(x, y, batch_size=18, epochs=2, shuffle=False, verbose=0)
    seq = KerasRows(workers=2, max_queue_size=4)
    b.fit(seq, epochs=2, shuffle=False, verbose=0)
    _same_weights(a, b)
    assert seq.ends == 2
