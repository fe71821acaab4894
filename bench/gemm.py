"""GFLOP/s of nncore's GEMM against NumPy (OpenBLAS) and PyTorch CPU.

    python bench/gemm.py [--quick] [--clock wall|thread] [--out bench/RESULTS_gemm.md]

Square sizes 64..2048 and the MLP shapes (128x784 @ 784x512 and its two
backward products), float32 and float64, on 1 and 2 threads. NumPy is timed
as-is and, in a subprocess, with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset
(OpenBLAS reads them when it loads); ratios use the faster of the two. The
FMA peak of one core is measured with bench/fma_peak.c (compiled here with
gcc, timed in thread CPU time). Each figure is the best of several runs: the
machine is shared. `--clock thread` times single-thread runs in thread CPU
time instead of wall time, which leaves out the time other processes hold the
core (it still counts their cache pollution); 2-thread runs stay wall time.
Prints markdown tables and writes them to bench/RESULTS_gemm.md.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OPENBLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def cases(quick):
    """(label, m, n, k, trans_a, trans_b): C (m x n) = op(A) (m x k) op(B) (k x n)."""
    sizes = [64, 128, 256, 512, 1024] if quick else [64, 128, 256, 512, 1024, 2048]
    out = [(f"{s}^3", s, s, s, False, False) for s in sizes]
    out += [
        ("mlp fwd 128x784 @ 784x512", 128, 512, 784, False, False),
        ("mlp dW x^T delta 784x128 @ 128x512", 784, 512, 128, True, False),
        ("mlp dx delta W^T 128x512 @ 512x784", 128, 784, 512, False, True),
    ]
    return out


def operands(m, n, k, ta, tb, dtype, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
    return a, b, np.zeros((m, n), dtype)


CLOCK = {"wall": time.perf_counter, "thread": time.thread_time}
clock = time.perf_counter


def best_time(fn, flops, nt=1):
    """Best time of a call, repeating for at least ~0.25 s (at least 3 calls)."""
    now = clock if nt == 1 else time.perf_counter
    fn()
    reps = 3 if flops > 2e9 else 7
    t_end = time.perf_counter() + 0.25
    best = float("inf")
    i = 0
    while i < reps or (time.perf_counter() < t_end and i < 200):
        t0 = now()
        fn()
        best = min(best, now() - t0)
        i += 1
    return best


def time_numpy(quick, threads):
    from threadpoolctl import threadpool_limits

    res = {}
    for dtype in ("float32", "float64"):
        for label, m, n, k, ta, tb in cases(quick):
            a, b, c = operands(m, n, k, ta, tb, dtype)
            A, B = (a.T if ta else a), (b.T if tb else b)
            for nt in threads:
                with threadpool_limits(limits=nt, user_api="blas"):
                    t = best_time(lambda: np.matmul(A, B, out=c), 2 * m * n * k, nt)
                res[f"{dtype}|{label}|{nt}"] = t
    return res


def time_torch(quick, threads):
    try:
        import torch
    except ImportError:
        return None
    from threadpoolctl import threadpool_limits

    res = {}
    old = torch.get_num_threads()
    for dtype in ("float32", "float64"):
        for label, m, n, k, ta, tb in cases(quick):
            a, b, c = operands(m, n, k, ta, tb, dtype)
            ta_, tb_, tc = torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(c)
            A, B = (ta_.T if ta else ta_), (tb_.T if tb else tb_)
            for nt in threads:
                torch.set_num_threads(nt)
                with threadpool_limits(limits=nt, user_api="blas"):
                    t = best_time(lambda: torch.matmul(A, B, out=tc), 2 * m * n * k, nt)
                res[f"{dtype}|{label}|{nt}"] = t
    torch.set_num_threads(old)
    return res


def time_nncore(quick, threads):
    sys.path.insert(0, ROOT)
    from nncore._kernels.gemm import gemm

    res = {}
    for dtype in ("float32", "float64"):
        for label, m, n, k, ta, tb in cases(quick):
            a, b, c = operands(m, n, k, ta, tb, dtype)
            for nt in threads:
                t = best_time(lambda: gemm(a, b, c, ta, tb, n_threads=nt), 2 * m * n * k, nt)
                res[f"{dtype}|{label}|{nt}"] = t
    return res


def fma_peak():
    """GFLOP/s of one core: (float32 zmm, float32 ymm, float64 zmm), or None."""
    src = os.path.join(HERE, "fma_peak.c")
    with tempfile.TemporaryDirectory() as tmp:
        exe = os.path.join(tmp, "fma_peak")
        try:
            subprocess.run(["gcc", "-O3", "-mavx512f", "-mfma", src, "-o", exe], check=True, capture_output=True)
            out = subprocess.run([exe], check=True, capture_output=True, text=True, timeout=120).stdout
        except (OSError, subprocess.SubprocessError):
            return None
    return tuple(float(x) for x in out.split())


def numpy_unset_env(quick, threads, clock_name):
    """Time NumPy in a child process without the OpenBLAS variables."""
    env = {k: v for k, v in os.environ.items() if k not in OPENBLAS_VARS}
    args = [sys.executable, os.path.abspath(__file__), "--numpy-only", "--threads", ",".join(map(str, threads)),
            "--clock", clock_name]
    if quick:
        args.append("--quick")
    out = subprocess.run(args, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="sizes up to 1024 only")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--out", default=os.path.join(HERE, "RESULTS_gemm.md"))
    ap.add_argument("--clock", choices=sorted(CLOCK), default="wall", help="clock for 1-thread runs")
    ap.add_argument("--numpy-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    global clock
    clock = CLOCK[args.clock]
    threads = [int(t) for t in args.threads.split(",")]
    if args.numpy_only:
        print(json.dumps(time_numpy(args.quick, threads)))
        return

    load = os.getloadavg()
    env_note = ", ".join(f"{v}={os.environ[v]}" for v in OPENBLAS_VARS if v in os.environ) or "neither set"
    peak = fma_peak()
    nn = time_nncore(args.quick, threads)
    np_asis = time_numpy(args.quick, threads)
    np_unset = numpy_unset_env(args.quick, threads, args.clock)
    th = time_torch(args.quick, threads)

    lines = [
        "# GEMM benchmark",
        "",
        f"Command: `python bench/gemm.py{' --quick' if args.quick else ''}"
        f"{' --clock thread' if args.clock == 'thread' else ''}` "
        f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})",
        "",
        f"CPU: {cpu_name()}, {os.cpu_count()} CPUs; numpy {np.__version__}; OpenBLAS env: {env_note}; "
        f"load average at start {load[0]:.1f} (other jobs share the cores: 2-thread figures suffer most).",
    ]
    if peak:
        lines.append(
            f"Measured FMA peak of one core: float32 {peak[0]:.1f} GFLOP/s (zmm), {peak[1]:.1f} (ymm); "
            f"float64 {peak[2]:.1f} GFLOP/s. `%pk` = nncore GFLOP/s / (threads x one-core peak)."
        )
    lines += [
        f"GFLOP/s, best of several runs, 1-thread runs timed in {args.clock} time, 2-thread runs in wall time. "
        "`np` = NumPy as-is, `np-unset` = NumPy with the OpenBLAS variables "
        "unset, `x np` = nncore / the faster NumPy, `x torch` = nncore / PyTorch.",
        "",
    ]
    for dtype in ("float32", "float64"):
        pk = None if not peak else (peak[0] if dtype == "float32" else peak[2])
        for nt in threads:
            lines.append(f"## {dtype}, {nt} thread{'s' if nt > 1 else ''}")
            lines.append("")
            head = "| shape | nncore | np | np-unset | torch | x np | x torch | %pk |"
            lines += [head, "|" + "---|" * (head.count("|") - 1)]
            for label, m, n, k, ta, tb in cases(args.quick):
                key = f"{dtype}|{label}|{nt}"
                gf = 2.0 * m * n * k / 1e9
                g_nn, g_np, g_np2 = gf / nn[key], gf / np_asis[key], gf / np_unset[key]
                g_th = gf / th[key] if th else float("nan")
                pct = f"{100 * g_nn / (pk * nt):.0f}" if pk else "-"
                lines.append(
                    f"| {label} | {g_nn:.1f} | {g_np:.1f} | {g_np2:.1f} | {g_th:.1f} | "
                    f"{g_nn / max(g_np, g_np2):.2f} | {g_nn / g_th:.2f} | {pct} |"
                )
            lines.append("")
    text = "\n".join(lines)
    print(text)
    with open(args.out, "w") as f:
        f.write(text)


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


if __name__ == "__main__":
    main()
