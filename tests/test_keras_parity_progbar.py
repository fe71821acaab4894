"""The progress display against Keras 3's own (ProgbarLogger / Progbar), on a real terminal (a pty).

1. Same process, same calls, same clock: Keras's ProgbarLogger and nncore's are driven through the
   same callback hooks with the same logs while a fake clock advances both; their output on a pty
   is compared byte for byte (Keras's backspaces before each "\\r" removed: they move the cursor
   back over the line the "\\r" returns over anyway). Covered: verbose=1 (redraws, the ETA in its
   three formats, the step counter, the time per step without the first step, metric formatting
   with tiny, zero and negative values, the final line with val_*), verbose=2, a total unknown in
   the first epoch (``n/Unknown``), evaluate and predict passes.
2. Not a terminal: nncore writes the final line of each pass only, and it is Keras's final frame
   without its color codes.
3. Real fits on a pty, Keras's and nncore's, in a child process: the frames have the same shape.
"""
import io
import os
import re
import sys
import threading

import numpy as np
import pytest

from keras_parity_common import keras  # noqa: F401  (skips the module without Keras)

from nncore import callbacks as C

kprogbar = pytest.importorskip("keras.src.utils.progbar")
from subprocess_common import HOME  # noqa: E402  (the nncore under test, for the child process)


class _Clock:
    """time.time() for Keras's progbar and time.monotonic() for nncore's: one fake clock."""

    def __init__(self):
        self.now = 1000.0

    def time(self):
        return self.now

    monotonic = time


@pytest.fixture
def clock(monkeypatch):
    c = _Clock()
    monkeypatch.setattr(kprogbar, "time", c)
    monkeypatch.setattr(C, "time", c)
    return c


def _on_pty(fn):
    """What fn() writes to sys.stdout when sys.stdout is a terminal (a pty), as bytes."""
    master, slave = os.openpty()
    chunks = []

    def read():
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=read)
    reader.start()
    tty = open(slave, "w", encoding="utf-8", closefd=False)
    assert tty.isatty()
    old, sys.stdout = sys.stdout, tty
    try:
        fn()
        tty.flush()
    finally:
        sys.stdout = old
        tty.close()
        os.close(slave)
        reader.join(timeout=10)
        os.close(master)
    return b"".join(chunks).replace(b"\r\n", b"\n")     # the pty's output processing (onlcr)


def _batch_logs(b):
    return {"loss": 1.0 / (b + 1), "accuracy": min(0.1 * b, 1.0), "tiny": 1e-4 * b, "drift": -0.05 * b}


def _drive(cb, clock, params, passes, kind="fit"):
    """The hooks a model calls, with the clock moving by the given seconds per step."""
    cb.set_params(params)
    steps = params["steps"]
    if kind == "fit":
        cb.on_train_begin()
    for epoch, step_times in enumerate(passes):
        if kind == "fit":
            cb.on_epoch_begin(epoch)
        else:
            (cb.on_test_begin if kind == "evaluate" else cb.on_predict_begin)()
        for b, dt in enumerate(step_times[:steps] if steps else step_times):
            clock.now += dt
            if kind == "fit":
                cb.on_train_batch_begin(b)
                cb.on_train_batch_end(b, _batch_logs(b))
            elif kind == "evaluate":
                cb.on_test_batch_end(b, _batch_logs(b))
            else:
                cb.on_predict_batch_end(b, {"outputs": np.zeros(3)})
        clock.now += 0.2
        end = {**_batch_logs(len(step_times)), "val_loss": 0.25 * (epoch + 1), "val_accuracy": 0.0}
        if kind == "fit":
            cb.on_epoch_end(epoch, end)
        elif kind == "evaluate":
            cb.on_test_end(_batch_logs(len(step_times)))
        else:
            cb.on_predict_end()
    if kind == "fit":
        cb.on_train_end()


SCENARIOS = {
    # verbose, steps, per-epoch step durations (s), hook kind
    "v1": (1, 12, [[1.3] + [0.137] * 11, [0.05] + [0.01, 0.2] * 5 + [0.31]], "fit"),
    "v1_long_eta": (1, 30, [[2.0] + [400.0] * 29, [5.0] + [70.0] * 29], "fit"),
    "v2": (2, 12, [[1.3] + [0.137] * 11, [0.002] * 12], "fit"),
    "unknown_total": (1, None, [[0.4] * 7, [0.3] * 7], "fit"),
    "evaluate": (1, 9, [[0.09] * 9], "evaluate"),
    "predict": (1, 5, [[0.0004] * 5], "predict"),
    "one_epoch": (1, 3, [[0.5, 0.5, 0.5]], "fit"),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_same_calls_give_keras_bytes_on_a_terminal(name, clock):
    verbose, steps, passes, kind = SCENARIOS[name]
    params = {"verbose": verbose, "epochs": len(passes), "steps": steps}
    start = clock.now
    theirs = _on_pty(lambda: _drive(keras.callbacks.ProgbarLogger(), clock, params, passes, kind))
    clock.now = start
    ours = _on_pty(lambda: _drive(C.ProgbarLogger(), clock, params, passes, kind))
    assert theirs.replace(b"\x08", b"") == ours
    text = ours.decode()
    if name == "v1_long_eta":                 # the ETA's formats over an hour and a minute ran
        assert re.search(r"\x1b\[1m\d+:\d\d:\d\d\x1b\[0m", text) and re.search(r"\x1b\[1m\d+:\d\d\x1b\[0m", text)
    if name == "unknown_total":
        assert "      1/Unknown " in text and "\x1b[1m7/7\x1b[0m" in text
    if name == "v1":
        assert "tiny: 0.0000e+00" in text and "tiny: 1.0000e-04" in text and "drift: -0.0500" in text


def _strip_colors(text):
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


@pytest.mark.parametrize("name", ["v1", "v1_long_eta", "unknown_total", "evaluate", "v2"])
def test_not_a_terminal_writes_keras_final_lines_only(name, clock):
    verbose, steps, passes, kind = SCENARIOS[name]
    params = {"verbose": verbose, "epochs": len(passes), "steps": steps}
    start = clock.now
    theirs = _on_pty(lambda: _drive(keras.callbacks.ProgbarLogger(), clock, params, passes, kind)).decode()
    clock.now = start
    stream = io.StringIO()                 # like a pipe or a CI log: not a terminal
    _drive(C.ProgbarLogger(file=stream), clock, params, passes, kind)
    ours = stream.getvalue()
    assert "\r" not in ours and "\x1b" not in ours and "\b" not in ours
    # Keras's lines as a terminal finally shows them: the last frame before each newline
    lines = theirs.split("\n")[:-1]
    shown = [_strip_colors(line.split("\r")[-1].replace("\b", "")).rstrip(" ") for line in lines]
    ours = ours.split("\n")[:-1]
    assert [ln for ln in ours if ln in shown] == shown
    # in a long pass a progress line at most every 30 s: one of Keras's frames, the bar's rest as "─"
    frames = {_strip_colors(f.replace("\b", "")).rstrip(" ") for ln in lines for f in ln.split("\r")}
    extra = [ln for ln in ours if ln not in shown]
    assert all(ln.replace("─", "━") in frames for ln in extra)
    total = sum(map(sum, passes))
    assert len(extra) <= total / 30 and (len(extra) > 0) == (total > 60)


CHILD = r"""
import os, sys, time
os.environ["KERAS_BACKEND"] = "torch"
sys.path.insert(0, {home!r})
import numpy as np, keras, nncore
from nncore.layers import Dense, Input
rng = np.random.default_rng(0)
x = rng.random((640, 8)).astype("float32"); y = (x.sum(1) > 4).astype("float32")
km = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1, activation="sigmoid")])
km.compile("adam", "binary_crossentropy", metrics=["accuracy"])
nm = nncore.Sequential([Input((8,)), Dense(1, activation="sigmoid")])
nm.compile("adam", "binary_crossentropy", metrics=["accuracy"])
class KSlow(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        time.sleep(0.012)                  # a few redraws per epoch for both
class NSlow(nncore.callbacks.Callback):
    on_train_batch_end = KSlow.on_train_batch_end
for verbose in (1, 2):
    for name, m, slow in (("KERAS", km, KSlow), ("NNCORE", nm, NSlow)):
        print(f"=== {{name}} {{verbose}}", flush=True)
        m.fit(x, y, epochs=2, batch_size=32, verbose=verbose, validation_split=0.25, callbacks=[slow()])
        print(f"=== {{name}} evaluate", flush=True)
        m.evaluate(x, y, batch_size=32, verbose=1)
print("=== END", flush=True)
"""


def _shape(frame):
    """A frame with its numbers, time units and bar lengths hidden and its metrics sorted (Keras
    lists accuracy before loss; nncore's logs hold loss first)."""
    parts = []
    for part in frame.rstrip(" ").split(" - "):
        part = re.sub(r"━+", "━", part)
        part = re.sub(r"\d+(us|ms|s)/step", "#/step", part)
        parts.append(re.sub(r"-?\d+(\.\d+)?(e[-+]\d+)?", "#", part))
    head = [p for p in parts if ": " not in p]
    return tuple(head), tuple(sorted(p for p in parts if ": " in p))


def test_real_fits_on_a_terminal_draw_the_same_frames(tmp_path):
    import pty

    pid, fd = pty.fork()
    if pid == 0:                                  # the child: both fits, stdout a terminal
        try:
            os.execv(sys.executable, [sys.executable, "-W", "ignore", "-c", CHILD.format(home=HOME)])
        finally:
            os._exit(1)
    out = b""
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:
            break
        if not data:
            break
        out += data
    _, status = os.waitpid(pid, 0)
    text = out.decode(errors="replace").replace("\r\n", "\n").replace("\b", "")
    assert os.WEXITSTATUS(status) == 0 and "=== END" in text, text[-3000:]
    parts = dict(re.findall(r"=== (\w+ \w+)\n(.*?)(?==== )", text, flags=re.S))
    for what in ("1", "2", "evaluate"):
        k, n = parts[f"KERAS {what}"], parts[f"NNCORE {what}"]
        k_lines, n_lines = k.split("\n")[:-1], n.split("\n")[:-1]
        assert [ln for ln in k_lines if ln.startswith("Epoch")] == \
               [ln for ln in n_lines if ln.startswith("Epoch")]
        # the lines a terminal finally shows, and every redrawn frame, in shape
        k_final = [_shape(ln.split("\r")[-1]) for ln in k_lines if not ln.startswith("Epoch")]
        n_final = [_shape(ln.split("\r")[-1]) for ln in n_lines if not ln.startswith("Epoch")]
        assert k_final == n_final, (k, n)
        k_frames = {_shape(f) for ln in k_lines for f in ln.split("\r") if f}
        n_frames = {_shape(f) for ln in n_lines for f in ln.split("\r") if f}
        # (a frame of the last step before the epoch's end, drawn or not as the 0.05 s interval
        # falls, is the final line without its val_* values)
        last_step = {(h, tuple(m for m in ms if not m.startswith("val_"))) for h, ms in n_final}
        assert n_frames <= k_frames | set(n_final) | last_step
        assert len(n_frames) >= (1 if what == "2" else 2)
