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
 * element is summed in the same order whatever the thread count.
 * mixed_bfloat16 (bf, float only; nc_lstm_seq_*_bf16): the products on the
 * bf16 micro-kernel (nc_bf16_panels; B from nc_bf16_pack), the forward's
 * chain started from the float32 bias, dP on the bf16 GEMM; the cells get
 * NC_ACT_BF16 on their codes from the caller (h_t and delta_t rounded). */

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

/* The micro-tile the step loop's products run on: the float32 GEMM's at `level`, or (bf, float only) the
 * bf16 micro-kernel's in use. */
static void NC_NAME(lstm_tile)(int level, int bf, int *mr, int *nr)
{
#ifdef NC_F32
    if (bf) {
        nc_bf16_tile(mr, nr);
        return;
    }
#else
    (void)bf;
#endif
    NC_NAME(gemm_tile)(level, mr, nr);
}

/* C (rows x n) := A B + beta C on this thread (beta 0 or 1), A's rows in place: B packed whole for the
 * float32 panels (ntot its padded width), or (bf) packed by nc_bf16_pack for the bf16 micro-kernel (bf(A)
 * B as vdpbf16ps chains it; bw its A-panel work) */
static inline void NC_NAME(lstm_product)(int level, int bf, ptrdiff_t rows, ptrdiff_t n, ptrdiff_t k, const REAL *A,
                                         ptrdiff_t lda, const REAL *packed, ptrdiff_t ntot, REAL beta, REAL *C,
                                         ptrdiff_t ldc, uint32_t *bw)
{
#ifdef NC_F32
    if (bf) {
        nc_bf16_panels(rows, n, k, A, lda, packed, beta != 0, C, ldc, bw);
        return;
    }
#else
    (void)bf, (void)bw;
#endif
    NC_NAME(lstm_panels)(level, rows, n, k, A, lda, packed + NC_GEMM_PACK_HEAD, ntot, beta, C, ldc);
}

/* Ask for the cache lines of p[0:n] to come to L2 (a hint: nothing on a compiler without GNU C's builtin). */
static inline void NC_NAME(lstm_prefetch)(const REAL *p, ptrdiff_t n)
{
#ifdef __GNUC__
    for (const char *b = (const char *)p, *e = (const char *)(p + n); b < e; b += 64) __builtin_prefetch(b, 0, 2);
#else
    (void)p, (void)n;
#endif
}

/* Steps of delta summed into the weight gradient by one product (k = that many times a block's rows). */
#ifndef NC_LSTM_WGRAD_STEPS
#define NC_LSTM_WGRAD_STEPS 2
#endif

/* A thread's share of the weight gradient: C := xh_t^T delta_t + beta C over `rows` rows (K x G, k = rows). */
static void NC_NAME(lstm_wgrad)(int level, ptrdiff_t K, ptrdiff_t G, ptrdiff_t rows, const REAL *xh, const REAL *d,
                                REAL beta, REAL *C, REAL *work)
{
    switch (level) {
#if NC_GEMM_X86
    case NC_SIMD_AVX512:
        NC_NAME(gemm_serial_avx512)(1, 0, K, G, rows, 1, xh, K, d, G, beta, C, G, NULL, NC_ACT_LINEAR, 0, 0, work,
                                    NULL, 0, 0);
        break;
    case NC_SIMD_AVX2:
        NC_NAME(gemm_serial_avx2)(1, 0, K, G, rows, 1, xh, K, d, G, beta, C, G, NULL, NC_ACT_LINEAR, 0, 0, work,
                                  NULL, 0, 0);
        break;
#endif
    default:
        NC_NAME(gemm_serial_generic)(1, 0, K, G, rows, 1, xh, K, d, G, beta, C, G, NULL, NC_ACT_LINEAR, 0, 0, work,
                                     NULL, 0, 0);
    }
}

static ptrdiff_t NC_NAME(lstm_wgrad_work)(int level, ptrdiff_t K, ptrdiff_t G, ptrdiff_t rows)
{
    switch (level) {
#if NC_GEMM_X86
    case NC_SIMD_AVX512: return NC_NAME(gemm_work_avx512)(K, G, rows);
    case NC_SIMD_AVX2: return NC_NAME(gemm_work_avx2)(K, G, rows);
#endif
    default: return NC_NAME(gemm_work_generic)(K, G, rows);
    }
}

/* Rows [i0, i1) through every step: forward (dir 0) or backward (dir 1). Each
 * step takes the rows a micro-panel (MR rows) at a time: the panel's product,
 * its rows of A read in place and every tile summed over the whole k in
 * registers (gemm_panels), then its cell while the panel's z_t (forward) is
 * in L1; backward the cell first, then the product on the delta_t rows it
 * just wrote.
 * Backward with dP (K x G, else NULL): dP := xh^T delta + dP over the
 * block's rows while their delta is in cache, every NC_LSTM_WGRAD_STEPS steps
 * (dP = the block's part of [dW; dU; db], its first product overwrites it).
 * delta_t then goes to a scratch of the block's rows (reused: the delta of
 * the sequence goes to memory only when the caller keeps it). dh_beta 1
 * adds delta_t U^T to dh_{t-1}, 0 writes it there (dh_{t-1} is not read).
 * Returns -1 if its workspace could not be had, else 0. */
static int NC_NAME(lstm_seq_rows)(int level, int bf, int dir, ptrdiff_t i0, ptrdiff_t i1, ptrdiff_t T, ptrdiff_t B,
                                  ptrdiff_t D, ptrdiff_t u, ptrdiff_t K, int act, REAL alpha, int ract, REAL ralpha,
                                  const REAL *packed, const REAL *bias, int with_h0, REAL dh_beta, const REAL *x,
                                  REAL *xh, REAL *z, REAL *c, REAL *tc, REAL *h, REAL *dh, REAL *dc, REAL *delta,
                                  REAL *dP)
{
    int mr, nr;
    NC_NAME(lstm_tile)(level, bf, &mr, &nr);
    ptrdiff_t G = 4 * u, ntot = ((dir ? u : G) + nr - 1) / nr * nr, nrow = i1 - i0;
    uint32_t *bw = NULL;
#ifdef NC_F32
    if (bf && !(bw = (uint32_t *)malloc((size_t)nc_bf16_panels_work(dir ? G : K) * sizeof(uint32_t)))) return -1;
#endif
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
                    if (bf) { /* the float32 bias, then the chain of bf(x_t | h_{t-1}) [W; U] from it */
                        for (ptrdiff_t r = 0; r < rows; r++)
                            if (bias) memcpy(zt + r * G, bias, (size_t)G * sizeof(REAL));
                        NC_NAME(lstm_product)(level, bf, rows, G, D + u, a, K, packed, ntot, bias ? 1 : 0, zt, G, bw);
                    } else {
                        NC_NAME(lstm_product)(level, bf, rows, G, K, a, K, packed, ntot, 0, zt, G, bw);
                    }
                } else if (t > 0 || with_h0) { /* z_t += h_{t-1} U (h[t] holds h_{t-1}) */
                    NC_NAME(lstm_product)(level, bf, rows, G, u, h + at * u, u, packed, ntot, 1, zt, G, bw);
                }
                NC_NAME(lstm_cell_forward)(act, alpha, ract, ralpha, zt, c + at * u, h + at * u, NULL, c + next * u,
                                           tc + at * u, h + next * u, rows, u, 1);   /* no mask */
            }
        free(bw);
        return 0;
    }
    /* with dP: delta_t and xh_t of the block's rows go to scratch slots, S steps of them, and each S
     * steps dP += (their xh)^T (their delta), k = S rows a step: the products are S times as deep as
     * one step's rows would give (a tile's C passes through memory once per S steps) */
    enum { S = NC_LSTM_WGRAD_STEPS };
    REAL *work = NULL, *dsc = NULL, *xsc = NULL;
    if (dP) {
        ptrdiff_t nw = NC_NAME(lstm_wgrad_work)(level, K, G, S * nrow);
        work = (REAL *)malloc((size_t)(nw + S * nrow * (G + K)) * sizeof(REAL));
        if (!work) {
            free(bw);
            return -1;
        }
        dsc = work + nw, xsc = dsc + S * nrow * G;
    }
    for (ptrdiff_t t = T - 1; t >= 0; t--) {
        /* this step's delta rows: row r0 of the block at dblk + (r0 - i0) G */
        ptrdiff_t slot = (T - 1 - t) % S;
        REAL *dblk = dP ? dsc + slot * nrow * G : delta + (t * B + i0) * G;
        for (ptrdiff_t r0 = i0; r0 < i1; r0 += mr) {
            ptrdiff_t rows = i1 - r0 < mr ? i1 - r0 : mr, at = t * B + r0;
            REAL *dt = dblk + (r0 - i0) * G;
            NC_NAME(lstm_cell_backward)(act, alpha, ract, ralpha, z + at * G, c + at * u, tc + at * u,
                                        dh + (at + B) * u, NULL, dc + r0 * u, dt, NULL, rows, u, 1);
            /* the next panel's cell reads its gates, c and a(c) of a step written long ago (out of
             * cache: the cells ran at the speed of memory): ask for those lines now, so that they
             * arrive while this panel's product runs */
            ptrdiff_t nt0 = r0 + mr < i1 ? t : t - 1, nr0 = r0 + mr < i1 ? r0 + mr : i0;
            if (nt0 >= 0) {
                ptrdiff_t nat = nt0 * B + nr0, nrows = i1 - nr0 < mr ? i1 - nr0 : mr;
                NC_NAME(lstm_prefetch)(z + nat * G, nrows * G);
                NC_NAME(lstm_prefetch)(c + nat * u, nrows * u);
                NC_NAME(lstm_prefetch)(tc + nat * u, nrows * u);
            }
            if (t > 0 || with_h0) /* dh_{t-1} := delta_t U^T + dh_beta dh_{t-1} (dh[t] holds dL/dh_{t-1}) */
                NC_NAME(lstm_product)(level, bf, rows, u, G, dt, G, packed, ntot, dh_beta, dh + at * u, u, bw);
        }
        if (!dP) continue;
        if (delta) memcpy(delta + (t * B + i0) * G, dblk, (size_t)(nrow * G) * sizeof(REAL));
        memcpy(xsc + slot * nrow * K, xh + (t * B + i0) * K, (size_t)(nrow * K) * sizeof(REAL));
        if (slot == S - 1 || t == 0) { /* [dW; dU; db] += xh^T delta over the slots' rows */
#ifdef NC_F32
            if (bf) { /* on the bf16 GEMM, this thread alone */
                if (nc_gemm_bf16_f32(1, 0, K, G, (slot + 1) * nrow, 1, xsc, K, dsc, G, t + slot == T - 1 ? 0 : 1, dP, G,
                                     NULL, NC_ACT_LINEAR, 0, 0, 1) != 0) {
                    free(work);
                    free(bw);
                    return -1;
                }
                continue;
            }
#endif
            NC_NAME(lstm_wgrad)(level, K, G, (slot + 1) * nrow, xsc, dsc, t + slot == T - 1 ? 0 : 1, dP, work);
        }
    }
    free(work);
    free(bw);
    return 0;
}

/* The blocks of rows the threads take in turn: about 64 rows each, an even
 * count (two threads get equal shares), the micro-tiles spread evenly: 128
 * rows are 8 + 8 tiles of 8 (AVX-512) or 11 + 11 tiles of 6 (AVX2). Each
 * block sums its own part of the weight gradient, k = its rows times
 * NC_LSTM_WGRAD_STEPS a product (the lstm row's backward loop with dP, AVX2,
 * 1 thread: 13.0 ms on blocks of 4 to 6 tiles of 6 and one step a product,
 * 12.7 on blocks of 11 tiles, 12.3 with two steps a product, against 12.8
 * for the loop and a separate dP GEMM). Fixed by B and the tile alone, not by the thread
 * count: the parts are added in block order, so the result does not depend
 * on the thread count. The count comes from B itself: from the rows rounded
 * up to whole tiles, AVX2's 128 rows (22 tiles, 132 rows) made 3, then 4
 * blocks of 5-6 tiles. */
static ptrdiff_t NC_NAME(lstm_nblocks)(ptrdiff_t B, int mr)
{
    ptrdiff_t tiles = (B + mr - 1) / mr, nb = (B + 63) / 64;
    if (nb > 1 && nb % 2) nb++;
    return nb < tiles ? nb : tiles;
}

static int NC_NAME(lstm_seq)(int bf, int dir, ptrdiff_t T, ptrdiff_t B, ptrdiff_t D, ptrdiff_t u, ptrdiff_t K,
                             int act, REAL alpha, int ract, REAL ralpha, const REAL *packed, const REAL *bias,
                             int with_h0, REAL dh_beta, const REAL *x, REAL *xh, REAL *z, REAL *c, REAL *tc, REAL *h,
                             REAL *dh, REAL *dc, REAL *delta, REAL *dP, int nthreads)
{
    int level = nc_active_simd_level();
    ptrdiff_t G = 4 * u;
#ifdef NC_F32
    if (bf) {
        if (!(dir ? nc_bf16_packed_ok(packed, G, u) : nc_bf16_packed_ok(packed, D > 0 ? D + u : u, G))) return -2;
    } else
#endif
    if (!(dir ? NC_NAME(gemm_packed_ok)(packed, level, G, u) : NC_NAME(gemm_packed_ok)(packed, level, K, G)))
        return -2;
    if (B <= 0 || u <= 0) return 0;
    if (T <= 0) {
        if (dP) memset(dP, 0, (size_t)(K * G) * sizeof(REAL));
        return 0;
    }
    int mr, nr;
    NC_NAME(lstm_tile)(level, bf, &mr, &nr);
    /* the products' multiply-adds plus the cells' (about 40 a unit) */
    double work = (double)T * (double)B * (double)u * (2.0 * (double)G + 40.0) + (double)T * B * D * 2.0 * G;
    if (dP) work += (double)T * B * K * 2.0 * G;
    int nt = work < NC_GEMM_TEAM_WORK * 2.0 ? 1 : nc_team_size(nthreads, work);
    /* bf16: blocks of whole 24-row quanta (8, 6 and 4, the bf16 kernels' tile rows, divide 24), so that the
     * parts of dP, and with them its bits, are the same on every bf16 kernel */
    ptrdiff_t bq = bf ? 24 : mr, tiles = (B + bq - 1) / bq, nb = NC_NAME(lstm_nblocks)(B, (int)bq);
    if (nt > nb) nt = (int)nb;
    /* block 0 sums its part of the weight gradient in dP, the others in parts of their own */
    REAL *parts = NULL;
    if (dP && nb > 1) {
        parts = (REAL *)malloc((size_t)((nb - 1) * K * G) * sizeof(REAL));
        if (!parts) return -1;
    }
    int failed = 0;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) reduction(| : failed) if (nt > 1)
    for (ptrdiff_t q = 0; q < nb; q++) {
        ptrdiff_t i0 = q * tiles / nb * bq, i1 = (q + 1) * tiles / nb * bq;
        if (i1 > B) i1 = B;
        REAL *part = !dP ? NULL : q == 0 ? dP : parts + (q - 1) * K * G;
        failed |= NC_NAME(lstm_seq_rows)(level, bf, dir, i0, i1, T, B, D, u, K, act, alpha, ract, ralpha, packed,
                                         bias, with_h0, dh_beta, x, xh, z, c, tc, h, dh, dc, delta, part) != 0;
    }
    if (parts) {
        if (!failed) /* the blocks' parts in block order */
            for (ptrdiff_t q = 1; q < nb; q++) {
                const REAL *src = parts + (q - 1) * K * G;
#pragma omp simd
                for (ptrdiff_t e = 0; e < K * G; e++) dP[e] += src[e];
            }
        free(parts);
    }
    return failed ? -1 : 0;
}

int NC_NAME(lstm_seq_forward)(ptrdiff_t T, ptrdiff_t B, ptrdiff_t D, ptrdiff_t u, int act, REAL alpha, int ract,
                              REAL ralpha, const REAL *packed, int with_h0, const REAL *x, REAL *xh, REAL *z,
                              REAL *c, REAL *tc, REAL *h, int nthreads)
{
    ptrdiff_t K = D > 0 ? D + u + 1 : u; /* the layer passes [W; U; b]; without a bias, a zero row b */
    return NC_NAME(lstm_seq)(0, 0, T, B, D, u, K, act, alpha, ract, ralpha, packed, NULL, with_h0, 1, x, xh, z, c,
                             tc, h, NULL, NULL, NULL, NULL, nthreads);
}

int NC_NAME(lstm_seq_backward)(ptrdiff_t T, ptrdiff_t B, ptrdiff_t u, int act, REAL alpha, int ract, REAL ralpha,
                               const REAL *packed_t, int with_h0, int add_dh, const REAL *gates, const REAL *c,
                               const REAL *tc, REAL *dh, REAL *dc, REAL *delta, ptrdiff_t K, const REAL *xh, REAL *dP,
                               int nthreads)
{
    if (!dP) xh = NULL, K = u;
    if (!delta && !dP) return -3;
    return NC_NAME(lstm_seq)(0, 1, T, B, 0, u, K, act, alpha, ract, ralpha, packed_t, NULL, with_h0, add_dh ? 1 : 0,
                             NULL, (REAL *)xh, (REAL *)gates, (REAL *)c, (REAL *)tc, NULL, dh, dc, delta, dP,
                             nthreads);
}

#ifdef NC_F32
int nc_lstm_seq_forward_bf16(ptrdiff_t T, ptrdiff_t B, ptrdiff_t D, ptrdiff_t u, int act, float alpha, int ract,
                             float ralpha, const float *packed, const float *bias, int with_h0, const float *x,
                             float *xh, float *z, float *c, float *tc, float *h, int nthreads)
{
    ptrdiff_t K = D > 0 ? D + u + 1 : u;
    return NC_NAME(lstm_seq)(1, 0, T, B, D, u, K, act, alpha, ract, ralpha, packed, D > 0 ? bias : NULL, with_h0, 1,
                             x, xh, z, c, tc, h, NULL, NULL, NULL, NULL, nthreads);
}

int nc_lstm_seq_backward_bf16(ptrdiff_t T, ptrdiff_t B, ptrdiff_t u, int act, float alpha, int ract, float ralpha,
                              const float *packed_t, int with_h0, int add_dh, const float *gates, const float *c,
                              const float *tc, float *dh, float *dc, float *delta, ptrdiff_t K, const float *xh,
                              float *dP, int nthreads)
{
    if (!dP) xh = NULL, K = u;
    if (!delta && !dP) return -3;
    return NC_NAME(lstm_seq)(1, 1, T, B, 0, u, K, act, alpha, ract, ralpha, packed_t, NULL, with_h0, add_dh ? 1 : 0,
                             NULL, (float *)xh, (float *)gates, (float *)c, (float *)tc, NULL, dh, dc, delta, dP,
                             nthreads);
}
#endif
