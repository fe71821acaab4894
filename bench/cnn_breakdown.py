"""Where a training step of the "cnn" workload spends its time in nncore, kernel by kernel.

``python -m bench.cnn_breakdown [--threads 1] [--steps 30]`` builds the nncore peer of the cnn row
(bench/workloads.py), trains a warm-up epoch, then wraps every kernel the layers call (im2col,
col2im, pooling, gemm, activation, column sums, the fused loss, the optimizer step) with a timer for
``--steps`` more steps and prints the milliseconds per step of each, by layer, with the step's total
measured without the timers. The wrappers cost about a microsecond per call (a few dozen calls per
step), well under the noise.
"""
import time
from collections import defaultdict


from bench.breakdown_common import prepare, print_header, wrapped_epoch


def main(argv=None):
    args, wl, x, y, model, plain = prepare("cnn", "python -m bench.cnn_breakdown",
                                           __doc__.split("\n\n")[0], argv)
    import nncore.layers.base as base_mod
    import nncore.layers.conv as conv_mod
    import nncore.layers.core as core_mod
    import nncore.models as models_mod

    totals = defaultdict(float)
    current = ["?"]

    def timed(label, fn):
        def wrapper(*a, **k):
            t0 = time.perf_counter()
            out = fn(*a, **k)
            totals[(current[0], label)] += time.perf_counter() - t0
            return out
        return wrapper

    class Kernels:   # stands in for the conv extension module inside nncore.layers.conv
        pass

    real_conv = conv_mod._conv
    for name in dir(real_conv):   # every kernel of the extension (wino_sizes only sizes buffers)
        fn = getattr(real_conv, name)
        if callable(fn) and not name.startswith("_") and name != "np":
            setattr(Kernels, name, staticmethod(fn if name == "wino_sizes" else timed(name, fn)))
    saved = {(conv_mod, "_conv"): real_conv}
    for mod in (conv_mod, core_mod, base_mod):
        for name in ("gemm", "gemm_bf16", "bf16_round", "_act_backward", "_colsum", "_act_forward",
                     "_softmax_forward"):
            if hasattr(mod, name):
                saved[(mod, name)] = getattr(mod, name)
                setattr(mod, name, timed(name.lstrip("_"), getattr(mod, name)))
    conv_mod._conv = Kernels
    for layer in model.layers:   # label each kernel call with the layer that makes it
        # _pair_forward/_pair_backward: a Conv2D -> MaxPooling2D pair run as one step (nncore/_plan.py)
        for meth in ("forward", "backward", "backward_logits", "forward_logits", "_pair_forward", "_pair_backward"):
            if hasattr(layer, meth):
                fn = getattr(layer, meth)

                label = meth.strip("_").replace("pair_", "pair ").split("_")[0]

                def run(*a, _fn=fn, _name=f"{layer.name} {label}", **k):
                    prev, current[0] = current[0], _name
                    try:
                        return _fn(*a, **k)
                    finally:
                        current[0] = prev
                setattr(layer, meth, run)
    model._plan = None   # the execution plan holds the layers' methods it was made with: plan again
    model.optimizer.step_flat = timed("optimizer step", model.optimizer.step_flat)
    wrapped = wrapped_epoch(model, x, y, wl, saved)
    steps = wl.steps()
    print_header("cnn", wl, args, plain, wrapped)
    print("| layer / pass | kernel | ms per step | share |")
    print("|---|---|---|---|")
    total = sum(totals.values()) / steps
    for (where, label), t in sorted(totals.items(), key=lambda kv: -kv[1]):
        print(f"| {where} | {label} | {t / steps * 1e3:.2f} | {t / steps / wrapped:.0%} |")
    print(f"| all kernels | | {total * 1e3:.2f} | {total / wrapped:.0%} |")
    by = defaultdict(float)
    for (_, label), t in totals.items():
        by[label] += t / steps
    print("\nBy kernel: " + ", ".join(f"{k} {v * 1e3:.2f} ms" for k, v in sorted(by.items(), key=lambda kv: -kv[1])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
