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
