"""One optimizer step on 1e6 and 1e7 float32 parameters: nncore's fused kernel
(step_flat) against PyTorch (default, foreach, fused) and an in-place NumPy
implementation, with 1 and 2 threads, in GB/s next to the copy bandwidth.

    python bench/optimizers.py [--quick] [--out bench/RESULTS_optim.md]

Bytes per parameter: Adam 28 (read w, g, m, v; write w, m, v), SGD with
momentum and RMSprop 20 (read w, g, s; write w, s); a copy moves 8. Each
implementation is timed in interleaved rounds (so a noisy neighbour hits all
of them alike); the table reports the median and the best of the rounds.
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import nncore  # noqa: E402
from nncore import optimizers as O  # noqa: E402

try:
    import torch
except ImportError:  # the NumPy and nncore rows still run
    torch = None

BYTES = {"adam": 28, "sgd_momentum": 20, "rmsprop": 20}


def numpy_adam(n):
    rng = np.random.default_rng(0)
    w, g = rng.random(n, dtype=np.float32), rng.random(n, dtype=np.float32)
    m, v, tmp = np.zeros(n, np.float32), np.zeros(n, np.float32), np.empty(n, np.float32)
    b1, b2, eps, lr = 0.9, 0.999, 1e-7, 1e-3
    state = {"t": 0}

    def step():
        state["t"] += 1
        t = state["t"]
        a = np.float32(lr * (1 - b2 ** t) ** 0.5 / (1 - b1 ** t))
        np.multiply(m, np.float32(b1), out=m)                # m = b1 m + (1-b1) g
        np.add(m, np.multiply(g, np.float32(1 - b1), out=tmp), out=m)
        np.multiply(v, np.float32(b2), out=v)                # v = b2 v + (1-b2) g^2
        np.multiply(g, g, out=tmp)
        np.multiply(tmp, np.float32(1 - b2), out=tmp)
        np.add(v, tmp, out=v)
        np.sqrt(v, out=tmp)                                  # w -= a m / (sqrt(v) + eps)
        np.add(tmp, np.float32(eps), out=tmp)
        np.divide(m, tmp, out=tmp)
        np.multiply(tmp, a, out=tmp)
        np.subtract(w, tmp, out=w)
    return step


def numpy_sgd_momentum(n):
    rng = np.random.default_rng(0)
    w, g = rng.random(n, dtype=np.float32), rng.random(n, dtype=np.float32)
    v, tmp = np.zeros(n, np.float32), np.empty(n, np.float32)

    def step():
        np.multiply(v, np.float32(0.9), out=v)               # v = mu v - lr g ; w += v
        np.subtract(v, np.multiply(g, np.float32(0.01), out=tmp), out=v)
        np.add(w, v, out=w)
    return step


def numpy_rmsprop(n):
    rng = np.random.default_rng(0)
    w, g = rng.random(n, dtype=np.float32), rng.random(n, dtype=np.float32)
    v, tmp = np.zeros(n, np.float32), np.empty(n, np.float32)

    def step():
        np.multiply(v, np.float32(0.9), out=v)               # v = rho v + (1-rho) g^2
        np.multiply(g, g, out=tmp)
        np.multiply(tmp, np.float32(0.1), out=tmp)
        np.add(v, tmp, out=v)
        np.add(v, np.float32(1e-7), out=tmp)                 # w -= lr g / sqrt(v + eps)
        np.sqrt(tmp, out=tmp)
        np.divide(g, tmp, out=tmp)
        np.multiply(tmp, np.float32(1e-3), out=tmp)
        np.subtract(w, tmp, out=w)
    return step


def nncore_step(kind, n, nt):
    rng = np.random.default_rng(0)
    w, g = rng.random(n, dtype=np.float32), rng.random(n, dtype=np.float32)
    opt = {"adam": lambda: O.Adam(n_threads=nt),
           "sgd_momentum": lambda: O.SGD(0.01, momentum=0.9, n_threads=nt),
           "rmsprop": lambda: O.RMSprop(n_threads=nt)}[kind]()
    opt.build_flat(w, [(0, n)])
    return lambda: opt.step_flat(w, g)


def torch_step(kind, n, variant):
    p = torch.nn.Parameter(torch.rand(n))
    p.grad = torch.rand(n)
    kw = {"default": {}, "foreach": {"foreach": True}, "fused": {"fused": True}}[variant]
    if kind == "adam":
        opt = torch.optim.Adam([p], lr=1e-3, **kw)
    elif kind == "sgd_momentum":
        opt = torch.optim.SGD([p], lr=0.01, momentum=0.9, **kw)
    else:
        opt = torch.optim.RMSprop([p], lr=1e-3, **kw)
    opt.step()  # state allocated outside the timing
    return opt.step


def copy_step(n, nt):
    if torch is not None:
        a, b = torch.rand(n), torch.empty(n)
        return lambda: b.copy_(a)
    a, b = np.random.rand(n).astype(np.float32), np.empty(n, np.float32)
    return lambda: np.copyto(b, a)


def set_threads(nt):
    if torch is not None:
        torch.set_num_threads(nt)


def time_rounds(fns, rounds):
    """Interleaved rounds: {name: [seconds, ...]}."""
    for f in fns.values():
        f()
    times = {k: [] for k in fns}
    for _ in range(rounds):
        for k, f in fns.items():
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    return times


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS_optim.md"))
    args = ap.parse_args()
    lines = ["# Optimizer step benchmark (float32)", "",
             f"`python bench/optimizers.py`; machine: {os.cpu_count()} CPUs, nncore simd "
             f"{nncore._config.config()['simd']}, torch {torch.__version__ if torch else 'absent'}. "
             "GB/s = bytes per parameter (Adam 28, SGD-momentum and RMSprop 20, copy 8) x n / time; "
             "median (best) of interleaved rounds; 'vs' columns are ratios of medians (> 1: faster than the "
             "reference). The copy row is torch's copy_ (numpy's copyto without torch) with the row's threads. "
             "torch and nncore share one libgomp here (so torch.set_num_threads bounds both, and both sleep "
             "idle threads: OMP_WAIT_POLICY=PASSIVE, nncore's default). "
             "NumPy is single-threaded in both thread rows. The load average (1 min) shows how busy the "
             "shared machine was.", ""]
    hdr = ("| step | n | threads | implementation | ms median (best) | GB/s median (best) | vs torch default "
           "| vs torch fused | load avg |")
    for kind in ("adam", "sgd_momentum", "rmsprop"):
        lines += [f"## {kind}", "", hdr, "|" + "---|" * 9]
        for n in (10 ** 6, 10 ** 7):
            rounds = (10 if n > 10 ** 6 else 40) // (4 if args.quick else 1)
            for nt in (1, 2):
                set_threads(nt)
                fns = {"copy (bandwidth)": copy_step(n, nt), "nncore": nncore_step(kind, n, nt),
                       "numpy in-place": {"adam": numpy_adam, "sgd_momentum": numpy_sgd_momentum,
                                          "rmsprop": numpy_rmsprop}[kind](n)}
                if torch is not None:
                    for variant in ("default", "foreach", "fused"):
                        try:
                            fns[f"torch {variant}"] = torch_step(kind, n, variant)
                        except (RuntimeError, TypeError, ValueError):
                            pass  # e.g. no fused CPU RMSprop in this torch
                times = time_rounds(fns, rounds)
                load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
                med = {k: float(np.median(v)) for k, v in times.items()}
                best = {k: min(v) for k, v in times.items()}
                for k in fns:
                    nbytes = (8 if k.startswith("copy") else BYTES[kind]) * n
                    vs = []
                    for ref in ("torch default", "torch fused"):
                        vs.append(f"{med[ref] / med[k]:.2f}x" if ref in med and not k.startswith("copy") else "")
                    row = (f"| {kind} | {n:.0e} | {nt} | {k} | {med[k] * 1e3:.3f} ({best[k] * 1e3:.3f}) | "
                           f"{nbytes / med[k] / 1e9:.1f} ({nbytes / best[k] / 1e9:.1f}) | {vs[0]} | {vs[1]} | {load:.1f} |")
                    lines.append(row)
                    print(row, flush=True)
        lines.append("")
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
