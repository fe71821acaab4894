"""Each kernel of the cnn row's training step (bench/workloads.py, batch 128) alone, at 1 and 2 threads
and at every SIMD level asked, interleaved: which kernels do not halve at 2 threads.

``python -m bench.cnn_threads [--repeats 7] [--calls 5] [--simd avx2,avx512]`` times each kernel on the
cnn row's shapes (the arrays made once, in cache as far as they fit), the median of --calls calls per
repeat and the median over the repeats, the repeats interleaving every (SIMD level, thread count).
"""
import argparse
import time

import numpy as np

import nncore
from nncore._kernels import ACT_CODES
from nncore._kernels import conv as C
from nncore._kernels import elementwise as E
from nncore._kernels.gemm import gemm
from nncore.layers.conv import winograd_tile

RELU = ACT_CODES["relu"]
FUSED = "conv1 conv_backward_weights (the three above in one pass)"


def kernels(n=128):
    rng = np.random.default_rng(0)
    f32 = np.float32
    x1 = rng.standard_normal((n, 28, 28, 1)).astype(f32)
    k1 = rng.standard_normal((9, 32)).astype(f32) * 0.3
    b1 = np.zeros(32, f32)
    cols1 = np.empty((n * 26 * 26, 9), f32)
    y1 = np.empty((n, 26, 26, 32), f32)
    p1 = np.empty((n, 13, 13, 32), f32)
    i1 = np.empty(p1.shape, np.int32)
    dx1 = np.empty_like(y1)
    d1 = np.empty((n * 26 * 26, 32), f32)
    dk1 = np.empty_like(k1)
    db1 = np.empty(32, f32)
    k2 = (rng.standard_normal((3, 3, 32, 64)) * 0.1).astype(f32)
    b2 = np.zeros(64, f32)
    m = winograd_tile(n, (11, 11), 32, 3)
    su, sv, sm = C.wino_sizes(p1.shape, k2.shape, m, (11, 11))
    U, V, M, dU = (np.empty(s, f32) for s in (su, sv, sm, su))
    y2 = np.empty((n, 11, 11, 64), f32)
    p2 = np.empty((n, 5, 5, 64), f32)
    i2 = np.empty(p2.shape, np.int32)
    dx2 = np.empty_like(y2)
    d2 = np.empty((n * 121, 64), f32)
    dk2 = np.empty_like(k2)
    db2 = np.empty(64, f32)
    dp1 = np.empty_like(p1)

    def conv1(nt):
        C.conv_forward(x1, k1, y1.reshape(-1, 32), b1, RELU, 0.0, (3, 3), (1, 1), (1, 1), (0, 0), (26, 26), cols=cols1,
                       n_threads=nt)

    def pool1(nt):
        C.maxpool_forward(y1, p1, i1, (2, 2), (2, 2), (0, 0), nt)

    def wino_f(nt):
        C.wino_forward(p1, k2, b2, U, V, y2, m, (0, 0), RELU, 0.0, nt)

    def pool2(nt):
        C.maxpool_forward(y2, p2, i2, (2, 2), (2, 2), (0, 0), nt)

    dy2 = rng.standard_normal(p2.shape).astype(f32)

    def pool2_b(nt):
        C.maxpool_backward(i2, dy2, dx2, (2, 2), (2, 2), (0, 0), nt)

    def act2_b(nt):
        E.act_backward(RELU, 0.0, None, y2.reshape(-1, 64), dx2.reshape(-1, 64), d2, nt)

    def colsum2(nt):
        E.colsum(d2, db2, nt)

    def wino_b(nt):
        C.wino_backward(d2.reshape(y2.shape), U, V, M, dU, dk2, dp1, (13, 13), m, (0, 0), nt)

    def pool1_b(nt):
        C.maxpool_backward(i1, dp1, dx1, (2, 2), (2, 2), (0, 0), nt)

    def act1_b(nt):
        E.act_backward(RELU, 0.0, None, y1.reshape(-1, 32), dx1.reshape(-1, 32), d1, nt)

    def colsum1(nt):
        E.colsum(d1, db1, nt)

    def dk1_gemm(nt):
        gemm(cols1, d1, dk1, trans_a=True, n_threads=nt)

    def wgrad1(nt):
        C.conv_backward_weights(x1, dx1.reshape(-1, 32), y1.reshape(-1, 32), dk1, db1, RELU, 0.0, None, None, (3, 3),
                                (1, 1), (1, 1), (0, 0), (26, 26), nt)

    ks = [("conv1 conv_forward (im2col k=9 + gemm, cols kept)", conv1), ("pool1 maxpool_forward", pool1),
            (f"conv2 wino_forward m={m}", wino_f), ("pool2 maxpool_forward", pool2),
            ("pool2 maxpool_backward", pool2_b), ("conv2 act_backward", act2_b), ("conv2 colsum", colsum2),
            ("conv2 wino_backward (dK, dx)", wino_b), ("pool1 maxpool_backward", pool1_b),
            ("conv1 act_backward", act1_b), ("conv1 colsum", colsum1), ("conv1 dK gemm (cols^T delta)", dk1_gemm)]
    if hasattr(C, "conv_backward_weights"):   # one pass for the three above (not in the sum)
        ks.append((FUSED, wgrad1))
    return ks


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.cnn_threads", description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--calls", type=int, default=5)
    p.add_argument("--simd", default="avx2,avx512")
    p.add_argument("--threads", default="1,2")
    args = p.parse_args(argv)
    levels = args.simd.split(",")
    threads = [int(t) for t in args.threads.split(",")]
    ks = kernels()
    times = {}
    for simd in levels:   # warm-up: every kernel once at every setting
        nncore.set_simd_level(simd)
        for nt in threads:
            for _, fn in ks:
                fn(nt)
    for _ in range(args.repeats):
        for simd in levels:
            nncore.set_simd_level(simd)
            for nt in threads:
                for name, fn in ks:
                    ts = []
                    for _ in range(args.calls):
                        t0 = time.perf_counter()
                        fn(nt)
                        ts.append(time.perf_counter() - t0)
                    times.setdefault((name, simd, nt), []).append(np.median(ts))
    cols = [(s, t) for s in levels for t in threads]
    print("| kernel | " + " | ".join(f"{s} {t}t" for s, t in cols) + " | "
          + " | ".join(f"{s} 1t/2t" for s in levels) + " |")
    print("|---|" + "---|" * (len(cols) + len(levels)))
    tot = {c: 0.0 for c in cols}
    for name, _ in ks:
        med = {c: np.median(times[(name,) + c]) * 1e3 for c in cols}
        if name != FUSED:
            for c in cols:
                tot[c] += med[c]
        ratio = [f"{med[(s, 1)] / med[(s, 2)]:.2f}x" if 1 in threads and 2 in threads else "" for s in levels]
        print(f"| {name} | " + " | ".join(f"{med[c]:.2f}" for c in cols) + " | " + " | ".join(ratio) + " |")
    ratio = [f"{tot[(s, 1)] / tot[(s, 2)]:.2f}x" if 1 in threads and 2 in threads else "" for s in levels]
    print("| sum (all but the last) | " + " | ".join(f"{tot[c]:.2f}" for c in cols) + " | " + " | ".join(ratio) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
