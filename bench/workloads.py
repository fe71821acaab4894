"""The benchmark workloads and their data.

Every workload is a classifier with a softmax output, trained with Adam (lr
1e-3) on the softmax cross-entropy, in float32. Its ``arch`` names the network:
``"mlp"`` (ReLU Dense layers), ``"cnn"`` (Conv2D 3x3 + ReLU + MaxPooling2D 2
per entry of ``hidden``, then Flatten and a softmax Dense) or ``"lstm"`` (one
LSTM of ``hidden[0]`` units over (timesteps, features) = ``input_shape``, its
last state into a softmax Dense; ``"gru"`` and ``"rnn"`` the same with a GRU or
a SimpleRNN). Each peer builds an
architecture with a method ``build_<arch>`` (bench/peers.py): a new row such as
an LSTM is a new ``arch`` value plus one builder per peer that supports it;
peers without the builder show "n/a". Data are made deterministically from a
fixed seed so that the main process, the worker subprocess (OpenBLAS variables
unset) and the memory subprocesses all see the same arrays.
"""
from dataclasses import dataclass, field, replace

import numpy as np

__all__ = ["Workload", "WORKLOADS", "TRAIN_WORKLOADS", "get_workload", "make_data"]

SEED = 1234


@dataclass(frozen=True)
class Workload:
    """One row of the benchmark.

    ``task`` is ``"train"`` (time one epoch of minibatch Adam) or ``"predict"``
    (time inference over the data at ``batch``). ``layers`` lists the widths
    from input to output, e.g. (4, 16, 3): the number of input features, the
    hidden widths (Dense units for "mlp", Conv2D filters for "cnn") and the
    classes. ``input_shape`` is the shape of one sample (default
    ``(layers[0],)``; e.g. (28, 28, 1) channels_last for "cnn", whose product
    is ``layers[0]``).
    """

    name: str
    layers: tuple
    batch: int
    samples: int
    task: str = "train"
    dataset: str = "synthetic"
    arch: str = "mlp"
    input_shape: tuple = None
    note: str = field(default="", compare=False)

    def __post_init__(self):
        shape = (self.layers[0],) if self.input_shape is None else tuple(self.input_shape)
        if int(np.prod(shape)) != self.layers[0]:
            raise ValueError(f"Workload {self.name}: input_shape {shape} does not hold layers[0] = "
                             f"{self.layers[0]} features")
        object.__setattr__(self, "input_shape", shape)

    @property
    def n_in(self):
        return self.layers[0]

    @property
    def n_classes(self):
        return self.layers[-1]

    @property
    def hidden(self):
        return self.layers[1:-1]

    def steps(self, samples=None):
        """Minibatches in one epoch (the last partial batch is kept)."""
        n = self.samples if samples is None else samples
        return -(-n // self.batch)


WORKLOADS = {
    "tiny": Workload("tiny", (4, 16, 3), 16, 150, dataset="iris"),
    "small": Workload("small", (64, 128, 10), 32, 1797, dataset="digits"),
    "medium": Workload("medium", (784, 256, 128, 10), 128, 60000),
    "large": Workload("large", (784, 1024, 1024, 10), 256, 20000),
    "predict": Workload("predict", (784, 256, 128, 10), 1024, 60000, task="predict",
                        note="inference of the medium model"),
    "predict1": Workload("predict1", (784, 256, 128, 10), 1, 2000, task="predict",
                         note="inference of the medium model, one sample per call (serving)"),
    "cnn": Workload("cnn", (784, 32, 64, 10), 128, 6400, arch="cnn", input_shape=(28, 28, 1),
                    note="MNIST-shaped: Conv2D(32, 3, relu), MaxPooling2D(2), Conv2D(64, 3, relu), "
                         "MaxPooling2D(2), Flatten, Dense(10, softmax)"),
    "cnn_predict": Workload("cnn_predict", (784, 32, 64, 10), 1024, 4096, task="predict", arch="cnn",
                            input_shape=(28, 28, 1), note="inference of the cnn model"),
    "lstm": Workload("lstm", (784, 128, 10), 128, 6400, arch="lstm", input_shape=(28, 28),
                     note="MNIST rows as timesteps: LSTM(128) over (28 steps, 28 features), Dense(10, softmax)"),
    "gru": Workload("gru", (784, 128, 10), 128, 6400, arch="gru", input_shape=(28, 28),
                    note="the lstm row with GRU(128) (reset_after, PyTorch's form) in place of the LSTM"),
    "rnn": Workload("rnn", (784, 128, 10), 128, 6400, arch="rnn", input_shape=(28, 28),
                    note="the lstm row with SimpleRNN(128) (tanh) in place of the LSTM"),
}
WORKLOADS["resnet"] = Workload("resnet", (64, 16, 10), 64, 1797, dataset="digits", arch="resnet", input_shape=(8, 8, 1),
                               note="examples/resnet_digits.py's model on the 8x8 digits: a stem Conv2D(16)+BN+ReLU, a "
                                    "residual block (two Conv2D+BN), a stride-2 Conv2D(32)+BN, a second block, "
                                    "GlobalAveragePooling2D, Dense(10, softmax); functional API")
TRAIN_WORKLOADS = ("tiny", "small", "medium", "large", "cnn", "lstm", "gru", "rnn", "resnet")


def get_workload(name, max_samples=None):
    """The workload called ``name``, its sample count capped at ``max_samples``."""
    if name not in WORKLOADS:
        raise ValueError(f"workload: expected one of {sorted(WORKLOADS)}, got {name!r}")
    wl = WORKLOADS[name]
    if max_samples is not None:
        if int(max_samples) < 1:
            raise ValueError(f"max_samples: expected a positive int, got {max_samples!r}")
        if wl.samples > int(max_samples):
            wl = replace(wl, samples=int(max_samples))
    return wl


_CACHE = {}


def _synthetic(n, n_in, n_classes, rng):
    # Gaussian class clusters in [0, 1]-ish pixel range: learnable, like MNIST in shape only.
    centers = rng.uniform(0.0, 1.0, size=(n_classes, n_in)).astype(np.float32)
    y = rng.integers(0, n_classes, size=n).astype(np.int64)
    x = rng.standard_normal((n, n_in), dtype=np.float32)
    x *= 0.5
    x += centers[y]
    return x, y


def make_data(wl):
    """(x float32 of shape (samples,) + input_shape, y int64 labels of shape (samples,)), cached."""
    key = (wl.dataset, wl.samples, wl.input_shape, wl.n_classes)
    if key in _CACHE:
        return _CACHE[key]
    rng = np.random.default_rng(SEED)
    x = y = None
    if wl.dataset in ("iris", "digits"):
        try:
            from sklearn import datasets

            bunch = datasets.load_iris() if wl.dataset == "iris" else datasets.load_digits()
            x = np.asarray(bunch.data, dtype=np.float64)
            x = (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-8)   # standardise the features
            x = np.ascontiguousarray(x, dtype=np.float32)
            y = np.asarray(bunch.target, dtype=np.int64)
            perm = rng.permutation(len(y))[: wl.samples]
            x, y = np.ascontiguousarray(x[perm]), np.ascontiguousarray(y[perm])
        except ImportError:
            x = None  # scikit-learn absent: synthetic data of the same shape
    if x is None:
        x, y = _synthetic(wl.samples, wl.n_in, wl.n_classes, rng)
    if x.shape != (wl.samples, wl.n_in):
        raise RuntimeError(f"make_data({wl.name}): got x of shape {x.shape}, expected {(wl.samples, wl.n_in)}")
    x = x.reshape((wl.samples,) + wl.input_shape)   # a view: images are (H, W, C) channels_last
    _CACHE.clear()  # keep at most one data set alive (medium is 188 MB)
    _CACHE[key] = (x, y)
    return x, y
