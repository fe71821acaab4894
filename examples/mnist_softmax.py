"""A 784-input softmax classifier (the MNIST shape: 28 x 28 images, 10 classes).

The images are scikit-learn's handwritten digits (8 x 8, no download needed)
scaled up to 28 x 28 with bilinear interpolation, so the network sees 784
inputs as it would on MNIST. One-hot targets, categorical cross-entropy,
Dropout between the layers.

    python examples/mnist_softmax.py [epochs]
"""
import sys

import numpy as np
from scipy.ndimage import zoom
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import nncore
from nncore.layers import Dense, Dropout, Flatten, Input
from nncore.models import Sequential


def load_28x28():
    digits = load_digits()
    images = zoom(digits.images / 16.0, (1, 28 / 8, 28 / 8), order=1)   # (n, 28, 28) in [0, 1]
    return images.astype(np.float32), digits.target


def main(epochs=10, verbose=0):
    nncore.set_seed(0)
    images, labels = load_28x28()
    x_train, x_test, y_train, y_test = train_test_split(images, labels, test_size=0.25, random_state=0,
                                                        stratify=labels)
    onehot = np.eye(10, dtype=np.float32)
    model = Sequential([
        Input(shape=(28, 28)),
        Flatten(),                                 # 784 inputs
        Dense(128, activation="relu"),
        Dropout(0.2),
        Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    if verbose:
        model.summary()
    model.fit(x_train, onehot[y_train], epochs=epochs, batch_size=32, validation_split=0.1, verbose=verbose)
    loss, accuracy = model.evaluate(x_test, onehot[y_test], verbose=0)
    print(f"784-input softmax classifier: test accuracy {accuracy:.4f}")
    return {"loss": loss, "accuracy": accuracy}


if __name__ == "__main__":
    main(epochs=int(sys.argv[1]) if len(sys.argv) > 1 else 10, verbose=1)
