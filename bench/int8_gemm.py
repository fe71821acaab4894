"""The int8 GEMM alone against the float32 GEMM, at the shapes of the predict row (medium MLP
784-256-128-10, batch 1024), interleaved, with the multiply-add peaks of one core.

    python bench/int8_gemm.py [--simd avx2,avx512] [--threads 1,2] [--rounds 7] [--m 1024]

For each layer shape (m x k @ k x n), SIMD level and thread count, these take turns (rotating order,
each turn the best of a short burst, the figure the median over the rounds):
  f32     nncore's float32 GEMM with the bias + relu epilogue (`gemm`)
  int8    `gemm_int8`: the rows of x quantized, the int8 product, dequantize + bias + relu (what a
          quantized Dense runs)
  s8s32   `gemm_s8s32`: the int8 product alone, int8 A in, int32 C out
and, under nncore's default int8 kernel for the level (avx512: avx512vnni; avx2: the u8 x s8 kernel),
GMAC/s and the share of that kernel's peak (bench/int8_peak.c: vpdpbusd zmm, or avx2_ones_mem: vpmaddubsw +
vpmaddwd ymm, on one core; times the thread count) and float32's of the FMA peak (bench/fma_peak.c). Wall time (2 threads share the machine's 2 cores).
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from gemm import fma_peak  # noqa: E402  (bench/gemm.py: bench/fma_peak.c)

SHAPES = ((784, 256), (256, 128), (128, 10))   # (k, n) of the three layers


def peaks():
    """name -> G multiply-adds/s of one core, from bench/int8_peak.c."""
    with tempfile.TemporaryDirectory() as tmp:
        exe = os.path.join(tmp, "int8_peak")
        subprocess.run(["gcc", "-O3", "-o", exe, os.path.join(HERE, "int8_peak.c")], check=True)
        out = subprocess.run([exe], check=True, capture_output=True, text=True).stdout
    res = {}
    for line in out.splitlines():
        name, val = line.split()
        res[name] = None if val == "-" else float(val)
    return res


def burst(fn, seconds=0.05):
    best, i, t_end = float("inf"), 0, time.perf_counter() + seconds
    while i < 3 or (time.perf_counter() < t_end and i < 200):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
        i += 1
    return best


def interleaved(fns, rounds):
    names = list(fns)
    for f in fns.values():
        f()
    times = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            times[name].append(burst(fns[name]))
    return {name: float(np.median(t)) for name, t in times.items()}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--simd", default="avx512,avx2")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--m", type=int, default=1024)
    args = p.parse_args()

    import nncore
    from nncore._kernels import int8 as k8
    from nncore._kernels.gemm import gemm

    pk = peaks()
    fma = fma_peak()                     # GFLOP/s: float32, float64
    pk["fma_f32"] = fma[0] / 2 if fma else float("nan")
    print("peaks of one core, G multiply-adds/s:", ", ".join(f"{k} {v}" for k, v in pk.items()))
    print(f"load before: {os.getloadavg()}")
    rng = np.random.default_rng(0)
    m = args.m
    rows = []
    for level in args.simd.split(","):
        nncore.set_simd_level(level)
        kern = k8.kernel(63)
        peak1 = pk["vpdpbusd_zmm"] if "vnni" in kern else pk["avx2_ones_mem"]
        fpeak1 = pk["fma_f32"]
        for nt in map(int, args.threads.split(",")):
            for k, n in SHAPES:
                x = np.maximum(rng.standard_normal((m, k)), 0).astype(np.float32)
                w = rng.standard_normal((k, n)).astype(np.float32)
                b = rng.standard_normal(n).astype(np.float32)
                y = np.empty((m, n), np.float32)
                wq = rng.integers(-127, 128, (k, n)).astype(np.int8)
                ws = (rng.random(n) + 0.5).astype(np.float32)
                a8 = rng.integers(-63, 64, (m, k)).astype(np.int8)
                c32 = np.empty((m, n), np.int32)
                fns = {
                    "f32": lambda: gemm(x, w, y, bias=b, act=4, n_threads=nt),
                    "int8": lambda: k8.gemm_int8(x, wq, ws, y, b, 4, qmax=63, n_threads=nt),
                    "s8s32": lambda: k8.gemm_s8s32(a8, wq, c32, qmax=63, n_threads=nt),
                }
                t = interleaved(fns, args.rounds)
                macs = m * k * n
                rows.append((level, kern, nt, f"{m}x{k} @ {k}x{n}", t, macs, peak1 * nt, fpeak1 * nt))
    print(f"load after: {os.getloadavg()}")
    print()
    print("| level | int8 kernel | threads | shape | f32 us | int8 us | s8s32 us | f32 / int8 | int8 GMAC/s "
          "| s8s32 GMAC/s | s8s32 % int8 peak | f32 % FMA peak |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for level, kern, nt, shape, t, macs, peak, fpeak in rows:
        g8, gs, gf = macs / t["int8"] / 1e9, macs / t["s8s32"] / 1e9, macs / t["f32"] / 1e9
        print(f"| {level} | {kern} | {nt} | {shape} | {t['f32'] * 1e6:,.0f} | {t['int8'] * 1e6:,.0f} | "
              f"{t['s8s32'] * 1e6:,.0f} | {t['f32'] / t['int8']:.2f}x | {g8:.0f} | {gs:.0f} | "
              f"{100 * gs / peak:.0f}% | {100 * gf / fpeak:.0f}% |")
    nncore.set_simd_level(None)


if __name__ == "__main__":
    main()
