"""Convolution and pooling layers, channels_last (Keras 3 semantics).

Inputs are (batch, height, width, channels) for the 2-D layers and
(batch, steps, channels) for the 1-D ones (run as 2-D of height 1); a kernel
is (kh, kw, in_channels, filters) exactly as in Keras, so weights move between
the two unchanged.

Mechanism (the reference, for every convolution): im2col copies each output
pixel's receptive field into one row of a work matrix, cols (batch oh ow,
kh kw c), and ONE GEMM ``cols @ kernel.reshape(kh kw c, filters)`` with the
bias and the activation in its epilogue writes the (batch, oh, ow, filters)
output directly (channels_last needs no transpose). Backward is the same GEMMs
transposed plus col2im, the adjoint of im2col; in float32/64 delta, db and dK
come from one pass over row blocks that makes the cols rows again in cache
(`conv_backward_weights`: no cols matrix is stored). A 1x1 kernel with stride 1 and
no padding skips im2col: the input already is the cols matrix.

3x3 (Conv1D: 3) stride-1 undilated convolutions may run by Winograd
F(m x m, 3 x 3) instead (csrc/winograd.c: 2.25 or 4 multiplies per output and
channel pair instead of 9), forward and both backward products; the tile m or
im2col is chosen per batch size by `winograd_tile`, from the shapes alone.

Padding (Keras): 'valid': out = floor((in - (k - 1) d - 1) / s) + 1;
'same': out = ceil(in / s), pad_total = max((out - 1) s + (k - 1) d + 1 - in, 0),
pad_before = pad_total // 2 (the extra one goes after). Conv1D also has
'causal': pad_before = (k - 1) d, out = in.
"""
import functools
import math

import numpy as np

from nncore._kernels import ACT_BF16, ACT_CODES
from nncore._kernels import conv as _conv
from nncore._kernels import elementwise as _ew
from nncore._kernels import int8 as _int8
from nncore._kernels.gemm import bf16_round, gemm
from nncore.layers.base import Layer
from nncore.layers.core import (_act_delta, _affine_act, _affine_config, _bf16_on_float32, _bias_grad, _init_affine,
                                _rounded_delta, _rounded_product)
from nncore.layers.quantized import Int8Quantizable

_colsum = _ew.colsum
_RELU = ACT_CODES["relu"]
_act_backward = _ew.act_backward


def _tuple(value, n, arg, cls, minimum=1):
    """An int or a sequence of n ints, each >= minimum, as a tuple of n ints."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (int(value),) * n
    try:
        out = tuple(value)
    except TypeError:
        raise TypeError(f"{cls}: {arg} must be an int or a tuple of {n} ints, got {value!r}") from None
    if len(out) != n or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in out):
        raise ValueError(f"{cls}: {arg} must be an int or a tuple of {n} ints, got {value!r}")
    if any(v < minimum for v in out):
        raise ValueError(f"{cls}: {arg} must be " + ("positive" if minimum == 1 else f">= {minimum}")
                         + f", got {value!r}")
    return tuple(int(v) for v in out)


def _padding(value, cls, allowed=("valid", "same")):
    p = value.lower() if isinstance(value, str) else value
    if p not in allowed:
        raise ValueError(f"{cls}: padding must be one of {list(allowed)}, got {value!r}")
    return p


def _data_format(value, cls):
    if value not in (None, "channels_last"):
        raise ValueError(f"{cls}: only data_format='channels_last' is supported, got {value!r}")


def _out_size(size, k, s, d, padding):
    """(output size, padding before) of one spatial axis, as Keras computes them."""
    span = (k - 1) * d + 1                      # the dilated window
    if padding == "valid":
        return (size - span) // s + 1, 0
    if padding == "causal":
        return (size - 1) // s + 1, span - 1
    out = -(-size // s)                          # 'same': ceil(size / s)
    return out, max((out - 1) * s + span - size, 0) // 2


# Winograd's speed-up over im2col + GEMM for a training step, per tile m: r E c / (c + C0) T / (T + T0), where
# r = im2col's multiplies per Winograd multiply (9 oh ow / (36 tiles) for m = 4 on whole tiles: 4; less
# with partial tiles), c the channels (the GEMMs' k: short ones pay more for the transforms) and T the
# tiles (small problems pay the passes' fixed costs). (E, C0, T0) fitted to `python bench/winograd.py`
# on AVX2 (Zen 4), float32, 1 thread; the timings are in bench/RESULTS.md, the rule in docs/models.md.
_WINO_FIT = {2: (1.15, 34.0, 45.0), 4: (0.89, 26.0, 30.0)}
_WINO_MARGIN = 1.1   # Winograd only where it is predicted at least 10% faster


def winograd_tile(n, out_hw, c, kh):
    """The output tile m of Winograd F(m x m, 3 x 3) for a 3x3 (kh = 3) or 1x3 (kh = 1: Conv1D) stride-1
    convolution of n images of c channels to an output of size out_hw, or 0 for im2col + GEMM: the m of
    the larger predicted speed-up, where that is above the margin. A rule of the shapes alone, so a layer
    takes the same path on every machine, thread count and run."""
    return _winograd_choice(n, out_hw, c, kh)[0]


def _winograd_choice(n, out_hw, c, kh):
    """(tile m or 0, its predicted speed-up over im2col + GEMM; 1.0 for im2col): `winograd_tile`'s rule."""
    oh, ow = out_hw
    best, gain = 0, _WINO_MARGIN
    for m, (e, c0, t0) in _WINO_FIT.items():
        mh = m if kh == 3 else 1
        tiles = n * -(-oh // mh) * -(-ow // m)
        r = 3 * kh * n * oh * ow / ((mh + kh - 1) * (m + 2) * tiles)
        g = r * e * c / (c + c0) * tiles / (tiles + t0)
        if g > gain:
            best, gain = m, g
    return best, (gain if best else 1.0)


class _Window(Layer):
    """Shared geometry of the convolutions and poolings: rank 1 or 2 spatial axes, channels last."""

    rank = 2

    def _geometry(self, input_shape, window, strides, dilation, padding):
        """Check the input rank and sizes; set the 2-D geometry (H, W, C, window, strides, ... out)."""
        cls = type(self).__name__
        want = "(batch, steps, channels)" if self.rank == 1 else "(batch, height, width, channels)"
        if len(input_shape) != self.rank + 2:
            raise ValueError(f"layer {self.name!r} ({cls}): expected {self.rank + 2}-D inputs {want}, got shape "
                             f"{tuple(input_shape)}")
        spatial = tuple(input_shape[1:-1])
        if any(s is None for s in spatial) or input_shape[-1] is None:
            raise ValueError(f"layer {self.name!r} ({cls}): every dimension except the batch must be known, got "
                             f"shape {tuple(input_shape)}")
        outs, pads = [], []
        for size, k, s, d in zip(spatial, window, strides, dilation):
            o, p = _out_size(size, k, s, d, padding)
            if o < 1:
                raise ValueError(f"layer {self.name!r} ({cls}): window {window} (dilation {dilation}) is larger "
                                 f"than the {padding!r}-padded input of spatial shape {spatial} (input shape "
                                 f"{tuple(input_shape)})")
            outs.append(o)
            pads.append(p)
        # 1-D layers run as 2-D ones of height 1
        lift = (lambda t, one: (one,) + tuple(t)) if self.rank == 1 else (lambda t, one: tuple(t))
        self._hwc = lift(spatial, 1) + (int(input_shape[-1]),)
        self._win, self._str = lift(window, 1), lift(strides, 1)
        self._dil, self._pad, self._out = lift(dilation, 1), lift(pads, 0), lift(outs, 1)
        return tuple(outs)

    def _as4(self, a, n, h, w, c):
        return a if self.rank == 2 else a.reshape(n, h, w, c)


# Which convolutions model.quantize makes int8 by default (`_Conv._int8_pays`): those whose int8 form is
# predicted faster than the float32 path the layer takes (Winograd or im2col: `winograd_tile` at predict's
# default batch of 32), on the int8 micro-kernel this CPU runs now at the SIMD level in use. Each form's time
# per output pixel (ns) is linear in what it does there, with a patch row of k = kh kw c values read in kh
# window runs and n filters:
#     im2col + float32 GEMM, int8 (quantize the row, int8 GEMM, dequantize):  x0 + x1 k + x2 kh + x3 n + x4 k n
#     Winograd F(m x m, 3 x 3): per tile of t = (m + 2)^2 values, over the m^2 (or fewer) pixels it makes:
#                                                                   x0 + x1 t c + x2 t n + x3 t c n
# (A short row's int8 form pays per row, for its scale, rounding and dequantizing store, more than its
# product saves.) Coefficients fitted by `python bench/conv_int8_rule.py --fit` (Zen 4, 1 thread, predict;
# bench/RESULTS.md "Session 15, engineer qrule"). Another kernel (the emulated VNNI ones of the tests) takes
# generic's.
_CONV_COST = {
    "im2col": {"generic": (0, 0.262, 0.244, 6.84, 0.275), "avx2": (0, 0.143, 1.16, 0.770, 0.0195),
               "avx512": (0, 0.123, 1.93, 0.613, 0.0187)},
    "winograd": {"generic": (0, 1.23, 2.20, 0.251), "avx2": (441, 0.393, 0.629, 0.0233),
                 "avx512": (439, 0.419, 0.552, 0.0193)},
    "int8": {"generic": (0, 0.310, 16.5, 3.12, 0.330), "avx2": (0, 0.0779, 17.6, 1.17, 0.00940),
             "avx2-sign": (0, 0.0646, 16.8, 1.31, 0.0153), "avx512vnni": (0, 0.132, 22.4, 1.02, 0.00312)},
}
_CONV_COST["int8"]["avxvnni"] = _CONV_COST["int8"]["avx2"]   # not on Zen 4: AVX2's (predicts less gain)
_INT8_REF_BATCH = 32
# int8 only where predicted at least 15% faster: the fit's error is 10-25% on a layer; at 1.15 no layer of
# the fit's 300 measured (shape, level) pairs that the rule takes was slower in int8 (at 1.1: two, 0.92x)
_INT8_MARGIN = 1.15


def conv_costs(layer, qmax, level=None, kernel=None):
    """Predicted ns per output pixel of `layer`'s float32 path (Winograd or im2col) and of its int8 form on
    inputs in [-qmax, qmax] (`_CONV_COST`), at the SIMD level and int8 kernel in use (or those given)."""
    from nncore._config import get_simd_level

    level = level or get_simd_level()
    kernel = kernel or _int8.kernel(qmax)
    kh, c, n = layer._win[0], layer._hwc[2], layer.filters
    k = math.prod(layer._win) * c
    rows = (1, k, kh, n, k * n)
    tile = layer._wino_ok and winograd_tile(_INT8_REF_BATCH, layer._out, c, kh)
    if tile:
        oh, ow = layer._out
        mh = tile if kh == 3 else 1
        t = (tile + 2) * (mh + kh - 1)
        per = -(-oh // mh) * -(-ow // tile) / (oh * ow)          # tiles per output pixel
        f32 = per * _dot(_CONV_COST["winograd"][level], (1, t * c, t * n, t * c * n))
    else:
        f32 = _dot(_CONV_COST["im2col"][level], rows)
    int8 = _CONV_COST["int8"]
    return f32, _dot(int8.get(kernel, int8["generic"]), rows)


def _dot(coef, features):
    return sum(a * b for a, b in zip(coef, features))


def int8_gain(layer, qmax):
    """The predicted time of `layer`'s float32 path over its int8 form's (> 1: int8 is faster) here."""
    f32, int8 = conv_costs(layer, qmax)
    return f32 / int8


class _Conv(Int8Quantizable, _Window):
    """Convolution of rank 1 or 2: y = f(conv(x, kernel) + b), one im2col and one GEMM (in the int8
    form: the int8 GEMM of the cols matrix, each patch row quantized as one input row, made and quantized
    a block at a time inside the GEMM: `_conv.conv_int8`)."""

    _paddings = ("valid", "same")
    _policy_computes = True

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1,
                 activation=None, use_bias=True, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, input_shape=None, name=None,
                 batch_input_shape=None, trainable=True, dtype=None, quantization_config=None):
        super().__init__(name=name, input_shape=input_shape, batch_input_shape=batch_input_shape,
                         trainable=trainable)
        cls = type(self).__name__
        if isinstance(filters, bool) or not isinstance(filters, (int, np.integer)) or filters <= 0:
            raise ValueError(f"{cls}: filters must be a positive int, got {filters!r}")
        self.filters = int(filters)
        self.kernel_size = _tuple(kernel_size, self.rank, "kernel_size", cls)
        self.strides = _tuple(strides, self.rank, "strides", cls)
        self.dilation_rate = _tuple(dilation_rate, self.rank, "dilation_rate", cls)
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(f"{cls}: strides > 1 together with dilation_rate > 1 is not supported (as in Keras), "
                             f"got strides={self.strides}, dilation_rate={self.dilation_rate}")
        self.padding = _padding(padding, cls, self._paddings)
        _data_format(data_format, cls)
        _init_affine(self, activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
                     bias_regularizer)
        self._init_quantization(dtype, quantization_config)

    def build(self, input_shape):
        self._geometry(input_shape, self.kernel_size, self.strides, self.dilation_rate, self.padding)
        c = self._hwc[2]
        self._declare_int8able(self.kernel_size + (c, self.filters), self.kernel_initializer,
                               self.kernel_regularizer)
        if self.use_bias:
            self.add_weight("bias", (self.filters,), self.bias_initializer, self.bias_regularizer)
        # 1x1, stride 1, no padding: x itself is the (batch h w, c) cols matrix
        self._direct = (math.prod(self._win) == 1 and math.prod(self._str) == 1 and not any(self._pad))
        # 3x3 (Conv1D: 3), stride 1, no dilation: Winograd may take it (the tile is chosen per batch size)
        self._wino_ok = self._win in ((3, 3), (1, 3)) and self._str == (1, 1) and self._dil == (1, 1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + tuple(self._out[2 - self.rank:]) + (self.filters,)

    def _int8_pays(self, qmax):
        """Whether model.quantize takes this layer by default: its int8 form is predicted faster (`int8_gain`)."""
        return int8_gain(self, qmax) >= _INT8_MARGIN

    def _bind(self, params_of, grads_of):
        super()._bind(params_of, grads_of)
        self._int8_views()

    def _int8_views(self):
        k = math.prod(self.kernel.shape[:-1])
        self._k2 = self.kernel.reshape(k, self.filters)          # (kh kw c, filters) views, made once
        dk = self._grad_of.get("kernel")                         # none in the int8 form
        self._dk2 = None if dk is None else dk.reshape(k, self.filters)
        shape4 = self._win + (self._hwc[2], self.filters)               # (kh, kw, c, f), Conv1D too
        self._k4 = self.kernel.reshape(shape4)
        self._dk4 = None if dk is None else dk.reshape(shape4)

    def _buffers(self, n):
        # [cols, z, y, delta, dx, y as returned, Winograd (m, U, V, M, dU) or None, (x, K) rounded to bfloat16
        # for the float32 GEMM or None] for a batch of n, allocated once per batch size (the int8 form:
        # no cols (conv_int8 makes its rows inside), no Winograd)
        dt = self._float_dtype
        m = n * self._out[0] * self._out[1]
        tile = (self._wino_ok and self.quantization_mode is None   # Winograd: float32/64 or the bf16 form
                and winograd_tile(n, self._out, self._hwc[2], self._win[0]))
        wino = rounded = None
        if tile:   # [m, U, V, M, dU, the sizes of V, M, dU]: V, M and dU made by the first training forward
            sizes = _conv.wino_sizes((n,) + self._hwc, self._k4.shape, tile, self._out)
            wino = [tile, np.empty(sizes[0], dt), None, None, None, sizes[1:] + sizes[:1]]
        elif _bf16_on_float32(self, *self._k2.shape):
            rounded = (np.empty((n,) + self._hwc, dt), np.empty(self._k2.shape, dt))
        int8 = self.quantization_mode is not None
        # the cols matrix: for the bf16 GEMM's im2col, else made by the first backward that needs it (`_cols_buf`:
        # dcols, or the cols of a forward that kept none)
        cols = np.empty((m, self._k2.shape[0]), dt) if (self.compute_dtype == "bfloat16" and not (
            rounded or self._direct or wino or int8)) else None
        z = np.empty((m, self.filters), dt)
        y = z if self._code == 0 else np.empty((m, self.filters), dt)
        b = [cols, z, y, np.empty((m, self.filters), dt), None,
             y.reshape((n,) + self.output_shape[1:]), wino, rounded, None]   # [8]: `_pair_forward`'s
        return self._keep(n, b)

    def _winograd(self, x, kernel, out, b, act, alpha, nt, keep=False):
        # out := act(conv(x, kernel) + b) by Winograd F(m x m, 3 x 3) (stands for the GEMM in _affine_act);
        # keep: V kept for backward (V, and backward's M and dU, made by the first such forward), else the
        # tiles run a block at a time with nothing kept
        wino = self._cur[6]
        if keep and wino[2] is None:
            wino[2:5] = [np.empty(size, wino[1].dtype) for size in wino[5]]
        tile, U, V = wino[:3]
        _conv.wino_forward(x, self._k4, b, U, V if keep else None, out.reshape((x.shape[0],) + self._out + (self.filters,)),
                           tile, self._pad, act, alpha, nt, self.compute_dtype == "bfloat16")

    def _cols_buf(self):
        """The cols matrix of this batch size (made once, by the first call: backward's dcols, or cols to keep)."""
        bufs = self._cur
        if bufs[0] is None:
            bufs[0] = np.empty((bufs[1].shape[0], self._k2.shape[0]), bufs[1].dtype)
        return bufs[0]

    def _im2col_product(self, x4, kernel, out, b, act, alpha, nt, cols=None, rounded=False):
        # out := act(im2col(x) kernel + b), the cols rows made and multiplied a row block at a time (in
        # cache; stored into cols when given, else never stored: float32/64 backward makes them again, a block
        # at a time, `conv_backward_weights`); rounded: x and kernel hold bfloat16 values (mixed_bfloat16's
        # short k), out rounded as the bf16 GEMM rounds it (as `_rounded_product`)
        _conv.conv_forward(x4, kernel, out, b, act | ACT_BF16 if rounded else act, alpha, self._win, self._str,
                           self._dil, self._pad, self._out, cols=cols, n_threads=nt)

    def _int8_conv(self, layer, x4, kernel, out, act, alpha):
        # out := act(quantize_rows(im2col(x)) K + b) dequantized (stands for the int8 GEMM in _affine_act)
        return _conv.conv_int8(x4, kernel, self.kernel_scale, out, self.bias if self.use_bias else None, act, alpha,
                               self._win, self._str, self._dil, self._pad, self._out, qmax=self._act_qmax,
                               n_threads=self._n_threads)

    def forward(self, x, training=False):
        # cols = im2col(x) ; z = cols K + b ; y = f(z)
        if x.shape[1:] != self.input_shape[1:]:
            self._check_features(x)
        n = x.shape[0]
        bufs = self._bufs.get(n) or self._buffers(n)
        self._x, self._cur = x, bufs
        h, w, c = self._hwc
        if bufs[6]:                               # Winograd: V (what backward needs) replaces cols
            self._cols = None
            self._wino_kept = training
            _affine_act(self, self._as4(x, n, h, w, c), None, bufs[1], bufs[2],
                        functools.partial(self._winograd, keep=training))
            return bufs[5]
        x4, kernel = self._as4(x, n, h, w, c), self._k2
        if self.quantization_mode is not None and not self._direct:   # int8: the cols rows made in the GEMM
            self._cols = None
            _affine_act(self, x4, kernel, bufs[1], bufs[2], self._int8_conv)
            return bufs[5]
        rounded = bufs[7] is not None             # short k under mixed_bfloat16: float32 GEMM, rounded operands
        if rounded:
            x4, kernel = bf16_round(x4, bufs[7][0]), bf16_round(self._k2, bufs[7][1])
        if self._direct:
            cols = x4.reshape(n * h * w, c)
        elif rounded or self.compute_dtype != "bfloat16":   # float32/64 or rounded: im2col inside the product
            # no cols: backward makes their rows again (from the rounded x, bufs[7][0], when rounded)
            self._cols = None
            _affine_act(self, x4, kernel, bufs[1], bufs[2], functools.partial(self._im2col_product, rounded=rounded))
            return bufs[5]
        else:
            cols = _conv.im2col(x4, bufs[0], self._win, self._str, self._dil, self._pad, self._out, self._n_threads)
        self._cols = cols
        # softmax: over the filters
        _affine_act(self, cols, kernel, bufs[1], bufs[2], _rounded_product if rounded else None)
        return bufs[5]

    def backward(self, dy):
        # delta = dy * f'(z) ; dK = cols^T delta ; db = sum_rows delta ; dx = col2im(delta K^T)
        if self.quantization_mode is not None:
            self._refuse_training()
        cols, z, y, delta, dx, _, wino, rounded = self._cur[:8]
        n = self._x.shape[0]
        h, w, c = self._hwc
        db = self._grad_of["bias"] if self.use_bias else None
        # float32/64 or rounded (ACT_BF16: delta and dK rounded) on im2col: delta, db and dK in one pass over
        # row blocks, the cols rows made in cache
        x4 = rounded[0] if rounded else self._as4(self._x, n, h, w, c)
        fused = not (wino or self._code is None or (self.compute_dtype == "bfloat16" and not rounded))
        if fused:
            delta = _conv.conv_backward_weights(
                x4, dy.reshape(y.shape), y, self._dk2, db, self._code | ACT_BF16 if rounded else self._code,
                self._alpha, z if self._keep_z else None, delta if self._need_dx else None, self._win, self._str,
                self._dil, self._pad, self._out, self._n_threads)
        else:
            delta = (_rounded_delta if rounded else _act_delta)(self, dy.reshape(y.shape), z, y, delta)
            if self.use_bias:
                _bias_grad(self, delta, db)
        if self._need_dx and dx is None:          # once per batch size, only where dx is needed
            dx = self._cur[4] = np.empty(self._x.shape, self._x.dtype)
        if wino:                                  # dK and dx by the transposed Winograd transforms
            if not self._wino_kept:               # a forward outside training kept no V: run it again
                self._winograd(self._as4(self._x, n, h, w, c), None, np.empty_like(z), None, 0, 0.0,
                               self._n_threads, keep=True)
                self._wino_kept = True
            tile, U, V, M, dU = wino[:5]
            _conv.wino_backward(delta.reshape((n,) + self._out + (self.filters,)), U, V, M, dU, self._dk4,
                                self._as4(dx, n, h, w, c) if self._need_dx else None, (h, w), tile, self._pad,
                                self._n_threads, self.compute_dtype == "bfloat16")
            return dx if self._need_dx else None
        if not fused:
            # rounded: bf16 operands, dK a bfloat16 value as the bf16 GEMM gives it (its epilogue)
            mm, act = (gemm, ACT_BF16) if rounded else (self._gemm, 0)
            if self._cols is None:                # no cols kept (a softmax on im2col): make them
                self._cols = _conv.im2col(x4, self._cols_buf(), self._win, self._str, self._dil, self._pad,
                                          self._out, self._n_threads)
            mm(self._cols, delta, self._dk2, trans_a=True, act=act, n_threads=self._n_threads)
        return self._im2col_dx(delta, rounded)

    def _im2col_dx(self, delta, rounded):
        """dx = col2im(delta K^T) (direct: delta K^T) into the batch's dx buffer, or None where no dx is needed;
        rounded: bf16 operands, dcols bfloat16 values as the bf16 GEMM gives them (its epilogue)."""
        if not self._need_dx:
            return None
        n = self._x.shape[0]
        h, w, c = self._hwc
        dx = self._cur[4]
        if dx is None:
            dx = self._cur[4] = np.empty(self._x.shape, self._x.dtype)
        mm, kernel, act = (gemm, rounded[1], ACT_BF16) if rounded else (self._gemm, self._k2, 0)
        if self._direct:                          # dx = delta K^T, straight into dx
            mm(delta, kernel, dx.reshape(n * h * w, c), trans_b=True, act=act, n_threads=self._n_threads)
            return dx
        cols = self._cols_buf()
        mm(delta, kernel, cols, trans_b=True, act=act, n_threads=self._n_threads)   # dcols, in cols' buffer
        _conv.col2im(cols, self._as4(dx, n, h, w, c), self._win, self._str, self._dil, self._pad, self._out,
                     self._n_threads)
        return dx

    # ---- Conv2D (relu or linear) -> MaxPooling2D(2x2, stride 2, 'valid'), run as one step by the plan ----
    def _pool_pair(self, pool):
        """(forward, backward) of this convolution and the MaxPooling2D `pool` that alone reads its output,
        run as one step (nncore/_plan.py pairs them), or None where the pair does not qualify. On the
        float32/64 im2col route (mixed_bfloat16's short k too) the conv output is relu'd and pooled a block
        at a time in cache (`conv_pool_forward`: never written), backward makes delta from the pooled y, the
        uint8 argmax and the pooled gradient inside the weight-gradient pass (`conv_pool_backward_weights`);
        on Winograd (its bf16 form too) the pool is in the output transform and delta is made in the
        output-gradient transform (`wino_pool_forward` / `wino_pool_backward`; db by `unpool2_colsum`);
        other routes (the bf16 GEMM, 1x1, int8) run the two layers as they are. The same bits as the two
        layers one after the other."""
        if not (self.rank == 2 and type(pool) is MaxPooling2D and pool.pool_size == (2, 2)
                and pool.strides == (2, 2) and pool.padding == "valid" and self._code in (0, _RELU)):
            return None
        return functools.partial(self._pair_forward, pool), functools.partial(self._pair_backward, pool)

    def _pair_route(self, bufs):
        """How this batch's pair runs: "wino" (Winograd, the pool in its output transform), "im2col" (the
        float32/64 or rounded im2col route) or None (the two layers as they are)."""
        if self.quantization_mode is not None or self._direct:
            return None
        if bufs[6] is not None:
            return "wino" if self._win == (3, 3) else None
        return "im2col" if bufs[7] is not None or self.compute_dtype != "bfloat16" else None

    def _pair_forward(self, pool, x, training=False):
        if x.shape[1:] != self.input_shape[1:]:
            self._check_features(x)
        n = x.shape[0]
        bufs = self._bufs.get(n) or self._buffers(n)
        self._paired = None
        route = self._pair_route(bufs)
        if route is None:
            return pool.forward(self.forward(x, training), training)
        self._x, self._cur, self._cols = x, bufs, None
        if bufs[8] is None:                       # the pooled y and its argmax, once per batch size
            yp = np.empty((n,) + pool.output_shape[1:], bufs[1].dtype)
            bufs[8] = (yp, np.empty(yp.shape, np.uint8))
        yp, ix = bufs[8]                          # the argmax always: a backward may follow any forward
        x4, b = self._as4(x, n, *self._hwc), self.bias if self.use_bias else None
        if route == "wino":                       # V kept for backward in training (as `forward`)
            wino = bufs[6]
            if training and wino[2] is None:
                wino[2:5] = [np.empty(size, wino[1].dtype) for size in wino[5]]
            self._wino_kept = training
            _conv.wino_pool_forward(x4, self._k4, b, wino[1], wino[2] if training else None, yp, ix, self._out,
                                    wino[0], self._pad, self._code, self._alpha, self._n_threads,
                                    self.compute_dtype == "bfloat16")
        else:
            kernel, rounded = self._k2, bufs[7]
            if rounded:
                x4, kernel = bf16_round(x4, rounded[0]), bf16_round(self._k2, rounded[1])
            _conv.conv_pool_forward(x4, kernel, yp, b, self._code | ACT_BF16 if rounded else self._code, self._alpha,
                                    self._win, self._str, self._dil, self._pad, self._out, idx=ix,
                                    n_threads=self._n_threads)
        self._paired = bufs[8]
        return yp

    def _pair_backward(self, pool, dy):
        if getattr(self, "_paired", None) is None:   # the unfused route ran
            return self.backward(pool.backward(dy))
        if self.quantization_mode is not None:
            self._refuse_training()
        yp, ix = self._paired
        dy = dy.reshape(yp.shape)
        wino, rounded = self._cur[6], self._cur[7]
        if wino is not None:                      # delta made in the output-gradient transform
            n = self._x.shape[0]
            h, w, c = self._hwc
            db = self._grad_of["bias"] if self.use_bias else None
            if db is not None:                    # `_bias_grad`'s sum of delta
                _conv.unpool2_colsum(yp, ix, dy, db, self._out, self._code)
                if self.compute_dtype == "bfloat16":
                    bf16_round(db, db)
            dx = self._cur[4]
            if self._need_dx and dx is None:
                dx = self._cur[4] = np.empty(self._x.shape, self._x.dtype)
            if not self._wino_kept:               # a forward outside training kept no V: run it again
                self._pair_forward(pool, self._x, True)
            tile, U, V, M, dU = wino[:5]
            _conv.wino_pool_backward(dy, yp, ix, U, V, M, dU, self._dk4,
                                     self._as4(dx, n, h, w, c) if self._need_dx else None, (h, w), self._out, tile,
                                     self._pad, self._code, self._n_threads, self.compute_dtype == "bfloat16")
            return dx if self._need_dx else None
        x4 = rounded[0] if rounded else self._as4(self._x, self._x.shape[0], *self._hwc)
        delta = _conv.conv_pool_backward_weights(
            x4, dy, yp, ix, self._dk2, self._grad_of["bias"] if self.use_bias else None,
            self._code | ACT_BF16 if rounded else self._code, self._cur[3] if self._need_dx else None, self._win,
            self._str, self._dil, self._pad, self._out, self._n_threads)
        return self._im2col_dx(delta, rounded)

    def get_config(self):
        cfg = super().get_config()
        cfg.update(filters=self.filters, kernel_size=list(self.kernel_size), strides=list(self.strides),
                   padding=self.padding, data_format="channels_last", dilation_rate=list(self.dilation_rate),
                   **_affine_config(self))
        return self._int8_config(cfg)


class Conv2D(_Conv):
    """2-D convolution over (batch, height, width, channels) inputs: y = f(conv(x, kernel) + b).

    Parameters
    ----------
    filters : int
        Number of output channels.
    kernel_size : int or tuple of 2 ints
    strides : int or tuple of 2 ints, default=(1, 1)
    padding : {'valid', 'same'}, default='valid'
    data_format : None or 'channels_last' (the only layout)
    dilation_rate : int or tuple of 2 ints, default=(1, 1) (not together with strides > 1)
    activation : str, nncore.activations function or None, default=None (linear)
    use_bias : bool, default=True
    kernel_initializer, bias_initializer : name or initializer, default='glorot_uniform', 'zeros'
    kernel_regularizer, bias_regularizer : name, regularizer or None
    dtype : None, str or nncore.mixed_precision.Policy
        The dtype policy (None: the global one); 'mixed_bfloat16' runs the three products with
        bfloat16 operands and float32 sums, float32 weights: on the bf16 GEMM (im2col), or by
        Winograd's bf16 form where `winograd_tile` picks Winograd; or the int8 form set by `quantize`.

    Notes
    -----
    kernel has shape (kh, kw, in_channels, filters) as in Keras. With the
    padded input xp (padding 'same' as in Keras, see the module docstring):
        z[b, i, j, f] = sum_{p, q, c} xp[b, i s_h + p d_h, j s_w + q d_w, c] kernel[p, q, c, f] + bias[f]
        y = f(z)
    Forward: cols = im2col(x) (batch oh ow, kh kw c); z = cols K + b with
    K = kernel.reshape(kh kw c, filters), one GEMM with the bias and f fused.
    Backward: delta = dy * f'(z); dK = cols^T delta; db = sum_rows delta;
    dx = col2im(delta K^T).
    A 3x3 stride-1 undilated kernel may take Winograd F(2x2, 3x3) or
    F(4x4, 3x3) instead (the same z, rounded differently; docs/models.md):
    z = A^T [(G g G^T) .* (B^T d B)] A per output tile, dK and dx by the
    transposed transforms; `winograd_tile` chooses from the shapes.
    """

    rank = 2


class Conv1D(_Conv):
    """1-D convolution over (batch, steps, channels) inputs, kernel (k, in_channels, filters).

    The arguments and formulas are Conv2D's with one spatial axis (run as a
    Conv2D of height 1); padding may also be 'causal' (pad (k - 1) d steps in
    front: output t sees inputs up to t only).
    """

    rank = 1
    _paddings = ("valid", "same", "causal")


class _Pool(_Window):
    """Max or average pooling of rank 1 or 2; the padding of 'same' never enters a max or a mean."""

    _max = True

    def __init__(self, pool_size=None, strides=None, padding="valid", data_format=None, name=None,
                 input_shape=None, batch_input_shape=None, trainable=True):
        super().__init__(name=name, input_shape=input_shape, batch_input_shape=batch_input_shape,
                         trainable=trainable)
        cls = type(self).__name__
        self.pool_size = _tuple(2 if pool_size is None else pool_size, self.rank, "pool_size", cls)
        self.strides = self.pool_size if strides is None else _tuple(strides, self.rank, "strides", cls)
        self.padding = _padding(padding, cls)
        _data_format(data_format, cls)

    def build(self, input_shape):
        self._geometry(input_shape, self.pool_size, self.strides, (1,) * self.rank, self.padding)

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + tuple(self._out[2 - self.rank:]) + (self._hwc[2],)

    def _buffers(self, n, dtype):
        # [y, argmax index (max only), dx, y as returned, dx as returned]; the kernels see 4-D arrays
        y = np.empty((n,) + self._out + (self._hwc[2],), dtype)
        idx = np.empty(y.shape, np.int32) if self._max else None
        dx = np.empty((n,) + self._hwc, dtype)
        return self._keep((n, dtype), [y, idx, dx, y.reshape((n,) + self.output_shape[1:]),
                                       dx.reshape((n,) + self.input_shape[1:])])

    def forward(self, x, training=False):
        if x.shape[1:] != self.input_shape[1:]:
            self._check_features(x)
        n = x.shape[0]
        bufs = self._bufs.get((n, x.dtype)) or self._buffers(n, x.dtype)
        self._cur = bufs
        x4 = self._as4(x, n, *self._hwc)
        if self._max:    # y = max over the window; training keeps the argmax for backward
            _conv.maxpool_forward(x4, bufs[0], bufs[1] if training else None, self._win, self._str, self._pad,
                                  self._n_threads)
        else:            # y = mean over the window's taps inside the input
            _conv.avgpool_forward(x4, bufs[0], self._win, self._str, self._pad, self._n_threads)
        return bufs[3]

    def backward(self, dy):
        y, idx, dx, _, dx_out = self._cur
        dy = dy.reshape(y.shape)
        if self._max:    # dx[argmax] += dy
            _conv.maxpool_backward(idx, dy, dx, self._win, self._str, self._pad, self._n_threads)
        else:            # dx[tap] += dy / (taps inside the window)
            _conv.avgpool_backward(dy, dx, self._win, self._str, self._pad, self._n_threads)
        return dx_out

    def get_config(self):
        cfg = super().get_config()
        cfg.update(pool_size=list(self.pool_size), strides=list(self.strides), padding=self.padding,
                   data_format="channels_last")
        return cfg


class MaxPooling2D(_Pool):
    """Max pooling over (batch, height, width, channels) inputs.

    Parameters
    ----------
    pool_size : int or tuple of 2 ints, default=(2, 2)
    strides : int, tuple of 2 ints or None (= pool_size)
    padding : {'valid', 'same'}, default='valid'
    data_format : None or 'channels_last'

    Notes
    -----
    y[b, i, j, c] = max over the window at (i s_h - p_t, j s_w - p_l) of the
    taps inside the input ('same' padding never wins). Backward: dx = 0, then
    dx[argmax] += dy, the argmax being the first maximum in row-major window
    order (as in PyTorch's and Keras's gradients).
    """

    rank = 2
    _max = True


class AveragePooling2D(_Pool):
    """Average pooling over (batch, height, width, channels) inputs.

    Arguments as MaxPooling2D. y = mean over the window's taps inside the input:
    with 'same' the padding is left out of the count (Keras). Backward: every
    tap inside a window receives dy / (number of taps inside).
    """

    rank = 2
    _max = False


class MaxPooling1D(_Pool):
    """Max pooling over (batch, steps, channels) inputs: MaxPooling2D with one spatial axis (pool_size 2)."""

    rank = 1
    _max = True


class AveragePooling1D(_Pool):
    """Average pooling over (batch, steps, channels) inputs: AveragePooling2D with one spatial axis."""

    rank = 1
    _max = False


class _GlobalPool(_Window):
    """Pooling over all spatial axes: (batch, ..., c) -> (batch, c) (keepdims: ones for the spatial axes)."""

    _max = True

    def __init__(self, data_format=None, keepdims=False, name=None, input_shape=None, batch_input_shape=None,
                 trainable=True):
        super().__init__(name=name, input_shape=input_shape, batch_input_shape=batch_input_shape,
                         trainable=trainable)
        _data_format(data_format, type(self).__name__)
        self.keepdims = bool(keepdims)

    def build(self, input_shape):
        one = (1,) * self.rank
        self._geometry(input_shape, one, one, one, "valid")
        self._win = self._hwc[:2]           # one window: the whole image
        self._out = (1, 1)

    def compute_output_shape(self, input_shape):
        c = self._hwc[2]
        return (input_shape[0],) + (1,) * self.rank + (c,) if self.keepdims else (input_shape[0], c)

    def _buffers(self, n, dtype):
        c = self._hwc[2]
        y = np.empty((n, 1, 1, c), dtype)
        idx = np.empty((n, 1, 1, c), np.int32) if self._max else None
        dx = np.empty((n,) + self._hwc, dtype)
        return self._keep((n, dtype), [y, idx, dx, y.reshape((n,) + self.output_shape[1:]),
                                       dx.reshape((n,) + self.input_shape[1:])])

    def forward(self, x, training=False):
        if x.shape[1:] != self.input_shape[1:]:
            self._check_features(x)
        n = x.shape[0]
        bufs = self._bufs.get((n, x.dtype)) or self._buffers(n, x.dtype)
        self._cur = bufs
        x4 = self._as4(x, n, *self._hwc)
        if self._max:    # y[b, c] = max_{i, j} x[b, i, j, c]
            _conv.maxpool_forward(x4, bufs[0], bufs[1] if training else None, self._win, (1, 1), (0, 0),
                                  self._n_threads)
        else:            # y[b, c] = mean_{i, j} x[b, i, j, c]
            _conv.avgpool_forward(x4, bufs[0], self._win, (1, 1), (0, 0), self._n_threads)
        return bufs[3]

    def backward(self, dy):
        y, idx, dx, _, dx_out = self._cur
        dy = dy.reshape(y.shape)
        if self._max:    # dx[b, argmax, c] = dy[b, c]
            _conv.maxpool_backward(idx, dy, dx, self._win, (1, 1), (0, 0), self._n_threads)
        else:            # dx[b, i, j, c] = dy[b, c] / (h w)
            _conv.avgpool_backward(dy, dx, self._win, (1, 1), (0, 0), self._n_threads)
        return dx_out

    def get_config(self):
        cfg = super().get_config()
        cfg.update(data_format="channels_last", keepdims=self.keepdims)
        return cfg


class GlobalMaxPooling2D(_GlobalPool):
    """y[b, c] = max over height and width of x[b, :, :, c]; the gradient goes to the first maximum."""

    rank = 2
    _max = True


class GlobalAveragePooling2D(_GlobalPool):
    """y[b, c] = mean over height and width of x[b, :, :, c]; backward spreads dy / (h w)."""

    rank = 2
    _max = False


class GlobalMaxPooling1D(_GlobalPool):
    """y[b, c] = max over the steps of x[b, :, c]; the gradient goes to the first maximum."""

    rank = 1
    _max = True


class GlobalAveragePooling1D(_GlobalPool):
    """y[b, c] = mean over the steps of x[b, :, c]; backward spreads dy / steps.

    With a mask (Masking, Embedding(mask_zero=True) before it) the mean is over the valid steps, as
    in Keras: y[b, c] = sum_t m[b, t] x[b, t, c] / n_b, n_b = sum_t m[b, t], and dx[b, t, c] =
    m[b, t] dy[b, c] / n_b. A row with no valid step gives 0 (Keras: 0 / 0 = NaN). The mask stops here.
    """

    rank = 1
    _max = False
    _uses_mask = True

    def forward(self, x, training=False, mask=None):
        self._masked = mask is not None
        if mask is None:
            return super().forward(x, training)
        if x.shape[1:] != self.input_shape[1:]:
            self._check_features(x)
        n, t = x.shape[0], x.shape[1]
        mask = np.asarray(mask)
        if mask.dtype.kind not in "biuf":
            raise TypeError(f"layer {self.name!r} (GlobalAveragePooling1D): the mask must hold bool or numbers, "
                            f"got dtype {mask.dtype}")
        if mask.shape != (n, t):
            raise ValueError(f"layer {self.name!r} (GlobalAveragePooling1D): expected a mask of shape {(n, t)}, "
                             f"got {mask.shape}")
        key = ("mask", n, x.dtype)
        mb = self._bufs.get(key)
        if mb is None:      # the mask as floats (n, 1, t), the valid counts (n, 1, 1), dy / count (n, 1, c)
            mb = self._keep(key, [np.empty((n, 1, t), x.dtype), np.empty((n, 1, 1), x.dtype),
                                  np.empty((n, 1, x.shape[2]), x.dtype)])
        bufs = self._bufs.get((n, x.dtype)) or self._buffers(n, x.dtype)
        self._cur, self._mcur = bufs, mb
        mf, count, _ = mb
        np.copyto(mf[:, 0, :], mask, casting="unsafe")
        np.sum(mf, axis=2, keepdims=True, out=count)
        np.maximum(count, 1, out=count)
        y3 = bufs[0].reshape(n, 1, x.shape[2])
        np.matmul(mf, x, out=y3)            # sum over the valid steps
        np.divide(y3, count, out=y3)
        return bufs[3]

    def backward(self, dy):
        if not self._masked:
            return super().backward(dy)
        _, _, dx, _, dx_out = self._cur
        mf, count, scaled = self._mcur
        np.divide(dy.reshape(scaled.shape), count, out=scaled)
        np.multiply(mf.transpose(0, 2, 1), scaled, out=dx.reshape(dx.shape[0], -1, scaled.shape[2]))
        return dx_out
