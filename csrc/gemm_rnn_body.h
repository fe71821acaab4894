/* gemm_rnn_body.h -- the step loop of an LSTM over a whole sequence in one
 * call, on the packed recurrent kernel (REAL = float/double; included by
 * gemm_inst.h after gemm_body.h, whose static helpers it uses).
 *
 * Row b of step t depends only on row b of step t - 1 (h_{t-1}, c_{t-1}),
 * so the rows of the batch are independent through the whole sequence:
 * each thread takes a block of rows through all T steps, with no barrier
 * between steps (one thread team per sequence, not two per step), and for
 * each step runs the product z_t += h_{t-1} U of its rows, then the cell on
 * those rows while their z_t is still in cache. Backward is the same in
 * reverse: the cell's delta_t of the rows, then dh_{t-1} += delta_t U^T of
 * the same rows. The blocks of rows are multiples of the micro-tile's rows,
 * so every element is summed in the same order whatever the thread count. */

/* Rows [i0, i1) through every step: forward (dir 0) or backward (dir 1). */
static int NC_NAME(lstm_seq_rows)(int level, int dir, ptrdiff_t i0, ptrdiff_t i1, ptrdiff_t T, ptrdiff_t B,
                                  ptrdiff_t D, ptrdiff_t u, ptrdiff_t K, int act, REAL alpha, int ract, REAL ralpha,
                                  const REAL *packed, int with_h0, const REAL *x, REAL *xh, REAL *z, REAL *c,
                                  REAL *tc, REAL *h, REAL *dh, REAL *dc, REAL *delta)
{
    int mr, nr;
    NC_NAME(gemm_tile)(level, &mr, &nr);
    ptrdiff_t G = 4 * u, rows = i1 - i0;
    ptrdiff_t k = dir ? G : K, n = dir ? u : G, ntot = (n + nr - 1) / nr * nr, nw;
    switch (level) {
#if NC_GEMM_X86
    case NC_SIMD_AVX512: nw = NC_NAME(gemm_work_avx512)(rows, 0, k); break;
    case NC_SIMD_AVX2: nw = NC_NAME(gemm_work_avx2)(rows, 0, k); break;
#endif
    default: nw = NC_NAME(gemm_work_generic)(rows, 0, k);
    }
    REAL *work = (REAL *)malloc((size_t)nw * sizeof(REAL));
    if (!work) return -1;
    const REAL *bp = packed + NC_GEMM_PACK_HEAD;
    if (dir == 0) {
        for (ptrdiff_t t = 0; t < T; t++) {
            ptrdiff_t at = t * B + i0, next = (t + 1) * B + i0;
            REAL *zt = z + at * G;
            if (D > 0) { /* z_t = [x_t | h_{t-1} | 1] [W; U; b]: the rows of xh_t, then one product */
                REAL *a = xh + at * K;
                for (ptrdiff_t r = 0; r < rows; r++) {
                    memcpy(a + r * K, x + (at + r) * D, (size_t)D * sizeof(REAL));
                    memcpy(a + r * K + D, h + (at + r) * u, (size_t)u * sizeof(REAL));
                    if (K > D + u) a[r * K + D + u] = 1;
                }
                NC_NAME(gemm_serial_at)(level, rows, G, K, a, K, 0, zt, G, NULL, NC_ACT_LINEAR, 0, work, bp, ntot);
            } else if (t > 0 || with_h0) { /* z_t += h_{t-1} U (h[t] holds h_{t-1}) */
                NC_NAME(gemm_serial_at)(level, rows, G, u, h + at * u, u, 1, zt, G, NULL, NC_ACT_LINEAR, 0, work,
                                        bp, ntot);
            }
            NC_NAME(lstm_cell_forward)(act, alpha, ract, ralpha, zt, c + at * u, h + at * u, NULL, c + next * u,
                                       tc + at * u, h + next * u, rows, u, 1);   /* no mask */
        }
    } else {
        for (ptrdiff_t t = T - 1; t >= 0; t--) {
            ptrdiff_t at = t * B + i0;
            REAL *dt = delta + at * G;
            NC_NAME(lstm_cell_backward)(act, alpha, ract, ralpha, z + at * G, c + at * u, tc + at * u,
                                        dh + (at + B) * u, NULL, dc + i0 * u, dt, NULL, rows, u, 1);
            if (t > 0 || with_h0) /* dh_{t-1} += delta_t U^T (dh[t] holds dL/dh_{t-1}) */
                NC_NAME(gemm_serial_at)(level, rows, u, G, dt, G, 1, dh + at * u, u, NULL, NC_ACT_LINEAR, 0, work,
                                        bp, ntot);
        }
    }
    free(work);
    return 0;
}

static int NC_NAME(lstm_seq)(int dir, ptrdiff_t T, ptrdiff_t B, ptrdiff_t D, ptrdiff_t u, ptrdiff_t K, int act,
                             REAL alpha, int ract, REAL ralpha, const REAL *packed, int with_h0, const REAL *x,
                             REAL *xh, REAL *z, REAL *c, REAL *tc, REAL *h, REAL *dh, REAL *dc, REAL *delta,
                             int nthreads)
{
    int level = nc_active_simd_level();
    ptrdiff_t G = 4 * u;
    if (!(dir ? NC_NAME(gemm_packed_ok)(packed, level, G, u) : NC_NAME(gemm_packed_ok)(packed, level, K, G)))
        return -2;
    if (T <= 0 || B <= 0 || u <= 0) return 0;
    int mr, nr;
    NC_NAME(gemm_tile)(level, &mr, &nr);
    /* the products' multiply-adds plus the cells' (about 40 a unit) */
    double work = (double)T * (double)B * (double)u * (2.0 * (double)G + 40.0) + (double)T * B * D * 2.0 * G;
    int nt = work < NC_GEMM_TEAM_WORK * 2.0 ? 1 : nc_team_size(nthreads, work);
    /* blocks of about four micro-tiles of rows taken by the threads in turn (a thread whose core
     * is busy with something else takes fewer of them), as many blocks as a multiple of the team
     * and the micro-tiles spread evenly over them: 128 rows on 2 threads are 11 + 11 tiles of 6,
     * not 72 + 56 rows as blocks of 24 gave. Blocks of 12 to 128 rows ran alike at 1 thread
     * (128 x 128 units, AVX2) */
    ptrdiff_t tiles = (B + mr - 1) / mr;
    ptrdiff_t nb = (tiles + 3) / 4;
    if (nt > 1) nb = (nb + nt - 1) / nt * nt;
    if (nb > tiles) nb = tiles;
    if (nt > nb) nt = (int)nb;
    int failed = 0;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) reduction(| : failed) if (nt > 1)
    for (ptrdiff_t q = 0; q < nb; q++) {
        ptrdiff_t i0 = q * tiles / nb * mr, i1 = (q + 1) * tiles / nb * mr;
        if (i1 > B) i1 = B;
        failed |= NC_NAME(lstm_seq_rows)(level, dir, i0, i1, T, B, D, u, K, act, alpha, ract, ralpha, packed,
                                         with_h0, x, xh, z, c, tc, h, dh, dc, delta) != 0;
    }
    return failed ? -1 : 0;
}

int NC_NAME(lstm_seq_forward)(ptrdiff_t T, ptrdiff_t B, ptrdiff_t D, ptrdiff_t u, int act, REAL alpha, int ract,
                              REAL ralpha, const REAL *packed, int with_h0, const REAL *x, REAL *xh, REAL *z,
                              REAL *c, REAL *tc, REAL *h, int nthreads)
{
    ptrdiff_t K = D > 0 ? D + u + 1 : u; /* the layer passes [W; U; b]; without a bias, a zero row b */
    return NC_NAME(lstm_seq)(0, T, B, D, u, K, act, alpha, ract, ralpha, packed, with_h0, x, xh, z, c, tc, h, NULL,
                             NULL, NULL, nthreads);
}

int NC_NAME(lstm_seq_backward)(ptrdiff_t T, ptrdiff_t B, ptrdiff_t u, int act, REAL alpha, int ract, REAL ralpha,
                               const REAL *packed_t, int with_h0, const REAL *gates, const REAL *c, const REAL *tc,
                               REAL *dh, REAL *dc, REAL *delta, int nthreads)
{
    return NC_NAME(lstm_seq)(1, T, B, 0, u, u, act, alpha, ract, ralpha, packed_t, with_h0, NULL, NULL,
                             (REAL *)gates, (REAL *)c, (REAL *)tc, NULL, dh, dc, delta, nthreads);
}
