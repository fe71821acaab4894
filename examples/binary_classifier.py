"""The binary classifier from issue 3, unchanged apart from the import.

8 input features, two hidden ReLU layers, a sigmoid output trained with binary
cross-entropy and Adam. The data are a synthetic stand-in for the classic
Pima-diabetes table (768 samples, 8 features): scikit-learn's
make_classification with a fixed seed.

    python examples/binary_classifier.py [epochs]
"""
import sys

from sklearn.datasets import make_classification
from sklearn.model_selection import train_test_split

import nncore
from nncore.layers import Dense
from nncore.models import Sequential


def main(epochs=100, batch_size=1, verbose=0):
    nncore.set_seed(0)
    X_all, y_all = make_classification(n_samples=768, n_features=8, n_informative=5, random_state=0)
    X, X_test, y, y_test = train_test_split(X_all, y_all, test_size=0.25, random_state=0)

    model = Sequential()
    model.add(Dense(10, input_dim=8, activation='relu'))
    model.add(Dense(8, activation='relu'))
    model.add(Dense(1, activation='sigmoid'))
    model.compile(loss='binary_crossentropy', optimizer='adam', metrics=['accuracy'])
    model.fit(X, y, epochs=epochs, batch_size=batch_size, verbose=verbose)
    predictions = model.predict(X, verbose=0)
    loss, accuracy = model.evaluate(X_test, y_test, verbose=0)
    print(f"test loss {loss:.4f}  test accuracy {accuracy:.4f}  (first predictions {predictions[:3, 0].round(3)})")
    return {"loss": loss, "accuracy": accuracy}


if __name__ == "__main__":
    main(epochs=int(sys.argv[1]) if len(sys.argv) > 1 else 100, verbose=2)
