"""Weight initializers with Keras 3 definitions and defaults.

An initializer is called as ``init(shape, dtype=None, rng=None)`` and returns a new C-contiguous
ndarray of that shape and dtype (default ``nncore.floatx()``). Random ones draw from ``rng`` (a
numpy Generator); without one they use ``nncore._random.make_rng(seed)``: with the initializer's
own ``seed`` every call gives the same values (as in Keras 3), without a seed a fresh stream is
drawn from the global generator that ``nncore.set_seed`` seeds. Values are drawn in float64 and
then cast, so float32 weights are the rounded float64 ones. A layer also takes a plain callable:
``f(shape, dtype=None, rng=None)``, or Keras's ``f(shape, dtype=None)`` (called without ``rng``);
what it returns is checked (`call`: the shape, real numbers, finite).

Fans (Keras ``compute_fans``): shape () -> (1, 1); (n,) -> (n, n); (n_in, n_out) -> (n_in, n_out);
for more axes (a conv kernel (..., in, out)) both fans multiply by the receptive field, the
product of the leading axes.
"""
import inspect
import math

import numpy as np

from nncore import _random
from nncore._config import floatx
from nncore._registry import Registry

__all__ = [
    "Initializer", "Zeros", "Ones", "Constant", "RandomUniform", "RandomNormal", "TruncatedNormal",
    "VarianceScaling", "GlorotUniform", "GlorotNormal", "HeUniform", "HeNormal", "LecunUniform",
    "LecunNormal", "Orthogonal", "compute_fans", "get", "serialize", "deserialize",
]

# Standard deviation of the standard normal truncated to [-2, 2]: dividing by it makes the
# truncated draw have the requested variance (Keras's constant).
_TRUNC_STD = 0.87962566103423978


def compute_fans(shape):
    """(fan_in, fan_out) of a weight shape, as Keras computes them."""
    shape = tuple(shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def _check_shape(shape, owner):
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    try:
        shape = tuple(shape)
    except TypeError:
        raise TypeError(f"{owner}: shape must be a tuple of ints, got {shape!r}") from None
    for d in shape:
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 0:
            raise ValueError(f"{owner}: shape must be a tuple of non-negative ints, got {shape!r}")
    return tuple(int(d) for d in shape)


def _check_dtype(dtype, owner, floating=True):
    dtype = np.dtype(floatx() if dtype is None else dtype)
    if floating and dtype not in (np.float32, np.float64):
        raise TypeError(f"{owner}: dtype must be float32 or float64, got {dtype}")
    if not floating and dtype.kind not in "biuf":
        raise TypeError(f"{owner}: dtype must be numeric, got {dtype}")
    return dtype


def _truncated_normal(rng, shape, mean, stddev):
    """Normal(mean, stddev) redrawn until within two standard deviations of the mean."""
    z = rng.standard_normal(shape)
    bad = np.abs(z) > 2.0
    while bad.any():
        z[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(z) > 2.0
    return mean + stddev * z


class Initializer:
    """Base class: ``__call__(shape, dtype=None, rng=None)``, ``get_config``, ``from_config``."""

    def __call__(self, shape, dtype=None, rng=None):
        raise NotImplementedError

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class _Random(Initializer):
    """Shared plumbing of the random initializers: seed check and generator choice."""

    def __init__(self, seed=None):
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))
                                 or seed < 0):
            raise ValueError(f"{type(self).__name__}: seed must be None or a non-negative int, "
                             f"got {seed!r}")
        self.seed = None if seed is None else int(seed)

    def _rng(self, rng):
        if rng is None:
            return _random.make_rng(self.seed)
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"{type(self).__name__}: rng must be a numpy Generator, "
                            f"got {type(rng).__name__}")
        return rng

    def __call__(self, shape, dtype=None, rng=None):
        owner = type(self).__name__
        shape = _check_shape(shape, owner)
        dtype = _check_dtype(dtype, owner)
        values = self._draw(self._rng(rng), shape)
        return np.ascontiguousarray(values, dtype=dtype)

    def _draw(self, rng, shape):
        raise NotImplementedError

    def get_config(self):
        return {"seed": self.seed}


class Zeros(Initializer):
    """All zeros (the default bias initializer)."""

    def __call__(self, shape, dtype=None, rng=None):
        return np.zeros(_check_shape(shape, "Zeros"), dtype=_check_dtype(dtype, "Zeros", False))


class Ones(Initializer):
    """All ones."""

    def __call__(self, shape, dtype=None, rng=None):
        return np.ones(_check_shape(shape, "Ones"), dtype=_check_dtype(dtype, "Ones", False))


class Constant(Initializer):
    """Every element equal to ``value`` (a scalar).

    Parameters
    ----------
    value : float, default=0.0
    """

    def __init__(self, value=0.0):
        if np.ndim(value) != 0:
            raise ValueError(f"Constant: value must be a scalar, got shape {np.shape(value)}")
        if isinstance(value, (str, bytes)) or not isinstance(np.asarray(value).item(), (int, float, bool)):
            raise TypeError(f"Constant: value must be a number, got {value!r}")
        if not math.isfinite(float(value)):
            raise ValueError(f"Constant: value must be finite, got {value!r}")
        self.value = float(value)

    def __call__(self, shape, dtype=None, rng=None):
        return np.full(_check_shape(shape, "Constant"), self.value,
                       dtype=_check_dtype(dtype, "Constant", False))

    def get_config(self):
        return {"value": self.value}


class RandomUniform(_Random):
    """U(minval, maxval).

    Parameters
    ----------
    minval : float, default=-0.05
    maxval : float, default=0.05
    seed : int, default=None
    """

    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        super().__init__(seed)
        if not minval <= maxval:
            raise ValueError(f"RandomUniform: need minval <= maxval, got minval={minval}, "
                             f"maxval={maxval}")
        self.minval, self.maxval = float(minval), float(maxval)

    def _draw(self, rng, shape):
        return rng.uniform(self.minval, self.maxval, shape)

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, **super().get_config()}


class RandomNormal(_Random):
    """N(mean, stddev^2).

    Parameters
    ----------
    mean : float, default=0.0
    stddev : float, default=0.05
    seed : int, default=None
    """

    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        super().__init__(seed)
        if not stddev >= 0:
            raise ValueError(f"RandomNormal: stddev must be >= 0, got {stddev}")
        self.mean, self.stddev = float(mean), float(stddev)

    def _draw(self, rng, shape):
        return self.mean + self.stddev * rng.standard_normal(shape)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, **super().get_config()}


class TruncatedNormal(_Random):
    """N(mean, stddev^2) with values further than 2 stddev from the mean redrawn.

    Parameters
    ----------
    mean : float, default=0.0
    stddev : float, default=0.05
        Of the normal before truncation (the result's standard deviation is about 0.88 stddev).
    seed : int, default=None
    """

    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        super().__init__(seed)
        if not stddev >= 0:
            raise ValueError(f"TruncatedNormal: stddev must be >= 0, got {stddev}")
        self.mean, self.stddev = float(mean), float(stddev)

    def _draw(self, rng, shape):
        return _truncated_normal(rng, shape, self.mean, self.stddev)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, **super().get_config()}


class VarianceScaling(_Random):
    """Random values whose variance is ``scale / n``, n chosen by ``mode``.

    Parameters
    ----------
    scale : float, default=1.0
    mode : {"fan_in", "fan_out", "fan_avg"}, default="fan_in"
    distribution : {"truncated_normal", "untruncated_normal", "uniform"}, default="truncated_normal"
    seed : int, default=None

    Notes
    -----
    s = scale / max(1, n) with n = fan_in, fan_out or (fan_in + fan_out) / 2.
    truncated_normal: stddev = sqrt(s) / 0.87962566103423978 (so that the truncated draw has
    variance s); untruncated_normal: stddev = sqrt(s); uniform: U(-sqrt(3 s), sqrt(3 s)).
    """

    _MODES = ("fan_in", "fan_out", "fan_avg")
    _DISTRIBUTIONS = ("truncated_normal", "untruncated_normal", "uniform")

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None):
        super().__init__(seed)
        name = type(self).__name__
        if not scale > 0:
            raise ValueError(f"{name}: scale must be > 0, got {scale!r}")
        if mode not in self._MODES:
            raise ValueError(f"{name}: mode must be one of {self._MODES}, got {mode!r}")
        distribution = "truncated_normal" if distribution == "normal" else distribution
        if distribution not in self._DISTRIBUTIONS:
            raise ValueError(f"{name}: distribution must be one of {self._DISTRIBUTIONS}, "
                             f"got {distribution!r}")
        self.scale, self.mode, self.distribution = float(scale), mode, distribution

    def _draw(self, rng, shape):
        fan_in, fan_out = compute_fans(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[self.mode]
        s = self.scale / max(1.0, n)
        if self.distribution == "truncated_normal":
            return _truncated_normal(rng, shape, 0.0, math.sqrt(s) / _TRUNC_STD)
        if self.distribution == "untruncated_normal":
            return math.sqrt(s) * rng.standard_normal(shape)
        limit = math.sqrt(3.0 * s)
        return rng.uniform(-limit, limit, shape)

    def get_config(self):
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution,
                **super().get_config()}


class _Named(VarianceScaling):
    """A VarianceScaling with fixed settings; its config holds only the seed."""

    _SETTINGS = None

    def __init__(self, seed=None):
        super().__init__(*self._SETTINGS, seed=seed)

    def get_config(self):
        return {"seed": self.seed}


class GlorotUniform(_Named):
    """U(-sqrt(6 / (fan_in + fan_out)), +sqrt(6 / (fan_in + fan_out))) (Glorot & Bengio, 2010);
    the default kernel initializer of Dense."""
    _SETTINGS = (1.0, "fan_avg", "uniform")


class GlorotNormal(_Named):
    """Truncated normal with variance 2 / (fan_in + fan_out)."""
    _SETTINGS = (1.0, "fan_avg", "truncated_normal")


class HeUniform(_Named):
    """U(-sqrt(6 / fan_in), +sqrt(6 / fan_in)) (He et al., 2015)."""
    _SETTINGS = (2.0, "fan_in", "uniform")


class HeNormal(_Named):
    """Truncated normal with variance 2 / fan_in."""
    _SETTINGS = (2.0, "fan_in", "truncated_normal")


class LecunUniform(_Named):
    """U(-sqrt(3 / fan_in), +sqrt(3 / fan_in)) (LeCun et al., 1998)."""
    _SETTINGS = (1.0, "fan_in", "uniform")


class LecunNormal(_Named):
    """Truncated normal with variance 1 / fan_in."""
    _SETTINGS = (1.0, "fan_in", "truncated_normal")


class Orthogonal(_Random):
    """A (semi-)orthogonal matrix times ``gain`` (Saxe et al., 2014); the Keras default for
    recurrent kernels.

    Parameters
    ----------
    gain : float, default=1.0
    seed : int, default=None

    Notes
    -----
    The shape is viewed as (rows, cols) = (prod(shape[:-1]), shape[-1]). A standard normal
    matrix of shape (max, min) is QR-factorised; Q times sign(diag(R)) is uniformly distributed
    (Mezzadri, 2007); it is transposed when rows < cols, so rows or columns are orthonormal.
    """

    def __init__(self, gain=1.0, seed=None):
        super().__init__(seed)
        self.gain = float(gain)
        if not math.isfinite(self.gain):
            raise ValueError(f"Orthogonal: gain must be finite, got {gain!r}")

    def _draw(self, rng, shape):
        if len(shape) < 2:
            raise ValueError(f"Orthogonal: the shape must have at least two axes, got {shape!r}")
        rows, cols = math.prod(shape[:-1]), shape[-1]
        a = rng.standard_normal((max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        d = np.sign(np.diag(r))
        d[d == 0] = 1.0
        q *= d
        if rows < cols:
            q = q.T
        return self.gain * q.reshape(shape)

    def get_config(self):
        return {"gain": self.gain, **super().get_config()}


# ---------------------------------------------------------------- lookup

_CLASSES = {c.__name__: c for c in (
    Zeros, Ones, Constant, RandomUniform, RandomNormal, TruncatedNormal, VarianceScaling,
    GlorotUniform, GlorotNormal, HeUniform, HeNormal, LecunUniform, LecunNormal, Orthogonal)}

_NAMES = {
    "zeros": Zeros, "zero": Zeros, "ones": Ones, "one": Ones, "constant": Constant,
    "random_uniform": RandomUniform, "uniform": RandomUniform,
    "random_normal": RandomNormal, "normal": RandomNormal,
    "truncated_normal": TruncatedNormal, "variance_scaling": VarianceScaling,
    "glorot_uniform": GlorotUniform, "glorot_normal": GlorotNormal,
    "he_uniform": HeUniform, "he_normal": HeNormal,
    "lecun_uniform": LecunUniform, "lecun_normal": LecunNormal, "orthogonal": Orthogonal,
}


_REGISTRY = Registry("initializer", _CLASSES, _NAMES)


def _takes_rng(fn):
    """Whether a plain callable takes nncore's ``rng`` keyword (or **kwargs); a Keras-style
    ``f(shape, dtype=None)`` does not."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):     # no signature to read (some builtins): call it as Keras would
        return False
    return any(p.name == "rng" or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def call(init, shape, dtype, rng, owner):
    """``init(shape, dtype=dtype, rng=rng)`` (a Keras-style callable without ``rng``: ``init(shape,
    dtype=dtype)``), checked: an array of `shape` holding finite real numbers, else a ValueError or
    TypeError naming `owner` (a layer's weight)."""
    if isinstance(init, Initializer) or _takes_rng(init):
        value = init(shape, dtype=dtype, rng=rng)
    else:
        value = init(shape, dtype=dtype)
    value = np.asarray(value)
    if value.dtype.kind not in "biuf":
        raise TypeError(f"{owner}: the initializer returned dtype {value.dtype}, expected real numbers")
    if value.shape != tuple(shape):
        raise ValueError(f"{owner}: the initializer returned shape {value.shape}, expected {tuple(shape)}")
    if value.dtype.kind == "f" and not np.isfinite(value).all():
        raise ValueError(f"{owner}: the initializer returned NaN or infinity")
    return value


def get(identifier):
    """Resolve an initializer: a name ('glorot_uniform', 'GlorotUniform', ...), a dict
    ``{"class_name": ..., "config": ...}``, an Initializer instance (returned as is), or any
    callable ``f(shape, dtype=None, rng=None)`` or ``f(shape, dtype=None)`` (returned as is). None gives None."""
    if identifier is None or isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, str):
        return _REGISTRY.lookup(identifier)()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, type) and issubclass(identifier, Initializer):
        return identifier()
    if callable(identifier):
        return identifier
    raise TypeError(f"initializers.get: expected a str, dict, Initializer or callable, got "
                    f"{type(identifier).__name__}")


def serialize(initializer):
    """``{"class_name": ..., "config": ...}`` (JSON-able) for a built-in initializer."""
    return _REGISTRY.serialize(initializer)


def deserialize(config):
    """Inverse of :func:`serialize`; classes resolve from the closed built-in list only."""
    return _REGISTRY.deserialize(config)
