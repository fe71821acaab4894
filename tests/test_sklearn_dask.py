"""nncore.sklearn estimators in a grid search on a Dask cluster (joblib's "dask" backend).

A ``distributed.LocalCluster`` of 2 worker processes with 1 thread each (loopback only, no
dashboard); the search must give exactly the serial search's scores (every fit is seeded by
``random_state``) and the fitted best estimator must come back usable.
"""
import numpy as np
import pytest

pytest.importorskip("sklearn")
distributed = pytest.importorskip("distributed")
joblib = pytest.importorskip("joblib")

from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402

from nncore.sklearn import NNClassifier, NNRegressor  # noqa: E402

pytestmark = [pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
              pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, host="127.0.0.1") as cluster, \
            distributed.Client(cluster) as c:
        yield c


def _has_nncore_sklearn():
    import sys
    return "nncore.sklearn" in sys.modules


def _digits():
    X, y = load_digits(return_X_y=True)
    return X[:360] / 16, y[:360]


def test_grid_search_on_a_dask_cluster_matches_the_serial_one(client):
    X, y = _digits()
    est = NNClassifier(hidden_layer_sizes=(32,), epochs=10, learning_rate=0.01, random_state=0)
    grid = {"hidden_layer_sizes": [(16,), (32,)], "alpha": [1e-4, 1e-2]}
    serial = GridSearchCV(est, grid, cv=3).fit(X, y)
    with joblib.parallel_backend("dask"):
        search = GridSearchCV(est, grid, cv=3, n_jobs=-1).fit(X, y)
    # the fits really ran in both worker processes (they unpickled estimators there)
    assert list(client.run(_has_nncore_sklearn).values()) == [True, True]
    np.testing.assert_array_equal(search.cv_results_["mean_test_score"],
                                  serial.cv_results_["mean_test_score"])
    assert search.best_params_ == serial.best_params_ and search.best_score_ > 0.8
    np.testing.assert_array_equal(search.predict(X), serial.predict(X))


def test_cross_val_score_of_a_regressor_on_a_dask_cluster(client):
    X, y = _digits()
    est = NNRegressor(hidden_layer_sizes=(16,), epochs=10, random_state=0)
    target = X[:, 10] + X[:, 20]
    ref = cross_val_score(est, X, target, cv=3)
    with joblib.parallel_backend("dask"):
        got = cross_val_score(est, X, target, cv=3, n_jobs=-1)
    np.testing.assert_array_equal(got, ref)
