# _check.pxi -- argument checks shared by the kernel wrappers (included, not imported).
# Every wrapper checks type, dtype, dimensions, contiguity, writability and
# shapes BEFORE a data pointer is taken, and raises ValueError/TypeError that
# name the argument, the expected and the actual value.
cimport numpy as cnp
from libc.stdint cimport int64_t
import numpy as np

cnp.import_array()

cdef inline int _real(object a, str name) except -1:
    """Return 0 for float32, 1 for float64 after checking `a` is a C-contiguous ndarray in the machine's
    byte order (a '>f4' array has the NPY_FLOAT32 type too: read as native floats it is garbage)."""
    cdef cnp.ndarray arr
    if not isinstance(a, cnp.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray, got {type(a).__name__}")
    arr = <cnp.ndarray>a
    if not cnp.PyArray_IS_C_CONTIGUOUS(arr):
        raise ValueError(f"{name}: expected a C-contiguous array")
    cdef int t = cnp.PyArray_TYPE(arr)
    if (t == cnp.NPY_FLOAT32 or t == cnp.NPY_FLOAT64) and not cnp.PyArray_ISNOTSWAPPED(arr):
        raise TypeError(f"{name}: expected the machine's byte order, got dtype {arr.dtype.str!r} "
                        f"(convert with a.astype(a.dtype.newbyteorder('='))")
    if t == cnp.NPY_FLOAT32:
        return 0
    if t == cnp.NPY_FLOAT64:
        return 1
    raise TypeError(f"{name}: expected dtype float32 or float64, got {arr.dtype}")

cdef inline int _same_real(object a, str name, int code) except -1:
    cdef int c = _real(a, name)
    if c != code:
        raise TypeError(f"{name}: expected dtype {'float64' if code else 'float32'}, got {a.dtype}")
    return c

cdef inline int _writable(object a, str name) except -1:
    if not cnp.PyArray_ISWRITEABLE(<cnp.ndarray>a):
        raise ValueError(f"{name}: output array is read-only")
    return 0

cdef inline int _ndim(object a, str name, int nd) except -1:
    if cnp.PyArray_NDIM(<cnp.ndarray>a) != nd:
        raise ValueError(f"{name}: expected a {nd}-D array, got shape {a.shape}")
    return 0

cdef inline int _shape2(object a, str name, Py_ssize_t r, Py_ssize_t c) except -1:
    _ndim(a, name, 2)
    cdef cnp.npy_intp *d = cnp.PyArray_DIMS(<cnp.ndarray>a)
    if d[0] != r or d[1] != c:
        raise ValueError(f"{name}: expected shape ({r}, {c}), got {a.shape}")
    return 0

cdef inline int _shape1(object a, str name, Py_ssize_t n) except -1:
    _ndim(a, name, 1)
    if cnp.PyArray_DIMS(<cnp.ndarray>a)[0] != n:
        raise ValueError(f"{name}: expected shape ({n},), got {a.shape}")
    return 0

cdef inline int _block(object a, str name, int code, Py_ssize_t rows, Py_ssize_t cols, bint out) except -1:
    """A (rows, cols) array of the dtype `code`; writable when `out`."""
    _same_real(a, name, code)
    _shape2(a, name, rows, cols)
    if out:
        _writable(a, name)
    return 0

cdef inline void *_ptr(object a):
    return cnp.PyArray_DATA(<cnp.ndarray>a)

cdef inline int _vec(object a, str name, int code, Py_ssize_t n, bint out) except -1:
    """An (n,) array of the dtype `code`; writable when `out`."""
    _same_real(a, name, code)
    _shape1(a, name, n)
    if out:
        _writable(a, name)
    return 0

cdef inline void *_opt_vec(object a, str name, int code, Py_ssize_t n, bint out=False) except? NULL:
    """NULL for None, else the data of a, checked by `_vec` (a bias; a statistic written when `out`)."""
    if a is None:
        return NULL
    _vec(a, name, code, n, out)
    return _ptr(a)

cdef inline Py_ssize_t _size(object a):
    return cnp.PyArray_SIZE(<cnp.ndarray>a)


cdef inline tuple _layers_out(object x, object y, object work, int code, Py_ssize_t n_in, Py_ssize_t n_out,
                              Py_ssize_t width, str fn):
    """(y, work) for a call of consecutive layers on x (m, n_in): y (m, n_out) checked, or new when None;
    the work buffer of the activations between layers (2 m width), the one given when large enough."""
    _same_real(x, "x", code)
    _ndim(x, "x", 2)
    cdef Py_ssize_t m = cnp.PyArray_DIMS(<cnp.ndarray>x)[0]
    if cnp.PyArray_DIMS(<cnp.ndarray>x)[1] != n_in:
        raise ValueError(f"{fn}: x has {x.shape[1]} features, the first kernel takes {n_in}")
    cdef cnp.npy_intp shape[2]
    shape[0], shape[1] = m, n_out
    if y is None:
        y = cnp.PyArray_EMPTY(2, shape, cnp.NPY_FLOAT32 if code == 0 else cnp.NPY_FLOAT64, 0)
    else:
        _block(y, "y", code, m, n_out, True)
    if work is None or _size(work) < 2 * m * width:
        shape[0] = 2 * m * width
        work = cnp.PyArray_EMPTY(1, shape, cnp.NPY_FLOAT32 if code == 0 else cnp.NPY_FLOAT64, 0)
    return y, work

cdef inline bint _as_is(object x, int code, Py_ssize_t n_in):
    """Whether x is as consecutive layers read it, nothing to convert or check but its values: an ndarray
    itself (not a subclass: a memmap is read in batches), C-contiguous, aligned, in the machine's byte
    order (a '>f4' array has the NPY_FLOAT32 type too), of the dtype `code`, of shape (m >= 1, n_in)."""
    if type(x) is not np.ndarray:
        return False
    cdef cnp.ndarray a = <cnp.ndarray>x
    cdef int t = cnp.PyArray_TYPE(a)
    return (cnp.PyArray_IS_C_CONTIGUOUS(a) and cnp.PyArray_ISNOTSWAPPED(a) and cnp.PyArray_ISALIGNED(a)
            and (t == cnp.NPY_FLOAT32 if code == 0 else t == cnp.NPY_FLOAT64)
            and cnp.PyArray_NDIM(a) == 2 and cnp.PyArray_DIMS(a)[0] >= 1 and cnp.PyArray_DIMS(a)[1] == n_in)

cdef inline Py_ssize_t _row_index(object idx, Py_ssize_t rows, str fn) except -1:
    """Check idx: a contiguous 1-D int64 array of row numbers in [0, rows); return its length."""
    if not isinstance(idx, cnp.ndarray) or cnp.PyArray_TYPE(<cnp.ndarray>idx) != cnp.NPY_INT64 \
            or not cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>idx) or cnp.PyArray_NDIM(<cnp.ndarray>idx) != 1:
        raise TypeError(f"{fn}: idx must be a contiguous 1-D int64 array")
    cdef Py_ssize_t n = idx.shape[0], i
    cdef const int64_t *pi = <const int64_t*>_ptr(idx)
    for i in range(n):
        if pi[i] < 0 or pi[i] >= rows:
            raise IndexError(f"{fn}: index {pi[i]} out of range for {rows} rows")
    return n

# Every extension links its own copy of the C runtime state (csrc/runtime.c):
# nncore._kernels.runtime.set_simd_level calls this in each of them.
def _set_simd_level_here(int level):
    nc_set_simd_level(level)
    return nc_active_simd_level()


def _active_simd_level_here():
    return nc_active_simd_level()


def _mark_forked_here():
    nc_mark_forked()


cdef inline int _chain_status(int rc, str fn, str packed_for) except -1:
    """Raise for the status of a chain of layers' kernel (0 ok; 1 x not finite; -2 a packed kernel
    not for its layer or for `packed_for`; -1 no memory)."""
    if rc == 1:
        raise ValueError("x: inputs contain NaN or infinity")
    if rc == -2:
        raise ValueError(f"{fn}: a packed kernel does not match its layer's shape or {packed_for}; pack it again")
    if rc != 0:
        raise MemoryError(f"{fn}: no memory for the row blocks")
    return 0


cdef inline int _chain_layer(str fn, int l, head, list dims, biases, acts, int code) except -1:
    """Layer l of a chain of layers' kernel: its packed kernel's head (tag, kernel or level, k, n) must
    take dims[l] inputs; appends its width n to dims and checks its bias and activation code."""
    if head[2] != dims[l]:
        raise ValueError(f"{fn}: packed[{l}] holds a kernel of {head[2]} rows, its input has {dims[l]} "
                         "features; pack it again")
    dims.append(int(head[3]))
    if biases[l] is not None:
        _same_real(biases[l], f"biases[{l}]", code)
        _shape1(biases[l], f"biases[{l}]", dims[l + 1])
    if acts[l] < -1 or acts[l] >= NC_ACT_COUNT:
        raise ValueError(f"{fn}: unknown activation code {acts[l]}")
    return 0


cdef inline int _act(str fn, int act, int code) except -1:
    """An activation code, with the NC_ACT_BF16 modifier (the result rounded to bfloat16) on float32 only."""
    if act < 0 or (act & ~NC_ACT_BF16) >= NC_ACT_COUNT:
        raise ValueError(f"{fn}: unknown activation code {act}")
    if act & NC_ACT_BF16 and code != 0:
        raise TypeError(f"{fn}: the bfloat16 rounding (ACT_BF16) needs float32 arrays")
    return 0
