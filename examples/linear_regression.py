"""Linear regression fitted by hand-written gradient descent, plotted to a PNG.

    yhat = X w + b ;  L = mean((yhat - y)^2)
    dL/dw = 2/N X^T (yhat - y) ;  dL/db = 2/N sum(yhat - y)
    w <- w - lr dL/dw ;  b <- b - lr dL/db

The products use nncore.ops.matmul; the answer is checked against the
least-squares solution. nncore.plot draws the data with the fitted line and the
loss per step.

    python examples/linear_regression.py [out.png]
"""
import sys

import numpy as np

from nncore import ops


def fit(X, y, lr=0.1, steps=300):
    """Gradient descent on the mean squared error; returns w, b and the loss per step."""
    n, d = X.shape
    w = np.zeros((d, 1))
    b = 0.0
    losses = []
    for _ in range(steps):
        r = ops.matmul(X, w) + b - y                  # residual yhat - y, shape (n, 1)
        losses.append(float(np.mean(r ** 2)))
        w -= lr * 2.0 / n * ops.matmul(X, r, transpose_a=True)
        b -= lr * 2.0 / n * float(r.sum())
    return w, b, losses


def main(out="linear_regression.png", verbose=True):
    import matplotlib
    matplotlib.use("Agg")                             # no display needed
    import matplotlib.pyplot as plt

    from nncore import plot

    rng = np.random.default_rng(0)
    x = rng.uniform(-3, 3, size=(100, 1))
    y = 1.5 * x - 0.7 + rng.normal(scale=0.5, size=(100, 1))
    w, b, losses = fit(x, y)
    A = np.hstack([x, np.ones_like(x)])
    w_ls, b_ls = np.linalg.lstsq(A, y, rcond=None)[0][:, 0]
    if verbose:
        print(f"gradient descent: w = {w[0, 0]:.4f}, b = {b:.4f}; least squares: w = {w_ls:.4f}, b = {b_ls:.4f}")

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    plot.regression_line(lambda X: ops.matmul(X, w) + b, x, y, ax=ax1)   # the data and the fitted line
    ax1.set_title(f"fit: y = {w[0, 0]:.2f} x {b:+.2f}")
    plot.history({"loss": losses}, ax=ax2)            # one gradient step per "epoch" here
    ax2.set_yscale("log")
    ax2.set_xlabel("step")
    ax2.set_ylabel("mean squared error")
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)
    if verbose:
        print(f"plot saved to {out}")
    return {"w": float(w[0, 0]), "b": float(b), "w_ls": float(w_ls), "b_ls": float(b_ls), "path": out}


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "linear_regression.png")
