"""Callbacks against a small fake model and a fit loop written to Keras's order, then Keras's
rules case by case (EarlyStopping, ReduceLROnPlateau, ...), output of the progress display,
and files written by ModelCheckpoint / CSVLogger."""
import csv
import io
import math
import os

import numpy as np
import pytest

from nncore import callbacks as C
from nncore import metrics as M


class FakeOptimizer:
    def __init__(self, lr=0.1):
        self.learning_rate = lr
        self.iterations = 0


class FakeModel:
    """What callbacks may use of a model (docs/design.md)."""

    def __init__(self, n=3, metrics=()):
        self.stop_training = False
        self.optimizer = FakeOptimizer()
        self.weights = [np.zeros(n), np.zeros((2, 2))]
        self.metrics = list(metrics)
        self.saved = []

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, ws):
        for w, v in zip(self.weights, ws):
            w[...] = v

    def save(self, path):
        with open(path, "w") as f:
            f.write("model")
        self.saved.append(("model", path))

    def save_weights(self, path):
        with open(path, "w") as f:
            f.write("weights")
        self.saved.append(("weights", path))


def fit(model, callbacks, epoch_logs, steps=3, batch_loss=None, verbose=0, step_fn=None,
        add_progbar=False):
    """A fit loop in Keras's order: epoch e reports epoch_logs[e]; every batch adds 1 to the
    weights (step_fn may replace that); batch_loss(epoch, batch) gives the batch's loss."""
    cbs = C.CallbackList(callbacks, add_history=True, add_progbar=add_progbar, model=model,
                         epochs=len(epoch_logs), steps=steps, verbose=verbose)
    model.stop_training = False
    cbs.on_train_begin()
    for epoch, logs in enumerate(epoch_logs):
        cbs.on_epoch_begin(epoch)
        for batch in range(steps):
            cbs.on_train_batch_begin(batch)
            loss = batch_loss(epoch, batch) if batch_loss else logs.get("loss", 0.0)
            if step_fn is not None:
                step_fn(model, loss)
            else:
                for w in model.weights:
                    w += 1.0
            cbs.on_train_batch_end(batch, {"loss": np.float32(loss)})
            if model.stop_training:
                break
        cbs.on_epoch_end(epoch, dict(logs))
        if model.stop_training:
            break
    cbs.on_train_end()
    return model.history


# ---------------------------------------------------------------- order, History, CallbackList

class Recorder(C.Callback):
    def __init__(self):
        self.calls = []

    def on_train_begin(self, logs=None):
        self.calls.append("train_begin")

    def on_epoch_begin(self, epoch, logs=None):
        self.calls.append(f"epoch_begin{epoch}")

    def on_train_batch_begin(self, batch, logs=None):
        self.calls.append(f"batch_begin{batch}")

    def on_train_batch_end(self, batch, logs=None):
        assert isinstance(logs["loss"], float)  # batch logs arrive as Python floats
        self.calls.append(f"batch_end{batch}")

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append(f"epoch_end{epoch}")

    def on_train_end(self, logs=None):
        self.calls.append("train_end")


def test_hook_order_and_history():
    model = FakeModel()
    rec = Recorder()
    hist = fit(model, [rec], [{"loss": 1.0, "val_loss": 2.0}, {"loss": 0.5, "val_loss": 1.5}],
               steps=2)
    assert rec.calls == ["train_begin", "epoch_begin0", "batch_begin0", "batch_end0",
                         "batch_begin1", "batch_end1", "epoch_end0", "epoch_begin1",
                         "batch_begin0", "batch_end0", "batch_begin1", "batch_end1",
                         "epoch_end1", "train_end"]
    assert isinstance(hist, C.History) and model.history is hist
    assert hist.history == {"loss": [1.0, 0.5], "val_loss": [2.0, 1.5]}
    assert hist.epoch == [0, 1]
    assert rec.params == {"epochs": 2, "steps": 2, "verbose": 0} and rec.model is model


def test_callbacklist_defaults_and_dispatch():
    h = C.History()
    cbs = C.CallbackList([h, [C.Callback()]], add_history=True, model=FakeModel())
    assert sum(isinstance(c, C.History) for c in cbs) == 1 and cbs.callbacks[0] is h
    assert not cbs.has_train_batch_hooks  # History listens to epochs only
    cbs = C.CallbackList([], add_history=False, add_progbar=True, verbose=2, steps=10)
    assert isinstance(cbs.callbacks[-1], C.ProgbarLogger) and cbs.callbacks[-1].verbose == 2
    # only the in-place bar wants per-batch logs: the model can skip them otherwise
    assert not cbs.has_train_batch_hooks
    # ... and the one line per epoch of a pass of unknown length, which counts its steps
    assert C.CallbackList([], add_progbar=True, verbose=2, steps=None).has_train_batch_hooks
    assert C.CallbackList([], add_progbar=True, verbose=1).has_train_batch_hooks
    seen = []
    old = C.Callback()
    old.on_batch_end = lambda batch, logs=None: seen.append((batch, logs))  # Keras-1 style name
    cbs = C.CallbackList([old])
    assert cbs.has_train_batch_hooks
    cbs.on_train_batch_end(4, {"loss": np.float64(0.5), "acc": 1})
    assert seen == [(4, {"loss": 0.5, "acc": 1.0})]
    late = Recorder()
    cbs.append(late)
    cbs.on_train_begin()
    assert late.calls == ["train_begin"]
    with pytest.raises(TypeError, match=r"callbacks\[1\].*Callback"):
        C.CallbackList([C.Callback(), print])
    with pytest.raises(TypeError, match="list of Callback"):
        C.CallbackList("history")


def test_epoch_logs_are_shared_so_history_sees_learning_rate():
    model = FakeModel()
    hist = fit(model, [C.ReduceLROnPlateau(monitor="loss", patience=1)],
               [{"loss": 1.0}, {"loss": 1.0}, {"loss": 1.0}])
    assert hist.history["learning_rate"] == pytest.approx([0.1, 0.1, 0.01])


# ---------------------------------------------------------------- EarlyStopping

def _losses(values, key="val_loss"):
    return [{"loss": 1.0, key: v} for v in values]


def test_early_stopping_patience():
    model = FakeModel()
    es = C.EarlyStopping(patience=2)
    hist = fit(model, [es], _losses([1.0, 0.9, 0.95, 0.96, 0.97, 0.5]))
    # epoch 2: wait 1; epoch 3: wait 2 >= patience -> stop after 4 epochs
    assert len(hist.epoch) == 4 and es.stopped_epoch == 3 and es.best == 0.9


def test_early_stopping_patience_zero_and_first_epoch():
    es = C.EarlyStopping(monitor="loss")
    hist = fit(FakeModel(), [es], [{"loss": v} for v in (1.0, 1.0, 1.0, 1.0)])
    assert len(hist.epoch) == 2  # Keras's docstring case: stops at the first non-improvement


def test_early_stopping_min_delta_sign_and_mode():
    # min mode: an improvement must beat best by more than min_delta
    es = C.EarlyStopping(monitor="val_loss", min_delta=0.1, patience=1)
    hist = fit(FakeModel(), [es], _losses([1.0, 0.95, 0.92, 0.5]))
    assert len(hist.epoch) == 2
    # max mode via the name: accuracy going up is an improvement; min_delta the other way
    es = C.EarlyStopping(monitor="val_accuracy", min_delta=-0.05, patience=1)  # abs() like Keras
    hist = fit(FakeModel(), [es], _losses([0.5, 0.6, 0.62, 0.9], key="val_accuracy"))
    assert len(hist.epoch) == 3 and es.best == 0.6
    es = C.EarlyStopping(monitor="val_auc", patience=0)
    hist = fit(FakeModel(), [es], _losses([0.5, 0.6, 0.7, 0.65, 0.9], key="val_auc"))
    assert len(hist.epoch) == 4


def test_early_stopping_auto_mode_sources():
    assert C._auto_direction("val_acc", None, "x") == "max"
    assert C._auto_direction("val_sparse_categorical_accuracy", None, "x") == "max"
    assert C._auto_direction("precision", None, "x") == "max"
    assert C._auto_direction("val_loss", None, "x") == "min"
    assert C._auto_direction("val_mse", None, "x") == "min"
    assert C._auto_direction("mean_squared_error", None, "x") == "min"
    # a model metric's own direction decides for custom names
    m = M.BinaryAccuracy(name="hits")
    assert C._auto_direction("val_hits", FakeModel(metrics=[m]), "x") == "max"
    other = FakeModel()
    other.compiled_metrics = [M.MeanSquaredError(name="hits")]
    assert C._auto_direction("hits", other, "x") == "min"
    with pytest.raises(ValueError, match="mode='max'"):
        C._auto_direction("val_hits", FakeModel(), "EarlyStopping")
    with pytest.raises(ValueError, match="monitor='hits'"):
        fit(FakeModel(), [C.EarlyStopping(monitor="hits")], [{"hits": 1.0}])
    es = C.EarlyStopping(monitor="hits", mode="max", patience=0)
    assert len(fit(FakeModel(), [es], [{"hits": v} for v in (1, 2, 1, 3)]).epoch) == 3
    with pytest.warns(UserWarning, match="unknown"):
        C.EarlyStopping(mode="maximum")


def test_early_stopping_baseline():
    # no epoch beats the baseline: wait keeps counting, stop after `patience` epochs
    es = C.EarlyStopping(monitor="val_loss", baseline=0.5, patience=2)
    hist = fit(FakeModel(), [es], _losses([0.9, 0.95, 0.97, 0.4]))
    assert len(hist.epoch) == 2 and es.best == 0.9
    # Keras's rule: an epoch that improves on the best returns before the patience check, so
    # steady improvement above the baseline never stops training
    es = C.EarlyStopping(monitor="val_loss", baseline=0.5, patience=2)
    hist = fit(FakeModel(), [es], _losses([0.9, 0.8, 0.7, 0.6, 0.55]))
    assert len(hist.epoch) == 5 and es.wait == 5
    es = C.EarlyStopping(monitor="val_loss", baseline=0.85, patience=2)
    hist = fit(FakeModel(), [es], _losses([0.9, 0.8, 0.81, 0.82, 0.83, 0.84]))
    assert len(hist.epoch) == 4


def test_early_stopping_restore_best_weights_and_start_from_epoch():
    model = FakeModel()
    es = C.EarlyStopping(patience=1, restore_best_weights=True)
    fit(model, [es], _losses([1.0, 0.5, 0.7, 0.8, 0.9]), steps=3)
    # weights grow by 3 per epoch; the best epoch is 1 -> weights after 2 epochs = 6
    assert es.best_epoch == 1
    np.testing.assert_array_equal(model.weights[0], np.full(3, 6.0))
    es = C.EarlyStopping(patience=0, start_from_epoch=2)
    hist = fit(FakeModel(), [es], _losses([1.0, 2.0, 3.0, 4.0, 5.0]))
    assert len(hist.epoch) == 4  # epochs 0, 1 unmonitored; 2 sets best; 3 stops
    # reuse: a second fit starts from a fresh best
    hist = fit(FakeModel(), [es], _losses([7.0, 8.0, 9.0, 10.0, 11.0]))
    assert len(hist.epoch) == 4


def test_early_stopping_missing_monitor_warns():
    with pytest.warns(UserWarning, match="not available"):
        hist = fit(FakeModel(), [C.EarlyStopping(monitor="val_loss")], [{"loss": 1.0}] * 2)
    assert len(hist.epoch) == 2


# ---------------------------------------------------------------- ReduceLROnPlateau

def test_reduce_lr_on_plateau_patience_cooldown_min_lr():
    model = FakeModel()
    cb = C.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2, cooldown=1,
                             min_lr=0.03, min_delta=0.0)
    lrs = []
    rec = C.LambdaCallback(on_epoch_end=lambda e, logs: lrs.append(model.optimizer.learning_rate))
    fit(model, [cb, rec], _losses([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]))
    # e0 best; e1 wait 1; e2 wait 2 -> lr 0.05, cooldown 1; e3 cooldown ends (wait 0), then
    # wait 1; e4 wait 2 -> 0.005 raised to min_lr 0.03, cooldown; e5 wait 1; e6, e7 stay at
    # min_lr.
    assert lrs == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.03, 0.03, 0.03, 0.03])


def test_reduce_lr_min_delta_and_accuracy_mode():
    model = FakeModel()
    cb = C.ReduceLROnPlateau(monitor="val_loss", factor=0.1, patience=1, min_delta=0.1)
    fit(model, [cb], _losses([1.0, 0.95]))  # 0.95 is not < 1.0 - 0.1
    assert model.optimizer.learning_rate == pytest.approx(0.01)
    model = FakeModel()
    cb = C.ReduceLROnPlateau(monitor="val_acc", factor=0.1, patience=1)
    fit(model, [cb], _losses([0.5, 0.7, 0.9], key="val_acc"))
    assert model.optimizer.learning_rate == 0.1  # rising accuracy is improvement
    with pytest.raises(ValueError, match="factor >= 1.0"):
        C.ReduceLROnPlateau(factor=1.0)


def test_reduce_lr_refuses_schedules():
    model = FakeModel()
    model.optimizer.learning_rate = lambda step: 0.1 / (1 + step)
    with pytest.raises(TypeError, match="schedule"):
        fit(model, [C.ReduceLROnPlateau(monitor="loss", patience=0)], [{"loss": 1.0}] * 3)


# ---------------------------------------------------------------- LearningRateScheduler

def test_learning_rate_scheduler():
    model = FakeModel()
    seen = []

    def schedule(epoch, lr):
        return lr if epoch < 2 else lr * math.exp(-0.1)

    rec = C.LambdaCallback(on_epoch_begin=lambda e, logs: seen.append(model.optimizer.learning_rate))
    hist = fit(model, [C.LearningRateScheduler(schedule), rec], [{"loss": 1.0}] * 4)
    assert seen == pytest.approx([0.1, 0.1, 0.1 * math.exp(-0.1), 0.1 * math.exp(-0.2)])
    assert hist.history["learning_rate"] == pytest.approx(seen)
    model = FakeModel()
    fit(model, [C.LearningRateScheduler(lambda epoch: 0.5 ** epoch)], [{"loss": 1.0}] * 3)
    assert model.optimizer.learning_rate == 0.25
    with pytest.raises(ValueError, match="epoch 1 gave"):
        fit(FakeModel(), [C.LearningRateScheduler(lambda e: [0.1] if e else 0.1)], [{}] * 3)
    with pytest.raises(ValueError, match="finite"):
        fit(FakeModel(), [C.LearningRateScheduler(lambda e, lr: float("nan"))], [{}])


# ---------------------------------------------------------------- TerminateOnNaN

def test_terminate_on_nan_keeps_last_finite_weights(capsys):
    model = FakeModel()

    def step(model, loss):  # an update that diverges: weights become inf then NaN
        for w in model.weights:
            w += 1.0 if math.isfinite(loss) else np.inf
        if not math.isfinite(loss):
            model.weights[0][0] = np.nan

    def batch_loss(epoch, batch):
        return float("nan") if (epoch, batch) == (1, 1) else 1.0

    t = C.TerminateOnNaN()
    hist = fit(model, [t], [{"loss": 1.0}] * 3, steps=3, batch_loss=batch_loss, step_fn=step)
    assert model.stop_training and t.stopped_batch == 1
    assert len(hist.epoch) == 2  # the epoch of the NaN still ends, then training stops
    # 4 good batches: weights 4 (the state before the failing batch)
    np.testing.assert_array_equal(model.weights[0], np.full(3, 4.0))
    np.testing.assert_array_equal(model.weights[1], np.full((2, 2), 4.0))
    assert "Invalid loss" in capsys.readouterr().out


def test_terminate_on_nan_when_model_skips_bad_step_and_raise_error():
    model = FakeModel()

    def step(model, loss):  # a model that does not apply non-finite steps
        if math.isfinite(loss):
            for w in model.weights:
                w += 1.0

    t = C.TerminateOnNaN()
    fit(model, [t], [{}], steps=4, batch_loss=lambda e, b: np.inf if b == 2 else 1.0,
        step_fn=step)
    np.testing.assert_array_equal(model.weights[0], np.full(3, 2.0))
    with pytest.raises(RuntimeError, match="batch 0"):
        fit(FakeModel(), [C.TerminateOnNaN(raise_error=True)], [{}],
            batch_loss=lambda e, b: np.nan)


# ---------------------------------------------------------------- ModelCheckpoint

def test_model_checkpoint_every_epoch_with_format(tmp_path):
    model = FakeModel()
    path = tmp_path / "sub" / "ckpt-{epoch:02d}-{val_loss:.2f}.nnc"
    fit(model, [C.ModelCheckpoint(path, monitor="val_loss")], _losses([0.5, 0.25]))
    assert sorted(os.listdir(tmp_path / "sub")) == ["ckpt-01-0.50.nnc", "ckpt-02-0.25.nnc"]
    assert [k for k, _ in model.saved] == ["model", "model"]


def test_model_checkpoint_save_best_only_and_weights(tmp_path):
    model = FakeModel()
    cb = C.ModelCheckpoint(str(tmp_path / "best-{epoch}.w"), monitor="val_accuracy",
                           save_best_only=True, save_weights_only=True)
    fit(model, [cb], _losses([0.5, 0.4, 0.7, 0.7, 0.6], key="val_accuracy"))
    assert [os.path.basename(p) for _, p in model.saved] == ["best-1.w", "best-3.w"]
    assert all(k == "weights" for k, _ in model.saved)
    model = FakeModel()
    cb = C.ModelCheckpoint(str(tmp_path / "m.nnc"), monitor="val_loss", save_best_only=True,
                           initial_value_threshold=0.3)
    fit(model, [cb], _losses([0.5, 0.2, 0.25]))
    assert len(model.saved) == 1
    with pytest.raises(ValueError, match="mode='max'"):
        fit(FakeModel(), [C.ModelCheckpoint(str(tmp_path / "x"), monitor="score",
                                            save_best_only=True)], [{"score": 1.0}])


def test_model_checkpoint_save_freq_batches(tmp_path):
    model = FakeModel()
    cb = C.ModelCheckpoint(str(tmp_path / "e{epoch}-b{batch}.nnc"), save_freq=2)
    fit(model, [cb], [{"loss": 1.0}] * 2, steps=3)
    # batches counted across epochs: saves after global batches 2, 4, 6
    assert [os.path.basename(p) for _, p in model.saved] == ["e1-b2.nnc", "e2-b1.nnc",
                                                            "e2-b3.nnc"]
    with pytest.raises(ValueError, match="save_freq"):
        C.ModelCheckpoint("x", save_freq=0)
    os.mkdir(tmp_path / "adir")
    with pytest.raises(IsADirectoryError):
        fit(FakeModel(), [C.ModelCheckpoint(str(tmp_path / "adir"))], [{"val_loss": 1.0}])


# ---------------------------------------------------------------- CSVLogger, LambdaCallback

def test_csv_logger(tmp_path):
    fn = tmp_path / "log.csv"
    fit(FakeModel(), [C.CSVLogger(fn)], [{"loss": 0.5, "acc": 0.25}, {"loss": 0.4, "acc": 0.5}])
    with open(fn, newline="") as f:
        rows = list(csv.reader(f))
    assert rows == [["epoch", "acc", "loss"], ["0", "0.25", "0.5"], ["1", "0.5", "0.4"]]
    fit(FakeModel(), [C.CSVLogger(fn, append=True)], [{"loss": 0.3, "acc": 0.75}])
    with open(fn, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[-1] == ["0", "0.75", "0.3"] and len(rows) == 4  # no second header
    fit(FakeModel(), [C.CSVLogger(fn, separator=";")], [{"loss": 0.5}, {"val_loss": 1.0}])
    assert open(fn).read().splitlines() == ["epoch;loss", "0;0.5", "1;NA"]
    with pytest.raises(ValueError, match="separator"):
        C.CSVLogger(fn, separator=";;")


def test_lambda_callback():
    events = []
    cb = C.LambdaCallback(on_train_begin=lambda logs: events.append("begin"),
                          on_epoch_end=lambda epoch, logs: events.append(("epoch", epoch)),
                          on_train_batch_end=lambda batch, logs: events.append(batch),
                          on_train_end=lambda logs: events.append("end"))
    fit(FakeModel(), [cb], [{}, {}], steps=2)
    assert events == ["begin", 0, 1, ("epoch", 0), 0, 1, ("epoch", 1), "end"]
    with pytest.raises(TypeError, match="unknown hook"):
        C.LambdaCallback(on_epoch_finish=print)
    with pytest.raises(TypeError, match="callable"):
        C.LambdaCallback(on_epoch_end=3)


# ---------------------------------------------------------------- progress display

class TTY(io.StringIO):
    def isatty(self):
        return True


def _progbar_fit(stream, verbose, epochs=2, steps=50):
    bar = C.ProgbarLogger(file=stream)
    logs = [{"loss": 0.5 - 0.1 * e, "accuracy": 0.25 + 0.5 * e, "val_loss": 0.75}
            for e in range(epochs)]
    fit(FakeModel(), [bar], logs, steps=steps, verbose=verbose,
        batch_loss=lambda e, b: 1.0 / (b + 1))
    return stream.getvalue()


def test_progbar_pipe_does_not_redraw():
    out = _progbar_fit(io.StringIO(), verbose=1)
    assert "\r" not in out and "\b" not in out
    lines = out.splitlines()
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2" and len(lines) == 4
    assert lines[1].startswith("50/50 " + "━" * 20 + " 0s ")     # Keras 3's line, without colors
    assert "step" in lines[1] and "val_loss: 0.7500" in lines[1] and "loss: 0.5000" in lines[1]


def test_progbar_terminal_redraws_in_place():
    stream = TTY()
    bar = C.ProgbarLogger(file=stream)
    cbs = C.CallbackList([bar], add_history=False, epochs=1, steps=4, verbose=1)
    cbs.on_train_begin()
    cbs.on_epoch_begin(0)
    for b in range(4):
        bar.progbar.interval = 0.0  # draw every step in this test
        cbs.on_train_batch_begin(b)
        cbs.on_train_batch_end(b, {"loss": 1.0 / (b + 1)})
    cbs.on_epoch_end(0, {"loss": 0.25, "val_loss": 0.5})
    cbs.on_train_end()
    out = stream.getvalue()
    frames = out.split("\r")[1:]
    assert len(frames) == 5  # one frame per batch, then the final frame with val_*
    # Keras 3's frame: bold counter, 20-character bar (5 green, 15 grey), bold ETA, time per step
    assert frames[0].startswith("\x1b[1m1/4\x1b[0m \x1b[32m" + "━" * 5 + "\x1b[0m\x1b[37m" + "━" * 15
                                + "\x1b[0m \x1b[1m0s\x1b[0m ")
    assert frames[0].endswith("/step - loss: 1.0000")
    assert out.endswith("\n") and out.count("\n") == 1
    assert frames[-1].startswith("\x1b[1m4/4\x1b[0m \x1b[32m" + "━" * 20 + "\x1b[0m\x1b[37m\x1b[0m ")
    assert "val_loss: 0.5000" in frames[-1]


def test_progbar_verbose_2_and_0():
    out = _progbar_fit(io.StringIO(), verbose=2)
    lines = out.splitlines()
    assert len(lines) == 4 and lines[0] == "Epoch 1/2"
    assert lines[1].startswith("50/50 - ") and "/step - loss: 0.5000 - accuracy: 0.2500" in lines[1]
    assert _progbar_fit(io.StringIO(), verbose=0) == ""
    assert _progbar_fit(TTY(), verbose=2).count("\r") == 0


def test_progbar_evaluate_alone_and_silent_inside_fit():
    stream = io.StringIO()
    cbs = C.CallbackList([C.ProgbarLogger(file=stream)], add_history=False, steps=5, verbose=1)
    cbs.on_test_begin()
    for b in range(5):
        cbs.on_test_batch_end(b, {"loss": 0.5})
    cbs.on_test_end({"loss": 0.5, "accuracy": 1.0})
    assert stream.getvalue().splitlines()[-1].startswith("5/5 ━")
    # a pass whose batches were not reported still ends as complete
    stream = io.StringIO()
    cbs = C.CallbackList([C.ProgbarLogger(file=stream)], add_history=False, steps=3, verbose=1)
    cbs.on_predict_begin()
    cbs.on_predict_end()
    assert stream.getvalue().startswith("3/3 " + "━" * 20)
    # validation inside fit draws nothing of its own
    stream = io.StringIO()
    bar = C.ProgbarLogger(file=stream)
    cbs = C.CallbackList([bar], add_history=False, epochs=1, steps=2, verbose=1)
    cbs.on_train_begin()
    cbs.on_epoch_begin(0)
    cbs.on_train_batch_end(0, {"loss": 1.0})
    cbs.on_train_batch_end(1, {"loss": 1.0})
    cbs.on_test_begin()
    cbs.on_test_batch_end(0, {"loss": 9.0})
    cbs.on_test_end({"loss": 9.0})
    cbs.on_epoch_end(0, {"loss": 1.0, "val_loss": 9.0})
    cbs.on_train_end()
    assert stream.getvalue().count("\n") == 1 and "val_loss: 9.0000" in stream.getvalue()


def test_progbar_standalone_average_unknown_target_and_coarse_log():
    stream = io.StringIO()
    bar = C.Progbar(None, file=stream, log_interval=0.0)
    bar.update(2, [("loss", 1.0)])
    bar.update(4, [("loss", 3.0)])  # non-stateful: averaged over steps (1*2 + 3*2) / 4
    assert stream.getvalue().splitlines()[-1].startswith("      4/Unknown 0s ")
    assert "loss: 2.0000" in stream.getvalue().splitlines()[-1]
    bar.update(5, [("loss", 0.5)], finalize=True)
    assert stream.getvalue().splitlines()[-1].startswith("      5/Unknown 0s ")
    assert "loss: 0.5000" in stream.getvalue().splitlines()[-1]
    with pytest.raises(ValueError, match="verbose"):
        C.Progbar(10, verbose=3)


# ---------------------------------------------------------------- with the real Sequential
# These run once nncore.models (the "models" part) is present in the checkout.

def _real_model(loss="binary_crossentropy", metrics=("accuracy",), units=1, act="sigmoid",
                optimizer="adam"):
    models = pytest.importorskip("nncore.models")
    from nncore.layers import Dense
    import nncore
    nncore.set_seed(0)
    model = models.Sequential()
    model.add(Dense(8, input_dim=4, activation="relu"))
    model.add(Dense(units, activation=act))
    model.compile(optimizer=optimizer, loss=loss, metrics=list(metrics))
    return model


def _binary_data(n=120, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.float32)
    return x, y


class FullRecorder(C.Callback):
    def __init__(self):
        self.calls = []

    def on_train_begin(self, logs=None):
        self.calls.append("train_begin")

    def on_epoch_begin(self, epoch, logs=None):
        self.calls.append("epoch_begin")

    def on_train_batch_end(self, batch, logs=None):
        self.calls.append("batch_end")

    def on_test_begin(self, logs=None):
        self.calls.append("test_begin")

    def on_test_end(self, logs=None):
        self.calls.append("test_end")

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append(("epoch_end", sorted(logs)))

    def on_train_end(self, logs=None):
        self.calls.append("train_end")


def test_real_fit_order_history_and_metrics(capsys):
    model = _real_model()
    x, y = _binary_data()
    rec = FullRecorder()
    hist = model.fit(x, y, epochs=2, batch_size=32, validation_split=0.25, verbose=0,
                     callbacks=[rec])
    keys = ["accuracy", "loss", "val_accuracy", "val_loss"]
    per_epoch = ["epoch_begin"] + ["batch_end"] * 3 + ["test_begin", "test_end",
                                                        ("epoch_end", keys)]
    assert rec.calls == ["train_begin"] + per_epoch * 2 + ["train_end"]
    assert model.history is hist and sorted(hist.history) == keys and hist.epoch == [0, 1]
    assert capsys.readouterr().out == ""
    # the accuracy in History is the binary accuracy of the epoch's batches, so it is a
    # fraction of the 90 training samples
    assert all(abs(a * 90 - round(a * 90)) < 1e-6 for a in hist.history["accuracy"])


def test_real_evaluate_metrics_match_direct_computation():
    model = _real_model(metrics=["accuracy", "auc", "precision", "recall", "mse"])
    x, y = _binary_data()
    model.fit(x, y, epochs=3, batch_size=16, verbose=0)
    got = model.evaluate(x, y, batch_size=7, verbose=0, return_dict=True)
    p = model.predict(x, verbose=0).astype(np.float64)
    for name, metric in (("accuracy", M.BinaryAccuracy()), ("auc", M.AUC()),
                         ("precision", M.Precision()), ("recall", M.Recall()),
                         ("mse", M.MeanSquaredError())):
        metric.update_state(y[:, None], p)  # one pass over everything
        assert got[name] == pytest.approx(metric.result(), rel=1e-5, abs=1e-6), name


def test_real_progress_output_to_a_pipe(capsys):
    model = _real_model()
    x, y = _binary_data()
    model.fit(x, y, epochs=3, batch_size=8, verbose=1)
    out = capsys.readouterr().out  # pytest's capture is not a terminal
    assert "\r" not in out
    lines = out.splitlines()
    assert [ln for ln in lines if ln.startswith("Epoch")] == ["Epoch 1/3", "Epoch 2/3", "Epoch 3/3"]
    assert len(lines) == 6 and all(ln.startswith("15/15 ━") for ln in lines[1::2])
    model.fit(x, y, epochs=2, batch_size=8, verbose=2)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and lines[1].startswith("15/15 - ") and "loss: " in lines[1]
    model.evaluate(x, y, verbose=1)
    assert capsys.readouterr().out.startswith("4/4 ━")


def test_real_early_stopping_restores_best_weights():
    model = _real_model()
    x, y = _binary_data()
    snaps = []
    keep = C.LambdaCallback(on_epoch_end=lambda e, logs: snaps.append(
        (logs["val_loss"], model.get_weights())))
    # a large min_delta makes every epoch after the first "no improvement"
    es = C.EarlyStopping(monitor="val_loss", patience=2, min_delta=10.0,
                         restore_best_weights=True)
    hist = model.fit(x, y, epochs=20, batch_size=16, validation_split=0.2, verbose=0,
                     callbacks=[keep, es])
    assert len(hist.epoch) == 3 and es.best_epoch == 0
    for w, best in zip(model.get_weights(), snaps[0][1]):
        np.testing.assert_array_equal(w, best)


def test_real_lr_callbacks_drive_the_optimizer(tmp_path):
    model = _real_model(optimizer="sgd")
    x, y = _binary_data()
    sched = C.LearningRateScheduler(lambda epoch, lr: 0.1 * 0.5 ** epoch)
    hist = model.fit(x, y, epochs=3, verbose=0, callbacks=[sched, C.CSVLogger(tmp_path / "l.csv")])
    assert hist.history["learning_rate"] == pytest.approx([0.1, 0.05, 0.025])
    assert model.optimizer.learning_rate == pytest.approx(0.025)
    rows = open(tmp_path / "l.csv").read().splitlines()
    assert rows[0] == "epoch,accuracy,learning_rate,loss" and len(rows) == 4
    model = _real_model(optimizer="sgd")
    rl = C.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, min_delta=100.0)
    lr0 = float(model.optimizer.learning_rate)
    model.fit(x, y, epochs=3, verbose=0, callbacks=[rl])
    assert model.optimizer.learning_rate == pytest.approx(lr0 * 0.25)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_real_terminate_on_nan_keeps_finite_weights(capsys):
    model = _real_model(loss="mse", metrics=(), units=1, act=None, optimizer="sgd")
    x, y = _binary_data()
    y = y * 1e3
    model.optimizer.learning_rate = 1e6  # diverges within a few batches
    t = C.TerminateOnNaN()
    hist = model.fit(x, y, epochs=50, batch_size=8, verbose=0, callbacks=[t])
    assert model.stop_training and t.stopped_batch is not None and len(hist.epoch) < 50
    assert all(np.isfinite(w).all() for w in model.get_weights())
    assert not np.isfinite(hist.history["loss"][-1])


def test_real_model_checkpoint_saves_loadable_best_model(tmp_path):
    saving = pytest.importorskip("nncore.saving")
    model = _real_model()
    x, y = _binary_data()
    preds = {}
    keep = C.LambdaCallback(on_epoch_end=lambda e, logs: preds.__setitem__(
        e, (logs["val_loss"], model.predict(x, verbose=0))))
    path = tmp_path / "ckpt" / "best.nnc"
    ckpt = C.ModelCheckpoint(path, monitor="val_loss", save_best_only=True)
    wpath = tmp_path / "w-{epoch}.nnc"
    wckpt = C.ModelCheckpoint(wpath, save_weights_only=True)
    model.fit(x, y, epochs=4, batch_size=16, validation_split=0.25, verbose=0,
              callbacks=[keep, ckpt, wckpt])
    best_epoch = min(preds, key=lambda e: preds[e][0])
    loaded = saving.load_model(str(path))
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), preds[best_epoch][1])
    assert sorted(os.listdir(tmp_path)) == ["ckpt", "w-1.nnc", "w-2.nnc", "w-3.nnc", "w-4.nnc"]
    model.load_weights(str(tmp_path / "w-2.nnc"))
    np.testing.assert_array_equal(model.predict(x, verbose=0), preds[1][1])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_real_keras_docstring_examples():
    """The examples of Keras's EarlyStopping and LearningRateScheduler docstrings (targets
    given with the output's shape: nncore does not broadcast (5,) against (5, 10))."""
    models = pytest.importorskip("nncore.models")
    optimizers = pytest.importorskip("nncore.optimizers")
    from nncore.layers import Dense
    x, y = np.arange(100).reshape(5, 20), np.zeros((5, 10))
    model = models.Sequential([Dense(10)])
    model.compile(optimizers.SGD(), loss="mse")
    hist = model.fit(x, y, epochs=10, batch_size=1, verbose=0,
                     callbacks=[C.EarlyStopping(monitor="loss", patience=3)])
    assert len(hist.history["loss"]) == 4  # "Only 4 epochs are run."
    model = models.Sequential([Dense(10)])
    model.compile(optimizers.SGD(), loss="mse")
    assert round(model.optimizer.learning_rate, 5) == 0.01

    def scheduler(epoch, lr):
        return lr if epoch < 10 else lr * math.exp(-0.1)

    model.fit(x, y, epochs=15, verbose=0, callbacks=[C.LearningRateScheduler(scheduler)])
    assert round(model.optimizer.learning_rate, 5) == 0.00607
