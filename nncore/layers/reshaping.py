"""Reshaping layers (Keras 3 semantics, channels_last): Reshape, Permute, RepeatVector,
ZeroPadding1D/2D, Cropping1D/2D, UpSampling1D/2D.

Reshape returns views (forward and backward), like Flatten. The others move data: each writes
into a buffer of its own, allocated once per input shape (the model's kernels take C-contiguous
arrays), with one NumPy copy or sum, no temporaries. Padding and cropping zero the border of
their buffer once, when it is made; later calls only write the interior.
"""
import math

import numpy as np

from nncore.layers.base import Layer
from nncore.layers.conv import _data_format, _tuple as _int_tuple


def _pairs_2d(value, arg, cls):
    """Keras's 2-D padding/cropping: an int, (symmetric h, symmetric w) or ((top, bottom), (left, right))."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        v = _int_tuple(value, 2, arg, cls, minimum=0)  # a negative int is an error, as in the tuple forms
        return (v, v)
    try:
        items = tuple(value)
    except TypeError:
        raise TypeError(f"{cls}: {arg} must be an int, a tuple of 2 ints or a tuple of 2 pairs, "
                        f"got {value!r}") from None
    if len(items) == 2 and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in items):
        return tuple((v, v) for v in _int_tuple(items, 2, arg, cls, minimum=0))
    if len(items) != 2:
        raise ValueError(f"{cls}: {arg} must be an int, a tuple of 2 ints or a tuple of 2 pairs, got {value!r}")
    return tuple(_int_tuple(p, 2, arg, cls, minimum=0) for p in items)


class _Move(Layer):
    """A layer that copies its input into a buffer of its own, and its gradient back."""

    rank = None          # the input rank the layer needs (without the batch axis), None: any

    def _check_rank(self, input_shape, what):
        if self.rank is not None and len(input_shape) != self.rank + 1:
            raise ValueError(f"layer {self.name!r} ({type(self).__name__}): expected {self.rank + 1}-D inputs "
                             f"{what}, got shape {tuple(input_shape)}")
        if any(s is None for s in input_shape[1:]):
            raise ValueError(f"layer {self.name!r} ({type(self).__name__}): every dimension except the batch "
                             f"must be known, got shape {tuple(input_shape)}")

    def _pair(self, x, zero=False):
        """[y, dx] buffers for the input x (dtype and batch size), made once per shape; `zero` fills
        them with zeros at creation (a padded output's border, a cropped input's border)."""
        key = (x.shape, x.dtype.str)
        bufs = self._bufs.get(key)
        if bufs is None:
            make = np.zeros if zero else np.empty
            out = (x.shape[0],) + tuple(self.output_shape[1:])
            bufs = self._keep(key, [make(out, x.dtype), make(x.shape, x.dtype)])
        self._cur = bufs
        return bufs

    def _checked(self, x):
        if x.shape[1:] != self.input_shape[1:]:
            self._check_features(x)
        return x


class Reshape(Layer):
    """Reshape each sample to `target_shape` (one entry may be -1): a view, no copy.

    Parameters
    ----------
    target_shape : tuple of int
        The shape of a sample, without the batch axis.
    """

    def __init__(self, target_shape, name=None, input_shape=None, batch_input_shape=None, trainable=True):
        super().__init__(name=name, input_shape=input_shape, batch_input_shape=batch_input_shape,
                         trainable=trainable)
        shape = _int_tuple(target_shape, len(target_shape) if isinstance(target_shape, (tuple, list)) else 1,
                           "target_shape", "Reshape", minimum=-1)
        if not shape or shape.count(-1) > 1 or 0 in shape:
            raise ValueError(f"Reshape: target_shape must be positive ints with at most one -1, got {target_shape!r}")
        self.target_shape = shape

    def compute_output_shape(self, input_shape):
        size = math.prod(input_shape[1:])
        known = math.prod(s for s in self.target_shape if s != -1)
        if (-1 in self.target_shape and size % known) or (-1 not in self.target_shape and size != known):
            raise ValueError(f"layer {self.name!r} (Reshape): cannot reshape inputs of shape {tuple(input_shape)} "
                             f"({size} values per sample) to target_shape {self.target_shape}")
        return (input_shape[0],) + tuple(size // known if s == -1 else s for s in self.target_shape)

    def forward(self, x, training=False):
        self._in_shape = x.shape
        return x.reshape((x.shape[0],) + self.output_shape[1:])

    def backward(self, dy):
        return dy.reshape(self._in_shape)

    def get_config(self):
        cfg = super().get_config()
        cfg["target_shape"] = list(self.target_shape)
        return cfg


class Permute(_Move):
    """Permute the axes of each sample: ``Permute((2, 1))`` swaps the two axes of (batch, a, b).

    Parameters
    ----------
    dims : tuple of int
        A permutation of 1..rank (1-based: the batch axis 0 stays in place).
    """

    def __init__(self, dims, name=None, input_shape=None, batch_input_shape=None, trainable=True):
        super().__init__(name=name, input_shape=input_shape, batch_input_shape=batch_input_shape,
                         trainable=trainable)
        dims = _int_tuple(dims, len(dims) if isinstance(dims, (tuple, list)) else 1, "dims", "Permute")
        if sorted(dims) != list(range(1, len(dims) + 1)):
            raise ValueError(f"Permute: dims must be a permutation of 1..{len(dims)}, got {dims}")
        self.dims = dims
        self._axes = (0,) + dims
        self._inverse = tuple(int(i) for i in np.argsort(self._axes))

    def compute_output_shape(self, input_shape):
        if len(input_shape) != len(self.dims) + 1:
            raise ValueError(f"layer {self.name!r} (Permute): dims {self.dims} need {len(self.dims) + 1}-D inputs, "
                             f"got shape {tuple(input_shape)}")
        return tuple(input_shape[a] for a in self._axes)

    def forward(self, x, training=False):
        y, _ = self._pair(self._checked(x))
        np.copyto(y, x.transpose(self._axes))
        return y

    def backward(self, dy):
        dx = self._cur[1]
        np.copyto(dx, dy.transpose(self._inverse))
        return dx

    def get_config(self):
        cfg = super().get_config()
        cfg["dims"] = list(self.dims)
        return cfg


class RepeatVector(_Move):
    """Repeat each (batch, features) sample n times: (batch, n, features).

    Parameters
    ----------
    n : int
    """

    rank = 1

    def __init__(self, n, name=None, input_shape=None, batch_input_shape=None, trainable=True):
        super().__init__(name=name, input_shape=input_shape, batch_input_shape=batch_input_shape,
                         trainable=trainable)
        (self.n,) = _int_tuple(n, 1, "n", "RepeatVector")

    def compute_output_shape(self, input_shape):
        self._check_rank(input_shape, "(batch, features)")
        return (input_shape[0], self.n, input_shape[1])

    def forward(self, x, training=False):
        y, _ = self._pair(self._checked(x))
        np.copyto(y, x[:, None, :])
        return y

    def backward(self, dy):
        # dx = sum over the n copies
        return np.sum(dy, axis=1, out=self._cur[1])

    def get_config(self):
        cfg = super().get_config()
        cfg["n"] = self.n
        return cfg


class _Border(_Move):
    """Zero padding (grow = True) or cropping (grow = False) of the spatial axes of a channels_last
    input: ``pads`` holds (before, after) per spatial axis."""

    grow = True

    def _border_init(self, pads, data_format):
        _data_format(data_format, type(self).__name__)
        self.pads = pads
        what = "(batch, steps, channels)" if self.rank == 2 else "(batch, height, width, channels)"
        self._what = what

    def compute_output_shape(self, input_shape):
        self._check_rank(input_shape, self._what)
        out = list(input_shape)
        for axis, (a, b) in enumerate(self.pads, start=1):
            out[axis] = input_shape[axis] + (a + b if self.grow else -(a + b))
            if out[axis] < 1:
                raise ValueError(f"layer {self.name!r} ({type(self).__name__}): cropping {self.pads} leaves nothing "
                                 f"of inputs of shape {tuple(input_shape)}")
        # the region of the larger array (output when padding, input when cropping) the smaller fills
        small = input_shape if self.grow else out
        self._inner = (slice(None),) + tuple(slice(a, a + n) for (a, _), n in zip(self.pads, small[1:-1]))
        return tuple(out)

    def forward(self, x, training=False):
        # zeroed once: the padded output's border (padding), the gradient's border (cropping)
        y, _ = self._pair(self._checked(x), zero=True)
        if self.grow:
            y[self._inner] = x
        else:
            np.copyto(y, x[self._inner])
        return y

    def backward(self, dy):
        dx = self._cur[1]
        if self.grow:
            np.copyto(dx, dy[self._inner])
        else:
            dx[self._inner] = dy
        return dx


class ZeroPadding1D(_Border):
    """Pad the steps axis of (batch, steps, channels) with zeros.

    Parameters
    ----------
    padding : int or (int, int), default=1
        Zeros before and after (an int: the same on both sides).
    """

    rank = 2

    def __init__(self, padding=1, data_format=None, name=None, input_shape=None, batch_input_shape=None,
                 trainable=True):
        super().__init__(name=name, input_shape=input_shape, batch_input_shape=batch_input_shape,
                         trainable=trainable)
        self.padding = _int_tuple(padding, 2, "padding", "ZeroPadding1D", minimum=0)
        self._border_init((self.padding,), data_format)

    def get_config(self):
        cfg = super().get_config()
        cfg["padding"] = list(self.padding)
        return cfg


class ZeroPadding2D(_Border):
    """Pad the height and width of (batch, height, width, channels) with zeros.

    Parameters
    ----------
    padding : int, (int, int) or ((int, int), (int, int)), default=(1, 1)
        An int: the same everywhere; (h, w): symmetric per axis; ((top, bottom), (left, right)).
    """

    rank = 3

    def __init__(self, padding=(1, 1), data_format=None, name=None, input_shape=None, batch_input_shape=None,
                 trainable=True):
        super().__init__(name=name, input_shape=input_shape, batch_input_shape=batch_input_shape,
                         trainable=trainable)
        self.padding = _pairs_2d(padding, "padding", "ZeroPadding2D")
        self._border_init(self.padding, data_format)

    def get_config(self):
        cfg = super().get_config()
        cfg["padding"] = [list(p) for p in self.padding]
        return cfg


class Cropping1D(_Border):
    """Crop the steps axis of (batch, steps, channels).

    Parameters
    ----------
    cropping : int or (int, int), default=(1, 1)
        Steps removed at the start and at the end.
    """

    rank = 2
    grow = False

    def __init__(self, cropping=(1, 1), name=None, input_shape=None, batch_input_shape=None, trainable=True):
        super().__init__(name=name, input_shape=input_shape, batch_input_shape=batch_input_shape,
                         trainable=trainable)
        self.cropping = _int_tuple(cropping, 2, "cropping", "Cropping1D", minimum=0)
        self._border_init((self.cropping,), None)

    def get_config(self):
        cfg = super().get_config()
        cfg["cropping"] = list(self.cropping)
        return cfg


class Cropping2D(_Border):
    """Crop the height and width of (batch, height, width, channels).

    Parameters
    ----------
    cropping : int, (int, int) or ((int, int), (int, int)), default=((0, 0), (0, 0))
        As ZeroPadding2D's padding: ((top, bottom), (left, right)) rows and columns removed.
    """

    rank = 3
    grow = False

    def __init__(self, cropping=((0, 0), (0, 0)), data_format=None, name=None, input_shape=None,
                 batch_input_shape=None, trainable=True):
        super().__init__(name=name, input_shape=input_shape, batch_input_shape=batch_input_shape,
                         trainable=trainable)
        self.cropping = _pairs_2d(cropping, "cropping", "Cropping2D")
        self._border_init(self.cropping, data_format)

    def get_config(self):
        cfg = super().get_config()
        cfg["cropping"] = [list(p) for p in self.cropping]
        return cfg


class _UpSampling(_Move):
    """Nearest-neighbour upsampling of the spatial axes: each value repeated `size` times per axis."""

    def compute_output_shape(self, input_shape):
        self._check_rank(input_shape, self._what)
        spatial = tuple(n * s for n, s in zip(input_shape[1:-1], self.size))
        # y viewed as (batch, n1, s1, [n2, s2,] c): the input broadcasts over the s axes
        split = []
        for n, s in zip(input_shape[1:-1], self.size):
            split += [n, s]
        self._split = tuple(split) + (input_shape[-1],)
        self._spread = (slice(None),) + (slice(None), None) * len(self.size) + (slice(None),)
        self._copies = tuple(range(2, 2 * len(self.size) + 1, 2))
        return (input_shape[0],) + spatial + (input_shape[-1],)

    def forward(self, x, training=False):
        y, _ = self._pair(self._checked(x))
        np.copyto(y.reshape((x.shape[0],) + self._split), x[self._spread])
        return y

    def backward(self, dy):
        # dx = the sum over each value's copies
        dx = self._cur[1]
        return np.sum(dy.reshape((dy.shape[0],) + self._split), axis=self._copies, out=dx)


class UpSampling1D(_UpSampling):
    """Repeat each step of (batch, steps, channels) `size` times.

    Parameters
    ----------
    size : int, default=2
    """

    rank = 2
    _what = "(batch, steps, channels)"

    def __init__(self, size=2, name=None, input_shape=None, batch_input_shape=None, trainable=True):
        super().__init__(name=name, input_shape=input_shape, batch_input_shape=batch_input_shape,
                         trainable=trainable)
        self.size = _int_tuple(size, 1, "size", "UpSampling1D")

    def get_config(self):
        cfg = super().get_config()
        cfg["size"] = self.size[0]
        return cfg


class UpSampling2D(_UpSampling):
    """Repeat each row and column of (batch, height, width, channels): nearest-neighbour upsampling.

    Parameters
    ----------
    size : int or (int, int), default=(2, 2)
    interpolation : 'nearest'
        The only one supported.
    """

    rank = 3
    _what = "(batch, height, width, channels)"

    def __init__(self, size=(2, 2), data_format=None, interpolation="nearest", name=None, input_shape=None,
                 batch_input_shape=None, trainable=True):
        super().__init__(name=name, input_shape=input_shape, batch_input_shape=batch_input_shape,
                         trainable=trainable)
        _data_format(data_format, "UpSampling2D")
        if interpolation != "nearest":
            raise ValueError(f"UpSampling2D: only interpolation='nearest' is supported, got {interpolation!r}")
        self.size = _int_tuple(size, 2, "size", "UpSampling2D")
        self.interpolation = interpolation

    def get_config(self):
        cfg = super().get_config()
        cfg.update(size=list(self.size), interpolation=self.interpolation)
        return cfg
