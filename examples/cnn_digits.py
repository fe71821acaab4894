"""A small convolutional network on 28 x 28 digit images (the MNIST shape).

The images are scikit-learn's handwritten digits (8 x 8, no download needed)
scaled up to 28 x 28 with bilinear interpolation and given a channel axis:
(n, 28, 28, 1), channels last as in Keras. Two Conv2D + MaxPooling2D stages
extract features, a Dense softmax classifies them. Then the trained model is
quantized to int8 for inference (``model.quantize("int8")``) and evaluated again.
With the policy "mixed_bfloat16" the convolutions and the Dense layer train in bfloat16
(float32 weights; nncore.mixed_precision).

    python examples/cnn_digits.py [epochs] [float32|mixed_bfloat16]
"""
import sys
import time

import numpy as np
from scipy.ndimage import zoom
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import nncore
from nncore.layers import Conv2D, Dense, Dropout, Flatten, Input, MaxPooling2D
from nncore.models import Sequential


def load_images():
    digits = load_digits()
    images = zoom(digits.images / 16.0, (1, 28 / 8, 28 / 8), order=1)   # (n, 28, 28) in [0, 1]
    return images[..., None].astype(np.float32), digits.target           # (n, 28, 28, 1)


def main(epochs=5, verbose=0, policy="float32"):
    nncore.mixed_precision.set_global_policy(policy)      # the layers below take it
    try:
        return train(epochs, verbose)
    finally:
        nncore.mixed_precision.set_global_policy(None)


def train(epochs, verbose):
    nncore.set_seed(0)
    images, labels = load_images()
    x_train, x_test, y_train, y_test = train_test_split(images, labels, test_size=0.25, random_state=0,
                                                        stratify=labels)
    model = Sequential([
        Input(shape=(28, 28, 1)),
        Conv2D(16, 3, activation="relu"),          # (26, 26, 16)
        MaxPooling2D(2),                           # (13, 13, 16)
        Conv2D(32, 3, activation="relu"),          # (11, 11, 32)
        MaxPooling2D(2),                           # (5, 5, 32)
        Flatten(),
        Dropout(0.25),
        Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    if verbose:
        model.summary()
    t0 = time.perf_counter()
    model.fit(x_train, y_train, epochs=epochs, batch_size=32, validation_split=0.1, verbose=verbose)
    seconds = time.perf_counter() - t0
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"CNN on 28x28 digits ({nncore.mixed_precision.global_policy().name}): test accuracy {accuracy:.4f}, "
          f"{epochs * len(x_train) * 0.9 / seconds:,.0f} training samples/s")
    model.quantize("int8")                         # int8 weights, inputs quantized per row at run time
    _, int8_accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"quantized to int8: test accuracy {int8_accuracy:.4f}")
    return {"loss": loss, "accuracy": accuracy, "int8_accuracy": int8_accuracy}


if __name__ == "__main__":
    main(epochs=int(sys.argv[1]) if len(sys.argv) > 1 else 5, verbose=1,
         policy=sys.argv[2] if len(sys.argv) > 2 else "float32")
