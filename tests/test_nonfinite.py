"""Non-finite training: a NaN/inf loss or parameter is caught at the end of the batch.

Without a handler, fit raises FloatingPointError naming the epoch and the
batch; with TerminateOnNaN, training stops and the last finite weights stay
in the model; a poisoned model is never written to a file silently.
"""
import numpy as np
import pytest

import nncore
from nncore.callbacks import TerminateOnNaN
from nncore.layers import Dense, Input


def _data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 4))
    y = x @ rng.standard_normal((4, 1)) + 0.1 * rng.standard_normal((n, 1))
    return x, y


def _model(optimizer=None):
    nncore.set_seed(0)
    m = nncore.Sequential([Input(shape=(4,)), Dense(8, activation="tanh"), Dense(1)])
    m.compile(optimizer=optimizer or nncore.optimizers.SGD(learning_rate=0.01), loss="mse")
    return m


def _poison_gradient_at(model, call, index=5):
    """Make the optimizer see a NaN in one gradient entry at its `call`-th step (1-based)."""
    opt = model.optimizer
    original = opt.step_flat
    calls = {"n": 0}

    def step_flat(params, grads):
        calls["n"] += 1
        if calls["n"] == call:
            grads[index] = np.nan
        return original(params, grads)

    opt.step_flat = step_flat
    return calls


class _Recorder(nncore.callbacks.Callback):
    """Keeps a copy of the weights at the start of every batch."""

    def __init__(self):
        self.at_begin = []

    def on_train_batch_begin(self, batch, logs=None):
        self.at_begin.append(self.model.get_weights())


def test_diverging_loss_raises_naming_epoch_and_batch():
    x, y = _data()
    m = _model(nncore.optimizers.SGD(learning_rate=50.0))
    with pytest.raises(FloatingPointError, match=r"non-finite .* at epoch \d+, batch \d+ of 8.*TerminateOnNaN"):
        m.fit(x, y * 1e3, epochs=20, batch_size=8, verbose=0, shuffle=False)


def test_nan_gradient_raises_with_epoch_and_batch(tmp_path):
    x, y = _data()
    m = _model()
    _poison_gradient_at(m, call=11)  # epoch 2 (8 batches per epoch), batch 3
    with pytest.raises(FloatingPointError, match=r"non-finite parameters .* at epoch 2, batch 3 of 8"):
        m.fit(x, y, epochs=3, batch_size=8, verbose=0, shuffle=False)
    # the poisoned model cannot be saved by accident
    with pytest.raises(ValueError, match="NaN or inf"):
        nncore.saving.save_model(m, tmp_path / "m.nncore")
    assert not (tmp_path / "m.nncore").exists()


@pytest.mark.parametrize("n_threads", [1, 2])
def test_nan_gradient_deep_in_a_large_buffer_raises(n_threads):
    # the optimizer's kernel checks each chunk it writes (fit's parameter check): a NaN past the first
    # chunks of a buffer of several, at 1 and 2 threads
    x, y = _data()
    nncore.set_seed(0)
    m = nncore.Sequential([Input(shape=(4,)), Dense(200, activation="tanh"), Dense(100), Dense(1)])
    m.compile(optimizer=nncore.optimizers.Adam(1e-3), loss="mse", n_threads=n_threads)
    _poison_gradient_at(m, call=4, index=2 * 8192 + 11)
    with pytest.raises(FloatingPointError, match=r"non-finite parameters .* at epoch 1, batch 4 of 8"):
        m.fit(x, y, epochs=2, batch_size=8, verbose=0, shuffle=False)


def test_nan_in_a_frozen_weight_raises():
    # a weight outside the optimizer's range (a frozen layer's) is checked by a pass of its own
    x, y = _data()
    nncore.set_seed(0)
    frozen = Dense(8, activation="tanh")
    m = nncore.Sequential([Input(shape=(4,)), Dense(8, activation="tanh"), frozen, Dense(1)])
    frozen.trainable = False
    m.compile(optimizer=nncore.optimizers.SGD(learning_rate=0.01), loss="mse")

    class Poison(nncore.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if batch == 2:
                frozen.bias[3] = np.nan

    with pytest.raises(FloatingPointError, match=r"non-finite .* at epoch 1, batch 3 of 8"):
        m.fit(x, y, epochs=1, batch_size=8, verbose=0, shuffle=False, callbacks=[Poison()])


def test_terminate_on_nan_keeps_the_last_finite_weights(tmp_path):
    x, y = _data()
    m = _model()
    _poison_gradient_at(m, call=11)
    rec = _Recorder()
    cb = TerminateOnNaN()
    hist = m.fit(x, y, epochs=3, batch_size=8, verbose=0, shuffle=False, callbacks=[rec, cb])
    assert m.stop_training
    assert cb.stopped_batch == 2           # 0-based batch index within epoch 2
    assert len(hist.history["loss"]) == 2  # epoch 1 complete, epoch 2 stopped
    # the weights are exactly those before the poisoned step
    for a, b in zip(m.get_weights(), rec.at_begin[10]):
        np.testing.assert_array_equal(a, b)
    assert all(np.isfinite(w).all() for w in m.get_weights())
    p = tmp_path / "m.nncore"
    m.save(p)
    np.testing.assert_array_equal(nncore.load_model(p).predict(x, verbose=0), m.predict(x, verbose=0))


def test_terminate_on_nan_on_a_diverging_loss():
    x, y = _data()
    m = _model(nncore.optimizers.SGD(learning_rate=50.0))
    cb = TerminateOnNaN()
    m.fit(x, y * 1e3, epochs=20, batch_size=8, verbose=0, shuffle=False, callbacks=[cb])
    assert cb.stopped_batch is not None
    assert all(np.isfinite(w).all() for w in m.get_weights())


def test_finite_training_is_untouched():
    """The check changes nothing when all is finite: same weights with and without TerminateOnNaN."""
    x, y = _data()
    m1, m2 = _model(), _model()
    m1.fit(x, y, epochs=2, batch_size=8, verbose=0, shuffle=False)
    m2.fit(x, y, epochs=2, batch_size=8, verbose=0, shuffle=False, callbacks=[TerminateOnNaN()])
    for a, b in zip(m1.get_weights(), m2.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", ["x", "y"])
def test_nonfinite_data_is_refused_before_training(bad, where):
    x, y = _data()
    m = _model()
    before = m.get_weights()
    (x if where == "x" else y)[5, 0] = bad
    with pytest.raises(ValueError, match=f"{where}.*(NaN|inf|finite)"):
        m.fit(x, y, epochs=1, batch_size=8, verbose=0)
    for a, b in zip(m.get_weights(), before):
        np.testing.assert_array_equal(a, b)


def test_poisoned_optimizer_state_is_not_saved_silently(tmp_path):
    """TerminateOnNaN restores finite weights, but Adam's slots saw the NaN gradient: saving them
    would poison the resumed training, so save asks for include_optimizer=False."""
    x, y = _data()
    m = _model(nncore.optimizers.Adam(learning_rate=0.01))
    _poison_gradient_at(m, call=3)
    m.fit(x, y, epochs=1, batch_size=8, verbose=0, shuffle=False, callbacks=[TerminateOnNaN()])
    assert all(np.isfinite(w).all() for w in m.get_weights())
    p = tmp_path / "m.nncore"
    with pytest.raises(ValueError, match="optimizer state .* NaN or inf.*include_optimizer=False"):
        m.save(p)
    nncore.saving.save_model(m, p, include_optimizer=False)
    np.testing.assert_array_equal(nncore.load_model(p).predict(x, verbose=0), m.predict(x, verbose=0))
