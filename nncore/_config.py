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


SIMD_LEVELS = ("generic", "avx2", "avx512")  # the names of enum nc_simd (csrc/nncore.h), by number


def set_simd_level(level):
    """Run every kernel at this SIMD level from now on.

    Each SIMD-sensitive kernel (GEMM, activations, losses, convolution and
    pooling, reductions, recurrent cells, optimizer steps) is compiled once
    per level; the best level this CPU runs is used by default. A lower level
    lets you time or test, say, the AVX2 kernels on an AVX-512 machine.

    Parameters
    ----------
    level : {"generic", "avx2", "avx512"}, int or None
        The level by name or number (0 generic C, 1 AVX2+FMA, 2 AVX-512).
        None or "best" restores the best level available.

    Raises
    ------
    ValueError
        For an unknown level, or one this CPU cannot run or this build did
        not compile (``show_config()`` lists both).

    See Also
    --------
    get_simd_level, show_config
    """
    if level is None or level == "best":
        number = -1
    elif isinstance(level, str):
        name = "avx2" if level == "avx2+fma" else level
        if name not in SIMD_LEVELS:
            raise ValueError(f"set_simd_level: unknown level {level!r}, expected one of {list(SIMD_LEVELS)}, "
                             "an int 0-2 or None")
        number = SIMD_LEVELS.index(name)
    elif isinstance(level, (int, np.integer)) and not isinstance(level, bool):
        number = int(level)
        if not 0 <= number < len(SIMD_LEVELS):
            raise ValueError(f"set_simd_level: level {number} out of range, expected 0-{len(SIMD_LEVELS) - 1}")
    else:
        raise TypeError(f"set_simd_level: expected a level name, an int or None, got {type(level).__name__}")
    best = _rt.simd_level()
    if number > best:
        raise ValueError(
            f"set_simd_level: {SIMD_LEVELS[number]!r} is not available here: this CPU runs up to "
            f"{_rt.simd_name(_rt.simd_cpu_level())!r} and this build compiled up to "
            f"{_rt.simd_name(_rt.simd_compiled_level())!r}")
    _rt.set_simd_level(number)


def get_simd_level():
    """The name of the SIMD level the kernels use now: 'generic', 'avx2' or 'avx512'."""
    return _rt.simd_name(_rt.active_simd_level())


def config():
    """Return a dict describing the build and the run-time choices."""
    from nncore._threads import get_num_threads

    best = _rt.simd_level()
    return {
        "version": __import__("nncore").__version__,
        "openmp": _rt.has_openmp(),
        "simd": get_simd_level(),
        "simd_best": _rt.simd_name(best),
        "simd_compiled": list(SIMD_LEVELS[:_rt.simd_compiled_level() + 1]),
        "simd_cpu": _rt.simd_name(_rt.simd_cpu_level()),
        "num_threads": get_num_threads(),
        "omp_max_threads": _rt.omp_max_threads(),
        "dtypes": ["float32", "float64"],
        "int8_kernel": _int8_kernels(),
        "bf16_kernel": _bf16_kernel(),
        "dtype_policy": __import__("nncore.mixed_precision", fromlist=["x"]).global_policy().name,
        "numpy": np.__version__,
    }


def _int8_kernels():
    """The int8 GEMM's micro-kernel (quantize("int8")) for nncore's default 7-bit inputs and for Keras's 8-bit."""
    from nncore._kernels import int8
    from nncore.quantizers import DEFAULT_ACTIVATION_RANGE as q

    return f"{int8.kernel(q)} (|x| <= {q}), {int8.kernel(127)} (|x| <= 127)"


def _bf16_kernel():
    """The bf16 GEMM's micro-kernel (mixed_bfloat16) and whether it speeds anything up here."""
    from nncore._kernels import gemm

    kernel = gemm.bf16_kernel()
    if kernel == "avx512bf16":
        return "avx512bf16 (vdpbf16ps)"
    return (f"{kernel} (vdpbf16ps emulated on float32 FMAs: same bits, no speed-up; CPU AVX512_BF16: "
            f"{'yes' if gemm.cpu_has_avx512bf16() else 'no'})")


def show_config():
    """Print what was compiled in and what runs: OpenMP, the SIMD level in use (``simd``; the best
    available is ``simd_best``), the levels compiled in and the best the CPU offers, threads, dtypes."""
    for key, value in config().items():
        print(f"{key:16s}: {value}")
