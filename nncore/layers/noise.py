"""Noise layers, active in training only (Keras 3 semantics): SpatialDropout1D/2D, GaussianNoise,
GaussianDropout. Each draws from a generator of its own (saved with the model, so a resumed fit
draws the same noise); in inference each is the identity and returns its input.
"""
import math

import numpy as np

from nncore import _random
from nncore.layers.base import Layer
from nncore.layers.core import Dropout


class SpatialDropout1D(Dropout):
    """Dropout of whole channels of (batch, steps, channels): one mask value per (sample, channel),
    shared by every step.

    Parameters
    ----------
    rate : float in [0, 1)
    seed : int, optional

    Notes
    -----
    Training: y = x m / (1 - rate), m of shape (batch, 1, channels), m ~ Bernoulli(1 - rate).
    """

    _rank = 3

    def __init__(self, rate, seed=None, name=None, input_shape=None, batch_input_shape=None, trainable=True):
        # the mask: one value per sample and channel, broadcast over the spatial axes
        super().__init__(rate, noise_shape=(None,) + (1,) * (self._rank - 2) + (None,), seed=seed, name=name,
                         input_shape=input_shape, batch_input_shape=batch_input_shape, trainable=trainable)

    def build(self, input_shape):
        if len(input_shape) != self._rank:
            raise ValueError(f"layer {self.name!r} ({type(self).__name__}): expected {self._rank}-D inputs "
                             f"(batch, {'steps' if self._rank == 3 else 'height, width'}, channels), got shape "
                             f"{tuple(input_shape)}")

    def get_config(self):
        cfg = super().get_config()
        cfg.pop("noise_shape", None)
        return cfg


class SpatialDropout2D(SpatialDropout1D):
    """Dropout of whole channels of (batch, height, width, channels): one mask value per (sample,
    channel), shared by every pixel.

    Parameters
    ----------
    rate : float in [0, 1)
    data_format : 'channels_last'
    seed : int, optional
    """

    _rank = 4

    def __init__(self, rate, data_format=None, seed=None, name=None, input_shape=None, batch_input_shape=None,
                 trainable=True):
        if data_format not in (None, "channels_last"):
            raise ValueError(f"SpatialDropout2D: only data_format='channels_last' is supported, got {data_format!r}")
        super().__init__(rate, seed=seed, name=name, input_shape=input_shape, batch_input_shape=batch_input_shape,
                         trainable=trainable)


class _Noise(Layer):
    """y = x + noise (additive) or y = x * noise (multiplicative) in training, from the layer's own
    generator; `_draw(n)` fills n with the noise."""

    multiplicative = False

    def __init__(self, seed, name, input_shape, batch_input_shape, trainable):
        super().__init__(name=name, input_shape=input_shape, batch_input_shape=batch_input_shape,
                         trainable=trainable)
        self.seed = seed
        self._rng = _random.make_rng(seed)

    def forward(self, x, training=False):
        self._training = bool(training) and self._active()
        if not self._training:
            return x
        key = (x.shape, x.dtype.str)
        bufs = self._bufs.get(key) or self._keep(key, [np.empty(x.shape, x.dtype), np.empty(x.shape, x.dtype)])
        noise, y = bufs
        self._draw(noise)
        (np.multiply if self.multiplicative else np.add)(x, noise, out=y)
        self._cur = bufs
        return y

    def backward(self, dy):
        if not self._training or not self.multiplicative:
            return dy                   # dx = dy: additive noise does not depend on x
        noise, dx = self._cur
        np.multiply(dy, noise, out=dx)  # dx = dy * noise
        return dx

    def get_config(self):
        cfg = super().get_config()
        cfg["seed"] = self.seed
        return cfg


class GaussianNoise(_Noise):
    """Add zero-mean Gaussian noise in training: y = x + stddev * n, n ~ N(0, 1).

    Parameters
    ----------
    stddev : float >= 0
    seed : int, optional
    """

    def __init__(self, stddev, seed=None, name=None, input_shape=None, batch_input_shape=None, trainable=True):
        super().__init__(seed, name, input_shape, batch_input_shape, trainable)
        stddev = float(stddev)
        if not stddev >= 0 or not math.isfinite(stddev):
            raise ValueError(f"GaussianNoise: stddev must be a finite number >= 0, got {stddev}")
        self.stddev = stddev

    def _active(self):
        return self.stddev > 0

    def _draw(self, n):
        self._rng.standard_normal(out=n, dtype=n.dtype)
        n *= self.stddev

    def get_config(self):
        cfg = super().get_config()
        cfg["stddev"] = self.stddev
        return cfg


class GaussianDropout(_Noise):
    """Multiply by Gaussian noise of mean 1 in training: y = x * n, n ~ N(1, rate / (1 - rate)).

    Parameters
    ----------
    rate : float in [0, 1)
        As Dropout's: the noise's variance is rate / (1 - rate).
    seed : int, optional
    """

    multiplicative = True

    def __init__(self, rate, seed=None, name=None, input_shape=None, batch_input_shape=None, trainable=True):
        super().__init__(seed, name, input_shape, batch_input_shape, trainable)
        rate = float(rate)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"GaussianDropout: rate must be in [0, 1), got {rate}")
        self.rate = rate

    def _active(self):
        return self.rate > 0

    def _draw(self, n):
        # n = 1 + sqrt(rate / (1 - rate)) * N(0, 1)
        self._rng.standard_normal(out=n, dtype=n.dtype)
        n *= math.sqrt(self.rate / (1.0 - self.rate))
        n += 1.0

    def get_config(self):
        cfg = super().get_config()
        cfg["rate"] = self.rate
        return cfg
