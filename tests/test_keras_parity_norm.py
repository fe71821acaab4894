"""Parity of the normalization, reshaping and noise layers and of trainable=False with the real Keras 3
(torch backend), in float64: outputs in training and inference, gradients (one SGD step of lr 1 over one
batch: w0 - w1 = g), the moving statistics after a few steps, a short fit's History, weights order,
trainable/non-trainable weights and summary() counts. Skipped when keras is not installed.

Keras 3.15's BatchNormalization and LayerNormalization compute in backend.result_type(x.dtype,
"float32"), which is float32 even for float64 inputs (measured: its float64 outputs are off by ~1e-7
relative, while keras.ops.batch_normalization on the same tensors agrees with nncore to 1e-16), and its
matmul (every Dense) rounds float64 to float32 too (tests/test_keras_parity.py, _F32). So what passes
through them agrees to float32 rounding; the reshaping layers alone agree exactly."""
from keras_parity_common import float64_both, keras, pytestmark  # noqa: F401 (skips without keras)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import nncore  # noqa: E402
from nncore import layers as NL  # noqa: E402

KL = keras.layers


def _twins(kl, nl, input_shape, seed=0):
    """Keras and nncore models of the given layers with the same random weights (variances positive)."""
    km = keras.Sequential([keras.Input(shape=input_shape)] + kl)
    nm = nncore.Sequential([NL.Input(shape=input_shape)] + nl)
    rng = np.random.default_rng(seed)
    names = [v.path.rsplit("/", 1)[-1] for v in km.weights]
    w = [rng.uniform(0.5, 2, size=v.shape) if n == "moving_variance" else rng.normal(scale=0.5, size=v.shape)
         for n, v in zip(names, km.weights)]
    assert [v.shape for v in w] == [v.shape for v in nm.get_weights()]
    km.set_weights(w)
    nm.set_weights(w)
    return km, nm


def _sgd_step(km, nm, x, y, loss="mse", batch_size=None):
    """One SGD step of lr 1 in both: returns (w0, Keras weights after, nncore weights after)."""
    w0 = nm.get_weights()
    km.compile(optimizer=keras.optimizers.SGD(learning_rate=1.0), loss=loss)
    nm.compile(optimizer=nncore.optimizers.SGD(learning_rate=1.0), loss=loss)
    km.fit(x, y, batch_size=batch_size or len(x), epochs=1, shuffle=False, verbose=0)
    nm.fit(x, y, batch_size=batch_size or len(x), epochs=1, shuffle=False, verbose=0)
    return w0, km.get_weights(), nm.get_weights()


F32 = dict(rtol=2e-6, atol=2e-6)     # agreement to Keras's float32 normalization and matmul, see above


def _assert_step_matches(w0, wk, wn):
    for a, k, n in zip(w0, wk, wn):
        gk, gn = a - k, a - n
        # Keras's float32 loss reduction, matmul and normalization: float32 roundings, which the
        # normalization's backward pass (sums of products over the batch) grows to ~1e-5 relative
        np.testing.assert_allclose(gn, gk, rtol=1e-5, atol=1e-5 * (np.abs(gk).max() + 1e-3))


BN_CASES = [((6, 4), {}), ((5, 3, 4), dict(momentum=0.8, epsilon=1e-2)), ((3, 4, 5, 2), dict(center=False)),
            ((4, 2, 3, 3), dict(scale=False, momentum=0.5))]


@pytest.mark.parametrize("xshape,kw", BN_CASES, ids=str)
def test_batchnorm_outputs_match_keras_in_training_and_inference(xshape, kw):
    x = np.random.default_rng(1).normal(size=xshape) * 2 + 1
    km, nm = _twins([KL.BatchNormalization(**kw)], [NL.BatchNormalization(**kw)], xshape[1:])
    assert nm.count_params() == km.count_params()
    np.testing.assert_allclose(nm.predict(x, verbose=0), np.asarray(km.predict(x, verbose=0)), **F32)
    yk = keras.ops.convert_to_numpy(km(x, training=True))
    yn = nm(x, training=True)
    np.testing.assert_allclose(yn, yk, **F32)
    for a, b in zip(km.get_weights(), nm.get_weights()):    # the moving statistics moved the same way
        np.testing.assert_allclose(b, a, **F32)


def _bn_cnn(lib):
    # no bias in front of a BatchNormalization, and nothing whose gradient the normalization cancels: a
    # weight of exactly zero gradient gets Keras's float32 rounding noise, which Adam turns into whole steps
    return [lib.Conv2D(4, 3, padding="same", use_bias=False), lib.BatchNormalization(momentum=0.9),
            lib.Activation("relu"), lib.Conv2D(3, 2, activation="relu"), lib.Flatten(),
            lib.Dense(5, use_bias=False), lib.BatchNormalization(), lib.Activation("tanh"),
            lib.LayerNormalization(), lib.Dense(3, activation="softmax")]


def test_gradients_and_moving_statistics_match_keras_via_one_sgd_step():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(8, 6, 5, 2)), rng.integers(0, 3, 8)
    km, nm = _twins(_bn_cnn(KL), _bn_cnn(NL), x.shape[1:], seed=3)
    w0, wk, wn = _sgd_step(km, nm, x, y, loss="sparse_categorical_crossentropy")
    names = [v.path.rsplit("/", 1)[-1] for v in km.weights]
    for name, a, k, n in zip(names, w0, wk, wn):
        if name.startswith("moving"):
            assert not np.array_equal(a, k)
            np.testing.assert_allclose(n, k, **F32, err_msg=name)
    _assert_step_matches([a for nm_, a in zip(names, w0) if not nm_.startswith("moving")],
                         [a for nm_, a in zip(names, wk) if not nm_.startswith("moving")],
                         [a for nm_, a in zip(names, wn) if not nm_.startswith("moving")])


def test_fit_history_and_moving_statistics_match_keras():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(48, 6, 5, 2)), rng.integers(0, 3, 48)
    km, nm = _twins(_bn_cnn(KL), _bn_cnn(NL), x.shape[1:], seed=5)
    # SGD with momentum: Adam would turn the float32 rounding noise of a gradient the normalization nearly
    # cancels (a bias before a ReLU and a BatchNormalization) into whole steps of lr
    km.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05, momentum=0.9),
               loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    nm.compile(optimizer=nncore.optimizers.SGD(learning_rate=0.05, momentum=0.9),
               loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    hk = km.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0, validation_split=0.25).history
    hn = nm.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0, validation_split=0.25).history
    assert sorted(hn) == sorted(hk)
    for key in hk:  # Keras's trackers are float32 even under floatx float64
        np.testing.assert_allclose(hn[key], hk[key], rtol=1e-6, atol=1e-7, err_msg=key)
    for a, b in zip(km.get_weights(), nm.get_weights()):   # moving statistics included
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("axis,xshape", [(-1, (4, 6)), (-1, (3, 4, 5)), ([1, 2], (3, 4, 5)), ([1, 2, 3], (2, 3, 2, 4))],
                         ids=str)
def test_layernorm_matches_keras(axis, xshape):
    rng = np.random.default_rng(6)
    x = rng.normal(size=xshape) * 3 + 2
    kl = [KL.LayerNormalization(axis=axis), KL.Flatten(), KL.Dense(2)]
    nl = [NL.LayerNormalization(axis=axis), NL.Flatten(), NL.Dense(2)]
    km, nm = _twins(kl, nl, xshape[1:], seed=7)
    np.testing.assert_allclose(nm.predict(x, verbose=0), np.asarray(km.predict(x, verbose=0)), **F32)
    _assert_step_matches(*_sgd_step(km, nm, x, rng.normal(size=(xshape[0], 2))))


# (Keras layer, nncore layer) constructors of the same arguments, with the input shape
RESHAPING = [("Reshape", dict(target_shape=(3, -1)), (4, 3)), ("Permute", dict(dims=(2, 1)), (4, 3)),
             ("Permute", dict(dims=(3, 1, 2)), (2, 3, 4)), ("RepeatVector", dict(n=3), (5,)),
             ("ZeroPadding1D", dict(padding=(1, 2)), (4, 3)), ("ZeroPadding2D", dict(padding=((1, 0), (2, 1))),
                                                                 (3, 4, 2)),
             ("ZeroPadding2D", dict(padding=1), (2, 3, 2)), ("Cropping1D", dict(cropping=(1, 2)), (6, 3)),
             ("Cropping2D", dict(cropping=((1, 0), (0, 2))), (4, 5, 2)), ("Cropping2D", dict(cropping=1), (4, 4, 1)),
             ("UpSampling1D", dict(size=3), (4, 2)), ("UpSampling2D", dict(size=(2, 3)), (3, 2, 2)),
             ("SpatialDropout1D", dict(rate=0.3), (4, 3)), ("SpatialDropout2D", dict(rate=0.3), (3, 3, 2)),
             ("GaussianNoise", dict(stddev=0.3), (5,)), ("GaussianDropout", dict(rate=0.3), (5,))]


@pytest.mark.parametrize("name,kw,shape", RESHAPING, ids=lambda v: str(v))
def test_reshaping_and_noise_layers_match_keras(name, kw, shape):
    rng = np.random.default_rng(8)
    x = rng.normal(size=(3,) + shape)
    # a trained layer in front (Dense, or a 1x1 convolution for sequences and images) gets dL/dx
    front = {1: lambda lib: lib.Dense(shape[-1]), 2: lambda lib: lib.Conv1D(shape[-1], 1),
             3: lambda lib: lib.Conv2D(shape[-1], 1)}[len(shape)]
    kl = [front(KL), getattr(KL, name)(**kw), KL.Flatten(), KL.Dense(2)]
    nl = [front(NL), getattr(NL, name)(**kw), NL.Flatten(), NL.Dense(2)]
    km, nm = _twins(kl, nl, shape, seed=9)
    assert nm.layers[1].output_shape == tuple(km.layers[1].output.shape)
    np.testing.assert_allclose(nm.predict(x, verbose=0), np.asarray(km.predict(x, verbose=0)), **F32)
    alone_k = keras.Sequential([keras.Input(shape=shape), getattr(KL, name)(**kw)])
    alone_n = nncore.Sequential([NL.Input(shape=shape), getattr(NL, name)(**kw)])
    np.testing.assert_array_equal(alone_n.predict(x, verbose=0), np.asarray(alone_k.predict(x, verbose=0)))
    if "Dropout" in name or "Noise" in name:
        return                                  # training draws random noise: the generators differ
    _assert_step_matches(*_sgd_step(km, nm, x, rng.normal(size=(3, 2))))


def _frozen(lib):
    return [lib.Dense(6, activation="relu"), lib.BatchNormalization(), lib.Dense(5, activation="tanh"),
            lib.BatchNormalization(), lib.Dense(3, activation="softmax")]


def test_frozen_layers_train_as_in_keras():
    rng = np.random.default_rng(10)
    x, y = rng.normal(size=(40, 4)), rng.integers(0, 3, 40)
    km, nm = _twins(_frozen(KL), _frozen(NL), (4,), seed=11)
    for model in (km, nm):
        model.layers[0].trainable = False         # a frozen Dense
        model.layers[3].trainable = False         # a frozen BatchNormalization: inference mode in training
    for a, b in ((km.trainable_weights, nm.trainable_weights), (km.non_trainable_weights, nm.non_trainable_weights)):
        assert [tuple(v.shape) for v in a] == [v.shape for v in b]
    km.compile(optimizer=keras.optimizers.Adam(learning_rate=0.02), loss="sparse_categorical_crossentropy")
    nm.compile(optimizer=nncore.optimizers.Adam(learning_rate=0.02), loss="sparse_categorical_crossentropy")
    w0 = nm.get_weights()
    hk = km.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0).history
    hn = nm.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0).history
    np.testing.assert_allclose(hn["loss"], hk["loss"], rtol=1e-6)
    for a, k, n in zip(w0, km.get_weights(), nm.get_weights()):
        np.testing.assert_allclose(n, k, rtol=1e-5, atol=1e-7)
    for i in (0, 1, 8, 9, 10, 11):                # the frozen Dense and BN: all unchanged
        np.testing.assert_array_equal(nm.get_weights()[i], w0[i])
    counts = []
    for model in (km, nm):
        lines = []
        model.summary(print_fn=lines.append)
        text = "\n".join(lines)
        counts.append([line.split(":")[1].split("(")[0].strip() for line in text.splitlines()
                       if line.strip().startswith(("Total params", "Trainable params", "Non-trainable params",
                                                   "Optimizer params"))])
    assert counts[0] == counts[1] and len(counts[0]) == 4, counts


@pytest.mark.parametrize("opt,kw", [("SGD", {}), ("SGD", dict(momentum=0.9)), ("RMSprop", dict(centered=True)),
                                    ("Adam", dict(amsgrad=True)), ("Nadam", {}), ("Adagrad", {}), ("Ftrl", {})])
def test_optimizer_params_in_summary_count_as_keras(opt, kw):
    rng = np.random.default_rng(12)
    x, y = rng.normal(size=(8, 4)), rng.normal(size=(8, 2))
    km, nm = _twins([KL.Dense(3), KL.BatchNormalization(), KL.Dense(2)],
                    [NL.Dense(3), NL.BatchNormalization(), NL.Dense(2)], (4,))
    km.compile(optimizer=getattr(keras.optimizers, opt)(**kw), loss="mse")
    nm.compile(optimizer=getattr(nncore.optimizers, opt)(**kw), loss="mse")
    km.fit(x, y, verbose=0)
    nm.fit(x, y, verbose=0)
    n_keras = sum(int(np.prod(v.shape)) for v in km.optimizer.variables)
    lines = []
    nm.summary(print_fn=lines.append)
    assert f"Optimizer params: {n_keras:,}" in "\n".join(lines)


def test_configs_name_the_same_arguments_as_keras():
    for name, kw in [("BatchNormalization", {}), ("LayerNormalization", dict(axis=[1, 2])),
                     ("Reshape", dict(target_shape=(2, 3))), ("Permute", dict(dims=(2, 1))),
                     ("RepeatVector", dict(n=2)), ("ZeroPadding1D", {}), ("ZeroPadding2D", {}), ("Cropping1D", {}),
                     ("Cropping2D", {}), ("UpSampling1D", {}), ("UpSampling2D", {}),
                     ("SpatialDropout1D", dict(rate=0.1)), ("SpatialDropout2D", dict(rate=0.1)),
                     ("GaussianNoise", dict(stddev=0.1)), ("GaussianDropout", dict(rate=0.1)),
                     ("Dense", dict(units=2, trainable=False))]:
        kc, nc = getattr(KL, name)(**kw).get_config(), getattr(NL, name)(**kw).get_config()
        shared = set(nc) - {"name", "batch_input_shape"} - ({"trainable"} - set(kc))
        assert shared <= set(kc), (name, shared - set(kc))
        for key in shared:
            kv, nv = kc[key], nc[key]
            if key.endswith(("initializer", "regularizer")) and isinstance(kv, dict):
                continue                                      # Keras serializes these as objects
            if isinstance(kv, (list, tuple)):
                kv, nv = np.asarray(kv).tolist(), np.asarray(nv).tolist()
            assert nv == kv, (name, key, nv, kv)
