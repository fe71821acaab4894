"""show_config(): what the compiled core was built with and uses now; the default float dtype."""
import contextlib
import threading

import numpy as np

from nncore._kernels import runtime as _rt


_FLOATX = "float32"
_local = threading.local()   # .floatx: this thread's dtype inside using_floatx, else absent


def floatx():
    """The default float dtype name for new models and converted inputs ('float32')."""
    return getattr(_local, "floatx", None) or _FLOATX


def _check_floatx(value, where):
    if value not in ("float32", "float64"):
        raise ValueError(f"{where}: expected 'float32' or 'float64', got {value!r}")
    return value


def set_floatx(value):
    """Set the default float dtype: 'float32' or 'float64'."""
    global _FLOATX
    _FLOATX = _check_floatx(value, "set_floatx")


@contextlib.contextmanager
def using_floatx(value):
    """Make `value` ('float32' or 'float64') the default float dtype inside the block, in this
    thread only (an estimator builds its model in the dtype of its training data this way)."""
    outer = getattr(_local, "floatx", None)
    _local.floatx = _check_floatx(value, "using_floatx")
    try:
        yield value
    finally:
        _local.floatx = outer


def config():
    """Return a dict describing the build and the run-time choices."""
    from nncore._threads import get_num_threads

    best = _rt.simd_level()
    return {
        "version": __import__("nncore").__version__,
        "openmp": _rt.has_openmp(),
        "simd": _rt.simd_name(_rt.active_simd_level()),
        "simd_best": _rt.simd_name(best),
        "num_threads": get_num_threads(),
        "omp_max_threads": _rt.omp_max_threads(),
        "dtypes": ["float32", "float64"],
        "numpy": np.__version__,
    }


def show_config():
    """Print what was compiled in: OpenMP, SIMD level chosen at run time, threads, dtypes."""
    for key, value in config().items():
        print(f"{key:16s}: {value}")
