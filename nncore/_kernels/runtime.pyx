# runtime.pyx -- what the C library was built with and what the CPU offers.
from nncore._kernels.nncore cimport *


def simd_level():
    """Best SIMD level: 0 generic, 1 AVX2+FMA, 2 AVX-512."""
    return nc_simd_level()


def active_simd_level():
    return nc_active_simd_level()


def set_simd_level(int level):
    """Force a lower SIMD level (for tests); -1 restores the best."""
    nc_set_simd_level(level)


def simd_name(int level):
    return nc_simd_name(level).decode()


def has_openmp():
    return bool(nc_has_openmp())


def omp_max_threads():
    return nc_omp_max_threads()


def team_size(int n_threads, double work):
    return nc_team_size(n_threads, work)


def mark_forked():
    """Run serially from now on (called in a forked child)."""
    nc_mark_forked()
