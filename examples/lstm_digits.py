"""An LSTM that reads a digit image row by row (the classic "MNIST as sequences").

Each of scikit-learn's 8 x 8 handwritten digits (no download needed) is
scaled up to 28 x 28 and fed to the network as a sequence of 28 time steps
of 28 features, (n, 28, 28), batch first as in Keras. LSTM(64) reads the
rows; its last output goes to a Dense softmax.

    python examples/lstm_digits.py [epochs]
"""
import sys
import time

import numpy as np
from scipy.ndimage import zoom
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import nncore
from nncore.layers import LSTM, Dense, Input
from nncore.models import Sequential


def load_sequences():
    digits = load_digits()
    images = zoom(digits.images / 16.0, (1, 28 / 8, 28 / 8), order=1)   # (n, 28, 28) in [0, 1]
    return images.astype(np.float32), digits.target                    # 28 steps of 28 features


def main(epochs=15, verbose=0):
    nncore.set_seed(0)
    x, y = load_sequences()
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    model = Sequential([
        Input(shape=(28, 28)),
        LSTM(64),                                  # the last step's output: (64,)
        Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    if verbose:
        model.summary()
    t0 = time.perf_counter()
    model.fit(x_train, y_train, epochs=epochs, batch_size=32, validation_split=0.1, verbose=verbose)
    seconds = time.perf_counter() - t0
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"LSTM on digit rows: test accuracy {accuracy:.4f}, "
          f"{epochs * len(x_train) * 0.9 / seconds:,.0f} training samples/s")
    return {"loss": loss, "accuracy": accuracy}


if __name__ == "__main__":
    main(epochs=int(sys.argv[1]) if len(sys.argv) > 1 else 15, verbose=1)
