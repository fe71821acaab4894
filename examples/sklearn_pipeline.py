"""nncore inside scikit-learn: a Pipeline (StandardScaler -> NNClassifier) tuned by GridSearchCV
on the Wisconsin breast-cancer data (569 tumours, 30 measurements each), scored on a held-out
test set, then pickled and loaded back (the network travels in nncore's own model format).

    python examples/sklearn_pipeline.py [n_jobs]
"""
import pickle
import sys

from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from nncore.sklearn import NNClassifier


def main(n_jobs=2, epochs=60, verbose=True):
    X, y = load_breast_cancer(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    pipe = Pipeline([
        ("scale", StandardScaler()),
        ("net", NNClassifier(epochs=epochs, tol=None, batch_size=32, learning_rate=0.003, random_state=0)),
    ])
    grid = {"net__hidden_layer_sizes": [(16,), (64, 32)], "net__alpha": [1e-4, 1e-1]}
    search = GridSearchCV(pipe, grid, cv=3, n_jobs=n_jobs).fit(X_train, y_train)
    accuracy = search.score(X_test, y_test)
    restored = pickle.loads(pickle.dumps(search.best_estimator_))
    same = bool((restored.predict(X_test) == search.predict(X_test)).all())
    if verbose:
        print(f"best parameters {search.best_params_}, cross-validated accuracy {search.best_score_:.4f}")
        print(f"test accuracy {accuracy:.4f}; the pickled pipeline predicts the same: {same}")
    return {"accuracy": accuracy, "cv_accuracy": search.best_score_, "same_after_pickle": same}


if __name__ == "__main__":
    main(n_jobs=int(sys.argv[1]) if len(sys.argv) > 1 else 2)
