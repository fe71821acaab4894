"""GFLOP/s of nncore's bf16 GEMM (gemm_bf16) against its float32 GEMM at the bench rows' shapes.

    flock /work/lead/bench.lock python bench/bf16_gemm.py [--threads 1,2] [--rounds 5] [--shapes SUBSTR,...]
                                                           [--kernels avx512bf16,avx2-emulated] [--simd avx512]

Shapes: the large row's Dense products (256x1024x784, 256x1024x1024 forward, dW = x^T delta, dx = delta
W^T) and the cnn row's im2col products (conv1 86528x32x9, conv2 15488x64x288 forward, dK = cols^T delta,
dcols = delta K^T). For each shape and thread count the contenders (float32 `gemm`, `gemm_bf16` on each
kernel asked for) take turns, `--rounds` rounds in rotating order, each turn the best of a short burst
(bench/gemm.py's method); the figure is the median over the rounds, the ratio float32 time / bf16 time.
One-thread runs are timed in thread CPU time, two-thread runs in wall time.
"""
import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gemm as gemm_bench  # noqa: E402  (burst, interleaved, operands)

SHAPES = [
    ("large fwd1 256x1024 @ 784x1024", 256, 1024, 784, False, False),
    ("large dW1 784x256 @ 256x1024 (x^T delta)", 784, 1024, 256, True, False),
    ("large fwd2 256x1024 @ 1024x1024", 256, 1024, 1024, False, False),
    ("large dW2 1024x256 @ 256x1024 (x^T delta)", 1024, 1024, 256, True, False),
    ("large dx2 256x1024 @ 1024x1024 (delta W^T)", 256, 1024, 1024, False, True),
    ("conv1 fwd cols K 86528x9 @ 9x32", 86528, 32, 9, False, False),
    ("conv1 dK cols^T delta 9x86528 @ 86528x32", 9, 32, 86528, True, False),
    ("conv2 fwd cols K 15488x288 @ 288x64", 15488, 64, 288, False, False),
    ("conv2 dK cols^T delta 288x15488 @ 15488x64", 288, 64, 15488, True, False),
    ("conv2 dcols delta K^T 15488x64 @ 64x288", 15488, 288, 64, False, True),
]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", default="1,2")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--shapes", default="")
    p.add_argument("--kernels", default="", help="bf16 kernels to time (default: the best available)")
    p.add_argument("--simd", default="", help="the float32 GEMM's SIMD level (default: the best)")
    args = p.parse_args(argv)
    import numpy as np
    import nncore
    from nncore._kernels import gemm as G

    if args.simd:
        nncore.set_simd_level(args.simd)
    kernels = [k for k in args.kernels.split(",") if k] or [G.bf16_kernel()]
    threads = [int(t) for t in args.threads.split(",")]
    subs = [s for s in args.shapes.split(",") if s]
    shapes = [s for s in SHAPES if not subs or any(x in s[0] for x in subs)]
    print(f"# bf16 GEMM vs float32 GEMM; simd {nncore.show_config.__module__ and G and ''}"
          f"{__import__('nncore._kernels.runtime', fromlist=['x']).simd_level()}, kernels {kernels}, "
          f"load {os.getloadavg()[0]:.2f}, {time.strftime('%H:%M:%S', time.gmtime())} UTC")
    head = "| shape | threads | float32 GFLOP/s | " + " | ".join(f"{k} GFLOP/s | ratio" for k in kernels) + " |"
    print(head)
    print("|" + "---|" * (3 + 2 * len(kernels)))
    for label, m, n, k, ta, tb in shapes:
        a, b, c = gemm_bench.operands(m, n, k, ta, tb, np.float32)
        flop = 2.0 * m * n * k
        for nt in threads:
            now = time.thread_time if nt == 1 else time.perf_counter

            def bf(kern):
                def f():
                    G.bf16_set_kernel(kern)
                    G.gemm_bf16(a, b, c, ta, tb, round_out=True, n_threads=nt)
                return f
            fns = {"float32": lambda: G.gemm(a, b, c, ta, tb, n_threads=nt)}
            fns.update({kern: bf(kern) for kern in kernels})
            t = gemm_bench.interleaved(fns, now, args.rounds)
            cells = " | ".join(f"{flop / t[kern] / 1e9:.1f} | {t['float32'] / t[kern]:.2f}x" for kern in kernels)
            print(f"| {label} | {nt} | {flop / t['float32'] / 1e9:.1f} | {cells} |", flush=True)
    G.bf16_set_kernel(None)
    print(f"# load after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
