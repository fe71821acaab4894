"""nncore's benchmark suite: nncore against PyTorch, scikit-learn, Keras 3 and NumPy by hand.

Run ``python -m bench`` from the repository root (``python -m bench --help`` for
the options, ``python -m bench --quick`` for a short run). See bench/RESULTS.md.
"""
import os as _os

# The environment as the user gave it, before nncore's import sets its
# OpenMP defaults: subprocesses (the OPENBLAS-unset worker, the memory probes)
# start from this copy.
ORIGINAL_ENV = dict(_os.environ)
