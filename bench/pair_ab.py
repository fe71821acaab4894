"""The cnn workload's nncore model with the Conv2D -> MaxPooling2D pairs run as one step (nncore/_plan.py)
against the same model with the pairing off, trained in turns in one process.

    flock /work/lead/bench.lock python -m bench.pair_ab [--workload cnn] [--threads 1] [--steps 10]
                                                        [--repeats 9] [--simd avx2] [--policy mixed_bfloat16]

Both models are built on the same data and warmed up an epoch; each repeat then trains one epoch of
``--steps`` batches of each, in turns. One thread is timed in thread CPU time, two in wall time. Prints
the medians per step and unfused / fused.
"""
import argparse
import os

from bench import interleaved_fit_ms
from bench.peers import NncoreBf16Peer, NncorePeer
from bench.workloads import get_workload, make_data


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workload", default="cnn")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--simd", choices=("generic", "avx2", "avx512"), default=None)
    p.add_argument("--policy", choices=("float32", "mixed_bfloat16"), default="float32")
    args = p.parse_args(argv)
    import nncore
    import nncore._plan as plan_mod
    if args.simd:
        nncore.set_simd_level(args.simd)
    wl = get_workload(args.workload, args.steps * 128)
    x, y = make_data(wl)
    cls = NncorePeer if args.policy == "float32" else NncoreBf16Peer
    models = {}
    for name, fuse in (("fused", True), ("unfused", False)):
        plan_mod.FUSE_CONV_POOL = fuse      # read when the model's plan is made (its first fit)
        peer = cls(wl, x, y)
        peer.set_threads(args.threads)
        peer.model.fit(x, y, batch_size=wl.batch, epochs=1, verbose=0)
        assert bool(peer.model._plan.pairs) == fuse
        models[name] = peer.model
    plan_mod.FUSE_CONV_POOL = True
    med = interleaved_fit_ms(models, x, y, wl, args.threads, args.repeats)
    print(f"{args.workload} {args.policy}, {nncore.get_simd_level()}, {args.threads} thread(s), "
          f"{'thread' if args.threads == 1 else 'wall'} time, load {os.getloadavg()[0]:.1f}: fused "
          f"{med['fused']:.2f} ms, unfused {med['unfused']:.2f} ms per step, unfused / fused "
          f"{med['unfused'] / med['fused']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
