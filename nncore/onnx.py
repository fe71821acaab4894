"""Export nncore models to ONNX, for ONNX Runtime and the other runtimes that read it.

``nncore.onnx.export(model, "model.onnx")`` or ``model.export("model.onnx", format="onnx")`` (Keras 3's
spelling). Needs the ``onnx`` package (``pip install "nncore[onnx]"``, which also brings onnxruntime);
it is imported here only, when a model is exported, never by ``import nncore``.

Mechanism: one converter per layer class in a table (`register_converter`). A converter gets the graph
builder, the layer and the names of its input tensors; it adds the layer's nodes and its weights (as
initializers, converted to ONNX's layouts once, here) and returns the name of its output tensor. The
model's converter chains them from the graph input ``"input"`` (batch axis named ``"batch"``, dynamic)
to the output ``"output"``. Tensors between layers keep nncore's channels-last layout; the ops that
ONNX defines channels-first (Conv, MaxPool, AveragePool) get a Transpose on each side, which ONNX
Runtime cancels between consecutive such layers.

Layers and their ONNX ops:

- Dense: Gemm, then its activation; Activation: the activation; Dropout: nothing (inference);
  Flatten: Flatten(axis=1).
- Conv1D, Conv2D: Transpose, Conv (kernel (k..., c, f) stored as (f, c, k...); padding 'same' and
  'causal' as explicit pads, computed as Keras does), the activation (softmax over the channels),
  Transpose. Max/AveragePooling1D/2D: Transpose, MaxPool / AveragePool (count_include_pad=0: the
  padding of 'same' never enters a mean, as in Keras), Transpose. The global poolings: ReduceMax /
  ReduceMean over the spatial axes.
- SimpleRNN, LSTM, GRU: Transpose to time-major, the RNN / LSTM / GRU op (Keras's LSTM gate blocks
  i, f, c, o reordered to ONNX's i, o, f, c; GRU's z, r, h are ONNX's order; reset_after=True is
  ``linear_before_reset=1``), ``direction="reverse"`` for go_backwards (the returned sequence flipped
  back into Keras's processing order), Squeeze and Transpose back.
- Embedding: Cast to int64 (truncation, as the layer casts), Gather.

Activations: relu, sigmoid, tanh, softmax, leaky_relu (its alpha), elu (its alpha), selu, softplus,
hard_sigmoid (Keras 3: relu6(x + 3) / 6 = HardSigmoid(alpha=1/6, beta=1/2)), gelu (the Gelu op from
opset 20, x (1 + erf(x / sqrt 2)) / 2 below), swish/silu (x sigmoid(x)), step (x >= 0), linear. Inside
the recurrent ops ONNX has no Selu and no step: such a recurrent layer raises a ValueError.

dtype: the graph has the model's dtype unless ``dtype=`` says otherwise. ONNX Runtime (1.18-1.32) runs
in float64 only Gemm, MatMul, Relu, Sigmoid, Tanh, Softmax, Exp, MaxPool, the Reduce ops, Transpose,
Flatten and Gather: a float64 model with other layers exports a valid ONNX file that ONNX Runtime
refuses (NOT_IMPLEMENTED). Export such a model with ``dtype="float32"`` (weights rounded to float32).
"""
import math
import os

import numpy as np

from nncore import layers as L

__all__ = ["export", "register_converter", "DEFAULT_OPSET", "MIN_OPSET"]

# Opset 21 (onnx 1.16, onnxruntime 1.18, the oldest the `onnx` extra allows) has every op used here,
# Gelu included. 13 is the oldest accepted: Softmax over one axis and Squeeze's axes as an input.
DEFAULT_OPSET = 21
MIN_OPSET = 13

_CONVERTERS = {}


def register_converter(layer_class):
    """Register ``fn(g, layer, *inputs) -> output name`` as the ONNX converter of `layer_class`.

    Use as a decorator: ``@register_converter(MyLayer)``. `g` is the graph builder (`op`, `weight`,
    `ints`, `activation`, `dtype`, `opset`); `inputs` are the names of the layer's input tensors.
    The lookup is by exact class, so a subclass (which may compute something else) needs its own.
    """
    if not (isinstance(layer_class, type) and issubclass(layer_class, L.Layer)):
        raise TypeError(f"register_converter: expected a Layer subclass, got {layer_class!r}")

    def deco(fn):
        _CONVERTERS[layer_class] = fn
        return fn
    return deco


def _onnx():
    try:
        import onnx
    except ImportError:
        raise ImportError("nncore.onnx needs the 'onnx' package: pip install \"nncore[onnx]\" "
                          "(onnx and onnxruntime)") from None
    return onnx


class _Graph:
    """Collects the nodes and initializers of one ONNX graph, with unique tensor names."""

    def __init__(self, onnx, dtype, opset):
        self.onnx, self.helper = onnx, onnx.helper
        self.dtype, self.opset = np.dtype(dtype), opset
        self.elem = onnx.helper.np_dtype_to_tensor_dtype(self.dtype)
        self.nodes, self.initializers, self._used = [], [], {"output"}   # "output": the graph's, at the end
        self.scope = ""                     # the layer being converted: prefixes names

    def name(self, hint):
        base = f"{self.scope}/{hint}" if self.scope else hint
        name, k = base, 1
        while name in self._used:
            name, k = f"{base}_{k}", k + 1
        self._used.add(name)
        return name

    def weight(self, array, hint):
        """A float initializer in the graph's dtype; returns its name."""
        name = self.name(hint)
        data = np.ascontiguousarray(np.asarray(array, dtype=self.dtype))
        self.initializers.append(self.onnx.numpy_helper.from_array(data, name))
        return name

    def ints(self, values, hint):
        """An int64 initializer (axes, shapes, slice bounds); returns its name."""
        name = self.name(hint)
        self.initializers.append(self.onnx.numpy_helper.from_array(np.asarray(values, np.int64), name))
        return name

    def op(self, op_type, inputs, n_out=1, **attrs):
        """Add one node; returns its output name (a list of names when n_out > 1)."""
        outs = [self.name(op_type) for _ in range(n_out)]
        self.nodes.append(self.helper.make_node(op_type, list(inputs), outs, name=self.name(op_type + "_node"),
                                                **attrs))
        return outs[0] if n_out == 1 else outs

    def transpose(self, x, perm):
        return self.op("Transpose", [x], perm=list(perm))

    def reduce(self, op_type, x, axes, keepdims):
        # the axes became an input in opset 18
        if self.opset >= 18:
            return self.op(op_type, [x, self.ints(axes, "axes")], keepdims=int(keepdims))
        return self.op(op_type, [x], axes=list(axes), keepdims=int(keepdims))

    def activation(self, name, alpha, x, axis=-1):
        """y = f(x) for an nncore activation name (softmax over `axis`)."""
        if name == "linear":
            return x
        if name in _ELEMENTWISE:
            op_type, attrs = _ELEMENTWISE[name](alpha)
            return self.op(op_type, [x], **attrs)
        if name == "softmax":
            return self.op("Softmax", [x], axis=axis)
        if name == "swish":                  # x sigmoid(x)
            return self.op("Mul", [x, self.op("Sigmoid", [x])])
        if name == "step":                   # 1 where x >= 0, else 0 (NaN: 0)
            return self.op("Cast", [self.op("GreaterOrEqual", [x, self.weight(0.0, "zero")])], to=self.elem)
        if name in ("gelu", "gelu_tanh"):
            approximate = "tanh" if name == "gelu_tanh" else "none"
            if self.opset >= 20:
                return self.op("Gelu", [x], approximate=approximate)
            return self._gelu(x, approximate)
        raise ValueError(f"activation {name!r} has no ONNX converter")

    def _gelu(self, x, approximate):
        # y = x (1 + erf(x / sqrt 2)) / 2, or x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))) / 2
        if approximate == "none":
            inner = self.op("Erf", [self.op("Mul", [x, self.weight(1 / math.sqrt(2), "inv_sqrt2")])])
        else:
            x3 = self.op("Mul", [self.op("Mul", [x, x]), x])
            u = self.op("Add", [x, self.op("Mul", [x3, self.weight(0.044715, "c")])])
            inner = self.op("Tanh", [self.op("Mul", [u, self.weight(math.sqrt(2 / math.pi), "sqrt_2_over_pi")])])
        half_x = self.op("Mul", [x, self.weight(0.5, "half")])
        return self.op("Mul", [half_x, self.op("Add", [inner, self.weight(1.0, "one")])])


# the activations that are one ONNX op: name -> alpha -> (op type, attributes)
_ELEMENTWISE = {
    "relu": lambda a: ("Relu", {}),
    "sigmoid": lambda a: ("Sigmoid", {}),
    "tanh": lambda a: ("Tanh", {}),
    "leaky_relu": lambda a: ("LeakyRelu", {"alpha": a}),
    "elu": lambda a: ("Elu", {"alpha": a}),
    "selu": lambda a: ("Selu", {}),       # ONNX's default alpha and gamma are SELU's constants
    "softplus": lambda a: ("Softplus", {}),
    "hard_sigmoid": lambda a: ("HardSigmoid", {"alpha": 1 / 6, "beta": 0.5}),
}


# ------------------------------------------------------------------------------------------ layers
@register_converter(L.Dense)
def _dense(g, layer, x):
    # y = f(x W + b)
    inputs = [x, g.weight(layer.kernel, "kernel")]
    if layer.use_bias:
        inputs.append(g.weight(layer.bias, "bias"))
    return g.activation(layer._act_name, layer._alpha, g.op("Gemm", inputs))


@register_converter(L.Activation)
def _activation(g, layer, x):
    return g.activation(layer._act_name, layer._alpha, x)


@register_converter(L.Dropout)
def _identity(g, layer, x):
    return x


@register_converter(L.Flatten)
def _flatten(g, layer, x):
    return g.op("Flatten", [x], axis=1)


def _to_channels_first(g, layer, x):
    r = layer.rank                       # (n, spatial..., c) -> (n, c, spatial...)
    return g.transpose(x, [0, r + 1] + list(range(1, r + 1)))


def _to_channels_last(g, layer, x):
    r = layer.rank
    return g.transpose(x, [0] + list(range(2, r + 2)) + [1])


def _pads(layer):
    """ONNX pads [begin..., end...] of the layer's spatial axes, as Keras pads them."""
    r = layer.rank
    size = layer.input_shape[1:1 + r]
    begin, end = [], []
    for i in range(r):
        k, s, d = layer._win[2 - r + i], layer._str[2 - r + i], layer._dil[2 - r + i]
        before, out = layer._pad[2 - r + i], layer._out[2 - r + i]
        total = max((out - 1) * s + (k - 1) * d + 1 - size[i], 0)   # the padding the output needs
        begin.append(before)
        end.append(max(total - before, 0))
    return begin + end


def _spatial(layer, t):
    return list(t[2 - layer.rank:])


def _conv(g, layer, x):
    # y = f(conv(x, kernel) + b): ONNX's Conv is channels-first, its weight (f, c, k...)
    r = layer.rank
    W = np.transpose(layer.kernel, [r + 1, r] + list(range(r)))
    inputs = [_to_channels_first(g, layer, x), g.weight(W, "kernel")]
    if layer.use_bias:
        inputs.append(g.weight(layer.bias, "bias"))
    y = g.op("Conv", inputs, kernel_shape=list(layer.kernel_size), strides=list(layer.strides),
             dilations=list(layer.dilation_rate), pads=_pads(layer))
    return _to_channels_last(g, layer, g.activation(layer._act_name, layer._alpha, y, axis=1))


def _pool(g, layer, x):
    op_type = "MaxPool" if layer._max else "AveragePool"
    attrs = {} if layer._max else {"count_include_pad": 0}
    y = g.op(op_type, [_to_channels_first(g, layer, x)], kernel_shape=_spatial(layer, layer._win),
             strides=_spatial(layer, layer._str), pads=_pads(layer), **attrs)
    return _to_channels_last(g, layer, y)


def _global_pool(g, layer, x):
    return g.reduce("ReduceMax" if layer._max else "ReduceMean", x, list(range(1, layer.rank + 1)),
                    layer.keepdims)


for _cls in (L.Conv1D, L.Conv2D):
    register_converter(_cls)(_conv)
for _cls in (L.MaxPooling1D, L.MaxPooling2D, L.AveragePooling1D, L.AveragePooling2D):
    register_converter(_cls)(_pool)
for _cls in (L.GlobalMaxPooling1D, L.GlobalMaxPooling2D, L.GlobalAveragePooling1D, L.GlobalAveragePooling2D):
    register_converter(_cls)(_global_pool)


@register_converter(L.Embedding)
def _embedding(g, layer, x):
    # y[p] = E[int(x[p])]
    return g.op("Gather", [g.weight(layer.embeddings, "embeddings"), g.op("Cast", [x], to=g.onnx.TensorProto.INT64)],
                axis=0)


# ------------------------------------------------------------------------------------ recurrent
# ONNX's recurrent ops take their activations by name (and alpha/beta where they have them)
_RNN_ACTIVATIONS = {
    "tanh": ("Tanh", None, None), "sigmoid": ("Sigmoid", None, None), "relu": ("Relu", None, None),
    "linear": ("Affine", 1.0, 0.0), "hard_sigmoid": ("HardSigmoid", 1 / 6, 0.5),
    "leaky_relu": ("LeakyRelu", "alpha", None), "elu": ("Elu", "alpha", None), "softplus": ("Softplus", None, None),
}


def _rnn_activations(layer, pairs):
    """activations / activation_alpha / activation_beta attributes for [(name, alpha), ...]."""
    names, alphas, betas = [], [], []
    for name, alpha in pairs:
        if name not in _RNN_ACTIVATIONS:
            raise ValueError(f"layer {layer.name!r} ({type(layer).__name__}) cannot be exported to ONNX: the ONNX "
                             f"{type(layer).__name__} op has no {name!r} activation (it has "
                             f"{', '.join(sorted(_RNN_ACTIVATIONS))})")
        op_name, a, b = _RNN_ACTIVATIONS[name]
        names.append(op_name)
        alphas.append(alpha if a == "alpha" else (a or 0.0))
        betas.append(b or 0.0)
    # alpha and beta are listed for every activation: the op assigns them in order
    return {"activations": names, "activation_alpha": alphas, "activation_beta": betas}


def _gate_blocks(w, order, units):
    """Reorder the gate blocks of the last axis of w (each `units` wide) into `order`."""
    return np.concatenate([w[..., k * units:(k + 1) * units] for k in order], axis=-1)


def _recurrent(g, layer, x, op_type, order, acts, bias, **attrs):
    # x (n, T, d) -> time-major (T, n, d) -> op -> Y (T, 1, n, u), Y_h (1, n, u)
    u = layer.units
    W = _gate_blocks(layer.kernel, order, u).T[None]             # (1, gates u, d)
    R = _gate_blocks(layer.recurrent_kernel, order, u).T[None]   # (1, gates u, u)
    inputs = [g.transpose(x, [1, 0, 2]), g.weight(W, "W"), g.weight(R, "R")]
    if bias is not None:                                          # (1, 2 gates u): [input bias, recurrent bias]
        inputs.append(g.weight(np.concatenate([_gate_blocks(b, order, u) for b in bias])[None], "B"))
    Y, Y_h = g.op(op_type, inputs, n_out=2, hidden_size=u,
                  direction="reverse" if layer.go_backwards else "forward", **_rnn_activations(layer, acts),
                  **attrs)
    if not layer.return_sequences:
        return g.op("Squeeze", [Y_h, g.ints([0], "axes")])      # (n, u)
    if layer.go_backwards:   # ONNX's Y is in input order; Keras returns the processing order
        Y = g.op("Slice", [Y, g.ints([-1], "starts"), g.ints([-(2 ** 62)], "ends"), g.ints([0], "axes"),
                           g.ints([-1], "steps")])
    return g.transpose(g.op("Squeeze", [Y, g.ints([1], "axes")]), [1, 0, 2])   # (n, T, u)


@register_converter(L.SimpleRNN)
def _simple_rnn(g, layer, x):
    bias = [layer.bias, np.zeros_like(layer.bias)] if layer.use_bias else None
    return _recurrent(g, layer, x, "RNN", [0], [(layer._act_name, layer._alpha)], bias)


@register_converter(L.LSTM)
def _lstm(g, layer, x):
    # Keras's blocks i, f, c, o -> ONNX's i, o, f, c; activations f (gates), g (cell), h (output)
    bias = [layer.bias, np.zeros_like(layer.bias)] if layer.use_bias else None
    acts = [(layer._ract_name, layer._ralpha), (layer._act_name, layer._alpha), (layer._act_name, layer._alpha)]
    return _recurrent(g, layer, x, "LSTM", [0, 3, 1, 2], acts, bias)


@register_converter(L.GRU)
def _gru(g, layer, x):
    # Keras's blocks z, r, h are ONNX's; reset_after: r multiplies (h U_h + b_rec_h), linear_before_reset=1
    reset_after = getattr(layer, "reset_after", True)
    bias = None
    if layer.use_bias:
        b = np.asarray(layer.bias)
        bias = [b[0], b[1]] if b.ndim == 2 else [b, np.zeros_like(b)]
    acts = [(layer._ract_name, layer._ralpha), (layer._act_name, layer._alpha)]
    return _recurrent(g, layer, x, "GRU", [0, 1, 2], acts, bias, linear_before_reset=int(reset_after))


# ------------------------------------------------------------------------------------------ model
def _convert_layer(g, layer, *inputs):
    fn = _CONVERTERS.get(type(layer))
    if fn is None:
        raise ValueError(f"layer {layer.name!r} ({type(layer).__name__}) cannot be exported to ONNX: no converter "
                         f"for {type(layer).__name__} (register one with nncore.onnx.register_converter)")
    g.scope = layer.name
    try:
        return fn(g, layer, *inputs)
    finally:
        g.scope = ""


def _dtype_of(model, dtype):
    if dtype is None:
        return np.dtype(model._dtype)
    if str(dtype) not in ("float32", "float64"):
        raise ValueError(f"export: dtype must be None, 'float32' or 'float64', got {dtype!r}")
    return np.dtype(str(dtype))


def _opset_of(onnx, opset):
    top = onnx.defs.onnx_opset_version()
    if opset is None:
        return min(DEFAULT_OPSET, top)
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)) or not MIN_OPSET <= opset <= top:
        raise ValueError(f"export: opset must be an int in [{MIN_OPSET}, {top}] (the installed onnx "
                         f"{onnx.__version__} knows up to {top}), got {opset!r}")
    return int(opset)


def _model_proto(model, opset, dtype):
    """The checked ONNX ModelProto of a built Sequential model."""
    onnx = _onnx()
    from nncore import __version__

    if not getattr(model, "built", False):
        raise ValueError(f"export: model {getattr(model, 'name', model)!r} is not built yet; call it on data, "
                         "fit it or give it an input shape first")
    from nncore.models import Sequential

    if not isinstance(model, Sequential):   # the layer chain below is a Sequential's; a graph needs more
        raise ValueError(f"export: model {model.name!r} is a functional Model; ONNX export handles Sequential "
                         "models only for now")
    g = _Graph(onnx, _dtype_of(model, dtype), _opset_of(onnx, opset))
    helper = onnx.helper
    x_name = g.name("input")
    y = x_name
    for layer in model.layers:
        y = _convert_layer(g, layer, y)
    # the graph's output is called "output": the last node's output is renamed, else an Identity
    last = g.nodes[-1] if g.nodes else None
    if last is not None and last.output[0] == y and not any(y in n.input for n in g.nodes):
        last.output[0] = "output"
    else:
        g.nodes.append(helper.make_node("Identity", [y], ["output"], name="output_node"))
    shape_in = ["batch"] + list(model.input_shape[1:])
    shape_out = ["batch"] + list(model.output_shape[1:])
    graph = helper.make_graph(g.nodes, model.name, [helper.make_tensor_value_info(x_name, g.elem, shape_in)],
                              [helper.make_tensor_value_info("output", g.elem, shape_out)], g.initializers)
    opsets = [helper.make_opsetid("", g.opset)]
    proto = helper.make_model(graph, opset_imports=opsets, producer_name="nncore", producer_version=__version__,
                              doc_string=f"nncore model {model.name!r}, exported at opset {g.opset}",
                              ir_version=helper.find_min_ir_version_for(opsets))
    helper.set_model_props(proto, {"nncore_version": __version__, "opset": str(g.opset)})
    onnx.checker.check_model(proto, full_check=True)
    return proto


def export(model, path=None, opset=None, dtype=None):
    """Export a built nncore model to ONNX (inference: Dropout is left out).

    Parameters
    ----------
    model : Sequential
        A built model (fitted, called on data, or given an input shape).
    path : str or os.PathLike, optional
        Where to write the ``.onnx`` file (atomically: a crash leaves the old file or the new one).
        None: only return the model proto.
    opset : int, optional
        The ONNX opset (default `DEFAULT_OPSET`, 21; from `MIN_OPSET`, 13, to what the installed onnx
        knows). It is recorded in the file (``opset_import`` and the ``opset`` metadata entry).
    dtype : {None, 'float32', 'float64'}
        The graph's float type; None: the model's. See the module docstring for what ONNX Runtime runs
        in float64.

    Returns
    -------
    onnx.ModelProto
        Checked with ``onnx.checker.check_model(full_check=True)``. Its input is ``"input"`` of shape
        (batch, ...) with a dynamic batch axis, in the graph's dtype (for an Embedding first, the indices
        as floats, as `predict` takes them; ONNX's Gather takes a negative index from the end where the
        layer raises); its output is ``"output"``.

    Raises
    ------
    ValueError
        For a model that is not built, or a layer that cannot be exported (naming it).
    ImportError
        When the onnx package is not installed.
    """
    proto = _model_proto(model, opset, dtype)
    if path is not None:
        from nncore.saving import atomic_write

        atomic_write(os.fspath(path), [proto.SerializeToString()])
    return proto
