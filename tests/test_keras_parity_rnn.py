"""Parity of SimpleRNN, LSTM and GRU with the real Keras 3 (torch backend).

The same weights go into both (they transfer both ways unchanged: same shapes, same gate order),
then outputs, one training step's weights and a short fit's History are compared. Skipped when
keras is not installed, as tests/test_keras_parity.py. Keras runs in float64, so agreement is to
~1e-12 except where a comment says why not.
"""
from keras_parity_common import float64_both, keras, pytestmark  # noqa: F401 (skips without keras)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import nncore  # noqa: E402
from nncore import layers as nl  # noqa: E402
from nncore import optimizers as nopt  # noqa: E402
from nncore.models import Sequential  # noqa: E402


# Keras's own SimpleRNN cell agrees with the float64 recurrence h = tanh(x W + h U + b) computed in
# NumPy only to ~1e-7 (its LSTM and GRU to 1e-16); nncore agrees with NumPy to 1e-16
# (tests/test_recurrent.py), so SimpleRNN comparisons use a wider tolerance.
_TOL = {"SimpleRNN": dict(rtol=1e-6, atol=1e-6), "LSTM": dict(rtol=1e-11, atol=1e-12),
        "GRU": dict(rtol=1e-11, atol=1e-12)}


def kn(x):
    return np.asarray(keras.ops.convert_to_numpy(x), dtype=np.float64)


_OUT_CASES = [
    {}, {"return_sequences": True}, {"go_backwards": True}, {"return_sequences": True, "go_backwards": True},
    {"activation": "relu", "use_bias": False},
]


@pytest.mark.parametrize("kind", ["SimpleRNN", "LSTM", "GRU"])
@pytest.mark.parametrize("kw", _OUT_CASES, ids=lambda kw: "-".join(kw) or "default")
def test_outputs_match_keras_with_keras_weights(kind, kw):
    kw = dict(kw)
    if kind != "SimpleRNN" and "activation" in kw:
        kw["recurrent_activation"] = "hard_sigmoid"
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 7, 3))
    kl = getattr(keras.layers, kind)(5, **kw)
    ky = kn(kl(x))
    layer = getattr(nl, kind)(5, **kw)
    layer(x)
    assert [w.shape for w in layer.get_weights()] == [tuple(w.shape) for w in kl.get_weights()]
    layer.set_weights(kl.get_weights())                   # Keras -> nncore
    np.testing.assert_allclose(layer(x), ky, **_TOL[kind])
    for w in layer.weights:                               # nncore -> Keras
        w[...] = rng.standard_normal(w.shape) * 0.4
    kl.set_weights(layer.get_weights())
    np.testing.assert_allclose(layer(x), kn(kl(x)), **_TOL[kind])


def test_lstm_default_initial_bias_matches_keras():
    kl = keras.layers.LSTM(4)
    kl.build((None, 3, 2))
    layer = nl.LSTM(4)
    layer(np.zeros((1, 3, 2)))
    np.testing.assert_array_equal(layer.bias, kn(kl.weights[2]))   # unit_forget_bias: f-block ones


def _twins(kind, T, D, k, seed, **kw):
    km = keras.Sequential([keras.Input(shape=(T, D)), getattr(keras.layers, kind)(6, return_sequences=True, **kw),
                           getattr(keras.layers, kind)(5, **kw), keras.layers.Dense(k, activation="softmax")])
    nm = Sequential([getattr(nl, kind)(6, return_sequences=True, input_shape=(T, D), **kw),
                     getattr(nl, kind)(5, **kw), nl.Dense(k, "softmax")])
    w = [np.random.default_rng(seed).normal(scale=0.5, size=v.shape) for v in km.get_weights()]
    km.set_weights(w)
    nm.set_weights(w)
    return km, nm


@pytest.mark.parametrize("kind", ["SimpleRNN", "LSTM", "GRU"])
@pytest.mark.parametrize("kw", [{}, {"return_sequences": True, "go_backwards": True}], ids=["last", "seq-back"])
def test_gradients_match_keras_autograd(kind, kw):
    # dL/dx and dL/dW for L = sum(y * dy): torch autograd through the Keras layer, float64 throughout
    import torch
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 6, 4))
    kl = getattr(keras.layers, kind)(5, **kw)
    kl.build((None, 6, 4))
    w = [rng.standard_normal(v.shape) * 0.5 for v in kl.get_weights()]
    kl.set_weights(w)
    xt = torch.tensor(x, requires_grad=True)
    out = kl(xt)
    dy = rng.standard_normal(tuple(out.shape))
    (out * torch.tensor(dy)).sum().backward()
    layer = getattr(nl, kind)(5, **kw)
    layer(x)
    layer.set_weights(w)
    layer.forward(x, True)
    np.testing.assert_allclose(layer.backward(dy), xt.grad.numpy(), **_TOL[kind])
    for attr, v in zip(["kernel", "recurrent_kernel", "bias"], kl.weights):
        np.testing.assert_allclose(layer._grad_of[attr], v.value.grad.numpy(), **_TOL[kind], err_msg=attr)


# Keras's fit carries float32 rounding into the gradients it trains with even under floatx float64
# (its loss reduction; see _F32 in tests/test_keras_parity.py), so whole training steps agree to
# ~1e-7 relative; the float64 gradients themselves are compared above at 1e-11.
@pytest.mark.parametrize("kind", ["SimpleRNN", "LSTM", "GRU"])
def test_one_sgd_step_matches_keras(kind):
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((10, 6, 3)), rng.integers(0, 3, 10)
    km, nm = _twins(kind, 6, 3, 3, seed=2, go_backwards=(kind == "GRU"))
    w0 = nm.get_weights()
    for m, opt in ((km, keras.optimizers.SGD(0.5)), (nm, nopt.SGD(0.5))):
        m.compile(optimizer=opt, loss="sparse_categorical_crossentropy")
        m.fit(x, y, batch_size=10, epochs=1, shuffle=False, verbose=0)
    for a, b, c in zip(km.get_weights(), nm.get_weights(), w0):
        assert np.abs(b - c).max() > 1e-4                 # the step moved every weight array
        np.testing.assert_allclose(b - c, a - c, rtol=1e-5, atol=1e-6 * np.abs(a - c).max())


def _fit_both(km, nm, x, y, loss, epochs=2, batch_size=8, metrics=("accuracy",), opt=("Adam", 0.01), **fit_kw):
    for m, o in ((km, getattr(keras.optimizers, opt[0])(opt[1])), (nm, getattr(nopt, opt[0])(opt[1]))):
        m.compile(optimizer=o, loss=loss, metrics=list(metrics))
    kw = dict(batch_size=batch_size, epochs=epochs, shuffle=False, verbose=0, **fit_kw)
    hk, hn = km.fit(x, y, **kw).history, nm.fit(x, y, **kw).history
    assert sorted(hk) == sorted(hn)
    for key in hk:
        np.testing.assert_allclose(hn[key], hk[key], rtol=1e-6, atol=1e-7, err_msg=key)
    for a, b in zip(km.get_weights(), nm.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-6)
    return hk, hn


@pytest.mark.parametrize("kind", ["SimpleRNN", "LSTM", "GRU"])
def test_short_fit_history_matches_keras(kind):
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((30, 5, 4)), rng.integers(0, 3, 30)
    # regularizers on every weight of the recurrent layers (Keras's "l2" and nncore's: factor 0.01)
    km, nm = _twins(kind, 5, 4, 3, seed=4, kernel_regularizer="l2", recurrent_regularizer="l1",
                    bias_regularizer="l2")
    _fit_both(km, nm, x, y, "sparse_categorical_crossentropy", validation_split=0.2)


def test_embedding_lstm_text_model_matches_keras():
    # integer token inputs: Keras takes them as ints, nncore's model casts them to its float dtype
    rng = np.random.default_rng(6)
    x, y = rng.integers(0, 12, (24, 6)), rng.integers(0, 2, 24)
    km = keras.Sequential([keras.Input(shape=(6,), dtype="int64"), keras.layers.Embedding(12, 4),
                           keras.layers.LSTM(5), keras.layers.Dense(2, activation="softmax")])
    nm = Sequential([nl.Embedding(12, 4, input_shape=(6,)), nl.LSTM(5), nl.Dense(2, "softmax")])
    assert [w.shape for w in nm.get_weights()] == [tuple(w.shape) for w in km.get_weights()]
    w = [np.random.default_rng(7).normal(scale=0.5, size=v.shape) for v in km.get_weights()]
    km.set_weights(w)
    nm.set_weights(w)
    # Keras's softmax output on the torch backend agrees with a float64 NumPy softmax of its own LSTM's
    # output only to ~3e-9 (nncore's to 1e-16), hence 1e-8 here; the LSTM itself is compared at 1e-11 above
    np.testing.assert_allclose(nm.predict(x, verbose=0), kn(km(x)), rtol=1e-8, atol=1e-9)
    for m, opt in ((km, keras.optimizers.RMSprop(0.01)), (nm, nopt.RMSprop(0.01))):
        m.compile(optimizer=opt, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    fit_kw = dict(batch_size=8, epochs=3, shuffle=False, verbose=0)
    hk, hn = km.fit(x, y, **fit_kw).history, nm.fit(x, y, **fit_kw).history
    for key in hk:
        np.testing.assert_allclose(hn[key], hk[key], rtol=1e-6, atol=1e-7, err_msg=key)
    for a, b in zip(km.get_weights(), nm.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-6)


def test_lstm_fit_float32_matches_keras():
    # the default precision: both in float32, agreement to float32 rounding after 15 steps
    old_policy = keras.config.dtype_policy()
    keras.config.set_floatx("float32")
    keras.config.set_dtype_policy("float32")
    nncore.set_floatx("float32")
    try:
        rng = np.random.default_rng(8)
        x, y = rng.standard_normal((40, 5, 4)).astype(np.float32), rng.integers(0, 3, 40)
        km, nm = _twins("LSTM", 5, 4, 3, seed=9)
        assert km.weights[0].dtype == "float32" and nm.get_weights()[0].dtype == np.float32
        for m, opt in ((km, keras.optimizers.Adam(0.01)), (nm, nopt.Adam(0.01))):
            m.compile(optimizer=opt, loss="sparse_categorical_crossentropy")
        fit_kw = dict(batch_size=8, epochs=3, shuffle=False, verbose=0)
        hk, hn = km.fit(x, y, **fit_kw).history, nm.fit(x, y, **fit_kw).history
        np.testing.assert_allclose(hn["loss"], hk["loss"], rtol=1e-5)
        for a, b in zip(km.get_weights(), nm.get_weights()):
            np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)
    finally:
        keras.config.set_floatx("float64")
        keras.config.set_dtype_policy(old_policy)
        nncore.set_floatx("float64")


# --------------------------------------------------------------------------- the options
# (layer kwargs, call: mask / initial_state / training with dropout masks given to both)
_OPTION_CASES = [
    ({"return_sequences": True}, {"mask": True}),
    ({}, {"mask": True}),
    ({"return_sequences": True, "go_backwards": True, "zero_output_for_mask": True}, {"mask": True}),
    ({"return_state": True}, {"init": True}),
    ({"return_sequences": True, "return_state": True}, {"init": True, "mask": True}),
    ({"dropout": 0.3}, {"training": True}),
    ({"dropout": 0.3, "recurrent_dropout": 0.4, "return_sequences": True}, {"training": True, "mask": True}),
    ({"reset_after": False}, {}),
    ({"reset_after": False, "return_sequences": True, "return_state": True, "recurrent_dropout": 0.3},
     {"training": True, "mask": True, "init": True}),
]


def _tol(kind, kw, masked):
    """Keras runs an LSTM/GRU through its fused loop (exact in float64) unless there is a mask, recurrent
    dropout or reset_after=False; its generic step loop on the torch backend then agrees with a float64
    NumPy run only to ~1e-7 (measured: 1e-7 with an all-True mask, 2e-16 without), as for SimpleRNN."""
    generic = masked or kw.get("recurrent_dropout") or kw.get("reset_after") is False
    return _TOL["SimpleRNN"] if generic else _TOL[kind]


def _mask(rng, n, T):
    m = rng.random((n, T)) < 0.7
    m[0], m[1, :2], m[2] = True, False, False            # all valid, leading masked, all masked
    return m


def _give_dropout_masks(kl, layer):
    """Hand nncore's dropout masks of the last training call to the Keras cell (its cached masks)."""
    import torch
    cur, cell = layer._cur, kl.cell
    k = getattr(cell, "dropout_mask_count", None)
    for m, attr in ((cur.mi, "_dropout_mask"), (cur.mr, "_recurrent_dropout_mask")):
        if m is None:
            continue
        ts = [torch.tensor(a) for a in m]
        setattr(cell, attr, ts if k is not None else ts[0])


@pytest.mark.parametrize("kind,case", [(k, c) for k in ("SimpleRNN", "LSTM", "GRU") for c in _OPTION_CASES
                                       if k == "GRU" or "reset_after" not in c[0]],
                         ids=lambda v: v if isinstance(v, str) else "-".join(list(v[0]) + list(v[1])))
def test_options_outputs_and_gradients_match_keras(kind, case):
    # outputs (and final states), dL/dx, dL/dW and dL/d(initial states) for L = sum of outputs * seeds,
    # torch autograd through the Keras layer called with the same mask, states and dropout masks
    import torch
    kw, opts = case
    rng = np.random.default_rng(len(kind) * 10 + _OPTION_CASES.index(case))
    n, T, D, u = 4, 5, 3, 4
    x = rng.standard_normal((n, T, D))
    layer = getattr(nl, kind)(u, **kw)
    layer(x)
    kl = getattr(keras.layers, kind)(u, **kw)
    kl.build((None, T, D))
    w = [rng.standard_normal(v.shape) * 0.5 for v in kl.get_weights()]
    kl.set_weights(w)
    layer.set_weights(w)
    mask = _mask(rng, n, T) if opts.get("mask") else None
    n_states = 2 if kind == "LSTM" else 1
    init = [rng.standard_normal((n, u)) for _ in range(n_states)] if opts.get("init") else None
    training = bool(opts.get("training"))
    tol = _tol(kind, kw, mask is not None)
    out = layer.forward(x, training, mask=mask, initial_state=init)
    outs = [a.copy() for a in out] if isinstance(out, list) else [out.copy()]
    seeds = [rng.standard_normal(o.shape) for o in outs]
    grads = layer.backward(seeds if layer.return_state else seeds[0])
    grads = [g.copy() for g in (grads if isinstance(grads, list) else [grads])]
    if training:
        _give_dropout_masks(kl, layer)
    xt = torch.tensor(x, requires_grad=True)
    it = [torch.tensor(s, requires_grad=True) for s in init] if init is not None else None
    kout = kl(xt, mask=None if mask is None else torch.tensor(mask), initial_state=it, training=training)
    kouts = list(kout) if isinstance(kout, (list, tuple)) else [kout]
    assert len(kouts) == len(outs)
    for a, b in zip(outs, kouts):
        np.testing.assert_allclose(a, kn(b.detach()), **tol)
    sum((o * torch.tensor(s)).sum() for o, s in zip(kouts, seeds)).backward()
    np.testing.assert_allclose(grads[0], xt.grad.numpy(), **tol)
    for g, t in zip(grads[1:], it or []):
        np.testing.assert_allclose(g, t.grad.numpy(), **tol)
    for attr, v in zip(["kernel", "recurrent_kernel", "bias"], kl.weights):
        np.testing.assert_allclose(layer._grad_of[attr], v.value.grad.numpy(), **tol, err_msg=attr)


@pytest.mark.parametrize("kind", ["SimpleRNN", "LSTM", "GRU"])
def test_stateful_matches_keras(kind):
    rng = np.random.default_rng(21)
    x = rng.standard_normal((3, 8, 2))
    kl = getattr(keras.layers, kind)(4, stateful=True, return_sequences=True)
    kl.build((3, 4, 2))
    layer = getattr(nl, kind)(4, stateful=True, return_sequences=True)
    layer(x[:, :4])
    layer.reset_states()
    w = [rng.standard_normal(v.shape) * 0.5 for v in kl.get_weights()]
    kl.set_weights(w)
    layer.set_weights(w)
    for part in (x[:, :4], x[:, 4:], x[:, :4]):            # the state carries from call to call
        np.testing.assert_allclose(layer(part), kn(kl(part)), **_TOL[kind])
    kl.reset_state()
    layer.reset_states()
    np.testing.assert_allclose(layer(x[:, 4:]), kn(kl(x[:, 4:])), **_TOL[kind])


@pytest.mark.parametrize("mode", ["concat", "sum", "mul", "ave", None], ids=str)
@pytest.mark.parametrize("kw", [{}, {"return_sequences": True}, {"return_sequences": True, "return_state": True}],
                         ids=["last", "seq", "seq-state"])
def test_bidirectional_matches_keras(mode, kw):
    import torch
    rng = np.random.default_rng(7)
    n, T, D = 4, 5, 3
    x = rng.standard_normal((n, T, D))
    mask = _mask(rng, n, T)
    kl = keras.layers.Bidirectional(keras.layers.LSTM(3, **kw), merge_mode=mode)
    kl.build((None, T, D))
    layer = nl.Bidirectional(nl.LSTM(3, **kw), merge_mode=mode)
    layer(x)
    assert [w.shape for w in layer.get_weights()] == [tuple(w.shape) for w in kl.get_weights()]
    w = [rng.standard_normal(v.shape) * 0.5 for v in kl.get_weights()]
    kl.set_weights(w)
    layer.set_weights(w)
    out = layer.forward(x, True, mask=mask)
    outs = [a.copy() for a in out] if isinstance(out, list) else [out.copy()]
    seeds = [rng.standard_normal(o.shape) for o in outs]
    dx = layer.backward(seeds if len(outs) > 1 else seeds[0]).copy()
    xt = torch.tensor(x, requires_grad=True)
    kout = kl(xt, mask=torch.tensor(mask))
    kouts = list(kout) if isinstance(kout, (list, tuple)) else [kout]
    for a, b in zip(outs, kouts):
        np.testing.assert_allclose(a, kn(b.detach()), **_TOL['SimpleRNN'])
    sum((o * torch.tensor(s)).sum() for o, s in zip(kouts, seeds)).backward()
    np.testing.assert_allclose(dx, xt.grad.numpy(), **_TOL['SimpleRNN'])
    for name, v in zip([a for a, *_ in layer._specs], kl.weights):
        np.testing.assert_allclose(layer._grad_of[name], v.value.grad.numpy(), **_TOL['SimpleRNN'],
                                   err_msg=name)


def _same_weights(km, nm, seed):
    assert [w.shape for w in nm.get_weights()] == [tuple(w.shape) for w in km.get_weights()]
    w = [np.random.default_rng(seed).normal(scale=0.5, size=v.shape) for v in km.get_weights()]
    km.set_weights(w)
    nm.set_weights(w)


def test_masked_sequence_labelling_fit_matches_keras():
    # Embedding(mask_zero) -> Bidirectional(LSTM, sequences) -> Dense softmax per step: the loss and the
    # accuracy over the valid steps only (Keras's masked reduction), one SGD step then a short fit
    rng = np.random.default_rng(30)
    x = rng.integers(1, 10, (24, 7))
    for i in range(24):
        x[i, rng.integers(3, 8):] = 0                       # padded at the end, different lengths
    y = rng.integers(0, 3, (24, 7))
    km = keras.Sequential([keras.Input((7,), dtype="int64"), keras.layers.Embedding(10, 4, mask_zero=True),
                           keras.layers.Bidirectional(keras.layers.LSTM(5, return_sequences=True)),
                           keras.layers.Dense(3, activation="softmax")])
    nm = Sequential([nl.Embedding(10, 4, mask_zero=True, input_shape=(7,)),
                     nl.Bidirectional(nl.LSTM(5, return_sequences=True)), nl.Dense(3, "softmax")])
    _same_weights(km, nm, 31)
    np.testing.assert_allclose(nm.predict(x, verbose=0), kn(km(x)), rtol=1e-7, atol=1e-8)
    w0 = nm.get_weights()
    _fit_both(km, nm, x, y, "sparse_categorical_crossentropy", epochs=1, batch_size=24, opt=("SGD", 0.5))
    assert all(np.abs(a - b).max() > 1e-4 for a, b in zip(nm.get_weights(), w0))
    _fit_both(km, nm, x, y, "sparse_categorical_crossentropy", validation_split=0.25)


@pytest.mark.parametrize("kind", ["SimpleRNN", "LSTM", "GRU"])
def test_masking_and_options_fit_matches_keras(kind):
    # Masking -> recurrent layer (sequences, reset_after=False for the GRU) -> recurrent layer -> Dense
    rng = np.random.default_rng(40)
    x = rng.standard_normal((30, 6, 3))
    x[rng.random((30, 6)) < 0.3] = 0.0                      # masked steps anywhere
    y = rng.standard_normal((30, 2))
    kw = {"reset_after": False} if kind == "GRU" else {}
    km = keras.Sequential([keras.Input((6, 3)), keras.layers.Masking(0.0),
                           getattr(keras.layers, kind)(5, return_sequences=True, **kw),
                           getattr(keras.layers, kind)(4, go_backwards=True, **kw), keras.layers.Dense(2)])
    nm = Sequential([nl.Masking(0.0, input_shape=(6, 3)), getattr(nl, kind)(5, return_sequences=True, **kw),
                     getattr(nl, kind)(4, go_backwards=True, **kw), nl.Dense(2)])
    _same_weights(km, nm, 41)
    np.testing.assert_allclose(nm.predict(x, verbose=0), kn(km(x)), **_TOL["SimpleRNN"])   # see _tol
    _fit_both(km, nm, x, y, "mse", metrics=("mae",), opt=("RMSprop", 0.01))


def test_frozen_bidirectional_fit_matches_keras():
    # a Bidirectional(GRU) frozen by the setter under a trained LSTM: the History, the unchanged frozen
    # weights and the trainable / non-trainable counts. (Keras 3.15's Bidirectional(..., trainable=False)
    # constructor leaves its two layers trainable and fit still updates them; nncore freezes them.)
    rng = np.random.default_rng(45)
    x, y = rng.standard_normal((24, 5, 3)), rng.integers(0, 2, 24)
    km = keras.Sequential([keras.Input((5, 3)), keras.layers.Bidirectional(keras.layers.GRU(4, return_sequences=True)),
                           keras.layers.LSTM(3), keras.layers.Dense(2, activation="softmax")])
    nm = Sequential([nl.Bidirectional(nl.GRU(4, return_sequences=True), input_shape=(5, 3)), nl.LSTM(3),
                     nl.Dense(2, "softmax")])
    km.layers[0].trainable = nm.layers[0].trainable = False
    _same_weights(km, nm, 46)
    frozen = [w.copy() for w in nm.layers[0].weights]
    _fit_both(km, nm, x, y, "sparse_categorical_crossentropy")
    assert all(np.array_equal(a, b) for a, b in zip(frozen, nm.layers[0].weights))
    for which in ("trainable_weights", "non_trainable_weights"):
        assert sum(w.size for w in getattr(nm, which)) == sum(int(np.prod(w.shape)) for w in getattr(km, which))


def test_sequence_regression_loss_per_step_matches_keras():
    # a return_sequences output with mse and no mask: Keras divides by batch * timesteps
    rng = np.random.default_rng(50)
    x, y = rng.standard_normal((20, 5, 2)), rng.standard_normal((20, 5, 3))
    km = keras.Sequential([keras.Input((5, 2)), keras.layers.GRU(4, return_sequences=True),
                           keras.layers.Dense(3)])
    nm = Sequential([nl.GRU(4, return_sequences=True, input_shape=(5, 2)), nl.Dense(3)])
    _same_weights(km, nm, 51)
    _fit_both(km, nm, x, y, "mse", metrics=("mae",))


def test_stateful_fit_matches_keras():
    # SimpleRNN: Keras 3.15's fit of a stateful LSTM or GRU fails on the torch backend ("modified by an
    # inplace operation" in autograd); their stateful forward is compared in test_stateful_matches_keras
    rng = np.random.default_rng(60)
    x, y = rng.standard_normal((16, 4, 3)), rng.integers(0, 2, 16)
    km = keras.Sequential([keras.Input(batch_shape=(4, 4, 3)), keras.layers.SimpleRNN(5, stateful=True),
                           keras.layers.Dense(2, activation="softmax")])
    nm = Sequential([nl.SimpleRNN(5, stateful=True, batch_input_shape=(4, 4, 3)), nl.Dense(2, "softmax")])
    _same_weights(km, nm, 61)
    _fit_both(km, nm, x, y, "sparse_categorical_crossentropy", batch_size=4)
    np.testing.assert_allclose(nm.layers[0].states[0], kn(km.layers[0].states[0]), rtol=1e-6, atol=1e-7)


def test_functional_encoder_decoder_fit_matches_keras():
    # return_state into initial_state, Bidirectional(merge_mode=None) into Concatenate: the functional API
    rng = np.random.default_rng(70)

    def build(L, Input, M):
        a, b = Input((5, 3)), Input((4, 2))
        _, h, c = L.LSTM(6, return_state=True)(a)
        y = L.LSTM(6, return_sequences=True)(b, initial_state=[h, c])
        f, g = L.Bidirectional(L.GRU(3, return_sequences=True), merge_mode=None)(y)
        return M([a, b], L.Dense(3, activation="softmax")(L.Concatenate()([f, g])))

    km = build(keras.layers, lambda s: keras.Input(s), keras.Model)
    nm = build(nl, lambda s: nncore.Input(s), nncore.models.Model)
    _same_weights(km, nm, 71)
    xa, xb, y = rng.standard_normal((16, 5, 3)), rng.standard_normal((16, 4, 2)), rng.integers(0, 3, (16, 4))
    np.testing.assert_allclose(nm.predict([xa, xb], verbose=0), kn(km([xa, xb])), rtol=1e-7, atol=1e-8)
    _fit_both(km, nm, [xa, xb], y, "sparse_categorical_crossentropy")


def test_shared_bidirectional_fit_matches_keras():
    # one Bidirectional (shared weights) on two inputs: each call keeps buffers of its own, the two
    # calls' gradients add up
    rng = np.random.default_rng(80)

    def build(L, Input, M):
        a, b = Input((5, 3)), Input((4, 3))
        bi = L.Bidirectional(L.GRU(4), merge_mode="ave")
        return M([a, b], L.Dense(2, activation="softmax")(L.Concatenate()([bi(a), bi(b)])))

    km = build(keras.layers, lambda s: keras.Input(s), keras.Model)
    nm = build(nl, lambda s: nncore.Input(s), nncore.models.Model)
    _same_weights(km, nm, 81)
    xa, xb, y = rng.standard_normal((16, 5, 3)), rng.standard_normal((16, 4, 3)), rng.integers(0, 2, 16)
    _fit_both(km, nm, [xa, xb], y, "sparse_categorical_crossentropy")
