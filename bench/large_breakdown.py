"""Where a training step of the "large" workload spends its time in nncore, product by product.

``python -m bench.large_breakdown [--precision bf16] [--threads 1] [--steps 30]`` builds the nncore peer
of the large row (bench/workloads.py: Dense 784-1024-1024-10, batch 256, Adam), trains a warm-up epoch,
then wraps every kernel the Dense layers call (the three products of each layer, told apart by their
operands, the activation backward, the column sums, the bf16 rounding of db, the fused loss and the
optimizer step) with a timer for ``--steps`` more steps and prints the milliseconds per step of each with
its GFLOP/s, the step's total measured without the timers, and "other" (the batch gather, Python). The
wrappers cost about a microsecond per call (about 20 calls per step), under the noise. With one thread the
kernels are timed in thread CPU time (time.thread_time: what other processes take of the core is left out),
with two in wall time.
"""
import time
from collections import defaultdict

from bench.breakdown_common import prepare, print_header, wrapped_epoch


def _role(a, b, c, trans_a=False, trans_b=False, **_):
    """(label, flops) of a Dense product: z = x W + b, dW = x^T delta, dx = delta W^T."""
    m, n = c.shape
    k = a.shape[0] if trans_a else a.shape[1]
    what = "dW = x^T delta" if trans_a else "dx = delta W^T" if trans_b else "z = x W + b"
    return f"{what} ({m}x{n}, k {k})", 2.0 * m * n * k


def main(argv=None):
    args, wl, x, y, model, plain = prepare("large", "python -m bench.large_breakdown",
                                           __doc__.split("\n\n")[0], argv)
    import nncore.layers.base as base_mod
    import nncore.layers.core as core_mod

    totals, flops = defaultdict(float), defaultdict(float)
    clock = time.thread_time if args.threads == 1 else time.perf_counter

    def timed(label, fn):
        def wrapper(*a, **k):
            key, f = label(*a, **k) if callable(label) else (label, 0.0)
            t0 = clock()
            out = fn(*a, **k)
            totals[key] += clock() - t0
            flops[key] += f
            return out
        return wrapper

    saved = {}
    for mod, name, label in ((base_mod, "gemm", _role), (base_mod, "gemm_bf16", _role),
                             (core_mod, "_act_backward", "relu backward (delta = dy f'(y))"),
                             (core_mod, "_colsum", "colsum (db)"), (core_mod, "bf16_round", "bf16 round (db)")):
        saved[(mod, name)] = getattr(mod, name)
        setattr(mod, name, timed(label, getattr(mod, name)))
    for h in model._heads:   # the fused softmax cross-entropy (the plan takes it from the loss)
        if h.loss is not None:
            h.loss._logits_grad = timed("loss (fused softmax cross-entropy)", h.loss._logits_grad)
    model._plan = None   # the plan holds the bound methods it was made with: plan again
    model.optimizer.step_flat = timed("optimizer step (Adam, flat)", model.optimizer.step_flat)
    wrapped = wrapped_epoch(model, x, y, wl, saved)
    steps = wl.steps()
    print_header("large", wl, args, plain, wrapped)
    print("| kernel | ms per step | GFLOP/s | share |")
    print("|---|---|---|---|")
    for label, t in sorted(totals.items(), key=lambda kv: -kv[1]):
        rate = f"{flops[label] / t / 1e9:.0f}" if flops[label] else ""
        print(f"| {label} | {t / steps * 1e3:.2f} | {rate} | {t / steps / wrapped:.0%} |")
    gemms = sum(t for label, t in totals.items() if flops[label]) / steps
    rest = wrapped - sum(totals.values()) / steps
    print(f"| all products | {gemms * 1e3:.2f} | {sum(flops.values()) / steps / gemms / 1e9:.0f} | "
          f"{gemms / wrapped:.0%} |")
    print(f"| other (batch gather, Python) | {rest * 1e3:.2f} | | {rest / wrapped:.0%} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
