"""nncore.saving.load_keras: Keras 3 .keras files, written here by the real Keras (torch backend), read
into nncore models whose predictions (and, with the compile settings, one training step) match Keras's.
Skipped without keras or h5py (the `keras` extra)."""
import json
import os
import zipfile

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

keras = pytest.importorskip("keras")
pytest.importorskip("h5py")
if keras.backend.backend() != "torch":
    pytest.skip("these tests need KERAS_BACKEND=torch", allow_module_level=True)

import nncore  # noqa: E402
from keras_parity_common import floatx_both  # noqa: E402
from nncore.saving import load_keras  # noqa: E402

L = keras.layers
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")


@pytest.fixture(autouse=True)
def float32_both():
    with floatx_both("float32"):
        keras.utils.set_random_seed(3)
        yield


def round_trip(model, tmp_path, *xs, rtol=1e-5, atol=1e-6, **kwargs):
    """Save with Keras, read with nncore; the predictions match. Returns the nncore model."""
    path = os.path.join(tmp_path, "m.keras")
    model.save(path)
    ours = load_keras(path, **kwargs)
    want = model.predict(list(xs) if len(xs) > 1 else xs[0], verbose=0)
    got = ours.predict(list(xs) if len(xs) > 1 else xs[0], verbose=0)
    for g, w in zip(got if isinstance(got, list) else [got], want if isinstance(want, list) else [want]):
        np.testing.assert_allclose(g, np.asarray(w), rtol=rtol, atol=atol)
    return ours


def test_mlp_with_compile_settings_matches_one_training_step(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 6)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 32)]
    model = keras.Sequential([keras.Input((6,)), L.Dense(8, activation="relu", kernel_regularizer=keras.regularizers.L2(1e-3)),
                              L.Dense(5, activation="tanh"), L.Dense(3, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=3e-3), loss="categorical_crossentropy",
                  metrics=["accuracy"])
    ours = round_trip(model, tmp_path, x)
    assert isinstance(ours, nncore.Sequential) and [layer.name for layer in ours.layers] == \
        [layer.name for layer in model.layers]
    assert type(ours.optimizer).__name__ == "Adam" and np.isclose(ours.optimizer.learning_rate, 3e-3)
    assert ours.layers[0].kernel_regularizer is not None
    # one step of the same batch: the same weights (the loss includes the L2 penalty on both sides)
    keras_loss = float(model.train_on_batch(x, y)[0])
    our_loss = ours.train_on_batch(x, y)
    our_loss = our_loss[0] if isinstance(our_loss, (list, tuple)) else our_loss
    assert np.isclose(our_loss, keras_loss, rtol=1e-5)
    for g, w in zip(ours.get_weights(), model.get_weights()):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def test_cnn_with_batchnorm_and_pooling(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(20, 10, 10, 2)).astype(np.float32)
    y = np.eye(4, dtype=np.float32)[rng.integers(0, 4, 20)]
    model = keras.Sequential([keras.Input((10, 10, 2)), L.Conv2D(6, 3, padding="same", activation="relu"),
                              L.BatchNormalization(momentum=0.9), L.MaxPooling2D(2), L.Conv2D(5, 3, strides=2),
                              L.BatchNormalization(center=False), L.Dropout(0.3), L.Flatten(),
                              L.Dense(4, activation="softmax")])
    model.compile("sgd", "categorical_crossentropy")
    model.fit(x, y, epochs=2, batch_size=5, verbose=0)      # moving statistics away from their start
    ours = round_trip(model, tmp_path, x)
    bn = ours.get_layer(model.layers[1].name)
    assert bn.momentum == 0.9 and not np.allclose(bn.moving_mean, 0)
    assert type(ours.optimizer).__name__ == "SGD"


def test_functional_residual_model_with_two_inputs_and_outputs(tmp_path):
    rng = np.random.default_rng(2)
    a, b = keras.Input((8, 8, 3), name="image"), keras.Input((4,), name="extra")
    h = L.Conv2D(3, 3, padding="same")(a)
    h = L.BatchNormalization()(h)
    h = L.Activation("relu")(L.Add()([h, a]))                # the residual connection
    h = L.GlobalAveragePooling2D()(h)
    z = L.Concatenate()([h, L.Dense(3, activation="gelu")(b)])
    cls = L.Dense(2, activation="softmax", name="cls")(z)
    reg = L.Dense(1, name="reg")(z)
    model = keras.Model([a, b], [cls, reg])
    model.compile("adam", loss=["categorical_crossentropy", "mse"], loss_weights=[1.0, 0.5])
    xa = rng.normal(size=(6, 8, 8, 3)).astype(np.float32)
    xb = rng.normal(size=(6, 4)).astype(np.float32)
    ours = round_trip(model, tmp_path, xa, xb)
    assert isinstance(ours, nncore.Model) and ours.output_names == ["cls", "reg"]


@pytest.mark.parametrize("rnn", ["lstm", "gru", "gru_reset_before", "simple", "bidirectional"])
def test_recurrent_layers_and_embedding(rnn, tmp_path):
    rng = np.random.default_rng(3)
    make = {"lstm": lambda: L.LSTM(5, return_sequences=True), "gru": lambda: L.GRU(5, go_backwards=True),
            "gru_reset_before": lambda: L.GRU(5, reset_after=False),
            "simple": lambda: L.SimpleRNN(5, activation="relu"),
            "bidirectional": lambda: L.Bidirectional(L.LSTM(4, return_sequences=True), merge_mode="sum")}[rnn]
    model = keras.Sequential([keras.Input((7,)), L.Embedding(11, 3), make(), L.Flatten(), L.Dense(2)])
    x = rng.integers(0, 11, (9, 7)).astype(np.float32)
    round_trip(model, tmp_path, x)


def test_float64_model(tmp_path):
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    model = keras.Sequential([keras.Input((3,)), L.Dense(4, activation="elu"), L.Dense(1)])
    path = os.path.join(tmp_path, "m.keras")
    model.save(path)
    ours = load_keras(path)
    assert ours.get_weights()[0].dtype == np.float64
    x = np.random.default_rng(4).normal(size=(5, 3))
    W1, b1, W2, b2 = (np.asarray(w, np.float64) for w in model.get_weights())
    z = x @ W1 + b1
    want = np.where(z > 0, z, np.expm1(np.minimum(z, 0))) @ W2 + b2      # elu, then the linear layer
    np.testing.assert_allclose(ours.predict(x, verbose=0), want, rtol=1e-12, atol=1e-14)


def test_refusals_name_the_layer_and_option(tmp_path):
    path = os.path.join(tmp_path, "m.keras")
    keras.Sequential([keras.Input((3,)), L.Dense(2, kernel_constraint=keras.constraints.MaxNorm(2.0))]).save(path)
    with pytest.raises(ValueError, match=r"layer 'dense.*kernel_constraint"):
        load_keras(path)
    keras.Sequential([keras.Input((3,)), L.UnitNormalization(name="unit")]).save(path)
    with pytest.raises(ValueError, match=r"layer 'unit' is a Keras UnitNormalization"):
        load_keras(path)
    keras.config.set_dtype_policy("mixed_float16")
    keras.Sequential([keras.Input((3,)), L.Dense(2)]).save(path)
    with pytest.raises(ValueError, match="mixed_float16"):
        load_keras(path)
    keras.config.set_dtype_policy("mixed_bfloat16")          # read, the Dense computing in bfloat16
    keras.Sequential([keras.Input((3,)), L.Dense(2)]).save(path)
    assert load_keras(path).layers[0].compute_dtype == "bfloat16"


def test_malformed_files_are_clear_errors(tmp_path):
    path = os.path.join(tmp_path, "m.keras")
    with open(path, "wb") as f:
        f.write(b"not a zip at all")
    with pytest.raises(ValueError, match="not a .keras archive"):
        load_keras(path)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("metadata.json", "{}")
    with pytest.raises(ValueError, match="no config.json"):
        load_keras(path)
    # weights that do not fit the architecture: the config says 3 units, the file holds 2
    good = os.path.join(tmp_path, "good.keras")
    keras.Sequential([keras.Input((3,)), L.Dense(2, name="d")]).save(good)
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(path, "w") as dst:
        cfg = json.loads(src.read("config.json"))
        cfg["config"]["layers"][1]["config"]["units"] = 3
        dst.writestr("config.json", json.dumps(cfg))
        dst.writestr("model.weights.h5", src.read("model.weights.h5"))
    with pytest.raises(ValueError, match=r"layer 'd' weight 0: the file holds shape \(3, 2\)"):
        load_keras(path)
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(path, "w") as dst:
        dst.writestr("config.json", src.read("config.json"))
        dst.writestr("model.weights.h5", b"garbage")
    with pytest.raises(ValueError, match="not an HDF5 file"):
        load_keras(path)
