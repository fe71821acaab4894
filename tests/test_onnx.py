"""ONNX export (nncore.onnx): ONNX Runtime's output against model.predict.

Every layer and activation, and a few whole models, exported and run by ONNX Runtime (one thread) on
random inputs of batch sizes 1, 7 and 64 through the one exported file (the batch axis is dynamic).
Agreement in float32: |ort - predict| <= 1e-5 (|predict| + max |predict|), i.e. 1e-5 relative to
the output's scale (elementwise relative error is meaningless where a sum cancels to ~0). The weights
are random and non-zero (biases included). Skipped without the onnx extra.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import nncore  # noqa: E402
from nncore import activations  # noqa: E402
from nncore import layers as L  # noqa: E402
from nncore import onnx as nx  # noqa: E402

BATCHES = (1, 7, 64)
RTOL = 1e-5


def _session(proto):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def _model(layer_list, input_shape, seed=0):
    """A Sequential of the layers with random weights of scale 0.5 (a plain list of layers, or one)."""
    layer_list = layer_list if isinstance(layer_list, list) else [layer_list]
    model = nncore.Sequential([L.Input(shape=input_shape)] + layer_list)
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(scale=0.5, size=w.shape) for w in model.get_weights()])
    return model


def _inputs(model, n, rng, scale=2.0):
    return (rng.standard_normal((n,) + tuple(model.input_shape[1:])) * scale).astype(model._dtype)


def assert_exports(model, batches=BATCHES, opset=None, rtol=RTOL, make_x=None):
    """Export `model`, run the file with ONNX Runtime at each batch size, compare with predict."""
    proto = nx.export(model, opset=opset)
    sess = _session(proto)
    rng = np.random.default_rng(1)
    for n in batches:
        x = make_x(n, rng) if make_x else _inputs(model, n, rng)
        ref = model.predict(x, verbose=0)
        out = sess.run(None, {"input": x})[0]
        assert out.dtype == ref.dtype and out.shape == ref.shape
        np.testing.assert_allclose(out, ref, rtol=rtol, atol=rtol * float(np.abs(ref).max()),
                                   err_msg=f"batch {n}")
    return proto


# ------------------------------------------------------------------------------------------ activations
ACTIVATIONS = sorted(set(activations._BY_NAME) - {"silu"})   # every name a layer accepts (silu is swish)


@pytest.mark.parametrize("act", ACTIVATIONS)
def test_dense_with_each_activation(act):
    assert_exports(_model(L.Dense(9, activation=act), (13,)))


@pytest.mark.parametrize("act", ACTIVATIONS)
def test_activation_layer_on_3d_inputs(act):
    # softmax over the last axis of a (batch, 5, 6) input
    assert_exports(_model(L.Activation(act), (5, 6)))


def test_activations_with_large_inputs():
    # where exp overflows in a naive formula: finite, and as predict to 1e-5 of the output's scale (ONNX
    # Runtime's sigmoid is 0 below about -17 where the exact value is < 4e-8)
    for act in ("softplus", "sigmoid", "elu", "selu", "softmax", "swish", "gelu", "hard_sigmoid"):
        model = _model(L.Activation(act), (8,))
        x = np.array([[-1e4, -90, -20, -3, 0, 3, 20, 90]], np.float32)
        out = _session(nx.export(model)).run(None, {"input": x})[0]
        ref = model.predict(x, verbose=0)
        assert np.isfinite(out).all(), act
        np.testing.assert_allclose(out, ref, rtol=RTOL, atol=RTOL * float(np.abs(ref).max()), err_msg=act)


@pytest.mark.parametrize("opset", [13, 21])
@pytest.mark.parametrize("approximate", [False, True])
def test_gelu_forms(opset, approximate):
    # the Gelu op (opset >= 20) and its erf / tanh formulas below; the tanh form through the builder
    g = nx._Graph(onnx, np.float32, opset)
    y = g.activation("gelu_tanh" if approximate else "gelu", 0.0, "x")
    h = onnx.helper
    graph = h.make_graph(g.nodes, "gelu", [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n"])],
                         [h.make_tensor_value_info(y, onnx.TensorProto.FLOAT, ["n"])], g.initializers)
    proto = h.make_model(graph, opset_imports=[h.make_opsetid("", opset)])
    onnx.checker.check_model(proto, full_check=True)
    x = np.linspace(-6, 6, 97, dtype=np.float32)
    out = _session(proto).run(None, {"x": x})[0]
    np.testing.assert_allclose(out, activations.gelu(x, approximate=approximate), rtol=RTOL, atol=1e-6)
    assert ("Gelu" in [n.op_type for n in g.nodes]) == (opset >= 20)


# ------------------------------------------------------------------------------------------ core layers
def test_dropout_is_identity_and_flatten():
    assert_exports(_model([L.Flatten(), L.Dropout(0.5), L.Dense(4, activation="relu"), L.Dropout(0.3)], (3, 4, 2)))


def test_dense_without_bias():
    assert_exports(_model(L.Dense(5, use_bias=False, activation="tanh"), (6,)))


def test_model_of_dropout_only_gets_an_identity_output():
    proto = assert_exports(_model(L.Dropout(0.2), (4,)))
    assert [n.op_type for n in proto.graph.node] == ["Identity"]


# ------------------------------------------------------------------------------------------ convolutions
# Conv2D geometries on a (batch, 9, 8, 2) input: (kernel, strides, dilation, padding, activation, use_bias);
# the 'same' cases with odd totals pad one more after than before, as Keras does
CONV2D = [(3, 1, 1, "valid", None, True), ((2, 3), 1, 1, "same", "relu", True), (3, 2, 1, "same", "tanh", True),
          ((3, 2), (3, 2), 1, "valid", None, True), ((2, 2), (1, 3), 1, "same", "sigmoid", True),
          (3, 1, (2, 1), "same", "gelu", True), (2, 1, 2, "valid", "softmax", False), (1, 1, 1, "valid", None, True),
          (4, 3, 1, "valid", "leaky_relu", True), (5, 2, 1, "same", "elu", False)]


@pytest.mark.parametrize("kw", [dict(zip(("kernel_size", "strides", "dilation_rate", "padding", "activation",
                                          "use_bias"), case)) for case in CONV2D],
                         ids=lambda kw: "-".join(str(v) for v in kw.values()))
def test_conv2d(kw):
    assert_exports(_model(L.Conv2D(3, **kw), (9, 8, 2)))


CONV1D = [
    dict(filters=3, kernel_size=3),
    dict(filters=2, kernel_size=4, padding="same", strides=2, activation="elu"),
    dict(filters=3, kernel_size=3, padding="causal", dilation_rate=2, activation="relu"),
    dict(filters=2, kernel_size=2, padding="causal", strides=3, activation="softmax"),
    dict(filters=4, kernel_size=1, use_bias=False),
]


@pytest.mark.parametrize("kw", CONV1D, ids=lambda kw: "-".join(f"{k}{v}" for k, v in kw.items()))
def test_conv1d(kw):
    assert_exports(_model(L.Conv1D(**kw), (11, 3)))


POOL = [dict(), dict(pool_size=3), dict(pool_size=2, strides=1), dict(pool_size=3, strides=2, padding="same"),
        dict(pool_size=2, padding="same")]


@pytest.mark.parametrize("cls", [L.MaxPooling2D, L.AveragePooling2D])
@pytest.mark.parametrize("kw", POOL, ids=lambda kw: "-".join(f"{k}{v}" for k, v in kw.items()) or "default")
def test_pooling2d(cls, kw):
    assert_exports(_model(cls(**kw), (7, 9, 3)))


@pytest.mark.parametrize("cls", [L.MaxPooling1D, L.AveragePooling1D])
@pytest.mark.parametrize("kw", POOL, ids=lambda kw: "-".join(f"{k}{v}" for k, v in kw.items()) or "default")
def test_pooling1d(cls, kw):
    assert_exports(_model(cls(**kw), (11, 3)))


@pytest.mark.parametrize("cls,shape", [(L.GlobalMaxPooling1D, (7, 3)), (L.GlobalAveragePooling1D, (7, 3)),
                                       (L.GlobalMaxPooling2D, (5, 6, 3)), (L.GlobalAveragePooling2D, (5, 6, 3))])
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("opset", [17, None])       # the Reduce ops' axes: an attribute, an input from 18
def test_global_pooling(cls, shape, keepdims, opset):
    assert_exports(_model(cls(keepdims=keepdims), shape), opset=opset)


# ------------------------------------------------------------------------------------------ recurrent
@pytest.mark.parametrize("cls", [L.SimpleRNN, L.LSTM, L.GRU])
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_recurrent(cls, return_sequences, go_backwards):
    model = _model(cls(5, return_sequences=return_sequences, go_backwards=go_backwards), (6, 4))
    assert_exports(model)


@pytest.mark.parametrize("cls", [L.SimpleRNN, L.LSTM, L.GRU])
@pytest.mark.parametrize("kw", [dict(activation="relu"), dict(activation="linear", use_bias=False),
                                dict(activation="softplus"), dict(activation="leaky_relu"), dict(activation="elu"),
                                dict(activation="hard_sigmoid"), dict(activation="sigmoid")],
                         ids=lambda kw: "-".join(f"{k}{v}" for k, v in kw.items()))
def test_recurrent_activations(cls, kw):
    if cls is not L.SimpleRNN:
        kw = dict(kw, recurrent_activation="hard_sigmoid")
    # small weights: relu/linear recurrences stay bounded over the steps
    model = _model(cls(4, return_sequences=True, **kw), (5, 3))
    rng = np.random.default_rng(2)
    model.set_weights([rng.normal(scale=0.3, size=w.shape) for w in model.get_weights()])
    assert_exports(model)


@pytest.mark.parametrize("cls", [L.SimpleRNN, L.LSTM, L.GRU])
@pytest.mark.parametrize("act", ["selu", "step"])
def test_recurrent_activation_onnx_lacks_is_a_clear_error(cls, act):
    model = _model(cls(3, activation=act), (4, 2))
    with pytest.raises(ValueError, match=rf"layer '{model.layers[0].name}' \({cls.__name__}\).*'{act}'"):
        nx.export(model)


def test_embedding():
    model = _model([L.Embedding(11, 4), L.Flatten(), L.Dense(3)], (6,))
    assert_exports(model, make_x=lambda n, rng: rng.integers(0, 11, (n, 6)).astype(np.float32))


def test_every_layer_class_has_a_converter():
    # a layer class added to nncore.layers needs its converter in nncore/onnx.py (register_converter)
    # (nncore's own classes: tests elsewhere register classes of their own). The merge layers wait for
    # the export of functional graphs (export takes Sequential models only, for now).
    from nncore.layers.merge import _Merge
    missing = sorted(name for name, cls in L._REGISTRY.items() if cls.__module__.startswith("nncore.")
                     and cls is not L.InputLayer and not issubclass(cls, _Merge) and cls not in nx._CONVERTERS)
    assert not missing, f"no ONNX converter for {missing}: add one in nncore/onnx.py"


# ------------------------------------------------------------------------------------------ whole models
def _fitted(model, x, y, loss):
    model.compile(optimizer="adam", loss=loss)
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    return model


def test_mlp_model():
    nncore.set_seed(3)
    rng = np.random.default_rng(3)
    model = nncore.Sequential([L.Input((20,)), L.Dense(32, activation="relu"), L.Dropout(0.2),
                               L.Dense(16, activation="gelu"), L.Dense(5, activation="softmax")])
    _fitted(model, rng.standard_normal((128, 20)), rng.integers(0, 5, 128), "sparse_categorical_crossentropy")
    assert_exports(model)


def test_cnn_model():
    nncore.set_seed(4)
    rng = np.random.default_rng(4)
    model = nncore.Sequential([L.Input((12, 12, 1)), L.Conv2D(6, 3, activation="relu"), L.MaxPooling2D(2),
                               L.Conv2D(8, 3, padding="same", activation="relu"), L.AveragePooling2D(2),
                               L.Flatten(), L.Dense(4, activation="softmax")])
    _fitted(model, rng.standard_normal((64, 12, 12, 1)), rng.integers(0, 4, 64), "sparse_categorical_crossentropy")
    assert_exports(model)


def test_lstm_model():
    nncore.set_seed(5)
    rng = np.random.default_rng(5)
    model = nncore.Sequential([L.Input((10, 6)), L.LSTM(12, return_sequences=True), L.GRU(8, go_backwards=True),
                               L.Dense(3, activation="softmax")])
    _fitted(model, rng.standard_normal((64, 10, 6)), rng.integers(0, 3, 64), "sparse_categorical_crossentropy")
    assert_exports(model)


def test_text_model():
    nncore.set_seed(6)
    model = _model([L.Embedding(50, 8), L.Conv1D(6, 3, activation="relu"), L.GlobalMaxPooling1D(),
                    L.Dense(1, activation="sigmoid")], (12,))
    assert_exports(model, make_x=lambda n, rng: rng.integers(0, 50, (n, 12)).astype(np.float32))


# ------------------------------------------------------------------------------------------ float64
# What ONNX Runtime runs in double (see nncore.onnx's docstring); the rest it refuses with NOT_IMPLEMENTED
DOUBLE_OK = [(L.Dense(4, activation=a), (5,)) for a in ("linear", "relu", "sigmoid", "tanh", "softmax")] + [
    (L.MaxPooling2D(2), (4, 4, 2)), (L.GlobalAveragePooling1D(), (5, 3)), (L.GlobalMaxPooling2D(), (3, 4, 2)),
    (L.Flatten(), (3, 2))]
DOUBLE_REFUSED = [(L.Dense(4, activation="elu"), (5,)), (L.Conv2D(2, 2), (4, 4, 1)),
                  (L.AveragePooling1D(), (6, 2))]


@pytest.mark.parametrize("i", range(len(DOUBLE_OK)))
def test_float64_where_onnxruntime_has_double_kernels(float64, i):
    layer, shape = DOUBLE_OK[i]
    model = _model(layer.__class__.from_config(layer.get_config()), shape)
    proto = assert_exports(model, rtol=1e-12)
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE


@pytest.mark.parametrize("i", range(len(DOUBLE_REFUSED)))
def test_float64_elsewhere_exports_but_onnxruntime_refuses_and_float32_cast_runs(float64, i):
    layer, shape = DOUBLE_REFUSED[i]
    model = _model(layer.__class__.from_config(layer.get_config()), shape)
    proto = nx.export(model)                 # a valid double graph (checked)
    with pytest.raises(Exception, match="NOT_IMPLEMENTED"):
        _session(proto)
    # the documented route: a float32 graph of the float64 model
    proto32 = nx.export(model, dtype="float32")
    x = _inputs(model, 7, np.random.default_rng(0))
    out = _session(proto32).run(None, {"input": x.astype(np.float32)})[0]
    ref = model.predict(x, verbose=0)
    np.testing.assert_allclose(out, ref, rtol=RTOL, atol=RTOL * float(np.abs(ref).max()))


def test_lstm_float64_runs_after_the_float32_cast(float64):
    model = _model(L.LSTM(3), (4, 2))
    proto = nx.export(model, dtype="float32")
    x = _inputs(model, 5, np.random.default_rng(0))
    out = _session(proto).run(None, {"input": x.astype(np.float32)})[0]
    np.testing.assert_allclose(out, model.predict(x, verbose=0), rtol=RTOL, atol=RTOL)


# ------------------------------------------------------------------------------------------ the file
def test_file_opset_batch_axis_and_metadata(tmp_path):
    model = _model([L.Dense(4, activation="relu"), L.Dense(2)], (3,))
    path = tmp_path / "m.onnx"
    nx.export(model, path)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", nx.DEFAULT_OPSET)]
    assert {p.key: p.value for p in proto.metadata_props}["opset"] == str(nx.DEFAULT_OPSET)
    assert proto.producer_name == "nncore" and proto.producer_version == nncore.__version__
    (inp,), (out,) = proto.graph.input, proto.graph.output
    assert inp.name == "input" and out.name == "output"
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert dims == ["batch", 3]
    assert [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim] == ["batch", 2]
    assert {i.name for i in proto.graph.initializer} == {f"{layer.name}/{w}" for layer in model.layers
                                                         for w in ("kernel", "bias")}
    assert not [f for f in os.listdir(tmp_path) if f != "m.onnx"]     # no temporary file left behind


def _opset_model():
    return _model([L.Conv2D(3, 3, padding="same", activation="gelu"), L.MaxPooling2D(), L.GlobalAveragePooling2D(),
                   L.Dense(4, activation="swish")], (6, 6, 2))


@pytest.mark.parametrize("opset", [13, 17, 18, 20, 21])     # 21: what onnxruntime 1.18 (the extra's oldest) runs
def test_opsets(opset):
    proto = assert_exports(_opset_model(), opset=opset)
    assert proto.opset_import[0].version == opset


def test_newest_opset_the_installed_onnx_knows_is_checked():
    top = onnx.defs.onnx_opset_version()
    assert nx.export(_opset_model(), opset=top).opset_import[0].version == top


@pytest.mark.parametrize("opset", [12, onnx.defs.onnx_opset_version() + 1, 17.0, "21", True])
def test_bad_opset(opset):
    with pytest.raises(ValueError, match="opset"):
        nx.export(_model(L.Dense(2), (3,)), opset=opset)


def test_bad_dtype():
    with pytest.raises(ValueError, match="dtype"):
        nx.export(_model(L.Dense(2), (3,)), dtype="float16")


def test_model_export_keras_spelling(tmp_path, capsys):
    model = _model([L.Dense(4, activation="relu")], (3,))
    path = str(tmp_path / "k.onnx")
    model.export(path, format="onnx", opset_version=17)
    assert f"Saved artifact at '{path}'" in capsys.readouterr().out
    proto = onnx.load(path)
    assert proto.opset_import[0].version == 17
    x = np.ones((2, 3), np.float32)
    np.testing.assert_allclose(_session(proto).run(None, {"input": x})[0], model.predict(x, verbose=0), rtol=RTOL)
    model.export(path, verbose=False)
    assert capsys.readouterr().out == ""
    with pytest.raises(ValueError, match="format must be 'onnx'"):
        model.export(path, format="tf_saved_model")


def test_unbuilt_model_is_an_error():
    with pytest.raises(ValueError, match="not built"):
        nx.export(nncore.Sequential([L.Dense(3)]))


def test_layer_without_converter_names_itself_and_register_converter_fixes_it():
    class Doubler(L.Layer):
        def forward(self, x, training=False):
            return 2 * x

    model = nncore.Sequential([L.Input((3,)), L.Dense(2), Doubler(name="twice")])
    with pytest.raises(ValueError, match=r"layer 'twice' \(Doubler\) cannot be exported.*register_converter"):
        nx.export(model)
    try:
        @nx.register_converter(Doubler)
        def _doubler(g, layer, x):
            return g.op("Mul", [x, g.weight(2.0, "two")])

        assert_exports(model)
    finally:
        nx._CONVERTERS.pop(Doubler)
    with pytest.raises(TypeError, match="Layer subclass"):
        nx.register_converter(int)


def test_import_nncore_does_not_import_onnx():
    code = "import sys, nncore, nncore.onnx; assert 'onnx' not in sys.modules, 'onnx imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_onnx_is_a_clear_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r"nncore\[onnx\]"):
        nx.export(_model(L.Dense(2), (3,)))


def test_weights_are_copied_at_export():
    model = _model(L.Dense(3), (2,))
    proto = nx.export(model)
    x = np.ones((1, 2), np.float32)
    before = model.predict(x, verbose=0)
    model.set_weights([w + 1 for w in model.get_weights()])
    np.testing.assert_allclose(_session(proto).run(None, {"input": x})[0], before, rtol=RTOL)
