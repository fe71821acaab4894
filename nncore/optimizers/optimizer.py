"""The base Optimizer: hyperparameters, slots, clipping, state, one kernel call per step.

A subclass states its rule (docstring, Notes first), validates its
hyperparameters, names its slots and implements ``_rule(lr, t)``: the
per-step scalars of its kernel, computed once per step in double. Everything
else (pairing gradients with variables, lazy slots, clipping, weight decay,
learning-rate schedules, the flat path of a model, state) lives here.

Two ways to step:

- ``apply_gradients([(g, w), ...])`` on any float32/float64 arrays, in place;
  one kernel call per variable, slots created on first use.
- ``build_flat(params, segments)`` then ``step_flat(params, grads)``: the
  model's single parameter buffer, ONE kernel call per step (plus one
  sum-of-squares pass when clipnorm/global_clipnorm is set).

Both give the same bits on the same numbers: the kernel is elementwise, it
forms no FMA, and the sums of squares are taken per variable (segment) with
fixed chunks and lanes from the variable's start.
"""
import math
import numbers

import numpy as np

from nncore._kernels import optim as _k
from nncore._threads import effective_n_threads
from nncore.optimizers import schedules as _schedules

__all__ = ["Optimizer"]


def _number(name, value, lo=None, lo_open=False, hi=None, hi_open=False):
    """`value` as a float after checking type and bounds; ValueError/TypeError name the argument."""
    return _schedules._number(name, value, lo=lo, lo_open=lo_open, hi=hi, hi_open=hi_open)


def _flag(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected a bool, got {type(value).__name__}")
    return bool(value)


def _float_array(a, name):
    """Check an array the optimizer writes to: ndarray, float32/float64, C-contiguous, writable."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray, got {type(a).__name__}")
    if a.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name}: expected dtype float32 or float64, got {a.dtype}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{name}: expected a C-contiguous array")
    if not a.flags.writeable:
        raise ValueError(f"{name}: the array is read-only")
    return a


class Optimizer:
    """Base class of nncore's optimizers (Keras 3 semantics).

    Parameters
    ----------
    learning_rate : float or LearningRateSchedule
        A non-negative float, or a schedule evaluated at ``iterations`` before
        each step (the first step uses ``schedule(0)``).
    weight_decay : float or None, default=None
        Decoupled weight decay, applied before the update: w <- w - lr wd w.
    clipnorm : float or None, default=None
        Clip each variable's gradient to this L2 norm: g <- g c / max(||g||, c).
    clipvalue : float or None, default=None
        Clip each gradient element to [-c, c].
    global_clipnorm : float or None, default=None
        Clip all gradients together: g <- g c / max(N, c), N the norm of all of them.
        At most one of clipnorm, clipvalue and global_clipnorm may be set.
    name : str or None
    n_threads : int or None, default=None
        Threads for the kernels (None: nncore's setting, -1: all CPUs).

    Notes
    -----
    One step, in order: clip the gradient; w <- w - lr wd w; the rule of the
    subclass; iterations <- iterations + 1. The clipped gradient is used on
    the fly: the gradient arrays are never written.
    """

    _defaults_name = "optimizer"

    def __init__(self, learning_rate, weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 name=None, n_threads=None):
        self.learning_rate = learning_rate
        self.weight_decay = None if weight_decay is None else _number("weight_decay", weight_decay, lo=0)
        self.clipnorm = None if clipnorm is None else _number("clipnorm", clipnorm, lo=0, lo_open=True)
        self.clipvalue = None if clipvalue is None else _number("clipvalue", clipvalue, lo=0, lo_open=True)
        self.global_clipnorm = None if global_clipnorm is None else _number(
            "global_clipnorm", global_clipnorm, lo=0, lo_open=True)
        set_ = [k for k in ("clipnorm", "clipvalue", "global_clipnorm") if getattr(self, k) is not None]
        if len(set_) > 1:
            raise ValueError(f"{' and '.join(set_)}: only one of clipnorm, clipvalue and global_clipnorm "
                             "may be set")
        self.name = self._defaults_name if name is None else str(name)
        self.n_threads = n_threads
        self._iterations = 0
        self._vars = []        # per variable, in order of first use: {"var", "slots", "seg"}
        self._index = {}       # (data pointer, shape, dtype) -> index in _vars
        self._flat = None      # the model's buffer: {"params", "seg_start", "slots", "sums"}
        self._finite = None    # step_flat: whether every parameter of the buffer came out finite
        self._pending = None   # state set before the slots existed

    # ---- what a subclass provides -------------------------------------
    def _slot_names(self):
        """Names of the slots of the current configuration, in the kernel's order."""
        return ()

    def _slot_initial(self, name):
        """The value a slot starts at (Adagrad's and Ftrl's accumulators differ from 0)."""
        return 0.0

    def _rule(self, lr, t):
        """(kind, flags, coef) of this step: the kernel code and its per-step scalars, in double."""
        raise NotImplementedError

    def _hyper_config(self):
        """The subclass's own hyperparameters, for get_config."""
        return {}

    def _extra_state(self):
        """Scalars beyond slots and iterations that a checkpoint must hold (Nadam's u_product)."""
        return {}

    def _set_extra_state(self, state):
        pass

    # ---- learning rate and iterations ---------------------------------
    @property
    def learning_rate(self):
        """The learning rate: a float or a schedule (settable)."""
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        if isinstance(value, _schedules.LearningRateSchedule) or (
                callable(value) and not isinstance(value, numbers.Real)):
            self._learning_rate = value
        else:
            self._learning_rate = _number("learning_rate", value, lo=0, hi=math.inf, hi_open=True)

    @property
    def iterations(self):
        """The number of steps taken (an int)."""
        return self._iterations

    @iterations.setter
    def iterations(self, value):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
            raise ValueError(f"iterations: expected a non-negative int, got {value!r}")
        self._iterations = int(value)

    def _current_lr(self):
        lr = self._learning_rate
        if callable(lr):
            try:
                lr = float(lr(self._iterations))
            except (OverflowError, ZeroDivisionError) as exc:   # e.g. decay_rate > 1 after many steps
                raise ValueError(f"{type(self).__name__}: the learning-rate schedule {lr!r} failed at step "
                                 f"{self._iterations}: {exc}") from None
            if not (lr >= 0 and math.isfinite(lr)):
                raise ValueError(f"{type(self).__name__}: the learning-rate schedule {self._learning_rate!r} gave "
                                 f"{lr} at step {self._iterations}; expected a finite rate >= 0")
        return lr

    # ---- one step ------------------------------------------------------
    def _step_args(self):
        """Per-step scalars shared by the two paths: lr, the rule and the kernel keywords."""
        lr = self._current_lr()
        kind, flags, coef = self._rule(lr, self._iterations + 1)
        kw = {"wd": lr * self.weight_decay if self.weight_decay else 0.0,
              "clipvalue": self.clipvalue if self.clipvalue is not None else math.inf,
              "n_threads": effective_n_threads(self.n_threads)}
        return kind, flags, coef, kw

    @staticmethod
    def _norm_scale(sumsq, c):
        """c / max(||g||, c): 1 when the norm is within c (a zero gradient stays zero)."""
        norm = math.sqrt(sumsq)
        return c / max(norm, c) if math.isfinite(norm) else math.nan

    def apply_gradients(self, grads_and_vars):
        """Update each variable in place from its gradient: one step for all of them.

        Parameters
        ----------
        grads_and_vars : iterable of (gradient, variable)
            Variables are C-contiguous, writable float32 or float64 ndarrays;
            each gradient has the variable's shape (it is converted to the
            variable's dtype). Pairs whose gradient is None are skipped.
            Slots are created on a variable's first use; a variable is known by
            its memory (data pointer, shape, dtype), so views made again over
            the same buffer share their slots.

        Returns
        -------
        int
            ``iterations`` after the step.
        """
        pairs, seen = [], set()
        for i, pair in enumerate(grads_and_vars):
            try:
                g, w = pair
            except (TypeError, ValueError):
                raise TypeError(f"grads_and_vars[{i}]: expected a (gradient, variable) pair") from None
            if g is None:
                continue
            _float_array(w, f"grads_and_vars[{i}] variable")
            try:
                g = np.ascontiguousarray(g, dtype=w.dtype)
            except (TypeError, ValueError):
                raise TypeError(f"grads_and_vars[{i}] gradient: expected an array of numbers") from None
            if g.shape != w.shape:
                raise ValueError(f"grads_and_vars[{i}]: gradient shape {g.shape} does not match "
                                 f"variable shape {w.shape}")
            key = self._key(w)
            if key in seen:
                raise ValueError(f"grads_and_vars[{i}]: this variable already appears earlier in the list")
            seen.add(key)
            pairs.append((g, w))
        if not pairs:
            return self._iterations
        recs = [self._var_record(w) for _, w in pairs]
        kind, flags, coef, kw = self._step_args()
        nt = kw["n_threads"]
        scales = [1.0] * len(pairs)
        if self.clipnorm is not None or self.global_clipnorm is not None:
            sums = []
            for (g, _), rec in zip(pairs, recs):
                out = np.empty(1)
                _k.seg_sumsq(g, rec["seg"], out, nt)
                sums.append(out[0])
            if self.global_clipnorm is not None:
                total = 0.0
                for s in sums:  # in variable order, as step_flat adds its segments
                    total += s
                scales = [self._norm_scale(total, self.global_clipnorm)] * len(pairs)
            else:
                scales = [self._norm_scale(s, self.clipnorm) for s in sums]
        for (g, w), rec, sc in zip(pairs, recs, scales):
            _k.step(kind, flags, coef, w, g, rec["slots"], scale=sc, **kw)
        self._iterations += 1
        return self._iterations

    @staticmethod
    def _key(w):
        return (w.__array_interface__["data"][0], w.shape, w.dtype.str)

    def _var_record(self, w):
        key = self._key(w)
        i = self._index.get(key)
        if i is None:
            i = len(self._vars)
            slots = [np.full(w.shape, self._slot_initial(nm), dtype=w.dtype) for nm in self._slot_names()]
            # keeping `w` alive keeps its memory from being reused by another array
            rec = {"var": w, "slots": slots, "seg": np.array([0, w.size], dtype=np.int64)}
            self._vars.append(rec)
            self._index[key] = i
            if self._pending:
                self._load_slots(i, slots, self._pending)
        return self._vars[i]

    # ---- the model's flat buffer ----------------------------------------
    def build_flat(self, params_flat, segments=None):
        """Prepare to step the model's 1-D parameter buffer with ``step_flat``.

        Parameters
        ----------
        params_flat : ndarray of shape (n,), float32 or float64
            The model's contiguous parameter buffer (layers hold views into it).
        segments : list of (start, stop) or None
            One per variable, in order, tiling the buffer: the first starts at
            0, each starts where the previous stopped, the last stops at n.
            None means one variable. Per-variable clipnorm and the state use them.
        """
        _float_array(params_flat, "params_flat")
        if params_flat.ndim != 1:
            raise ValueError(f"params_flat: expected a 1-D array, got shape {params_flat.shape}")
        n = params_flat.shape[0]
        if segments is None:
            segments = [(0, n)]
        bounds = [0]
        for i, seg in enumerate(segments):
            try:
                a, b = (int(x) for x in seg)
            except (TypeError, ValueError):
                raise TypeError(f"segments[{i}]: expected a (start, stop) pair of ints, got {seg!r}") from None
            if a != bounds[-1] or b < a:
                raise ValueError(f"segments[{i}]: expected ({bounds[-1]}, stop >= {bounds[-1]}), got ({a}, {b}); "
                                 "segments must tile the buffer in order")
            bounds.append(b)
        if bounds[-1] != n or len(bounds) < 2:
            raise ValueError(f"segments: expected to end at len(params_flat) = {n}, got {bounds[-1]}")
        slots = [np.full(n, self._slot_initial(nm), dtype=params_flat.dtype) for nm in self._slot_names()]
        self._flat = {"params": params_flat, "ptr": params_flat.__array_interface__["data"][0],
                      "seg_start": np.array(bounds, dtype=np.int64), "slots": slots,
                      "sums": np.empty(len(bounds) - 1), "scales": np.empty(len(bounds) - 1),
                      "grads": None}
        if self._pending:
            self._load_flat(self._pending)

    def step_flat(self, params_flat, grads_flat):
        """One step over the buffer given to ``build_flat``: one fused kernel call.

        Parameters
        ----------
        params_flat : ndarray of shape (n,)
            The same buffer as in ``build_flat`` (updated in place).
        grads_flat : ndarray of shape (n,), same dtype
            The gradient of every parameter (read only).

        Returns
        -------
        int
            ``iterations`` after the step.
        """
        f = self._flat
        if f is None:
            raise ValueError("step_flat: call build_flat(params_flat, segments) first")
        # fast path: the same two array objects as the last validated call (the kernel still
        # checks dtype, size, contiguity and writability of every array it is given)
        if params_flat is not f["params"] or grads_flat is not f["grads"]:
            self._check_flat(f, params_flat, grads_flat)
        lr = self._learning_rate
        if callable(lr):
            lr = self._current_lr()         # a schedule's rate, checked
        kind, flags, coef = self._rule(lr, self._iterations + 1)
        wd = self.weight_decay
        wd = lr * wd if wd else 0.0
        clipvalue = self.clipvalue
        if clipvalue is None:
            clipvalue = math.inf
        nt = effective_n_threads(self.n_threads)
        scale, seg_scale = 1.0, None
        if self.clipnorm is not None or self.global_clipnorm is not None:
            sums = _k.seg_sumsq(grads_flat, f["seg_start"], f["sums"], nt)
            if self.global_clipnorm is not None:
                total = 0.0
                for s in sums.tolist():
                    total += s
                scale = self._norm_scale(total, self.global_clipnorm)
            else:
                seg_scale = f["scales"]
                seg_scale[:] = [self._norm_scale(s, self.clipnorm) for s in sums.tolist()]
        self._finite = _k.step(kind, flags, coef, params_flat, grads_flat, f["slots"], wd, clipvalue, scale,
                               f["seg_start"] if seg_scale is not None else None, seg_scale, nt)
        self._iterations += 1
        return self._iterations

    @staticmethod
    def _check_flat(f, params_flat, grads_flat):
        """Validate step_flat's arrays; on success remember them for the identity fast path."""
        if not isinstance(params_flat, np.ndarray) or params_flat.__array_interface__["data"][0] != f["ptr"] \
                or params_flat.shape != f["params"].shape or params_flat.dtype != f["params"].dtype:
            raise ValueError("params_flat: expected the buffer given to build_flat "
                             f"(shape {f['params'].shape}, dtype {f['params'].dtype})")
        if not isinstance(grads_flat, np.ndarray) or grads_flat.shape != params_flat.shape:
            raise ValueError(f"grads_flat: expected an ndarray of shape {params_flat.shape}, got "
                             f"{getattr(grads_flat, 'shape', type(grads_flat).__name__)}")
        if grads_flat.dtype != params_flat.dtype:
            raise TypeError(f"grads_flat: expected dtype {params_flat.dtype} like params_flat, got {grads_flat.dtype}")
        if not grads_flat.flags.c_contiguous:
            raise ValueError("grads_flat: expected a C-contiguous array")
        if params_flat is f["params"]:
            f["grads"] = grads_flat

    # ---- configuration ----------------------------------------------------
    def get_config(self):
        """The hyperparameters as a JSON-able dict (a schedule as its serialized dict)."""
        lr = self._learning_rate
        if isinstance(lr, _schedules.LearningRateSchedule):
            lr = _schedules.serialize(lr)
        elif callable(lr):
            raise ValueError("learning_rate: a plain callable cannot be serialized; use a LearningRateSchedule")
        cfg = {"name": self.name, "learning_rate": lr, "weight_decay": self.weight_decay,
               "clipnorm": self.clipnorm, "global_clipnorm": self.global_clipnorm, "clipvalue": self.clipvalue}
        cfg.update(self._hyper_config())
        return cfg

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """Build an optimizer from ``get_config()``'s dict."""
        if not isinstance(config, dict):
            raise TypeError(f"config: expected a dict, got {type(config).__name__}")
        config = dict(config)
        lr = config.get("learning_rate")
        if isinstance(lr, dict):
            config["learning_rate"] = _schedules.deserialize(lr, custom_objects)
        return cls(**config)

    # ---- state ----------------------------------------------------------
    def get_state(self):
        """The optimizer's state: ``{"iterations": int, "<i>/<slot>": ndarray, ...}`` (copies).

        Variables are numbered in order of first use (the segments, in the flat
        path); Nadam adds ``"u_product"``. ``set_state`` restores it exactly.
        """
        state = {"iterations": self._iterations}
        state.update(self._extra_state())
        names = self._slot_names()
        if self._flat is not None:
            seg = self._flat["seg_start"]
            for i in range(len(seg) - 1):
                for nm, s in zip(names, self._flat["slots"]):
                    state[f"{i}/{nm}"] = s[seg[i]:seg[i + 1]].copy()
        else:
            for i, rec in enumerate(self._vars):
                for nm, s in zip(names, rec["slots"]):
                    state[f"{i}/{nm}"] = s.copy()
        return state

    def set_state(self, state):
        """Restore ``get_state()``'s dict: iterations, scalars and every slot, bit for bit.

        Slots that do not exist yet are kept and loaded when their variable is
        first used (``apply_gradients``) or when ``build_flat`` runs.
        """
        if not isinstance(state, dict) or "iterations" not in state:
            raise ValueError("state: expected the dict get_state() returned (with 'iterations')")
        names = set(self._slot_names())
        for key in state:
            if "/" in key and key.split("/", 1)[1] not in names:
                raise ValueError(f"state: slot {key!r} does not belong to {type(self).__name__} with this "
                                 f"configuration (slots {sorted(names)})")
        pending = {k: np.asarray(v) for k, v in state.items() if "/" in k}
        if self._flat is not None:
            # the buffer's layout is known: the state must describe exactly its segments
            nseg = len(self._flat["seg_start"]) - 1
            want = {f"{i}/{nm}" for i in range(nseg) for nm in self._slot_names()}
            if set(pending) != want:
                extra, missing = sorted(set(pending) - want), sorted(want - set(pending))
                raise ValueError(f"state: does not match the {nseg} segments given to build_flat "
                                 f"(missing {missing[:4]}, unexpected {extra[:4]})")
            self._load_flat(pending)
        else:
            for i, rec in enumerate(self._vars):
                self._load_slots(i, rec["slots"], pending)
        self.iterations = int(state["iterations"])
        self._set_extra_state(state)
        self._pending = pending  # what is left: slots of variables not seen yet

    def _load_slots(self, i, slots, pending):
        for nm, s in zip(self._slot_names(), slots):
            key = f"{i}/{nm}"
            if key not in pending:
                continue
            src = pending.pop(key)
            if src.size != s.size:
                raise ValueError(f"state[{key!r}]: expected {s.size} values for variable {i}, got shape "
                                 f"{src.shape}")
            s.reshape(-1)[:] = src.reshape(-1)

    def _load_flat(self, pending):
        seg = self._flat["seg_start"]
        for i in range(len(seg) - 1):
            self._load_slots(i, [s[seg[i]:seg[i + 1]] for s in self._flat["slots"]], pending)

    def __repr__(self):
        return f"{type(self).__name__}(learning_rate={self._learning_rate!r}, name={self.name!r})"
