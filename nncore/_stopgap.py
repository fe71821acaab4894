"""TEMPORARY stand-ins for parts other developers are writing (
initializers, regularizers, metrics, callbacks), to the interfaces of
docs/design.md. Used only while the real module is missing; deleted once
they are merged. Not public."""
import sys
import time
import types

import numpy as np


# ---- initializers ---------------------------------------------------------
def _glorot_uniform(shape, dtype="float32", rng=None):
    fan_in, fan_out = (shape[0], shape[-1]) if len(shape) >= 2 else (shape[0], shape[0])
    lim = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-lim, lim, size=shape).astype(dtype)


def _zeros(shape, dtype="float32", rng=None):
    return np.zeros(shape, dtype)


def _ones(shape, dtype="float32", rng=None):
    return np.ones(shape, dtype)


def _init_get(identifier):
    if callable(identifier):
        return identifier
    table = {"glorot_uniform": _glorot_uniform, "zeros": _zeros, "ones": _ones}
    if identifier not in table:
        raise ValueError(f"initializer: unknown name {identifier!r}")
    return table[identifier]


initializers = types.SimpleNamespace(get=_init_get)


# ---- regularizers ---------------------------------------------------------
class _L2:
    def __init__(self, l2=0.01):
        self.l2 = l2

    def __call__(self, w):
        return self.l2 * float(np.sum(w * w))

    def add_gradient(self, w, dw):
        dw += 2 * self.l2 * w

    def get_config(self):
        return {"l2": self.l2}


def _reg_get(identifier):
    if identifier is None or isinstance(identifier, _L2):
        return identifier
    return _L2()


regularizers = types.SimpleNamespace(get=_reg_get, L2=_L2)


# ---- metrics --------------------------------------------------------------
class _Accuracy:
    def __init__(self, kind, name="accuracy"):
        self.kind, self.name = kind, name
        self.reset_state()

    def reset_state(self):
        self.total = 0.0
        self.count = 0.0

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = np.asarray(y_pred)
        if self.kind == "binary":
            hit = ((y_pred > 0.5) == (np.asarray(y_true).reshape(y_pred.shape) > 0.5)).mean(axis=-1)
        elif self.kind == "sparse":
            hit = np.argmax(y_pred, -1) == np.asarray(y_true).reshape(-1)
        else:
            hit = np.argmax(y_pred, -1) == np.argmax(y_true, -1)
        w = np.ones(len(hit)) if sample_weight is None else np.asarray(sample_weight)
        self.total += float(np.sum(hit * w))
        self.count += float(np.sum(w))

    def result(self):
        return self.total / self.count if self.count else 0.0


def _metric_get(identifier, loss=None):
    lname = type(loss).__name__
    kind = ("binary" if "Binary" in lname else "sparse" if "Sparse" in lname else "categorical")
    return _Accuracy(kind, identifier if isinstance(identifier, str) else "accuracy")


metrics = types.SimpleNamespace(get=_metric_get)


# ---- callbacks ------------------------------------------------------------
class _Callback:
    def __init__(self):
        self.model, self.params = None, {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def __getattr__(self, name):
        if name.startswith("on_"):
            return lambda *a, **k: None
        raise AttributeError(name)


class _History(_Callback):
    def on_train_begin(self, logs=None):
        self.epoch, self.history = [], {}

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)
        self.model.history = self


class _Progbar(_Callback):
    def __init__(self, verbose=1):
        super().__init__()
        self.verbose = verbose

    def on_epoch_begin(self, epoch, logs=None):
        self.t0 = time.perf_counter()
        print(f"Epoch {epoch + 1}/{self.params.get('epochs')}")

    def on_train_batch_end(self, batch, logs=None):
        if self.verbose == 1 and sys.stdout.isatty():
            sys.stdout.write(f"\r{batch + 1}/{self.params.get('steps')} loss {logs.get('loss', 0):.4f}")

    def on_epoch_end(self, epoch, logs=None):
        items = " - ".join(f"{k}: {v:.4f}" for k, v in (logs or {}).items())
        print(f"\r{self.params.get('steps')}/{self.params.get('steps')} - "
              f"{time.perf_counter() - self.t0:.1f}s - {items}")


class _CallbackList:
    def __init__(self, callbacks=None, add_history=True, add_progbar=False, model=None, **params):
        self.callbacks = list(callbacks or [])
        if add_progbar:
            self.callbacks.append(_Progbar(params.get("verbose", 1)))
        if add_history:
            self.callbacks.append(_History())
        for c in self.callbacks:
            c.set_model(model)
            c.set_params(params)

    def __getattr__(self, name):
        if not name.startswith("on_"):
            raise AttributeError(name)

        def call(*args, **kwargs):
            for c in self.callbacks:
                getattr(c, name)(*args, **kwargs)
        return call


callbacks = types.SimpleNamespace(CallbackList=_CallbackList, History=_History, Callback=_Callback,
                                  ProgbarLogger=_Progbar)


def module(name):
    """The real nncore.<name> when it exists, else the stand-in above."""
    import importlib
    try:
        return importlib.import_module("nncore." + name)
    except ModuleNotFoundError as e:
        if e.name != "nncore." + name:
            raise
        return globals()[name]
