"""Where a predict of the cnn model spends its time in nncore, float32 and int8, layer by layer.

``python -m bench.cnn_predict_breakdown [--threads 1] [--simd avx2] [--repeats 5]`` builds the nncore peer
of the ``cnn_predict`` row (bench/workloads.py: the cnn model, untrained, a batch of 1024), then for the
float32 model and the same model after ``model.quantize("int8")`` prints the plain predict time (median of
``--repeats``) and, with timers around every layer's forward and the kernels it calls (im2col, Winograd,
the int8 convolution, the int8 GEMM, pooling, softmax), milliseconds per batch of each.
"""
import argparse
import time
from collections import defaultdict

import numpy as np

from bench import set_simd
from bench.peers import NncorePeer
from bench.workloads import get_workload, make_data

CONV_KERNELS = ("im2col", "conv_forward", "wino_forward", "conv_int8", "maxpool_forward")
CORE_KERNELS = ("gemm_int8", "_softmax_forward")


def _timed_predict(model, xb, repeats):
    model.predict(xb, batch_size=len(xb), verbose=0)
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model.predict(xb, batch_size=len(xb), verbose=0)
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def breakdown(model, xb, repeats):
    """{(layer, kernel or "layer"): seconds per batch} with timers around the layers and their kernels."""
    import nncore.layers.conv as conv_mod
    import nncore.layers.core as core_mod

    totals, current = defaultdict(float), ["?"]

    def timed(label, fn):
        def wrapper(*a, **k):
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                totals[(current[0], label)] += time.perf_counter() - t0
        return wrapper

    class Kernels:   # stands in for the conv extension module inside nncore.layers.conv
        wino_sizes = staticmethod(conv_mod._conv.wino_sizes)

    real_conv, saved = conv_mod._conv, {name: getattr(core_mod, name) for name in CORE_KERNELS}
    for name in CONV_KERNELS:
        setattr(Kernels, name, staticmethod(timed(name, getattr(real_conv, name))))
    conv_mod._conv = Kernels
    for name, fn in saved.items():
        setattr(core_mod, name, timed(name.lstrip("_"), fn))
    for layer in model.layers:
        def run(*a, _fn=layer.forward, _name=layer.name, **k):
            prev, current[0] = current[0], _name
            try:
                return timed("layer", _fn)(*a, **k)
            finally:
                current[0] = prev
        layer.forward = run
    model._plan = None            # the plan holds the layers' methods it was made with: plan again
    try:
        for _ in range(repeats):
            model.predict(xb, batch_size=len(xb), verbose=0)
    finally:
        conv_mod._conv = real_conv
        for name, fn in saved.items():
            setattr(core_mod, name, fn)
        for layer in model.layers:
            del layer.forward
        model._plan = None
    return {key: t / repeats for key, t in totals.items()}


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.cnn_predict_breakdown", description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--simd", choices=("generic", "avx2", "avx512"), default=None)
    args = p.parse_args(argv)
    import nncore

    set_simd(args.simd)
    wl = get_workload("cnn_predict", 1024)
    x, y = make_data(wl)
    for precision in ("float32", "int8"):
        peer = NncorePeer(wl, x, y)
        peer.set_threads(args.threads)
        model = peer.model
        if precision == "int8":
            model.quantize("int8")
        plain = _timed_predict(model, x, args.repeats)
        parts = breakdown(model, x, args.repeats)
        print(f"\n### {precision} (int8 layers: {model.quantized or 'none'}), SIMD {nncore.get_simd_level()}, "
              f"{args.threads} thread(s): predict of {len(x)} {plain * 1e3:.2f} ms (median of {args.repeats})\n")
        print("| layer | kernel | ms per batch |")
        print("|---|---|---|")
        for (layer, kernel), t in parts.items():
            print(f"| {layer} | {kernel} | {t * 1e3:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
