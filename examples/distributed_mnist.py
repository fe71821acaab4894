"""Data-parallel training over MPI: the 784-input digit classifier of mnist_softmax.py on N processes.

    mpiexec -n 2 python examples/distributed_mnist.py [epochs] [checkpoint.nnc]
    python examples/distributed_mnist.py                       # the same script, one process

Every rank runs this same script on the same data. After ``nncore.distributed.init()``,
``fit(batch_size=64)`` on N ranks trains with a global batch of N * 64 rows: each rank computes
the gradient of its 64 rows and one allreduce sums them, so the weights are those one process
would get with batch N * 64 (the learning rate is not scaled: keep the global batch in mind).
Only rank 0 prints and writes the checkpoint; ``evaluate`` splits the test set across the ranks
and every rank gets the same accuracy. Each rank uses its share of the CPUs (one thread per
rank on a 2-core machine) unless OMP_NUM_THREADS says otherwise.
"""
import os
import sys
import time

import numpy as np
from scipy.ndimage import zoom
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import nncore
from nncore import distributed
from nncore.callbacks import ModelCheckpoint
from nncore.layers import Dense, Flatten, Input


def load_28x28():
    digits = load_digits()
    images = zoom(digits.images / 16.0, (1, 28 / 8, 28 / 8), order=1)   # (n, 28, 28) in [0, 1]
    return images.astype(np.float32), digits.target


def main(epochs=10, checkpoint=None, verbose=2):
    distributed.init()                       # a world of one rank when not started by mpiexec
    rank, size = distributed.rank(), distributed.size()
    nncore.set_seed(rank)                    # different on purpose: fit starts from rank 0's weights
    images, labels = load_28x28()
    x_train, x_test, y_train, y_test = train_test_split(images, labels, test_size=0.25, random_state=0,
                                                        stratify=labels)
    model = nncore.Sequential([Input(shape=(28, 28)), Flatten(), Dense(128, activation="relu"),
                               Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    callbacks = [ModelCheckpoint(checkpoint, monitor="val_loss", save_best_only=True)] if checkpoint else []
    t = time.perf_counter()
    history = model.fit(x_train, y_train, batch_size=64, epochs=epochs, validation_split=0.1,
                        callbacks=callbacks, verbose=verbose)
    seconds = time.perf_counter() - t
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    distributed.check_in_sync(model)         # every rank holds the same weights
    if rank == 0:
        print(f"{size} rank(s) x {nncore.get_num_threads()} thread(s): test accuracy {accuracy:.4f}, "
              f"{len(x_train) * 0.9 * epochs / seconds:.0f} samples/s")
    return {"accuracy": accuracy, "loss": loss, "history": history.history, "ranks": size}


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10, sys.argv[2] if len(sys.argv) > 2 else None,
         verbose=int(os.environ.get("VERBOSE", "2")))
