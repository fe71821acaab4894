"""Inference: nncore against ONNX Runtime (on nncore's own ONNX export) and PyTorch.

    python bench/onnx_infer.py [options of python -m bench]

The medium MLP 784-256-128-10 (ReLU, softmax output), float32, at batch 1 (one sample per call: the
row ``predict1``) and batch 1024 (``predict``), 1 and 2 threads. Contenders, one call per batch, all in
one process and interleaved: nncore ``predict``, nncore ``model(x)``, nncore ``predict_on_batch`` (when
nncore has it), ONNX Runtime (``session.run`` on the model exported by ``nncore.onnx``, intra-op threads
= the thread count, sequential execution) and PyTorch (eager, inference_mode). First it checks that
ONNX Runtime's outputs equal nncore's predict to 1e-5 of their scale on both rows, then it runs
``python -m bench`` on those rows (medians of interleaved repeats; ratios are peer time / nncore
predict time). Options after the script's name go to python -m bench and override the defaults here,
e.g. ``--repeats 9`` or ``--threads 2``.
"""
import os
import sys

import numpy as np

if __package__ in (None, ""):  # run as a script
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import peers as P  # noqa: E402
from bench import run  # noqa: E402
from bench.workloads import get_workload, make_data  # noqa: E402

PEERS = "nncore,nncore_call,nncore_pob,onnxruntime,torch"
DEFAULTS = ["--workloads", "predict1,predict", "--peers", PEERS, "--threads", "1,2", "--repeats", "7",
            "--no-memory", "--json", os.path.join(run.REPO_ROOT, "bench", "results_onnx.json")]


def check_agreement(samples=2048):
    """ONNX Runtime's outputs against nncore's predict on the two rows (same network and weights)."""
    for name in ("predict1", "predict"):
        wl = get_workload(name, samples)
        x, y = make_data(wl)
        ours = P.NncorePeer(wl, x, y)
        theirs = P.OnnxRuntimePeer(wl, x, y)
        theirs.set_weights(ours.get_weights())
        p, q = ours.predict_all(), theirs.predict_all()
        err = float(np.max(np.abs(p - q)) / np.max(np.abs(p)))
        if err > 1e-5:
            raise AssertionError(f"{name}: ONNX Runtime differs from nncore's predict by {err:.2e} of the scale")
        print(f"{name}: ONNX Runtime = nncore predict to {err:.1e} of the output's scale ({len(x)} samples)",
              file=sys.stderr)


def main(argv=None):
    ok, why = P.OnnxRuntimePeer.available()
    if not ok:
        print(f"ONNX Runtime is not available: {why} (pip install \"nncore[onnx]\")", file=sys.stderr)
        return 1
    check_agreement()
    return run.main(DEFAULTS + list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
