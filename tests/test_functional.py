"""The functional API: symbolic tensors, Model(inputs, outputs), merge layers, several inputs and outputs,
shared layers, the execution plan (gradients summed where a tensor feeds several layers, no allocation per
step), saving, and the errors."""
import json

import numpy as np
import pytest

import nncore
from nncore import layers as L
from nncore.layers import Input
from nncore.models import Model, Sequential
from graph_layers_common import Shift, Split
from reference_layers import numeric_grad
from steady_state import growth_between_epochs, peak_above_start


def sgd(lr):
    return nncore.optimizers.SGD(learning_rate=lr)


# ------------------------------------------------------------------------------------- merge layers
def _check_layer_grad(layer, xs, rng):
    """float64 central differences of sum(y * r) against the layer's backward, for every input."""
    y = layer(xs)
    r = rng.normal(size=y.shape)
    layer.forward(xs, True)
    dxs = [None if d is None else d.copy() for d in layer.backward(r)]
    for x, dx in zip(xs, dxs):
        num = numeric_grad(lambda: float(np.sum(layer.forward(xs, True) * r)), x)
        np.testing.assert_allclose(dx, num, rtol=1e-7, atol=1e-9)


MERGE_CASES = {
    "add": (L.Add, {}, [(4, 3), (4, 3), (4, 3)]),
    "add-broadcast-rank": (L.Add, {}, [(3, 2, 5), (3, 5), (3, 1, 1)]),
    "subtract-broadcast": (L.Subtract, {}, [(3, 4), (3, 1)]),
    "multiply3": (L.Multiply, {}, [(2, 5), (2, 5), (2, 5)]),
    "multiply-broadcast": (L.Multiply, {}, [(3, 4, 2), (3, 1, 2)]),
    "average": (L.Average, {}, [(5, 3), (5, 1), (5, 3)]),
    "maximum3": (L.Maximum, {}, [(4, 6), (4, 6), (4, 6)]),
    "maximum-broadcast": (L.Maximum, {}, [(4, 3, 2), (4, 1, 2)]),
    "minimum": (L.Minimum, {}, [(3, 7), (3, 7)]),
    "concatenate": (L.Concatenate, {}, [(3, 2), (3, 5), (3, 1)]),
    "concatenate-axis1": (L.Concatenate, {"axis": 1}, [(2, 3, 4), (2, 1, 4)]),
    "dot-2d": (L.Dot, {"axes": 1}, [(5, 4), (5, 4)]),
    "dot-3d": (L.Dot, {"axes": (2, 1)}, [(2, 3, 4), (2, 4, 5)]),
    "dot-3d-normalize": (L.Dot, {"axes": -1, "normalize": True}, [(3, 2, 4), (3, 5, 4)]),
    "dot-2d-3d": (L.Dot, {"axes": (1, 2), "normalize": True}, [(2, 3), (2, 4, 3)]),
}


@pytest.mark.parametrize("case", sorted(MERGE_CASES))
def test_merge_layer_gradients_by_finite_differences(float64, case):
    cls, kw, shapes = MERGE_CASES[case]
    rng = np.random.default_rng(1)
    xs = [rng.normal(size=s) for s in shapes]
    _check_layer_grad(cls(**kw), xs, rng)


def test_merge_layer_values():
    rng = np.random.default_rng(2)
    a, b, c = rng.normal(size=(3, 4)), rng.normal(size=(3, 4)), rng.normal(size=(3, 1))
    np.testing.assert_allclose(L.Add()([a, b, c]), a + b + c)
    np.testing.assert_allclose(L.Subtract()([a, c]), a - c)
    np.testing.assert_allclose(L.Multiply()([a, b]), a * b)
    np.testing.assert_allclose(L.Average()([a, b, c]), (a + b + c) / 3)
    np.testing.assert_allclose(L.Maximum()([a, b, c]), np.maximum(np.maximum(a, b), c))
    np.testing.assert_allclose(L.Minimum()([a, b]), np.minimum(a, b))
    np.testing.assert_allclose(L.Concatenate()([a, c]), np.concatenate([a, c], 1))
    np.testing.assert_allclose(L.Dot(axes=1)([a, b]), np.sum(a * b, 1, keepdims=True))
    cos = np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    np.testing.assert_allclose(L.Dot(axes=1, normalize=True)([a, b])[:, 0], cos)
    z = np.zeros((3, 4))                          # a zero vector: divided by eps, not by 0 (no NaN)
    assert np.all(L.Dot(axes=1, normalize=True)([z, b]) == 0)


def test_maximum_ties_split_the_gradient_in_half(float64):
    a = np.array([[1.0, 2.0, 3.0]])
    layer = L.Maximum()
    layer.forward([a, a.copy()], True)
    da, db = layer.backward(np.ones((1, 3)))
    np.testing.assert_array_equal(da, [[0.5, 0.5, 0.5]])
    np.testing.assert_array_equal(db, [[0.5, 0.5, 0.5]])


# ------------------------------------------------------------------------------------- models
def _two_by_two(seed=0):
    nncore.set_seed(seed)
    a, b = Input(shape=(5,), name="a"), Input(shape=(3,), name="b")
    h = L.Dense(6, activation="tanh", name="h")(a)
    shared = L.Dense(6, activation="elu", name="shared")
    s = L.Add(name="skip")([h, shared(h)])                        # h feeds three layers
    t = shared(s)                                                  # a layer used twice
    c = L.Concatenate(name="cat")([t, b])
    cls = L.Dense(3, activation="softmax", name="cls")(c)
    reg = L.Dense(2, name="reg")(L.Multiply(name="gate")([L.Dense(2, name="lin")(c), L.Dense(2, name="g2")(s)]))
    return Model(inputs=[a, b], outputs=[cls, reg], name="two")


def _two_by_two_data(n=12, seed=3):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 5)), rng.normal(size=(n, 3)), rng.integers(0, 3, n), rng.normal(size=(n, 2))


def test_structure_names_and_shared_weights_counted_once():
    m = _two_by_two()
    assert isinstance(m, Model) and issubclass(Sequential, Model)
    assert m.input_names == ["a", "b"] and m.output_names == ["cls", "reg"]
    assert m.input_shape == [(None, 5), (None, 3)] and m.output_shape == [(None, 3), (None, 2)]
    shared = m.get_layer("shared")
    assert [layer.name for layer in m.layers].count("shared") == 1
    # h, shared (once), cls, lin, g2, reg
    assert m.count_params() == (5 * 6 + 6) + (6 * 6 + 6) + (9 * 3 + 3) + (9 * 2 + 2) + (6 * 2 + 2) + (2 * 2 + 2)
    assert m._params.size == m.count_params() and m._grads_all.size == m.count_params() + 42   # one shadow
    for v in shared.weights:
        assert np.shares_memory(v, m._params)
    lines = []
    m.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "Connected to" in text and "h[0][0], skip[0][0]" in text and f"Total params: {m.count_params()}" in text


def test_whole_model_gradient_with_shared_layers_and_loss_weights(float64):
    # the flat gradient after one step equals central differences of evaluate's loss: the shared
    # layer's gradient sums its two uses, h's gradient sums its three consumers, loss weights scale
    xa, xb, labels, target = _two_by_two_data()
    w = np.linspace(0.5, 1.5, len(labels))
    m = _two_by_two()
    m.get_layer("h").kernel_regularizer = None
    m.compile(optimizer=sgd(0.0), loss={"cls": "sparse_categorical_crossentropy", "reg": "mse"},
              loss_weights={"cls": 0.7, "reg": 1.9})
    m.fit([xa, xb], [labels, target], sample_weight=w, batch_size=len(labels), shuffle=False, verbose=0)
    grads = m._grads.copy()
    assert m._heads[0].fused and not m._heads[1].fused

    def f():
        return m.evaluate([xa, xb], [labels, target], sample_weight=w, batch_size=len(labels), verbose=0)[0]

    np.testing.assert_allclose(grads, numeric_grad(f, m._params), rtol=1e-5, atol=1e-9)


def test_multi_output_layer_an_output_feeding_on_and_an_output_without_loss(float64):
    nncore.set_seed(1)
    x = Input(shape=(4,))
    h = L.Dense(5, activation="tanh", name="h")(x)
    first, rest = Split(2, name="split")(h)                      # rest gets no gradient from anywhere
    out1 = L.Dense(2, activation="sigmoid", name="o1")(first)
    out2 = L.Dense(1, name="o2")(out1)                             # out1 is an output and feeds o2
    spare = L.Dense(2, name="spare")(rest)
    m = Model(x, [out1, out2, spare])
    rng = np.random.default_rng(2)
    xs, y1, y2 = rng.normal(size=(7, 4)), rng.integers(0, 2, (7, 2)), rng.normal(size=(7, 1))
    m.compile(optimizer=sgd(0.0), loss=["binary_crossentropy", "mse", None])
    m.fit(xs, [y1, y2, None], batch_size=7, shuffle=False, verbose=0)
    assert not m._heads[0].fused                                   # out1 also feeds o2: no fused path
    grads = m._grads.copy()
    spare_region = slice(*m._layout.grad_region[id(m.get_layer("spare"))])
    assert np.all(grads[spare_region] == 0)                        # no loss reaches it

    def f():
        return m.evaluate(xs, [y1, y2, None], batch_size=7, verbose=0)[0]

    np.testing.assert_allclose(grads, numeric_grad(f, m._params), rtol=1e-5, atol=1e-9)
    p = m.predict(xs, verbose=0)
    assert [a.shape for a in p] == [(7, 2), (7, 1), (7, 2)]


def test_tensor_keyword_arguments_reach_the_layer_and_the_config(float64):
    nncore.set_seed(3)
    x, s = Input(shape=(3,), name="x"), Input(shape=(3,), name="s")
    shift = Shift(name="shift")
    y = L.Dense(2, name="out")(shift(L.Dense(3, name="d")(x), shift=L.Dense(3, name="e")(s)))
    m = Model([x, s], y)
    rng = np.random.default_rng(4)
    xs, ss, t = rng.normal(size=(5, 3)), rng.normal(size=(5, 3)), rng.normal(size=(5, 2))
    d, e, out = (m.get_layer(n) for n in ("d", "e", "out"))
    want = ((xs @ d.kernel + d.bias) + (ss @ e.kernel + e.bias)) @ out.kernel + out.bias
    np.testing.assert_allclose(m.predict([xs, ss], verbose=0), want, rtol=1e-12)
    cfg = json.loads(json.dumps(m.get_config()))
    node = next(entry for entry in cfg["layers"] if entry["name"] == "shift")["inbound_nodes"][0]
    assert node == {"args": [["d", 0, 0]], "kwargs": {"shift": [["e", 0, 0]]}}
    clone = Model.from_config(cfg)
    clone.set_weights(m.get_weights())
    np.testing.assert_array_equal(clone.predict([xs, ss], verbose=0), m.predict([xs, ss], verbose=0))
    m.compile(optimizer=sgd(0.0), loss="mse")
    m.fit([xs, ss], t, batch_size=5, verbose=0)
    grads = m._grads.copy()
    np.testing.assert_allclose(grads, numeric_grad(lambda: m.evaluate([xs, ss], t, verbose=0), m._params),
                               rtol=1e-6, atol=1e-9)


def test_history_keys_and_evaluate_order_for_several_outputs():
    xa, xb, labels, target = _two_by_two_data(n=30)
    m = _two_by_two()
    m.compile(optimizer="adam", loss=["sparse_categorical_crossentropy", "mse"],
              metrics=[["accuracy"], ["mse", "mae"]])
    h = m.fit({"a": xa, "b": xb}, {"cls": labels, "reg": target}, epochs=2, batch_size=8, verbose=0,
              validation_data=([xa, xb], [labels, target]))
    assert list(h.history) == ["loss", "cls_loss", "reg_loss", "cls_accuracy", "reg_mae", "reg_mse",
                               "val_loss", "val_cls_loss", "val_reg_loss", "val_cls_accuracy", "val_reg_mae",
                               "val_reg_mse"]
    logs = m.evaluate([xa, xb], [labels, target], verbose=0, return_dict=True)
    assert m.evaluate([xa, xb], [labels, target], verbose=0) == list(logs.values())
    np.testing.assert_allclose(logs["loss"], logs["cls_loss"] + logs["reg_loss"], rtol=1e-6)
    out = m.train_on_batch([xa, xb], [labels, target])
    assert isinstance(out, list) and len(out) == 6
    assert set(m.test_on_batch([xa, xb], [labels, target], return_dict=True)) == set(logs)
    p = m.predict_on_batch([xa, xb])
    np.testing.assert_allclose(p[0], m.predict([xa, xb], verbose=0)[0])


def test_dict_inputs_and_outputs():
    a, b = Input(shape=(3,), name="a"), Input(shape=(2,), name="b")
    y = L.Dense(2, name="d")(L.Concatenate()([a, b]))
    m = Model({"left": a, "right": b}, {"score": y, "copy": L.Activation("linear", name="lin")(y)})
    assert m.input_names == ["left", "right"] and m.output_names == ["score", "copy"]
    x = {"left": np.ones((4, 3)), "right": np.zeros((4, 2))}
    p = m.predict(x, verbose=0)
    assert sorted(p) == ["copy", "score"] and p["score"].shape == (4, 2)
    np.testing.assert_array_equal(p["score"], p["copy"])
    m.compile("sgd", loss={"score": "mse"})                        # 'copy' has no loss: no targets needed
    h = m.fit(x, {"score": np.ones((4, 2))}, epochs=1, verbose=0)
    assert list(h.history) == ["loss", "score_loss"]
    cfg = json.loads(json.dumps(m.get_config()))
    assert cfg["input_layers"] == {"left": ["a", 0, 0], "right": ["b", 0, 0]}
    clone = Model.from_config(cfg)
    clone.set_weights(m.get_weights())
    np.testing.assert_array_equal(clone.predict(x, verbose=0)["score"], m.predict(x, verbose=0)["score"])


def test_sequential_takes_an_input_tensor_and_runs_on_the_same_engine():
    m = Sequential([nncore.Input(shape=(8,)), L.Dense(4, activation="relu"), L.Dense(2)])
    assert m.built and m.count_params() == 8 * 4 + 4 + 4 * 2 + 2
    assert isinstance(m, Model) and m.output_names == [m.layers[-1].name]
    f = Model(m.inputs[0], m.outputs[0])                           # the same graph as a functional model
    x = np.random.default_rng(0).normal(size=(5, 8))
    np.testing.assert_array_equal(f.predict(x, verbose=0), m.predict(x, verbose=0))


def test_layers_shared_between_models_follow_the_one_that_ran_last():
    nncore.set_seed(2)
    x = Input(shape=(3,))
    h = L.Dense(4, activation="tanh", name="enc")(x)
    full = Model(x, L.Dense(1, name="head")(h))
    encoder = Model(x, h)                                          # a sub-model over the same layers
    rng = np.random.default_rng(3)
    xs, ys = rng.normal(size=(20, 3)), rng.normal(size=(20, 1))
    full.compile(optimizer="adam", loss="mse")
    full.fit(xs, ys, epochs=3, verbose=0)
    enc = full.get_layer("enc")
    want = np.tanh(xs @ enc.get_weights()[0] + enc.get_weights()[1])
    np.testing.assert_allclose(encoder.predict(xs, verbose=0), want, rtol=1e-5, atol=1e-6)   # the trained weights
    before = [w.copy() for w in full.get_weights()]
    full.fit(xs, ys, epochs=1, verbose=0)                          # trains on, from those weights
    assert any(not np.array_equal(a, b) for a, b in zip(before, full.get_weights()))
    np.testing.assert_allclose(encoder.predict(xs, verbose=0),
                               np.tanh(xs @ enc.get_weights()[0] + enc.get_weights()[1]), rtol=1e-5, atol=1e-6)


def test_a_parameter_free_layer_on_tensors_of_two_shapes():
    a, b = Input(shape=(4, 4, 2)), Input(shape=(6, 6, 2))
    pool, flat = L.MaxPooling2D(2), L.Flatten()
    y = L.Concatenate()([flat(pool(a)), flat(pool(b))])           # 8 and 18 features
    m = Model([a, b], L.Dense(1)(y))
    rng = np.random.default_rng(4)
    xa, xb = rng.normal(size=(3, 4, 4, 2)), rng.normal(size=(3, 6, 6, 2))
    assert y.shape == (None, 8 + 18)
    m.compile("sgd", "mse")
    m.fit([xa, xb], np.zeros((3, 1)), verbose=0)
    assert m.predict([xa, xb], verbose=0).shape == (3, 1)


def test_save_load_resume_bit_identically(tmp_path):
    xa, xb, labels, target = _two_by_two_data(n=40)
    m = _two_by_two(seed=5)
    m.get_layer("reg").kernel_regularizer = None
    m.compile(optimizer="adam", loss=["sparse_categorical_crossentropy", "mse"], loss_weights=[1.0, 0.5],
              metrics=[["accuracy"], ["mae"]])
    m.fit([xa, xb], [labels, target], epochs=2, batch_size=8, verbose=0)
    path = tmp_path / "two.nncore"
    m.save(path)
    again = nncore.load_model(path)
    assert type(again) is Model and again.output_names == m.output_names
    for p, q in zip(m.predict([xa, xb], verbose=0), again.predict([xa, xb], verbose=0)):
        np.testing.assert_array_equal(p, q)
    nncore.set_seed(11)
    h1 = m.fit([xa, xb], [labels, target], epochs=2, batch_size=8, verbose=0)
    nncore.set_seed(11)
    h2 = again.fit([xa, xb], [labels, target], epochs=2, batch_size=8, verbose=0)
    assert h1.history == h2.history
    for a, b in zip(m.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)
    import copy
    import pickle
    for twin in (pickle.loads(pickle.dumps(m)), copy.deepcopy(m)):   # through nncore's own format
        assert type(twin) is Model and twin.input_names == ["a", "b"]
        np.testing.assert_array_equal(twin.predict([xa, xb], verbose=0)[0], m.predict([xa, xb], verbose=0)[0])
    wpath = tmp_path / "w.nncore"
    m.save_weights(wpath)
    fresh = _two_by_two(seed=6)
    fresh.load_weights(wpath)
    np.testing.assert_array_equal(fresh.predict([xa, xb], verbose=0)[1], m.predict([xa, xb], verbose=0)[1])


def test_config_round_trip_is_stable_and_reads_keras_references():
    m = _two_by_two()
    cfg = json.loads(json.dumps(m.get_config()))
    shared = next(entry for entry in cfg["layers"] if entry["name"] == "shared")
    assert shared["inbound_nodes"] == [{"args": [["h", 0, 0]], "kwargs": {}}, {"args": [["skip", 0, 0]], "kwargs": {}}]
    cat = next(entry for entry in cfg["layers"] if entry["name"] == "cat")
    assert cat["inbound_nodes"][0]["args"] == [[["shared", 1, 0], ["b", 0, 0]]]
    assert cfg["output_layers"] == [["cls", 0, 0], ["reg", 0, 0]]
    clone = Model.from_config(cfg)
    assert json.loads(json.dumps(clone.get_config())) == cfg
    # Keras 3 writes each reference as {"class_name": "__keras_tensor__", "config": {"keras_history": [...]}}
    for entry in cfg["layers"]:
        for node in entry["inbound_nodes"]:
            args = node["args"][0]
            wrap = (lambda r: {"class_name": "__keras_tensor__", "config": {"shape": [None], "keras_history": r}})
            node["args"][0] = [wrap(r) for r in args] if isinstance(args[0], list) else wrap(args)
    assert Model.from_config(cfg).count_params() == m.count_params()


def test_steady_state_steps_allocate_nothing_that_persists():
    xa, xb, labels, target = _two_by_two_data(n=160)
    m = _two_by_two()
    m.compile(optimizer="adam", loss=["sparse_categorical_crossentropy", "mse"], metrics=[["accuracy"], []])
    growth = growth_between_epochs(m, [xa, xb], [labels, target], batch_size=16, verbose=0)
    # 40 steps. A work buffer kept per step (the smallest, 16 x 2 float32, with its ndarray object) would
    # add over 200 bytes a step; what shows is the interpreter's small-tuple free lists filling up
    # (bounded: ~100 bytes a step at first, less and less later) and History's per-epoch entries
    assert growth < 40 * 200, growth


def test_steady_state_steps_allocate_no_work_buffers():
    rng = np.random.default_rng(5)
    x = Input(shape=(64,))
    h = L.Dense(64, activation="relu")(x)
    y = L.Dense(64)(L.Add()([x, h]))                                 # x feeds two layers: a summed gradient
    z = L.Concatenate()([L.Maximum()([y, h]), L.Multiply()([y, x])])
    m = Model(x, L.Dense(4, activation="softmax")(z))
    xs, ys = rng.normal(size=(256, 64)).astype(np.float32), rng.integers(0, 4, 256)   # no conversion copy
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    m.fit(xs, ys, epochs=1, batch_size=64, verbose=0)
    peak = peak_above_start(lambda: m.fit(xs, ys, epochs=2, batch_size=64, verbose=0))
    assert peak < 64 * 64 * 4, peak                                # below one (64, 64) float32 buffer


def test_thread_counts_give_the_same_bits():
    xa, xb, labels, target = _two_by_two_data(n=64)
    weights = []
    for t in (1, 2):
        m = _two_by_two(seed=7)
        m.compile(optimizer="adam", loss=["sparse_categorical_crossentropy", "mse"], n_threads=t)
        nncore.set_seed(8)
        m.fit([xa, xb], [labels, target], epochs=2, batch_size=16, verbose=0)
        weights.append(m.get_weights())
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------- non-trainable weights and frozen layers in graphs
def _bn_residual(seed=0, shape=(5, 4, 2)):
    """A residual block of convolutions with BatchNormalization (one BN used at two nodes, so its gamma and
    beta get a shadow gradient region and its moving statistics two updates a step), then a head."""
    nncore.set_seed(seed)
    x = Input(shape=shape, name="x")
    h = L.Activation("relu", name="relu1")(L.BatchNormalization(name="bn1")(
        L.Conv2D(3, 3, padding="same", use_bias=False, name="c1")(x)))
    r = L.BatchNormalization(momentum=0.9, name="bn2")(L.Conv2D(3, 3, padding="same", use_bias=False, name="c2")(h))
    s = L.Activation("tanh", name="act")(L.Add(name="skip")([h, r]))
    g = L.GlobalAveragePooling2D(name="gap")(s)
    bn = L.BatchNormalization(name="bn_shared")
    u = bn(L.Dense(3, name="d1")(g))
    v = bn(L.Dense(3, activation="tanh", name="d2")(u))
    out = L.LayerNormalization(name="ln")(L.Add(name="skip2")([u, v]))
    return Model(x, L.Dense(2, name="out")(out), name="bn_res")


def test_batchnorm_in_a_residual_block_gradient_in_training_mode(float64):
    # one SGD step of lr 0 leaves the flat gradient of the training-mode loss: it must equal central
    # differences of mean((model(x, training=True) - t)^2), which the moving statistics do not enter
    rng = np.random.default_rng(3)
    x, t = rng.normal(size=(6, 5, 4, 2)), rng.normal(size=(6, 2))
    m = _bn_residual()
    bn = m.get_layer("bn_shared")
    for layer in m.layers:                                  # gamma and beta away from 1 and 0
        for name in ("gamma", "beta"):
            if hasattr(layer, name):
                getattr(layer, name)[...] = rng.normal(scale=0.5, size=getattr(layer, name).shape) + (name == "gamma")
    m.compile(optimizer=sgd(0.0), loss="mse")
    assert m._grads_all.size == m._params.size + 3 + 3       # bn_shared's second node: gamma and beta shadows
    m.train_on_batch(x, t)
    grads = m._grads.copy()
    assert np.all(grads[m._train_params.size:] == 0)         # frozen part and moving statistics: no gradient
    assert np.abs(m._layout.shadows[(id(bn), 1)][0]).max() > 0   # the second node wrote its own region

    def f():
        return float(np.mean((m(x, training=True) - t) ** 2))

    np.testing.assert_allclose(grads, numeric_grad(f, m._params), rtol=1e-5, atol=1e-8)


def test_a_shared_convolution_sums_the_gradients_of_its_nodes(float64):
    # Conv2D keeps (kh kw c, filters) views of its kernel gradient: a further node must get its own
    rng = np.random.default_rng(8)
    x, t = rng.normal(size=(3, 4, 4, 2)), rng.normal(size=(3, 2))
    nncore.set_seed(3)
    inp = Input(shape=(4, 4, 2))
    conv = L.Conv2D(2, 3, padding="same", activation="tanh", name="conv")
    y = L.Dense(2, name="out")(L.Flatten()(conv(conv(inp))))
    m = Model(inp, y)
    m.compile(optimizer=sgd(0.0), loss="mse")
    m.train_on_batch(x, t)
    grads = m._grads.copy()
    np.testing.assert_allclose(grads, numeric_grad(lambda: m.evaluate(x, t, verbose=0), m._params),
                               rtol=1e-5, atol=1e-9)


def test_batchnorm_in_a_residual_block_moving_statistics_and_a_short_fit():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(64, 5, 4, 2)) * 2 + 1
    labels = (x[..., 0].sum(axis=(1, 2)) > x[..., 1].sum(axis=(1, 2))).astype(int)
    m = _bn_residual(seed=1)
    m.compile(optimizer=nncore.optimizers.Adam(learning_rate=0.01),
              loss=nncore.losses.SparseCategoricalCrossentropy(from_logits=True))
    bn1, shared = m.get_layer("bn1"), m.get_layer("bn_shared")
    # one forward in training mode: bn1's moving statistics take one step of Keras's rule (biased variance)
    c1 = m.get_layer("c1")(x[:16].astype(np.float32))
    mean, var = c1.reshape(-1, 3).mean(0), c1.reshape(-1, 3).var(0)
    m.train_on_batch(x[:16], labels[:16])
    np.testing.assert_allclose(bn1.moving_mean, 0.01 * mean, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(bn1.moving_variance, 0.99 + 0.01 * var, rtol=1e-5)
    moved = shared.moving_mean.copy()
    h = m.fit(x, labels, epochs=10, batch_size=16, verbose=0).history["loss"]
    assert h[-1] < 0.5 * h[0]
    assert not np.array_equal(shared.moving_mean, moved)     # both nodes of the shared BN update it
    before = [w.copy() for w in m.weights]
    p = m.predict(x, verbose=0)                              # inference: the moving statistics, unchanged
    for a, b in zip(before, m.weights):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(p, m(x, training=True), atol=1e-3)


def _frozen_shared(seed=0):
    nncore.set_seed(seed)
    x = Input(shape=(4,), name="x")
    shared = L.Dense(4, activation="tanh", name="shared")
    h = L.Dense(4, activation="relu", name="h")(x)
    t = shared(L.Add(name="skip")([h, shared(h)]))          # used twice, its input has a trained layer upstream
    return Model(x, L.Dense(3, activation="softmax", name="out")(t))


def test_a_frozen_shared_layer_gets_no_update_no_shadow_and_passes_its_gradient_on(float64, monkeypatch):
    from test_trainable import _count_step_calls
    rng = np.random.default_rng(5)
    x, labels = rng.normal(size=(10, 4)), rng.integers(0, 3, 10)
    m = _frozen_shared()
    shared = m.get_layer("shared")
    shared.trainable = False
    m.compile(optimizer=sgd(0.0), loss="sparse_categorical_crossentropy")
    n_train = (4 * 4 + 4) + (4 * 3 + 3)
    assert m._train_params.size == n_train and m._grads_all.size == m._params.size == n_train + 20
    m.fit(x, labels, batch_size=10, shuffle=False, verbose=0)
    grads = m._train_grads.copy()

    def f():
        return m.evaluate(x, labels, batch_size=10, verbose=0)

    np.testing.assert_allclose(grads, numeric_grad(f, m._train_params), rtol=1e-5, atol=1e-9)
    assert np.abs(grads[:20]).max() > 0                      # h's gradient came through both frozen nodes
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    w0 = [w.copy() for w in shared.weights]
    calls = _count_step_calls(monkeypatch)
    m.fit(x, labels, epochs=2, batch_size=5, verbose=0)
    assert calls == [n_train] * 4 and all(s.size == n_train for s in m.optimizer._flat["slots"])
    for a, b in zip(w0, shared.weights):
        np.testing.assert_array_equal(a, b)
    # unfrozen at the next compile: the layer joins the trained range, its second node gets a shadow
    p0 = m.predict(x, verbose=0)
    shared.trainable = True
    m.compile(optimizer=sgd(0.0), loss="sparse_categorical_crossentropy")
    np.testing.assert_array_equal(m.predict(x, verbose=0), p0)  # the new layout keeps every value
    assert m._train_params.size == n_train + 20 and m._grads_all.size == m._params.size + 20
    m.fit(x, labels, batch_size=10, shuffle=False, verbose=0)
    np.testing.assert_allclose(m._grads.copy(), numeric_grad(f, m._params), rtol=1e-5, atol=1e-9)


def test_functional_summary_counts_and_trainable_flags():
    m = _bn_residual()
    m.get_layer("d2").trainable = False
    lines = []
    m.summary(print_fn=lines.append)
    text = "\n".join(lines)
    fixed = 2 * (3 + 3 + 3) + (3 * 3 + 3)                   # three BNs' moving statistics, the frozen d2
    trained = m.count_params() - fixed
    assert trained == sum(w.size for w in m.trainable_weights)
    assert fixed == sum(w.size for w in m.non_trainable_weights)
    assert f"Total params: {trained + fixed:,} ({(trained + fixed) * 4:.2f} B)" in text
    assert f"Trainable params: {trained:,}" in text and f"Non-trainable params: {fixed:,}" in text
    assert "bn_shared (BatchNormalization)" in text and "d1[0][0], d2[0][0]" in text
    m.trainable = False
    assert not m.trainable and m.trainable_weights == [] and len(m.non_trainable_weights) == len(m.weights)


def test_batchnorm_and_frozen_layers_save_load_resume_bit_identically(tmp_path):
    rng = np.random.default_rng(6)
    x, labels = rng.normal(size=(32, 5, 4, 2)), rng.integers(0, 2, 32)
    m = _bn_residual(seed=2)
    m.get_layer("c2").trainable = False
    loss = nncore.losses.SparseCategoricalCrossentropy(from_logits=True)
    m.compile(optimizer="adam", loss=loss)
    m.fit(x, labels, epochs=2, batch_size=8, verbose=0)
    path = tmp_path / "bn.nncore"
    m.save(path)
    again = nncore.load_model(path)
    assert not again.get_layer("c2").trainable and again._train_params.size == m._train_params.size
    for a, b in zip(m.get_weights(), again.get_weights()):    # moving statistics included
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(again.get_layer("bn_shared").moving_variance,
                                  m.get_layer("bn_shared").moving_variance)
    np.testing.assert_array_equal(again.predict(x, verbose=0), m.predict(x, verbose=0))
    hists = []
    for model in (m, again):
        nncore.set_seed(9)
        hists.append(model.fit(x, labels, epochs=2, batch_size=8, verbose=0).history)
    assert hists[0] == hists[1]
    for a, b in zip(m.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_batchnorm_residual_steps_allocate_no_work_buffers():
    rng = np.random.default_rng(7)
    xs, ys = rng.normal(size=(128, 8, 8, 2)).astype(np.float32), rng.integers(0, 2, 128)
    m = _bn_residual(shape=(8, 8, 2))
    m.compile(optimizer="adam", loss=nncore.losses.SparseCategoricalCrossentropy(from_logits=True))
    m.fit(xs, ys, epochs=1, batch_size=64, verbose=0)
    peak = peak_above_start(lambda: m.fit(xs, ys, epochs=2, batch_size=64, verbose=0))
    assert peak < 64 * 8 * 8 * 3 * 4, peak                  # below one (64, 8, 8, 3) float32 buffer


# ------------------------------------------------------------------------------------- errors
def test_graph_errors_name_the_tensor_or_layer():
    a, b, c = Input(shape=(3,), name="a"), Input(shape=(2,), name="b"), Input(shape=(3,), name="c")
    ya = L.Dense(2, name="da")(a)
    with pytest.raises(ValueError, match="output 'da' is not connected to the inputs.*Input 'a'"):
        Model(c, ya)
    with pytest.raises(ValueError, match="input 'b' is not connected to any output"):
        Model([a, b], ya)
    with pytest.raises(ValueError, match="made by nncore.Input.*layer 'da'"):
        Model(ya, L.Dense(1)(ya))
    with pytest.raises(ValueError, match="every output must be a symbolic tensor"):
        Model(a, np.zeros(3))
    with pytest.raises(ValueError, match="listed twice"):
        Model(a, [ya, ya])
    with pytest.raises(TypeError, match="mixes symbolic tensors with ndarray"):
        L.Add()([a, np.zeros((1, 3))])
    with pytest.raises(TypeError, match="unexpected keyword argument 'initial_state'"):
        L.Dense(2)(a, initial_state=[b])
    with pytest.raises(ValueError, match="'sub' \\(Subtract\\): expected 2 inputs, got 3"):
        L.Subtract(name="sub")([a, a, c])
    with pytest.raises(ValueError, match="'add' \\(Add\\): expected a list of inputs"):
        L.Add(name="add")(a)
    with pytest.raises(ValueError, match="cannot be broadcast"):
        L.Add()([a, b])
    with pytest.raises(ValueError, match="must match except along axis"):
        L.Concatenate()([Input(shape=(2, 3)), Input(shape=(3, 3))])
    with pytest.raises(ValueError, match="batch axis"):
        L.Concatenate(axis=0)([a, c])
    with pytest.raises(ValueError, match="axis 1 of the first input \\(3\\) and axis 1 of the second \\(2\\)"):
        L.Dot(axes=1)([a, b])
    with pytest.raises(ValueError, match="two different layers are named 'same'"):
        Model(a, L.Add()([L.Dense(2, name="same")(a), L.Dense(2, name="same")(a)]))
    with pytest.raises(TypeError, match="symbolic"):
        np.asarray(a)


def test_data_and_compile_errors_name_what_is_wrong():
    m = _two_by_two()
    xa, xb, labels, target = _two_by_two_data()
    with pytest.raises(ValueError, match="loss has 1 entries, expected 2 \\(one per output: \\['cls', 'reg'\\]\\)"):
        m.compile("sgd", loss=["mse"])
    with pytest.raises(ValueError, match="loss names output 'nope'.*outputs are \\['cls', 'reg'\\]"):
        m.compile("sgd", loss={"cls": "mse", "nope": "mse"})
    with pytest.raises(ValueError, match="loss_weights has 3 entries"):
        m.compile("sgd", loss="mse", loss_weights=[1, 2, 3])
    with pytest.raises(ValueError, match="metrics has 1 entries, expected 2"):
        m.compile("sgd", loss="mse", metrics=["mae"])
    m.compile("sgd", loss=["sparse_categorical_crossentropy", "mse"])
    with pytest.raises(ValueError, match="has 2 inputs \\['a', 'b'\\]: expected a list of 2 arrays.*an array"):
        m.fit(xa, [labels, target], verbose=0)
    with pytest.raises(ValueError, match="expected a list of 2 arrays.*a list of 3 entries"):
        m.predict([xa, xb, xb], verbose=0)
    with pytest.raises(ValueError, match=r"x\['b'\]: input 'b' of model 'two' expects input of shape "
                                         r"\(n_samples, 3\), got \(12, 4\)"):
        m.fit([xa, np.zeros((12, 4))], [labels, target], verbose=0)
    with pytest.raises(ValueError, match="7 samples, but the first input has 12"):
        m.predict([xa, xb[:7]], verbose=0)
    with pytest.raises(ValueError, match="no input named 'c'"):
        m.predict({"a": xa, "c": xb}, verbose=0)
    with pytest.raises(ValueError, match="missing data for input 'b'"):
        m.predict({"a": xa}, verbose=0)
    with pytest.raises(ValueError, match="no output named 'zz'"):
        m.fit([xa, xb], {"cls": labels, "zz": target}, verbose=0)
    with pytest.raises(ValueError, match="missing data for output 'reg'"):
        m.fit([xa, xb], {"cls": labels}, verbose=0)
    with pytest.raises(ValueError, match=r"y\['reg'\]: expected targets of shape \(n_samples, 2\)"):
        m.fit([xa, xb], [labels, np.zeros((12, 3))], verbose=0)
    with pytest.raises(ValueError, match="class_weight is only supported for models with one output"):
        m.fit([xa, xb], [labels, target], class_weight={0: 2.0}, verbose=0)


def test_hostile_functional_configs_are_refused(tmp_path):
    m = _two_by_two()
    m.compile("adam", loss=["sparse_categorical_crossentropy", "mse"])
    cfg = json.loads(json.dumps(m.get_config()))

    def edited(edit):
        c = json.loads(json.dumps(cfg))
        edit(c)
        return c

    def layer(c, name):
        return next(entry for entry in c["layers"] if entry["name"] == name)

    def cycle(c):                                  # h now reads the output of a layer that depends on h
        layer(c, "h")["inbound_nodes"] = [{"args": [["skip", 0, 0]], "kwargs": {}}]

    with pytest.raises(ValueError, match="can never run: its inputs lie on a cycle"):
        Model.from_config(edited(cycle))
    with pytest.raises(ValueError, match="refers to node 3 of layer 'h', which does not exist"):
        Model.from_config(edited(lambda c: layer(c, "skip")["inbound_nodes"][0]["args"][0].__setitem__(
            0, ["h", 3, 0])))
    with pytest.raises(ValueError, match="names a tensor that does not exist"):
        Model.from_config(edited(lambda c: c.__setitem__("output_layers", [["cls", 0, 4], ["reg", 0, 0]])))
    with pytest.raises(ValueError, match="unknown layer class 'os.system'"):
        Model.from_config(edited(lambda c: layer(c, "h").__setitem__("class_name", "os.system")))
    # through load_model, a huge declared layer is refused before anything is allocated
    path = tmp_path / "m.nncore"
    m.save(path)
    header = nncore.saving.read_file(path)
    for k in ("format_version", "arrays", "payload_bytes"):
        header.pop(k)
    layer(header["model"]["config"], "reg")["config"]["units"] = 10 ** 12
    nncore.saving.write_file(tmp_path / "evil.nncore", header)
    with pytest.raises(ValueError, match="declares at least"):
        nncore.load_model(tmp_path / "evil.nncore")
