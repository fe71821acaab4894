"""Weight regularizers with Keras 3 definitions.

``reg(w)`` returns the penalty added to the loss as a Python float; ``reg.add_gradient(w, dw)``
adds the penalty's gradient into ``dw`` in place. Keras's definitions, with no factor 1/2:

    L1(l1):     l1 * sum |w|              gradient l1 * sign(w)   (0 at w = 0)
    L2(l2):     l2 * sum w^2              gradient 2 * l2 * w
    L1L2(l1, l2): both

The penalty is accumulated in double (the L2 sum by the sumsq kernel). ``add_gradient`` keeps
one scratch array per regularizer, reused while the shape and dtype stay the same, so the
per-batch path allocates nothing in steady state.
"""
import math

import numpy as np

from nncore._kernels import elementwise as _ew
from nncore._registry import Registry

__all__ = ["Regularizer", "L1", "L2", "L1L2", "get", "serialize", "deserialize"]


def _factor(value, name, owner):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value) or value < 0:
        raise ValueError(f"{owner}: {name} must be a non-negative finite float, got {value!r}")
    return float(value)


def _check_w(w, owner):
    if not isinstance(w, np.ndarray) or w.dtype not in (np.float32, np.float64):
        raise TypeError(f"{owner}: weights must be a float32 or float64 ndarray, got "
                        f"{type(w).__name__}{'' if not isinstance(w, np.ndarray) else ' ' + str(w.dtype)}")


class Regularizer:
    """Base class: a penalty ``reg(w) -> float`` and its gradient ``add_gradient(w, dw)``."""

    l1 = 0.0
    l2 = 0.0

    def __call__(self, w):
        owner = type(self).__name__
        if not isinstance(w, np.ndarray):
            w = np.asarray(w, dtype=np.float64)
        _check_w(w, owner)
        total = 0.0
        if self.l1:
            total += self.l1 * float(np.abs(w, out=self._scratch(w)).sum(dtype=np.float64))
        if self.l2:
            if w.flags.c_contiguous:
                total += self.l2 * _ew.sumsq(w, 1)
            else:
                total += self.l2 * float(np.square(w, dtype=np.float64).sum())
        return total

    def add_gradient(self, w, dw):
        """dw += l1 * sign(w) + 2 * l2 * w, in place; returns dw."""
        owner = type(self).__name__
        _check_w(w, owner)
        if not isinstance(dw, np.ndarray) or dw.shape != w.shape or dw.dtype != w.dtype:
            raise ValueError(f"{owner}.add_gradient: dw must be an ndarray of shape {w.shape} and "
                             f"dtype {w.dtype}, got "
                             f"{getattr(dw, 'shape', type(dw).__name__)} "
                             f"{getattr(dw, 'dtype', '')}".rstrip())
        if not dw.flags.writeable:
            raise ValueError(f"{owner}.add_gradient: dw is read-only")
        if self.l1:
            buf = self._scratch(w)
            np.sign(w, out=buf)
            np.multiply(buf, self.l1, out=buf)      # l1 sign(w)
            np.add(dw, buf, out=dw)
        if self.l2:
            buf = self._scratch(w)
            np.multiply(w, 2.0 * self.l2, out=buf)  # 2 l2 w
            np.add(dw, buf, out=dw)
        return dw

    def _scratch(self, w):
        buf = getattr(self, "_buf", None)
        if buf is None or buf.shape != w.shape or buf.dtype != w.dtype:
            buf = self._buf = np.empty(w.shape, dtype=w.dtype)
        return buf

    def get_config(self):
        raise NotImplementedError

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def __getstate__(self):  # the scratch buffer is not state
        return {k: v for k, v in self.__dict__.items() if k != "_buf"}


class L1(Regularizer):
    """penalty = l1 * sum(|w|).

    Parameters
    ----------
    l1 : float, default=0.01
    """

    def __init__(self, l1=0.01):
        self.l1 = _factor(l1, "l1", "L1")

    def get_config(self):
        return {"l1": self.l1}


class L2(Regularizer):
    """penalty = l2 * sum(w^2) (no factor 1/2: L2(0.01) adds 0.01 * sum(w^2)).

    Parameters
    ----------
    l2 : float, default=0.01
    """

    def __init__(self, l2=0.01):
        self.l2 = _factor(l2, "l2", "L2")

    def get_config(self):
        return {"l2": self.l2}


class L1L2(Regularizer):
    """penalty = l1 * sum(|w|) + l2 * sum(w^2).

    Parameters
    ----------
    l1 : float, default=0.0
    l2 : float, default=0.0
    """

    def __init__(self, l1=0.0, l2=0.0):
        self.l1 = _factor(l1, "l1", "L1L2")
        self.l2 = _factor(l2, "l2", "L1L2")

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


_CLASSES = {"L1": L1, "L2": L2, "L1L2": L1L2}
_NAMES = {"l1": L1, "l2": L2, "l1_l2": L1L2, "l1l2": L1L2}


_REGISTRY = Registry("regularizer", _CLASSES, _NAMES)


def get(identifier):
    """Resolve a regularizer: None, a name ('l1', 'l2', 'l1_l2' with default factors, or a class
    name), a dict ``{"class_name": ..., "config": ...}``, or a Regularizer (returned as is)."""
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, str):
        return _REGISTRY.lookup(identifier)()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    raise TypeError(f"regularizers.get: expected None, a str, dict or Regularizer, got "
                    f"{type(identifier).__name__}")


def serialize(regularizer):
    """``{"class_name": ..., "config": ...}`` (JSON-able)."""
    return _REGISTRY.serialize(regularizer)


def deserialize(config):
    """Inverse of :func:`serialize`; classes resolve from the closed built-in list only."""
    return _REGISTRY.deserialize(config)
