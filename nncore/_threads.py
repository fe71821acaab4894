"""Thread control: the only place nncore resolves how many threads to use.

The default is ``OMP_NUM_THREADS`` when set, otherwise the CPUs this process
may run on (its affinity mask). ``set_num_threads`` overrides it. Kernels
clamp the request further: to ``omp_get_max_threads()`` (so threadpoolctl's
limits apply), to 1 in a forked child, and to 1 for work too small to share.
"""
import os

from nncore._kernels import runtime as _rt

__all__ = ["get_num_threads", "set_num_threads", "effective_n_threads"]


def _default_threads():
    env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if env:
        try:
            n = int(env)
            if n > 0:
                return n
        except ValueError:
            pass
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


_n_threads = _default_threads()


def get_num_threads():
    """Number of threads nncore's kernels may use."""
    return _n_threads


def set_num_threads(n):
    """Set the number of threads nncore's kernels may use (a positive int)."""
    global _n_threads
    if isinstance(n, bool) or not isinstance(n, (int,)) and not hasattr(n, "__index__"):
        raise TypeError(f"set_num_threads: expected a positive int, got {type(n).__name__}")
    n = int(n)
    if n <= 0:
        raise ValueError(f"set_num_threads: expected a positive int, got {n}")
    _n_threads = n


def effective_n_threads(n_threads=None):
    """Resolve a per-call request: None means the global setting, -1 all CPUs, 0 is an error."""
    if n_threads is None:
        return _n_threads
    n_threads = int(n_threads)
    if n_threads == 0:
        raise ValueError("n_threads: 0 is not a thread count (use None, -1 or a positive int)")
    if n_threads < 0:
        return max(1, _default_threads() + 1 + n_threads)
    return n_threads


def _after_fork_in_child():
    # GNU OpenMP's thread pool does not survive fork(): the child runs serially.
    _rt.mark_forked()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
