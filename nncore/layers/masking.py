"""Masking: marks the padded time steps of sequences for the layers after it (Keras 3 semantics).

A step of a sample is masked when every feature there equals ``mask_value``; the layer outputs
zeros at masked steps and passes the mask, (batch, timesteps) bool (True: a valid step), on to the
next layers (`compute_mask`): the recurrent layers skip masked steps (their state carries through,
no gradient reaches the weights from them) and the loss and the mean metrics leave them out.
"""
import numpy as np

from nncore.layers.base import Layer


class Masking(Layer):
    """Masks the time steps whose features all equal `mask_value`.

    Parameters
    ----------
    mask_value : float, default=0.0

    Notes
    -----
    mask[b, t] = any_k x[b, t, k] != mask_value ; y = x mask[..., None] ; dx = dy mask[..., None].
    Input (batch, timesteps, features) (any rank >= 3: the mask is over all axes but the last).
    """
    supports_masking = True
    _makes_mask = True

    def __init__(self, mask_value=0.0, name=None, input_shape=None, batch_input_shape=None):
        super().__init__(name=name, input_shape=input_shape, batch_input_shape=batch_input_shape)
        try:
            self.mask_value = float(mask_value)
        except (TypeError, ValueError):
            raise TypeError(f"Masking: mask_value must be a number, got {mask_value!r}") from None

    def build(self, input_shape):
        if len(input_shape) < 3:
            raise ValueError(f"layer {self.name!r} (Masking): expected inputs (batch, timesteps, features), got "
                             f"shape {tuple(input_shape)}")

    def _buffers(self, shape, dtype):
        # [x != mask_value, the mask, y, dx]
        return self._keep(shape, [np.empty(shape, np.bool_), np.empty(shape[:-1], np.bool_), np.empty(shape, dtype),
                                  np.empty(shape, dtype)])

    def forward(self, x, training=False):
        if x.shape[1:] != self.input_shape[1:]:
            self._check_features(x)
        bufs = self._bufs.get(x.shape)
        if bufs is None or bufs[2].dtype != x.dtype:
            bufs = self._buffers(x.shape, x.dtype)
        ne, mask, y, _ = bufs
        np.not_equal(x, self.mask_value, out=ne)
        np.any(ne, axis=-1, out=mask)
        np.multiply(x, mask[..., None], out=y)
        self._x, self._cur = x, bufs
        return y

    def backward(self, dy):
        _, mask, _, dx = self._cur
        return np.multiply(dy, mask[..., None], out=dx)

    def compute_mask(self, x, mask=None):
        """Its own mask (the incoming one is replaced, as in Keras)."""
        if x is not getattr(self, "_x", None):
            return np.any(np.not_equal(x, self.mask_value), axis=-1)
        return self._cur[1]

    def get_config(self):
        cfg = super().get_config()
        cfg["mask_value"] = self.mask_value
        return cfg
