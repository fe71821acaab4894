"""Training callbacks with Keras 3 hooks, order and semantics.

``fit`` builds one :class:`CallbackList` (the user's callbacks, then a :class:`History`, then a
:class:`ProgbarLogger` when verbose) and calls, in order::

    on_train_begin
      on_epoch_begin(epoch)
        on_train_batch_begin(batch) ... on_train_batch_end(batch, logs)   (each batch)
        [on_test_begin ... on_test_end]                                   (validation)
      on_epoch_end(epoch, logs)                (logs: loss, metrics, then val_loss, val_<metric>)
    on_train_end

``evaluate`` calls on_test_begin / on_test_batch_* / on_test_end and ``predict`` the on_predict_*
hooks. A callback stops training by setting ``model.stop_training = True``; the model checks it
after each batch and each epoch.

What a callback may use of the model (docs/design.md): ``stop_training``, ``optimizer``
(``learning_rate`` readable and settable, ``iterations``), ``get_weights()``, ``set_weights()``,
``save(path)``, ``save_weights(path)``, ``history``; optionally ``weights`` (arrays) and
``metrics`` (Metric objects, for the direction of a monitored metric).

``params`` set by the model (all optional): ``epochs``, ``steps`` (batches per epoch, or of the
evaluate/predict pass), ``verbose``.
"""
import collections.abc
import csv
import inspect
import math
import os
import sys
import time
import warnings

import numpy as np

from nncore import distributed as _dist

__all__ = [
    "Callback", "CallbackList", "History", "Progbar", "ProgbarLogger", "EarlyStopping",
    "ReduceLROnPlateau", "LearningRateScheduler", "TerminateOnNaN", "ModelCheckpoint",
    "CSVLogger", "LambdaCallback",
]

_HOOKS = (
    "on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end",
    "on_train_batch_begin", "on_train_batch_end", "on_test_begin", "on_test_end",
    "on_test_batch_begin", "on_test_batch_end", "on_predict_begin", "on_predict_end",
    "on_predict_batch_begin", "on_predict_batch_end", "on_batch_begin", "on_batch_end",
)
_HOOKS_SET = frozenset(_HOOKS)


def _print(msg, file=None):
    if _dist.rank() != 0:      # in an MPI job only rank 0 prints
        return
    _write(sys.stdout if file is None else file, msg + "\n")


def _write(f, text):
    try:
        f.write(text)
    except UnicodeEncodeError:       # a stream that cannot encode the bar: "=" instead (as Keras)
        f.write(text.replace("━", "=").replace("─", "."))
    f.flush()


class Callback:
    """Base class of callbacks: every hook exists and does nothing.

    Attributes
    ----------
    model : the model being trained (set by ``set_model``).
    params : dict of training parameters (``epochs``, ``steps``, ``verbose``).

    Notes
    -----
    As in Keras, ``on_train_batch_begin/end`` call ``on_batch_begin/end`` by default, so a
    callback written against the older names still runs during training (only).
    """

    params = {}
    _model = None

    def set_model(self, model):
        self._model = model

    def set_params(self, params):
        self.params = params

    @property
    def model(self):
        return self._model

    def on_train_begin(self, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_batch_begin(self, batch, logs=None):
        pass

    def on_batch_end(self, batch, logs=None):
        pass

    def on_train_batch_begin(self, batch, logs=None):
        self.on_batch_begin(batch, logs=logs)

    def on_train_batch_end(self, batch, logs=None):
        self.on_batch_end(batch, logs=logs)

    def on_test_begin(self, logs=None):
        pass

    def on_test_end(self, logs=None):
        pass

    def on_test_batch_begin(self, batch, logs=None):
        pass

    def on_test_batch_end(self, batch, logs=None):
        pass

    def on_predict_begin(self, logs=None):
        pass

    def on_predict_end(self, logs=None):
        pass

    def on_predict_batch_begin(self, batch, logs=None):
        pass

    def on_predict_batch_end(self, batch, logs=None):
        pass


def _overrides(cb, hook):
    """Whether cb does something in `hook` (so the list can skip the call when it does not).
    A callback may answer for itself through a ``_listens(hook)`` method (True/False, or None
    to fall back to whether the method is overridden)."""
    listens = getattr(cb, "_listens", None)
    if listens is not None:
        answer = listens(hook)
        if answer is not None:
            return bool(answer)
    if hook in vars(cb):
        return True
    if getattr(type(cb), hook) is not getattr(Callback, hook):
        return True
    alias = _ALIAS.get(hook)
    return alias is not None and _overrides(cb, alias)


_ALIAS = {"on_train_batch_begin": "on_batch_begin", "on_train_batch_end": "on_batch_end"}
_CLASS_HOOKS = {}   # callback class -> frozenset of the hooks its methods override (see _hooks_of)


def _class_hooks(cls):
    """The hooks (aliases included) that class `cls` overrides, computed once per class
    (a hook method assigned to the class after its first use in a fit is not seen)."""
    hooks = _CLASS_HOOKS.get(cls)
    if hooks is None:
        def over(h):
            if getattr(cls, h) is not getattr(Callback, h):
                return True
            alias = _ALIAS.get(h)
            return alias is not None and over(alias)
        hooks = _CLASS_HOOKS[cls] = frozenset(h for h in _HOOKS if over(h))
    return hooks


def _hooks_of(cb):
    """The set of hooks cb does something in; the same answers as ``_overrides(cb, hook)`` for
    every hook, with the class-level introspection cached per class."""
    if getattr(cb, "_listens", None) is not None or not _HOOKS_SET.isdisjoint(vars(cb)):
        return frozenset(h for h in _HOOKS if _overrides(cb, h))   # per-instance answers
    return _class_hooks(type(cb))


class _HookTable(dict):
    """hook name -> list of listening callbacks; a hook nobody listens to maps to ()."""

    def __missing__(self, hook):
        return ()


def _pythonify(logs):
    """A copy of logs with numeric values as Python floats (Keras passes floats to batch hooks)."""
    out = {}
    for k, v in logs.items():
        try:
            out[k] = float(v)
        except (TypeError, ValueError):
            out[k] = v
    return out


class CallbackList(Callback):
    """Calls a list of callbacks in order.

    Parameters
    ----------
    callbacks : list of Callback, default=None
        Nested lists are flattened.
    add_history : bool, default=True
        Append a :class:`History` unless the list has one; ``model.history`` is set to it.
    add_progbar : bool, default=False
        Append a :class:`ProgbarLogger` unless the list has one.
    model : model, default=None
    **params
        Passed to every callback's ``set_params`` (``epochs``, ``steps``, ``verbose``).

    Notes
    -----
    Hooks are dispatched only to callbacks that define them, and the batch hooks copy ``logs``
    (values as Python floats) only when some callback listens, so an idle list costs a few
    hundred nanoseconds per batch. ``has_train_batch_hooks`` tells the model whether per-batch
    logs are wanted at all. Add callbacks with :meth:`append` (it updates the dispatch tables).
    """

    def __init__(self, callbacks=None, add_history=True, add_progbar=False, model=None,
                 **params):
        self.callbacks = []
        for cb in self._flatten(callbacks):
            self.callbacks.append(cb)
        self._history = next((c for c in self.callbacks if isinstance(c, History)), None)
        self._progbar = next((c for c in self.callbacks if isinstance(c, ProgbarLogger)), None)
        if self._history is None and add_history:
            self._history = History()
            self.callbacks.append(self._history)
        if self._progbar is None and add_progbar:
            self._progbar = ProgbarLogger()
            self.callbacks.append(self._progbar)
        self.params = {}
        self.set_model(model)
        self.set_params(params)
        self._index()

    @staticmethod
    def _flatten(callbacks):
        if callbacks is None:
            return []
        if isinstance(callbacks, Callback):
            return [callbacks]
        if not isinstance(callbacks, (list, tuple)):
            raise TypeError(f"callbacks: expected a list of Callback instances, got "
                            f"{type(callbacks).__name__}")
        out = []
        for i, cb in enumerate(callbacks):
            if isinstance(cb, (list, tuple)):
                out.extend(CallbackList._flatten(cb))
            elif isinstance(cb, Callback):
                out.append(cb)
            else:
                raise TypeError(f"callbacks[{i}]: expected a Callback instance, got "
                                f"{type(cb).__name__} (subclass nncore.callbacks.Callback or use "
                                "LambdaCallback)")
        return out

    def _index(self):
        by_hook = _HookTable()          # hook -> its listeners in list order; () for none
        for c in self.callbacks:
            for h in _hooks_of(c):
                by_hook.setdefault(h, []).append(c)
        self._by_hook = by_hook
        self.has_train_batch_hooks = "on_train_batch_begin" in by_hook or "on_train_batch_end" in by_hook

    def append(self, callback):
        """Add a callback at the end."""
        for cb in self._flatten([callback]):
            self.callbacks.append(cb)
            if self.model is not None:
                cb.set_model(self.model)
            if self.params:
                cb.set_params(self.params)
        self._index()

    def set_model(self, model):
        if model is None:
            return
        super().set_model(model)
        if self._history is not None:
            model.history = self._history
        for cb in self.callbacks:
            cb.set_model(model)

    def set_params(self, params):
        self.params = params
        if params:
            for cb in self.callbacks:
                cb.set_params(params)
        if hasattr(self, "_by_hook"):
            self._index()  # a callback's interest may depend on params (ProgbarLogger.verbose)

    # -- dispatch; logs dicts are shared along the list, so a callback may add entries
    # (ReduceLROnPlateau adds learning_rate) that later ones (History) see.
    def _call(self, hook, logs):
        logs = {} if logs is None else logs
        for cb in self._by_hook[hook]:
            getattr(cb, hook)(logs)

    def _call_batch(self, hook, batch, logs):
        cbs = self._by_hook[hook]
        if cbs:
            logs = {} if logs is None else _pythonify(logs)
            for cb in cbs:
                getattr(cb, hook)(batch, logs)

    def on_train_begin(self, logs=None):
        self._call("on_train_begin", logs)

    def on_train_end(self, logs=None):
        self._call("on_train_end", logs)

    def on_test_begin(self, logs=None):
        self._call("on_test_begin", logs)

    def on_test_end(self, logs=None):
        self._call("on_test_end", logs)

    def on_predict_begin(self, logs=None):
        self._call("on_predict_begin", logs)

    def on_predict_end(self, logs=None):
        self._call("on_predict_end", logs)

    def on_epoch_begin(self, epoch, logs=None):
        logs = {} if logs is None else logs
        for cb in self._by_hook["on_epoch_begin"]:
            cb.on_epoch_begin(epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        logs = {} if logs is None else logs
        for cb in self._by_hook["on_epoch_end"]:
            cb.on_epoch_end(epoch, logs)

    def on_batch_begin(self, batch, logs=None):
        self._call_batch("on_batch_begin", batch, logs)

    def on_batch_end(self, batch, logs=None):
        self._call_batch("on_batch_end", batch, logs)

    def on_train_batch_begin(self, batch, logs=None):
        self._call_batch("on_train_batch_begin", batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        self._call_batch("on_train_batch_end", batch, logs)

    def on_test_batch_begin(self, batch, logs=None):
        self._call_batch("on_test_batch_begin", batch, logs)

    def on_test_batch_end(self, batch, logs=None):
        self._call_batch("on_test_batch_end", batch, logs)

    def on_predict_batch_begin(self, batch, logs=None):
        self._call_batch("on_predict_batch_begin", batch, logs)

    def on_predict_batch_end(self, batch, logs=None):
        cbs = self._by_hook["on_predict_batch_end"]
        if cbs:  # predict logs may hold the output arrays: passed as they are
            logs = {} if logs is None else logs
            for cb in cbs:
                cb.on_predict_batch_end(batch, logs)

    def __iter__(self):
        return iter(self.callbacks)

    def __len__(self):
        return len(self.callbacks)


class History(Callback):
    """Records the logs of every epoch: ``history[key]`` is the list of per-epoch values and
    ``epoch`` the list of epoch indices. ``fit`` returns it and sets ``model.history`` to it.
    A History reused across fits keeps appending (as in Keras); ``epoch`` restarts per fit."""

    def __init__(self):
        self.history = {}
        self.epoch = []

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)
        if self.model is not None:
            self.model.history = self

    def plot(self, metrics=None, ax=None, path=None):
        """Plot the loss and each metric per epoch, training and validation on the same axes;
        returns the Axes (see :func:`nncore.plot.history`; needs matplotlib)."""
        from nncore import plot
        return plot.history(self, metrics=metrics, ax=ax, path=path)

    def __repr__(self):
        return f"<History epochs={len(self.epoch)} keys={list(self.history)}>"


# ---------------------------------------------------------------- progress display
#
# Keras 3's format (keras/src/utils/progbar.py), for the same calls:
#   verbose=1, a terminal: each redraw is "\r" + line; the last one of a pass ends in "\n"
#     known total:  "\x1b[1m 5/12\x1b[0m \x1b[32m━━━━━━━━\x1b[0m\x1b[37m━━━━━━━━━━━━\x1b[0m \x1b[1m0s\x1b[0m 15ms/step - loss: 0.8951"
#                   (step counter in bold, 20-character bar green/grey, the ETA while running and
#                   the elapsed time on the final line, both bold, then the time per step)
#     unknown total: "      5/Unknown \x1b[1m0s\x1b[0m 18ms/step - loss: 0.8238"
#   verbose=2: one line per pass, "16/16 - 0s - 15ms/step - loss: 0.8244"
#   values: "%.4f" when |v| > 1e-3, else "%.4e" (verbose=2: v > 1e-3, Keras's test without abs)
# The time per step leaves out the first step once there are more (it holds the warm-up).
# Where nncore differs on purpose: Keras redraws with backspaces before the "\r" and treats every
# POSIX process as a terminal, so its logs in a pipe or file fill with redraws; nncore redraws
# only on a terminal (file.isatty() or IPython), and elsewhere writes each pass's final line in
# the same format without the color codes, plus a progress line at most every `log_interval`
# seconds (whose bar shows the part still to go as "─", the grey of the terminal).

_BOLD, _GREEN, _GREY, _RESET = "\x1b[1m", "\x1b[32m", "\x1b[37m", "\x1b[0m"


def _format_eta(seconds):
    if seconds > 3600:
        return "%d:%02d:%02d" % (seconds // 3600, (seconds % 3600) // 60, seconds % 60)
    if seconds > 60:
        return "%d:%02d" % (seconds // 60, seconds % 60)
    return "%ds" % seconds


def _format_per_unit(seconds, unit):
    if seconds >= 1 or seconds == 0:
        return f"{seconds:.0f}s/{unit}"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms/{unit}"
    return f"{seconds * 1e6:.0f}us/{unit}"


def _format_value(v, signed=True):
    """Keras's number format: 4 decimals, scientific at or below 1e-3 (in absolute value when
    `signed`; Keras's one-line-per-epoch form compares v itself)."""
    if isinstance(v, (float, int, np.floating, np.integer)) and not isinstance(v, bool):
        v = float(v)
        return f"{v:.4f}" if (abs(v) if signed else v) > 1e-3 else f"{v:.4e}"
    return str(v)


class Progbar:
    """A progress bar in Keras 3's format that redraws in place on a terminal and stays quiet in logs.

    Parameters
    ----------
    target : int or None
        Total number of steps (None when unknown: the counter reads ``n/Unknown``).
    width : int, default=20
        Characters of the bar.
    verbose : {0, 1, 2}, default=1
        0 silent; 1 a bar (redrawn in place on a terminal); 2 one line when finalized.
    interval : float, default=0.05
        Minimum seconds between redraws on a terminal.
    stateful_metrics : iterable of str, default=None
        Names whose values are shown as given; other values are averaged over the steps they were
        reported for (Keras's Progbar rule).
    unit_name : str, default="step"
    file : file-like, default=None
        Where to write (``sys.stdout`` at the time of writing when None).
    log_interval : float, default=30.0
        When the output is not a terminal (a pipe or file) with verbose=1, a progress line is
        written at most this often, plus the final line; nothing is redrawn.

    Notes
    -----
    The lines are Keras 3's (see the comment above this class). A terminal is recognised by
    ``file.isatty()`` (or a running IPython kernel); only there are lines redrawn ("\\r") and
    colored.
    """

    def __init__(self, target, width=20, verbose=1, interval=0.05, stateful_metrics=None,
                 unit_name="step", file=None, log_interval=30.0):
        if target is not None and (isinstance(target, bool) or not isinstance(target, (int, np.integer))
                                   or target < 0):
            raise ValueError(f"Progbar: target must be None or a non-negative int, got {target!r}")
        if verbose not in (0, 1, 2):
            raise ValueError(f"Progbar: verbose must be 0, 1 or 2, got {verbose!r}")
        self.target = None if target is None else int(target)
        self.width = int(width)
        self.verbose = verbose
        self.interval = float(interval)
        self.log_interval = float(log_interval)
        self.stateful_metrics = set(stateful_metrics or ())
        self.unit_name = unit_name
        self._file = file
        self._values = {}
        self._seen_so_far = 0
        self._start = time.monotonic()
        self._after_first_step = None
        self._last_draw = -math.inf
        self._last_log = self._start
        self._prev_width = 0
        self._finalized = False
        self._dynamic = None

    @property
    def file(self):
        return sys.stdout if self._file is None else self._file

    def _is_dynamic(self):
        if self._dynamic is None:
            f = self.file
            try:
                tty = bool(f.isatty())
            except (AttributeError, ValueError, OSError):
                tty = False
            self._dynamic = tty or "ipykernel" in sys.modules
        return self._dynamic

    def update(self, current, values=None, finalize=None):
        """Record progress up to step ``current`` with ``values`` (a dict or (name, value) pairs)
        and redraw when due. ``finalize`` defaults to ``current >= target``."""
        if finalize is None:
            finalize = self.target is not None and current >= self.target
        items = values.items() if isinstance(values, dict) else (values or ())
        for k, v in items:
            if k in self.stateful_metrics or finalize:
                self._values[k] = [v, 1]
            else:
                n = max(current - self._seen_so_far, 1)
                acc = self._values.get(k)
                if acc is None or isinstance(acc[0], str):
                    self._values[k] = [v * n, n]
                else:
                    acc[0] += v * n
                    acc[1] += n
        self._seen_so_far = current
        now = time.monotonic()
        per_step = self._per_step(current, now)
        if self.verbose == 0 or self._finalized:
            return
        if finalize:
            self._finalized = True
            self._write_final(current, now, per_step)
            return
        if self.verbose != 1:
            return
        if self._is_dynamic():
            if now - self._last_draw >= self.interval:
                self._last_draw = now
                self._redraw(self._bar_line(current, now, per_step, False, True), "")
        elif now - self._last_log >= self.log_interval:
            self._last_log = now
            _print(self._bar_line(current, now, per_step, False, False)[0], self.file)

    def add(self, n, values=None):
        """Advance by n steps."""
        self.update(self._seen_so_far + n, values)

    def _per_step(self, current, now):
        """Seconds per step: from the end of step 1 on once there are more steps (Keras's rule)."""
        if not current:
            return 0.0
        if self._after_first_step is not None and current > 1:
            per = (now - self._after_first_step) / (current - 1)
        else:
            per = (now - self._start) / current
        if current == 1:
            self._after_first_step = now
        return per

    def _values_text(self, signed=True):
        parts = []
        for k, (total, count) in self._values.items():
            v = total if isinstance(total, str) else total / max(count, 1)
            parts.append(f" - {k}: {_format_value(v, signed)}")
        return "".join(parts)

    def _bar_line(self, current, now, per_step, final, color):
        """(line, its visible width): counter, bar, ETA (or elapsed time), time per step, values."""
        def bold(text):
            return f"{_BOLD}{text}{_RESET}" if color else text

        known = self.target is not None and self.target > 0
        if known:
            done = int(self.width * current / self.target)
            counter = f"{current:>{len(str(self.target))}}/{self.target}"
            bar = "━" * done, "━" * (self.width - done)
            if color:
                bar = (f"{_GREEN}{bar[0]}{_RESET}" if done > 0 else "") + f"{_GREY}{bar[1]}{_RESET}"
            else:                    # no colors: the rest of the bar in a lighter line
                bar = bar[0] + "─" * (self.width - done)
            text = f"{bold(counter)} {bar}"
            width = len(counter) + 1 + self.width
        else:
            text = "%7d/Unknown" % current
            width = len(text)
        clock = _format_eta(per_step * (self.target - current)) if known and not final \
            else f"{now - self._start:.0f}s"
        info = f" {bold(clock)} {_format_per_unit(per_step, self.unit_name)}{self._values_text()}"
        width += len(info) - (len(bold(clock)) - len(clock))
        return text + info, width

    def _redraw(self, line_width, end):
        line, width = line_width
        pad = " " * max(self._prev_width - width, 0)
        self._prev_width = width
        _write(self.file, "\r" + line + pad + end)

    def _write_final(self, current, now, per_step):
        if self.verbose == 2:
            if self.target is None or self.target <= 0:
                return
            counter = f"{current:>{len(str(self.target))}}/{self.target}"
            _print(f"{counter} - {now - self._start:.0f}s - {_format_per_unit(per_step, self.unit_name)}"
                   f"{self._values_text(signed=False)}", self.file)
            return
        if self._is_dynamic():
            self._redraw(self._bar_line(current, now, per_step, True, True), "\n")
        else:
            _print(self._bar_line(current, now, per_step, True, False)[0], self.file)


class ProgbarLogger(Callback):
    """Prints training progress: ``Epoch i/N`` and a :class:`Progbar` per epoch (verbose=1),
    one line per epoch (verbose=2), nothing (verbose=0). ``evaluate`` and ``predict`` get a bar of
    their own; the validation pass inside ``fit`` prints nothing of its own (its ``val_*`` values
    appear on the epoch's line).

    Parameters
    ----------
    verbose : {0, 1, 2, "auto"}, default=None
        None takes ``params["verbose"]`` ("auto" means 1).
    file : file-like, default=None
        Passed to the Progbar (``sys.stdout`` when None).

    Notes
    -----
    Keras 3's rules: the step total is ``params["steps"]``; when it is None (input of unknown
    length) the bar counts ``n/Unknown`` until the first pass ends, whose step count becomes the
    total of the later epochs. The final line of a pass shows the whole pass (total/total). The
    model's logs already hold running means (loss and metrics over the epoch so far), so every
    value is shown as given.
    """

    def __init__(self, verbose=None, file=None):
        self._verbose_arg = verbose
        self.verbose = 1 if verbose in (None, "auto") else verbose
        self.file = file
        self.epochs = 1
        self.target = None
        self.progbar = None
        self.seen = 0
        self._in_fit = False

    _BATCH_END = ("on_train_batch_end", "on_test_batch_end", "on_predict_batch_end")

    def _listens(self, hook):
        # only the in-place bar needs per-batch logs; verbose 2 and 0 print at most per epoch, so
        # the model can skip computing batch logs for them (verbose 2 still counts the steps of a
        # pass of unknown length: its line shows them)
        if hook in self._BATCH_END:
            return self.verbose == 1 or (self.verbose == 2 and self.target is None)
        return None

    def set_params(self, params):
        super().set_params(params)
        v = self._verbose_arg
        if v is None:
            v = params.get("verbose", 1)
        self.verbose = 1 if v == "auto" else v
        if self.verbose not in (0, 1, 2):
            raise ValueError(f"ProgbarLogger: verbose must be 0, 1, 2 or 'auto', got {v!r}")
        self.epochs = params.get("epochs", 1) or 1
        self.target = params.get("steps")

    def _reset(self):
        self.seen = 0
        self.progbar = None

    def _bar(self):
        if self.progbar is None:
            self.progbar = Progbar(self.target, verbose=self.verbose, unit_name="step",
                                   file=self.file)
        return self.progbar

    def _update(self, batch, logs):
        bar = self._bar()
        bar.stateful_metrics.update(logs or {})
        self.seen = batch + 1
        bar.update(self.seen, logs, finalize=False)

    def on_train_begin(self, logs=None):
        self._in_fit = True

    def on_train_end(self, logs=None):
        self._in_fit = False

    def on_epoch_begin(self, epoch, logs=None):
        self._reset()
        if self.verbose and self.epochs > 1:
            _print(f"Epoch {epoch + 1}/{self.epochs}", self.file)
        if self.verbose:
            self._bar()  # starts the epoch's clock

    def on_train_batch_end(self, batch, logs=None):
        if self.verbose == 1:
            self._update(batch, logs)
        else:
            self.seen = batch + 1

    def on_epoch_end(self, epoch, logs=None):
        if self.verbose:
            self._finish_pass(logs)

    def on_test_begin(self, logs=None):
        if not self._in_fit:
            self._reset()
            if self.verbose:
                self._bar()

    def on_test_batch_end(self, batch, logs=None):
        if not self._in_fit:
            if self.verbose == 1:
                self._update(batch, logs)
            else:
                self.seen = batch + 1

    def _finish_pass(self, logs):
        # Keras: the final line shows the whole pass (target/target); a total unknown until now
        # becomes the steps seen, and stays the total of the later epochs
        bar = self._bar()
        if self.target is None:
            self.target = bar.target = self.seen
        bar.stateful_metrics.update(logs or {})
        bar.update(self.target, logs, finalize=True)

    def on_test_end(self, logs=None):
        if not self._in_fit and self.verbose:
            self._finish_pass(logs)

    def on_predict_begin(self, logs=None):
        if not self._in_fit:
            self._reset()
            if self.verbose:
                self._bar()

    def on_predict_batch_end(self, batch, logs=None):
        if not self._in_fit:
            if self.verbose == 1:
                self._update(batch, None)
            else:
                self.seen = batch + 1

    def on_predict_end(self, logs=None):
        if not self._in_fit and self.verbose:
            self._finish_pass(None)


# ---------------------------------------------------------------- monitoring

_UP_WORDS = ("acc", "auc", "precision", "recall")


def _auto_direction(monitor, model, owner, strict=True):
    """'max' or 'min' for mode='auto', by Keras's rules.

    The metric name is ``monitor`` without a leading "val_". "loss" -> min. A Metric of that name
    among ``model.metrics`` with a ``_direction`` decides next ("up" -> max). Otherwise the name
    decides: containing "acc" (accuracy), "auc", "precision" or "recall" -> max; ending in
    "loss" or "error", or "mse"/"mae" -> min. Anything else raises ValueError (strict) or gives
    min.
    """
    name = monitor[4:] if monitor.startswith("val_") else monitor
    if name == "loss":
        return "min"
    found = list(getattr(model, "metrics", None) or ()) + \
        list(getattr(model, "compiled_metrics", None) or ())
    for m in found:
        if getattr(m, "name", None) == name and getattr(m, "_direction", None) in ("up", "down"):
            return "max" if m._direction == "up" else "min"
    if any(w in name for w in _UP_WORDS):
        return "max"
    if name.endswith(("loss", "error")) or name in ("mse", "mae"):
        return "min"
    if not strict:
        return "min"
    raise ValueError(f"{owner} callback received monitor={monitor!r}, but cannot tell whether "
                     "that quantity should be maximized or minimized. Pass mode='max' to use the "
                     "highest value or mode='min' to use the lowest.")


def _check_mode(mode, owner):
    if mode not in ("auto", "min", "max"):
        warnings.warn(f"{owner} mode {mode!r} is unknown, fallback to auto mode.", stacklevel=3)
        return "auto"
    return mode


class EarlyStopping(Callback):
    """Stop training when a monitored quantity has stopped improving (Keras 3 rules).

    Parameters
    ----------
    monitor : str, default="val_loss"
    min_delta : float, default=0
        An improvement must exceed |min_delta|.
    patience : int, default=0
        Epochs without improvement after which training stops.
    verbose : int, default=0
    mode : {"auto", "min", "max"}, default="auto"
        "auto": "loss" -> min; accuracy ("acc" in the name), "auc", precision, recall -> max;
        a model metric's own direction when the model has it; otherwise ValueError.
    baseline : float, default=None
        The wait counter restarts only when the value beats both the previous best and the
        baseline.
    restore_best_weights : bool, default=False
        At the end of training, restore the weights of the best epoch (from the first monitored
        epoch on, even if no epoch beats the baseline).
    start_from_epoch : int, default=0
        Epochs before this are not monitored.

    Notes
    -----
    At each epoch end (epoch >= start_from_epoch, value present): ``wait += 1``; if
    ``op(current - delta, best)`` (op = less with delta = -|min_delta| for min, greater with
    delta = +|min_delta| for max): best = current, and wait = 0 unless a baseline is set and not
    beaten. Otherwise, if ``wait >= patience and epoch > 0``: stop. So with patience=0 training
    stops at the first epoch (after the first) that does not improve. Unlike Keras, ``best``
    restarts at each ``on_train_begin``, so an instance can be reused across fits.
    """

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0):
        if not isinstance(patience, (int, np.integer)) or isinstance(patience, bool) or patience < 0:
            raise ValueError(f"EarlyStopping: patience must be a non-negative int, got {patience!r}")
        if not isinstance(start_from_epoch, (int, np.integer)) or start_from_epoch < 0:
            raise ValueError(f"EarlyStopping: start_from_epoch must be a non-negative int, "
                             f"got {start_from_epoch!r}")
        if not isinstance(monitor, str):
            raise TypeError(f"EarlyStopping: monitor must be a str, got {type(monitor).__name__}")
        self.monitor = monitor
        self.patience = int(patience)
        self.verbose = verbose
        self.baseline = baseline
        self.min_delta = abs(float(min_delta))
        self.restore_best_weights = bool(restore_best_weights)
        self.start_from_epoch = int(start_from_epoch)
        self.mode = _check_mode(mode, "EarlyStopping")
        self.monitor_op = None
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights = None
        self.best_epoch = 0

    def _set_monitor_op(self):
        mode = self.mode if self.mode != "auto" else _auto_direction(
            self.monitor, self.model, "EarlyStopping")
        self.monitor_op = np.less if mode == "min" else np.greater
        self._delta = -self.min_delta if mode == "min" else self.min_delta
        self.best = math.inf if mode == "min" else -math.inf

    def _is_improvement(self, value, reference):
        return bool(self.monitor_op(value - self._delta, reference))

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = 0
        self.best_weights = None
        self.best_epoch = 0
        self.monitor_op = None

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor_op is None:
            self._set_monitor_op()
        current = self._get_monitor_value(logs)
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = _copy_weights(self.model)
            self.best_epoch = epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = _copy_weights(self.model)
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            _print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                _print(f"Restoring model weights from the end of the best epoch: "
                       f"{self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)

    def _get_monitor_value(self, logs):
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is None:
            warnings.warn(f"Early stopping conditioned on metric `{self.monitor}` which is not "
                          f"available. Available metrics are: {','.join(logs)}", stacklevel=3)
            return None
        return float(value)


def _copy_weights(model):
    return [np.array(w, copy=True) for w in model.get_weights()]


def _get_lr(optimizer, owner):
    if optimizer is None or not hasattr(optimizer, "learning_rate"):
        raise ValueError(f"{owner}: the model's optimizer must have a learning_rate attribute")
    lr = optimizer.learning_rate
    if callable(lr):  # a schedule: its value at the current step
        return float(lr(getattr(optimizer, "iterations", 0)))
    return float(lr)


def _set_lr(optimizer, value, owner):
    if callable(optimizer.learning_rate):
        raise TypeError(f"{owner}: the optimizer's learning_rate is a schedule "
                        f"({type(optimizer.learning_rate).__name__}); it cannot also be set by a "
                        "callback. Use a float learning rate.")
    optimizer.learning_rate = float(value)


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` when a quantity has stopped improving.

    Parameters
    ----------
    monitor : str, default="val_loss"
    factor : float, default=0.1
        new_lr = max(lr * factor, min_lr); must be < 1.
    patience : int, default=10
    verbose : int, default=0
    mode : {"auto", "min", "max"}, default="auto"
        "auto" is max for names containing "acc" (Keras's rule), and also for "auc",
        "precision" and "recall" (where Keras would minimise), min otherwise.
    min_delta : float, default=1e-4
        Improvement means current < best - min_delta (min) or current > best + min_delta (max).
    cooldown : int, default=0
        Epochs after a reduction during which waiting is suspended.
    min_lr : float, default=0.0

    Notes
    -----
    Per epoch end (Keras): if in cooldown, cooldown_counter -= 1 and wait = 0. If improved,
    best = current and wait = 0; otherwise, when not in cooldown, wait += 1 and at
    wait >= patience the rate is reduced (if lr > float32(min_lr)), cooldown starts, wait = 0.
    Adds ``learning_rate`` to the epoch logs.
    """

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto",
                 min_delta=1e-4, cooldown=0, min_lr=0.0, **kwargs):
        if kwargs:
            raise TypeError(f"ReduceLROnPlateau: unexpected arguments {sorted(kwargs)}")
        if not factor < 1.0:
            raise ValueError(f"ReduceLROnPlateau does not support a factor >= 1.0. "
                             f"Received factor={factor}")
        if not factor >= 0.0:
            raise ValueError(f"ReduceLROnPlateau: factor must be >= 0, got {factor}")
        if not min_lr >= 0:
            raise ValueError(f"ReduceLROnPlateau: min_lr must be >= 0, got {min_lr}")
        if not isinstance(monitor, str):      # was 'int' object has no attribute 'startswith'
            raise TypeError(f"ReduceLROnPlateau: monitor must be a str, got {type(monitor).__name__}")
        for arg, v in (("patience", patience), ("cooldown", cooldown)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:   # inf: OverflowError
                raise ValueError(f"ReduceLROnPlateau: {arg} must be a non-negative int, got {v!r}")
        self.monitor = monitor
        self.factor = float(factor)
        self.min_lr = float(min_lr)
        self.min_delta = float(min_delta)
        self.patience = int(patience)
        self.verbose = verbose
        self.cooldown = int(cooldown)
        self.mode = _check_mode(mode, "ReduceLROnPlateau")
        self._reset()

    def _reset(self):
        mode = self.mode if self.mode != "auto" else _auto_direction(
            self.monitor, None, "ReduceLROnPlateau", strict=False)
        if mode == "min":
            self.monitor_op = lambda a, b: a < b - self.min_delta
            self.best = math.inf
        else:
            self.monitor_op = lambda a, b: a > b + self.min_delta
            self.best = -math.inf
        self.cooldown_counter = 0
        self.wait = 0

    def on_train_begin(self, logs=None):
        self._reset()

    def in_cooldown(self):
        return self.cooldown_counter > 0

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        optimizer = self.model.optimizer
        logs["learning_rate"] = _get_lr(optimizer, "ReduceLROnPlateau")
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"Learning rate reduction is conditioned on metric `{self.monitor}` "
                          f"which is not available. Available metrics are: {','.join(logs)}.",
                          stacklevel=2)
            return
        current = float(current)
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self.monitor_op(current, self.best):
            self.best = current
            self.wait = 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience:
                old_lr = _get_lr(optimizer, "ReduceLROnPlateau")
                if old_lr > np.float32(self.min_lr):
                    new_lr = max(old_lr * self.factor, self.min_lr)
                    _set_lr(optimizer, new_lr, "ReduceLROnPlateau")
                    if self.verbose > 0:
                        _print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate "
                               f"to {new_lr}.")
                    self.cooldown_counter = self.cooldown
                    self.wait = 0


class LearningRateScheduler(Callback):
    """Set the learning rate at the start of every epoch from ``schedule``.

    Parameters
    ----------
    schedule : callable
        ``schedule(epoch, lr) -> new lr`` (epoch from 0, lr the current rate), or
        ``schedule(epoch)`` when it takes one argument.
    verbose : int, default=0

    Notes
    -----
    The result must be a finite, non-negative real number (ValueError otherwise). Adds
    ``learning_rate`` to the epoch logs.
    """

    def __init__(self, schedule, verbose=0):
        if not callable(schedule):
            raise TypeError(f"LearningRateScheduler: schedule must be callable, got "
                            f"{type(schedule).__name__}")
        self.schedule = schedule
        self.verbose = verbose
        self._two_args = self._takes_lr(schedule)

    @staticmethod
    def _takes_lr(fn):
        try:
            sig = inspect.signature(fn)
        except (TypeError, ValueError):
            return True
        n = 0
        for p in sig.parameters.values():
            if p.kind == p.VAR_POSITIONAL:
                return True
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
                n += 1
        return n >= 2

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        lr = _get_lr(optimizer, "LearningRateScheduler")
        new = self.schedule(epoch, lr) if self._two_args else self.schedule(epoch)
        if isinstance(new, np.ndarray) and new.ndim == 0:
            new = new[()]
        if isinstance(new, bool) or not isinstance(new, (int, float, np.integer, np.floating)) \
                or not math.isfinite(new) or new < 0:
            raise ValueError(f"LearningRateScheduler: the schedule must return a finite, "
                             f"non-negative float; epoch {epoch} gave {new!r}")
        _set_lr(optimizer, float(new), "LearningRateScheduler")
        if self.verbose > 0:
            _print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to "
                   f"{float(new)}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = _get_lr(self.model.optimizer, "LearningRateScheduler")


class TerminateOnNaN(Callback):
    """Stop training when a batch's loss is NaN or infinite, keeping the last finite weights.

    Parameters
    ----------
    raise_error : bool, default=False
        Raise RuntimeError instead of stopping gracefully (Keras 3's option); the weights are
        restored first either way.

    Notes
    -----
    On a non-finite ``logs["loss"]`` at the end of a training batch it sets
    ``model.stop_training = True``, so ``fit`` ends after that batch and the end-of-training
    hooks run. The weights left in the model are the latest all-finite ones among: the current
    weights (a model that does not apply an update whose loss is non-finite keeps them), the
    weights at the start of this batch, and at the start of the previous one. For that the
    callback copies the weights at each batch start into one of two preallocated buffer sets
    (reading ``model.weights`` when the model has it, else ``get_weights()``), restoring with
    ``model.set_weights``: one memory copy of the parameters per batch, only when this callback
    is used. ``handles_nonfinite = True`` tells a model that raises on a non-finite loss to
    leave the decision to this callback.
    """

    handles_nonfinite = True

    def __init__(self, raise_error=False):
        self.raise_error = bool(raise_error)
        self._snaps = None
        self._newest = 0
        self._count = 0
        self.stopped_batch = None

    def on_train_begin(self, logs=None):
        self._snaps = None
        self._count = 0
        self.stopped_batch = None

    def _sources(self):
        ws = getattr(self.model, "weights", None)
        if isinstance(ws, (list, tuple)) and all(isinstance(w, np.ndarray) for w in ws):
            return ws
        return self.model.get_weights()

    def on_train_batch_begin(self, batch, logs=None):
        src = self._sources()
        if self._snaps is None or len(self._snaps[0]) != len(src) or \
                any(s.shape != w.shape for s, w in zip(self._snaps[0], src)):
            self._snaps = ([np.empty_like(w) for w in src], [np.empty_like(w) for w in src])
            self._count = 0
        self._newest ^= 1
        for dst, w in zip(self._snaps[self._newest], src):
            np.copyto(dst, w)
        self._count += 1

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None or math.isfinite(float(loss)):
            return
        self.stopped_batch = batch
        self._restore_finite()
        if self.raise_error:
            raise RuntimeError(f"NaN or Inf loss encountered at batch {batch}. Loss value: {loss}. "
                               "Terminating training immediately.")
        _print(f"Batch {batch}: Invalid loss, terminating training")
        self.model.stop_training = True

    def _restore_finite(self):
        def finite(ws):
            return all(np.isfinite(w).all() for w in ws)
        if finite(self.model.get_weights()):
            return
        if self._snaps is not None:
            order = [self._newest, self._newest ^ 1][:min(self._count, 2)]
            for i in order:
                if finite(self._snaps[i]):
                    self.model.set_weights([w.copy() for w in self._snaps[i]])
                    return
        warnings.warn("TerminateOnNaN: no finite weights to restore; the model's weights are not "
                      "finite", stacklevel=3)


class ModelCheckpoint(Callback):
    """Save the model (``model.save``) or its weights (``model.save_weights``) during training.

    Parameters
    ----------
    filepath : str or os.PathLike
        May hold format fields filled from ``epoch`` (from 1), ``batch`` (from 1, with an integer
        save_freq) and the logs, e.g. ``"ckpt-{epoch:02d}-{val_loss:.2f}.nnc"``. Missing
        directories are created. The saving functions write atomically.
    monitor : str, default="val_loss"
    verbose : int, default=0
    save_best_only : bool, default=False
        Save only when the monitored value improves on the best so far (if it is missing from the
        logs, save anyway, with a warning, as Keras does).
    save_weights_only : bool, default=False
    mode : {"auto", "min", "max"}, default="auto"
        As in :class:`EarlyStopping`.
    save_freq : "epoch" or int, default="epoch"
        An int saves every that many training batches.
    initial_value_threshold : float, default=None
        The initial "best" value with save_best_only.

    Notes
    -----
    Improvement is ``current < best`` (min) or ``current > best`` (max), as in Keras. Keras
    requires the extensions ``.keras`` / ``.weights.h5``; nncore's files have their own format,
    so the extension is not checked.
    """

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False,
                 save_weights_only=False, mode="auto", save_freq="epoch",
                 initial_value_threshold=None):
        self.filepath = os.fspath(filepath)
        if not isinstance(self.filepath, str) or not self.filepath:
            raise ValueError(f"ModelCheckpoint: filepath must be a non-empty path, got {filepath!r}")
        if save_freq != "epoch" and (isinstance(save_freq, bool) or
                                     not isinstance(save_freq, (int, np.integer)) or save_freq <= 0):
            raise ValueError(f"ModelCheckpoint: unrecognized save_freq {save_freq!r}; expected "
                             "'epoch' or a positive int")
        self.monitor = monitor
        self.verbose = verbose
        self.save_best_only = bool(save_best_only)
        self.save_weights_only = bool(save_weights_only)
        self.mode = _check_mode(mode, "ModelCheckpoint")
        self.save_freq = save_freq
        self.initial_value_threshold = initial_value_threshold
        self.best = initial_value_threshold
        self.monitor_op = None
        self._batches_since_save = 0
        self._current_epoch = 0

    def _set_monitor_op(self):
        mode = self.mode if self.mode != "auto" else _auto_direction(
            self.monitor, self.model, "ModelCheckpoint")
        self.monitor_op = np.less if mode == "min" else np.greater
        if self.best is None:
            self.best = math.inf if mode == "min" else -math.inf

    def on_train_begin(self, logs=None):
        self._batches_since_save = 0
        if self.save_best_only and self.monitor_op is None:
            self._set_monitor_op()  # an undecidable mode='auto' fails before any training

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq == "epoch":
            return
        self._batches_since_save += 1
        if self._batches_since_save >= self.save_freq:
            self._batches_since_save = 0
            self._save(self._current_epoch, batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save(epoch, None, logs)

    def _path(self, epoch, batch, logs):
        fields = dict(logs or {})
        fields["epoch"] = epoch + 1
        if batch is not None and "batch" not in fields:
            fields["batch"] = batch + 1
        try:
            return self.filepath.format(**fields)
        except (KeyError, IndexError) as e:
            raise KeyError(f"ModelCheckpoint: failed to format filepath {self.filepath!r}: "
                           f"{e!r} is not among {sorted(fields)}") from None

    def _should_save(self, epoch, logs, path):
        if not self.save_best_only:
            if self.verbose > 0:
                _print(f"\nEpoch {epoch + 1}: saving model to {path}")
            return True
        if self.monitor_op is None:
            self._set_monitor_op()
        current = (logs or {}).get(self.monitor)
        if current is None:
            warnings.warn(f"Can save best model only with {self.monitor} available.",
                          stacklevel=3)
            return True
        current = float(current)
        if self.monitor_op(current, self.best):
            if self.verbose > 0:
                _print(f"\nEpoch {epoch + 1}: {self.monitor} improved from {self.best:.5f} to "
                       f"{current:.5f}, saving model to {path}")
            self.best = current
            return True
        if self.verbose > 0:
            _print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {self.best:.5f}")
        return False

    def _save(self, epoch, batch, logs):
        path = self._path(epoch, batch, logs)
        if not self._should_save(epoch, logs, path):
            return
        if os.path.isdir(path):
            raise IsADirectoryError(f"ModelCheckpoint: filepath {path!r} is an existing "
                                    "directory; give a file path")
        dirname = os.path.dirname(path)
        if dirname and _dist.rank() == 0:     # only rank 0 writes (nncore.distributed)
            os.makedirs(dirname, exist_ok=True)
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)
        self.last_saved = path


class CSVLogger(Callback):
    """Stream each epoch's logs to a CSV file: a header ``epoch,<keys sorted>`` then one row per
    epoch (epoch from 0, missing values written as NA).

    Parameters
    ----------
    filename : str or os.PathLike
    separator : str, default=","
    append : bool, default=False
        Append to an existing file (no second header if it already has content).
    """

    def __init__(self, filename, separator=",", append=False):
        if not isinstance(separator, str) or len(separator) != 1:
            raise ValueError(f"CSVLogger: separator must be a single character, got {separator!r}")
        self.filename = os.fspath(filename)
        self.sep = separator
        self.append = bool(append)
        self.keys = None
        self.writer = None
        self.csv_file = None
        self.append_header = True

    def on_train_begin(self, logs=None):
        self.append_header = True
        if _dist.rank() != 0:      # in an MPI job only rank 0 writes the file
            return
        if self.append and os.path.exists(self.filename):
            with open(self.filename, "r", newline="") as f:
                self.append_header = not bool(f.readline())
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        self.csv_file = open(self.filename, "a" if self.append else "w", newline="")
        self.writer = None
        self.keys = None

    def on_epoch_end(self, epoch, logs=None):
        if self.csv_file is None or self.csv_file.closed:
            return
        logs = logs or {}

        def cell(v):
            if isinstance(v, str):
                return v
            if isinstance(v, np.ndarray) and v.ndim == 0:
                return v.item()
            if isinstance(v, collections.abc.Iterable):
                return f"[{', '.join(map(str, v))}]"
            return v

        if self.keys is None:
            self.keys = sorted(logs)
            for name in getattr(self.model, "metrics_names", None) or ():
                if name.startswith("val_") and name not in self.keys:
                    self.keys.append(name)
        if self.writer is None:
            self.writer = csv.writer(self.csv_file, delimiter=self.sep, lineterminator="\n")
            if self.append_header:
                self.writer.writerow(["epoch"] + self.keys)
        self.writer.writerow([epoch] + [cell(logs.get(k, "NA")) for k in self.keys])
        self.csv_file.flush()

    def on_train_end(self, logs=None):
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        self.writer = None


class LambdaCallback(Callback):
    """A callback made of plain functions.

    Parameters
    ----------
    on_epoch_begin, on_epoch_end : callable(epoch, logs), default=None
    on_train_begin, on_train_end : callable(logs), default=None
    on_train_batch_begin, on_train_batch_end : callable(batch, logs), default=None
    **kwargs
        Any other hook by name (``on_test_begin=...``, ``on_predict_batch_end=...``).
    """

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None,
                 on_train_end=None, on_train_batch_begin=None, on_train_batch_end=None, **kwargs):
        hooks = dict(on_epoch_begin=on_epoch_begin, on_epoch_end=on_epoch_end,
                     on_train_begin=on_train_begin, on_train_end=on_train_end,
                     on_train_batch_begin=on_train_batch_begin,
                     on_train_batch_end=on_train_batch_end, **kwargs)
        for name, fn in hooks.items():
            if name not in _HOOKS:
                raise TypeError(f"LambdaCallback: unknown hook {name!r}; hooks are "
                                f"{', '.join(_HOOKS)}")
            if fn is None:
                continue
            if not callable(fn):
                raise TypeError(f"LambdaCallback: {name} must be callable, got "
                                f"{type(fn).__name__}")
            setattr(self, name, fn)
