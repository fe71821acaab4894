"""Random state: one global numpy Generator, seeded by nncore.set_seed.

`using_rng(rng)` replaces it, in the calling thread only, for the length of a ``with`` block:
an estimator (nncore.sklearn) builds and trains its model from its own ``random_state`` that
way, without touching the global generator or other threads' models.
"""
import contextlib
import threading

import numpy as np

_rng = np.random.default_rng()
_local = threading.local()   # .rng: this thread's generator inside using_rng, else absent


def set_seed(seed):
    """Seed nncore's global generator: the same seed and thread count give bit-identical training."""
    global _rng
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"set_seed: expected an int seed, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"set_seed: expected a non-negative seed, got {seed}")
    _rng = np.random.default_rng(int(seed))


def get_rng():
    """The generator in force: the one of an enclosing `using_rng` in this thread, else the global one."""
    return getattr(_local, "rng", None) or _rng


@contextlib.contextmanager
def using_rng(rng):
    """Draw from `rng` (a numpy Generator) instead of the global generator inside the block,
    in this thread only (initializers, shuffling, Dropout seeds)."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"using_rng: expected a numpy Generator, got {type(rng).__name__}")
    outer = getattr(_local, "rng", None)
    _local.rng = rng
    try:
        yield rng
    finally:
        _local.rng = outer


def make_rng(seed=None):
    """A generator of its own: from `seed` when given, else drawn from the generator in force."""
    if seed is None:
        return np.random.default_rng(get_rng().integers(0, 2**63 - 1))
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed: expected None or a non-negative int, got {type(seed).__name__} {seed!r}")
    if seed < 0:
        raise ValueError(f"seed: expected None or a non-negative int, got {seed}")
    return np.random.default_rng(int(seed))
