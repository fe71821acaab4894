/* gemm_rnn_body.h -- the step loop of an LSTM over a whole sequence in one
 * call, on the packed recurrent kernel (REAL = float/double; included by
 * gemm_inst.h after gemm_body.h, whose static helpers it uses).
 *
 * Row b of step t depends only on row b of step t - 1 (h_{t-1}, c_{t-1}),
 * so the rows of the batch are independent through the whole sequence:
 * each thread takes a block of rows through all T steps, with no barrier
 * between steps (one thread team per sequence, not two per step), and for
 * each step takes its rows a micro-panel (MR rows) at a time: the panel's
 * product z_t = [x_t | h_{t-1} | 1] [W; U; b] (gemm_panels: rows read in
 * place, every tile summed over the whole k in registers), then the cell on
 * those rows while their z_t is in L1. Backward is the same in reverse: the
 * cell's delta_t of the panel, then dh_{t-1} += delta_t U^T of the same rows.
 * The blocks and panels are multiples of the micro-tile's rows, so every
 * element is summed in the same order whatever the thread count. */

/* gemm_panels at the level in use: C := A B + beta C on this thread, A in place, B packed whole. */
static void NC_NAME(lstm_panels)(int level, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const REAL *A, ptrdiff_t lda,
                                 const REAL *bp, ptrdiff_t ntot, REAL beta, REAL *C, ptrdiff_t ldc)
{
    switch (level) {
#if NC_GEMM_X86
    case NC_SIMD_AVX512:
        NC_NAME(gemm_panels_avx512)(m, n, k, A, lda, bp, ntot, beta, C, ldc, NULL, NC_ACT_LINEAR, 0);
        break;
    case NC_SIMD_AVX2:
        NC_NAME(gemm_panels_avx2)(m, n, k, A, lda, bp, ntot, beta, C, ldc, NULL, NC_ACT_LINEAR, 0);
        break;
#endif
    default: NC_NAME(gemm_panels_generic)(m, n, k, A, lda, bp, ntot, beta, C, ldc, NULL, NC_ACT_LINEAR, 0);
    }
}

/* Ask for the cache lines of p[0:n] to come to L2 (for writing when w). */
static inline void NC_NAME(lstm_prefetch)(const REAL *p, ptrdiff_t n, int w)
{
    const char *b = (const char *)p, *e = (const char *)(p + n);
    for (; b < e; b += 64) {
        if (w) __builtin_prefetch(b, 1, 2);
        else __builtin_prefetch(b, 0, 2);
    }
}

/* Rows [i0, i1) through every step: forward (dir 0) or backward (dir 1). Each
 * step takes the rows a micro-panel (MR rows) at a time: the panel's product,
 * its rows of A read in place and every tile summed over the whole k in
 * registers (gemm_panels), then its cell while the panel's z_t (forward) is
 * in L1; backward the cell first, then the product on the delta_t rows it
 * just wrote. */
static void NC_NAME(lstm_seq_rows)(int level, int dir, ptrdiff_t i0, ptrdiff_t i1, ptrdiff_t T, ptrdiff_t B,
                                   ptrdiff_t D, ptrdiff_t u, ptrdiff_t K, int act, REAL alpha, int ract, REAL ralpha,
                                   const REAL *packed, int with_h0, const REAL *x, REAL *xh, REAL *z, REAL *c,
                                   REAL *tc, REAL *h, REAL *dh, REAL *dc, REAL *delta)
{
    int mr, nr;
    NC_NAME(gemm_tile)(level, &mr, &nr);
    ptrdiff_t G = 4 * u, ntot = ((dir ? u : G) + nr - 1) / nr * nr;
    const REAL *bp = packed + NC_GEMM_PACK_HEAD;
    if (dir == 0) {
        for (ptrdiff_t t = 0; t < T; t++)
            for (ptrdiff_t r0 = i0; r0 < i1; r0 += mr) {
                ptrdiff_t rows = i1 - r0 < mr ? i1 - r0 : mr, at = t * B + r0, next = (t + 1) * B + r0;
                REAL *zt = z + at * G;
                if (D > 0) { /* z_t = [x_t | h_{t-1} | 1] [W; U; b]: the panel's rows of xh_t, then one product */
                    REAL *a = xh + at * K;
                    for (ptrdiff_t r = 0; r < rows; r++) {
                        memcpy(a + r * K, x + (at + r) * D, (size_t)D * sizeof(REAL));
                        memcpy(a + r * K + D, h + (at + r) * u, (size_t)u * sizeof(REAL));
                        if (K > D + u) a[r * K + D + u] = 1;
                    }
                    NC_NAME(lstm_panels)(level, rows, G, K, a, K, bp, ntot, 0, zt, G);
                } else if (t > 0 || with_h0) { /* z_t += h_{t-1} U (h[t] holds h_{t-1}) */
                    NC_NAME(lstm_panels)(level, rows, G, u, h + at * u, u, bp, ntot, 1, zt, G);
                }
                NC_NAME(lstm_cell_forward)(act, alpha, ract, ralpha, zt, c + at * u, h + at * u, NULL, c + next * u,
                                           tc + at * u, h + next * u, rows, u, 1);   /* no mask */
            }
    } else {
        for (ptrdiff_t t = T - 1; t >= 0; t--)
            for (ptrdiff_t r0 = i0; r0 < i1; r0 += mr) {
                ptrdiff_t rows = i1 - r0 < mr ? i1 - r0 : mr, at = t * B + r0;
                REAL *dt = delta + at * G;
                NC_NAME(lstm_cell_backward)(act, alpha, ract, ralpha, z + at * G, c + at * u, tc + at * u,
                                            dh + (at + B) * u, NULL, dc + r0 * u, dt, NULL, rows, u, 1);
                /* the next panel's cell reads its gates, c and a(c) of a step written long ago (out of
                 * cache: the cells ran at the speed of memory) and writes its delta: ask for those lines
                 * now, so that they arrive while this panel's product runs */
                {
                    ptrdiff_t nt0 = r0 + mr < i1 ? t : t - 1, nr0 = r0 + mr < i1 ? r0 + mr : i0;
                    if (nt0 >= 0) {
                        ptrdiff_t nat = nt0 * B + nr0, nrows = i1 - nr0 < mr ? i1 - nr0 : mr;
                        NC_NAME(lstm_prefetch)(z + nat * G, nrows * G, 0);
                        NC_NAME(lstm_prefetch)(c + nat * u, nrows * u, 0);
                        NC_NAME(lstm_prefetch)(tc + nat * u, nrows * u, 0);
                        NC_NAME(lstm_prefetch)(delta + nat * G, nrows * G, 1);
                    }
                }
                if (t > 0 || with_h0) /* dh_{t-1} += delta_t U^T (dh[t] holds dL/dh_{t-1}) */
                    NC_NAME(lstm_panels)(level, rows, u, G, dt, G, bp, ntot, 1, dh + at * u, u);
            }
    }
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
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (nt > 1)
    for (ptrdiff_t q = 0; q < nb; q++) {
        ptrdiff_t i0 = q * tiles / nb * mr, i1 = (q + 1) * tiles / nb * mr;
        if (i1 > B) i1 = B;
        NC_NAME(lstm_seq_rows)(level, dir, i0, i1, T, B, D, u, K, act, alpha, ract, ralpha, packed, with_h0, x, xh,
                               z, c, tc, h, dh, dc, delta);
    }
    return 0;
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
