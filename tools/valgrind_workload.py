"""A small end-to-end run for tools/valgrind.sh: kernels on awkward sizes, then save and load."""
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from nncore import saving  # noqa: E402
from nncore._kernels import elementwise as ew  # noqa: E402
from nncore._kernels import gemm as g  # noqa: E402

rng = np.random.default_rng(0)
for dtype in (np.float32, np.float64):
    for m, n, k in [(1, 1, 1), (7, 13, 5), (33, 17, 65)]:
        a = rng.standard_normal((m, k)).astype(dtype)
        b = rng.standard_normal((k, n)).astype(dtype)
        c = g.gemm(a, b, np.empty((m, n), dtype), bias=np.ones(n, dtype), act=4, n_threads=2)
        ref = np.maximum(a.astype(np.float64) @ b + 1, 0)
        assert np.allclose(c, ref, rtol=1e-4, atol=1e-4)
        y = ew.act_forward(2, 0.0, c, np.empty_like(c), 2)
        ew.act_backward(2, 0.0, None, y, c, np.empty_like(c), 2)
        ew.softmax_backward(ew.softmax_forward(c, np.empty_like(c)), c, np.empty_like(c))
        ew.colsum(c, np.empty(n, dtype), 2)
        ew.sumsq(c, 2)
        ew.all_finite(c, 2)
        ew.take_rows(c, np.array([m - 1, 0], np.int64), np.empty((2, n), dtype))
with tempfile.TemporaryDirectory() as d:
    path = os.path.join(d, "m.nncore")
    saving.write_file(path, {"w": [c, y], "n": 3})
    back = saving.read_file(path)
    assert np.array_equal(back["w"][0], c)
print("workload ok")
