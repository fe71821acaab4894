"""NNClassifier against scikit-learn's MLPClassifier on the digits, same network and training.

    python bench/sklearn_mlp.py [--epochs 50] [--repeats 5] [--threads 1,2] [--dtypes float64,float32]

Both: one hidden layer of 128 relu units, a softmax output, Adam (lr 1e-3), batch size 200,
alpha 1e-4, samples reshuffled every epoch, exactly --epochs epochs (MLPClassifier's early
stop is off: tol=0 and n_iter_no_change larger than max_iter; NNClassifier: tol=None), on
scikit-learn's digits (1797 images of 8 x 8, X / 16), 75% train / 25% test, stratified. Each
repeat fits both estimators once, in alternating order (interleaved, so a noisy neighbour hits
both alike), with random_state = the repeat's index. The thread count applies to both:
NNClassifier(n_threads=n) and threadpoolctl's limit on MLPClassifier's BLAS. Reported: the
median fit time of each, the ratio MLPClassifier / NNClassifier (> 1: nncore faster) and the
median test accuracy of each; with the load average and nncore's SIMD level.
"""
import argparse
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

import nncore  # noqa: E402
from nncore.sklearn import NNClassifier  # noqa: E402


def estimators(epochs, seed, n_threads):
    common = dict(hidden_layer_sizes=(128,), batch_size=200, alpha=1e-4, random_state=seed, shuffle=True)
    mlp = MLPClassifier(solver="adam", learning_rate_init=1e-3, max_iter=epochs, tol=0.0,
                        n_iter_no_change=epochs + 1, **common)
    nn = NNClassifier(optimizer="adam", learning_rate=1e-3, epochs=epochs, tol=None,
                      n_threads=n_threads, **common)
    return {"MLPClassifier": mlp, "NNClassifier": nn}


def timed_fit(est, X, y, n_threads):
    with threadpool_limits(n_threads), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = time.perf_counter()
        est.fit(X, y)
        return time.perf_counter() - t


def run(dtype, n_threads, epochs, repeats):
    X, y = load_digits(return_X_y=True)
    X = (X / 16).astype(dtype)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    times = {"MLPClassifier": [], "NNClassifier": []}
    accs = {"MLPClassifier": [], "NNClassifier": []}
    for seed in range(repeats):
        ests = estimators(epochs, seed, n_threads)
        names = list(ests) if seed % 2 == 0 else list(reversed(ests))
        for name in names:
            times[name].append(timed_fit(ests[name], Xtr, ytr, n_threads))
            accs[name].append(ests[name].score(Xte, yte))
        assert ests["MLPClassifier"].n_iter_ == epochs and ests["NNClassifier"].n_iter_ == epochs
    med = {k: float(np.median(v)) for k, v in times.items()}
    acc = {k: float(np.median(v)) for k, v in accs.items()}
    return med, acc


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--dtypes", default="float64,float32")
    args = ap.parse_args(argv)
    if args.repeats < 5:
        print("note: fewer than 5 repeats; the medians are not the project's standard")
    cfg = nncore._config.config()
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}, nncore SIMD {cfg['simd']}, "
          f"{args.epochs} epochs, {args.repeats} interleaved repeats (medians)")
    print()
    print("| dtype | threads | MLPClassifier fit (s) | NNClassifier fit (s) | ratio | MLP test acc | NN test acc |")
    print("|---|---|---|---|---|---|---|")
    rows = []
    for dtype in args.dtypes.split(","):
        for nt in (int(t) for t in args.threads.split(",")):
            med, acc = run(dtype, nt, args.epochs, args.repeats)
            ratio = med["MLPClassifier"] / med["NNClassifier"]
            rows.append((dtype, nt, med, acc, ratio))
            print(f"| {dtype} | {nt} | {med['MLPClassifier']:.3f} | {med['NNClassifier']:.3f} | {ratio:.1f}x | "
                  f"{acc['MLPClassifier']:.4f} | {acc['NNClassifier']:.4f} |", flush=True)
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")
    return rows


if __name__ == "__main__":
    main()
