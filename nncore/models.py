"""Sequential: a stack of layers trained with compile / fit / evaluate / predict (Keras 3 semantics).

All trainable parameters live in ONE contiguous buffer (`model._params`) and
their gradients in another (`model._grads`); each layer's kernel and bias are
views into them, so an optimizer step is one fused kernel call over the whole
model. The model builds when the input shape is known (an `Input` layer or
`input_shape`/`input_dim` on the first layer, else the first call/fit).

One training step is: forward through the layers (each writing into buffers
allocated once per batch size), the loss kernel writing d loss / d output,
backward through the layers (each writing its parameter gradients into the
flat gradient buffer), regularizer gradients, then `optimizer.step_flat`.
When the last activation is sigmoid/softmax and the loss the matching
cross-entropy, the last layer stops at its logits z and one fused kernel
gives the loss and the gradient p - y.
"""
import functools
import math
import signal
import threading

try:  # the C module under `signal`: the same functions without the enum wrapping, which costs
    import _signal as _sig   # ~25 us per fit (a ValueError raised and caught for a function handler)
except ImportError:  # pragma: no cover - other Pythons
    _sig = signal

import numpy as np

from nncore import _random
from nncore import callbacks as _callbacks
from nncore import losses as _losses
from nncore import metrics as _metrics
from nncore import optimizers as _optimizers
from nncore._config import floatx
from nncore._kernels.elementwise import all_finite
from nncore._threads import effective_n_threads
from nncore.data import Batches, split_validation
from nncore.layers import InputLayer, Layer, get_layer_class
from nncore.layers.base import MAX_CACHED_SHAPES
from nncore.layers.core import DenseChain

__all__ = ["Sequential"]


def _int_arg(value, arg, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{arg}: expected an int >= {minimum}, got {value!r}")
    return int(value)


def _verbose(verbose):
    if verbose == "auto":
        return 1
    if verbose not in (0, 1, 2):
        raise ValueError(f"verbose: expected 0, 1, 2 or 'auto', got {verbose!r}")
    return int(verbose)


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


class Sequential:
    """A linear stack of layers.

    Parameters
    ----------
    layers : list of Layer, optional
    name : str, optional

    Notes
    -----
    Loss reduction is Keras's `sum_over_batch_size`: sum_i w_i l_i / N per
    batch. History ``loss`` is the batch-size-weighted running mean of the
    batch losses (each including the regularization penalties).
    """
    _count = 0

    def __init__(self, layers=None, name=None):
        if name is None:
            name = "sequential" if Sequential._count == 0 else f"sequential_{Sequential._count}"
            Sequential._count += 1
        self.name = name
        self._layers = []
        self._input_shape = None
        self._input_layer = None
        self.built = False
        self.optimizer = None
        self.loss = None
        self.compiled_metrics = []
        self._compile_config = None
        self._n_threads_req = None
        self.stop_training = False
        self.history = None
        self._dtype = None
        self._lock = threading.RLock()
        self._train_batches = None    # the last fit's Batches (buffers and schedule), see Batches.rebind
        for layer in layers or []:
            self.add(layer)

    # ------------------------------------------------------------------ structure
    @property
    def layers(self):
        """The layers (without the Input placeholder), in order."""
        return list(self._layers)

    def add(self, layer):
        """Append a layer (or set the input with an `Input`); builds at once when the input shape is known."""
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
        kept = (self._params, len(self._layers)) if self.built else None
        self._layers.append(layer)
        self.built = False
        if self._input_shape is not None:
            self._build(self._input_shape, kept)

    def _build(self, input_shape, kept=None):
        """Build every layer, lay all parameters out in one flat buffer, initialize them.

        `kept` = (old flat buffer, number of layers it covers) when layers were
        appended to a built model: those layers keep their values (the layout
        only grows at the end) and only the new ones are initialized.
        """
        if not self._layers:
            raise ValueError(f"{self.name}: the model has no layers; add some first")
        shape = (None,) + tuple(input_shape[1:])
        self._input_shape = shape
        for layer in self._layers:
            shape = layer._build(shape)
        self._output_shape = shape
        dtype = np.dtype(floatx())
        total = sum(layer.count_params() for layer in self._layers)
        self._params = np.zeros(total, dtype)
        self._grads = np.zeros(total, dtype)
        offset = 0
        self._segments, self._regs = [], []
        for layer in self._layers:
            start = offset
            offset = layer._bind(self._params, self._grads, offset)
            pos = start
            for attr, wshape, _, reg in layer._specs:
                size = int(np.prod(wshape))
                self._segments.append((pos, pos + size))
                if reg is not None:
                    self._regs.append((getattr(layer, attr), layer._grad_of[attr], reg))
                pos += size
        rng = _random.get_rng()
        n_kept = 0
        if kept is not None:
            self._params[:kept[0].size] = kept[0]
            n_kept = kept[1]
        for layer in self._layers[n_kept:]:
            layer._initialize(rng)
        # layers before the first one with parameters need no backward; that one needs no dx
        first = next((i for i, layer in enumerate(self._layers) if layer.count_params()), len(self._layers))
        for i, layer in enumerate(self._layers):
            layer._need_dx = i > first
        self._first_trainable = first
        self._dtype = dtype
        self._dbufs = {}
        self.built = True
        if self.optimizer is not None and self._params.size:
            self.optimizer.build_flat(self._params, self._segments)

    def build(self, input_shape):
        """Build for inputs of shape (batch, ...) (batch may be None)."""
        self._build(tuple(input_shape))

    @property
    def input_shape(self):
        return self._input_shape

    @property
    def output_shape(self):
        return self._output_shape if self.built else None

    # ------------------------------------------------------------------ weights
    @property
    def weights(self):
        return [w for layer in self._layers for w in layer.weights]

    def get_weights(self):
        """Copies of all parameters, layer by layer (kernel, bias, ...)."""
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        """Set all parameters from a list shaped like `get_weights()`."""
        mine = self.weights
        if len(weights) != len(mine):
            raise ValueError(f"{self.name}.set_weights: expected {len(mine)} arrays, got {len(weights)}")
        for i, (w, v) in enumerate(zip(mine, weights)):
            v = np.asarray(v)
            if v.shape != w.shape:
                raise ValueError(f"{self.name}.set_weights: array {i} has shape {v.shape}, expected {w.shape}")
        for w, v in zip(mine, weights):
            w[...] = v

    def count_params(self):
        """Total number of parameters (requires a built model)."""
        if not self.built:
            raise ValueError(f"{self.name}: the model is not built yet; call it on data or give an input shape")
        return int(self._params.size)

    # ------------------------------------------------------------------ compile
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, n_threads=None):
        """Set the optimizer, the loss and the metrics.

        Parameters
        ----------
        optimizer : str, dict or Optimizer, default='rmsprop'
        loss : str, Loss or nncore.losses function
        metrics : list of str or Metric, optional
        n_threads : int, optional
            Threads for the kernels (None: nncore.get_num_threads(), -1: all).
        """
        effective_n_threads(n_threads)  # validates
        self.optimizer = _optimizers.get(optimizer)
        self.loss = _losses.get(loss) if loss is not None else None
        if metrics is None:
            metrics = []
        elif isinstance(metrics, (str, dict)) or not isinstance(metrics, (list, tuple)):
            metrics = [metrics]
        self._metric_ids = list(metrics)
        self.compiled_metrics = [_metrics.get(m, loss=self.loss) for m in metrics]
        self._n_threads_req = n_threads
        if n_threads is not None and getattr(self.optimizer, "n_threads", 0) is None:
            self.optimizer.n_threads = n_threads   # the optimizer's kernel follows compile's request
        self._compile_config = {
            "optimizer": _optimizers.serialize(self.optimizer),
            "loss": None if self.loss is None else _losses.serialize(self.loss),
            "metrics": [m if isinstance(m, str) else getattr(m, "name", str(m)) for m in metrics],
        }
        if self.built and self._params.size:
            self.optimizer.build_flat(self._params, self._segments)

    def _require(self, what):
        if self.loss is None or (what == "fit" and self.optimizer is None):
            raise ValueError(f"{self.name}.{what}: compile the model with a loss first "
                             "(model.compile(optimizer=..., loss=...))")

    # ------------------------------------------------------------------ inputs
    def _prepare_x(self, x, arg="x", check_finite=True):
        if x is None:
            raise ValueError(f"{arg}: expected an array of inputs, got None")
        x = np.asarray(x)
        if x.dtype.kind not in "biuf":
            raise TypeError(f"{arg}: expected numeric inputs, got dtype {x.dtype}")
        if x.ndim == 0:
            raise ValueError(f"{arg}: expected an array of shape (n_samples, ...), got a scalar")
        if x.shape[0] == 0:
            raise ValueError(f"{arg}: empty input (0 samples), shape {x.shape}")
        if x.ndim == 1 and self._input_shape is not None and tuple(self._input_shape[1:]) == (1,):
            x = x.reshape(-1, 1)
        if not self.built:
            if x.ndim < 2:
                raise ValueError(f"{arg}: expected inputs of shape (n_samples, n_features), got {x.shape}")
            self._build(x.shape)
        if x.shape[1:] != tuple(self._input_shape[1:]):
            first = self._layers[0]
            raise ValueError(f"{arg}: layer {first.name!r} ({type(first).__name__}) of model {self.name!r} "
                             f"expects input of shape (n_samples, {', '.join(map(str, self._input_shape[1:]))}), "
                             f"got {x.shape}")
        x = np.ascontiguousarray(x, dtype=self._dtype)
        if check_finite and not all_finite(x, effective_n_threads(self._n_threads_req)):
            raise ValueError(f"{arg}: inputs contain NaN or infinity")
        return x

    def _prepare_y(self, y, n, arg="y"):
        if y is None:
            raise ValueError(f"{arg}: expected targets, got None")
        y_raw = np.asarray(y)
        if y_raw.ndim == 0 or len(y_raw) != n:
            raise ValueError(f"{arg}: expected {n} targets to match the {n} input samples, got shape {y_raw.shape}")
        y = self.loss._prepare(y_raw, (n,) + tuple(self._output_shape[1:]), self._dtype, arg)
        # metrics see the targets as given (no smoothing / relabelling)
        y_metric = None
        if not self.loss.sparse and self.compiled_metrics and not np.array_equal(y, y_raw.reshape(y.shape)):
            y_metric = np.ascontiguousarray(y_raw.reshape(y.shape), dtype=self._dtype)
        return y, y_metric

    def _prepare_weights(self, sample_weight, n, arg="sample_weight"):
        if sample_weight is None:
            return None
        w = np.asarray(sample_weight)
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

    @staticmethod
    def _class_weights(class_weight, y_raw):
        """Keras: per-sample weight = class_weight[class of the sample] (argmax of one-hot rows, else the
        rounded label); classes missing from the dict weigh 1."""
        if not isinstance(class_weight, dict):
            raise TypeError(f"class_weight: expected a dict {{class: weight}}, got {type(class_weight).__name__}")
        y = np.asarray(y_raw)
        if y.ndim > 1 and y.shape[-1] > 1:
            labels = np.argmax(y, axis=-1)
        else:
            labels = np.round(y.reshape(len(y), -1)[:, 0]).astype(np.int64)
        table = {int(k): float(v) for k, v in class_weight.items()}
        return np.array([table.get(int(c), 1.0) for c in labels])

    def _setup(self):
        """Per call to fit/evaluate/predict: threads, the fused-loss decision, bound methods."""
        nt = effective_n_threads(self._n_threads_req)
        self._nt = nt
        for layer in self._layers:
            layer._n_threads = nt
        last = self._layers[-1]
        fused = (self.loss is not None and self.loss.fused_activation is not None
                 and getattr(last, "_act_name", None) == self.loss.fused_activation
                 and hasattr(last, "forward_logits"))
        self._fused = fused
        self._opt_step = self.optimizer.step_flat if self.optimizer is not None and self._params.size \
            else _no_step
        body = self._layers[:-1] if fused else self._layers
        self._fwd = [layer.forward for layer in body]
        self._bwd = [layer.backward for layer in reversed(self._layers[self._first_trainable:])]
        if fused:
            if self._bwd:              # the last layer's backward starts from delta = dL/dz
                self._bwd[0] = last.backward_logits
            self._last_logits = last.forward_logits
            self._loss_fn = self.loss._logits_grad
        else:
            self._loss_fn = self.loss._grad if self.loss is not None else None

    # ------------------------------------------------------------------ steps
    def _forward_loss(self, x, y, w, d, training):
        """Forward pass and loss: returns (output, weighted loss sum); writes d loss/d output into d."""
        for f in self._fwd:
            x = f(x, training)
        n = x.shape[0]
        if self._fused:
            z, prob = self._last_logits(x)
            return prob, self._loss_fn(z, y, w, prob, d, 1.0 / n, self._nt)
        return x, self._loss_fn(x, y, w, d, 1.0 / n, self._nt)

    def _penalty(self):
        return sum(reg(wv) for wv, _, reg in self._regs) if self._regs else 0.0

    def _train_step(self, x, y, w, y_metric):
        """One step on a batch; returns the batch loss sum(w l)/N + penalties."""
        n = x.shape[0]
        d = self._dbufs.get(n)
        if d is None:
            if len(self._dbufs) >= MAX_CACHED_SHAPES:
                self._dbufs.clear()
            d = self._dbufs[n] = np.empty((n,) + tuple(self._output_shape[1:]), self._dtype)
        # the forward pass and loss of _forward_loss, inlined (one call frame less per step)
        out = x
        for f in self._fwd:
            out = f(out, True)
        if self._fused:
            z, out = self._last_logits(out)
            s = self._loss_fn(z, y, w, out, d, 1.0 / n, self._nt)
        else:
            s = self._loss_fn(out, y, w, d, 1.0 / n, self._nt)
        for m in self.compiled_metrics:
            m.update_state(y if y_metric is None else y_metric, out)
        dy = d
        for b in self._bwd:        # backward: each layer writes its dW, db into the flat gradient buffer
            dy = b(dy)
        pen = 0.0
        for wv, gv, reg in self._regs:
            pen += reg(wv)
            reg.add_gradient(wv, gv)
        self._opt_step(self._params, self._grads)
        return s / n + pen

    def _logs(self, loss):
        logs = {"loss": loss}
        for m in self.compiled_metrics:
            logs[m.name] = float(m.result())
        return logs

    # ------------------------------------------------------------------ fit
    @_exclusive
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None, sample_weight=None,
            initial_epoch=0):
        """Train for `epochs` epochs; returns the History callback.

        Keras 3 semantics: validation_split takes the last samples (the
        training set is the first floor(n (1 - split))) before shuffling;
        the training samples are reshuffled every epoch (shuffle=True); the
        last partial batch is kept; ``class_weight`` becomes per-sample
        weights of the training data (it cannot be combined with
        ``sample_weight``); History ``loss`` is the batch-size-weighted
        running mean of the batch losses including regularization, and
        ``val_*`` come from a pass over the validation data after each epoch.
        verbose: 0 silent, 1 progress bar, 2 one line per epoch ('auto' = 1).
        A KeyboardInterrupt propagates after the current step; the model
        stays usable (its parameters are those after the last complete step).
        """
        self._require("fit")
        batch_size = 32 if batch_size is None else _int_arg(batch_size, "batch_size", 1)
        epochs = _int_arg(epochs, "epochs", 0)
        initial_epoch = _int_arg(initial_epoch, "initial_epoch", 0)
        verbose = _verbose(verbose)
        if class_weight is not None and sample_weight is not None:
            raise ValueError("fit: give class_weight or sample_weight, not both (Keras rule)")
        x = self._prepare_x(x)
        n = len(x)
        y_raw = np.asarray(y) if y is not None else None
        y, y_metric = self._prepare_y(y, n)
        w = self._prepare_weights(sample_weight, n)
        val = None
        if validation_data is not None:
            val = self._prepare_validation(validation_data)
        elif validation_split:
            (x, y, w, y_metric, y_raw), (xv, yv, wv, ymv, _) = split_validation(
                [x, y, w, y_metric, y_raw], validation_split)
            val = (xv, yv, wv, ymv)
        if class_weight is not None:
            w = np.ascontiguousarray(self._class_weights(class_weight, y_raw), dtype=self._dtype)

        self._setup()
        # the batch buffers and schedule of the last fit are reused for arrays of the same layout
        arrays, rng = [x, y, w, y_metric], _random.get_rng()
        batches = getattr(self, "_train_batches", None)
        if batches is None or not batches.rebind(arrays, batch_size, shuffle, rng):
            batches = self._train_batches = Batches(arrays, batch_size, shuffle=shuffle, rng=rng)
        steps = len(batches)
        cbs = _callbacks.CallbackList(callbacks, add_history=True, add_progbar=verbose != 0, model=self,
                                                verbose=verbose, epochs=epochs, steps=steps)
        self.stop_training = False
        nonfinite_handled = any(getattr(cb, "handles_nonfinite", False) for cb in cbs.callbacks)
        step = self._train_step
        batch_logs = getattr(cbs, "has_train_batch_hooks", True)   # per-batch logs only when someone listens
        by_hook = getattr(cbs, "_by_hook", None)
        batch_begin = cbs.on_train_batch_begin if by_hook is None or "on_train_batch_begin" in by_hook \
            else None
        logs, training_logs = {}, None
        try:
            with _DeferredInterrupt() as ctrl_c:
                cbs.on_train_begin()
                for epoch in range(initial_epoch, epochs):
                    for m in self.compiled_metrics:
                        m.reset_state()
                    cbs.on_epoch_begin(epoch)
                    total, seen = 0.0, 0
                    for i, (xb, yb, wb, ymb) in enumerate(batches):
                        if batch_begin is not None:
                            batch_begin(i)
                        nb = xb.shape[0]
                        batch_loss = step(xb, yb, wb, ymb)
                        # end of batch: the loss and the updated parameters must be finite (one pass
                        # over the flat parameter buffer, small next to the batch's forward/backward)
                        if not (math.isfinite(batch_loss) and all_finite(self._params, 1)):
                            batch_loss = self._nonfinite(batch_loss, epoch, i, steps, nonfinite_handled)
                        total += batch_loss * nb
                        seen += nb
                        if batch_logs:
                            logs = self._logs(total / seen)
                            cbs.on_train_batch_end(i, logs)
                        if ctrl_c.pending:    # Ctrl-C takes effect here, between complete steps
                            ctrl_c.check()
                        if self.stop_training:
                            break
                    epoch_logs = self._logs(total / seen) if seen else dict(logs)
                    if val is not None:
                        val_logs = self._evaluate_arrays(*val, batch_size, cbs)
                        epoch_logs.update({"val_" + k: v for k, v in val_logs.items()})
                    cbs.on_epoch_end(epoch, epoch_logs)
                    training_logs = epoch_logs
                    if self.stop_training:
                        break
                cbs.on_train_end(training_logs)
        finally:
            batches.release()     # the model keeps no reference to the training data
        return self.history

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

    def _prepare_validation(self, data):
        if not isinstance(data, (tuple, list)) or len(data) not in (2, 3):
            raise ValueError("validation_data: expected a tuple (x_val, y_val) or (x_val, y_val, sample_weight_val)")
        xv = self._prepare_x(data[0], "validation_data x")
        yv, ymv = self._prepare_y(data[1], len(xv), "validation_data y")
        wv = self._prepare_weights(data[2] if len(data) == 3 else None, len(xv), "validation_data sample_weight")
        return xv, yv, wv, ymv

    # ------------------------------------------------------------------ evaluate / predict
    def _evaluate_arrays(self, x, y, w, y_metric, batch_size, cbs=None):
        self._setup()
        if cbs is not None:
            cbs.on_test_begin()
        for m in self.compiled_metrics:
            m.reset_state()
        pen = self._penalty()             # every batch loss carries the same penalty
        total, seen = 0.0, 0
        for i, (xb, yb, wb, ymb) in enumerate(Batches([x, y, w, y_metric], batch_size)):
            if cbs is not None:
                cbs.on_test_batch_begin(i)
            out, s = self._forward_loss(xb, yb, wb, None, False)
            total += s
            seen += xb.shape[0]
            for m in self.compiled_metrics:
                m.update_state(yb if ymb is None else ymb, out)
            if cbs is not None:
                cbs.on_test_batch_end(i, self._logs(total / seen + pen))
        total += pen * len(x)
        logs = self._logs(total / len(x))
        if cbs is not None:
            cbs.on_test_end(logs)
        return logs

    @_exclusive
    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None, return_dict=False,
                 callbacks=None):
        """Loss (and metrics) on the given data, in batches, without training.

        Returns the loss alone when no metrics were compiled, else [loss, metric, ...]
        (a dict {name: value} with return_dict=True). The loss is sum_i w_i l_i / N
        plus the regularization penalties.
        """
        self._require("evaluate")
        batch_size = 32 if batch_size is None else _int_arg(batch_size, "batch_size", 1)
        verbose = _verbose(verbose)
        x = self._prepare_x(x)
        y, y_metric = self._prepare_y(y, len(x))
        w = self._prepare_weights(sample_weight, len(x))
        cbs = _callbacks.CallbackList(callbacks, add_history=False, add_progbar=verbose != 0,
                                                model=self, verbose=verbose, epochs=1,
                                                steps=-(-len(x) // batch_size))
        logs = self._evaluate_arrays(x, y, w, y_metric, batch_size, cbs)
        if return_dict:
            return logs
        if not self.compiled_metrics:
            return logs["loss"]
        return list(logs.values())

    @_exclusive
    def predict(self, x, batch_size=None, verbose="auto", callbacks=None):
        """Outputs for the inputs x, in batches, forward only (training=False)."""
        batch_size = 32 if batch_size is None else _int_arg(batch_size, "batch_size", 1)
        verbose = _verbose(verbose)
        x = self._prepare_x(x, check_finite=False)
        # a model of Dense layers runs each batch as one chain (the chain checks each block of x as it
        # reads it, so x is not read once more for that); others layer by layer
        chain = DenseChain.of(self._layers, x.ndim)
        if chain is None:
            self._prepare_x(x)
        cbs = None
        if verbose or callbacks:
            cbs = _callbacks.CallbackList(callbacks, add_history=False, add_progbar=verbose != 0,
                                                    model=self, verbose=verbose, epochs=1,
                                                    steps=-(-len(x) // batch_size))
            cbs.on_predict_begin()
        self._setup()
        result = np.empty((len(x),) + tuple(self._output_shape[1:]), self._dtype)
        if chain is not None:
            chain.prepare()
        start = 0
        for i, (xb,) in enumerate(Batches([x], batch_size)):
            if cbs is not None:
                cbs.on_predict_batch_begin(i)
            if chain is not None:
                xb = chain(xb, result[start:start + len(xb)], check_finite=True, n_threads=self._nt)
            else:
                for layer in self._layers:
                    xb = layer.forward(xb, False)
                result[start:start + len(xb)] = xb
            start += len(xb)
            if cbs is not None:
                cbs.on_predict_batch_end(i, {"outputs": result[start - len(xb):start]})
        if cbs is not None:
            cbs.on_predict_end()
        return result

    @_exclusive
    def __call__(self, x, training=False):
        """Forward pass on a batch (no progress bar, no batching); returns a new array."""
        x = self._prepare_x(x)
        self._setup()
        for layer in self._layers:
            x = layer.forward(x, training)
        return x.copy()

    # ------------------------------------------------------------------ description
    def summary(self, print_fn=None):
        """Print the layers, their output shapes and parameter counts."""
        print_fn = print_fn or print
        rows = [(f"{layer.name} ({type(layer).__name__})",
                 str(layer.output_shape) if layer.built else "?",
                 str(layer.count_params()) if layer.built else "?") for layer in self._layers]
        heads = ("Layer (type)", "Output Shape", "Param #")
        widths = [max([len(h)] + [len(r[i]) for r in rows]) + 2 for i, h in enumerate(heads)]
        line = "-" * sum(widths)
        print_fn(f'Model: "{self.name}"')
        print_fn(line)
        print_fn("".join(h.ljust(wd) for h, wd in zip(heads, widths)))
        print_fn("=" * sum(widths))
        for r in rows:
            print_fn("".join(c.ljust(wd) for c, wd in zip(r, widths)))
        print_fn(line)
        total = self.count_params() if self.built else "?"
        print_fn(f"Total params: {total}")
        print_fn(f"Trainable params: {total}")
        print_fn("Non-trainable params: 0")

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

    # ------------------------------------------------------------------ saving (nncore.saving)
    def _prepare_optimizer(self):
        """Give the optimizer its slots over the flat buffer (before restoring a saved state)."""
        if not self.built:
            raise ValueError(f"{self.name}: cannot restore an optimizer state into an unbuilt model")
        self.optimizer.build_flat(self._params, self._segments)

    def save(self, filepath):
        """Save architecture, weights, compile settings and optimizer state (see nncore.saving)."""
        from nncore import saving
        return saving.save_model(self, filepath)

    def save_weights(self, filepath):
        from nncore import saving
        return saving.save_weights(self, filepath)

    def load_weights(self, filepath):
        from nncore import saving
        return saving.load_weights(self, filepath)

    def __repr__(self):
        return f"<Sequential name={self.name!r} layers={len(self._layers)}>"

