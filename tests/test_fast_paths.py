"""The per-step and per-fit fast paths give the same results as the general ones and still
reject bad input: step_flat's identity fast path, the per-class callback hook cache, the
precomputed batch schedule."""
import numpy as np
import pytest

import nncore
import nncore.optimizers as O
from nncore import callbacks as C
from nncore.data import Batches


# ---------------------------------------------------------------- step_flat
def _flat_pair(dtype=np.float64, n=7, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=n).astype(dtype), rng.normal(size=n).astype(dtype)


@pytest.mark.parametrize("make", [lambda: O.Adam(0.01), lambda: O.SGD(0.1, momentum=0.9),
                                  lambda: O.AdamW(0.01, weight_decay=0.1),
                                  lambda: O.Adam(0.01, global_clipnorm=0.5),
                                  lambda: O.RMSprop(0.01, clipnorm=0.3)])
def test_step_flat_matches_apply_gradients_when_hyperparameters_change(make):
    # the fast path caches nothing that a change of lr / weight_decay / clipvalue could make stale
    w0, _ = _flat_pair()
    wf, wv = w0.copy(), w0.copy()
    flat, ref = make(), make()
    flat.build_flat(wf, [(0, 3), (3, 7)])
    grads = np.empty_like(wf)              # one gradient buffer, refilled each step (as the model does)
    rng = np.random.default_rng(1)
    for t in range(6):
        g = rng.normal(size=7)
        grads[:] = g
        if t == 2:
            for o in (flat, ref):
                o.learning_rate = 0.003
        if t == 4 and flat.clipnorm is None and flat.global_clipnorm is None:
            for o in (flat, ref):
                o.clipvalue = 0.2
        if t == 5:
            for o in (flat, ref):
                o.weight_decay = 0.05
        flat.step_flat(wf, grads)
        ref.apply_gradients([(g[:3], wv[:3]), (g[3:], wv[3:])])
    np.testing.assert_allclose(wf, wv, rtol=1e-12, atol=1e-14)
    assert flat.iterations == ref.iterations == 6


def test_step_flat_revalidates_a_different_gradient_array():
    w, g = _flat_pair()
    opt = O.Adam(0.01)
    opt.build_flat(w)
    opt.step_flat(w, g)                        # validated, remembered
    with pytest.raises(TypeError, match="grads_flat: expected dtype float64"):
        opt.step_flat(w, g.astype(np.float32))
    with pytest.raises(ValueError, match=r"grads_flat: expected an ndarray of shape \(7,\)"):
        opt.step_flat(w, g[:5])
    with pytest.raises(ValueError, match="grads_flat: expected a C-contiguous"):
        opt.step_flat(w, np.repeat(g, 2)[::2])
    with pytest.raises(ValueError, match="params_flat: expected the buffer given to build_flat"):
        opt.step_flat(w.copy(), g)
    assert opt.iterations == 1                 # the rejected calls did not step
    opt.step_flat(w, g.copy())                 # another valid array is accepted
    assert opt.iterations == 2


# ---------------------------------------------------------------- callback hooks
class _EpochOnly(C.Callback):
    def on_epoch_end(self, epoch, logs=None):
        pass


class _BatchAlias(_EpochOnly):
    def on_batch_end(self, batch, logs=None):   # the Keras 2 alias of on_train_batch_end
        pass


def _reference_hooks(cb):
    return {h for h in C._HOOKS if C._overrides(cb, h)}


@pytest.mark.parametrize("make", [C.History, C.Callback, _EpochOnly, _BatchAlias,
                                  lambda: C.ProgbarLogger(), lambda: C.ProgbarLogger(verbose=2),
                                  lambda: C.LambdaCallback(on_train_batch_begin=lambda b, l: None),
                                  lambda: C.EarlyStopping(patience=1)])
def test_cached_hook_sets_match_the_per_hook_introspection(make):
    for _ in range(2):                          # the second round reads the per-class cache
        cb = make()
        C.CallbackList([cb], add_history=False, verbose=1, epochs=1, steps=1)
        assert set(C._hooks_of(cb)) == _reference_hooks(cb)


def test_instance_hook_is_seen_even_when_the_class_is_cached():
    C.CallbackList([_EpochOnly()], add_history=False)       # caches _EpochOnly's hooks
    cb = _EpochOnly()
    calls = []
    cb.on_train_batch_begin = lambda batch, logs=None: calls.append(batch)
    cbs = C.CallbackList([cb], add_history=False)
    assert cbs.has_train_batch_hooks
    cbs.on_train_batch_begin(3)
    assert calls == [3]


def test_fit_calls_a_batch_begin_only_listener_every_step():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(37, 4)).astype(np.float32), rng.integers(0, 3, 37)
    model = nncore.Sequential([nncore.layers.Dense(5, activation="relu"),
                               nncore.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    seen = []
    model.fit(x, y, batch_size=8, epochs=2, verbose=0,
              callbacks=[C.LambdaCallback(on_train_batch_begin=lambda b, logs: seen.append(b))])
    assert seen == [0, 1, 2, 3, 4] * 2


# ---------------------------------------------------------------- batch schedule
def test_schedule_is_reused_and_batches_stay_exact_over_epochs():
    n = 11
    x = np.arange(n * 2, dtype=np.float64).reshape(n, 2)
    y = np.arange(n, dtype=np.int64)
    b = Batches([x, y], 4, shuffle=True, rng=np.random.default_rng(3))
    sched = None
    for epoch in range(3):
        rows = []
        for xb, yb in b:
            np.testing.assert_array_equal(xb, x[yb])
            rows += list(yb)
        assert sorted(rows) == list(range(n))
        if sched is None:
            sched = b._sched
        assert b._sched is sched                # built once, not per epoch
    assert [len(p) for p, *_ in sched] == [4, 4, 3]


def test_rebind_reuses_buffers_and_gives_a_fresh_batches_order():
    n = 13
    x = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
    y = np.arange(n, dtype=np.int64)
    b = Batches([x, y, None], 5, shuffle=True, rng=np.random.default_rng(0))
    for _ in b:
        pass
    bufs = [id(out[0]) for _, _, out, _ in b._sched]
    x2, y2 = x + 100, y[::-1].copy()
    assert b.rebind([x2, y2, None], 5, True, np.random.default_rng(7))
    got = [(xb.copy(), yb.copy()) for xb, yb, _ in b]
    fresh = [(xb.copy(), yb.copy()) for xb, yb, _ in
             Batches([x2, y2, None], 5, shuffle=True, rng=np.random.default_rng(7))]
    for (xa, ya), (xf, yf) in zip(got, fresh, strict=True):
        np.testing.assert_array_equal(xa, xf)
        np.testing.assert_array_equal(ya, yf)
    assert [id(out[0]) for _, _, out, _ in b._sched] == bufs
    # another layout, batch size or shuffle flag is refused and changes nothing
    assert not b.rebind([x2.astype(np.float64), y2, None], 5, True, np.random.default_rng(0))
    assert not b.rebind([x2, y2, y2.astype(np.float32)], 5, True, np.random.default_rng(0))
    assert not b.rebind([x2, y2, None], 4, True, np.random.default_rng(0))
    assert not b.rebind([x2[:-1], y2[:-1], None], 5, True, np.random.default_rng(0))
    it = iter(b)
    next(it)                                   # an iteration in progress is never rebound
    assert not b.rebind([x2, y2, None], 5, True, np.random.default_rng(0))
    it.close()
    assert b.rebind([x2, y2, None], 5, True, np.random.default_rng(0))


def _model(optimizer="adam"):
    model = nncore.Sequential([nncore.layers.Dense(6, activation="relu"),
                               nncore.layers.Dense(3, activation="softmax")])
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    model.build((None, 4))
    return model


def test_repeated_fits_match_a_fresh_model_and_keep_no_data_alive():
    import gc
    import weakref
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(41, 4)).astype(np.float32), rng.integers(0, 3, 41)
    a, b = _model(), _model()
    b.set_weights(a.get_weights())
    for k in range(3):                          # a reuses its Batches; b gets a fresh one each time
        nncore.set_seed(k)
        ha = a.fit(x, y, batch_size=8, epochs=2, verbose=0).history["loss"]
        b._train_batches = None
        nncore.set_seed(k)
        hb = b.fit(x, y, batch_size=8, epochs=2, verbose=0).history["loss"]
        assert ha == hb
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    big = x.copy()
    ref = weakref.ref(big)
    a.fit(big, y, batch_size=8, epochs=1, verbose=0)
    del big
    gc.collect()
    assert ref() is None                        # the model does not hold the training inputs


def test_fit_inside_a_callback_gets_its_own_batches():
    n = 30
    x = np.zeros((n, 4), np.float32)
    x[:, 0] = np.arange(n)                     # column 0 names the sample
    y = np.arange(n) % 3
    model = _model("sgd")
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    outer = model._train_batches
    rows = []

    class Inner(C.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            rows.extend(outer._sched[batch][0].tolist())     # the outer batch's sample indices
            if batch == 1:
                model.fit(x[::-1].copy(), y[::-1].copy(), batch_size=8, epochs=1, verbose=0)
                assert model._train_batches is not outer

    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[Inner()])
    assert sorted(rows) == list(range(n))      # the outer epoch still saw every sample once
