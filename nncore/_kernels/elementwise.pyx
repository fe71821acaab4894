# elementwise.pyx -- activations, softmax, reductions and row gathers.
# Thin: check shapes/dtypes once, release the GIL, one C call.
import os

from libc.stdint cimport int64_t
from nncore._kernels.nncore cimport *
include "_check.pxi"


def act_forward(int act, double alpha, x, y, int n_threads=1):
    """y = f(x) elementwise (y may be x). Returns y. act | ACT_BF16 (float32): y rounded to bfloat16."""
    cdef int code = _real(x, "x")
    _same_real(y, "y", code)
    _writable(y, "y")
    if x.shape != y.shape:
        raise ValueError(f"act_forward: x has shape {x.shape}, y has shape {y.shape}")
    _act("act_forward", act, code)
    cdef Py_ssize_t n = _size(x)
    cdef void *px = _ptr(x)
    cdef void *py = _ptr(y)
    if code == 0:
        with nogil:
            nc_act_forward_par_f32(act, <float>alpha, <float*>px, <float*>py, n, n_threads)
    else:
        with nogil:
            nc_act_forward_par_f64(act, alpha, <double*>px, <double*>py, n, n_threads)
    return y


def act_backward(int act, double alpha, x, y, dy, dx, int n_threads=1):
    """dx = dy * f'(x), computed from y (and x when the activation needs it; x may be None otherwise).
    act | ACT_BF16 (float32): dx rounded to bfloat16."""
    cdef int code = _real(y, "y")
    _same_real(dy, "dy", code)
    _same_real(dx, "dx", code)
    _writable(dx, "dx")
    _act("act_backward", act, code)
    if dy.shape != y.shape or dx.shape != y.shape:
        raise ValueError(f"act_backward: y {y.shape}, dy {dy.shape} and dx {dx.shape} must match")
    cdef void *px = NULL
    if x is not None:
        _same_real(x, "x", code)
        if x.shape != y.shape:
            raise ValueError(f"act_backward: x has shape {x.shape}, y has shape {y.shape}")
        px = _ptr(x)
    elif nc_act_needs_input(act):
        raise ValueError("act_backward: this activation needs its input x")
    cdef Py_ssize_t n = _size(y)
    cdef void *py = _ptr(y)
    cdef void *pdy = _ptr(dy)
    cdef void *pdx = _ptr(dx)
    if code == 0:
        with nogil:
            nc_act_backward_par_f32(act, <float>alpha, <float*>px, <float*>py, <float*>pdy, <float*>pdx, n,
                                    n_threads)
    else:
        with nogil:
            nc_act_backward_par_f64(act, alpha, <double*>px, <double*>py, <double*>pdy, <double*>pdx, n,
                                    n_threads)
    return dx


def needs_input(int act):
    """True when the backward of `act` needs the pre-activation x, not only y."""
    return bool(nc_act_needs_input(act))


def softmax_forward(x, y):
    """Row-wise softmax of a 2-D array into y (y may be x)."""
    cdef int code = _real(x, "x")
    _same_real(y, "y", code)
    _writable(y, "y")
    _ndim(x, "x", 2)
    _shape2(y, "y", x.shape[0], x.shape[1])
    cdef Py_ssize_t r = x.shape[0], c = x.shape[1]
    if c == 0:
        raise ValueError("softmax: expected at least one column")
    cdef void *px = _ptr(x)
    cdef void *py = _ptr(y)
    if code == 0:
        with nogil:
            nc_softmax_forward_f32(<float*>px, <float*>py, r, c)
    else:
        with nogil:
            nc_softmax_forward_f64(<double*>px, <double*>py, r, c)
    return y


def softmax_backward(y, dy, dx):
    """dx = y * (dy - sum(dy * y, axis=1)) for row-wise softmax output y."""
    cdef int code = _real(y, "y")
    _same_real(dy, "dy", code)
    _same_real(dx, "dx", code)
    _writable(dx, "dx")
    _ndim(y, "y", 2)
    _shape2(dy, "dy", y.shape[0], y.shape[1])
    _shape2(dx, "dx", y.shape[0], y.shape[1])
    cdef Py_ssize_t r = y.shape[0], c = y.shape[1]
    cdef void *py = _ptr(y)
    cdef void *pdy = _ptr(dy)
    cdef void *pdx = _ptr(dx)
    if code == 0:
        with nogil:
            nc_softmax_backward_f32(<float*>py, <float*>pdy, <float*>pdx, r, c)
    else:
        with nogil:
            nc_softmax_backward_f64(<double*>py, <double*>pdy, <double*>pdx, r, c)
    return dx


def colsum(x, out, int n_threads=1):
    """out[j] = sum_i x[i, j] (bias gradient). Returns out."""
    cdef int code = _real(x, "x")
    _same_real(out, "out", code)
    _writable(out, "out")
    _ndim(x, "x", 2)
    _shape1(out, "out", x.shape[1])
    cdef Py_ssize_t r = x.shape[0], c = x.shape[1]
    cdef void *px = _ptr(x)
    cdef void *po = _ptr(out)
    if code == 0:
        with nogil:
            nc_colsum_f32(<float*>px, <float*>po, r, c, n_threads)
    else:
        with nogil:
            nc_colsum_f64(<double*>px, <double*>po, r, c, n_threads)
    return out


def sumsq(x, int n_threads=1):
    """sum(x**2) over all elements, accumulated in double in a fixed order."""
    cdef int code = _real(x, "x")
    cdef Py_ssize_t n = _size(x)
    cdef void *px = _ptr(x)
    cdef double s
    if code == 0:
        with nogil:
            s = nc_sumsq_f32(<float*>px, n, n_threads)
    else:
        with nogil:
            s = nc_sumsq_f64(<double*>px, n, n_threads)
    return s


def all_finite(x, int n_threads=1):
    """True when no element of x is NaN or infinite."""
    cdef int code = _real(x, "x")
    cdef Py_ssize_t n = _size(x)
    cdef void *px = _ptr(x)
    cdef int r
    if code == 0:
        with nogil:
            r = nc_all_finite_f32(<float*>px, n, n_threads)
    else:
        with nogil:
            r = nc_all_finite_f64(<double*>px, n, n_threads)
    return bool(r)


def take_rows(src, idx, dst):
    """dst[r] = src[idx[r]] for a 2-D src and int64 idx; indices are bounds-checked first."""
    cdef int code = _real(src, "src")
    _same_real(dst, "dst", code)
    _writable(dst, "dst")
    _ndim(src, "src", 2)
    cdef Py_ssize_t nidx = _row_index(idx, src.shape[0], "take_rows"), cols = src.shape[1]
    _shape2(dst, "dst", nidx, cols)
    cdef int64_t *pi = <int64_t*>_ptr(idx)
    cdef void *ps = _ptr(src)
    cdef void *pd = _ptr(dst)
    if code == 0:
        with nogil:
            nc_take_rows_f32(<float*>ps, cols, pi, nidx, <float*>pd)
    else:
        with nogil:
            nc_take_rows_f64(<double*>ps, cols, pi, nidx, <double*>pd)
    return dst


def read_rows(int fd, long long base, idx, dst, long long first=0):
    """dst[r] = row idx[r] (idx None: row first + r) of a C-contiguous array stored in the open file fd
    from byte `base` on, one row of dst.nbytes / len(dst) bytes (pread: nothing is mapped). The
    caller checks the rows exist in the file; OSError on a failed or short read."""
    if not isinstance(dst, cnp.ndarray) or not cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>dst) \
            or cnp.PyArray_NDIM(<cnp.ndarray>dst) < 1:
        raise TypeError("read_rows: dst must be a C-contiguous ndarray with a row axis")
    _writable(dst, "dst")
    cdef Py_ssize_t n = dst.shape[0]
    cdef long long rowbytes = dst.nbytes // n if n else 0
    cdef const int64_t *pi = NULL
    if idx is not None:
        if _row_index(idx, 1 << 62, "read_rows") != n:
            raise ValueError(f"read_rows: {len(idx)} indices for {n} rows of dst")
        pi = <const int64_t*>_ptr(idx)
    cdef char *pd = <char*>_ptr(dst)
    cdef int err
    with nogil:
        err = nc_read_rows(fd, base + (first * rowbytes if pi == NULL else 0), rowbytes, pi, n, pd)
    if err == -1:
        raise OSError("read_rows: the file ended before the rows asked for (was it truncated?)")
    if err:
        raise OSError(err, "read_rows: " + os.strerror(err))
    return dst


def scatter_add_rows(src, idx, dst, int n_threads=1):
    """dst[idx[r]] += src[r] for a 2-D src and int64 idx (the embedding gradient); indices are
    bounds-checked first. Rows are added in order: the result is the same for any n_threads."""
    cdef int code = _real(src, "src")
    _same_real(dst, "dst", code)
    _writable(dst, "dst")
    _ndim(src, "src", 2)
    _ndim(dst, "dst", 2)
    cdef Py_ssize_t nidx = _row_index(idx, dst.shape[0], "scatter_add_rows"), cols = dst.shape[1]
    _shape2(src, "src", nidx, cols)
    cdef int64_t *pi = <int64_t*>_ptr(idx)
    cdef void *ps = _ptr(src)
    cdef void *pd = _ptr(dst)
    if code == 0:
        with nogil:
            nc_scatter_add_rows_f32(<float*>ps, cols, pi, nidx, <float*>pd, n_threads)
    else:
        with nogil:
            nc_scatter_add_rows_f64(<double*>ps, cols, pi, nidx, <double*>pd, n_threads)
    return dst
