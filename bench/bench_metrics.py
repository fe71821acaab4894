"""Per-batch cost of metric updates and callback dispatch (microseconds per call).

Run: PYTHONPATH=. python bench/bench_metrics.py
Reports the median of several repeats, and each update as a multiple of one small NumPy ufunc
call (np.add on the batch) measured in the same run: on a shared machine the ratio is the
steadier figure.
"""
import time

import numpy as np

from nncore import callbacks as C
from nncore import metrics as M


def per_call_us(fn, n=2000, repeats=7):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        times.append((time.perf_counter() - t0) / n * 1e6)
    return float(np.median(times))


def main():
    rng = np.random.default_rng(0)
    for batch, k in ((16, 3), (32, 10), (256, 10)):
        p = rng.dirichlet(np.ones(k), size=batch).astype(np.float32)
        y_onehot = np.eye(k, dtype=np.float32)[rng.integers(0, k, batch)]
        y_sparse = y_onehot.argmax(1)
        pb = rng.uniform(size=(batch, 1)).astype(np.float32)
        yb = rng.integers(0, 2, size=(batch, 1)).astype(np.float32)
        w = rng.uniform(size=batch).astype(np.float32)
        cases = [
            ("binary_accuracy", M.BinaryAccuracy(), yb, pb, None),
            ("categorical_accuracy", M.CategoricalAccuracy(), y_onehot, p, None),
            ("sparse_categorical_accuracy", M.SparseCategoricalAccuracy(), y_sparse, p, None),
            ("sparse_categorical_accuracy+w", M.SparseCategoricalAccuracy(), y_sparse, p, w),
            ("mse", M.MeanSquaredError(), y_onehot, p, None),
            ("precision", M.Precision(), yb, pb, None),
            ("auc(200)", M.AUC(), yb, pb, None),
        ]
        unit = per_call_us(lambda: np.add(p, 1.0))
        print(f"batch {batch}, {k} classes (one np.add on y_pred: {unit:.2f} us)")
        for name, m, yt, yp, sw in cases:
            us = per_call_us(lambda: m.update_state(yt, yp, sw))
            res = per_call_us(m.result)
            print(f"  {name:32s} {us:7.2f} us/update ({us / unit:4.1f} ufunc calls), "
                  f"result {res:6.2f} us")
    logs = {"loss": 0.5, "accuracy": 0.9}
    idle = C.CallbackList(None, add_history=True)
    es = C.CallbackList([C.EarlyStopping(), C.ReduceLROnPlateau()], add_history=True)
    bar = C.CallbackList([C.ProgbarLogger(verbose=2)], add_history=True, steps=10 ** 9)
    print("callback dispatch per batch (begin + end)")
    for name, cbs in (("History only", idle), ("EarlyStopping+ReduceLR", es),
                      ("ProgbarLogger(verbose=2)", bar)):
        def step(cbs=cbs):
            cbs.on_train_batch_begin(0)
            cbs.on_train_batch_end(0, logs)
        print(f"  {name:32s} {per_call_us(step):7.2f} us")


if __name__ == "__main__":
    main()
