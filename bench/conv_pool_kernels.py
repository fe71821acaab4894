"""The cnn row's two Conv2D -> MaxPooling2D pairs, kernel by kernel: the fused kernels against the unfused
chain they replace, interleaved in one process, thread CPU time (medians of 5 rounds of 5 calls).

    flock /work/lead/bench.lock python -m bench.conv_pool_kernels [--simd avx2]

uf / ff: conv1 (128x28x28x1 -> 26x26x32, im2col, relu) forward: conv_forward + maxpool_forward, and
conv_pool_forward; ub / fb: its backward (no dx: a first layer): maxpool_backward + conv_backward_weights,
and conv_pool_backward_weights; wuf / wff: conv2 (128x13x13x32 -> 11x11x64, Winograd F(4x4), relu) forward:
wino_forward + maxpool_forward, and wino_pool_forward; wub / wfb: its backward with dx: maxpool_backward +
act_backward + colsum + wino_backward, and unpool2_colsum + wino_pool_backward. Prints ms per call.
"""
import argparse
import os

import numpy as np

from bench import set_simd, thread_median_ms




def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--simd", choices=("generic", "avx2", "avx512"), default=None)
    p.add_argument("--batch", type=int, default=128)
    args = p.parse_args(argv)
    import nncore
    from nncore._kernels import ACT_CODES
    from nncore._kernels import conv as K
    from nncore._kernels import elementwise as E

    set_simd(args.simd)
    relu, n, f32 = ACT_CODES["relu"], args.batch, np.float32
    rng = np.random.default_rng(0)
    pool = ((2, 2), (2, 2), (0, 0), 1)
    # conv1: im2col, k = 9
    x = rng.standard_normal((n, 28, 28, 1)).astype(f32)
    kern, b = (rng.standard_normal((9, 32)) * 0.3).astype(f32), np.zeros(32, f32)
    geo = ((3, 3), (1, 1), (1, 1), (0, 0), (26, 26))
    y = np.empty((n * 26 * 26, 32), f32)
    yp, dx = np.empty((n, 13, 13, 32), f32), np.empty((n, 26, 26, 32), f32)
    idx, ix = np.empty(yp.shape, np.int32), np.empty(yp.shape, np.uint8)
    dyp = rng.standard_normal(yp.shape).astype(f32)
    dk, db = np.empty_like(kern), np.empty_like(b)
    # conv2: Winograd F(4x4)
    x2 = rng.standard_normal((n, 13, 13, 32)).astype(f32)
    k2, b2 = (rng.standard_normal((3, 3, 32, 64)) * 0.1).astype(f32), np.zeros(64, f32)
    su, sv, sm = K.wino_sizes(x2.shape, k2.shape, 4, (11, 11))
    U, V, M, dU = (np.empty(s, f32) for s in (su, sv, sm, su))
    y2, yp2 = np.empty((n, 11, 11, 64), f32), np.empty((n, 5, 5, 64), f32)
    idx2, ix2 = np.empty(yp2.shape, np.int32), np.empty(yp2.shape, np.uint8)
    dyp2 = rng.standard_normal(yp2.shape).astype(f32)
    dfull, delta = np.zeros((n, 11, 11, 64), f32), np.empty((n, 11, 11, 64), f32)
    dk2, dx2, db2 = np.empty_like(k2), np.empty_like(x2), np.empty(64, f32)

    def uf():
        K.conv_forward(x, kern, y, b, relu, 0.0, *geo)
        K.maxpool_forward(y.reshape(n, 26, 26, 32), yp, idx, *pool)

    def ff():
        K.conv_pool_forward(x, kern, yp, b, relu, 0.0, *geo, idx=ix)

    def ub():
        K.maxpool_backward(idx, dyp, dx, *pool)
        K.conv_backward_weights(x, dx.reshape(-1, 32), y, dk, db, relu, 0.0, None, None, *geo)

    def fb():
        K.conv_pool_backward_weights(x, dyp, yp, ix, dk, db, relu, None, *geo)

    def wuf():
        K.wino_forward(x2, k2, b2, U, V, y2, 4, (0, 0), relu, 0.0)
        K.maxpool_forward(y2, yp2, idx2, *pool)

    def wff():
        K.wino_pool_forward(x2, k2, b2, U, V, yp2, ix2, (11, 11), 4, (0, 0), relu)

    def wub():
        K.maxpool_backward(idx2, dyp2, dfull, *pool)   # the pool's dx (11 x 11: the last row and column 0)
        E.act_backward(relu, 0.0, None, y2, dfull, delta, 1)
        E.colsum(delta.reshape(-1, 64), db2, 1)
        K.wino_backward(delta, U, V, M, dU, dk2, dx2, (13, 13), 4)

    def wfb():
        K.unpool2_colsum(yp2, ix2, dyp2, db2, (11, 11), relu)
        K.wino_pool_backward(dyp2, yp2, ix2, U, V, M, dU, dk2, dx2, (13, 13), (11, 11), 4, act=relu)

    fns = dict(uf=uf, ff=ff, ub=ub, fb=fb, wuf=wuf, wff=wff, wub=wub, wfb=wfb)
    res = {k: [] for k in fns}
    for _ in range(5):
        for k, fn in fns.items():
            res[k].append(thread_median_ms(fn, 5))
    print(f"{nncore.get_simd_level()}, 1 thread, thread time, load {os.getloadavg()[0]:.1f}, ms: "
          + " ".join(f"{k} {np.median(v):.2f}" for k, v in res.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
