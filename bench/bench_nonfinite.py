"""Cost of fit's end-of-batch non-finite check (one all_finite pass over the flat parameters)
relative to a whole training step, for a few MLP sizes. Medians of 7 repeats.

    python bench/bench_nonfinite.py
"""
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import nncore  # noqa: E402
from nncore._kernels.elementwise import all_finite  # noqa: E402
from nncore.layers import Dense, Input  # noqa: E402


def main():
    rng = np.random.default_rng(0)
    for d, h, k, bs in [(64, 64, 1, 32), (784, 256, 10, 32), (784, 1024, 10, 128)]:
        n = bs * 50
        x = rng.standard_normal((n, d)).astype("float32")
        y = np.eye(k, dtype="float32")[rng.integers(0, k, n)] if k > 1 else rng.standard_normal((n, 1)).astype("float32")
        m = nncore.Sequential([Input(shape=(d,)), Dense(h, activation="relu"),
                               Dense(k, activation="softmax" if k > 1 else None)])
        m.compile(optimizer="adam", loss="categorical_crossentropy" if k > 1 else "mse")
        m.fit(x, y, epochs=1, batch_size=bs, verbose=0)
        steps, checks = [], []
        p = m._params
        for _ in range(7):
            t = time.perf_counter()
            m.fit(x, y, epochs=1, batch_size=bs, verbose=0)
            steps.append((time.perf_counter() - t) / 50)
            t = time.perf_counter()
            for _ in range(100):
                all_finite(p, 1)
            checks.append((time.perf_counter() - t) / 100)
        s, c = np.median(steps), np.median(checks)
        print(f"MLP {d}-{h}-{k}, batch {bs}: {p.size} params, step {s * 1e6:.0f} us, "
              f"check {c * 1e6:.1f} us = {100 * c / s:.2f}% of a step")


if __name__ == "__main__":
    main()
