"""Training from data larger than memory: speed and peak memory against in-memory arrays.

    python bench/streaming.py [--gib 2] [--repeats 5] [--threads 1 2] [--dir /tmp/nncore_stream]

Trains the medium model (784-256-128-10, batch 128, Adam, float32; bench/workloads.py) for one
epoch, each run in a fresh process (its peak RSS is ``ru_maxrss``), interleaved over the repeats:

- ``memory``: from an in-memory array of 60000 rows (the bench's usual data), shuffled;
- ``memmap``: from a memmapped ``.npy`` of ``--gib`` GiB (written once into ``--dir``), shuffled
  (random rows gathered from the mapping by nncore's background thread, pages released as it goes);
- ``sequence``: from a Keras-style sequence whose ``__getitem__`` reads batch i's rows of that file
  with ``np.fromfile`` (a read, not a mapping), batches shuffled by fit.

Reports medians of samples/s, the ratio to ``memory`` (target >= 0.9) and the peak RSS (target
< 400 MiB for the file runs), with the load average and the SIMD level.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
COLS, CLASSES, BATCH = 784, 10, 128


def _paths(directory, gib):
    return (os.path.join(directory, f"x_{gib:g}gib.npy"), os.path.join(directory, f"y_{gib:g}gib.npy"))


def make_file(directory, gib):
    """The x (float32, 784 columns) and y (int64 labels) files of about `gib` GiB, written in chunks."""
    import numpy as np
    from bench.workloads import _synthetic

    xp, yp = _paths(directory, gib)
    rows = int(gib * (1 << 30)) // (COLS * 4)
    if os.path.exists(xp) and os.path.exists(yp) and np.load(yp, mmap_mode="r").shape == (rows,):
        return xp, yp
    os.makedirs(directory, exist_ok=True)
    x = np.lib.format.open_memmap(xp + ".tmp", mode="w+", dtype=np.float32, shape=(rows, COLS))
    y = np.empty(rows, np.int64)
    rng = np.random.default_rng(0)
    for i in range(0, rows, 65536):
        xb, yb = _synthetic(min(65536, rows - i), COLS, CLASSES, rng)
        x[i:i + len(xb)], y[i:i + len(yb)] = xb, yb
    x.flush()
    del x
    os.replace(xp + ".tmp", xp)
    np.save(yp, y)
    return xp, yp


def worker(kind, directory, gib, threads):
    import numpy as np

    import nncore
    from bench.workloads import get_workload, make_data
    from nncore.data import PyDataset
    from nncore.layers import Dense, Input

    nncore.set_num_threads(threads)
    xp, yp = _paths(directory, gib)
    if kind == "memory":
        x, y = make_data(get_workload("medium"))
        data = dict(x=x, y=y)
        n = len(x)
    elif kind == "memmap":
        x, y = np.load(xp, mmap_mode="r"), np.load(yp)
        data = dict(x=x, y=y)
        n = len(x)
    else:
        y_all = np.load(yp)
        offset = np.load(xp, mmap_mode="r").offset          # where the .npy's data start

        class FileBatches(PyDataset):
            def __len__(self):
                return -(-len(y_all) // BATCH)

            def __getitem__(self, i):
                lo, hi = i * BATCH, min((i + 1) * BATCH, len(y_all))
                xb = np.fromfile(xp, dtype=np.float32, count=(hi - lo) * COLS, offset=offset + lo * COLS * 4)
                return xb.reshape(hi - lo, COLS), y_all[lo:hi]

        data = dict(x=FileBatches())
        n = len(y_all)
    nncore.set_seed(0)
    model = nncore.Sequential([Input((COLS,)), Dense(256, "relu"), Dense(128, "relu"), Dense(CLASSES, "softmax")])
    model.compile(nncore.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    t = time.perf_counter()
    model.fit(**data, batch_size=None if kind == "sequence" else BATCH, epochs=1, verbose=0)
    seconds = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024          # KiB -> MiB
    print(json.dumps({"samples_per_s": n / seconds, "peak_mib": peak, "samples": n}))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gib", type=float, default=2.0)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    p.add_argument("--dir", default="/tmp/nncore_stream")
    p.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker:
        worker(a.worker[0], a.worker[1], float(a.worker[2]), int(a.worker[3]))
        return 0
    from nncore._kernels import runtime

    make_file(a.dir, a.gib)
    print(f"load before: {os.getloadavg()[0]:.2f}; SIMD: {runtime.simd_name(runtime.active_simd_level())}; "
          f"file: {a.gib:g} GiB")
    kinds = ["memory", "memmap", "sequence"]
    results = {(k, t): [] for t in a.threads for k in kinds}
    for _ in range(a.repeats):
        for t in a.threads:
            for k in kinds:
                out = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", k, a.dir, str(a.gib),
                                      str(t)], capture_output=True, text=True, timeout=1800)
                if out.returncode:
                    raise RuntimeError(out.stderr)
                results[(k, t)].append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"load after: {os.getloadavg()[0]:.2f}; medians of {a.repeats}; medium model, batch {BATCH}, one epoch")
    print(f"{'input':9} {'threads':>7} {'samples':>8} {'samples/s':>10} {'vs memory':>9} {'peak RSS MiB':>12}")
    for t in a.threads:
        base = statistics.median(r["samples_per_s"] for r in results[("memory", t)])
        for k in kinds:
            rs = results[(k, t)]
            sps = statistics.median(r["samples_per_s"] for r in rs)
            peak = statistics.median(r["peak_mib"] for r in rs)
            print(f"{k:9} {t:7d} {rs[0]['samples']:8d} {sps:10.0f} {sps / base:9.2f} {peak:12.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
