"""Where a model's weights live: one flat parameter buffer, one gradient buffer, and the range the
optimizer steps.

Every weight of every layer is a view into ``params`` (its gradient a view into ``grads``, of the
same size). The buffer is laid out in three parts::

    [ trainable weights of trainable layers | weights of frozen layers | non-trainable weights ]
      ^-- the optimizer's range: params[:n], grads[:n], one kernel call per step

so an optimizer step stays ONE fused kernel call whatever is frozen, its slots cover only what it
updates, and `fit`'s finiteness check still sees every weight (a moving variance included) in one
pass. Within each part the weights follow the layers in order, and each layer's weights follow
their declaration order. A layer's `trainable` flag is read when the layout is made; a model
makes a new layout when it is built and when it is compiled after a flag changed (Keras applies
a change of `trainable` at the next `compile()` too).

`lay_out(layers, dtype, rng, uses)` keeps the values of weights that are already bound to a buffer
(a layer of a built model, or one that ran on its own) and initializes the others from `rng`, in
layer order and declaration order, so a seed gives the same weights as before. A layer used at
several nodes of a graph (``uses[id(layer)] > 1``) is stored once; when it is trained, each further
node gets a shadow gradient region after the flat gradient buffer (``grads_all = [grads | shadows]``)
that is added into the layer's own region after backward, so the optimizer still sees one gradient
buffer.
"""
import errno
import math
import mmap
import os
import threading
import weakref

import numpy as np

__all__ = ["Layout", "lay_out", "rebind", "trainable_state", "count_lines"]


def trainable_state(layers):
    """The layers' `trainable` flags, as one tuple (what a layout was made for)."""
    return tuple(bool(layer.trainable) for layer in layers)


class Layout:
    """The flat buffers of a list of layers and what the optimizer and the model need from them.

    Attributes
    ----------
    params, grads : ndarray of shape (n_total,)
        Every weight (views into params) and its gradient (views into grads).
    grads_all : ndarray
        `grads` followed by the shadow gradient regions of shared trained layers (`grads` is its
        head; the buffer itself when there are none).
    train_params, train_grads : ndarray of shape (n_train,)
        The optimizer's range, ``params[:n_train]`` and ``grads[:n_train]``; the buffers
        themselves when every weight is trained (the usual case).
    segments : list of (start, stop)
        One per trained weight, tiling ``[0, n_train)`` in order (for ``build_flat``).
    regs : list of (weight, gradient, regularizer)
        The regularized trained weights (a frozen layer's regularizer adds nothing, as in Keras).
    trained : set of int
        id(layer) of the layers with a trained weight (the graph's gradients start there).
    state : tuple of bool
        The layers' `trainable` flags this layout was made for.
    views : dict
        id(layer) -> ({attr: weight view}, {attr: gradient view}): `rebind(layer)` binds a layer to
        this layout again (a layer shared by several models follows the one that runs).
    grad_region : dict
        id(layer) -> (start, stop): where the gradients of the layer's trainable-declared weights lie,
        one contiguous range (in the trained part, or in the frozen part for a frozen layer), so that
        the gradient of a second use of a shared layer can be added in one step.
    shadows : dict
        (id(layer), k) -> (flat view, {attr: gradient view}) for the k-th further node (k >= 1) of a
        shared trained layer: a region of `grads_all` after `grads`, shaped like its `grad_region`.
    """

    def __init__(self, layers, dtype, uses=None):
        self.state = trainable_state(layers)
        trained, frozen, fixed = [], [], []      # (layer, attr, shape, regularizer)
        for layer, on in zip(layers, self.state):
            for attr, shape, _, reg in layer._specs:
                if attr in layer._non_trainable:
                    fixed.append((layer, attr, shape, reg))
                else:
                    (trained if on else frozen).append((layer, attr, shape, reg))
        parts = (trained, frozen, fixed)
        total = sum(math.prod(shape) for part in parts for _, _, shape, _ in part)
        self.trained = {id(layer) for layer, *_ in trained}
        copies = {id(layer): (uses or {}).get(id(layer), 1) - 1 for layer in layers if id(layer) in self.trained}
        extra = sum(copies[id(layer)] * math.prod(shape) for layer, _, shape, _ in trained)
        self.params = weight_buffer(total, dtype)
        self.grads_all = np.zeros(total + extra, dtype)
        self.grads = self.grads_all[:total] if extra else self.grads_all
        self.views = {id(layer): ({}, {}) for layer in layers}   # id -> (params_of, grads_of)
        self.segments, self.regs, self.grad_region = [], [], {}
        offset = 0
        for k, part in enumerate(parts):
            for layer, attr, shape, reg in part:
                stop = offset + math.prod(shape)
                if k < 2:
                    start = self.grad_region.get(id(layer), (offset,))[0]
                    self.grad_region[id(layer)] = (start, stop)
                w = self.params[offset:stop].reshape(shape)
                g = self.grads[offset:stop].reshape(shape)
                self.views[id(layer)][0][attr], self.views[id(layer)][1][attr] = w, g
                if k == 0:
                    self.segments.append((offset, stop))
                    if reg is not None:
                        self.regs.append((w, g, reg))
                offset = stop
        n = self.segments[-1][1] if self.segments else 0
        self.n_train = n
        whole = n == total
        self.train_params = self.params if whole else self.params[:n]
        self.train_grads = self.grads if whole else self.grads[:n]
        # shadows: per further node of a shared trained layer, a copy of its gradient region's shape
        self.shadows = {}
        for layer in layers:
            if not copies.get(id(layer)):
                continue
            for k in range(1, copies[id(layer)] + 1):
                views, start = {}, offset
                for attr, shape, _, _ in layer._specs:       # the region's order: declaration order
                    if attr not in layer._non_trainable:
                        offset += math.prod(shape)
                        views[attr] = self.grads_all[offset - math.prod(shape):offset].reshape(shape)
                self.shadows[(id(layer), k)] = (self.grads_all[start:offset], views)

    def bind_node(self, impl, layer, k):
        """Bind `impl` (the executor of the k-th node of the trained `layer` that runs backward) to the
        layer's weights and to gradient region k: the layer's own for k = 0, else its k-th shadow
        (through `_bind`, so the views a layer derives from its gradients follow). Returns the
        shadow's flat view, or None for k = 0."""
        params_of, grads_of = self.views[id(layer)]
        flat, views = self.shadows.get((id(layer), k), (None, grads_of))
        impl._bind(params_of, views)
        return flat


HUGE_PAGE = 2 << 20      # a transparent huge page of x86-64 Linux
_ALIGN = 64              # each buffer starts a cache line


class _HugePageArena:
    """Where the flat weight buffers live: carved one after another (64-byte aligned) from chunks of memory
    that start at a 2 MiB boundary and that the kernel is asked to back with transparent huge pages
    (madvise MADV_HUGEPAGE), so that small models share huge pages (fifty 600 KB models take 17 of them,
    not 50). A chunk is one anonymous mapping: 2 MiB, whose tail the next buffers take, or a buffer larger
    than that rounded up to whole huge pages, which is that buffer's alone (a small buffer in its tail would
    keep the whole mapping alive). The arena keeps only a weak reference to the chunk it carves from; every
    buffer holds its chunk, which is unmapped when its last buffer is gone. Space is never reused inside a
    chunk (a buffer is zeroed memory, never written before). A forked child starts with a fresh arena."""

    def __init__(self):
        self._lock = threading.Lock()
        self._chunk, self._next, self._end = None, 0, 0      # weakref to the mmap, free byte range in it

    def take(self, n, dtype):
        """A zeroed array of n (> 0) values of dtype, 64-byte aligned, inside a huge-page chunk; it is its
        views' base (the flat buffer: `recurrent._stacked` finds a layer's weights as adjacent views of it)."""
        nbytes = n * dtype.itemsize
        with self._lock:
            region = self._chunk() if self._chunk is not None else None
            start = -(-self._next // _ALIGN) * _ALIGN
            if region is None or start + nbytes > self._end:     # a new chunk
                span = -(-nbytes // HUGE_PAGE) * HUGE_PAGE
                try:
                    fresh = mmap.mmap(-1, span + HUGE_PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)   # zeroed
                except OSError as exc:      # ENOMEM: a MemoryError that says how much, as np.zeros would
                    if exc.errno != errno.ENOMEM:
                        raise
                    raise MemoryError(f"cannot allocate the model's weights: {n} values of {dtype} "
                                      f"({nbytes / 2 ** 30:.1f} GiB)") from None
                base = -np.frombuffer(fresh, np.uint8, 1).ctypes.data % HUGE_PAGE
                fresh.madvise(mmap.MADV_HUGEPAGE, base, span)                               # before any touch
                # its tail: the next buffers', from a 2 MiB chunk only (a small buffer carved from the tail
                # of a larger one would keep all of that mapping alive after the large one is gone)
                if span == HUGE_PAGE and (region is None or span - nbytes > self._end - start):
                    self._chunk, self._next, self._end = weakref.ref(fresh), base + nbytes, base + span
                return np.frombuffer(fresh, dtype, n, base)
            self._next = start + nbytes
            return np.frombuffer(region, dtype, n, start)


_ARENA = _HugePageArena()
if hasattr(os, "register_at_fork"):   # a fork while another thread held the lock: the child starts afresh
    os.register_at_fork(after_in_child=_ARENA.__init__)


def weight_buffer(n, dtype):
    """np.zeros(n, dtype) for the flat weights, from the huge-page arena (`_HugePageArena`).

    Every forward streams the whole buffer (one sample through the medium MLP reads its 939 KB from L2
    each call). On 4 KiB pages the buffer's physical pages fall on the L2's sets unevenly (some sets get
    more lines than ways: misses each call) and take a TLB entry each; a huge page is physically
    contiguous and one entry; small buffers share them. Where the platform has no MADV_HUGEPAGE (not
    Linux) it is np.zeros; where the kernel's THP setting is "never", ordinary zeroed memory."""
    dtype = np.dtype(dtype)
    if not n or not hasattr(mmap, "MADV_HUGEPAGE"):
        return np.zeros(n, dtype)
    return _ARENA.take(n, dtype)


def rebind(layout, layer):
    """Bind `layer` to the views `layout` made for it again, copying the values the layer holds now
    into them (a layer shared by several models follows the one that runs)."""
    values = _current_values(layer)
    layer._bind(*layout.views[id(layer)])
    for attr, v in values.items():
        getattr(layer, attr)[...] = v


def _current_values(layer):
    """{attr: the layer's bound view} for the weights it already holds with the declared shape."""
    out = {}
    for attr, shape, _, _ in layer._specs:
        v = getattr(layer, attr, None)
        if isinstance(v, np.ndarray) and v.shape == shape:
            out[attr] = v
    return out


def lay_out(layers, dtype, rng, uses=None):
    """Lay the weights of `layers` (built) out in new flat buffers and bind every layer to them.

    Weights a layer already holds keep their values (cast to `dtype`); the others are initialized
    from `rng`. `uses` (id(layer) -> number of nodes) gives shared layers their shadow gradient
    regions. Returns the `Layout`.
    """
    old = [_current_values(layer) for layer in layers]
    for layer in layers:
        layer._check_policy(dtype)
    layout = Layout(layers, np.dtype(dtype), uses)
    for layer, values in zip(layers, old):
        params_of, grads_of = layout.views[id(layer)]
        layer._allocate_held(dtype)        # the int8 kernels a layer holds itself (quantize), kept if set
        layer._bind(params_of, grads_of)
        if len(values) == len(layer._specs):
            for attr, v in values.items():
                params_of[attr][...] = v
        elif layer._specs:
            layer._initialize(rng)
    return layout


def _memory(nbytes):
    """Keras's readable size: 1024-based units, two decimals."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if nbytes < 1024:
            break
        nbytes /= 1024
    return f"{nbytes:.2f} {unit}"


def optimizer_param_count(optimizer, n_train):
    """The number of values Keras 3 counts as "Optimizer params" once the optimizer is built:
    iterations, the learning rate (unless a schedule), extra scalars (Nadam's u_product) and
    one of each slot per trained weight. None before the first step (Keras builds it in fit)."""
    if optimizer is None or not optimizer.iterations:
        return None
    lr = 0 if callable(optimizer.learning_rate) else 1
    return 1 + lr + len(optimizer._extra_state()) + n_train * len(optimizer._slot_names())


def count_lines(layers, dtype, optimizer=None):
    """The parameter counts closing a summary, as Keras 3 prints them: Total (including the
    optimizer's), Trainable, Non-trainable and, once the optimizer ran, Optimizer params."""
    size = np.dtype(dtype).itemsize
    trained = sum(w.size for layer in layers for w in layer.trainable_weights)
    fixed = sum(w.size for layer in layers for w in layer.non_trainable_weights)
    opt = optimizer_param_count(optimizer, trained)
    total = trained + fixed + (opt or 0)
    lines = [f"Total params: {total:,} ({_memory(total * size)})",
             f"Trainable params: {trained:,} ({_memory(trained * size)})",
             f"Non-trainable params: {fixed:,} ({_memory(fixed * size)})"]
    if opt is not None:
        lines.append(f"Optimizer params: {opt:,} ({_memory(opt * size)})")
    return lines
