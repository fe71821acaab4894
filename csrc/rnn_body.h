/* rnn_body.h -- one time step of the LSTM and GRU cells, forward and backward,
 * written once for REAL = float/double (included by rnn.c through real.h).
 *
 * A step works on a batch of B rows; every array is a contiguous (B, width)
 * block (the layer keeps its sequences time-major, (T, B, width), so step t is
 * the block at t). The gemm that adds h_{t-1} U happens before the forward
 * cell; the gemm dh_{t-1} += delta_t U^T after the backward cell. Gate
 * activations go through nc_act_forward / nc_act_backward on each row's gate
 * blocks (vectorised, any activation whose derivative is a function of its
 * output y); the state arithmetic sits in plain loops between them. Rows are
 * independent, so the result does not depend on the thread count. Included by
 * rnn.c once per SIMD level (simd_levels.h) and once for the entry points. */
#ifdef NC_LEVEL

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

void NC_NAME(lstm_cell_forward)(int act, REAL alpha, int ract, REAL ralpha, REAL *z, const REAL *c_prev,
                                          REAL *c, REAL *tc, REAL *h, ptrdiff_t B, ptrdiff_t u, int nthreads)
{
    int nt = nc_team_size(nthreads, (double)B * (double)u * 40.0);
    if (nt <= 1) {
        for (ptrdiff_t b = 0; b < B; b++)
            NC_NAME(lstm_fwd_row)(act, alpha, ract, ralpha, z + b * 4 * u, c_prev + b * u, c + b * u,
                                  tc + b * u, h + b * u, u);
        return;
    }
#pragma omp parallel for schedule(dynamic, 4) num_threads(nt) /* a busy core's share moves */
    for (ptrdiff_t b = 0; b < B; b++)
        NC_NAME(lstm_fwd_row)(act, alpha, ract, ralpha, z + b * 4 * u, c_prev + b * u, c + b * u,
                              tc + b * u, h + b * u, u);
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
                                           const REAL *c_prev, const REAL *tc, const REAL *dh, REAL *dc,
                                           REAL *delta, ptrdiff_t B, ptrdiff_t u, int nthreads)
{
    int nt = nc_team_size(nthreads, (double)B * (double)u * 24.0);
    if (nt <= 1) {
        for (ptrdiff_t b = 0; b < B; b++)
            NC_NAME(lstm_bwd_row)(act, alpha, ract, ralpha, gates + b * 4 * u, c_prev + b * u, tc + b * u,
                                  dh + b * u, dc + b * u, delta + b * 4 * u, u);
        return;
    }
#pragma omp parallel for schedule(dynamic, 4) num_threads(nt) /* a busy core's share moves */
    for (ptrdiff_t b = 0; b < B; b++)
        NC_NAME(lstm_bwd_row)(act, alpha, ract, ralpha, gates + b * 4 * u, c_prev + b * u, tc + b * u,
                              dh + b * u, dc + b * u, delta + b * 4 * u, u);
}

/* ---- GRU (reset_after) --------------------------------------------------- */

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
                                         const REAL *h_prev, REAL *h, ptrdiff_t B, ptrdiff_t u, int nthreads)
{
    int nt = nc_team_size(nthreads, (double)B * (double)u * 30.0);
    if (nt <= 1) {
        for (ptrdiff_t b = 0; b < B; b++)
            NC_NAME(gru_fwd_row)(act, alpha, ract, ralpha, z + b * 3 * u, rec + b * 3 * u, h_prev + b * u,
                                 h + b * u, u);
        return;
    }
#pragma omp parallel for schedule(dynamic, 4) num_threads(nt) /* a busy core's share moves */
    for (ptrdiff_t b = 0; b < B; b++)
        NC_NAME(gru_fwd_row)(act, alpha, ract, ralpha, z + b * 3 * u, rec + b * 3 * u, h_prev + b * u,
                             h + b * u, u);
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
                                          const REAL *rec, const REAL *h_prev, const REAL *dh, REAL *dx,
                                          REAL *drec, REAL *dh_prev, ptrdiff_t B, ptrdiff_t u, int nthreads)
{
    int nt = nc_team_size(nthreads, (double)B * (double)u * 24.0);
    if (nt <= 1) {
        for (ptrdiff_t b = 0; b < B; b++)
            NC_NAME(gru_bwd_row)(act, alpha, ract, ralpha, gates + b * 3 * u, rec + b * 3 * u, h_prev + b * u,
                                 dh + b * u, dx + b * 3 * u, drec + b * 3 * u, dh_prev ? dh_prev + b * u : NULL, u);
        return;
    }
#pragma omp parallel for schedule(dynamic, 4) num_threads(nt) /* a busy core's share moves */
    for (ptrdiff_t b = 0; b < B; b++)
        NC_NAME(gru_bwd_row)(act, alpha, ract, ralpha, gates + b * 3 * u, rec + b * 3 * u, h_prev + b * u,
                             dh + b * u, dx + b * 3 * u, drec + b * 3 * u, dh_prev ? dh_prev + b * u : NULL, u);
}

#else /* the entry points: the copies of the level in use */

void NC_NAME(lstm_cell_forward)(int act, REAL alpha, int ract, REAL ralpha, REAL *z, const REAL *c_prev,
                                REAL *c, REAL *tc, REAL *h, ptrdiff_t B, ptrdiff_t u, int nthreads)
{
    NC_PICK(lstm_cell_forward)(act, alpha, ract, ralpha, z, c_prev, c, tc, h, B, u, nthreads);
}

void NC_NAME(lstm_cell_backward)(int act, REAL alpha, int ract, REAL ralpha, const REAL *gates,
                                 const REAL *c_prev, const REAL *tc, const REAL *dh, REAL *dc, REAL *delta,
                                 ptrdiff_t B, ptrdiff_t u, int nthreads)
{
    NC_PICK(lstm_cell_backward)(act, alpha, ract, ralpha, gates, c_prev, tc, dh, dc, delta, B, u, nthreads);
}

void NC_NAME(gru_cell_forward)(int act, REAL alpha, int ract, REAL ralpha, REAL *z, const REAL *rec,
                               const REAL *h_prev, REAL *h, ptrdiff_t B, ptrdiff_t u, int nthreads)
{
    NC_PICK(gru_cell_forward)(act, alpha, ract, ralpha, z, rec, h_prev, h, B, u, nthreads);
}

void NC_NAME(gru_cell_backward)(int act, REAL alpha, int ract, REAL ralpha, const REAL *gates,
                                const REAL *rec, const REAL *h_prev, const REAL *dh, REAL *dx, REAL *drec,
                                REAL *dh_prev, ptrdiff_t B, ptrdiff_t u, int nthreads)
{
    NC_PICK(gru_cell_backward)(act, alpha, ract, ralpha, gates, rec, h_prev, dh, dx, drec, dh_prev, B, u, nthreads);
}

#endif /* NC_LEVEL */
