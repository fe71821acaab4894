"""Which of the peers' SIMD switches act on this machine: each one alone, and a level's set together.

    flock /work/lead/bench.lock python -m bench.peer_simd [--level avx2] [--rounds 3]

One child process per variant (the switch is read when the library loads or at its first operator),
the variants in turns, `--rounds` rounds in rotating order: own (nothing set), each variable of
bench.PEER_SIMD_ENV[level] alone, then all of them (what ``python -m bench --simd LEVEL`` sets). Each
child reports the levels the libraries run at (bench.peer_levels) and, on one thread in thread CPU
time: PyTorch's 1024^3 float32 matmul (MKL's sgemm) and NumPy's (OpenBLAS) in GFLOP/s (the best of a
burst, median of 5 bursts), and a training step of the bench's cnn and lstm rows by the PyTorch peer
(oneDNN's convolution and RNN, ATen's pooling, activations and Adam) in ms (median of 3 epochs of
10 and 5 steps). Prints a markdown table: the median over the rounds of each figure.
"""
import argparse
import json
import os
import subprocess
import sys
import time

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    __package__ = "bench"

from bench import CHILD_CWD, ORIGINAL_ENV, PEER_SIMD_ENV, child_env  # noqa: E402


def _burst_gflops(fn, flops, bursts=5, calls=5):
    fn()
    best = []
    for _ in range(bursts):
        ts = []
        for _ in range(calls):
            t0 = time.thread_time()
            fn()
            ts.append(time.thread_time() - t0)
        best.append(min(ts))
    best.sort()
    return flops / best[len(best) // 2] / 1e9


def _step_ms(peer_name, workload, samples):
    from bench.peers import get_peer_class
    from bench.workloads import get_workload, make_data

    wl = get_workload(workload, samples)
    x, y = make_data(wl)
    peer = get_peer_class(peer_name)(wl, x, y)
    peer.set_threads(1)
    peer.run(1)
    ts = []
    for _ in range(3):
        t0 = time.thread_time()
        peer.run(1)
        ts.append((time.thread_time() - t0) / wl.steps() * 1e3)
    return sorted(ts)[1]


def child():
    """One variant: the levels, then the timings (one JSON line on stdout)."""
    import numpy as np
    import threadpoolctl

    import bench
    import torch

    torch.set_num_threads(1)
    out = {"levels": bench.peer_levels(["torch", "numpy"])}
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    c = torch.empty(1024, 1024)
    out["torch_sgemm"] = _burst_gflops(lambda: torch.matmul(a, b, out=c), 2 * 1024 ** 3)
    na, nb = a.numpy().copy(), b.numpy().copy()
    nc = np.empty_like(na)
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        out["numpy_sgemm"] = _burst_gflops(lambda: np.matmul(na, nb, out=nc), 2 * 1024 ** 3)
    out["cnn_step"] = _step_ms("torch", "cnn", 1280)
    out["lstm_step"] = _step_ms("torch", "lstm", 640)
    print(json.dumps(out))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--level", choices=[k for k in PEER_SIMD_ENV if PEER_SIMD_ENV[k]], default="avx2")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child()
        return 0
    switches = PEER_SIMD_ENV[args.level]
    variants = [("own", {})] + [(f"{k}={v}", {k: v}) for k, v in switches.items()] + [("all", dict(switches))]
    base = {k: v for k, v in ORIGINAL_ENV.items() if k not in switches}
    figures = {name: [] for name, _ in variants}
    levels = {}
    load0 = os.getloadavg()[0]
    for r in range(args.rounds):
        for name, env in variants[r % len(variants):] + variants[:r % len(variants)]:
            proc = subprocess.run([sys.executable, "-m", "bench.peer_simd", "--child"], cwd=CHILD_CWD,
                                  env=child_env(dict(base, **env)), capture_output=True, text=True, check=True)
            res = json.loads(proc.stdout.strip().splitlines()[-1])
            levels[name] = res.pop("levels")
            figures[name].append(res)
            print(f"round {r} {name}: {res}", file=sys.stderr)

    def med(name, key):
        v = sorted(f[key] for f in figures[name])
        return v[len(v) // 2]

    own = {k: med("own", k) for k in ("torch_sgemm", "numpy_sgemm", "cnn_step", "lstm_step")}
    print(f"# The peers' SIMD switches on this machine ({args.level}): 1 thread, thread CPU time, median of "
          f"{args.rounds} rounds; load {load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the end\n")
    print("| variant | torch levels | OpenBLAS | torch 1024^3 GFLOP/s | NumPy 1024^3 GFLOP/s | torch cnn step ms "
          "| torch lstm step ms | cnn / own | lstm / own |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, _ in variants:
        m = {k: med(name, k) for k in own}
        print(f"| {name} | {levels[name].get('torch')} | {levels[name].get('openblas')} | {m['torch_sgemm']:.1f} | "
              f"{m['numpy_sgemm']:.1f} | {m['cnn_step']:.1f} | {m['lstm_step']:.1f} | "
              f"{m['cnn_step'] / own['cnn_step']:.2f} | {m['lstm_step'] / own['lstm_step']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
