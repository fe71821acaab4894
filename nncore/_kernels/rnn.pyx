# rnn.pyx -- Python face of the recurrent cells (csrc/rnn_body.h): one time step
# over a batch. Every array argument is a C-contiguous (B, width) block of one
# float dtype; `mask` is None or a C-contiguous (B,) bool/uint8 array (0: a
# masked step, whose row carries the state through); arguments documented as
# "or None" may be left out. The wrapper checks them all, then releases the GIL
# for one C call. The recurrent layers (nncore/layers/recurrent.py) call these
# once per step, between the gemm calls that add h_{t-1} U (forward) and
# delta U^T (backward). ACT_BF16 on a cell's codes (mixed_bfloat16, float32) rounds what the cell
# writes for a product to bfloat16: h (and the GRU's q) forward, delta backward (csrc/rnn_body.h); the
# float64 cells ignore it.
from nncore._kernels.nncore cimport *
include "_check.pxi"


cdef int _act_code(int act, str name) except -1:
    if act < 0 or (act & ~NC_ACT_BF16) >= NC_ACT_COUNT:
        raise ValueError(f"{name}: unknown activation code {act}")
    if nc_act_needs_input(act):
        raise ValueError(f"{name}: activation code {act} needs its input for the derivative; "
                         "recurrent cells take activations whose derivative follows from the output")
    return 0


cdef void *_data(object a, str name, int code, Py_ssize_t B, Py_ssize_t w, bint out, bint nullable=False) except? NULL:
    """The data pointer of a (B, w) block after _block's checks (NULL for None where allowed)."""
    if a is None and nullable:
        return NULL
    _block(a, name, code, B, w, out)
    return _ptr(a)


cdef const unsigned char *_mask(object m, Py_ssize_t B) except? NULL:
    if m is None:
        return NULL
    if not isinstance(m, cnp.ndarray):
        raise TypeError(f"mask: expected a numpy.ndarray or None, got {type(m).__name__}")
    cdef cnp.ndarray a = <cnp.ndarray>m
    if cnp.PyArray_TYPE(a) not in (cnp.NPY_BOOL, cnp.NPY_UINT8):
        raise TypeError(f"mask: expected dtype bool or uint8, got {a.dtype}")
    if not cnp.PyArray_IS_C_CONTIGUOUS(a):
        raise ValueError("mask: expected a C-contiguous array")
    if cnp.PyArray_NDIM(a) != 1 or a.shape[0] != B:
        raise ValueError(f"mask: expected shape ({B},), got {m.shape}")
    return <const unsigned char *>cnp.PyArray_DATA(a)


cdef int _gates(object g, str fn, str name, int k, Py_ssize_t *B, Py_ssize_t *u) except -1:
    """Check the (B, k u) gate block, return its dtype code and set B, u."""
    cdef int code = _real(g, name)
    _ndim(g, name, 2)
    B[0] = g.shape[0]
    u[0] = g.shape[1] // k
    if g.shape[1] % k or u[0] == 0:
        raise ValueError(f"{fn}: {name} must have {k} * units columns, got shape {g.shape}")
    return code


def lstm_cell_forward(int act, double alpha, int ract, double ralpha, z, c_prev, h_prev, mask, c, tc, h,
                      int n_threads=1):
    """One LSTM step: z (B, 4u) pre-activations in, gates (i, f, g, o) out; writes c, tc = a(c), h = o tc.

    Masked rows (mask 0) get c = c_prev, h = h_prev; h_prev (B, u) may be None without a mask.
    """
    _act_code(act, "lstm_cell_forward: act")
    _act_code(ract, "lstm_cell_forward: ract")
    cdef Py_ssize_t B, u
    cdef int code = _gates(z, "lstm_cell_forward", "z", 4, &B, &u)
    _writable(z, "z")
    cdef const unsigned char *pm = _mask(mask, B)
    cdef void *pcp = _data(c_prev, "c_prev", code, B, u, False)
    cdef void *php = _data(h_prev, "h_prev", code, B, u, False, pm == NULL)
    cdef void *pc = _data(c, "c", code, B, u, True)
    cdef void *ptc = _data(tc, "tc", code, B, u, True)
    cdef void *ph = _data(h, "h", code, B, u, True)
    cdef void *pz = _ptr(z)
    if code == 0:
        with nogil:
            nc_lstm_cell_forward_f32(act, <float>alpha, ract, <float>ralpha, <float*>pz, <float*>pcp, <float*>php,
                                     pm, <float*>pc, <float*>ptc, <float*>ph, B, u, n_threads)
    else:
        with nogil:
            nc_lstm_cell_forward_f64(act, alpha, ract, ralpha, <double*>pz, <double*>pcp, <double*>php, pm,
                                     <double*>pc, <double*>ptc, <double*>ph, B, u, n_threads)
    return h


def lstm_cell_backward(int act, double alpha, int ract, double ralpha, gates, c_prev, tc, dh, mask, dc, delta,
                       dh_prev, int n_threads=1):
    """One LSTM step backward: delta (B, 4u) = dL/dz; dc (B, u) goes from dL/dc_t to dL/dc_{t-1}.

    Masked rows: delta = 0, dc unchanged, dh_prev += dh (dh_prev may be None).
    """
    _act_code(act, "lstm_cell_backward: act")
    _act_code(ract, "lstm_cell_backward: ract")
    cdef Py_ssize_t B, u
    cdef int code = _gates(gates, "lstm_cell_backward", "gates", 4, &B, &u)
    cdef const unsigned char *pm = _mask(mask, B)
    cdef void *pcp = _data(c_prev, "c_prev", code, B, u, False)
    cdef void *ptc = _data(tc, "tc", code, B, u, False)
    cdef void *pdh = _data(dh, "dh", code, B, u, False)
    cdef void *pdc = _data(dc, "dc", code, B, u, True)
    cdef void *pd = _data(delta, "delta", code, B, 4 * u, True)
    cdef void *pdhp = _data(dh_prev, "dh_prev", code, B, u, True, True)
    cdef void *pg = _ptr(gates)
    if code == 0:
        with nogil:
            nc_lstm_cell_backward_f32(act, <float>alpha, ract, <float>ralpha, <float*>pg, <float*>pcp, <float*>ptc,
                                      <float*>pdh, pm, <float*>pdc, <float*>pd, <float*>pdhp, B, u, n_threads)
    else:
        with nogil:
            nc_lstm_cell_backward_f64(act, alpha, ract, ralpha, <double*>pg, <double*>pcp, <double*>ptc,
                                      <double*>pdh, pm, <double*>pdc, <double*>pd, <double*>pdhp, B, u, n_threads)
    return delta


def gru_cell_forward(int act, double alpha, int ract, double ralpha, z, rec, h_prev, mask, h, int n_threads=1):
    """One GRU (reset_after) step: z (B, 3u) = x W + b_in in, gates (z, r, hh) out; rec = h_prev U + b_rec."""
    _act_code(act, "gru_cell_forward: act")
    _act_code(ract, "gru_cell_forward: ract")
    cdef Py_ssize_t B, u
    cdef int code = _gates(z, "gru_cell_forward", "z", 3, &B, &u)
    _writable(z, "z")
    cdef const unsigned char *pm = _mask(mask, B)
    cdef void *pr = _data(rec, "rec", code, B, 3 * u, False)
    cdef void *php = _data(h_prev, "h_prev", code, B, u, False)
    cdef void *ph = _data(h, "h", code, B, u, True)
    cdef void *pz = _ptr(z)
    if code == 0:
        with nogil:
            nc_gru_cell_forward_f32(act, <float>alpha, ract, <float>ralpha, <float*>pz, <float*>pr, <float*>php, pm,
                                    <float*>ph, B, u, n_threads)
    else:
        with nogil:
            nc_gru_cell_forward_f64(act, alpha, ract, ralpha, <double*>pz, <double*>pr, <double*>php, pm,
                                    <double*>ph, B, u, n_threads)
    return h


def gru_cell_backward(int act, double alpha, int ract, double ralpha, gates, rec, h_prev, dh, mask, dx, drec,
                      dh_prev, int n_threads=1):
    """One GRU step backward: dx = dL/d(x W + b_in), drec = dL/d rec (B, 3u); dh_prev += dh z (may be None)."""
    _act_code(act, "gru_cell_backward: act")
    _act_code(ract, "gru_cell_backward: ract")
    cdef Py_ssize_t B, u
    cdef int code = _gates(gates, "gru_cell_backward", "gates", 3, &B, &u)
    cdef const unsigned char *pm = _mask(mask, B)
    cdef void *pr = _data(rec, "rec", code, B, 3 * u, False)
    cdef void *php = _data(h_prev, "h_prev", code, B, u, False)
    cdef void *pdh = _data(dh, "dh", code, B, u, False)
    cdef void *pdx = _data(dx, "dx", code, B, 3 * u, True)
    cdef void *pdr = _data(drec, "drec", code, B, 3 * u, True)
    cdef void *pdhp = _data(dh_prev, "dh_prev", code, B, u, True, True)
    cdef void *pg = _ptr(gates)
    if code == 0:
        with nogil:
            nc_gru_cell_backward_f32(act, <float>alpha, ract, <float>ralpha, <float*>pg, <float*>pr, <float*>php,
                                     <float*>pdh, pm, <float*>pdx, <float*>pdr, <float*>pdhp, B, u, n_threads)
    else:
        with nogil:
            nc_gru_cell_backward_f64(act, alpha, ract, ralpha, <double*>pg, <double*>pr, <double*>php,
                                     <double*>pdh, pm, <double*>pdx, <double*>pdr, <double*>pdhp, B, u, n_threads)
    return dx


def gru_rb_gates_forward(int ract, double ralpha, z, h_prev, rm, q, int n_threads=1):
    """GRU reset_after=False, first half of a step: z[:, :2u] (x_zr + h_prev U_zr) -> z, r in place;
    q = r (h_prev rm) (B, u); rm (B, u), the h gate's recurrent-dropout mask, may be None."""
    _act_code(ract, "gru_rb_gates_forward: ract")
    cdef Py_ssize_t B, u
    cdef int code = _gates(z, "gru_rb_gates_forward", "z", 3, &B, &u)
    _writable(z, "z")
    cdef void *php = _data(h_prev, "h_prev", code, B, u, False)
    cdef void *prm = _data(rm, "rm", code, B, u, False, True)
    cdef void *pq = _data(q, "q", code, B, u, True)
    cdef void *pz = _ptr(z)
    if code == 0:
        with nogil:
            nc_gru_rb_gates_forward_f32(ract, <float>ralpha, <float*>pz, <float*>php, <float*>prm, <float*>pq, B, u,
                                        n_threads)
    else:
        with nogil:
            nc_gru_rb_gates_forward_f64(ract, ralpha, <double*>pz, <double*>php, <double*>prm, <double*>pq, B, u,
                                        n_threads)
    return q


def gru_rb_state_forward(int act, double alpha, z, h_prev, mask, h, int n_threads=1):
    """GRU reset_after=False, second half: z[:, 2u:] (x_h + q U_h) -> hh = a(.) in place;
    h = z h_prev + (1 - z) hh (masked rows: h = h_prev)."""
    _act_code(act, "gru_rb_state_forward: act")
    cdef Py_ssize_t B, u
    cdef int code = _gates(z, "gru_rb_state_forward", "z", 3, &B, &u)
    _writable(z, "z")
    cdef const unsigned char *pm = _mask(mask, B)
    cdef void *php = _data(h_prev, "h_prev", code, B, u, False)
    cdef void *ph = _data(h, "h", code, B, u, True)
    cdef void *pz = _ptr(z)
    if code == 0:
        with nogil:
            nc_gru_rb_state_forward_f32(act, <float>alpha, <float*>pz, <float*>php, pm, <float*>ph, B, u, n_threads)
    else:
        with nogil:
            nc_gru_rb_state_forward_f64(act, alpha, <double*>pz, <double*>php, pm, <double*>ph, B, u, n_threads)
    return h


def gru_rb_state_backward(int act, double alpha, int ract, double ralpha, gates, h_prev, dh, mask, delta, dh_prev,
                          int n_threads=1):
    """GRU reset_after=False backward, first half: delta = [delta_z, 0, delta_h] (B, 3u); dh_prev += dh z."""
    _act_code(act, "gru_rb_state_backward: act")
    _act_code(ract, "gru_rb_state_backward: ract")
    cdef Py_ssize_t B, u
    cdef int code = _gates(gates, "gru_rb_state_backward", "gates", 3, &B, &u)
    cdef const unsigned char *pm = _mask(mask, B)
    cdef void *php = _data(h_prev, "h_prev", code, B, u, False)
    cdef void *pdh = _data(dh, "dh", code, B, u, False)
    cdef void *pd = _data(delta, "delta", code, B, 3 * u, True)
    cdef void *pdhp = _data(dh_prev, "dh_prev", code, B, u, True, True)
    cdef void *pg = _ptr(gates)
    if code == 0:
        with nogil:
            nc_gru_rb_state_backward_f32(act, <float>alpha, ract, <float>ralpha, <float*>pg, <float*>php, <float*>pdh,
                                         pm, <float*>pd, <float*>pdhp, B, u, n_threads)
    else:
        with nogil:
            nc_gru_rb_state_backward_f64(act, alpha, ract, ralpha, <double*>pg, <double*>php, <double*>pdh, pm,
                                         <double*>pd, <double*>pdhp, B, u, n_threads)
    return delta


def gru_rb_reset_backward(int ract, double ralpha, gates, h_prev, rm, dq, delta, dh_prev, int n_threads=1):
    """GRU reset_after=False backward, second half, from dq = delta_h U_h^T (B, u):
    delta_r = dq (h_prev rm) ra'(r) into delta[:, u:2u]; dh_prev += dq r rm (rm, dh_prev may be None)."""
    _act_code(ract, "gru_rb_reset_backward: ract")
    cdef Py_ssize_t B, u
    cdef int code = _gates(gates, "gru_rb_reset_backward", "gates", 3, &B, &u)
    cdef void *php = _data(h_prev, "h_prev", code, B, u, False)
    cdef void *prm = _data(rm, "rm", code, B, u, False, True)
    cdef void *pdq = _data(dq, "dq", code, B, u, False)
    cdef void *pd = _data(delta, "delta", code, B, 3 * u, True)
    cdef void *pdhp = _data(dh_prev, "dh_prev", code, B, u, True, True)
    cdef void *pg = _ptr(gates)
    if code == 0:
        with nogil:
            nc_gru_rb_reset_backward_f32(ract, <float>ralpha, <float*>pg, <float*>php, <float*>prm, <float*>pdq,
                                         <float*>pd, <float*>pdhp, B, u, n_threads)
    else:
        with nogil:
            nc_gru_rb_reset_backward_f64(ract, ralpha, <double*>pg, <double*>php, <double*>prm, <double*>pdq,
                                         <double*>pd, <double*>pdhp, B, u, n_threads)
    return delta


def rnn_carry_masked(h_prev, mask, h):
    """h = h_prev on the rows where mask is 0 (B, u blocks; mask (B,) bool/uint8)."""
    cdef int code = _real(h, "h")
    _ndim(h, "h", 2)
    _writable(h, "h")
    cdef Py_ssize_t B = h.shape[0], u = h.shape[1]
    if mask is None:
        raise TypeError("rnn_carry_masked: mask must be an array, got None")
    cdef const unsigned char *pm = _mask(mask, B)
    cdef void *php = _data(h_prev, "h_prev", code, B, u, False)
    cdef void *ph = _ptr(h)
    if code == 0:
        with nogil:
            nc_rnn_carry_masked_f32(<float*>php, pm, <float*>ph, B, u)
    else:
        with nogil:
            nc_rnn_carry_masked_f64(<double*>php, pm, <double*>ph, B, u)
    return h


def simple_rnn_cell_backward(int act, double alpha, h, dh, mask, delta, dh_prev, int n_threads=1):
    """delta = dh a'(h) (B, u); masked rows: delta = 0 and dh_prev += dh (dh_prev may be None)."""
    _act_code(act, "simple_rnn_cell_backward: act")
    cdef int code = _real(h, "h")
    _ndim(h, "h", 2)
    cdef Py_ssize_t B = h.shape[0], u = h.shape[1]
    cdef const unsigned char *pm = _mask(mask, B)
    cdef void *pdh = _data(dh, "dh", code, B, u, False)
    cdef void *pd = _data(delta, "delta", code, B, u, True)
    cdef void *pdhp = _data(dh_prev, "dh_prev", code, B, u, True, True)
    cdef void *ph = _ptr(h)
    if code == 0:
        with nogil:
            nc_simple_rnn_cell_backward_f32(act, <float>alpha, <float*>ph, <float*>pdh, pm, <float*>pd, <float*>pdhp,
                                            B, u, n_threads)
    else:
        with nogil:
            nc_simple_rnn_cell_backward_f64(act, alpha, <double*>ph, <double*>pdh, pm, <double*>pd, <double*>pdhp,
                                            B, u, n_threads)
    return delta
