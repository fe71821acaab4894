"""Merge layers: Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate, Dot (Keras 3 semantics).

Each takes a list of inputs (call it on a list of tensors in a functional model, or on a list of
arrays). Forward and backward are NumPy ufuncs writing into buffers allocated once per set of input
shapes (`_keep`): one pass per operation, nothing allocated per step.

Elementwise layers broadcast as Keras does: inputs of lower rank get axes of size 1 inserted after the
batch axis, then dimensions must be equal or 1. The gradient of an input that was broadcast is the
output gradient summed over the broadcast axes.
"""
import numpy as np

from nncore.layers.base import Layer

__all__ = ["Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate", "Dot"]

EPSILON = 1e-7   # Keras backend.epsilon(): Dot(normalize=True) divides by max(||x||, EPSILON)


class _Merge(Layer):
    """Base of the merge layers: a list of at least `_min_inputs` inputs (exactly `_n_inputs` if set)."""
    _min_inputs = 1
    _n_inputs = None

    def __init__(self, name=None, input_shape=None, batch_input_shape=None):
        super().__init__(name=name, input_shape=input_shape, batch_input_shape=batch_input_shape)
        self._need_dx_of = None          # per input: does the model need its gradient (None: all)

    def _what(self):
        return f"layer {self.name!r} ({type(self).__name__})"

    def build(self, input_shape):
        if not isinstance(input_shape, list):
            raise ValueError(f"{self._what()}: expected a list of inputs, got one input of shape "
                             f"{tuple(input_shape)}")
        n = len(input_shape)
        if n < self._min_inputs or (self._n_inputs is not None and n != self._n_inputs):
            want = self._n_inputs if self._n_inputs is not None else f"at least {self._min_inputs}"
            raise ValueError(f"{self._what()}: expected {want} inputs, got {n}: {input_shape}")

    def _wants(self, i):
        return self._need_dx_of is None or self._need_dx_of[i]

    def _shapes_of(self, xs):
        if not isinstance(xs, (list, tuple)):
            raise ValueError(f"{self._what()}: expected a list of inputs, got {type(xs).__name__}")
        return tuple(x.shape for x in xs), xs[0].dtype


def _view_shapes(shapes, what):
    """Keras's elementwise broadcast: rank-equalising shapes (1s inserted after the batch axis) and the
    output shape; dimensions must be equal or 1 (None: unknown)."""
    rank = max(len(s) for s in shapes)
    views = [tuple(s[:1]) + (1,) * (rank - len(s)) + tuple(s[1:]) for s in shapes]
    out = []
    for dims in zip(*views):
        known = {d for d in dims if d is not None and d != 1}
        if len(known) > 1:
            raise ValueError(f"{what}: inputs of shapes {[tuple(s) for s in shapes]} cannot be broadcast "
                             "(dimensions must be equal or 1)")
        out.append(None if None in dims and not known else (known.pop() if known else 1))
    return views, tuple(out)


def _broadcast_axes(view, out):
    """The axes where an input's rank-equalised shape `view` has size 1 and the output does not."""
    return tuple(i for i, (a, b) in enumerate(zip(view, out)) if a == 1 and b != 1)


class _Elementwise(_Merge):
    """y = x_0 (op) x_1 (op) ... elementwise, with Keras's broadcasting."""

    def compute_output_shape(self, input_shape):
        return _view_shapes(input_shape, self._what())[1]

    def _buffers(self, shapes, dtype):
        views, out = _view_shapes(shapes, self._what())
        b = {"views": views, "y": np.empty(out, dtype), "as_is": views == [tuple(s) for s in shapes],
             "axes": [_broadcast_axes(v, out) for v in views], "shapes": shapes}
        # a broadcast input's gradient, summed over its broadcast axes
        b["dx"] = [np.empty(s, dtype) if axes else None for s, axes in zip(shapes, b["axes"])]
        b.update({
             "full": [np.empty(out, dtype) if self._full_grads else None for _ in shapes]})
        self._more_buffers(b, out, dtype, len(shapes))
        return self._keep((shapes, dtype), b)

    _full_grads = False

    def _more_buffers(self, b, out, dtype, n):
        pass

    def forward(self, xs, training=False):
        key = self._shapes_of(xs)
        b = self._bufs.get(key) or self._buffers(*key)
        # inputs of lower rank are viewed with axes of size 1 after the batch axis
        self._xs, self._cur = xs if b["as_is"] else [x.reshape(v) for x, v in zip(xs, b["views"])], b
        return self._merge(self._xs, b)

    def _reduced(self, i, g):
        """dx_i from the full-shape gradient g: summed over x_i's broadcast axes, in x_i's own shape."""
        b = self._cur
        if b["axes"][i]:
            dx = b["dx"][i]
            np.sum(g, axis=b["axes"][i], keepdims=True, out=dx.reshape(b["views"][i]))
            return dx
        shape = b["shapes"][i]
        return g if g.shape == shape else g.reshape(shape)


def _fold(op, xs, y):
    """y = x_0 op x_1 op ... (broadcast into y)."""
    if len(xs) == 1:
        np.copyto(y, xs[0])
    else:
        op(xs[0], xs[1], out=y)
    for x in xs[2:]:
        op(y, x, out=y)
    return y


class Add(_Elementwise):
    """y = x_0 + x_1 + ... ; dx_i = dy (summed over x_i's broadcast axes)."""

    def _merge(self, xs, b):
        return _fold(np.add, xs, b["y"])

    def backward(self, dy):
        return [self._reduced(i, dy) if self._wants(i) else None for i in range(len(self._xs))]


class Subtract(_Elementwise):
    """y = x_0 - x_1 ; dx_0 = dy, dx_1 = -dy (summed over broadcast axes)."""
    _n_inputs = 2
    _full_grads = True

    def _merge(self, xs, b):
        return np.subtract(xs[0], xs[1], out=b["y"])

    def backward(self, dy):
        dx1 = None
        if self._wants(1):
            dx1 = self._reduced(1, np.negative(dy, out=self._cur["full"][1]))
        return [self._reduced(0, dy) if self._wants(0) else None, dx1]


class Average(_Elementwise):
    """y = (x_0 + ... + x_{N-1}) / N ; dx_i = dy / N."""
    _full_grads = True

    def _merge(self, xs, b):
        y = _fold(np.add, xs, b["y"])
        y *= 1.0 / len(xs)
        return y

    def backward(self, dy):
        g = np.multiply(dy, 1.0 / len(self._xs), out=self._cur["full"][0])
        return [self._reduced(i, g) if self._wants(i) else None for i in range(len(self._xs))]


class Multiply(_Elementwise):
    """y = x_0 * x_1 * ... ; dx_i = dy * prod_{j != i} x_j."""
    _full_grads = True

    def _merge(self, xs, b):
        return _fold(np.multiply, xs, b["y"])

    def backward(self, dy):
        xs, out = self._xs, []
        for i in range(len(xs)):
            if not self._wants(i):
                out.append(None)
                continue
            others = [x for j, x in enumerate(xs) if j != i]
            if not others:                                     # one input: y = x
                out.append(self._reduced(i, dy))
                continue
            g = np.multiply(dy, others[0], out=self._cur["full"][i])
            for x in others[1:]:
                np.multiply(g, x, out=g)
            out.append(self._reduced(i, g))
        return out


class _Extremum(_Elementwise):
    """y_1 = m(x_0, x_1), y_k = m(y_{k-1}, x_k) with m = maximum or minimum. The gradient of each
    pairwise step goes to the larger (smaller) operand, half to each on a tie (PyTorch's rule, which
    Keras follows on its torch backend). The steps y_k are kept in output-shaped buffers (a broadcast
    value written in full), so each step's gradient is output-shaped until it is summed to an input."""
    _full_grads = True
    _op = None
    _sign = 1.0

    def _more_buffers(self, b, out, dtype, n):
        b["steps"] = [np.empty(out, dtype) for _ in range(n - 2)]   # y_1 .. y_{N-2}; y_{N-1} is y
        b["w"] = np.empty(out, dtype)
        b["g"] = np.empty(out, dtype)

    def _merge(self, xs, b):
        if len(xs) == 1:
            np.copyto(b["y"], xs[0])
            return b["y"]
        ys = b["steps"] + [b["y"]]
        prev = xs[0]
        for k, x in enumerate(xs[1:]):
            self._op(prev, x, out=ys[k])
            prev = ys[k]
        return b["y"]

    def backward(self, dy):
        xs, b = self._xs, self._cur
        out = [None] * len(xs)
        ys = b["steps"] + [b["y"]]
        w, g = b["w"], dy
        for k in range(len(xs) - 1, 0, -1):      # y_k = m(a, x_k), a = y_{k-1} (x_0 for k = 1)
            a = ys[k - 2] if k >= 2 else xs[0]
            # w = (sign(s (a - x_k)) + 1) / 2 in {0, 1/2, 1}: the share of the gradient going to a
            np.subtract(a, xs[k], out=w)
            np.sign(w, out=w)
            w *= 0.5 * self._sign
            w += 0.5
            if self._wants(k):
                gx = np.subtract(1.0, w, out=b["full"][k])     # dx_k = g (1 - w)
                gx *= g
                out[k] = self._reduced(k, gx)
            g = np.multiply(g, w, out=b["g"])                 # da = g w
        if self._wants(0):
            out[0] = self._reduced(0, g)
        return out


class Maximum(_Extremum):
    """y = elementwise maximum of the inputs (PyTorch's tie rule for the gradient: split in half)."""
    _op = staticmethod(np.maximum)
    _sign = 1.0


class Minimum(_Extremum):
    """y = elementwise minimum of the inputs (PyTorch's tie rule for the gradient: split in half)."""
    _op = staticmethod(np.minimum)
    _sign = -1.0


class Concatenate(_Merge):
    """Join the inputs along `axis` (not the batch axis); the other dimensions must match.

    Parameters
    ----------
    axis : int, default=-1
    """

    def __init__(self, axis=-1, name=None, input_shape=None, batch_input_shape=None):
        super().__init__(name=name, input_shape=input_shape, batch_input_shape=batch_input_shape)
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise TypeError(f"Concatenate: axis must be an int, got {axis!r}")
        self.axis = int(axis)

    def _axis(self, rank):
        axis = self.axis + rank if self.axis < 0 else self.axis
        if not 1 <= axis < rank:
            raise ValueError(f"{self._what()}: axis {self.axis} is not a feature axis of inputs of rank {rank} "
                             "(the batch axis 0 cannot be concatenated)")
        return axis

    def compute_output_shape(self, input_shape):
        ranks = {len(s) for s in input_shape}
        if len(ranks) != 1:
            raise ValueError(f"{self._what()}: inputs must have the same rank, got shapes {input_shape}")
        axis = self._axis(ranks.pop())
        rest = {tuple(s[:axis]) + tuple(s[axis + 1:]) for s in _batch_free(input_shape)}
        if len(rest) != 1:
            raise ValueError(f"{self._what()}: inputs must match except along axis {self.axis}, got shapes "
                             f"{input_shape}")
        out = list(input_shape[0])
        out[axis] = sum(s[axis] for s in input_shape)
        return tuple(out)

    def _buffers(self, shapes, dtype):
        out = self.compute_output_shape(list(shapes))
        axis = self._axis(len(out))
        y = np.empty((shapes[0][0],) + tuple(out[1:]), dtype)
        index, start = [], 0
        for s in shapes:
            index.append((slice(None),) * axis + (slice(start, start + s[axis]),))
            start += s[axis]
        return self._keep((shapes, dtype), {"y": y, "index": index, "parts": [y[i] for i in index],
                                            "dx": [np.empty(s, dtype) for s in shapes]})

    def forward(self, xs, training=False):
        # y[..., start_i:stop_i, ...] = x_i
        key = self._shapes_of(xs)
        b = self._bufs.get(key) or self._buffers(*key)
        self._cur = b
        parts = b["parts"]
        for i in range(len(xs)):
            np.copyto(parts[i], xs[i])
        return b["y"]

    def backward(self, dy):
        # dx_i = dy[..., start_i:stop_i, ...], copied to a contiguous buffer
        b, out = self._cur, []
        for i, (index, dx) in enumerate(zip(b["index"], b["dx"])):
            if self._wants(i):
                np.copyto(dx, dy[index])
                out.append(dx)
            else:
                out.append(None)
        return out

    def get_config(self):
        cfg = super().get_config()
        cfg["axis"] = self.axis
        return cfg


def _batch_free(shapes):
    return [(None,) + tuple(s[1:]) for s in shapes]


class Dot(_Merge):
    """Batchwise dot product of two inputs along the given axes (Keras's ``batch_dot``).

    Parameters
    ----------
    axes : int or (int, int)
        The axis of each input summed over (not the batch axis; negative counts from the end).
    normalize : bool, default=False
        L2-normalise each input along its axis first: the output is then the cosine similarity.

    Notes
    -----
    With x moved to (batch, M, k) (its axis last, the other axes flattened) and y to (batch, k, N):
    z = x y per sample, reshaped to x's other axes followed by y's (a lone axis becomes (batch, 1)).
    Backward: dx = dz y^T, dy = x^T dz. normalize: xh = x r with r = min(1 / ||x||, 1 / 1e-7);
    dx = r (dxh - xh sum(dxh xh)) where ||x|| > 1e-7, else r dxh.
    """
    _n_inputs = 2

    def __init__(self, axes, normalize=False, name=None, input_shape=None, batch_input_shape=None):
        super().__init__(name=name, input_shape=input_shape, batch_input_shape=batch_input_shape)
        if isinstance(axes, (list, tuple)):
            if len(axes) != 2 or not all(isinstance(a, (int, np.integer)) and not isinstance(a, bool)
                                         for a in axes):
                raise ValueError(f"Dot: axes must be an int or two ints, got {axes!r}")
            axes = [int(a) for a in axes]
        elif isinstance(axes, bool) or not isinstance(axes, (int, np.integer)):
            raise TypeError(f"Dot: axes must be an int or a list of two ints, got {axes!r}")
        else:
            axes = int(axes)
        self.axes = axes
        self.normalize = bool(normalize)

    def _axes(self, shapes):
        pair = self.axes if isinstance(self.axes, list) else [self.axes, self.axes]
        out = []
        for a, s in zip(pair, shapes):
            a = a + len(s) if a < 0 else a
            if not 1 <= a < len(s):
                raise ValueError(f"{self._what()}: axis {a} is not a feature axis of an input of shape "
                                 f"{tuple(s)} (the batch axis 0 cannot be summed over)")
            out.append(a)
        return out

    def compute_output_shape(self, input_shape):
        a0, a1 = self._axes(input_shape)
        s0, s1 = list(input_shape[0]), list(input_shape[1])
        if s0[a0] != s1[a1]:
            raise ValueError(f"{self._what()}: axis {a0} of the first input ({s0[a0]}) and axis {a1} of the "
                             f"second ({s1[a1]}) differ; shapes {input_shape[0]} and {input_shape[1]}")
        s0.pop(a0)
        s1.pop(a1)
        out = s0 + s1[1:]
        return tuple(out + [1] if len(out) == 1 else out)

    def _buffers(self, shapes, dtype):
        (a0, a1), (s0, s1) = self._axes(shapes), shapes
        n, k = s0[0], s0[a0]
        rest0 = tuple(d for i, d in enumerate(s0) if i not in (0, a0))
        rest1 = tuple(d for i, d in enumerate(s1) if i not in (0, a1))
        M, N = int(np.prod(rest0)), int(np.prod(rest1))
        b = {"axes": (a0, a1), "moved0": (n,) + rest0 + (k,), "moved1": (n, k) + rest1,
             "A": np.empty((n, M, k), dtype), "B": np.empty((n, k, N), dtype),
             "z": np.empty((n,) + tuple(self.compute_output_shape(list(shapes))[1:]), dtype),
             "dA": np.empty((n, M, k), dtype), "dB": np.empty((n, k, N), dtype),
             "dx": [np.empty(s0, dtype), np.empty(s1, dtype)]}
        if self.normalize:
            for i, (s, a) in enumerate(zip(shapes, (a0, a1))):
                small = tuple(1 if j == a else d for j, d in enumerate(s))
                b[f"xh{i}"] = np.empty(s, dtype)
                b[f"r{i}"] = np.empty(small, dtype)
                b[f"live{i}"] = np.empty(small, dtype)
                b[f"s{i}"] = np.empty(small, dtype)
                b[f"t{i}"] = np.empty(s, dtype)
        return self._keep((shapes, dtype), b)

    def _normalized(self, x, i, b):
        # xh = x r, r = min(1 / sqrt(sum x^2), 1 / eps) along the axis; live = (r < 1 / eps)
        a = b["axes"][i]
        xh, r, live = b[f"xh{i}"], b[f"r{i}"], b[f"live{i}"]
        np.multiply(x, x, out=xh)
        np.sum(xh, axis=a, keepdims=True, out=r)
        np.sqrt(r, out=r)
        with np.errstate(divide="ignore"):
            np.divide(1.0, r, out=r)
        np.minimum(r, 1.0 / EPSILON, out=r)
        np.less(r, 1.0 / EPSILON, out=live)
        return np.multiply(x, r, out=xh)

    def forward(self, xs, training=False):
        key = self._shapes_of(xs)
        b = self._bufs.get(key) or self._buffers(*key)
        self._cur = b
        x0, x1 = xs
        if self.normalize:
            x0, x1 = self._normalized(x0, 0, b), self._normalized(x1, 1, b)
        a0, a1 = b["axes"]
        A, B = b["A"], b["B"]
        np.copyto(A.reshape(b["moved0"]), np.moveaxis(x0, a0, -1))
        np.copyto(B.reshape(b["moved1"]), np.moveaxis(x1, a1, 1))
        z = b["z"]
        np.matmul(A, B, out=z.reshape(A.shape[0], A.shape[1], B.shape[2]))
        return z

    def backward(self, dz):
        b = self._cur
        A, B = b["A"], b["B"]
        dz3 = dz.reshape(A.shape[0], A.shape[1], B.shape[2])
        out = [None, None]
        for i, (dM, product, moved) in enumerate(((b["dA"], (dz3, B.transpose(0, 2, 1)), b["moved0"]),
                                                  (b["dB"], (A.transpose(0, 2, 1), dz3), b["moved1"]))):
            if not self._wants(i):
                continue
            np.matmul(*product, out=dM)                          # dA = dz B^T ; dB = A^T dz
            dx = b["dx"][i]
            dest = 1 if i else -1
            np.copyto(np.moveaxis(dx, b["axes"][i], dest), dM.reshape(moved))
            if self.normalize:
                # dx = r (dxh - xh s), s = sum(dxh xh) where the norm was above eps (else 0)
                a, xh, r, s, t = b["axes"][i], b[f"xh{i}"], b[f"r{i}"], b[f"s{i}"], b[f"t{i}"]
                np.multiply(dx, xh, out=t)
                np.sum(t, axis=a, keepdims=True, out=s)
                s *= b[f"live{i}"]
                np.multiply(xh, s, out=t)
                np.subtract(dx, t, out=dx)
                dx *= r
            out[i] = dx
        return out

    def get_config(self):
        cfg = super().get_config()
        cfg.update(axes=self.axes, normalize=self.normalize)
        return cfg
