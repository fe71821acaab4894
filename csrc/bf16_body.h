/* bf16_body.h -- the driver of the bf16 GEMM (packing, the blocks and threads, the epilogue),
 * compiled once per SIMD level (simd_levels.h; float only) so that the packing's conversions and
 * the epilogue run vectorized for the level in use. The micro-kernel is chosen apart, from what the
 * CPU has (nc_bf16_kernel, bf16.c); every level's driver gives the same bits (integer conversions
 * and IEEE float32 operations, the same order). Included by bf16.c. */
#ifdef NC_LEVEL
/* Packing converts a block of an operand to bfloat16 first, line by line along its contiguous axis (one
 * long loop when the lines follow each other in memory), then puts the pair words together into the
 * micro-panels: a pair word is two bfloat16, the even element of k low. */

/* t[l len + j] = bf(x[l ld + j]) for l < lines, j < len (on the kernel's conversion, if it has one) */
static void NC_NAME(bf_lines)(const nc_bf_job *J, const float *x, ptrdiff_t ld, ptrdiff_t lines, ptrdiff_t len,
                              uint16_t *t)
{
    if (ld == len) len *= lines, lines = 1;
    for (ptrdiff_t l = 0; l < lines; l++) {
        const float *xl = x + l * ld;
        uint16_t *tl = t + l * len;
        if (J->V->from) {
            J->V->from(xl, tl, len);
            continue;
        }
#pragma omp simd
        for (ptrdiff_t j = 0; j < len; j++) tl[j] = (uint16_t)nc_bf_bits(xl[j]);
    }
}

/* Rows [i0, i0 + rows) of op(A), pair groups [q0, q0 + qn) (the block of k 2 q0 .. 2 (q0 + qn)), into
 * panels of mr rows, each qn groups of mr pair words or, widened, 2 mr words: bf(odd) << 16 of the mr
 * rows, then bf(even) << 16 (the emulations broadcast each as a float32 straight from memory); rows past
 * `rows` zero. `ap` holds qn or 2 qn words a row; tmp rows qn words. */
static void NC_NAME(bf_pack_a)(const nc_bf_job *J, ptrdiff_t i0, ptrdiff_t rows, int mr, int widened, ptrdiff_t q0,
                               ptrdiff_t qn, uint32_t *ap, uint32_t *tmp)
{
    ptrdiff_t k = J->k, step = widened ? 2 * mr : mr, astep = step * qn / mr;
    ptrdiff_t full = rows / mr * mr, padded = (rows + mr - 1) / mr * mr;
    ptrdiff_t kk = k - 2 * q0 < 2 * qn ? k - 2 * q0 : 2 * qn, kh = kk / 2;
    uint16_t *t = (uint16_t *)(void *)tmp;
    memset(ap + full * astep, 0, (size_t)((padded - full) * astep) * sizeof(uint32_t));
    if (J->sap == 1) {                 /* rows of A contiguous along k: t is rows x kk */
        NC_NAME(bf_lines)(J, J->A + i0 * J->sai + 2 * q0, J->sai, rows, kk, t);
        for (ptrdiff_t i = 0, r = 0; i < rows; i++, r = r + 1 == mr ? 0 : r + 1) {
            const uint16_t *ti = t + i * kk;
            uint32_t *d = ap + (i - r) * astep + r;   /* row r of its panel */
            if (widened) {
                for (ptrdiff_t q = 0; q < kh; q++)
                    d[q * step] = (uint32_t)ti[2 * q + 1] << 16, d[q * step + mr] = (uint32_t)ti[2 * q] << 16;
                if (kk & 1) d[kh * step] = 0, d[kh * step + mr] = (uint32_t)ti[kk - 1] << 16;
            } else {
                for (ptrdiff_t q = 0; q < kh; q++) d[q * step] = ti[2 * q] | (uint32_t)ti[2 * q + 1] << 16;
                if (kk & 1) d[kh * step] = ti[kk - 1];
            }
        }
        return;
    }
    /* op(A) = A^T: t is kk x rows, lines 2q and 2q + 1 the pair (x[kk] zero) */
    NC_NAME(bf_lines)(J, J->A + 2 * q0 * J->sap + i0, J->sap, kk, rows, t);
    for (ptrdiff_t q = 0; q < qn; q++) {
        const uint16_t *lo = t + 2 * q * rows, *hi = 2 * q + 1 < kk ? lo + rows : NULL;
        for (ptrdiff_t p = 0; p < rows; p += mr) {  /* each panel's group q: mr words in a row */
            uint32_t *d = ap + p * astep + q * step;
            int mi = (int)(rows - p < mr ? rows - p : mr);
            if (widened) {
                for (int r = 0; r < mi; r++) d[r] = hi ? (uint32_t)hi[p + r] << 16 : 0;
                for (int r = 0; r < mi; r++) d[mr + r] = (uint32_t)lo[p + r] << 16;
            } else if (hi) {
                for (int r = 0; r < mi; r++) d[r] = lo[p + r] | (uint32_t)hi[p + r] << 16;
            } else {
                for (int r = 0; r < mi; r++) d[r] = lo[p + r];
            }
        }
    }
}

/* Columns [j0, j0 + cols) of op(B), pair groups [q0, q0 + qn), into NR-column panels of qn groups of nr
 * pair words (columns past `cols` zero); tmp max(NC_BF_QCHUNK cols, qn nr) words. */
static void NC_NAME(bf_pack_b)(const nc_bf_job *J, ptrdiff_t j0, ptrdiff_t cols, int nr, ptrdiff_t q0, ptrdiff_t qn,
                               uint32_t *dst, uint32_t *tmp)
{
    ptrdiff_t k = J->k, npan = (cols + nr - 1) / nr;
    ptrdiff_t kk = k - 2 * q0 < 2 * qn ? k - 2 * q0 : 2 * qn, kh = kk / 2;
    uint16_t *t = (uint16_t *)(void *)tmp;
    if (npan == 0) return;
    if (cols % nr) memset(dst + (npan - 1) * qn * nr, 0, (size_t)(qn * nr) * sizeof(uint32_t));
    if (J->sbj == 1) {                 /* rows of B contiguous along n: a few pair rows at a time, t lines x cols */
        for (ptrdiff_t qc = 0; qc < qn; qc += NC_BF_QCHUNK) {
            ptrdiff_t qm = qn - qc < NC_BF_QCHUNK ? qn - qc : NC_BF_QCHUNK;
            ptrdiff_t lines = kk - 2 * qc < 2 * qm ? kk - 2 * qc : 2 * qm;
            NC_NAME(bf_lines)(J, J->B + 2 * (q0 + qc) * J->sbp + j0, J->sbp, lines, cols, t);
            for (ptrdiff_t jp = 0; jp < npan; jp++) {
                ptrdiff_t nj = cols - jp * nr < nr ? cols - jp * nr : nr;
                uint32_t *d = dst + jp * qn * nr + qc * nr;
                for (ptrdiff_t q = 0; q < qm; q++) {
                    const uint16_t *lo = t + 2 * q * cols + jp * nr, *hi = lo + cols;
                    if (2 * q + 1 < lines) {
#pragma omp simd
                        for (ptrdiff_t j = 0; j < nj; j++) d[q * nr + j] = lo[j] | (uint32_t)hi[j] << 16;
                    } else {
                        for (ptrdiff_t j = 0; j < nj; j++) d[q * nr + j] = lo[j];
                    }
                }
            }
        }
        return;
    }
    for (ptrdiff_t jp = 0; jp < npan; jp++) { /* op(B) = B^T: column j of op(B) contiguous along k: t nj x kk */
        ptrdiff_t nj = cols - jp * nr < nr ? cols - jp * nr : nr;
        uint32_t *d = dst + jp * qn * nr;
        NC_NAME(bf_lines)(J, J->B + (j0 + jp * nr) * J->sbj + 2 * q0, J->sbj, nj, kk, t);
        for (ptrdiff_t j = 0; j < nj; j++) {
            const uint16_t *tj = t + j * kk;
            for (ptrdiff_t q = 0; q < kh; q++) d[q * nr + j] = tj[2 * q] | (uint32_t)tj[2 * q + 1] << 16;
            if (kk & 1) d[kh * nr + j] = tj[kk - 1];
        }
    }
}

/* C(i0 + i, j0 + j) from the finished tile t (row stride ldt): the epilogue, one pass over each row
 * for the linear and relu activations (the others: the level's activation kernel, then the rounding).
 * A kernel with a conversion of its own takes the row through the tile (in L1) and rounds it from
 * there into C, so that no row of C is read back while its lines are on their way. */
static void NC_NAME(bf_store)(const nc_bf_job *J, float *t, int ldt, ptrdiff_t i0, ptrdiff_t j0, int mi, int nj)
{
    const float alpha = J->alpha, beta = J->beta, *bias = J->bias ? J->bias + j0 : NULL;
    const int relu = J->act == NC_ACT_RELU, fused = J->act == NC_ACT_LINEAR || relu;
    const int staged = J->round_out && J->V->round, round_here = J->round_out && fused && !staged;
    for (int i = 0; i < mi; i++) {
        float *c = J->C + (i0 + i) * J->ldc + j0, *ti = t + i * ldt, *v = staged ? ti : c;
#pragma omp simd
        for (int j = 0; j < nj; j++) {
            float x = alpha * ti[j];
            if (beta != 0.0f) x += beta * c[j];
            if (bias) x += bias[j];
            if (relu) x = x > 0 ? x : 0.0f; /* as nc_act_forward's relu */
            v[j] = round_here ? nc_bf_f32(nc_bf_bits(x) << 16) : x;
        }
        if (!fused) NC_NAME(act_forward)(J->act, J->act_alpha, v, v, nj);
        if (staged) {
            J->V->round(ti, c, nj);
        } else if (J->round_out && !fused) {
#pragma omp simd
            for (int j = 0; j < nj; j++) c[j] = nc_bf_f32(nc_bf_bits(c[j]) << 16);
        }
    }
}

/* The mi x nj corner of a tile (row stride ldt) to and from the sums S (row stride lds). */
static void NC_NAME(bf_tile_move)(float *dst, ptrdiff_t ldd, const float *src, ptrdiff_t lds, int mi, int nj)
{
    for (int i = 0; i < mi; i++) memcpy(dst + i * ldd, src + i * lds, (size_t)nj * sizeof(float));
}

/* One thread's block C[r0:r1, c0:c1], BLIS-style: op(B) packed first, all of it, the team sharing the
 * work (this thread packs panels [p0, p1) of every block of k into the team's buffer, then waits for the
 * others); then k in blocks of kqb <= NC_BF_KQ pair groups, for each op(A)'s block in blocks of mc
 * rows, the micro-kernel over each tile of the thread's block, a row of tiles at a time: one A
 * micro-panel in L1 meets every B micro-panel of the block (in L2), and C is written along its rows
 * (a few long streams: going down the columns instead made the large row's products 10% slower in
 * the training step, where C and the operands come cold from memory). Between blocks of k a tile's
 * float32 sums wait in S: C itself, or (beta != 0: the epilogue reads C) a matrix of their own; the next
 * block goes on from them (the same chain of FMAs: no sum is split), the last block's tile goes through
 * the epilogue. */
static void NC_NAME(bf_region)(const nc_bf_job *J, const nc_bf_variant *V, const nc_bf_plan *P, ptrdiff_t r0,
                               ptrdiff_t r1, ptrdiff_t c0, ptrdiff_t c1, ptrdiff_t p0, ptrdiff_t p1, uint32_t *ap,
                               uint32_t *tmp)
{
    const int mr = V->mr, nr = V->nr, wide = V->emulated ? 2 : 1;
    ptrdiff_t kq = (J->k + 1) / 2, kqb = P->kqb, lds = P->lds, ncol = c1 - c0, npan = (ncol + nr - 1) / nr;
    ptrdiff_t mc = P->mc, rows = (r1 - r0 + mr - 1) / mr * mr;
    if (mc > rows) mc = rows;
    float tile[NC_BF_TILE_MAX] = {0.0f};
    if (p1 > p0) {                     /* this thread's share of B's panels, every block of k */
        ptrdiff_t j1 = p1 * nr < J->n ? p1 * nr : J->n;
        for (ptrdiff_t pb = 0; pb < P->kb; pb++) {
            ptrdiff_t q0 = pb * kqb, qn = kq - q0 < kqb ? kq - q0 : kqb;
            NC_NAME(bf_pack_b)(J, p0 * nr, j1 - p0 * nr, nr, q0, qn, P->bp + q0 * P->npan * nr + p0 * qn * nr, tmp);
        }
    }
    if (P->team) {
#pragma omp barrier
    }                                  /* all of B packed */
    for (ptrdiff_t pb = 0; pb < P->kb; pb++) {
        ptrdiff_t q0 = pb * kqb, qn = kq - q0 < kqb ? kq - q0 : kqb;
        int more = pb > 0, last = pb == P->kb - 1;
        /* block pb of B: its panels of qn groups; this thread's columns start at a panel */
        const uint32_t *bp = P->bp + q0 * P->npan * nr + c0 / nr * qn * nr;
        for (ptrdiff_t ic = r0; ic < r1; ic += mc) {
            ptrdiff_t mci = r1 - ic < mc ? r1 - ic : mc;
            NC_NAME(bf_pack_a)(J, ic, mci, mr, V->emulated, q0, qn, ap, tmp);
            for (ptrdiff_t ir = 0; ir < mci; ir += mr) {
                int mi = (int)(mci - ir < mr ? mci - ir : mr);
                for (ptrdiff_t jp = 0; jp < npan; jp++) {
                    int nj = (int)(ncol - jp * nr < nr ? ncol - jp * nr : nr);
                    float *s = P->S + (ic + ir) * lds + c0 + jp * nr;
                    /* a whole tile's sums go on in S itself until the last block, which ends in the
                       tile (in L1) for the epilogue; the corners of C go through the tile throughout */
                    int direct = !last && mi == mr && nj == nr;
                    if (more && !direct) NC_NAME(bf_tile_move)(tile, nr, s, lds, mi, nj);
                    unsigned csr = nc_bf_csr_enter(V->emulated);
                    V->kernel(qn, ap + ir * wide * qn, bp + jp * qn * nr, direct ? s : tile, direct ? lds : nr, more);
                    nc_bf_csr_leave(V->emulated, csr);
                    if (last)
                        NC_NAME(bf_store)(J, tile, nr, ic + ir, c0 + jp * nr, mi, nj);
                    else if (!direct)
                        NC_NAME(bf_tile_move)(s, lds, tile, nr, mi, nj);
                }
            }
        }
    }
}

int NC_NAME(gemm_bf16)(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, float alpha, const float *A,
                 ptrdiff_t lda, const float *B, ptrdiff_t ldb, float beta, float *C, ptrdiff_t ldc,
                 const float *bias, int act, float act_alpha, int round_out, int nthreads)
{
    nc_bf_job J;
    J.m = m, J.n = n, J.k = k, J.A = A, J.B = B;
    J.sai = trans_a ? 1 : lda, J.sap = trans_a ? lda : 1;
    J.sbp = trans_b ? 1 : ldb, J.sbj = trans_b ? ldb : 1;
    J.alpha = alpha, J.beta = beta, J.C = C, J.ldc = ldc, J.bias = bias, J.act = act, J.act_alpha = act_alpha;
    J.round_out = round_out;
    const nc_bf_variant *V = J.V = &nc_bf_variants[nc_bf16_kernel()];
    if (m <= 0 || n <= 0) return 0;
    const int mr = V->mr, nr = V->nr, wide = V->emulated ? 2 : 1;
    double work = (double)m * (double)n * (double)(k > 0 ? k : 1);
    int nt = work < NC_BF_TEAM_WORK ? 1 : nc_team_size(nthreads, 2.0 * work);
    ptrdiff_t mt = (m + mr - 1) / mr, npan = (n + nr - 1) / nr;
    if (nt > mt * npan) nt = (int)(mt * npan);
    if (nt < 1) nt = 1;
    /* the plan, and one allocation for it all: B's block (the team's), then each thread's A block and
     * scratch line, then S when it is not C */
    nc_bf_plan P;
    ptrdiff_t kq = (k + 1) / 2;
    P.kb = kq > NC_BF_KQ ? (kq + NC_BF_KQ - 1) / NC_BF_KQ : 1, P.kqb = (kq + P.kb - 1) / P.kb;
    P.mc = NC_BF_A_BYTES / (4 * wide * P.kqb + 4) / mr * mr;
    if (P.mc < mr) P.mc = mr;
    if (P.mc > mt * mr) P.mc = mt * mr;
    ptrdiff_t twords = (P.mc > nr ? P.mc : nr) * P.kqb;  /* the packings' bfloat16 blocks */
    if (twords < NC_BF_QCHUNK * n) twords = NC_BF_QCHUNK * n;
    twords += 16;
    P.npan = npan;
    size_t bwords = (size_t)(npan * nr * kq + 16), own = (size_t)(P.mc * wide * P.kqb + twords + 16);
    size_t swords = P.kb > 1 && beta != 0.0f ? (size_t)(m * n) : 0;
    uint32_t *mem = (uint32_t *)malloc((bwords + (size_t)nt * own + swords + 16) * sizeof(uint32_t));
    if (!mem) return -1;
    P.bp = (uint32_t *)(((uintptr_t)mem + 63) / 64 * 64);
    uint32_t *owned = P.bp + bwords;
    P.S = C, P.lds = ldc, P.team = nt > 1;
    if (swords) P.S = (float *)(void *)(owned + (size_t)nt * own), P.lds = n;
    if (nt <= 1) {
        NC_NAME(bf_region)(&J, V, &P, 0, m, 0, n, 0, npan, owned, owned + P.mc * wide * P.kqb);
    } else {
#pragma omp parallel num_threads(nt)
        {
            int T = omp_get_num_threads(), t = omp_get_thread_num();
            ptrdiff_t r0, r1, c0, c1, p0, p1;
            nc_tile_block(m, n, mr, nr, T, t, &r0, &r1, &c0, &c1);
            if (c0 == 0 && c1 == n) /* cut by rows: the threads share B's panels */
                p0 = npan * t / T, p1 = npan * (t + 1) / T;
            else                    /* by columns: each its own */
                p0 = c0 / nr, p1 = (c1 + nr - 1) / nr;
            uint32_t *mine = owned + (size_t)t * own;
            NC_NAME(bf_region)(&J, V, &P, r0, r1, c0, c1, p0, p1, mine, mine + P.mc * wide * P.kqb);
        }
    }
    free(mem);
    return 0;
}
#else
int NC_NAME(gemm_bf16)(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, float alpha, const float *A,
                       ptrdiff_t lda, const float *B, ptrdiff_t ldb, float beta, float *C, ptrdiff_t ldc,
                       const float *bias, int act, float act_alpha, int round_out, int nthreads)
{
    return NC_PICK(gemm_bf16)(trans_a, trans_b, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc, bias, act, act_alpha,
                              round_out, nthreads);
}
#endif
