"""predict 1024 of the medium MLP with the kept packed kernels refreshed in the chain's call (nncore now),
refreshed in Python before it, packed anew each call (the old predict), and the chain with nothing refreshed.

    python bench/predict_pack.py [--simd avx2] [--threads 2,1] [--repeats 11]

One process, the four interleaved, medians (min-max) of bursts of 20 calls, wall time, microseconds.
"""
import argparse
import os
import sys
import time

import numpy as np

if __package__ in (None, ""):  # run as a script
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--simd", choices=["generic", "avx2", "avx512"])
    ap.add_argument("--threads", default="2,1")
    ap.add_argument("--repeats", type=int, default=11)
    args = ap.parse_args(argv)
    import nncore
    from nncore._kernels.gemm import dense_chain, pack_b
    from nncore.layers.core import DenseChain

    if args.simd:
        nncore.set_simd_level(args.simd)
    rng = np.random.default_rng(0)
    m = nncore.models.Sequential([nncore.layers.Input((784,)), nncore.layers.Dense(256, activation="relu"),
                                  nncore.layers.Dense(128, activation="relu"),
                                  nncore.layers.Dense(10, activation="softmax")])
    x = rng.standard_normal((1024, 784)).astype(np.float32)
    m.predict(x, batch_size=1024, verbose=0)
    chain, y = m._dense_chain(), np.empty((1024, 10), np.float32)
    in_call = DenseChain.__call__

    def before(refresh):
        def call(self, x, y, check_finite=False, n_threads=1):
            self._packed = [pack_b(k, out=p, refresh=refresh) for k, p in zip(self._kernels, self._packed)]
            return dense_chain(x, self._packed, self._biases, self._acts, self._alphas, y, check_finite, n_threads)
        return call

    def predict_with(call):
        def f():
            DenseChain.__call__ = call
            try:
                return m.predict(x, batch_size=1024, verbose=0)
            finally:
                DenseChain.__call__ = in_call
        return f

    print(f"SIMD level {nncore.get_simd_level()}, load {os.getloadavg()[0]:.1f}")
    for nt in (int(t) for t in args.threads.split(",")):
        nncore.set_num_threads(nt)
        fs = {"refreshed in the call": predict_with(in_call), "refreshed before": predict_with(before(True)),
              "packed each call": predict_with(before(False)),
              "chain, nothing refreshed": lambda: dense_chain(x, chain._packed, chain._biases, chain._acts,
                                                              chain._alphas, y, True, nt)}
        res = {k: [] for k in fs}
        for _ in range(args.repeats):
            for k, f in fs.items():
                f()
                t0 = time.perf_counter()
                for _ in range(20):
                    f()
                res[k].append((time.perf_counter() - t0) / 20 * 1e6)
        print(f"{nt} thread(s): " + ", ".join(f"{k} {np.median(v):,.0f} ({min(v):,.0f}-{max(v):,.0f})"
                                              for k, v in res.items()))
    print(f"load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
