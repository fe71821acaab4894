# norm.pyx -- Python face of batch and layer normalization (csrc/norm_body.h).
# Data is a C-contiguous (rows, C) block of one float dtype (the layers pass
# every leading axis as rows); gamma, beta and the moving statistics are (C,)
# vectors of that dtype; `stats` and `work` are float64 buffers the caller
# keeps (stats from the forward pass feed the backward pass; work is scratch
# of work_size(rows, C) doubles). The wrapper checks everything, then makes
# one nogil C call.
from nncore._kernels.nncore cimport *
include "_check.pxi"


def work_size(Py_ssize_t rows, Py_ssize_t cols):
    """Doubles of workspace the normalization kernels need for a (rows, cols) block."""
    if rows < 1 or cols < 1:
        raise ValueError(f"work_size: rows and cols must be >= 1, got ({rows}, {cols})")
    return nc_norm_work_size(rows, cols)


cdef double *_doubles(object a, str name, Py_ssize_t n) except NULL:
    """A writable C-contiguous float64 buffer of at least n elements."""
    if not isinstance(a, cnp.ndarray) or cnp.PyArray_TYPE(<cnp.ndarray>a) != cnp.NPY_FLOAT64 \
            or not cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>a):
        raise TypeError(f"{name}: expected a C-contiguous float64 ndarray, got "
                        f"{getattr(a, 'dtype', type(a).__name__)}")
    _writable(a, name)
    if _size(a) < n:
        raise ValueError(f"{name}: expected at least {n} elements, got {_size(a)}")
    return <double*>_ptr(a)


cdef Py_ssize_t _rows_cols(object x, str name) except -1:
    _ndim(x, name, 2)
    if x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"{name}: expected a non-empty (rows, C) block, got shape {x.shape}")
    return 0


def batchnorm_forward(x, gamma, beta, moving_mean, moving_var, y, stats, work, double momentum, double epsilon,
                      bint training, int n_threads=1):
    """Batch normalization over the rows of x (rows, C); writes y and stats (2, C): mean, 1/std.

    training: the batch statistics (biased variance), and moving := moving momentum + batch (1 -
    momentum) unless moving_mean is None; otherwise the moving statistics. y = (x - mean) gamma
    / sqrt(var + epsilon) + beta.
    """
    cdef int code = _real(x, "x")
    _rows_cols(x, "x")
    cdef Py_ssize_t rows = x.shape[0], C = x.shape[1]
    _vec(gamma, "gamma", code, C, False)
    _vec(beta, "beta", code, C, False)
    if moving_mean is None and not training:
        raise ValueError("batchnorm_forward: inference needs moving_mean and moving_var")
    cdef void *pmm = _opt_vec(moving_mean, "moving_mean", code, C, True)
    cdef void *pmv = NULL
    if moving_mean is not None:
        pmv = _opt_vec(moving_var, "moving_var", code, C, True)
        if pmv == NULL:
            raise ValueError("batchnorm_forward: moving_var is needed with moving_mean")
    _block(y, "y", code, rows, C, True)
    cdef double *ps = _doubles(stats, "stats", 2 * C)
    cdef double *pw = _doubles(work, "work", nc_norm_work_size(rows, C))
    if not epsilon > 0:
        raise ValueError(f"batchnorm_forward: epsilon must be > 0, got {epsilon}")
    cdef void *px = _ptr(x)
    cdef void *pg = _ptr(gamma)
    cdef void *pb = _ptr(beta)
    cdef void *py = _ptr(y)
    if code == 0:
        with nogil:
            nc_batchnorm_forward_f32(<float*>px, <float*>pg, <float*>pb, <float*>pmm, <float*>pmv, <float*>py,
                                     ps, pw, rows, C, momentum, epsilon, training, n_threads)
    else:
        with nogil:
            nc_batchnorm_forward_f64(<double*>px, <double*>pg, <double*>pb, <double*>pmm, <double*>pmv,
                                     <double*>py, ps, pw, rows, C, momentum, epsilon, training, n_threads)
    return y


cdef struct _Grads:
    # the checked arguments of a backward kernel
    int code
    Py_ssize_t rows, C
    void *x
    void *dy
    void *gamma
    double *stats
    void *dx
    void *dgamma
    void *dbeta
    double *work


cdef _Grads _grad_args(x, dy, gamma, stats, dx, dgamma, dbeta, work, bint per_row) except *:
    """Check the arguments both backward kernels take; stats is (2, C), or (2, rows) per_row."""
    cdef _Grads a
    a.code = _real(x, "x")
    _rows_cols(x, "x")
    a.rows, a.C = x.shape[0], x.shape[1]
    _block(dy, "dy", a.code, a.rows, a.C, False)
    _vec(gamma, "gamma", a.code, a.C, False)
    a.stats = _doubles(stats, "stats", 2 * (a.rows if per_row else a.C))
    a.dx = NULL
    if dx is not None:
        _block(dx, "dx", a.code, a.rows, a.C, True)
        a.dx = _ptr(dx)
    a.dgamma = _opt_vec(dgamma, "dgamma", a.code, a.C, True)
    a.dbeta = _opt_vec(dbeta, "dbeta", a.code, a.C, True)
    a.work = _doubles(work, "work", nc_norm_work_size(a.rows, a.C))
    a.x, a.dy, a.gamma = _ptr(x), _ptr(dy), _ptr(gamma)
    return a


def batchnorm_backward(x, dy, gamma, stats, dx, dgamma, dbeta, work, bint training, int n_threads=1):
    """Gradients of batchnorm_forward from dy (rows, C) and its stats: dbeta = sum dy, dgamma =
    sum dy xhat, and dx (training: through the batch statistics; else dx = gamma dy / std).
    dx, dgamma and dbeta may each be None (not computed)."""
    cdef _Grads a = _grad_args(x, dy, gamma, stats, dx, dgamma, dbeta, work, False)
    if a.code == 0:
        with nogil:
            nc_batchnorm_backward_f32(<float*>a.x, <float*>a.dy, <float*>a.gamma, a.stats, <float*>a.dx,
                                      <float*>a.dgamma, <float*>a.dbeta, a.work, a.rows, a.C, training, n_threads)
    else:
        with nogil:
            nc_batchnorm_backward_f64(<double*>a.x, <double*>a.dy, <double*>a.gamma, a.stats, <double*>a.dx,
                                      <double*>a.dgamma, <double*>a.dbeta, a.work, a.rows, a.C, training,
                                      n_threads)
    return dx


def layernorm_forward(x, gamma, beta, y, stats, double epsilon, int n_threads=1):
    """Layer normalization of each row of x (rows, C); writes y and stats (2, rows): mean, 1/std."""
    cdef int code = _real(x, "x")
    _rows_cols(x, "x")
    cdef Py_ssize_t rows = x.shape[0], C = x.shape[1]
    _vec(gamma, "gamma", code, C, False)
    _vec(beta, "beta", code, C, False)
    _block(y, "y", code, rows, C, True)
    cdef double *ps = _doubles(stats, "stats", 2 * rows)
    if not epsilon > 0:
        raise ValueError(f"layernorm_forward: epsilon must be > 0, got {epsilon}")
    cdef void *px = _ptr(x)
    cdef void *pg = _ptr(gamma)
    cdef void *pb = _ptr(beta)
    cdef void *py = _ptr(y)
    if code == 0:
        with nogil:
            nc_layernorm_forward_f32(<float*>px, <float*>pg, <float*>pb, <float*>py, ps, rows, C, epsilon,
                                     n_threads)
    else:
        with nogil:
            nc_layernorm_forward_f64(<double*>px, <double*>pg, <double*>pb, <double*>py, ps, rows, C, epsilon,
                                     n_threads)
    return y


def layernorm_backward(x, dy, gamma, stats, dx, dgamma, dbeta, work, int n_threads=1):
    """Gradients of layernorm_forward: dx (per row), dgamma = sum dy xhat, dbeta = sum dy; each of
    dx, dgamma and dbeta may be None (not computed)."""
    cdef _Grads a = _grad_args(x, dy, gamma, stats, dx, dgamma, dbeta, work, True)
    if a.code == 0:
        with nogil:
            nc_layernorm_backward_f32(<float*>a.x, <float*>a.dy, <float*>a.gamma, a.stats, <float*>a.dx,
                                      <float*>a.dgamma, <float*>a.dbeta, a.work, a.rows, a.C, n_threads)
    else:
        with nogil:
            nc_layernorm_backward_f64(<double*>a.x, <double*>a.dy, <double*>a.gamma, a.stats, <double*>a.dx,
                                      <double*>a.dgamma, <double*>a.dbeta, a.work, a.rows, a.C, n_threads)
    return dx
