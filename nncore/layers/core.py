"""Dense, Activation, Dropout and Flatten: forward and backward side by side.

Rows are samples: Y = f(X W + b) with W of shape (n_in, n_out) (Keras `kernel`).
"""
import functools

import numpy as np

from nncore import _random
from nncore import activations as _activations
from nncore._kernels import ACT_BF16
from nncore._kernels import elementwise as _ew
from nncore._kernels.gemm import DenseLayers, bf16_round, dense_chain, gemm
from nncore._kernels import int8 as _int8
from nncore._kernels.int8 import gemm_int8
from nncore import initializers, regularizers
from nncore.layers.base import Layer
from nncore.layers.quantized import Int8Quantizable

_act_forward = _ew.act_forward
_act_backward = _ew.act_backward
_softmax_forward = _ew.softmax_forward
_softmax_backward = _ew.softmax_backward
_colsum = _ew.colsum


def _serialize(obj):
    """A JSON-able identifier for an initializer/regularizer given by name or as an object."""
    if obj is None or isinstance(obj, (str, dict)):
        return obj
    if hasattr(obj, "get_config"):
        return {"class_name": type(obj).__name__, "config": obj.get_config()}
    raise ValueError(f"cannot serialize {obj!r}: give a name or an object with get_config()")


def _init_affine(layer, activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
                 bias_regularizer):
    """The activation and kernel/bias settings of a layer y = f(x K + b) (Dense, the convolutions);
    names are resolved now so that unknown ones fail at construction."""
    layer.activation = _activations.get(activation)
    layer._act_name, layer._code, layer._alpha = _activations.kernel_spec(layer.activation)
    layer._keep_z = layer._code is None or _ew.needs_input(layer._code)
    layer.use_bias = bool(use_bias)
    layer.kernel_initializer, layer.bias_initializer = kernel_initializer, bias_initializer
    layer.kernel_regularizer, layer.bias_regularizer = kernel_regularizer, bias_regularizer
    initializers.get(kernel_initializer)
    initializers.get(bias_initializer)
    regularizers.get(kernel_regularizer)
    regularizers.get(bias_regularizer)


def _affine_config(layer):
    """The config entries `_init_affine` takes."""
    return dict(activation=layer._act_name, use_bias=layer.use_bias,
                kernel_initializer=_serialize(layer.kernel_initializer),
                bias_initializer=_serialize(layer.bias_initializer),
                kernel_regularizer=_serialize(layer.kernel_regularizer),
                bias_regularizer=_serialize(layer.bias_regularizer))


def _gemm_product(x, kernel, out, b, act, alpha, nt, mm=gemm):
    """out := act(x K + b): one GEMM `mm` (the layer's compute dtype's) with the bias and the activation
    in its epilogue."""
    mm(x, kernel, out, bias=b, act=act, act_alpha=alpha, n_threads=nt)


# mixed_bfloat16 products of a layer whose kernel matrix (k x n: Dense's W, a convolution's kh kw c x filters)
# has a short k (k < _BF16_SHORT_K: e.g. 3x3 on 1-7 channels, a Dense on a few features) or a narrow n (n <
# _BF16_NARROW_N: a Dense(10) head, a conv of a few filters) run on the float32 GEMM with operands rounded to
# bfloat16 beforehand (x, the kernel, delta): a product of two bfloat16 values is exact in float32, so this is
# the bf16 product summed in the float32 GEMM's order; y, dW and dx are rounded as the bf16 GEMM rounds them
# (ACT_BF16 in the float32 GEMM's epilogue while the tile is in L1). There the bf16 GEMM's packing and
# per-tile costs outweigh vdpbf16ps's rate: conv1 of the cnn row (k = 9) ran 3-5x slower on it than on the
# float32 GEMM (bench/RESULTS.md, session 10); the cnn row's Dense(10) head on 1600 features (its forward,
# dW and dx) took 0.36 ms on the bf16 GEMM against 0.25 on this route with the roundings at avx512, 0.59
# against 0.36 at avx2 (session 17: the bf16 GEMM's 32-column micro-tile a third full; session 11 had it the
# other way, 0.42 against 0.50, before the float32 GEMM's epilogue and panels changed). One rule for every
# layer: `_bf16_on_float32`.
_BF16_SHORT_K = 64
_BF16_NARROW_N = 16


def _bf16_on_float32(layer, k, n):
    """Whether `layer` (compute dtype bfloat16) runs the products of its k x n kernel matrix on the float32
    GEMM with rounded operands: a short k or a narrow n."""
    return (layer.compute_dtype == "bfloat16" and layer.quantization_mode is None
            and (k < _BF16_SHORT_K or n < _BF16_NARROW_N))


def _rounded_product(x, kernel, out, b, act, alpha, nt):
    """out := bf(act(x K + b)) on the float32 GEMM, for x and K holding bfloat16 values (exact products)."""
    gemm(x, kernel, out, bias=b, act=act | ACT_BF16, act_alpha=alpha, n_threads=nt)


def _rounded_delta(layer, dy, z, y, delta):
    """delta = bf(dy * f'(z)): `_act_delta` with the result rounded to bfloat16 (relu's in its own pass)."""
    if layer._code is None or layer._code == 0:
        return bf16_round(_act_delta(layer, dy, z, y, delta), delta)
    _act_backward(layer._code | ACT_BF16, layer._alpha, z if layer._keep_z else None, y, dy, delta,
                  layer._n_threads)
    return delta


def _affine_act(layer, x, kernel, z, y, product=None):
    """z = x K + b ; y = f(z), for a layer with ``_code``/``_alpha``/``_keep_z`` (Dense, the convolutions):
    one GEMM with the bias and f in its epilogue, or f in a pass of its own when f' needs z or f is softmax.
    ``product`` computes ``out := act(x K + b)`` (default: the GEMM of the layer's compute dtype, whose
    output is rounded to bfloat16 under mixed_bfloat16; or a convolution's other route to it).
    Returns y (z's buffer itself when f is linear)."""
    if layer.quantization_mode is not None:
        return _affine_act_int8(layer, x, kernel, z, y, product)
    b = layer.bias if layer.use_bias else None
    nt = layer._n_threads
    if product is None:
        product = functools.partial(_gemm_product, mm=layer._gemm)
    if layer._code is None:                   # softmax: separate row-wise pass
        product(x, kernel, z, b, 0, 0.0, nt)
        _softmax_forward(z, y)
    elif layer._keep_z:                       # f' needs z (gelu, swish)
        product(x, kernel, z, b, 0, 0.0, nt)
        _act_forward(layer._code, layer._alpha, z, y, nt)
    else:                                     # bias and f fused into the GEMM epilogue
        product(x, kernel, y, b, layer._code, layer._alpha, nt)
    return y


def _int8_matmul(layer, x, kernel, out, act=0, alpha=0.0):
    """out = act(x K + b) for a quantized layer: K int8 with its scale `kernel_scale`, x quantized per
    row inside the int8 GEMM (nncore.quantizers)."""
    return gemm_int8(x, kernel, layer.kernel_scale, out, layer.bias if layer.use_bias else None, act, alpha,
                     qmax=layer._act_qmax, n_threads=layer._n_threads)


def _affine_act_int8(layer, x, kernel, z, y, product=None):
    """`_affine_act` on the int8 GEMM; ``product(layer, x, kernel, out, act, alpha)`` computes
    ``out := act(x K + b)`` (default `_int8_matmul`; a convolution's cols matrix of x, made inside)."""
    mm = product or _int8_matmul
    if layer._code is None:
        _softmax_forward(mm(layer, x, kernel, z, 0, 0.0), y)
    elif layer._keep_z:
        _act_forward(layer._code, layer._alpha, mm(layer, x, kernel, z, 0, 0.0), y, layer._n_threads)
    else:
        mm(layer, x, kernel, y, layer._code, layer._alpha)
    return y


def _bias_grad(layer, delta, db):
    """db = sum_rows delta (a bfloat16 value under mixed_bfloat16, as autocast's bias gradient)."""
    _colsum(delta, db, layer._n_threads)
    if layer.compute_dtype == "bfloat16":
        bf16_round(db, db)


def _act_delta(layer, dy, z, y, delta):
    """delta = dy * f'(z) for a layer that ran `_affine_act` (softmax: y (dy - sum(dy y))); returns delta
    (dy itself when f is linear)."""
    if layer._code is None:
        _softmax_backward(y, dy, delta)
    elif layer._code == 0:
        return dy
    else:
        _act_backward(layer._code, layer._alpha, z if layer._keep_z else None, y, dy, delta, layer._n_threads)
    return delta


class Dense(Int8Quantizable, Layer):
    """Fully connected layer: y = f(x W + b).

    Parameters
    ----------
    units : int
        Number of outputs.
    activation : str, nncore.activations function or None, default=None (linear)
    use_bias : bool, default=True
    kernel_initializer, bias_initializer : name or initializer, default='glorot_uniform', 'zeros'
    kernel_regularizer, bias_regularizer : name, regularizer or None
    input_dim : int, optional
        Shorthand for ``input_shape=(input_dim,)`` on a model's first layer.
    dtype : None, str or nncore.mixed_precision.Policy
        The dtype policy: None (the global one), 'float32', 'float64', 'mixed_bfloat16' (float32
        weights, the three products on the bf16 GEMM: nncore.mixed_precision); or the int8 form
        'int8_from_float32' / 'int8_from_float64' (what `quantize` makes and configs record).
    quantization_config : dict, optional
        The int8 form's input quantizer, as its config records it.

    Notes
    -----
    Forward: z = x W + b ; y = f(z) (one GEMM call with the bias and f in its epilogue).
    Backward: delta = dy * f'(z) ; dW = x^T delta ; db = sum_rows delta ; dx = delta W^T.
    Inputs of more dimensions, (batch, ..., features), are taken as rows of their last axis (as
    Keras: the same W at every position, e.g. every time step of a sequence); the masks of
    sequences pass through.
    ``quantize("int8")`` makes W int8 with a scale per column, inputs quantized per row at run time
    (nncore.quantizers): inference only.
    """
    supports_masking = True
    _policy_computes = True

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None, input_dim=None,
                 input_shape=None, name=None, batch_input_shape=None, trainable=True, dtype=None,
                 quantization_config=None):
        if input_dim is not None and input_shape is None:
            input_shape = (input_dim,)
        elif input_dim is not None and tuple(np.atleast_1d(input_shape)) != (input_dim,):
            raise ValueError(f"Dense: input_dim={input_dim!r} and input_shape={input_shape!r} disagree; give one")
        super().__init__(name=name, input_shape=input_shape, batch_input_shape=batch_input_shape,
                         trainable=trainable)
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units <= 0:
            raise ValueError(f"Dense: units must be a positive int, got {units!r}")
        self.units = int(units)
        _init_affine(self, activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
                     bias_regularizer)
        self._init_quantization(dtype, quantization_config)

    def build(self, input_shape):
        if len(input_shape) < 2:
            raise ValueError(f"layer {self.name!r} (Dense): expected inputs (batch, ..., features), got shape "
                             f"{tuple(input_shape)}")
        self._declare_int8able((input_shape[-1], self.units), self.kernel_initializer, self.kernel_regularizer)
        if self.use_bias:
            self.add_weight("bias", (self.units,), self.bias_initializer, self.bias_regularizer)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def _buffers(self, n):
        # [z, y, delta, dx, (x, W) rounded to bfloat16 for the float32 GEMM or None] for a batch of n rows,
        # allocated once per batch size
        dt = self._float_dtype
        z = np.empty((n, self.units), dt)
        k = self.kernel.shape[0]
        rounded = ((np.empty((n, k), dt), np.empty(self.kernel.shape, dt))
                   if _bf16_on_float32(self, k, self.units) else None)
        b = [z, z if self._code == 0 else np.empty((n, self.units), dt), np.empty((n, self.units), dt),
             np.empty((n, k), dt), rounded]
        return self._keep(n, b)

    def _takes_shape(self, input_shape):
        return not isinstance(input_shape, list) and input_shape[-1] == self.input_shape[-1]

    def _rows(self, x):
        """x as rows (a view): (batch, ..., features) -> (rows, features); the buffers of that many rows.
        Only the last axis must match the kernel (as Keras: any number of steps)."""
        if x.ndim < 2 or x.shape[-1] != self.kernel.shape[0]:
            self._check_features(x)
        self._shape = x.shape[:-1]
        x2 = x.reshape(-1, x.shape[-1]) if x.ndim > 2 else x
        bufs = self._bufs.get(x2.shape[0]) or self._buffers(x2.shape[0])
        self._x, self._cur = x2, bufs
        return x2, bufs

    def _nd(self, a):
        return a if len(self._shape) == 1 else a.reshape(self._shape + a.shape[-1:])

    def _operands(self, x2, bufs):
        """(x, W, the product) of the forward: x2 and the kernel on the layer's GEMM, or both rounded to
        bfloat16 on the float32 GEMM (`_bf16_on_float32`)."""
        rounded = bufs[4]
        if rounded is None:
            return x2, self.kernel, None
        return bf16_round(x2, rounded[0]), bf16_round(self.kernel, rounded[1]), _rounded_product

    def forward(self, x, training=False):
        # z = x W + b ; y = f(z)
        x2, bufs = self._rows(x)
        x2, kernel, product = self._operands(x2, bufs)
        return self._nd(_affine_act(self, x2, kernel, bufs[0], bufs[1], product))

    def backward(self, dy):
        # delta = dy * f'(z) (rounded to bfloat16 where the products take the float32 GEMM)
        z, y, delta, _, rounded = self._cur
        return self._grads((_rounded_delta if rounded else _act_delta)(self, dy.reshape(z.shape), z, y, delta))

    def _held_changed(self):
        super()._held_changed()
        self._int8_packed()                    # packed now: a predict through DenseChain packs nothing

    def forward_logits(self, x, training=True):
        """Training forward that stops at z = x W + b; returns (z, y buffer for the probabilities)."""
        x2, bufs = self._rows(x)
        b = self.bias if self.use_bias else None
        if self.quantization_mode is not None:
            _int8_matmul(self, x2, self.kernel, bufs[0])
        elif bufs[4]:
            _rounded_product(*self._operands(x2, bufs)[:2], bufs[0], b, 0, 0.0, self._n_threads)
        else:
            self._gemm(x2, self.kernel, bufs[0], bias=b, n_threads=self._n_threads)
        return self._nd(bufs[0]), self._nd(bufs[1])

    def backward_logits(self, delta):
        delta = delta.reshape(self._cur[0].shape)
        if self._cur[4]:                       # the loss's delta, rounded as the bf16 GEMM would take it
            delta = bf16_round(delta, self._cur[2])
        return self._grads(delta)

    def _grads(self, delta):
        # dW = x^T delta ; db = sum_rows delta ; dx = delta W^T (the rounded route: bfloat16 operands, dW and
        # dx rounded in the float32 GEMM's epilogue)
        if self.quantization_mode is not None:
            self._refuse_training()
        g, nt, rounded = self._grad_of, self._n_threads, self._cur[4]
        mm, x, kernel, act = ((gemm, rounded[0], rounded[1], ACT_BF16) if rounded
                              else (self._gemm, self._x, self.kernel, 0))
        mm(x, delta, g["kernel"], trans_a=True, act=act, n_threads=nt)
        if self.use_bias:
            _bias_grad(self, delta, g["bias"])
        if self._need_dx:
            return self._nd(mm(delta, kernel, self._cur[3], trans_b=True, act=act, n_threads=nt))
        return None

    def get_config(self):
        cfg = super().get_config()
        cfg.update(units=self.units, **_affine_config(self))
        return self._int8_config(cfg)


class Activation(Layer):
    """Applies an activation elementwise (softmax: over the last axis).

    Forward y = f(x); backward dx = dy * f'(x) (softmax: dx = y (dy - sum(dy y))).
    """
    supports_masking = True

    def __init__(self, activation, name=None, input_shape=None, batch_input_shape=None, trainable=True):
        super().__init__(name=name, input_shape=input_shape, batch_input_shape=batch_input_shape,
                         trainable=trainable)
        self.activation = _activations.get(activation)
        self._act_name, self._code, self._alpha = _activations.kernel_spec(self.activation)
        self._keep_x = self._code is not None and _ew.needs_input(self._code)

    def _buffers(self, shape):
        y = np.empty(shape, self._dtype)
        b = [y, np.empty(shape, self._dtype)]
        if self._code is None:  # row views for the 2-D softmax kernels
            b += [y.reshape(-1, shape[-1]), b[1].reshape(-1, shape[-1])]
        return self._keep(shape, b)

    def forward(self, x, training=False):
        self._dtype = x.dtype
        bufs = self._bufs.get(x.shape)
        if bufs is None or bufs[0].dtype != x.dtype:
            bufs = self._buffers(x.shape)
        self._x, self._cur = x, bufs
        if self._code is None:
            _softmax_forward(x.reshape(bufs[2].shape), bufs[2])
        else:
            _act_forward(self._code, self._alpha, x, bufs[0], self._n_threads)
        return bufs[0]

    def backward(self, dy):
        y, dx = self._cur[0], self._cur[1]
        if self._code is None:
            _softmax_backward(self._cur[2], dy.reshape(self._cur[2].shape), self._cur[3])
        else:
            _act_backward(self._code, self._alpha, self._x if self._keep_x else None, y, dy, dx,
                          self._n_threads)
        return dx

    def forward_logits(self, x, training=True):
        """Training forward for the fused loss: z is the input itself; returns (z, y buffer)."""
        self._dtype = x.dtype
        bufs = self._bufs.get(x.shape)
        if bufs is None or bufs[0].dtype != x.dtype:
            bufs = self._buffers(x.shape)
        self._x, self._cur = x, bufs
        return x, bufs[0]

    def backward_logits(self, delta):
        return delta

    def get_config(self):
        cfg = super().get_config()
        cfg["activation"] = self._act_name
        return cfg


class Dropout(Layer):
    """Inverted dropout: in training y = x * m / (1 - rate) with m_i ~ Bernoulli(1 - rate); identity otherwise.

    Parameters
    ----------
    rate : float in [0, 1)
        Fraction of the inputs to drop.
    noise_shape : tuple of int or None, optional
        The shape of the mask, broadcast over the input (None entries: the input's size), e.g.
        ``(None, 1, features)`` drops the same features at every step (Keras's argument).
    seed : int, optional
        Seed of the layer's own generator; by default it is drawn from the
        global one (`nncore.set_seed`) when the layer is created.
    """
    supports_masking = True

    def __init__(self, rate, noise_shape=None, seed=None, name=None, input_shape=None, batch_input_shape=None,
                 trainable=True):
        super().__init__(name=name, input_shape=input_shape, batch_input_shape=batch_input_shape,
                         trainable=trainable)
        rate = float(rate)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"{type(self).__name__}: rate must be in [0, 1), got {rate}")
        self.rate = rate
        if noise_shape is not None:
            noise_shape = tuple(None if s is None else int(s) for s in noise_shape)
        self.noise_shape = noise_shape
        self.seed = seed
        self._rng = _random.make_rng(seed)

    def _mask_shape(self, shape):
        if self.noise_shape is None:
            return shape
        if len(self.noise_shape) != len(shape) or any(
                m is not None and m not in (1, s) for m, s in zip(self.noise_shape, shape)):
            raise ValueError(f"layer {self.name!r} ({type(self).__name__}): noise_shape {self.noise_shape} does not "
                             f"broadcast over inputs of shape {shape}")
        return tuple(s if m is None else m for m, s in zip(self.noise_shape, shape))

    def _buffers(self, shape, dtype):
        return self._keep(shape, [np.empty(self._mask_shape(shape), dtype), np.empty(shape, dtype)])  # [mask, y]

    def forward(self, x, training=False):
        self._training = training and self.rate > 0
        if not self._training:
            return x
        bufs = self._bufs.get(x.shape)
        if bufs is None or bufs[0].dtype != x.dtype:
            bufs = self._buffers(x.shape, x.dtype)
        m, y = bufs
        # m = [u >= rate] / (1 - rate), u ~ U[0, 1)
        self._rng.random(out=m, dtype=m.dtype)
        np.greater_equal(m, self.rate, out=m)
        m *= 1.0 / (1.0 - self.rate)
        np.multiply(x, m, out=y)
        self._cur = bufs
        return y

    def backward(self, dy):
        # dx = dy * m / (1 - rate) (the mask already holds the scale)
        if not self._training:
            return dy
        m, dx = self._cur
        np.multiply(dy, m, out=dx)
        return dx

    def get_config(self):
        cfg = super().get_config()
        cfg.update(rate=self.rate, seed=self.seed)
        if self.noise_shape is not None:
            cfg["noise_shape"] = list(self.noise_shape)
        return cfg


class Flatten(Layer):
    """Reshape (batch, d1, d2, ...) to (batch, d1 * d2 * ...): a view, no copy."""

    def compute_output_shape(self, input_shape):
        rest = 1
        for s in input_shape[1:]:
            rest *= s
        return (input_shape[0], rest)

    def forward(self, x, training=False):
        self._in_shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dy):
        return dy.reshape(self._in_shape)


def _epilogues(layers):
    """The Dense layers' arguments of the chain kernels' epilogues: their biases (None without), activation
    codes (-1: none) and the activations' alphas."""
    return ([layer.bias if layer.use_bias else None for layer in layers],
            [-1 if layer._code is None else layer._code for layer in layers],
            [0.0 if layer._code is None else layer._alpha for layer in layers])


class DenseChain:
    """Inference through consecutive Dense layers in one kernel call per batch.

    The batch goes through every layer a block of rows at a time (`nncore._kernels.gemm.dense_chain`),
    so each block's activations stay in cache from one layer to the next, with one thread team for the
    whole chain and the kernels packed once per `prepare` (per predict call) instead of once per product:
    the packed copies are kept from call to call and refreshed by the first batch after `prepare`
    (compared, rewritten only where a kernel changed), so an unchanged model's predict reads them without
    writing them.

    Parameters
    ----------
    layers : list of Dense
        Built, consecutive (each one's units are the next one's inputs).

    Notes
    -----
    Every activation with a kernel code is fused into its product (inference keeps no z); softmax runs
    over each row of the block. The result equals the layer-by-layer forward to rounding (the products
    take the packed path throughout). `by_layers` is the layer-by-layer forward itself in one kernel
    call (`model(x)`, `predict_on_batch`, and `predict` below MIN_ROWS rows).
    """

    # Below this many rows predict runs the layers one by one: packing the kernels (once per predict
    # call) would then cost more than the row blocks save, and the layers' row path streams each
    # kernel once for one or two rows where the packed path computes MR rows.
    MIN_ROWS = 32

    def __init__(self, layers):
        self.layers = list(layers)
        self._packed, self._refresh = [None] * len(self.layers), True
        # the layers' weights are theirs for the chain's life (a layer's weight is never replaced, `_Weight`;
        # a new layout makes a new plan, so a new chain): only their values change, in place
        self._kernels = [layer.kernel for layer in self.layers]
        self._biases, self._acts, self._alphas = _epilogues(self.layers)
        # by_layers(x, y=None, check_finite=False, n_threads=1): y = the layers' own forward for x (into a new
        # array when y is None), layer after layer in one kernel call: bit-identical to calling them, nothing
        # packed, the kernels read as they are now; returns y. The kernel object itself: no Python call on the way
        self.by_layers = DenseLayers(self._kernels, self._biases, self._acts,
                                     [layer._keep_z for layer in self.layers], self._alphas)
        # take(x, n_threads=1): by_layers(x, None, True, n_threads) when x is as the kernel reads it (one
        # C-contiguous array of the layers' dtype, (n >= 1, features)), else None (`Model._call`)
        self.take = self.by_layers.take

    @classmethod
    def of(cls, plan):
        """A chain over the plan's layers when the model is one chain of built Dense layers over 2-D
        inputs (one input, one output, each layer reading the one before; Dropout layers between them,
        the identity in inference, are left out), else None."""
        nodes, layers = plan.nodes, plan.executors
        dense = [layer for layer in layers if type(layer) is Dense]
        modes = {layer.quantization_mode for layer in dense}
        if (plan.n_inputs != 1 or len(plan.out_slots) != 1 or not nodes or len(plan.tensors[0].shape) != 2
                or len(modes) != 1
                or not all(type(layer) is Dropout or (type(layer) is Dense and layer.built
                                                      and (layer.quantization_mode is not None
                                                           or layer.compute_dtype == layer.variable_dtype))
                           for layer in layers)):
            return None
        prev = plan.tensors[0]
        for node in nodes:
            if node.many or node.kwargs or len(node.inputs) != 1 or node.inputs[0] is not prev:
                return None
            prev = node.outputs[0]
        if plan.slot[id(prev)] != plan.out_slots[0]:
            return None
        return (Int8DenseChain if modes == {"int8"} else cls)(dense)

    def prepare(self):
        """Start a call of predict: the kernels' values change only between calls, so the first batch
        after `prepare` refreshes the packed copies."""
        self._refresh = True
        return self

    def __call__(self, x, y, check_finite=False, n_threads=1):
        """y = the chain's output for x (both C-contiguous 2-D); returns y. The packed kernels are kept
        from call to call; the first call after `prepare` refreshes them in its kernel call (compared
        with the kernels as they are now, written only where they differ): exact whatever wrote the
        kernels (the optimizer, a user in place), and read, not written, while they stay the same."""
        dense_chain(x, self._packed, self._biases, self._acts, self._alphas, y, check_finite, n_threads,
                    self._kernels if self._refresh else None)
        self._refresh = self._refresh and len(x) == 0     # an empty batch refreshes nothing
        return y


class Int8DenseChain(DenseChain):
    """DenseChain of quantized Dense layers (``quantize("int8")``): each batch through the int8 chain
    kernel (`nncore._kernels.int8.chain`: per row block, every layer's input quantized per row as it
    is read from cache, its int8 product on the packed kernel, the dequantize + bias + activation
    epilogue), the same bits as the layers one by one."""

    def __init__(self, layers):
        self.layers = list(layers)
        # by_layers(x, y=None, check_finite=False, n_threads=1): y = the layers' own forward for x, one after
        # the other in one kernel call (`_int8.Int8Layers`: nothing packed, the layers' own products and
        # passes, the same bits); take: as DenseChain's. The layers' int8 weights are theirs for the chain's
        # life (never replaced, `_Weight`; set_weights writes them in place)
        biases, acts, alphas = _epilogues(layers)
        self.by_layers = _int8.Int8Layers(
            [layer.kernel for layer in layers], [layer.kernel_scale for layer in layers], biases, acts,
            [layer._keep_z for layer in layers], alphas, [layer._act_qmax for layer in layers])
        self.take = self.by_layers.take

    def prepare(self):
        """The layers' int8 kernels packed for the int8 GEMM kernel in use (each layer keeps them from
        one setting of its weights to the next: nothing is packed here in steady state)."""
        layers = self.layers
        self._packed = [layer._int8_packed() for layer in layers]
        biases, acts, alphas = _epilogues(layers)
        self._args = ([layer.kernel_scale for layer in layers], biases, acts, alphas,
                      [layer._act_qmax for layer in layers])
        return self

    def __call__(self, x, y, check_finite=False, n_threads=1):
        return _int8.chain(x, self._packed, *self._args, y, check_finite, n_threads)
