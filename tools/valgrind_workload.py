"""A small end-to-end run for tools/valgrind.sh: kernels on awkward sizes, then a model
fit / predict / save / load / continued fit, in float32 and float64, with 2 threads."""
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import nncore  # noqa: E402
from nncore import ops  # noqa: E402
from nncore.layers import Dense, Dropout, Input  # noqa: E402

rng = np.random.default_rng(0)
nncore.set_num_threads(2)

# kernels through the public ops on sizes 1, primes and non-multiples of the blocking
for dtype in (np.float32, np.float64):
    for m, n, k in [(1, 1, 1), (7, 13, 5), (33, 17, 65)]:
        a = rng.standard_normal((m, k)).astype(dtype)
        b = rng.standard_normal((k, n)).astype(dtype)
        c = ops.dense(a, b, np.ones(n, dtype), activation="relu")
        assert np.allclose(c, np.maximum(a.astype(np.float64) @ b + 1, 0), rtol=1e-4, atol=1e-4)
        s = ops.softmax(c)
        ops.softmax_grad(c, s)
        ops.activation_grad(c, ops.activation(c, "sigmoid"), "sigmoid")
        ops.colsum(c)
        ops.sumsq(c)

# a model: fit, predict, save, load, continue
with tempfile.TemporaryDirectory() as d:
    for fx in ("float32", "float64"):
        nncore.set_floatx(fx)
        nncore.set_seed(0)
        x = rng.standard_normal((97, 11))
        labels = rng.integers(0, 3, 97)
        model = nncore.Sequential([Input(shape=(11,)), Dense(19, activation="relu"), Dropout(0.2),
                                   Dense(3, activation="softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(x, labels, epochs=2, batch_size=16, validation_split=0.2, verbose=0)
        path = os.path.join(d, f"m-{fx}.nncore")
        model.save(path)
        back = nncore.load_model(path)
        assert np.array_equal(back.predict(x, verbose=0), model.predict(x, verbose=0))
        nncore.set_seed(1)
        model.fit(x, labels, epochs=1, batch_size=16, verbose=0)
        nncore.set_seed(1)
        back.fit(x, labels, epochs=1, batch_size=16, verbose=0)
        assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), back.get_weights()))
        back.evaluate(x, labels, verbose=0)
        model.save_weights(path)
        back.load_weights(path)
print("workload ok")
