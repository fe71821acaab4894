"""Plots of training curves and of fitted models, drawn with matplotlib (``pip install "nncore[plot]"``).

- :func:`history`: the loss and each metric per epoch, training and validation on the same axes
  (also ``History.plot()``);
- :func:`decision_boundary`: the class a model predicts over the plane of 2-D inputs, with the
  samples on top;
- :func:`regression_line`: a model's prediction over the range of a 1-D input, with the samples.

Each function draws on ``ax`` when given, else on a new pyplot figure; returns the Axes it drew
on (``ax.figure`` is the Figure); with ``path=`` it also saves the figure as a PNG. A "model" is
anything that predicts: an nncore model, a fitted scikit-learn estimator, or a function
``f(X) -> predictions``. matplotlib is imported when a function is called, never at
``import nncore`` or ``import nncore.plot``.
"""
import numpy as np

__all__ = ["history", "decision_boundary", "regression_line"]


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError("nncore.plot needs matplotlib, which is not installed: "
                          "pip install 'nncore[plot]'") from exc
    return plt


def _new_axes(ax, n, width=5.0, height=3.8):
    """n Axes: ``ax`` itself (one Axes, or a sequence of n), else a new figure's row of n."""
    if ax is None:
        _, axes = _pyplot().subplots(1, n, figsize=(width * n, height), squeeze=False)
        return list(axes[0])
    axes = list(np.ravel(ax)) if isinstance(ax, (list, tuple, np.ndarray)) else [ax]
    if len(axes) != n:
        raise ValueError(f"ax: {n} Axes are needed (one per metric), got {len(axes)}")
    return axes


def _save(fig, path):
    if path is not None:
        fig.savefig(path, format="png", dpi=100, bbox_inches="tight")


def _logs(history):
    """{name: list of per-epoch values} from a History, an estimator's history_, or a dict."""
    if isinstance(getattr(history, "history_", None), dict):      # nncore.sklearn estimators
        history = history.history_
    elif isinstance(getattr(history, "history", None), dict):     # nncore/Keras History
        history = history.history
    if not isinstance(history, dict):
        raise TypeError(f"history: expected a History, a dict of per-epoch lists or a fitted nncore "
                        f"estimator, got {type(history).__name__}")
    return {k: np.asarray(v, dtype=np.float64).ravel() for k, v in history.items()}


def history(history, metrics=None, ax=None, path=None):
    """Plot the loss and metrics per epoch: training and validation on the same axes.

    Parameters
    ----------
    history : History, dict or fitted NNClassifier/NNRegressor
        What ``fit`` returned (``model.history``), a dict ``{name: [value per epoch]}`` or an
        estimator (its ``history_``).
    metrics : str or list of str, default=None
        The names to plot (without the ``val_`` prefix), one Axes each; None: every name in the
        history ("loss" first, as recorded). ``val_<name>`` is drawn next to ``<name>``.
    ax : Axes or sequence of Axes, default=None
        One Axes per metric; None draws a new figure with a row of them.
    path : str or path-like, default=None
        Also save the figure there as a PNG.

    Returns
    -------
    Axes or list of Axes
        A single Axes when ``metrics`` is a str or the history holds one name, else one per name.
    """
    logs = _logs(history)
    bases = []
    for key in logs:
        base = key[4:] if key.startswith("val_") else key
        if base not in bases:
            bases.append(base)
    names = bases if metrics is None else [metrics] if isinstance(metrics, str) else list(metrics)
    if not names:
        raise ValueError("history: nothing recorded to plot")
    for name in names:
        if name not in logs and "val_" + name not in logs:
            raise ValueError(f"history: no {name!r} in the history; it holds {', '.join(bases)}")
    axes = _new_axes(ax, len(names))
    for a, name in zip(axes, names):
        for key, label in ((name, "training"), ("val_" + name, "validation")):
            if key in logs:
                values = logs[key]
                a.plot(np.arange(1, len(values) + 1), values, marker="o" if len(values) < 30 else None,
                       markersize=3, label=label)
        a.set_xlabel("epoch")
        a.set_ylabel(name)
        a.set_title(name)
        a.xaxis.get_major_locator().set_params(integer=True)
        a.legend()
    if ax is None:
        axes[0].figure.tight_layout()
    _save(axes[0].figure, path)
    return axes[0] if len(axes) == 1 else axes


def _predict(model, X):
    """What `model` predicts for X: nncore models quietly, estimators by predict, else model(X)."""
    from nncore.models import Sequential

    if isinstance(model, Sequential):
        return model.predict(X, verbose=0)
    if hasattr(model, "predict"):
        return model.predict(X)
    if callable(model):
        return model(X)
    raise TypeError(f"model: expected an nncore model, an estimator with predict or a function, got "
                    f"{type(model).__name__}")


def _classes_of(model, out):
    """Class labels from predictions: labels as given, or an nncore model's probabilities (one
    sigmoid column: p > 0.5; several columns: the argmax)."""
    out = np.asarray(out)
    if out.ndim == 2 and out.dtype.kind == "f" and not hasattr(model, "classes_"):
        return (out[:, 0] > 0.5).astype(int) if out.shape[1] == 1 else out.argmax(axis=1)
    return out.reshape(len(out))


def decision_boundary(model, X, y=None, ax=None, path=None, resolution=200, cmap="coolwarm"):
    """Color the plane of 2-D inputs by the class the model predicts, and draw the samples.

    Parameters
    ----------
    model : nncore model, classifier or callable
        A classifier's ``predict`` gives labels; an nncore model's output is read as
        probabilities (one sigmoid column: class 1 where p > 0.5; softmax: the argmax).
    X : array-like of shape (n_samples, 2)
    y : array-like of shape (n_samples,), default=None
        The samples' classes (their colors); None draws them in one color.
    ax : Axes, default=None
    path : str or path-like, default=None
        Also save the figure there as a PNG.
    resolution : int, default=200
        Grid points per axis (the plotted range is the data's, widened by 10% on each side).
    cmap : str or Colormap, default="coolwarm"

    Returns
    -------
    Axes
        The predicted classes are the QuadMesh ``ax.collections[0]`` (one cell per grid point),
        the samples the scatter ``ax.collections[1]``.
    """
    plt = _pyplot()
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != 2:
        raise ValueError(f"decision_boundary: X must have shape (n_samples, 2), got {X.shape}")
    if isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer)) or resolution < 2:
        raise ValueError(f"decision_boundary: resolution must be an int >= 2, got {resolution!r}")
    (ax,) = _new_axes(ax, 1, width=5.5, height=4.5)
    lo, hi = X.min(axis=0), X.max(axis=0)
    pad = 0.1 * np.where(hi > lo, hi - lo, 1.0)
    g0 = np.linspace(lo[0] - pad[0], hi[0] + pad[0], resolution)
    g1 = np.linspace(lo[1] - pad[1], hi[1] + pad[1], resolution)
    xx, yy = np.meshgrid(g0, g1)
    grid = np.c_[xx.ravel(), yy.ravel()]
    labels = _classes_of(model, _predict(model, grid))
    known = np.asarray(y).reshape(len(X)) if y is not None else np.empty(0, labels.dtype)
    classes = np.unique(np.concatenate([known, labels]) if known.size else labels)
    codes = np.searchsorted(classes, labels).reshape(xx.shape)
    colors = plt.get_cmap(cmap, max(len(classes), 2))
    ax.pcolormesh(xx, yy, codes, shading="nearest", cmap=colors, vmin=-0.5,
                  vmax=max(len(classes), 2) - 0.5, alpha=0.35)
    if y is not None:
        ax.scatter(X[:, 0], X[:, 1], c=np.searchsorted(classes, known), cmap=colors, vmin=-0.5,
                            vmax=max(len(classes), 2) - 0.5, edgecolors="k", linewidths=0.4, s=18)
        handles = [plt.Line2D([], [], marker="o", linestyle="", markerfacecolor=colors(i),
                              markeredgecolor="k", label=str(c)) for i, c in enumerate(classes)]
        ax.legend(handles=handles, title="class", loc="best")
    else:
        ax.scatter(X[:, 0], X[:, 1], c="k", s=10)
    ax.set_xlim(g0[0], g0[-1])
    ax.set_ylim(g1[0], g1[-1])
    ax.set_xlabel("x0")
    ax.set_ylabel("x1")
    ax.set_title("decision boundary")
    _save(ax.figure, path)
    return ax


def regression_line(model, X, y, ax=None, path=None, n_points=200):
    """Draw the samples of a 1-D input and the model's prediction over their range.

    Parameters
    ----------
    model : nncore model, regressor or callable
    X : array-like of shape (n_samples,) or (n_samples, 1)
    y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        One scatter and one line per output.
    ax : Axes, default=None
    path : str or path-like, default=None
        Also save the figure there as a PNG.
    n_points : int, default=200
        Points of the prediction line, evenly spaced from min(X) to max(X).

    Returns
    -------
    Axes
        The prediction of output j is the line ``ax.lines[j]``.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1:
        X = X.reshape(-1, 1)
    if X.ndim != 2 or X.shape[1] != 1:
        raise ValueError(f"regression_line: X must have one feature (shape (n_samples,) or (n_samples, 1)), "
                         f"got {X.shape}")
    y = np.asarray(y, dtype=np.float64).reshape(len(X), -1)
    if isinstance(n_points, bool) or not isinstance(n_points, (int, np.integer)) or n_points < 2:
        raise ValueError(f"regression_line: n_points must be an int >= 2, got {n_points!r}")
    (ax,) = _new_axes(ax, 1)
    grid = np.linspace(X.min(), X.max(), n_points).reshape(-1, 1)
    pred = np.asarray(_predict(model, grid), dtype=np.float64).reshape(n_points, -1)
    if pred.shape[1] != y.shape[1]:
        raise ValueError(f"regression_line: the model predicts {pred.shape[1]} outputs, y has {y.shape[1]}")
    for j in range(y.shape[1]):
        name = "" if y.shape[1] == 1 else f" {j}"
        ax.plot(grid[:, 0], pred[:, j], color=f"C{j}", linewidth=2, label=f"prediction{name}")
        ax.scatter(X[:, 0], y[:, j], color=f"C{j}", s=12, alpha=0.6, label=f"data{name}")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.legend()
    _save(ax.figure, path)
    return ax
