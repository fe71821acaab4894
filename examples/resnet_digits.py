"""A small residual CNN with batch normalization on the digits (the functional API).

scikit-learn's handwritten digits (8 x 8 grey images, no download), used at their own size with a
channel axis: (n, 8, 8, 1). A stem convolution, then two residual blocks -- each
x + BN(Conv(ReLU(BN(Conv(x))))), the shape kept by 'same' padding -- a stride-2 convolution
between them, global average pooling and a softmax. The residual connection is the one thing a
Sequential cannot say: the block's input is used twice. The batch normalizations use momentum 0.9:
with Keras's default 0.99 the moving statistics, which inference uses, still lag the weights after
the ~400 steps of this short run (test accuracy 0.82 instead of 0.99 at 10 epochs).

    python examples/resnet_digits.py [epochs]
"""
import sys
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import nncore
from nncore.layers import (Activation, Add, BatchNormalization, Conv2D, Dense, GlobalAveragePooling2D,
                           Input)


def residual_block(x, filters):
    """y = relu(x + BN(Conv(relu(BN(Conv(x))))))."""
    h = Conv2D(filters, 3, padding="same", use_bias=False)(x)
    h = Activation("relu")(BatchNormalization(momentum=0.9)(h))
    h = BatchNormalization(momentum=0.9)(Conv2D(filters, 3, padding="same", use_bias=False)(h))
    return Activation("relu")(Add()([x, h]))


def build(filters=16, n_classes=10):
    """The model: a stem, a residual block, a stride-2 convolution, a second block, the classifier."""
    x = Input((8, 8, 1))
    h = Activation("relu")(BatchNormalization(momentum=0.9)(Conv2D(filters, 3, padding="same", use_bias=False)(x)))
    h = residual_block(h, filters)
    h = Activation("relu")(BatchNormalization(momentum=0.9)(Conv2D(2 * filters, 3, strides=2, padding="same",
                                                       use_bias=False)(h)))       # (4, 4, 2 filters)
    h = residual_block(h, 2 * filters)
    y = Dense(n_classes, activation="softmax")(GlobalAveragePooling2D()(h))
    return nncore.Model(x, y, name="resnet_digits")


def load_images():
    digits = load_digits()
    return (digits.images / 16.0)[..., None].astype(np.float32), digits.target    # (n, 8, 8, 1) in [0, 1]


def main(epochs=10, verbose=0):
    nncore.set_seed(0)
    images, labels = load_images()
    x_train, x_test, y_train, y_test = train_test_split(images, labels, test_size=0.25, random_state=0,
                                                        stratify=labels)
    model = build()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    if verbose:
        model.summary()
    t0 = time.perf_counter()
    model.fit(x_train, y_train, epochs=epochs, batch_size=32, validation_split=0.1, verbose=verbose)
    seconds = time.perf_counter() - t0
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"Residual CNN on 8x8 digits: test accuracy {accuracy:.4f}, "
          f"{epochs * len(x_train) * 0.9 / seconds:,.0f} training samples/s")
    return {"loss": loss, "accuracy": accuracy}


if __name__ == "__main__":
    main(epochs=int(sys.argv[1]) if len(sys.argv) > 1 else 10, verbose=1)
