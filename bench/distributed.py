"""Data-parallel training over MPI: samples/s at 1 and N ranks, and what the gradient allreduce costs.

    python bench/distributed.py [--workloads medium large] [--ranks 1 2] [--repeats 5]
                                [--buckets 1024 0] [--steps 60]

For each workload (bench/workloads.py: medium 784-256-128-10 at batch 128, large 784-1024-1024-10
at batch 256, Adam, float32) and each rank count this starts ``mpiexec -n N`` (1 thread per rank),
interleaving the configurations over the repeats, and reports medians of:

- samples/s of a timed epoch of ``--steps`` steps per rank (after one warm-up epoch), each rank
  training on ``batch`` rows per step (the global batch is N batch), and the speed-up over 1 rank;
- the allreduce time per step that the step waits for (``FitSync.reduce``: the last bucket, the
  loss sum and the wait for the buckets started during backward), against a raw mpi4py in-place
  ``Allreduce`` of the same buffer (blocking, after a barrier), and its share of the step;
- ``--buckets`` KiB: the bucket size of the non-blocking allreduces started during backward
  (0: one allreduce after backward, no overlap), to measure whether overlap pays; -1 is the
  control: N independent single-process trainings at once (what sharing the machine costs
  without any communication), their samples/s summed.

Print the load (``uptime``) with the figures: the ranks share the machine's cores with everything else.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def worker(name, steps, bucket_kib):
    import numpy as np
    from mpi4py import MPI

    import nncore
    from nncore import distributed as dist
    from bench.workloads import get_workload, make_data
    from nncore.layers import Dense, Input

    if bucket_kib >= 0:
        dist.init()
    r, n = dist.rank(), dist.size()     # bucket -1: every process alone (the control: no communication)
    dist._BUCKET_BYTES = bucket_kib * 1024 if bucket_kib > 0 else 1 << 62
    wl = get_workload(name)
    rows = steps * wl.batch * n
    x, y = make_data(get_workload(name, max_samples=max(rows, wl.batch)))
    reps = -(-rows // len(x))
    x, y = np.concatenate([x] * reps)[:rows], np.concatenate([y] * reps)[:rows]
    nncore.set_seed(0)
    model = nncore.Sequential([Input((wl.n_in,))] + [Dense(h, "relu") for h in wl.hidden]
                              + [Dense(wl.n_classes, "softmax")])
    model.compile(nncore.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    waits = []
    reduce = dist.FitSync.reduce

    def timed_reduce(self, *args):
        t = time.perf_counter()
        out = reduce(self, *args)
        waits.append(time.perf_counter() - t)
        return out

    dist.FitSync.reduce = timed_reduce
    model.fit(x, y, batch_size=wl.batch, epochs=1, verbose=0)          # warm-up (buffers, pages)
    waits.clear()
    dist.barrier()
    t = time.perf_counter()
    model.fit(x, y, batch_size=wl.batch, epochs=1, verbose=0)
    dist.barrier()
    epoch = time.perf_counter() - t
    raw = []
    if n > 1:
        g = model._grads.copy()
        comm = MPI.COMM_WORLD
        for _ in range(30):
            comm.Barrier()
            t = time.perf_counter()
            comm.Allreduce(MPI.IN_PLACE, g, op=MPI.SUM)
            raw.append(time.perf_counter() - t)
    if r == 0:                          # (in the control every process is rank 0 of its own world)
        print(json.dumps({"samples_per_s": rows / epoch, "step_ms": 1e3 * epoch / steps,
                          "wait_ms": 1e3 * statistics.median(waits) if waits else 0.0,
                          "raw_ms": 1e3 * statistics.median(raw) if raw else 0.0,
                          "floats": int(model._grads.size)}))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workloads", nargs="+", default=["medium", "large"])
    p.add_argument("--ranks", nargs="+", type=int, default=[1, 2])
    p.add_argument("--buckets", nargs="+", type=int, default=[1024, 0, -1],
                   help="bucket sizes in KiB for the multi-rank runs (0: one allreduce after backward; -1: the "
                        "control, N independent processes without MPI, samples/s summed over them)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--steps", type=int, default=60, help="timed steps per rank")
    p.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker:
        worker(a.worker[0], int(a.worker[1]), int(a.worker[2]))
        return 0
    mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    if not os.path.exists(mpiexec):
        mpiexec = "mpiexec"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    configs = [(wl, n, b) for wl in a.workloads for n in a.ranks for b in (a.buckets if n > 1 else [0])]
    results = {c: [] for c in configs}
    from nncore._kernels import runtime
    print(f"load before: {os.getloadavg()[0]:.2f}; SIMD: {runtime.simd_name(runtime.active_simd_level())}")
    for _ in range(a.repeats):
        for c in configs:
            wl, n, b = c
            out = subprocess.run([mpiexec, "-n", str(n), sys.executable, os.path.abspath(__file__), "--worker", wl,
                                  str(a.steps), str(b)], capture_output=True, text=True, env=env, timeout=600)
            if out.returncode:
                raise RuntimeError(out.stderr)
            lines = [json.loads(ln) for ln in out.stdout.strip().splitlines()]
            if b < 0:       # independent processes: their samples/s add up
                lines[-1]["samples_per_s"] = sum(ln["samples_per_s"] for ln in lines)
            results[c].append(lines[-1])
    print(f"load after: {os.getloadavg()[0]:.2f}; medians of {a.repeats}, 1 thread per rank, float32, Adam")
    print(f"{'workload':8} {'ranks':>5} {'bucket':>8} {'samples/s':>10} {'vs 1':>6} {'step ms':>8} "
          f"{'allreduce wait ms':>17} {'raw Allreduce ms':>16} {'wait/step':>9}")
    base = {}
    for c in configs:
        wl, n, b = c
        med = {k: statistics.median(r[k] for r in results[c]) for k in results[c][0]}
        if n == 1:
            base[wl] = med["samples_per_s"]
        speed = med["samples_per_s"] / base[wl] if wl in base else float("nan")
        bucket = "-" if n == 1 else ("none" if b == 0 else "no MPI" if b < 0 else f"{b} KiB")
        print(f"{wl:8} {n:5d} {bucket:>8} {med['samples_per_s']:10.0f} {speed:6.2f} {med['step_ms']:8.2f} "
              f"{med['wait_ms']:17.3f} {med['raw_ms']:16.3f} {med['wait_ms'] / med['step_ms']:9.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
