# conv.pyx -- Python face of csrc/conv.c: im2col/col2im and 2-D pooling, channels_last.
# Images are C-contiguous (n, h, w, c) arrays. The geometry (window, strides,
# dilation, padding before, output size) is checked here, then one C call runs
# without the GIL. Output sizes are the caller's (the layers compute Keras's
# 'valid'/'same' sizes); any consistent geometry is memory-safe, taps outside
# the image being padding.
from nncore._kernels.nncore cimport *
include "_check.pxi"


cdef int _pair(object v, str name, Py_ssize_t lo, Py_ssize_t *out) except -1:
    try:
        a, b = v
        a, b = int(a), int(b)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected a pair of ints, got {v!r}") from None
    if a < lo or b < lo:
        raise ValueError(f"{name}: expected values >= {lo}, got {v!r}")
    out[0] = a
    out[1] = b
    return 0


cdef int _geom(nc_conv_geom *g, object x, str xname, object window, object strides, object dilation, object pad,
               object out_hw) except -1:
    """Fill g from the (n, h, w, c) array x and the window geometry."""
    _ndim(x, xname, 4)
    cdef Py_ssize_t p[2]
    g.n, g.h, g.w, g.c = x.shape[0], x.shape[1], x.shape[2], x.shape[3]
    _pair(window, "window", 1, p)
    g.kh, g.kw = p[0], p[1]
    _pair(strides, "strides", 1, p)
    g.sh, g.sw = p[0], p[1]
    _pair(dilation, "dilation", 1, p)
    g.dh, g.dw = p[0], p[1]
    _pair(pad, "pad", 0, p)
    g.pt, g.pl = p[0], p[1]
    _pair(out_hw, "out_hw", 1, p)
    g.oh, g.ow = p[0], p[1]
    return 0


cdef Py_ssize_t _window_kernel(object a, str name, int code, const nc_conv_geom *g, str fn, bint out) except -1:
    """a (kh kw c, filters) of x's dtype for the window of g (written when out): returns filters."""
    cdef Py_ssize_t k = g.kh * g.kw * g.c
    _same_real(a, name, code)
    _ndim(a, name, 2)
    if a.shape[0] != k:
        raise ValueError(f"{fn}: {name} has {a.shape[0]} rows, the window takes kh kw c = {k}")
    if out:
        _writable(a, name)
    return a.shape[1]


cdef int _image(object a, str name, int code, Py_ssize_t n, Py_ssize_t h, Py_ssize_t w, Py_ssize_t c) except -1:
    _same_real(a, name, code)
    _ndim(a, name, 4)
    if a.shape != (n, h, w, c):
        raise ValueError(f"{name}: expected shape {(n, h, w, c)}, got {a.shape}")
    return 0


def im2col(x, cols, window, strides=(1, 1), dilation=(1, 1), pad=(0, 0), out_hw=None, int n_threads=1):
    """cols[(b, oh, ow), (i, j, c)] = x[b, oh sh - pt + i dh, ow sw - pl + j dw, c] (0 outside x).

    x: (n, h, w, c); cols: (n oh ow, kh kw c), written; returns cols. window = (kh, kw),
    pad = (pt, pl) the padding before the first row and column, out_hw = (oh, ow).
    """
    cdef nc_conv_geom g
    cdef int code = _real(x, "x")
    _geom(&g, x, "x", window, strides, dilation, pad, out_hw)
    _same_real(cols, "cols", code)
    _shape2(cols, "cols", g.n * g.oh * g.ow, g.kh * g.kw * g.c)
    _writable(cols, "cols")
    cdef void *px = _ptr(x)
    cdef void *pc = _ptr(cols)
    with nogil:
        if code == 0:
            nc_im2col_f32(&g, <float*>px, <float*>pc, n_threads)
        else:
            nc_im2col_f64(&g, <double*>px, <double*>pc, n_threads)
    return cols


def conv_forward(x, kernel, y, bias=None, int act=0, double act_alpha=0.0, window=(1, 1), strides=(1, 1),
                 dilation=(1, 1), pad=(0, 0), out_hw=None, cols=None, int n_threads=1):
    """y := act(im2col(x) @ kernel + bias), the cols rows made and multiplied a block at a time while in
    cache; also written to cols when given (what backward needs), else never stored. x (n, h, w, c);
    kernel (kh kw c, filters) and bias (filters,) or None of x's dtype; y (n oh ow, filters), written;
    cols None or (n oh ow, kh kw c); act: any activation code but softmax. Returns y.
    """
    cdef nc_conv_geom g
    cdef int code = _real(x, "x")
    _geom(&g, x, "x", window, strides, dilation, pad, out_hw)
    cdef Py_ssize_t k = g.kh * g.kw * g.c
    cdef Py_ssize_t f = _window_kernel(kernel, "kernel", code, &g, "conv_forward", False)
    _act("conv_forward", act, code)
    _block(y, "y", code, g.n * g.oh * g.ow, f, True)
    cdef void *pbias = _opt_vec(bias, "bias", code, f)
    cdef void *pc = NULL
    if cols is not None:
        _block(cols, "cols", code, g.n * g.oh * g.ow, k, True)
        pc = _ptr(cols)
    cdef void *px = _ptr(x)
    cdef void *pk = _ptr(kernel)
    cdef void *py = _ptr(y)
    cdef int err
    with nogil:
        if code == 0:
            err = nc_conv_forward_f32(&g, <float*>px, <float*>pk, f, <float*>pbias, act, <float>act_alpha,
                                      <float*>py, <float*>pc, n_threads)
        else:
            err = nc_conv_forward_f64(&g, <double*>px, <double*>pk, f, <double*>pbias, act, act_alpha,
                                      <double*>py, <double*>pc, n_threads)
    if err:
        raise MemoryError("conv_forward: out of memory for the packed kernel or a thread's block")
    return y


def conv_backward_weights(x, dy, y, dkernel, dbias=None, int act=0, double act_alpha=0.0, z=None, delta=None,
                          window=(1, 1), strides=(1, 1), dilation=(1, 1), pad=(0, 0), out_hw=None, int n_threads=1):
    """The weight gradients of y = act(im2col(x) @ kernel + bias) from dy = dL/dy, in one pass over row
    blocks (cols never stored): delta = dy * act'(z) (z, the pre-activation, only where act' needs it;
    written to delta when given), dkernel := im2col(x)^T delta, dbias (or None) := the column sums of
    delta. x (n, h, w, c); dy, y, z, delta (n oh ow, filters); dkernel (kh kw c, filters); act: any
    activation code but softmax, with ACT_BF16 on float32 (x holding bfloat16 values: delta and dkernel
    rounded to bfloat16, dbias the float32 sum of the rounded delta; mixed_bfloat16's short-k route).
    Returns delta, or dy when act is linear, or None."""
    cdef nc_conv_geom g
    cdef int code = _real(x, "x")
    _geom(&g, x, "x", window, strides, dilation, pad, out_hw)
    cdef Py_ssize_t m = g.n * g.oh * g.ow
    cdef Py_ssize_t f = _window_kernel(dkernel, "dkernel", code, &g, "conv_backward_weights", True)
    _act("conv_backward_weights", act, code)
    _block(dy, "dy", code, m, f, False)
    _block(y, "y", code, m, f, False)
    cdef void *pz = NULL
    if z is not None:
        _block(z, "z", code, m, f, False)
        pz = _ptr(z)
    elif nc_act_needs_input(act):
        raise ValueError(f"conv_backward_weights: activation code {act} needs its pre-activation z; got z=None")
    cdef void *pdelta = NULL
    if delta is not None:
        _block(delta, "delta", code, m, f, True)
        pdelta = _ptr(delta)
    cdef void *pdb = _opt_vec(dbias, "dbias", code, f, True)
    cdef void *px = _ptr(x)
    cdef void *pdy = _ptr(dy)
    cdef void *py = _ptr(y)
    cdef void *pdk = _ptr(dkernel)
    cdef int err
    with nogil:
        if code == 0:
            err = nc_conv_backward_weights_f32(&g, <float*>px, f, act, <float>act_alpha, <float*>pz, <float*>py,
                                               <float*>pdy, <float*>pdelta, <float*>pdk, <float*>pdb, n_threads)
        else:
            err = nc_conv_backward_weights_f64(&g, <double*>px, f, act, act_alpha, <double*>pz, <double*>py,
                                               <double*>pdy, <double*>pdelta, <double*>pdk, <double*>pdb, n_threads)
    if err:
        raise MemoryError("conv_backward_weights: out of memory for a thread's block or the parts' sums")
    return dy if act == 0 else delta


cdef int _pair_act(str fn, int act, int code) except -1:
    _act(fn, act, code)
    if (act & ~NC_ACT_BF16) != NC_ACT_LINEAR and (act & ~NC_ACT_BF16) != NC_ACT_RELU:
        raise ValueError(f"{fn}: the conv + max pool pair takes relu ({NC_ACT_RELU}) or linear (0), got activation "
                         f"code {act}")
    return 0


cdef int _u8_index(object idx, str name, tuple shape, bint out) except -1:
    if not isinstance(idx, np.ndarray) or idx.dtype != np.uint8 or not idx.flags.c_contiguous:
        raise TypeError(f"{name}: expected a C-contiguous uint8 ndarray, got "
                        f"{getattr(idx, 'dtype', type(idx).__name__)}")
    if idx.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {idx.shape}")
    if out:
        _writable(idx, name)
    return 0


def conv_pool_forward(x, kernel, yp, bias=None, int act=0, double act_alpha=0.0, window=(1, 1), strides=(1, 1),
                      dilation=(1, 1), pad=(0, 0), out_hw=None, idx=None, int n_threads=1):
    """yp := MaxPooling2D(2x2, stride 2, 'valid') of act(im2col(x) @ kernel + bias), the conv output made and
    pooled a block of pooled rows at a time while in cache (never stored): `conv_forward` then
    `maxpool_forward`'s bits. x (n, h, w, c); kernel (kh kw c, filters); yp (n, oh // 2, ow // 2, filters),
    written; idx None or uint8 of yp's shape, written: the window's winner 2 di + dj (what backward needs);
    act: relu or linear, | ACT_BF16 on float32 (the conv output rounded to bfloat16 before the pool).
    Returns yp."""
    cdef nc_conv_geom g
    cdef int code = _real(x, "x")
    _geom(&g, x, "x", window, strides, dilation, pad, out_hw)
    cdef Py_ssize_t f = _window_kernel(kernel, "kernel", code, &g, "conv_pool_forward", False)
    _pair_act("conv_pool_forward", act, code)
    _image(yp, "yp", code, g.n, g.oh // 2, g.ow // 2, f)
    _writable(yp, "yp")
    cdef void *pbias = _opt_vec(bias, "bias", code, f)
    cdef uint8_t *pi = NULL
    if idx is not None:
        _u8_index(idx, "idx", yp.shape, True)
        pi = <uint8_t*>_ptr(idx)
    cdef void *px = _ptr(x)
    cdef void *pk = _ptr(kernel)
    cdef void *py = _ptr(yp)
    cdef int err
    with nogil:
        if code == 0:
            err = nc_conv_pool_forward_f32(&g, <float*>px, <float*>pk, f, <float*>pbias, act, <float>act_alpha,
                                           <float*>py, pi, n_threads)
        else:
            err = nc_conv_pool_forward_f64(&g, <double*>px, <double*>pk, f, <double*>pbias, act, act_alpha,
                                           <double*>py, pi, n_threads)
    if err:
        raise MemoryError("conv_pool_forward: out of memory for the packed kernel or a thread's block")
    return yp


def conv_pool_backward_weights(x, dyp, yp, idx, dkernel, dbias=None, int act=0, delta=None, window=(1, 1),
                               strides=(1, 1), dilation=(1, 1), pad=(0, 0), out_hw=None, int n_threads=1):
    """`conv_backward_weights` of the `conv_pool_forward` pair from the pool's gradient dyp, yp and idx
    (n, oh // 2, ow // 2, filters): each row block's delta (dyp at the winner where relu lets it through, 0
    elsewhere and in a dropped odd row or column; bfloat16-rounded under ACT_BF16) made in cache, written
    to delta ((n oh ow, filters) or None) when given; dkernel (kh kw c, filters), dbias (or None) as there.
    The same bits as maxpool_backward, then conv_backward_weights. Returns delta."""
    cdef nc_conv_geom g
    cdef int code = _real(x, "x")
    _geom(&g, x, "x", window, strides, dilation, pad, out_hw)
    cdef Py_ssize_t m = g.n * g.oh * g.ow
    cdef Py_ssize_t f = _window_kernel(dkernel, "dkernel", code, &g, "conv_pool_backward_weights", True)
    _pair_act("conv_pool_backward_weights", act, code)
    _image(yp, "yp", code, g.n, g.oh // 2, g.ow // 2, f)
    _image(dyp, "dyp", code, g.n, g.oh // 2, g.ow // 2, f)
    _u8_index(idx, "idx", yp.shape, False)
    cdef void *pdelta = NULL
    if delta is not None:
        _block(delta, "delta", code, m, f, True)
        pdelta = _ptr(delta)
    cdef void *pdb = _opt_vec(dbias, "dbias", code, f, True)
    cdef void *px = _ptr(x)
    cdef void *pdy = _ptr(dyp)
    cdef void *py = _ptr(yp)
    cdef uint8_t *pi = <uint8_t*>_ptr(idx)
    cdef void *pdk = _ptr(dkernel)
    cdef int err
    with nogil:
        if code == 0:
            err = nc_conv_pool_backward_weights_f32(&g, <float*>px, f, act, <float*>py, pi, <float*>pdy,
                                                    <float*>pdelta, <float*>pdk, <float*>pdb, n_threads)
        else:
            err = nc_conv_pool_backward_weights_f64(&g, <double*>px, f, act, <double*>py, pi, <double*>pdy,
                                                    <double*>pdelta, <double*>pdk, <double*>pdb, n_threads)
    if err:
        raise MemoryError("conv_pool_backward_weights: out of memory for a thread's block or the parts' sums")
    return delta


def conv_int8(x, w, w_scale, y, bias=None, int act=0, double act_alpha=0.0, window=(1, 1), strides=(1, 1),
              dilation=(1, 1), pad=(0, 0), out_hw=None, *, int qmax, int n_threads=1):
    """y := act(dequantize(quantize_rows(im2col(x)) @ w) + bias): `gemm_int8` (nncore._kernels.int8) of the
    cols matrix `im2col` makes, the same bits, without storing it (its rows gathered and quantized a block at
    a time). x (n, h, w, c); w (kh kw c, filters) int8; w_scale (filters,), bias (filters,) or None of x's
    dtype; y (n oh ow, filters), written; returns y. act: any activation code but softmax.
    """
    cdef nc_conv_geom g
    cdef int code = _real(x, "x")
    _geom(&g, x, "x", window, strides, dilation, pad, out_hw)
    if not isinstance(w, np.ndarray) or w.dtype != np.int8 or not w.flags.c_contiguous:
        raise TypeError("w: expected a C-contiguous int8 numpy.ndarray")
    cdef Py_ssize_t k = g.kh * g.kw * g.c
    _ndim(w, "w", 2)
    if w.shape[0] != k:
        raise ValueError(f"conv_int8: w has {w.shape[0]} rows, the window takes kh kw c = {k}")
    if k > NC_INT8_MAX_K:
        raise ValueError(f"conv_int8: k = {k} exceeds {NC_INT8_MAX_K}, beyond which an int32 sum of int8 "
                         "products may overflow")
    if not 1 <= qmax <= 127:
        raise ValueError(f"conv_int8: qmax must be in [1, 127], got {qmax}")
    if act < 0 or act >= NC_ACT_COUNT:
        raise ValueError(f"conv_int8: unknown activation code {act}")
    cdef Py_ssize_t f = w.shape[1]
    _same_real(w_scale, "w_scale", code)
    _shape1(w_scale, "w_scale", f)
    _block(y, "y", code, g.n * g.oh * g.ow, f, True)
    cdef void *pbias = _opt_vec(bias, "bias", code, f)
    cdef void *px = _ptr(x)
    cdef const int8_t *pw = <const int8_t*>_ptr(w)
    cdef void *ps = _ptr(w_scale)
    cdef void *py = _ptr(y)
    cdef int err
    with nogil:
        if code == 0:
            err = nc_conv_int8_f32(&g, <float*>px, qmax, pw, f, <float*>ps, <float*>pbias, act, <float>act_alpha,
                                   <float*>py, n_threads)
        else:
            err = nc_conv_int8_f64(&g, <double*>px, qmax, pw, f, <double*>ps, <double*>pbias, act, act_alpha,
                                   <double*>py, n_threads)
    if err:
        raise MemoryError("conv_int8: out of memory for the packed operands")
    return y


def col2im(cols, x, window, strides=(1, 1), dilation=(1, 1), pad=(0, 0), out_hw=None, int n_threads=1):
    """The adjoint of im2col: x[b, ih, iw, c] := sum of the cols entries im2col copies from there.

    x (n, h, w, c) is overwritten; returns x. Each image is summed in one fixed order by one thread.
    """
    cdef nc_conv_geom g
    cdef int code = _real(cols, "cols")
    _same_real(x, "x", code)
    _geom(&g, x, "x", window, strides, dilation, pad, out_hw)
    _shape2(cols, "cols", g.n * g.oh * g.ow, g.kh * g.kw * g.c)
    _writable(x, "x")
    cdef void *px = _ptr(x)
    cdef void *pc = _ptr(cols)
    with nogil:
        if code == 0:
            nc_col2im_f32(&g, <float*>pc, <float*>px, n_threads)
        else:
            nc_col2im_f64(&g, <double*>pc, <double*>px, n_threads)
    return x


cdef int _pool_geom(nc_conv_geom *g, object x, str xname, object y, str yname, int code, object pool,
                    object strides, object pad) except -1:
    _same_real(y, yname, code)
    _ndim(y, yname, 4)
    _geom(g, x, xname, pool, strides, (1, 1), pad, y.shape[1:3])
    _image(y, yname, code, g.n, g.oh, g.ow, g.c)
    if g.h * g.w >= 2 ** 31:
        raise ValueError(f"{xname}: images of {g.h} x {g.w} pixels are too large for int32 pooling indices")
    return 0


cdef int _index(object idx, str name, object like) except -1:
    if not isinstance(idx, np.ndarray) or idx.dtype != np.int32 or not idx.flags.c_contiguous:
        raise TypeError(f"{name}: expected a C-contiguous int32 ndarray, got "
                        f"{getattr(idx, 'dtype', type(idx).__name__)}")
    if idx.shape != like.shape:
        raise ValueError(f"{name}: expected shape {like.shape}, got {idx.shape}")
    return 0


def maxpool_forward(x, y, idx=None, pool=(2, 2), strides=None, pad=(0, 0), int n_threads=1):
    """y[b, oh, ow, c] = max of x over the pool window's taps inside the image; returns y.

    The output size is y's (n, oh, ow, c). idx (int32, shape of y, or None) gets the pixel
    ih * w + iw of the first maximum in row-major window order (what backward needs).
    strides default to pool.
    """
    cdef nc_conv_geom g
    cdef int code = _real(x, "x")
    _pool_geom(&g, x, "x", y, "y", code, pool, pool if strides is None else strides, pad)
    _writable(y, "y")
    cdef int32_t *pi = NULL
    if idx is not None:
        _index(idx, "idx", y)
        _writable(idx, "idx")
        pi = <int32_t*>_ptr(idx)
    cdef void *px = _ptr(x)
    cdef void *py = _ptr(y)
    with nogil:
        if code == 0:
            nc_maxpool_forward_f32(&g, <float*>px, <float*>py, pi, n_threads)
        else:
            nc_maxpool_forward_f64(&g, <double*>px, <double*>py, pi, n_threads)
    return y


def maxpool_backward(idx, dy, dx, pool=(2, 2), strides=None, pad=(0, 0), int n_threads=1):
    """dx := 0; dx[b, idx, c] += dy[b, oh, ow, c] (idx from maxpool_forward); returns dx."""
    cdef nc_conv_geom g
    cdef int code = _real(dy, "dy")
    _same_real(dx, "dx", code)
    _pool_geom(&g, dx, "dx", dy, "dy", code, pool, pool if strides is None else strides, pad)
    _index(idx, "idx", dy)
    _writable(dx, "dx")
    cdef int32_t *pi = <int32_t*>_ptr(idx)
    cdef void *pdy = _ptr(dy)
    cdef void *pdx = _ptr(dx)
    with nogil:
        if code == 0:
            nc_maxpool_backward_f32(&g, pi, <float*>pdy, <float*>pdx, n_threads)
        else:
            nc_maxpool_backward_f64(&g, pi, <double*>pdy, <double*>pdx, n_threads)
    return dx


def avgpool_forward(x, y, pool=(2, 2), strides=None, pad=(0, 0), int n_threads=1):
    """y = mean of x over the pool window's taps inside the image (padding not counted); returns y."""
    cdef nc_conv_geom g
    cdef int code = _real(x, "x")
    _pool_geom(&g, x, "x", y, "y", code, pool, pool if strides is None else strides, pad)
    _writable(y, "y")
    cdef void *px = _ptr(x)
    cdef void *py = _ptr(y)
    with nogil:
        if code == 0:
            nc_avgpool_forward_f32(&g, <float*>px, <float*>py, n_threads)
        else:
            nc_avgpool_forward_f64(&g, <double*>px, <double*>py, n_threads)
    return y


def avgpool_backward(dy, dx, pool=(2, 2), strides=None, pad=(0, 0), int n_threads=1):
    """dx := 0; dy / (taps inside) is added to every tap inside its window; returns dx."""
    cdef nc_conv_geom g
    cdef int code = _real(dy, "dy")
    _same_real(dx, "dx", code)
    _pool_geom(&g, dx, "dx", dy, "dy", code, pool, pool if strides is None else strides, pad)
    _writable(dx, "dx")
    cdef void *pdy = _ptr(dy)
    cdef void *pdx = _ptr(dx)
    with nogil:
        if code == 0:
            nc_avgpool_backward_f32(&g, <float*>pdy, <float*>pdx, n_threads)
        else:
            nc_avgpool_backward_f64(&g, <double*>pdy, <double*>pdx, n_threads)
    return dx


# ---- Winograd F(m x m, 3 x 3) (csrc/winograd.c) ----------------------------------------------------
cdef int _wino_geom(nc_conv_geom *g, object in_hw, tuple kshape, tuple yshape, str yname, int m, object pad,
                    Py_ssize_t sizes[3]) except -1:
    """Fill g for a stride-1 convolution of a (kh, 3, c, f) kernel (kh 1 or 3) whose output has
    shape yshape (n, oh, ow, f); sizes = the lengths of the work arrays U (= dU), V and M."""
    if m != 2 and m != 4:
        raise ValueError(f"m: expected 2 or 4 (the output tile of F(m x m, 3 x 3)), got {m}")
    if len(kshape) != 4 or kshape[0] not in (1, 3) or kshape[1] != 3:
        raise ValueError(f"kernel: expected shape (3, 3, c, f) or (1, 3, c, f), got {kshape}")
    if len(yshape) != 4 or yshape[3] != kshape[3] or yshape[1] < 1 or yshape[2] < 1:
        raise ValueError(f"{yname}: expected shape (n, oh, ow, {kshape[3]}) with oh, ow >= 1, got {yshape}")
    cdef Py_ssize_t p[2]
    _pair(in_hw, "in_hw", 1, p)
    g.n, g.h, g.w, g.c = yshape[0], p[0], p[1], kshape[2]
    g.kh, g.kw, g.sh, g.sw, g.dh, g.dw = kshape[0], 3, 1, 1, 1, 1
    _pair(pad, "pad", 0, p)
    g.pt, g.pl = p[0], p[1]
    g.oh, g.ow = yshape[1], yshape[2]
    cdef Py_ssize_t T = nc_wino_tiles(g, m), mh = m if g.kh == 3 else 1
    cdef Py_ssize_t a2 = (mh + g.kh - 1) * (m + 2)
    sizes[0], sizes[1], sizes[2] = a2 * g.c * kshape[3], a2 * T * g.c, a2 * T * kshape[3]
    return 0


cdef int _bf16_real(bint bf16, int code, str fn) except -1:
    if bf16 and code != 0:
        raise TypeError(f"{fn}: bf16=True needs float32 arrays (the variables of mixed_bfloat16)")
    return 0


cdef int _work(object a, str name, int code, Py_ssize_t size) except -1:
    _same_real(a, name, code)
    _shape1(a, name, size)
    _writable(a, name)
    return 0


cdef int _wino_backward_arrays(object U, object V, object M, object dU, object dkernel, object dx, int code,
                               const nc_conv_geom *g, const Py_ssize_t *sizes, void **pdx) except -1:
    """The arrays wino_backward and wino_pool_backward share: dkernel written, U as the forward left it, the
    work arrays V, M, dU, and dx (n, h, w, c) or None (*pdx NULL then)."""
    _writable(dkernel, "dkernel")
    _same_real(U, "U", code)
    _shape1(U, "U", sizes[0])
    _work(V, "V", code, sizes[1])
    _work(M, "M", code, sizes[2])
    _work(dU, "dU", code, sizes[0])
    pdx[0] = NULL
    if dx is not None:
        _image(dx, "dx", code, g.n, g.h, g.w, g.c)
        _writable(dx, "dx")
        pdx[0] = _ptr(dx)
    return 0


cdef void *_wino_forward_arrays(object U, object V, int code, const Py_ssize_t *sizes) except? NULL:
    """U (written) and V (written, or None at inference: NULL) of wino_forward and wino_pool_forward; returns
    V's pointer."""
    _work(U, "U", code, sizes[0])
    if V is None:
        return NULL
    _work(V, "V", code, sizes[1])
    return _ptr(V)


def wino_sizes(x_shape, kernel_shape, int m, out_hw):
    """(len U, len V, len M) of the work arrays of wino_forward/wino_backward (len dU = len U) for
    inputs x_shape (n, h, w, c), a kernel (kh, 3, c, f) and the output size out_hw (oh, ow)."""
    cdef nc_conv_geom g
    cdef Py_ssize_t sizes[3]
    n, h, w, c = x_shape
    kshape = tuple(int(v) for v in kernel_shape)
    if len(kshape) != 4 or kshape[2] != c:
        raise ValueError(f"kernel_shape: expected (kh, 3, {c}, f), got {kshape}")
    oh, ow = out_hw
    _wino_geom(&g, (h, w), kshape, (int(n), int(oh), int(ow), kshape[3]), "out", m, (0, 0), sizes)
    return sizes[0], sizes[1], sizes[2]


def wino_forward(x, kernel, bias, U, V, y, int m, pad=(0, 0), int act=0, double act_alpha=0.0,
                 int n_threads=1, bint bf16=False):
    """y = act(conv(x, kernel) + bias) by Winograd F(m x m, 3 x 3), stride 1; returns y.

    x: (n, h, w, c); kernel: (3, 3, c, f) or (1, 3, c, f) (F(m, 3) along the width); bias: (f,) or
    None; y (n, oh, ow, f) gives the output size, pad = (pt, pl) the padding before the first row
    and column. U, V: 1-D work arrays of the lengths wino_sizes gives; U (the transformed kernel) and
    V (the transformed input) are what wino_backward needs (the tiles are transformed, multiplied and
    finished a block at a time: their products, backward's M, never stored). V None (inference): V
    not stored either.
    bf16 (float32 only): the mixed_bfloat16 convolution, y = bf(act(conv(bf(x), bf(kernel)) + bias))
    with float32 sums (bf: rounded to bfloat16; csrc/winograd.c).
    """
    cdef nc_conv_geom g
    cdef Py_ssize_t sizes[3]
    cdef int code = _real(x, "x")
    _bf16_real(bf16, code, "wino_forward")
    _ndim(x, "x", 4)
    _same_real(kernel, "kernel", code)
    _same_real(y, "y", code)
    _wino_geom(&g, x.shape[1:3], kernel.shape, y.shape, "y", m, pad, sizes)
    if x.shape[0] != g.n or x.shape[3] != g.c:
        raise ValueError(f"x: expected shape ({g.n}, h, w, {g.c}) for kernel {kernel.shape} and y {y.shape}, "
                         f"got {x.shape}")
    _writable(y, "y")
    cdef void *pv = _wino_forward_arrays(U, V, code, sizes)
    if act < 0 or act >= NC_ACT_COUNT:
        raise ValueError(f"wino_forward: unknown activation code {act}")
    cdef Py_ssize_t f = kernel.shape[3]
    cdef void *pbias = _opt_vec(bias, "bias", code, f)
    cdef void *px = _ptr(x)
    cdef void *pk = _ptr(kernel)
    cdef void *pu = _ptr(U)
    cdef void *py = _ptr(y)
    cdef int err
    with nogil:
        if code == 0:
            err = nc_wino_forward_f32(&g, m, bf16, f, <float*>px, <float*>pk, <float*>pbias, act, <float>act_alpha,
                                      <float*>pu, <float*>pv, <float*>py, n_threads)
        else:
            err = nc_wino_forward_f64(&g, m, 0, f, <double*>px, <double*>pk, <double*>pbias, act, act_alpha,
                                      <double*>pu, <double*>pv, <double*>py, n_threads)
    if err:
        raise MemoryError("wino_forward: out of memory for the packed U or a thread's work block")
    return y


def wino_backward(delta, U, V, M, dU, dkernel, dx, in_hw, int m, pad=(0, 0), int n_threads=1, bint bf16=False):
    """The adjoint of wino_forward from delta = dL/dz (n, oh, ow, f); returns dx.

    U and V as wino_forward left them (both only read); M and dU are work arrays; dkernel
    (kh, 3, c, f) is overwritten with dL/dkernel, and dx (n, h, w, c) with dL/dx unless it is None
    (not computed). in_hw = (h, w), the input's size. bf16 (float32 only; U and V from a bf16
    forward): delta rounded to bfloat16 as it is read, dkernel rounded as it is written, dx the
    float32 sum.
    """
    cdef nc_conv_geom g
    cdef Py_ssize_t sizes[3]
    cdef int code = _real(delta, "delta")
    _bf16_real(bf16, code, "wino_backward")
    _same_real(dkernel, "dkernel", code)
    _wino_geom(&g, in_hw, dkernel.shape, delta.shape, "delta", m, pad, sizes)
    cdef void *pdx
    _wino_backward_arrays(U, V, M, dU, dkernel, dx, code, &g, sizes, &pdx)
    cdef Py_ssize_t f = dkernel.shape[3]
    cdef void *pd = _ptr(delta)
    cdef void *pu = _ptr(U)
    cdef void *pv = _ptr(V)
    cdef void *pm = _ptr(M)
    cdef void *pdu = _ptr(dU)
    cdef void *pk = _ptr(dkernel)
    cdef int err
    with nogil:
        if code == 0:
            err = nc_wino_backward_f32(&g, m, bf16, f, <float*>pd, <float*>pu, <float*>pv, <float*>pm, <float*>pdu,
                                       <float*>pk, <float*>pdx, n_threads)
        else:
            err = nc_wino_backward_f64(&g, m, 0, f, <double*>pd, <double*>pu, <double*>pv, <double*>pm,
                                       <double*>pdu, <double*>pk, <double*>pdx, n_threads)
    if err:
        raise MemoryError("wino_backward: out of memory for the packed U^T or a thread's dV block")
    return dx


def unpool2_colsum(yp, idx, dyp, db, out_hw, int act=0):
    """db (f,) := the column sums of the pair's delta (as `conv_pool_backward_weights` makes it) for the conv output size out_hw (oh, ow), in
    colsum's order (the same bits as colsum of that delta). Returns db."""
    cdef Py_ssize_t p[2]
    _pair(out_hw, "out_hw", 1, p)
    cdef int code = _real(yp, "yp")
    _pair_act("unpool2_colsum", act, code)
    _ndim(yp, "yp", 4)
    cdef Py_ssize_t n = yp.shape[0], f = yp.shape[3]
    _image(yp, "yp", code, n, p[0] // 2, p[1] // 2, f)
    _image(dyp, "dyp", code, n, p[0] // 2, p[1] // 2, f)
    _u8_index(idx, "idx", yp.shape, False)
    _vec(db, "db", code, f, True)
    cdef void *py = _ptr(yp)
    cdef void *pdy = _ptr(dyp)
    cdef void *pdb = _ptr(db)
    cdef uint8_t *pi = <uint8_t*>_ptr(idx)
    with nogil:
        if code == 0:
            nc_unpool2_colsum_f32(n, p[0], p[1], f, act, <float*>py, pi, <float*>pdy, <float*>pdb)
        else:
            nc_unpool2_colsum_f64(n, p[0], p[1], f, act, <double*>py, pi, <double*>pdy, <double*>pdb)
    return db


cdef int _pair_wino(tuple kshape, object yp, str name, str fn) except -1:
    if len(kshape) != 4 or kshape[0] != 3:
        raise ValueError(f"{fn}: the pair takes a (3, 3, c, f) kernel (whole 2x2 windows in a tile), got {kshape}")
    _real(yp, name)                               # an ndarray of float32/64 before its shape is read
    _ndim(yp, name, 4)
    return 0


def wino_pool_forward(x, kernel, bias, U, V, yp, idx, out_hw, int m, pad=(0, 0), int act=0, double act_alpha=0.0,
                      int n_threads=1, bint bf16=False):
    """`wino_forward` of the conv + max pool pair: yp (n, oh // 2, ow // 2, f) := the 2x2, stride-2 'valid' max
    pool of act(conv(x, kernel) + bias) for the conv output size out_hw = (oh, ow), made in the output
    transform (the conv output never written); idx (uint8 of yp's shape, or None) := the winner 2 di + dj;
    act relu or linear. The same bits as wino_forward then maxpool_forward. Returns yp."""
    cdef nc_conv_geom g
    cdef Py_ssize_t sizes[3]
    cdef Py_ssize_t p[2]
    cdef int code = _real(x, "x")
    _bf16_real(bf16, code, "wino_pool_forward")
    _ndim(x, "x", 4)
    _same_real(kernel, "kernel", code)
    _pair_wino(kernel.shape, yp, "yp", "wino_pool_forward")
    _pair(out_hw, "out_hw", 1, p)
    _wino_geom(&g, x.shape[1:3], kernel.shape, (x.shape[0], p[0], p[1], kernel.shape[3]), "out", m, pad, sizes)
    if x.shape[3] != g.c:
        raise ValueError(f"x: expected shape (n, h, w, {g.c}) for kernel {kernel.shape}, got {x.shape}")
    _pair_act("wino_pool_forward", act, code)
    cdef Py_ssize_t f = kernel.shape[3]
    _image(yp, "yp", code, g.n, g.oh // 2, g.ow // 2, f)
    _writable(yp, "yp")
    cdef uint8_t *pi = NULL
    if idx is not None:
        _u8_index(idx, "idx", yp.shape, True)
        pi = <uint8_t*>_ptr(idx)
    cdef void *pv = _wino_forward_arrays(U, V, code, sizes)
    cdef void *pbias = _opt_vec(bias, "bias", code, f)
    cdef void *px = _ptr(x)
    cdef void *pk = _ptr(kernel)
    cdef void *pu = _ptr(U)
    cdef void *py = _ptr(yp)
    cdef int err
    with nogil:
        if code == 0:
            err = nc_wino_pool_forward_f32(&g, m, bf16, f, <float*>px, <float*>pk, <float*>pbias, act,
                                           <float>act_alpha, <float*>pu, <float*>pv, <float*>py, pi, n_threads)
        else:
            err = nc_wino_pool_forward_f64(&g, m, 0, f, <double*>px, <double*>pk, <double*>pbias, act, act_alpha,
                                           <double*>pu, <double*>pv, <double*>py, pi, n_threads)
    if err:
        raise MemoryError("wino_pool_forward: out of memory for the packed U or a thread's work block")
    return yp


def wino_pool_backward(dyp, yp, idx, U, V, M, dU, dkernel, dx, in_hw, out_hw, int m, pad=(0, 0), int act=0,
                       int n_threads=1, bint bf16=False):
    """`wino_backward` of the conv + max pool pair from the pool's gradient dyp, yp and idx (n, oh // 2,
    ow // 2, f): delta made in the output-gradient transform (never stored). out_hw = (oh, ow), the conv
    output's size; the rest as wino_backward. The same bits as maxpool_backward, relu' and wino_backward.
    Returns dx."""
    cdef nc_conv_geom g
    cdef Py_ssize_t sizes[3]
    cdef Py_ssize_t p[2]
    cdef int code = _real(dyp, "dyp")
    _bf16_real(bf16, code, "wino_pool_backward")
    _same_real(dkernel, "dkernel", code)
    _pair_wino(dkernel.shape, dyp, "dyp", "wino_pool_backward")
    _pair(out_hw, "out_hw", 1, p)
    _wino_geom(&g, in_hw, dkernel.shape, (dyp.shape[0], p[0], p[1], dkernel.shape[3]), "out", m, pad, sizes)
    _pair_act("wino_pool_backward", act, code)
    cdef Py_ssize_t f = dkernel.shape[3]
    _image(dyp, "dyp", code, g.n, g.oh // 2, g.ow // 2, f)
    _image(yp, "yp", code, g.n, g.oh // 2, g.ow // 2, f)
    _u8_index(idx, "idx", yp.shape, False)
    cdef void *pdx
    _wino_backward_arrays(U, V, M, dU, dkernel, dx, code, &g, sizes, &pdx)
    cdef void *pd = _ptr(dyp)
    cdef void *pyp = _ptr(yp)
    cdef uint8_t *pi = <uint8_t*>_ptr(idx)
    cdef void *pu = _ptr(U)
    cdef void *pv = _ptr(V)
    cdef void *pm = _ptr(M)
    cdef void *pdu = _ptr(dU)
    cdef void *pk = _ptr(dkernel)
    cdef int err
    with nogil:
        if code == 0:
            err = nc_wino_pool_backward_f32(&g, m, bf16, f, act, <float*>pyp, pi, <float*>pd, <float*>pu, <float*>pv,
                                            <float*>pm, <float*>pdu, <float*>pk, <float*>pdx, n_threads)
        else:
            err = nc_wino_pool_backward_f64(&g, m, 0, f, act, <double*>pyp, pi, <double*>pd, <double*>pu,
                                            <double*>pv, <double*>pm, <double*>pdu, <double*>pk, <double*>pdx,
                                            n_threads)
    if err:
        raise MemoryError("wino_pool_backward: out of memory for the packed U^T or a thread's dV block")
    return dx
