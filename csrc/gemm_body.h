/* gemm_body.h -- C := act(alpha op(A) op(B) + beta C + bias), REAL = float/double.
 * The top of nc_gemm: degenerate cases, the SIMD level, the thread split.
 * The blocked work itself is gemm_serial in gemm_kernel.h. */

#define A_(i, p) (trans_a ? A[(p) * lda + (i)] : A[(i) * lda + (p)])
#define B_(p, j) (trans_b ? B[(j) * ldb + (p)] : B[(p) * ldb + (j)])

void NC_NAME(gemm_ref)(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                       REAL alpha, const REAL *A, ptrdiff_t lda, const REAL *B, ptrdiff_t ldb,
                       REAL beta, REAL *C, ptrdiff_t ldc)
{
    for (ptrdiff_t i = 0; i < m; i++)
        for (ptrdiff_t j = 0; j < n; j++) {
            REAL s = 0;
            for (ptrdiff_t p = 0; p < k; p++) s += A_(i, p) * B_(p, j);
            C[i * ldc + j] = alpha * s + (beta == 0 ? (REAL)0 : beta * C[i * ldc + j]);
        }
}

#undef A_
#undef B_

/* Blocking of the level in use: the micro-tile, and MC when mc is not NULL. */
static void NC_NAME(gemm_blocks)(int level, int *mr, int *nr, ptrdiff_t *mc)
{
#if defined(NC_F32)
#define NC_GEMM_ROW_(lvl) NC_GEMM_F32_##lvl
#else
#define NC_GEMM_ROW_(lvl) NC_GEMM_F64_##lvl
#endif
    ptrdiff_t c;
    switch (level) {
#if NC_GEMM_X86
    case NC_SIMD_AVX512:
        *mr = NC_GEMM_MR(NC_GEMM_ROW_(AVX512)), *nr = NC_GEMM_NV(NC_GEMM_ROW_(AVX512)) * 64 / (int)sizeof(REAL);
        c = NC_GEMM_MC(NC_GEMM_ROW_(AVX512));
        break;
    case NC_SIMD_AVX2:
        *mr = NC_GEMM_MR(NC_GEMM_ROW_(AVX2)), *nr = NC_GEMM_NV(NC_GEMM_ROW_(AVX2)) * 32 / (int)sizeof(REAL);
        c = NC_GEMM_MC(NC_GEMM_ROW_(AVX2));
        break;
#endif
    default:
        *mr = NC_GEMM_MR(NC_GEMM_ROW_(GENERIC)), *nr = NC_GEMM_NV(NC_GEMM_ROW_(GENERIC));
        c = NC_GEMM_MC(NC_GEMM_ROW_(GENERIC));
    }
    if (mc) *mc = c;
#undef NC_GEMM_ROW_
}

/* The micro-tile of the level in use, for the thread split. */
static void NC_NAME(gemm_tile)(int level, int *mr, int *nr)
{
    NC_NAME(gemm_blocks)(level, mr, nr, NULL);
}

/* One thread's block of C on the direct or packed path: get the workspace
 * (per call, per thread: no shared state), run the level's kernel. With
 * bpack (op(B) packed whole, ntot columns, this block from micro-panel bq0;
 * see gemm_pack_whole) B is unused; returns -1 if its workspace could not be
 * had (without bpack the plain loops then do the work), else 0. */
static int NC_NAME(gemm_region)(int level, int direct, int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                                REAL alpha, const REAL *A, ptrdiff_t lda, const REAL *B, ptrdiff_t ldb,
                                REAL beta, REAL *C, ptrdiff_t ldc, const REAL *bias, int act, REAL act_alpha,
                                const REAL *bpack, ptrdiff_t ntot, ptrdiff_t bq0)
{
    int mr, nr;
    NC_NAME(gemm_tile)(level, &mr, &nr);
    ptrdiff_t nw, nb = bpack ? 0 : n;
    if (direct == NC_GEMM_PATH_DOT)
        nw = trans_a ? m * k : 0;
    else if (direct)
        nw = trans_b ? k * ((n + nr - 1) / nr * nr) : 0;
    else
        switch (level) {
#if NC_GEMM_X86
        case NC_SIMD_AVX512: nw = NC_NAME(gemm_work_avx512)(m, nb, k); break;
        case NC_SIMD_AVX2: nw = NC_NAME(gemm_work_avx2)(m, nb, k); break;
#endif
        default: nw = NC_NAME(gemm_work_generic)(m, nb, k);
        }
    REAL *work = NULL;
    if (nw > 0) {
        work = (REAL *)malloc((size_t)nw * sizeof(REAL));
        if (!work) { /* out of memory: the plain loops need no workspace */
            if (bpack) return -1;
            NC_NAME(gemm_ref)(trans_a, trans_b, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
            for (ptrdiff_t i = 0; i < m; i++) {
                REAL *c = C + i * ldc;
                if (bias) for (ptrdiff_t j = 0; j < n; j++) c[j] += bias[j];
                if (act != NC_ACT_LINEAR) NC_NAME(act_forward)(act, act_alpha, c, c, n);
            }
            return 0;
        }
    }
    if (direct == NC_GEMM_PATH_DOT) {
        /* rows of op(A) contiguous in p: A itself, or a copy when transposed */
        const REAL *a = A;
        ptrdiff_t rsa = lda;
        if (trans_a) {
            for (ptrdiff_t i = 0; i < m; i++)
                for (ptrdiff_t p = 0; p < k; p++) work[i * k + p] = A[p * lda + i];
            a = work, rsa = k;
        }
        switch (level) {
#if NC_GEMM_X86
        case NC_SIMD_AVX512:
            NC_NAME(gemm_dot_avx512)(m, n, k, alpha, a, rsa, B, ldb, beta, C, ldc, bias, act, act_alpha);
            break;
        case NC_SIMD_AVX2:
            NC_NAME(gemm_dot_avx2)(m, n, k, alpha, a, rsa, B, ldb, beta, C, ldc, bias, act, act_alpha);
            break;
#endif
        default:
            NC_NAME(gemm_dot_generic)(m, n, k, alpha, a, rsa, B, ldb, beta, C, ldc, bias, act, act_alpha);
        }
        free(work);
        return 0;
    }
    switch (level) {
#if NC_GEMM_X86
    case NC_SIMD_AVX512:
        NC_NAME(gemm_serial_avx512)(trans_a, trans_b, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc, bias, act,
                                    act_alpha, direct, work, bpack, ntot, bq0);
        break;
    case NC_SIMD_AVX2:
        NC_NAME(gemm_serial_avx2)(trans_a, trans_b, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc, bias, act,
                                  act_alpha, direct, work, bpack, ntot, bq0);
        break;
#endif
    default:
        NC_NAME(gemm_serial_generic)(trans_a, trans_b, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc, bias, act,
                                     act_alpha, direct, work, bpack, ntot, bq0);
    }
    free(work);
    return 0;
}

/* Columns of C per block of the row path at this level. */
static int NC_NAME(gemm_row_width)(int level)
{
    switch (level) {
#if NC_GEMM_X86
    case NC_SIMD_AVX512: return NC_NAME(gemm_row_width_avx512)();
    case NC_SIMD_AVX2: return NC_NAME(gemm_row_width_avx2)();
#endif
    default: return NC_NAME(gemm_row_width_generic)();
    }
}

/* Split C into a tm x tn grid for T threads, choosing the factorisation that
 * packs least twice: a column split repacks op(A) (m k) per part, a row
 * split repacks op(B) (k n), unless B came packed. Parts are multiples of
 * the micro-tile. */
static void NC_NAME(gemm_grid)(int T, ptrdiff_t m, ptrdiff_t n, int mr, int nr, int bpacked, int *tm, int *tn)
{
    double best = -1;
    *tm = 1, *tn = T;
    for (int a = 1; a <= T; a++) {
        if (T % a) continue;
        int b = T / a;
        if ((a > 1 && (m + mr - 1) / mr < a) || (b > 1 && (n + nr - 1) / nr < b)) continue;
        double cost = (double)b * (double)m + (bpacked ? 0.0 : (double)a * (double)n);
        if (best < 0 || cost < best) best = cost, *tm = a, *tn = b;
    }
}

static ptrdiff_t NC_NAME(gemm_cut)(ptrdiff_t len, int parts, int part, int unit)
{
    ptrdiff_t units = (len + unit - 1) / unit;
    ptrdiff_t at = units * part / parts * unit;
    return at < len ? at : len;
}

static int NC_NAME(gemm_team)(int level, int direct, int mr, int nr, int nthreads, int trans_a, int trans_b,
                              ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, REAL alpha, const REAL *A, ptrdiff_t lda,
                              const REAL *B, ptrdiff_t ldb, REAL beta, REAL *C, ptrdiff_t ldc, const REAL *bias,
                              int act, REAL act_alpha, const REAL *bpack, ptrdiff_t ntot);

void NC_NAME(gemm)(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                   REAL alpha, const REAL *A, ptrdiff_t lda, const REAL *B, ptrdiff_t ldb,
                   REAL beta, REAL *C, ptrdiff_t ldc, const REAL *bias, int act, REAL act_alpha, int nthreads)
{
    if (m <= 0 || n <= 0) return;
    if (k <= 0 || alpha == 0) { /* C := act(beta C + bias) */
        for (ptrdiff_t i = 0; i < m; i++) {
            REAL *c = C + i * ldc;
            for (ptrdiff_t j = 0; j < n; j++) c[j] = (beta == 0 ? (REAL)0 : beta * c[j]) + (bias ? bias[j] : 0);
            if (act != NC_ACT_LINEAR) NC_NAME(act_forward)(act, act_alpha, c, c, n);
        }
        return;
    }
    int level = nc_active_simd_level();
    int mr, nr;
    NC_NAME(gemm_tile)(level, &mr, &nr);
    /* direct (no packing): tiny products, or a few rows of op(A) (packing B
     * would cost as much as using it: each element serves only m rows); a
     * transposed B is then packed whole when small, else the packed path
     * runs. Decided once for all threads, so every element of C is summed in
     * the same order whatever the thread count. */
    double mnk = (double)m * (double)n * (double)k;
    int direct = trans_b ? mnk <= NC_GEMM_DIRECT_WORK && (double)k * (double)n <= 16384.0
                         : mnk <= NC_GEMM_DIRECT_WORK || m <= NC_GEMM_DIRECT_PANELS * mr || (!trans_a && n <= 2 * nr && k <= NC_GEMM_DIRECT_THIN_K);
    /* a transposed B shared by a few rows of op(A): dot products, no packing;
     * one or two rows over a plain B: the row path, in blocks of C columns
     * that the thread split below respects */
    if (trans_b && (m <= NC_GEMM_DOT_ROWS_ALWAYS || (!direct && m <= NC_GEMM_DOT_ROWS)))
        direct = NC_GEMM_PATH_DOT;
    else if (!trans_b && m <= NC_GEMM_ROWS_PATH_ROWS) {
        direct = NC_GEMM_PATH_ROWS;
        nr = NC_NAME(gemm_row_width)(level);
    }
    NC_NAME(gemm_team)(level, direct, mr, nr, nthreads, trans_a, trans_b, m, n, k, alpha, A, lda, B, ldb, beta, C,
                       ldc, bias, act, act_alpha, NULL, 0);
}

/* Cut C among the threads (along the chosen path's blocks, so that every
 * element is summed in the same order whatever the thread count) and run
 * each part; returns -1 if a part could not be done (gemm_region). */
static int NC_NAME(gemm_team)(int level, int direct, int mr, int nr, int nthreads, int trans_a, int trans_b,
                              ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, REAL alpha, const REAL *A, ptrdiff_t lda,
                              const REAL *B, ptrdiff_t ldb, REAL beta, REAL *C, ptrdiff_t ldc, const REAL *bias,
                              int act, REAL act_alpha, const REAL *bpack, ptrdiff_t ntot)
{
    double mnk = (double)m * (double)n * (double)k;
    int nt = mnk < NC_GEMM_TEAM_WORK ? 1 : nc_team_size(nthreads, 2.0 * mnk);
    double tiles = (double)((m + mr - 1) / mr) * (double)((n + nr - 1) / nr);
    if (nt > tiles) nt = (int)tiles;
    if (nt <= 1)
        return NC_NAME(gemm_region)(level, direct, trans_a, trans_b, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc,
                                    bias, act, act_alpha, bpack, ntot, 0);
    int failed = 0;
#pragma omp parallel num_threads(nt) reduction(| : failed)
    {
        int T = omp_get_num_threads(), t = omp_get_thread_num(), tm, tn;
        NC_NAME(gemm_grid)(T, m, n, mr, nr, bpack != NULL, &tm, &tn);
        int ti = t / tn, tj = t % tn;
        ptrdiff_t i0 = NC_NAME(gemm_cut)(m, tm, ti, mr), i1 = NC_NAME(gemm_cut)(m, tm, ti + 1, mr);
        ptrdiff_t j0 = NC_NAME(gemm_cut)(n, tn, tj, nr), j1 = NC_NAME(gemm_cut)(n, tn, tj + 1, nr);
        if (i1 > i0 && j1 > j0) {
            const REAL *a = trans_a ? A + i0 : A + i0 * lda;
            const REAL *b = bpack ? NULL : trans_b ? B + j0 * ldb : B + j0;
            failed |= NC_NAME(gemm_region)(level, direct, trans_a, trans_b, i1 - i0, j1 - j0, k, alpha, a, lda, b,
                                           ldb, beta, C + i0 * ldc + j0, ldc, bias ? bias + j0 : NULL, act,
                                           act_alpha, bpack, ntot, j0 / nr) != 0;
        }
    }
    return failed ? -1 : 0;
}

/* ---- op(B) packed once for many products ---------------------------------- */

/* The packed buffer opens with a head of 64 bytes: a tag, the SIMD level it
 * was packed for, k and n (int64 each); the micro-panels follow. */
#define NC_GEMM_PACK_HEAD (64 / (ptrdiff_t)sizeof(REAL))
#define NC_GEMM_PACK_TAG 0x6e63706bLL /* "ncpk" */

static int NC_NAME(gemm_nr_of)(int level)
{
    int mr, nr;
    NC_NAME(gemm_tile)(level, &mr, &nr);
    return nr;
}

ptrdiff_t NC_NAME(gemm_pack_size)(ptrdiff_t k, ptrdiff_t n)
{
    ptrdiff_t nr = NC_NAME(gemm_nr_of)(nc_active_simd_level());
    return NC_GEMM_PACK_HEAD + (k > 0 ? k : 0) * (((n > 0 ? n : 0) + nr - 1) / nr * nr);
}

int NC_NAME(gemm_pack_b)(int trans_b, ptrdiff_t k, ptrdiff_t n, const REAL *B, ptrdiff_t ldb, REAL *packed,
                         int refresh)
{
    int level = nc_active_simd_level();
    int64_t head[4] = {NC_GEMM_PACK_TAG, level, k, n}, old[4];
    memcpy(old, packed, sizeof old);
    if (memcmp(old, head, sizeof head)) { /* not a packing of this shape at this level: all of it anew */
        memcpy(packed, head, sizeof head);
        refresh = 0;
    }
    if (k <= 0 || n <= 0) return !refresh;
    REAL *dst = packed + NC_GEMM_PACK_HEAD;
    switch (level) {
#if NC_GEMM_X86
    case NC_SIMD_AVX512: return NC_NAME(gemm_pack_whole_avx512)(trans_b, k, n, B, ldb, dst, refresh);
    case NC_SIMD_AVX2: return NC_NAME(gemm_pack_whole_avx2)(trans_b, k, n, B, ldb, dst, refresh);
#endif
    default: return NC_NAME(gemm_pack_whole_generic)(trans_b, k, n, B, ldb, dst, refresh);
    }
}

int NC_NAME(gemm_packed)(int trans_a, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, REAL alpha, const REAL *A,
                         ptrdiff_t lda, const REAL *packed, REAL beta, REAL *C, ptrdiff_t ldc, const REAL *bias,
                         int act, REAL act_alpha, int nthreads)
{
    int level = nc_active_simd_level();
    int64_t head[4];
    memcpy(head, packed, sizeof head);
    if (head[0] != NC_GEMM_PACK_TAG || head[1] != level || head[2] != k || head[3] != n) return -2;
    if (m <= 0 || n <= 0) return 0;
    if (k <= 0 || alpha == 0) {
        NC_NAME(gemm)(0, 0, m, n, 0, alpha, A, lda, NULL, n, beta, C, ldc, bias, act, act_alpha, 1);
        return 0;
    }
    int mr, nr;
    NC_NAME(gemm_tile)(level, &mr, &nr);
    return NC_NAME(gemm_team)(level, 0, mr, nr, nthreads, trans_a, 0, m, n, k, alpha, A, lda, NULL, 0, beta, C, ldc,
                              bias, act, act_alpha, packed + NC_GEMM_PACK_HEAD, (n + nr - 1) / nr * nr);
}

/* ---- A in place over a packed B, whole-k register tiles ----------------------- */

void NC_NAME(gemm_panels)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const REAL *A, ptrdiff_t lda, const REAL *bpack,
                          ptrdiff_t ntot, REAL beta, REAL *C, ptrdiff_t ldc, const REAL *bias, int act,
                          REAL act_alpha)
{
    if (m <= 0 || n <= 0) return;
    if (k <= 0) {
        NC_NAME(gemm)(0, 0, m, n, 0, 1, A, lda, NULL, n, beta, C, ldc, bias, act, act_alpha, 1);
        return;
    }
    switch (nc_active_simd_level()) {
#if NC_GEMM_X86
    case NC_SIMD_AVX512:
        NC_NAME(gemm_panels_avx512)(m, n, k, A, lda, bpack, ntot, beta, C, ldc, bias, act, act_alpha);
        break;
    case NC_SIMD_AVX2:
        NC_NAME(gemm_panels_avx2)(m, n, k, A, lda, bpack, ntot, beta, C, ldc, bias, act, act_alpha);
        break;
#endif
    default: NC_NAME(gemm_panels_generic)(m, n, k, A, lda, bpack, ntot, beta, C, ldc, bias, act, act_alpha);
    }
}

void NC_NAME(gemm_tn)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const REAL *A, ptrdiff_t lda, const REAL *B,
                      ptrdiff_t ldb, REAL *C, ptrdiff_t ldc)
{
    if (m <= 0 || n <= 0) return;
    if (k <= 0) {
        for (ptrdiff_t i = 0; i < m; i++)
            for (ptrdiff_t j = 0; j < n; j++) C[i * ldc + j] = 0;
        return;
    }
    switch (nc_active_simd_level()) {
#if NC_GEMM_X86
    case NC_SIMD_AVX512: NC_NAME(gemm_tn_avx512)(m, n, k, A, lda, B, ldb, C, ldc); break;
    case NC_SIMD_AVX2: NC_NAME(gemm_tn_avx2)(m, n, k, A, lda, B, ldb, C, ldc); break;
#endif
    default: NC_NAME(gemm_tn_generic)(m, n, k, A, lda, B, ldb, C, ldc);
    }
}

void NC_NAME(gemm_micro_tile)(int *mr, int *nr)
{
    NC_NAME(gemm_tile)(nc_active_simd_level(), mr, nr);
}

/* ---- a chain of dense layers over row blocks -------------------------------- */

static int NC_NAME(gemm_packed_ok)(const REAL *packed, int level, ptrdiff_t k, ptrdiff_t n)
{
    int64_t head[4];
    memcpy(head, packed, sizeof head);
    return head[0] == NC_GEMM_PACK_TAG && head[1] == level && head[2] == k && head[3] == n;
}

/* One thread's rows [i0, i1) of the chain, rb rows at a time through
 * every layer (the block's activations stay in L2 from layer to layer),
 * each product by gemm_panels: the block and its activations are read in
 * place, the weights come packed. */
static int NC_NAME(dense_chain_rows)(ptrdiff_t i0, ptrdiff_t i1, int L, const ptrdiff_t *dims,
                                     const REAL *const *packed, const REAL *const *bias, const int *act,
                                     const REAL *act_alpha, int check, const REAL *x, REAL *y, ptrdiff_t rb,
                                     ptrdiff_t wmax, int nr)
{
    REAL *work = L > 1 ? (REAL *)malloc((size_t)(2 * rb * wmax) * sizeof(REAL)) : NULL;
    if (L > 1 && !work) return -1;
    REAL *act_buf[2] = {work, work ? work + rb * wmax : NULL};
    int rc = 0;
    for (ptrdiff_t r0 = i0; r0 < i1; r0 += rb) {
        ptrdiff_t rows = i1 - r0 < rb ? i1 - r0 : rb;
        const REAL *in = x + r0 * dims[0];
        /* the input block is checked as it arrives (it is then in cache for the first product) */
        if (check && !NC_NAME(all_finite)(in, rows * dims[0], 1)) {
            rc = 1;
            break;
        }
        for (int l = 0; l < L; l++) {
            ptrdiff_t n = dims[l + 1];
            REAL *out = l == L - 1 ? y + r0 * n : act_buf[l % 2];
            NC_NAME(gemm_panels)(rows, n, dims[l], in, dims[l], packed[l] + NC_GEMM_PACK_HEAD, (n + nr - 1) / nr * nr,
                                 0, out, n, bias[l], act[l] < 0 ? NC_ACT_LINEAR : act[l], act_alpha[l]);
            if (act[l] < 0) NC_NAME(softmax_forward)(out, out, rows, n);
            in = out;
        }
    }
    free(work);
    return rc;
}

/* The kept packed kernels brought up to date with W (nc_gemm_pack_b with refresh, layer after layer). */
static void NC_NAME(dense_chain_refresh)(int L, const ptrdiff_t *dims, const REAL *const *W, REAL *const *packed)
{
    for (int l = 0; l < L; l++) NC_NAME(gemm_pack_b)(0, dims[l], dims[l + 1], W[l], dims[l + 1], packed[l], 1);
}

int NC_NAME(dense_chain)(ptrdiff_t m, int L, const ptrdiff_t *dims, const REAL *const *W, REAL *const *packed,
                         const REAL *const *bias, const int *act, const REAL *act_alpha, int check_finite,
                         const REAL *x, REAL *y, int nthreads)
{
    int level = nc_active_simd_level();
    ptrdiff_t wmax = 1;
    double flops = 0;
    for (int l = 0; l < L; l++) {
        if (!W && !NC_NAME(gemm_packed_ok)(packed[l], level, dims[l], dims[l + 1])) return -2;
        if (l > 0 && dims[l] > wmax) wmax = dims[l];
        flops += 2.0 * (double)dims[l] * (double)dims[l + 1];
    }
    if (m <= 0) return 0;
    int mr, nr;
    NC_NAME(gemm_tile)(level, &mr, &nr);
    /* rows per block: a few row panels (a multiple of MR) */
    ptrdiff_t rb = NC_DENSE_CHAIN_PANELS * mr;
    double panels = (double)((m + mr - 1) / mr);
    int nt = flops * (double)m < NC_GEMM_TEAM_WORK * 2.0 ? 1 : nc_team_size(nthreads, flops * (double)m);
    if (nt > panels) nt = (int)panels;
    if (nt <= 1) {
        if (W) NC_NAME(dense_chain_refresh)(L, dims, W, packed);
        return NC_NAME(dense_chain_rows)(0, m, L, dims, (const REAL *const *)packed, bias, act, act_alpha,
                                         check_finite, x, y, rb, wmax, nr);
    }
    int failed = 0, nonfinite = 0;
#pragma omp parallel num_threads(nt) reduction(| : failed, nonfinite)
    {
        /* the first thread to arrive (the caller's: the others are waking up meanwhile) refreshes the
         * kernels; every thread starts its rows after it */
        if (W) {
#pragma omp single
            NC_NAME(dense_chain_refresh)(L, dims, W, packed);
        }
        int T = omp_get_num_threads(), t = omp_get_thread_num();
        /* rows cut at multiples of MR: each row's sums do not depend on the cut */
        ptrdiff_t i0 = NC_NAME(gemm_cut)(m, T, t, mr), i1 = NC_NAME(gemm_cut)(m, T, t + 1, mr);
        int r = i1 > i0 ? NC_NAME(dense_chain_rows)(i0, i1, L, dims, (const REAL *const *)packed, bias, act,
                                                    act_alpha, check_finite, x, y, rb, wmax, nr) : 0;
        failed |= r < 0;
        nonfinite |= r > 0;
    }
    return failed ? -1 : nonfinite;
}

/* ---- the step loop of an LSTM over a whole sequence --------------------------- */
#include "gemm_rnn_body.h"

#undef NC_GEMM_PACK_HEAD
#undef NC_GEMM_PACK_TAG
