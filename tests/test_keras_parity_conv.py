"""Parity of the convolution and pooling layers with the real Keras 3 (torch backend).

Skipped when keras is not installed, as tests/test_keras_parity.py. The same weights go into both
(the kernel layout (kh, kw, in, filters) is Keras's, so they transfer unchanged); outputs, output
shapes, gradients (one SGD step of lr 1 over one batch: w0 - w1 = g) and a short fit's History are
compared, in float64.
"""
from keras_parity_common import float64_both, keras, pytestmark  # noqa: F401 (skips without keras)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import nncore  # noqa: E402
from nncore import layers as NL  # noqa: E402

KL = keras.layers


def _twins(kl, nl, input_shape, seed=0):
    """Keras and nncore models of the given layers with the same random weights (biases non-zero)."""
    km = keras.Sequential([keras.Input(shape=input_shape)] + kl)
    nm = nncore.Sequential([NL.Input(shape=input_shape)] + nl)
    rng = np.random.default_rng(seed)
    w = [rng.normal(scale=0.5, size=v.shape) for v in km.get_weights()]
    assert [v.shape for v in w] == [v.shape for v in nm.get_weights()]
    km.set_weights(w)
    nm.set_weights(w)
    return km, nm


def _forward_both(kl, nl, x, seed=0):
    km, nm = _twins(kl, nl, x.shape[1:], seed)
    assert nm.output_shape == tuple(km.output_shape)
    assert nm.count_params() == km.count_params()
    return np.asarray(km.predict(x, verbose=0)), nm.predict(x, verbose=0)


CONV2D = [  # kwargs of Conv2D; the input is (3, 9, 8, 2)
    dict(filters=4, kernel_size=3),
    dict(filters=3, kernel_size=(2, 3), padding="same", activation="relu"),
    dict(filters=2, kernel_size=3, strides=2, padding="same", activation="tanh"),
    dict(filters=5, kernel_size=(3, 2), strides=(3, 2), padding="valid"),
    dict(filters=2, kernel_size=(2, 2), strides=(1, 3), padding="same", activation="sigmoid"),  # asymmetric pads
    dict(filters=3, kernel_size=3, dilation_rate=(2, 1), padding="same", activation="gelu"),
    dict(filters=3, kernel_size=2, dilation_rate=2, activation="softmax", use_bias=False),
    dict(filters=4, kernel_size=1),
    dict(filters=4, kernel_size=4, strides=3),                                                   # stride > kernel - 1
]


@pytest.mark.parametrize("kw", CONV2D, ids=lambda kw: "-".join(f"{k}{v}" for k, v in kw.items()))
def test_conv2d_forward_matches_keras(kw):
    x = np.random.default_rng(1).normal(size=(3, 9, 8, 2))
    yk, yn = _forward_both([KL.Conv2D(**kw)], [NL.Conv2D(**kw)], x)
    np.testing.assert_allclose(yn, yk, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kw", [dict(filters=3, kernel_size=3), dict(filters=2, kernel_size=4, padding="same",
                                                                     strides=2),
                                dict(filters=3, kernel_size=3, padding="causal", dilation_rate=2, activation="relu"),
                                dict(filters=2, kernel_size=2, padding="causal", strides=3)])
def test_conv1d_forward_matches_keras(kw):
    x = np.random.default_rng(2).normal(size=(2, 11, 3))
    yk, yn = _forward_both([KL.Conv1D(**kw)], [NL.Conv1D(**kw)], x)
    np.testing.assert_allclose(yn, yk, rtol=1e-10, atol=1e-12)


POOLS = [dict(pool_size=2), dict(pool_size=3, strides=1, padding="same"), dict(pool_size=(3, 2), strides=(2, 1)),
         dict(pool_size=3, strides=2, padding="same"), dict(pool_size=2, padding="same"),
         dict(pool_size=(1, 3), strides=(2, 2), padding="same")]


@pytest.mark.parametrize("kind", ["Max", "Average"])
@pytest.mark.parametrize("kw", POOLS, ids=lambda kw: "-".join(f"{k}{v}" for k, v in kw.items()))
def test_pooling_forward_matches_keras(kind, kw):
    x = np.random.default_rng(3).normal(size=(2, 7, 9, 3))
    kl, nl = getattr(KL, kind + "Pooling2D")(**kw), getattr(NL, kind + "Pooling2D")(**kw)
    pads = [max((-(-s // st) - 1) * st + p - s, 0)                                   # Keras 'same' pad totals
            for s, p, st in zip((7, 9), nl.pool_size, nl.strides)] if kw.get("padding") == "same" else [0, 0]
    if kind == "Average" and any(p % 2 for p in pads):
        # Keras's torch backend pads an odd total by replicating the edge (nn.py _apply_same_padding), so its
        # 'same' average then counts copies of edge pixels; TensorFlow and JAX (and nncore, following Keras's
        # documented rule) leave padding out of the count. Compare against that rule instead.
        yn = nl(x)
        ref = np.zeros_like(yn)
        (ph, pw), (sh, sw), (kh, kw_) = [p // 2 for p in pads], nl.strides, nl.pool_size
        for i in range(yn.shape[1]):
            for j in range(yn.shape[2]):
                r0, c0 = i * sh - ph, j * sw - pw
                ref[:, i, j] = x[:, max(r0, 0):r0 + kh, max(c0, 0):c0 + kw_].mean(axis=(1, 2))
        np.testing.assert_allclose(yn, ref, rtol=1e-13, atol=1e-13)
        return
    yk, yn = _forward_both([kl], [nl], x)
    np.testing.assert_allclose(yn, yk, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["Max", "Average"])
@pytest.mark.parametrize("keepdims", [False, True])
def test_global_pooling_matches_keras(kind, keepdims):
    x = np.random.default_rng(4).normal(size=(3, 5, 4, 6))
    name = f"Global{kind}Pooling2D"
    yk, yn = _forward_both([getattr(KL, name)(keepdims=keepdims)], [getattr(NL, name)(keepdims=keepdims)], x)
    # Keras's ops.mean on the torch backend agrees with the float64 mean only to float32 rounding here
    # (about 1e-7 absolute, measured); nncore's is float64 (tests/test_conv.py checks it against np.mean)
    tol = 1e-13 if kind == "Max" else 1e-6
    np.testing.assert_allclose(yn, yk, rtol=tol, atol=tol)
    np.testing.assert_allclose(yn, x.max(axis=(1, 2), keepdims=keepdims) if kind == "Max"
                               else x.mean(axis=(1, 2), keepdims=keepdims), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("name,kw", [("MaxPooling1D", {}), ("AveragePooling1D", dict(pool_size=3, strides=1,
                                     padding="same")), ("MaxPooling1D", dict(pool_size=3, strides=2, padding="same")),
                                     ("GlobalMaxPooling1D", {}), ("GlobalAveragePooling1D", dict(keepdims=True))])
def test_pooling1d_matches_keras(name, kw):
    x = np.random.default_rng(9).normal(size=(2, 9, 3))
    yk, yn = _forward_both([getattr(KL, name)(**kw)], [getattr(NL, name)(**kw)], x)
    tol = 1e-6 if name.startswith("GlobalAverage") else 1e-12    # Keras's float32-rounded mean, see above
    np.testing.assert_allclose(yn, yk, rtol=tol, atol=tol)


def _cnn_layers(lib):
    """A network using every layer kind; lib is keras.layers or nncore.layers."""
    return [lib.Conv2D(4, 3, padding="same", activation="relu"), lib.MaxPooling2D(2, padding="same"),
            lib.Conv2D(5, (2, 3), strides=(1, 2), activation="tanh"), lib.AveragePooling2D((2, 1)),
            lib.Conv2D(6, 1, activation="swish"), lib.Flatten(), lib.Dense(3, activation="softmax")]


def test_gradients_match_keras_via_one_sgd_step():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(6, 9, 7, 2))
    y = rng.integers(0, 3, 6)
    _sgd_step_matches_keras(*_twins(_cnn_layers(KL), _cnn_layers(NL), x.shape[1:], seed=6), x, y)


def _sgd_step_matches_keras(km, nm, x, y):
    """One SGD step of lr 1 over the whole batch in both: w0 - w1 = the gradient, for every variable."""
    w0 = nm.get_weights()
    km.compile(optimizer=keras.optimizers.SGD(learning_rate=1.0), loss="sparse_categorical_crossentropy")
    nm.compile(optimizer=nncore.optimizers.SGD(learning_rate=1.0), loss="sparse_categorical_crossentropy")
    km.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0)
    nm.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0)
    for a, k, n in zip(w0, km.get_weights(), nm.get_weights()):
        gk, gn = a - k, a - n
        assert np.abs(gk).max() > 1e-4                        # every layer receives a gradient
        # Keras reduces the loss in float32 (see test_keras_parity.py): every gradient carries a float32
        # rounding, ~1e-7 of its variable's gradient scale (measured 4e-8 to 2e-7)
        np.testing.assert_allclose(gn, gk, rtol=1e-6, atol=1e-6 * np.abs(gk).max())


def test_fit_history_matches_keras():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(40, 8, 8, 1))
    y = rng.integers(0, 3, 40)
    kl = [KL.Conv2D(3, 3, activation="relu"), KL.MaxPooling2D(2), KL.Conv2D(4, 2, padding="same"),
          KL.GlobalAveragePooling2D(), KL.Dense(3, activation="softmax")]
    nl = [NL.Conv2D(3, 3, activation="relu"), NL.MaxPooling2D(2), NL.Conv2D(4, 2, padding="same"),
          NL.GlobalAveragePooling2D(), NL.Dense(3, activation="softmax")]
    km, nm = _twins(kl, nl, (8, 8, 1), seed=8)
    km.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss="sparse_categorical_crossentropy",
               metrics=["accuracy"])
    nm.compile(optimizer=nncore.optimizers.Adam(learning_rate=0.01), loss="sparse_categorical_crossentropy",
               metrics=["accuracy"])
    hk = km.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0, validation_split=0.25).history
    hn = nm.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0, validation_split=0.25).history
    assert sorted(hn) == sorted(hk)
    for key in hk:  # Keras's trackers are float32 even under floatx float64
        np.testing.assert_allclose(hn[key], hk[key], rtol=1e-6, atol=1e-7, err_msg=key)
    for a, b in zip(km.get_weights(), nm.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-7)


def test_configs_name_the_same_arguments_as_keras():
    for kcls, ncls, kw in [(KL.Conv2D, NL.Conv2D, dict(filters=2, kernel_size=3)),
                           (KL.Conv1D, NL.Conv1D, dict(filters=2, kernel_size=3)),
                           (KL.MaxPooling2D, NL.MaxPooling2D, dict(pool_size=2)),
                           (KL.AveragePooling2D, NL.AveragePooling2D, dict(pool_size=(2, 3), padding="same")),
                           (KL.GlobalMaxPooling2D, NL.GlobalMaxPooling2D, {})]:
        kc, nc = kcls(**kw).get_config(), ncls(**kw).get_config()
        shared = set(nc) - {"name", "batch_input_shape"}
        assert shared <= set(kc), (kcls.__name__, shared - set(kc))
        for key in shared:
            kv, nv = kc[key], nc[key]
            if isinstance(kv, (list, tuple)):
                kv, nv = list(kv), list(nv)
            if key.endswith(("initializer", "regularizer")) and isinstance(kv, dict):
                continue                                      # Keras serializes these as objects
            assert nv == kv, (kcls.__name__, key, nv, kv)


@pytest.mark.parametrize("m", [2, 4])
def test_winograd_path_matches_keras(monkeypatch, m):
    # the 3x3 (and Conv1D kernel-3) stride-1 layers on Winograd F(m x m, 3 x 3): forced here, the rule of
    # nncore.layers.conv.winograd_tile takes it on larger shapes (tests/test_winograd.py)
    import nncore.layers.conv as conv_mod

    monkeypatch.setattr(conv_mod, "winograd_tile", lambda *a: m)
    rng = np.random.default_rng(10)
    x = rng.normal(size=(3, 9, 11, 5))
    kw = dict(filters=4, kernel_size=3, padding="same", activation="relu")
    yk, yn = _forward_both([KL.Conv2D(**kw)], [NL.Conv2D(**kw)], x)
    np.testing.assert_allclose(yn, yk, rtol=1e-10, atol=1e-12)
    xs = rng.normal(size=(2, 13, 3))
    for kw in (dict(filters=3, kernel_size=3), dict(filters=2, kernel_size=3, padding="causal", activation="tanh")):
        yk, yn = _forward_both([KL.Conv1D(**kw)], [NL.Conv1D(**kw)], xs)
        np.testing.assert_allclose(yn, yk, rtol=1e-10, atol=1e-12)
    layers = lambda lib: [lib.Conv2D(4, 3, padding="same", activation="relu"), lib.Conv2D(3, 3, activation="tanh"),
                          lib.Flatten(), lib.Dense(3, activation="softmax")]
    y = rng.integers(0, 3, 3)
    km, nm = _twins(layers(KL), layers(NL), x.shape[1:], seed=11)
    _sgd_step_matches_keras(km, nm, x, y)
    assert [layer._bufs[3][6][0] for layer in nm.layers[:2]] == [m, m]
