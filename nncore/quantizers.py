"""int8 quantization for inference: Keras 3's ``model.quantize("int8")``.

What Keras 3 computes (keras/src/layers/core/dense.py ``quantize`` and ``_int8_call``,
keras/src/quantizers), and nncore with it:

- The kernel (Dense ``(n_in, units)``; a convolution's ``(kh, kw, c, filters)`` seen as
  ``(kh kw c, filters)``) is quantized once, per output channel j, symmetric::

      w_j = 127 / (max_p |W[p, j]| + 1e-7)          kernel_scale, float (the model's dtype)
      Wq[p, j] = clip(round(W[p, j] w_j), -127, 127)  kernel, int8 (round half to even)

  and the float kernel is dropped. Embedding quantizes each row of its table (axis -1).
- At run time each input row i is quantized the same way (``AbsMaxQuantizer``, axis -1)::

      s_i = Q / (max_p |x[i, p]| + 1e-7) ;  xq[i, p] = clip(round(x[i, p] s_i), -Q, Q)

  then ``y = act((xq @ Wq) / (w_j s_i) + b)``: int32 sums, cast to float, divided by the
  product of the scales, plus the bias, then the activation (nncore: one int8 GEMM with all of
  it in the epilogue, csrc/int8.c).

Where nncore differs, and why:

- Q = 63 by default (7-bit activations; Keras: Q = 127). On AVX2, the FBGEMM way
  (vpmaddubsw + vpmaddwd) is exact only when no pair of byte products exceeds 2^15, which
  7-bit activations guarantee; it runs int8 at twice the float32 FMA rate, while an exact
  kernel for 8-bit activations (the vpsignb trick, also built) reaches 1.2x (Zen 4, measured).
  PyTorch's x86 int8 (``reduce_range``) makes the same choice. Every kernel (AVX2, VNNI,
  generic C) then gives the same bits. Keras's own numbers, Q = 127, are one argument away:
  ``model.quantize("int8", config=Int8QuantizationConfig(activation_quantizer=
  AbsMaxQuantizer(value_range=(-127, 127))))``, and Keras reproduces nncore's default with
  ``value_range=(-63, 63)`` (tests/test_keras_parity_int8.py compares both, to the bit).
- Convolutions are quantized too (Keras 3.15 leaves them in float): a convolution is a Dense
  over its im2col patch rows, so each patch row is one quantized input row. ``filters`` keeps
  any layer in float, as in Keras. Without filters, a convolution is quantized only where its
  int8 form is predicted faster (by 15%) than the float32 path it takes (Winograd or im2col) on the
  int8 kernel this CPU runs at the SIMD level in use (``nncore.layers.conv.conv_costs``: fitted
  per-pixel costs; short patch rows pay more for quantizing a row per pixel than the int8 product
  saves, and Winograd does 4x fewer multiplies): the choice is the running machine's, made once,
  and kept by save/load. ``filters=lambda layer: True`` takes every layer.
- A row holding NaN or infinity gives NaN outputs (its scale is NaN), never a silent number.
- Training a quantized model is refused (``fit``): Keras trains only the float bias through a
  custom gradient; quantize the trained float model instead.
"""
import re
import warnings

import numpy as np

__all__ = ["AbsMaxQuantizer", "Int8QuantizationConfig", "abs_max_quantize", "QUANTIZATION_MODES",
           "DEFAULT_ACTIVATION_RANGE"]

QUANTIZATION_MODES = ("int8",)
DEFAULT_ACTIVATION_RANGE = 63      # Q of the input quantizer: 7-bit activations (see the module docstring)
EPSILON = 1e-7                     # Keras's backend.epsilon()


def abs_max_quantize(x, axis, value_range=(-127, 127), epsilon=EPSILON):
    """Keras's ``abs_max_quantize`` (its NumPy path): returns (int8 values, scale).

    scale = value_range[1] / (max |x| over `axis` + epsilon), in x's float dtype (kept dims);
    q = clip(round(x scale), *value_range) as int8, rounding half to even.
    """
    x = np.asarray(x)
    scale = np.divide(value_range[1], np.add(np.max(np.abs(x), axis=axis, keepdims=True), epsilon))
    scale = scale.astype(x.dtype, copy=False)
    q = np.clip(np.round(np.multiply(x, scale)), value_range[0], value_range[1]).astype(np.int8)
    return q, scale


def _symmetric_range(value_range, what):
    try:
        lo, hi = (int(v) for v in value_range)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: value_range must be a pair of ints, got {value_range!r}") from None
    if lo != -hi or not 1 <= hi <= 127:
        raise ValueError(f"{what}: nncore's int8 kernels take a symmetric value_range (-Q, Q) with 1 <= Q <= 127, "
                         f"got {tuple(value_range)}")
    return hi


class AbsMaxQuantizer:
    """Symmetric abs-max quantizer to int8 (Keras 3's ``keras.quantizers.AbsMaxQuantizer``).

    Parameters
    ----------
    axis : int or tuple of int, optional
        Axes reduced for one scale (the weights' default: 0, one scale per output channel;
        inputs are always quantized per row, axis -1).
    value_range : (int, int), default=(-127, 127)
        Symmetric range (-Q, Q), 1 <= Q <= 127.
    epsilon : float, default=1e-7
        Added to the absolute maximum (the input quantizer takes 1e-7 only: it is the kernel's).
    """

    def __init__(self, axis=None, value_range=(-127, 127), epsilon=EPSILON, output_dtype="int8"):
        if output_dtype != "int8":
            raise ValueError(f"AbsMaxQuantizer: output_dtype must be 'int8', got {output_dtype!r}")
        self.axis = axis
        self.value_range = (-_symmetric_range(value_range, "AbsMaxQuantizer"),
                            _symmetric_range(value_range, "AbsMaxQuantizer"))
        self.epsilon = float(epsilon)

    def __call__(self, x, axis=None):
        axis = self.axis if axis is None else axis
        return abs_max_quantize(x, -1 if axis is None else axis, self.value_range, self.epsilon)

    def get_config(self):
        return {"axis": self.axis, "value_range": list(self.value_range), "epsilon": self.epsilon}


class Int8QuantizationConfig:
    """How `quantize("int8", config=...)` quantizes (Keras 3's ``Int8QuantizationConfig``).

    Parameters
    ----------
    weight_quantizer : AbsMaxQuantizer, optional
        Default ``AbsMaxQuantizer(axis=0)`` (per output channel, [-127, 127]).
    activation_quantizer : AbsMaxQuantizer or 'default', default='default'
        The run-time input quantizer, per row; 'default' is nncore's
        ``AbsMaxQuantizer(value_range=(-63, 63))`` (Keras's default range is (-127, 127)).
    """

    def __init__(self, weight_quantizer=None, activation_quantizer="default"):
        if activation_quantizer == "default":
            activation_quantizer = AbsMaxQuantizer(value_range=(-DEFAULT_ACTIVATION_RANGE, DEFAULT_ACTIVATION_RANGE))
        for name, q in (("weight_quantizer", weight_quantizer), ("activation_quantizer", activation_quantizer)):
            if q is not None and not isinstance(q, AbsMaxQuantizer):
                raise TypeError(f"Int8QuantizationConfig: {name} must be an nncore.quantizers.AbsMaxQuantizer, "
                                f"got {type(q).__name__}")
        if activation_quantizer is None:
            raise ValueError("Int8QuantizationConfig: activation_quantizer=None (int8 weights with float inputs) is "
                             "not supported: nncore's int8 layers quantize their inputs")
        if activation_quantizer.epsilon != EPSILON:
            raise ValueError(f"Int8QuantizationConfig: the activation quantizer's epsilon must be {EPSILON} "
                             f"(the kernels'), got {activation_quantizer.epsilon}")
        self.weight_quantizer = weight_quantizer or AbsMaxQuantizer(axis=0)
        self.activation_quantizer = activation_quantizer

    @property
    def mode(self):
        return "int8"

    @property
    def activation_range(self):
        """Q of the input quantizer's range (-Q, Q)."""
        return self.activation_quantizer.value_range[1]


def _config(mode, config, where):
    if config is None:
        if mode not in QUANTIZATION_MODES:
            raise ValueError(f"{where}: mode must be one of {list(QUANTIZATION_MODES)}, got {mode!r}")
        return Int8QuantizationConfig()
    if not isinstance(config, Int8QuantizationConfig):
        raise TypeError(f"{where}: config must be an nncore.quantizers.Int8QuantizationConfig, "
                        f"got {type(config).__name__}")
    if mode not in (None, config.mode):
        raise ValueError(f"{where}: mode {mode!r} does not match the config's mode {config.mode!r}")
    return config


def _selected(layer, filters, qmax):
    """Keras's ``should_quantize_layer``: a regex (searched in the name), a list of them, or a callable;
    without filters, every layer whose int8 form pays on this CPU (``_int8_pays``: a convolution predicted
    slower in int8 than in float32 stays float; Keras 3.15 quantizes no convolution)."""
    if filters is None:
        return not hasattr(layer, "_int8_pays") or layer._int8_pays(qmax)
    if isinstance(filters, str):
        return bool(re.search(filters, layer.name))
    if isinstance(filters, (list, tuple)):
        return any(re.search(p, layer.name) for p in filters)
    return bool(filters(layer))


def quantize_layers(layers, mode=None, config=None, filters=None, where="quantize"):
    """Quantize every layer of `layers` that has an int8 form and passes `filters`, as Keras's
    ``Model.quantize`` does; returns the layers quantized. Layers with weights but no int8 form
    (the recurrent ones) stay in float, with a warning as in Keras."""
    config = _config(mode, config, where)
    if filters is not None and not isinstance(filters, (str, list, tuple)) and not callable(filters):
        raise ValueError(f"{where}: filters must be a regex string, a list of them or a callable, "
                         f"got {type(filters).__name__}")
    done = []
    for layer in layers:
        if not _selected(layer, filters, config.activation_range):
            continue
        if hasattr(layer, "quantize"):
            try:
                layer.quantize(config.mode, config=config)
            except NotImplementedError as exc:      # a subclass: Keras warns and goes on
                warnings.warn(str(exc), stacklevel=3)
                continue
            done.append(layer)
        elif layer.count_params():
            warnings.warn(f"{where}: layer {layer.name!r} ({type(layer).__name__}) has no int8 form and stays in "
                          "float", stacklevel=3)
    return done
