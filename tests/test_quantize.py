"""model.quantize("int8") and the int8 layers: every quantized layer against the NumPy integer reference
(tests/reference_int8.py) to the bit, the weights Keras's way, memory, save/load, the refusals and
errors, filters and configs, and the accuracy kept on the digits MLP (the CNN: tests/test_examples.py)."""
import copy
import pickle
import warnings

import numpy as np
import pytest

import nncore
import reference_int8 as ref
from nncore import quantizers
from nncore._config import SIMD_LEVELS
from nncore._kernels import runtime as _rt
from nncore._kernels import conv as _conv
from nncore._kernels import int8
from nncore.layers import (LSTM, Conv1D, Conv2D, Dense, Dropout, Embedding, Flatten, Input, MaxPooling2D,
                           SimpleRNN)
from nncore.models import Sequential
from nncore.saving import model_from_bytes, model_to_bytes


def _mlp(dtype="float32"):
    with nncore._config.using_floatx(dtype):
        nncore.set_seed(1)
        return Sequential([Input((30,)), Dense(24, activation="relu"), Dense(9, use_bias=False),
                           Dense(5, activation="softmax")])


def _weights_q(w):
    """Keras's per-output-channel weight quantization of a float kernel."""
    q, s = quantizers.abs_max_quantize(w.reshape(-1, w.shape[-1]), 0)
    return q.reshape(w.shape), s.reshape(-1)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_quantized_mlp_is_the_integer_reference(dtype):
    model = _mlp(dtype)
    floats = [layer.get_weights() for layer in model.layers]
    x = np.random.default_rng(0).standard_normal((77, 30)).astype(dtype)
    model.quantize("int8")
    # the reference, layer by layer: Keras's int8 Dense with 7-bit inputs
    h = x
    for layer, fw in zip(model.layers, floats):
        kernel, bias = fw[0], (fw[1] if layer.use_bias else None)
        q, s = _weights_q(kernel)
        np.testing.assert_array_equal(layer.kernel, q)
        np.testing.assert_array_equal(layer.kernel_scale, s)
        assert layer.kernel.dtype == np.int8 and layer.kernel_scale.dtype == dtype
        z = ref.int8_dense(h, q, s, bias, 63)
        if layer._act_name == "relu":
            h = np.maximum(z, 0)
        elif layer._act_name == "softmax":
            e = np.exp(z - z.max(axis=1, keepdims=True))
            h = e / e.sum(axis=1, keepdims=True)
        else:
            h = z
        h = h.astype(dtype)
        if layer._act_name != "softmax":
            np.testing.assert_array_equal(layer(x if layer is model.layers[0] else prev), h)
        prev = h
    y = model.predict(x, verbose=0)
    assert y.dtype == dtype
    np.testing.assert_allclose(y, h, rtol=1e-6 if dtype == "float32" else 1e-14, atol=1e-7)


def test_quantized_mlp_small_batches_every_call_path_same_bits():
    # model(x) and predict_on_batch (one Int8Layers call), predict of a few rows and of a batch (the
    # packed chain): the same bits as the layers one by one; weights set in place are used next call
    model = _mlp()
    model.quantize("int8")
    rng = np.random.default_rng(3)
    for m in (1, 2, 3, 7, 40):
        x = rng.standard_normal((m, 30)).astype(np.float32)
        h = x
        for layer in model.layers:
            h = layer(h)
        for y in (model(x), model.predict_on_batch(x), model.predict(x, verbose=0),
                  model.predict(x, batch_size=3, verbose=0)):
            np.testing.assert_array_equal(y, h, err_msg=f"batch {m}")
    x = rng.standard_normal((1, 30)).astype(np.float32)
    before = model(x)
    weights = model.get_weights()
    model.set_weights([w[::-1].copy() if w.dtype == np.int8 else w for w in weights])
    h = x
    for layer in model.layers:
        h = layer(h)
    np.testing.assert_array_equal(model(x), h)
    assert not np.array_equal(h, before)


def _layers_ref(model, x):
    h = x
    for layer in model.layers:
        h = layer(h)
    return h


def test_quantized_weights_are_read_only_and_packed_once_per_setting():
    # predict (the packed chain) packs nothing in steady state: each Dense keeps its packed kernel
    # from one setting of its weights to the next; a write that bypasses set_weights is refused or,
    # when the user made the array writeable by hand, seen by the next predict
    model = _mlp()
    model.quantize("int8")
    x = np.random.default_rng(4).standard_normal((64, 30)).astype(np.float32)
    dense = model.layers[0]
    for w in model.get_weights():
        assert w.flags.writeable                         # copies, the user's
    for layer in model.layers:                           # the bias (flat buffer) writeable, the held weights not
        held = {id(layer.kernel), id(layer.kernel_scale)}
        assert all(w.flags.writeable != (id(w) in held) for w in layer.weights)
    with pytest.raises(ValueError, match="read-only"):
        dense.kernel[0, 0] = 1
    with pytest.raises(ValueError, match="read-only"):
        dense.kernel_scale[0] = 1
    np.testing.assert_array_equal(model.predict(x, verbose=0), _layers_ref(model, x))
    packs = [dict(layer._int8_packs) for layer in model.layers]
    model.predict(x, verbose=0)
    assert all(layer._int8_packs.keys() == p.keys() and all(layer._int8_packs[k] is p[k] for k in p)
               for layer, p in zip(model.layers, packs))
    before = model.predict(x, verbose=0)
    weights = model.get_weights()
    model.set_weights([w[::-1].copy() if w.dtype == np.int8 else w for w in weights])    # Model.set_weights
    assert not dense.kernel.flags.writeable
    y = model.predict(x, verbose=0)
    np.testing.assert_array_equal(y, _layers_ref(model, x))
    assert not np.array_equal(y, before)
    dense.set_weights([w[:, ::-1].copy() if w.dtype == np.int8 else w for w in dense.get_weights()])   # the layer's
    np.testing.assert_array_equal(model.predict(x, verbose=0), _layers_ref(model, x))
    with pytest.raises(AttributeError, match="'kernel' cannot be replaced after build.*read-only.*set_weights"):
        dense.kernel = dense.kernel.copy()               # no array is put in a weight's place
    dense.kernel.flags.writeable = True                  # made writeable by hand, then written in place
    dense.kernel[:5] = -dense.kernel[:5]
    np.testing.assert_array_equal(model.predict(x, verbose=0), _layers_ref(model, x))
    assert not dense.kernel.flags.writeable
    model.set_weights(weights)
    np.testing.assert_array_equal(model.predict(x, verbose=0), before)
    kernels = set()
    try:
        for level in SIMD_LEVELS[:_rt.simd_level() + 1]:  # another kernel: packed for it (the softmax's
            nncore.set_simd_level(level)                 # bits are the level's)
            kernels.add(int8.kernel(dense._act_qmax))
            np.testing.assert_array_equal(model.predict(x, verbose=0), _layers_ref(model, x))
    finally:
        nncore.set_simd_level(None)
    assert set(dense._int8_packs) == kernels
    clone = copy.deepcopy(model)
    np.testing.assert_array_equal(clone.predict(x, verbose=0), before)
    loaded = model_from_bytes(model_to_bytes(model))
    assert not loaded.layers[0].kernel.flags.writeable
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), before)


def test_quantized_convolutions_are_the_integer_reference():
    nncore.set_seed(2)
    rng = np.random.default_rng(1)
    for layer, shape in [(Conv2D(6, 3, strides=2, padding="same", activation="relu"), (4, 9, 7, 3)),
                         (Conv2D(5, 1), (3, 5, 5, 4)),
                         (Conv1D(4, 3, padding="causal", dilation_rate=2), (2, 11, 3))]:
        x = rng.standard_normal(shape).astype(np.float32)
        layer(x)
        kernel, bias = layer.get_weights()
        layer.quantize("int8")
        q, s = _weights_q(kernel)
        np.testing.assert_array_equal(layer.kernel, q)
        # the patch rows of cols, each quantized as one input row
        k2 = q.reshape(-1, q.shape[-1])
        n = shape[0]
        if layer._direct:
            cols = x.reshape(-1, shape[-1])
        else:
            cols = np.empty((n * layer._out[0] * layer._out[1], k2.shape[0]), np.float32)
            _conv.im2col(layer._as4(x, n, *layer._hwc), cols, layer._win, layer._str, layer._dil, layer._pad,
                         layer._out, 1)
        z = ref.int8_dense(cols, k2, s, bias, 63)
        if layer._act_name == "relu":
            z = np.maximum(z, 0)
        np.testing.assert_array_equal(layer(x).reshape(z.shape), z)


def _cnn(c2=32):
    nncore.set_seed(3)
    return Sequential([Input((28, 28, 1)), Conv2D(c2, 3, activation="relu"),          # k = 9: the cnn row's
                       MaxPooling2D(2), Conv2D(64, 3, activation="relu"),             # k = 288, Winograd
                       Conv2D(64, 5, strides=2, activation="relu"),                   # k = 1600, im2col
                       Flatten(), Dense(10, activation="softmax")])


@pytest.fixture
def each_level():
    """Yields a function running a body at every SIMD level this CPU runs; the best level restored."""
    def run(body):
        for level in SIMD_LEVELS[:_rt.simd_level() + 1]:
            nncore.set_simd_level(level)
            body(level)
    yield run
    nncore.set_simd_level(None)


def test_model_quantize_picks_convolutions_by_their_cost_here(each_level):
    # without filters, a convolution is made int8 where its int8 form, on the int8 kernel of the SIMD level
    # in use, is predicted >= _INT8_MARGIN faster than the float32 path it takes (Winograd or im2col); Dense
    # always; the float layers keep their weights and outputs; filters take every layer
    from nncore.layers import conv

    x = np.random.default_rng(3).uniform(0, 1, (5, 28, 28, 1)).astype(np.float32)
    expect = {"generic": [0], "avx2": [3], "avx512": [2, 3]}   # the conv layers made int8 (and the Dense, 5)

    def body(level):
        model, float_model = _cnn(), _cnn()
        model.quantize("int8")
        convs = [i for i, layer in enumerate(float_model.layers) if isinstance(layer, Conv2D)]
        pays = [i for i in convs if conv.int8_gain(float_model.layers[i], 63) >= conv._INT8_MARGIN]
        assert pays == [i for i in convs if float_model.layers[i]._int8_pays(63)]
        assert model.quantized == [model.layers[i].name for i in pays + [5]]
        if int8.kernel(63) in ("avx2", "avx512vnni", "generic"):        # the kernels the table was fitted on
            assert pays == expect[level]
        for i in convs:
            if i not in pays:
                assert model.layers[i].kernel.dtype == np.float32
                np.testing.assert_array_equal(model.layers[i].kernel, float_model.layers[i].kernel)
        assert np.abs(model.predict(x, verbose=0) - float_model.predict(x, verbose=0)).max() < 0.02
        every = _cnn()
        every.quantize("int8", filters=lambda layer: True)
        assert every.quantized == [every.layers[i].name for i in convs + [5]]

    each_level(body)


def test_the_int8_rule_follows_the_kernel_and_the_float_path(each_level):
    # the 8-bit inputs' kernel at AVX2 (avx2-sign) is slower: the second conv's gain falls; Winograd's
    # float path is faster than im2col's: the same layer forced to im2col gains more from int8
    from nncore.layers import conv

    def body(level):
        layer = _cnn().layers[2]
        f32, i8 = conv.conv_costs(layer, 63)
        assert conv.int8_gain(layer, 63) == pytest.approx(f32 / i8)
        if level == "avx2":
            assert conv.int8_gain(layer, 127) < conv.int8_gain(layer, 63)
        layer._wino_ok = False
        assert conv.conv_costs(layer, 63)[0] > f32 and conv.conv_costs(layer, 63)[1] == i8

    each_level(body)
    seq = Sequential([Input((20, 8)), Conv1D(64, 8), Conv1D(4, 3)])    # k = 64 (n = 64) and 192 (n = 4)
    seq.quantize("int8")
    assert seq.quantized == [seq.layers[0].name]


def test_saved_model_keeps_the_convolutions_chosen(tmp_path, each_level):
    # what quantize chose at one level is what a loaded model runs at another
    path = str(tmp_path / "q.nnc")
    levels = SIMD_LEVELS[:_rt.simd_level() + 1]
    nncore.set_simd_level(levels[-1] if "avx2" not in levels else "avx2")
    model = _cnn()
    model.quantize("int8")
    model.save(path)
    x = np.random.default_rng(4).uniform(0, 1, (3, 28, 28, 1)).astype(np.float32)

    def body(level):
        other = nncore.load_model(path)
        assert other.quantized == model.quantized
        np.testing.assert_array_equal(other.predict(x, verbose=0), model.predict(x, verbose=0))

    each_level(body)


def test_quantized_embedding_is_keras():
    nncore.set_seed(3)
    layer = Embedding(40, 6)
    idx = np.random.default_rng(2).integers(0, 40, (5, 7))
    y0 = layer(idx)
    table = layer.get_weights()[0]
    layer.quantize("int8")
    q, s = quantizers.abs_max_quantize(table, -1)           # Keras: one scale per row
    assert [w.dtype for w in layer.get_weights()] == [np.int8, np.float32]
    np.testing.assert_array_equal(layer.embeddings, q)
    np.testing.assert_array_equal(layer.embeddings_scale, s[:, 0])
    np.testing.assert_array_equal(layer(idx), q[idx].astype(np.float32) / s[idx])
    assert np.abs(layer(idx) - y0).max() < 0.05 / 127 * 0.6
    with pytest.raises(ValueError, match="out of range"):
        layer(np.full((1, 7), 40))


def test_model_quantize_drops_the_float_kernels():
    nncore.set_seed(4)
    model = Sequential([Input((784,)), Dense(256, activation="relu"), Dense(128, activation="relu"),
                        Dense(10, activation="softmax")])
    float_bytes = sum(w.nbytes for w in model.weights)
    n = model.count_params()
    model.quantize("int8")
    int8_bytes = model._params.nbytes + sum(layer.kernel.nbytes + layer.kernel_scale.nbytes for layer in model.layers)
    assert model._params.size == 256 + 128 + 10                      # the biases only
    assert 0.25 <= int8_bytes / float_bytes < 0.26
    assert model.count_params() == n + 256 + 128 + 10                 # + the scales, as Keras counts
    assert [w.dtype.name for w in model.get_weights()] == ["float32", "int8", "float32"] * 3
    assert model.quantized == [layer.name for layer in model.layers]


def test_quantize_keeps_accuracy_on_digits():
    from nncore.__main__ import demo

    res = demo(epochs=20, verbose=0)
    assert res["accuracy"] > 0.95
    assert res["accuracy"] - res["int8_accuracy"] <= 0.005


def test_save_load_pickle_keep_the_int8_form(tmp_path):
    model = _mlp()
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    model.quantize("int8")
    x = np.random.default_rng(5).standard_normal((13, 30)).astype(np.float32)
    y = model.predict(x, verbose=0)
    path = str(tmp_path / "m.nnc")
    model.save(path)
    for other in (nncore.load_model(path), model_from_bytes(model_to_bytes(model)), pickle.loads(pickle.dumps(model)),
                  copy.deepcopy(model)):
        assert other.quantized == model.quantized
        assert [w.dtype for w in other.get_weights()] == [w.dtype for w in model.get_weights()]
        np.testing.assert_array_equal(other.predict(x, verbose=0), y)
        assert other.layers[0].get_config() == model.layers[0].get_config()
    fresh = Sequential.from_config(model.get_config())
    fresh.load_weights(path)
    np.testing.assert_array_equal(fresh.predict(x, verbose=0), y)
    with nncore._config.using_floatx("float64"):           # the file's dtype wins, as for float models
        assert nncore.load_model(path).predict(x, verbose=0).dtype == np.float32
    float_file = str(tmp_path / "f.nnc")
    _mlp().save(float_file)
    with pytest.raises(ValueError, match="weight arrays|shape"):
        fresh.load_weights(float_file)


def test_fit_refused_evaluate_allowed():
    model = _mlp()
    model.compile(optimizer="sgd", loss="categorical_crossentropy", metrics=["accuracy"])
    x = np.random.default_rng(6).standard_normal((20, 30)).astype(np.float32)
    t = np.eye(5)[np.arange(20) % 5]
    before = model.evaluate(x, t, verbose=0)
    model.quantize("int8")
    with pytest.raises(ValueError, match=r"quantized \(int8 layers .*inference only"):
        model.fit(x, t, verbose=0)
    after = model.evaluate(x, t, verbose=0)
    assert abs(after[0] - before[0]) < 0.05
    with pytest.raises(ValueError, match="quantized to int8 and runs inference only"):
        model.layers[0].backward_logits(np.zeros((20, 24), np.float32))


def test_quantize_errors_and_filters():
    with pytest.raises(ValueError, match="isn't built"):
        Sequential([Dense(3)]).quantize("int8")
    with pytest.raises(ValueError, match="isn't built"):
        Dense(3).quantize("int8")
    model = _mlp()
    with pytest.raises(ValueError, match=r"mode must be one of \['int8'\]"):
        model.quantize("int4")
    with pytest.raises(TypeError, match="Int8QuantizationConfig"):
        model.quantize("int8", config={"activation_range": 127})
    with pytest.raises(ValueError, match="filters must be"):
        model.quantize("int8", filters=3)
    model.quantize("int8", filters=r"^dense(_\d+)?$")           # a regex searched in the names, as Keras
    assert model.quantized == [layer.name for layer in model.layers]
    with pytest.raises(ValueError, match="already quantized"):
        model.layers[0].quantize("int8")
    model = _mlp()
    model.quantize("int8", filters=[model.layers[1].name])
    assert model.quantized == [model.layers[1].name]
    assert model.layers[0].kernel.dtype == np.float32
    model.quantize("int8", filters=lambda layer: layer.units == 5)
    assert model.quantized == [model.layers[1].name, model.layers[2].name]


def test_layers_without_an_int8_form_stay_float():
    nncore.set_seed(7)
    model = Sequential([Input((4, 3)), SimpleRNN(5, return_sequences=True), LSTM(4), Dropout(0.1), Dense(2)])
    x = np.random.default_rng(7).standard_normal((3, 4, 3)).astype(np.float32)
    with pytest.warns(UserWarning, match="has no int8 form and stays in float"):
        model.quantize("int8")
    assert model.quantized == [model.layers[-1].name]
    assert model.predict(x, verbose=0).shape == (3, 2)


def test_subclasses_are_not_quantized():
    class MyDense(Dense):
        pass

    nncore.set_seed(8)
    model = Sequential([Input((3,)), MyDense(2)])
    with pytest.warns(UserWarning, match="not subclasses"):
        model.quantize("int8")
    assert model.quantized == []


def test_configs():
    model = _mlp()
    x = np.random.default_rng(9).standard_normal((8, 30)).astype(np.float32)
    keras_range = quantizers.Int8QuantizationConfig(
        activation_quantizer=quantizers.AbsMaxQuantizer(value_range=(-127, 127)))
    model.quantize(config=keras_range)
    layer = model.layers[0]
    assert layer._act_qmax == 127
    assert layer.get_config()["quantization_config"]["activation_quantizer"]["value_range"] == [-127, 127]
    assert int8.kernel(127) != "avx2"                          # the u8 x s8 kernel is exact for |x| <= 63 only
    z = ref.int8_dense(x, layer.kernel, layer.kernel_scale, layer.bias, 127)
    np.testing.assert_array_equal(layer(x), np.maximum(z, 0))
    again = Sequential.from_config(model.get_config())
    assert again.layers[0]._act_qmax == 127
    narrow = quantizers.Int8QuantizationConfig(weight_quantizer=quantizers.AbsMaxQuantizer(value_range=(-100, 100)))
    model = _mlp()
    w = model.layers[0].get_weights()[0]
    model.quantize("int8", config=narrow)
    assert np.abs(model.layers[0].kernel).max() == 100
    np.testing.assert_array_equal(model.layers[0].kernel_scale, 100 / (np.abs(w).max(axis=0) + np.float32(1e-7)))
    for bad in [dict(value_range=(-5, 7)), dict(value_range=(-128, 128)), dict(output_dtype="int4")]:
        with pytest.raises(ValueError, match="value_range|output_dtype"):
            quantizers.AbsMaxQuantizer(**bad)
    with pytest.raises(ValueError, match="epsilon must be"):
        quantizers.Int8QuantizationConfig(activation_quantizer=quantizers.AbsMaxQuantizer(epsilon=1e-3))
    with pytest.raises(ValueError, match="activation_quantizer=None"):
        quantizers.Int8QuantizationConfig(activation_quantizer=None)
    with pytest.raises(ValueError, match="mode 'int4' does not match"):
        _mlp().quantize("int4", config=narrow)


def test_int8_layers_from_config_and_bad_weights():
    with pytest.raises(ValueError, match="int8 policy"):
        Dense(3, dtype="bfloat16")
    with pytest.raises(ValueError, match="without an int8 dtype"):
        Dense(3, quantization_config={"activation_quantizer": {"value_range": [-63, 63], "epsilon": 1e-7}})
    with pytest.raises(ValueError, match="quantization_config must be"):
        Dense(3, dtype="int8_from_float32", quantization_config={"x": 1})
    nncore.set_seed(10)
    model = Sequential([Input((6,)), Dense(4, dtype="int8_from_float32"), Embedding(5, 2, dtype="int8_from_float32")])
    weights = model.get_weights()
    assert [w.dtype.name for w in weights] == ["float32", "int8", "float32", "int8", "float32"]
    assert not weights[1].any() and (weights[2] == 1).all()     # as Keras builds them: zeros and ones
    with pytest.raises(ValueError, match="int8 weight takes integers"):
        model.set_weights([w.astype(np.float32) for w in weights])
    weights[1] = np.full((6, 4), 300, np.int64)
    with pytest.raises(ValueError, match=r"values in \[300, 300\]"):
        model.set_weights(weights)
    weights[1] = np.full((6, 4), -128, np.int64)                   # the whole int8 range is fine
    model.set_weights(weights)
    assert (model.layers[0].kernel == -128).all()
    with pytest.raises(ValueError, match="more than 132104"):
        Sequential([Input((133000,)), Dense(1, dtype="int8_from_float32")])


def test_cnn_with_pooling_and_dropout_predicts():
    nncore.set_seed(11)
    model = Sequential([Input((12, 12, 1)), Conv2D(4, 3, activation="relu"), MaxPooling2D(), Flatten(),
                        Dropout(0.3), Dense(3, activation="softmax")])
    x = np.random.default_rng(11).uniform(0, 1, (10, 12, 12, 1)).astype(np.float32)
    y0 = model.predict(x, verbose=0)
    model.quantize("int8")
    y1 = model.predict(x, verbose=0)
    assert np.abs(y1 - y0).max() < 0.02
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.predict(x[:1], verbose=0)


def test_quantized_dense_on_sequences_is_rowwise():
    # Dense on (batch, steps, features): every row of the last axis quantized on its own, as 2-D rows
    nncore.set_seed(4)
    model = Sequential([Input((6, 11)), Dense(7, activation="tanh"), Dense(3)])
    x = np.random.default_rng(4).standard_normal((5, 6, 11)).astype(np.float32)
    model.quantize("int8")
    first, second = model.layers
    want = ref.int8_dense(np.tanh(ref.int8_dense(x.reshape(-1, 11), first.kernel, first.kernel_scale, first.bias,
                                                 63)).astype(np.float32),
                          second.kernel, second.kernel_scale, second.bias, 63)
    y = model.predict(x, verbose=0)
    assert y.shape == (5, 6, 3)
    np.testing.assert_allclose(y.reshape(-1, 3), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(second(first(x)), y)


def test_functional_model_quantize():
    from nncore.layers import Concatenate
    from nncore.models import Model
    nncore.set_seed(5)
    a, b = Input((8,)), Input((5,))
    h = Concatenate()([Dense(6, activation="relu")(a), Dense(4)(b)])
    model = Model([a, b], Dense(2, activation="softmax")(h))
    xa = np.random.default_rng(5).standard_normal((9, 8)).astype(np.float32)
    xb = np.random.default_rng(6).standard_normal((9, 5)).astype(np.float32)
    y_float = model.predict([xa, xb], verbose=0)
    model.quantize("int8")
    dense = [layer for layer in model.layers if isinstance(layer, Dense)]
    assert sorted(model.quantized) == sorted(layer.name for layer in dense)
    assert all(layer.kernel.dtype == np.int8 for layer in dense)
    y = model.predict([xa, xb], verbose=0)
    np.testing.assert_allclose(y, y_float, atol=0.05)
    da, db, dc = dense
    h = np.concatenate([np.maximum(ref.int8_dense(xa, da.kernel, da.kernel_scale, da.bias, 63), 0),
                        ref.int8_dense(xb, db.kernel, db.kernel_scale, db.bias, 63)], axis=1).astype(np.float32)
    z = ref.int8_dense(h, dc.kernel, dc.kernel_scale, dc.bias, 63)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    np.testing.assert_allclose(y, e / e.sum(axis=1, keepdims=True), rtol=1e-5, atol=1e-7)
    again = model_from_bytes(model_to_bytes(model))
    np.testing.assert_array_equal(again.predict([xa, xb], verbose=0), y)
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    with pytest.raises(ValueError, match=r"quantized \(int8 layers .*inference only"):
        model.fit([xa, xb], y, epochs=1, verbose=0)


def test_no_array_is_put_in_a_quantized_layers_place():
    """The held int8 weights are not replaced (`_Weight`): an array put in a quantized layer's place
    (read-only already, as another layer's kernel) is refused, and predict is unchanged."""
    model = _mlp()
    model.quantize("int8")
    x = np.random.default_rng(9).standard_normal((64, 30)).astype(np.float32)
    first = model.layers[0]
    before = model.predict(x, verbose=0)
    other = first.kernel[::-1].copy()
    other.flags.writeable = False
    for attr, value in (("kernel", other), ("kernel_scale", first.kernel_scale * 2), ("bias", first.bias + 1)):
        with pytest.raises(AttributeError, match=f"layer '{first.name}' \\(Dense\\): its weight '{attr}' cannot be "
                                                 "replaced after build"):
            setattr(first, attr, value)
    np.testing.assert_array_equal(model.predict(x, verbose=0), before)
    np.testing.assert_array_equal(model(x), _layers_ref(model, x))
