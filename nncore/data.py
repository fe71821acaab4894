"""Batching and shuffling with an explicit numpy Generator.

`Batches` cuts a set of aligned arrays (inputs, targets, sample weights) into
mini-batches. With shuffling, each epoch permutes one preallocated index
array in place and gathers every batch into buffers allocated once per batch
size (`take_rows` kernel for float rows, `np.take(out=)` for 1-D arrays), so
an epoch allocates nothing that persists. The per-batch schedule (index
views, gathers, output tuple) is built on the first epoch and reused; `fit`
keeps its Batches between calls and `rebind`s it to new arrays of the same
layout (then `release`s the arrays), so a repeated fit(epochs=1) allocates
nothing either. Without shuffling, batches are contiguous row slices (views).
The last partial batch is kept.
"""
import numpy as np

from nncore._kernels.elementwise import take_rows

__all__ = ["Batches", "split_validation"]


class Batches:
    """Mini-batches over aligned arrays.

    Parameters
    ----------
    arrays : sequence of ndarray or None
        C-contiguous arrays with the same first dimension (None entries stay None).
    batch_size : int
    shuffle : bool, default=False
        Reshuffle the sample order at the start of every epoch.
    rng : numpy.random.Generator, optional
        The generator used for shuffling (required when shuffle is True).
    """

    def __init__(self, arrays, batch_size, shuffle=False, rng=None):
        arrays = list(arrays)
        present = [a for a in arrays if a is not None]
        self.n = len(present[0])
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
            raise ValueError(f"batch_size: expected a positive int, got {batch_size!r}")
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        if self.shuffle and rng is None:
            raise ValueError("Batches: shuffle=True needs an explicit rng (numpy Generator)")
        self.rng = rng
        self._idx = np.arange(self.n, dtype=np.int64)
        self._bufs = {}
        self._sched = None
        self._iterating = 0
        self._bind(arrays)
        self._layout = self._layout_of(arrays)

    def _bind(self, arrays):
        self.arrays = arrays
        # float rows gather through take_rows on a 2-D view of each array
        self._rows = [None if a is None or a.ndim == 1 or a.dtype.kind != "f" else a.reshape(self.n, -1)
                      for a in arrays]
        self._srcs = [r if r is not None else a for a, r in zip(arrays, self._rows)]

    @staticmethod
    def _layout_of(arrays):
        return tuple(None if a is None else (a.shape, a.dtype, a.dtype.kind == "f" and a.ndim > 1)
                     for a in arrays)

    def rebind(self, arrays, batch_size, shuffle, rng):
        """Reuse this object (its batch buffers and schedule) for new arrays of the same layout.

        Returns True when it was rebound: the same batch size and shuffle flag, arrays of
        the same shapes and dtypes in the same places, and no iteration of this object
        in progress (a fit started from a callback gets its own Batches). The sample
        order restarts from the identity permutation, exactly as in a new Batches.
        Otherwise returns False and changes nothing.
        """
        arrays = list(arrays)
        if (self._iterating or int(batch_size) != self.batch_size or bool(shuffle) != self.shuffle
                or (shuffle and rng is None) or self._layout_of(arrays) != self._layout):
            return False
        self.rng = rng
        self._idx[:] = np.arange(self.n, dtype=np.int64)
        self._bind(arrays)
        return True

    def release(self):
        """Drop the references to the arrays (the batch buffers are kept for ``rebind``)."""
        self.arrays = self._rows = self._srcs = None

    def __len__(self):
        return -(-self.n // self.batch_size)

    def _plan(self, size):
        """Buffers for batches of `size` rows, the gathers that fill them, and the tuple to yield.

        Each gather is (k, dst, rows): the source is ``self._srcs[k]``; rows=True gathers
        float rows with the take_rows kernel (source and dst are 2-D views), rows=False
        uses ndarray.take(out=).
        """
        gathers, out = [], []
        for k, (a, rows) in enumerate(zip(self.arrays, self._rows)):
            if a is None:
                out.append(None)
                continue
            full = np.empty((size,) + a.shape[1:], a.dtype)
            if rows is not None:
                gathers.append((k, full.reshape(size, -1), True))     # dst[r] = src[idx[r]]
            else:
                gathers.append((k, full, False))
            out.append(full)
        plan = self._bufs[size] = (tuple(gathers), tuple(out))
        return plan

    def _schedule(self):
        """Per batch of an epoch: (view of the index array, gathers, output tuple), built once;
        the index views stay valid because every epoch shuffles the index array in place."""
        idx, bs, sched = self._idx, self.batch_size, []
        for start in range(0, self.n, bs):
            part = idx[start:start + bs]
            gathers, out = self._bufs.get(part.shape[0]) or self._plan(part.shape[0])
            sched.append((part, gathers, out))
        self._sched = sched
        return sched

    def __iter__(self):
        """Yield one tuple of arrays per batch, in order (reshuffled first when shuffle=True).

        With shuffling the tuple holds the same buffers for every batch of a
        given size: use (or copy) a batch before asking for the next one.
        """
        n, bs = self.n, self.batch_size
        if not self.shuffle:
            for start in range(0, n, bs):
                yield tuple(None if a is None else a[start:start + bs] for a in self.arrays)
            return
        self.rng.shuffle(self._idx)
        srcs = self._srcs
        self._iterating += 1
        try:
            for part, gathers, out in self._sched or self._schedule():
                for k, dst, rows in gathers:
                    if rows:
                        take_rows(srcs[k], part, dst)
                    else:
                        srcs[k].take(part, 0, dst)
                yield out
        finally:
            self._iterating -= 1


def split_validation(arrays, validation_split):
    """Keras's validation_split: the training set is the first floor(n (1 - split)) samples,
    the validation set the rest (the last samples), taken before any shuffling.

    This is Keras 3's rule (``split_at = floor(n * (1 - split))``): the
    validation set has n - floor(n (1 - split)) samples, which is ceil(n split)
    up to rounding of the product. Returns (train_arrays, val_arrays) as lists
    of views (None entries stay None).
    """
    split = float(validation_split)
    if not 0.0 <= split < 1.0:
        raise ValueError(f"validation_split: expected a float in [0, 1), got {validation_split!r}")
    n = len(next(a for a in arrays if a is not None))
    cut = int(np.floor(n * (1.0 - split)))
    if cut == 0 or cut == n:
        raise ValueError(f"validation_split={split}: {n} samples are not enough to split into a training "
                         "and a validation set")
    train = [None if a is None else a[:cut] for a in arrays]
    val = [None if a is None else a[cut:] for a in arrays]
    return train, val
