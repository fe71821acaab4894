"""wino_backward of the cnn row's conv2 alone ((128, 13, 13, 32) -> 64, Winograd F(4x4), valid), thread CPU
time, 1 thread: the median of --calls calls per repeat, then the median over --repeats. Prints one line per
SIMD level, so two builds can be compared in alternating processes:
``python -m bench.wino_du [--simd avx2,avx512] [--repeats 7] [--calls 5] [--dtype float32] [--no-dx]``.
``--products``: instead, backward's 36 dU products alone (V[xi]^T dM[xi], 1152 x 32 x 64 each) by
gemm(trans_a=True) and by gemm_tn, taking turns in one process, on cold operands (each product its own
V[xi], dM[xi]: 16 MB in all) and on warm ones (every product on V[0], dM[0]); GFLOP/s of the medians.
"""
import argparse
import statistics
import time

import numpy as np

import nncore
from nncore._kernels import conv as C
from nncore.layers.conv import winograd_tile


def setup(n, dtype, with_dx):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 13, 13, 32)).astype(dtype)
    k = (rng.standard_normal((3, 3, 32, 64)) * 0.1).astype(dtype)
    b = np.zeros(64, dtype)
    m = winograd_tile(n, (11, 11), 32, 3)
    su, sv, sm = C.wino_sizes(x.shape, k.shape, m, (11, 11))
    U, V, M, dU = (np.empty(s, dtype) for s in (su, sv, sm, su))
    y = np.empty((n, 11, 11, 64), dtype)
    C.wino_forward(x, k, b, U, V, y, m, (0, 0), 0, 0.0, 1)
    d = rng.standard_normal(y.shape).astype(dtype)
    dk = np.empty_like(k)
    dx = np.empty_like(x) if with_dx else None

    def call():
        C.wino_backward(d, U, V, M, dU, dk, dx, (13, 13), m, (0, 0), 1)
    return call


def products(levels, repeats, dtype):
    from nncore._kernels.gemm import gemm, gemm_tn
    rng = np.random.default_rng(0)
    a2, T, c, f = 36, 1152, 32, 64
    V = rng.standard_normal((a2, T, c)).astype(dtype)
    M = rng.standard_normal((a2, T, f)).astype(dtype)
    dU = np.empty((a2, c, f), dtype)

    def run(fn, hot):
        def go():
            for xi in range(a2):
                fn(V[0 if hot else xi], M[0 if hot else xi], dU[xi])
        return go
    old = lambda a, b, out: gemm(a, b, out, trans_a=True)
    fs = {"gemm cold": run(old, False), "gemm_tn cold": run(gemm_tn, False), "gemm warm": run(old, True),
          "gemm_tn warm": run(gemm_tn, True)}
    flop = 2.0 * a2 * T * c * f
    for lv in levels:
        nncore.set_simd_level(lv)
        res = {k: [] for k in fs}
        for _ in range(repeats):
            for name, fn in fs.items():
                t0 = time.thread_time()
                fn()
                fn()
                res[name].append((time.thread_time() - t0) / 2)
        print(f"dU products {np.dtype(dtype).name} {lv} 1t: " +
              ", ".join(f"{k} {flop / statistics.median(v) / 1e9:.0f} GFLOP/s" for k, v in res.items()))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--simd", default="avx2,avx512")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--calls", type=int, default=5)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--no-dx", action="store_true")
    ap.add_argument("--n", type=int, default=128)
    ap.add_argument("--products", action="store_true")
    a = ap.parse_args()
    levels = a.simd.split(",")
    if a.products:
        products(levels, a.repeats, np.dtype(a.dtype))
        return
    calls = {}
    for lv in levels:
        nncore.set_simd_level(lv)
        calls[lv] = setup(a.n, np.dtype(a.dtype), not a.no_dx)
        calls[lv]()
    res = {lv: [] for lv in levels}
    for _ in range(a.repeats):
        for lv in levels:
            nncore.set_simd_level(lv)
            ts = []
            for _ in range(a.calls):
                t0 = time.thread_time()
                calls[lv]()
                ts.append(time.thread_time() - t0)
            res[lv].append(statistics.median(ts))
    for lv in levels:
        r = sorted(res[lv])
        print(f"wino_backward {a.dtype} {lv} 1t: median {statistics.median(r) * 1e3:.3f} ms "
              f"(min {r[0] * 1e3:.3f}, max {r[-1] * 1e3:.3f})")


if __name__ == "__main__":
    main()
