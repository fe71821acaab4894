# gemm.pyx -- Python face of nc_gemm: C := act(alpha op(A) op(B) + beta C + bias).
# The wrapper checks everything, then releases the GIL for one C call; the
# C side does the blocking, packing and OpenMP.
from nncore._kernels.nncore cimport *
include "_check.pxi"


cdef Py_ssize_t _rows(object a, str name, int *code) except -1:
    """Check a 2-D float matrix whose rows are contiguous (C-contiguous, or a column block of one,
    such as w[:, k:l]); set its dtype code (0 float32, 1 float64) and return its row stride in
    elements (the leading dimension the C gemm takes)."""
    if not isinstance(a, cnp.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray, got {type(a).__name__}")
    cdef cnp.ndarray arr = <cnp.ndarray>a
    cdef int t = cnp.PyArray_TYPE(arr)
    if t != cnp.NPY_FLOAT32 and t != cnp.NPY_FLOAT64:
        raise TypeError(f"{name}: expected dtype float32 or float64, got {arr.dtype}")
    cdef int c = 0 if t == cnp.NPY_FLOAT32 else 1
    if code[0] >= 0 and c != code[0]:
        raise TypeError(f"{name}: expected dtype {'float64' if code[0] else 'float32'}, got {arr.dtype}")
    code[0] = c
    _ndim(a, name, 2)
    cdef Py_ssize_t item = cnp.PyArray_ITEMSIZE(arr), rows = arr.shape[0], cols = arr.shape[1]
    cdef Py_ssize_t s0 = cnp.PyArray_STRIDE(arr, 0), s1 = cnp.PyArray_STRIDE(arr, 1)
    if rows == 0 or cols == 0:
        return cols
    if cols > 1 and s1 != item:
        raise ValueError(f"{name}: expected a C-contiguous array or a column block of one "
                         f"(rows contiguous, strides {a.strides})")
    if rows == 1:
        return cols
    if s0 % item or s0 < cols * item:
        raise ValueError(f"{name}: expected a C-contiguous array or a column block of one "
                         f"(rows contiguous, strides {a.strides})")
    return s0 // item


def gemm(a, b, c, bint trans_a=False, bint trans_b=False, double alpha=1.0, double beta=0.0,
         bias=None, int act=0, double act_alpha=0.0, int n_threads=1):
    """C := act(alpha * op(a) @ op(b) + beta * c + bias), in place in `c`; returns `c`.

    a, b, c are 2-D arrays of one float dtype whose rows are contiguous: C-contiguous, or a
    column block of a C-contiguous matrix (x[:, k:l], a view; the gemm reads and writes it in
    place). bias is None or a contiguous 1-D array of length n. op(a) is (m, k), op(b) is
    (k, n), c is (m, n).
    """
    cdef int code = -1
    cdef Py_ssize_t lda = _rows(a, "a", &code)
    cdef Py_ssize_t ldb = _rows(b, "b", &code)
    cdef Py_ssize_t ldc = _rows(c, "c", &code)
    _writable(c, "c")
    cdef Py_ssize_t m = a.shape[1] if trans_a else a.shape[0]
    cdef Py_ssize_t k = a.shape[0] if trans_a else a.shape[1]
    cdef Py_ssize_t kb = b.shape[1] if trans_b else b.shape[0]
    cdef Py_ssize_t n = b.shape[0] if trans_b else b.shape[1]
    if kb != k:
        raise ValueError(f"gemm: inner dimensions differ: op(a) is ({m}, {k}), op(b) is ({kb}, {n})")
    _shape2(c, "c", m, n)
    if act < 0 or act >= NC_ACT_COUNT:
        raise ValueError(f"gemm: unknown activation code {act}")
    cdef void *pbias = NULL
    if bias is not None:
        _same_real(bias, "bias", code)
        _shape1(bias, "bias", n)
        pbias = _ptr(bias)
    cdef void *pa = _ptr(a)
    cdef void *pb = _ptr(b)
    cdef void *pc = _ptr(c)
    if code == 0:
        with nogil:
            nc_gemm_f32(trans_a, trans_b, m, n, k, <float>alpha, <float*>pa, lda, <float*>pb, ldb,
                        <float>beta, <float*>pc, ldc, <float*>pbias, act, <float>act_alpha, n_threads)
    else:
        with nogil:
            nc_gemm_f64(trans_a, trans_b, m, n, k, alpha, <double*>pa, lda, <double*>pb, ldb,
                        beta, <double*>pc, ldc, <double*>pbias, act, act_alpha, n_threads)
    return c


def gemm_ref(a, b, c, bint trans_a=False, bint trans_b=False, double alpha=1.0, double beta=0.0):
    """The C-side oracle (triple loop), same contract as gemm without the epilogue."""
    cdef int code = _real(a, "a")
    _same_real(b, "b", code)
    _same_real(c, "c", code)
    _ndim(a, "a", 2)
    _ndim(b, "b", 2)
    _writable(c, "c")
    cdef Py_ssize_t m = a.shape[1] if trans_a else a.shape[0]
    cdef Py_ssize_t k = a.shape[0] if trans_a else a.shape[1]
    cdef Py_ssize_t kb = b.shape[1] if trans_b else b.shape[0]
    cdef Py_ssize_t n = b.shape[0] if trans_b else b.shape[1]
    if kb != k:
        raise ValueError(f"gemm_ref: inner dimensions differ: op(a) is ({m}, {k}), op(b) is ({kb}, {n})")
    _shape2(c, "c", m, n)
    cdef Py_ssize_t lda = a.shape[1], ldb = b.shape[1]
    cdef void *pa = _ptr(a)
    cdef void *pb = _ptr(b)
    cdef void *pc = _ptr(c)
    if code == 0:
        with nogil:
            nc_gemm_ref_f32(trans_a, trans_b, m, n, k, <float>alpha, <float*>pa, lda,
                            <float*>pb, ldb, <float>beta, <float*>pc, n)
    else:
        with nogil:
            nc_gemm_ref_f64(trans_a, trans_b, m, n, k, alpha, <double*>pa, lda,
                            <double*>pb, ldb, beta, <double*>pc, n)
    return c
