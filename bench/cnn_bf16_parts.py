"""The cnn row's training step part by part, float32 against mixed_bfloat16: each part's kernel calls as the
layers make them under each policy (the bf16 ones with their roundings), interleaved in one process, thread
CPU time, medians of 7 rounds of 5 calls.

    flock /work/lead/bench.lock python -m bench.cnn_bf16_parts [--simd avx2]

Parts (batch 128, the shapes of bench/workloads.py's cnn): c1f conv1 (28x28x1 -> 26x26x32, k = 9) + relu +
pool forward (`conv_pool_forward`; bf16: x and K rounded first, ACT_BF16); c1b its backward (no dx:
`conv_pool_backward_weights`); c2f conv2 (13x13x32 -> 11x11x64, Winograd F(4x4)) + relu + pool forward
(`wino_pool_forward`, bf16 flag); c2b its backward with dx (`unpool2_colsum` + `wino_pool_backward`); df / db
the Dense(10) head on 1600 features, forward z = x W + b and backward dW, dx (float32: `gemm`; bf16: the
layer's route, the float32 GEMM on rounded operands, or `gemm_bf16` with --bf16-gemm). Prints ms per call of each part under each policy and their ratio.
"""
import argparse
import os

import numpy as np

from bench import thread_median_ms




BF16_GEMM_HEAD = False


def parts(n=128):
    """{name: (float32 callable, bf16 callable)} on the cnn row's shapes."""
    from nncore._kernels import ACT_BF16, ACT_CODES
    from nncore._kernels import conv as K
    from nncore._kernels.gemm import bf16_round, gemm, gemm_bf16

    relu, f32 = ACT_CODES["relu"], np.float32
    rng = np.random.default_rng(0)
    x = rng.random((n, 28, 28, 1)).astype(f32)
    kern, b = (rng.standard_normal((9, 32)) * 0.3).astype(f32), np.zeros(32, f32)
    xr, kr = np.empty_like(x), np.empty_like(kern)
    geo = ((3, 3), (1, 1), (1, 1), (0, 0), (26, 26))
    yp, ix = np.empty((n, 13, 13, 32), f32), np.empty((n, 13, 13, 32), np.uint8)
    dyp = rng.standard_normal(yp.shape).astype(f32)
    dk, db = np.empty_like(kern), np.empty_like(b)
    x2 = rng.random((n, 13, 13, 32)).astype(f32)
    k2, b2 = (rng.standard_normal((3, 3, 32, 64)) * 0.1).astype(f32), np.zeros(64, f32)
    su, sv, sm = K.wino_sizes(x2.shape, k2.shape, 4, (11, 11))
    U, V, M, dU = (np.empty(s, f32) for s in (su, sv, sm, su))
    yp2, ix2 = np.empty((n, 5, 5, 64), f32), np.empty((n, 5, 5, 64), np.uint8)
    dyp2 = rng.standard_normal(yp2.shape).astype(f32)
    dk2, dx2, db2 = np.empty_like(k2), np.empty_like(x2), np.empty(64, f32)
    xd = rng.random((n, 1600)).astype(f32)
    w, bd = (rng.standard_normal((1600, 10)) * 0.03).astype(f32), np.zeros(10, f32)
    z, dz = np.empty((n, 10), f32), rng.standard_normal((n, 10)).astype(f32) * 0.01
    dw, dxd = np.empty_like(w), np.empty_like(xd)

    def c1f(bf):
        def run():
            if bf:
                K.conv_pool_forward(bf16_round(x, xr), bf16_round(kern, kr), yp, b, relu | ACT_BF16, 0.0, *geo,
                                    idx=ix)
            else:
                K.conv_pool_forward(x, kern, yp, b, relu, 0.0, *geo, idx=ix)
        return run

    def c1b(bf):
        return lambda: K.conv_pool_backward_weights(xr if bf else x, dyp, yp, ix, dk, db,
                                                    relu | ACT_BF16 if bf else relu, None, *geo)

    def c2f(bf):
        return lambda: K.wino_pool_forward(x2, k2, b2, U, V, yp2, ix2, (11, 11), 4, (0, 0), relu, bf16=bf)

    def c2b(bf):
        def run():
            K.unpool2_colsum(yp2, ix2, dyp2, db2, (11, 11), relu)
            if bf:
                bf16_round(db2, db2)
            K.wino_pool_backward(dyp2, yp2, ix2, U, V, M, dU, dk2, dx2, (13, 13), (11, 11), 4, act=relu, bf16=bf)
        return run

    xdr, wr, dzr = np.empty_like(xd), np.empty_like(w), np.empty_like(dz)

    def df(bf):   # bf16: the layer's route for a narrow n (`_bf16_on_float32`), or --bf16-gemm
        if bf and BF16_GEMM_HEAD:
            return lambda: gemm_bf16(xd, w, z, bias=bd)
        if bf:
            return lambda: gemm(bf16_round(xd, xdr), bf16_round(w, wr), z, bias=bd, act=ACT_BF16)
        return lambda: gemm(xd, w, z, bias=bd)

    def dbw(bf):
        def run():
            if bf and BF16_GEMM_HEAD:
                gemm_bf16(xd, dz, dw, trans_a=True)
                gemm_bf16(dz, w, dxd, trans_b=True)
            elif bf:
                d = bf16_round(dz, dzr)
                gemm(xdr, d, dw, trans_a=True, act=ACT_BF16)
                gemm(d, wr, dxd, trans_b=True, act=ACT_BF16)
            else:
                gemm(xd, dz, dw, trans_a=True)
                gemm(dz, w, dxd, trans_b=True)
        return run

    c1f(False)()   # the argmax and V the backward parts read
    c2f(False)()
    return {name: (mk(False), mk(True)) for name, mk in
            (("c1f", c1f), ("c1b", c1b), ("c2f", c2f), ("c2b", c2b), ("df", df), ("db", dbw))}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--simd", choices=("generic", "avx2", "avx512"), default=None)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--bf16-gemm", action="store_true", help="the Dense head's bf16 parts on gemm_bf16 (the "
                   "route before session 17)")
    args = p.parse_args(argv)
    global BF16_GEMM_HEAD
    BF16_GEMM_HEAD = args.bf16_gemm
    import nncore
    if args.simd:
        nncore.set_simd_level(args.simd)
    fns = parts()
    res = {k: ([], []) for k in fns}
    for _ in range(args.rounds):
        for k, pair in fns.items():
            for i in (0, 1):
                res[k][i].append(thread_median_ms(pair[i], 5))
    print(f"{nncore.get_simd_level()}, 1 thread, thread time, load {os.getloadavg()[0]:.1f}; ms per call, "
          "float32 / bf16 (ratio):")
    tot = [0.0, 0.0]
    for k, (a, b) in res.items():
        ma, mb = float(np.median(a)), float(np.median(b))
        tot[0] += ma
        tot[1] += mb
        print(f"  {k}: {ma:.3f} / {mb:.3f} ({ma / mb:.2f}x)")
    print(f"  sum: {tot[0]:.3f} / {tot[1]:.3f} ({tot[0] / tot[1]:.2f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
