"""Winograd F(2x2, 3x3) and F(4x4, 3x3) against im2col + GEMM, the measurements behind the rule of
``nncore.layers.conv.winograd_tile``, and the numerical error of each path.

    python bench/winograd.py [--threads 1] [--clock wall|thread] [--repeats 7] [--quick] [--precision bf16]
    python bench/winograd.py --error
    python bench/winograd.py --im2col

Timing: the products a Conv2D training step runs, per path, on the same arrays: forward
y = relu(conv(x, K) + b) and backward dK and dx from a given delta (bias and activation gradients
cost the same on every path and are left out). im2col: im2col, one GEMM with the bias and relu
fused, dK = cols^T delta, dcols = delta K^T, col2im. Winograd: ``wino_forward`` and
``wino_backward``. The paths are timed in turns (interleaved), median of ``--repeats``; the table
gives milliseconds per step, the speed-up of each Winograd tile over im2col and the rule's choice.
``--clock thread`` times in thread CPU time (1 thread only), which leaves out the time other
processes hold the core.

``--error``: max |y - y64| / max |y64| of the forward, dx and dK of each path in float32 against the
direct float64 convolution, then one training step of the bench "cnn" model (bench/workloads.py)
in float32 with the layers' own choice of path against the same step with im2col forced, and both
against float64: the relative difference of the gradients and of the loss.

``--im2col``: what the im2col buffer costs where im2col stays (strides, other kernel sizes, few
channels): the share of im2col and col2im in the step's products (the measurement an implicit GEMM,
packing the GEMM's panels straight from the image, would have to beat).
"""
import argparse
import os
import time

import numpy as np

from nncore._kernels import ACT_BF16
from nncore._kernels import conv as K
from nncore._kernels.gemm import bf16_round, gemm, gemm_bf16
from nncore.layers.conv import _out_size, winograd_tile
from nncore.layers.core import _BF16_SHORT_K

CLOCK = {"wall": time.perf_counter, "thread": time.thread_time}


def shapes(quick):
    """(label, (n, h, w, c), f, kh, padding): channel, image-size, batch and filter sweeps, and Conv1D."""
    out = []
    for c in ((1, 4, 8, 32) if quick else (1, 2, 4, 8, 16, 32, 64, 128)):
        out.append(("channels", (32, 28, 28, c), 64, 3, "same"))
    for s in ((4, 7, 14) if quick else (3, 4, 5, 6, 7, 8, 11, 14, 28, 56)):
        out.append(("image", (32, s, s, 32), 64, 3, "same"))
    for n in ((1, 16) if quick else (1, 4, 16, 128)):
        out.append(("batch", (n, 13, 13, 32), 64, 3, "valid"))
    for f in ((4, 16) if quick else (4, 8, 16, 128)):
        out.append(("filters", (32, 14, 14, 32), f, 3, "same"))
    for c in ((8, 64) if quick else (4, 8, 32, 128)):
        out.append(("conv1d", (32, 1, 128, c), 64, 1, "same"))
    out.append(("cnn row conv2", (128, 13, 13, 32), 64, 3, "valid"))
    out.append(("vgg-like", (8, 56, 56, 64), 64, 3, "same"))
    return out


class Case:
    """Arrays and work buffers of one convolution, for every path."""

    def __init__(self, xshape, f, kh, padding, dtype=np.float32, seed=0, bf16=False):
        rng = np.random.default_rng(seed)
        self.bf16 = bf16
        n, h, w, c = xshape
        self.kshape = (kh, 3, c, f)
        (oh, pt), (ow, pl) = _out_size(h, kh, 1, 1, padding), _out_size(w, 3, 1, 1, padding)
        self.pad, self.out = (pt, pl), (oh, ow)
        self.x = rng.standard_normal(xshape).astype(dtype)
        self.k = (rng.standard_normal(self.kshape) / np.sqrt(9 * c)).astype(dtype)
        self.b = rng.standard_normal(f).astype(dtype) * 0.1
        self.y = np.empty((n, oh, ow, f), dtype)
        self.delta = rng.standard_normal(self.y.shape).astype(dtype)
        self.dk = np.empty_like(self.k)
        self.dx = np.empty_like(self.x)
        self.cols = np.empty((n * oh * ow, kh * 3 * c), dtype)
        self.work = {}
        for m in (2, 4):
            sizes = K.wino_sizes(xshape, self.kshape, m, self.out)
            self.work[m] = [np.empty(s, dtype) for s in sizes + sizes[:1]]

    def im2col_step(self, nt):
        # float32; bf16 (mixed_bfloat16): the layer's route, the bf16 GEMM or, for a short k, the float32
        # GEMM on operands rounded first (x, K, delta) with y rounded in its epilogue (nncore/layers/conv.py)
        f = self.kshape[3]
        win = self.kshape[:2]
        short = self.bf16 and self.cols.shape[1] < _BF16_SHORT_K
        mm, act, x, k2, d2 = gemm, 4, self.x, self.k.reshape(-1, f), self.delta.reshape(-1, f)
        if self.bf16 and not short:
            mm = gemm_bf16
        elif short:
            act, x = 4 | ACT_BF16, bf16_round(self.x, self.dx)
            k2, d2 = bf16_round(k2, self.dk.reshape(-1, f)).copy(), bf16_round(d2, self.y.reshape(-1, f)).copy()
        K.im2col(x, self.cols, win, (1, 1), (1, 1), self.pad, self.out, nt)
        mm(self.cols, k2, self.y.reshape(-1, f), bias=self.b, act=act, n_threads=nt)
        mm(self.cols, d2, self.dk.reshape(-1, f), trans_a=True, n_threads=nt)
        mm(d2, k2, self.cols, trans_b=True, n_threads=nt)
        K.col2im(self.cols, self.dx, win, (1, 1), (1, 1), self.pad, self.out, nt)

    def wino_step(self, m, nt):
        U, V, M, dU = self.work[m]
        K.wino_forward(self.x, self.k, self.b, U, V, self.y, m, self.pad, 4, 0.0, nt, self.bf16)
        K.wino_backward(self.delta, U, V, M, dU, self.dk, self.dx, self.x.shape[1:3], m, self.pad, nt, self.bf16)

    def wino_out(self, m):
        U, V, M, dU = self.work[m]
        y, dk, dx = np.empty_like(self.y), np.empty_like(self.k), np.empty_like(self.x)
        K.wino_forward(self.x, self.k, self.b, U, V, y, m, self.pad, 0)
        K.wino_backward(self.delta, U, V, M, dU, dk, dx, self.x.shape[1:3], m, self.pad)
        return y, dk, dx

    def im2col_out(self):
        f = self.kshape[3]
        y, dk, dx = np.empty_like(self.y), np.empty_like(self.k), np.empty_like(self.x)
        K.im2col(self.x, self.cols, self.kshape[:2], (1, 1), (1, 1), self.pad, self.out)
        gemm(self.cols, self.k.reshape(-1, f), y.reshape(-1, f), bias=self.b)
        d2 = self.delta.reshape(-1, f)
        gemm(self.cols, d2, dk.reshape(-1, f), trans_a=True)
        gemm(d2, self.k.reshape(-1, f), self.cols, trans_b=True)
        K.col2im(self.cols, dx, self.kshape[:2], (1, 1), (1, 1), self.pad, self.out)
        return y, dk, dx


def interleaved(runs, repeats, clock):
    """{key: median milliseconds} of the callables in runs, timed in turns after one warm-up call each."""
    for fn in runs.values():
        fn()
    t = {key: [] for key in runs}
    for _ in range(repeats):
        for key, fn in runs.items():
            t0 = clock()
            fn()
            t[key].append(clock() - t0)
    return {key: float(np.median(v)) * 1e3 for key, v in t.items()}


def timing(args):
    clock = CLOCK[args.clock]
    print(f"# Winograd vs im2col + GEMM, one Conv2D training step's products (relu), {args.precision}, "
          f"{args.threads} thread(s), clock {args.clock}, median of {args.repeats}; load "
          f"{os.getloadavg()[0]:.1f}; SIMD {_simd()}\n")
    print("| sweep | x (n, h, w, c) | f | kernel | padding | im2col ms | F(2x2) ms | F(4x4) ms | "
          "F(2x2) speed-up | F(4x4) speed-up | rule | best |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for label, xshape, f, kh, padding in shapes(args.quick):
        case = Case(xshape, f, kh, padding, bf16=args.precision == "bf16")
        runs = {"im2col": lambda: case.im2col_step(args.threads),
                2: lambda: case.wino_step(2, args.threads), 4: lambda: case.wino_step(4, args.threads)}
        med = interleaved(runs, args.repeats, clock)
        best = min(med, key=med.get)
        rule = winograd_tile(xshape[0], case.out, xshape[3], kh)
        name = lambda k: "im2col" if k in ("im2col", 0) else f"F({k}x{k})" if kh == 3 else f"F({k},3)"
        print(f"| {label} | {xshape} | {f} | {kh}x3 | {padding} | {med['im2col']:.3f} | {med[2]:.3f} | "
              f"{med[4]:.3f} | {med['im2col'] / med[2]:.2f}x | {med['im2col'] / med[4]:.2f}x | "
              f"{name(rule)} | {name(best)} |")


def im2col_share(args):
    clock = CLOCK[args.clock]
    print(f"# The im2col buffer's cost on the shapes that stay on im2col, float32, {args.threads} thread(s), "
          f"clock {args.clock}, median of {args.repeats}; load {os.getloadavg()[0]:.1f}\n")
    print("| layer | x (n, h, w, c) | f | im2col ms | col2im ms | GEMMs ms | im2col + col2im share |")
    print("|---|---|---|---|---|---|---|")
    cases = [("cnn row conv1: 3x3, 1 channel", (128, 28, 28, 1), 32, (3, 3), (1, 1), "valid"),
             ("ResNet stem: 7x7 stride 2", (16, 112, 112, 3), 64, (7, 7), (2, 2), "same"),
             ("3x3 stride 2", (32, 28, 28, 64), 128, (3, 3), (2, 2), "same"),
             ("5x5", (32, 14, 14, 32), 64, (5, 5), (1, 1), "same"),
             ("3x3, 4 channels", (32, 28, 28, 4), 32, (3, 3), (1, 1), "same")]
    for label, xshape, f, win, st, padding in cases:
        rng = np.random.default_rng(0)
        n, h, w, c = xshape
        (oh, pt), (ow, pl) = (_out_size(a, k, s, 1, padding) for a, k, s in zip((h, w), win, st))
        x = rng.standard_normal(xshape).astype(np.float32)
        k = rng.standard_normal((win[0] * win[1] * c, f)).astype(np.float32)
        cols = np.empty((n * oh * ow, k.shape[0]), np.float32)
        y = np.empty((n * oh * ow, f), np.float32)
        dk, dx = np.empty_like(k), np.empty_like(x)
        nt = args.threads
        parts = {"im2col": lambda: K.im2col(x, cols, win, st, (1, 1), (pt, pl), (oh, ow), nt),
                 "col2im": lambda: K.col2im(cols, dx, win, st, (1, 1), (pt, pl), (oh, ow), nt),
                 "gemm": lambda: (gemm(cols, k, y, act=4, n_threads=nt), gemm(cols, y, dk, trans_a=True, n_threads=nt),
                                  gemm(y, k, cols, trans_b=True, n_threads=nt))}
        med = interleaved(parts, args.repeats, clock)
        share = (med["im2col"] + med["col2im"]) / sum(med.values())
        print(f"| {label} | {xshape} | {f} | {med['im2col']:.2f} | {med['col2im']:.2f} | {med['gemm']:.2f} | "
              f"{share:.0%} |")


def _rel(a, ref):
    return float(np.abs(a - ref).max() / np.abs(ref).max())


def errors():
    print("# Error against the float64 convolution: max |e| / max |ref|, float32 inputs\n")
    print("| x (n, h, w, c) | f | path | forward | dK | dx |")
    print("|---|---|---|---|---|---|")
    for xshape, f in (((8, 13, 13, 32), 64), ((4, 28, 28, 128), 128), ((2, 14, 14, 512), 64)):
        case = Case(xshape, f, 3, "same")
        ref = Case(xshape, f, 3, "same", np.float64)
        for a in ("x", "k", "b", "delta"):
            setattr(ref, a, getattr(case, a).astype(np.float64))
        r = ref.im2col_out()
        for name, out in (("im2col", case.im2col_out()), ("F(2x2)", case.wino_out(2)),
                          ("F(4x4)", case.wino_out(4))):
            print(f"| {xshape} | {f} | {name} | " + " | ".join(f"{_rel(o, q):.1e}" for o, q in zip(out, r)) + " |")
    print()
    step_error()


def step_gradients(wl, x, y, dtype, winograd=True):
    """The flat gradient buffer and the loss after one training step of the nncore model of ``wl`` on
    (x, y) in ``dtype``, from the same seed; ``winograd=False`` forces im2col in every layer."""
    import nncore
    import nncore.layers.conv as conv
    from bench.peers import KerasLayerBuilders

    rule = conv.winograd_tile
    if not winograd:
        conv.winograd_tile = lambda *a: 0
    nncore.set_floatx(dtype)
    try:
        builder = KerasLayerBuilders()
        builder.wl, builder.layer_api = wl, nncore.layers
        nncore.set_seed(0)
        model = nncore.Sequential([nncore.layers.Input(shape=wl.input_shape)] + builder.build_cnn())
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        hist = model.fit(x.astype(dtype), y, epochs=1, batch_size=len(x), shuffle=False, verbose=0)
        return model._grads.astype(np.float64), hist.history["loss"][0]
    finally:
        conv.winograd_tile = rule
        nncore.set_floatx("float32")


def step_error():
    """One training step of the bench cnn model: the layers' own choice (Winograd) vs im2col in float32,
    and both vs float64."""
    from bench.workloads import get_workload, make_data

    wl = get_workload("cnn")
    x, y = make_data(wl)
    x, y = x[:wl.batch], y[:wl.batch]
    g64, l64 = step_gradients(wl, x, y, "float64", winograd=False)
    gw, lw = step_gradients(wl, x, y, "float32")
    gi, li = step_gradients(wl, x, y, "float32", winograd=False)
    rel = lambda a, b: float(np.linalg.norm(a - b) / np.linalg.norm(b))
    print(f"# One training step of the cnn row's model (batch {wl.batch}, float32): ||g - g_ref|| / ||g_ref||"
          f" of the flat gradient, |loss - loss_ref| / loss_ref\n")
    print("| float32 path | vs float64: gradient | loss | vs im2col float32: gradient | loss |")
    print("|---|---|---|---|---|")
    print(f"| im2col | {rel(gi, g64):.1e} | {abs(li - l64) / l64:.1e} | - | - |")
    print(f"| Winograd (the layers' rule) | {rel(gw, g64):.1e} | {abs(lw - l64) / l64:.1e} | {rel(gw, gi):.1e} | "
          f"{abs(lw - li) / li:.1e} |")


def _simd():
    from nncore._kernels import runtime
    return runtime.simd_name(runtime.active_simd_level())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--clock", choices=sorted(CLOCK), default="wall")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--precision", choices=("float32", "bf16"), default="float32",
                   help="timing: bf16 times the mixed_bfloat16 routes (Winograd's bf16 form; im2col on the bf16 "
                        "GEMM, or the float32 GEMM on rounded operands for a short k)")
    p.add_argument("--error", action="store_true", help="numerical error of each path instead of timings")
    p.add_argument("--im2col", action="store_true", help="the im2col buffer's share where im2col stays")
    args = p.parse_args(argv)
    if args.clock == "thread" and args.threads != 1:
        p.error("--clock thread times one thread only")
    if args.error:
        errors()
    elif args.im2col:
        im2col_share(args)
    else:
        timing(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
