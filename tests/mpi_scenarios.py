"""Scenarios run under ``mpiexec -n N python tests/mpi_scenarios.py OUTDIR NAME...`` by
tests/test_distributed.py, which runs the same scenario in one process (``run(name, ...)``
with size 1 and batch N b) and compares.

Each scenario trains or predicts with every rank seeded differently (rank 0's weights and
shuffling must win) and returns a dict of arrays; rank 0 saves it as OUTDIR/NAME.npz (the
other ranks save OUTDIR/NAME.rank<r>.npz for the tests that look at every rank).
"""
import os
import sys
import warnings

import numpy as np

import nncore
from nncore import callbacks as C
from nncore import distributed as dist
from nncore.data import PyDataset
from nncore.layers import Add, BatchNormalization, Concatenate, Dense, Dropout, Input, Multiply


def data(n=61, d=5, k=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    labels = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0.5).astype(int)
    y = np.eye(k)[labels % k]
    w = rng.uniform(0.5, 2.0, size=n)
    return x, y, labels % k, w


def mlp(seed, out=3, act="softmax", loss="categorical_crossentropy", metrics=("accuracy",), opt="adam",
        reg="l2", dtype="float64"):
    nncore.set_floatx(dtype)
    nncore.set_seed(seed)
    model = nncore.Sequential([Dense(7, activation="tanh", kernel_regularizer=reg, input_shape=(5,)),
                               Dense(6, activation="relu", kernel_regularizer="l1"),
                               Dense(out, activation=act)])
    model.compile(optimizer=opt, loss=loss, metrics=list(metrics))
    return model


def _fit_result(model, history):
    out = {f"w{i}": w for i, w in enumerate(model.get_weights())}
    for key, values in history.history.items():
        out["h_" + key] = np.asarray(values)
    return out


class Batched(PyDataset):
    """A sequence over arrays: batch i is rows [i b, (i + 1) b) (the last one shorter)."""

    def __init__(self, x, y, b, w=None, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y, self.b, self.w = x, y, b, w
        self.ends = 0

    def __len__(self):
        return -(-len(self.x) // self.b)

    def __getitem__(self, i):
        s = slice(i * self.b, (i + 1) * self.b)
        return (self.x[s], self.y[s]) if self.w is None else (self.x[s], self.y[s], self.w[s])

    def on_epoch_end(self):
        self.ends += 1


# ---------------------------------------------------------------- scenarios: (rank, size, b) -> dict
def arrays(rank, size, b):
    """sample_weight, L1/L2, validation_split, shuffling, softmax + categorical cross-entropy."""
    x, y, _, w = data(n=63)
    model = mlp(100 + rank)
    h = model.fit(x, y, sample_weight=w, batch_size=b, epochs=4, validation_split=0.2, verbose=0)
    dist.check_in_sync(model)
    return _fit_result(model, h)


def class_weights(rank, size, b):
    """class_weight, validation_data, sparse labels, SGD with momentum, several metrics."""
    x, _, labels, _ = data(n=47)
    xv, _, lv, _ = data(n=23, seed=1)
    model = mlp(200 + rank, loss="sparse_categorical_crossentropy", opt=nncore.optimizers.SGD(0.1, momentum=0.9),
                metrics=("accuracy", "sparse_categorical_accuracy"))
    h = model.fit(x, labels, class_weight={0: 1.0, 1: 2.0, 2: 0.5}, batch_size=b, epochs=3,
                  validation_data=(xv, lv), verbose=0)
    return _fit_result(model, h)


def binary_float32(rank, size, b):
    """float32, sigmoid + binary cross-entropy, AUC / Precision (threshold metrics), a batch listener."""
    x, _, labels, _ = data(n=75)
    yb = (labels == 1).astype(np.float32)
    model = mlp(300 + rank, out=1, act="sigmoid", loss="binary_crossentropy", dtype="float32",
                metrics=("accuracy", nncore.metrics.AUC(), nncore.metrics.Precision()))
    seen = []
    cb = C.LambdaCallback(on_train_batch_end=lambda i, logs: seen.append(logs["loss"]))
    h = model.fit(x.astype(np.float32), yb, batch_size=b, epochs=3, verbose=0, callbacks=[cb])
    out = _fit_result(model, h)
    out["batch_losses"] = np.asarray(seen)
    return out


def evaluate_predict(rank, size, b):
    """evaluate and predict split across ranks; every rank gets the whole result."""
    x, y, _, w = data(n=53)
    model = mlp(400)          # the same weights everywhere: no fit to broadcast them
    loss, acc = model.evaluate(x, y, sample_weight=w, batch_size=b, verbose=0)
    p = model.predict(x, batch_size=b, verbose=0)
    return {"loss": np.array(loss), "acc": np.array(acc), "p": p}


def sequence(rank, size, b):
    """A sequence of b-row batches: a global step is N consecutive batches, which one process
    sees as one sequence of N b-row batches. Unshuffled here for the comparison; shuffled, the
    ranks must still agree (rank 0's order)."""
    x, y, _, _ = data(n=72)
    model = mlp(500 + rank)
    seq = Batched(x, y, b)
    val = Batched(*data(n=31, seed=2)[:2], 5)
    h = model.fit(seq, epochs=3, validation_data=val, shuffle=False, verbose=0)
    out = _fit_result(model, h)
    out["ends"] = np.array(seq.ends)
    out["p"] = model.predict(Batched(x, y, 9), verbose=0)
    model.fit(Batched(x, y, 5, workers=2), epochs=2, shuffle=True, verbose=0)
    out["in_sync"] = np.array(dist.check_in_sync(model))
    return out


def generator(rank, size, b):
    """A generator with steps_per_epoch that runs out: a warning, that epoch ends, the next
    finds no data and training stops."""
    x, y, _, _ = data(n=72)
    batches = [(x[i:i + b], y[i:i + b]) for i in range(0, len(x), b)]
    model = mlp(600 + rank)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        h = model.fit(iter(batches * 2), steps_per_epoch=5, epochs=7, verbose=0)
    out = _fit_result(model, h)
    out["warned"] = np.array(rank != 0 or any("ran out of data" in str(c.message) for c in caught))
    return out


def memmap(rank, size, b):
    """A memmapped .npy in float32 for a float64 model (converted batch by batch), shuffled."""
    x, y, _, _ = data(n=58)
    path = os.path.join(_outdir, "x.npy")
    if rank == 0:
        np.save(path, x.astype(np.float32))
    dist.barrier()
    xm = np.load(path, mmap_mode="r")
    model = mlp(700 + rank)
    h = model.fit(xm, y, batch_size=b, epochs=3, validation_split=0.25, verbose=0)
    out = _fit_result(model, h)
    out["p"] = model.predict(xm, batch_size=b, verbose=0)
    return out


def functional(rank, size, b):
    """A functional model with two inputs and two outputs, data as dicts: loss weights, per-output
    sample weights and metrics, validation_data, L2; small buckets, so that each layer's gradient
    allreduce starts during backward (counted: more than one bucket per step)."""
    x, y, _, w = data(n=57)
    xb = np.random.default_rng(5).normal(size=(57, 3))
    target = x[:, :2] * 2.0 - xb[:, 1:]
    nncore.set_floatx("float64")
    nncore.set_seed(1100 + rank)
    a, c = Input((5,), name="a"), Input((3,), name="c")
    h = Dense(6, activation="tanh", kernel_regularizer="l2", name="h")(a)
    g = Dense(4, activation="relu", name="g")(c)
    z = Concatenate(name="cat")([h, g])
    cls = Dense(3, activation="softmax", name="cls")(z)
    reg = Dense(2, name="reg")(Add(name="add")([Dense(4, name="hh")(h), g]))
    model = nncore.Model({"a": a, "c": c}, {"cls": cls, "reg": reg})
    model.compile("adam", loss={"cls": "categorical_crossentropy", "reg": "mse"}, loss_weights={"cls": 1.0, "reg": 0.5},
                  metrics={"cls": ["accuracy"], "reg": ["mae"]})
    old_bucket, reduce, buckets = dist._BUCKET_BYTES, dist.FitSync.reduce, []

    def counting_reduce(self, *args):
        buckets.append(len(self._reqs))        # the buckets started during backward
        return reduce(self, *args)

    dist._BUCKET_BYTES, dist.FitSync.reduce = 8, counting_reduce
    try:
        hist = model.fit({"a": x[:45], "c": xb[:45]}, {"cls": y[:45], "reg": target[:45]},
                         sample_weight={"reg": w[:45]}, batch_size=b, epochs=3, verbose=0,
                         validation_data=({"a": x[45:], "c": xb[45:]}, {"cls": y[45:], "reg": target[45:]}))
    finally:
        dist._BUCKET_BYTES, dist.FitSync.reduce = old_bucket, reduce
    out = _fit_result(model, hist)
    p = model.predict({"a": x, "c": xb}, batch_size=b, verbose=0)
    out["p_cls"], out["p_reg"] = p["cls"], p["reg"]
    out["eval"] = np.asarray(model.evaluate({"a": x, "c": xb}, {"cls": y, "reg": target}, batch_size=b, verbose=0))
    out["overlapped"] = np.array(size == 1 or (min(buckets) == 5 and dist.check_in_sync(model)))
    return out


class TwoInputBatches(PyDataset):
    """A sequence of ([x_a, x_c], [labels, target]) batches of b rows."""

    def __init__(self, xa, xc, labels, target, b):
        super().__init__()
        self.parts, self.b = (xa, xc, labels, target), b

    def __len__(self):
        return -(-len(self.parts[0]) // self.b)

    def __getitem__(self, i):
        xa, xc, labels, target = (p[i * self.b:(i + 1) * self.b] for p in self.parts)
        return [xa, xc], [labels, target]


def functional_shared(rank, size, b):
    """A functional model with a layer used twice (its gradients are completed after backward: one
    allreduce after the pass) and a tensor feeding three layers, trained from a sequence of list
    batches; predict from the sequence."""
    x, _, labels, _ = data(n=52)
    xc = np.random.default_rng(6).normal(size=(52, 3))
    target = np.tanh(x[:, 1:3] + xc[:, :2])
    nncore.set_floatx("float64")
    nncore.set_seed(1200 + rank)
    a, c = Input((5,), name="a"), Input((3,), name="c")
    h = Dense(6, activation="tanh", name="h")(a)
    shared = Dense(6, activation="elu", name="shared")
    s = Add(name="skip")([h, shared(h)])
    t = shared(s)
    z = Concatenate(name="cat")([t, c])
    cls = Dense(3, activation="softmax", name="cls")(z)
    reg = Dense(2, name="reg")(Multiply(name="gate")([Dense(2, name="lin")(z), Dense(2, name="g2")(s)]))
    model = nncore.Model([a, c], [cls, reg])
    model.compile(nncore.optimizers.SGD(0.05, momentum=0.5), loss=["sparse_categorical_crossentropy", "mse"],
                  loss_weights=[0.7, 1.9], metrics=[["accuracy"], []])
    hist = model.fit(TwoInputBatches(x, xc, labels, target, b), epochs=3, shuffle=False, verbose=0)
    out = _fit_result(model, hist)
    p = model.predict(TwoInputBatches(x, xc, labels, target, 7), verbose=0)
    out["p_cls"], out["p_reg"] = p
    return out


def batchnorm_frozen(rank, size, b):
    """BatchNormalization (each rank normalizes by its share's statistics, as PyTorch DDP without
    SyncBatchNorm and Keras do; the moving statistics are averaged over the ranks at each epoch's
    end) and a frozen Dense layer (no gradient, no allreduce of it, unchanged): the ranks end with
    the same weights, moving statistics included."""
    x, y, _, _ = data(n=40)
    nncore.set_floatx("float64")
    nncore.set_seed(1300 + rank)
    frozen = Dense(6, activation="relu", name="frozen")
    model = nncore.Sequential([Input((5,)), Dense(8, name="d1"), BatchNormalization(name="bn"), frozen,
                               Dense(3, activation="softmax", name="out")])
    frozen.trainable = False
    model.compile("sgd", loss="categorical_crossentropy", metrics=["accuracy"])
    attach, started = dist.FitSync.attach, []

    def recording_attach(self, plan):
        attach(self, plan)
        started.append(self._plan is not None)        # the per-layer buckets were kept

    dist.FitSync.attach = recording_attach
    try:
        before = [w.copy() for w in model.get_weights()]
        hist = model.fit(x, y, batch_size=b, epochs=2, verbose=0)
    finally:
        dist.FitSync.attach = attach
    bn = model.get_layer("bn")
    out = _fit_result(model, hist)
    out["in_sync"] = np.array(dist.check_in_sync(model))
    after = model.get_weights()
    out["frozen_same"] = np.array(all(np.array_equal(before[i], after[i]) for i in _frozen_index(model, "frozen")))
    out["moved"] = np.array(not np.allclose(bn.moving_mean, 0.0))
    out["bucketed"] = np.array(size == 1 or all(started))
    return out


def _frozen_index(model, name):
    """The positions of a layer's weights in model.get_weights()."""
    k, where = 0, []
    for layer in model.layers:
        n = len(layer.get_weights())
        if layer.name == name:
            where = list(range(k, k + n))
        k += n
    return where


def stop_on_one_rank(rank, size, b):
    """stop_training set on the last rank only, once per batch and once per epoch: every rank
    stops after the same batch / epoch."""
    x, y, _, _ = data()

    class StopLate(C.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1 and dist.rank() == dist.size() - 1:
                self.model.stop_training = True

    class StopBatch(C.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 2 and dist.rank() == dist.size() - 1:
                self.model.stop_training = True

    model = mlp(800 + rank)
    h1 = model.fit(x, y, batch_size=b, epochs=5, verbose=0, callbacks=[StopLate()])
    h2 = model.fit(x, y, batch_size=b, epochs=5, verbose=0, callbacks=[StopBatch()])
    return {"epochs1": np.array(len(h1.history["loss"])), "epochs2": np.array(len(h2.history["loss"])),
            "iterations": np.array(model.optimizer.iterations)}


def files_and_output(rank, size, b):
    """Only rank 0 prints and writes: a checkpoint per rank name, a CSV log, verbose=1."""
    x, y, _, _ = data()
    model = mlp(900 + rank)
    ckpt = os.path.join(_outdir, f"ckpt_rank{rank}.nnc")
    csv = os.path.join(_outdir, f"log_rank{rank}.csv")
    model.fit(x, y, batch_size=b, epochs=2, verbose=1, callbacks=[C.ModelCheckpoint(ckpt), C.CSVLogger(csv)])
    model.save(os.path.join(_outdir, f"model_rank{rank}.nnc"))
    return {"threads": np.array(nncore.get_num_threads())}


def in_sync_check(rank, size, b):
    """check_in_sync passes after fit and names the rank whose weights were changed."""
    x, y, _, _ = data()
    model = mlp(1000 + rank)
    model.fit(x, y, batch_size=b, epochs=1, verbose=0)
    ok = dist.check_in_sync(model)
    if rank == size - 1:
        model.layers[0].kernel[0, 0] += 1.0
    try:
        dist.check_in_sync(model)
        message = ""
    except RuntimeError as exc:
        message = str(exc)
    return {"ok": np.array(ok), "message": np.array(message)}


# ---------------------------------------------------------------- faults (each ends the job)
def fault_callback(rank, size, b):
    x, y, _, _ = data()

    class Boom(C.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if dist.rank() == 1 and batch == 1:
                raise ValueError("boom on rank 1")

    mlp(1).fit(x, y, batch_size=b, epochs=3, verbose=0, callbacks=[Boom()])
    return {}


def fault_bad_input(rank, size, b):
    x, y, _, _ = data()
    if rank == 1:
        x = x.copy()
        x[3, 2] = np.nan
    mlp(1).fit(x, y, batch_size=b, epochs=2, verbose=0)
    return {}


def fault_models(rank, size, b):
    x, y, _, _ = data()
    nncore.set_seed(rank)
    units = 7 if rank == 0 else 9
    model = nncore.Sequential([Dense(units, activation="relu", input_shape=(5,)), Dense(3, activation="softmax")])
    model.compile("adam", "categorical_crossentropy")
    model.fit(x, y, batch_size=b, epochs=1, verbose=0)
    return {}


def fault_generator(rank, size, b):
    """A bad batch (wrong shape) from rank 1's generator."""
    x, y, _, _ = data()

    def gen():
        for i in range(0, len(x), b):
            xb = x[i:i + b]
            if dist.rank() == 1 and i >= 2 * b:
                xb = xb[:, :4]
            yield xb, y[i:i + b]

    mlp(1).fit(gen(), epochs=1, verbose=0)
    return {}


_outdir = "."


def main(argv):
    global _outdir
    _outdir = argv[1]
    b = int(os.environ.get("NNCORE_TEST_BATCH", "4"))
    dist.init()
    for name in argv[2:]:
        result = globals()[name](dist.rank(), dist.size(), b)
        suffix = "" if dist.rank() == 0 else f".rank{dist.rank()}"
        np.savez(os.path.join(_outdir, name + suffix + ".npz"), **result)
    dist.shutdown()


if __name__ == "__main__":
    main(sys.argv)
