"""What the per-kernel breakdowns (bench/cnn_breakdown.py, bench/lstm_breakdown.py) share: the command
line, the nncore peer of a workload after a warm-up epoch, and the plain step time without timers."""
import argparse
import time

import numpy as np

from bench import set_simd
from bench.peers import NncoreBf16Peer, NncorePeer
from bench.workloads import get_workload, make_data


def prepare(workload, prog, description, argv=None):
    """Parse --threads/--steps/--repeats, build the nncore peer of `workload` over --steps batches, train a
    warm-up epoch (buffers exist), time --repeats plain epochs. Returns (args, wl, x, y, model, plain),
    plain being the seconds per step of each epoch."""
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--repeats", type=int, default=5, help="untimed-kernel epochs for the plain step time")
    p.add_argument("--precision", choices=("float32", "bf16"), default="float32",
                   help="bf16: the model built under the mixed_bfloat16 policy (bench's nncore_bf16 peer)")
    p.add_argument("--simd", choices=("generic", "avx2", "avx512"), default=None,
                   help="run nncore's kernels at this SIMD level (default: the best this CPU has)")
    p.add_argument("--unpaired", action="store_true",
                   help="run a Conv2D -> MaxPooling2D pair as the two layers (nncore._plan.FUSE_CONV_POOL off)")
    args = p.parse_args(argv)
    if args.unpaired:
        import nncore._plan
        nncore._plan.FUSE_CONV_POOL = False
    set_simd(args.simd)
    wl = get_workload(workload, args.steps * 128)
    x, y = make_data(wl)
    peer = (NncoreBf16Peer if args.precision == "bf16" else NncorePeer)(wl, x, y)
    peer.set_threads(args.threads)
    model = peer.model
    model.fit(x, y, batch_size=wl.batch, epochs=1, verbose=0)
    plain = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        model.fit(x, y, batch_size=wl.batch, epochs=1, verbose=0)
        plain.append((time.perf_counter() - t0) / wl.steps())
    return args, wl, x, y, model, plain


def wrapped_epoch(model, x, y, wl, saved):
    """One epoch with the timers in place; then put back the module attributes in `saved`
    ({(module, name): original}) and the optimizer's own step_flat. Returns seconds per step."""
    t0 = time.perf_counter()
    model.fit(x, y, batch_size=wl.batch, epochs=1, verbose=0)
    wrapped = (time.perf_counter() - t0) / wl.steps()
    for (mod, name), fn in saved.items():
        setattr(mod, name, fn)
    model.optimizer.__dict__.pop("step_flat", None)
    return wrapped


def print_header(workload, wl, args, plain, wrapped):
    import nncore
    print(f"# nncore ({args.precision}) on the {workload} workload: batch {wl.batch}, SIMD {nncore.get_simd_level()}, "
          f"{args.threads} thread(s), {wl.steps()} steps; "
          f"plain step {np.median(plain) * 1e3:.2f} ms (median of {args.repeats} epochs), "
          f"with timers {wrapped * 1e3:.2f} ms")
