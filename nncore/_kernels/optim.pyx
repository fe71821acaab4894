# optim.pyx -- the fused optimizer step and the per-segment sum of squares.
#
# Design: the Python optimizer computes every per-step scalar in double
# (bias corrections, the scheduled learning rate, clip scales) and calls
# `step` once per step over a whole buffer; `step` checks every array BEFORE
# taking a pointer, fills an nc_optim_step and makes one C call without the
# GIL. The rule of each kind is in csrc/nncore.h (enum nc_optim_kind).
from libc.stdint cimport int64_t
from libc.math cimport isfinite
from nncore._kernels.nncore cimport *
include "_check.pxi"

KINDS = {
    "sgd": NC_OPT_SGD,
    "adagrad": NC_OPT_ADAGRAD,
    "rmsprop": NC_OPT_RMSPROP,
    "adam": NC_OPT_ADAM,
    "adadelta": NC_OPT_ADADELTA,
    "adamax": NC_OPT_ADAMAX,
    "nadam": NC_OPT_NADAM,
    "ftrl": NC_OPT_FTRL,
}
NESTEROV = NC_OPT_NESTEROV
CENTERED = NC_OPT_CENTERED
AMSGRAD = NC_OPT_AMSGRAD
NCOEF = NC_OPT_NCOEF


def nslots(int kind, int flags, coef):
    """Number of slot arrays the rule `kind` with these flags and scalars needs."""
    cdef double c[8]
    _fill_coef(c, coef)
    cdef int k = nc_optim_nslots(kind, flags, c)
    if k < 0:
        raise ValueError(f"kind: unknown optimizer kind {kind}")
    return k


cdef int _fill_coef(double *c, coef) except -1:
    cdef Py_ssize_t i, m = len(coef)
    if m > NC_OPT_NCOEF:
        raise ValueError(f"coef: expected at most {NC_OPT_NCOEF} scalars, got {m}")
    for i in range(NC_OPT_NCOEF):
        c[i] = float(coef[i]) if i < m else 0.0
    return 0


cdef int _check_segments(object seg_start, Py_ssize_t n, str name) except -1:
    """seg_start: int64 C-contiguous 1-D, seg_start[0] == 0, non-decreasing, last == n."""
    if not isinstance(seg_start, cnp.ndarray) or seg_start.dtype != np.int64 or seg_start.ndim != 1 \
            or not seg_start.flags.c_contiguous:
        raise TypeError(f"{name}: expected a C-contiguous 1-D int64 ndarray")
    if seg_start.shape[0] < 2:
        raise ValueError(f"{name}: expected at least 2 offsets, got {seg_start.shape[0]}")
    cdef const int64_t[::1] s = seg_start
    cdef Py_ssize_t i
    if s[0] != 0 or s[s.shape[0] - 1] != n:
        raise ValueError(f"{name}: offsets must run from 0 to {n}, got {s[0]} .. {s[s.shape[0] - 1]}")
    for i in range(1, s.shape[0]):
        if s[i] < s[i - 1]:
            raise ValueError(f"{name}: offsets must be non-decreasing (index {i})")
    return 0


def step(int kind, int flags, coef, w, g, slots, double wd=0.0, double clipvalue=float("inf"),
         double scale=1.0, seg_start=None, seg_scale=None, int n_threads=1):
    """One fused optimizer step, in place on w and the slots.

    Per element: g := clip(g, -clipvalue, clipvalue) * scale_s ; w := w - w wd ;
    then the rule `kind` (see csrc/nncore.h) with the per-step scalars `coef`.
    w, g and every slot are C-contiguous arrays of one dtype and size (any shape).
    With seg_scale (float64, one per segment of seg_start) each segment uses its
    own gradient scale (per-variable clipnorm); otherwise `scale` applies to all.
    Returns whether every element of w is finite after the step (the kernel reads each chunk back
    while it is in cache: fit's per-step parameter check).
    """
    cdef nc_optim_step s
    if kind < 0 or kind >= NC_OPT_COUNT:
        raise ValueError(f"kind: unknown optimizer kind {kind}")
    s.kind = kind
    s.flags = flags
    _fill_coef(s.c, coef)
    if not isfinite(wd):
        raise ValueError(f"wd: expected a finite number, got {wd}")
    if not clipvalue >= 0:
        raise ValueError(f"clipvalue: expected >= 0 (inf for none), got {clipvalue}")
    s.wd = wd
    s.clipvalue = clipvalue
    s.scale = scale
    s.seg_start = NULL
    s.seg_scale = NULL
    s.nseg = 0
    cdef int code = _real(w, "w")
    _writable(w, "w")
    _same_real(g, "g", code)
    cdef Py_ssize_t n = _size(w)
    if _size(g) != n:
        raise ValueError(f"g: expected {n} elements like w, got shape {g.shape}")
    cdef int need = nc_optim_nslots(kind, flags, s.c)
    if not isinstance(slots, (list, tuple)) or len(slots) != need:
        got = len(slots) if isinstance(slots, (list, tuple)) else type(slots).__name__
        raise ValueError(f"slots: this rule needs a list of {need} arrays, got {got}")
    cdef void *sp[3]
    cdef int k
    for k in range(need):
        a = slots[k]
        nm = f"slots[{k}]"
        _same_real(a, nm, code)
        _writable(a, nm)
        if _size(a) != n:
            raise ValueError(f"{nm}: expected {n} elements like w, got shape {a.shape}")
    for k in range(need):
        sp[k] = _ptr(slots[k])
    for k in range(need, 3):
        sp[k] = NULL
    if seg_scale is not None:
        if seg_start is None:
            raise ValueError("seg_scale: needs seg_start")
        _check_segments(seg_start, n, "seg_start")
        _same_real(seg_scale, "seg_scale", 1)
        _shape1(seg_scale, "seg_scale", seg_start.shape[0] - 1)
        s.seg_start = <const int64_t *>_ptr(seg_start)
        s.seg_scale = <const double *>_ptr(seg_scale)
        s.nseg = seg_start.shape[0] - 1
    cdef void *pw = _ptr(w)
    cdef void *pg = _ptr(g)
    cdef int ok
    if code == 0:
        with nogil:
            ok = nc_optim_step_f32(&s, <float *>pw, <const float *>pg, <float *const *>sp, n, n_threads)
    else:
        with nogil:
            ok = nc_optim_step_f64(&s, <double *>pw, <const double *>pg, <double *const *>sp, n, n_threads)
    return ok == 1


def seg_sumsq(x, seg_start, out, int n_threads=1):
    """out[s] = sum of x[i]^2 over segment s of seg_start (float64 out), the same
    bits for a segment wherever it lies and for any n_threads. Returns out."""
    cdef int code = _real(x, "x")
    cdef Py_ssize_t n = _size(x)
    _check_segments(seg_start, n, "seg_start")
    _same_real(out, "out", 1)
    _writable(out, "out")
    _shape1(out, "out", seg_start.shape[0] - 1)
    cdef void *px = _ptr(x)
    cdef const int64_t *ps = <const int64_t *>_ptr(seg_start)
    cdef double *po = <double *>_ptr(out)
    cdef Py_ssize_t nseg = seg_start.shape[0] - 1
    if code == 0:
        with nogil:
            nc_optim_seg_sumsq_f32(<const float *>px, ps, nseg, po, n_threads)
    else:
        with nogil:
            nc_optim_seg_sumsq_f64(<const double *>px, ps, nseg, po, n_threads)
    return out
