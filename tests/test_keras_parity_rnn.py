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


@pytest.mark.parametrize("kind", ["SimpleRNN", "LSTM", "GRU"])
def test_short_fit_history_matches_keras(kind):
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((30, 5, 4)), rng.integers(0, 3, 30)
    # regularizers on every weight of the recurrent layers (Keras's "l2" and nncore's: factor 0.01)
    km, nm = _twins(kind, 5, 4, 3, seed=4, kernel_regularizer="l2", recurrent_regularizer="l1",
                    bias_regularizer="l2")
    for m, opt in ((km, keras.optimizers.Adam(0.01)), (nm, nopt.Adam(0.01))):
        m.compile(optimizer=opt, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    fit_kw = dict(batch_size=8, epochs=2, shuffle=False, verbose=0, validation_split=0.2)
    hk, hn = km.fit(x, y, **fit_kw).history, nm.fit(x, y, **fit_kw).history
    assert sorted(hk) == sorted(hn)
    for key in hk:
        np.testing.assert_allclose(hn[key], hk[key], rtol=1e-6, atol=1e-7, err_msg=key)
    for a, b in zip(km.get_weights(), nm.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-6)


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
