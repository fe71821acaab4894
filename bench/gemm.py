"""GFLOP/s of nncore's GEMM against NumPy (OpenBLAS) and PyTorch CPU, interleaved.

    python bench/gemm.py [--quick] [--shapes SUBSTR,...] [--dtypes float32,float64] [--threads 1,2]
                         [--rounds 5] [--clock wall|thread] [--simd avx2] [--out bench/RESULTS_gemm.md]

Square sizes 64..2048, the MLP shapes (128x784 @ 784x512 and its two backward
products), the products of the bench rows (predict, large, lstm: the per-step
h U and delta U^T, dU over all steps) and of the cnn row's convolutions
(im2col: conv1 86528 x 9 x 32, conv2 15488 x 288 x 64, forward and both
backward products); float32 and float64; 1 and 2 threads.

For each shape, dtype and thread count the peers are timed in turns, `--rounds`
rounds in rotating order (nncore, NumPy, PyTorch; then NumPy, PyTorch, nncore;
...), each turn the best of a short burst of calls; the figure is the median
over the rounds and the ratios are ratios of those medians, so a change of
load hits every peer alike. `--clock thread` times 1-thread runs in thread CPU
time (it leaves out the time other processes hold the core, not their cache
pollution or the clock they cost); 2-thread runs are wall time. When
OPENBLAS_CORETYPE or OPENBLAS_L2_SIZE is set, NumPy is also timed in a
subprocess without them and the faster NumPy counts. `--simd` runs nncore's
kernels at a lower SIMD level (avx2 or generic) than the CPU's best, and the
peers at that level too (bench.set_simd: PyTorch's switches in this process;
NumPy in a subprocess started with the level's OPENBLAS_CORETYPE, its only
figure); `--peers-own-simd` leaves the peers at their own. The FMA
peak of one core comes from bench/fma_peak.c (gcc, thread CPU time). Prints
markdown tables and writes them to `--out`.
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
    if quick:
        return out
    out += [
        ("predict layer 1 1024x784 @ 784x256", 1024, 256, 784, False, False),
        ("predict layer 2 1024x256 @ 256x128", 1024, 128, 256, False, False),
        ("predict layer 3 1024x128 @ 128x10", 1024, 10, 128, False, False),
        ("large fwd 256x1024 @ 1024x1024", 256, 1024, 1024, False, False),
        ("large dW 1024x256 @ 256x1024 (x^T delta)", 1024, 1024, 256, True, False),
        ("large dx 256x1024 @ 1024x1024 (delta W^T)", 256, 1024, 1024, False, True),
        ("lstm step h U 128x128 @ 128x512", 128, 512, 128, False, False),
        ("lstm step delta U^T 128x512 @ 512x128", 128, 128, 512, False, True),
        ("lstm dU H^T delta 128x3456 @ 3456x512", 128, 512, 3456, True, False),
        ("conv1 fwd cols K 86528x9 @ 9x32", 86528, 32, 9, False, False),
        ("conv1 dK cols^T delta 9x86528 @ 86528x32", 9, 32, 86528, True, False),
        ("conv2 fwd cols K 15488x288 @ 288x64", 15488, 64, 288, False, False),
        ("conv2 dK cols^T delta 288x15488 @ 15488x64", 288, 64, 15488, True, False),
        ("conv2 dcols delta K^T 15488x64 @ 64x288", 15488, 288, 64, False, True),
    ]
    return out


def operands(m, n, k, ta, tb, dtype, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
    return a, b, np.zeros((m, n), dtype)


CLOCK = {"wall": time.perf_counter, "thread": time.thread_time}


def burst(fn, now, seconds=0.08):
    """Best time of a short burst of calls (at least 3, about `seconds` long)."""
    best, i, t_end = float("inf"), 0, time.perf_counter() + seconds
    while i < 3 or (time.perf_counter() < t_end and i < 200):
        t0 = now()
        fn()
        best = min(best, now() - t0)
        i += 1
    return best


def interleaved(fns, now, rounds):
    """Median over `rounds` of each callable's burst best, the callables taking turns in rotating order."""
    names = list(fns)
    for f in fns.values():
        f()                                  # warm up: caches, packing buffers, thread pools
    times = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            time.sleep(0.02)                 # let the previous library's spinning threads go idle
            times[name].append(burst(fns[name], now))
    return {name: float(np.median(t)) for name, t in times.items()}


def peer_calls(a, b, c, ta, tb, nt):
    """name -> callable for every peer available, each computing C = op(A) op(B) on nt threads (the
    caller holds the BLAS thread limit and has set PyTorch's thread count)."""
    from nncore._kernels.gemm import gemm

    A, B = (a.T if ta else a), (b.T if tb else b)
    fns = {"nncore": lambda: gemm(a, b, c, ta, tb, n_threads=nt), "numpy": lambda: np.matmul(A, B, out=c)}
    try:
        import torch
    except ImportError:
        return fns
    ta_, tb_, tc = torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(c)
    At, Bt = (ta_.T if ta else ta_), (tb_.T if tb else tb_)
    fns["torch"] = lambda: torch.matmul(At, Bt, out=tc)
    return fns


def torch_threads(nt):
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(nt)


def time_numpy_only(shapes, dtypes, threads, clock_name, rounds):
    """NumPy alone (the subprocess without the OpenBLAS variables)."""
    from threadpoolctl import threadpool_limits

    res = {}
    for dtype in dtypes:
        for label, m, n, k, ta, tb in shapes:
            a, b, c = operands(m, n, k, ta, tb, dtype)
            A, B = (a.T if ta else a), (b.T if tb else b)
            for nt in threads:
                now = CLOCK[clock_name] if nt == 1 else time.perf_counter
                with threadpool_limits(limits=nt, user_api="blas"):
                    res[f"{dtype}|{label}|{nt}"] = interleaved({"np": lambda: np.matmul(A, B, out=c)}, now,
                                                               rounds)["np"]
    return res


def numpy_unset_env(args, extra=None):
    """Time NumPy in a child process without the OpenBLAS variables, then with `extra`'s (a forced
    level's OPENBLAS_CORETYPE)."""
    env = dict({k: v for k, v in os.environ.items() if k not in OPENBLAS_VARS}, **(extra or {}))
    argv = [sys.executable, os.path.abspath(__file__), "--numpy-only", "--threads", args.threads, "--clock",
            args.clock, "--rounds", str(args.rounds), "--dtypes", args.dtypes]
    if args.quick:
        argv.append("--quick")
    if args.shapes:
        argv += ["--shapes", args.shapes]
    out = subprocess.run(argv, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def fma_peak():
    """GFLOP/s of one core: (float32, float64) at the widest vectors this CPU has, or None."""
    src = os.path.join(HERE, "fma_peak.c")
    with tempfile.TemporaryDirectory() as tmp:
        exe = os.path.join(tmp, "fma_peak")
        try:
            subprocess.run(["gcc", "-O3", src, "-o", exe], check=True, capture_output=True)
            out = subprocess.run([exe], check=True, capture_output=True, text=True, timeout=120).stdout
        except (OSError, subprocess.SubprocessError):
            return None
    v = [float(x) if x != "-" else 0.0 for x in out.split()]   # f32 zmm, f32 ymm, f64 zmm, f64 ymm
    return (max(v[0], v[1]), max(v[2], v[3])) if len(v) == 4 and v[1] else None


def select(shapes, spec):
    if not spec:
        return shapes
    keys = [s.strip() for s in spec.split(",") if s.strip()]
    return [c for c in shapes if any(key in c[0] for key in keys)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="squares up to 1024 and the MLP shapes only")
    ap.add_argument("--shapes", default="", help="comma-separated substrings of the shape labels to run")
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds per figure (median)")
    ap.add_argument("--simd", choices=("avx512", "avx2", "generic"), default=None,
                    help="run nncore's kernels and the peers' at this SIMD level (at most the CPU's best)")
    ap.add_argument("--peers-own-simd", action="store_true", help="with --simd: the peers at their own level")
    ap.add_argument("--out", default=os.path.join(HERE, "RESULTS_gemm.md"))
    ap.add_argument("--clock", choices=sorted(CLOCK), default="wall", help="clock for 1-thread runs")
    ap.add_argument("--numpy-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    dtypes = [d.strip() for d in args.dtypes.split(",")]
    shapes = select(cases(args.quick), args.shapes)
    if args.numpy_only:
        sys.path.insert(0, ROOT)
        import bench

        print(json.dumps(dict(time_numpy_only(shapes, dtypes, threads, args.clock, args.rounds),
                              openblas=bench.openblas_level())))
        return
    sys.path.insert(0, ROOT)
    from threadpoolctl import threadpool_limits

    import bench
    from nncore._kernels import runtime

    env_note = ", ".join(f"{v}={os.environ[v]}" for v in OPENBLAS_VARS if v in os.environ) or "neither set"
    blas_set = any(v in os.environ for v in OPENBLAS_VARS)
    peer_env = bench.set_simd(args.simd, args.peers_own_simd)   # before torch's first operator
    level = runtime.simd_name(runtime.active_simd_level())
    # NumPy's OpenBLAS took its core type at import: at a forced level NumPy runs in a child started with it
    numpy_child = {k: v for k, v in peer_env.items() if k in OPENBLAS_VARS}
    peer_lv = bench.peer_levels(["torch"])
    load = os.getloadavg()
    peak = fma_peak()
    res = {}
    for dtype in dtypes:
        for label, m, n, k, ta, tb in shapes:
            a, b, c = operands(m, n, k, ta, tb, dtype)
            for nt in threads:
                now = CLOCK[args.clock] if nt == 1 else time.perf_counter
                torch_threads(nt)
                with threadpool_limits(limits=nt, user_api="blas"):
                    res[f"{dtype}|{label}|{nt}"] = interleaved(peer_calls(a, b, c, ta, tb, nt), now, args.rounds)
                print(f"{dtype} {label} {nt}: " + ", ".join(
                    f"{p} {2 * m * n * k / t / 1e9:.1f}" for p, t in res[f'{dtype}|{label}|{nt}'].items()),
                    file=sys.stderr)
    forced = numpy_unset_env(args, numpy_child) if numpy_child else None
    unset = numpy_unset_env(args) if not forced and blas_set else None
    peer_lv["openblas"] = (f"{forced['openblas']} (NumPy in a subprocess)" if forced
                           else bench.openblas_level())

    command = " ".join(["python bench/gemm.py"] + sys.argv[1:])
    lines = [
        "# GEMM benchmark",
        "",
        f"Command: `{command}` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})",
        "",
        f"CPU: {cpu_name()}, {os.cpu_count()} CPUs; nncore SIMD level: {level}; numpy {np.__version__}; "
        f"OpenBLAS env: {env_note}; load average at start {load[0]:.1f}, at the end {os.getloadavg()[0]:.1f} "
        "(other jobs share the cores: 2-thread figures suffer most).",
        "",
        "Peers' SIMD levels: " + "; ".join(f"{lib}: {text}" for lib, text in peer_lv.items())
        + (f"; set by --simd {args.simd}: " + ", ".join(f"{k}={v}" for k, v in peer_env.items()) if peer_env
           else "; each at its own level"),
    ]
    if peak:
        lines.append(f"Measured FMA peak of one core: float32 {peak[0]:.1f} GFLOP/s, float64 {peak[1]:.1f}. "
                     "`%pk` = nncore GFLOP/s / (threads x one-core peak).")
    lines += [
        f"GFLOP/s, the median of {args.rounds} interleaved rounds (each the best of a short burst), 1-thread "
        f"runs timed in {args.clock} time, 2-thread runs in wall time. `x np` = nncore / NumPy ("
        + ("NumPy timed in the subprocess at the forced level, after the others" if forced else
           "the faster of as-is and OpenBLAS variables unset when they are set")
        + "), `x torch` = nncore / PyTorch.",
        "",
    ]
    for dtype in dtypes:
        pk = None if not peak else peak[0 if dtype == "float32" else 1]
        for nt in threads:
            lines.append(f"## {dtype}, {nt} thread{'s' if nt > 1 else ''}")
            lines.append("")
            head = "| shape | nncore | NumPy | PyTorch | x np | x torch | %pk |"
            lines += [head, "|" + "---|" * (head.count("|") - 1)]
            for label, m, n, k, ta, tb in shapes:
                key = f"{dtype}|{label}|{nt}"
                gf = 2.0 * m * n * k / 1e9
                t = res[key]
                t_np = forced[key] if forced else min(t["numpy"], unset[key]) if unset else t["numpy"]
                g_nn, g_np = gf / t["nncore"], gf / t_np
                g_th = gf / t["torch"] if "torch" in t else float("nan")
                pct = f"{100 * g_nn / (pk * nt):.0f}" if pk else "-"
                lines.append(f"| {label} | {g_nn:.1f} | {g_np:.1f} | {g_th:.1f} | {g_nn / g_np:.2f} | "
                             f"{g_nn / g_th:.2f} | {pct} |")
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
