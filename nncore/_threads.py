"""Thread control: the only place nncore resolves how many threads to use.

The default is ``OMP_NUM_THREADS`` when set, otherwise the CPUs this process
may run on (its affinity mask). ``set_num_threads`` overrides it. Kernels
clamp the request further: to ``omp_get_max_threads()`` (so threadpoolctl's
limits apply), to 1 in a forked child, and to 1 for work too small to share.
Without OpenMP every answer is 1.
"""
import operator
import os

from nncore._kernels import runtime as _rt

__all__ = ["get_num_threads", "set_num_threads", "effective_n_threads"]


def _cpu_count():
    """CPUs this process may run on (affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _default_threads():
    # OMP_NUM_THREADS may be a list ("4,2") for nested levels: the first entry counts
    env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if env:
        try:
            n = int(env)
            if n > 0:
                return n
        except ValueError:
            pass
    return _cpu_count()


def _as_count(n, what):
    if isinstance(n, bool):
        raise TypeError(f"{what}: expected an int, got bool")
    try:
        return operator.index(n)
    except TypeError:
        raise TypeError(f"{what}: expected an int, got {type(n).__name__}") from None


_n_threads = _default_threads()
_explicit = False    # set_num_threads was called (nncore.distributed then keeps the choice)


def get_num_threads():
    """Number of threads nncore's kernels may use.

    Returns
    -------
    n : int
        ``OMP_NUM_THREADS`` or the CPUs available to this process, unless
        changed with :func:`set_num_threads`.
    """
    return _n_threads


def set_num_threads(n):
    """Set the number of threads nncore's kernels may use.

    Parameters
    ----------
    n : int
        A positive number of threads. 0 and negative values raise ValueError.
    """
    global _n_threads, _explicit
    n = _as_count(n, "set_num_threads")
    if n <= 0:
        raise ValueError(f"set_num_threads: expected a positive int, got {n}")
    _n_threads = n
    _explicit = True


def effective_n_threads(n_threads=None):
    """Resolve a per-call thread request into a positive int.

    Parameters
    ----------
    n_threads : int or None, default=None
        None: the global setting (:func:`get_num_threads`); -1: all CPUs of
        this process, -2: all but one, ...; a positive int: that many; 0 is
        an error.

    Returns
    -------
    n : int
        At least 1; always 1 when nncore was built without OpenMP.
    """
    if n_threads is None:
        n = _n_threads
    else:
        n = _as_count(n_threads, "n_threads")
        if n == 0:
            raise ValueError("n_threads: 0 is not a thread count (use None, -1 or a positive int)")
        if n < 0:
            n = max(1, _cpu_count() + 1 + n)
    if not _rt.has_openmp():
        return 1
    return n


def _after_fork_in_child():
    # GNU OpenMP's thread pool does not survive fork(): the child runs serially.
    _rt.mark_forked()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
