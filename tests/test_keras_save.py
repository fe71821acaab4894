"""nncore.saving.save_keras / model.save("m.keras"): Keras 3 files written by nncore, read by the real Keras
(torch backend) and by nncore again; the predictions match, the compile settings come through. Skipped
without keras or h5py (the `keras` extra)."""
import json
import os
import zipfile

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

keras = pytest.importorskip("keras")
h5py = pytest.importorskip("h5py")
if keras.backend.backend() != "torch":
    pytest.skip("these tests need KERAS_BACKEND=torch", allow_module_level=True)

import nncore  # noqa: E402
from keras_parity_common import floatx_both  # noqa: E402
from nncore import layers as L  # noqa: E402
from nncore.saving import load_keras, load_model, save_keras  # noqa: E402

pytestmark = [pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword"),
              pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")]
RNG = np.random.default_rng(11)


@pytest.fixture(autouse=True)
def float32_both():
    with floatx_both("float32"):
        yield


def data(*shape, dtype="float32"):
    return RNG.standard_normal(shape).astype(dtype)


def both_read(model, tmp_path, xs, rtol=1e-5, atol=1e-6):
    """model.save("m.keras"); Keras and nncore load it; all three predict the same. Returns (keras, nncore)."""
    path = os.path.join(tmp_path, "m.keras")
    model.save(path)
    theirs = keras.saving.load_model(path)
    ours = load_model(path)
    want = model.predict(xs, verbose=0)
    for other in (theirs, ours):
        got = other.predict(xs, verbose=0)
        for g, w in zip(got if isinstance(got, list) else [got], want if isinstance(want, list) else [want]):
            np.testing.assert_allclose(np.asarray(g), w, rtol=rtol, atol=atol)
    return theirs, ours


def test_mlp_compile_settings_reach_keras(tmp_path):
    model = nncore.Sequential([L.Input((6,)), L.Dense(5, activation="relu", kernel_regularizer="l2", name="hidden"),
                               L.Dropout(0.3, name="drop"), L.Dense(3, activation="softmax", name="out")], name="mlp")
    model.compile(optimizer=nncore.optimizers.Adam(learning_rate=3e-3, beta_1=0.8),
                  loss="categorical_crossentropy", metrics=["accuracy"])
    model.fit(data(32, 6), np.eye(3, dtype="float32")[RNG.integers(0, 3, 32)], epochs=1, verbose=0)
    theirs, ours = both_read(model, tmp_path, data(9, 6))
    assert type(theirs.optimizer).__name__ == "Adam"
    assert np.isclose(float(theirs.optimizer.learning_rate), 3e-3) and theirs.optimizer.beta_1 == 0.8
    assert type(theirs.loss).__name__ in ("CategoricalCrossentropy", "LossFunctionWrapper")
    assert [layer.name for layer in theirs.layers] == ["hidden", "drop", "out"]
    assert theirs.name == "mlp" and ours.name == "mlp"
    assert type(ours.optimizer).__name__ == "Adam" and np.isclose(ours.optimizer.learning_rate, 3e-3)
    # Keras trains on from the file: its regularizer is the L2 nncore had
    reg = theirs.get_layer("hidden").kernel_regularizer
    assert type(reg).__name__ == "L2" and np.isclose(reg.l2, 0.01)


def test_cnn_with_batchnorm_and_pooling(tmp_path):
    model = nncore.Sequential([L.Input((9, 9, 2)), L.Conv2D(4, 3, padding="same", activation="relu"),
                               L.BatchNormalization(), L.MaxPooling2D(2), L.Conv2D(3, 3, strides=2),
                               L.GlobalAveragePooling2D(), L.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(data(16, 9, 9, 2), data(16, 2), epochs=2, verbose=0)       # moving statistics move
    both_read(model, tmp_path, data(5, 9, 9, 2), atol=1e-5)


@pytest.mark.parametrize("rnn", ["lstm", "gru", "simple", "bidirectional"])
def test_recurrent_layers_and_embedding(rnn, tmp_path):
    cell = {"lstm": lambda: L.LSTM(5, return_sequences=True), "gru": lambda: L.GRU(5, return_sequences=True),
            "simple": lambda: L.SimpleRNN(5, return_sequences=True),
            "bidirectional": lambda: L.Bidirectional(L.LSTM(3, return_sequences=True), merge_mode="sum")}[rnn]
    model = nncore.Sequential([L.Input((7,)), L.Embedding(20, 4), cell(), L.GRU(2, reset_after=False),
                               L.Dense(1)])
    x = RNG.integers(0, 20, (6, 7))
    both_read(model, tmp_path, x, atol=1e-5)


def test_functional_two_inputs_two_outputs_and_layer_order(tmp_path):
    # three Dense layers of one shape at different depths: Keras names their weight groups dense, dense_1,
    # dense_2 in ITS layer order, so a wrong order swaps weights of the same shape (caught by predict)
    a, b = L.Input((4,), name="a"), L.Input((4,), name="b")
    long_ = L.Dense(4, activation="tanh", name="long2")(L.Dense(4, activation="tanh", name="long1")(a))
    short = L.Dense(4, activation="tanh", name="short")(b)
    added = L.Add(name="add")([long_, short])
    both_ = L.Concatenate(name="cat")([added, a])
    y1 = L.Dense(2, name="y1")(both_)
    y2 = L.Dense(1, activation="sigmoid", name="y2")(added)
    model = nncore.Model([a, b], [y1, y2], name="two")
    model.compile(optimizer="rmsprop", loss=["mse", "binary_crossentropy"], loss_weights=[1.0, 0.5])
    theirs, ours = both_read(model, tmp_path, [data(5, 4), data(5, 4)])
    assert [t.name for t in theirs.outputs] and len(theirs.outputs) == 2
    assert type(theirs.optimizer).__name__ == "RMSprop"


def test_shared_layer_and_multiple_nodes(tmp_path):
    a, b = L.Input((3,), name="a"), L.Input((3,), name="b")
    shared = L.Dense(3, activation="relu", name="shared")
    y = L.Subtract()([shared(a), shared(b)])
    model = nncore.Model([a, b], L.Dense(1, name="head")(y))
    both_read(model, tmp_path, [data(4, 3), data(4, 3)])


def test_float64_model_is_float64_in_keras(tmp_path):
    nncore.set_floatx("float64")
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    model = nncore.Sequential([L.Input((3,)), L.Dense(4, activation="elu"), L.Dense(2)])
    x = data(5, 3, dtype="float64")
    # Keras 3.15 on torch predicts a float64 model it builds itself at about float32 accuracy too (2e-7)
    theirs, ours = both_read(model, tmp_path, x, rtol=1e-6, atol=1e-6)
    for w_theirs, w_ours, w in zip(theirs.get_weights(), ours.get_weights(), model.get_weights()):
        assert w_theirs.dtype == w_ours.dtype == np.float64
        np.testing.assert_array_equal(w_theirs, w)
        np.testing.assert_array_equal(w_ours, w)
    np.testing.assert_array_equal(ours.predict(x, verbose=0), model.predict(x, verbose=0))


def test_file_layout_is_keras_s(tmp_path):
    model = nncore.Sequential([L.Input((2,)), L.Dense(3, name="d"), L.Dense(1, name="e")], name="seq")
    path = tmp_path / "m.keras"
    save_keras(model, path)
    with zipfile.ZipFile(path) as z:
        assert set(z.namelist()) == {"config.json", "metadata.json", "model.weights.h5"}
        config = json.loads(z.read("config.json"))
        assert json.loads(z.read("metadata.json"))["keras_version"].startswith("3.")
        z.extract("model.weights.h5", tmp_path)
    assert config["class_name"] == "Sequential" and config["config"]["name"] == "seq"
    dense = config["config"]["layers"][1]
    assert dense["module"] == "keras.layers" and dense["config"]["dtype"]["config"]["name"] == "float32"
    with h5py.File(tmp_path / "model.weights.h5") as h5:
        assert sorted(h5["layers"]) == ["dense", "dense_1"]
        np.testing.assert_array_equal(h5["layers/dense_1/vars/0"][()], model.get_layer("e").get_weights()[0])
        assert h5["layers/dense/vars"].attrs["name"] == "d"
    # nncore's own format for any other name; both load through load_model
    model.save(tmp_path / "m.nncore")
    with open(tmp_path / "m.nncore", "rb") as f:
        assert f.read(6) == b"NNCORE"
    for name in ("m.keras", "m.nncore"):
        np.testing.assert_array_equal(load_model(tmp_path / name).get_weights()[1], model.get_weights()[1])


def test_keras_trains_on_from_an_nncore_file(tmp_path):
    model = nncore.Sequential([L.Input((4,)), L.Dense(8, activation="relu"), L.Dense(1)])
    model.compile(optimizer=nncore.optimizers.SGD(learning_rate=0.05), loss="mse")
    x, y = data(64, 4), data(64, 1)
    model.fit(x, y, epochs=3, verbose=0)
    model.save(tmp_path / "m.keras")
    theirs = keras.saving.load_model(tmp_path / "m.keras")
    before = float(theirs.evaluate(x, y, verbose=0))
    np.testing.assert_allclose(before, model.evaluate(x, y, verbose=0), rtol=1e-5)
    theirs.fit(x, y, epochs=5, batch_size=64, verbose=0)
    assert float(theirs.evaluate(x, y, verbose=0)) < before


def test_refusals(tmp_path):
    with pytest.raises(ValueError, match="not built"):
        save_keras(nncore.Sequential([L.Dense(2)]), tmp_path / "u.keras")
    model = nncore.Sequential([L.Input((4,)), L.Dense(3)])
    model.quantize("int8")
    with pytest.raises(ValueError, match="int8"):
        model.save(tmp_path / "q.keras")
    assert not os.path.exists(tmp_path / "q.keras") and not os.path.exists(tmp_path / "u.keras")


def test_save_is_atomic_over_an_old_file(tmp_path, monkeypatch):
    path = tmp_path / "m.keras"
    first = nncore.Sequential([L.Input((2,)), L.Dense(1)])
    first.save(path)
    second = nncore.Sequential([L.Input((2,)), L.Dense(1)])
    import nncore._keras_file as kf

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")
    monkeypatch.setattr(kf, "_write_weights", boom)
    with pytest.raises(RuntimeError):
        second.save(path)
    np.testing.assert_array_equal(load_keras(path).get_weights()[0], first.get_weights()[0])


OPTIMIZERS = {
    "sgd_momentum": ("SGD", dict(learning_rate=0.05, momentum=0.9)),
    "adam_amsgrad": ("Adam", dict(amsgrad=True)),
    "adamw": ("AdamW", {}),
    "adamax": ("Adamax", {}),
    "nadam": ("Nadam", {}),
    "rmsprop_centered_momentum": ("RMSprop", dict(momentum=0.5, centered=True)),
    "adagrad": ("Adagrad", {}),
    "adadelta": ("Adadelta", dict(learning_rate=1.0)),
    "ftrl": ("Ftrl", dict(learning_rate=0.1)),
}


def _mlp(api):
    return api.Sequential([api.Input((4,)), api.layers.Dense(3, activation="tanh"), api.layers.BatchNormalization(),
                           api.layers.Dense(2)])


@pytest.mark.parametrize("which", sorted(OPTIMIZERS))
@pytest.mark.parametrize("direction", ["nncore_to_keras", "keras_to_nncore"])
def test_training_resumes_across_libraries(which, direction, tmp_path):
    """Train 8 steps in one library, save, load in the other: the 9th step of both gives the same weights
    (the optimizer's iterations and slots travel in the file; with fresh slots they would differ by about
    the learning rate)."""
    name, kwargs = OPTIMIZERS[which]
    x, y = data(32, 4), data(32, 2)
    first, second = (nncore, keras) if direction == "nncore_to_keras" else (keras, nncore)
    model = _mlp(first)
    model.compile(optimizer=getattr(first.optimizers, name)(**kwargs), loss="mse")
    model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    model.save(tmp_path / "m.keras")
    other = keras.saving.load_model(tmp_path / "m.keras") if second is keras else load_keras(tmp_path / "m.keras")
    assert int(other.optimizer.iterations) == 8
    model.train_on_batch(x[:8], y[:8])
    other.train_on_batch(x[:8], y[:8])
    for a, b in zip(model.get_weights(), other.get_weights()):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=2e-7)


def test_a_mismatched_optimizer_state_is_refused(tmp_path):
    model = _mlp(keras)
    model.compile(optimizer=keras.optimizers.RMSprop(momentum=0.5), loss="mse")
    model.fit(data(8, 4), data(8, 2), verbose=0)
    model.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as z:
        z.extractall(tmp_path / "x")
    with h5py.File(tmp_path / "x" / "model.weights.h5", "a") as h5:
        del h5["optimizer/vars"][str(len(h5["optimizer/vars"]) - 1)]
    with zipfile.ZipFile(tmp_path / "bad.keras", "w") as z:
        for member in ("config.json", "metadata.json", "model.weights.h5"):
            z.write(tmp_path / "x" / member, member)
    with pytest.raises(ValueError, match="RMSprop has .* variables"):
        load_keras(tmp_path / "bad.keras")


def test_frozen_layer_and_functional_order_of_the_optimizer_slots(tmp_path):
    # Keras's trainable_variables skip the frozen layer and follow Keras's layer order of the graph
    a = L.Input((4,), name="a")
    frozen = L.Dense(4, activation="tanh", name="frozen")
    left = L.Dense(4, activation="tanh", name="left2")(L.Dense(4, activation="tanh", name="left1")(a))
    right = L.Dense(4, activation="tanh", name="right")(frozen(a))
    model = nncore.Model(a, L.Dense(2, name="out")(L.Add()([left, right])))
    frozen.trainable = False
    model.compile(optimizer="adam", loss="mse")
    x, y = data(16, 4), data(16, 2)
    model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    model.save(tmp_path / "m.keras")
    theirs = keras.saving.load_model(tmp_path / "m.keras")
    assert not theirs.get_layer("frozen").trainable
    model.train_on_batch(x[:4], y[:4])
    theirs.train_on_batch(x[:4], y[:4])
    for layer in model.layers:                 # get_weights follows each library's own layer order
        for w_ours, w_theirs in zip(layer.get_weights(), theirs.get_layer(layer.name).get_weights()):
            np.testing.assert_allclose(w_ours, np.asarray(w_theirs), rtol=1e-5, atol=2e-7)
