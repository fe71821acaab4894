# runtime.pyx -- what the C library was built with and what the CPU offers.
from nncore._kernels.nncore cimport *


def simd_level():
    """Best SIMD level this CPU runs and this build compiled: 0 generic, 1 AVX2+FMA, 2 AVX-512."""
    return nc_simd_level()


def simd_cpu_level():
    """Best SIMD level this CPU (and its OS) supports, whatever the build compiled."""
    return nc_simd_cpu_level()


def simd_compiled_level():
    """Best SIMD level this build compiled (0: the generic C kernels only)."""
    return nc_simd_compiled_level()


def active_simd_level():
    return nc_active_simd_level()


def _kernel_modules():
    import importlib
    import pkgutil

    import nncore._kernels as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name != "runtime":
            mod = importlib.import_module(f"nncore._kernels.{info.name}")
            if hasattr(mod, "_set_simd_level_here"):
                yield mod


def set_simd_level(int level):
    """Use this SIMD level in every kernel module; -1 (or a level above simd_level()) is the best.

    Each extension links its own copy of the C runtime state, so the level is
    set in each of them.
    """
    nc_set_simd_level(level)
    for mod in _kernel_modules():
        mod._set_simd_level_here(level)


def simd_name(int level):
    return nc_simd_name(level).decode()


def has_openmp():
    return bool(nc_has_openmp())


def omp_max_threads():
    return nc_omp_max_threads()


def team_size(int n_threads, double work):
    return nc_team_size(n_threads, work)


def mark_forked():
    """Run serially from now on, in every kernel module (a pthread_atfork
    handler in each module's C runtime does this on fork already)."""
    nc_mark_forked()
    for mod in _kernel_modules():
        mod._mark_forked_here()
