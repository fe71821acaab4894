"""A hand-built MLP class on the low-level API: nncore.ops for the math and an
nncore optimizer for the updates, no Sequential.

    forward : h_1 = relu(x W_1 + b_1), ..., z = h_L W_out + b_out
    loss    : softmax cross-entropy of z against integer labels (fused: value and dz = (p - y) / N)
    optimize: delta = dz; dW = h^T delta; db = sum_rows delta; dh = delta W^T; delta = dh * relu'(h)
              then optimizer.apply_gradients(zip(grads, params))

    python examples/custom_mlp.py [epochs]
"""
import sys

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from nncore import ops, optimizers


class MLP:
    """ReLU hidden layers and a linear output trained with softmax cross-entropy."""

    def __init__(self, sizes, learning_rate=1e-2, seed=0):
        rng = np.random.default_rng(seed)
        self.params = []                                 # [W_1, b_1, ..., W_out, b_out]
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            limit = np.sqrt(6.0 / (n_in + n_out))        # Glorot uniform
            self.params += [rng.uniform(-limit, limit, (n_in, n_out)).astype(np.float32),
                            np.zeros(n_out, np.float32)]
        self.optimizer = optimizers.Adam(learning_rate=learning_rate)

    def forward(self, x):
        """Logits z; keeps the input of every layer for the backward pass."""
        self.inputs = []
        h = x
        n_layers = len(self.params) // 2
        for i in range(n_layers):
            W, b = self.params[2 * i], self.params[2 * i + 1]
            self.inputs.append(h)
            h = ops.dense(h, W, b, activation="relu" if i < n_layers - 1 else None)
        return h

    def loss(self, x, y):
        """Mean cross-entropy; stores dL/dz."""
        loss, self.dz = ops.sparse_softmax_xent(y, self.forward(x))
        return loss

    def optimize(self, x, y):
        """One gradient step on a batch; returns the batch loss."""
        loss = self.loss(x, y)
        grads = [None] * len(self.params)
        delta = self.dz
        for i in reversed(range(len(self.params) // 2)):
            h, W = self.inputs[i], self.params[2 * i]
            grads[2 * i] = ops.matmul(h, delta, transpose_a=True)        # dW = h^T delta
            grads[2 * i + 1] = ops.colsum(delta)                         # db = sum_rows delta
            if i > 0:
                dh = ops.matmul(delta, W, transpose_b=True)              # dh = delta W^T
                delta = ops.activation_grad(dh, h, "relu")               # delta = dh * relu'(h)
        self.optimizer.apply_gradients(zip(grads, self.params))
        return loss

    def predict(self, x):
        return ops.softmax(self.forward(x))


def main(epochs=15, batch_size=32, verbose=True):
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split((X / 16.0).astype(np.float32), y, test_size=0.25,
                                                        random_state=0, stratify=y)
    net = MLP([64, 64, 10])
    rng = np.random.default_rng(0)
    for epoch in range(epochs):
        order = rng.permutation(len(X_train))
        total = 0.0
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            total += net.optimize(X_train[idx], y_train[idx]) * len(idx)
        if verbose:
            print(f"epoch {epoch + 1:2d}: loss {total / len(X_train):.4f}")
    accuracy = float(np.mean(net.predict(X_test).argmax(axis=1) == y_test))
    print(f"custom MLP: test accuracy {accuracy:.4f}")
    return {"accuracy": accuracy, "loss": total / len(X_train)}


if __name__ == "__main__":
    main(epochs=int(sys.argv[1]) if len(sys.argv) > 1 else 15)
