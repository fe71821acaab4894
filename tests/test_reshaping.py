"""Reshaping and noise layers: forward against NumPy, float64 finite-difference gradients, views and
reused buffers, the noise statistics, saving with bit-identical resume, and clear errors."""
import numpy as np
import pytest

import nncore
from nncore import Sequential
from nncore.layers import (Conv1D, Conv2D, Cropping1D, Cropping2D, Dense, Dropout, Flatten, GaussianDropout,
                           GaussianNoise, Input, Permute, RepeatVector, Reshape, SpatialDropout1D, SpatialDropout2D,
                           UpSampling1D, UpSampling2D, ZeroPadding1D, ZeroPadding2D)
from reference_layers import check_layer_gradients

# (layer, input shape, NumPy reference of the forward pass)
CASES = [
    (lambda: Reshape((3, -1)), (2, 4, 3), lambda x: x.reshape(2, 3, 4)),
    (lambda: Reshape((12,)), (2, 2, 2, 3), lambda x: x.reshape(2, 12)),
    (lambda: Permute((2, 1)), (2, 3, 4), lambda x: x.transpose(0, 2, 1)),
    (lambda: Permute((3, 1, 2)), (2, 3, 4, 5), lambda x: x.transpose(0, 3, 1, 2)),
    (lambda: RepeatVector(3), (4, 5), lambda x: np.repeat(x[:, None, :], 3, axis=1)),
    (lambda: ZeroPadding1D(2), (2, 3, 4), lambda x: np.pad(x, ((0, 0), (2, 2), (0, 0)))),
    (lambda: ZeroPadding1D((0, 3)), (2, 3, 1), lambda x: np.pad(x, ((0, 0), (0, 3), (0, 0)))),
    (lambda: ZeroPadding2D(), (2, 3, 4, 2), lambda x: np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))),
    (lambda: ZeroPadding2D((2, 0)), (1, 3, 2, 3), lambda x: np.pad(x, ((0, 0), (2, 2), (0, 0), (0, 0)))),
    (lambda: ZeroPadding2D(((1, 0), (2, 3))), (2, 2, 3, 1), lambda x: np.pad(x, ((0, 0), (1, 0), (2, 3), (0, 0)))),
    (lambda: Cropping1D(), (2, 5, 3), lambda x: x[:, 1:-1]),
    (lambda: Cropping1D((2, 0)), (2, 5, 3), lambda x: x[:, 2:]),
    (lambda: Cropping2D(1), (2, 5, 4, 2), lambda x: x[:, 1:-1, 1:-1]),
    (lambda: Cropping2D(((0, 2), (1, 0))), (1, 5, 4, 3), lambda x: x[:, :-2, 1:]),
    (lambda: Cropping2D((1, 0)), (2, 4, 3, 1), lambda x: x[:, 1:-1, :]),
    (lambda: UpSampling1D(3), (2, 4, 3), lambda x: np.repeat(x, 3, axis=1)),
    (lambda: UpSampling2D(), (2, 3, 2, 3), lambda x: np.repeat(np.repeat(x, 2, axis=1), 2, axis=2)),
    (lambda: UpSampling2D((1, 3)), (1, 2, 3, 2), lambda x: np.repeat(x, 3, axis=2)),
]


@pytest.mark.parametrize("make,xshape,fn", CASES, ids=lambda v: str(v) if isinstance(v, tuple) else "")
def test_forward_and_gradients(float64, make, xshape, fn):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(xshape)
    layer = make()
    y = layer(x)
    np.testing.assert_array_equal(y, fn(x))
    assert y.shape == (xshape[0],) + layer.output_shape[1:]
    check_layer_gradients(make(), x, rng, params=())
    # in a model: the configs round-trip, and a float32 model keeps its dtype end to end
    m = Sequential([Input(xshape[1:]), make()])
    again = Sequential.from_config(m.get_config())
    assert again.output_shape == m.output_shape
    np.testing.assert_array_equal(again.predict(x, verbose=0), fn(x))


def test_reshape_is_a_view_and_the_others_reuse_their_buffers():
    x = np.arange(24.0).reshape(2, 3, 4)
    layer = Reshape((4, 3))
    layer(x)
    assert np.shares_memory(layer.forward(x), x) and np.shares_memory(layer.backward(layer.forward(x)), x)
    for layer in (Permute((2, 1)), ZeroPadding1D(1), Cropping1D(1), UpSampling1D(2)):
        layer(x)
        y1 = layer.forward(x, True)
        dx1 = layer.backward(y1)
        assert layer.forward(x + 1, True) is y1 and layer.backward(y1) is dx1
        # the border of a padded output / a cropped gradient stays zero across calls
        if isinstance(layer, (ZeroPadding1D, Cropping1D)):
            arr = y1 if isinstance(layer, ZeroPadding1D) else dx1
            assert np.all(arr[:, 0] == 0) and np.all(arr[:, -1] == 0)


def test_reshaping_layers_train_in_a_model():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(48, 6, 2)), rng.integers(0, 2, 48)
    nncore.set_seed(0)
    m = Sequential([Input((6, 2)), ZeroPadding1D(1), Conv1D(4, 3, activation="relu"), UpSampling1D(2), Cropping1D(2),
                    Permute((2, 1)), Reshape((-1,)), RepeatVector(2), Flatten(), Dense(1, activation="sigmoid")])
    m.compile(optimizer="adam", loss="binary_crossentropy")
    h = m.fit(x, y, epochs=5, batch_size=8, verbose=0).history
    assert h["loss"][-1] < h["loss"][0]


# ---------------------------------------------------------------------------------------------- noise
@pytest.mark.parametrize("make,xshape", [(lambda: SpatialDropout1D(0.5, seed=1), (4, 6, 5)),
                                         (lambda: SpatialDropout2D(0.3, seed=2), (3, 4, 5, 6)),
                                         (lambda: GaussianNoise(0.5, seed=3), (4, 5)),
                                         (lambda: GaussianDropout(0.4, seed=4), (3, 2, 7))])
def test_noise_layers_are_the_identity_in_inference_and_backprop_their_noise(float64, make, xshape):
    rng = np.random.default_rng(5)
    x = rng.standard_normal(xshape) + 3
    layer = make()
    assert layer(x) is not x and np.array_equal(layer(x), x)
    assert layer.forward(x, False) is x
    y = layer.forward(x, True).copy()
    assert not np.array_equal(y, x)
    dy = rng.standard_normal(xshape)
    dx = layer.backward(dy)
    if isinstance(layer, GaussianNoise):
        assert dx is dy                                   # dx = dy: the noise is added
    else:
        np.testing.assert_allclose(dx, dy * (y / x), rtol=1e-12, atol=1e-12)   # dx = dy * the noise


def test_spatial_dropout_drops_whole_channels():
    x = np.ones((200, 3, 4, 8), np.float32)
    y = SpatialDropout2D(0.25, seed=0).forward(x, True)
    # per (sample, channel) one value, 0 or 1 / (1 - rate), shared by every pixel
    assert np.all(y == y[:, :1, :1, :])
    assert set(np.unique(y)) == {0.0, np.float32(1 / 0.75)}
    assert abs((y[:, 0, 0, :] == 0).mean() - 0.25) < 0.03
    y1 = SpatialDropout1D(0.5, seed=0).forward(np.ones((100, 7, 4)), True)
    assert np.all(y1 == y1[:, :1, :]) and abs((y1 == 0).mean() - 0.5) < 0.1
    d = Dropout(0.5, noise_shape=(None, 1, 4), seed=1).forward(np.ones((50, 6, 4)), True)
    assert np.all(d == d[:, :1, :])


def test_gaussian_noise_statistics():
    x = np.zeros((400, 500))
    n = GaussianNoise(0.3, seed=0).forward(x, True)
    assert abs(n.mean()) < 0.01 and abs(n.std() - 0.3) < 0.01
    m = GaussianDropout(0.2, seed=0).forward(x + 1, True)
    assert abs(m.mean() - 1) < 0.01 and abs(m.std() - np.sqrt(0.2 / 0.8)) < 0.01


def test_resume_with_noise_layers_is_bit_identical(tmp_path):
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(40, 6, 6, 2)), rng.integers(0, 3, 40)
    nncore.set_seed(1)
    m = Sequential([Input((6, 6, 2)), GaussianNoise(0.1), Conv2D(3, 3, padding="same", activation="relu"),
                    SpatialDropout2D(0.2), ZeroPadding2D(1), Cropping2D(((1, 0), (0, 1))), UpSampling2D(),
                    Flatten(), GaussianDropout(0.2), Dense(3, activation="softmax")])
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    m.fit(x, y, epochs=1, batch_size=8, verbose=0)
    m.save(tmp_path / "m.nncore")
    again = nncore.load_model(tmp_path / "m.nncore")
    h1 = m.fit(x, y, epochs=2, batch_size=8, verbose=0, shuffle=False).history
    h2 = again.fit(x, y, epochs=2, batch_size=8, verbose=0, shuffle=False).history
    assert h1 == h2
    for a, b in zip(m.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_errors_name_the_layer_and_the_shapes():
    with pytest.raises(ValueError, match=r"'r' \(Reshape\): cannot reshape inputs of shape \(None, 4, 3\) \(12 values"):
        Sequential([Input((4, 3)), Reshape((5, -1), name="r")])
    with pytest.raises(ValueError, match="at most one -1"):
        Reshape((-1, -1))
    with pytest.raises(ValueError, match="permutation of 1..2"):
        Permute((1, 3))
    with pytest.raises(ValueError, match=r"dims \(2, 1\) need 3-D inputs, got shape \(None, 2, 3, 4\)"):
        Sequential([Input((2, 3, 4)), Permute((2, 1))])
    with pytest.raises(ValueError, match=r"RepeatVector\): expected 2-D inputs \(batch, features\)"):
        Sequential([Input((2, 3)), RepeatVector(2)])
    with pytest.raises(ValueError, match=r"Cropping1D\): cropping \(\(3, 3\),\) leaves nothing"):
        Sequential([Input((5, 2)), Cropping1D(3)])
    with pytest.raises(ValueError, match=r"ZeroPadding2D\): expected 4-D inputs \(batch, height, width, channels\)"):
        Sequential([Input((5, 2)), ZeroPadding2D()])
    with pytest.raises(ValueError, match="padding must be >= 0"):
        ZeroPadding1D(-1)
    with pytest.raises(ValueError, match="only interpolation='nearest'"):
        UpSampling2D(interpolation="bilinear")
    with pytest.raises(ValueError, match="only data_format='channels_last'"):
        ZeroPadding2D(data_format="channels_first")
    with pytest.raises(ValueError, match=r"SpatialDropout1D\): expected 3-D inputs"):
        Sequential([Input((5, 2, 2)), SpatialDropout1D(0.1)])
    with pytest.raises(ValueError, match="rate must be in"):
        GaussianDropout(1.0)
    with pytest.raises(ValueError, match="stddev must be"):
        GaussianNoise(-1)
    with pytest.raises(ValueError, match="does not broadcast"):
        Dropout(0.5, noise_shape=(None, 3)).forward(np.ones((2, 4)), True)
    layer = Permute((2, 1), name="p")
    layer(np.ones((2, 3, 4)))
    with pytest.raises(ValueError, match=r"'p' \(Permute\): expected input of shape \(batch, 3, 4\), got \(2, 4, 3\)"):
        layer(np.ones((2, 4, 3)))
