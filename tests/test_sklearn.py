"""nncore.sklearn: scikit-learn's own estimator checks, then what they do not cover.

Expected failures of ``check_estimator``: none. ``parametrize_with_checks`` runs every check
of scikit-learn 1.9 (the legacy ones included) on both estimators with their default
parameters. scikit-learn itself skips two of them: the multilabel ``decision_function``
format (the estimators have no decision_function, as MLPClassifier) and the array-API check
(it needs SCIPY_ARRAY_API=1 set before scipy is imported), which
``test_array_api_check_in_a_fresh_interpreter`` runs instead.
"""
import os
import pickle
import sys
import textwrap
import threading
import warnings

import numpy as np
import pytest
from subprocess_common import CHILD_CWD, child_env, run_isolated

sklearn = pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_digits, make_classification, make_multilabel_classification  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import nncore  # noqa: E402
from nncore import _random, saving  # noqa: E402
from nncore.layers import Dense, Dropout, Input  # noqa: E402
from nncore.models import Sequential  # noqa: E402
from nncore.sklearn import NNClassifier, NNRegressor  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
EXPECTED_FAILED_CHECKS = {}    # check name -> reason; empty: every check passes


@parametrize_with_checks([NNClassifier(), NNRegressor()],
                         expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def _run(code, env_extra=None, timeout=240):
    """Run a script in a fresh interpreter (killed with its workers past the timeout)."""
    env = child_env(**(env_extra or {}))
    returncode, text = run_isolated([sys.executable, "-c", textwrap.dedent(code)], CHILD_CWD, env, timeout)
    assert returncode == 0, text
    return text


def test_array_api_check_in_a_fresh_interpreter():
    out = _run("""
        from functools import partial
        from sklearn.utils.estimator_checks import check_array_api_input
        from nncore.sklearn import NNClassifier, NNRegressor
        for est in (NNClassifier(), NNRegressor()):
            check_array_api_input(type(est).__name__, est, array_namespace="numpy",
                                  expect_only_array_outputs=False)
        print("array api ok")
    """, env_extra={"SCIPY_ARRAY_API": "1"})
    assert "array api ok" in out


# ---------------------------------------------------------------- data
def _blobs(n=120, d=4, k=3, seed=0):
    X, y = make_classification(n_samples=n, n_features=d, n_informative=d, n_redundant=0, n_classes=k,
                               n_clusters_per_class=1, class_sep=2.0, random_state=seed)
    return X, y


def _quick(cls=NNClassifier, **kw):
    kw = {"hidden_layer_sizes": (16,), "epochs": 40, "batch_size": 32, "learning_rate": 0.01,
          "random_state": 0, "tol": None, **kw}
    return cls(**kw)


# ---------------------------------------------------------------- targets
@pytest.mark.parametrize("labels", [np.array(["cat", "dog", "emu"]), np.array([-3, 10, 7]),
                                    np.array([3.0, -1.0, 0.0]), np.array(["low", "mid", "high"], dtype=object)])
def test_any_label_type_round_trips(labels):
    X, y = _blobs()
    yl = labels[y]
    clf = _quick().fit(X, yl)
    np.testing.assert_array_equal(clf.classes_, np.sort(labels))
    pred = clf.predict(X)
    assert pred.dtype == clf.classes_.dtype and set(pred) <= set(labels)
    assert clf.score(X, yl) > 0.9
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 3)
    np.testing.assert_array_equal(clf.classes_[proba.argmax(1)], pred)


def test_binary_has_one_sigmoid_output_and_two_probability_columns():
    X, y = _blobs(k=2)
    yl = np.array(["no", "yes"])[y]
    clf = _quick().fit(X, yl)
    assert clf.n_outputs_ == 1 and clf.out_activation_ == "sigmoid"
    p = clf.predict_proba(X)
    np.testing.assert_allclose(p.sum(1), 1.0)
    np.testing.assert_array_equal(clf.predict(X), np.where(p[:, 1] > 0.5, "yes", "no"))
    np.testing.assert_allclose(clf.predict_log_proba(X), np.log(p))


def test_multilabel_indicator_targets():
    X, Y = make_multilabel_classification(n_samples=150, n_features=6, n_classes=4, random_state=0)
    clf = _quick(epochs=100).fit(X, Y)
    np.testing.assert_array_equal(clf.classes_, np.arange(4))
    assert clf.n_outputs_ == 4 and clf.out_activation_ == "sigmoid"
    pred = clf.predict(X)
    assert pred.shape == Y.shape and pred.dtype == Y.dtype
    p = clf.predict_proba(X)
    np.testing.assert_array_equal(pred, (p > 0.5).astype(Y.dtype))
    assert (pred == Y).mean() > 0.8
    with pytest.raises(ValueError, match="multiclass multi-output"):
        _quick().fit(X, np.c_[Y[:, 0] + Y[:, 1], Y[:, 2]])


def test_multioutput_regression():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 3))
    Y = np.c_[X @ [1.0, -2.0, 0.5], np.sin(X[:, 0])]
    reg = _quick(NNRegressor, hidden_layer_sizes=(32,), epochs=300, learning_rate=0.01).fit(X, Y)
    assert reg.n_outputs_ == 2 and reg.predict(X).shape == (200, 2)
    assert reg.score(X, Y) > 0.9
    one = _quick(NNRegressor).fit(X, Y[:, 0])
    assert one.predict(X).shape == (200,)
    col = _quick(NNRegressor).fit(X, Y[:, :1])
    assert col.predict(X).shape == (200, 1)
    np.testing.assert_allclose(col.predict(X)[:, 0], one.predict(X), rtol=1e-12)


# ---------------------------------------------------------------- sample weights, penalty
def test_integer_sample_weights_equal_repeated_samples():
    X, y = _blobs(n=60)
    w = np.random.default_rng(1).integers(0, 4, len(X))
    for est in (_quick(), _quick(NNRegressor)):
        target = y if isinstance(est, NNClassifier) else X[:, 0] - X[:, 1]
        est = clone(est).set_params(batch_size="auto")      # one batch per epoch in both
        weighted = clone(est).fit(X, target, sample_weight=w)
        repeated = clone(est).fit(X.repeat(w, 0), target.repeat(w))
        out = "predict_proba" if isinstance(est, NNClassifier) else "predict"
        np.testing.assert_allclose(getattr(weighted, out)(X), getattr(repeated, out)(X), rtol=1e-9)


def test_alpha_is_mlpclassifiers_penalty_per_batch():
    X, y = _blobs(n=90)
    clf = _quick(alpha=0.3, batch_size=30).fit(X, y, sample_weight=np.full(len(X), 2.0))
    for layer in clf.model_.layers:
        assert layer.kernel_regularizer.l2 == pytest.approx(0.5 * 0.3 / (30 * 2.0))
    assert _quick(alpha=0.0).fit(X, y).model_.layers[0].kernel_regularizer is None   # no penalty pass
    with pytest.raises(ValueError, match="weight"):
        _quick().fit(X, y, sample_weight=np.zeros(len(X)))


# ---------------------------------------------------------------- continuing: partial_fit, warm_start
def test_partial_fit_epochs_equal_one_fit():
    X, y = _blobs()
    kw = dict(shuffle=False, batch_size=32)
    whole = _quick(epochs=5, **kw).fit(X, y)
    parts = _quick(**kw)
    with pytest.raises(ValueError, match="classes must be passed"):
        parts.partial_fit(X, y)
    for _ in range(5):
        parts.partial_fit(X, y, classes=[0, 1, 2])
    assert parts.n_iter_ == 5 and parts.t_ == 5 * len(X) and len(parts.loss_curve_) == 5
    assert parts.loss_curve_ == whole.loss_curve_
    for a, b in zip(parts.model_.get_weights(), whole.model_.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="not among classes_"):
        parts.partial_fit(X, np.where(y == 0, 9, y))
    with pytest.raises(ValueError, match="features"):
        parts.partial_fit(X[:, :3], y)


def test_partial_fit_classes_beyond_the_first_batch():
    X, y = _blobs()
    clf = _quick()
    clf.partial_fit(X[y < 2], y[y < 2], classes=[0, 1, 2])
    assert clf.n_outputs_ == 3
    clf.partial_fit(X, y)
    assert clf.predict_proba(X).shape == (len(X), 3)


def test_warm_start_continues_from_the_fitted_weights():
    X, y = _blobs()
    kw = dict(shuffle=False, batch_size=40)
    six = _quick(epochs=6, **kw).fit(X, y)
    warm = _quick(epochs=3, warm_start=True, **kw).fit(X, y).fit(X, y)
    assert warm.n_iter_ == 6 and warm.loss_curve_ == six.loss_curve_
    assert len(warm.history_["loss"]) == 6
    np.testing.assert_array_equal(warm.predict_proba(X), six.predict_proba(X))
    cold = _quick(epochs=3, **kw).fit(X, y)
    again = clone(cold).fit(X, y).fit(X, y)        # warm_start=False: starts afresh each time
    assert again.n_iter_ == 3
    np.testing.assert_array_equal(again.predict_proba(X), cold.predict_proba(X))


# ---------------------------------------------------------------- stopping
def test_tol_stops_on_a_plateau_and_warns_otherwise():
    X, y = _blobs()
    clf = NNClassifier((16,), epochs=500, learning_rate=0.05, n_iter_no_change=3, tol=1e-2,
                       random_state=0).fit(X, y)
    assert clf.n_iter_ < 500 and len(clf.loss_curve_) == clf.n_iter_
    assert clf.best_loss_ == min(clf.loss_curve_)
    # MLPClassifier's rule: it stopped at the first epoch that made more than 3 in a row
    # without beating the best loss so far by tol
    best, count, counts = np.inf, 0, []
    for loss in clf.loss_curve_:
        count = 0 if loss <= best - 1e-2 else count + 1
        best = min(best, loss)
        counts.append(count)
    assert counts[-1] == 4 and max(counts[:-1]) < 4
    with pytest.warns(ConvergenceWarning, match="maximum number of epochs"):
        NNClassifier((4,), epochs=2, random_state=0).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        NNClassifier((4,), epochs=2, random_state=0, tol=None).fit(X, y)


def test_early_stopping_scores_a_held_out_part_and_keeps_the_best_weights():
    X, y = _blobs(n=300)
    clf = NNClassifier((32,), early_stopping=True, validation_fraction=0.2, n_iter_no_change=4,
                       epochs=300, learning_rate=0.02, random_state=0).fit(X, y)
    assert clf.n_iter_ < 300 and clf.best_loss_ is None
    assert len(clf.validation_scores_) == clf.n_iter_ == len(clf.history_["val_score"])
    assert clf.best_validation_score_ == max(clf.validation_scores_)
    # the held-out part is train_test_split's with the fit's seed: its score is the best one
    seed = np.random.RandomState(0).randint(np.iinfo(np.int32).max)
    _, Xv, _, yv = train_test_split(X, y, test_size=0.2, random_state=seed, stratify=y)
    assert clf.score(Xv, yv) == clf.best_validation_score_
    reg = NNRegressor((16,), early_stopping=True, epochs=50, random_state=0).fit(X, X[:, 0])
    assert -1 <= reg.best_validation_score_ <= 1
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping"):
        NNClassifier(early_stopping=True).partial_fit(X, y, classes=[0, 1, 2])


# ---------------------------------------------------------------- model=
def test_model_function_gets_the_dimensions_it_names():
    X, y = _blobs(k=3)
    seen = {}

    def build(n_features_in, n_outputs, target_type, output_activation="softmax"):
        seen.update(n_features_in=n_features_in, n_outputs=n_outputs, target_type=target_type,
                    output_activation=output_activation)
        return Sequential([Input(shape=(n_features_in,)), Dense(8, activation="tanh"), Dropout(0.1),
                           Dense(n_outputs, activation=output_activation)])

    clf = NNClassifier(model=build, epochs=200, random_state=0).fit(X, y)
    assert seen == {"n_features_in": 4, "n_outputs": 3, "target_type": "multiclass",
                    "output_activation": "softmax"}
    assert [type(la).__name__ for la in clf.model_.layers] == ["Dense", "Dropout", "Dense"]
    assert type(clf.model_.optimizer).__name__ == "Adam" and clf.score(X, y) > 0.9
    # Dropout's generator comes from random_state too: the fit repeats exactly
    np.testing.assert_array_equal(clone(clf).fit(X, y).predict_proba(X), clf.predict_proba(X))
    assert clf.transform(X).shape == (len(X), 8)


def test_model_function_compiled_with_a_one_hot_loss_and_any_kwargs():
    X, y = _blobs(k=3)

    def build(**meta):
        m = Sequential([Dense(12, activation="relu"), Dense(meta["n_outputs"], activation="softmax")])
        m.compile(optimizer=nncore.optimizers.SGD(learning_rate=0.1, momentum=0.9),
                  loss="categorical_crossentropy")
        return m

    clf = NNClassifier(model=build, epochs=40, random_state=0).fit(X, y)
    assert type(clf.model_.optimizer).__name__ == "SGD" and clf.score(X, y) > 0.9


def test_model_template_is_cloned_never_changed():
    X, y = _blobs(k=2)
    template = Sequential([Input(shape=(4,)), Dense(8, activation="relu"), Dense(1, activation="sigmoid")])
    template.compile(optimizer=nncore.optimizers.Adam(learning_rate=0.01), loss="binary_crossentropy")
    before = template.get_weights()
    clf = NNClassifier(model=template, epochs=30, random_state=0).fit(X, y)
    assert clf.model_ is not template and clf.model_.optimizer.learning_rate == 0.01
    for a, b in zip(template.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    twin = clone(clf)
    assert twin.model is not template and twin.model.get_config() == template.get_config()
    back = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(back.predict_proba(X), clf.predict_proba(X))
    gs = GridSearchCV(NNClassifier(model=template, epochs=10, random_state=0),
                      {"batch_size": [16, 32]}, cv=2).fit(X, y)
    assert gs.best_params_["batch_size"] in (16, 32)


def test_model_errors_name_what_is_wrong():
    X, y = _blobs(k=3)
    with pytest.raises(ValueError, match=r"output shape is \(None, 2\).*multiclass target needs \(None, 3\)"):
        NNClassifier(model=lambda: Sequential([Dense(2, activation="softmax")])).fit(X, y)
    with pytest.raises(ValueError, match="input shape"):
        NNClassifier(model=lambda: Sequential([Input(shape=(7,)), Dense(3)])).fit(X, y)
    with pytest.raises(TypeError, match="must return an nncore Sequential"):
        NNClassifier(model=lambda: "net").fit(X, y)
    with pytest.raises(TypeError, match="argument 'units'"):
        NNClassifier(model=lambda units: None).fit(X, y)
    with pytest.raises(TypeError, match="model must be None"):
        NNClassifier(model=3).fit(X, y)
    with pytest.raises(ValueError, match="hidden_layer_sizes"):
        NNClassifier(hidden_layer_sizes=(0,)).fit(X, y)
    with pytest.raises(ValueError, match="epochs"):
        NNClassifier(epochs=0).fit(X, y)


# ---------------------------------------------------------------- params, pickling, output
def test_params_clone_and_optimizer_instances_are_not_changed():
    opt = nncore.optimizers.Adam(learning_rate=0.05)
    clf = NNClassifier(hidden_layer_sizes=(8, 4), optimizer=opt, learning_rate=0.002, random_state=3)
    params = clf.get_params()
    assert params["hidden_layer_sizes"] == (8, 4) and params["optimizer"] is opt
    X, y = _blobs()
    clf.set_params(epochs=5).fit(X, y)
    assert opt.learning_rate == 0.05 and opt.iterations == 0
    assert clf.model_.optimizer is not opt and clf.model_.optimizer.learning_rate == 0.002
    twin = clone(clf)
    assert not hasattr(twin, "model_") and twin.get_params()["epochs"] == 5


def test_pickle_holds_nncores_model_file_and_training_continues_identically():
    X, y = _blobs()
    clf = _quick(epochs=3).fit(X, y)
    blob = pickle.dumps(clf)
    state = clf.__getstate__()
    assert isinstance(state["model_"], bytes) and state["model_"].startswith(saving.MAGIC)
    assert clf.model_ is not None and not isinstance(clf.model_, bytes)   # the estimator is untouched
    back = pickle.loads(blob)
    np.testing.assert_array_equal(back.predict_proba(X), clf.predict_proba(X))
    clf.partial_fit(X, y)
    back.partial_fit(X, y)            # the optimizer state travelled too
    np.testing.assert_array_equal(back.predict_proba(X), clf.predict_proba(X))
    damaged = bytearray(state["model_"])
    damaged[len(damaged) // 2] ^= 1
    with pytest.raises(ValueError, match="checksum"):
        pickle.loads(blob.replace(state["model_"], bytes(damaged)))


def test_set_output_pandas_and_feature_names():
    pd = pytest.importorskip("pandas")
    X, y = _blobs()
    df = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    clf = _quick().fit(df, y)
    np.testing.assert_array_equal(clf.feature_names_in_, ["a", "b", "c", "d"])
    out = clf.set_output(transform="pandas").transform(df)
    assert isinstance(out, pd.DataFrame) and list(out.columns) == [f"nnclassifier{i}" for i in range(16)]
    np.testing.assert_array_equal(out.to_numpy(), clf.set_output(transform="default").transform(df))
    with pytest.warns(UserWarning, match="feature names"):
        clf.predict(X)
    pipe = make_pipeline(StandardScaler(), _quick()).set_output(transform="pandas").fit(df, y)
    np.testing.assert_array_equal(pipe[-1].feature_names_in_, ["a", "b", "c", "d"])
    assert pipe.score(df, y) > 0.9


def test_dtype_follows_the_training_data():
    X, y = _blobs()
    assert _quick().fit(X.astype(np.float32), y).model_.weights[0].dtype == np.float32
    assert _quick().fit(X, y).model_.weights[0].dtype == np.float64
    clf = _quick().fit((X * 10).astype(np.int64), y)
    assert clf.model_.weights[0].dtype == np.float64
    assert clf.predict_proba(X.astype(np.float32)).dtype == np.float64
    assert nncore.floatx() == "float32"


# ---------------------------------------------------------------- determinism, threads
def test_random_state_decides_everything_and_leaves_the_global_generator_alone():
    X, y = _blobs()
    before = _random.get_rng().bit_generator.state
    a = _quick(random_state=5).fit(X, y).predict_proba(X)
    assert _random.get_rng().bit_generator.state == before
    np.testing.assert_array_equal(_quick(random_state=5).fit(X, y).predict_proba(X), a)
    np.testing.assert_array_equal(_quick(random_state=5, n_threads=2).fit(X, y).predict_proba(X), a)
    assert not np.array_equal(_quick(random_state=6).fit(X, y).predict_proba(X), a)
    rs = np.random.RandomState(5)
    assert not np.array_equal(_quick(random_state=rs).fit(X, y).predict_proba(X),
                              _quick(random_state=rs).fit(X, y).predict_proba(X))


def test_fits_in_concurrent_threads_match_the_serial_ones():
    X, y = _blobs()
    ests = [_quick(random_state=s, hidden_layer_sizes=(16, 8)) for s in range(4)]
    serial = [clone(e).fit(X, y).predict_proba(X) for e in ests]
    threads = [threading.Thread(target=e.fit, args=(X, y)) for e in ests]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for e, ref in zip(ests, serial):
        np.testing.assert_array_equal(e.predict_proba(X), ref)


# ---------------------------------------------------------------- model selection and processes
def test_grid_search_and_cross_val_score_in_this_process_and_with_loky():
    X, y = load_digits(return_X_y=True)
    X, y = X[:400] / 16, y[:400]
    est = NNClassifier(hidden_layer_sizes=(32,), epochs=15, learning_rate=0.01, random_state=0)
    grid = {"alpha": [1e-4, 1e-1], "batch_size": [32, 64]}
    serial = GridSearchCV(est, grid, cv=3).fit(X, y)
    parallel = GridSearchCV(est, grid, cv=3, n_jobs=2).fit(X, y)   # joblib's default: loky processes
    np.testing.assert_array_equal(serial.cv_results_["mean_test_score"],
                                  parallel.cv_results_["mean_test_score"])
    assert serial.best_score_ > 0.8
    np.testing.assert_array_equal(cross_val_score(est, X, y, cv=3),
                                  cross_val_score(est, X, y, cv=3, n_jobs=2))


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_grid_search_in_multiprocessing_workers_does_not_hang(method):
    out = _run(f"""
        import multiprocessing, numpy as np
        from joblib import parallel_config
        from sklearn.datasets import load_digits
        from sklearn.model_selection import GridSearchCV, cross_val_score
        from nncore.sklearn import NNClassifier

        if __name__ == "__main__":
            multiprocessing.set_start_method({method!r}, force=True)
            X, y = load_digits(return_X_y=True)
            X, y = X[:300] / 16, y[:300]
            # the parent trains with a team of two threads first: a forked child must not hang
            NNClassifier(hidden_layer_sizes=(256,), epochs=3, n_threads=2, random_state=0).fit(X, y)
            est = NNClassifier(hidden_layer_sizes=(32,), epochs=10, random_state=0)
            grid = {{"alpha": [1e-4, 1e-1]}}
            ref = GridSearchCV(est, grid, cv=2).fit(X, y).cv_results_["mean_test_score"]
            with parallel_config("multiprocessing", n_jobs=2):
                got = GridSearchCV(est, grid, cv=2, n_jobs=2).fit(X, y).cv_results_["mean_test_score"]
                scores = cross_val_score(est, X, y, cv=2, n_jobs=2)
            np.testing.assert_array_equal(got, ref)
            np.testing.assert_array_equal(scores, cross_val_score(est, X, y, cv=2))
            print("ok", multiprocessing.get_start_method())
    """, env_extra={"OMP_NUM_THREADS": "2"})
    assert f"ok {method}" in out


def test_without_scikit_learn_the_error_names_the_extra():
    env = child_env()
    code = "import sys\nsys.modules['sklearn'] = None\nimport nncore\nimport nncore.sklearn\n"
    returncode, text = run_isolated([sys.executable, "-c", code], CHILD_CWD, env, 120)
    assert returncode != 0 and "ImportError" in text and "nncore[sklearn]" in text
    returncode, text = run_isolated([sys.executable, "-c", "import sys, nncore\nprint('sklearn' in sys.modules)"],
                                    CHILD_CWD, env, 120)
    assert returncode == 0 and text.strip() == "False"
