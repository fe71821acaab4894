"""Batching and shuffling with an explicit numpy Generator, and streaming input.

`Batches` cuts a set of aligned arrays (inputs, targets, sample weights) into
mini-batches. With shuffling, each epoch permutes one preallocated index
array in place and gathers every batch into buffers allocated once per batch
size (`take_rows` kernel for float rows, `np.take(out=)` for 1-D arrays), so
an epoch allocates nothing that persists. The per-batch schedule (index
views, gathers, output tuple) is built on the first epoch and reused; `fit`
keeps its Batches between calls and `rebind`s it to new arrays of the same
layout (then `release`s the arrays), so a repeated fit(epochs=1) allocates
nothing either. Without shuffling, batches are contiguous row slices (views).
The last partial batch is kept. With ``shard=(rank, size)`` (nncore.distributed)
each global batch of ``size * batch_size`` rows is split among the ranks and
this process gets its share; ``rows`` is the size of the whole global batch.

Data larger than memory (`Stream`, one interface for all of them: ``steps``,
iteration over one epoch's prepared batches, ``rows``, ``release``):

- a NumPy memmap (`is_memmap`): a background thread reads each batch's rows
  from the memmap's file (``pread``, not through the mapping) into a small ring
  of batch buffers, converts them to the model's dtype and checks them there, so
  the resident memory stays bounded whatever the file size;
- a sequence of batches (``__len__``, ``__getitem__(i) -> (x, y[, w])``,
  optional ``on_epoch_begin``/``on_epoch_end``: Keras's ``PyDataset`` protocol,
  see `PyDataset`), shuffled by batch each epoch;
- a generator or iterable of batches, with or without ``steps_per_epoch``.

The next batches are produced in background workers while the current step
runs (the kernels release the GIL), at most ``max_queue_size`` (default 10)
ahead; a sequence's ``workers`` and ``use_multiprocessing`` choose threads or
processes as in Keras. An iterable that runs out before ``steps_per_epoch``
batches ends the epoch with a warning (Keras); one that yields nothing at the
start of an epoch ends the training.
"""
import concurrent.futures
import collections
import itertools
import multiprocessing
import os
import warnings

import numpy as np

from nncore._kernels.elementwise import read_rows, take_rows

__all__ = ["Batches", "PyDataset", "Sequence", "Stream", "split_validation", "is_memmap", "is_stream"]


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
    shard : (rank, size), optional
        Data-parallel training: each global batch holds ``size * batch_size`` rows
        (the last one fewer) and this process takes the rank-th share of it
        (`share_of`); ``rows`` is the number of rows of the global batch last yielded.
    """

    def __init__(self, arrays, batch_size, shuffle=False, rng=None, shard=None):
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
        self.shard = (0, 1) if shard is None else tuple(shard)
        self.rows = 0
        self._idx = np.arange(self.n, dtype=np.int64)
        self._bufs = {}
        self._sched = None
        self._iterating = 0
        self._bind(arrays)
        self._layout = self._layout_of(arrays)

    def _bind(self, arrays):
        self.arrays = arrays
        # float rows gather through take_rows on a 2-D view of each array
        self._rows = [None if a is None or a.ndim == 1 or a.dtype not in (np.float32, np.float64) else _rows2d(a)
                      for a in arrays]
        self._srcs = [r if r is not None else a for a, r in zip(arrays, self._rows)]

    @staticmethod
    def _layout_of(arrays):
        return tuple(None if a is None else (a.shape, a.dtype, a.dtype.kind == "f" and a.ndim > 1)
                     for a in arrays)

    def rebind(self, arrays, batch_size, shuffle, rng, shard=None):
        """Reuse this object (its batch buffers and schedule) for new arrays of the same layout.

        Returns True when it was rebound: the same batch size and shuffle flag, arrays of
        the same shapes and dtypes in the same places, and no iteration of this object
        in progress (a fit started from a callback gets its own Batches). The sample
        order restarts from the identity permutation, exactly as in a new Batches.
        Otherwise returns False and changes nothing.
        """
        arrays = list(arrays)
        if (self._iterating or int(batch_size) != self.batch_size or bool(shuffle) != self.shuffle
                or (shuffle and rng is None) or self._layout_of(arrays) != self._layout
                or ((0, 1) if shard is None else tuple(shard)) != self.shard):
            return False
        self.rng = rng
        self._idx[:] = np.arange(self.n, dtype=np.int64)
        self._bind(arrays)
        return True

    def release(self):
        """Drop the references to the arrays (the batch buffers are kept for ``rebind``)."""
        self.arrays = self._rows = self._srcs = None

    def __len__(self):
        return -(-self.n // (self.batch_size * self.shard[1]))

    @property
    def steps(self):
        return len(self)

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
                gathers.append((k, _rows2d(full), True))     # dst[r] = src[idx[r]]
            else:
                gathers.append((k, full, False))
            out.append(full)
        plan = self._bufs[size] = (tuple(gathers), tuple(out))
        return plan

    def _schedule(self):
        """Per batch of an epoch: (view of the index array, gathers, output tuple, global rows),
        built once; the index views stay valid because every epoch shuffles the index array in place."""
        idx, sched = self._idx, []
        for start, lo, hi, m in self._spans():
            part = idx[start + lo:start + hi]
            gathers, out = self._bufs.get(part.shape[0]) or self._plan(part.shape[0])
            sched.append((part, gathers, out, m))
        self._sched = sched
        return sched

    def __iter__(self):
        """Yield one tuple of arrays per batch, in order (reshuffled first when shuffle=True).

        With shuffling the tuple holds the same buffers for every batch of a
        given size: use (or copy) a batch before asking for the next one.
        """
        if not self.shuffle:
            for start, lo, hi, m in self._spans():
                self.rows = m
                yield tuple(None if a is None else a[start + lo:start + hi] for a in self.arrays)
            return
        self.rng.shuffle(self._idx)
        srcs = self._srcs
        self._iterating += 1
        try:
            for part, gathers, out, m in self._sched or self._schedule():
                for k, dst, rows in gathers:
                    if rows:
                        take_rows(srcs[k], part, dst)
                    else:
                        srcs[k].take(part, 0, dst)
                self.rows = m
                yield out
        finally:
            self._iterating -= 1

    def _spans(self):
        """(start, lo, hi, m) per global batch: it holds rows [start, start + m) of the epoch's
        order, and this process takes [start + lo, start + hi) of them."""
        n, (r, size) = self.n, self.shard
        step = self.batch_size * size
        for start in range(0, n, step):
            m = min(step, n - start)
            lo, hi = share_of(m, r, size)
            yield start, lo, hi, m


def _rows2d(a):
    """a as a 2-D view of its rows (also for 0 rows)."""
    return a.reshape(a.shape[0], int(np.prod(a.shape[1:], dtype=np.int64)))


def share_of(m, r, size):
    """Rows [lo, hi) of m that rank r of `size` takes: m // size each, one more for r < m % size."""
    q, extra = divmod(m, size)
    lo = r * q + min(r, extra)
    return lo, lo + q + (r < extra)


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


# ================================================================ data larger than memory
def memmap_of(x):
    """The numpy.memmap that x is (or is a view of), or None."""
    while isinstance(x, np.ndarray):
        if isinstance(x, np.memmap):
            return x
        x = x.base
    return None


def is_memmap(x):
    """Whether x is a C-contiguous array over a numpy.memmap (read batch by batch, never whole)."""
    return isinstance(x, np.ndarray) and x.flags.c_contiguous and memmap_of(x) is not None


def is_stream(x):
    """Whether x is a sequence of batches (``__len__`` + ``__getitem__``) or an iterable of
    batches, rather than array-like data (ndarray, list, tuple, or anything with __array__)."""
    if x is None or isinstance(x, (np.ndarray, list, tuple, dict, str, bytes, range)) or hasattr(x, "__array__"):
        return False
    return hasattr(x, "__iter__") or hasattr(x, "__next__") or (hasattr(x, "__getitem__")
                                                                 and hasattr(x, "__len__"))


class PyDataset:
    """Base class of a sequence of batches: Keras's ``PyDataset`` (``keras.utils.Sequence``) protocol.

    Subclasses implement ``__len__`` (the number of batches) and ``__getitem__(i)``
    returning batch i as ``x``, ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)``, and may
    implement ``on_epoch_begin`` / ``on_epoch_end`` (called around every pass). Any object
    with ``__len__`` and ``__getitem__`` works; this class only adds the loading options.

    Parameters
    ----------
    workers : int, default=1
        Batches prepared at once in the background (threads, or processes with
        use_multiprocessing).
    use_multiprocessing : bool, default=False
        Prepare batches in ``workers`` separate processes (the dataset must be picklable
        and its class importable; they are started with 'forkserver' where available,
        else 'spawn', never forked from this multi-threaded process).
    max_queue_size : int, default=10
        At most this many batches are prepared ahead of the training step.
    """

    def __init__(self, workers=1, use_multiprocessing=False, max_queue_size=10):
        self.workers = workers
        self.use_multiprocessing = use_multiprocessing
        self.max_queue_size = max_queue_size

    def __len__(self):
        raise NotImplementedError

    def __getitem__(self, index):
        raise NotImplementedError

    def on_epoch_begin(self):
        """Called before every pass over the batches."""

    def on_epoch_end(self):
        """Called after every pass over the batches."""


Sequence = PyDataset

_END = object()      # an iterable ran out
_EMPTY = object()    # this rank holds no batch of a global step (data-parallel training)


def _loading_options(x):
    """(workers, use_multiprocessing, max_queue_size) of a sequence, Keras's defaults otherwise."""
    workers = getattr(x, "workers", 1)
    processes = getattr(x, "use_multiprocessing", False)
    depth = getattr(x, "max_queue_size", 10)
    for name, v in (("workers", workers), ("max_queue_size", depth)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < (0 if name == "workers" else 1):
            raise ValueError(f"{type(x).__name__}.{name}: expected an int >= {0 if name == 'workers' else 1}, got {v!r}")
    return max(1, int(workers)), bool(processes), int(depth)


def _prefetch(executor, fetch, keys, depth):
    """fetch(k) for k in keys, in order, run by the executor at most `depth` keys ahead."""
    keys = iter(keys)
    pending = collections.deque(executor.submit(fetch, k) for k in itertools.islice(keys, depth))
    while pending:
        result = pending.popleft().result()
        for k in itertools.islice(keys, 1):
            pending.append(executor.submit(fetch, k))
        yield result


_worker_dataset = None


def _worker_init(dataset):
    global _worker_dataset
    _worker_dataset = dataset


def _worker_get(index):
    return _worker_dataset[index]


def _process_context():
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


class _SequenceSource:
    """A sequence of batches: one pass visits every index once (shuffled order when asked);
    with a shard, global step k is indices [k N, (k + 1) N) of the pass and rank r reads only
    the r-th (an empty share when the pass has fewer)."""

    def __init__(self, seq, shuffle, rng, shard):
        self.seq = seq
        self.n = len(seq)
        if self.n == 0:
            raise ValueError(f"{type(seq).__name__}: the sequence has no batches (len 0)")
        self.shuffle, self.rng = shuffle, rng
        self.rank, self.size = shard
        self.workers, processes, self.depth = _loading_options(seq)
        self._executor = None
        self._processes = processes

    @property
    def steps(self):
        return -(-self.n // self.size)

    def _get(self):
        if self._executor is None:
            if self._processes:
                self._executor = concurrent.futures.ProcessPoolExecutor(
                    self.workers, mp_context=_process_context(), initializer=_worker_init, initargs=(self.seq,))
            else:
                self._executor = concurrent.futures.ThreadPoolExecutor(self.workers, "nncore-data")
        return _worker_get if self._processes else self.seq.__getitem__

    def new_pass(self):
        order = self.rng.permutation(self.n) if self.shuffle else np.arange(self.n)
        mine = [int(order[k]) for k in range(self.rank, self.n, self.size)]
        get = self._get()
        batches = _prefetch(self._executor, get, mine, self.depth)
        for k in range(self.steps):
            if k < len(mine):
                yield mine[k], next(batches)
            else:
                yield None, _EMPTY

    def first(self):
        return self.seq[0]

    def on_epoch_begin(self):
        getattr(self.seq, "on_epoch_begin", _nothing)()

    def on_epoch_end(self):
        getattr(self.seq, "on_epoch_end", _nothing)()

    def close(self):
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None


def _nothing():
    pass


class _IterSource:
    """An iterable of batches: a pass is iter(x) (a generator: its rest); a background thread
    reads ahead. With a shard every rank reads each group of N batches and keeps the r-th."""

    def __init__(self, iterable, depth, shard):
        self.iterable = iterable
        self.depth = depth
        self.rank, self.size = shard
        self.steps = None
        self._executor = None
        self._peeked = []

    def _group(self, it):
        group = [next(it, _END) for _ in range(self.size)]
        if group[0] is _END:
            return _END
        item = group[self.rank]
        return _EMPTY if item is _END else item

    def new_pass(self):
        it = itertools.chain(self._peeked, iter(self.iterable))
        self._peeked = []
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(1, "nncore-data")
        position = 0
        for item in _prefetch(self._executor, lambda _: self._group(it), itertools.count(), self.depth):
            if item is _END:
                return
            yield (None if item is _EMPTY else position * self.size + self.rank), item
            position += 1

    def first(self):
        """The first batch (a one-shot iterator keeps it for the first pass): to build the model."""
        if iter(self.iterable) is self.iterable:
            if not self._peeked:
                self._peeked = [next(self.iterable, _END)]
            batch = self._peeked[0]
        else:
            batch = next(iter(self.iterable), _END)
        if batch is _END:
            self._peeked = []
            raise ValueError(f"{type(self.iterable).__name__}: the iterable yielded no batch")
        return batch

    def on_epoch_begin(self):
        pass

    on_epoch_end = on_epoch_begin

    def close(self):
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


def unpack_batch(batch, index):
    """(x, y, sample_weight) of a batch given as x, (x,), (x, y) or (x, y, sample_weight)."""
    if isinstance(batch, list):
        batch = tuple(batch)
    if not isinstance(batch, tuple):
        if isinstance(batch, dict) or batch is None:
            raise ValueError(f"batch {index}: expected x, (x,), (x, y) or (x, y, sample_weight), "
                             f"got {type(batch).__name__}")
        batch = (batch,)
    if not 1 <= len(batch) <= 3:
        raise ValueError(f"batch {index}: expected (x,), (x, y) or (x, y, sample_weight), got a tuple of "
                         f"{len(batch)} elements")
    return batch + (None,) * (3 - len(batch))


class Stream:
    """The batches of a sequence or an iterable, one epoch per iteration.

    Parameters
    ----------
    x : sequence of batches or iterable of batches
    prepare : callable(batch, index) -> tuple of arrays
        Checks and converts one raw batch (the model's; it names the batch index in errors).
    steps : int, optional
        Batches per epoch (``steps_per_epoch``): the pass then continues across epochs and
        restarts when it ends; without it an epoch is one pass.
    shuffle : bool, default=False
        Sequences only: a new order of the batches every pass.
    rng : numpy.random.Generator, optional
    shard : (rank, size), optional
        Data-parallel training: a global step is N consecutive batches, rank r trains on the
        r-th; ``rows`` is the global step's row count (one small allreduce per step).
    training : bool, default=True
        The batches of fit: an iterable with no batch left at the start of an epoch warns that
        training is interrupted (Keras); for evaluate / predict the caller reports it.

    Attributes
    ----------
    steps : int or None
        Steps per epoch, None when unknown (an iterable without steps_per_epoch).
    exhausted : bool
        The iterable had no batch left at the start of an epoch: training should stop.
    """

    def __init__(self, x, prepare, steps=None, shuffle=False, rng=None, shard=None, training=True):
        shard = (0, 1) if shard is None else tuple(shard)
        self.training = training
        if hasattr(x, "__getitem__") and hasattr(x, "__len__"):
            self.source = _SequenceSource(x, shuffle, rng, shard)
        else:
            self.source = _IterSource(x, _loading_options(x)[2], shard)
        self.prepare = prepare
        self.steps_per_epoch = steps
        self.steps = steps if steps is not None else self.source.steps
        self.shard = shard
        self.rows = 0
        self.index = None
        self.exhausted = False
        self._pass = None
        self._template = None

    def first(self):
        """The first raw batch, prepared (e.g. to build the model from it)."""
        batch = self.prepare(self.source.first(), 0)
        self._template = tuple(None if a is None else a[:0] for a in batch)
        return batch

    def _rows(self, n):
        if self.shard[1] == 1:
            return n
        from nncore import distributed
        return distributed.sum_over_ranks(n)

    def _next(self):
        """(index, raw batch) of the next global step, _END when every rank's pass is over."""
        item = next(self._pass, _END)
        index, raw = (None, _END) if item is _END else item
        n = 0 if raw is _END or raw is _EMPTY else -1    # -1: known after preparing
        return index, raw, n

    def __iter__(self):
        src = self.source
        src.on_epoch_begin()
        try:
            fresh = False
            if self._pass is None or self.steps_per_epoch is None:
                self._pass, fresh = src.new_pass(), True
            k = 0
            while self.steps_per_epoch is None or k < self.steps_per_epoch:
                index, raw, n = self._next()
                batch = None
                if n < 0:
                    batch = self.prepare(raw, index)
                    if self._template is None:
                        self._template = tuple(None if a is None else a[:0] for a in batch)
                    n = len(batch[0])
                rows = self._rows(n)
                if rows == 0:                    # every rank's pass has ended
                    self._pass = None
                    if k == 0 and not fresh:     # it ended exactly at the last epoch's end
                        self._pass, fresh = src.new_pass(), True
                        continue
                    if k == 0:
                        self.exhausted = True
                        if self.training:
                            _warn("Your input ran out of data; interrupting training. Make sure that your "
                                  "dataset or generator can generate at least `steps_per_epoch * epochs` batches.")
                    elif self.steps_per_epoch is not None:
                        _warn(f"Your input ran out of data after {k} of steps_per_epoch={self.steps_per_epoch} "
                              "batches; the epoch ends here. Make sure that your dataset or generator can "
                              "generate at least `steps_per_epoch * epochs` batches.")
                    break
                if batch is None:
                    batch = self._empty()
                self.rows, self.index = rows, index
                yield batch
                k += 1
        finally:
            src.on_epoch_end()

    def _empty(self):
        """This rank's (zero-row) share of a global step that other ranks hold data for."""
        if self._template is None:
            if isinstance(self.source, _IterSource):
                raise ValueError("nncore.distributed: this rank got no batch of the iterable while other "
                                 "ranks did; every rank must see the same batches")
            self.first()
        return self._template

    def release(self):
        """Stop the background workers (and drop the pass in progress)."""
        self.source.close()
        self._pass = None


def _warn(message):
    from nncore import distributed
    if distributed.rank() == 0:
        warnings.warn(message, stacklevel=3)


# ---------------------------------------------------------------- memmaps
def _root_memmap(a):
    """The numpy.memmap that owns the mapping a is a view of (a slice of a memmap is a memmap too)."""
    root = memmap_of(a)
    while isinstance(root.base, np.memmap):
        root = root.base
    return root


class _FileRows:
    """The rows of a C-contiguous array over a file-backed numpy.memmap, read from the file with
    ``pread`` into the caller's buffer (`read_rows`, one call per batch without the GIL): nothing is mapped, so however many rows are read the
    resident memory does not grow (the page cache keeps the file). Reading through the mapping
    instead would map every page it faults in plus its neighbours (the kernel's fault-around),
    the whole file after an epoch of random rows."""

    def __init__(self, a, shuffle):
        root = _root_memmap(a)
        # np.memmap's data start at file position `offset`; a view starts that many bytes later
        start = a.__array_interface__["data"][0] - root.__array_interface__["data"][0]
        self.pos = root.offset + start
        self.row = int(np.prod(a.shape[1:], dtype=np.int64)) * a.itemsize
        self.fd = os.open(root.filename, os.O_RDONLY)
        if shuffle and hasattr(os, "posix_fadvise"):
            os.posix_fadvise(self.fd, 0, 0, os.POSIX_FADV_RANDOM)   # no read-ahead for random rows

    @staticmethod
    def usable(a):
        """Whether the file holds a's values: a file-backed memmap on POSIX, not copy-on-write (mode 'c':
        its changes live in the mapping only; such a memmap is read through the mapping)."""
        if os.name != "posix" or memmap_of(a) is None:
            return False
        root = _root_memmap(a)
        return isinstance(getattr(root, "filename", None), (str, os.PathLike)) and getattr(root, "mode", "c") != "c"

    def read(self, dst, rows=None, first=0):
        """dst[k] = row rows[k] (rows None: row first + k) of the array: one nogil call per batch."""
        read_rows(self.fd, self.pos, rows, dst, first)

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class MemmapBatches(Batches):
    """`Batches` over arrays of which some are memmaps: each batch is produced by a background
    thread into a ring of buffers (allocated once per batch size): a memmap's rows are read from
    its file (`_FileRows`, so the resident memory stays bounded for any file size), converted to
    `dtype`, and the inputs (the first `inputs` arrays) are checked to be finite there.

    Parameters
    ----------
    arrays, batch_size, shuffle, rng, shard
        As for `Batches` (the arrays must be C-contiguous).
    dtype : numpy dtype
        The memmaps' batches are delivered in this dtype (the other arrays are already prepared).
    inputs : int, default=1
        The number of leading arrays that are model inputs.
    depth : int, default=2
        Batches produced ahead of the consumer.
    """

    def __init__(self, arrays, batch_size, dtype, inputs=1, shuffle=False, rng=None, shard=None, depth=2):
        super().__init__(arrays, batch_size, shuffle=shuffle, rng=rng, shard=shard)
        self.dtype = np.dtype(dtype)
        self.inputs = int(inputs)
        self.depth = int(depth)
        self._ring = {}
        self._files = [_FileRows(a, shuffle) if a is not None and _FileRows.usable(a) else None for a in arrays]

    def _slot(self, slot, size):
        """Buffers of ring slot `slot` for batches of `size` rows: per array (raw, delivered)."""
        key = (slot, size)
        bufs = self._ring.get(key)
        if bufs is None:
            bufs = []
            for a in self.arrays:
                if a is None:
                    bufs.append(None)
                    continue
                raw = np.empty((size,) + a.shape[1:], a.dtype)
                convert = a.dtype != self.dtype and memmap_of(a) is not None   # the others are prepared
                out = np.empty(raw.shape, self.dtype) if convert else raw
                bufs.append((raw, out))
            self._ring[key] = bufs
        return bufs

    def _produce(self, k, span):
        from nncore._kernels.elementwise import all_finite
        start, lo, hi, m = span
        bufs = self._slot(k % (self.depth + 1), hi - lo)
        part = self._idx[start + lo:start + hi]
        out = []
        for a, rows2d, file, buf in zip(self.arrays, self._rows, self._files, bufs):
            if a is None:
                out.append(None)
                continue
            raw, dst = buf
            if file is not None:
                file.read(raw, part if self.shuffle else None, start + lo)
            elif not self.shuffle:
                raw[...] = a[start + lo:start + hi]
            elif rows2d is not None:
                take_rows(rows2d, part, _rows2d(raw))
            else:
                a.take(part, 0, raw)
            if dst is not raw:
                np.copyto(dst, raw)
            out.append(dst)
        for x in out[:self.inputs]:
            if x is not None and x.size and not all_finite(x.reshape(-1), 1):
                raise ValueError(f"x: the inputs of batch {k} (rows of the memmap) contain NaN or infinity")
        return tuple(out), m

    def __iter__(self):
        if self.shuffle:
            self.rng.shuffle(self._idx)
        spans = list(self._spans())
        self._iterating += 1
        try:
            with concurrent.futures.ThreadPoolExecutor(1, "nncore-memmap") as ex:
                for batch, m in _prefetch(ex, lambda k: self._produce(k, spans[k]), range(len(spans)), self.depth):
                    self.rows = m
                    yield batch
        finally:
            self._iterating -= 1

    def release(self):
        """Close the files and drop the references to the arrays."""
        for f in self._files or ():
            if f is not None:
                f.close()
        self._files = None
        super().release()


def batches(arrays, batch_size, dtype, inputs=1, shuffle=False, rng=None, shard=None):
    """`MemmapBatches` when one of the first `inputs` arrays (the model's inputs) is a memmap, else `Batches`."""
    if any(is_memmap(a) for a in arrays[:inputs]):
        return MemmapBatches(arrays, batch_size, dtype, inputs, shuffle=shuffle, rng=rng, shard=shard)
    return Batches(arrays, batch_size, shuffle=shuffle, rng=rng, shard=shard)
