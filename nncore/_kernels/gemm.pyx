# gemm.pyx -- Python face of nc_gemm: C := act(alpha op(A) op(B) + beta C + bias).
# The wrapper checks everything, then releases the GIL for one C call; the
# C side does the blocking, packing and OpenMP.
from nncore._kernels.nncore cimport *
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.stddef cimport ptrdiff_t
from libc.stdint cimport uint16_t
include "_check.pxi"


cdef void *_epilogue(str fn, bias, int act, Py_ssize_t n, int code) except? NULL:
    """Check the epilogue's activation code and bias (None or 1-D of length n); the bias pointer or NULL."""
    _act(fn, act, code)
    if bias is None:
        return NULL
    _same_real(bias, "bias", code)
    _shape1(bias, "bias", n)
    return _ptr(bias)


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


cdef int _product(a, b, c, bint trans_a, bint trans_b, Py_ssize_t *d) except -1:
    """Check the operands of c := op(a) op(b) (as `gemm` takes them); d := m, n, k, lda, ldb, ldc.
    Returns the dtype code (0 float32, 1 float64)."""
    cdef int code = -1
    d[3] = _rows(a, "a", &code)
    d[4] = _rows(b, "b", &code)
    d[5] = _rows(c, "c", &code)
    _writable(c, "c")
    d[0] = a.shape[1] if trans_a else a.shape[0]
    d[2] = a.shape[0] if trans_a else a.shape[1]
    cdef Py_ssize_t kb = b.shape[1] if trans_b else b.shape[0]
    d[1] = b.shape[0] if trans_b else b.shape[1]
    if kb != d[2]:
        raise ValueError(f"gemm: inner dimensions differ: op(a) is ({d[0]}, {d[2]}), op(b) is ({kb}, {d[1]})")
    _shape2(c, "c", d[0], d[1])
    return code


def gemm(a, b, c, bint trans_a=False, bint trans_b=False, double alpha=1.0, double beta=0.0,
         bias=None, int act=0, double act_alpha=0.0, int n_threads=1):
    """C := act(alpha * op(a) @ op(b) + beta * c + bias), in place in `c`; returns `c`.

    a, b, c are 2-D arrays of one float dtype whose rows are contiguous: C-contiguous, or a
    column block of a C-contiguous matrix (x[:, k:l], a view; the gemm reads and writes it in
    place). bias is None or a contiguous 1-D array of length n. op(a) is (m, k), op(b) is
    (k, n), c is (m, n).
    """
    cdef Py_ssize_t d[6]
    cdef int code = _product(a, b, c, trans_a, trans_b, d)
    cdef Py_ssize_t m = d[0], n = d[1], k = d[2], lda = d[3], ldb = d[4], ldc = d[5]
    cdef void *pbias = _epilogue("gemm", bias, act, n, code)
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


# bfloat16 micro-kernel name -> code (enum nc_bf16_kernel)
BF16_KERNELS = {nc_bf16_kernel_name(i).decode(): i for i in range(NC_BF16_COUNT)}


def gemm_bf16(a, b, c, bint trans_a=False, bint trans_b=False, double alpha=1.0, double beta=0.0,
              bias=None, int act=0, double act_alpha=0.0, bint round_out=True, int n_threads=1):
    """C := r(act(alpha * bf(op(a)) @ bf(op(b)) + beta * c + bias)) with float32 sums; returns `c`.

    The operands as `gemm` takes them, float32 only. bf rounds to bfloat16 (nearest even, denormals
    to zero), the products are summed in float32 as vdpbf16ps does (csrc/bf16.c), r is bf when
    `round_out` (c then holds bfloat16 values), else nothing.
    """
    cdef Py_ssize_t d[6]
    cdef int code = _product(a, b, c, trans_a, trans_b, d)
    if code != 0:
        raise TypeError(f"gemm_bf16: expected float32 operands (the variables of mixed_bfloat16), got {a.dtype}")
    cdef Py_ssize_t m = d[0], n = d[1], k = d[2], lda = d[3], ldb = d[4], ldc = d[5]
    cdef void *pbias = _epilogue("gemm_bf16", bias, act, n, code)
    cdef float *pa = <float*>_ptr(a)
    cdef float *pb = <float*>_ptr(b)
    cdef float *pc = <float*>_ptr(c)
    cdef int err
    with nogil:
        err = nc_gemm_bf16_f32(trans_a, trans_b, m, n, k, <float>alpha, pa, lda, pb, ldb, <float>beta, pc, ldc,
                           <float*>pbias, act, <float>act_alpha, round_out, n_threads)
    if err:
        raise MemoryError("gemm_bf16: out of memory for the packed operands")
    return c


def bf16_round(x, out):
    """out := bf(x): float32 x rounded to the nearest bfloat16 (even on ties, denormals to signed zero,
    NaN quiet), stored as float32; `out` may be `x`. Returns out."""
    _real(x, "x")
    _same_real(x, "x", 0)
    _same_real(out, "out", 0)
    _writable(out, "out")
    if out.shape != x.shape:
        raise ValueError(f"out: expected shape {x.shape}, got {out.shape}")
    cdef float *px = <float*>_ptr(x)
    cdef float *po = <float*>_ptr(out)
    cdef Py_ssize_t n = _size(x)
    with nogil:
        nc_bf16_round_f32(px, po, n)
    return out


def bf16_bits(x):
    """The bfloat16 bits (uint16 array of x's shape) of float32 x, rounded as `bf16_round`."""
    _same_real(x, "x", 0)
    out = np.empty(x.shape, np.uint16)
    cdef float *px = <float*>_ptr(x)
    cdef uint16_t *po = <uint16_t*>_ptr(out)
    cdef Py_ssize_t n = _size(x)
    with nogil:
        nc_bf16_from_f32(px, po, n)
    return out


def bf16_kernel():
    """Name of the bf16 GEMM micro-kernel that runs now ('avx512bf16', 'avx2-emulated', 'generic-emulated')."""
    return nc_bf16_kernel_name(nc_bf16_kernel()).decode()


def bf16_available(str name):
    """Whether the bf16 micro-kernel `name` runs here (this CPU, the SIMD level in use)."""
    if name not in BF16_KERNELS:
        raise ValueError(f"unknown bf16 kernel {name!r}; known: {sorted(BF16_KERNELS)}")
    return bool(nc_bf16_kernel_available(BF16_KERNELS[name]))


def bf16_set_kernel(name):
    """Prefer the bf16 micro-kernel `name` from now on (tests); None: the best available."""
    if name is None:
        nc_bf16_set_kernel(-1)
        return
    if not bf16_available(name):
        raise ValueError(f"bf16 kernel {name!r} does not run on this CPU at the SIMD level in use")
    nc_bf16_set_kernel(BF16_KERNELS[name])


def cpu_has_avx512bf16():
    """Whether the CPU reports AVX512_BF16 (vdpbf16ps)."""
    return bool(nc_bf16_cpu_has_avx512bf16())


def pack_b(b, bint trans_b=False, out=None, bint refresh=False):
    """op(b) packed once for many `gemm_packed` products with it (op(b) is b.T when trans_b).

    The layout is that of the SIMD level in use. Returns `out` refilled when it is a 1-D array of b's
    dtype and the size this needs, else a new array (so a caller keeping the result allocates once).
    With refresh, an `out` that holds a packing of this shape at this level is compared with the
    packing of b and written only where it differs (bitwise): a packed copy kept across calls is then
    read, not written, while b stays the same, and is exact whatever wrote b in between.
    """
    cdef int code = _real(b, "b")
    _ndim(b, "b", 2)
    cdef Py_ssize_t k = b.shape[1] if trans_b else b.shape[0]
    cdef Py_ssize_t n = b.shape[0] if trans_b else b.shape[1]
    cdef Py_ssize_t size = nc_gemm_pack_size_f32(k, n) if code == 0 else nc_gemm_pack_size_f64(k, n)
    if (out is None or not isinstance(out, np.ndarray) or out.dtype != b.dtype or out.ndim != 1
            or out.shape[0] != size or not out.flags.c_contiguous or not out.flags.writeable):
        out = np.empty(size, b.dtype)
    cdef Py_ssize_t ldb = b.shape[1]
    cdef void *pb = _ptr(b)
    cdef void *pp = _ptr(out)
    if code == 0:
        with nogil:
            nc_gemm_pack_b_f32(trans_b, k, n, <float*>pb, ldb, <float*>pp, refresh)
    else:
        with nogil:
            nc_gemm_pack_b_f64(trans_b, k, n, <double*>pb, ldb, <double*>pp, refresh)
    return out


def pack_b_bf16(b, bint trans_b=False, out=None):
    """op(b) (float32) packed once as bfloat16 pairs for the bf16 micro-kernel in use (`bf16_kernel`): the
    B of the LSTM step loops under mixed_bfloat16 (`lstm_seq_forward` / `lstm_seq_backward` with ACT_BF16 on
    their codes). A float32 array of 32-bit words; `out` refilled when it fits, as `pack_b`."""
    _real(b, "b")
    _same_real(b, "b", 0)
    _ndim(b, "b", 2)
    cdef Py_ssize_t k = b.shape[1] if trans_b else b.shape[0]
    cdef Py_ssize_t n = b.shape[0] if trans_b else b.shape[1]
    cdef Py_ssize_t size = nc_bf16_pack_size(k, n)
    if (out is None or not isinstance(out, np.ndarray) or out.dtype != np.float32 or out.ndim != 1
            or out.shape[0] != size or not out.flags.c_contiguous or not out.flags.writeable):
        out = np.empty(size, np.float32)
    cdef Py_ssize_t ldb = b.shape[1]
    cdef float *pb = <float*>_ptr(b)
    cdef float *pp = <float*>_ptr(out)
    with nogil:
        nc_bf16_pack(trans_b, k, n, pb, ldb, pp)
    return out


def gemm_packed(a, packed, c, bint trans_a=False, double alpha=1.0, double beta=0.0, bias=None, int act=0,
                double act_alpha=0.0, int n_threads=1):
    """C := act(alpha * op(a) @ B + beta * c + bias), in place in `c`, with B from `pack_b`; returns `c`.

    Same contract as `gemm`; raises ValueError when `packed` holds another shape than (k, n) = (op(a)
    columns, c columns) or was packed for another SIMD level.
    """
    cdef int code = _real(a, "a")
    _same_real(packed, "packed", code)
    _same_real(c, "c", code)
    _ndim(a, "a", 2)
    _ndim(packed, "packed", 1)
    _ndim(c, "c", 2)
    _writable(c, "c")
    cdef Py_ssize_t m = a.shape[1] if trans_a else a.shape[0]
    cdef Py_ssize_t k = a.shape[0] if trans_a else a.shape[1]
    cdef Py_ssize_t n = c.shape[1]
    _shape2(c, "c", m, n)
    cdef Py_ssize_t need = nc_gemm_pack_size_f32(k, n) if code == 0 else nc_gemm_pack_size_f64(k, n)
    if packed.shape[0] != need:
        raise ValueError(f"gemm_packed: packed holds {packed.shape[0]} elements, op(b) of shape ({k}, {n}) "
                         f"needs {need} at this SIMD level; pack it again")
    cdef void *pbias = _epilogue("gemm_packed", bias, act, n, code)
    cdef Py_ssize_t lda = a.shape[1], ldc = n
    cdef void *pa = _ptr(a)
    cdef void *pp = _ptr(packed)
    cdef void *pc = _ptr(c)
    cdef int rc
    if code == 0:
        with nogil:
            rc = nc_gemm_packed_f32(trans_a, m, n, k, <float>alpha, <float*>pa, lda, <float*>pp, <float>beta,
                                    <float*>pc, ldc, <float*>pbias, act, <float>act_alpha, n_threads)
    else:
        with nogil:
            rc = nc_gemm_packed_f64(trans_a, m, n, k, alpha, <double*>pa, lda, <double*>pp, beta,
                                    <double*>pc, ldc, <double*>pbias, act, act_alpha, n_threads)
    if rc == -2:
        raise ValueError(f"gemm_packed: packed does not hold op(b) of shape ({k}, {n}) packed at this SIMD "
                         "level; pack it again")
    if rc != 0:
        raise MemoryError("gemm_packed: no memory for the packing workspace")
    return c


def gemm_tile(dtype=np.float32):
    """(MR, NR): the register tile of the SIMD level in use for dtype (float32 or float64)."""
    cdef int mr = 0, nr = 0
    if np.dtype(dtype) == np.float32:
        nc_gemm_micro_tile_f32(&mr, &nr)
    else:
        nc_gemm_micro_tile_f64(&mr, &nr)
    return mr, nr


def gemm_panels(a, packed, c, double beta=0.0, bias=None, int act=0, double act_alpha=0.0):
    """c := act(a @ B + beta * c + bias) in place on this thread, B from `pack_b` (of k = a's columns
    rows and at least c's columns: c takes B's first columns); returns c. a's rows are read in place
    (rows contiguous, any row stride); each register tile of c is summed over the whole k."""
    cdef int code = -1
    cdef Py_ssize_t lda = _rows(a, "a", &code)
    cdef Py_ssize_t ldc = _rows(c, "c", &code)
    _same_real(packed, "packed", code)
    _ndim(packed, "packed", 1)
    _writable(c, "c")
    cdef Py_ssize_t m = a.shape[0], k = a.shape[1], n = c.shape[1]
    _shape2(c, "c", m, n)
    cdef Py_ssize_t hl = 64 // packed.itemsize
    if packed.shape[0] < hl:
        raise ValueError("gemm_panels: packed is not a packed kernel (shorter than its head)")
    head = packed[:hl].view(np.int64)                                           # tag, level, k, n
    cdef Py_ssize_t need = nc_gemm_pack_size_f32(k, head[3]) if code == 0 else nc_gemm_pack_size_f64(k, head[3])
    if head[2] != k or head[3] < n or packed.shape[0] != need or head[1] != nc_active_simd_level():
        raise ValueError(f"gemm_panels: packed does not hold a kernel of {k} rows and >= {n} columns packed at "
                         "this SIMD level; pack it again")
    cdef int mr = 0, nr = 1
    if code == 0:
        nc_gemm_micro_tile_f32(&mr, &nr)
    else:
        nc_gemm_micro_tile_f64(&mr, &nr)
    cdef Py_ssize_t ntot = (head[3] + nr - 1) // nr * nr
    cdef void *pbias = _epilogue("gemm_panels", bias, act, n, code)
    cdef void *pa = _ptr(a)
    cdef void *pp = _ptr(packed)
    cdef void *pc = _ptr(c)
    if code == 0:
        with nogil:
            nc_gemm_panels_f32(m, n, k, <float*>pa, lda, <float*>pp + hl, ntot, <float>beta, <float*>pc, ldc,
                               <float*>pbias, act, <float>act_alpha)
    else:
        with nogil:
            nc_gemm_panels_f64(m, n, k, <double*>pa, lda, <double*>pp + hl, ntot, beta, <double*>pc, ldc,
                               <double*>pbias, act, act_alpha)
    return c


def gemm_tn(a, b, c):
    """c := a.T @ b in place on this thread, a (k, m) and b (k, n) read in place (rows contiguous, any
    row stride; k their rows), nothing packed; returns c. The sums are gemm(a, b, c, trans_a=True)'s
    where that packs both operands (csrc/gemm_kernel.h, gemm_tn)."""
    cdef int code = -1
    cdef Py_ssize_t lda = _rows(a, "a", &code)
    cdef Py_ssize_t ldb = _rows(b, "b", &code)
    cdef Py_ssize_t ldc = _rows(c, "c", &code)
    _writable(c, "c")
    cdef Py_ssize_t k = a.shape[0], m = a.shape[1], n = b.shape[1]
    if b.shape[0] != k:
        raise ValueError(f"gemm_tn: b: expected {k} rows (a's), got shape {b.shape}")
    _shape2(c, "c", m, n)
    cdef void *pa = _ptr(a)
    cdef void *pb = _ptr(b)
    cdef void *pc = _ptr(c)
    if code == 0:
        with nogil:
            nc_gemm_tn_f32(m, n, k, <float*>pa, lda, <float*>pb, ldb, <float*>pc, ldc)
    else:
        with nogil:
            nc_gemm_tn_f64(m, n, k, <double*>pa, lda, <double*>pb, ldb, <double*>pc, ldc)
    return c


def dense_chain(x, packed, biases, acts, alphas, y, bint check_finite=False, int n_threads=1, kernels=None):
    """y := f_L(... f_1(x W_1 + b_1) ...) through L dense layers, a block of rows at a time; returns y.

    packed[l] is W_l from `pack_b`, biases[l] a 1-D array or None, acts[l] an activation code fused into
    the product or -1 for a softmax over each row, alphas[l] its parameter. x (m, d_0) and y (m, d_L)
    are C-contiguous. With check_finite, raises ValueError when x holds NaN or infinity.

    With kernels (the W_l themselves, C-contiguous), `packed` is a list of packed copies kept from call
    to call and brought up to date in it: an entry of the wrong size for this SIMD level (None at
    first) is replaced by a new array, then every entry is refreshed from its kernel (as
    `pack_b(refresh=True)`: compared, written only where it differs) by the first thread of the call's
    team, while the others wake up.
    """
    cdef int code = _real(x, "x")
    _same_real(y, "y", code)
    _ndim(x, "x", 2)
    _writable(y, "y")
    cdef int L = len(packed)
    if L < 1 or len(biases) != L or len(acts) != L or len(alphas) != L or (kernels is not None
                                                                          and len(kernels) != L):
        raise ValueError(f"dense_chain: expected as many biases, acts, alphas (and kernels) as packed kernels "
                         f"({L} >= 1)")
    dims = [x.shape[1]]
    cdef Py_ssize_t size
    for l in range(L):
        if kernels is not None:
            _same_real(kernels[l], f"kernels[{l}]", code)
            _ndim(kernels[l], f"kernels[{l}]", 2)
            k, n = kernels[l].shape
            size = nc_gemm_pack_size_f32(k, n) if code == 0 else nc_gemm_pack_size_f64(k, n)
            p = packed[l]
            if (not isinstance(p, np.ndarray) or p.dtype != kernels[l].dtype or p.ndim != 1 or p.shape[0] != size
                    or not p.flags.c_contiguous or not p.flags.writeable):
                packed[l] = np.empty(size, kernels[l].dtype)
            _chain_layer("dense_chain", l, (0, 0, k, n), dims, biases, acts, code)
            continue
        _same_real(packed[l], f"packed[{l}]", code)
        _ndim(packed[l], f"packed[{l}]", 1)
        if packed[l].shape[0] < 64 // packed[l].itemsize:
            raise ValueError(f"dense_chain: packed[{l}] is not a packed kernel (shorter than its head)")
        _chain_layer("dense_chain", l, packed[l][:64 // packed[l].itemsize].view(np.int64), dims, biases, acts,
                     code)
    _shape2(y, "y", x.shape[0], dims[L])
    cdef Py_ssize_t m = x.shape[0]
    cdef ptrdiff_t *cdims = <ptrdiff_t *>PyMem_Malloc((L + 1) * sizeof(ptrdiff_t))
    cdef void **cW = <void **>PyMem_Malloc(L * sizeof(void *)) if kernels is not None else NULL
    cdef void **cpacked = <void **>PyMem_Malloc(L * sizeof(void *))
    cdef void **cbias = <void **>PyMem_Malloc(L * sizeof(void *))
    cdef int *cact = <int *>PyMem_Malloc(L * sizeof(int))
    cdef void *calpha = PyMem_Malloc(L * sizeof(double))
    cdef int rc
    cdef void *px = _ptr(x)
    cdef void *py = _ptr(y)
    try:
        if not cdims or not cpacked or not cbias or not cact or not calpha or (kernels is not None and not cW):
            raise MemoryError("dense_chain")
        for l in range(L + 1):
            cdims[l] = dims[l]
        for l in range(L):
            cpacked[l] = _ptr(packed[l])
            if cW:
                cW[l] = _ptr(kernels[l])
            cbias[l] = NULL if biases[l] is None else _ptr(biases[l])
            cact[l] = acts[l]
            if code == 0:
                (<float *>calpha)[l] = alphas[l]
            else:
                (<double *>calpha)[l] = alphas[l]
        if code == 0:
            with nogil:
                rc = nc_dense_chain_f32(m, L, cdims, <const float *const *>cW, <float *const *>cpacked,
                                        <const float *const *>cbias, cact, <float *>calpha, check_finite,
                                        <float *>px, <float *>py, n_threads)
        else:
            with nogil:
                rc = nc_dense_chain_f64(m, L, cdims, <const double *const *>cW, <double *const *>cpacked,
                                        <const double *const *>cbias, cact, <double *>calpha, check_finite,
                                        <double *>px, <double *>py, n_threads)
    finally:
        PyMem_Free(cW)
        PyMem_Free(cdims)
        PyMem_Free(cpacked)
        PyMem_Free(cbias)
        PyMem_Free(cact)
        PyMem_Free(calpha)
    _chain_status(rc, "dense_chain", "this SIMD level")
    return y


cdef class DenseLayers:
    """Consecutive dense layers run one after the other in one C call (nc_dense_layers): the products
    the layers' own forward makes, bit-identical to them, without crossing into C once per layer.

    Checked once here; a call checks x, y and the work buffer only. The kernels are read as they are
    at each call (views into a model's weights stay current; nothing is packed).

    Parameters
    ----------
    kernels : list of ndarray of shape (d_l, d_{l+1})
        C-contiguous, one float dtype, consecutive.
    biases : list of (ndarray of shape (d_{l+1},) or None)
    acts : list of int
        An activation code, or -1 for a softmax over each row.
    separate : list of bool
        The activation in a pass of its own after the product (as the layer runs it) rather than in
        the product's epilogue.
    alphas : list of float
    """
    cdef int L, code
    cdef ptrdiff_t *dims
    cdef void **W
    cdef void **bias
    cdef int *act
    cdef int *sep
    cdef void *alpha
    cdef object arrays, work
    cdef readonly Py_ssize_t n_in, n_out, width

    def __cinit__(self, kernels, biases, acts, separate, alphas):
        cdef int L = len(kernels)
        if L < 1 or len(biases) != L or len(acts) != L or len(separate) != L or len(alphas) != L:
            raise ValueError(f"DenseLayers: expected as many biases, acts, separate and alphas as kernels ({L} >= 1)")
        self.L = L
        self.code = _real(kernels[0], "kernels[0]")
        self.dims = <ptrdiff_t *>PyMem_Malloc((L + 1) * sizeof(ptrdiff_t))
        self.W = <void **>PyMem_Malloc(L * sizeof(void *))
        self.bias = <void **>PyMem_Malloc(L * sizeof(void *))
        self.act = <int *>PyMem_Malloc(L * sizeof(int))
        self.sep = <int *>PyMem_Malloc(L * sizeof(int))
        self.alpha = PyMem_Malloc(L * sizeof(double))
        if not self.dims or not self.W or not self.bias or not self.act or not self.sep or not self.alpha:
            raise MemoryError("DenseLayers")
        self.dims[0] = kernels[0].shape[0] if kernels[0].ndim == 2 else 0
        self.width = 0
        for l in range(L):
            _same_real(kernels[l], f"kernels[{l}]", self.code)
            _ndim(kernels[l], f"kernels[{l}]", 2)
            if kernels[l].shape[0] != self.dims[l]:
                raise ValueError(f"DenseLayers: kernels[{l}] has {kernels[l].shape[0]} rows, the layer before gives "
                                 f"{self.dims[l]} features")
            self.dims[l + 1] = kernels[l].shape[1]
            if l + 1 < L and self.dims[l + 1] > self.width:
                self.width = self.dims[l + 1]
            self.W[l] = _ptr(kernels[l])
            self.bias[l] = NULL
            if biases[l] is not None:
                _same_real(biases[l], f"biases[{l}]", self.code)
                _shape1(biases[l], f"biases[{l}]", self.dims[l + 1])
                self.bias[l] = _ptr(biases[l])
            if acts[l] < -1 or acts[l] >= NC_ACT_COUNT:
                raise ValueError(f"DenseLayers: unknown activation code {acts[l]}")
            self.act[l] = acts[l]
            self.sep[l] = bool(separate[l])
            if self.code == 0:
                (<float *>self.alpha)[l] = alphas[l]
            else:
                (<double *>self.alpha)[l] = alphas[l]
        self.n_in, self.n_out = self.dims[0], self.dims[L]
        self.arrays = (list(kernels), list(biases))          # the memory the pointers point into
        self.work = None

    def __dealloc__(self):
        PyMem_Free(self.dims)
        PyMem_Free(self.W)
        PyMem_Free(self.bias)
        PyMem_Free(self.act)
        PyMem_Free(self.sep)
        PyMem_Free(self.alpha)

    def __call__(self, x, y=None, bint check_finite=False, int n_threads=1):
        """y := the layers' output for x (m, d_0), into y (m, d_L) or a new array when y is None; returns y.
        With check_finite, raises ValueError when x holds NaN or infinity (y is then untouched). The
        activations between layers go to a work buffer kept for the next call (the largest batch's)."""
        return self._run(x, y, check_finite, n_threads)

    def take(self, x, int n_threads=1):
        """The layers' output for x in a new array, x checked for NaN or infinity (ValueError), when x is as
        they read it (one C-contiguous array of their dtype, (m >= 1, d_0)); else None: the caller
        converts x and calls again. (model(x) of a Dense chain: nothing in Python looks at x.)"""
        if not _as_is(x, self.code, self.n_in):
            return None
        return self._run(x, None, True, n_threads)

    cdef object _run(self, x, y, bint check_finite, int n_threads):
        y, work = _layers_out(x, y, self.work, self.code, self.n_in, self.n_out, self.width, "DenseLayers")
        self.work = work
        cdef Py_ssize_t m = cnp.PyArray_DIMS(<cnp.ndarray>x)[0]
        cdef int rc
        cdef void *px = _ptr(x)
        cdef void *py = _ptr(y)
        cdef void *pw = _ptr(work)
        if self.code == 0:
            with nogil:
                rc = nc_dense_layers_f32(m, self.L, self.dims, <const float *const *>self.W,
                                         <const float *const *>self.bias, self.act, self.sep, <float *>self.alpha,
                                         check_finite, <float *>px, <float *>py, <float *>pw, n_threads)
        else:
            with nogil:
                rc = nc_dense_layers_f64(m, self.L, self.dims, <const double *const *>self.W,
                                         <const double *const *>self.bias, self.act, self.sep, <double *>self.alpha,
                                         check_finite, <double *>px, <double *>py, <double *>pw, n_threads)
        if rc == 1:
            raise ValueError("x: inputs contain NaN or infinity")
        return y


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


cdef int _cell_act(str fn, int act, str name) except -1:
    if act < 0 or (act & ~NC_ACT_BF16) >= NC_ACT_COUNT or nc_act_needs_input(act):
        raise ValueError(f"{fn}: {name} {act} is not an activation code whose derivative follows from its "
                         "output")
    return 0


cdef int _seq(str fn, object a, str name, int code, Py_ssize_t T, Py_ssize_t B, Py_ssize_t w, bint out) except -1:
    """a is a C-contiguous (T, B, w) array of the dtype `code`."""
    _same_real(a, name, code)
    _ndim(a, name, 3)
    if a.shape[0] != T or a.shape[1] != B or a.shape[2] != w:
        raise ValueError(f"{fn}: {name}: expected shape ({T}, {B}, {w}), got {a.shape}")
    if out:
        _writable(a, name)
    return 0


cdef int _packed_for(str fn, object packed, int code, Py_ssize_t k, Py_ssize_t n, bint bf=False) except -1:
    """packed is `pack_b`'s (k, n) at this SIMD level, or (bf) `pack_b_bf16`'s for the bf16 kernel in use."""
    _same_real(packed, "packed", code)
    _ndim(packed, "packed", 1)
    cdef Py_ssize_t need = (nc_bf16_pack_size(k, n) if bf else
                            nc_gemm_pack_size_f32(k, n) if code == 0 else nc_gemm_pack_size_f64(k, n))
    if bf and code != 0:
        raise TypeError(f"{fn}: the bfloat16 step loop (ACT_BF16) needs float32 arrays")
    if packed.shape[0] != need:
        raise ValueError(f"{fn}: packed holds {packed.shape[0]} elements, a kernel of shape ({k}, {n}) needs "
                         f"{need} at this SIMD level; pack it again")
    return 0


RNN_LSTM, RNN_GRU, RNN_GRU_RB, RNN_SIMPLE = NC_RNN_LSTM, NC_RNN_GRU, NC_RNN_GRU_RB, NC_RNN_SIMPLE
_CELL_NAMES = {NC_RNN_LSTM: "LSTM", NC_RNN_GRU: "GRU", NC_RNN_GRU_RB: "GRU (reset before)",
               NC_RNN_SIMPLE: "SimpleRNN"}


cdef Py_ssize_t _cell_gates(str fn, int cell, Py_ssize_t u) except -1:
    if cell not in _CELL_NAMES:
        raise ValueError(f"{fn}: cell {cell} is not one of RNN_LSTM, RNN_GRU, RNN_GRU_RB, RNN_SIMPLE")
    return 4 * u if cell == NC_RNN_LSTM else u if cell == NC_RNN_SIMPLE else 3 * u


cdef void *_opt_seq(str fn, object a, str name, int code, Py_ssize_t T, Py_ssize_t B, Py_ssize_t w, bint out,
                    bint need) except? NULL:
    """a's pointer where the cell takes it (need), after `_seq`'s checks; NULL where it does not (a is then
    ignored)."""
    if not need:
        return NULL
    if a is None:
        raise ValueError(f"{fn}: {name} is needed by this cell")
    _seq(fn, a, name, code, T, B, w, out)
    return _ptr(a)


cdef void *_packed2(str fn, object packed2, str what, int code, Py_ssize_t k, Py_ssize_t n, bint bf,
                    bint need) except? NULL:
    """The GRU's second kernel (k, n) where the cell takes one (need): U_h or U_h^T (reset before), W (with
    x); else NULL."""
    if not need:
        return NULL
    if packed2 is None:
        raise ValueError(f"{fn}: the GRU takes {what}")
    _packed_for(fn, packed2, code, k, n, bf)
    return _ptr(packed2)


def rnn_seq_forward(int cell, int act, double alpha, int ract, double ralpha, packed, z, h, s1=None, s2=None,
                    bint with_h0=False, int n_threads=1, x=None, xh=None, bias=None, packed2=None):
    """A recurrent layer's step loop over a whole time-major sequence in one call; returns h.

    h (T + 1, B, u): the initial state at [0], h_t written at [t + 1]. The cell (RNN_LSTM, RNN_GRU,
    RNN_GRU_RB, RNN_SIMPLE) fixes G (4u, 3u, 3u, u) and the arrays (csrc/nncore.h, nc_rnn_seq_forward):
    z (T, B, G) gets the gates (SimpleRNN: not taken, z_t is h[t + 1]); LSTM: s1 = c (T + 1, B, u) likewise,
    s2 = tc (T, B, u); GRU: s1 = rec (T, B, G) = h_{t-1} U + b_rec, bias (2, G) = [b_in; b_rec] or None, and
    with x (T, B, D) (no xh) z_t = x_t W + b_in in the loop, packed2 = W (D, G), else z holds it on entry;
    GRU_RB: s1 = q (T, B, u) = r h_{t-1}, packed U_zr (u, 2u), packed2 U_h (u, u). Each step's products,
    then the cell (`nncore._kernels.rnn`), a block of rows through every step.

    LSTM and SimpleRNN with x (T, B, D): packed is [W; U; b] (D + u + 1, G) from `pack_b`, xh (T, B,
    D + u + 1) gets the rows [x_t | h_{t-1} | 1] and z_t = xh_t [W; U; b] (then ``xh^T delta`` is
    [dW; dU; db] in one product). Without x (xh None): z holds x W + b on entry, packed is U (u, G), and
    z_t += h_{t-1} U from t = 1, or from t = 0 when with_h0.

    mixed_bfloat16 (ACT_BF16 on act): the products on the bf16 micro-kernel (`bf16_kernel`), packed from
    `pack_b_bf16`: [W; U] without the bias row (with x; `bias` (G,) float32 then starts each chain), or U;
    the cells round h_t (xh keeps its column of ones for the weight gradient).
    """
    cdef str fn = "rnn_seq_forward"
    cdef bint bf = (act & NC_ACT_BF16) != 0
    _cell_act(fn, act, "act")
    _cell_act(fn, ract, "ract")
    cdef int code = _real(h, "h")
    _ndim(h, "h", 3)
    cdef Py_ssize_t T = h.shape[0] - 1, B = h.shape[1], u = h.shape[2], D = 0
    cdef Py_ssize_t G = _cell_gates(fn, cell, u)
    if T < 0 or u == 0:
        raise ValueError(f"{fn}: h must have shape (T + 1, B, units), got {h.shape}")
    _writable(h, "h")
    cdef bint lstm = cell == NC_RNN_LSTM, gru = cell == NC_RNN_GRU, rb = cell == NC_RNN_GRU_RB
    cdef void *pz = _opt_seq(fn, z, "z", code, T, B, G, True, cell != NC_RNN_SIMPLE)
    cdef void *ps1 = NULL
    if lstm:
        ps1 = _opt_seq(fn, s1, "c", code, T + 1, B, u, True, True)
    elif gru or rb:
        ps1 = _opt_seq(fn, s1, "rec" if gru else "q", code, T, B, G if gru else u, True, True)
    cdef void *ps2 = _opt_seq(fn, s2, "tc", code, T, B, u, True, lstm)
    if gru and xh is not None:
        raise ValueError(f"{fn}: the GRU takes x alone (no xh)")
    if not gru and (x is None) != (xh is None):
        raise ValueError(f"{fn}: x and xh go together (both arrays, or both None)")
    cdef void *px = NULL
    cdef void *pxh = NULL
    if x is not None:
        if rb:
            raise ValueError(f"{fn}: the GRU (reset before) takes z = x W + b on entry (no x)")
        _ndim(x, "x", 3)
        D = x.shape[2]
        if D < 1:
            raise ValueError(f"{fn}: x must have at least one feature, got shape {x.shape}")
        _seq(fn, x, "x", code, T, B, D, False)
        px = _ptr(x)
        if not gru:
            _seq(fn, xh, "xh", code, T, B, D + u + 1, True)
            _packed_for(fn, packed, code, D + u if bf else D + u + 1, G, bf)
            pxh = _ptr(xh)
    if x is None or gru:
        _packed_for(fn, packed, code, u, 2 * u if rb else G, bf)
    cdef void *pp2 = (_packed2(fn, packed2, "packed2 = U_h", code, u, u, bf, True) if rb else
                      _packed2(fn, packed2, "packed2 = W", code, D, G, bf, True) if gru and D else NULL)
    cdef void *pbias = NULL
    if bias is not None:
        if not (gru or (bf and x is not None)):
            raise ValueError(f"{fn}: bias goes with the GRU ([b_in; b_rec]), or with x under ACT_BF16 (else it is "
                             "[W; U; b]'s row)")
        _same_real(bias, "bias", code)
        if gru:
            _shape2(bias, "bias", 2, G)
        else:
            _shape1(bias, "bias", G)
        pbias = _ptr(bias)
    cdef void *pp = _ptr(packed)
    cdef void *ph = _ptr(h)
    cdef int rc
    if bf:
        with nogil:
            rc = nc_rnn_seq_forward_bf16(cell, T, B, D, u, act, <float>alpha, ract, <float>ralpha, <float*>pp,
                                         <float*>pp2, <float*>pbias, with_h0, <float*>px, <float*>pxh, <float*>pz,
                                         <float*>ps1, <float*>ps2, <float*>ph, n_threads)
    elif code == 0:
        with nogil:
            rc = nc_rnn_seq_forward_f32(cell, T, B, D, u, act, <float>alpha, ract, <float>ralpha, <float*>pp,
                                        <float*>pp2, <float*>pbias, with_h0, <float*>px, <float*>pxh, <float*>pz,
                                        <float*>ps1, <float*>ps2, <float*>ph, n_threads)
    else:
        with nogil:
            rc = nc_rnn_seq_forward_f64(cell, T, B, D, u, act, alpha, ract, ralpha, <double*>pp, <double*>pp2,
                                        <double*>pbias, with_h0, <double*>px, <double*>pxh, <double*>pz,
                                        <double*>ps1, <double*>ps2, <double*>ph, n_threads)
    _seq_rc(fn, rc)
    return h


def rnn_seq_backward(int cell, int act, double alpha, int ract, double ralpha, packed_t, gates, h, dh, delta,
                     s1=None, s2=None, dc=None, drec=None, bint with_h0=False, bint h0=False, int n_threads=1,
                     xh=None, dP=None, bint add_dh=True, packed2_t=None):
    """A recurrent layer's backward step loop over a whole time-major sequence in one call; returns delta.

    For t = T-1 .. 0: the cell backward (`nncore._kernels.rnn`), then dh_{t-1} += its products with U^T
    (for t >= 1, or t = 0 too when with_h0). gates (T, B, G) (SimpleRNN: not taken), h (T + 1, B, u), s1
    and s2 as `rnn_seq_forward` left them; dh (T + 1, B, u): dL/dh_t from the outputs at [t + 1], updated
    in place (dh[t] += dL/dh_{t-1}; dh[0], the initial state's, only when with_h0; with add_dh False only
    dh[T] is read, the outputs before the last having no gradient, and dh[t] is written); delta (T, B, G)
    out: dL/dz (the GRU's dL/d(x W + b_in)); LSTM: dc (B, u) dL/dc_{T-1} in, dL/dc_{-1} out; GRU: drec (T,
    B, G) out, dL/d(h_{t-1} U + b_rec); GRU_RB: h0 when h[0] may be non-zero (its reset gate's gradient at
    t = 0). packed_t: U^T from ``pack_b(U, trans_b=True)``; GRU_RB: U_zr^T, and packed2_t U_h^T.

    LSTM and SimpleRNN with xh (T, B, K), the rows [x_t | h_{t-1} | 1] of `rnn_seq_forward`, and dP (K, G):
    also dP = xh^T delta, i.e. [dW; dU; db], summed step by step while each delta_t is in cache; delta may
    then be None (nothing of it is kept: it never goes to memory). The GRU (reset_after) with xh = x (T, B,
    D), the layer's input, and dP (D + u + 2, G): dP = [dW; db_in; dU; db_rec], [dW; db_in] = [x | 1]^T dx and
    [dU; db_rec] = [h_{t-1} | 1]^T drec summed likewise; delta and drec may then be None. The GRU (reset
    before) likewise with xh = x, s1 = q of `rnn_seq_forward` and dP (D + u + 1, G): dP = [dW; db; dU],
    [dW; db] = [x | 1]^T delta, dU_zr = H_prev^T delta_zr, dU_h = Q^T delta_h.

    mixed_bfloat16 (ACT_BF16 on act): the products on the bf16 micro-kernel, the kernels from
    ``pack_b_bf16(., trans_b=True)``; the cells round delta_t; dP on the bf16 GEMM.
    """
    cdef str fn = "rnn_seq_backward"
    cdef bint bf = (act & NC_ACT_BF16) != 0
    _cell_act(fn, act, "act")
    _cell_act(fn, ract, "ract")
    cdef int code = _real(h, "h")
    _ndim(h, "h", 3)
    cdef Py_ssize_t T = h.shape[0] - 1, B = h.shape[1], u = h.shape[2]
    cdef Py_ssize_t G = _cell_gates(fn, cell, u)
    if T < 0 or u == 0:
        raise ValueError(f"{fn}: h must have shape (T + 1, B, units), got {h.shape}")
    cdef bint lstm = cell == NC_RNN_LSTM, gru = cell == NC_RNN_GRU, rb = cell == NC_RNN_GRU_RB
    cdef void *pg = _opt_seq(fn, gates, "gates", code, T, B, G, False, cell != NC_RNN_SIMPLE)
    cdef void *ps1 = NULL
    if lstm:
        ps1 = _opt_seq(fn, s1, "c", code, T + 1, B, u, False, True)
    elif gru:
        ps1 = _opt_seq(fn, s1, "rec", code, T, B, G, False, True)
    elif rb and dP is not None:                     # q = r h_{t-1}: the rows of dU_h = q^T delta_h
        ps1 = _opt_seq(fn, s1, "q", code, T, B, u, False, True)
    cdef void *ps2 = _opt_seq(fn, s2, "tc", code, T, B, u, False, lstm)
    cdef void *pdrec = _opt_seq(fn, drec, "drec", code, T, B, G, True, gru and (drec is not None or dP is None))
    _seq(fn, dh, "dh", code, T + 1, B, u, True)
    if (xh is None) != (dP is None):
        raise ValueError(f"{fn}: xh and dP go together (both arrays, or both None)")
    if delta is None and xh is None:
        raise ValueError(f"{fn}: delta may be None only with xh and dP")
    cdef Py_ssize_t K = 0
    cdef void *pxh = NULL
    cdef void *pdP = NULL
    cdef void *pd = NULL
    if xh is not None:
        _ndim(xh, "xh", 3)
        K = xh.shape[2]
        _seq(fn, xh, "xh", code, T, B, K, False)
        if gru:                                     # xh is x: dP holds [dW; db_in; dU; db_rec]
            K += u + 2
        elif rb:                                    # xh is x: dP holds [dW; db; dU]
            K += u + 1
        _same_real(dP, "dP", code)
        _shape2(dP, "dP", K, G)
        _writable(dP, "dP")
        pxh, pdP = _ptr(xh), _ptr(dP)
    if delta is not None:
        _seq(fn, delta, "delta", code, T, B, G, True)
        pd = _ptr(delta)
    cdef void *pdc = NULL
    if lstm:
        if dc is None:
            raise ValueError(f"{fn}: dc is needed by this cell")
        _same_real(dc, "dc", code)
        _shape2(dc, "dc", B, u)
        _writable(dc, "dc")
        pdc = _ptr(dc)
    _packed_for(fn, packed_t, code, 2 * u if rb else G, u, bf)
    cdef void *pp2 = _packed2(fn, packed2_t, "packed2_t = U_h^T", code, u, u, bf, rb)
    cdef void *pp = _ptr(packed_t)
    cdef void *ph = _ptr(h)
    cdef void *pdh = _ptr(dh)
    cdef int rc
    if bf:
        with nogil:
            rc = nc_rnn_seq_backward_bf16(cell, T, B, u, act, <float>alpha, ract, <float>ralpha, <float*>pp,
                                          <float*>pp2, with_h0, h0, add_dh, <float*>pg, <float*>ps1, <float*>ps2,
                                          <float*>ph, <float*>pdh, <float*>pdc, <float*>pd, <float*>pdrec, K,
                                          <float*>pxh, <float*>pdP, n_threads)
    elif code == 0:
        with nogil:
            rc = nc_rnn_seq_backward_f32(cell, T, B, u, act, <float>alpha, ract, <float>ralpha, <float*>pp,
                                         <float*>pp2, with_h0, h0, add_dh, <float*>pg, <float*>ps1, <float*>ps2,
                                         <float*>ph, <float*>pdh, <float*>pdc, <float*>pd, <float*>pdrec, K,
                                         <float*>pxh, <float*>pdP, n_threads)
    else:
        with nogil:
            rc = nc_rnn_seq_backward_f64(cell, T, B, u, act, alpha, ract, ralpha, <double*>pp, <double*>pp2,
                                         with_h0, h0, add_dh, <double*>pg, <double*>ps1, <double*>ps2,
                                         <double*>ph, <double*>pdh, <double*>pdc, <double*>pd, <double*>pdrec, K,
                                         <double*>pxh, <double*>pdP, n_threads)
    _seq_rc(fn, rc)
    return delta


cdef int _lstm_shapes(str fn, object z, str zname, object h, str hname) except -1:
    """z (T, B, 4u) and h (T + 1, B, u): the LSTM's units from z's columns, h's shape from them."""
    _real(z, zname)
    _ndim(z, zname, 3)
    cdef Py_ssize_t T = z.shape[0], B = z.shape[1], G = z.shape[2], u = G // 4
    if G % 4 or u == 0:
        raise ValueError(f"{fn}: {zname} must have 4 * units columns, got shape {z.shape}")
    _ndim(h, hname, 3)
    if h.shape[0] != T + 1 or h.shape[1] != B or h.shape[2] != u:
        raise ValueError(f"{fn}: {hname}: expected shape ({T + 1}, {B}, {u}), got {h.shape}")
    return 0


def lstm_seq_forward(int act, double alpha, int ract, double ralpha, packed, z, c, tc, h, bint with_h0=False,
                     int n_threads=1, x=None, xh=None, bias=None):
    """The LSTM's step loop: `rnn_seq_forward` with RNN_LSTM (c and tc its s1 and s2); returns h."""
    _lstm_shapes("lstm_seq_forward", z, "z", h, "h")
    return rnn_seq_forward(NC_RNN_LSTM, act, alpha, ract, ralpha, packed, z, h, c, tc, with_h0, n_threads, x, xh,
                           bias)


def lstm_seq_backward(int act, double alpha, int ract, double ralpha, packed_t, gates, c, tc, dh, dc, delta,
                      bint with_h0=False, int n_threads=1, xh=None, dP=None, bint add_dh=True):
    """The LSTM's backward step loop: `rnn_seq_backward` with RNN_LSTM (c and tc its s1 and s2; h is not
    read: dh stands in for its shape); returns delta."""
    _lstm_shapes("lstm_seq_backward", gates, "gates", dh, "dh")
    return rnn_seq_backward(NC_RNN_LSTM, act, alpha, ract, ralpha, packed_t, gates, dh, dh, delta, c, tc, dc,
                            None, with_h0, False, n_threads, xh, dP, add_dh)


cdef int _seq_rc(str fn, int rc) except -1:
    if rc == -2:
        raise ValueError(f"{fn}: the packed kernel holds another shape or was packed for another SIMD level; "
                         "pack it again")
    if rc == -3:
        raise ValueError(f"{fn}: delta and dP are both None")
    if rc != 0:
        raise MemoryError(f"{fn}: no memory for the workspace")
    return 0
