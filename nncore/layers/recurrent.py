"""Recurrent layers: SimpleRNN, LSTM and GRU with Keras 3 semantics (weights, gate order, outputs).

Inputs are (batch, timesteps, features). The output is the last state h_T, shape (batch, units), or
every state, shape (batch, timesteps, units), with ``return_sequences=True``; ``return_state=True``
adds the final states ([h] or [h, c] for the LSTM). The state starts at zero, at ``initial_state``
(a call argument) or, for ``stateful=True``, where the previous batch left it. With
``go_backwards=True`` the sequence is read from its end, and the returned sequence is in that
(processing) order, as in Keras.

Mechanism (the same for the three layers). Sequences are kept time-major, (T, B, width), so that
the block of one step is contiguous:

forward   Z = X W + b            ONE gemm over all T*B rows, bias fused
          per step t:            z_t += h_{t-1} U (one gemm, beta = 1), then ONE fused cell
                                 kernel: gate activations, state update, what backward needs
backward  per step t (reversed): ONE fused cell kernel: delta_t = dL/dz_t (and the carried dc),
                                 then dh_{t-1} += delta_t U^T (one gemm, beta = 1)
          after the loop:        dW = X^T delta, dU = H_prev^T delta, db = colsum delta,
                                 dX = delta W^T: single gemms over all steps

SimpleRNN needs no forward cell kernel of its own: h_t = a(z_t + h_{t-1} U) is the gemm with the
activation in its epilogue.

Without a mask and without recurrent dropout each step loop is ONE kernel call for the whole sequence
(`_seq_forward` / `_seq_backward`: nncore._kernels.gemm.rnn_seq_forward / rnn_seq_backward, one loop for
every cell, each thread a block of rows through all steps); the LSTM and SimpleRNN without input dropout
then take z_t = [x_t | h_{t-1} | 1] [W; U; b] as one product a step and sum [dW; dU; db] = xh^T delta in
the backward loop (`_one_product`). The per-step loops below stay for masks and recurrent dropout.

Masks (Keras's): a (batch, timesteps) mask from `Masking` or `Embedding(mask_zero=True)` goes to the
cell kernels one step at a time; on a masked step a row keeps its state (h_t = h_{t-1}, c_t =
c_{t-1}) and gets no gradient, and the output there repeats the last output (zeros before the
first valid step; zeros at every masked step with ``zero_output_for_mask=True``).

Dropout (Keras 3's): in training, masks m = [u >= rate] / (1 - rate) drawn once per batch from the
layer's own generator and fixed over the time steps multiply the inputs x_t (``dropout``) and the
previous state h_{t-1} (``recurrent_dropout``) before their products with W and U. Keras draws one
input mask for all gates, but one mask per gate block (4 for the LSTM, 3 for the GRU) for both when
``recurrent_dropout`` is set (its "implementation 1"); nncore does the same. A gate block k then
has its own products: Z[:, k] = (X m_k) W[:, k] and z_t[:, k] += (h_{t-1} r_k) U[:, k], as gemms
on column blocks of the weights (views, no copies).
"""
import numpy as np

from nncore import _random
from nncore import activations as _activations
from nncore import initializers, mixed_precision, regularizers
from nncore._kernels import ACT_BF16
from nncore._kernels import elementwise as _ew
from nncore._kernels import rnn as _rnn
from nncore._kernels.gemm import (RNN_GRU, RNN_GRU_RB, RNN_LSTM, RNN_SIMPLE, bf16_round, gemm, gemm_bf16,
                                  pack_b, pack_b_bf16, rnn_seq_backward, rnn_seq_forward)
from nncore.layers.base import Layer
from nncore.layers.core import _serialize

_act_forward = _ew.act_forward
_colsum = _ew.colsum


def _default_name(kind):
    k = Layer._counters.get(kind, 0)
    Layer._counters[kind] = k + 1
    return kind if k == 0 else f"{kind}_{k}"


def _rate(value, arg, cls):
    try:
        rate = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{cls}: {arg} must be a float in [0, 1), got {value!r}") from None
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"{cls}: {arg} must be in [0, 1), got {value!r}")
    return rate


class _UnitForgetBias(initializers.Initializer):
    """The LSTM bias of Keras with unit_forget_bias: [init(u), ones(u), init(2u)] for gates i, f, g, o."""

    def __init__(self, init):
        self.init = init

    def __call__(self, shape, dtype=None, rng=None):
        u = shape[0] // 4
        return np.concatenate([initializers.call(self.init, (u,), dtype, rng, "LSTM bias"), np.ones(u, dtype),
                               initializers.call(self.init, (2 * u,), dtype, rng, "LSTM bias")]).astype(dtype)


class _Buffers:
    """Work buffers of one batch size (time-major) and the 2-D views the big gemms use."""


def _stacked(arrays):
    """The arrays (C-contiguous, one width) as one stacked 2-D view where they lie one after another in one
    1-D buffer (a bound layer's weights in the model's flat buffer, and their gradients), else None."""
    base, end = arrays[0].base, arrays[0].ctypes.data
    if base is None or base.ndim != 1 or not base.flags.c_contiguous:
        return None
    for a in arrays:
        if a.base is not base or not a.flags.c_contiguous or a.ctypes.data != end:
            return None
        end += a.nbytes
    start = (arrays[0].ctypes.data - base.ctypes.data) // base.itemsize
    return base[start:start + (end - arrays[0].ctypes.data) // base.itemsize].reshape(-1, arrays[0].shape[-1])


def _blocks(a, k):
    """The k equal column blocks of a 2-D array (views)."""
    w = a.shape[-1] // k
    return [a[..., i * w:(i + 1) * w] for i in range(k)]


class _Recurrent(Layer):
    """Shared parts of the recurrent layers; subclasses set `_gates`, `_n_states` and write the step loops.

    Call protocol (a layer of a Sequential or of a functional model, or on its own):
    ``forward(x, training, mask=None, initial_state=None)`` where x is the (batch, T, D) sequence, or
    a list [sequence, *initial states] (the functional API's form: the states follow the sequence);
    it returns the output, or [output, *final states] with return_state. ``backward(dy)`` takes
    the output's gradient, or a list [dy, *d final states] (None or zeros where none flows), and
    returns dx, or [dx, *d initial states] when initial states were given.
    """
    _gates = 1
    _n_states = 1
    _kind = "rnn"
    _cell = RNN_SIMPLE         # the step loops' cell (nncore._kernels.gemm.rnn_seq_forward)
    _xh_form = True            # one product a step, z_t = [x_t | h_{t-1} | 1] [W; U; b] (`_one_product`)
    _policy_computes = True    # mixed_bfloat16: bfloat16 products, float32 cells (`_operands`)
    supports_masking = True
    _uses_mask = True
    _tensor_kwargs = ("initial_state",)

    def __init__(self, units, activation="tanh", recurrent_activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, dropout=0.0, recurrent_dropout=0.0, seed=None, return_sequences=False,
                 return_state=False, go_backwards=False, stateful=False, zero_output_for_mask=False, name=None,
                 input_shape=None, batch_input_shape=None, trainable=True, dtype=None):
        cls = type(self).__name__
        super().__init__(name=name if name is not None else _default_name(self._kind),
                         input_shape=input_shape, batch_input_shape=batch_input_shape, trainable=trainable)
        if dtype is not None:
            self._policy = mixed_precision.get(dtype)
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
        self.dropout = _rate(dropout, "dropout", cls)
        self.recurrent_dropout = _rate(recurrent_dropout, "recurrent_dropout", cls)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
            raise TypeError(f"{cls}: seed must be an int or None, got {seed!r}")
        self.seed = seed
        # the dropout masks' own generator (saved with the model: a resumed fit draws the same masks)
        self._rng = _random.make_rng(seed) if self.dropout or self.recurrent_dropout else None
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.stateful = bool(stateful)
        self.zero_output_for_mask = bool(zero_output_for_mask)
        self._batch_size = None            # a stateful layer's fixed batch size
        if batch_input_shape is not None and batch_input_shape[0] is not None:
            self._batch_size = int(batch_input_shape[0])
        self._states = None                # a stateful layer's states, [h] or [h, c], (batch, units) each

    def _resolve(self, identifier, arg):
        fn = _activations.get(identifier)
        name, code, alpha = _activations.kernel_spec(fn)
        if code is None or _ew.needs_input(code):
            raise ValueError(f"{type(self).__name__}: {arg} {name!r} is not supported in a recurrent cell "
                             "(its derivative needs the pre-activation); use e.g. tanh, sigmoid, relu, "
                             "hard_sigmoid, linear")
        return fn, name, code, alpha

    def _where(self):
        return f"layer {self.name!r} ({type(self).__name__})"

    def _codes(self, b):
        """The cells' activation codes (a, alpha, ra, ralpha) for this call: with ACT_BF16 under
        mixed_bfloat16, where the cells round what they write for a product (h, delta) to bfloat16."""
        return (self._code | b.bf, self._alpha, getattr(self, "_rcode", 0) | b.bf, getattr(self, "_ralpha", 0.0))

    # ---- parameters ------------------------------------------------------------
    def build(self, input_shape):
        seq = input_shape[0] if isinstance(input_shape, list) else input_shape
        if len(seq) != 3:
            raise ValueError(f"{self._where()}: expected 3-D inputs (batch, timesteps, features), got shape "
                             f"{tuple(seq)}")
        if isinstance(input_shape, list):                    # [sequence, *initial states] (functional API)
            self._check_state_shapes([tuple(s) for s in input_shape[1:]], None, "initial_state shapes")
        self._D = int(seq[2])
        G = self._gates * self.units
        self.add_weight("kernel", (self._D, G), self.kernel_initializer, self.kernel_regularizer)
        self.add_weight("recurrent_kernel", (self.units, G), self.recurrent_initializer,
                        self.recurrent_regularizer)
        if self.use_bias:
            self.add_weight("bias", self._bias_shape(), self._bias_init(), self.bias_regularizer)

    def _takes_shape(self, input_shape):
        seq = input_shape[0] if isinstance(input_shape, list) else input_shape
        return len(seq) == 3 and seq[2] == self._D         # any number of timesteps

    def _bias_shape(self):
        return (self._gates * self.units,)

    def _bias_init(self):
        return self.bias_initializer

    def compute_output_shape(self, input_shape):
        seq = input_shape[0] if isinstance(input_shape, list) else input_shape
        out = (seq[0], seq[1], self.units) if self.return_sequences else (seq[0], self.units)
        if self.return_state:
            return [tuple(out)] + [(seq[0], self.units)] * self._n_states
        return tuple(out)

    def compute_mask(self, x, mask=None):
        """The output's mask: the input's with return_sequences (as Keras: not reversed for
        go_backwards), else None; with return_state, [that, None, ...]."""
        out = mask if self.return_sequences else None
        return [out] + [None] * self._n_states if self.return_state else out

    def _check_state_shapes(self, shapes, n, what):
        if len(shapes) != self._n_states:
            names = "[h, c]" if self._n_states == 2 else "[h]"
            raise ValueError(f"{self._where()}: expected {self._n_states} {what} ({names}), got {len(shapes)}")
        for s in shapes:
            if tuple(s)[1:] != (self.units,) or (n is not None and s[0] != n):
                raise ValueError(f"{self._where()}: expected {what} of shape ({'batch' if n is None else n}, "
                                 f"{self.units}), got {tuple(s)}")

    # ---- states (stateful=True) ----------------------------------------------------
    @property
    def states(self):
        """A stateful layer's current states ([h] or [h, c], copies), or None before the first batch."""
        return None if self._states is None else [s.copy() for s in self._states]

    def reset_states(self):
        """Set a stateful layer's states to zero (Keras's reset_states / reset_state)."""
        if not self.stateful:
            raise AttributeError(f"{self._where()}: reset_states needs a stateful layer (stateful=True)")
        if self._states is not None:
            for s in self._states:
                s.fill(0)

    reset_state = reset_states

    def _set_states(self, states):
        """Restore a stateful layer's states (saving.py): a list of (batch, units) arrays."""
        self._check_state_shapes([np.shape(s) for s in states], None, "states")
        self._batch_size = int(np.shape(states[0])[0])
        self._states = [np.array(s, dtype=self.kernel.dtype) for s in states]

    # ---- buffers -----------------------------------------------------------------
    def _buffers(self, n, T):
        D = self._D
        u, G, dt = self.units, self._gates * self.units, self.kernel.dtype
        b = _Buffers()
        b.n, b.T = n, T
        b.xt = np.empty((T, n, D), dt)                # inputs, time-major (reversed for go_backwards)
        b.h = np.zeros((T + 1, n, u), dt)             # h[0] = initial state, h[t + 1] = h_t
        # x W + b, then the gates (SimpleRNN: written into h[1:], which the steps activate in place)
        b.z = np.empty((T, n, G), dt) if self._gates > 1 else b.h[1:]
        b.dh = np.zeros((T + 1, n, u), dt)            # dh[t + 1] = dL/dh_t, dh[0] = dL/d(initial h)
        b.d = np.empty((T, n, G), dt)                 # delta_t = dL/dz_t
        b.y = np.empty((n, T, u), dt) if self.return_sequences else b.h[T]
        b.dxt = np.empty((T, n, D), dt) if self._need_dx else None
        b.dx = np.empty((n, T, D), dt) if self._need_dx else None
        b.xt2, b.z2, b.d2 = b.xt.reshape(T * n, D), b.z.reshape(T * n, G), b.d.reshape(T * n, G)
        b.dxt2 = b.dxt.reshape(T * n, D) if self._need_dx else None
        b.h0 = False                                  # h[0] (and c[0]) may be non-zero
        b.mt = None                                   # this call's mask, time-major (T, n) bool
        b.mask_bufs = None                            # (mask, output factor) buffers, made on first use
        b.f = None                                    # this call's output factor (T, n, 1), or None
        b.mi = b.mr = None                            # this call's dropout masks (per gate block)
        b.drop_bufs = None
        b.y_last = None
        b.init = False
        b.xh = None                                   # LSTM: the rows [x_t | h_{t-1} | 1], made on first use
        b.P = b.dP = b.dP_in = None                   # LSTM: [W; U; b] and [dW; dU; db] where copies are needed
        b.stacked_of = {}                             # LSTM: key -> (the arrays, their stacked array)
        b.bf = 0                                      # ACT_BF16 under mixed_bfloat16 (this call's), else 0
        b.W = b.U = b.b = None                        # the weights as the products take them (`_operands`)
        b.rounded = None                              # mixed_bfloat16: [bf(W); bf(U); b] as (W, U, b) views
        self._more_buffers(b, T, n)
        return self._keep((n, T), b)

    def _more_buffers(self, b, T, n):
        b.drec = b.d                                  # dL/d(h_{t-1} U): the same as delta here
        b.dstate = [b.dh[0]]

    def _state_views(self, b, t):
        """The state arrays of step t ([h] or [h, c]) in the buffers."""
        return [b.h[t]]

    def _dropout_buffers(self, b):
        # masked copies of the inputs (T, n, blocks * D) and of the previous states (T, n, blocks * u)
        T, n, D, u, dt = b.T, b.n, self._D, self.units, self.kernel.dtype
        k = self._gates if self.recurrent_dropout else 1
        db = _Buffers()
        db.mi = np.empty((k, n, D), dt) if self.dropout else None
        db.mr = np.empty((self._gates if self._gates > 1 else 1, n, u), dt) if self.recurrent_dropout else None
        db.xd = np.empty((T, n, k * D), dt) if self.dropout else None
        db.xtmp = np.empty((T * n, D), dt) if self.dropout and self._need_dx else None
        nr = db.mr.shape[0] if db.mr is not None else 0
        db.hd = np.empty((T, n, nr * u), dt) if nr else None
        db.htmp = np.empty((n, u), dt) if nr else None
        b.drop_bufs = db
        return db

    # ---- computation ---------------------------------------------------------------
    def _split_inputs(self, x, initial_state):
        if isinstance(x, (list, tuple)):
            pos = getattr(self, "_call_kwargs", {}).get("initial_state")
            init = [x[i] for i in pos] if pos is not None else list(x[1:])
            if init and initial_state is not None:
                raise ValueError(f"{self._where()}: initial states given twice (in the input list and as "
                                 "initial_state)")
            return x[0], (init or initial_state), True
        return x, initial_state, False

    def forward(self, x, training=False, mask=None, initial_state=None):
        # Z = X W + b (all steps) ; per step: z_t += h_{t-1} U ; cell
        x, init, self._got_list = self._split_inputs(x, initial_state)
        if not isinstance(x, np.ndarray) or x.ndim != 3 or x.shape[2] != self._D or x.shape[1] < 1:
            raise ValueError(f"{self._where()}: expected input of shape (batch, timesteps, {self._D}), got "
                             f"{np.shape(x)}")
        if x.dtype != self.kernel.dtype:
            raise TypeError(f"{self._where()}: expected input of dtype {self.kernel.dtype}, got {x.dtype}")
        n, T = x.shape[:2]
        b = self._bufs.get((n, T))
        if b is None or (b.dx is None) == self._need_dx:
            b = self._buffers(n, T)
        self._cur = b
        b.bf = ACT_BF16 if self.compute_dtype == "bfloat16" else 0
        np.copyto(b.xt, (x[:, ::-1] if self.go_backwards else x).transpose(1, 0, 2))
        self._set_mask(b, mask)
        self._set_initial(b, init)
        self._set_dropout(b, training)
        self._operands(b)
        self._project(b)
        self._forward_steps(b)
        y = self._outputs(b)
        if self.stateful:
            for s, v in zip(self._states, self._state_views(b, b.T)):
                np.copyto(s, v)
        if self.return_state:
            return [y] + self._state_views(b, b.T)
        return y

    def _operands(self, b):
        """Set b.W, b.U, b.b: the kernels and the bias as this call's products take them. float32/64: the
        weights themselves. mixed_bfloat16: bf(W), bf(U) (rounded once per batch into one buffer of b,
        with the bias after them where it is one vector: the LSTM's [W; U; b] in place), and x, the
        initial h and the dropped-out copies rounded too; the cells round h_t and delta_t (ACT_BF16 on
        their codes). Every product then has bfloat16 operands, whose products are exact in float32, so
        the float32 GEMM is the bfloat16 product with float32 sums; the LSTM's fused step loops take the
        bf16 micro-kernel instead (`pack_b_bf16`; docs/models.md)."""
        if not b.bf:
            b.W, b.U, b.b = self.kernel, self.recurrent_kernel, getattr(self, "bias", None)
            return
        if b.rounded is None:
            D, u, G = self._D, self.units, self._gates * self.units
            flat = np.zeros((D + u + 1) * G, self.kernel.dtype)
            b.rounded = (flat[:D * G].reshape(D, G), flat[D * G:(D + u) * G].reshape(u, G), flat[(D + u) * G:])
        b.W, b.U, b.b = b.rounded
        bf16_round(self.kernel, b.W)
        bf16_round(self.recurrent_kernel, b.U)
        if self.use_bias and self.bias.shape == b.b.shape:
            np.copyto(b.b, self.bias)
        bf16_round(b.xt, b.xt)
        if b.h0:
            bf16_round(b.h[0], b.h[0])

    def _set_mask(self, b, mask):
        if mask is None:
            b.mt = b.f = None
            return
        mask = np.asarray(mask)
        if mask.shape != (b.n, b.T):
            raise ValueError(f"{self._where()}: expected a mask of shape ({b.n}, {b.T}), got {mask.shape}")
        if b.mask_bufs is None:
            T, n = b.T, b.n
            b.mask_bufs = (np.empty((T, n), np.bool_), np.empty((T, n, 1), self.kernel.dtype),
                           np.empty((T, n), np.bool_))
        b.mt, f, _ = b.mask_bufs
        np.copyto(b.mt, (mask[:, ::-1] if self.go_backwards else mask).T, casting="unsafe")   # nonzero = valid
        # the outputs at masked steps: zeros with zero_output_for_mask, else the last output, which is
        # h_{t-1} (the carried state) except before the first valid step, where Keras gives zeros even
        # from a non-zero initial state (set in _set_initial)
        b.f = None
        if self.zero_output_for_mask:
            b.f = f
            np.copyto(f[..., 0], b.mt)

    def _set_initial(self, b, init):
        views = self._state_views(b, 0)
        b.init = init is not None
        if init is not None:
            states = list(init) if isinstance(init, (list, tuple)) else [init]
            self._check_state_shapes([np.shape(s) for s in states], b.n, "initial states")
            for v, s in zip(views, states):
                np.copyto(v, s, casting="same_kind")
            b.h0 = True
        elif self.stateful:
            if self._batch_size is None:
                self._batch_size = b.n                  # no batch size declared: the first batch fixes it
            if b.n != self._batch_size:
                raise ValueError(f"{self._where()}: a stateful layer takes batches of exactly {self._batch_size} "
                                 f"samples (its state carries from one batch to the next), got {b.n}; make "
                                 "the number of samples a multiple of the batch size")
            if self._states is None:
                self._states = [np.zeros((b.n, self.units), self.kernel.dtype) for _ in views]
            for v, s in zip(views, self._states):
                np.copyto(v, s)
            b.h0 = True
        elif b.h0:                                      # an earlier call left a non-zero initial state
            for v in views:
                v.fill(0)
            b.h0 = False
        if b.mt is not None and b.h0 and not self.zero_output_for_mask:
            b.f = b.mask_bufs[1]                        # 1 from the first valid step of each row on
            np.logical_or.accumulate(b.mt, axis=0, out=b.mask_bufs[2])
            np.copyto(b.f[..., 0], b.mask_bufs[2])

    def _set_dropout(self, b, training):
        b.mi = b.mr = None
        if not training or not (self.dropout or self.recurrent_dropout):
            return
        db = b.drop_bufs or self._dropout_buffers(b)
        for m, rate in ((db.mi, self.dropout), (db.mr, self.recurrent_dropout)):
            if m is not None:                           # m = [u >= rate] / (1 - rate), u ~ U[0, 1)
                self._rng.random(out=m, dtype=m.dtype)
                np.greater_equal(m, rate, out=m)
                m *= 1.0 / (1.0 - rate)
        b.mi, b.mr = db.mi, db.mr

    def _input_bias(self):
        return self.bias if self.use_bias else None

    def _mm(self, b, x, w, out, round_out=True, **kw):
        """out := x w (+ ...): a product over all steps (Z = X W + b, dW, dU, dX), on the bf16 GEMM under
        mixed_bfloat16 (as a Dense's; the result rounded unless round_out is False), else the float GEMM."""
        if b.bf:
            return gemm_bf16(x, w, out, round_out=round_out, **kw)
        return gemm(x, w, out, **kw)

    def _fused(self, b):
        """Whether this call's step loops run in one kernel call each (`_seq_forward`, `_seq_backward`): no
        mask, no recurrent dropout (those take the loop of per-step products and cells)."""
        return b.mt is None and b.mr is None

    def _one_product(self, b):
        """Whether this call's steps take z_t = [x_t | h_{t-1} | 1] [W; U; b] as one product (the LSTM and
        SimpleRNN, fused, no input dropout): the step loop then also keeps those rows (b.xh) for
        [dW; dU; db] = xh^T delta, summed by the backward loop."""
        return self._xh_form and self._fused(b) and b.mi is None

    def _x_in_loop(self, b):
        """Whether the forward step loop multiplies x_t W itself (the GRU's, fused): _project then makes only
        the dropped-out copy x m."""
        return False

    def _x_seq(self, b):
        """The inputs the fused step loops take: x, or its dropped-out copy x m (one mask block there)."""
        return b.xt if b.mi is None else b.drop_bufs.xd

    def _project(self, b):
        # Z[:, k] = (X m_k) W[:, k] + b[:, k] for the gate blocks k (one block without dropout); Z float32
        if self._one_product(b):                     # the step loop multiplies x_t W with h_{t-1} U
            return
        W, bias, nt = b.W, self._input_bias(), self._n_threads
        if b.mi is None:
            if not self._x_in_loop(b):
                self._mm(b, b.xt2, W, b.z2, round_out=False, bias=bias, n_threads=nt)
            return
        xd, k = b.drop_bufs.xd, len(b.mi)
        for xk, m in zip(_blocks(xd, k), b.mi):
            np.multiply(b.xt, m, out=xk)
        if b.bf:
            bf16_round(xd, xd)
        if self._x_in_loop(b):
            return
        xd2 = xd.reshape(-1, xd.shape[2])
        for xk2, Wk, zk, bk in zip(_blocks(xd2, k), _blocks(W, k), _blocks(b.z2, k),
                                   _blocks(bias, k) if bias is not None else [None] * k):
            self._mm(b, xk2, Wk, zk, round_out=False, bias=bk, n_threads=nt)

    def _recur(self, b, t, U, out, beta=1.0, bias=None, act=0, masks=None):
        """out (+)= h_{t-1} U (+ bias) [act in the epilogue]; with recurrent dropout, per gate block k:
        out[:, k] (+)= (h_{t-1} r_k) U[:, k]. h_{t-1} is b.h[t]."""
        nt = self._n_threads
        if masks is None:
            gemm(b.h[t], U, out, beta=beta, bias=bias, act=act, act_alpha=self._alpha, n_threads=nt)
            return
        k, hdt = len(masks), b.drop_bufs.hd[t]
        hd = _blocks(hdt, b.drop_bufs.hd.shape[2] // self.units)
        for hk, m in zip(hd, masks):
            np.multiply(b.h[t], m, out=hk)
        if b.bf:
            bf16_round(hdt, hdt)
        for hk, Uk, ok, bk in zip(hd, _blocks(U, k), _blocks(out, k),
                                  _blocks(bias, k) if bias is not None else [None] * k):
            gemm(hk, Uk, ok, beta=beta, bias=bk, act=act, act_alpha=self._alpha, n_threads=nt)

    def _recur_back(self, b, d, U, dprev, masks=None):
        """dprev += d U^T; with recurrent dropout: dprev += sum_k (d[:, k] U[:, k]^T) r_k."""
        nt = self._n_threads
        if masks is None:
            gemm(d, U, dprev, trans_b=True, beta=1.0, n_threads=nt)
            return
        tmp, k = b.drop_bufs.htmp, len(masks)
        for dk, Uk, m in zip(_blocks(d, k), _blocks(U, k), masks):
            gemm(dk, Uk, tmp, trans_b=True, n_threads=nt)
            np.multiply(tmp, m, out=tmp)
            np.add(dprev, tmp, out=dprev)

    def _outputs(self, b):
        T = b.T
        if self.return_sequences:
            hs = b.h[1:] if b.f is None else np.multiply(b.h[1:], b.f, out=b.dh[1:])   # dh: free until backward
            np.copyto(b.y, hs.transpose(1, 0, 2))
            return b.y
        if b.f is None:
            return b.h[T]
        if b.y_last is None:
            b.y_last = np.empty((b.n, self.units), self.kernel.dtype)
        return np.multiply(b.h[T], b.f[T - 1], out=b.y_last)

    def _split_grads(self, dy):
        if not self.return_state:
            return dy, [None] * self._n_states
        if not isinstance(dy, (list, tuple)) or len(dy) != 1 + self._n_states:
            raise ValueError(f"{self._where()}: return_state: backward expects [d output, "
                             f"{', '.join(['d h', 'd c'][:self._n_states])}], got {type(dy).__name__}")
        return dy[0], list(dy[1:])

    def backward(self, dy):
        # per step (reversed): cell backward -> delta_t ; dh_{t-1} += delta_t U^T
        # then dW = X^T delta ; dU = H_prev^T delta ; db = colsum delta ; dX = delta W^T
        b, g, nt = self._cur, self._grad_of, self._n_threads
        T = b.T
        dy, dfinal = self._split_grads(dy)
        sets = self._steps_set_dh(b)
        if self.return_sequences:
            np.copyto(b.dh[1:], dy.transpose(1, 0, 2))
            if b.f is not None:
                b.dh[1:] *= b.f
        else:
            if not sets:
                b.dh[1:T].fill(0)
            if b.f is not None:
                np.multiply(dy, b.f[T - 1], out=b.dh[T])
            else:
                np.copyto(b.dh[T], dy)
        if dfinal[0] is not None:
            b.dh[T] += dfinal[0]
        if b.init and not sets:
            b.dh[0].fill(0)
        self._backward_steps(b, dfinal)
        self._weight_grads(b, g)
        if b.bf:                                     # dW, dU, db bfloat16 values, as the bf16 GEMM gives them
            for key in ("kernel", "recurrent_kernel", "bias"):
                if g.get(key) is not None:
                    bf16_round(g[key], g[key])
        dx = self._input_dx(b) if self._need_dx else None
        if b.init:
            return [dx] + b.dstate
        return [dx] if self._got_list else dx

    def _steps_set_dh(self, b):
        """Whether _backward_steps writes dL/dh_{t-1} into dh[t] (t < T) rather than adding to it: then only
        the last output's gradient, dh[T], need be there (nothing is zeroed). The fused step loop does
        where the earlier outputs have no gradient."""
        return not self.return_sequences and self._fused(b)

    def _weight_grads(self, b, g):
        # dW = X^T delta ; dU = H_prev^T delta ; db = colsum delta
        if self._one_product(b):
            # [dW; dU; db] = xh^T delta (xh_t = [x_t | h_{t-1} | 1], h_{-1} = 0 without an initial state),
            # summed by the backward step loop, in place where the gradients are one block of the flat buffer
            D, u = self._D, self.units
            if b.dP_in is b.dP:
                np.copyto(g["kernel"], b.dP[:D])
                np.copyto(g["recurrent_kernel"], b.dP[D:D + u])
                if self.use_bias:
                    np.copyto(g["bias"], b.dP[D + u])
            return
        first = 0 if b.h0 else 1                     # steps whose h_{t-1} may be non-zero
        self._input_grads(b, g["kernel"])
        self._recurrent_grads(b, g["recurrent_kernel"], first)
        if self.use_bias:
            self._bias_grad(b, g["bias"])

    def _prev(self, b, t):
        """dL/dh_{t-1} of step t, or None where nothing needs it (t = 0 from a zero initial state)."""
        return b.dh[t] if t or b.init else None

    def _input_grads(self, b, dW):
        # dW[:, k] = (X m_k)^T delta[:, k]
        nt = self._n_threads
        if b.mi is None:
            self._mm(b, b.xt2, b.d2, dW, trans_a=True, n_threads=nt)
            return
        xd, k = b.drop_bufs.xd, len(b.mi)
        for xk2, dk, gk in zip(_blocks(xd.reshape(-1, xd.shape[2]), k), _blocks(b.d2, k), _blocks(dW, k)):
            self._mm(b, xk2, dk, gk, trans_a=True, n_threads=nt)

    def _recurrent_grads(self, b, dU, first):
        # dU[:, k] = (H_prev r_k)^T drec[:, k] over the steps from `first`
        self._state_grad(b, b.drec.reshape(-1, b.drec.shape[2]), dU, first, b.mr)

    def _state_grad(self, b, d2, dU, first, masks):
        """dU (+ its blocks) = H_prev^T d2 over the steps from `first`; d2 is (T n, width), dU (u, width)."""
        T, n, u, nt = b.T, b.n, self.units, self._n_threads
        d2 = d2[first * n:]
        if masks is None:
            self._mm(b, b.h[first:T].reshape((T - first) * n, u), d2, dU, trans_a=True, n_threads=nt)
            return
        k = len(masks)
        hd2 = b.drop_bufs.hd[first:].reshape((T - first) * n, -1)
        for hk, dk, gk in zip(_blocks(hd2, hd2.shape[1] // u), _blocks(d2, k), _blocks(dU, k)):
            self._mm(b, hk, dk, gk, trans_a=True, n_threads=nt)

    def _input_dx(self, b):
        # dX = sum_k (delta[:, k] W[:, k]^T) m_k
        W, nt = b.W, self._n_threads
        if b.mi is None:
            self._mm(b, b.d2, W, b.dxt2, trans_b=True, n_threads=nt)
        else:
            k, tmp = len(b.mi), b.drop_bufs.xtmp
            for i, (dk, Wk, m) in enumerate(zip(_blocks(b.d2, k), _blocks(W, k), b.mi)):
                out = b.dxt2 if i == 0 else tmp
                self._mm(b, dk, Wk, out, round_out=False, trans_b=True, n_threads=nt)
                out3 = out.reshape(b.dxt.shape)
                np.multiply(out3, m, out=out3)
                if i:
                    np.add(b.dxt2, tmp, out=b.dxt2)
        np.copyto(b.dx, (b.dxt[::-1] if self.go_backwards else b.dxt).transpose(1, 0, 2))
        if b.bf:
            bf16_round(b.dx, b.dx)
        return b.dx

    def _bias_grad(self, b, db):
        _colsum(b.d2, db, self._n_threads)

    def _packed(self, b, key, M, trans=False):
        """M (trans: M^T) packed for the step loop's products (bf16 pairs under mixed_bfloat16) in b's
        buffer `key`: the weights change only between batches."""
        packed = (pack_b_bf16 if b.bf else pack_b)(M, trans_b=trans, out=getattr(b, key, None))
        setattr(b, key, packed)
        return packed

    def _seq_kernels(self, b, trans=False):
        """The step loop's packed recurrent kernels (packed, packed2): U (trans: U^T), None."""
        return self._packed(b, "Ut_packed" if trans else "U_packed", b.U, trans), None

    def _seq_states(self, b):
        """The cell's own arrays of the step loop (s1, s2 of rnn_seq_forward)."""
        return None, None

    def _seq_forward(self, b):
        """The forward step loop in one kernel call: per step the cell's products on a block of rows, then
        its cell, each thread a block of rows through every step (`rnn_seq_forward`)."""
        a, al, ra, ral = self._codes(b)
        s1, s2 = self._seq_states(b)
        nt = self._n_threads
        if not self._one_product(b):                 # z = x W + b from _project; z_t += h_{t-1} U, ...
            packed, packed2 = self._seq_kernels(b)
            rnn_seq_forward(self._cell, a, al, ra, ral, packed, b.z, b.h, s1, s2, with_h0=b.h0, n_threads=nt,
                            packed2=packed2)
            return
        D, u = self._D, self.units
        if b.xh is None:
            b.xh = np.empty((b.T, b.n, D + u + 1), b.h.dtype)
        P = self._stacked(b, [b.W, b.U, b.b], "P")
        if P is b.P:                                 # a copy: [W; U; b] (b = 0 without a bias)
            np.copyto(P[:D], b.W)
            np.copyto(P[D:D + u], b.U)
            if b.b is not None:
                np.copyto(P[D + u], b.b)
        if b.bf:                                     # the bf16 kernel: [W; U], the bias in float32 apart
            b.P_packed = pack_b_bf16(P[:D + u], out=getattr(b, "P_packed", None))
            rnn_seq_forward(self._cell, a, al, ra, ral, b.P_packed, b.z, b.h, s1, s2, n_threads=nt, x=b.xt,
                            xh=b.xh, bias=P[D + u])
        else:
            b.P_packed = pack_b(P, out=getattr(b, "P_packed", None))
            rnn_seq_forward(self._cell, a, al, ra, ral, b.P_packed, b.z, b.h, s1, s2, n_threads=nt, x=b.xt, xh=b.xh)

    def _seq_backward(self, b):
        """The backward step loop in one kernel call (`rnn_seq_backward`): per step, reversed, the cell's
        delta_t, then dh_{t-1} += its products with U^T; in the one-product form also [dW; dU; db] +=
        xh_t^T delta_t while delta_t is in cache, delta kept only where dx = delta W^T needs it."""
        a, al, ra, ral = self._codes(b)
        s1, s2 = self._seq_states(b)
        nt, add, dc = self._n_threads, not self._steps_set_dh(b), getattr(b, "dc", None)
        if self._one_product(b):
            g = self._grad_of
            b.dP_in = self._stacked(b, [g.get("kernel"), g.get("recurrent_kernel"), g.get("bias")], "dP")
            rnn_seq_backward(self._cell, a, al, ra, ral, self._seq_kernels(b, trans=True)[0], b.z, b.h, b.dh,
                             b.d if self._need_dx else None, s1, s2, dc, with_h0=b.init, n_threads=nt, xh=b.xh,
                             dP=b.dP_in, add_dh=add)
            return
        packed, packed2 = self._seq_kernels(b, trans=True)
        rnn_seq_backward(self._cell, a, al, ra, ral, packed, b.z, b.h, b.dh, b.d, s1, s2, dc, b.drec,
                         with_h0=b.init, h0=b.h0, n_threads=nt, add_dh=add, packed2_t=packed2)

    def _stacked(self, b, arrays, key):
        """[W; U; b] or [dW; dU; db] (arrays) as one (D + u + 1, G) array: a view of the model's flat
        buffer where the three lie there one after another, else b's buffer `key` (for copies). Kept with
        the arrays it was made for, so a batch in steady state makes nothing (no view, no ctypes object)."""
        made = b.stacked_of.get(key)
        if made is not None and all(x is y for x, y in zip(made[0], arrays)):
            return made[1]
        view = _stacked(arrays) if all(a is not None for a in arrays) else None
        if view is None:
            if getattr(b, key, None) is None:
                setattr(b, key, np.zeros((self._D + self.units + 1, arrays[1].shape[1]), arrays[1].dtype))
            view = getattr(b, key)
        b.stacked_of[key] = (tuple(arrays), view)
        return view

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
                   dropout=self.dropout, recurrent_dropout=self.recurrent_dropout, seed=self.seed,
                   return_sequences=self.return_sequences, return_state=self.return_state,
                   go_backwards=self.go_backwards, stateful=self.stateful,
                   zero_output_for_mask=self.zero_output_for_mask)
        if self._policy is not None:
            cfg["dtype"] = self._policy.name
        if hasattr(self, "_ract_name"):
            cfg["recurrent_activation"] = self._ract_name
        if self.stateful and self._batch_size is not None:
            shape = cfg.get("batch_input_shape")
            if shape is not None:
                cfg["batch_input_shape"] = [self._batch_size] + list(shape[1:])
        return cfg


class SimpleRNN(_Recurrent):
    """Fully connected recurrence: h_t = a(x_t W + h_{t-1} U + b), as Keras 3's SimpleRNN.

    Parameters
    ----------
    units : int
    activation : str or function, default='tanh'
        Any activation whose derivative follows from its output (not gelu, swish, softmax).
    use_bias : bool, default=True
    kernel_initializer, recurrent_initializer, bias_initializer : default='glorot_uniform', 'orthogonal', 'zeros'
    kernel_regularizer, recurrent_regularizer, bias_regularizer : name, regularizer or None
    dropout, recurrent_dropout : float in [0, 1), default=0
        Fraction of the inputs x_t / of the previous state h_{t-1} dropped in training (one mask per
        batch, the same for every step; inverted scaling 1 / (1 - rate)).
    seed : int, optional
        Seed of the layer's dropout generator (default: drawn from nncore's global generator).
    return_sequences : bool, default=False
        Return every h_t, shape (batch, timesteps, units), instead of the last.
    return_state : bool, default=False
        Return [output, h_T] (a layer with two outputs: the functional API).
    go_backwards : bool, default=False
        Read the sequence from its end (the returned sequence is in that order).
    stateful : bool, default=False
        Start each batch from the states the previous one ended with (sample i from sample i);
        batches must all have one size (``batch_input_shape`` or the first batch fixes it).
        ``reset_states()`` sets them to zero.
    zero_output_for_mask : bool, default=False
        With a mask: zeros at the masked steps of the output (else the last output repeats).

    Notes
    -----
    Weights as Keras: kernel (features, units), recurrent_kernel (units, units), bias (units,).
    Forward per step: one gemm h_t = a(z_t + h_{t-1} U) with a in its epilogue (z_t = x_t W + b
    from one gemm over all steps). Backward: delta_t = dh_t a'(h_t) ; dh_{t-1} += delta_t U^T.
    Call arguments: ``mask`` (batch, timesteps) and ``initial_state`` (the first h).
    """
    _kind = "simple_rnn"

    def __init__(self, units, activation="tanh", use_bias=True, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros", kernel_regularizer=None,
                 recurrent_regularizer=None, bias_regularizer=None, dropout=0.0, recurrent_dropout=0.0, seed=None,
                 return_sequences=False, return_state=False, go_backwards=False, stateful=False,
                 zero_output_for_mask=False, name=None, input_shape=None, batch_input_shape=None,
                 trainable=True, dtype=None):
        super().__init__(units, activation, None, use_bias, kernel_initializer, recurrent_initializer,
                         bias_initializer, kernel_regularizer, recurrent_regularizer, bias_regularizer, dropout,
                         recurrent_dropout, seed, return_sequences, return_state, go_backwards, stateful,
                         zero_output_for_mask, name, input_shape, batch_input_shape,
                         trainable, dtype)

    def _forward_steps(self, b):
        if self._fused(b):
            self._seq_forward(b)
            return
        h, U, mt, nt, a = b.h, b.U, b.mt, self._n_threads, self._codes(b)[0]
        for t in range(b.T):
            if t or b.h0:
                self._recur(b, t, U, h[t + 1], act=a, masks=b.mr)            # h_t = a(z_t + h_{t-1} U)
            else:
                _act_forward(a, self._alpha, h[1], h[1], nt)                  # h_1 = a(x_1 W + b)
            if mt is not None:
                _rnn.rnn_carry_masked(h[t], mt[t], h[t + 1])                  # masked rows keep h_{t-1}

    def _backward_steps(self, b, dfinal):
        if self._fused(b):
            self._seq_backward(b)
            return
        h, dh, d, U, mt, nt, a = b.h, b.dh, b.d, b.U, b.mt, self._n_threads, self._codes(b)[0]
        for t in range(b.T - 1, -1, -1):
            prev = self._prev(b, t)
            _rnn.simple_rnn_cell_backward(a, self._alpha, h[t + 1], dh[t + 1],              # delta = dh a'(h)
                                          None if mt is None else mt[t], d[t], prev, nt)
            if prev is not None:
                self._recur_back(b, d[t], U, prev, b.mr)                       # dh_{t-1} += delta U^T


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
    dropout, recurrent_dropout, seed : as in SimpleRNN
        With recurrent_dropout, each gate block gets its own masks (Keras's implementation 1).
    return_sequences, return_state, go_backwards, stateful, zero_output_for_mask : as in SimpleRNN
        return_state returns [output, h_T, c_T]; the states are [h, c].

    Notes
    -----
    Weights as Keras: kernel (features, 4 units), recurrent_kernel (units, 4 units), bias (4 units,),
    gate blocks in the order i, f, g ("c" in Keras), o. With z = x_t W + h_{t-1} U + b:
    i = ra(z_i), f = ra(z_f), g = a(z_g), o = ra(z_o); c_t = f c_{t-1} + i g; h_t = o a(c_t).
    Backward (one cell kernel per step): dc_t = dc + dh o a'(c_t); delta = [dc_t g ra'(i),
    dc_t c_{t-1} ra'(f), dc_t i a'(g), dh a(c_t) ra'(o)]; dc_{t-1} = dc_t f.
    """
    _gates = 4
    _n_states = 2
    _kind = "lstm"
    _cell = RNN_LSTM

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", unit_forget_bias=True, kernel_regularizer=None,
                 recurrent_regularizer=None, bias_regularizer=None, dropout=0.0, recurrent_dropout=0.0, seed=None,
                 return_sequences=False, return_state=False, go_backwards=False, stateful=False,
                 zero_output_for_mask=False, name=None, input_shape=None, batch_input_shape=None,
                 trainable=True, dtype=None):
        super().__init__(units, activation, recurrent_activation, use_bias, kernel_initializer,
                         recurrent_initializer, bias_initializer, kernel_regularizer, recurrent_regularizer,
                         bias_regularizer, dropout, recurrent_dropout, seed, return_sequences, return_state,
                         go_backwards, stateful, zero_output_for_mask, name, input_shape, batch_input_shape,
                         trainable, dtype)
        self.unit_forget_bias = bool(unit_forget_bias)

    def _bias_init(self):
        init = initializers.get(self.bias_initializer)
        return _UnitForgetBias(init) if self.unit_forget_bias else init

    def _more_buffers(self, b, T, n):
        super()._more_buffers(b, T, n)
        u, dt = self.units, self.kernel.dtype
        b.c = np.zeros((T + 1, n, u), dt)             # c[0] = initial carry, c[t + 1] = c_t
        b.tc = np.empty((T, n, u), dt)                # a(c_t)
        b.dc = np.empty((n, u), dt)                   # dL/dc carried backwards (dL/dc_0 at the end)
        b.dstate = [b.dh[0], b.dc]

    def _state_views(self, b, t):
        return [b.h[t], b.c[t]]

    def _seq_states(self, b):
        return b.c, b.tc

    def _forward_steps(self, b):
        if self._fused(b):
            self._seq_forward(b)
            return
        z, h, c, tc, U, mt, nt = b.z, b.h, b.c, b.tc, b.U, b.mt, self._n_threads
        a, al, ra, ral = self._codes(b)
        for t in range(b.T):
            if t or b.h0:
                self._recur(b, t, U, z[t], masks=b.mr)                          # z_t += h_{t-1} U
            _rnn.lstm_cell_forward(a, al, ra, ral, z[t], c[t], h[t], None if mt is None else mt[t], c[t + 1],
                                   tc[t], h[t + 1], nt)

    def _backward_steps(self, b, dfinal):
        z, c, tc, dh, d, U, mt, nt = b.z, b.c, b.tc, b.dh, b.d, b.U, b.mt, self._n_threads
        a, al, ra, ral = self._codes(b)
        if dfinal[1] is not None:
            np.copyto(b.dc, dfinal[1])
        else:
            b.dc.fill(0)
        if self._fused(b):
            self._seq_backward(b)
            return
        for t in range(b.T - 1, -1, -1):
            prev = self._prev(b, t)
            _rnn.lstm_cell_backward(a, al, ra, ral, z[t], c[t], tc[t], dh[t + 1], None if mt is None else mt[t],
                                    b.dc, d[t], prev, nt)
            if prev is not None:
                self._recur_back(b, d[t], U, prev, b.mr)                        # dh_{t-1} += delta U^T

    def get_config(self):
        cfg = super().get_config()
        cfg["unit_forget_bias"] = self.unit_forget_bias
        return cfg


class GRU(_Recurrent):
    """Gated recurrent unit (Cho et al., 2014), as Keras 3's GRU.

    Parameters
    ----------
    units : int
    activation : default='tanh'
    recurrent_activation : default='sigmoid'
    use_bias : bool, default=True
    kernel_initializer, recurrent_initializer, bias_initializer : default='glorot_uniform', 'orthogonal', 'zeros'
    kernel_regularizer, recurrent_regularizer, bias_regularizer : name, regularizer or None
    dropout, recurrent_dropout, seed : as in SimpleRNN
        With recurrent_dropout, each gate block gets its own masks (Keras's implementation 1).
    return_sequences, return_state, go_backwards, stateful, zero_output_for_mask : as in SimpleRNN
    reset_after : bool, default=True
        True (Keras 3's default, cuDNN's form): the reset gate multiplies h_{t-1} U_h + b_rec_h.
        False (Keras 2's form): it multiplies h_{t-1} before U_h, and the bias is one vector.

    Notes
    -----
    Weights as Keras: kernel (features, 3 units), recurrent_kernel (units, 3 units), gate blocks
    z, r, h. reset_after=True: bias (2, 3 units) = [input bias, recurrent bias]; with
    x = x_t W + b_in and rec = h_{t-1} U + b_rec: z = ra(x_z + rec_z), r = ra(x_r + rec_r),
    hh = a(x_h + r rec_h). reset_after=False: bias (3 units,), x = x_t W + b; z = ra(x_z + h_{t-1} U_z),
    r = ra(x_r + h_{t-1} U_r), hh = a(x_h + (r h_{t-1}) U_h). Both: h_t = z h_{t-1} + (1 - z) hh.
    Backward (reset_after): delta_h = dh (1 - z) a'(hh), dx = [dh (h_{t-1} - hh) ra'(z),
    delta_h rec_h ra'(r), delta_h], drec = [dx_z, dx_r, delta_h r], dh_{t-1} = dh z + drec U^T;
    dU = H_prev^T drec, db = [colsum dx, colsum drec]. reset_after=False: delta_z and delta_h as
    above, dq = delta_h U_h^T, delta_r = dq h_{t-1} ra'(r), dh_{t-1} = dh z + dq r + delta_zr U_zr^T;
    dU_zr = H_prev^T delta_zr, dU_h = Q^T delta_h with q = r h_{t-1}.
    """
    _gates = 3
    _kind = "gru"
    _xh_form = False           # x W + b_in apart from the recurrent product (r multiplies only the latter)

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, dropout=0.0, recurrent_dropout=0.0, seed=None, return_sequences=False,
                 return_state=False, go_backwards=False, stateful=False, zero_output_for_mask=False,
                 reset_after=True, name=None, input_shape=None, batch_input_shape=None,
                 trainable=True, dtype=None):
        super().__init__(units, activation, recurrent_activation, use_bias, kernel_initializer,
                         recurrent_initializer, bias_initializer, kernel_regularizer, recurrent_regularizer,
                         bias_regularizer, dropout, recurrent_dropout, seed, return_sequences, return_state,
                         go_backwards, stateful, zero_output_for_mask, name, input_shape, batch_input_shape,
                         trainable, dtype)
        self.reset_after = bool(reset_after)

    def _bias_shape(self):
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def _input_bias(self):
        if not self.use_bias:
            return None
        return self.bias[0] if self.reset_after else self.bias

    def _more_buffers(self, b, T, n):
        G, u, dt = 3 * self.units, self.units, self.kernel.dtype
        if self.reset_after:
            b.rec = np.empty((T, n, G), dt)           # h_{t-1} U + b_rec
            b.drec = np.empty((T, n, G), dt)          # dL/d rec
        else:
            b.q = np.empty((T, n, u), dt)             # q = r h_{t-1}, the input of U_h
            b.dq = np.empty((n, u), dt)               # dL/dq of one step
            b.drec = b.d
        b.dstate = [b.dh[0]]

    @property
    def _cell(self):
        return RNN_GRU if self.reset_after else RNN_GRU_RB

    def _seq_states(self, b):
        return (b.rec if self.reset_after else b.q), None

    def _seq_kernels(self, b, trans=False):
        if self.reset_after:
            return super()._seq_kernels(b, trans)
        # U_zr and U_h (trans: their transposes), from contiguous copies made once per batch
        u, t = self.units, "t" if trans else ""
        if not trans:
            if getattr(b, "Uzr", None) is None:
                b.Uzr, b.Uh = np.empty((u, 2 * u), b.U.dtype), np.empty((u, u), b.U.dtype)
            np.copyto(b.Uzr, b.U[:, :2 * u])
            np.copyto(b.Uh, b.U[:, 2 * u:])
        return self._packed(b, "Uzr_packed" + t, b.Uzr, trans), self._packed(b, "Uh_packed" + t, b.Uh, trans)

    def _x_in_loop(self, b):
        """reset_after, fused: the step loops take x_t themselves, forward z_t = x_t W + b_in on the step's
        rows, backward dP = [dW; db_in; dU; db_rec] = [x_t | 1]^T dx_t and [h_{t-1} | 1]^T drec_t summed while
        the deltas are in cache."""
        return self.reset_after and self._fused(b)

    def _seq_forward(self, b):
        if not self._x_in_loop(b):
            super()._seq_forward(b)
            return
        a, al, ra, ral = self._codes(b)
        rnn_seq_forward(RNN_GRU, a, al, ra, ral, self._seq_kernels(b)[0], b.z, b.h, b.rec, with_h0=b.h0,
                        n_threads=self._n_threads, x=self._x_seq(b), bias=self.bias if self.use_bias else None,
                        packed2=self._packed(b, "W_packed", b.W))

    def _wgrad_in_loop(self, b):
        """Whether the fused backward step loop sums the weight gradients while the deltas are in cache:
        reset_after [dW; db_in; dU; db_rec] = [x_t | 1]^T dx_t, [h_{t-1} | 1]^T drec_t; reset before (no input
        dropout) [dW; db; dU] = [x_t | 1]^T delta_t, dU_zr = h_{t-1}^T delta_zr, dU_h = q_t^T delta_h."""
        return self._x_in_loop(b) or (not self.reset_after and self._fused(b) and b.mi is None)

    def _seq_backward(self, b):
        if not self._wgrad_in_loop(b):
            super()._seq_backward(b)
            return
        a, al, ra, ral = self._codes(b)
        if getattr(b, "dPg", None) is None:
            b.dPg = np.empty((self._D + self.units + (2 if self.reset_after else 1), 3 * self.units), b.h.dtype)
        packed, packed2 = self._seq_kernels(b, trans=True)
        rnn_seq_backward(self._cell, a, al, ra, ral, packed, b.z, b.h, b.dh, b.d if self._need_dx else None,
                         self._seq_states(b)[0], with_h0=b.init, h0=b.h0, n_threads=self._n_threads,
                         xh=self._x_seq(b), dP=b.dPg, add_dh=not self._steps_set_dh(b), packed2_t=packed2)

    def _weight_grads(self, b, g):
        if not self._wgrad_in_loop(b):
            super()._weight_grads(b, g)
            return
        D, u, P = self._D, self.units, b.dPg       # [dW; db_in; dU; db_rec], reset before [dW; db; dU]
        np.copyto(g["kernel"], P[:D])
        np.copyto(g["recurrent_kernel"], P[D + 1:D + 1 + u])
        if self.use_bias:
            np.copyto(g["bias"], P[[D, D + 1 + u]] if self.reset_after else P[D])

    def _forward_steps(self, b):
        if self._fused(b):
            self._seq_forward(b)
            return
        (self._forward_reset_after if self.reset_after else self._forward_reset_before)(b)

    def _backward_steps(self, b, dfinal):
        if self._fused(b):
            self._seq_backward(b)
            return
        (self._backward_reset_after if self.reset_after else self._backward_reset_before)(b)

    def _forward_reset_after(self, b):
        z, rec, h, U, mt, nt = b.z, b.rec, b.h, b.U, b.mt, self._n_threads
        a, al, ra, ral = self._codes(b)
        brec = self.bias[1] if self.use_bias else None
        for t in range(b.T):
            if t or b.h0:
                self._recur(b, t, U, rec[t], beta=0.0, bias=brec, masks=b.mr)   # rec = h_{t-1} U + b_rec
            elif brec is not None:
                np.copyto(rec[0], brec)                                          # h_{-1} = 0
            else:
                rec[0].fill(0)
            _rnn.gru_cell_forward(a, al, ra, ral, z[t], rec[t], h[t], None if mt is None else mt[t], h[t + 1], nt)

    def _backward_reset_after(self, b):
        z, rec, h, dh, d, drec, mt = b.z, b.rec, b.h, b.dh, b.d, b.drec, b.mt
        U, nt = b.U, self._n_threads
        a, al, ra, ral = self._codes(b)
        for t in range(b.T - 1, -1, -1):
            prev = self._prev(b, t)
            _rnn.gru_cell_backward(a, al, ra, ral, z[t], rec[t], h[t], dh[t + 1], None if mt is None else mt[t],
                                   d[t], drec[t], prev, nt)                      # dh_{t-1} += dh z
            if prev is not None:
                self._recur_back(b, drec[t], U, prev, b.mr)                      # dh_{t-1} += drec U^T

    def _forward_reset_before(self, b):
        z, q, h, mt, nt, u = b.z, b.q, b.h, b.mt, self._n_threads, self.units
        a, al, ra, ral = self._codes(b)
        U = b.U
        Uzr, Uh = U[:, :2 * u], U[:, 2 * u:]
        mzr, mh = (None, None) if b.mr is None else (b.mr[:2], b.mr[2])
        for t in range(b.T):
            zt = z[t]
            if t or b.h0:
                self._recur(b, t, Uzr, zt[:, :2 * u], masks=mzr)                  # x_zr += h_{t-1} U_zr
            _rnn.gru_rb_gates_forward(ra, ral, zt, h[t], mh, q[t], nt)           # z, r; q = r h_{t-1}
            if t or b.h0:
                gemm(q[t], Uh, zt[:, 2 * u:], beta=1.0, n_threads=nt)            # x_h += q U_h
            _rnn.gru_rb_state_forward(a, al, zt, h[t], None if mt is None else mt[t], h[t + 1], nt)

    def _backward_reset_before(self, b):
        z, h, dh, d, dq, mt, nt, u = b.z, b.h, b.dh, b.d, b.dq, b.mt, self._n_threads, self.units
        a, al, ra, ral = self._codes(b)
        U = b.U
        Uzr, Uh = U[:, :2 * u], U[:, 2 * u:]
        mzr, mh = (None, None) if b.mr is None else (b.mr[:2], b.mr[2])
        for t in range(b.T - 1, -1, -1):
            prev = self._prev(b, t)
            _rnn.gru_rb_state_backward(a, al, ra, ral, z[t], h[t], dh[t + 1], None if mt is None else mt[t],
                                       d[t], prev, nt)                           # delta_z, delta_h; dh z
            if t or b.h0:                                                        # r meets a non-zero h_{t-1}
                gemm(d[t][:, 2 * u:], Uh, dq, trans_b=True, n_threads=nt)        # dq = delta_h U_h^T
                _rnn.gru_rb_reset_backward(ra, ral, z[t], h[t], mh, dq, d[t], prev, nt)   # delta_r; dq r
            if prev is not None:
                self._recur_back(b, d[t][:, :2 * u], Uzr, prev, mzr)             # dh_{t-1} += delta_zr U_zr^T

    def _recurrent_grads(self, b, dU, first):
        if self.reset_after:
            super()._recurrent_grads(b, dU, first)
            return
        T, n, u = b.T, b.n, self.units
        self._state_grad(b, b.d2[:, :2 * u], dU[:, :2 * u], first, None if b.mr is None else b.mr[:2])
        self._mm(b, b.q[first:].reshape((T - first) * n, u), b.d2[first * n:, 2 * u:], dU[:, 2 * u:], trans_a=True,
                 n_threads=self._n_threads)                                      # dU_h = Q^T delta_h

    def _bias_grad(self, b, db):
        if not self.reset_after:
            _colsum(b.d2, db, self._n_threads)
            return
        _colsum(b.d2, db[0], self._n_threads)
        _colsum(b.drec.reshape(-1, b.drec.shape[2]), db[1], self._n_threads)

    def get_config(self):
        cfg = super().get_config()
        cfg["reset_after"] = self.reset_after
        return cfg
