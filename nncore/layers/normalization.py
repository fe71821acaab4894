"""BatchNormalization and LayerNormalization (Keras 3 semantics), one fused C kernel per direction.

Both see their input as a (rows, C) block, a view: BatchNormalization normalizes each of the C
channels (the last axis) over the rows, i.e. over the batch and every spatial axis, so it works
after Dense (rows = batch) and after Conv1D/Conv2D (rows = batch * steps or batch * height *
width); LayerNormalization normalizes each row over its C values (the trailing axes).

Kernels (csrc/norm_body.h): forward is one pass for the statistics (in double) and one for
y; backward one pass for the sums dbeta = sum dy, dgamma = sum dy xhat and one for dx. The
statistics are summed in row chunks fixed by the shape and added in chunk order, so every result
is bit-identical for any thread count.
"""
import math

import numpy as np

from nncore import initializers, regularizers
from nncore._kernels import norm as _norm
from nncore.layers.base import Layer
from nncore.layers.core import _serialize


def _flag(value, arg, cls):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{cls}: {arg} must be a bool, got {value!r}")
    return bool(value)


def _positive(value, arg, cls):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) or not value > 0:
        raise ValueError(f"{cls}: {arg} must be a positive number, got {value!r}")
    return float(value)


def _unsupported(cls, **given):
    """Keras arguments nncore takes only at their defaults (so Keras configs load when they do)."""
    defaults = {"beta_constraint": None, "gamma_constraint": None, "synchronized": False, "renorm": False,
                "renorm_clipping": None, "rms_scaling": False}
    for arg, value in given.items():
        if value != defaults[arg]:
            raise ValueError(f"{cls}: {arg}={value!r} is not supported (only {defaults[arg]!r})")


class _Normalization(Layer):
    """What the two normalizations share: gamma/beta (center/scale) and their initializers,
    regularizers and config, the (rows, C) view of the input, and the per-shape buffers."""

    def _init_affine(self, epsilon, center, scale, beta_initializer, gamma_initializer, beta_regularizer,
                     gamma_regularizer):
        cls = type(self).__name__
        self.epsilon = _positive(epsilon, "epsilon", cls)
        self.center = _flag(center, "center", cls)
        self.scale = _flag(scale, "scale", cls)
        self.beta_initializer, self.gamma_initializer = beta_initializer, gamma_initializer
        self.beta_regularizer, self.gamma_regularizer = beta_regularizer, gamma_regularizer
        for init in (beta_initializer, gamma_initializer):
            initializers.get(init)
        for reg in (beta_regularizer, gamma_regularizer):
            regularizers.get(reg)
        self._g = None

    def _add_affine(self, shape):
        """gamma (scale=True) then beta (center=True), Keras's order and shapes."""
        if self.scale:
            self.add_weight("gamma", shape, self.gamma_initializer, self.gamma_regularizer)
        if self.center:
            self.add_weight("beta", shape, self.beta_initializer, self.beta_regularizer)

    def _bind(self, params_of, grads_of):
        super()._bind(params_of, grads_of)
        self._vectors(next(iter(params_of.values())).dtype)

    def _vectors(self, dtype):
        """gamma and beta as the (C,) vectors the kernels take (ones / zeros stand in for scale /
        center False) and their gradients (None when not learned)."""
        self._g = self.gamma.reshape(-1) if self.scale else np.ones(self._cols, dtype)
        self._b = self.beta.reshape(-1) if self.center else np.zeros(self._cols, dtype)
        self._dg = self._grad_of["gamma"].reshape(-1) if self.scale else None
        self._db = self._grad_of["beta"].reshape(-1) if self.center else None

    def _affine_config(self):
        return dict(epsilon=self.epsilon, center=self.center, scale=self.scale,
                    beta_initializer=_serialize(self.beta_initializer),
                    gamma_initializer=_serialize(self.gamma_initializer),
                    beta_regularizer=_serialize(self.beta_regularizer),
                    gamma_regularizer=_serialize(self.gamma_regularizer))

    def _rows_view(self, x):
        """x as its (rows, C) view, after the shape check; and the buffers for its shape."""
        if x.shape[1:] != self.input_shape[1:]:
            self._check_features(x)
        if self._g is None or x.dtype != self._g.dtype:
            if not self._bound:           # no weights at all (center=scale=False): follow the input
                self._vectors(x.dtype)
                return self._rows_view(x)
            raise TypeError(f"layer {self.name!r} ({type(self).__name__}): expected {self._g.dtype} inputs "
                            f"like its weights, got {x.dtype}")
        bufs = self._bufs.get((x.shape, x.dtype.str)) or self._buffers(x.shape, x.dtype)
        return x.reshape(-1, self._cols), bufs

    def _buffers(self, shape, dtype):
        # [y, y as (rows, C), stats, work, dx]; dx is made by the first backward that needs it
        rows = math.prod(shape) // self._cols
        y = np.empty(shape, dtype)
        return self._keep((shape, dtype.str), [y, y.reshape(rows, self._cols), np.empty(self._stats_size(rows)),
                                  np.empty(_norm.work_size(rows, self._cols)), None])

    def backward(self, dy):
        # dgamma and dbeta go to the gradient buffer (not for a frozen layer); dx only when an
        # earlier layer needs it (its buffer is made by the first backward that does)
        bufs = self._cur
        dg, db = (self._dg, self._db) if self._trainable else (None, None)
        dx = None
        if self._need_dx:
            if bufs[4] is None:
                bufs[4] = np.empty_like(bufs[0])
            dx = bufs[4]
        if dx is None and dg is None and db is None:
            return None
        self._backward_kernel(dy.reshape(self._x2.shape), None if dx is None else dx.reshape(self._x2.shape), dg,
                              db, bufs)
        return dx


class BatchNormalization(_Normalization):
    """Normalize each channel (the last axis) with the batch's statistics in training and moving
    averages of them in inference.

    Parameters
    ----------
    axis : int, default=-1
        The channel axis; only the last one (channels_last) is supported.
    momentum : float, default=0.99
    epsilon : float, default=1e-3
    center, scale : bool, default=True
        Learn an offset beta / a scale gamma.
    beta_initializer, gamma_initializer : default='zeros', 'ones'
    moving_mean_initializer, moving_variance_initializer : default='zeros', 'ones'
    beta_regularizer, gamma_regularizer : regularizer or None

    Notes
    -----
    Training (``training=True`` and the layer trainable), per channel c over the rows (every
    axis but the last): mean_c, var_c = the batch mean and biased variance;
    y = gamma (x - mean_c) / sqrt(var_c + epsilon) + beta; and
    moving_mean <- moving_mean momentum + mean_c (1 - momentum),
    moving_variance <- moving_variance momentum + var_c (1 - momentum) (Keras's rule: the biased
    variance; PyTorch's BatchNorm uses the unbiased one and momentum = 1 - Keras's).
    Inference, or a frozen layer (``trainable=False``, as Keras): the same y with the moving
    statistics, which stay unchanged.
    Backward (training), xhat = (x - mean) / sqrt(var + epsilon): dbeta = sum dy,
    dgamma = sum dy xhat, dx = gamma / sqrt(var + epsilon) (dy - dbeta/R - xhat dgamma/R)
    for R rows. Weights: gamma, beta (trainable), moving_mean, moving_variance (not).

    References
    ----------
    Ioffe and Szegedy, "Batch Normalization: Accelerating Deep Network Training by Reducing
    Internal Covariate Shift", ICML 2015.
    """

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True, beta_initializer="zeros",
                 gamma_initializer="ones", moving_mean_initializer="zeros", moving_variance_initializer="ones",
                 beta_regularizer=None, gamma_regularizer=None, beta_constraint=None, gamma_constraint=None,
                 synchronized=False, renorm=False, renorm_clipping=None, renorm_momentum=0.99, name=None,
                 input_shape=None, batch_input_shape=None, trainable=True):
        super().__init__(name=name, input_shape=input_shape, batch_input_shape=batch_input_shape,
                         trainable=trainable)
        _unsupported("BatchNormalization", beta_constraint=beta_constraint, gamma_constraint=gamma_constraint,
                     synchronized=synchronized, renorm=renorm, renorm_clipping=renorm_clipping)
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise TypeError(f"BatchNormalization: axis must be an int, got {axis!r}")
        self.axis = int(axis)
        if isinstance(momentum, bool) or not isinstance(momentum, (int, float, np.floating, np.integer)):
            raise TypeError(f"BatchNormalization: momentum must be a number, got {momentum!r}")
        if not 0.0 <= float(momentum) <= 1.0:  # NaN fails too: the moving statistics would turn NaN in fit
            raise ValueError(f"BatchNormalization: momentum must be in [0, 1], got {momentum!r}")
        self.momentum = float(momentum)
        self._init_affine(epsilon, center, scale, beta_initializer, gamma_initializer, beta_regularizer,
                          gamma_regularizer)
        self.moving_mean_initializer = moving_mean_initializer
        self.moving_variance_initializer = moving_variance_initializer
        initializers.get(moving_mean_initializer)
        initializers.get(moving_variance_initializer)

    def build(self, input_shape):
        nd = len(input_shape)
        if nd < 2:
            raise ValueError(f"layer {self.name!r} (BatchNormalization): expected inputs (batch, ..., channels), "
                             f"got shape {tuple(input_shape)}")
        if self.axis not in (-1, nd - 1):
            raise ValueError(f"layer {self.name!r} (BatchNormalization): only the last axis (channels_last) is "
                             f"supported, got axis={self.axis} for inputs of shape {tuple(input_shape)}")
        if any(s is None for s in input_shape[1:]):
            raise ValueError(f"layer {self.name!r} (BatchNormalization): every dimension except the batch must be "
                             f"known, got shape {tuple(input_shape)}")
        self._cols = int(input_shape[-1])
        shape = (self._cols,)
        self._add_affine(shape)
        self.add_weight("moving_mean", shape, self.moving_mean_initializer, trainable=False)
        self.add_weight("moving_variance", shape, self.moving_variance_initializer, trainable=False)

    def _stats_size(self, rows):
        return 2 * self._cols   # (2, C): each channel's mean and 1/std

    def forward(self, x, training=False):
        x2, bufs = self._rows_view(x)
        # Keras: batch statistics only when training AND trainable (a frozen BN runs in inference mode)
        self._train = bool(training) and self._trainable
        _norm.batchnorm_forward(x2, self._g, self._b, self.moving_mean, self.moving_variance, bufs[1], bufs[2],
                                bufs[3], self.momentum, self.epsilon, self._train, self._n_threads)
        self._x2, self._cur = x2, bufs
        return bufs[0]

    def _backward_kernel(self, dy2, dx2, dg, db, bufs):
        _norm.batchnorm_backward(self._x2, dy2, self._g, bufs[2], dx2, dg, db, bufs[3], self._train, self._n_threads)

    def get_config(self):
        cfg = super().get_config()
        cfg.update(axis=self.axis, momentum=self.momentum, **self._affine_config(),
                   moving_mean_initializer=_serialize(self.moving_mean_initializer),
                   moving_variance_initializer=_serialize(self.moving_variance_initializer))
        return cfg


class LayerNormalization(_Normalization):
    """Normalize each sample over its trailing axes (by default the last), with a learned scale and
    offset per element of those axes.

    Parameters
    ----------
    axis : int or list of int, default=-1
        The axes to normalize over: the last one, or several trailing ones (e.g. ``[1, 2, 3]``
        for whole images); the batch axis may not be among them.
    epsilon : float, default=1e-3
    center, scale : bool, default=True
    beta_initializer, gamma_initializer : default='zeros', 'ones'
    beta_regularizer, gamma_regularizer : regularizer or None

    Notes
    -----
    Per sample (row) r over its C values: y = gamma (x - mean_r) / sqrt(var_r + epsilon) + beta
    (biased variance), the same in training and inference. Backward, with xhat as above and
    g = dy gamma: dx = (g - mean(g) - xhat mean(g xhat)) / sqrt(var_r + epsilon),
    dgamma = sum over rows of dy xhat, dbeta = sum over rows of dy.

    References
    ----------
    Ba, Kiros and Hinton, "Layer Normalization", 2016.
    """

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True, beta_initializer="zeros",
                 gamma_initializer="ones", beta_regularizer=None, gamma_regularizer=None, beta_constraint=None,
                 gamma_constraint=None, rms_scaling=False, name=None, input_shape=None, batch_input_shape=None,
                 trainable=True):
        super().__init__(name=name, input_shape=input_shape, batch_input_shape=batch_input_shape,
                         trainable=trainable)
        _unsupported("LayerNormalization", beta_constraint=beta_constraint, gamma_constraint=gamma_constraint,
                     rms_scaling=rms_scaling)
        axes = [axis] if isinstance(axis, (int, np.integer)) and not isinstance(axis, bool) else axis
        if not isinstance(axes, (list, tuple)) or not axes or not all(
                isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in axes):
            raise TypeError(f"LayerNormalization: axis must be an int or a list of ints, got {axis!r}")
        self.axis = int(axis) if axes is not axis else [int(a) for a in axes]
        self._init_affine(epsilon, center, scale, beta_initializer, gamma_initializer, beta_regularizer,
                          gamma_regularizer)

    def build(self, input_shape):
        nd = len(input_shape)
        axes = sorted({a % nd if -nd <= a < nd else a for a in
                       ([self.axis] if isinstance(self.axis, int) else self.axis)})
        if any(not 0 < a < nd for a in axes) or axes != list(range(axes[0], nd)):
            raise ValueError(f"layer {self.name!r} (LayerNormalization): axis={self.axis} must name trailing axes "
                             f"of the inputs (not the batch axis), got inputs of shape {tuple(input_shape)}")
        if any(s is None for s in input_shape[1:]):
            raise ValueError(f"layer {self.name!r} (LayerNormalization): every dimension except the batch must be "
                             f"known, got shape {tuple(input_shape)}")
        shape = tuple(int(input_shape[a]) for a in axes)
        self._cols = math.prod(shape)
        self._add_affine(shape)

    def _stats_size(self, rows):
        return 2 * rows         # (2, rows): each row's mean and 1/std

    def forward(self, x, training=False):
        x2, bufs = self._rows_view(x)
        _norm.layernorm_forward(x2, self._g, self._b, bufs[1], bufs[2], self.epsilon, self._n_threads)
        self._x2, self._cur = x2, bufs
        return bufs[0]

    def _backward_kernel(self, dy2, dx2, dg, db, bufs):
        _norm.layernorm_backward(self._x2, dy2, self._g, bufs[2], dx2, dg, db, bufs[3], self._n_threads)

    def get_config(self):
        cfg = super().get_config()
        cfg.update(axis=self.axis, **self._affine_config())
        return cfg
