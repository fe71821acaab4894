"""Layers: forward against float64 oracles, backward against central differences."""
import numpy as np
import pytest

import nncore
from nncore import activations
from nncore.layers import Activation, Dense, Dropout, Flatten, Input, Layer, get_layer_class, register_layer
from reference_layers import ACTIVATIONS, KINKS, dense_forward, numeric_grad

ACT_NAMES = sorted(ACTIVATIONS)


def _away_from_kinks(z, act):
    for k in KINKS.get(act, []):
        assert np.min(np.abs(z - k)) > 1e-4, "test data too close to a kink"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("act", ACT_NAMES)
@pytest.mark.parametrize("shape", [(1, 1, 1), (7, 13, 5), (33, 3, 17)])
def test_dense_forward_matches_oracle(dtype, act, shape):
    n, d_in, d_out = shape
    rng = np.random.default_rng(1)
    layer = Dense(d_out, activation=act)
    x = rng.normal(size=(n, d_in)).astype(dtype)
    nncore.set_floatx(dtype)
    try:
        y = layer(x)
    finally:
        nncore.set_floatx("float32")
    layer.set_weights([rng.normal(size=(d_in, d_out)), rng.normal(size=d_out)])
    y = layer(x)
    assert y.dtype == dtype and y.shape == (n, d_out)
    ref = dense_forward(x.astype(np.float64), layer.kernel.astype(np.float64), layer.bias.astype(np.float64), act)
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(y, ref, rtol=tol * 10, atol=tol)


@pytest.mark.parametrize("act", ACT_NAMES)
@pytest.mark.parametrize("use_bias", [True, False])
def test_dense_backward_finite_differences(float64, act, use_bias):
    # L = sum(y * r): dL/dy = r, so backward(r) must give dL/dx, dL/dW, dL/db
    rng = np.random.default_rng(2)
    n, d_in, d_out = 5, 4, 3
    layer = Dense(d_out, activation=act, use_bias=use_bias)
    x = rng.normal(size=(n, d_in))
    layer(x)
    W = layer.kernel
    W[...] = rng.normal(size=W.shape)
    if use_bias:
        layer.bias[...] = rng.normal(size=d_out)
    _away_from_kinks(x @ W + (layer.bias if use_bias else 0), act)
    r = rng.normal(size=(n, d_out))

    def loss():
        return float(np.sum(layer.forward(x, True) * r))

    layer.forward(x, True)
    dx = layer.backward(r).copy()
    dW = layer._grad_of["kernel"].copy()
    np.testing.assert_allclose(dW, numeric_grad(loss, W), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dx, numeric_grad(loss, x), rtol=1e-6, atol=1e-8)
    if use_bias:
        layer.forward(x, True)
        layer.backward(r)
        db = layer._grad_of["bias"].copy()
        np.testing.assert_allclose(db, numeric_grad(loss, layer.bias), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("act", ACT_NAMES)
@pytest.mark.parametrize("shape", [(6, 5), (2, 3, 4)])
def test_activation_layer_forward_and_gradient(float64, act, shape):
    rng = np.random.default_rng(3)
    x = rng.normal(size=shape) * 2
    _away_from_kinks(x, act)
    layer = Activation(act)
    y = layer(x)
    np.testing.assert_allclose(y, ACTIVATIONS[act](x), rtol=1e-12, atol=1e-14)
    r = rng.normal(size=shape)
    layer.forward(x, True)
    dx = layer.backward(r).copy()

    def loss():
        return float(np.sum(layer.forward(x, True) * r))

    np.testing.assert_allclose(dx, numeric_grad(loss, x), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", ACT_NAMES)
def test_activation_functions_match_oracle(name):
    x = np.linspace(-5, 5, 41)
    np.testing.assert_allclose(activations.get(name)(x), ACTIVATIONS[name](x), rtol=1e-12, atol=1e-14)


def test_activation_lookup():
    assert activations.get(None) is activations.linear
    assert activations.get("silu") is activations.swish
    assert activations.get(activations.relu) is activations.relu
    with pytest.raises(ValueError, match="unknown activation 'rleu'. Did you mean 'relu'"):
        activations.get("rleu")
    with pytest.raises(ValueError, match="custom callables"):
        Dense(3, activation=lambda x: x)
    np.testing.assert_allclose(activations.leaky_relu(np.array([-1.0]), negative_slope=0.1), [-0.1])
    np.testing.assert_allclose(activations.softmax(np.array([[1.0, 1.0]]), axis=0), [[1.0, 1.0]])


def test_dropout_inverted_and_only_in_training(float64):
    rate = 0.25
    layer = Dropout(rate, seed=7)
    x = np.ones((400, 50))
    np.testing.assert_array_equal(layer(x), x)                       # inference: identity
    y = layer.forward(x, training=True)
    kept = y != 0
    np.testing.assert_allclose(y[kept], 1 / (1 - rate))              # survivors scaled by 1/(1-rate)
    assert abs(kept.mean() - (1 - rate)) < 0.01
    r = np.arange(x.size, dtype=float).reshape(x.shape)
    dx = layer.backward(r)
    np.testing.assert_allclose(dx, r * kept / (1 - rate))            # same mask in backward
    a = Dropout(0.5, seed=3).forward(x, True).copy()
    b = Dropout(0.5, seed=3).forward(x, True).copy()
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="rate"):
        Dropout(1.0)


def test_flatten_roundtrip(float64):
    x = np.arange(24.0).reshape(2, 3, 4)
    layer = Flatten()
    y = layer(x)
    assert y.shape == (2, 12)
    layer.forward(x)
    assert layer.backward(np.ones((2, 12))).shape == (2, 3, 4)
    assert layer.compute_output_shape((None, 3, 4)) == (None, 12)


def test_dense_bad_inputs():
    layer = Dense(3, name="hidden")
    layer(np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"hidden.*\(batch, 4\).*\(2, 5\)"):
        layer(np.zeros((2, 5)))
    with pytest.raises(ValueError, match="units"):
        Dense(0)
    assert layer(np.zeros((2, 3, 4))).shape == (2, 3, 3)   # the last axis is what counts (as Keras)
    with pytest.raises(ValueError, match="expected inputs \\(batch, ..., features\\)"):
        Dense(2).build((None,))
    with pytest.raises(ValueError, match="initializer|unknown|glorot_nope"):
        Dense(2, kernel_initializer="glorot_nope")


def test_dense_config_and_registry():
    layer = Dense(4, activation="tanh", input_dim=3, name="d")
    cfg = layer.get_config()
    assert cfg["units"] == 4 and cfg["activation"] == "tanh" and cfg["batch_input_shape"] == [None, 3]
    clone = get_layer_class("Dense").from_config(cfg)
    assert clone.units == 4 and clone._batch_input_shape == (None, 3)
    with pytest.raises(ValueError, match="unknown layer class 'Conv9D'"):
        get_layer_class("Conv9D")

    @register_layer
    class Twice(Layer):
        def forward(self, x, training=False):
            return 2 * x

    assert get_layer_class("Twice") is Twice
    with pytest.raises(TypeError):
        register_layer(int)
    assert Input(shape=(3,)).shape == (None, 3)                        # a symbolic tensor (Keras 3)
    assert Input(shape=(3,)).node.layer._batch_input_shape == (None, 3)
    with pytest.raises(ValueError, match="shape"):
        Input()


def test_parameter_free_layers_keep_the_float_dtype():
    for layer in (Activation("tanh"), Dropout(0.5), Flatten()):
        assert layer(np.ones((2, 3), np.float64)).dtype == np.float64
        assert layer(np.ones((2, 3), np.float32)).dtype == np.float32
    assert Dense(2)(np.ones((2, 3), np.float64)).dtype == nncore.floatx()   # follows its parameters
