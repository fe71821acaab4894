"""Activation functions by name or function (Keras 3 names and defaults).

Every elementwise activation is one C kernel (``nncore._kernels.elementwise``)
selected by an integer code (``nncore._kernels.ACT_CODES``); its derivative is
written in terms of the output y (and the input x for gelu and swish). softmax
is row-wise over the last axis, max-subtracted.

The public functions take any array-like and return a new float array (the
dtype of a float input, else ``nncore.floatx()``). Layers do not call them: they
call the kernels on their preallocated buffers through `kernel_spec`.
"""
import numpy as np

from nncore._config import floatx
from nncore._kernels import ACT_CODES, ACT_DEFAULT_ALPHA
from nncore._kernels import elementwise as _ew

__all__ = ["linear", "step", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "selu", "gelu", "softplus",
           "hard_sigmoid", "swish", "silu", "softmax", "get", "serialize", "kernel_spec"]


def _as_float(x):
    x = np.asarray(x)
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(floatx())
    return np.ascontiguousarray(x)


def _apply(name, x, alpha=None):
    x = _as_float(x)
    y = np.empty_like(x)
    _ew.act_forward(ACT_CODES[name], ACT_DEFAULT_ALPHA.get(name, 0.0) if alpha is None else alpha, x, y, 1)
    return y


def linear(x):
    """y = x."""
    return _apply("linear", x)


def step(x):
    """Heaviside step: y = 1 if x >= 0 else 0 (zero gradient everywhere)."""
    return _apply("step", x)


def sigmoid(x):
    """y = 1 / (1 + exp(-x)), computed without overflow."""
    return _apply("sigmoid", x)


def tanh(x):
    """y = tanh(x)."""
    return _apply("tanh", x)


def relu(x):
    """y = max(x, 0)."""
    return _apply("relu", x)


def leaky_relu(x, negative_slope=0.2):
    """y = x if x > 0 else negative_slope * x (Keras 3 default 0.2)."""
    return _apply("leaky_relu", x, float(negative_slope))


def elu(x, alpha=1.0):
    """y = x if x > 0 else alpha (exp(x) - 1)."""
    return _apply("elu", x, float(alpha))


def selu(x):
    """y = 1.0507 * (x if x > 0 else 1.67326 (exp(x) - 1))."""
    return _apply("selu", x)


def gelu(x, approximate=False):
    """y = x Phi(x) (exact, with erf); approximate=True uses the tanh formula."""
    return _apply("gelu_tanh" if approximate else "gelu", x)


def softplus(x):
    """y = log(1 + exp(x)), stable for large |x|."""
    return _apply("softplus", x)


def hard_sigmoid(x):
    """y = 0 for x <= -3, 1 for x >= 3, x / 6 + 1/2 between (Keras 3)."""
    return _apply("hard_sigmoid", x)


def swish(x):
    """y = x sigmoid(x) (also called silu)."""
    return _apply("swish", x)


silu = swish


def softmax(x, axis=-1):
    """y = exp(x - max x) / sum exp(x - max x) over `axis` (default the last)."""
    x = _as_float(x)
    if x.ndim == 0:
        raise ValueError("softmax: expected an array with at least 1 dimension, got a scalar")
    moved = np.ascontiguousarray(np.moveaxis(x, axis, -1))
    if moved.shape[-1] == 0:
        raise ValueError(f"softmax: axis {axis} has length 0")
    flat = moved.reshape(-1, moved.shape[-1])
    y = np.empty_like(flat)
    _ew.softmax_forward(flat, y)
    return np.moveaxis(y.reshape(moved.shape), -1, axis)


_BY_NAME = {
    "linear": linear, "step": step, "sigmoid": sigmoid, "tanh": tanh, "relu": relu,
    "leaky_relu": leaky_relu, "elu": elu, "selu": selu, "gelu": gelu, "softplus": softplus,
    "hard_sigmoid": hard_sigmoid, "swish": swish, "silu": swish, "softmax": softmax,
}
_NAME_OF = {fn: name for name, fn in _BY_NAME.items() if name != "silu"}


def get(identifier):
    """Resolve an activation: None (linear), a name, or one of this module's functions."""
    if identifier is None:
        return linear
    if isinstance(identifier, str):
        fn = _BY_NAME.get(identifier)
        if fn is None:
            from nncore.validation import unknown_name

            raise unknown_name("activation", identifier, _BY_NAME)
        return fn
    if callable(identifier) and identifier in _NAME_OF:
        return identifier
    raise ValueError(f"activation: expected None, a name in {sorted(_BY_NAME)} or an nncore.activations "
                     f"function, got {identifier!r} (custom callables have no compiled derivative)")


def serialize(identifier):
    """The name of an activation (for get_config)."""
    return _NAME_OF[get(identifier)]


def kernel_spec(identifier):
    """(name, code, alpha) of an activation for the kernels; code is None for softmax."""
    name = serialize(identifier)
    if name == "softmax":
        return name, None, 0.0
    return name, ACT_CODES[name], float(ACT_DEFAULT_ALPHA.get(name, 0.0))
