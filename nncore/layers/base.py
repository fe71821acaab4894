"""Layer base class and the Input placeholder.

A layer declares its weights in `build(input_shape)` with `add_weight`
(shape, initializer, regularizer, trainable) without allocating them. The
model then lays all weights of all layers out in ONE flat buffer and their
gradients in another (`nncore._params`: the trained weights first, so the
optimizer steps one contiguous range), and `_bind` makes each weight and its
gradient a view into them. A layer used on its own (``layer(x)``) binds to
buffers of its own.

Weights declared with ``trainable=False`` (BatchNormalization's moving
statistics) are never given to the optimizer; ``layer.trainable = False``
freezes all of a layer's weights (applied by the model's next `compile`, as
in Keras).

Per-batch work buffers (outputs, deltas) are allocated once per batch shape
and reused: `forward`/`backward` return views of them, valid until the next
call with the same shape.
"""
import math
import operator
import re

import numpy as np

from nncore import _params, _random, initializers, mixed_precision, regularizers
from nncore._config import floatx
from nncore._kernels.gemm import gemm, gemm_bf16
from nncore._graph import Node, SymbolicTensor, call_symbolic, is_symbolic

MAX_CACHED_SHAPES = 8   # work-buffer sets kept per layer (one per batch shape)


class _Weight(property):
    """A layer's weight attribute (``layer.kernel``): read as any attribute is (a C getter), but not
    replaced once the layer holds it. The weights are views into the model's flat buffers, which the
    optimizer, the model's kernels (a Dense chain's, a packed copy's refresh) and the layer's own
    derived views (a convolution's 2-D kernel) read: an array put in a view's place would be seen by
    some of them and not by the others, so ``layer.kernel = w`` after build refuses (as Keras 3, whose
    ``Dense.kernel`` has no setter) and the values change in place (``layer.kernel[...] = w``) or by
    ``set_weights``. The layer's own code binds its arrays with `Layer._put_weight`. Installed on a
    layer's class when a layer of it first holds a weight of that name (`_weight_attr`)."""

    def __init__(self, attr):
        self.attr, self.slot = attr, "_w_" + attr
        super().__init__(operator.attrgetter(self.slot), self._assign, None, f"The layer's weight {attr!r}.")

    def _assign(self, layer, value):
        held = layer.__dict__.get(self.slot)
        if not isinstance(held, np.ndarray):          # not holding it yet (before build): an ordinary attribute
            layer.__dict__[self.slot] = value
            return
        how = (f"write into it, `layer.{self.attr}[...] = value`, or call `layer.set_weights(...)`"
               if held.flags.writeable else "it is read-only (an int8 weight): call `layer.set_weights(...)`")
        raise AttributeError(f"layer {layer.name!r} ({type(layer).__name__}): its weight {self.attr!r} cannot be "
                             f"replaced after build (it is a view of the model's weights, which every path reads); {how}")


def _weight_attr(cls, attr):
    """Make `attr` a `_Weight` of `cls` (once per class and name)."""
    found = getattr(cls, attr, None)
    if type(found) is not _Weight:
        if found is not None:
            raise TypeError(f"{cls.__name__}: a weight named {attr!r} would hide the class attribute {attr!r}")
        setattr(cls, attr, _Weight(attr))


def _snake_case(name):
    """Keras's default layer name of a class: Dense -> dense, Conv2D -> conv2d, MaxPooling2D -> max_pooling2d."""
    name = re.sub(r"(.)([A-Z][a-z0-9]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def _weight_values(weights, count, where):
    """A set_weights argument: a list (or any other iterable but a string or one array) of `count` real
    numeric arrays, as ndarrays (shapes are the caller's check). Complex values lost their imaginary part
    in the copy, strings were parsed: both are a TypeError here, naming the array."""
    if isinstance(weights, (np.ndarray, str, bytes)) or not hasattr(weights, "__iter__"):
        raise TypeError(f"{where}: expected a list of {count} arrays, got {type(weights).__name__}")
    weights = list(weights)
    if len(weights) != count:
        raise ValueError(f"{where}: expected {count} arrays, got {len(weights)}")
    out = []
    for i, v in enumerate(weights):
        v = np.asarray(v)
        if v.dtype.kind not in "biuf":
            raise TypeError(f"{where}: array {i} must hold real numbers (bool, int or float), got dtype {v.dtype}")
        out.append(v)
    return out


def _check_cast(v, w, where):
    """An integer weight (an int8 kernel) takes integer values in its dtype's range only: no silent cast."""
    if w.dtype.kind in "iu":
        info = np.iinfo(w.dtype)
        if v.dtype.kind not in "iu" or (v.size and (v.min() < info.min or v.max() > info.max)):
            raise ValueError(f"{where}: a {w.dtype} weight takes integers in [{info.min}, {info.max}], got "
                             f"dtype {v.dtype}" + (f" with values in [{v.min()}, {v.max()}]" if v.size else ""))


def _batch_free(shape):
    """(None,) + the feature dimensions, for one shape (a tuple) or several (a list of tuples)."""
    if isinstance(shape, list):
        return [(None,) + tuple(s[1:]) for s in shape]
    return (None,) + tuple(shape[1:])


def _shape_tuple(shape, arg):
    if isinstance(shape, (int, np.integer)):
        shape = (int(shape),)
    try:
        if any(isinstance(s, (str, bytes, float)) for s in shape):   # int("3") and int(2.5) would pass
            raise TypeError
        shape = tuple(None if s is None else int(s) for s in shape)
    except TypeError:
        raise TypeError(f"{arg}: expected a tuple of ints, got {shape!r}") from None
    if any(s is not None and s <= 0 for s in shape):
        raise ValueError(f"{arg}: dimensions must be positive, got {shape}")
    return shape


class Layer:
    """Base layer: build / forward / backward / get_config.

    Subclasses implement `build` (calling `add_weight`), `compute_output_shape`,
    `forward(x, training)` and `backward(dy)` (returning dx, or None when the
    model says no earlier layer needs it). A layer taking several inputs gets
    a list of shapes in `build`/`compute_output_shape` and a list of arrays in
    `forward`, and returns a list of dx from `backward`; one with several
    outputs returns a list of shapes from `compute_output_shape` (see
    nncore/_graph.py for the whole protocol).

    Calling a layer on symbolic tensors (``nncore.Input``) records a node of a
    functional model; calling it on arrays runs it at once.
    """
    _counters = {}
    supports_masking = False   # passes a (batch, timesteps) mask on to the next layer (Keras's flag)
    _uses_mask = False         # forward takes mask=... (the recurrent layers)
    _makes_mask = False        # makes a mask of its own (Masking, Embedding(mask_zero=True))
    _tensor_kwargs = ()   # keyword arguments of a call that may carry symbolic tensors (e.g. initial_state)
    _policy_computes = False   # computes in its policy's compute dtype (Dense, Conv: bf16 GEMMs); else float

    def __init__(self, name=None, input_shape=None, batch_input_shape=None, trainable=True):
        if name is None:
            base = _snake_case(type(self).__name__)
            k = Layer._counters.get(base, 0)
            Layer._counters[base] = k + 1
            name = base if k == 0 else f"{base}_{k}"
        if not isinstance(name, str) or not name:
            raise TypeError(f"{type(self).__name__}: name must be a non-empty str, got {name!r}")
        self.name = name
        self.built = False
        self._specs = []           # (attr, shape, initializer, regularizer), in declaration order
        self._non_trainable = set()  # attrs declared with trainable=False
        self._held = []            # (attr, shape, dtype, fill): weights held outside the flat buffers
        self.trainable = trainable
        self._batch_input_shape = None
        if batch_input_shape is not None:
            self._batch_input_shape = (None,) + _shape_tuple(batch_input_shape, "batch_input_shape")[1:]
        elif input_shape is not None:
            self._batch_input_shape = (None,) + _shape_tuple(input_shape, "input_shape")
        self.input_shape = None
        self.output_shape = None
        self._n_threads = 1
        self._need_dx = True       # False for the first layers of a model: skip dx = delta W^T
        self._bufs = {}
        self._policy = mixed_precision._global   # None: the model's own float dtype (floatx)

    # ---- dtype policy (nncore.mixed_precision) -----------------------------------------
    @property
    def dtype_policy(self):
        """The layer's `nncore.mixed_precision.Policy` (the global one when it was created)."""
        return self._policy if self._policy is not None else mixed_precision.Policy(floatx())

    @property
    def variable_dtype(self):
        return self.dtype_policy.variable_dtype

    @property
    def compute_dtype(self):
        """What the layer computes in: the policy's compute dtype for the layers that have a bfloat16 form
        (Dense, Conv1D, Conv2D), the variable dtype for the others."""
        policy = self.dtype_policy
        return policy.compute_dtype if self._policy_computes else policy.variable_dtype

    @property
    def _gemm(self):
        """The GEMM of the compute dtype: `gemm` (float32/64) or `gemm_bf16` (bfloat16 operands, float32
        sums, output rounded to bfloat16), the same arguments."""
        return gemm_bf16 if self.compute_dtype == "bfloat16" else gemm

    def _check_policy(self, dtype):
        """The model lays its weights out in one buffer of `dtype`: a policy with other variables is refused."""
        if self._policy is not None and self._policy.variable_dtype != np.dtype(dtype).name:
            raise ValueError(f"layer {self.name!r} ({type(self).__name__}) has dtype policy {self._policy.name!r} "
                             f"({self._policy.variable_dtype} variables) but the model's parameters are "
                             f"{np.dtype(dtype).name} (nncore.floatx()); one flat buffer holds one dtype")

    # ---- parameters ------------------------------------------------------------
    def add_weight(self, name, shape, initializer="zeros", regularizer=None, trainable=True):
        """Declare a weight; it becomes `self.<name>` (a view) once the model binds it.

        ``trainable=False`` declares state the optimizer never updates (the layer updates it
        itself, as BatchNormalization its moving statistics); it has no gradient.
        """
        self._specs.append((name, tuple(int(s) for s in shape),
                            initializers.get(initializer),
                            regularizers.get(regularizer)))
        if not trainable:
            self._non_trainable.add(name)

    def _hold_weight(self, name, shape, dtype=None, fill=0):
        """Declare a weight the layer holds itself, outside the model's flat buffers, never trained: an
        int8 kernel and its scale (`quantize`). dtype None: the model's float dtype. It becomes
        `self.<name>` (filled with `fill`) when the layer is laid out, and keeps a value set before.

        Held weights are read-only arrays: they change through `set_weights` (a model's, a load's) or
        `quantize` only, each of which then calls `_held_changed`, so what a layer derives from them
        once (an int8 kernel's packed form) is never stale."""
        self._held.append((name, tuple(int(s) for s in shape), dtype, fill))

    def _allocate_held(self, float_dtype):
        new = False
        for attr, shape, dtype, fill in self._held:
            dt = np.dtype(float_dtype if dtype is None else dtype)
            a = getattr(self, attr, None)
            if not (isinstance(a, np.ndarray) and a.shape == shape and a.dtype == dt):
                a = np.full(shape, fill, dt)
                self._put_weight(attr, a)
                new = True
            new |= a.flags.writeable
            a.flags.writeable = False
        if new:
            self._held_changed()

    def _held_changed(self):
        """A held weight was set (`set_weights`, `quantize`, a new layout): drop what was derived from it."""

    def _held_weights(self):
        return [w for w in (getattr(self, attr, None) for attr, *_ in self._held) if w is not None]

    def build(self, input_shape):
        """Declare parameters from the input shape (batch dimension first, may be None)."""
        self.built = True

    def _build(self, input_shape):
        """Build for `input_shape` (a tuple; a list of tuples for several inputs) once; returns the
        output shape (a tuple; a list of tuples for several outputs)."""
        input_shape = list(map(tuple, input_shape)) if isinstance(input_shape, list) else tuple(input_shape)
        if self.built:
            shape = _batch_free(input_shape)
            if shape == _batch_free(self.input_shape):
                return self.output_shape
            if self._specs and not self._takes_shape(shape):
                raise ValueError(f"layer {self.name!r} ({type(self).__name__}) was built for inputs of shape "
                                 f"{self.input_shape}, got {input_shape}")
            out = self.compute_output_shape(shape)      # another input shape its weights fit (e.g. timesteps)
            return list(map(tuple, out)) if isinstance(out, list) else tuple(out)
        self._specs, self._held = [], []
        self._non_trainable = set()
        self.build(input_shape)
        self.built = True
        self.input_shape = _batch_free(input_shape)
        out = self.compute_output_shape(self.input_shape)
        self.output_shape = list(map(tuple, out)) if isinstance(out, list) else tuple(out)
        return self.output_shape

    def _takes_shape(self, input_shape):
        """Whether the built weights also serve inputs of this (batch-free) shape: by default only the
        shape they were built for; layers that read only the last axis (Dense, the recurrent layers)
        take any other lengths."""
        return False

    def count_params(self):
        """Number of weight values, the held ones (int8 kernels) included, as Keras counts."""
        return sum(math.prod(s) for _, s, _, _ in self._specs + self._held)

    def _bind(self, params_of, grads_of):
        """Take the views the layout made: {attr: weight view} and {attr: gradient view}."""
        for attr, view in params_of.items():
            self._put_weight(attr, view)
        self._grad_of = dict(grads_of)
        self._bufs = {}

    def _put_weight(self, attr, array):
        """Bind the weight `attr` to `array` (the layer's own code only: `_Weight` refuses a user's
        assignment once the layer holds the weight)."""
        _weight_attr(type(self), attr)
        self.__dict__["_w_" + attr] = array

    def __setstate__(self, state):
        """An unpickled layer's weights keep their `_Weight` attributes (its class may have none yet)."""
        self.__dict__.update(state)
        for key in state:
            if key.startswith("_w_"):
                _weight_attr(type(self), key[3:])

    def _initialize(self, rng):
        for attr, shape, init, _ in self._specs:
            view = getattr(self, attr)
            view[...] = initializers.call(init, shape, view.dtype, rng, f"layer {self.name!r}: {attr!r}")

    # ---- trainable and non-trainable weights ----------------------------------------
    @property
    def trainable(self):
        """Whether the optimizer updates this layer's weights (settable; a model applies a change
        at its next `compile`, as Keras does). A frozen BatchNormalization also runs in inference
        mode."""
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"layer {self.name!r}: trainable must be a bool, got {value!r}")
        self._trainable = bool(value)

    def _weight_attrs(self):
        """Weight names in Keras's order: the trainable-declared ones, then the others (each in
        declaration order); BatchNormalization: gamma, beta, moving_mean, moving_variance."""
        attrs = [attr for attr, *_ in self._specs]
        return ([a for a in attrs if a not in self._non_trainable]
                + [a for a in attrs if a in self._non_trainable])

    @property
    def weights(self):
        """All weights (views into the model's flat buffer), trainable-declared ones first, then the
        held ones (an int8 kernel and its scale)."""
        flat = [getattr(self, attr) for attr in self._weight_attrs()] if self._bound else []
        return flat + self._held_weights() if self._held else flat

    @property
    def trainable_weights(self):
        """The weights the optimizer updates: none when the layer is frozen."""
        if not self._trainable or not self._bound:
            return []
        return [getattr(self, a) for a in self._weight_attrs() if a not in self._non_trainable]

    @property
    def non_trainable_weights(self):
        """The weights the optimizer leaves alone: all of them when the layer is frozen."""
        if not self._trainable:
            return self.weights
        fixed = [getattr(self, a) for a in self._weight_attrs() if a in self._non_trainable] if self._bound else []
        return fixed + self._held_weights()

    @property
    def _bound(self):
        return bool(self._specs) and hasattr(self, self._specs[0][0])

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        mine = self.weights
        weights = _weight_values(weights, len(mine), f"layer {self.name!r}: set_weights")
        for w, v in zip(mine, weights):
            if v.shape != w.shape:
                raise ValueError(f"layer {self.name!r}: expected weight of shape {w.shape}, got {v.shape}")
            _check_cast(v, w, f"layer {self.name!r}")
        self._assign_weights(weights)

    def _assign_weights(self, values):
        """Write `values` (checked: shapes and casts as `weights`) into the weights, the held (read-only)
        ones too, then `_held_changed` when a held one was written."""
        held = False
        for w, v in zip(self.weights, values):
            if w.flags.writeable:
                w[...] = v
                continue
            w.flags.writeable = True       # a held weight (the layer owns it; no view of it is writeable)
            try:
                w[...] = v
            finally:
                w.flags.writeable = False
            held = True
        if held:
            self._held_changed()

    # ---- computation --------------------------------------------------------------
    def _keep(self, key, bufs):
        """Cache the work buffers for one batch shape. Training uses two shapes (full and last
        batch) plus those of validation; a few more are kept, then the cache starts afresh so that
        calls with ever new batch sizes do not pile buffers up."""
        if len(self._bufs) >= MAX_CACHED_SHAPES:
            self._bufs.clear()
        self._bufs[key] = bufs
        return bufs

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def compute_mask(self, x, mask=None):
        """The mask of this layer's output for input x with mask `mask` (Keras's compute_mask): the
        input's when the layer supports masking, else None (the mask stops here)."""
        return mask if self.supports_masking else None

    def forward(self, x, training=False):
        raise NotImplementedError

    def backward(self, dy):
        raise NotImplementedError

    def __call__(self, inputs, *args, **kwargs):
        """On symbolic tensors: record a node of a functional model and return its output tensor(s).
        On arrays: run the layer on its own (``layer(x, training=False)``), see `_call_eager`."""
        if is_symbolic(inputs) or any(is_symbolic(v) for v in kwargs.values()):
            if args:
                raise TypeError(f"layer {self.name!r} ({type(self).__name__}): a call on symbolic tensors takes "
                                "the inputs and keyword arguments only")
            return call_symbolic(self, inputs, kwargs)
        return self._call_eager(inputs, *args, **kwargs)

    def _call_eager(self, x, training=False, **kwargs):
        """Run the layer on its own: builds (with parameters of its own) on first use; returns new array(s).
        `x` is an array, or a list of arrays for a layer taking several inputs. Keyword arguments
        (``mask``, ``initial_state``) go to `forward`."""
        if isinstance(x, (list, tuple)):
            return self._call_eager_list([self._eager_input(a) for a in x], training, **kwargs)
        x = self._eager_input(x)
        if x.ndim < 2:
            raise ValueError(f"layer {self.name!r}: expected a batch of inputs (at least 2-D), got shape {x.shape}")
        if not self.built or (self._specs and not self._bound):
            self._build(x.shape)
            if self._specs:
                _params.lay_out([self], floatx(), _random.get_rng())
        if any(not hasattr(self, attr) for attr, *_ in self._held):   # held weights only (int8 Embedding)
            self._allocate_held(floatx())
        floats = [w.dtype for w in self.weights if w.dtype.kind == "f"]
        if floats:
            dtype = floats[0]                       # inputs follow the parameters
        elif x.dtype in (np.float32, np.float64):
            dtype = x.dtype                         # no parameters: a float input keeps its dtype
        else:
            dtype = np.dtype(floatx())
        x = np.ascontiguousarray(x, dtype=dtype)
        return _copies(self.forward(x, training, **kwargs))

    def _eager_input(self, x):
        """An input of a call on arrays as an ndarray of real numbers with at least one value: complex
        values would lose their imaginary part, strings be parsed, and an empty batch reached
        kernels that take at least one row (the model's entry points refuse both the same way)."""
        x = np.asarray(x)
        if x.dtype.kind not in "biuf":
            raise TypeError(f"layer {self.name!r} ({type(self).__name__}): expected an array of real numbers "
                            f"(bool, int or float), got dtype {x.dtype}")
        if x.size == 0:
            raise ValueError(f"layer {self.name!r} ({type(self).__name__}): expected a non-empty batch, got shape "
                             f"{x.shape}")
        return x

    def _call_eager_list(self, xs, training, **kwargs):
        if not xs or any(a.ndim < 2 for a in xs):
            raise ValueError(f"layer {self.name!r}: expected a list of batches of inputs (each at least 2-D), "
                             f"got shapes {[a.shape for a in xs]}")
        if not self.built:
            self._build([a.shape for a in xs])
        dtype = next((a.dtype for a in xs if a.dtype in (np.float32, np.float64)), np.dtype(floatx()))
        return _copies(self.forward([np.ascontiguousarray(a, dtype=dtype) for a in xs], training, **kwargs))

    def _check_features(self, x):
        if x.shape[1:] != self.input_shape[1:]:
            raise ValueError(f"layer {self.name!r} ({type(self).__name__}): expected input of shape "
                             f"(batch, {', '.join(map(str, self.input_shape[1:]))}), got {x.shape}")

    # ---- config ----------------------------------------------------------------
    def get_config(self):
        cfg = {"name": self.name, "trainable": self._trainable}
        if self._batch_input_shape is not None:
            cfg["batch_input_shape"] = list(self._batch_input_shape)
        return cfg

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        trainable = config.pop("trainable", True)   # every layer takes it, through the base class
        layer = cls(**config)
        layer.trainable = trainable
        return layer

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r}>"


def _copies(y):
    return [a.copy() for a in y] if isinstance(y, (list, tuple)) else y.copy()


class InputLayer(Layer):
    """The model input: fixes the input shape (without the batch dimension).

    Its output, ``layer.output`` (what ``nncore.Input`` returns), is the symbolic tensor a
    functional model starts from.
    """

    def __init__(self, shape=None, batch_size=None, name=None, batch_shape=None):
        if batch_shape is not None:
            shape = tuple(batch_shape)[1:]
        if shape is None:
            raise ValueError("Input: expected shape=, e.g. Input(shape=(8,))")
        shape = _shape_tuple(shape, "Input shape")
        if any(s is None for s in shape):
            raise ValueError(f"Input: every dimension except the batch must be known, got shape {shape}")
        super().__init__(name=name)
        self.batch_size = batch_size
        self._batch_input_shape = (None,) + shape
        self.built = True
        self.input_shape = self.output_shape = self._batch_input_shape
        node = Node(self, ())
        node.outputs = (SymbolicTensor(self._batch_input_shape, node, 0),)
        self._tensor = node.outputs[0]

    @property
    def output(self):
        """The symbolic tensor of this input."""
        return self._tensor

    def forward(self, x, training=False):
        return x

    def backward(self, dy):
        return dy

    def get_config(self):
        return {"name": self.name, "batch_shape": list(self._batch_input_shape)}


def Input(shape=None, batch_size=None, name=None, batch_shape=None):
    """A symbolic input tensor: where a functional model starts, or the first entry of a Sequential.

    Parameters
    ----------
    shape : tuple of int
        The shape of one sample (without the batch dimension), e.g. ``(8,)`` or ``(28, 28, 1)``.
    batch_size : int, optional
        Recorded only (nncore models take any batch size).
    name : str, optional
        The input's name: the key of this input when arrays are given as a dict.
    batch_shape : tuple, optional
        ``(batch, ...)`` instead of `shape`.

    Returns
    -------
    SymbolicTensor
        Call layers on it, then ``nncore.models.Model(inputs, outputs)``.
    """
    return InputLayer(shape=shape, batch_size=batch_size, name=name, batch_shape=batch_shape).output
