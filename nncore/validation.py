"""Input validation shared by fit/evaluate/predict, ops, layers and optimizers.

Every user-facing entry point converts its arrays ONCE with `as_float_array`
(lists, ints, float64, non-contiguous, Fortran-ordered, read-only and
memory-mapped inputs all become one C-contiguous array of the working dtype)
and raises errors that name the argument (and the layer, when there is one),
the expected and the actual value. Kernels then receive exactly what they
check for in `_kernels/_check.pxi`.

Errors: a wrong *type* (object/string arrays, a str where a number belongs) is
a TypeError; a wrong *value* (shape, NaN, range, unknown name) is a ValueError.

Helpers
-------
as_float_array(x, name, dtype=None, ndim=None, min_ndim=None, allow_empty=False, finite=True, writable=False)
as_label_array(y, name, n_classes=None)          sparse integer labels -> int64
check_finite(x, name)                              NaN/inf -> ValueError naming the first bad index
check_n_features(x, expected, name, layer=None)
check_consistent_length(*arrays, names=...)
check_target_shape(y, expected_shape, loss, name="y")
check_int(value, name, minimum=None, maximum=None)
check_number(value, name, low=None, high=None, low_closed=True, high_closed=True)
check_rate(value, name)                            0 <= value < 1 (dropout, beta, momentum-like)
check_weights_list(weights, expected_shapes, owner)
check_name(kind, name, choices) / unknown_name(kind, name, choices)   closest-name suggestions
"""
import difflib
import numbers

import numpy as np

__all__ = [
    "as_float_array",
    "as_label_array",
    "check_finite",
    "check_n_features",
    "check_consistent_length",
    "check_target_shape",
    "check_int",
    "check_number",
    "check_rate",
    "check_weights_list",
    "check_name",
    "unknown_name",
    "closest_names",
    "resolve_dtype",
]


def _where(name, layer=None):
    return f"{layer}: {name}" if layer else name


def resolve_dtype(dtype=None):
    """None -> nncore.floatx(); otherwise 'float32'/'float64' (or the numpy dtypes) -> np.dtype."""
    if dtype is None:
        from nncore._config import floatx

        return np.dtype(floatx())
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype: expected 'float32' or 'float64', got {dtype!r}") from None
    if dt not in (np.float32, np.float64):
        raise TypeError(f"dtype: expected 'float32' or 'float64', got {dt}")
    return dt


def _describe(x):
    if isinstance(x, np.ndarray):
        return f"array of dtype {x.dtype} and shape {x.shape}"
    return type(x).__name__


def check_finite(x, name, layer=None):
    """Raise ValueError when a float array holds NaN or +-inf, naming the first bad position."""
    from nncore._kernels import elementwise as _ew

    if x.dtype in (np.float32, np.float64) and x.flags.c_contiguous:
        ok = _ew.all_finite(x, 1)
    else:
        ok = bool(np.isfinite(x).all())
    if ok:
        return x
    bad = np.argwhere(~np.isfinite(x))[0]
    pos = tuple(int(i) for i in bad)
    value = x[pos] if x.ndim else x[()]
    raise ValueError(
        f"{_where(name, layer)}: expected finite values, got {value} at index "
        f"{pos if len(pos) != 1 else pos[0]} (NaN or inf in the input; clean or impute the data first)"
    )


def as_float_array(
    x,
    name,
    dtype=None,
    ndim=None,
    min_ndim=None,
    allow_empty=False,
    finite=True,
    writable=False,
    layer=None,
):
    """Convert `x` once to a C-contiguous float array of `dtype` (default nncore.floatx()).

    Parameters
    ----------
    x : array-like
        Python lists/tuples, ints, bools, float16/32/64 ndarrays, memmaps, views.
    name : str
        The argument name used in error messages (e.g. 'x', 'y', 'sample_weight').
    dtype : str or dtype, default=None
        float32 or float64; None means nncore.floatx().
    ndim : int or tuple of int, default=None
        Required number of dimensions, if any.
    min_ndim : int, default=None
        Minimum number of dimensions, if any.
    allow_empty : bool, default=False
        Whether zero samples (len 0) are accepted.
    finite : bool, default=True
        Reject NaN and inf.
    writable : bool, default=False
        Return an array the caller may write into (a copy if `x` is read-only).
    layer : str, default=None
        Layer or function name prefixed to messages.

    Returns
    -------
    ndarray, C-contiguous, of the requested dtype. It is `x` itself when `x`
    already qualifies (no copy), otherwise a new array.
    """
    where = _where(name, layer)
    dt = resolve_dtype(dtype)
    if x is None:
        raise TypeError(f"{where}: expected an array of numbers, got None")
    if isinstance(x, (str, bytes)):
        raise TypeError(f"{where}: expected an array of numbers, got a {type(x).__name__}")
    if not isinstance(x, np.ndarray):
        if hasattr(x, "__array__") or isinstance(x, (list, tuple, numbers.Number)):
            try:
                x = np.asarray(x)
            except ValueError as exc:  # ragged nested lists
                raise ValueError(f"{where}: expected a rectangular array of numbers ({exc})") from None
        else:
            raise TypeError(f"{where}: expected an array-like of numbers, got {type(x).__name__}")
    kind = x.dtype.kind
    if kind in "OUSV" or kind == "M" or kind == "m":
        raise TypeError(
            f"{where}: expected a numeric array (int, bool or float), got dtype {x.dtype}"
            + (" (object arrays may hold strings or ragged rows)" if kind == "O" else "")
        )
    if kind == "c":
        raise TypeError(f"{where}: expected a real numeric array, got complex dtype {x.dtype}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if x.ndim not in allowed:
            exp = allowed[0] if len(allowed) == 1 else " or ".join(map(str, allowed))
            hint = ""
            if x.ndim == 1 and 2 in allowed:
                hint = " (reshape with x.reshape(-1, 1) for one feature or x.reshape(1, -1) for one sample)"
            raise ValueError(f"{where}: expected a {exp}-D array, got {x.ndim}-D with shape {x.shape}{hint}")
    if min_ndim is not None and x.ndim < min_ndim:
        raise ValueError(f"{where}: expected at least {min_ndim}-D, got {x.ndim}-D with shape {x.shape}")
    if not allow_empty and x.ndim > 0 and x.size == 0:
        raise ValueError(f"{where}: expected a non-empty array (at least one sample), got shape {x.shape}")
    if type(x) is not np.ndarray:  # np.memmap and other subclasses: a plain view, same memory
        x = x.view(np.ndarray)
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported below, by value
        out = np.asarray(x, dtype=dt, order="C")  # no copy when x already qualifies
    if writable and not out.flags.writeable:
        out = out.copy()
    if finite and out.dtype.kind == "f":
        from nncore._kernels import elementwise as _ew

        if not _ew.all_finite(out, 1):
            # report the user's own value (a float64 1e300 becomes inf only through the cast)
            pos = tuple(int(i) for i in np.argwhere(~np.isfinite(out))[0])
            value = x[pos] if x.ndim else x[()]
            cast = f" (overflows {dt})" if np.isfinite(value) else ""
            raise ValueError(
                f"{where}: expected finite values, got {value}{cast} at index "
                f"{pos[0] if len(pos) == 1 else pos} (NaN or inf in the input; clean or impute the data first)"
            )
    return out


def as_label_array(y, name="y", n_classes=None, layer=None):
    """Sparse class labels -> C-contiguous int64 of shape (n,) (a trailing axis of 1 is dropped).

    Floats are accepted only when they hold whole numbers; labels must lie in [0, n_classes).
    """
    where = _where(name, layer)
    if isinstance(y, (str, bytes)) or y is None:
        raise TypeError(f"{where}: expected integer class labels, got {type(y).__name__}")
    y = np.asarray(y)
    if y.dtype.kind in "OUSVMmc":
        raise TypeError(f"{where}: expected integer class labels, got dtype {y.dtype}")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(
            f"{where}: expected sparse labels of shape (n_samples,) or (n_samples, 1), got shape {y.shape}"
        )
    if y.shape[0] == 0:
        raise ValueError(f"{where}: expected at least one label, got an empty array")
    if y.dtype.kind == "f":
        check_finite(y, name, layer)
        frac = y != np.floor(y)
        if frac.any():
            i = int(np.argmax(frac))
            raise ValueError(f"{where}: expected integer class labels, got {y[i]} at index {i}")
    if y.dtype.kind == "b":
        y = y.astype(np.int64)
    lo, hi = y.min(), y.max()
    if lo < 0 or (n_classes is not None and hi >= n_classes):
        bad = int(np.argmax(y < 0)) if lo < 0 else int(np.argmax(y >= n_classes))
        rng = f"[0, {n_classes})" if n_classes is not None else ">= 0"
        raise ValueError(f"{where}: expected class labels in {rng}, got {y[bad]} at index {bad}")
    return np.ascontiguousarray(y, dtype=np.int64)


def check_n_features(x, expected, name="x", layer=None):
    """Raise when x.shape[1:] does not match `expected` (an int or a shape tuple without the batch axis)."""
    exp = (expected,) if isinstance(expected, numbers.Integral) else tuple(expected)
    got = tuple(x.shape[1:])
    if got != exp:
        if len(exp) == 1 and len(got) == 1:
            raise ValueError(
                f"{_where(name, layer)}: expected {exp[0]} features (shape (n_samples, {exp[0]})), "
                f"got {got[0]} (shape {tuple(x.shape)})"
            )
        raise ValueError(
            f"{_where(name, layer)}: expected input shape (n_samples, {', '.join(map(str, exp))}), "
            f"got {tuple(x.shape)}"
        )
    return x


def check_consistent_length(*arrays, names=None):
    """All arrays (None skipped) must have the same first dimension."""
    if names is None:
        names = [f"array {i}" for i in range(len(arrays))]
    pairs = [(n, a) for n, a in zip(names, arrays) if a is not None]
    lengths = [(n, len(a)) for n, a in pairs]
    if len({n for _, n in lengths}) > 1:
        desc = ", ".join(f"{n} has {k}" for n, k in lengths)
        raise ValueError(f"expected the same number of samples in {', '.join(n for n, _ in lengths)}: {desc}")


def check_target_shape(y, expected_shape, loss, name="y"):
    """y must have the shape of the model output, `expected_shape` (with the batch axis)."""
    if tuple(y.shape) != tuple(expected_shape):
        extra = ""
        if len(expected_shape) == 2 and y.ndim == 1 and y.shape[0] == expected_shape[0]:
            if expected_shape[1] == 1:
                extra = " (reshape with y.reshape(-1, 1))"
            else:
                extra = " (integer labels need loss='sparse_categorical_crossentropy', or one-hot encode them)"
        raise ValueError(
            f"{name}: loss {loss!r} expects targets of shape {tuple(expected_shape)} "
            f"(the model's output shape), got {tuple(y.shape)}{extra}"
        )
    return y


def check_int(value, name, minimum=None, maximum=None, allow_none=False):
    """An int (not a bool, not a float) within [minimum, maximum]; returns a Python int."""
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected an int, got bool {value!r}")
    if not isinstance(value, numbers.Integral):
        kind = "float" if isinstance(value, float) else type(value).__name__
        raise TypeError(f"{name}: expected an int, got {kind} {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name}: expected an int <= {maximum}, got {value}")
    return value


def check_number(value, name, low=None, high=None, low_closed=True, high_closed=True, owner=None):
    """A finite real number within the given interval; returns a Python float."""
    where = _where(name, owner)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{where}: expected a number, got {type(value).__name__} {value!r}")
    value = float(value)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{where}: expected a finite number, got {value}")
    bad = (
        low is not None and (value < low or (not low_closed and value == low))
        or high is not None and (value > high or (not high_closed and value == high))
    )
    if bad:
        lo = "(-inf" if low is None else ("[" if low_closed else "(") + repr(low)
        hi = "inf)" if high is None else repr(high) + ("]" if high_closed else ")")
        raise ValueError(f"{where}: expected a value in {lo}, {hi}, got {value}")
    return value


def check_rate(value, name, owner=None):
    """A probability-like rate in [0, 1): dropout rate, beta_1, beta_2, rho, momentum."""
    return check_number(value, name, 0.0, 1.0, True, False, owner)


def check_weights_list(weights, expected_shapes, owner, dtype=None):
    """Validate a `set_weights` argument: a list of len(expected_shapes) arrays of those shapes.

    Returns the arrays converted to C-contiguous `dtype` (finite values only).
    """
    if isinstance(weights, np.ndarray) or not isinstance(weights, (list, tuple)):
        raise TypeError(f"{owner}.set_weights: expected a list of arrays, got {_describe(weights)}")
    if len(weights) != len(expected_shapes):
        raise ValueError(
            f"{owner}.set_weights: expected a list of {len(expected_shapes)} arrays "
            f"(shapes {[tuple(s) for s in expected_shapes]}), got {len(weights)}"
        )
    out = []
    for i, (w, shape) in enumerate(zip(weights, expected_shapes)):
        a = as_float_array(w, f"weights[{i}]", dtype=dtype, allow_empty=True, layer=f"{owner}.set_weights")
        if tuple(a.shape) != tuple(shape):
            raise ValueError(
                f"{owner}.set_weights: weights[{i}] expected shape {tuple(shape)}, got {tuple(a.shape)}"
            )
        out.append(a)
    return out


def closest_names(name, choices, n=3):
    """The names in `choices` closest to `name` (case-insensitive), best first."""
    choices = list(choices)
    lower = {c.lower(): c for c in choices}
    hits = difflib.get_close_matches(str(name).lower(), list(lower), n=n, cutoff=0.5)
    return [lower[h] for h in hits]


def unknown_name(kind, name, choices):
    """A ValueError for an unknown `kind` name, suggesting the closest known ones."""
    choices = sorted(set(choices))
    close = closest_names(name, choices)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return ValueError(f"unknown {kind} {name!r}.{hint} Known {kind} names: {', '.join(choices)}")


def check_name(kind, name, choices):
    """Return `name` when it is in `choices`, else raise `unknown_name(...)`. A non-str is a TypeError."""
    if not isinstance(name, str):
        raise TypeError(f"{kind}: expected a name (str), got {type(name).__name__} {name!r}")
    if name in choices:
        return name
    raise unknown_name(kind, name, choices)
