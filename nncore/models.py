"""Model (a graph of layers) and Sequential (a stack of them): compile / fit / evaluate / predict, Keras 3
semantics.

``Model(inputs, outputs)`` takes the symbolic tensors of a functional graph (``nncore.Input``, layers called
on tensors; several inputs and outputs, as lists or dicts). ``Sequential`` is the same engine on a linear
graph: it calls its layers one after the other on its input when the input shape is known. There is one
fit/evaluate/predict for both.

All weights live in ONE contiguous buffer (`model._params`) and their gradients in another
(`model._grads`); each layer's kernel and bias are views into them. The trained weights come first
(nncore/_params.py: [trained | frozen layers | non-trainable weights]), so an optimizer step is one fused
kernel call over `model._train_params`, whatever is frozen or non-trainable. A layer used at several nodes
is stored once. The execution plan
(nncore/_plan.py) is computed when the model is built: the nodes in topological order, run in chains,
each tensor's buffer allocated once per batch size by the layer writing it, gradients summed where a
tensor feeds several layers.

One training step is: forward through the nodes, per output the loss kernel writing d loss / d output
(scaled by the output's loss weight), backward through the nodes that lead from a parameter to a loss
(each writing its parameter gradients into the flat gradient buffer), regularizer gradients, then
`optimizer.step_flat`. When an output's activation is sigmoid/softmax and its loss the matching
cross-entropy, its layer stops at the logits z and one fused kernel gives the loss and the gradient p - y.
"""
import functools
import math
import numbers
import os
import signal
import threading
import warnings

try:  # the C module under `signal`: the same functions without the enum wrapping, which costs
    import _signal as _sig   # ~25 us per fit (a ValueError raised and caught for a function handler)
except ImportError:  # pragma: no cover - other Pythons
    _sig = signal

import numpy as np

from nncore import _params, _random
from nncore import _threads
from nncore import callbacks as _callbacks
from nncore import data as _data
from nncore import distributed as _dist
from nncore import losses as _losses
from nncore import metrics as _metrics
from nncore import optimizers as _optimizers
from nncore._config import floatx
from nncore._graph import SymbolicTensor, graph_from_config, node_config, topological_nodes
from nncore._kernels.elementwise import all_finite
from nncore._plan import Plan
from nncore._registry import register_model_class
from nncore._threads import effective_n_threads
from nncore.data import Batches, Stream, split_validation
from nncore.layers import InputLayer, Layer, get_layer_class
from nncore.layers.base import MAX_CACHED_SHAPES, _check_cast, _weight_values
from nncore.layers.core import DenseChain

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def _user_stacklevel():
    """warnings.warn's stacklevel, called from here, of the first frame outside the nncore package: a
    warning raised deep in fit/evaluate/train_on_batch points at the user's line."""
    import sys

    f, level = sys._getframe(1), 1
    while f is not None and os.path.abspath(f.f_code.co_filename).startswith(_PACKAGE_DIR + os.sep):
        f, level = f.f_back, level + 1
    return level


__all__ = ["Model", "Sequential"]


def _int_arg(value, arg, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{arg}: expected an int >= {minimum}, got {value!r}")
    return int(value)


def _verbose(verbose):
    if verbose == "auto":
        verbose = 1
    if verbose not in (0, 1, 2):
        raise ValueError(f"verbose: expected 0, 1, 2 or 'auto', got {verbose!r}")
    return int(verbose) if _dist.rank() == 0 else 0     # in an MPI job only rank 0 prints


def _exclusive(method):
    """One fit/evaluate/predict/call at a time per model. The layers reuse per-batch-size
    output buffers, so two threads running the same model at once would overwrite each
    other's activations; the lock makes concurrent calls give the serial results (a
    re-entrant lock: callbacks may call predict from inside fit). Separate models run
    in parallel; for parallel inference on one model, give each thread its own copy
    (load_model or from_config + set_weights)."""

    @functools.wraps(method)
    def locked(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)

    return locked


_CONVERT_KEPT = 1 << 20   # inputs converted into a buffer kept per signature up to this many bytes


def _array(value, where):
    """np.asarray(value), with a ragged nested list (rows of different lengths) a ValueError naming the
    argument (NumPy's own message names none)."""
    try:
        return np.asarray(value)
    except ValueError as exc:
        raise ValueError(f"{where}: expected a rectangular array of numbers (rows of one length), got a "
                         f"{type(value).__name__} NumPy cannot make one array of: {exc}") from None


def _convert(x, shape, into):
    """x (numeric) as a C-contiguous array of `shape` (its own or a column) in the model's dtype: copied
    into the buffer `into`, or `into` is the dtype (a view when x is one already, else a fresh copy)."""
    x = x.reshape(shape)
    if isinstance(into, np.ndarray):
        np.copyto(into, x, casting="unsafe")
        return into
    return np.ascontiguousarray(x, dtype=into)


def _no_step(params, grads):
    """The optimizer step of a model without parameters."""


class _DeferredInterrupt:
    """Inside fit, a first Ctrl-C (SIGINT) is held until the running step has finished, then raised
    as KeyboardInterrupt between steps, so the parameters and the optimizer state stay consistent.
    A second Ctrl-C interrupts at once. Only in the main thread with Python's default handler."""

    def __enter__(self):
        self.pending = False
        self._old = None
        if threading.current_thread() is threading.main_thread() \
                and _sig.getsignal(signal.SIGINT) is signal.default_int_handler:
            self._old = _sig.signal(signal.SIGINT, self._handler)
        return self

    def _handler(self, signum, frame):
        if self.pending:
            raise KeyboardInterrupt
        self.pending = True

    def check(self):
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt("training interrupted (Ctrl-C) after a complete step")

    def __exit__(self, *exc):
        if self._old is not None:
            _sig.signal(signal.SIGINT, self._old)
        return False


def _structure(value, what):
    """('one' | 'list' | 'dict', keys, flat list of tensors) of a model's inputs or outputs; a list of one
    tensor counts as one tensor (Keras)."""
    if isinstance(value, dict):
        if not value:
            raise ValueError(f"Model: {what} is an empty dict")
        return "dict", list(value), list(value.values())
    if isinstance(value, (list, tuple)):
        if not value:
            raise ValueError(f"Model: {what} is an empty list")
        if len(value) > 1:
            return "list", None, list(value)
        value = value[0]
    return "one", None, [value]


def _describe(value):
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape}"
    if isinstance(value, dict):
        return f"a dict with keys {sorted(map(str, value))}"
    if isinstance(value, (list, tuple)):
        return f"a {type(value).__name__} of {len(value)} entries"
    return f"a {type(value).__name__}"


class _Head:
    """One model output in training: its tensor slot, loss, loss weight, metrics and where its targets,
    sample weights and metric targets sit in a batch tuple; `mask` gives its mask (masked models)."""
    __slots__ = ("k", "name", "slot", "loss", "fn", "fused", "weight", "metrics", "iy", "iw", "im", "mask")


class Model:
    """A model defined by a graph of layers from symbolic inputs to outputs (Keras's functional API).

    Parameters
    ----------
    inputs : SymbolicTensor, list or dict of them
        Tensors made by ``nncore.Input``.
    outputs : SymbolicTensor, list or dict of them
        Tensors computed from the inputs by calling layers on them.
    name : str, optional

    Notes
    -----
    Data for several inputs (outputs) is a list in the model's order or a dict keyed by input names
    (output names): an input's name is its Input's name, an output's the name of the layer producing
    it (or the key, when the model was given a dict). `predict` returns outputs in the same
    structure. Loss reduction is Keras's `sum_over_batch_size`: sum_i w_i l_i / N per batch and
    output; the model's loss is sum_k loss_weight_k loss_k plus the regularization penalties.
    History has ``loss`` and, for several outputs, ``<output>_loss`` and ``<output>_<metric>``.
    """
    _counts = {}
    _default_name = "functional"

    def __init__(self, inputs=None, outputs=None, name=None):
        self._init_state(name)
        if inputs is None or outputs is None:
            raise TypeError("Model: expected Model(inputs, outputs) with symbolic tensors (nncore.Input and "
                            "layers called on it)")
        self._set_graph(inputs, outputs)

    def _init_state(self, name):
        if name is None:
            base = self._default_name
            k = Model._counts.get(base, 0)
            Model._counts[base] = k + 1
            name = base if k == 0 else f"{base}_{k}"
        self.name = name
        self.built = False
        self.optimizer = None
        self.loss = None
        self.compiled_metrics = []
        self._losses = None
        self._compile_config = None
        self._n_threads_req = None
        self.stop_training = False
        self.history = None
        self._dtype = None
        self._plan = None
        self._heads = None
        self._lock = threading.RLock()
        self._train_batches = None    # the last fit's Batches (buffers and schedule), see Batches.rebind
        self._signatures = {}         # checked input signatures -> conversions (`_inputs`)
        self._ready_key = None        # thread settings of the last `_setup` (`_set_up`)
        self._chain = None            # the plan's DenseChain, made with the plan (`_setup`)
        self._nt = 1
        self._sync = None             # the nncore.distributed.FitSync of a fit over several MPI ranks

    # ------------------------------------------------------------------ structure
    def _set_graph(self, inputs, outputs):
        """Take the graph from `inputs` to `outputs`: check it, lay the parameters out, make the plan."""
        self._input_kind, input_keys, inputs = _structure(inputs, "inputs")
        self._output_kind, output_keys, outputs = _structure(outputs, "outputs")
        for t in inputs:
            if not isinstance(t, SymbolicTensor) or not isinstance(t.node.layer, InputLayer):
                made = f"the output of layer {t.node.layer.name!r}" if isinstance(t, SymbolicTensor) else _describe(t)
                raise ValueError(f"{self.name}: every input must be a tensor made by nncore.Input, got {made}")
        for t in outputs:
            if not isinstance(t, SymbolicTensor):
                raise ValueError(f"{self.name}: every output must be a symbolic tensor (a layer called on "
                                 f"nncore.Input tensors), got {_describe(t)}")
        if len({id(t) for t in inputs}) != len(inputs):
            raise ValueError(f"{self.name}: an input tensor is listed twice")
        if len({id(t) for t in outputs}) != len(outputs):
            raise ValueError(f"{self.name}: an output tensor is listed twice")
        nodes = topological_nodes(outputs)
        given = {id(t.node) for t in inputs}
        reached = {id(n) for n in nodes if isinstance(n.layer, InputLayer)}
        for t in outputs:
            missing = [n.layer.name for n in topological_nodes([t])
                       if isinstance(n.layer, InputLayer) and id(n) not in given]
            if missing:
                raise ValueError(f"{self.name}: output {t.name!r} is not connected to the inputs: it depends on "
                                 f"Input {missing[0]!r}, which is not one of the model's inputs "
                                 f"{[i.node.layer.name for i in inputs]}")
        for t in inputs:
            if id(t.node) not in reached:
                raise ValueError(f"{self.name}: input {t.node.layer.name!r} is not connected to any output")
        layers, seen, names = [], set(), {}
        for node in nodes:
            layer = node.layer
            if id(layer) in seen:
                continue
            seen.add(id(layer))
            if layer.name in names:
                raise ValueError(f"{self.name}: two different layers are named {layer.name!r}; layer names "
                                 "must be unique in a model")
            names[layer.name] = layer
            layers.append(layer)
        self.inputs, self.outputs = inputs, outputs
        self._all_layers = layers
        self._nodes = [n for n in nodes if not isinstance(n.layer, InputLayer)]
        self._n_in = len(inputs)
        self.input_names = input_keys or [t.node.layer.name for t in inputs]
        out_names = output_keys or [t.node.layer.name for t in outputs]
        self.output_names = []
        for nm in out_names:                    # a layer giving several outputs: name_1, name_2, ...
            base, k = nm, 1
            while nm in self.output_names:
                nm, k = f"{base}_{k}", k + 1
            self.output_names.append(nm)
        self._param_layers = [layer for layer in layers if layer._specs or layer._held]
        self._lay_out(np.dtype(floatx()))
        self.built = True

    def _lay_out(self, dtype):
        """(Re)make the flat buffers from the layers' `trainable` flags (nncore._params: the trained
        weights first, then frozen layers, then non-trainable weights; shadow gradient regions for the
        further nodes of shared trained layers), give the optimizer its slots over the trained range and
        drop the plan (its executors hold the old views). A layer that already holds values (it was
        bound to another model, or used on its own) keeps them; the others are initialized, in layer
        order."""
        uses = {}
        for node in self._nodes:
            uses[id(node.layer)] = uses.get(id(node.layer), 0) + 1
        layout = self._layout = _params.lay_out(self._param_layers, dtype, _random.get_rng(), uses)
        for layer in self._param_layers:
            layer._owner = self
        self._params, self._grads, self._grads_all = layout.params, layout.grads, layout.grads_all
        self._train_params, self._train_grads = layout.train_params, layout.train_grads
        self._segments, self._regs = layout.segments, layout.regs
        self._dtype = dtype
        self._dbufs = {}
        self._plan = None
        self._heads = None
        self._signatures = {}
        Plan.last = None              # layers may now hold views into this buffer: every model sets up again
        if self.optimizer is not None and layout.n_train:
            self.optimizer.build_flat(self._train_params, self._segments)

    def _claim_layers(self):
        """Layers shared with another model follow the model that ran last: take back the ones bound
        to another model's buffer, copying their current values into this model's buffer."""
        for layer in self._param_layers:
            if getattr(layer, "_owner", None) is not self:
                _params.rebind(self._layout, layer)
                layer._owner = self
                self._plan = None         # the executors hold the old views: plan again
                Plan.last = None          # and the other model sets up again too

    @property
    def layers(self):
        """The layers, each once, in topological order (Input layers included)."""
        return list(self._all_layers)

    def reset_states(self):
        """Set the states of the stateful layers (``stateful=True`` recurrent layers) to zero."""
        for layer in self.layers:
            if getattr(layer, "stateful", False):
                layer.reset_states()

    reset_state = reset_states

    def get_layer(self, name=None, index=None):
        """The layer called `name` (or at position `index` of `layers`)."""
        if index is not None:
            layers = self.layers
            if isinstance(index, (bool, np.bool_)) or not isinstance(index, numbers.Integral):
                raise TypeError(f"{self.name}.get_layer: index must be an int, got {index!r}")
            if not -len(layers) <= index < len(layers):
                raise ValueError(f"{self.name}.get_layer: index {index} is out of range: the model has "
                                 f"{len(layers)} layers")
            return layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"{self.name}: no layer named {name!r}; layers: {[layer.name for layer in self.layers]}")

    @property
    def input_shape(self):
        shapes = [t.shape for t in self.inputs]
        return shapes[0] if len(shapes) == 1 else shapes

    @property
    def output_shape(self):
        shapes = [t.shape for t in self.outputs]
        return shapes[0] if len(shapes) == 1 else shapes

    # ------------------------------------------------------------------ weights
    @property
    def weights(self):
        """All weights, layer by layer (each layer's trainable-declared ones first, as Keras)."""
        return [w for layer in self.layers for w in layer.weights]

    @property
    def trainable_weights(self):
        """The weights the optimizer updates (as of the last compile; see `trainable`)."""
        return [w for layer in self.layers for w in layer.trainable_weights]

    @property
    def non_trainable_weights(self):
        """Non-trainable weights (moving statistics) and the weights of frozen layers."""
        return [w for layer in self.layers for w in layer.non_trainable_weights]

    @property
    def trainable(self):
        """False when every layer is frozen; setting it sets every layer (applied at the next
        compile, as in Keras)."""
        layers = [layer for layer in self.layers if not isinstance(layer, InputLayer)]
        return any(layer.trainable for layer in layers) if layers else True

    @trainable.setter
    def trainable(self, value):
        for layer in self.layers:
            if not isinstance(layer, InputLayer):
                layer.trainable = value

    def get_weights(self):
        """Copies of all parameters, layer by layer (kernel, bias, ...)."""
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        """Set all parameters from a list shaped like `get_weights()`."""
        mine = self.weights
        weights = _weight_values(weights, len(mine), f"{self.name}.set_weights")
        for i, (w, v) in enumerate(zip(mine, weights)):
            if v.shape != w.shape:
                raise ValueError(f"{self.name}.set_weights: array {i} has shape {v.shape}, expected {w.shape}")
            _check_cast(v, w, f"{self.name}.set_weights: array {i}")
        start = 0
        for layer in self.layers:
            count = len(layer.weights)
            layer._assign_weights(weights[start:start + count])
            start += count

    def count_params(self):
        """Total number of weights, non-trainable and int8 ones included, as Keras (requires a built model)."""
        if not self.built:
            raise ValueError(f"{self.name}: the model is not built yet; call it on data or give an input shape")
        return int(self._params.size) + sum(w.size for layer in self._param_layers for w in layer._held_weights())

    def quantize(self, mode=None, config=None, filters=None):
        """Quantize the model for inference, as Keras 3's ``Model.quantize``: ``model.quantize("int8")``.

        Dense, Conv1D/2D and Embedding layers get int8 weights with a float scale per output channel
        (Embedding: per row), their inputs quantized per row at run time; the float kernels are
        dropped (the model takes about a quarter of the memory) and the biases kept. The model then
        predicts and evaluates (one int8 GEMM per layer, with the dequantization, bias and
        activation in its epilogue); `fit` refuses it. Formulas, and where nncore differs from
        Keras (7-bit inputs by default), in nncore.quantizers.

        Parameters
        ----------
        mode : {'int8'}, optional (the config's mode when a config is given)
        config : nncore.quantizers.Int8QuantizationConfig, optional
        filters : str, list of str or callable, optional
            Only the layers whose name matches the regex (one of them), or for which the callable
            returns True, are quantized. Without filters: every Dense and Embedding layer, and each
            convolution whose int8 form is predicted at least 15% faster than the float32 path it takes
            (Winograd or im2col) on the int8 kernel this CPU runs at the SIMD level in use
            (``nncore.layers.conv.conv_costs``; e.g. a 3x3 on few channels stays float everywhere, a
            3x3 Winograd conv on 32 channels to 64 is int8 with VNNI and float at AVX2). Keras 3.15
            keeps every convolution float. The choice is kept by save/load;
            ``filters=lambda layer: True`` quantizes every layer.
        """
        from nncore import quantizers

        if not self.built:
            raise ValueError(f"{self.name}.quantize: cannot quantize a model that isn't built yet; "
                             "build it (an Input, or fit/predict) first")
        self._claim_layers()
        layers = [layer for layer in self._all_layers if not isinstance(layer, InputLayer)]
        if quantizers.quantize_layers(layers, mode, config, filters, f"{self.name}.quantize"):
            # a new flat layout without the float kernels; every remaining weight keeps its value
            self._param_layers = [layer for layer in self._all_layers if layer._specs or layer._held]
            self._lay_out(self._dtype)

    @property
    def quantized(self):
        """Names of the layers in an int8 form."""
        return [layer.name for layer in self._all_layers if getattr(layer, "quantization_mode", None)]

    # ------------------------------------------------------------------ compile
    def _output_names_for_compile(self):
        return self.output_names

    def _per_output(self, value, what, default):
        """One entry per output from a single value (used for every output), a list in output order or a
        dict keyed by output name (missing names get `default`)."""
        names = self._output_names_for_compile()
        if isinstance(value, dict) and not ("class_name" in value and "class_name" not in names):
            unknown = [k for k in value if k not in names]
            if unknown:
                raise ValueError(f"{self.name}.compile: {what} names output {unknown[0]!r}, which the model does "
                                 f"not have; its outputs are {names}")
            return [value.get(nm, default) for nm in names]
        if isinstance(value, (list, tuple)):
            if len(value) != len(names):
                raise ValueError(f"{self.name}.compile: {what} has {len(value)} entries, expected {len(names)} "
                                 f"(one per output: {names})")
            return list(value)
        return [default if value is None else value] * len(names)

    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None, n_threads=None):
        """Set the optimizer, the loss(es), their weights and the metrics.

        Parameters
        ----------
        optimizer : str, dict or Optimizer, default='rmsprop'
        loss : str, Loss, nncore.losses function, or a list / dict of them (one per output)
            A single loss applies to every output. None (or a missing dict entry) leaves an output
            without loss: it then needs no targets.
        loss_weights : float, list or dict of floats, optional
            The model's loss is sum_k loss_weights[k] loss_k (default weights 1).
        metrics : list of str or Metric; for several outputs a list of such lists (or single metrics),
            one per output, or a dict keyed by output name.
        n_threads : int, optional
            Threads for the kernels (None: nncore.get_num_threads(), -1: all).
        """
        effective_n_threads(n_threads)  # validates
        self.optimizer = _optimizers.get(optimizer)
        names = self._output_names_for_compile()
        if isinstance(loss, (list, tuple)) and len(names) == 1 and len(loss) == 1:
            loss = loss[0]
        self._losses = [None if spec is None else _losses.get(spec) for spec in self._per_output(loss, "loss", None)]
        weights = self._per_output(loss_weights, "loss_weights", 1.0)
        for nm, w in zip(names, weights):
            if isinstance(w, bool) or not isinstance(w, (int, float, np.integer, np.floating)) or not math.isfinite(w):
                raise ValueError(f"{self.name}.compile: loss_weights for output {nm!r} must be a finite number, "
                                 f"got {w!r}")
        self._loss_weights = [float(w) for w in weights]
        if len(names) == 1:
            if metrics is None:
                per = [[]]
            elif isinstance(metrics, dict) and set(metrics) <= set(names):
                per = self._per_output(metrics, "metrics", [])
            elif isinstance(metrics, (str, dict)) or not isinstance(metrics, (list, tuple)):
                per = [[metrics]]
            else:
                per = [list(metrics)]
        else:
            per = self._per_output(metrics, "metrics", [])
        per = [[] if m is None else ([m] if isinstance(m, str) or not isinstance(m, (list, tuple)) else list(m))
               for m in per]
        for nm, loss_k, ids in zip(names, self._losses, per):
            if ids and loss_k is None:
                raise ValueError(f"{self.name}.compile: output {nm!r} has metrics but no loss (and so no targets)")
        self._head_metrics = [[_metrics.get(m, loss=loss_k) for m in ids] for ids, loss_k in zip(per, self._losses)]
        self.compiled_metrics = [m for ms in self._head_metrics for m in ms]
        self.loss = self._losses[0] if len(names) == 1 else list(self._losses)
        self._n_threads_req = n_threads
        if n_threads is not None and getattr(self.optimizer, "n_threads", 0) is None:
            self.optimizer.n_threads = n_threads   # the optimizer's kernel follows compile's request

        # what load_model passes back to compile: one entry per output, by name (one output: as given)
        losses = [None if loss_k is None else _losses.serialize(loss_k) for loss_k in self._losses]
        ids = [[m if isinstance(m, str) else getattr(m, "name", str(m)) for m in ms] for ms in per]
        if len(names) == 1:
            self._compile_config = {"loss": losses[0], "metrics": ids[0]}
        else:
            self._compile_config = {"loss": dict(zip(names, losses)), "metrics": dict(zip(names, ids))}
        if loss_weights is not None:
            self._compile_config["loss_weights"] = dict(zip(names, self._loss_weights))
        self._compile_config["optimizer"] = _optimizers.serialize(self.optimizer)
        self._heads = None
        if self.built:
            if self._layout.state != _params.trainable_state(self._param_layers):
                self._lay_out(self._dtype)      # a layer was frozen or unfrozen: the trained range moves
            elif self._layout.n_train:
                self.optimizer.build_flat(self._train_params, self._segments)
        self._warned_state = None

    def _require(self, what):
        if self._losses is None or all(loss is None for loss in self._losses) or (
                what == "fit" and self.optimizer is None):
            raise ValueError(f"{self.name}.{what}: compile the model with a loss first "
                             "(model.compile(optimizer=..., loss=...))")
        if what == "fit" and self.built and self.quantized:
            raise ValueError(f"{self.name}.fit: the model is quantized (int8 layers {self.quantized}) and runs "
                             "inference only (predict, evaluate); train the float model, then quantize it")
        state = _params.trainable_state(self._param_layers) if self.built else None
        if state is not None and state != self._layout.state and state != getattr(self, "_warned_state", None):
            self._warned_state = state      # warn once per change, as Keras
            changed = [layer.name for layer, a, b in zip(self._param_layers, state, self._layout.state) if a != b]
            warnings.warn(f"{self.name}: a layer's `trainable` changed since the model was compiled "
                          f"(layers {changed}); the change takes effect at the next compile(), as in Keras",
                          stacklevel=4)

    @property
    def _fused(self):
        """Whether every output with a loss takes the fused logits path (after a call to fit/evaluate)."""
        return all(h.fused for h in self._heads if h.loss is not None)

    # ------------------------------------------------------------------ data
    def _by_name(self, value, names, arg, what, required=None):
        """A list with one entry per name from one value, a list in order, or a dict keyed by name."""
        if isinstance(value, dict):
            unknown = [k for k in value if k not in names]
            if unknown:
                raise ValueError(f"{arg}: model {self.name!r} has no {what} named {unknown[0]!r}; its {what}s are "
                                 f"{names}")
            for nm, req in zip(names, required or [True] * len(names)):
                if req and nm not in value:
                    raise ValueError(f"{arg}: missing data for {what} {nm!r} (a dict with keys {sorted(value)} was "
                                     f"given; expected {names})")
            return [value.get(nm) for nm in names]
        if len(names) == 1:
            if isinstance(value, (list, tuple)) and len(value) == 1 and isinstance(value[0], np.ndarray):
                return [value[0]]
            return [value]
        if isinstance(value, (list, tuple)) and len(value) == len(names) and not all(
                np.isscalar(v) for v in value):
            return list(value)
        raise ValueError(f"{arg}: model {self.name!r} has {len(names)} {what}s {names}: expected a list of "
                         f"{len(names)} arrays or a dict keyed by {what} name, got {_describe(value)}")

    def _input_owner(self, k):
        return f"input {self.input_names[k]!r}"

    def _prepare_inputs(self, x, arg="x", check_finite=True):
        """The input arrays, in input order, checked and converted to the model's dtype (C-contiguous);
        with check_finite=False the caller checks them for NaN/inf itself (`_check_finite`)."""
        if x is None:
            raise ValueError(f"{arg}: expected an array of inputs, got None")
        xs = self._by_name(x, self.input_names, arg, "input")
        out, n = [], None
        for k, (xk, t) in enumerate(zip(xs, self.inputs)):
            where = arg if len(xs) == 1 else f"{arg}[{self.input_names[k]!r}]"
            xk = self._check_input_array(xk, where, t.shape)
            if xk.shape[1:] != tuple(t.shape[1:]):
                raise ValueError(f"{where}: {self._input_owner(k)} of model {self.name!r} expects input of shape "
                                 f"(n_samples, {', '.join(map(str, t.shape[1:]))}), got {xk.shape}")
            if n is not None and len(xk) != n:
                raise ValueError(f"{where}: {len(xk)} samples, but the first input has {n}")
            n = len(xk)
            if _data.is_memmap(xk):   # larger than memory: converted and checked batch by batch (data.MemmapBatches)
                out.append(xk)
                continue
            out.append(np.ascontiguousarray(xk, dtype=self._dtype))
        if check_finite:
            self._check_finite(out, arg)
        return out

    def _check_finite(self, xs, arg="x", n_threads=None):
        nt = effective_n_threads(self._n_threads_req) if n_threads is None else n_threads
        for k, xk in enumerate(xs):
            if _data.is_memmap(xk):   # checked batch by batch as it is read
                continue
            if not all_finite(xk, nt):
                where = arg if len(xs) == 1 else f"{arg}[{self.input_names[k]!r}]"
                raise ValueError(f"{where}: inputs contain NaN or infinity")

    def _plain_inputs(self, x):
        """x as a tuple of ndarrays in input order when it is plain arrays (one array, a list or tuple of
        them, a dict by input name; not memmaps), else None."""
        t = type(x)
        if t is np.ndarray:
            return (x,)
        if t is list or t is tuple:
            xs = tuple(x)
        elif t is dict:
            xs = tuple(x.get(nm) for nm in self.input_names)
        else:
            return None
        if len(x) != self._n_in or not all(type(a) is np.ndarray for a in xs):
            return None
        return xs

    def _inputs(self, x, arg="x", check_finite=True):
        """`_prepare_inputs` with its checks made once per input signature (shapes, dtypes, memory
        layouts), which are all they depend on: a signature seen before only gets its conversion (into
        a buffer kept with it when small, so a call allocates nothing) and, unless check_finite is
        False, the NaN/inf check, the one check that depends on the values."""
        if type(x) is np.ndarray:     # the common case, without the lists (stored for one-input models only)
            conv = self._signatures.get((x.shape, x.dtype, x.flags.c_contiguous))
            if conv is not None:
                out = [x if conv[0] is None else _convert(x, *conv[0])]
                if check_finite and not all_finite(out[0], self._nt):
                    self._check_finite(out, arg)          # raises
                return out
        xs = self._plain_inputs(x)
        if xs is None:
            return self._prepare_inputs(x, arg, check_finite)
        sigs = [(a.shape, a.dtype, a.flags.c_contiguous) for a in xs]
        key = sigs[0] if len(sigs) == 1 else tuple(sigs)
        conv = self._signatures.get(key)
        if conv is None:
            out = self._prepare_inputs(x, arg, check_finite)
            if len(self._signatures) >= MAX_CACHED_SHAPES:
                self._signatures.clear()
            self._signatures[key] = tuple(None if o is a else (o.shape, o.dtype) if np.may_share_memory(o, a)
                                          else (o.shape, np.empty_like(o) if o.nbytes <= _CONVERT_KEPT else o.dtype)
                                          for o, a in zip(out, xs))
            return out
        out = [a if c is None else _convert(a, *c) for a, c in zip(xs, conv)]
        if check_finite:
            self._check_finite(out, arg, self._nt)
        return out

    @staticmethod
    def _check_input_array(x, arg, shape):
        if x is None:
            raise ValueError(f"{arg}: expected an array of inputs, got None")
        x = _array(x, arg)
        if x.dtype.kind not in "biuf":
            raise TypeError(f"{arg}: expected numeric inputs, got dtype {x.dtype}")
        if x.ndim == 0:
            raise ValueError(f"{arg}: expected an array of shape (n_samples, ...), got a scalar")
        if x.shape[0] == 0:
            raise ValueError(f"{arg}: empty input (0 samples), shape {x.shape}")
        if x.ndim == 1 and shape is not None and tuple(shape[1:]) == (1,):
            x = x.reshape(-1, 1)
        return x

    def _prepare_targets(self, y, n, arg="y"):
        """Per output: (targets prepared for its loss, targets as given for its metrics or None)."""
        if y is None:
            raise ValueError(f"{arg}: expected targets, got None")
        ys = self._by_name(y, self.output_names, arg, "output", [loss is not None for loss in self._losses])
        out = []
        for k, (yk, loss, t) in enumerate(zip(ys, self._losses, self.outputs)):
            where = arg if len(ys) == 1 else f"{arg}[{self.output_names[k]!r}]"
            if loss is None:
                out.append((None, None))
                continue
            if yk is None:
                raise ValueError(f"{where}: expected targets, got None")
            y_raw = _array(yk, where)
            if y_raw.ndim == 0 or len(y_raw) != n:
                raise ValueError(f"{where}: expected {n} targets to match the {n} input samples, got shape "
                                 f"{y_raw.shape}")
            yp = loss._prepare(y_raw, (n,) + tuple(t.shape[1:]), self._dtype, where)
            # metrics see the targets as given (no smoothing / relabelling)
            y_metric = None
            if not loss.sparse and self._head_metrics[k] and not np.array_equal(yp, y_raw.reshape(yp.shape)):
                y_metric = np.ascontiguousarray(y_raw.reshape(yp.shape), dtype=self._dtype)
            out.append((yp, y_metric))
        return out

    def _prepare_weights(self, sample_weight, n, arg="sample_weight"):
        """Per output: sample weights (one array for every output, or a list / dict by output name)."""
        names = self.output_names
        if sample_weight is None:
            return [None] * len(names)
        if isinstance(sample_weight, dict) or (len(names) > 1 and isinstance(sample_weight, (list, tuple))
                                               and len(sample_weight) == len(names)
                                               and not all(np.isscalar(v) for v in sample_weight)):
            ws = self._by_name(sample_weight, names, arg, "output", [False] * len(names))
            return [self._weights_array(w, n, arg if len(names) == 1 else f"{arg}[{nm!r}]")
                    for w, nm in zip(ws, names)]
        return [self._weights_array(sample_weight, n, arg)] * len(names)

    def _weights_array(self, sample_weight, n, arg):
        if sample_weight is None:
            return None
        w = _array(sample_weight, arg)
        if w.dtype.kind not in "biuf":
            raise TypeError(f"{arg}: expected numeric weights, got dtype {w.dtype}")
        if w.ndim == 2 and w.shape[1] == 1:
            w = w.reshape(-1)
        if w.shape != (n,):
            raise ValueError(f"{arg}: expected shape ({n},) (one weight per sample), got {w.shape}")
        w = np.ascontiguousarray(w, dtype=self._dtype)
        if not np.all(np.isfinite(w)):
            raise ValueError(f"{arg}: weights contain NaN or infinity")
        return w

    def _prepare_data(self, x, y, sample_weight, prefix="", suffix=""):
        """The flat batch layout [x_1..x_I, y_1..y_O, sw_1..sw_O, ym_1..ym_O] and the raw targets (errors name
        the arguments as prefix + "x" + suffix, ...)."""
        xs = self._prepare_inputs(x, prefix + "x" + suffix)
        n = len(xs[0])
        targets = self._prepare_targets(y, n, prefix + "y" + suffix)
        ws = self._prepare_weights(sample_weight, n, prefix + "sample_weight" + suffix)
        return xs + [t[0] for t in targets] + ws + [t[1] for t in targets]

    @staticmethod
    def _class_weights(class_weight, y_raw, n_classes):
        """Keras: per-sample weight = class_weight[class of the sample] (argmax of one-hot rows, else the
        rounded label); classes missing from the dict weigh 1. Unlike Keras, a key that is not a class
        of the output (n_classes of them: its width, 2 for one unit) is an error, not ignored: weights
        keyed by labels of another encoding (1..k for 0..k-1) would silently weigh the wrong classes."""
        if not isinstance(class_weight, dict):
            raise TypeError(f"class_weight: expected a dict {{class: weight}}, got {type(class_weight).__name__}")
        table = {}
        for k, v in class_weight.items():
            if isinstance(k, (bool, np.bool_)) or not isinstance(k, numbers.Real) or not np.isfinite(k) or k != int(k):
                raise TypeError(f"class_weight: keys must be integer class indices, got {k!r}")
            if not 0 <= int(k) < n_classes:
                raise ValueError(f"class_weight: key {int(k)} is not a class of the model's output, which has "
                                 f"{n_classes} classes (0 to {n_classes - 1})")
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
                raise TypeError(f"class_weight[{int(k)}]: expected a number, got {v!r}")
            if not np.isfinite(v):
                raise ValueError(f"class_weight[{int(k)}]: expected a finite number, got {v}")
            table[int(k)] = float(v)
        y = np.asarray(y_raw)
        if y.ndim > 1 and y.shape[-1] > 1:
            labels = np.argmax(y, axis=-1)
        else:
            labels = np.round(y.reshape(len(y), -1)[:, 0]).astype(np.int64)
        return np.array([table.get(int(c), 1.0) for c in labels])

    def _raw_targets(self, y):
        """The targets of the first output as given (class_weight reads them)."""
        return np.asarray(self._by_name(y, self.output_names, "y", "output", [False] * len(self.outputs))[0])

    def _apply_class_weight(self, arrays, class_weight, y_raw):
        if len(self.outputs) != 1:
            raise ValueError(f"{self.name}: class_weight is only supported for models with one output "
                             "(give per-output sample_weight instead)")
        width = self.outputs[0].shape[-1]
        n_classes = 2 if width in (None, 1) else int(width)
        arrays[self._n_in + 1] = np.ascontiguousarray(self._class_weights(class_weight, y_raw, n_classes),
                                                      dtype=self._dtype)

    def _prepare_batch(self, batch, index, class_weight=None):
        """One batch of a sequence or generator, checked and converted to the batch layout of `_prepare_data`."""
        x, y, w = _data.unpack_batch(batch, index)
        if y is None:
            raise ValueError(f"batch {index}: expected (x, y) or (x, y, sample_weight), got inputs without targets")
        if class_weight is not None and w is not None:
            raise ValueError(f"batch {index}: give class_weight or sample_weight, not both (Keras rule)")
        arrays = self._prepare_data(x, y, w, suffix=f" of batch {index}")
        if class_weight is not None:
            self._apply_class_weight(arrays, class_weight, self._raw_targets(y))
        return arrays

    def _prepare_input_batch(self, batch, index):
        """The inputs of one batch of a sequence or generator (predict)."""
        return self._prepare_inputs(_data.unpack_batch(batch, index)[0], f"x of batch {index}")

    def _no_arrays_with_stream(self, what, y, sample_weight, validation_split=0.0):
        if y is not None or sample_weight is not None:
            raise ValueError(f"{self.name}.{what}: x is a sequence or generator of batches, which carry the "
                             "targets and sample weights; do not pass y or sample_weight")
        if validation_split:
            raise ValueError(f"{self.name}.{what}: validation_split needs arrays; give validation_data for a "
                             "sequence or generator")

    # ------------------------------------------------------------------ plan
    def _setup(self):
        """Per call to fit/evaluate/predict: threads, the layers' ownership, the plan and its loss heads."""
        nt = effective_n_threads(self._n_threads_req)
        self._nt = nt
        if any(getattr(layer, "_owner", None) is not self for layer in self._param_layers):
            self._claim_layers()
        if self._plan is None:
            self._plan = Plan(self._nodes, self.inputs, self.outputs, self._dtype, self._layout.trained)
            self._chain = DenseChain.of(self._plan)      # kept with the plan: its packed kernels are refilled
            self._heads = None
        if self._heads is None and self._losses is not None:
            self._make_heads()
        self._plan.prepare(nt)
        self._ready_key = (self._n_threads_req, _threads.get_num_threads())
        self._opt_step = self.optimizer.step_flat if self.optimizer is not None and self._train_params.size \
            else _no_step

    def _set_up(self):
        """`_setup` for inference calls, skipped while the last one holds (`_ready`)."""
        if not self._ready():
            self._setup()

    def _ready(self):
        """Whether the last `_setup` holds: this model's plan is the one prepared last in the process (no
        other model ran since, none laid its weights out, no layer changed hands) and the thread settings
        are those it resolved."""
        plan = self._plan
        return plan is not None and Plan.last is plan and self._ready_key == (self._n_threads_req, _threads._n_threads)

    def _dense_chain(self):
        """The plan's DenseChain when the model is one chain of Dense layers, else None (the model set
        up first; the call paths read `_chain` after their own `_set_up`)."""
        self._set_up()
        return self._chain

    def _make_heads(self):
        """The loss side of the plan: per output its loss function (fused with the output layer's
        sigmoid/softmax when it can be), then the backward chains."""
        plan, index = self._plan, {id(node): j for j, node in enumerate(self._nodes)}
        n_in, n_out = self._n_in, len(self.outputs)
        heads = []
        for k, t in enumerate(self.outputs):
            h = _Head()
            h.k, h.name, h.slot = k, self.output_names[k], plan.out_slots[k]
            h.loss, h.weight, h.metrics = self._losses[k], self._loss_weights[k], self._head_metrics[k]
            h.iy, h.iw, h.im = n_in + k, n_in + n_out + k, n_in + 2 * n_out + k
            j = index.get(id(t.node))
            impl = plan.executors[j] if j is not None else None
            h.fused = (h.loss is not None and h.loss.fused_activation is not None and impl is not None
                       and not t.node.many and getattr(impl, "_act_name", None) == h.loss.fused_activation
                       and hasattr(impl, "forward_logits") and not plan.consumers[h.slot])
            act = getattr(impl, "_act_name", None) if impl is not None and not t.node.many else None
            if getattr(h.loss, "from_logits", False) and act in ("softmax", "sigmoid"):
                # probabilities taken for logits: a second softmax/sigmoid inside the loss, silently
                warnings.warn(f"{self.name}: the loss of output {h.name!r} has from_logits=True, but the output "
                              f"comes from a {act} activation, so it holds probabilities, not logits; remove the "
                              "activation or pass from_logits=False (Keras warns the same)",
                              stacklevel=_user_stacklevel())
            h.fn = None if h.loss is None else (h.loss._logits_grad if h.fused else h.loss._grad)
            h.mask = (lambda s=h.slot: plan.masks[s]) if plan.masked else None
            if h.fn is not None and len(t.shape) > 2:
                h.fn = _losses._PerStep(h.fn, h.mask)      # one loss per time step, masked steps left out
            heads.append(h)
        self._heads = heads
        self._grads_all[...] = 0.0
        plan.set_heads([(h.loss is not None, h.fused) for h in heads], self._layout)
        self._batch_sums = [0.0] * n_out
        self._head_steps = [self._head_step(h) for h in heads if h.loss is not None]
        self._multi = n_out > 1
        self._log_order = sorted(((f"{h.name}_{m.name}", m) for h in heads for m in h.metrics),
                                 key=lambda item: item[0]) if self._multi \
            else [(m.name, m) for m in self.compiled_metrics]
        self._dbufs = {}

    # ------------------------------------------------------------------ steps
    def _head_step(self, h):
        """The loss of output h as one call (batch, n, ds) -> weight sum_i w_i l_i: the loss kernel on the
        output (after the fused layer, on its logits z and probabilities), then its metrics. Training
        (`ds`, the per-output gradient buffers of this batch size): the kernel writes weight d loss / d
        output into ds[k], which becomes that output's gradient (its first contribution place)."""
        v, slot, k, fused, fn, weight = self._plan.values, h.slot, h.k, h.fused, h.fn, h.weight
        iy, iw, im, metrics, place, sums, model = h.iy, h.iw, h.im, h.metrics, self._plan.contrib[h.slot], \
            self._batch_sums, self
        mask_of = h.mask

        def step(batch, n, ds):
            out, y = v[slot], batch[iy]
            if ds is None:
                d = None
            else:
                d = place[0] = ds[k]
            if fused:
                z, out = out
                s = fn(z, y, batch[iw], out, d, weight / n, model._nt)
            else:
                s = fn(out, y, batch[iw], d, weight / n, model._nt)
            sums[k] = s
            if metrics:
                ym = batch[im]
                mask = None if mask_of is None else mask_of()
                for m in metrics:        # the mean metrics leave masked steps out (the mask is their weight)
                    if mask is not None and getattr(m, "_takes_mask", False) and mask.shape == out.shape[:-1]:
                        m.update_state(y if ym is None else ym, out, sample_weight=mask)
                    else:
                        m.update_state(y if ym is None else ym, out)
            return weight * s
        return step

    def _loss_buffers(self, n):
        if len(self._dbufs) >= MAX_CACHED_SHAPES:
            self._dbufs.clear()
        d = self._dbufs[n] = [np.empty((n,) + tuple(t.shape[1:]), self._dtype) for t in self.outputs]
        return d

    def _penalty(self):
        return sum(reg(wv) for wv, _, reg in self._regs) if self._regs else 0.0

    def _train_step(self, batch, n):
        """One step on a batch (x_1..x_I, y_1..y_O, sw_1..sw_O, ym_1..ym_O) of n samples; returns the batch
        loss sum_k weight_k sum(w l_k)/N + penalties.

        In an MPI job (nncore.distributed) the batch is this process's share of a global batch of n
        rows: the loss gradient is scaled by 1/n, so the ranks' gradients sum to the whole batch's, and
        the gradient and loss sums are summed over the ranks before the update.
        """
        m = batch[0].shape[0]
        sync = self._sync
        if sync is not None and not m:   # an empty share of a short last global batch
            return sync.skip(self._batch_sums) / n + self._update()
        ds = self._dbufs.get(m)
        if ds is None:
            ds = self._loss_buffers(m)
        plan = self._plan
        plan.train(batch, True)          # forward: each layer writes into buffers allocated once per batch size
        s = 0.0
        for head in self._head_steps:    # per output: the loss kernel writes d loss / d output
            s += head(batch, n, ds)
        plan.backward(m)                 # each layer writes its dW, db into the flat gradient buffer
        if sync is not None:             # the ranks' gradients and loss sums, summed
            s = sync.reduce(s, self._batch_sums)
        return s / n + self._update()

    def _update(self):
        """Regularizer gradients (once, after any sum over ranks), then the optimizer step; returns the penalty."""
        pen = 0.0
        for wv, gv, reg in self._regs:
            pen += reg(wv)
            reg.add_gradient(wv, gv)
        if self.optimizer is not None:
            self.optimizer._finite = None                       # set by step_flat's kernel
        self._opt_step(self._train_params, self._train_grads)   # one kernel call over the trained range
        return pen

    def _params_finite(self):
        """After a step: whether every parameter is finite. The trained range as the optimizer's kernel
        wrote it (step_flat reads each chunk back while it is in cache), the rest (frozen, non-trainable
        weights) in one pass; without that word from the kernel, all of them in one pass."""
        n = self._train_params.size
        if n and self.optimizer is not None and self.optimizer._finite is not None:
            return self.optimizer._finite and (n == self._params.size or all_finite(self._params[n:], 1))
        return all_finite(self._params, 1)

    def _test_step(self, batch):
        """Forward and losses of a batch without training; returns sum_k weight_k sum(w l_k)."""
        plan = self._plan
        plan.train(batch, False)
        s, n = 0.0, batch[0].shape[0]
        for head in self._head_steps:
            s += head(batch, n, None)
        return s

    def _logs(self, loss, head_sums=None, n=1):
        """{"loss", then for several outputs "<output>_loss" (head_sums / n), then the metrics}: Keras's order
        (its evaluate list puts the metrics of several outputs in key order)."""
        logs = {"loss": loss}
        if self._multi:
            for h, value in zip(self._heads, head_sums):
                if h.loss is not None:
                    logs[f"{h.name}_loss"] = value / n
        for key, m in self._log_order:
            logs[key] = float(m.result())
        return logs

    # ------------------------------------------------------------------ fit
    @_exclusive
    @_dist.collective
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None, sample_weight=None,
            initial_epoch=0, steps_per_epoch=None, validation_steps=None):
        """Train for `epochs` epochs; returns the History callback.

        Keras 3 semantics: validation_split takes the last samples (the
        training set is the first floor(n (1 - split))) before shuffling;
        the training samples are reshuffled every epoch (shuffle=True); the
        last partial batch is kept; ``class_weight`` becomes per-sample
        weights of the training data (it cannot be combined with
        ``sample_weight``; one output only); History ``loss`` is the
        batch-size-weighted running mean of the batch losses including
        regularization (per output ``<name>_loss`` without it), and ``val_*``
        come from a pass over the validation data after each epoch.
        x, y and sample_weight take lists or dicts for several inputs/outputs.
        verbose: 0 silent, 1 progress bar, 2 one line per epoch ('auto' = 1).
        A KeyboardInterrupt propagates after the current step; the model
        stays usable (its parameters are those after the last complete step).

        x may also be a memmap (read batch by batch), a sequence of batches
        (``__len__`` and ``__getitem__(i) -> (x, y[, sample_weight])``, Keras's
        PyDataset protocol, reshuffled by batch each epoch) or a generator /
        iterable of batches, with ``steps_per_epoch`` batches per epoch (without
        it an epoch is a full pass); y and sample_weight are then not given.
        validation_data may be any of these (``validation_steps`` batches).
        See nncore.data. In an MPI job (nncore.distributed) every rank calls
        fit with the same data; batch_size is per rank, the global batch is
        size() * batch_size rows, and the result is that of one process with
        the global batch.
        """
        self._require("fit")
        batch_size = 32 if batch_size is None else _int_arg(batch_size, "batch_size", 1)
        epochs = _int_arg(epochs, "epochs", 0)
        initial_epoch = _int_arg(initial_epoch, "initial_epoch", 0)
        verbose = _verbose(verbose)
        if class_weight is not None and sample_weight is not None:
            raise ValueError("fit: give class_weight or sample_weight, not both (Keras rule)")
        if steps_per_epoch is not None:
            steps_per_epoch = _int_arg(steps_per_epoch, "steps_per_epoch", 1)
        rng, shard, val, n = _random.get_rng(), _dist.shard(), None, None
        if _data.is_stream(x):
            self._no_arrays_with_stream("fit", y, sample_weight, validation_split)
            batches = Stream(x, lambda b, i: self._prepare_batch(b, i, class_weight), steps_per_epoch,
                             shuffle=shuffle, rng=rng, shard=shard)
            if not self.built:
                batches.first()                  # builds the model from the first batch
        else:
            arrays = self._prepare_data(x, y, sample_weight)
            y_raw = self._raw_targets(y) if class_weight is not None else None
            if validation_data is None and validation_split:
                arrays, val = split_validation(arrays + [y_raw], validation_split)
                y_raw = arrays.pop()
                val = self._eval_batches(val[:-1], batch_size)
            if class_weight is not None:
                self._apply_class_weight(arrays, class_weight, y_raw)
            n = len(arrays[0])
            batches = self._batches(arrays, batch_size, shuffle, rng, shard)
        if validation_data is not None:
            val = self._prepare_validation(validation_data, batch_size, validation_steps)

        self._setup()
        steps = batches.steps
        cbs = _callbacks.CallbackList(callbacks, add_history=True, add_progbar=verbose != 0, model=self,
                                                verbose=verbose, epochs=epochs, steps=steps)
        self.stop_training = False
        nonfinite_handled = any(getattr(cb, "handles_nonfinite", False) for cb in cbs.callbacks)
        step = self._train_step
        batch_logs = getattr(cbs, "has_train_batch_hooks", True)   # per-batch logs only when someone listens
        by_hook = getattr(cbs, "_by_hook", None)
        batch_begin = cbs.on_train_batch_begin if by_hook is None or "on_train_batch_begin" in by_hook \
            else None
        sync = self._sync = _dist.fit_sync(self, batch_logs)   # None for one process
        if sync is not None:
            sync.agree(model=_dist.model_signature(self), compile=self._compile_config, batch_size=batch_size,
                       epochs=[initial_epoch, epochs], shuffle=bool(shuffle), samples=n, steps=steps,
                       validation=None if val is None else getattr(val, "total", val.steps))
            sync.broadcast()
            sync.attach(self._plan)      # each layer's gradient allreduce starts right after its backward
            batch_logs = batch_logs or sync.per_step_metrics
        multi, sums = self._multi, self._batch_sums
        logs, training_logs = {}, None
        try:
            with _DeferredInterrupt() as ctrl_c:
                cbs.on_train_begin()
                for epoch in range(initial_epoch, epochs):
                    for m in self.compiled_metrics:
                        m.reset_state()
                    if sync is not None:
                        sync.epoch_begin(rng)
                    cbs.on_epoch_begin(epoch)
                    total, seen, head_totals = 0.0, 0, [0.0] * len(sums)
                    for i, batch in enumerate(batches):        # batch = (x..., y..., sw..., y_metric...)
                        if batch_begin is not None:
                            batch_begin(i)
                        nb = batches.rows                      # the rows of the (global) batch
                        batch_loss = step(batch, nb)
                        # end of batch: the loss and the updated parameters must be finite (the
                        # optimizer's kernel checks what it writes; `_params_finite`)
                        if not (math.isfinite(batch_loss) and self._params_finite()):
                            batch_loss = self._nonfinite(batch_loss, epoch, i, steps, nonfinite_handled)
                        total += batch_loss * nb
                        seen += nb
                        if multi:
                            for k, s in enumerate(sums):
                                head_totals[k] += s
                        if batch_logs:
                            if sync is not None:
                                sync.batch_metrics()
                            logs = self._logs(total / seen, head_totals, seen)
                            cbs.on_train_batch_end(i, logs)
                        if ctrl_c.pending:    # Ctrl-C takes effect here, between complete steps
                            ctrl_c.check()
                        if sync is not None and sync.per_step_metrics:
                            self.stop_training = _dist.any_rank(self.stop_training)
                        if self.stop_training:
                            break
                    if not seen and getattr(batches, "exhausted", False):
                        break                 # a generator with no batch left: training ends
                    if sync is not None:
                        sync.epoch_end()
                    epoch_logs = self._logs(total / seen, head_totals, seen) if seen else dict(logs)
                    if val is not None:
                        val_logs = self._evaluate_batches(val, cbs)
                        epoch_logs.update({"val_" + k: v for k, v in val_logs.items()})
                    cbs.on_epoch_end(epoch, epoch_logs)
                    training_logs = epoch_logs
                    self.stop_training = _dist.any_rank(self.stop_training or getattr(batches, "exhausted", False))
                    if self.stop_training:
                        break
                cbs.on_train_end(training_logs)
        finally:
            batches.release()     # the model keeps no reference to the training data
            if val is not None:
                val.release()
            if sync is not None:
                sync.detach()
            self._sync = None
        return self.history

    def _batches(self, arrays, batch_size, shuffle, rng, shard):
        """The training batches of prepared arrays: a memmap's rows are read batch by batch
        (data.MemmapBatches); otherwise the Batches (buffers and schedule) of the last fit are reused
        for arrays of the same layout."""
        if any(_data.is_memmap(a) for a in arrays[:self._n_in]):
            return _data.MemmapBatches(arrays, batch_size, self._dtype, self._n_in, shuffle=shuffle, rng=rng,
                                       shard=shard)
        batches = self._train_batches
        if batches is None or not batches.rebind(arrays, batch_size, shuffle, rng, shard):
            batches = self._train_batches = Batches(arrays, batch_size, shuffle=shuffle, rng=rng, shard=shard)
        return batches

    def _nonfinite(self, loss, epoch, batch, steps, handled):
        """A batch gave a NaN/inf loss or parameters. With a callback that handles it
        (TerminateOnNaN) the batch's loss is reported as non-finite for it to act on;
        otherwise fit stops with FloatingPointError naming the epoch and batch."""
        what = (f"loss {loss}" if not math.isfinite(loss)
                else "parameters (a NaN/inf gradient reached the update)")
        if handled:
            return loss if not math.isfinite(loss) else float("nan")
        raise FloatingPointError(
            f"{self.name}.fit: non-finite {what} at epoch {epoch + 1}, batch {batch + 1} of {steps}. "
            "The weights and optimizer state are those after this step; restore a checkpoint, "
            "lower the learning rate or clip gradients, or pass callbacks=[TerminateOnNaN()] to "
            "stop with the last finite weights instead")

    def _prepare_validation(self, data, batch_size, steps=None):
        """validation_data as batches: a tuple of arrays, or a sequence / generator of batches."""
        if _data.is_stream(data):
            return Stream(data, self._prepare_batch, steps, shard=_dist.shard(), training=False)
        if not isinstance(data, (tuple, list)) or len(data) not in (2, 3):
            raise ValueError("validation_data: expected a tuple (x_val, y_val) or (x_val, y_val, sample_weight_val)")
        arrays = self._prepare_data(data[0], data[1], data[2] if len(data) == 3 else None, "validation_data ")
        return self._eval_batches(arrays, batch_size)

    def _eval_batches(self, arrays, batch_size):
        """Batches of prepared arrays for evaluate / predict (in an MPI job, of this rank's contiguous share)."""
        n = len(arrays[0])
        lo, hi = _dist.share(n)
        if (lo, hi) != (0, n):
            arrays = [None if a is None else a[lo:hi] for a in arrays]
        batches = _data.batches(arrays, batch_size, self._dtype, self._n_in)
        batches.total = n            # the rows of all the shares
        return batches

    # ------------------------------------------------------------------ evaluate / predict
    def _evaluate_batches(self, batches, cbs=None):
        self._setup()
        if cbs is not None:
            cbs.on_test_begin()
        for m in self.compiled_metrics:
            m.reset_state()
        pen = self._penalty()             # every batch loss carries the same penalty
        total, seen, head_totals = 0.0, 0, [0.0] * len(self.outputs)
        for i, batch in enumerate(batches):
            nb = batch[0].shape[0]
            if not nb:                    # an empty share of a global step (nncore.distributed)
                continue
            if cbs is not None:
                cbs.on_test_batch_begin(i)
            total += self._test_step(batch)
            seen += nb
            for k, s in enumerate(self._batch_sums):
                head_totals[k] += s
            if cbs is not None:
                cbs.on_test_batch_end(i, self._logs(total / seen + pen, head_totals, seen))
        total, seen, *head_totals = _dist.reduce_pass(self.compiled_metrics, total, seen, *head_totals)
        if not seen:
            raise ValueError(f"{self.name}: the data to evaluate (x of evaluate, or validation_data) yielded no "
                             "batch; a generator is used up after one pass: give a sequence or an iterable that "
                             "restarts, or validation_steps")
        total += pen * seen
        logs = self._logs(total / seen, head_totals, seen)
        if cbs is not None:
            cbs.on_test_end(logs)
        return logs

    def _flat_logs(self, logs):
        """evaluate's list: the loss alone when nothing else is logged, else every value in log order."""
        return logs["loss"] if len(logs) == 1 else list(logs.values())

    @_exclusive
    @_dist.collective
    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None, return_dict=False,
                 callbacks=None, steps=None):
        """Loss (and metrics) on the given data, in batches, without training.

        Returns the loss alone when nothing else is logged, else [loss, per-output losses..., metrics...]
        (a dict {name: value} with return_dict=True). The loss is sum_k weight_k sum_i w_i l_ik / N
        plus the regularization penalties. x may be an array, a memmap, a sequence or an iterable of
        batches (``steps`` of them at most); in an MPI job each rank evaluates its share and every rank
        gets the result over all the data.
        """
        self._require("evaluate")
        batch_size = 32 if batch_size is None else _int_arg(batch_size, "batch_size", 1)
        verbose = _verbose(verbose)
        if _data.is_stream(x):
            self._no_arrays_with_stream("evaluate", y, sample_weight)
            batches = self._prepare_validation(x, batch_size, steps)
            if not self.built:
                batches.first()
        else:
            batches = self._eval_batches(self._prepare_data(x, y, sample_weight), batch_size)
        cbs = _callbacks.CallbackList(callbacks, add_history=False, add_progbar=verbose != 0,
                                                model=self, verbose=verbose, epochs=1, steps=batches.steps)
        try:
            logs = self._evaluate_batches(batches, cbs)
        finally:
            batches.release()
        return logs if return_dict else self._flat_logs(logs)

    def _structured(self, values):
        """Outputs in the structure the model was given them: one array, a list, or a dict."""
        if self._output_kind == "dict":
            return dict(zip(self.output_names, values))
        return values[0] if self._output_kind == "one" else list(values)

    def predict(self, x, batch_size=None, verbose="auto", callbacks=None, steps=None):
        """Outputs for the inputs x, in batches, forward only (training=False): one array, or a list /
        dict of arrays for several outputs.

        x may be an array, a memmap, a sequence or an iterable of batches (their inputs are used;
        ``steps`` batches at most). In an MPI job each rank predicts its share and every rank gets all
        the outputs. Inputs that fit one batch, with verbose=0 and no callbacks, take `model(x)`'s
        path (its checks once per input signature) without the batch loop.
        """
        self._lock.acquire()              # as `_exclusive`, one call less per sample served
        try:
            return self._predict(x, batch_size, verbose, callbacks, steps)
        finally:
            self._lock.release()

    @_dist.collective
    def _predict(self, x, batch_size, verbose, callbacks, steps):
        batch_size = 32 if batch_size is None else _int_arg(batch_size, "batch_size", 1)
        verbose = _verbose(verbose)
        chain = None
        if _data.is_stream(x):
            batches = Stream(x, self._prepare_input_batch, steps, shard=_dist.shard(), training=False)
            if not self.built:
                batches.first()
            results, parts = None, []
            self._setup()
        else:
            xs = self._inputs(x, check_finite=False)
            self._set_up()
            n = len(xs[0])
            # a chain of Dense layers runs each batch as one kernel call (DenseChain), which checks each block
            # of x for NaN/inf as it reads it; other models are checked here first
            chain = self._chain if n >= DenseChain.MIN_ROWS else None
            if n <= batch_size and not verbose and not callbacks and _dist.size() == 1 and not any(
                    _data.is_memmap(a) for a in xs):      # (memmaps are read batch by batch)
                return self._predict_one_batch(xs, chain)
            if chain is None:
                self._check_finite(xs, n_threads=self._nt)
            else:
                chain.prepare()
            batches = self._eval_batches(xs, batch_size)
            results = [np.empty((batches.n,) + tuple(t.shape[1:]), self._dtype) for t in self.outputs]
        cbs = None
        if verbose or callbacks:
            cbs = _callbacks.CallbackList(callbacks, add_history=False, add_progbar=verbose != 0,
                                                    model=self, verbose=verbose, epochs=1, steps=batches.steps)
            cbs.on_predict_begin()
        plan = self._plan
        start = 0
        try:
            for i, batch in enumerate(batches):
                m = batch[0].shape[0]
                if not m:                 # an empty share of a global step (nncore.distributed)
                    continue
                if cbs is not None:
                    cbs.on_predict_batch_begin(i)
                if results is None:       # a stream: this batch's outputs, kept by its index
                    plan.infer(batch, False)
                    outs = [plan.values[s].copy() for s in plan.out_slots]
                    parts.append((batches.index, outs))
                else:
                    outs = [r[start:start + m] for r in results]
                    if chain is not None:     # written in place, one kernel call
                        chain(batch[0], outs[0], check_finite=True, n_threads=self._nt)
                    else:
                        plan.infer(batch, False)
                        for r, s in zip(outs, plan.out_slots):
                            r[...] = plan.values[s]
                    start += m
                if cbs is not None:
                    cbs.on_predict_batch_end(i, {"outputs": self._structured(outs)})
        finally:
            batches.release()
        if results is None:               # the batches of all ranks, in the stream's order
            parts = [outs for _, outs in _dist.gather_items(parts)]
            if not parts:
                raise ValueError(f"{self.name}.predict: x (a sequence or generator of batches) yielded no batch")
            results = [np.concatenate([outs[k] for outs in parts]) for k in range(len(self.outputs))]
        else:
            results = [_dist.gather_rows(r, batches.total) for r in results]
        if cbs is not None:
            cbs.on_predict_end()
        return self._structured(results)

    def _predict_one_batch(self, xs, chain):
        """`predict` of inputs that fit one batch, with nothing to report: the work of its batch loop
        without the loop's machinery (the same kernels on the same rows: the same results)."""
        if chain is not None:
            chain.prepare()
            y = np.empty((len(xs[0]),) + tuple(self.outputs[0].shape[1:]), self._dtype)
            return self._structured([chain(xs[0], y, check_finite=True, n_threads=self._nt)])
        return self._forward_copies(xs, False)

    def _forward_copies(self, xs, training):
        """The outputs for the prepared inputs xs (`_inputs` without its NaN/inf check: made here), as fresh
        arrays: the layers' buffers are reused by the next call, so the outputs are copied out of them, the
        last step of a call."""
        self._set_up()
        chain = None if training else self._chain
        if chain is not None:            # Dense layers only: their forward in one kernel call, into a new array,
            y = chain.by_layers(xs[0], None, True, self._nt)      # x checked for NaN/inf as it is read
            return y if self._output_kind == "one" else self._structured([y])
        self._check_finite(xs, "x", self._nt)
        plan = self._plan
        plan.infer(xs, training)
        return self._structured([plan.values[s].copy() for s in plan.out_slots])

    def _call(self, x, training):
        """model(x) and predict_on_batch. A Dense chain set up for this call (`_ready`) takes x itself when
        it is as the chain's kernel reads it (`DenseChain.take`: one C-contiguous array of the model's
        dtype, (n >= 1, features); nothing in Python looks at x, the kernel checks it for NaN/inf);
        otherwise, and for every other model, x gets the model's checks and conversion first (`_inputs`,
        made once per signature). Either way the same kernel call: the same bits."""
        chain = self._chain
        if chain is not None and not training and self._ready():
            y = chain.take(x, self._nt)
            if y is not None:
                return y if self._output_kind == "one" else self._structured([y])
        return self._forward_copies(self._inputs(x, check_finite=False), training)

    # __call__, predict_on_batch and predict take the lock themselves (as `_exclusive` does), by acquire and
    # release: one call and a `with` less per sample served (0.1-0.3 us)
    def __call__(self, x, training=False):
        """Forward pass on a batch (no progress bar, no batching).

        Returns new array(s), never overwritten by later calls. The checks of x are made once per input
        signature (shapes, dtypes, layouts; NaN/inf every call), and in steady state a call allocates
        nothing but the returned arrays.
        """
        self._lock.acquire()
        try:
            return self._call(x, training)
        finally:
            self._lock.release()

    def predict_on_batch(self, x):
        """Outputs for one batch (no batching, training=False); as `__call__`, new array(s)."""
        self._lock.acquire()
        try:
            return self._call(x, False)
        finally:
            self._lock.release()

    @_exclusive
    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, return_dict=False):
        """One training step on the given batch; returns what `evaluate` would log for it (Keras: the
        metrics are reset first, so they cover this batch only)."""
        self._require("fit")
        if class_weight is not None and sample_weight is not None:
            raise ValueError("train_on_batch: give class_weight or sample_weight, not both (Keras rule)")
        arrays = self._prepare_data(x, y, sample_weight)
        if class_weight is not None:
            self._apply_class_weight(arrays, class_weight, self._raw_targets(y))
        self._setup()
        for m in self.compiled_metrics:
            m.reset_state()
        n = len(arrays[0])
        loss = self._train_step(tuple(arrays), n)
        logs = self._logs(loss, self._batch_sums, n)
        return logs if return_dict else self._flat_logs(logs)

    @_exclusive
    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        """Loss and metrics of one batch without training (metrics reset first, as Keras)."""
        self._require("evaluate")
        arrays = self._prepare_data(x, y, sample_weight)
        self._setup()
        for m in self.compiled_metrics:
            m.reset_state()
        n = len(arrays[0])
        loss = self._test_step(tuple(arrays)) / n + self._penalty()
        logs = self._logs(loss, self._batch_sums, n)
        return logs if return_dict else self._flat_logs(logs)

    # ------------------------------------------------------------------ description
    def _table(self, print_fn, heads, rows):
        widths = [max([len(h)] + [len(r[i]) for r in rows]) + 2 for i, h in enumerate(heads)]
        line = "-" * sum(widths)
        print_fn(f'Model: "{self.name}"')
        print_fn(line)
        print_fn("".join(h.ljust(wd) for h, wd in zip(heads, widths)))
        print_fn("=" * sum(widths))
        for r in rows:
            print_fn("".join(c.ljust(wd) for c, wd in zip(r, widths)))
        print_fn(line)
        if not self.built:
            print_fn("Total params: ?")
            return
        for text in _params.count_lines(self._param_layers, self._dtype, self.optimizer):
            print_fn(text)

    def _ref(self):
        """tensor -> [layer name, node index among the model's nodes of that layer, output index]."""
        index, count = {}, {}
        for node in self._nodes:
            index[id(node)] = count.get(id(node.layer), 0)
            count[id(node.layer)] = index[id(node)] + 1
        return lambda t: [t.node.layer.name, index.get(id(t.node), 0), t.index]

    def summary(self, print_fn=None):
        """Print the layers, their output shapes, parameter counts and the tensors each is called on."""
        ref = self._ref()
        rows = []
        for layer in self.layers:
            nodes = [n for n in self._nodes if n.layer is layer]
            shape = layer.output_shape
            inbound = ", ".join(f"{r[0]}[{r[1]}][{r[2]}]" for n in nodes for r in map(ref, n.inputs)) or "-"
            rows.append((f"{layer.name} ({type(layer).__name__})", str(shape), str(layer.count_params()), inbound))
        self._table(print_fn or print, ("Layer (type)", "Output Shape", "Param #", "Connected to"), rows)

    def get_config(self):
        """The graph as JSON: each layer with its config and inbound nodes (``{"args": [inputs],
        "kwargs": {}}``, inputs as [layer_name, node_index, tensor_index] references or lists of them),
        and the model's input and output references (one, a list or a dict, as given)."""
        ref = self._ref()
        layers = []
        for layer in self.layers:
            nodes = [node_config(n, ref) for n in self._nodes if n.layer is layer]
            layers.append({"class_name": type(layer).__name__, "config": layer.get_config(), "name": layer.name,
                           "inbound_nodes": nodes})

        def refs(kind, names, tensors):
            if kind == "dict":
                return {k: ref(t) for k, t in zip(names, tensors)}
            return ref(tensors[0]) if kind == "one" else [ref(t) for t in tensors]

        return {"name": self.name, "layers": layers,
                "input_layers": refs(self._input_kind, self.input_names, self.inputs),
                "output_layers": refs(self._output_kind, self.output_names, self.outputs)}

    @classmethod
    def from_config(cls, config):
        """A new (uncompiled) model from `get_config()` output (Keras 3's tensor references are read too)."""
        if not isinstance(config, dict):
            raise ValueError(f"{cls.__name__}.from_config: expected a dict, got {type(config).__name__}")
        inputs, outputs, _ = graph_from_config(config, get_layer_class, InputLayer)
        return cls(inputs, outputs, name=config.get("name"))

    @classmethod
    def _config_param_count(cls, config, limit=None):
        """The number of parameters the config declares, found without allocating them (saving checks
        it against the file before building; it may stop counting once past `limit`)."""
        _, _, layers = graph_from_config(config, get_layer_class, InputLayer)
        return sum(layer.count_params() for layer in layers)

    # ------------------------------------------------------------------ saving (nncore.saving)
    def _prepare_optimizer(self):
        """Give the optimizer its slots over the flat buffer (before restoring a saved state)."""
        if not self.built:
            raise ValueError(f"{self.name}: cannot restore an optimizer state into an unbuilt model")
        if self._train_params.size:
            self.optimizer.build_flat(self._train_params, self._segments)

    def save(self, filepath):
        """Save architecture, weights, compile settings and optimizer state (see nncore.saving).

        A path ending in ``.keras`` is written in Keras 3's format (`nncore.saving.save_keras`: Keras
        loads it and trains on); any other path in nncore's own format (bit-identical resume)."""
        from nncore import saving
        if os.fspath(filepath).endswith(".keras"):
            return saving.save_keras(self, filepath)
        return saving.save_model(self, filepath)

    def save_weights(self, filepath):
        from nncore import saving
        return saving.save_weights(self, filepath)

    def load_weights(self, filepath):
        from nncore import saving
        return saving.load_weights(self, filepath)

    def export(self, filepath, format="onnx", verbose=None, opset_version=None):
        """Export for inference as Keras 3 does: ``model.export(path, format="onnx")`` (nncore.onnx.export).

        `verbose` (default True, as Keras) prints where the file went; `opset_version` is the ONNX opset
        (default nncore.onnx.DEFAULT_OPSET). ONNX is the only format.
        """
        if format != "onnx":
            raise ValueError(f"{self.name}.export: format must be 'onnx' (the only export format of nncore), "
                             f"got {format!r}")
        from nncore import onnx

        onnx.export(self, filepath, opset=opset_version)
        if verbose is None or verbose:
            print(f"Saved artifact at '{filepath}'.")

    def __reduce__(self):
        """pickle and copy.deepcopy go through nncore's own model format (saving.model_to_bytes:
        architecture, weights, compile settings, optimizer state; nothing pickled inside), so a
        model travels to joblib/Dask workers and sklearn.clone copies it."""
        from nncore import saving
        return saving.model_from_bytes, (saving.model_to_bytes(self, allow_nonfinite=True),)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r} layers={len(self.layers)}>"


class Sequential(Model):
    """A linear stack of layers: the graph Input -> layer 1 -> layer 2 -> ... of a Model.

    Parameters
    ----------
    layers : list of Layer, optional
        May start with ``nncore.Input(shape)``; else the first layer's ``input_shape`` or the first
        data the model sees gives the input shape.
    name : str, optional

    Notes
    -----
    Loss reduction is Keras's `sum_over_batch_size`: sum_i w_i l_i / N per
    batch. History ``loss`` is the batch-size-weighted running mean of the
    batch losses (each including the regularization penalties).
    """
    _default_name = "sequential"

    def __init__(self, layers=None, name=None):
        self._init_state(name)
        self._layers = []
        self._input_shape = None
        self._input_layer = None
        if layers is not None and (isinstance(layers, (Layer, str, bytes, np.ndarray))
                                   or not hasattr(layers, "__iter__")):
            raise TypeError(f"{self.name}: layers must be a list of layers, got {type(layers).__name__} "
                            "(write Sequential([layer]))")
        for layer in layers if layers is not None else []:
            self.add(layer)

    @property
    def layers(self):
        """The layers (without the Input placeholder), in order."""
        return list(self._layers)

    def add(self, layer):
        """Append a layer (or set the input with an `Input`); builds at once when the input shape is known."""
        if isinstance(layer, SymbolicTensor):
            if not isinstance(layer.node.layer, InputLayer):
                raise TypeError(f"{self.name}.add: expected a Layer or an nncore.Input tensor, got the output of "
                                f"layer {layer.node.layer.name!r}")
            layer = layer.node.layer
        if isinstance(layer, InputLayer):
            if self._layers or self._input_layer is not None:
                raise ValueError(f"{self.name}: an Input must come first and only once")
            self._input_layer = layer
            self._input_shape = layer._batch_input_shape
            return
        if not isinstance(layer, Layer):
            raise TypeError(f"{self.name}.add: expected an nncore Layer, got {type(layer).__name__}")
        if any(layer.name == other.name for other in self._layers):
            raise ValueError(f"{self.name}.add: a layer named {layer.name!r} is already in the model; "
                             "layer names must be unique")
        if not self._layers and self._input_shape is None and layer._batch_input_shape is not None:
            self._input_shape = layer._batch_input_shape
        self._layers.append(layer)
        self.built = False
        self._signatures = {}     # checked against the old graph
        if self._input_shape is not None:
            self._build(self._input_shape)

    def _build(self, input_shape):
        """Call the layers in turn on an input of `input_shape` and take that graph. Layers appended to
        a built model keep their values; only new ones are initialized."""
        if not self._layers:
            raise ValueError(f"{self.name}: the model has no layers; add some first")
        shape = (None,) + tuple(input_shape[1:])
        self._input_shape = shape
        if self._input_layer is None or self._input_layer._batch_input_shape != shape:
            self._input_layer = InputLayer(batch_shape=shape, name="input_layer") if self._input_layer is None \
                else InputLayer(batch_shape=shape, name=self._input_layer.name)
        x = self._input_layer.output
        for layer in self._layers:
            x = layer(x)
            if isinstance(x, list):
                raise ValueError(f"{self.name}: layer {layer.name!r} ({type(layer).__name__}) has several outputs "
                                 "(e.g. return_state=True); a Sequential model's layers have one each: use the "
                                 "functional Model")
        self._set_graph(self._input_layer.output, x)
        self._output_shape = x.shape

    def build(self, input_shape):
        """Build for inputs of shape (batch, ...) (batch may be None)."""
        self._build(tuple(input_shape))

    @property
    def input_shape(self):
        return self._input_shape

    @property
    def output_shape(self):
        return self._output_shape if self.built else None

    def _output_names_for_compile(self):
        return self.output_names if self.built else [self._layers[-1].name if self._layers else "output"]

    def _input_owner(self, k):
        first = self._layers[0]
        return f"layer {first.name!r} ({type(first).__name__})"

    def _prepare_inputs(self, x, arg="x", check_finite=True):
        if not self.built:
            if not self._layers:
                raise ValueError(f"{self.name}: the model has no layers; add some first")
            x0 = self._check_input_array(x[0] if isinstance(x, (list, tuple)) and len(x) == 1 else x, arg, None)
            if x0.ndim < 2:
                raise ValueError(f"{arg}: expected inputs of shape (n_samples, n_features), got {x0.shape}")
            self._build(x0.shape)
        return super()._prepare_inputs(x, arg, check_finite)

    def summary(self, print_fn=None):
        """Print the layers, their output shapes and parameter counts."""
        rows = [(f"{layer.name} ({type(layer).__name__})",
                 str(layer.output_shape) if layer.built else "?",
                 str(layer.count_params()) if layer.built else "?") for layer in self._layers]
        self._table(print_fn or print, ("Layer (type)", "Output Shape", "Param #"), rows)

    def get_config(self):
        """{'name': ..., 'layers': [{'class_name': ..., 'config': {...}}, ...]} (JSON-able)."""
        layers = []
        if self._input_shape is not None:
            layers.append({"class_name": "InputLayer",
                           "config": {"batch_shape": list(self._input_shape),
                                      "name": self._input_layer.name if self._input_layer else "input_layer"}})
        for layer in self._layers:
            layers.append({"class_name": type(layer).__name__, "config": layer.get_config()})
        return {"name": self.name, "layers": layers}

    @classmethod
    def from_config(cls, config):
        """A new (uncompiled) model from `get_config()` output."""
        if not isinstance(config, dict) or "layers" not in config:
            raise ValueError("Sequential.from_config: expected a dict with a 'layers' list")
        model = cls(name=config.get("name"))
        for entry in config["layers"]:
            layer_cls = get_layer_class(entry.get("class_name"))
            model.add(layer_cls.from_config(dict(entry.get("config", {}))))
        return model

    @classmethod
    def _config_param_count(cls, config, limit=None):
        """The parameters the layers declare for the config's input shape, without allocating them (up
        to the first layer past `limit`); None for an unbuilt model (nothing is allocated before
        fit/predict)."""
        specs = config.get("layers")
        if not isinstance(specs, list):
            raise ValueError("the architecture has no 'layers' list")
        shape, declared = None, 0
        for spec in specs:
            layer_cls = get_layer_class(spec["class_name"])
            layer = layer_cls.from_config(dict(spec.get("config") or {}))
            if isinstance(layer, InputLayer):
                shape = layer._batch_input_shape
                continue
            if shape is None:
                shape = layer._batch_input_shape
            if shape is None:
                return None
            shape = layer._build(shape)  # declares the parameter shapes, allocates nothing
            declared += layer.count_params()
            if limit is not None and declared > limit:
                break
        return declared


register_model_class(Model)
register_model_class(Sequential)
