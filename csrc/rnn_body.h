/* rnn_body.h -- one time step of the recurrent cells, forward and backward,
 * written once for REAL = float/double (included by rnn.c through real.h).
 *
 * A step works on a batch of B rows; every array is a contiguous (B, width)
 * block (the layer keeps its sequences time-major, (T, B, width), so step t is
 * the block at t). The gemms that add h_{t-1} U happen around the cells; the
 * gemm dh_{t-1} += delta_t U^T after the backward cell. Gate activations go
 * through nc_act_forward / nc_act_backward on each row's gate blocks
 * (vectorised, any activation whose derivative is a function of its output y);
 * the state arithmetic sits in plain loops between them. Rows are independent,
 * so the result does not depend on the thread count.
 *
 * mask (B bytes, NULL = every row valid): a row whose mask byte is 0 is a
 * masked time step (Keras's mask). Forward it carries the state through
 * (h = h_prev, c = c_prev) and leaves the gates alone; backward its delta is 0
 * (no gradient to the weights or the input), dc passes unchanged and dh_prev
 * += dh.
 *
 * mixed_bfloat16: the NC_ACT_BF16 modifier on a cell's activation codes (float
 * only) rounds to bfloat16 what the cell writes for a product: h_t forward (the
 * operand of h_t U and the layer's output; the GRU's q = r h_{t-1} too) and
 * delta_t backward (the operand of delta U^T, X^T delta, H^T delta). The gates,
 * c_t, dc and dh stay float32. With x, W and U rounded by the layer, every
 * product of the step loop then has bfloat16 operands, exact in float32, and the
 * float32 GEMM is the bfloat16 product (docs/models.md). Included by rnn.c once
 * per SIMD level (simd_levels.h) and once for the entry points. */
#ifdef NC_LEVEL

/* y := bf(y) over a row where bf (float only; double never takes the modifier) */
static inline void NC_NAME(bf_row)(int bf, REAL *y, ptrdiff_t n)
{
#ifdef NC_F32
    if (bf) nc_bf_round_n(y, y, n, NC_LEVEL == NC_SIMD_AVX512);
#else
    (void)bf, (void)y, (void)n;
#endif
}

/* The modifier off both codes; whether either had it */
#define NC_CELL_BF16(act, ract) \
    const int bf = ((act) | (ract)) & NC_ACT_BF16; \
    (act) &= ~NC_ACT_BF16; \
    (ract) &= ~NC_ACT_BF16

/* ---- LSTM ---------------------------------------------------------------- */

static inline void NC_NAME(lstm_fwd_row)(int act, REAL alpha, int ract, REAL ralpha, REAL *z, const REAL *cp,
                                         REAL *c, REAL *tc, REAL *h, ptrdiff_t u)
{
    REAL *i = z, *f = z + u, *g = z + 2 * u, *o = z + 3 * u;
    NC_NAME(act_forward)(ract, ralpha, i, i, 2 * u);          /* i, f = ra(z_i), ra(z_f) */
    NC_NAME(act_forward)(act, alpha, g, g, u);                /* g = a(z_g) */
    NC_NAME(act_forward)(ract, ralpha, o, o, u);              /* o = ra(z_o) */
#pragma omp simd
    for (ptrdiff_t j = 0; j < u; j++) c[j] = f[j] * cp[j] + i[j] * g[j];   /* c = f c_prev + i g */
    NC_NAME(act_forward)(act, alpha, c, tc, u);               /* tc = a(c) */
#pragma omp simd
    for (ptrdiff_t j = 0; j < u; j++) h[j] = o[j] * tc[j];    /* h = o a(c) */
}

static inline void NC_NAME(carry_row)(const REAL *src, REAL *dst, ptrdiff_t u)
{
    for (ptrdiff_t j = 0; j < u; j++) dst[j] = src[j];
}

static inline void NC_NAME(add_row)(const REAL *src, REAL *dst, ptrdiff_t u)
{
#pragma omp simd
    for (ptrdiff_t j = 0; j < u; j++) dst[j] += src[j];
}

static inline void NC_NAME(zero_row)(REAL *dst, ptrdiff_t n)
{
    for (ptrdiff_t j = 0; j < n; j++) dst[j] = (REAL)0;
}

void NC_NAME(lstm_cell_forward)(int act, REAL alpha, int ract, REAL ralpha, REAL *z, const REAL *c_prev,
                                const REAL *h_prev, const unsigned char *mask, REAL *c, REAL *tc, REAL *h,
                                ptrdiff_t B, ptrdiff_t u, int nthreads)
{
    NC_CELL_BF16(act, ract);
    NC_FOR_ROWS(B, nthreads, (double)B * (double)u * 40.0, {
        if (mask && !mask[b]) {                                /* masked step: the state carries through */
            NC_NAME(carry_row)(c_prev + b * u, c + b * u, u);
            NC_NAME(carry_row)(h_prev + b * u, h + b * u, u);
        } else {
            NC_NAME(lstm_fwd_row)(act, alpha, ract, ralpha, z + b * 4 * u, c_prev + b * u, c + b * u,
                                  tc + b * u, h + b * u, u);
            NC_NAME(bf_row)(bf, h + b * u, u);
        }
    });
}

static inline void NC_NAME(lstm_bwd_row)(int act, REAL alpha, int ract, REAL ralpha, const REAL *gt,
                                         const REAL *cp, const REAL *tc, const REAL *dh, REAL *dc, REAL *d,
                                         ptrdiff_t u)
{
    const REAL *i = gt, *f = gt + u, *g = gt + 2 * u, *o = gt + 3 * u;
    REAL *di = d, *df = d + u, *dg = d + 2 * u, *dout = d + 3 * u;
#pragma omp simd
    for (ptrdiff_t j = 0; j < u; j++) { dout[j] = dh[j] * tc[j]; dg[j] = dh[j] * o[j]; }
    NC_NAME(act_backward)(act, alpha, NULL, tc, dg, dg, u);         /* dh o a'(c) */
#pragma omp simd
    for (ptrdiff_t j = 0; j < u; j++) {
        REAL dct = dc[j] + dg[j];                                   /* dc_t = dc + dh o a'(c) */
        di[j] = dct * g[j];
        df[j] = dct * cp[j];
        dg[j] = dct * i[j];
        dc[j] = dct * f[j];                                         /* dc_{t-1} = dc_t f */
    }
    NC_NAME(act_backward)(ract, ralpha, NULL, i, di, di, 2 * u);    /* delta_i, delta_f */
    NC_NAME(act_backward)(act, alpha, NULL, g, dg, dg, u);          /* delta_g */
    NC_NAME(act_backward)(ract, ralpha, NULL, o, dout, dout, u);    /* delta_o */
}

void NC_NAME(lstm_cell_backward)(int act, REAL alpha, int ract, REAL ralpha, const REAL *gates,
                                 const REAL *c_prev, const REAL *tc, const REAL *dh,
                                 const unsigned char *mask, REAL *dc, REAL *delta, REAL *dh_prev,
                                 ptrdiff_t B, ptrdiff_t u, int nthreads)
{
    NC_CELL_BF16(act, ract);
    NC_FOR_ROWS(B, nthreads, (double)B * (double)u * 24.0, {
        if (mask && !mask[b]) {                                /* masked: dc passes, dh goes to h_prev */
            NC_NAME(zero_row)(delta + b * 4 * u, 4 * u);
            if (dh_prev) NC_NAME(add_row)(dh + b * u, dh_prev + b * u, u);
        } else {
            NC_NAME(lstm_bwd_row)(act, alpha, ract, ralpha, gates + b * 4 * u, c_prev + b * u, tc + b * u,
                                  dh + b * u, dc + b * u, delta + b * 4 * u, u);
            NC_NAME(bf_row)(bf, delta + b * 4 * u, 4 * u);
        }
    });
}

/* ---- GRU, reset_after=True ------------------------------------------------- */

static inline void NC_NAME(gru_fwd_row)(int act, REAL alpha, int ract, REAL ralpha, REAL *z, const REAL *rh,
                                        const REAL *hp, REAL *h, ptrdiff_t u)
{
    REAL *zz = z, *r = z + u, *hh = z + 2 * u;
    const REAL *rec_h = rh + 2 * u;
#pragma omp simd
    for (ptrdiff_t j = 0; j < 2 * u; j++) z[j] += rh[j];      /* x_z + rec_z, x_r + rec_r */
    NC_NAME(act_forward)(ract, ralpha, z, z, 2 * u);          /* z, r */
#pragma omp simd
    for (ptrdiff_t j = 0; j < u; j++) hh[j] += r[j] * rec_h[j];   /* x_h + r rec_h */
    NC_NAME(act_forward)(act, alpha, hh, hh, u);              /* hh = a(.) */
#pragma omp simd
    for (ptrdiff_t j = 0; j < u; j++) h[j] = zz[j] * hp[j] + ((REAL)1 - zz[j]) * hh[j];
}

void NC_NAME(gru_cell_forward)(int act, REAL alpha, int ract, REAL ralpha, REAL *z, const REAL *rec,
                               const REAL *h_prev, const unsigned char *mask, REAL *h, ptrdiff_t B,
                               ptrdiff_t u, int nthreads)
{
    NC_CELL_BF16(act, ract);
    NC_FOR_ROWS(B, nthreads, (double)B * (double)u * 30.0, {
        if (mask && !mask[b]) {
            NC_NAME(carry_row)(h_prev + b * u, h + b * u, u);
        } else {
            NC_NAME(gru_fwd_row)(act, alpha, ract, ralpha, z + b * 3 * u, rec + b * 3 * u, h_prev + b * u,
                                 h + b * u, u);
            NC_NAME(bf_row)(bf, h + b * u, u);
        }
    });
}

static inline void NC_NAME(gru_bwd_row)(int act, REAL alpha, int ract, REAL ralpha, const REAL *gt,
                                        const REAL *rh, const REAL *hp, const REAL *dh, REAL *dx, REAL *dr,
                                        REAL *dhp, ptrdiff_t u)
{
    const REAL *zz = gt, *r = gt + u, *hh = gt + 2 * u, *rec_h = rh + 2 * u;
#pragma omp simd
    for (ptrdiff_t j = 0; j < u; j++) {
        dx[j] = dh[j] * (hp[j] - hh[j]);              /* dz */
        dx[2 * u + j] = dh[j] * ((REAL)1 - zz[j]);    /* dhh */
    }
    NC_NAME(act_backward)(act, alpha, NULL, hh, dx + 2 * u, dx + 2 * u, u);   /* delta_h = dhh a'(.) */
#pragma omp simd
    for (ptrdiff_t j = 0; j < u; j++) dx[u + j] = dx[2 * u + j] * rec_h[j];  /* dr = delta_h rec_h */
    NC_NAME(act_backward)(ract, ralpha, NULL, zz, dx, dx, 2 * u);            /* delta_z, delta_r */
#pragma omp simd
    for (ptrdiff_t j = 0; j < 2 * u; j++) dr[j] = dx[j];
#pragma omp simd
    for (ptrdiff_t j = 0; j < u; j++) dr[2 * u + j] = dx[2 * u + j] * r[j];  /* d rec_h = delta_h r */
    if (dhp) {
#pragma omp simd
        for (ptrdiff_t j = 0; j < u; j++) dhp[j] += dh[j] * zz[j];            /* direct path h_prev -> h */
    }
}

void NC_NAME(gru_cell_backward)(int act, REAL alpha, int ract, REAL ralpha, const REAL *gates,
                                const REAL *rec, const REAL *h_prev, const REAL *dh,
                                const unsigned char *mask, REAL *dx, REAL *drec, REAL *dh_prev,
                                ptrdiff_t B, ptrdiff_t u, int nthreads)
{
    NC_CELL_BF16(act, ract);
    NC_FOR_ROWS(B, nthreads, (double)B * (double)u * 24.0, {
        if (mask && !mask[b]) {
            NC_NAME(zero_row)(dx + b * 3 * u, 3 * u);
            NC_NAME(zero_row)(drec + b * 3 * u, 3 * u);
            if (dh_prev) NC_NAME(add_row)(dh + b * u, dh_prev + b * u, u);
        } else {
            NC_NAME(gru_bwd_row)(act, alpha, ract, ralpha, gates + b * 3 * u, rec + b * 3 * u, h_prev + b * u,
                                 dh + b * u, dx + b * 3 * u, drec + b * 3 * u, dh_prev ? dh_prev + b * u : NULL, u);
            NC_NAME(bf_row)(bf, dx + b * 3 * u, 3 * u);
            NC_NAME(bf_row)(bf, drec + b * 3 * u, 3 * u);
        }
    });
}

/* ---- GRU, reset_after=False ("reset before": r multiplies h_prev before U_h) ----
 * Per step:  z[:, 0:2u] += h_prev U_zr   (gemm)  ->  gru_rb_gates_forward
 *            z[:, 2u:3u] += q U_h        (gemm)  ->  gru_rb_state_forward
 * backward:  gru_rb_state_backward -> dq = delta_h U_h^T (gemm) -> gru_rb_reset_backward
 *            -> dh_prev += delta_zr U_zr^T (gemm).
 * rm (B, u, NULL = none) is the recurrent-dropout mask of the h gate: q = r (h_prev rm). */

static inline void NC_NAME(gru_rb_gates_row)(int ract, REAL ralpha, REAL *z, const REAL *hp, const REAL *m,
                                             REAL *q, ptrdiff_t u)
{
    const REAL *r = z + u;
    NC_NAME(act_forward)(ract, ralpha, z, z, 2 * u);                  /* z, r = ra(x_zr + h_prev U_zr) */
    if (m) {
#pragma omp simd
        for (ptrdiff_t j = 0; j < u; j++) q[j] = r[j] * (hp[j] * m[j]);
    } else {
#pragma omp simd
        for (ptrdiff_t j = 0; j < u; j++) q[j] = r[j] * hp[j];        /* q = r h_prev */
    }
}

void NC_NAME(gru_rb_gates_forward)(int ract, REAL ralpha, REAL *z, const REAL *h_prev, const REAL *rm,
                                   REAL *q, ptrdiff_t B, ptrdiff_t u, int nthreads)
{
    int act = 0;
    NC_CELL_BF16(act, ract);
    NC_FOR_ROWS(B, nthreads, (double)B * (double)u * 20.0, {
        NC_NAME(gru_rb_gates_row)(ract, ralpha, z + b * 3 * u, h_prev + b * u, rm ? rm + b * u : NULL, q + b * u, u);
        NC_NAME(bf_row)(bf, q + b * u, u);                             /* q: the operand of q U_h */
    });
}

static inline void NC_NAME(gru_rb_state_row)(int act, REAL alpha, REAL *z, const REAL *hp, REAL *h, ptrdiff_t u)
{
    REAL *zz = z, *hh = z + 2 * u;
    NC_NAME(act_forward)(act, alpha, hh, hh, u);                      /* hh = a(x_h + q U_h) */
#pragma omp simd
    for (ptrdiff_t j = 0; j < u; j++) h[j] = zz[j] * hp[j] + ((REAL)1 - zz[j]) * hh[j];
}

void NC_NAME(gru_rb_state_forward)(int act, REAL alpha, REAL *z, const REAL *h_prev,
                                   const unsigned char *mask, REAL *h, ptrdiff_t B, ptrdiff_t u,
                                   int nthreads)
{
    int ract = 0;
    NC_CELL_BF16(act, ract);
    NC_FOR_ROWS(B, nthreads, (double)B * (double)u * 20.0, {
        if (mask && !mask[b]) {
            NC_NAME(carry_row)(h_prev + b * u, h + b * u, u);
        } else {
            NC_NAME(gru_rb_state_row)(act, alpha, z + b * 3 * u, h_prev + b * u, h + b * u, u);
            NC_NAME(bf_row)(bf, h + b * u, u);
        }
    });
}

static inline void NC_NAME(gru_rb_state_bwd_row)(int act, REAL alpha, int ract, REAL ralpha, const REAL *gt,
                                                 const REAL *hp, const REAL *dh, REAL *d, REAL *dhp, ptrdiff_t u)
{
    const REAL *zz = gt, *hh = gt + 2 * u;
#pragma omp simd
    for (ptrdiff_t j = 0; j < u; j++) {
        d[j] = dh[j] * (hp[j] - hh[j]);               /* dL/dz */
        d[u + j] = (REAL)0;                           /* delta_r: gru_rb_reset_backward */
        d[2 * u + j] = dh[j] * ((REAL)1 - zz[j]);     /* dL/dhh */
    }
    NC_NAME(act_backward)(ract, ralpha, NULL, zz, d, d, u);                 /* delta_z */
    NC_NAME(act_backward)(act, alpha, NULL, hh, d + 2 * u, d + 2 * u, u);   /* delta_h */
    if (dhp) {
#pragma omp simd
        for (ptrdiff_t j = 0; j < u; j++) dhp[j] += dh[j] * zz[j];           /* direct path h_prev -> h */
    }
}

void NC_NAME(gru_rb_state_backward)(int act, REAL alpha, int ract, REAL ralpha, const REAL *gates,
                                    const REAL *h_prev, const REAL *dh, const unsigned char *mask,
                                    REAL *delta, REAL *dh_prev, ptrdiff_t B, ptrdiff_t u, int nthreads)
{
    NC_CELL_BF16(act, ract);
    NC_FOR_ROWS(B, nthreads, (double)B * (double)u * 16.0, {
        if (mask && !mask[b]) {
            NC_NAME(zero_row)(delta + b * 3 * u, 3 * u);
            if (dh_prev) NC_NAME(add_row)(dh + b * u, dh_prev + b * u, u);
        } else {
            NC_NAME(gru_rb_state_bwd_row)(act, alpha, ract, ralpha, gates + b * 3 * u, h_prev + b * u, dh + b * u,
                                          delta + b * 3 * u, dh_prev ? dh_prev + b * u : NULL, u);
            NC_NAME(bf_row)(bf, delta + b * 3 * u, 3 * u);             /* delta_z, delta_h (delta_r: 0 here) */
        }
    });
}

static inline void NC_NAME(gru_rb_reset_bwd_row)(int ract, REAL ralpha, const REAL *gt, const REAL *hp,
                                                 const REAL *m, const REAL *dq, REAL *d, REAL *dhp, ptrdiff_t u)
{
    const REAL *r = gt + u;
    REAL *dr = d + u;
    if (m) {
#pragma omp simd
        for (ptrdiff_t j = 0; j < u; j++) dr[j] = dq[j] * (hp[j] * m[j]);
    } else {
#pragma omp simd
        for (ptrdiff_t j = 0; j < u; j++) dr[j] = dq[j] * hp[j];      /* dL/dr = dq h_prev */
    }
    NC_NAME(act_backward)(ract, ralpha, NULL, r, dr, dr, u);          /* delta_r */
    if (!dhp) return;
    if (m) {
#pragma omp simd
        for (ptrdiff_t j = 0; j < u; j++) dhp[j] += dq[j] * r[j] * m[j];
    } else {
#pragma omp simd
        for (ptrdiff_t j = 0; j < u; j++) dhp[j] += dq[j] * r[j];     /* through q = r h_prev */
    }
}

void NC_NAME(gru_rb_reset_backward)(int ract, REAL ralpha, const REAL *gates, const REAL *h_prev,
                                    const REAL *rm, const REAL *dq, REAL *delta, REAL *dh_prev,
                                    ptrdiff_t B, ptrdiff_t u, int nthreads)
{
    int act = 0;
    NC_CELL_BF16(act, ract);
    NC_FOR_ROWS(B, nthreads, (double)B * (double)u * 12.0, {
        NC_NAME(gru_rb_reset_bwd_row)(ract, ralpha, gates + b * 3 * u, h_prev + b * u, rm ? rm + b * u : NULL,
                                      dq + b * u, delta + b * 3 * u, dh_prev ? dh_prev + b * u : NULL, u);
        NC_NAME(bf_row)(bf, delta + b * 3 * u + u, u);                 /* delta_r */
    });
}

/* ---- SimpleRNN: the cell is the gemm's epilogue; these handle the mask ---- */

void NC_NAME(rnn_carry_masked)(const REAL *h_prev, const unsigned char *mask, REAL *h, ptrdiff_t B,
                               ptrdiff_t u)
{
    for (ptrdiff_t b = 0; b < B; b++)
        if (!mask[b]) NC_NAME(carry_row)(h_prev + b * u, h + b * u, u);
}

void NC_NAME(simple_rnn_cell_backward)(int act, REAL alpha, const REAL *h, const REAL *dh,
                                       const unsigned char *mask, REAL *delta, REAL *dh_prev,
                                       ptrdiff_t B, ptrdiff_t u, int nthreads)
{
    if (!mask) {                                                     /* delta = dh a'(h), all rows */
        NC_NAME(act_backward_par)(act, alpha, NULL, h, dh, delta, B * u, nthreads);
        return;
    }
    NC_FOR_ROWS(B, nthreads, (double)B * (double)u * 8.0, {
        if (!mask[b]) {
            NC_NAME(zero_row)(delta + b * u, u);
            if (dh_prev) NC_NAME(add_row)(dh + b * u, dh_prev + b * u, u);
        } else {
            NC_NAME(act_backward)(act, alpha, NULL, h + b * u, dh + b * u, delta + b * u, u);
        }
    });
}

#else /* the entry points: the copies of the level in use */

void NC_NAME(lstm_cell_forward)(int act, REAL alpha, int ract, REAL ralpha, REAL *z, const REAL *c_prev,
                                const REAL *h_prev, const unsigned char *mask, REAL *c, REAL *tc, REAL *h,
                                ptrdiff_t B, ptrdiff_t u, int nthreads)
{
    NC_PICK(lstm_cell_forward)(act, alpha, ract, ralpha, z, c_prev, h_prev, mask, c, tc, h, B, u, nthreads);
}

void NC_NAME(lstm_cell_backward)(int act, REAL alpha, int ract, REAL ralpha, const REAL *gates, const REAL *c_prev,
                                 const REAL *tc, const REAL *dh, const unsigned char *mask, REAL *dc, REAL *delta,
                                 REAL *dh_prev, ptrdiff_t B, ptrdiff_t u, int nthreads)
{
    NC_PICK(lstm_cell_backward)(act, alpha, ract, ralpha, gates, c_prev, tc, dh, mask, dc, delta, dh_prev, B, u,
                                nthreads);
}

void NC_NAME(gru_cell_forward)(int act, REAL alpha, int ract, REAL ralpha, REAL *z, const REAL *rec,
                               const REAL *h_prev, const unsigned char *mask, REAL *h, ptrdiff_t B, ptrdiff_t u,
                               int nthreads)
{
    NC_PICK(gru_cell_forward)(act, alpha, ract, ralpha, z, rec, h_prev, mask, h, B, u, nthreads);
}

void NC_NAME(gru_cell_backward)(int act, REAL alpha, int ract, REAL ralpha, const REAL *gates, const REAL *rec,
                                const REAL *h_prev, const REAL *dh, const unsigned char *mask, REAL *dx, REAL *drec,
                                REAL *dh_prev, ptrdiff_t B, ptrdiff_t u, int nthreads)
{
    NC_PICK(gru_cell_backward)(act, alpha, ract, ralpha, gates, rec, h_prev, dh, mask, dx, drec, dh_prev, B, u,
                               nthreads);
}

void NC_NAME(gru_rb_gates_forward)(int ract, REAL ralpha, REAL *z, const REAL *h_prev, const REAL *rm, REAL *q,
                                   ptrdiff_t B, ptrdiff_t u, int nthreads)
{
    NC_PICK(gru_rb_gates_forward)(ract, ralpha, z, h_prev, rm, q, B, u, nthreads);
}

void NC_NAME(gru_rb_state_forward)(int act, REAL alpha, REAL *z, const REAL *h_prev, const unsigned char *mask,
                                   REAL *h, ptrdiff_t B, ptrdiff_t u, int nthreads)
{
    NC_PICK(gru_rb_state_forward)(act, alpha, z, h_prev, mask, h, B, u, nthreads);
}

void NC_NAME(gru_rb_state_backward)(int act, REAL alpha, int ract, REAL ralpha, const REAL *gates,
                                    const REAL *h_prev, const REAL *dh, const unsigned char *mask, REAL *delta,
                                    REAL *dh_prev, ptrdiff_t B, ptrdiff_t u, int nthreads)
{
    NC_PICK(gru_rb_state_backward)(act, alpha, ract, ralpha, gates, h_prev, dh, mask, delta, dh_prev, B, u,
                                   nthreads);
}

void NC_NAME(gru_rb_reset_backward)(int ract, REAL ralpha, const REAL *gates, const REAL *h_prev, const REAL *rm,
                                    const REAL *dq, REAL *delta, REAL *dh_prev, ptrdiff_t B, ptrdiff_t u,
                                    int nthreads)
{
    NC_PICK(gru_rb_reset_backward)(ract, ralpha, gates, h_prev, rm, dq, delta, dh_prev, B, u, nthreads);
}

void NC_NAME(rnn_carry_masked)(const REAL *h_prev, const unsigned char *mask, REAL *h, ptrdiff_t B, ptrdiff_t u)
{
    NC_PICK(rnn_carry_masked)(h_prev, mask, h, B, u);
}

void NC_NAME(simple_rnn_cell_backward)(int act, REAL alpha, const REAL *h, const REAL *dh, const unsigned char *mask,
                                       REAL *delta, REAL *dh_prev, ptrdiff_t B, ptrdiff_t u, int nthreads)
{
    NC_PICK(simple_rnn_cell_backward)(act, alpha, h, dh, mask, delta, dh_prev, B, u, nthreads);
}

#endif /* NC_LEVEL */
