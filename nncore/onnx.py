"""Export nncore models to ONNX, for ONNX Runtime and the other runtimes that read it.

``nncore.onnx.export(model, "model.onnx")`` or ``model.export("model.onnx", format="onnx")`` (Keras 3's
spelling). Needs the ``onnx`` package (``pip install "nncore[onnx]"``, which also brings onnxruntime);
it is imported here only, when a model is exported, never by ``import nncore``.

Mechanism: one converter per layer class in a table (`register_converter`). A converter gets the graph
builder, the layer and the names of its input tensors (one, or several for a layer called on a list;
tensors of keyword arguments as keyword lists); it adds the layer's nodes and its weights (as
initializers, converted to ONNX's layouts once, here) and returns the name of its output tensor (a
list of names for a layer with several outputs). The export walks the model's graph in its
topological order (the execution plan's), one converter call per node, Sequential and functional
models alike. A shared layer's nodes use one set of initializers (the builder keeps one initializer
per layer, name and value). The graph's inputs and outputs are the model's, named as the model names
them (``model.input_names``, ``model.output_names``; a Sequential's are ``"input"`` and ``"output"``),
each with a dynamic batch axis named ``"batch"``. Tensors between layers keep nncore's channels-last
layout; the ops that ONNX defines channels-first (Conv, MaxPool, AveragePool) get a Transpose on each
side, which ONNX Runtime cancels between consecutive such layers.

Layers and their ONNX ops:

- Dense: Gemm (MatMul and Add on inputs of rank > 2), then its activation; Activation: the
  activation; Dropout: nothing (inference); Flatten: Flatten(axis=1).
- Conv1D, Conv2D: Transpose, Conv (kernel (k..., c, f) stored as (f, c, k...); padding 'same' and
  'causal' as explicit pads, computed as Keras does), the activation (softmax over the channels),
  Transpose. Max/AveragePooling1D/2D: Transpose, MaxPool / AveragePool (count_include_pad=0: the
  padding of 'same' never enters a mean, as in Keras), Transpose. The global poolings: ReduceMax /
  ReduceMean over the spatial axes.
- SimpleRNN, LSTM, GRU: Transpose to time-major, the RNN / LSTM / GRU op (Keras's LSTM gate blocks
  i, f, c, o reordered to ONNX's i, o, f, c; GRU's z, r, h are ONNX's order; reset_after=True is
  ``linear_before_reset=1``), ``direction="reverse"`` for go_backwards (the returned sequence flipped
  back into Keras's processing order), Squeeze and Transpose back; return_state: the op's Y_h (and
  Y_c) outputs; initial_state: its initial_h (and initial_c) inputs. Bidirectional: one such op with
  ``direction="bidirectional"`` and its merge (Reshape for concat, ReduceSum / ReduceMean / ReduceProd
  over the direction axis, Split for merge_mode=None), states split by direction. Stateful layers have
  no ONNX form: a clear ValueError.
- Masking: x times Cast(Not(Equal(x, mask_value))) reduced by ReduceMax over the last axis. The masks
  of Masking and Embedding(mask_zero=True) are followed through the graph as the model passes them on;
  a recurrent layer that would skip masked steps is a clear ValueError (ONNX's ops take no per-step
  mask); where a mask reaches no such layer the export is exact.
- Embedding: Cast to int64 (truncation, as the layer casts), Gather.
- BatchNormalization (inference): Mul and Add by the per-channel a = gamma / sqrt(moving_variance + eps),
  b = beta - moving_mean a. LayerNormalization: ReduceMean, Sub, Mul, ReduceMean, Add, Sqrt, Div, then
  gamma and beta (no LayerNormalization op, so every opset). Reshape: Reshape; Permute: Transpose;
  RepeatVector: Unsqueeze, Tile; ZeroPadding1D/2D: Pad; Cropping1D/2D: Slice; UpSampling1D/2D: Reshape,
  Expand, Reshape; SpatialDropout1D/2D, GaussianNoise, GaussianDropout: nothing (inference).
- Add: Sum; Subtract: Sub; Multiply: Mul, folded; Average: Sum, then Mul by 1 / N; Maximum: Max;
  Minimum: Min (inputs of lower rank get Keras's axes of size 1 after the batch axis by Unsqueeze,
  ONNX broadcasts the rest); Concatenate: Concat; Dot: Transpose and Reshape of each input to
  (n, M, k) and (n, k, N), MatMul, Reshape (normalize: each input times min(1 / ReduceL2, 1 / eps)).

- The int8 forms (``model.quantize("int8")``, nncore.quantizers), nncore's numbers to the bit: each
  input row quantized by ReduceMax(Abs) / Div / Mul / Round (half to even, as the kernel) / Clip /
  Cast to int8, MatMulInteger with the int8 kernel (int32 sums), Cast, Div by kernel_scale * s, Add
  the bias, the activation. A convolution first gathers its patch rows channels-last (Pad, one
  strided Slice per kernel tap, Concat: the im2col order), as the layer quantizes them. Embedding:
  Gather of the int8 table and of its scales, Cast, Div. (A row holding NaN/inf: nncore's NaN rows,
  ONNX's undefined int8 cast of NaN; `predict` refuses such inputs.)

Activations: relu, sigmoid, tanh, softmax, leaky_relu (its alpha), elu (its alpha), selu, softplus,
hard_sigmoid (Keras 3: relu6(x + 3) / 6 = HardSigmoid(alpha=1/6, beta=1/2)), gelu (the Gelu op from
opset 20, x (1 + erf(x / sqrt 2)) / 2 below), swish/silu (x sigmoid(x)), step (x >= 0), linear. Inside
the recurrent ops ONNX has no Selu and no step: such a recurrent layer raises a ValueError.

dtype: the graph has the model's dtype unless ``dtype=`` says otherwise. ONNX Runtime (1.18-1.32) runs
in float64 only Gemm, MatMul, Relu, Sigmoid, Tanh, Softmax, Exp, MaxPool, the Reduce ops, Transpose,
Flatten, Gather and the ops of the merge layers: a float64 model with other layers exports a valid ONNX
file that ONNX Runtime refuses (NOT_IMPLEMENTED). Export such a model with ``dtype="float32"``
(weights rounded to float32).
"""
import math
import os

import numpy as np

from nncore import layers as L
from nncore.layers import merge as _merge

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
        self.nodes, self.initializers, self._used, self._constants = [], [], set(), {}
        self.scope = ""                     # the layer being converted: prefixes names

    def name(self, hint):
        base = f"{self.scope}/{hint}" if self.scope else hint
        name, k = base, 1
        while name in self._used:
            name, k = f"{base}_{k}", k + 1
        self._used.add(name)
        return name

    def _constant(self, data, hint):
        # one initializer per (layer, hint, value): a shared layer's second node reuses the first's weights
        key = (self.scope, hint, data.dtype.str, data.shape, data.tobytes())
        name = self._constants.get(key)
        if name is None:
            name = self._constants[key] = self.name(hint)
            self.initializers.append(self.onnx.numpy_helper.from_array(data, name))
        return name

    def weight(self, array, hint):
        """A float initializer in the graph's dtype; returns its name."""
        return self._constant(np.ascontiguousarray(np.asarray(array, dtype=self.dtype)), hint)

    def raw(self, array, hint):
        """An initializer in the array's own dtype (an int8 kernel); returns its name."""
        name = self.name(hint)
        self.initializers.append(self.onnx.numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def ints(self, values, hint):
        """An int64 initializer (axes, shapes, slice bounds); returns its name."""
        return self._constant(np.ascontiguousarray(np.asarray(values, np.int64)), hint)

    def op(self, op_type, inputs, n_out=1, **attrs):
        """Add one node; returns its output name (a list of names when n_out > 1)."""
        outs = [self.name(op_type) for _ in range(n_out)]
        self.nodes.append(self.helper.make_node(op_type, list(inputs), outs, name=self.name(op_type + "_node"),
                                                **attrs))
        return outs[0] if n_out == 1 else outs

    def transpose(self, x, perm):
        if list(perm) == list(range(len(perm))):      # the identity: nothing to add
            return x
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
def _int8_affine(g, layer, x, kernel, scale):
    """z = (q(x) @ Wq) / (scale s) + b for rows x (n, k): nncore's int8 GEMM (csrc/int8.c) in ONNX ops,
    s = Q / (max |x| + 1e-7) and q(x) = clip(round(x s), -Q, Q) per row."""
    Q = float(layer._act_qmax)
    amax = g.reduce("ReduceMax", g.op("Abs", [x]), [-1], keepdims=True)
    s = g.op("Div", [g.weight(Q, "qmax"), g.op("Add", [amax, g.weight(1e-7, "epsilon")])])
    q = g.op("Clip", [g.op("Round", [g.op("Mul", [x, s])]), g.weight(-Q, "qmin"), g.weight(Q, "qmax_clip")])
    acc = g.op("MatMulInteger", [g.op("Cast", [q], to=g.onnx.TensorProto.INT8), g.raw(kernel, "kernel")])
    z = g.op("Div", [g.op("Cast", [acc], to=g.elem), g.op("Mul", [g.weight(scale, "kernel_scale"), s])])
    return g.op("Add", [z, g.weight(layer.bias, "bias")]) if layer.use_bias else z


@register_converter(L.Dense)
def _dense(g, layer, x):
    # y = f(x W + b): Gemm for (batch, features); MatMul and Add over the last axis of (batch, ..., features)
    if layer.quantization_mode is not None:
        return g.activation(layer._act_name, layer._alpha, _int8_affine(g, layer, x, layer.kernel, layer.kernel_scale))
    W = g.weight(layer.kernel, "kernel")
    b = [g.weight(layer.bias, "bias")] if layer.use_bias else []
    if len(layer.input_shape) == 2:
        z = g.op("Gemm", [x, W] + b)
    else:
        z = g.op("MatMul", [x, W])
        z = g.op("Add", [z] + b) if b else z
    return g.activation(layer._act_name, layer._alpha, z)


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


def _patch_rows(g, layer, x):
    """The im2col matrix of x channels-last, (n oh ow, kh kw c) in the layer's tap order: the padded input,
    one strided Slice per tap (p, q), concatenated over the channels."""
    r = layer.rank
    pads = _pads(layer)
    xp = g.op("Pad", [x, g.ints([0] + pads[:r] + [0, 0] + pads[r:] + [0], "pads")])
    win, st, dil, out = (_spatial(layer, t) for t in (layer._win, layer._str, layer._dil, layer._out))
    axes = list(range(1, r + 1))
    taps = []
    for tap in np.ndindex(*win):
        starts = [t * d for t, d in zip(tap, dil)]
        ends = [b + (o - 1) * s + 1 for b, o, s in zip(starts, out, st)]
        taps.append(g.op("Slice", [xp, g.ints(starts, "starts"), g.ints(ends, "ends"), g.ints(axes, "axes"),
                                   g.ints(st, "steps")]))
    cols = taps[0] if len(taps) == 1 else g.op("Concat", taps, axis=-1)
    return g.op("Reshape", [cols, g.ints([-1, int(np.prod(layer.kernel.shape[:-1]))], "cols_shape")])


def _conv_int8(g, layer, x):
    # y = f(cols(x) K + b) on the int8 GEMM's arithmetic, each patch row quantized as one input row
    K = layer.kernel.reshape(-1, layer.filters)
    z = _int8_affine(g, layer, _patch_rows(g, layer, x), K, layer.kernel_scale)
    z = g.op("Reshape", [z, g.ints([-1] + _spatial(layer, layer._out) + [layer.filters], "out_shape")])
    return g.activation(layer._act_name, layer._alpha, z, axis=-1)


def _conv(g, layer, x):
    # y = f(conv(x, kernel) + b): ONNX's Conv is channels-first, its weight (f, c, k...)
    if layer.quantization_mode is not None:
        return _conv_int8(g, layer, x)
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


def _global_pool(g, layer, x, mask=None):
    if mask is not None:    # GlobalAveragePooling1D after a mask: sum_t m x / max(sum_t m, 1)
        m3 = g.op("Unsqueeze", [mask, g.ints([-1], "axes")])
        axes = g.ints([1], "axes")          # ReduceSum takes its axes as an input from opset 13 on
        total = g.op("ReduceSum", [g.op("Mul", [x, m3]), axes], keepdims=int(layer.keepdims))
        count = g.op("ReduceSum", [m3, axes], keepdims=int(layer.keepdims))
        return g.op("Div", [total, g.op("Max", [count, g.weight(1.0, "one")])])
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
    # y[p] = E[int(x[p])]; int8: Eq[int(x[p])] / scale[int(x[p])]
    if layer.quantization_mode is not None:
        idx = g.op("Cast", [x], to=g.onnx.TensorProto.INT64)
        rows = g.op("Cast", [g.op("Gather", [g.raw(layer.embeddings, "embeddings"), idx], axis=0)], to=g.elem)
        scale = g.op("Gather", [g.weight(layer.embeddings_scale, "embeddings_scale"), idx], axis=0)
        return g.op("Div", [rows, g.op("Unsqueeze", [scale, g.ints([-1], "axes")])])
    return g.op("Gather", [g.weight(layer.embeddings, "embeddings"), g.op("Cast", [x], to=g.onnx.TensorProto.INT64)],
                axis=0)


# ------------------------------------------------------------------------ normalization, reshaping
@register_converter(L.BatchNormalization)
def _batchnorm(g, layer, x):
    # inference: y = x a + b per channel (the last axis), a = gamma / sqrt(moving_variance + eps),
    # b = beta - moving_mean a
    gamma = layer.gamma if layer.scale else 1.0
    beta = layer.beta if layer.center else 0.0
    a = gamma / np.sqrt(np.asarray(layer.moving_variance, np.float64) + layer.epsilon)
    b = beta - np.asarray(layer.moving_mean, np.float64) * a
    return g.op("Add", [g.op("Mul", [x, g.weight(a, "scale")]), g.weight(b, "offset")])


@register_converter(L.LayerNormalization)
def _layernorm(g, layer, x):
    # y = (x - mean) / sqrt(var + eps) gamma + beta over the trailing axes (any opset: no LayerNormalization op)
    n = len(layer.input_shape)
    axes = list(range(n - _norm_axes(layer), n))
    d = g.op("Sub", [x, g.reduce("ReduceMean", x, axes, True)])
    var = g.reduce("ReduceMean", g.op("Mul", [d, d]), axes, True)
    y = g.op("Div", [d, g.op("Sqrt", [g.op("Add", [var, g.weight(layer.epsilon, "epsilon")])])])
    if layer.scale:
        y = g.op("Mul", [y, g.weight(layer.gamma, "gamma")])
    if layer.center:
        y = g.op("Add", [y, g.weight(layer.beta, "beta")])
    return y


def _norm_axes(layer):
    """How many trailing axes a LayerNormalization normalizes over."""
    return 1 if isinstance(layer.axis, int) else len(layer.axis)


@register_converter(L.Reshape)
def _reshape(g, layer, x):
    return g.op("Reshape", [x, g.ints([0] + list(layer.output_shape[1:]), "shape")])   # 0: keep the batch


@register_converter(L.Permute)
def _permute(g, layer, x):
    return g.transpose(x, (0,) + tuple(layer.dims))


@register_converter(L.RepeatVector)
def _repeat_vector(g, layer, x):
    # (batch, f) -> (batch, 1, f) -> n copies along axis 1
    return g.op("Tile", [g.op("Unsqueeze", [x, g.ints([1], "axes")]), g.ints([1, layer.n, 1], "repeats")])


def _border(g, layer, x):
    # ZeroPadding: Pad with zeros; Cropping: Slice of the interior
    r = len(layer.pads)
    if layer.grow:
        begin, end = [a for a, _ in layer.pads], [b for _, b in layer.pads]
        return g.op("Pad", [x, g.ints([0] + begin + [0, 0] + end + [0], "pads")])
    sizes = layer.input_shape[1:1 + r]
    return g.op("Slice", [x, g.ints([a for a, _ in layer.pads], "starts"),
                          g.ints([n - b for (_, b), n in zip(layer.pads, sizes)], "ends"),
                          g.ints(list(range(1, r + 1)), "axes")])


def _upsampling(g, layer, x):
    # nearest: each value repeated size times per spatial axis, as (batch, n1, 1, [n2, 1,] c) broadcast
    # to (batch, n1, s1, [n2, s2,] c) and reshaped
    spatial, c = layer.input_shape[1:-1], layer.input_shape[-1]
    split, ones = [0], [1]
    for n, s in zip(spatial, layer.size):
        split += [n, 1]
        ones += [1, s]
    y = g.op("Expand", [g.op("Reshape", [x, g.ints(split + [c], "split")]), g.ints(ones + [1], "size")])
    return g.op("Reshape", [y, g.ints([0] + list(layer.output_shape[1:]), "shape")])


for _cls in (L.ZeroPadding1D, L.ZeroPadding2D, L.Cropping1D, L.Cropping2D):
    register_converter(_cls)(_border)
for _cls in (L.UpSampling1D, L.UpSampling2D):
    register_converter(_cls)(_upsampling)
for _cls in (L.SpatialDropout1D, L.SpatialDropout2D, L.GaussianNoise, L.GaussianDropout):
    register_converter(_cls)(_identity)      # inference: the identity


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


def _rnn_spec(layer):
    """What the ONNX op of a recurrent layer needs: (op type, Keras gate blocks in ONNX's order,
    [(activation, alpha), ...] in ONNX's order, [input bias, recurrent bias] or None, attributes)."""
    if layer.stateful:
        raise ValueError(f"layer {layer.name!r} ({type(layer).__name__}) cannot be exported to ONNX: stateful=True "
                         "carries states between calls, which an ONNX graph cannot")
    zeros = np.zeros_like
    if isinstance(layer, L.LSTM):
        # Keras's blocks i, f, c, o -> ONNX's i, o, f, c; activations f (gates), g (cell), h (output)
        bias = [layer.bias, zeros(layer.bias)] if layer.use_bias else None
        acts = [(layer._ract_name, layer._ralpha), (layer._act_name, layer._alpha), (layer._act_name, layer._alpha)]
        return "LSTM", [0, 3, 1, 2], acts, bias, {}
    if isinstance(layer, L.GRU):
        # Keras's blocks z, r, h are ONNX's; reset_after: r multiplies (h U_h + b_rec_h), linear_before_reset=1
        bias = None
        if layer.use_bias:
            b = np.asarray(layer.bias)
            bias = [b[0], b[1]] if b.ndim == 2 else [b, zeros(b)]
        acts = [(layer._ract_name, layer._ralpha), (layer._act_name, layer._alpha)]
        return "GRU", [0, 1, 2], acts, bias, {"linear_before_reset": int(layer.reset_after)}
    bias = [layer.bias, zeros(layer.bias)] if layer.use_bias else None
    return "RNN", [0], [(layer._act_name, layer._alpha)], bias, {}


def _recurrent(g, layers, x, direction, initial_state):
    """The RNN / LSTM / GRU op over x (n, T, d) for one layer, or two (forward, backward) with
    direction="bidirectional", from the states `initial_state` (names: each layer's [h] or [h, c], the
    forward layer's first; None: zeros): returns Y (T, directions, n, u), Y_h (directions, n, u) and,
    for the LSTM, Y_c (directions, n, u)."""
    specs = [_rnn_spec(layer) for layer in layers]
    op_type, order, _, bias, attrs = specs[0]
    u = layers[0].units
    W = np.stack([_gate_blocks(layer.kernel, order, u).T for layer in layers])            # (dirs, gates u, d)
    R = np.stack([_gate_blocks(layer.recurrent_kernel, order, u).T for layer in layers])  # (dirs, gates u, u)
    inputs = [g.transpose(x, [1, 0, 2]), g.weight(W, "W"), g.weight(R, "R"), ""]
    if bias is not None:                                   # (dirs, 2 gates u): [input bias, recurrent bias]
        inputs[3] = g.weight(np.stack([np.concatenate([_gate_blocks(b, order, u) for b in spec[3]])
                                       for spec in specs]), "B")
    n_states = layers[0]._n_states
    if initial_state:                  # ONNX's initial_h (and initial_c): (dirs, n, u), after sequence_lens
        axis0 = g.ints([0], "axes")
        inputs.append("")
        for k in range(n_states):
            per_dir = [g.op("Unsqueeze", [initial_state[d * n_states + k], axis0]) for d in range(len(layers))]
            inputs.append(per_dir[0] if len(per_dir) == 1 else g.op("Concat", per_dir, axis=0))
    while inputs[-1] == "":
        inputs.pop()
    acts = _rnn_activations(layers[0], [a for spec in specs for a in spec[2]])
    return g.op(op_type, inputs, n_out=2 + (op_type == "LSTM"), hidden_size=u, direction=direction, **acts,
                **attrs)


def _squeeze0(g, y):
    return g.op("Squeeze", [y, g.ints([0], "axes")])


def _convert_recurrent(g, layer, x, initial_state=None):
    # x (n, T, d) -> time-major (T, n, d) -> op -> Y (T, 1, n, u), Y_h (1, n, u) [, Y_c (1, n, u)]
    Y, *states = _recurrent(g, [layer], x, "reverse" if layer.go_backwards else "forward", initial_state)
    if not layer.return_sequences:
        y = _squeeze0(g, states[0])                              # (n, u)
    else:
        if layer.go_backwards:   # ONNX's Y is in input order; Keras returns the processing order
            Y = g.op("Slice", [Y, g.ints([-1], "starts"), g.ints([-(2 ** 62)], "ends"), g.ints([0], "axes"),
                               g.ints([-1], "steps")])
        y = g.transpose(g.op("Squeeze", [Y, g.ints([1], "axes")]), [1, 0, 2])   # (n, T, u)
    # return_state: [y, h_T] or [y, h_T, c_T]
    return [y] + [_squeeze0(g, s) for s in states] if layer.return_state else y


for _cls in (L.SimpleRNN, L.LSTM, L.GRU):
    register_converter(_cls)(_convert_recurrent)


@register_converter(L.Bidirectional)
def _bidirectional(g, layer, x, initial_state=None):
    # one op with direction="bidirectional": its reverse half's Y is in input (time) order, which is
    # Keras's backward sequence reversed back; the merge is a Reshape (concat) or a Reduce over the
    # direction axis (sum, mean, product); merge_mode=None gives both directions' outputs
    f, b = layer.forward_layer, layer.backward_layer
    if type(f) is not type(b) or f.units != b.units or f.go_backwards \
            or (isinstance(f, L.GRU) and f.reset_after != b.reset_after) or f.use_bias != b.use_bias:
        raise ValueError(f"layer {layer.name!r} (Bidirectional) cannot be exported to ONNX: only two directions "
                         "of one kind and size (the forward one not go_backwards) map to the ONNX op")
    Y, *states = _recurrent(g, [f, b], x, "bidirectional", initial_state)
    if layer.return_sequences:
        y, axis, shape = g.transpose(Y, [2, 0, 1, 3]), 2, [0, 0, -1]    # (n, T, 2, u)
    else:
        y, axis, shape = g.transpose(states[0], [1, 0, 2]), 1, [0, -1]  # (n, 2, u)
    if layer.merge_mode is None:
        ys = g.op("Split", [y, g.ints([1, 1], "split")], n_out=2, axis=axis)
        ys = [g.op("Squeeze", [v, g.ints([axis], "axes")]) for v in ys]
    elif layer.merge_mode == "concat":
        ys = [g.op("Reshape", [y, g.ints(shape, "shape")])]
    else:
        op = {"sum": "ReduceSum", "ave": "ReduceMean", "mul": "ReduceProd"}[layer.merge_mode]
        ys = [g.reduce(op, y, [axis], keepdims=0)]
    if layer.return_state:   # the forward layer's final states, then the backward one's
        per_dir = [g.op("Split", [s, g.ints([1, 1], "split")], n_out=2, axis=0) for s in states]
        ys += [_squeeze0(g, s[d]) for d in range(2) for s in per_dir]
    return ys if len(ys) > 1 else ys[0]


@register_converter(L.Masking)
def _masking(g, layer, x):
    # y = x mask, mask = any over the last axis of (x != mask_value); the mask itself goes nowhere:
    # the export refuses a layer that would use it (see _masks)
    keep = g.op("Cast", [g.op("Not", [g.op("Equal", [x, g.weight(layer.mask_value, "mask_value")])])], to=g.elem)
    return g.op("Mul", [x, g.reduce("ReduceMax", keep, [len(layer.input_shape) - 1], keepdims=True)])


# ------------------------------------------------------------------------------------------ merge
def _keras_broadcast(g, layer, xs):
    """The inputs with Keras's broadcast of lower ranks done: axes of size 1 inserted after the batch axis
    (ONNX's broadcast aligns the trailing axes, which then does the rest)."""
    ranks = [len(s) for s in layer.input_shape]
    top = max(ranks)
    return [x if r == top else g.op("Unsqueeze", [x, g.ints(list(range(1, 1 + top - r)), "axes")])
            for x, r in zip(xs, ranks)]


def _variadic(op_type):
    def convert(g, layer, *xs):
        return g.op(op_type, _keras_broadcast(g, layer, xs))
    return convert


# Sum, Max and Min take any number of inputs; Mul and Sub take two
for _cls, _op in ((L.Add, "Sum"), (L.Maximum, "Max"), (L.Minimum, "Min")):
    register_converter(_cls)(_variadic(_op))


@register_converter(L.Average)
def _average(g, layer, *xs):
    # y = (x_0 + ... + x_{N-1}) (1 / N), as the layer computes it (ONNX Runtime has no float64 Mean)
    return g.op("Mul", [g.op("Sum", _keras_broadcast(g, layer, xs)), g.weight(1.0 / len(xs), "inv_n")])


@register_converter(L.Subtract)
def _subtract(g, layer, x0, x1):
    return g.op("Sub", _keras_broadcast(g, layer, [x0, x1]))


@register_converter(L.Multiply)
def _multiply(g, layer, *xs):
    # y = x_0 * x_1 * ..., folded left as the layer does
    xs = _keras_broadcast(g, layer, xs)
    y = xs[0]
    for x in xs[1:]:
        y = g.op("Mul", [y, x])
    return y


@register_converter(L.Concatenate)
def _concatenate(g, layer, *xs):
    return g.op("Concat", list(xs), axis=layer._axis(len(layer.input_shape[0])))


@register_converter(L.Dot)
def _dot(g, layer, x0, x1):
    # Keras's batch_dot: x0 with its axis last and its other axes flattened, (n, M, k), times x1 with its
    # axis first, (n, k, N); the product (n, M, N) reshaped to x0's other axes followed by x1's
    s0, s1 = layer.input_shape
    a0, a1 = layer._axes([s0, s1])
    if layer.normalize:
        x0, x1 = _l2_normalized(g, x0, a0), _l2_normalized(g, x1, a1)
    rest0 = [i for i in range(1, len(s0)) if i != a0]
    rest1 = [i for i in range(1, len(s1)) if i != a1]
    A = g.op("Reshape", [g.transpose(x0, [0] + rest0 + [a0]), g.ints([0, -1, s0[a0]], "shape")])
    B = g.op("Reshape", [g.transpose(x1, [0, a1] + rest1), g.ints([0, s1[a1], -1], "shape")])
    z = g.op("MatMul", [A, B])
    return g.op("Reshape", [z, g.ints([0] + list(layer.output_shape[1:]), "shape")])


def _l2_normalized(g, x, axis):
    # xh = x r, r = min(1 / ||x||, 1 / eps) along the axis (as the layer: a zero vector stays zero)
    r = g.op("Reciprocal", [g.reduce("ReduceL2", x, [axis], keepdims=True)])
    return g.op("Mul", [x, g.op("Min", [r, g.weight(1.0 / _merge.EPSILON, "inv_epsilon")])])


# ------------------------------------------------------------------------------------------ model
def _convert_layer(g, layer, *inputs, **tensor_kwargs):
    fn = _CONVERTERS.get(type(layer))
    if fn is None:
        raise ValueError(f"layer {layer.name!r} ({type(layer).__name__}) cannot be exported to ONNX: no converter "
                         f"for {type(layer).__name__} (register one with nncore.onnx.register_converter)")
    g.scope = layer.name
    try:
        return fn(g, layer, *inputs, **tensor_kwargs)
    finally:
        g.scope = ""


def _convert_node(g, node, names, mask=None):
    """Convert one layer call: the converter gets the node's input names as the layer got its inputs
    (one, or several for a call on a list; keyword tensors as keyword lists), and `mask` (the ONNX
    name of its input's mask) when it uses one; returns its output names."""
    layer = node.impl or node.layer          # impl: the copy built for this node's shapes
    positional = len(names) - sum(len(p) for p in node.kwargs.values())
    kwargs = {key: [names[i] for i in p] for key, p in node.kwargs.items()}
    if mask is not None:
        kwargs["mask"] = mask
    out = _convert_layer(g, layer, *names[:positional], **kwargs)
    outs = list(out) if node.many else [out]
    if len(outs) != len(node.outputs) or not all(isinstance(y, str) for y in outs):
        raise ValueError(f"layer {layer.name!r} ({type(layer).__name__}): its ONNX converter returned {out!r}, "
                         f"expected {'a list of ' if node.many else ''}{len(node.outputs)} tensor name(s)")
    return outs


def _mask_tensor(g, layer, x):
    """The mask a Masking or Embedding(mask_zero=True) layer makes of its input x, as a (batch, steps)
    tensor of the graph's float dtype (1: a valid step)."""
    g.scope = layer.name
    try:
        if isinstance(layer, L.Embedding):      # x != 0 (the indices as the layer casts them)
            zero = g.ints(0, "zero")
            keep = g.op("Not", [g.op("Equal", [g.op("Cast", [x], to=g.onnx.TensorProto.INT64), zero])])
            return g.op("Cast", [keep], to=g.elem)
        keep = g.op("Cast", [g.op("Not", [g.op("Equal", [x, g.weight(layer.mask_value, "mask_value")])])],
                    to=g.elem)                  # Masking: any feature differs from mask_value
        return g.reduce("ReduceMax", keep, [len(layer.input_shape) - 1], keepdims=False)
    finally:
        g.scope = ""


def _follow_masks(g, node, names, mask_of):
    """Follow the masks of Masking and Embedding(mask_zero=True) as the plan does (the first input's mask
    goes to the layer, its compute_mask gives the outputs'); `mask_of` maps a tensor to [the layer whose
    mask it carries, the ONNX name of that mask (made when a layer first uses it), the layer and its
    input to make it from]. Returns the mask's ONNX name for a layer that uses it
    and has an ONNX form with it (GlobalAveragePooling1D's masked mean), else None; a layer that would
    use one otherwise (a recurrent layer skipping masked steps) is refused."""
    layer = node.impl or node.layer
    src = mask_of.get(id(node.inputs[0]))
    use = None
    if src is not None and layer._uses_mask:
        if not isinstance(layer, L.GlobalAveragePooling1D):
            raise ValueError(f"layer {layer.name!r} ({type(layer).__name__}) cannot be exported to ONNX: it would "
                             f"skip the time steps masked by layer {src[0]!r}, and ONNX's recurrent ops take no "
                             "per-step mask")
        if src[1] is None:
            src[1] = _mask_tensor(g, *src[2])
        use = src[1]
    if layer._makes_mask:
        carried = [[layer.name, None, (layer, names[0])]] * len(node.outputs)   # one mask, shared
    elif src is not None:
        m = layer.compute_mask(None, True)      # which outputs the mask reaches (no values needed)
        carried = [src if mi is not None else None for mi in (m if node.many else [m])]
    else:
        return use
    mask_of.update((id(t), c) for t, c in zip(node.outputs, carried) if c is not None)
    return use


def _io_names(model):
    """The ONNX names of the model's inputs and outputs: a Sequential's one input and output are "input"
    and "output"; a functional model's are its input_names and output_names."""
    from nncore.models import Sequential

    if isinstance(model, Sequential):
        return ["input"], ["output"]
    ins, outs = list(model.input_names), list(model.output_names)
    for t, name in zip(model.outputs, outs):
        if name in ins and model.inputs[ins.index(name)] is not t:
            raise ValueError(f"export: model {model.name!r} has an input and an output both named {name!r}; ONNX "
                             "tensor names must be unique (give the model its inputs or outputs as a dict with "
                             "other keys)")
    return ins, outs


def _name_outputs(g, ys, out_names):
    """Give the graph outputs their names: the tensor a node makes is renamed (in every node that uses it);
    a model input, or a tensor already named as another output, gets an Identity."""
    produced = {y for node in g.nodes for y in node.output}
    rename, copies = {}, []
    for y, name in zip(ys, out_names):
        if y == name:
            continue
        if y in produced and y not in rename:
            rename[y] = name
        else:
            copies.append((y, name))
    for node in g.nodes:
        for names in (node.input, node.output):
            for i, y in enumerate(names):
                names[i] = rename.get(y, y)
    for y, name in copies:
        g.nodes.append(g.helper.make_node("Identity", [rename.get(y, y)], [name], name=g.name(f"{name}_node")))


def _value_info(g, name, shape):
    # the batch axis is dynamic ("batch", one size for every input and output)
    return g.helper.make_tensor_value_info(name, g.elem, ["batch"] + list(shape[1:]))


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
    """The checked ONNX ModelProto of a built model: its graph's nodes converted in topological order."""
    onnx = _onnx()
    from nncore import __version__

    if not getattr(model, "built", False):
        raise ValueError(f"export: model {getattr(model, 'name', model)!r} is not built yet; call it on data, "
                         "fit it or give it an input shape first")
    g = _Graph(onnx, _dtype_of(model, dtype), _opset_of(onnx, opset))
    helper = onnx.helper
    in_names, out_names = _io_names(model)
    g._used.update(in_names + out_names)        # reserved: no node output takes these names
    name_of = {id(t): name for t, name in zip(model.inputs, in_names)}   # symbolic tensor -> ONNX name
    mask_of = {}
    for node in model._nodes:
        names = [name_of[id(t)] for t in node.inputs]
        outs = _convert_node(g, node, names, _follow_masks(g, node, names, mask_of))
        name_of.update((id(t), y) for t, y in zip(node.outputs, outs))
    _name_outputs(g, [name_of[id(t)] for t in model.outputs], out_names)
    graph = helper.make_graph(g.nodes, model.name,
                              [_value_info(g, n, t.shape) for n, t in zip(in_names, model.inputs)],
                              [_value_info(g, n, t.shape) for n, t in zip(out_names, model.outputs)],
                              g.initializers)
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
    model : Sequential or Model
        A built model (a functional Model; a Sequential fitted, called on data, or given an input shape).
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
        Checked with ``onnx.checker.check_model(full_check=True)``. A Sequential's input is ``"input"``
        and its output ``"output"``; a functional model's inputs and outputs are named as
        ``model.input_names`` and ``model.output_names`` say, in the model's order. Each has the shape
        (batch, ...) with a dynamic batch axis and the graph's dtype (for an Embedding first, the indices
        as floats, as `predict` takes them; ONNX's Gather takes a negative index from the end where the
        layer raises).

    Raises
    ------
    ValueError
        For a model that is not built, a layer that cannot be exported (naming it), or a functional
        model with an input and an output of the same name.
    ImportError
        When the onnx package is not installed.
    """
    proto = _model_proto(model, opset, dtype)
    if path is not None:
        from nncore.saving import atomic_write

        atomic_write(os.fspath(path), [proto.SerializeToString()])
    return proto
