"""One workload's nncore model under float32 and under mixed_bfloat16, trained in turns in one process.

    flock /work/lead/bench.lock python -m bench.policy_ab [--workload cnn] [--threads 1] [--steps 10]
                                                          [--repeats 9] [--simd avx2]

Both peers of bench (nncore, nncore_bf16) are built on the same data and warmed up an epoch; then each
repeat trains one epoch of ``--steps`` batches of each, in turns. One thread is timed in thread CPU time
(what the process itself ran: less sensitive to a shared machine than the bench's wall time), two in wall
time. Prints the medians per step and float32 / bf16.
"""
import argparse
import os

from bench import interleaved_fit_ms, set_simd
from bench.peers import NncoreBf16Peer, NncorePeer
from bench.workloads import get_workload, make_data


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workload", default="cnn")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--simd", choices=("generic", "avx2", "avx512"), default=None)
    args = p.parse_args(argv)
    import nncore
    set_simd(args.simd)
    wl = get_workload(args.workload, args.steps * 128)
    x, y = make_data(wl)
    models = {}
    for name, cls in (("float32", NncorePeer), ("mixed_bfloat16", NncoreBf16Peer)):
        peer = cls(wl, x, y)
        peer.set_threads(args.threads)
        peer.model.fit(x, y, batch_size=wl.batch, epochs=1, verbose=0)
        models[name] = peer.model
    med = interleaved_fit_ms(models, x, y, wl, args.threads, args.repeats)
    print(f"{args.workload}, {nncore.get_simd_level()}, {args.threads} thread(s), "
          f"{'thread' if args.threads == 1 else 'wall'} time, load {os.getloadavg()[0]:.1f}: float32 "
          f"{med['float32']:.2f} ms, mixed_bfloat16 {med['mixed_bfloat16']:.2f} ms per step, "
          f"float32 / bf16 {med['float32'] / med['mixed_bfloat16']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
