"""Embedding: integer indices to dense vectors (Keras 3 semantics), for text-like models.

Forward y[..., :] = E[x[...], :] (a row gather); backward dE[k] = sum of dy over the positions
whose index is k (a scatter-add, in order, so the result does not depend on the thread count).

Inputs reach a model's layers as floats (`Sequential` casts its inputs to the model dtype), which
holds every index exactly up to 2**24 in float32 (2**53 in float64); the layer casts them back to
int64, checks that the cast lost nothing (a float index with a fraction, e.g. ids scaled with the
other features, is a ValueError, where Keras truncates it silently), then checks the range.
"""
import numpy as np

from nncore import initializers, regularizers
from nncore._kernels import elementwise as _ew
from nncore._kernels.int8 import take_rows_int8
from nncore.layers.base import Layer
from nncore.layers.core import _serialize
from nncore.layers.quantized import Int8Quantizable

_FLOAT32_EXACT = 2 ** 24


class Embedding(Int8Quantizable, Layer):
    """Turns indices in [0, input_dim) into vectors of size output_dim.

    Parameters
    ----------
    input_dim : int
        Vocabulary size.
    output_dim : int
        Size of each vector.
    embeddings_initializer : name or initializer, default='uniform' (U(-0.05, 0.05), as Keras)
    embeddings_regularizer : name, regularizer or None
    mask_zero : bool, default=False
        Index 0 is padding: the layer passes the mask ``x != 0`` (batch, ...) on to the next layers
        (recurrent layers skip the padded steps, the loss and the mean metrics leave them out).
        Row 0 of ``embeddings`` still exists (input_dim counts it), as in Keras.
    trainable : bool, default=True
        False keeps the vectors fixed (pretrained embeddings); applied at the model's next compile.
    dtype : None or 'int8_from_float32' / 'int8_from_float64'
        The int8 form (what `quantize` makes); None: float.

    Notes
    -----
    Input (batch, ...) of integer indices (or floats holding integers), output (batch, ..., output_dim).
    The weight is ``embeddings`` of shape (input_dim, output_dim), as in Keras. No gradient flows to
    the indices (dx is zero); put the layer first. ``quantize("int8")`` makes the table int8 with a
    scale per row (Keras): y[p] = Eq[x[p]] / embeddings_scale[x[p]]; inference only.
    """

    _int8_weight = "embeddings"
    _int8_per_row = True

    def __init__(self, input_dim, output_dim, embeddings_initializer="uniform", embeddings_regularizer=None,
                 mask_zero=False, name=None, input_shape=None, batch_input_shape=None, trainable=True,
                 dtype=None):
        super().__init__(name=name, input_shape=input_shape, batch_input_shape=batch_input_shape,
                         trainable=trainable)
        for arg, v in (("input_dim", input_dim), ("output_dim", output_dim)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0:
                raise ValueError(f"Embedding: {arg} must be a positive int, got {v!r}")
        self.input_dim, self.output_dim = int(input_dim), int(output_dim)
        self.embeddings_initializer = embeddings_initializer
        self.embeddings_regularizer = embeddings_regularizer
        initializers.get(embeddings_initializer)
        regularizers.get(embeddings_regularizer)
        self._init_quantization(dtype, None)
        self.mask_zero = bool(mask_zero)

    @property
    def _makes_mask(self):
        return self.mask_zero

    @property
    def supports_masking(self):
        return self.mask_zero

    def compute_mask(self, x, mask=None):
        """``x != 0`` with mask_zero (the indices of the last forward when x is its input), else None."""
        if not self.mask_zero:
            return None
        if x is getattr(self, "_x", None):
            return self._cur[5]
        return np.not_equal(np.asarray(x).astype(np.int64), 0)

    def build(self, input_shape):
        self._declare_int8able((self.input_dim, self.output_dim), self.embeddings_initializer,
                               self.embeddings_regularizer)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.output_dim,)

    def _buffers(self, shape):
        n, dt = int(np.prod(shape)), self._float_dtype
        idx = np.empty(n, np.int64)
        y = np.empty(tuple(shape) + (self.output_dim,), dt)
        dx = np.zeros(shape, dt) if self._need_dx else None
        mask = np.empty(shape, np.bool_) if self.mask_zero else None
        back = np.empty(shape, np.float64), np.empty(shape, np.bool_)   # the indices cast back, where they differ
        return self._keep(shape, (idx, idx.reshape(shape), y, y.reshape(n, self.output_dim), dx, mask, back))

    def forward(self, x, training=False):
        # y[p] = E[x[p]]
        if x.shape[1:] != self.input_shape[1:]:
            self._check_features(x)
        if x.dtype == np.float32 and self.input_dim > _FLOAT32_EXACT:
            raise ValueError(f"layer {self.name!r} (Embedding): input_dim {self.input_dim} exceeds 2**24, "
                             "which float32 inputs cannot index exactly; use float64 (nncore.set_floatx)")
        bufs = self._bufs.get(x.shape)
        if bufs is None or (bufs[4] is None) == self._need_dx:
            bufs = self._buffers(x.shape)
        idx, idx_nd, y, y2, _, mask, (back, lost) = bufs
        np.copyto(idx_nd, x, casting="unsafe")
        if x.dtype.kind == "f":                         # floats must hold whole numbers (no silent truncation)
            np.copyto(back, idx_nd, casting="unsafe")
            if np.not_equal(back, x, out=lost).any():
                pos = tuple(int(i) for i in np.argwhere(lost)[0])
                raise ValueError(f"layer {self.name!r} (Embedding): expected integer indices in "
                                 f"[0, {self.input_dim}), got {x[pos]} at {pos} of the batch")
        try:
            if self.quantization_mode is None:
                _ew.take_rows(self.embeddings, idx, y2)
            else:                                       # y[p] = Eq[x[p]] / scale[x[p]]
                take_rows_int8(self.embeddings, self.embeddings_scale, idx, y2)
        except IndexError:
            bad = idx[(idx < 0) | (idx >= self.input_dim)][0]
            raise ValueError(f"layer {self.name!r} (Embedding): index {bad} out of range "
                             f"[0, {self.input_dim})") from None
        if mask is not None:
            np.not_equal(idx_nd, 0, out=mask)
        self._x, self._cur = x, bufs
        return y

    def backward(self, dy):
        # dE = 0 ; dE[x[p]] += dy[p]
        self._refuse_training()
        idx, _, _, y2, dx, _, _ = self._cur
        dE = self._grad_of["embeddings"]
        dE.fill(0)
        _ew.scatter_add_rows(dy.reshape(y2.shape), idx, dE, self._n_threads)
        return dx if self._need_dx else None

    def get_config(self):
        cfg = super().get_config()
        cfg.update(input_dim=self.input_dim, output_dim=self.output_dim,
                   embeddings_initializer=_serialize(self.embeddings_initializer),
                   embeddings_regularizer=_serialize(self.embeddings_regularizer), mask_zero=self.mask_zero)
        return self._int8_config(cfg)
