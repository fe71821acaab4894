"""quantize("int8") against the real Keras 3 (torch backend), float32: the same int8 kernels and
scales from the same float weights, and the same outputs, to the bit, with Keras's input range
(-127, 127) and with nncore's default (-63, 63) (Keras given it through its own config)."""
from keras_parity_common import keras, nncore, pytestmark  # noqa: F401  (first: sets the backend)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from nncore import quantizers  # noqa: E402
from nncore._config import using_floatx  # noqa: E402
from nncore.layers import Dense, Embedding, Input  # noqa: E402
from nncore.models import Sequential  # noqa: E402


def _keras_config(q):
    return keras.quantizers.Int8QuantizationConfig(
        activation_quantizer=keras.quantizers.AbsMaxQuantizer(axis=-1, value_range=(-q, q)))


def _nncore_config(q):
    return quantizers.Int8QuantizationConfig(activation_quantizer=quantizers.AbsMaxQuantizer(value_range=(-q, q)))


@pytest.mark.parametrize("q", [127, 63])
@pytest.mark.parametrize("activation,use_bias", [("relu", True), (None, False), ("linear", True)])
def test_dense_int8_is_keras(q, activation, use_bias):
    rng = np.random.default_rng(q)
    k, n = 67, 19
    W = rng.standard_normal((k, n)).astype(np.float32) * 0.3
    b = rng.standard_normal(n).astype(np.float32)
    x = (rng.standard_normal((41, k)) * rng.uniform(0.01, 10, (41, 1))).astype(np.float32)
    kl = keras.layers.Dense(n, activation=activation, use_bias=use_bias, dtype="float32")
    kl.build((None, k))
    kl.set_weights([W, b] if use_bias else [W])
    kl.quantize("int8", config=_keras_config(q))
    with using_floatx("float32"):
        model = Sequential([Input((k,)), Dense(n, activation=activation, use_bias=use_bias)])
    model.set_weights([W, b] if use_bias else [W])
    model.quantize("int8", config=_nncore_config(q))
    layer = model.layers[0]
    np.testing.assert_array_equal(layer.kernel, np.asarray(kl._kernel))
    np.testing.assert_array_equal(layer.kernel_scale, np.asarray(kl.kernel_scale))
    assert [w.shape for w in layer.get_weights()] == [tuple(w.shape) for w in kl.weights]
    np.testing.assert_array_equal(model.predict(x, verbose=0), keras.ops.convert_to_numpy(kl(x)))


def test_keras_default_range_is_127():
    """nncore's default differs from Keras's on purpose (7-bit inputs, nncore.quantizers); with Keras's
    default layer quantize the numbers are the (-127, 127) ones above."""
    kl = keras.layers.Dense(3, dtype="float32")
    kl.build((None, 4))
    kl.quantize("int8")
    assert kl.inputs_quantizer.value_range == (-127, 127)
    assert quantizers.DEFAULT_ACTIVATION_RANGE == 63


def test_embedding_int8_is_keras():
    rng = np.random.default_rng(0)
    E = rng.uniform(-0.05, 0.05, (23, 5)).astype(np.float32)
    idx = rng.integers(0, 23, (6, 4))
    ke = keras.layers.Embedding(23, 5, dtype="float32")
    ke.build((None, 4))
    ke.set_weights([E])
    ke.quantize("int8")
    with using_floatx("float32"):
        model = Sequential([Input((4,)), Embedding(23, 5)])
    model.set_weights([E])
    model.quantize("int8")
    layer = model.layers[0]
    np.testing.assert_array_equal(layer.embeddings, np.asarray(ke._embeddings))
    np.testing.assert_array_equal(layer.embeddings_scale, np.asarray(ke.embeddings_scale))
    np.testing.assert_array_equal(model.predict(idx, verbose=0), keras.ops.convert_to_numpy(ke(idx)))
