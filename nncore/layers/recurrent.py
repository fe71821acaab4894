"""Recurrent layers: SimpleRNN, LSTM and GRU with Keras 3 semantics (weights, gate order, outputs).

Inputs are (batch, timesteps, features); the state starts at zero. The output
is the last state h_T, shape (batch, units), or every state, shape
(batch, timesteps, units), with ``return_sequences=True``. With
``go_backwards=True`` the sequence is read from its end, and the returned
sequence is in that (processing) order, as in Keras.

Mechanism (the same for the three layers). Sequences are kept time-major,
(T, B, width), so that the block of one step is contiguous:

forward   Z = X W + b            ONE gemm over all T*B rows, bias fused
          per step t:            z_t += h_{t-1} U (one gemm, beta = 1), then ONE fused cell
                                 kernel: gate activations, state update, what backward needs
backward  per step t (reversed): ONE fused cell kernel: delta_t = dL/dz_t (and the carried dc),
                                 then dh_{t-1} += delta_t U^T (one gemm, beta = 1)
          after the loop:        dW = X^T delta, dU = H_prev^T delta, db = colsum delta,
                                 dX = delta W^T: single gemms over all steps

SimpleRNN needs no cell kernel of its own: h_t = a(z_t + h_{t-1} U) is the gemm with the
activation in its epilogue, and delta_t = dh_t a'(h_t) is `act_backward`.
"""
import numpy as np

from nncore import activations as _activations
from nncore import initializers, regularizers
from nncore._kernels import elementwise as _ew
from nncore._kernels import rnn as _rnn
from nncore._kernels.gemm import gemm, gemm_packed, lstm_seq_backward, lstm_seq_forward, pack_b
from nncore.layers.base import Layer
from nncore.layers.core import _serialize

_act_forward = _ew.act_forward
_act_backward = _ew.act_backward
_colsum = _ew.colsum


def _default_name(kind):
    k = Layer._counters.get(kind, 0)
    Layer._counters[kind] = k + 1
    return kind if k == 0 else f"{kind}_{k}"


class _UnitForgetBias(initializers.Initializer):
    """The LSTM bias of Keras with unit_forget_bias: [init(u), ones(u), init(2u)] for gates i, f, g, o."""

    def __init__(self, init):
        self.init = init

    def __call__(self, shape, dtype=None, rng=None):
        u = shape[0] // 4
        return np.concatenate([np.asarray(self.init((u,), dtype=dtype, rng=rng)), np.ones(u, dtype),
                               np.asarray(self.init((2 * u,), dtype=dtype, rng=rng))]).astype(dtype)


class _Buffers:
    """Work buffers of one batch size (time-major) and the 2-D views the big gemms use."""


class _Recurrent(Layer):
    """Shared parts of the recurrent layers; subclasses set `_gates` and write the step loops."""
    _gates = 1
    _kind = "rnn"

    def __init__(self, units, activation="tanh", recurrent_activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, return_sequences=False, go_backwards=False, name=None,
                 input_shape=None, batch_input_shape=None):
        cls = type(self).__name__
        super().__init__(name=name if name is not None else _default_name(self._kind),
                         input_shape=input_shape, batch_input_shape=batch_input_shape)
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units <= 0:
            raise ValueError(f"{cls}: units must be a positive int, got {units!r}")
        self.units = int(units)
        self.activation, self._act_name, self._code, self._alpha = self._resolve(activation, "activation")
        if recurrent_activation is not None:
            (self.recurrent_activation, self._ract_name, self._rcode,
             self._ralpha) = self._resolve(recurrent_activation, "recurrent_activation")
        self.use_bias = bool(use_bias)
        self.kernel_initializer = kernel_initializer
        self.recurrent_initializer = recurrent_initializer
        self.bias_initializer = bias_initializer
        self.kernel_regularizer = kernel_regularizer
        self.recurrent_regularizer = recurrent_regularizer
        self.bias_regularizer = bias_regularizer
        for init in (kernel_initializer, recurrent_initializer, bias_initializer):
            initializers.get(init)              # unknown names fail at construction
        for reg in (kernel_regularizer, recurrent_regularizer, bias_regularizer):
            regularizers.get(reg)
        self.return_sequences = bool(return_sequences)
        self.go_backwards = bool(go_backwards)

    def _resolve(self, identifier, arg):
        fn = _activations.get(identifier)
        name, code, alpha = _activations.kernel_spec(fn)
        if code is None or _ew.needs_input(code):
            raise ValueError(f"{type(self).__name__}: {arg} {name!r} is not supported in a recurrent cell "
                             "(its derivative needs the pre-activation); use e.g. tanh, sigmoid, relu, "
                             "hard_sigmoid, linear")
        return fn, name, code, alpha

    # ---- parameters ------------------------------------------------------------
    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"layer {self.name!r} ({type(self).__name__}): expected 3-D inputs "
                             f"(batch, timesteps, features), got shape {tuple(input_shape)}")
        G = self._gates * self.units
        self.add_weight("kernel", (input_shape[-1], G), self.kernel_initializer, self.kernel_regularizer)
        self.add_weight("recurrent_kernel", (self.units, G), self.recurrent_initializer,
                        self.recurrent_regularizer)
        if self.use_bias:
            self.add_weight("bias", self._bias_shape(), self._bias_init(), self.bias_regularizer)

    def _bias_shape(self):
        return (self._gates * self.units,)

    def _bias_init(self):
        return self.bias_initializer

    def compute_output_shape(self, input_shape):
        if self.return_sequences:
            return (input_shape[0], input_shape[1], self.units)
        return (input_shape[0], self.units)

    # ---- buffers -----------------------------------------------------------------
    def _buffers(self, n):
        T, D = self.input_shape[1], self.input_shape[2]
        u, G, dt = self.units, self._gates * self.units, self.kernel.dtype
        b = _Buffers()
        b.xt = np.empty((T, n, D), dt)                # inputs, time-major (reversed for go_backwards)
        b.h = np.zeros((T + 1, n, u), dt)             # h[0] = 0 (initial state), h[t + 1] = h_t
        # x W + b, then the gates (SimpleRNN: written into h[1:], which the steps activate in place)
        b.z = np.empty((T, n, G), dt) if self._gates > 1 else b.h[1:]
        b.dh_all = np.empty((T + 1, n, u), dt)        # [0]: dL/dh of the initial state (unused here)
        b.dh = b.dh_all[1:]                           # dL/dh_t
        b.d = np.empty((T, n, G), dt)                 # delta_t = dL/dz_t
        b.y = np.empty((n, T, u), dt) if self.return_sequences else b.h[T]
        b.dxt = np.empty((T, n, D), dt) if self._need_dx else None
        b.dx = np.empty((n, T, D), dt) if self._need_dx else None
        b.xt2, b.z2, b.d2 = b.xt.reshape(T * n, D), b.z.reshape(T * n, G), b.d.reshape(T * n, G)
        # the previous states h[1..T-1] of steps 1..T-1 (step 0's is the zero initial state: adds nothing to dU)
        b.hprev2 = b.h[1:T].reshape((T - 1) * n, u)
        b.dxt2 = b.dxt.reshape(T * n, D) if self._need_dx else None
        self._more_buffers(b, T, n)
        return self._keep(n, b)

    def _more_buffers(self, b, T, n):
        b.drec = b.d                                  # dL/d(h_{t-1} U): the same as delta here
        b.drec_p2 = b.d[1:].reshape((T - 1) * n, b.d.shape[2])

    # ---- computation ---------------------------------------------------------------
    def forward(self, x, training=False):
        # Z = X W + b (all steps) ; per step: z_t += h_{t-1} U ; cell
        if x.ndim != 3 or x.shape[1:] != self.input_shape[1:]:
            raise ValueError(f"layer {self.name!r} ({type(self).__name__}): expected input of shape "
                             f"(batch, {self.input_shape[1]}, {self.input_shape[2]}), got {x.shape}")
        if x.dtype != self.kernel.dtype:
            raise TypeError(f"layer {self.name!r} ({type(self).__name__}): expected input of dtype "
                            f"{self.kernel.dtype}, got {x.dtype}")
        b = self._bufs.get(x.shape[0])
        if b is None or (b.dx is None) == self._need_dx:
            b = self._buffers(x.shape[0])
        self._cur = b
        np.copyto(b.xt, (x[:, ::-1] if self.go_backwards else x).transpose(1, 0, 2))
        self._project(b)
        self._forward_steps(b)
        if self.return_sequences:
            np.copyto(b.y, b.h[1:].transpose(1, 0, 2))
        return b.y

    def _project(self, b):
        gemm(b.xt2, self.kernel, b.z2, bias=self.bias if self.use_bias else None, n_threads=self._n_threads)

    def backward(self, dy):
        # per step (reversed): cell backward -> delta_t ; dh_{t-1} += delta_t U^T
        # then dW = X^T delta ; dU = H_prev^T delta ; db = colsum delta ; dX = delta W^T
        b, g, nt = self._cur, self._grad_of, self._n_threads
        if self.return_sequences:
            np.copyto(b.dh, dy.transpose(1, 0, 2))
        else:
            b.dh[:-1].fill(0)
            np.copyto(b.dh[-1], dy)
        self._backward_steps(b)
        gemm(b.xt2, b.d2, g["kernel"], trans_a=True, n_threads=nt)
        gemm(b.hprev2, b.drec_p2, g["recurrent_kernel"], trans_a=True, n_threads=nt)
        if self.use_bias:
            self._bias_grad(b, g["bias"])
        if not self._need_dx:
            return None
        gemm(b.d2, self.kernel, b.dxt2, trans_b=True, n_threads=nt)
        np.copyto(b.dx, (b.dxt[::-1] if self.go_backwards else b.dxt).transpose(1, 0, 2))
        return b.dx

    def _bias_grad(self, b, db):
        _colsum(b.d2, db, self._n_threads)

    def _packed_U(self, b, trans=False):
        """U (trans: U^T) packed once per batch for the per-step gemms, in b's buffer: U changes only
        between batches, and packing it at every step cost 4-10% of those gemms."""
        key = "Ut_packed" if trans else "U_packed"
        packed = pack_b(self.recurrent_kernel, trans_b=trans, out=getattr(b, key, None))
        setattr(b, key, packed)
        return packed

    # ---- config ----------------------------------------------------------------
    def get_config(self):
        cfg = super().get_config()
        cfg.update(units=self.units, activation=self._act_name, use_bias=self.use_bias,
                   kernel_initializer=_serialize(self.kernel_initializer),
                   recurrent_initializer=_serialize(self.recurrent_initializer),
                   bias_initializer=_serialize(self.bias_initializer),
                   kernel_regularizer=_serialize(self.kernel_regularizer),
                   recurrent_regularizer=_serialize(self.recurrent_regularizer),
                   bias_regularizer=_serialize(self.bias_regularizer),
                   return_sequences=self.return_sequences, go_backwards=self.go_backwards)
        if hasattr(self, "_ract_name"):
            cfg["recurrent_activation"] = self._ract_name
        return cfg


class SimpleRNN(_Recurrent):
    """Fully connected recurrence: h_t = a(x_t W + h_{t-1} U + b), h_0 = 0.

    Parameters
    ----------
    units : int
    activation : str or function, default='tanh'
        Any activation whose derivative follows from its output (not gelu, swish, softmax).
    use_bias : bool, default=True
    kernel_initializer, recurrent_initializer, bias_initializer : default='glorot_uniform', 'orthogonal', 'zeros'
    kernel_regularizer, recurrent_regularizer, bias_regularizer : name, regularizer or None
    return_sequences : bool, default=False
        Return every h_t, shape (batch, timesteps, units), instead of the last.
    go_backwards : bool, default=False
        Read the sequence from its end (the returned sequence is in that order).

    Notes
    -----
    Weights as Keras: kernel (features, units), recurrent_kernel (units, units), bias (units,).
    Forward per step: one gemm h_t = a(z_t + h_{t-1} U) with a in its epilogue (z_t = x_t W + b
    from one gemm over all steps). Backward: delta_t = dh_t a'(h_t) ; dh_{t-1} += delta_t U^T.
    """
    _kind = "simple_rnn"

    def __init__(self, units, activation="tanh", use_bias=True, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros", kernel_regularizer=None,
                 recurrent_regularizer=None, bias_regularizer=None, return_sequences=False,
                 go_backwards=False, name=None, input_shape=None, batch_input_shape=None):
        super().__init__(units, activation, None, use_bias, kernel_initializer, recurrent_initializer,
                         bias_initializer, kernel_regularizer, recurrent_regularizer, bias_regularizer,
                         return_sequences, go_backwards, name, input_shape, batch_input_shape)

    def _forward_steps(self, b):
        h, U, nt = b.h, self._packed_U(b), self._n_threads
        _act_forward(self._code, self._alpha, h[1], h[1], nt)                 # h_1 = a(x_1 W + b)
        for t in range(2, h.shape[0]):
            gemm_packed(h[t - 1], U, h[t], beta=1.0, act=self._code, act_alpha=self._alpha, n_threads=nt)

    def _backward_steps(self, b):
        h, dh, d, Ut, nt = b.h, b.dh, b.d, self._packed_U(b, trans=True), self._n_threads
        for t in range(dh.shape[0] - 1, -1, -1):
            _act_backward(self._code, self._alpha, None, h[t + 1], dh[t], d[t], nt)   # delta = dh a'(h)
            if t:
                gemm_packed(d[t], Ut, dh[t - 1], beta=1.0, n_threads=nt)            # dh_{t-1} += delta U^T


class LSTM(_Recurrent):
    """Long short-term memory (Hochreiter & Schmidhuber, 1997), as Keras 3's LSTM.

    Parameters
    ----------
    units : int
    activation : default='tanh'
        a, for the candidate g and the output a(c).
    recurrent_activation : default='sigmoid'
        ra, for the gates i, f, o.
    use_bias : bool, default=True
    kernel_initializer, recurrent_initializer, bias_initializer : default='glorot_uniform', 'orthogonal', 'zeros'
    unit_forget_bias : bool, default=True
        Initialize the forget-gate bias to 1 (the others with bias_initializer), as Keras.
    kernel_regularizer, recurrent_regularizer, bias_regularizer : name, regularizer or None
    return_sequences, go_backwards : bool, default=False
        As in SimpleRNN.

    Notes
    -----
    Weights as Keras: kernel (features, 4 units), recurrent_kernel (units, 4 units), bias (4 units,),
    gate blocks in the order i, f, g ("c" in Keras), o. With z = x_t W + h_{t-1} U + b:
    i = ra(z_i), f = ra(z_f), g = a(z_g), o = ra(z_o); c_t = f c_{t-1} + i g; h_t = o a(c_t).
    Backward (one cell kernel per step): dc_t = dc + dh o a'(c_t); delta = [dc_t g ra'(i),
    dc_t c_{t-1} ra'(f), dc_t i a'(g), dh a(c_t) ra'(o)]; dc_{t-1} = dc_t f.
    """
    _gates = 4
    _kind = "lstm"

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", unit_forget_bias=True, kernel_regularizer=None,
                 recurrent_regularizer=None, bias_regularizer=None, return_sequences=False,
                 go_backwards=False, name=None, input_shape=None, batch_input_shape=None):
        super().__init__(units, activation, recurrent_activation, use_bias, kernel_initializer,
                         recurrent_initializer, bias_initializer, kernel_regularizer, recurrent_regularizer,
                         bias_regularizer, return_sequences, go_backwards, name, input_shape, batch_input_shape)
        self.unit_forget_bias = bool(unit_forget_bias)

    def _bias_init(self):
        init = initializers.get(self.bias_initializer)
        return _UnitForgetBias(init) if self.unit_forget_bias else init

    def _more_buffers(self, b, T, n):
        super()._more_buffers(b, T, n)
        u, dt = self.units, self.kernel.dtype
        b.c = np.zeros((T + 1, n, u), dt)             # c[0] = 0, c[t + 1] = c_t
        b.tc = np.empty((T, n, u), dt)                # a(c_t)
        b.dc = np.empty((n, u), dt)                   # dL/dc carried backwards

    def _forward_steps(self, b):
        # per step: z_t += h_{t-1} U, then the cell; the whole loop is one kernel call
        lstm_seq_forward(self._code, self._alpha, self._rcode, self._ralpha, self._packed_U(b), b.z, b.c, b.tc,
                         b.h, n_threads=self._n_threads)

    def _backward_steps(self, b):
        # per step, reversed: the cell's delta_t, then dh_{t-1} += delta_t U^T; one kernel call
        b.dc.fill(0)
        lstm_seq_backward(self._code, self._alpha, self._rcode, self._ralpha, self._packed_U(b, trans=True), b.z,
                          b.c, b.tc, b.dh_all, b.dc, b.d, n_threads=self._n_threads)

    def get_config(self):
        cfg = super().get_config()
        cfg["unit_forget_bias"] = self.unit_forget_bias
        return cfg


class GRU(_Recurrent):
    """Gated recurrent unit (Cho et al., 2014), as Keras 3's GRU with reset_after=True.

    Parameters
    ----------
    units : int
    activation : default='tanh'
    recurrent_activation : default='sigmoid'
    use_bias : bool, default=True
    kernel_initializer, recurrent_initializer, bias_initializer : default='glorot_uniform', 'orthogonal', 'zeros'
    kernel_regularizer, recurrent_regularizer, bias_regularizer : name, regularizer or None
    return_sequences, go_backwards : bool, default=False
    reset_after : bool, default=True
        Only True (the Keras 3 default, also cuDNN's form) is implemented.

    Notes
    -----
    Weights as Keras: kernel (features, 3 units), recurrent_kernel (units, 3 units), bias (2, 3 units)
    = [input bias, recurrent bias], gate blocks z, r, h. With x = x_t W + b_in and
    rec = h_{t-1} U + b_rec: z = ra(x_z + rec_z), r = ra(x_r + rec_r), hh = a(x_h + r rec_h),
    h_t = z h_{t-1} + (1 - z) hh. Backward: delta_h = dh (1 - z) a'(hh),
    dx = [dh (h_{t-1} - hh) ra'(z), delta_h rec_h ra'(r), delta_h], drec = [dx_z, dx_r, delta_h r],
    dh_{t-1} = dh z + drec U^T; dU = H_prev^T drec, db = [colsum dx, colsum drec].
    """
    _gates = 3
    _kind = "gru"

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, return_sequences=False, go_backwards=False, reset_after=True,
                 name=None, input_shape=None, batch_input_shape=None):
        if not reset_after:
            raise ValueError("GRU: only reset_after=True (the Keras 3 default) is implemented")
        super().__init__(units, activation, recurrent_activation, use_bias, kernel_initializer,
                         recurrent_initializer, bias_initializer, kernel_regularizer, recurrent_regularizer,
                         bias_regularizer, return_sequences, go_backwards, name, input_shape, batch_input_shape)
        self.reset_after = True

    def _bias_shape(self):
        return (2, 3 * self.units)

    def _project(self, b):
        gemm(b.xt2, self.kernel, b.z2, bias=self.bias[0] if self.use_bias else None, n_threads=self._n_threads)

    def _more_buffers(self, b, T, n):
        G, dt = 3 * self.units, self.kernel.dtype
        b.rec = np.empty((T, n, G), dt)               # h_{t-1} U + b_rec
        b.drec = np.empty((T, n, G), dt)              # dL/d rec
        b.drec2 = b.drec.reshape(T * n, G)
        b.drec_p2 = b.drec[1:].reshape((T - 1) * n, G)

    def _forward_steps(self, b):
        z, rec, h, U, nt = b.z, b.rec, b.h, self._packed_U(b), self._n_threads
        a, al, ra, ral = self._code, self._alpha, self._rcode, self._ralpha
        brec = self.bias[1] if self.use_bias else None
        for t in range(z.shape[0]):
            if t:
                gemm_packed(h[t], U, rec[t], bias=brec, n_threads=nt)           # rec = h_{t-1} U + b_rec
            elif brec is not None:
                np.copyto(rec[0], brec)                                          # h_{-1} = 0
            else:
                rec[0].fill(0)
            _rnn.gru_cell_forward(a, al, ra, ral, z[t], rec[t], h[t], h[t + 1], nt)

    def _backward_steps(self, b):
        z, rec, h, dh, d, drec = b.z, b.rec, b.h, b.dh, b.d, b.drec
        Ut, nt = self._packed_U(b, trans=True), self._n_threads
        a, al, ra, ral = self._code, self._alpha, self._rcode, self._ralpha
        for t in range(z.shape[0] - 1, -1, -1):
            _rnn.gru_cell_backward(a, al, ra, ral, z[t], rec[t], h[t], dh[t], d[t], drec[t],
                                   dh[t - 1] if t else None, nt)                # dh_{t-1} += dh z
            if t:
                gemm_packed(drec[t], Ut, dh[t - 1], beta=1.0, n_threads=nt)         # dh_{t-1} += drec U^T

    def _bias_grad(self, b, db):
        _colsum(b.d2, db[0], self._n_threads)
        _colsum(b.drec2, db[1], self._n_threads)

    def get_config(self):
        cfg = super().get_config()
        cfg["reset_after"] = True
        return cfg
