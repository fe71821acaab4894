# rnn.pyx -- Python face of the recurrent cells (csrc/rnn_body.h): one time step
# over a batch. Every argument is a C-contiguous (B, width) block of one float
# dtype; the wrapper checks them all, then releases the GIL for one C call.
# The recurrent layers (nncore/layers/recurrent.py) call these once per step,
# between the gemm calls that add h_{t-1} U (forward) and delta U^T (backward).
from nncore._kernels.nncore cimport *
include "_check.pxi"


cdef int _act_code(int act, str name) except -1:
    if act < 0 or act >= NC_ACT_COUNT:
        raise ValueError(f"{name}: unknown activation code {act}")
    if nc_act_needs_input(act):
        raise ValueError(f"{name}: activation code {act} needs its input for the derivative; "
                         "recurrent cells take activations whose derivative follows from the output")
    return 0


def lstm_cell_forward(int act, double alpha, int ract, double ralpha, z, c_prev, c, tc, h, int n_threads=1):
    """One LSTM step: z (B, 4u) pre-activations in, gates (i, f, g, o) out; writes c, tc = a(c), h = o tc."""
    _act_code(act, "lstm_cell_forward: act")
    _act_code(ract, "lstm_cell_forward: ract")
    cdef int code = _real(z, "z")
    _ndim(z, "z", 2)
    cdef Py_ssize_t B = z.shape[0], G = z.shape[1], u = G // 4
    if G % 4 or u == 0:
        raise ValueError(f"lstm_cell_forward: z must have 4 * units columns, got shape {z.shape}")
    _writable(z, "z")
    _block(c_prev, "c_prev", code, B, u, False)
    _block(c, "c", code, B, u, True)
    _block(tc, "tc", code, B, u, True)
    _block(h, "h", code, B, u, True)
    cdef void *pz = _ptr(z)
    cdef void *pcp = _ptr(c_prev)
    cdef void *pc = _ptr(c)
    cdef void *ptc = _ptr(tc)
    cdef void *ph = _ptr(h)
    if code == 0:
        with nogil:
            nc_lstm_cell_forward_f32(act, <float>alpha, ract, <float>ralpha, <float*>pz, <float*>pcp, <float*>pc,
                                     <float*>ptc, <float*>ph, B, u, n_threads)
    else:
        with nogil:
            nc_lstm_cell_forward_f64(act, alpha, ract, ralpha, <double*>pz, <double*>pcp, <double*>pc,
                                     <double*>ptc, <double*>ph, B, u, n_threads)
    return h


def lstm_cell_backward(int act, double alpha, int ract, double ralpha, gates, c_prev, tc, dh, dc, delta,
                       int n_threads=1):
    """One LSTM step backward: delta (B, 4u) = dL/dz; dc (B, u) goes from dL/dc_t to dL/dc_{t-1}."""
    _act_code(act, "lstm_cell_backward: act")
    _act_code(ract, "lstm_cell_backward: ract")
    cdef int code = _real(gates, "gates")
    _ndim(gates, "gates", 2)
    cdef Py_ssize_t B = gates.shape[0], G = gates.shape[1], u = G // 4
    if G % 4 or u == 0:
        raise ValueError(f"lstm_cell_backward: gates must have 4 * units columns, got shape {gates.shape}")
    _block(c_prev, "c_prev", code, B, u, False)
    _block(tc, "tc", code, B, u, False)
    _block(dh, "dh", code, B, u, False)
    _block(dc, "dc", code, B, u, True)
    _block(delta, "delta", code, B, G, True)
    cdef void *pg = _ptr(gates)
    cdef void *pcp = _ptr(c_prev)
    cdef void *ptc = _ptr(tc)
    cdef void *pdh = _ptr(dh)
    cdef void *pdc = _ptr(dc)
    cdef void *pd = _ptr(delta)
    if code == 0:
        with nogil:
            nc_lstm_cell_backward_f32(act, <float>alpha, ract, <float>ralpha, <float*>pg, <float*>pcp,
                                      <float*>ptc, <float*>pdh, <float*>pdc, <float*>pd, B, u, n_threads)
    else:
        with nogil:
            nc_lstm_cell_backward_f64(act, alpha, ract, ralpha, <double*>pg, <double*>pcp,
                                      <double*>ptc, <double*>pdh, <double*>pdc, <double*>pd, B, u, n_threads)
    return delta


def gru_cell_forward(int act, double alpha, int ract, double ralpha, z, rec, h_prev, h, int n_threads=1):
    """One GRU (reset_after) step: z (B, 3u) = x W + b_in in, gates (z, r, hh) out; rec = h_prev U + b_rec."""
    _act_code(act, "gru_cell_forward: act")
    _act_code(ract, "gru_cell_forward: ract")
    cdef int code = _real(z, "z")
    _ndim(z, "z", 2)
    cdef Py_ssize_t B = z.shape[0], G = z.shape[1], u = G // 3
    if G % 3 or u == 0:
        raise ValueError(f"gru_cell_forward: z must have 3 * units columns, got shape {z.shape}")
    _writable(z, "z")
    _block(rec, "rec", code, B, G, False)
    _block(h_prev, "h_prev", code, B, u, False)
    _block(h, "h", code, B, u, True)
    cdef void *pz = _ptr(z)
    cdef void *pr = _ptr(rec)
    cdef void *php = _ptr(h_prev)
    cdef void *ph = _ptr(h)
    if code == 0:
        with nogil:
            nc_gru_cell_forward_f32(act, <float>alpha, ract, <float>ralpha, <float*>pz, <float*>pr, <float*>php,
                                    <float*>ph, B, u, n_threads)
    else:
        with nogil:
            nc_gru_cell_forward_f64(act, alpha, ract, ralpha, <double*>pz, <double*>pr, <double*>php,
                                    <double*>ph, B, u, n_threads)
    return h


def gru_cell_backward(int act, double alpha, int ract, double ralpha, gates, rec, h_prev, dh, dx, drec, dh_prev,
                      int n_threads=1):
    """One GRU step backward: dx = dL/d(x W + b_in), drec = dL/d rec (B, 3u); dh_prev += dh z (may be None)."""
    _act_code(act, "gru_cell_backward: act")
    _act_code(ract, "gru_cell_backward: ract")
    cdef int code = _real(gates, "gates")
    _ndim(gates, "gates", 2)
    cdef Py_ssize_t B = gates.shape[0], G = gates.shape[1], u = G // 3
    if G % 3 or u == 0:
        raise ValueError(f"gru_cell_backward: gates must have 3 * units columns, got shape {gates.shape}")
    _block(rec, "rec", code, B, G, False)
    _block(h_prev, "h_prev", code, B, u, False)
    _block(dh, "dh", code, B, u, False)
    _block(dx, "dx", code, B, G, True)
    _block(drec, "drec", code, B, G, True)
    cdef void *pdhp = NULL
    if dh_prev is not None:
        _block(dh_prev, "dh_prev", code, B, u, True)
        pdhp = _ptr(dh_prev)
    cdef void *pg = _ptr(gates)
    cdef void *pr = _ptr(rec)
    cdef void *php = _ptr(h_prev)
    cdef void *pdh = _ptr(dh)
    cdef void *pdx = _ptr(dx)
    cdef void *pdr = _ptr(drec)
    if code == 0:
        with nogil:
            nc_gru_cell_backward_f32(act, <float>alpha, ract, <float>ralpha, <float*>pg, <float*>pr, <float*>php,
                                     <float*>pdh, <float*>pdx, <float*>pdr, <float*>pdhp, B, u, n_threads)
    else:
        with nogil:
            nc_gru_cell_backward_f64(act, alpha, ract, ralpha, <double*>pg, <double*>pr, <double*>php,
                                     <double*>pdh, <double*>pdx, <double*>pdr, <double*>pdhp, B, u, n_threads)
    return dx
