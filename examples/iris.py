"""Iris with standardisation: scikit-learn loads and splits the data, a
StandardScaler fitted on the training part only scales both parts, and a
small softmax network learns the three species from integer labels.

    python examples/iris.py [epochs]
"""
import sys

from sklearn.datasets import load_iris
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import nncore
from nncore.layers import Dense
from nncore.models import Sequential


def main(epochs=100, verbose=0):
    nncore.set_seed(0)
    X, y = load_iris(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    scaler = StandardScaler().fit(X_train)           # statistics from the training set only
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)

    model = Sequential([
        Dense(16, activation="relu", input_shape=(4,)),
        Dense(3, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(X_train, y_train, epochs=epochs, batch_size=8, verbose=verbose)
    loss, accuracy = model.evaluate(X_test, y_test, verbose=0)
    print(f"iris: test accuracy {accuracy:.4f}")
    return {"loss": loss, "accuracy": accuracy}


if __name__ == "__main__":
    main(epochs=int(sys.argv[1]) if len(sys.argv) > 1 else 100, verbose=2)
