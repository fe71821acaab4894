"""BatchNormalization forward + backward in training on (128*26*26, 32) float32 (the activations after
the cnn row's first 3x3 convolution): nncore's two fused kernels against PyTorch's BatchNorm2d on the
same data in the same process (channels_last, the layout nncore keeps, and PyTorch's default NCHW),
with 1 and 2 threads; also LayerNormalization against torch.nn.functional.layer_norm.

    python bench/batchnorm.py [--repeats 7] [--rows 86528] [--channels 32]

Each implementation is timed in interleaved rounds (a noisy neighbour hits all of them alike); the
table gives the median per step and peer / nncore (> 1: nncore faster). One step reads x and dy twice
and writes y and dx: 4 passes of 11 MB at this size, bound by memory.
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import nncore  # noqa: E402
from nncore._kernels import norm as K  # noqa: E402
from nncore._kernels import runtime  # noqa: E402

try:
    import torch
except ImportError:  # the nncore rows still run
    torch = None


def nncore_bn(x, dy, nt):
    R, C = x.shape
    g, b = np.ones(C, np.float32), np.zeros(C, np.float32)
    mm, mv = np.zeros(C, np.float32), np.ones(C, np.float32)
    y, dx, stats, work = np.empty_like(x), np.empty_like(x), np.empty((2, C)), np.empty(K.work_size(R, C))
    dg, db = np.empty(C, np.float32), np.empty(C, np.float32)

    def step():
        K.batchnorm_forward(x, g, b, mm, mv, y, stats, work, 0.99, 1e-3, True, nt)
        K.batchnorm_backward(x, dy, g, stats, dx, dg, db, work, True, nt)
    return step


def nncore_ln(x, dy, nt):
    R, C = x.shape
    g, b = np.ones(C, np.float32), np.zeros(C, np.float32)
    y, dx, stats, work = np.empty_like(x), np.empty_like(x), np.empty((2, R)), np.empty(K.work_size(R, C))
    dg, db = np.empty(C, np.float32), np.empty(C, np.float32)

    def step():
        K.layernorm_forward(x, g, b, y, stats, 1e-3, nt)
        K.layernorm_backward(x, dy, g, stats, dx, dg, db, work, nt)
    return step


def torch_bn(x, dy, images, channels_last):
    n, h, w = images
    C = x.shape[1]
    bn = torch.nn.BatchNorm2d(C, eps=1e-3, momentum=0.01)
    xt = torch.from_numpy(x.reshape(n, h, w, C)).permute(0, 3, 1, 2)      # NCHW view of NHWC memory
    dyt = torch.from_numpy(dy.reshape(n, h, w, C)).permute(0, 3, 1, 2)
    if not channels_last:
        xt, dyt = xt.contiguous(), dyt.contiguous()
    xt.requires_grad_(True)

    def step():
        out = bn(xt)
        out.backward(dyt)
        xt.grad = None
        bn.weight.grad = bn.bias.grad = None
    return step


def torch_ln(x, dy):
    C = x.shape[1]
    xt = torch.from_numpy(x).requires_grad_(True)
    dyt = torch.from_numpy(dy)
    g, b = torch.ones(C, requires_grad=True), torch.zeros(C, requires_grad=True)

    def step():
        out = torch.nn.functional.layer_norm(xt, (C,), g, b, 1e-3)
        out.backward(dyt)
        xt.grad = g.grad = b.grad = None
    return step


def timed(fns, repeats):
    """Median seconds per call of each fn, timed in interleaved rounds after a warm-up call each."""
    for f in fns.values():
        f()
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    return {k: float(np.median(v)) for k, v in times.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--images", type=int, nargs=3, default=(128, 26, 26), metavar=("N", "H", "W"))
    ap.add_argument("--channels", type=int, default=32)
    args = ap.parse_args(argv)
    n, h, w = args.images
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n * h * w, args.channels)).astype(np.float32)
    dy = rng.normal(size=x.shape).astype(np.float32)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# BatchNormalization fwd+bwd, ({n}*{h}*{w}, {args.channels}) float32, "
          f"simd {runtime.simd_name(runtime.active_simd_level())}, load {load:.2f}, "
          f"median of {args.repeats}, ms per step")
    print("| threads | op | nncore | peer | peer ms | peer / nncore |")
    print("|---|---|---|---|---|---|")
    for nt in (1, 2):
        nncore.set_num_threads(nt)
        fns = {"bn": nncore_bn(x, dy, nt), "ln": nncore_ln(x, dy, nt)}
        peers = {}
        if torch is not None:
            torch.set_num_threads(nt)
            fns.update({"torch BatchNorm2d channels_last": torch_bn(x, dy, (n, h, w), True),
                        "torch BatchNorm2d NCHW": torch_bn(x, dy, (n, h, w), False),
                        "torch layer_norm": torch_ln(x, dy)})
            peers = {"torch BatchNorm2d channels_last": "bn", "torch BatchNorm2d NCHW": "bn",
                     "torch layer_norm": "ln"}
        t = timed(fns, args.repeats)
        for peer, ours in peers.items():
            print(f"| {nt} | {ours} | {t[ours] * 1e3:.2f} | {peer} | {t[peer] * 1e3:.2f} | "
                  f"{t[peer] / t[ours]:.2f} |")
        if not peers:
            for ours in ("bn", "ln"):
                print(f"| {nt} | {ours} | {t[ours] * 1e3:.2f} | - | - | - |")


if __name__ == "__main__":
    main()
