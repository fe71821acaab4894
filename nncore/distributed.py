"""Data-parallel training over MPI (mpi4py), and prediction over Dask.

Launch the same script on N processes (``mpiexec -n N python train.py``); after
``nncore.distributed.init()`` the usual ``fit``/``evaluate``/``predict`` run data-parallel:

- ``fit(batch_size=b)`` on N ranks means a global batch of N b rows. Every rank passes the
  same full data; each epoch every rank uses rank 0's shuffled permutation (rank 0's
  generator state is broadcast before the shuffle), global batch k is rows [k N b, (k+1) N b)
  of it, and rank r trains on the r-th share of it (b rows; a short last batch of m rows is
  split as evenly as possible, rank r taking m // N rows, one more when r < m % N).
- Each rank's loss gradient is scaled by 1 / (rows of the global batch), so summing the
  ranks' gradients gives exactly the gradient of one process on the whole global batch,
  whatever each rank's share; the sum is ONE allreduce over the model's flat gradient
  buffer, in place, started in buckets as backward produces each layer's segment
  (non-blocking, so communication may overlap the rest of backward). Regularizer gradients
  and penalties are added after the sum, once. Every rank then takes the same optimizer step.
- Loss sums are allreduced with the gradient; metric states (sums over samples) once per
  epoch, or once per step when a callback listens to batch logs. Every rank's callbacks see
  the same logs; only rank 0 prints and writes files (progress bar, ``save``,
  ``ModelCheckpoint``, ``CSVLogger``). ``stop_training`` set on any rank stops all of them
  after the same batch or epoch.
- ``evaluate``, ``predict`` and the validation pass give each rank a contiguous share of the
  rows (batched by b) and combine the results (sums; predictions gathered to every rank).
- The start of ``fit`` checks that the ranks agree on the model (architecture, parameter
  count), the compile settings and the data (sizes, batch size, epochs), then broadcasts rank
  0's weights and optimizer state.
- Collective calls: fit, evaluate and predict must be called on every rank, in the same
  order. An exception in one rank inside them (or anywhere after ``init``, through
  ``sys.excepthook``) prints that rank's traceback and calls ``MPI_Abort``, so the job
  ends instead of waiting forever in a collective.

Without ``mpiexec`` (or before ``init``) the world has one rank and nothing here changes
what the model does. mpi4py is imported only when the process was started by an MPI
launcher. See docs/distributed.md.
"""
import functools
import hashlib
import json
import os
import sys
import traceback

import numpy as np

from nncore.data import share_of
from nncore.validation import check_int

__all__ = ["init", "rank", "size", "is_initialized", "barrier", "shutdown", "check_in_sync",
           "predict_dask"]

# environment variables an MPI launcher sets in the processes it starts
_LAUNCHER_VARS = ("PMI_SIZE", "PMI_RANK", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE",
                  "MPI_LOCALNRANKS")

_BUCKET_BYTES = 1 << 20   # gradient bytes per non-blocking allreduce (bench/distributed.py)

_initialized = False
_comm = None              # nncore's own communicator (a Dup of COMM_WORLD) when size > 1
_MPI = None
_rank, _size = 0, 1
_old_excepthook = None


# ---------------------------------------------------------------- the world
def _launched_by_mpi():
    return "mpi4py.MPI" in sys.modules or any(v in os.environ for v in _LAUNCHER_VARS)


def init():
    """Join the MPI job this process was started in (idempotent).

    Started by ``mpiexec`` (or with mpi4py already imported), this initializes MPI through
    mpi4py, takes a private duplicate of ``COMM_WORLD`` for nncore's collectives, installs
    an exception hook that aborts the whole job when one rank fails, and, unless the thread
    count was chosen (``OMP_NUM_THREADS`` or ``nncore.set_num_threads``), gives each rank
    its share of the node's CPUs (at least one thread). Otherwise it makes a world of one
    rank and imports nothing.

    Raises
    ------
    ImportError
        Started by an MPI launcher but mpi4py is not installed (``pip install "nncore[mpi]"``).
    """
    global _initialized, _comm, _MPI, _rank, _size, _old_excepthook
    if _initialized:
        return
    if not _launched_by_mpi():
        _initialized = True
        return
    try:
        from mpi4py import MPI
    except ImportError as exc:
        found = ", ".join(f"{v}={os.environ[v]}" for v in _LAUNCHER_VARS if v in os.environ)
        raise ImportError(f"nncore.distributed.init: this process was started by an MPI launcher ({found}) "
                          "but mpi4py is not installed; install the extra: pip install 'nncore[mpi]'") from exc
    _MPI = MPI
    world = MPI.COMM_WORLD
    _rank, _size = world.Get_rank(), world.Get_size()
    if _size > 1:
        _comm = world.Dup()
        _old_excepthook = sys.excepthook
        sys.excepthook = _abort_hook
        _share_threads()
    _initialized = True


def _share_threads():
    """Default thread count per rank: the node's CPUs (the union of the ranks' affinity
    masks) divided among the ranks on the node, never more than this rank may use."""
    from nncore import _threads
    if _threads._explicit or os.environ.get("OMP_NUM_THREADS", "").strip():
        return
    node = _comm.Split_type(_MPI.COMM_TYPE_SHARED)
    try:
        mine = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))
        union = set().union(*node.allgather(sorted(mine)))
        n = max(1, min(len(mine), len(union) // node.Get_size()))
    finally:
        node.Free()
    _threads._n_threads = n


def is_initialized():
    """Whether :func:`init` has run (in an MPI job or as a world of one)."""
    return _initialized


def rank():
    """This process's rank, 0 .. size() - 1 (0 outside an MPI job)."""
    return _rank


def size():
    """The number of ranks (1 outside an MPI job or before :func:`init`)."""
    return _size


def barrier():
    """Wait until every rank has called barrier (no-op for one rank)."""
    if _comm is not None:
        _comm.Barrier()


def shutdown():
    """Leave the job: free nncore's communicator and restore the exception hook; the world
    has one rank again. MPI itself is finalized by mpi4py when the process exits."""
    global _initialized, _comm, _rank, _size, _old_excepthook
    if _comm is not None:
        _comm.Barrier()
        _comm.Free()
        if sys.excepthook is _abort_hook:
            sys.excepthook = _old_excepthook
    _comm, _old_excepthook = None, None
    _rank, _size = 0, 1
    _initialized = False


def _is_root():
    return _rank == 0


# ---------------------------------------------------------------- faults
def _abort(exc_type, exc, tb, where):
    sys.stdout.flush()
    lines = traceback.format_exception(exc_type, exc, tb)
    sys.stderr.write(f"nncore.distributed: rank {_rank} of {_size} failed{where}; aborting the MPI job\n"
                     + "".join(lines))
    sys.stderr.flush()
    _comm.Abort(1)


def _abort_hook(exc_type, exc, tb):
    _abort(exc_type, exc, tb, "")


def collective(method):
    """Decorator of the model's fit / evaluate / predict: in an MPI job an exception on this
    rank prints its traceback and aborts the whole job (the other ranks would otherwise wait
    forever in the next collective). One process: a plain call."""

    @functools.wraps(method)
    def guarded(self, *args, **kwargs):
        if _comm is None:
            return method(self, *args, **kwargs)
        try:
            return method(self, *args, **kwargs)
        except BaseException as exc:   # noqa: B902 - KeyboardInterrupt too: never leave the job hanging
            _abort(type(exc), exc, exc.__traceback__, f" in {getattr(self, 'name', '')}.{method.__name__}")

    return guarded


# ---------------------------------------------------------------- shares of the data
def share(n):
    """This rank's contiguous share [lo, hi) of n rows (evaluate, predict, validation)."""
    return share_of(n, _rank, _size)


def shard():
    """(rank, size) for training batches, or None for one process."""
    return None if _comm is None else (_rank, _size)


def gather_rows(local, n):
    """Every rank's share of rows (from :func:`share`), concatenated in rank order, on every rank."""
    if _comm is None:
        return local
    counts = [share_of(n, r, _size) for r in range(_size)]
    row = int(np.prod(local.shape[1:], dtype=np.int64))
    out = np.empty((n,) + local.shape[1:], local.dtype)
    sizes = [(hi - lo) * row for lo, hi in counts]
    offsets = [lo * row for lo, _ in counts]
    _comm.Allgatherv(np.ascontiguousarray(local), [out, (sizes, offsets)])
    return out


# ---------------------------------------------------------------- metrics and sums across ranks
def _state_names(metric):
    names = getattr(metric, "sum_state", None)
    if names is None:
        raise TypeError(f"metric {metric.name!r} ({type(metric).__name__}) cannot be combined across MPI ranks: "
                        "name its state attributes (sums over samples) in a class attribute `sum_state`, "
                        "as nncore.metrics.Mean does")
    return names


def _pack(metrics, scalars=()):
    parts = [np.ravel(np.asarray(getattr(m, a), dtype=np.float64)) for m in metrics for a in _state_names(m)]
    parts.append(np.asarray(scalars, dtype=np.float64))
    return np.concatenate(parts)


def _unpack(metrics, vec):
    """Set the metrics' states from vec (the layout of _pack); returns the trailing scalars."""
    pos = 0
    for m in metrics:
        for a in _state_names(m):
            old = getattr(m, a)
            k = int(np.size(old))
            part = vec[pos:pos + k]
            if isinstance(old, np.ndarray):
                new = part.reshape(old.shape).astype(old.dtype)
            elif isinstance(old, list):
                new = [type(v)(p) for v, p in zip(old, part)]
            else:
                new = type(old)(part[0])
            setattr(m, a, new)
            pos += k
    return [float(v) for v in vec[pos:]]


class Tally:
    """Running sums of a pass (metric states, and scalars such as a loss total) made global.

    After each :meth:`sync` every rank holds the global values; the next sync adds every
    rank's changes since then (one allreduce of the differences). The metrics' own objects
    are updated, so ``metric.result()`` is the global result.
    """

    def __init__(self, metrics):
        self.metrics = list(metrics)
        self.base = None

    def mark(self, *scalars):
        """Start from the current (already global) values, e.g. just after reset_state."""
        self.base = _pack(self.metrics, scalars)

    def sync(self, *scalars):
        now = _pack(self.metrics, scalars)
        delta = now - self.base
        _comm.Allreduce(_MPI.IN_PLACE, delta, op=_MPI.SUM)
        self.base += delta
        return _unpack(self.metrics, self.base)


def reduce_pass(metrics, *scalars):
    """Sum a finished pass over the ranks: the metrics' states become the global ones; returns
    the scalars' global sums (one process: the scalars unchanged)."""
    if _comm is None:
        return list(scalars)
    sums = _pack(metrics, scalars)
    _comm.Allreduce(_MPI.IN_PLACE, sums, op=_MPI.SUM)
    return _unpack(metrics, sums)


def sum_over_ranks(n):
    """The sum of an int over the ranks (one process: n)."""
    if _comm is None:
        return n
    return int(_comm.allreduce(int(n), op=_MPI.SUM))


def gather_items(pairs):
    """Every rank's list of (index, array) pairs, merged and sorted by index, on every rank."""
    if _comm is None:
        return sorted(pairs, key=lambda p: p[0])
    every = _comm.allgather(pairs)
    return sorted((p for part in every for p in part), key=lambda p: p[0])


def any_rank(flag):
    """True on every rank when flag is true on any rank (one process: flag)."""
    if _comm is None:
        return bool(flag)
    return bool(_comm.allreduce(int(bool(flag)), op=_MPI.MAX))


# ---------------------------------------------------------------- the training step
class FitSync:
    """What one fit over N ranks shares: agreement at the start, rank 0's weights, optimizer
    state and shuffling generator, the gradient allreduce per step, metric sums, stop flags.

    The model calls: :meth:`agree` and :meth:`broadcast` once, :meth:`attach` to its plan,
    :meth:`epoch_begin` and :meth:`epoch_end` each epoch, :meth:`reduce` after each backward (or :meth:`skip` when
    its share of a global batch is empty), :meth:`detach` at the end.
    """

    def __init__(self, model, metrics, per_step_metrics):
        self.model = model
        self.tally = Tally(metrics)
        self.per_step_metrics = per_step_metrics
        self._scal = np.zeros(1 + len(model.outputs))    # the loss sum, then each output's
        self._reqs = []
        self._starts = []
        self._plan = None
        self.grads = model._train_grads   # the trained range: frozen and non-trainable weights get no gradient
        self._top = self.grads.size
        layout = model._layout
        self._trained, self._regions = layout.trained, layout.grad_region
        # the non-trainable weights (BatchNormalization's moving statistics) follow the trained and frozen ones
        self._state = model._params[max((stop for _, stop in self._regions.values()), default=0):]
        self._bucket = max(1, _BUCKET_BYTES // max(self.grads.itemsize, 1))

    # -- agreement and state at the start
    def agree(self, **fields):
        """Every rank must pass the same fields; otherwise a ValueError on every rank naming
        the field and each rank's value."""
        mine = {k: v if isinstance(v, str) else json.dumps(v, sort_keys=True, default=str) for k, v in fields.items()}
        every = _comm.allgather(mine)
        for key in fields:
            values = [e[key] for e in every]
            if len(set(values)) > 1:
                shown = "; ".join(f"rank {r}: {v}" for r, v in enumerate(values))
                raise ValueError(f"nncore.distributed: the ranks disagree on {key} ({shown}); every rank must "
                                 "build the same model and pass the same data and arguments to fit")

    def broadcast(self):
        """Rank 0's weights and optimizer state to every rank (they may have built with different seeds)."""
        model = self.model
        weights = _comm.bcast(model.get_weights() if _is_root() else None, root=0)
        if not _is_root():
            model.set_weights(weights)
        opt = getattr(model, "optimizer", None)
        if opt is not None and model._params.size:
            state = _comm.bcast(opt.get_state() if _is_root() else None, root=0)
            if not _is_root():
                opt.set_state(state)

    def epoch_begin(self, rng):
        """Rank 0's shuffling generator state to every rank, and the metric sums' start."""
        state = _comm.bcast(rng.bit_generator.state if _is_root() else None, root=0)
        rng.bit_generator.state = state
        self.tally.mark()

    # -- the gradient allreduce, in buckets as backward produces the segments
    def attach(self, plan):
        """Wrap the plan's backward calls: after a layer's backward, the gradient from that layer's
        first element to the end of the flat buffer is final (the parameters are laid out in the
        order of the nodes, backward runs them in reverse), and a bucket of it can be reduced.
        A model with shared layers (whose gradients are completed after the pass) or an order
        that does not hold is reduced in one piece after backward."""
        self._starts = []
        if plan.shared:
            return
        plan.hook_backward(self._wrap)
        self._plan = plan
        if any(a <= b for a, b in zip(self._starts, self._starts[1:])):
            self.detach()

    def detach(self):
        """The plan's plain backward calls again."""
        if self._plan is not None:
            self._plan.hook_backward(None)
            self._plan = None
        self._starts = []

    def _wrap(self, b, layer):
        region = self._regions.get(id(layer))
        if id(layer) not in self._trained or region is None or region[0] == region[1]:
            return b
        start = region[0]
        self._starts.append(start)
        ready = self._ready

        def backward_then_reduce(dy):
            dx = b(dy)
            ready(start)
            return dx

        return backward_then_reduce

    def _ready(self, start):
        """grads[start:] are final: start their allreduce once a bucket's worth is waiting."""
        if self._top - start >= self._bucket:
            self._reqs.append(_comm.Iallreduce(_MPI.IN_PLACE, self.grads[start:self._top], op=_MPI.SUM))
            self._top = start
        elif self._reqs:
            _MPI.Request.Testall(self._reqs)     # lets MPI progress the buckets already started

    def reduce(self, loss_sum, head_sums):
        """After backward: the rest of the gradient, this rank's loss sum and per-output loss sums
        (`head_sums`, a list, set to the global sums in place); waits for every bucket. Returns the
        global loss sum; the gradient buffer holds the global sum."""
        scal = self._scal
        if self._top:
            self._reqs.append(_comm.Iallreduce(_MPI.IN_PLACE, self.grads[:self._top], op=_MPI.SUM))
        scal[0] = loss_sum
        scal[1:] = head_sums
        self._reqs.append(_comm.Iallreduce(_MPI.IN_PLACE, scal, op=_MPI.SUM))
        _MPI.Request.Waitall(self._reqs)
        self._reqs.clear()
        self._top = self.grads.size
        for k in range(len(head_sums)):
            head_sums[k] = float(scal[1 + k])
        return float(scal[0])

    def skip(self, head_sums):
        """A step in which this rank holds no rows: a zero gradient joins the same collectives
        in the same order as the other ranks' backward. Returns the global loss sum."""
        self.grads.fill(0)
        for start in self._starts:
            self._ready(start)
        for k in range(len(head_sums)):
            head_sums[k] = 0.0
        return self.reduce(0.0, head_sums)

    def batch_metrics(self):
        """Per step, when batch logs are wanted: the metric sums so far, over the ranks."""
        if self.per_step_metrics:
            self.tally.sync()

    def epoch_end(self):
        """At the end of an epoch: the metric sums over the ranks (unless synced every step), and the
        non-trainable weights (moving statistics, which each rank updates from its share of the batch)
        averaged over the ranks, so that validation, callbacks and saves see the same model everywhere."""
        if not self.per_step_metrics:
            self.tally.sync()
        if self._state.size:
            _comm.Allreduce(_MPI.IN_PLACE, self._state, op=_MPI.SUM)
            self._state /= _comm.Get_size()


def fit_sync(model, batch_listeners):
    """The FitSync of a fit over several ranks, or None for one process. The per-step metric
    sums happen when any rank has a callback listening to batch logs."""
    if _comm is None:
        return None
    return FitSync(model, model.compiled_metrics, any_rank(batch_listeners))


def model_signature(model):
    """What every rank's model must share, as text: the parameter count, the layers with their
    weight shapes, the dtype (e.g. "66 parameters: Dense(5x7, 7), Dense(7x3, 3), float64")."""
    layers = [f"{type(layer).__name__}({', '.join('x'.join(map(str, w.shape)) for w in layer.weights)})"
              for layer in model.layers]
    return f"{model.count_params()} parameters: {', '.join(layers)}, {model._dtype}"


# ---------------------------------------------------------------- debugging
def check_in_sync(model):
    """Check that every rank holds the same weights (a SHA-256 of the parameters, compared
    across ranks). Returns True; raises RuntimeError naming the ranks that differ from rank 0.
    A collective: call it on every rank."""
    digest = hashlib.sha256()
    for w in model.get_weights():
        digest.update(np.ascontiguousarray(w).tobytes())
    mine = digest.hexdigest()
    if _comm is None:
        return True
    every = _comm.allgather(mine)
    differ = [r for r, d in enumerate(every) if d != every[0]]
    if differ:
        raise RuntimeError(f"nncore.distributed.check_in_sync: the weights of rank(s) {differ} differ from "
                           f"rank 0's (model {model.name!r})")
    return True


# ---------------------------------------------------------------- Dask
_dask_models = {}   # in a worker process: SHA-256 of the model bytes -> model (one copy per worker)


def _model_from_bytes(blob):
    key = hashlib.sha256(blob).hexdigest()
    model = _dask_models.get(key)
    if model is None:
        from nncore import saving
        if len(_dask_models) >= 4:
            _dask_models.clear()
        model = _dask_models[key] = saving.model_from_bytes(blob, compile=False)
    return model


def _predict_block(block, blob, batch_size, input_tail):
    """predict on one row chunk, flattened to 2-D on both sides (the graph is always 2-D)."""
    model = _model_from_bytes(blob)
    if len(block) == 0:  # an empty chunk (a filtered dask array has them): no rows out, not predict's error
        return np.empty((0, int(np.prod(model.output_shape[1:], dtype=np.int64))), model._dtype)
    out = model.predict(block.reshape((len(block),) + input_tail), batch_size=batch_size, verbose=0)
    return out.reshape(len(out), -1)


def predict_dask(model, x, batch_size=None):
    """Predict over a dask array's row chunks, lazily; returns a dask array.

    The model travels to the workers in nncore's own file format (architecture and weights,
    `nncore.saving.model_to_bytes`; no pickle of its internals), as ONE bytes object in the
    graph that each worker fetches once; each worker process rebuilds the model once (cached
    by the bytes' SHA-256) and reuses it for every chunk it computes.

    Parameters
    ----------
    model : built nncore model
    x : dask.array.Array of shape (n_samples,) + the model's input shape
        Chunked along the rows (the other axes are rechunked to one chunk each).
    batch_size : int, optional
        The batch size of each chunk's ``predict`` (default 32).

    Returns
    -------
    dask.array.Array of shape (n_samples,) + the model's output shape, in the model's dtype,
    with the row chunks of x.
    """
    import dask
    import dask.array as da
    from nncore import saving

    if not isinstance(x, da.Array):
        raise TypeError(f"predict_dask: expected a dask.array.Array, got {type(x).__name__}")
    if not getattr(model, "built", False):
        raise ValueError(f"predict_dask: the model {getattr(model, 'name', '')!r} is not built; "
                         "build it (or fit it) first")
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ValueError(f"predict_dask: model {model.name!r} has {len(model.inputs)} inputs and "
                         f"{len(model.outputs)} outputs; only models with one input and one output are supported")
    if batch_size is not None:  # checked here, not first inside a worker at compute time
        check_int(batch_size, "predict_dask: batch_size", minimum=1)
    tail_in = tuple(model.input_shape[1:])
    if tuple(x.shape[1:]) != tail_in:
        raise ValueError(f"predict_dask: model {model.name!r} expects inputs of shape (n_samples, "
                         f"{', '.join(map(str, tail_in))}), got a dask array of shape {x.shape}")
    tail_out = tuple(model.output_shape[1:])
    width = int(np.prod(tail_out, dtype=np.int64))
    flat = x.rechunk({i: -1 for i in range(1, x.ndim)}).reshape(x.shape[0], -1) if x.ndim != 2 else \
        x.rechunk({1: -1})
    blob = dask.delayed(saving.model_to_bytes(model, include_optimizer=False), pure=True)
    out = flat.map_blocks(_predict_block, blob, batch_size, tail_in, dtype=model._dtype,
                          chunks=(flat.chunks[0], (width,)), meta=np.empty((0, 0), model._dtype))
    return out.reshape((x.shape[0],) + tail_out) if tail_out != (width,) else out
