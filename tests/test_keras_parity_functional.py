"""Parity of functional models (several inputs and outputs, residual and shared layers, merge layers,
BatchNormalization in a residual block, a frozen shared layer) with the real Keras 3 (torch backend), in
float64.

The same graph is built in both libraries by one function of the layers module; weights go across layer
by layer, by name (the two order `model.weights` differently). Compared: outputs, gradients (one SGD step
of lr 1 over one batch: w0 - w1 = g), evaluate's list and dict, and a short fit's History with
loss_weights and validation_split. Skipped when keras is not installed. Keras's Dense and maximum/minimum
carry float32 roundings even under floatx float64 (measured 4e-8 to 2e-7 on outputs of order 1), hence the 1e-6 tolerances.
"""
from keras_parity_common import float64_both, keras, pytestmark  # noqa: F401 (skips without keras)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import nncore  # noqa: E402
from nncore import layers as NL  # noqa: E402

KL = keras.layers


def _twins(build, seed=0):
    """(keras model, nncore model) of build(layers, Input, Model), with the same random weights."""
    km = build(KL, keras.Input, keras.Model)
    nm = build(NL, nncore.Input, nncore.Model)
    rng = np.random.default_rng(seed)
    assert sorted(layer.name for layer in nm.layers) == sorted(layer.name for layer in km.layers)
    for layer in km.layers:
        w = [rng.uniform(0.5, 2, size=v.shape) if v.path.endswith("moving_variance") else
             rng.normal(scale=0.5, size=v.shape) for v in layer.weights]
        layer.set_weights(w)
        nm.get_layer(layer.name).set_weights(w)
    assert nm.count_params() == km.count_params()
    return km, nm


def _two_in_two_out(L, Input, Model):
    a, b = Input(shape=(6,), name="a"), Input(shape=(4,), name="b")
    h = L.Dense(5, activation="relu", name="h")(a)
    g = L.Dense(3, activation="tanh", name="g")(b)
    c = L.Concatenate(name="cat")([h, g, b])
    cls = L.Dense(3, activation="softmax", name="cls")(c)
    gate = L.Multiply(name="gate")([L.Dense(2, name="lin")(c), L.Dense(2, activation="sigmoid", name="sig")(h)])
    reg = L.Dense(2, name="reg")(gate)
    return Model([a, b], [cls, reg], name="two")


def _residual_shared(L, Input, Model):
    x = Input(shape=(7,), name="x")
    h = L.Dense(7, activation="relu", name="h")(x)
    s = L.Add(name="skip")([x, L.Dense(7, name="r")(h)])          # a residual connection
    shared = L.Dense(7, activation="tanh", name="shared")
    t = shared(shared(s))                                          # one layer used twice
    m = L.Average(name="avg")([t, s, L.Maximum(name="max")([h, t])])
    return Model(x, L.Dense(3, activation="softmax", name="out")(m), name="res")


def _data(n=24, seed=1):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, 6)), rng.normal(size=(n, 4)), rng.integers(0, 3, n), rng.normal(size=(n, 2)),
            rng.normal(size=(n, 7)))


def _assert_steps_match(km, nm, x, y, **compile_kw):
    """One SGD step of lr 1 over one batch in both: the weight changes are the gradients."""
    w0 = {layer.name: layer.get_weights() for layer in km.layers}
    km.compile(optimizer=keras.optimizers.SGD(learning_rate=1.0), **compile_kw)
    nm.compile(optimizer=nncore.optimizers.SGD(learning_rate=1.0), **compile_kw)
    km.fit(x, y, batch_size=len(y[0]) if isinstance(y, list) else len(y), epochs=1, shuffle=False, verbose=0)
    nm.fit(x, y, batch_size=len(y[0]) if isinstance(y, list) else len(y), epochs=1, shuffle=False, verbose=0)
    for name, ws in w0.items():
        for a, k, n in zip(ws, km.get_layer(name).get_weights(), nm.get_layer(name).get_weights()):
            gk, gn = a - k, a - n
            assert np.abs(gk).max() > 1e-6, name                  # every layer receives a gradient
            # Keras reduces its loss in float32 (see test_keras_parity.py): ~1e-7 relative noise
            np.testing.assert_allclose(gn, gk, rtol=1e-6, atol=1e-6 * np.abs(gk).max(), err_msg=name)


def _assert_history(hk, hn):
    assert sorted(hn) == sorted(hk)
    for key in hk:
        # Keras's metric and loss trackers are float32 even under floatx float64
        np.testing.assert_allclose(hn[key], hk[key], rtol=1e-6, atol=1e-7, err_msg=key)


def test_two_inputs_two_outputs_forward_matches_keras():
    xa, xb, *_ = _data()
    km, nm = _twins(_two_in_two_out)
    assert nm.output_names == list(km.output_names) == ["cls", "reg"]
    pk, pn = km.predict([xa, xb], verbose=0), nm.predict([xa, xb], verbose=0)
    assert isinstance(pn, list) and len(pn) == 2
    for a, b in zip(pk, pn):
        np.testing.assert_allclose(b, np.asarray(a), rtol=1e-6, atol=1e-7)
    pd = nm.predict({"b": xb, "a": xa}, verbose=0)                    # inputs by name, any order
    for a, b in zip(pn, pd):
        np.testing.assert_array_equal(a, b)


def test_two_inputs_two_outputs_gradients_match_keras():
    xa, xb, labels, target, _ = _data()
    km, nm = _twins(_two_in_two_out, seed=2)
    _assert_steps_match(km, nm, [xa, xb], [labels, target],
                        loss=["sparse_categorical_crossentropy", "mse"], loss_weights=[1.0, 0.3])


def test_two_inputs_two_outputs_fit_history_and_evaluate_match_keras():
    xa, xb, labels, target, _ = _data(n=40)
    km, nm = _twins(_two_in_two_out, seed=3)
    kw = dict(loss={"cls": "sparse_categorical_crossentropy", "reg": "mse"}, loss_weights={"cls": 1.0, "reg": 0.5},
              metrics={"cls": ["accuracy"], "reg": ["mae", "mse"]})
    km.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), **kw)
    nm.compile(optimizer=nncore.optimizers.Adam(learning_rate=0.01), **kw)
    fit = dict(batch_size=8, epochs=3, shuffle=False, verbose=0, validation_split=0.25)
    hk = km.fit({"a": xa, "b": xb}, {"cls": labels, "reg": target}, **fit).history
    hn = nm.fit({"a": xa, "b": xb}, {"cls": labels, "reg": target}, **fit).history
    assert "cls_loss" in hn and "val_reg_mae" in hn
    _assert_history(hk, hn)
    ek, en = km.evaluate([xa, xb], [labels, target], verbose=0), nm.evaluate([xa, xb], [labels, target], verbose=0)
    np.testing.assert_allclose(en, ek, rtol=1e-6)                     # the same values in Keras's order
    dk = km.evaluate([xa, xb], [labels, target], verbose=0, return_dict=True)
    dn = nm.evaluate([xa, xb], [labels, target], verbose=0, return_dict=True)
    assert sorted(dk) == sorted(dn)
    for key in dk:
        np.testing.assert_allclose(dn[key], dk[key], rtol=1e-6, err_msg=key)
    tk = km.train_on_batch([xa, xb], [labels, target], return_dict=True)
    tn = nm.train_on_batch([xa, xb], [labels, target], return_dict=True)
    for key in tk:
        np.testing.assert_allclose(tn[key], tk[key], rtol=1e-6, err_msg=key)


def test_residual_block_with_a_shared_layer_matches_keras():
    *_, labels, _, x = _data(n=30, seed=4)
    km, nm = _twins(_residual_shared, seed=5)
    np.testing.assert_allclose(nm.predict(x, verbose=0), km.predict(x, verbose=0), rtol=1e-6, atol=1e-7)
    _assert_steps_match(km, nm, x, labels, loss="sparse_categorical_crossentropy")
    km, nm = _twins(_residual_shared, seed=6)
    km.compile(optimizer=keras.optimizers.RMSprop(learning_rate=0.01), loss="sparse_categorical_crossentropy",
               metrics=["accuracy"])
    nm.compile(optimizer=nncore.optimizers.RMSprop(learning_rate=0.01), loss="sparse_categorical_crossentropy",
               metrics=["accuracy"])
    fit = dict(batch_size=7, epochs=3, shuffle=False, verbose=0, validation_split=0.2)
    _assert_history(km.fit(x, labels, **fit).history, nm.fit(x, labels, **fit).history)


def _bn_residual(L, Input, Model):
    # ResNet's block: conv - BN - relu - conv - BN, added to its input, relu; no bias in front of a BN (its
    # gradient is zero, and Keras's float32 normalization would give it rounding noise instead)
    x = Input(shape=(6, 5, 3), name="x")
    h = L.Activation("relu", name="relu0")(L.BatchNormalization(name="bn0")(
        L.Conv2D(4, 3, padding="same", use_bias=False, name="c0")(x)))
    r = L.Activation("relu", name="relu1")(L.BatchNormalization(momentum=0.9, name="bn1")(
        L.Conv2D(4, 3, padding="same", use_bias=False, name="c1")(h)))
    r = L.BatchNormalization(epsilon=1e-2, name="bn2")(L.Conv2D(4, 3, padding="same", use_bias=False, name="c2")(r))
    s = L.Activation("relu", name="relu2")(L.Add(name="skip")([h, r]))
    return Model(x, L.Dense(3, activation="softmax", name="out")(L.GlobalAveragePooling2D(name="gap")(s)),
                 name="block")


F32 = dict(rtol=2e-6, atol=2e-6)  # Keras's BatchNormalization computes in float32 (test_keras_parity_norm.py)


def test_batchnorm_residual_block_outputs_and_moving_statistics_match_keras():
    rng = np.random.default_rng(10)
    x = rng.normal(size=(8, 6, 5, 3)) * 2 + 1
    km, nm = _twins(_bn_residual, seed=11)
    np.testing.assert_allclose(nm.predict(x, verbose=0), km.predict(x, verbose=0), **F32)       # inference
    np.testing.assert_allclose(nm(x, training=True), keras.ops.convert_to_numpy(km(x, training=True)), **F32)
    for name in ("bn0", "bn1", "bn2"):                      # one training call moved the statistics alike
        kl, nl = km.get_layer(name), nm.get_layer(name)
        for k, n in zip(kl.get_weights()[2:], nl.get_weights()[2:]):
            np.testing.assert_allclose(n, k, **F32, err_msg=name)
    assert [len(nm.get_layer(name).non_trainable_weights) for name in ("bn0", "bn1", "bn2")] == [2, 2, 2]
    assert len(nm.trainable_weights) == len(km.trainable_weights) and \
        len(nm.non_trainable_weights) == len(km.non_trainable_weights)


def test_batchnorm_residual_block_gradients_and_fit_match_keras():
    rng = np.random.default_rng(12)
    x, labels = rng.normal(size=(32, 6, 5, 3)), rng.integers(0, 3, 32)
    km, nm = _twins(_bn_residual, seed=13)
    # one SGD step of lr 1 over one batch: gamma, beta, kernels change by their gradients, the moving
    # statistics by one momentum step
    w0 = {layer.name: layer.get_weights() for layer in km.layers}
    for model, opt in ((km, keras.optimizers.SGD(learning_rate=1.0)), (nm, nncore.optimizers.SGD(learning_rate=1.0))):
        model.compile(optimizer=opt, loss="sparse_categorical_crossentropy")
        model.fit(x[:16], labels[:16], batch_size=16, epochs=1, shuffle=False, verbose=0)
    for name, ws in w0.items():
        for a, k, n in zip(ws, km.get_layer(name).get_weights(), nm.get_layer(name).get_weights()):
            gk, gn = a - k, a - n
            assert np.abs(gk).max() > 1e-6, name
            # the normalization's backward (sums over the batch) grows Keras's float32 roundings to ~1e-5
            np.testing.assert_allclose(gn, gk, rtol=1e-5, atol=1e-5 * np.abs(gk).max(), err_msg=name)
    km, nm = _twins(_bn_residual, seed=14)
    for model, opt in ((km, keras.optimizers.SGD(learning_rate=0.05, momentum=0.9)),
                       (nm, nncore.optimizers.SGD(learning_rate=0.05, momentum=0.9))):
        model.compile(optimizer=opt, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    fit = dict(batch_size=8, epochs=3, shuffle=False, verbose=0, validation_split=0.25)
    _assert_history(km.fit(x, labels, **fit).history, nm.fit(x, labels, **fit).history)
    for layer in km.layers:                                  # moving statistics included
        for a, b in zip(layer.get_weights(), nm.get_layer(layer.name).get_weights()):
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-7, err_msg=layer.name)


def test_frozen_shared_layer_matches_keras():
    def build(L, Input, Model):
        x = Input(shape=(7,), name="x")
        shared = L.Dense(7, activation="tanh", name="shared")
        h = L.Dense(7, activation="relu", name="h")(x)
        t = shared(L.Add(name="skip")([h, shared(h)]))
        return Model(x, L.Dense(3, activation="softmax", name="out")(t), name="frozen")

    *_, labels, _, x = _data(n=30, seed=15)
    km, nm = _twins(build, seed=16)
    for model in (km, nm):
        model.get_layer("shared").trainable = False
    frozen = nm.get_layer("shared").get_weights()
    kw = dict(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    km.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), **kw)
    nm.compile(optimizer=nncore.optimizers.Adam(learning_rate=0.01), **kw)
    fit = dict(batch_size=7, epochs=3, shuffle=False, verbose=0, validation_split=0.2)
    _assert_history(km.fit(x, labels, **fit).history, nm.fit(x, labels, **fit).history)
    for a, b in zip(frozen, nm.get_layer("shared").get_weights()):
        np.testing.assert_array_equal(a, b)
    for layer in km.layers:
        for a, b in zip(layer.get_weights(), nm.get_layer(layer.name).get_weights()):
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-7, err_msg=layer.name)
    lines = []
    nm.summary(print_fn=lines.append)
    assert f"Non-trainable params: {7 * 7 + 7:,}" in "\n".join(lines)


MERGES = {  # name: (input shapes, layer kwargs); each input passes a Dense (or its own Input) first
    "add3": ("Add", [(5,), (5,), (5,)], {}),
    "subtract": ("Subtract", [(4,), (4,)], {}),
    "multiply-broadcast": ("Multiply", [(5,), (1,)], {}),
    "average": ("Average", [(3,), (3,)], {}),
    "maximum3": ("Maximum", [(4,), (4,), (4,)], {}),
    "minimum": ("Minimum", [(4,), (4,)], {}),
    "concatenate-3d-axis1": ("Concatenate", [(2, 3), (4, 3)], {"axis": 1}),
    "dot-2d": ("Dot", [(4,), (4,)], {"axes": 1}),
    "dot-3d-normalize": ("Dot", [(3, 4), (5, 4)], {"axes": (2, 2), "normalize": True}),
    "dot-3d-axes": ("Dot", [(3, 4), (3, 2)], {"axes": (1, 1)}),
}


def _merge_model(kind, shapes, kw):
    def build(L, Input, Model):
        ins = [Input(shape=s, name=f"in{i}") for i, s in enumerate(shapes)]
        # 2-D inputs pass a Dense first; 3-D ones a Conv1D of kernel 1 (the same per-step Dense)
        mids = [(L.Dense(s[-1], activation="tanh", name=f"d{i}") if len(s) == 1 else
                 L.Conv1D(s[-1], 1, activation="tanh", name=f"d{i}"))(t)
                for i, (t, s) in enumerate(zip(ins, shapes))]
        y = getattr(L, kind)(name="merge", **kw)(mids)
        if len(y.shape) > 2:
            y = L.Flatten(name="flat")(y)
        return Model(ins, L.Dense(2, name="out")(y))
    return build


@pytest.mark.parametrize("case", sorted(MERGES))
def test_merge_layer_forward_and_gradients_match_keras(case):
    kind, shapes, kw = MERGES[case]
    rng = np.random.default_rng(7)
    xs = [rng.normal(size=(9,) + s) for s in shapes]
    km, nm = _twins(_merge_model(kind, shapes, kw), seed=8)
    assert nm.get_layer("merge").output_shape == tuple(km.get_layer("merge").output.shape)
    np.testing.assert_allclose(nm.predict(xs, verbose=0), km.predict(xs, verbose=0), rtol=1e-6, atol=1e-7)
    _assert_steps_match(km, nm, xs, rng.normal(size=(9, 2)), loss="mse")


def test_merge_layers_on_arrays_match_keras():
    rng = np.random.default_rng(9)
    a, b = rng.normal(size=(3, 2, 5)), rng.normal(size=(3, 1, 5))
    for name in ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"):
        np.testing.assert_allclose(getattr(NL, name)()([a, b]), np.asarray(getattr(KL, name)()([a, b])),
                                   rtol=1e-6, atol=1e-7, err_msg=name)
    c = rng.normal(size=(3, 4))
    np.testing.assert_allclose(NL.Concatenate(axis=-1)([a[:, 0], c]), np.asarray(KL.Concatenate()([a[:, 0], c])),
                               rtol=1e-6)
    np.testing.assert_allclose(NL.Dot(axes=(2, 2))([a, b]), np.asarray(KL.Dot(axes=(2, 2))([a, b])),
                               rtol=1e-6)
