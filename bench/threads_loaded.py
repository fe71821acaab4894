"""Are 2 threads ever much slower than 1 when the other core is busy?

For a few kernels this prints the median time with n_threads=1 and 2 and
the ratio t2/t1, first on an (as far as we can tell) idle machine, then with
a busy-looping process competing for a core, under OMP_WAIT_POLICY=PASSIVE
(nncore's default) and ACTIVE (the runtime spins while waiting). Each policy
runs in its own interpreter: libgomp reads the policy once, at start-up.

    python bench/threads_loaded.py [--repeats 15] [--simd avx2]
"""
import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

WORKER = r"""
import json, sys, time
import numpy as np
import nncore
from nncore import ops
if sys.argv[2] != "-":
    nncore.set_simd_level(sys.argv[2])
rng = np.random.default_rng(0)
x = rng.normal(size=1 << 20).astype(np.float32)
z = rng.normal(size=(8192, 100)).astype(np.float32)
lab = rng.integers(0, 100, 8192)
a = rng.normal(size=(256, 256)).astype(np.float32)
big = rng.normal(size=1 << 22).astype(np.float32)
cases = {
    "tanh 1M f32": lambda n: ops.activation(x, "tanh", n_threads=n),
    "sparse xent 8192x100": lambda n: ops.sparse_softmax_xent(lab, z, n_threads=n),
    "sumsq 4M f32": lambda n: ops.sumsq(big, n_threads=n),
    "matmul 256 f32": lambda n: ops.matmul(a, a, n_threads=n),
}
from nncore.layers import LSTM, Conv2D, Dense, Flatten, Input, MaxPooling2D


def fit_case(layers, shape):
    # one epoch of 10 Adam steps at batch 128 (set_num_threads(n) before it)
    xs = rng.normal(size=(1280,) + shape).astype(np.float32)
    ys = rng.integers(0, 10, 1280)
    m = nncore.Sequential([Input(shape)] + layers)
    m.compile("adam", "sparse_categorical_crossentropy")

    def f(n):
        nncore.set_num_threads(n)
        m.fit(xs, ys, batch_size=128, epochs=1, verbose=0)
    return f


cases.update({
    "fit mlp 784-256-128-10": fit_case([Dense(256, "relu"), Dense(128, "relu"), Dense(10, "softmax")], (784,)),
    "fit cnn 28x28x1": fit_case([Conv2D(32, 3, activation="relu"), MaxPooling2D(2), Conv2D(64, 3, activation="relu"),
                                 MaxPooling2D(2), Flatten(), Dense(10, "softmax")], (28, 28, 1)),
    "fit lstm 28x28": fit_case([LSTM(128), Dense(10, "softmax")], (28, 28)),
})
repeats = int(sys.argv[1])
res = {}
for name, f in cases.items():
    f(2); f(1)
    t = {1: [], 2: []}
    for _ in range(repeats):
        for n in (1, 2):           # interleaved: both see the same background load
            t0 = time.perf_counter(); f(n); t[n].append(time.perf_counter() - t0)
    res[name] = [float(np.median(t[1])), float(np.median(t[2]))]
print(json.dumps(res))
"""


def run(policy, repeats, simd=None):
    """policy: an OMP_WAIT_POLICY, or "SPIN=<n>": libgomp's GOMP_SPINCOUNT=n (spin n rounds, then sleep)."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.pop("OMP_NUM_THREADS", None)
    env.pop("GOMP_SPINCOUNT", None)
    if policy.startswith("SPIN="):
        env["OMP_WAIT_POLICY"] = "ACTIVE"      # nncore would set PASSIVE, which means a spin count of 0
        env["GOMP_SPINCOUNT"] = policy[5:]
    else:
        env["OMP_WAIT_POLICY"] = policy
    out = subprocess.run([sys.executable, "-c", WORKER, str(repeats), simd or "-"], env=env, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--policies", default="PASSIVE,ACTIVE",
                   help="comma-separated: OMP_WAIT_POLICY values and SPIN=<GOMP_SPINCOUNT> (e.g. SPIN=10000)")
    p.add_argument("--simd", choices=("generic", "avx2", "avx512"), default=None,
                   help="run nncore's kernels at this SIMD level (default: the best this CPU has)")
    args = p.parse_args()
    print(f"cpus available: {len(os.sched_getaffinity(0))}  load average: {os.getloadavg()}")
    rows = []
    for load in (False, True):
        spinner = None
        if load:
            spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
            time.sleep(0.5)
        try:
            for policy in args.policies.split(","):
                for name, (t1, t2) in run(policy, args.repeats, args.simd).items():
                    rows.append((("busy" if load else "idle"), policy, name, t1, t2))
        finally:
            if spinner is not None:
                spinner.kill()
                spinner.wait()
    print(f"{'other core':10s} {'policy':11s} {'kernel':24s} {'1 thread ms':>12s} {'2 threads ms':>13s} {'t2/t1':>6s}")
    for load, policy, name, t1, t2 in rows:
        print(f"{load:10s} {policy:11s} {name:24s} {t1 * 1e3:12.3f} {t2 * 1e3:13.3f} {t2 / t1:6.2f}")


if __name__ == "__main__":
    main()
