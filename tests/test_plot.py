"""nncore.plot: the figures hold the data they claim to show (rendered with the Agg backend)."""
import subprocess
import sys

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg", force=True)
import matplotlib.pyplot as plt  # noqa: E402

import nncore  # noqa: E402
from nncore import plot  # noqa: E402
from nncore.layers import Dense, Input  # noqa: E402
from nncore.models import Sequential  # noqa: E402

from subprocess_common import CHILD_CWD, child_env  # noqa: E402  (the nncore under test, for child processes)
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _trained(epochs=6):
    nncore.set_seed(0)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((120, 2))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
    model = Sequential([Input(shape=(2,)), Dense(8, activation="relu"), Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    hist = model.fit(X, y, epochs=epochs, batch_size=16, validation_split=0.25, verbose=0)
    return model, hist, X, y


def _line(ax, label):
    (line,) = [ln for ln in ax.lines if ln.get_label() == label]
    return line


def test_history_lines_hold_the_recorded_values(tmp_path):
    _, hist, _, _ = _trained()
    axes = hist.plot(path=tmp_path / "h.png")
    assert [a.get_title() for a in axes] == ["loss", "accuracy"]
    for a, name in zip(axes, ["loss", "accuracy"]):
        for key, label in ((name, "training"), ("val_" + name, "validation")):
            line = _line(a, label)
            np.testing.assert_array_equal(line.get_xdata(), np.arange(1, 7))
            np.testing.assert_array_equal(line.get_ydata(), hist.history[key])
        assert a.get_xlabel() == "epoch" and a.get_ylabel() == name
        assert [t.get_text() for t in a.get_legend().get_texts()] == ["training", "validation"]
    data = (tmp_path / "h.png").read_bytes()
    assert data.startswith(PNG) and len(data) > 5000
    assert axes[0].figure is axes[1].figure


def test_history_of_a_dict_an_estimator_and_given_axes():
    ax = plot.history({"loss": [3.0, 2.0, 1.5]})
    np.testing.assert_array_equal(_line(ax, "training").get_ydata(), [3.0, 2.0, 1.5])
    assert ax.get_legend() is not None and len(ax.lines) == 1
    _, hist, _, _ = _trained()
    fig, mine = plt.subplots()
    got = plot.history(hist, metrics="loss", ax=mine)
    assert got is mine and len(mine.lines) == 2
    with pytest.raises(ValueError, match="no 'auc' in the history; it holds loss, accuracy"):
        plot.history(hist, metrics=["auc"])
    with pytest.raises(ValueError, match="2 Axes are needed"):
        plot.history(hist, ax=mine)
    with pytest.raises(TypeError, match="history"):
        plot.history([1, 2])
    sk = pytest.importorskip("nncore.sklearn")
    est = sk.NNRegressor((4,), epochs=3, tol=None, random_state=0).fit(np.ones((10, 1)), np.ones(10))
    np.testing.assert_array_equal(_line(plot.history(est), "training").get_ydata(), est.loss_curve_)


def test_decision_boundary_colors_the_grid_by_the_predicted_class(tmp_path):
    model, _, X, y = _trained(epochs=30)
    ax = plot.decision_boundary(model, X, y, resolution=50, path=tmp_path / "d.png")
    mesh, points = ax.collections[0], ax.collections[1]
    codes = np.asarray(mesh.get_array()).reshape(50, 50)
    x0 = np.linspace(*ax.get_xlim(), 50)
    x1 = np.linspace(*ax.get_ylim(), 50)
    xx, yy = np.meshgrid(x0, x1)
    expected = (model.predict(np.c_[xx.ravel(), yy.ravel()], verbose=0)[:, 0] > 0.5).astype(int)
    np.testing.assert_array_equal(codes.ravel(), expected)
    assert 0 < codes.mean() < 1                       # the boundary crosses the plotted plane
    np.testing.assert_array_equal(points.get_offsets(), X)
    np.testing.assert_array_equal(points.get_array(), y)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["0", "1"]
    assert (tmp_path / "d.png").read_bytes().startswith(PNG)


def test_decision_boundary_of_an_estimator_with_string_labels():
    sk = pytest.importorskip("nncore.sklearn")
    rng = np.random.default_rng(1)
    X = rng.standard_normal((150, 2))
    labels = np.array(["left", "middle", "right"])[np.digitize(X[:, 0], [-0.5, 0.5])]
    clf = sk.NNClassifier((16,), epochs=150, learning_rate=0.02, tol=None, random_state=0).fit(X, labels)
    ax = plot.decision_boundary(clf, X, labels, resolution=40)
    codes = np.asarray(ax.collections[0].get_array()).reshape(40, 40)
    xx, yy = np.meshgrid(np.linspace(*ax.get_xlim(), 40), np.linspace(*ax.get_ylim(), 40))
    np.testing.assert_array_equal(clf.classes_[codes.ravel()], clf.predict(np.c_[xx.ravel(), yy.ravel()]))
    assert set(codes.ravel()) == {0, 1, 2}
    with pytest.raises(ValueError, match=r"shape \(n_samples, 2\)"):
        plot.decision_boundary(clf, np.ones((3, 3)))


def test_regression_line_draws_the_models_prediction(tmp_path):
    x = np.linspace(-2, 2, 40)
    y = 3 * x - 1
    ax = plot.regression_line(lambda X: 3 * X - 1, x, y, n_points=25, path=tmp_path / "r.png")
    line = _line(ax, "prediction")
    np.testing.assert_allclose(line.get_xdata(), np.linspace(-2, 2, 25))
    np.testing.assert_allclose(line.get_ydata(), 3 * np.linspace(-2, 2, 25) - 1)
    np.testing.assert_array_equal(ax.collections[0].get_offsets(), np.c_[x, y])
    assert (tmp_path / "r.png").read_bytes().startswith(PNG)
    nncore.set_seed(0)
    model = Sequential([Input(shape=(1,)), Dense(2)])
    ax = plot.regression_line(model, x.reshape(-1, 1), np.c_[y, -y])
    grid = np.linspace(-2, 2, 200).reshape(-1, 1)
    out = model.predict(grid, verbose=0)
    for j in range(2):
        np.testing.assert_allclose(_line(ax, f"prediction {j}").get_ydata(), out[:, j], rtol=1e-6)
    with pytest.raises(ValueError, match="one feature"):
        plot.regression_line(model, np.ones((5, 2)), np.ones(5))
    with pytest.raises(ValueError, match="predicts 2 outputs, y has 1"):
        plot.regression_line(model, x, y)


def _python(code):
    return subprocess.run([sys.executable, "-c", code], cwd=CHILD_CWD, env=child_env(), capture_output=True,
                          text=True, timeout=120)


def test_matplotlib_is_not_imported_by_nncore_and_its_absence_names_the_extra():
    proc = _python("import sys, nncore, nncore.plot, nncore.callbacks\n"
                   "print('matplotlib' in sys.modules)")
    assert proc.returncode == 0 and proc.stdout.strip() == "False", proc.stderr
    proc = _python("import sys\nsys.modules['matplotlib'] = None\nimport nncore.plot\n"
                   "nncore.plot.history({'loss': [1.0]})")
    assert proc.returncode != 0
    assert "ImportError" in proc.stderr and "nncore[plot]" in proc.stderr
