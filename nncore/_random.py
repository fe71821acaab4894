"""Random state: one global numpy Generator, seeded by nncore.set_seed."""
import numpy as np

_rng = np.random.default_rng()


def set_seed(seed):
    """Seed nncore's global generator: the same seed and thread count give bit-identical training."""
    global _rng
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"set_seed: expected an int seed, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"set_seed: expected a non-negative seed, got {seed}")
    _rng = np.random.default_rng(int(seed))


def get_rng():
    """The global generator (advance it only through this module's users)."""
    return _rng


def make_rng(seed=None):
    """A generator of its own: from `seed` when given, else drawn from the global one."""
    if seed is None:
        return np.random.default_rng(_rng.integers(0, 2**63 - 1))
    return np.random.default_rng(int(seed))
