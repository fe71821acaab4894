"""Where the int8 convolution's time goes: the cnn row's second conv (1024 x 13 x 13 x 32 -> 64, 3x3 valid,
relu) at the SIMD level in use, 1 thread, thread CPU time, medians of --repeats (the parts taking turns).

    python bench/conv_int8_parts.py [--simd avx512] [--repeats 7] [--batch 1024]

conv_int8: the layer's kernel (quantize straight from x + int8 GEMM + dequantizing epilogue);
quantize_rows: the row quantizer alone over the cols matrix (scale and rounding, no gather);
gemm_s8s32: the int8 product alone on the quantized cols (int32 out, no quantizer, no epilogue);
gemm_int8: quantize + product + epilogue on the stored cols; maxpool: the 2x2 pool that follows.
"""
import argparse
import time

import numpy as np


def main(argv=None):
    p = argparse.ArgumentParser(prog="python bench/conv_int8_parts.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--simd", default=None)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--batch", type=int, default=1024)
    args = p.parse_args(argv)
    import nncore
    from nncore._kernels import conv as K
    from nncore._kernels import int8 as I

    if args.simd:
        nncore.set_simd_level(args.simd)
    rng = np.random.default_rng(0)
    n, h, c, f, q = args.batch, 13, 32, 64, 63
    x = np.maximum(rng.standard_normal((n, h, h, c)), 0).astype(np.float32)
    w = rng.integers(-127, 128, (9 * c, f)).astype(np.int8)
    ws = rng.uniform(50, 100, f).astype(np.float32)
    b = rng.standard_normal(f).astype(np.float32)
    oh = h - 2
    m = n * oh * oh
    cols = np.empty((m, 9 * c), np.float32)
    K.im2col(x, cols, (3, 3), out_hw=(oh, oh))
    qc, sc = np.empty((m, 9 * c), np.int8), np.empty(m, np.float32)
    I.quantize_rows(cols, qc, sc, qmax=q)
    y, acc = np.empty((m, f), np.float32), np.empty((m, f), np.int32)
    pooled = np.empty((n, oh // 2, oh // 2, f), np.float32)
    parts = {
        "conv_int8": lambda: K.conv_int8(x, w, ws, y, b, 1, 0.0, (3, 3), out_hw=(oh, oh), qmax=q),
        "quantize_rows": lambda: I.quantize_rows(cols, qc, sc, qmax=q),
        "gemm_s8s32": lambda: I.gemm_s8s32(qc, w, acc, qmax=q),
        "gemm_int8": lambda: I.gemm_int8(cols, w, ws, y, b, 1, qmax=q),
        "maxpool": lambda: K.maxpool_forward(y.reshape(n, oh, oh, f), pooled),
    }
    ts = {name: [] for name in parts}
    for name, fn in parts.items():
        fn()
    for _ in range(args.repeats):
        for name, fn in parts.items():
            t0 = time.thread_time()
            fn()
            ts[name].append(time.thread_time() - t0)
    print(f"SIMD {nncore.get_simd_level()}, int8 kernel {I.kernel(q)}, 1 thread, batch {n}: ms, median of "
          f"{args.repeats} (min-max)")
    for name, t in ts.items():
        print(f"| {name} | {np.median(t) * 1e3:.2f} ({min(t) * 1e3:.2f}-{max(t) * 1e3:.2f}) |")
    print(f"products: {m * 9 * c * f / 1e9:.2f} G multiply-adds")


if __name__ == "__main__":
    raise SystemExit(main())
