"""A small classifier on scikit-learn's two moons, and two pictures of it: the learning curves
(training and validation loss and accuracy per epoch) and the decision boundary it learned.

    python examples/two_moons.py [out_prefix]     # writes out_prefix_history.png, out_prefix_boundary.png
"""
import sys

from sklearn.datasets import make_moons

import nncore
from nncore import plot
from nncore.layers import Dense
from nncore.models import Sequential


def main(epochs=60, out="two_moons", verbose=0):
    import matplotlib
    matplotlib.use("Agg")                             # no display needed
    import matplotlib.pyplot as plt

    nncore.set_seed(0)
    X, y = make_moons(n_samples=600, noise=0.2, random_state=0)
    model = Sequential([
        Dense(32, activation="relu", input_shape=(2,)),
        Dense(32, activation="relu"),
        Dense(1, activation="sigmoid"),
    ])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    history = model.fit(X, y, epochs=epochs, batch_size=32, validation_split=0.25, verbose=verbose)
    history.plot(path=f"{out}_history.png")            # loss and accuracy, training and validation
    plot.decision_boundary(model, X, y, path=f"{out}_boundary.png")
    plt.close("all")
    accuracy = history.history["val_accuracy"][-1]
    print(f"two moons: validation accuracy {accuracy:.4f}; plots in {out}_history.png, {out}_boundary.png")
    return {"accuracy": accuracy, "paths": [f"{out}_history.png", f"{out}_boundary.png"]}


if __name__ == "__main__":
    main(out=sys.argv[1] if len(sys.argv) > 1 else "two_moons", verbose=2)
