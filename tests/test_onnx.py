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
from graph_layers_common import Shift, Split  # noqa: E402

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


def _io_names(model):
    """The ONNX names of the model's inputs and outputs (a Sequential's: "input" and "output")."""
    if isinstance(model, nncore.Sequential):
        return ["input"], ["output"]
    return model.input_names, model.output_names


def _as_list(value):
    if isinstance(value, dict):
        return list(value.values())
    return list(value) if isinstance(value, list) else [value]


def assert_exports(model, batches=BATCHES, opset=None, rtol=RTOL, make_x=None):
    """Export `model`, run the file with ONNX Runtime at each batch size, compare each output with predict.
    make_x(n, rng) gives the input array (a list of them for several inputs); default: normal random."""
    proto = nx.export(model, opset=opset)
    sess = _session(proto)
    in_names, out_names = _io_names(model)
    assert [i.name for i in sess.get_inputs()] == in_names
    assert [o.name for o in sess.get_outputs()] == out_names
    rng = np.random.default_rng(1)
    for n in batches:
        if make_x:
            xs = _as_list(make_x(n, rng))
        else:
            xs = [(rng.standard_normal((n,) + t.shape[1:]) * 2.0).astype(model._dtype) for t in model.inputs]
        refs = _as_list(model.predict(xs[0] if len(xs) == 1 else xs, verbose=0))
        outs = sess.run(out_names, dict(zip(in_names, xs)))
        for name, out, ref in zip(out_names, outs, refs):
            assert out.dtype == ref.dtype and out.shape == ref.shape, name
            np.testing.assert_allclose(out, ref, rtol=rtol, atol=rtol * float(np.abs(ref).max()),
                                       err_msg=f"output {name!r}, batch {n}")
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


@pytest.mark.parametrize("cls", [L.SimpleRNN, L.LSTM, L.GRU])
@pytest.mark.parametrize("merge_mode", ["concat", "sum", "ave", "mul"])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_bidirectional(cls, merge_mode, return_sequences):
    model = _model([L.Bidirectional(cls(4, return_sequences=return_sequences, dropout=0.2), merge_mode=merge_mode)],
                   (6, 3))
    assert_exports(model)


@pytest.mark.parametrize("return_sequences", [False, True])
def test_gru_reset_before(return_sequences):
    assert_exports(_model(L.GRU(5, reset_after=False, return_sequences=return_sequences, recurrent_dropout=0.3),
                          (6, 4)))


def test_masks_reaching_a_recurrent_layer_and_states_are_clear_errors():
    # the mask passes through Dense to the LSTM, which would skip the masked steps
    for layers, shape, match in (([L.Masking(), L.Dense(3), L.LSTM(3)], (4, 2), r"\(LSTM\).*masked by layer 'masking"),
                                 ([L.Embedding(5, 2, mask_zero=True, name="emb"), L.Bidirectional(L.GRU(3))], (4,),
                                  r"\(Bidirectional\).*masked by layer 'emb'"),
                                 ([L.LSTM(3, stateful=True)], (4, 2), "stateful"),
                                 ([L.Bidirectional(L.LSTM(3), backward_layer=L.GRU(3, go_backwards=True))], (4, 2),
                                  "Bidirectional")):
        with pytest.raises(ValueError, match=match):
            nx.export(_model(layers, shape))


def test_masks_that_reach_no_recurrent_layer_export_their_values():
    # Masking's values (x times its mask); a mask that a layer drops (return_sequences=False, the
    # pooling) or that only reaches layers without use for it changes nothing downstream
    def padded(n, rng):
        x = rng.standard_normal((n, 6, 3)).astype(np.float32)
        x[:, 4:] = 0.0
        x[0, 1] = 0.0
        x[-1, 2, 1] = 0.0                                  # one zero feature: not a masked step
        return x
    assert_exports(_model([L.Masking(), L.Dense(4, activation="tanh")], (6, 3)), make_x=padded)
    assert_exports(_model([L.Masking(mask_value=0.5), L.Flatten()], (6, 3)),
                   make_x=lambda n, rng: np.where(rng.random((n, 6, 1)) < 0.4, 0.5,
                                                  rng.standard_normal((n, 6, 3))).astype(np.float32))
    x = nncore.Input((6,))
    e = L.Embedding(9, 4, mask_zero=True)(x)
    model = _randomized(nncore.Model(x, [L.Dense(2)(L.GlobalMaxPooling1D()(e)), e]))
    assert_exports(model, make_x=lambda n, rng: rng.integers(0, 9, (n, 6)).astype(np.float32))


@pytest.mark.parametrize("keepdims", [False, True])
def test_global_average_pooling_1d_after_a_mask_exports_the_masked_mean(keepdims):
    # the mean over the valid steps (Keras), 0 for a row without one; the mask made in the graph from
    # the indices (Embedding(mask_zero=True)) or the values (Masking), through a layer that passes it on
    def tokens(n, rng):
        x = rng.integers(0, 9, (n, 6)).astype(np.float32)
        x[0] = 0
        x[-1, 3:] = 0
        return x
    x = nncore.Input((6,))
    e = L.Embedding(9, 4, mask_zero=True)(x)
    pooled = L.GlobalAveragePooling1D(keepdims=keepdims)(L.Dense(3, activation="tanh")(e))
    assert_exports(_randomized(nncore.Model(x, [L.Dense(2)(pooled), e])), make_x=tokens)

    def padded(n, rng):
        v = rng.standard_normal((n, 6, 3)).astype(np.float32)
        v[:, 4:] = 0.0
        v[0] = 0.0
        return v
    assert_exports(_model([L.Masking(), L.GlobalAveragePooling1D(keepdims=keepdims)], (6, 3)), make_x=padded)


def test_dense_on_sequences():
    # Dense over the last axis of (batch, T, features): MatMul and Add, the activation over the last axis
    assert_exports(_model([L.LSTM(5, return_sequences=True), L.Dense(3, activation="softmax"),
                           L.Dense(2, use_bias=False)], (6, 4)))
    assert_exports(_model([L.Dense(3, activation="relu")], (2, 3, 4)))


@pytest.mark.parametrize("cls", [L.SimpleRNN, L.LSTM, L.GRU])
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_return_state_and_initial_state(cls, return_sequences, go_backwards):
    # an encoder's final states start a decoder (Keras's encoder-decoder): the ONNX op's Y_h (Y_c) and
    # its initial_h (initial_c)
    enc_in, dec_in = nncore.Input((5, 3)), nncore.Input((4, 2))
    encoder = cls(6, return_state=True, go_backwards=go_backwards, name="encoder")
    _, *states = encoder(enc_in)
    decoder = cls(6, return_sequences=return_sequences, return_state=True, name="decoder")
    y, *final = decoder(dec_in, initial_state=states)
    model = _randomized(nncore.Model([enc_in, dec_in], [L.Dense(2, name="head")(y)] + final), scale=0.4)
    assert len(model.outputs) == 1 + (2 if cls is L.LSTM else 1)
    assert_exports(model)


@pytest.mark.parametrize("cls", [L.SimpleRNN, L.LSTM, L.GRU])
@pytest.mark.parametrize("merge_mode", ["concat", None])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_bidirectional_states_and_both_outputs(cls, merge_mode, return_sequences):
    # merge_mode=None: both directions' outputs; return_state: the forward states, then the backward ones;
    # initial_state in the same order
    x = nncore.Input((5, 3))
    k = 2 if cls is L.LSTM else 1
    starts = [nncore.Input((4,)) for _ in range(2 * k)]
    bi = L.Bidirectional(cls(4, return_sequences=return_sequences, return_state=True), merge_mode=merge_mode)
    outs = bi(x, initial_state=starts)
    model = _randomized(nncore.Model([x] + starts, outs), scale=0.4)
    assert len(model.outputs) == (2 if merge_mode is None else 1) + 2 * k
    assert_exports(model)


def test_embedding():
    model = _model([L.Embedding(11, 4), L.Flatten(), L.Dense(3)], (6,))
    assert_exports(model, make_x=lambda n, rng: rng.integers(0, 11, (n, 6)).astype(np.float32))


@pytest.mark.parametrize("layers,shape", [
    ([L.BatchNormalization()], (6,)), ([L.Conv2D(3, 2), L.BatchNormalization(center=False)], (5, 4, 2)),
    ([L.BatchNormalization(scale=False)], (4, 3)), ([L.LayerNormalization()], (7,)),
    ([L.LayerNormalization(axis=[1, 2], center=False)], (3, 4)), ([L.LayerNormalization(scale=False)], (2, 3, 5)),
    ([L.Reshape((3, -1))], (4, 3)), ([L.Permute((3, 1, 2))], (2, 3, 4)), ([L.RepeatVector(3)], (5,)),
    ([L.ZeroPadding1D((1, 2))], (4, 3)), ([L.ZeroPadding2D(((1, 0), (2, 1)))], (3, 4, 2)),
    ([L.Cropping1D((1, 2))], (6, 3)), ([L.Cropping2D(((1, 0), (0, 2)))], (4, 5, 2)),
    ([L.UpSampling1D(3)], (4, 2)), ([L.UpSampling2D((2, 3))], (3, 2, 2)),
    ([L.SpatialDropout1D(0.5), L.GaussianNoise(1.0)], (4, 3)),
    ([L.SpatialDropout2D(0.5), L.GaussianDropout(0.5)], (3, 3, 2))], ids=lambda v: str(v))
def test_normalization_reshaping_and_noise_layers(layers, shape):
    model = _model(layers, shape)
    for layer in model.layers:            # moving statistics other than the initial ones, variances > 0
        if isinstance(layer, L.BatchNormalization):
            layer.moving_variance[...] = np.abs(layer.moving_variance) + 0.5
    assert_exports(model)


def test_every_layer_class_has_a_converter():
    # a layer class added to nncore.layers needs its converter in nncore/onnx.py (register_converter)
    # (nncore's own classes: tests elsewhere register classes of their own)
    missing = sorted(name for name, cls in L._REGISTRY.items() if cls.__module__.startswith("nncore.")
                     and cls is not L.InputLayer and cls not in nx._CONVERTERS)
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


# ------------------------------------------------------------------------------------------ functional models
def _randomized(model, seed=0, scale=0.5):
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(scale=scale, size=w.shape) for w in model.get_weights()])
    return model


def test_two_inputs_two_outputs_named_as_the_model():
    a, b = nncore.Input((6,), name="features"), nncore.Input((4,), name="extra")
    h = L.Concatenate()([L.Dense(5, activation="relu")(a), b])
    cls = L.Dense(3, activation="softmax", name="cls")(h)
    reg = L.Dense(1, name="reg")(h)
    proto = assert_exports(_randomized(nncore.Model([a, b], [cls, reg])))
    for value_info in list(proto.graph.input) + list(proto.graph.output):      # a dynamic batch axis each
        assert value_info.type.tensor_type.shape.dim[0].dim_param == "batch"
    assert [i.name for i in proto.graph.input] == ["features", "extra"]
    assert [o.name for o in proto.graph.output] == ["cls", "reg"]


def test_dict_inputs_and_outputs_take_their_keys():
    a, b = nncore.Input((3,)), nncore.Input((3,))
    d = L.Dense(2)
    model = _randomized(nncore.Model({"left": a, "right": b}, {"diff": L.Subtract()([d(a), d(b)]),
                                                               "both": L.Concatenate()([a, b])}))
    proto = assert_exports(model)
    assert [o.name for o in proto.graph.output] == ["diff", "both"]


def test_residual_block():
    nncore.set_seed(7)
    rng = np.random.default_rng(7)
    x = nncore.Input((8, 8, 3))
    h = L.Conv2D(4, 3, padding="same", activation="relu")(x)
    y = L.Conv2D(4, 3, padding="same")(h)
    y = L.Activation("relu")(L.Add()([h, y]))                                 # h + F(h)
    z = L.Dense(3, activation="softmax")(L.GlobalAveragePooling2D()(L.MaxPooling2D()(y)))
    model = nncore.Model(x, z)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(rng.standard_normal((32, 8, 8, 3)), rng.integers(0, 3, 32), epochs=1, batch_size=16, verbose=0)
    assert_exports(model)


def test_resnet_block_with_batch_normalization_after_a_fit():
    # conv -> BN -> relu -> conv -> BN, + the shortcut, relu; the moving statistics come from the fit
    nncore.set_seed(8)
    rng = np.random.default_rng(8)
    x = nncore.Input((6, 6, 3))
    h = L.Activation("relu")(L.BatchNormalization()(L.Conv2D(4, 3, padding="same", use_bias=False)(x)))
    h = L.BatchNormalization()(L.Conv2D(4, 3, padding="same", use_bias=False)(h))
    y = L.Activation("relu")(L.Add()([L.Conv2D(4, 1)(x), h]))
    z = L.Dense(2, activation="softmax")(L.LayerNormalization()(L.GlobalAveragePooling2D()(y)))
    model = nncore.Model(x, z)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(rng.standard_normal((48, 6, 6, 3)) + 1.0, rng.integers(0, 2, 48), epochs=2, batch_size=16,
              verbose=0)
    bn = [layer for layer in model.layers if isinstance(layer, L.BatchNormalization)]
    assert all(np.abs(layer.moving_mean).max() > 0 for layer in bn)         # statistics the export must use
    assert_exports(model)


def test_shared_normalization_and_reshaping_layers():
    # a shared BatchNormalization and LayerNormalization (one set of initializers for two nodes); the
    # reshaping layers, without weights, also at another shape (each node's own geometry)
    a, a2, b = nncore.Input((4, 5, 2)), nncore.Input((4, 5, 2)), nncore.Input((3, 3, 2))
    bn, ln = L.BatchNormalization(name="bn"), L.LayerNormalization(name="ln")
    pad, up, crop = L.ZeroPadding2D(((1, 0), (0, 2))), L.UpSampling2D((2, 1)), L.Cropping2D(((0, 1), (1, 0)))
    perm, flat = L.Permute((2, 1, 3)), L.Flatten()

    def reshaped(x):
        return perm(crop(up(pad(x))))
    fa, fa2, fb = flat(ln(reshaped(bn(a)))), flat(ln(reshaped(bn(a2)))), flat(reshaped(b))
    out = L.Reshape((-1, 2))(L.Concatenate()([fa, fa2, fb]))
    model = _randomized(nncore.Model([a, a2, b], [out, L.RepeatVector(2)(fb)]))
    bn.moving_variance[...] = np.abs(bn.moving_variance) + 0.5
    proto = assert_exports(model)
    assert sorted(i.name for i in proto.graph.initializer if i.name.split("/")[0] in ("bn", "ln")) == \
        ["bn/offset", "bn/scale", "ln/axes", "ln/beta", "ln/epsilon", "ln/gamma"]


def test_shared_layer_has_one_set_of_initializers_used_by_both_nodes():
    a, b = nncore.Input((5,)), nncore.Input((5,))
    shared = L.Dense(4, activation="tanh", name="shared")
    out = L.Dense(1, name="head")(L.Multiply()([shared(a), shared(b)]))
    proto = assert_exports(_randomized(nncore.Model([a, b], out)))
    assert sorted(i.name for i in proto.graph.initializer) == ["head/bias", "head/kernel", "shared/bias",
                                                               "shared/kernel"]
    gemms = [n for n in proto.graph.node if n.op_type == "Gemm" and n.input[1] == "shared/kernel"]
    assert len(gemms) == 2 and gemms[0].input[0] != gemms[1].input[0]


def test_shared_layers_on_inputs_of_other_shapes():
    # a layer without weights at a second shape runs as a copy built for that node (its own pads and
    # sizes): the pooling and the Flatten here; the Conv2D is shared by two inputs of one shape
    a, b, c = nncore.Input((7, 7, 2)), nncore.Input((4, 6, 2)), nncore.Input((4, 6, 2))
    conv = L.Conv2D(3, 2, padding="same", activation="relu")
    pool, flat = L.MaxPooling2D(3, strides=2, padding="same"), L.Flatten()
    out = L.Concatenate()([flat(pool(a)), flat(pool(conv(b))), flat(pool(conv(c)))])
    proto = assert_exports(_randomized(nncore.Model([a, b, c], out)))
    assert sum(n.op_type == "Conv" for n in proto.graph.node) == 2
    assert len([i for i in proto.graph.initializer if i.name.startswith(conv.name + "/")]) == 2


# (class, kwargs, input feature shapes): every merge layer, with 1, 2 and 3 inputs where it takes them
MERGES = [(L.Add, {}, [(4,), (4,)]), (L.Add, {}, [(2, 3)] * 3), (L.Add, {}, [(5,)]),
          (L.Subtract, {}, [(3, 4), (3, 4)]),
          (L.Multiply, {}, [(4,), (4,)]), (L.Multiply, {}, [(2, 3)] * 3), (L.Multiply, {}, [(5,)]),
          (L.Average, {}, [(4,), (4,)]), (L.Average, {}, [(2, 3)] * 3),
          (L.Maximum, {}, [(4,), (4,)]), (L.Maximum, {}, [(2, 3)] * 3),
          (L.Minimum, {}, [(4,), (4,)]), (L.Minimum, {}, [(2, 3)] * 3),
          (L.Concatenate, {}, [(3,), (2,)]), (L.Concatenate, dict(axis=1), [(2, 3), (4, 3), (1, 3)]),
          (L.Concatenate, dict(axis=-2), [(2, 3, 2), (2, 1, 2)]), (L.Concatenate, dict(axis=3), [(2, 1, 1), (2, 1, 3)]),
          (L.Dot, dict(axes=1), [(5,), (5,)]), (L.Dot, dict(axes=1, normalize=True), [(5,), (5,)]),
          (L.Dot, dict(axes=2), [(3, 4), (2, 4)]), (L.Dot, dict(axes=(1, 2)), [(3, 4), (2, 3)]),
          (L.Dot, dict(axes=(2, 1)), [(3, 4), (4,)]), (L.Dot, dict(axes=(-1, 1), normalize=True), [(3, 4), (4, 2)]),
          (L.Dot, dict(axes=(1, 3)), [(3, 2, 2), (2, 1, 3)]), (L.Dot, dict(axes=1, normalize=True), [(3, 2), (3, 4)])]


def _merge_model(cls, kw, shapes):
    inputs = [nncore.Input(s) for s in shapes]
    y = cls(**kw)(inputs)
    return nncore.Model(inputs, y)


@pytest.mark.parametrize("cls,kw,shapes", MERGES, ids=lambda v: getattr(v, "__name__", str(v)))
def test_merge_layers(cls, kw, shapes):
    assert_exports(_merge_model(cls, kw, shapes))


# Keras's broadcast: a lower-rank input gets axes of size 1 after the batch axis, then sizes equal or 1
BROADCASTS = [[(4,), (3, 4)], [(3, 4), (4,)], [(1, 4), (3, 4)], [(3, 1), (1, 4)], [(3, 4), (1,)],
              [(2, 3, 4), (4,), (3, 1)], [(2, 1, 4), (1, 3, 1), (2, 3, 4)], [(1,), (2, 3, 5)]]


@pytest.mark.parametrize("cls,shapes", [(cls, shapes) for cls in (L.Add, L.Multiply, L.Subtract, L.Average,
                                                                     L.Maximum, L.Minimum)
                                         for shapes in BROADCASTS if cls is not L.Subtract or len(shapes) == 2],
                         ids=lambda v: getattr(v, "__name__", str(v)))
def test_elementwise_merges_broadcast_as_keras(cls, shapes):
    assert_exports(_merge_model(cls, {}, shapes))


def test_dot_normalize_of_a_zero_vector():
    # ||x|| = 0: x r with r capped at 1 / eps gives 0, as the layer
    model = _merge_model(L.Dot, dict(axes=1, normalize=True), [(4,), (4,)])

    def make_x(n, rng):
        xs = [rng.standard_normal((n, 4)).astype(np.float32) for _ in range(2)]
        xs[0][0] = 0.0
        xs[1][-1] = 1e-9
        return xs
    assert_exports(model, make_x=make_x)


@pytest.mark.parametrize("i", range(len(MERGES)))
def test_merge_layers_in_float64(float64, i):
    # ONNX Runtime has double kernels for every op of the merge converters
    cls, kw, shapes = MERGES[i]
    proto = assert_exports(_merge_model(cls, kw, shapes), rtol=1e-12)
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE


@pytest.mark.parametrize("opset", [13, 17, 18, 21])     # Unsqueeze's axes an input from 13, the Reduce ops' from 18
def test_functional_model_at_each_opset(opset):
    a, b = nncore.Input((3, 4)), nncore.Input((4,))
    y = L.Dot(axes=(2, 1), normalize=True)([a, b])
    out = L.Add()([L.Multiply()([a, b]), L.Average()([a, L.Maximum()([a, b])])])
    proto = assert_exports(_randomized(nncore.Model([a, b], [y, L.Flatten()(out)])), opset=opset)
    assert proto.opset_import[0].version == opset


def test_an_output_that_feeds_other_layers_and_an_output_that_is_an_input():
    x = nncore.Input((4,), name="x")
    h = L.Dense(3, activation="relu", name="h")(x)
    out = L.Dense(2, name="out")(h)                                # h is an output and feeds out
    proto = assert_exports(_randomized(nncore.Model(x, [h, out, x])))
    assert [o.name for o in proto.graph.output] == ["h", "out", "x"]
    assert any(n.op_type == "Gemm" and n.input[0] == "h" for n in proto.graph.node)


def test_two_outputs_on_one_onnx_tensor():
    # Dropout is the identity in ONNX: both outputs are the Dense's tensor, the second through an Identity
    x = nncore.Input((4,))
    h = L.Dense(3, name="h")(x)
    proto = assert_exports(_randomized(nncore.Model(x, [h, L.Dropout(0.5, name="drop")(h)])))
    assert [o.name for o in proto.graph.output] == ["h", "drop"]
    assert [n.op_type for n in proto.graph.node] == ["Gemm", "Identity"]


def test_model_of_its_input_only():
    x = nncore.Input((3,))
    assert_exports(nncore.Model(x, x))


def test_layers_with_several_outputs_and_keyword_tensors(monkeypatch):
    def split(g, layer, x):
        n = layer.input_shape[-1]
        return [g.op("Slice", [x, g.ints([0], "starts"), g.ints([layer.k], "ends"), g.ints([1], "axes")]),
                g.op("Slice", [x, g.ints([layer.k], "starts"), g.ints([n], "ends"), g.ints([1], "axes")])]

    def shift(g, layer, x, shift):
        (s,) = shift
        return g.op("Add", [x, s])

    monkeypatch.setitem(nx._CONVERTERS, Split, split)
    monkeypatch.setitem(nx._CONVERTERS, Shift, shift)
    x, s = nncore.Input((5,)), nncore.Input((3,))
    first, rest = Split(2, name="split")(x)
    out = Shift(name="shift")(L.Dense(3)(rest), shift=s)
    model = _randomized(nncore.Model([x, s], [first, out, rest]))
    assert model.output_names == ["split", "shift", "split_1"]
    assert_exports(model)
    monkeypatch.setitem(nx._CONVERTERS, Split, lambda g, layer, x: split(g, layer, x)[0])
    with pytest.raises(ValueError, match=r"layer 'split' \(Split\).*expected a list of 2 tensor name"):
        nx.export(model)


def test_functional_errors_name_the_layer():
    class Doubler(L.Layer):
        def forward(self, x, training=False):
            return 2 * x

    a, b = nncore.Input((3,)), nncore.Input((3,))
    model = nncore.Model([a, b], L.Add(name="sum")([Doubler(name="twice")(a), b]))
    with pytest.raises(ValueError, match=r"layer 'twice' \(Doubler\) cannot be exported"):
        nx.export(model)
    x = nncore.Input((3,))
    clash = nncore.Model({"y": x}, {"y": L.Dense(2)(x)})
    with pytest.raises(ValueError, match="input and an output both named 'y'"):
        nx.export(clash)


def test_functional_model_export_keras_spelling(tmp_path):
    a, b = nncore.Input((3,)), nncore.Input((3,))
    model = _randomized(nncore.Model([a, b], L.Maximum()([L.Dense(2)(a), L.Dense(2)(b)])))
    path = str(tmp_path / "f.onnx")
    model.export(path, format="onnx", verbose=False)
    x = [np.ones((2, 3), np.float32), -np.ones((2, 3), np.float32)]
    sess = _session(onnx.load(path))
    np.testing.assert_allclose(sess.run(None, dict(zip(model.input_names, x)))[0], model.predict(x, verbose=0),
                               rtol=RTOL)


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


# ------------------------------------------------------------------------------------------ int8
def _int8_exports(model, make_x=None, opset=None, exact=True):
    """Quantize, export, run: ONNX Runtime gives predict's numbers to the bit (the same ops, Round half to
    even and MatMulInteger's exact int32 sums), up to the last activation's own rounding when not exact."""
    model.quantize("int8", filters=lambda layer: True)   # every layer, the short convolutions too
    proto = nx.export(model, opset=opset)
    ops = {n.op_type for n in proto.graph.node}
    assert "MatMulInteger" in ops or "Gather" in ops
    sess = _session(proto)
    rng = np.random.default_rng(2)
    for n in BATCHES:
        x = make_x(n, rng) if make_x else _inputs(model, n, rng)
        ref = model.predict(x, verbose=0)
        out = sess.run(None, {"input": x})[0]
        if exact:
            np.testing.assert_array_equal(out, ref, err_msg=f"batch {n}")
        else:
            np.testing.assert_allclose(out, ref, rtol=RTOL, atol=RTOL * float(np.abs(ref).max()))
    return proto


@pytest.mark.parametrize("act", ["linear", "relu", "tanh", "sigmoid", "softmax"])
@pytest.mark.parametrize("opset", [13, None])
def test_int8_dense(act, opset):
    _int8_exports(_model([L.Dense(9, activation=act), L.Dense(4, use_bias=False)], (13,)), opset=opset,
                  exact=act in ("linear", "relu"))


@pytest.mark.parametrize("kw", [dict(zip(("kernel_size", "strides", "dilation_rate", "padding", "activation",
                                          "use_bias"), case)) for case in CONV2D],
                         ids=lambda kw: "-".join(str(v) for v in kw.values()))
def test_int8_conv2d(kw):
    _int8_exports(_model(L.Conv2D(3, **kw), (9, 8, 2)), exact=kw["activation"] in (None, "relu"))


@pytest.mark.parametrize("kw", CONV1D, ids=lambda kw: "-".join(f"{k}{v}" for k, v in kw.items()))
def test_int8_conv1d(kw):
    _int8_exports(_model(L.Conv1D(**kw), (11, 3)), exact=kw.get("activation") in (None, "relu"))


def test_int8_default_selection_cnn_exports():
    # model.quantize's default leaves the short-patch first conv float (Conv; k = 9), the second (k = 400,
    # 64 filters: int8 at AVX2 and VNNI) and the Dense int8 (MatMulInteger): ONNX Runtime gives predict's
    # numbers (the float conv to rounding)
    model = _model([L.Conv2D(16, 3, activation="relu"), L.MaxPooling2D(2), L.Conv2D(64, 5, activation="relu"),
                    L.Flatten(), L.Dense(4)], (12, 12, 1))
    model.quantize("int8")
    assert model.quantized == [layer.name for layer in model.layers[2:] if getattr(layer, "_int8_pays", None)
                               and layer._int8_pays(63)]
    assert model.layers[4].name in model.quantized
    assert model.layers[0].quantization_mode is None
    proto = nx.export(model)
    assert {"Conv", "MatMulInteger"} <= {n.op_type for n in proto.graph.node}
    x = _inputs(model, 5, np.random.default_rng(3))
    np.testing.assert_allclose(_session(proto).run(None, {"input": x})[0], model.predict(x, verbose=0), rtol=RTOL,
                               atol=1e-4)


def test_int8_embedding_and_cnn(float64):
    nncore.set_floatx("float32")
    _int8_exports(_model([L.Embedding(11, 4), L.Flatten(), L.Dense(3)], (6,)),
                  make_x=lambda n, rng: rng.integers(0, 11, (n, 6)).astype(np.float32))
    _int8_exports(_model([L.Conv2D(6, 3, activation="relu"), L.MaxPooling2D(2), L.Conv2D(8, 3, padding="same"),
                          L.Flatten(), L.Dense(4, activation="relu")], (12, 12, 1)))
    nncore.set_floatx("float64")      # float64: ONNX Runtime has every op in double, to the bit as well
    _int8_exports(_model([L.Dense(7, activation="relu"), L.Dense(3)], (10,)))


def test_int8_dense_on_sequences():
    # (batch, steps, features): each row of the last axis quantized on its own, MatMulInteger batched
    _int8_exports(_model([L.Dense(5, activation="relu"), L.Dense(3)], (4, 6)))
