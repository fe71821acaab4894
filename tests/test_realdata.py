"""Real data (scikit-learn's bundled sets, fixed seeds and splits): test accuracy thresholds."""
import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits, load_iris
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import nncore
from nncore.layers import Dense, Dropout
from nncore.models import Sequential


def _split(X, y, test_size):
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=test_size, random_state=0, stratify=y)
    scaler = StandardScaler().fit(X_tr)
    return scaler.transform(X_tr), scaler.transform(X_te), y_tr, y_te


def test_iris():
    X_tr, X_te, y_tr, y_te = _split(*load_iris(return_X_y=True), 0.3)
    nncore.set_seed(0)
    model = Sequential([Dense(16, activation="relu", input_dim=4), Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(X_tr, y_tr, epochs=100, batch_size=8, verbose=0)
    _, acc = model.evaluate(X_te, y_te, verbose=0)
    assert acc >= 0.93, acc


def test_digits():
    X, y = load_digits(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X / 16.0, y, test_size=0.25, random_state=0, stratify=y)
    nncore.set_seed(0)
    model = Sequential([Dense(128, activation="relu", input_dim=64), Dense(64, activation="relu"),
                        Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    model.fit(X_tr, np.eye(10)[y_tr], epochs=20, batch_size=32, verbose=0)
    _, acc = model.evaluate(X_te, np.eye(10)[y_te], verbose=0)
    assert acc >= 0.96, acc


def test_breast_cancer():
    X_tr, X_te, y_tr, y_te = _split(*load_breast_cancer(return_X_y=True), 0.25)
    nncore.set_seed(0)
    model = Sequential([Dense(32, activation="relu", input_dim=30), Dropout(0.2), Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    model.fit(X_tr, y_tr, epochs=30, batch_size=16, validation_split=0.1, verbose=0)
    _, acc = model.evaluate(X_te, y_te, verbose=0)
    assert acc >= 0.95, acc
