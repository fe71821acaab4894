# losses.pyx -- fused losses: value and gradient in one C call.
#
# Each function returns sum_i w_i loss_i (a Python float, accumulated in double
# in an order fixed by the shape, so it is bit-identical for any n_threads) and
# writes the gradient of grad_scale * sum_i w_i loss_i into `d` when `d` is not
# None. `w` (sample weights, shape (n,)), `prob` (softmax/sigmoid output, shape
# of z) and `d` may each be None. Everything is checked before a pointer is
# taken; labels are range-checked before the C call.
from libc.stdint cimport int64_t
from nncore._kernels.nncore cimport *
include "_check.pxi"


cdef int _check_2d(str fn, object z, str zname, object y, str yname) except -1:
    """z is a 2-D float array with at least one column; y (if given) matches it."""
    cdef int code = _real(z, zname)
    if cnp.PyArray_NDIM(<cnp.ndarray>z) != 2:
        raise ValueError(f"{fn}: {zname} must be 2-D (n_samples, n_outputs), got shape {z.shape}")
    if z.shape[1] == 0:
        raise ValueError(f"{fn}: {zname} must have at least one column, got shape {z.shape}")
    if y is not None:
        _same_real(y, yname, code)
        if y.shape != z.shape:
            raise ValueError(f"{fn}: {yname} must have the shape of {zname} {z.shape}, got {y.shape}")
    return code


cdef void *_opt_weights(str fn, object w, int code, Py_ssize_t n) except? NULL:
    if w is None:
        return NULL
    _same_real(w, "w", code)
    if cnp.PyArray_NDIM(<cnp.ndarray>w) != 1 or w.shape[0] != n:
        raise ValueError(f"{fn}: sample weights w must have shape ({n},), got {w.shape}")
    return _ptr(w)


cdef void *_opt_out(str fn, object a, str name, int code, object shape) except? NULL:
    if a is None:
        return NULL
    _same_real(a, name, code)
    _writable(a, name)
    if a.shape != shape:
        raise ValueError(f"{fn}: {name} must have shape {shape}, got {a.shape}")
    return _ptr(a)


def softmax_xent(z, y, w=None, prob=None, d=None, double grad_scale=1.0, int n_threads=1):
    """Softmax + categorical cross-entropy on logits z (n, k) and targets y (n, k).

    loss_i = -sum_j y_ij log(clip(p_ij, 1e-7, 1 - 1e-7)), p = softmax(z);
    d = grad_scale * w_i * (p - y) (exactly: p sum_j y_ij - y). Returns sum_i w_i loss_i.
    """
    cdef int code = _check_2d("softmax_xent", z, "z", y, "y")
    cdef Py_ssize_t n = z.shape[0], k = z.shape[1]
    cdef void *pw = _opt_weights("softmax_xent", w, code, n)
    cdef void *pp = _opt_out("softmax_xent", prob, "prob", code, z.shape)
    cdef void *pd = _opt_out("softmax_xent", d, "d", code, z.shape)
    cdef void *pz = _ptr(z)
    cdef void *py = _ptr(y)
    cdef double s
    if code == 0:
        with nogil:
            s = nc_softmax_xent_f32(<float*>pz, <float*>py, <float*>pw, <float*>pp, <float*>pd, n, k,
                                    grad_scale, n_threads)
    else:
        with nogil:
            s = nc_softmax_xent_f64(<double*>pz, <double*>py, <double*>pw, <double*>pp, <double*>pd, n, k,
                                    grad_scale, n_threads)
    return s


def sparse_softmax_xent(z, labels, w=None, prob=None, d=None, double grad_scale=1.0, int n_threads=1):
    """Softmax + cross-entropy with integer labels (int64, shape (n,), 0 <= label < k).

    loss_i = -log(clip(p_i,label_i, 1e-7, 1 - 1e-7)); d = grad_scale * w_i * (p - onehot(label)).
    """
    cdef int code = _check_2d("sparse_softmax_xent", z, "z", None, "")
    cdef Py_ssize_t n = z.shape[0], k = z.shape[1], i
    if not isinstance(labels, cnp.ndarray) or cnp.PyArray_TYPE(<cnp.ndarray>labels) != cnp.NPY_INT64 \
            or not cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>labels):
        raise TypeError(f"sparse_softmax_xent: labels must be a C-contiguous int64 ndarray, got "
                        f"{getattr(labels, 'dtype', type(labels).__name__)}")
    if cnp.PyArray_NDIM(<cnp.ndarray>labels) != 1 or labels.shape[0] != n:
        raise ValueError(f"sparse_softmax_xent: labels must have shape ({n},), got {labels.shape}")
    cdef int64_t *pl = <int64_t*>_ptr(labels)
    for i in range(n):
        if pl[i] < 0 or pl[i] >= k:
            raise ValueError(f"sparse_softmax_xent: label {pl[i]} at row {i} is out of range [0, {k})")
    cdef void *pw = _opt_weights("sparse_softmax_xent", w, code, n)
    cdef void *pp = _opt_out("sparse_softmax_xent", prob, "prob", code, z.shape)
    cdef void *pd = _opt_out("sparse_softmax_xent", d, "d", code, z.shape)
    cdef void *pz = _ptr(z)
    cdef double s
    if code == 0:
        with nogil:
            s = nc_sparse_softmax_xent_f32(<float*>pz, pl, <float*>pw, <float*>pp, <float*>pd, n, k,
                                           grad_scale, n_threads)
    else:
        with nogil:
            s = nc_sparse_softmax_xent_f64(<double*>pz, pl, <double*>pw, <double*>pp, <double*>pd, n, k,
                                           grad_scale, n_threads)
    return s


def sigmoid_bce(z, y, w=None, prob=None, d=None, double grad_scale=1.0, int n_threads=1):
    """Sigmoid + binary cross-entropy, mean over the k columns of each row.

    loss_i = mean_j -(y log clip(p) + (1 - y) log(1 - clip(p))), p = sigmoid(z);
    d = grad_scale * w_i * (p - y) / k.
    """
    cdef int code = _check_2d("sigmoid_bce", z, "z", y, "y")
    cdef Py_ssize_t n = z.shape[0], k = z.shape[1]
    cdef void *pw = _opt_weights("sigmoid_bce", w, code, n)
    cdef void *pp = _opt_out("sigmoid_bce", prob, "prob", code, z.shape)
    cdef void *pd = _opt_out("sigmoid_bce", d, "d", code, z.shape)
    cdef void *pz = _ptr(z)
    cdef void *py = _ptr(y)
    cdef double s
    if code == 0:
        with nogil:
            s = nc_sigmoid_bce_f32(<float*>pz, <float*>py, <float*>pw, <float*>pp, <float*>pd, n, k,
                                   grad_scale, n_threads)
    else:
        with nogil:
            s = nc_sigmoid_bce_f64(<double*>pz, <double*>py, <double*>pw, <double*>pp, <double*>pd, n, k,
                                   grad_scale, n_threads)
    return s


cdef double _pointwise(str name, bint absolute, yhat, y, w, d, double grad_scale, int n_threads) except? -1:
    """mse (absolute=False) or mae (absolute=True): one wrapper, the C call chosen by kind and dtype."""
    cdef int code = _check_2d(name, yhat, "yhat", y, "y")
    cdef Py_ssize_t n = yhat.shape[0], k = yhat.shape[1]
    cdef void *pw = _opt_weights(name, w, code, n)
    cdef void *pd = _opt_out(name, d, "d", code, yhat.shape)
    cdef void *ph = _ptr(yhat)
    cdef void *py = _ptr(y)
    cdef double s
    with nogil:
        if code == 0:
            if absolute:
                s = nc_mae_f32(<float*>ph, <float*>py, <float*>pw, <float*>pd, n, k, grad_scale, n_threads)
            else:
                s = nc_mse_f32(<float*>ph, <float*>py, <float*>pw, <float*>pd, n, k, grad_scale, n_threads)
        elif absolute:
            s = nc_mae_f64(<double*>ph, <double*>py, <double*>pw, <double*>pd, n, k, grad_scale, n_threads)
        else:
            s = nc_mse_f64(<double*>ph, <double*>py, <double*>pw, <double*>pd, n, k, grad_scale, n_threads)
    return s


def mse(yhat, y, w=None, d=None, double grad_scale=1.0, int n_threads=1):
    """Mean squared error: loss_i = mean_j (yhat - y)^2; d = grad_scale * w_i * 2 (yhat - y) / k."""
    return _pointwise("mse", False, yhat, y, w, d, grad_scale, n_threads)


def mae(yhat, y, w=None, d=None, double grad_scale=1.0, int n_threads=1):
    """Mean absolute error: loss_i = mean_j |yhat - y|; d = grad_scale * w_i * sign(yhat - y) / k."""
    return _pointwise("mae", True, yhat, y, w, d, grad_scale, n_threads)
