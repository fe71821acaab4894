"""Bidirectional: a recurrent layer run forwards and a copy run backwards, outputs merged (Keras 3).

The forward layer is a new layer from the wrapped layer's config (named ``forward_<name>``), the
backward one the same with ``go_backwards=True`` (``backward_<name>``) unless `backward_layer` is
given. Their weights are the Bidirectional's, forward layer's first (kernel, recurrent_kernel,
bias, then the backward layer's), as Keras orders them, so get_weights / set_weights move them
between the two libraries unchanged. With return_sequences the backward layer's sequence is
reversed back into time order before the merge; with a mask, both layers zero their outputs at
masked steps (Keras forces zero_output_for_mask = return_sequences).
"""
import copy

import numpy as np

from nncore.layers.base import Layer
from nncore.layers.recurrent import _Recurrent

MERGE_MODES = ("concat", "sum", "mul", "ave", None)


def _unprefix(name, prefix):
    return name[len(prefix):] if name.startswith(prefix) else name


class Bidirectional(Layer):
    """Runs a recurrent layer over the sequence in both directions and merges the two outputs.

    Parameters
    ----------
    layer : SimpleRNN, LSTM or GRU
        The forward direction's configuration (the layer itself is not used: a copy is made).
    merge_mode : {'concat', 'sum', 'mul', 'ave', None}, default='concat'
        How the two outputs combine: concatenated on the last axis (2 units wide), summed,
        multiplied, averaged, or None: both returned (a layer with two outputs, the functional API).
    backward_layer : SimpleRNN, LSTM or GRU, optional
        The backward direction (default: `layer`'s config with go_backwards=True). It must have
        the other go_backwards and the same return_sequences, return_state and stateful.
    trainable : bool, default=True
        False freezes both directions (so does a wrapped layer made with trainable=False: the two
        layers train together or not at all); setting ``layer.trainable`` sets it on both.

    Notes
    -----
    y = merge(y_f, reverse_t(y_b)) (reverse_t only with return_sequences). Outputs: y, or
    [y_f, y_b] with merge_mode=None, followed by the forward then the backward final states with
    return_state. ``initial_state`` (a call argument) is the forward states then the backward ones.
    Backward: dy splits into dy_f, dy_b by the merge (concat: the halves; sum: both dy; ave: dy / 2;
    mul: dy y_b and dy y_f); dx = dx_f + dx_b.
    """
    supports_masking = True
    _uses_mask = True
    _tensor_kwargs = ("initial_state",)

    def __init__(self, layer, merge_mode="concat", backward_layer=None, name=None, input_shape=None,
                 batch_input_shape=None, trainable=True):
        for what, lay in (("layer", layer), ("backward_layer", backward_layer)):
            if lay is not None and not isinstance(lay, _Recurrent):
                raise TypeError(f"Bidirectional: {what} must be a SimpleRNN, LSTM or GRU, got {type(lay).__name__}")
        if layer is None:
            raise TypeError("Bidirectional: layer must be a SimpleRNN, LSTM or GRU, got None")
        if merge_mode not in MERGE_MODES:
            raise ValueError(f"Bidirectional: merge_mode must be one of {MERGE_MODES}, got {merge_mode!r}")
        if input_shape is None and batch_input_shape is None and layer._batch_input_shape is not None:
            batch_input_shape = layer._batch_input_shape    # Bidirectional(LSTM(8, input_shape=...))
        super().__init__(name=name, input_shape=input_shape, batch_input_shape=batch_input_shape,
                         trainable=trainable)
        cfg = layer.get_config()
        cfg["name"] = "forward_" + _unprefix(layer.name, "forward_")
        self.forward_layer = type(layer).from_config(cfg)
        if backward_layer is None:
            cfg = layer.get_config()
            cfg.update(name="backward_" + _unprefix(layer.name, "backward_"), go_backwards=True)
            backward_layer = type(layer).from_config(cfg)
        self.backward_layer = backward_layer
        f, b = self.forward_layer, self.backward_layer
        if f.go_backwards == b.go_backwards:
            raise ValueError(f"Bidirectional: the forward and backward layers need different go_backwards, got "
                             f"{f.go_backwards} for both")
        for attr in ("return_sequences", "return_state", "stateful"):
            if getattr(f, attr) != getattr(b, attr):
                raise ValueError(f"Bidirectional: the forward and backward layers need the same {attr}, got "
                                 f"{getattr(f, attr)} and {getattr(b, attr)}")
        for sub in (f, b):
            sub.zero_output_for_mask = sub.return_sequences        # as Keras: zeros at masked steps
        self.merge_mode = merge_mode
        self.return_sequences, self.return_state, self.stateful = f.return_sequences, f.return_state, f.stateful
        self._sublayers = (f, b)
        self.trainable = trainable and f.trainable and b.trainable   # the two train together, or neither

    @Layer.trainable.setter
    def trainable(self, value):
        """Set on the Bidirectional and on both its layers (as Keras's setter does)."""
        Layer.trainable.fset(self, value)
        for sub in getattr(self, "_sublayers", ()):
            sub.trainable = value

    # ---- parameters: the two layers', forward first --------------------------------------
    def build(self, input_shape):
        if isinstance(input_shape, list):                    # [sequence, *forward states, *backward states]
            k = self.forward_layer._n_states
            seq, states = [input_shape[0]], list(input_shape[1:])
            if len(states) != 2 * k:
                raise ValueError(f"layer {self.name!r} (Bidirectional): expected {2 * k} initial state shapes, "
                                 f"got {len(states)}")
            shapes = (seq + states[:k], seq + states[k:])
        else:
            shapes = (input_shape, input_shape)
        for sub, shape in zip(self._sublayers, shapes):
            sub._build(shape)
        self._specs = [(f"{side}_{attr}", shape, init, reg) for side, sub in zip(("forward", "backward"),
                                                                                self._sublayers)
                       for attr, shape, init, reg in sub._specs]

    def _bind(self, params_of, grads_of):
        """Take the layout's views ({'forward_kernel': view, ...}); each layer gets its own part, under
        its own names (a model's plan binds the copy at another node of a shared Bidirectional to
        other gradient views the same way)."""
        super()._bind(params_of, grads_of)
        for side, sub in zip(("forward", "backward"), self._sublayers):
            own = [attr for attr, *_ in sub._specs]
            sub._bind({a: params_of[f"{side}_{a}"] for a in own},
                      {a: grads_of[f"{side}_{a}"] for a in own if f"{side}_{a}" in grads_of})

    def __copy__(self):
        """A copy for another node of a model (shared weights): the two layers are copied too, so that
        each node keeps buffers of its own."""
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.forward_layer, new.backward_layer = (copy.copy(sub) for sub in self._sublayers)
        new._sublayers = (new.forward_layer, new.backward_layer)
        for sub in new._sublayers:
            sub._bufs = {}
        return new

    def _takes_shape(self, input_shape):
        return self.forward_layer._takes_shape(input_shape)

    def _initialize(self, rng):
        for sub in self._sublayers:
            sub._initialize(rng)

    def compute_output_shape(self, input_shape):
        out = self.forward_layer.compute_output_shape(input_shape)
        y, states = (out[0], out[1:]) if self.return_state else (out, [])
        if self.merge_mode == "concat":
            y = tuple(y[:-1]) + (2 * y[-1],)
        ys = [tuple(y)] * (2 if self.merge_mode is None else 1)
        if self.return_state or self.merge_mode is None:
            return ys + list(states) * 2
        return tuple(y)

    def compute_mask(self, x, mask=None):
        out = mask if self.return_sequences else None
        outs = [out] * (2 if self.merge_mode is None else 1)
        if self.return_state:
            outs += [None] * (2 * self.forward_layer._n_states)
        return outs if len(outs) > 1 else outs[0]

    # ---- states (stateful=True) -------------------------------------------------------
    @property
    def states(self):
        f, b = self.forward_layer.states, self.backward_layer.states
        return None if f is None or b is None else f + b

    def reset_states(self):
        if not self.stateful:
            raise AttributeError(f"layer {self.name!r} (Bidirectional): reset_states needs a stateful layer")
        for sub in self._sublayers:
            sub.reset_states()

    reset_state = reset_states

    # ---- computation --------------------------------------------------------------------
    def _buffers(self, shape, dtype):
        u = self.forward_layer.units
        out = np.empty(shape[:-1] + (2 * u,), dtype) if self.merge_mode == "concat" else np.empty(shape, dtype)
        return self._keep((shape, dtype), [out, np.empty(shape, dtype), np.empty(shape, dtype),
                                          np.empty(shape, dtype)])            # [y, dy_f, dy_b, dx]

    def forward(self, x, training=False, mask=None, initial_state=None):
        f, b = self._sublayers
        if isinstance(x, (list, tuple)):                   # [sequence, *initial states] (functional API)
            pos = getattr(self, "_call_kwargs", {}).get("initial_state")
            initial_state = [x[i] for i in pos] if pos is not None else (list(x[1:]) or initial_state)
            x = x[0]
        init_f = init_b = None
        if initial_state is not None:
            k = f._n_states
            if len(initial_state) != 2 * k:
                raise ValueError(f"layer {self.name!r} (Bidirectional): expected {2 * k} initial states (the "
                                 f"forward layer's then the backward's), got {len(initial_state)}")
            init_f, init_b = list(initial_state[:k]), list(initial_state[k:])
        self._init = initial_state is not None
        for sub in self._sublayers:
            sub._n_threads, sub._need_dx = self._n_threads, self._need_dx
        yf = f.forward(x, training, mask=mask, initial_state=init_f)
        yb = b.forward(x, training, mask=mask, initial_state=init_b)
        states = []
        if self.return_state:
            states = yf[1:] + yb[1:]
            yf, yb = yf[0], yb[0]
        if self.return_sequences:
            yb = yb[:, ::-1]                                 # back into time order
        self._yf, self._yb = yf, yb
        key = (yf.shape, yf.dtype)
        bufs = self._bufs.get(key) or self._buffers(*key)
        self._cur = bufs
        y = bufs[0]
        u = f.units
        if self.merge_mode == "concat":
            y[..., :u], y[..., u:] = yf, yb
        elif self.merge_mode == "sum":
            np.add(yf, yb, out=y)
        elif self.merge_mode == "ave":
            np.multiply(np.add(yf, yb, out=y), 0.5, out=y)
        elif self.merge_mode == "mul":
            np.multiply(yf, yb, out=y)
        else:
            np.copyto(y, yb)
            outs = [yf, y]
        if self.merge_mode is not None:
            outs = [y]
        return outs + states if len(outs) + len(states) > 1 else outs[0]

    def backward(self, dy):
        f, b = self._sublayers
        n_out = 2 if self.merge_mode is None else 1
        grads = list(dy) if isinstance(dy, (list, tuple)) else [dy]
        if len(grads) != n_out + (2 * f._n_states if self.return_state else 0):
            raise ValueError(f"layer {self.name!r} (Bidirectional): backward expects one gradient per output, "
                             f"got {len(grads)}")
        y, dyf, dyb, dx = self._cur
        u = f.units
        if self.merge_mode is None:
            dyf, dyb = grads[0], grads[1]
        elif self.merge_mode == "concat":
            dyf, dyb = grads[0][..., :u], grads[0][..., u:]
        elif self.merge_mode == "sum":
            dyf = dyb = grads[0]
        elif self.merge_mode == "ave":
            dyf = dyb = np.multiply(grads[0], 0.5, out=dyf)
        else:                                               # mul: d(yf yb) = dy yb, dy yf
            np.multiply(grads[0], self._yb, out=dyf)
            np.multiply(grads[0], self._yf, out=dyb)
        if self.return_sequences:
            dyb = dyb[:, ::-1]                               # into the backward layer's processing order
        k = f._n_states
        dstates = grads[n_out:]
        gf = f.backward([dyf] + dstates[:k] if self.return_state else dyf)
        gb = b.backward([dyb] + dstates[k:] if self.return_state else dyb)
        if self._init:
            (dxf, *dsf), (dxb, *dsb) = gf, gb
        else:
            dxf, dxb, dsf, dsb = gf, gb, [], []
        out = np.add(dxf, dxb, out=f._cur.dx) if self._need_dx else None   # the forward layer's buffer
        if self._init:
            return [out] + dsf + dsb
        return out

    # ---- config ----------------------------------------------------------------------------
    def get_config(self):
        cfg = super().get_config()
        cfg.update(merge_mode=self.merge_mode,
                   layer={"class_name": type(self.forward_layer).__name__, "config": self.forward_layer.get_config()},
                   backward_layer={"class_name": type(self.backward_layer).__name__,
                                   "config": self.backward_layer.get_config()})
        return cfg

    @classmethod
    def from_config(cls, config):
        from nncore.layers import get_layer_class

        config = dict(config)
        specs = {}
        for key in ("layer", "backward_layer"):
            spec = config.pop(key, None)
            if spec is None:
                continue
            if not isinstance(spec, dict) or "class_name" not in spec:
                raise ValueError(f"Bidirectional.from_config: {key} must be {{'class_name': ..., 'config': ...}}")
            specs[key] = get_layer_class(spec["class_name"]).from_config(dict(spec.get("config", {})))
        if "layer" not in specs:
            raise ValueError("Bidirectional.from_config: the config has no 'layer'")
        return cls(specs["layer"], backward_layer=specs.get("backward_layer"), **config)
