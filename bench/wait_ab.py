"""How the OpenMP runtime's idle threads wait: nncore's training rows under each policy, in interleaved rounds.

    flock /work/lead/bench.lock python -m bench.wait_ab [--workloads lstm,gru,rnn] [--threads 2]
        [--policies PASSIVE,SPIN=3000] [--rounds 5] [--epochs 3] [--simd avx2]

A policy is an OMP_WAIT_POLICY value (PASSIVE: sleep at once, nncore's default; ACTIVE) or SPIN=<n>
(GOMP_SPINCOUNT=n: libgomp spins n rounds, then sleeps) or TORCH (torch imported before nncore, nothing set:
what ``python -m bench`` does with torch among its peers: nncore then runs on torch's libgomp, loaded with
the environment as it was, so nncore's PASSIVE default comes too late for it). libgomp reads them once,
when it loads, so each policy runs in its own interpreter; a round runs every policy once, one after the
other (ABBA from round to round), so that the policies of a round see the same background load. Each interpreter trains each workload's nncore peer
(bench.peers.NncorePeer, the model of the bench's row) for one warm-up epoch, then ``--epochs`` timed epochs,
and reports the median wall time of a training step and the process CPU time of a step (the worker's
spinning shows there). It also measures how long one idle worker spins after a parallel region: the
process's CPU time over a 0.2 s sleep after a 2-thread product.
Prints, per workload and policy, the median over the rounds and each round's figure.
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np

from bench import CHILD_CWD, child_env

WORKER = r"""
import json, sys, time
args = json.loads(sys.argv[1])
if args["torch_first"]:
    import torch  # noqa: F401
import numpy as np
import nncore
from nncore import ops
from bench.peers import NncorePeer
from bench.workloads import get_workload, make_data
if args["simd"]:
    nncore.set_simd_level(args["simd"])
out = {}
for name in args["workloads"]:
    wl = get_workload(name, args["max_samples"])
    x, y = make_data(wl)
    peer = NncorePeer(wl, x, y)
    peer.set_threads(args["threads"])
    peer.run(1)
    wall, cpu = [], []
    for _ in range(args["epochs"]):
        t0, c0 = time.perf_counter(), time.process_time()
        peer.run(1)
        wall.append((time.perf_counter() - t0) / wl.steps() * 1e3)
        cpu.append((time.process_time() - c0) / wl.steps() * 1e3)
    out[name] = [float(np.median(wall)), float(np.median(cpu))]
# one idle worker's spin after a region: the process's CPU time over a sleep, less the sleeping thread's own
a = np.ones((256, 256), np.float32)
spins = []
for _ in range(5):
    ops.matmul(a, a, n_threads=2)
    c0, s0 = time.process_time(), time.thread_time()
    time.sleep(0.2)
    spins.append(((time.process_time() - c0) - (time.thread_time() - s0)) * 1e6)
out["_spin_us"] = float(max(spins))  # every other sleep catches none of it: the largest of 5
print(json.dumps(out))
"""


def policy_env(policy):
    env = child_env(dict(os.environ))   # the nncore this process runs (an installed wheel under .ci/run)
    for k in ("OMP_NUM_THREADS", "GOMP_SPINCOUNT", "OMP_WAIT_POLICY"):
        env.pop(k, None)
    if policy == "TORCH":
        return env
    if policy.startswith("SPIN="):
        env["OMP_WAIT_POLICY"] = "PASSIVE"  # only a default once GOMP_SPINCOUNT is given: the count rules
        env["GOMP_SPINCOUNT"] = policy[5:]
    else:
        env["OMP_WAIT_POLICY"] = policy
    return env


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workloads", default="lstm,gru,rnn")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--policies", default="PASSIVE,SPIN=3000")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--max-samples", type=int, default=None)
    p.add_argument("--simd", choices=("generic", "avx2", "avx512"), default=None)
    args = p.parse_args(argv)
    policies = args.policies.split(",")
    wls = args.workloads.split(",")
    spec = {"workloads": wls, "threads": args.threads, "epochs": args.epochs, "simd": args.simd,
            "max_samples": args.max_samples}
    res = {pol: [] for pol in policies}
    loads = []
    for r in range(args.rounds):
        loads.append(os.getloadavg()[0])
        order = policies if r % 2 == 0 else policies[::-1]  # ABBA: neither policy always goes first
        for pol in order:
            spec["torch_first"] = pol == "TORCH"
            out = subprocess.run([sys.executable, "-c", WORKER, json.dumps(spec)], env=policy_env(pol),
                                 capture_output=True, text=True, cwd=CHILD_CWD)
            if out.returncode:
                sys.stderr.write(out.stderr)
                return 1
            res[pol].append(json.loads(out.stdout))
    loads.append(os.getloadavg()[0])
    print(f"threads {args.threads}, simd {args.simd or 'best'}, rounds "
          f"{args.rounds} x {args.epochs} epochs, load {min(loads):.1f}-{max(loads):.1f}; ms a step (wall), median "
          f"over rounds [each round]; cpu = process CPU ms a step; spin = an idle worker's CPU us after a region")
    for pol in policies:
        print(f"  {pol:12s} spin {np.median([o['_spin_us'] for o in res[pol]]):8.0f} us (median over rounds)")
    for w in wls:
        base = None
        for pol in policies:
            wall = [o[w][0] for o in res[pol]]
            cpu = [o[w][1] for o in res[pol]]
            med = float(np.median(wall))
            base = med if base is None else base
            print(f"  {w:7s} {pol:12s} {med:8.3f} ms  cpu {np.median(cpu):8.3f}  vs first {base / med:5.3f}x  ["
                  + " ".join(f"{v:.2f}" for v in wall) + "]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
