# int8.pyx -- Python face of the int8 inference kernels (csrc/int8.c): the int8
# GEMM with the per-row quantization of its input and the dequantizing
# epilogue, the int32 product of int8 matrices (the kernels' test face), the
# row quantizer, the dequantizing row gather, and the choice of micro-kernel.
from nncore._kernels.nncore cimport *
from cpython.mem cimport PyMem_Free, PyMem_Malloc
include "_check.pxi"

# micro-kernel name -> code (enum nc_int8_kernel)
KERNELS = {nc_int8_kernel_name(i).decode(): i for i in range(NC_INT8_COUNT)}
MAX_K = NC_INT8_MAX_K


cdef inline int _int_array(object a, str name, int typenum, str dtype) except -1:
    if not isinstance(a, cnp.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray, got {type(a).__name__}")
    if cnp.PyArray_TYPE(<cnp.ndarray>a) != typenum:
        raise TypeError(f"{name}: expected dtype {dtype}, got {a.dtype}")
    if not cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>a):
        raise ValueError(f"{name}: expected a C-contiguous array")
    return 0


cdef inline int _qmax(int qmax, str fn) except -1:
    if not 1 <= qmax <= 127:
        raise ValueError(f"{fn}: qmax must be in [1, 127], got {qmax}")
    return 0


cdef inline int _max_k(Py_ssize_t k, str fn) except -1:
    if k > NC_INT8_MAX_K:
        raise ValueError(f"{fn}: k = {k} exceeds {NC_INT8_MAX_K}, beyond which an int32 sum of int8 products "
                         "may overflow")
    return 0


def kernel(int qmax):
    """Name of the int8 micro-kernel that runs inputs in [-qmax, qmax] now ('avx2', 'avx512vnni', ...)."""
    _qmax(qmax, "kernel")
    return nc_int8_kernel_name(nc_int8_kernel(qmax)).decode()


def available(str name, int qmax):
    """Whether the micro-kernel `name` runs inputs in [-qmax, qmax] here (this CPU, the SIMD level in use)."""
    if name not in KERNELS:
        raise ValueError(f"unknown int8 kernel {name!r}; known: {sorted(KERNELS)}")
    _qmax(qmax, "available")
    return bool(nc_int8_kernel_available(KERNELS[name], qmax))


def set_kernel(name):
    """Prefer the micro-kernel `name` from now on wherever it is exact (tests); None: the best available.

    Inputs outside its range (avx2: |x| <= 63) still run on the best kernel for them.
    """
    if name is None:
        nc_int8_set_kernel(-1)
        return
    if not available(name, 1):
        raise ValueError(f"int8 kernel {name!r} does not run on this CPU at the SIMD level in use")
    nc_int8_set_kernel(KERNELS[name])


def gemm_s8s32(a, b, c, *, int qmax, int n_threads=1):
    """c := a @ b in int32 for int8 a (m, k) with values in [-qmax, qmax], int8 b (k, n), int32 c (m, n)."""
    _int_array(a, "a", cnp.NPY_INT8, "int8")
    _int_array(b, "b", cnp.NPY_INT8, "int8")
    _int_array(c, "c", cnp.NPY_INT32, "int32")
    _ndim(a, "a", 2)
    _ndim(b, "b", 2)
    _writable(c, "c")
    cdef Py_ssize_t m = a.shape[0], k = a.shape[1], n = b.shape[1]
    if b.shape[0] != k:
        raise ValueError(f"gemm_s8s32: inner dimensions differ: a is ({m}, {k}), b is {b.shape}")
    _shape2(c, "c", m, n)
    _max_k(k, "gemm_s8s32")
    _qmax(qmax, "gemm_s8s32")
    if m and k and np.abs(a.astype(np.int16)).max() > qmax:
        raise ValueError(f"gemm_s8s32: a holds values outside [-{qmax}, {qmax}]")
    cdef const int8_t *pa = <const int8_t*>_ptr(a)
    cdef const int8_t *pb = <const int8_t*>_ptr(b)
    cdef int32_t *pc = <int32_t*>_ptr(c)
    cdef int err
    with nogil:
        err = nc_gemm_s8s32(m, n, k, pa, k, qmax, pb, n, pc, n, n_threads)
    if err:
        raise MemoryError("gemm_s8s32: out of memory for the packed operands")
    return c


def gemm_int8(x, w, w_scale, y, bias=None, int act=0, double act_alpha=0.0, *, int qmax, int n_threads=1):
    """y := act(dequantize(quantize_rows(x) @ w) + bias), Keras 3's int8 Dense, in place in `y`; returns y.

    x (m, k) float32/float64; w (k, n) int8; w_scale (n,) and bias (n,) or None of x's dtype; y (m, n).
    Each row of x is quantized to [-qmax, qmax] with s_i = qmax / (max |x_i| + 1e-7) and the int32 sums
    become acc / (w_scale_j s_i) + bias_j, then the activation (any code but softmax).
    """
    cdef int code = _real(x, "x")
    _ndim(x, "x", 2)
    _int_array(w, "w", cnp.NPY_INT8, "int8")
    _ndim(w, "w", 2)
    cdef Py_ssize_t m = x.shape[0], k = x.shape[1], n = w.shape[1]
    if w.shape[0] != k:
        raise ValueError(f"gemm_int8: inner dimensions differ: x is ({m}, {k}), w is {w.shape}")
    _same_real(w_scale, "w_scale", code)
    _shape1(w_scale, "w_scale", n)
    _same_real(y, "y", code)
    _shape2(y, "y", m, n)
    _writable(y, "y")
    _max_k(k, "gemm_int8")
    _qmax(qmax, "gemm_int8")
    if act < 0 or act >= NC_ACT_COUNT:
        raise ValueError(f"gemm_int8: unknown activation code {act}")
    cdef void *pbias = _opt_vec(bias, "bias", code, n)
    cdef void *px = _ptr(x)
    cdef const int8_t *pw = <const int8_t*>_ptr(w)
    cdef void *ps = _ptr(w_scale)
    cdef void *py = _ptr(y)
    cdef int err
    if code == 0:
        with nogil:
            err = nc_gemm_int8_f32(m, n, k, <float*>px, k, qmax, pw, n, <float*>ps, <float*>pbias, act, <float>act_alpha,
                                   <float*>py, n, n_threads)
    else:
        with nogil:
            err = nc_gemm_int8_f64(m, n, k, <double*>px, k, qmax, pw, n, <double*>ps, <double*>pbias, act, act_alpha,
                                   <double*>py, n, n_threads)
    if err:
        raise MemoryError("gemm_int8: out of memory for the packed operands")
    return y


def pack(w, int qmax):
    """W (k, n) int8 packed for the kernel that runs inputs in [-qmax, qmax] now (`chain`'s operand): a
    new 1-D uint8 array, valid while that kernel stays the one in use (a SIMD level change: pack again)."""
    _int_array(w, "w", cnp.NPY_INT8, "int8")
    _ndim(w, "w", 2)
    _qmax(qmax, "pack")
    cdef int kern = nc_int8_kernel(qmax)
    cdef Py_ssize_t k = w.shape[0], n = w.shape[1]
    _max_k(k, "pack")
    out = np.empty(nc_int8_packed_size(kern, k, n), np.uint8)
    if nc_int8_pack(kern, <const int8_t*>_ptr(w), n, k, n, _ptr(out)):
        raise ValueError(f"pack: no int8 kernel {kern} here")
    return out


def chain(x, packed, w_scales, biases, acts, alphas, qmaxs, y, bint check_finite=False, int n_threads=1):
    """y := f_L(... f_1(x W_1 + b_1) ...) through L int8 dense layers, a block of rows at a time; returns y.

    Each layer is `gemm_int8(h, W_l, w_scales[l], out, biases[l], acts[l], alphas[l], qmax=qmaxs[l])` (the
    same bits), with packed[l] = pack(W_l, qmaxs[l]) and acts[l] = -1 for a softmax over each row. x (m,
    d_0) and y (m, d_L) C-contiguous. With check_finite, raises ValueError when x holds NaN or infinity.
    """
    cdef int code = _real(x, "x")
    _same_real(y, "y", code)
    _ndim(x, "x", 2)
    _writable(y, "y")
    cdef int L = len(packed)
    if L < 1 or not len(w_scales) == len(biases) == len(acts) == len(alphas) == len(qmaxs) == L:
        raise ValueError(f"chain: expected as many scales, biases, acts, alphas and qmaxs as packed kernels ({L} >= 1)")
    dims = [x.shape[1]]
    for l in range(L):
        _int_array(packed[l], f"packed[{l}]", cnp.NPY_UINT8, "uint8")
        if packed[l].shape[0] < 64:
            raise ValueError(f"chain: packed[{l}] is not a packed kernel (shorter than its head)")
        _chain_layer("chain", l, packed[l][:32].view(np.int64), dims, biases, acts, code)
        _qmax(qmaxs[l], "chain")
        _same_real(w_scales[l], f"w_scales[{l}]", code)
        _shape1(w_scales[l], f"w_scales[{l}]", dims[l + 1])
    _shape2(y, "y", x.shape[0], dims[L])
    cdef Py_ssize_t m = x.shape[0]
    # the C arrays in one block: dims, then packed, scale and bias pointers, act and qmax codes, alphas
    cdef char *mem = <char *>PyMem_Malloc((L + 1) * sizeof(ptrdiff_t) + 3 * L * sizeof(void *)
                                          + 2 * L * sizeof(int) + L * sizeof(double))
    if not mem:
        raise MemoryError("chain")
    cdef ptrdiff_t *cdims = <ptrdiff_t *>mem
    cdef void **cpacked = <void **>(cdims + L + 1)
    cdef void **cscale = cpacked + L
    cdef void **cbias = cscale + L
    cdef double *calpha = <double *>(cbias + L)
    cdef int *cact = <int *>(calpha + L)
    cdef int *cq = cact + L
    cdef int rc
    cdef void *px = _ptr(x)
    cdef void *py = _ptr(y)
    try:
        for l in range(L + 1):
            cdims[l] = dims[l]
        for l in range(L):
            cpacked[l] = _ptr(packed[l])
            cscale[l] = _ptr(w_scales[l])
            cbias[l] = NULL if biases[l] is None else _ptr(biases[l])
            cact[l] = acts[l]
            cq[l] = qmaxs[l]
            if code == 0:
                (<float *>calpha)[l] = alphas[l]
            else:
                calpha[l] = alphas[l]
        if code == 0:
            with nogil:
                rc = nc_int8_chain_f32(m, L, cdims, <const void *const *>cpacked, <const float *const *>cscale,
                                       <const float *const *>cbias, cact, <float *>calpha, cq, check_finite,
                                       <float *>px, <float *>py, n_threads)
        else:
            with nogil:
                rc = nc_int8_chain_f64(m, L, cdims, <const void *const *>cpacked, <const double *const *>cscale,
                                       <const double *const *>cbias, cact, calpha, cq, check_finite,
                                       <double *>px, <double *>py, n_threads)
    finally:
        PyMem_Free(mem)
    _chain_status(rc, "chain", "the int8 kernel in use")
    return y


cdef class Int8Layers:
    """Consecutive int8 dense layers run one after the other in one C call (nc_int8_layers): each layer's
    own `gemm_int8` on the whole batch (the kernels as stored, nothing packed) and its own separate
    activation or softmax pass, bit-identical to calling the layers, without crossing into C once per
    layer (`model(x)` of one sample). Checked once here; a call checks x and y only. `arrays` are the
    arrays the pointers point into (a caller compares them to see whether they still stand).

    Parameters
    ----------
    kernels : list of int8 ndarray of shape (d_l, d_{l+1}), C-contiguous, consecutive
    w_scales : list of ndarray of shape (d_{l+1},), one float dtype
    biases : list of (ndarray of shape (d_{l+1},) or None)
    acts : list of int (an activation code, or -1 for a softmax over each row)
    separate : list of bool (the activation in a pass of its own, as the layer runs it)
    alphas : list of float
    qmaxs : list of int
    """
    cdef int L, code
    cdef char *mem
    cdef ptrdiff_t *dims
    cdef void **W
    cdef void **scale
    cdef void **bias
    cdef int *act
    cdef int *sep
    cdef int *qmax
    cdef void *alpha
    cdef object work
    cdef readonly object arrays
    cdef readonly Py_ssize_t n_in, n_out, width

    def __cinit__(self, kernels, w_scales, biases, acts, separate, alphas, qmaxs):
        cdef int L = len(kernels)
        if L < 1 or not len(w_scales) == len(biases) == len(acts) == len(separate) == len(alphas) == len(qmaxs) == L:
            raise ValueError(f"Int8Layers: expected as many scales, biases, acts, separate, alphas and qmaxs as "
                             f"kernels ({L} >= 1)")
        self.L = L
        self.code = _real(w_scales[0], "w_scales[0]")
        self.mem = <char *>PyMem_Malloc((L + 1) * sizeof(ptrdiff_t) + 3 * L * sizeof(void *) + L * sizeof(double)
                                        + 3 * L * sizeof(int))
        if not self.mem:
            raise MemoryError("Int8Layers")
        self.dims = <ptrdiff_t *>self.mem
        self.W = <void **>(self.dims + L + 1)
        self.scale = self.W + L
        self.bias = self.scale + L
        self.alpha = <void *>(self.bias + L)
        self.act = <int *>(<double *>self.alpha + L)
        self.sep = self.act + L
        self.qmax = self.sep + L
        _int_array(kernels[0], "kernels[0]", cnp.NPY_INT8, "int8")
        _ndim(kernels[0], "kernels[0]", 2)
        self.dims[0] = kernels[0].shape[0]
        self.width = 0
        for l in range(L):
            _int_array(kernels[l], f"kernels[{l}]", cnp.NPY_INT8, "int8")
            _ndim(kernels[l], f"kernels[{l}]", 2)
            if kernels[l].shape[0] != self.dims[l]:
                raise ValueError(f"Int8Layers: kernels[{l}] has {kernels[l].shape[0]} rows, the layer before gives "
                                 f"{self.dims[l]} features")
            _max_k(self.dims[l], "Int8Layers")
            self.dims[l + 1] = kernels[l].shape[1]
            if l + 1 < L and self.dims[l + 1] > self.width:
                self.width = self.dims[l + 1]
            self.W[l] = _ptr(kernels[l])
            _same_real(w_scales[l], f"w_scales[{l}]", self.code)
            _shape1(w_scales[l], f"w_scales[{l}]", self.dims[l + 1])
            self.scale[l] = _ptr(w_scales[l])
            self.bias[l] = NULL
            if biases[l] is not None:
                _same_real(biases[l], f"biases[{l}]", self.code)
                _shape1(biases[l], f"biases[{l}]", self.dims[l + 1])
                self.bias[l] = _ptr(biases[l])
            if acts[l] < -1 or acts[l] >= NC_ACT_COUNT:
                raise ValueError(f"Int8Layers: unknown activation code {acts[l]}")
            _qmax(qmaxs[l], "Int8Layers")
            self.act[l], self.sep[l], self.qmax[l] = acts[l], bool(separate[l]), qmaxs[l]
            if self.code == 0:
                (<float *>self.alpha)[l] = alphas[l]
            else:
                (<double *>self.alpha)[l] = alphas[l]
        self.n_in, self.n_out = self.dims[0], self.dims[L]
        self.arrays = (list(kernels), list(w_scales), list(biases))
        self.work = None

    def __dealloc__(self):
        PyMem_Free(self.mem)

    def __call__(self, x, y=None, bint check_finite=False, int n_threads=1):
        """y := the layers' output for x (m, d_0), into y (m, d_L) or a new array when y is None; returns y.
        With check_finite, raises ValueError when x holds NaN or infinity. The activations between
        layers go to a work buffer kept for the next call (the largest batch's)."""
        return self._run(x, y, check_finite, n_threads)

    def take(self, x, int n_threads=1):
        """The layers' output for x in a new array, x checked for NaN or infinity (ValueError), when x is as
        they read it (one C-contiguous array of their float dtype, (m >= 1, d_0)); else None: the caller
        converts x and calls again."""
        if not _as_is(x, self.code, self.n_in):
            return None
        return self._run(x, None, True, n_threads)

    cdef object _run(self, x, y, bint check_finite, int n_threads):
        y, work = _layers_out(x, y, self.work, self.code, self.n_in, self.n_out, self.width, "Int8Layers")
        self.work = work
        cdef Py_ssize_t m = cnp.PyArray_DIMS(<cnp.ndarray>x)[0]
        cdef int rc
        cdef void *px = _ptr(x)
        cdef void *py = _ptr(y)
        cdef void *pw = _ptr(work)
        if self.code == 0:
            with nogil:
                rc = nc_int8_layers_f32(m, self.L, self.dims, <const int8_t *const *>self.W,
                                        <const float *const *>self.scale, <const float *const *>self.bias, self.act,
                                        self.sep, <float *>self.alpha, self.qmax, check_finite, <float *>px,
                                        <float *>py, <float *>pw, n_threads)
        else:
            with nogil:
                rc = nc_int8_layers_f64(m, self.L, self.dims, <const int8_t *const *>self.W,
                                        <const double *const *>self.scale, <const double *const *>self.bias,
                                        self.act, self.sep, <double *>self.alpha, self.qmax, check_finite,
                                        <double *>px, <double *>py, <double *>pw, n_threads)
        if rc == 1:
            raise ValueError("x: inputs contain NaN or infinity")
        if rc:
            raise MemoryError("Int8Layers")
        return y


def quantize_rows(x, q, scale, *, int qmax, int n_threads=1):
    """q[i] = clip(round(x[i] s_i), -qmax, qmax), scale[i] = s_i = qmax / (max |x[i]| + 1e-7); returns (q, scale).

    x (m, k) float32/float64, q (m, k) int8, scale (m,) of x's dtype. A row holding NaN or inf gets
    scale NaN and q 0.
    """
    cdef int code = _real(x, "x")
    _ndim(x, "x", 2)
    _int_array(q, "q", cnp.NPY_INT8, "int8")
    cdef Py_ssize_t m = x.shape[0], k = x.shape[1]
    _shape2(q, "q", m, k)
    _writable(q, "q")
    _same_real(scale, "scale", code)
    _shape1(scale, "scale", m)
    _writable(scale, "scale")
    _qmax(qmax, "quantize_rows")
    cdef void *px = _ptr(x)
    cdef int8_t *pq = <int8_t*>_ptr(q)
    cdef void *ps = _ptr(scale)
    if code == 0:
        with nogil:
            nc_quantize_rows_f32(<float*>px, m, k, k, qmax, pq, k, <float*>ps, n_threads)
    else:
        with nogil:
            nc_quantize_rows_f64(<double*>px, m, k, k, qmax, pq, k, <double*>ps, n_threads)
    return q, scale


def take_rows_int8(table, scale, idx, dst):
    """dst[r] = table[idx[r]] / scale[idx[r]] for an int8 table (rows, cols); indices are bounds-checked first."""
    _int_array(table, "table", cnp.NPY_INT8, "int8")
    _ndim(table, "table", 2)
    cdef int code = _real(dst, "dst")
    _writable(dst, "dst")
    cdef Py_ssize_t rows = table.shape[0], cols = table.shape[1]
    _same_real(scale, "scale", code)
    _shape1(scale, "scale", rows)
    cdef Py_ssize_t nidx = _row_index(idx, rows, "take_rows_int8")
    _shape2(dst, "dst", nidx, cols)
    cdef const int8_t *pt = <const int8_t*>_ptr(table)
    cdef int64_t *pi = <int64_t*>_ptr(idx)
    cdef void *ps = _ptr(scale)
    cdef void *pd = _ptr(dst)
    if code == 0:
        with nogil:
            nc_take_rows_int8_f32(pt, cols, <float*>ps, pi, nidx, <float*>pd)
    else:
        with nogil:
            nc_take_rows_int8_f64(pt, cols, <double*>ps, pi, nidx, <double*>pd)
    return dst
