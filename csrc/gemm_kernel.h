/* gemm_kernel.h -- the micro-kernel, the packing routines and the blocked
 * single-thread driver of nc_gemm, written once for every SIMD level.
 *
 * Included by gemm.c after real.h (REAL, NC_NAME) with UK_LEVEL set to 0, 1
 * or 2 (NC_SIMD_GENERIC, NC_SIMD_AVX2, NC_SIMD_AVX512). The level picks a small
 * vector vocabulary (VEC, VL lanes, LOADU/MLOAD/STOREU/MSTORE, FMA, BCAST)
 * and the row of gemm_config.h; the code below only speaks that vocabulary.
 * At the generic level VEC is REAL itself (VL = 1): a plain C register tile.
 *
 * Design (BLIS): C is cut into NC-column and KC-deep blocks of op(B), packed
 * into NR-column micro-panels (row p of a panel holds NR consecutive columns),
 * and MC-row blocks of op(A), packed into MR-row micro-panels (column p holds
 * MR consecutive rows). The macro-kernel walks the MR x NR tiles of C and
 * calls the micro-kernel, which keeps the tile in MR * NV vector registers:
 *     for p < kc:  acc[i][v] += bcast(a[p][i]) * b[p][v]
 * then stores C := alpha acc + beta C (+ bias, relu on the last k block;
 * other activations run on the tile right after, while it is in L1).
 * Packing handles the transposes. Small products and a few rows of A skip
 * packing (the direct path): the micro-kernel then reads A through its
 * strides and B in place (a transposed B is still packed). */

#if UK_LEVEL == 2 /* NC_SIMD_AVX512 */
#define UK_SUF avx512
#define UK_ATTR NC_TARGET_AVX512
#if defined(NC_F32)
#define UK_ROW NC_GEMM_F32_AVX512
#define VEC __m512
#define VL 16
#define LOADU(p) _mm512_loadu_ps(p)
#define STOREU(p, x) _mm512_storeu_ps((p), (x))
#define MLOAD(p, cnt) _mm512_maskz_loadu_ps((__mmask16)((1u << (cnt)) - 1u), (p))
#define MSTORE(p, x, cnt) _mm512_mask_storeu_ps((p), (__mmask16)((1u << (cnt)) - 1u), (x))
#define FMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define MUL(a, b) _mm512_mul_ps((a), (b))
#define ADD(a, b) _mm512_add_ps((a), (b))
#define MAX0(a) _mm512_max_ps((a), _mm512_setzero_ps())
#define BCAST(x) _mm512_set1_ps(x)
#define VZERO() _mm512_setzero_ps()
#define HSUM(x) _mm512_reduce_add_ps(x)
#else
#define UK_ROW NC_GEMM_F64_AVX512
#define VEC __m512d
#define VL 8
#define LOADU(p) _mm512_loadu_pd(p)
#define STOREU(p, x) _mm512_storeu_pd((p), (x))
#define MLOAD(p, cnt) _mm512_maskz_loadu_pd((__mmask8)((1u << (cnt)) - 1u), (p))
#define MSTORE(p, x, cnt) _mm512_mask_storeu_pd((p), (__mmask8)((1u << (cnt)) - 1u), (x))
#define FMA(a, b, c) _mm512_fmadd_pd((a), (b), (c))
#define MUL(a, b) _mm512_mul_pd((a), (b))
#define ADD(a, b) _mm512_add_pd((a), (b))
#define MAX0(a) _mm512_max_pd((a), _mm512_setzero_pd())
#define BCAST(x) _mm512_set1_pd(x)
#define VZERO() _mm512_setzero_pd()
#define HSUM(x) _mm512_reduce_add_pd(x)
#endif

#elif UK_LEVEL == 1 /* NC_SIMD_AVX2 */
#define UK_SUF avx2
#define UK_ATTR NC_TARGET_AVX2
#if defined(NC_F32)
#define UK_ROW NC_GEMM_F32_AVX2
#define VEC __m256
#define VL 8
#define UK_MASK(cnt) _mm256_cmpgt_epi32(_mm256_set1_epi32(cnt), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
#define LOADU(p) _mm256_loadu_ps(p)
#define STOREU(p, x) _mm256_storeu_ps((p), (x))
#define MLOAD(p, cnt) _mm256_maskload_ps((p), UK_MASK(cnt))
#define MSTORE(p, x, cnt) _mm256_maskstore_ps((p), UK_MASK(cnt), (x))
#define FMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define MUL(a, b) _mm256_mul_ps((a), (b))
#define ADD(a, b) _mm256_add_ps((a), (b))
#define MAX0(a) _mm256_max_ps((a), _mm256_setzero_ps())
#define BCAST(x) _mm256_set1_ps(x)
#define VZERO() _mm256_setzero_ps()
#define HSUM(x) nc_hsum8_ps(x)
#else
#define UK_ROW NC_GEMM_F64_AVX2
#define VEC __m256d
#define VL 4
#define UK_MASK(cnt) _mm256_cmpgt_epi64(_mm256_set1_epi64x(cnt), _mm256_setr_epi64x(0, 1, 2, 3))
#define LOADU(p) _mm256_loadu_pd(p)
#define STOREU(p, x) _mm256_storeu_pd((p), (x))
#define MLOAD(p, cnt) _mm256_maskload_pd((p), UK_MASK(cnt))
#define MSTORE(p, x, cnt) _mm256_maskstore_pd((p), UK_MASK(cnt), (x))
#define FMA(a, b, c) _mm256_fmadd_pd((a), (b), (c))
#define MUL(a, b) _mm256_mul_pd((a), (b))
#define ADD(a, b) _mm256_add_pd((a), (b))
#define MAX0(a) _mm256_max_pd((a), _mm256_setzero_pd())
#define BCAST(x) _mm256_set1_pd(x)
#define VZERO() _mm256_setzero_pd()
#define HSUM(x) nc_hsum4_pd(x)
#endif

#else /* generic C: one lane */
#define UK_SUF generic
#define UK_ATTR
#if defined(NC_F32)
#define UK_ROW NC_GEMM_F32_GENERIC
#else
#define UK_ROW NC_GEMM_F64_GENERIC
#endif
#define VEC REAL
#define VL 1
#define LOADU(p) (*(p))
#define STOREU(p, x) (*(p) = (x))
#define MLOAD(p, cnt) ((cnt) > 0 ? *(p) : (REAL)0)
#define MSTORE(p, x, cnt) ((cnt) > 0 ? (void)(*(p) = (x)) : (void)0)
#define FMA(a, b, c) ((a) * (b) + (c))
#define MUL(a, b) ((a) * (b))
#define ADD(a, b) ((a) + (b))
#define MAX0(a) ((a) > 0 ? (a) : (REAL)0) /* NaN -> 0, as nc_act_forward's relu */
#define BCAST(x) (x)
#define VZERO() ((REAL)0)
#define HSUM(x) (x)
#endif

#define UK_CAT2(op, suf) NC_NAME(op##_##suf)
#define UK_CAT(op, suf) UK_CAT2(op, suf)
#define UK_NAME(op) UK_CAT(op, UK_SUF)
#define MR NC_GEMM_MR(UK_ROW)
#define NV NC_GEMM_NV(UK_ROW)
#define NR (NV * VL)
#define MC NC_GEMM_MC(UK_ROW)
#define KC NC_GEMM_KC(UK_ROW)
#define NCB NC_GEMM_NC(UK_ROW)
#define UK_INLINE NC_ALWAYS_INLINE UK_ATTR

/* The k loop of the micro-kernel for `rows` rows and `nvec` vectors of
 * columns (constants after inlining, so each edge tile gets its own register
 * tile): acc[i][v] += A(i, p) B(p, v).
 * With fewer than 8 accumulators the FMA latency would rule, so U partial
 * tiles take turns over p and are added at the end. */
UK_INLINE void UK_NAME(gemm_kloop)(const int rows, const int nvec, const int masked, ptrdiff_t k, const REAL *a, ptrdiff_t rsa,
                                   ptrdiff_t csa, const REAL *b, ptrdiff_t rsb, const int *cnt, VEC (*acc)[NV])
{
    enum { U = 8 };
    const int u = rows * nvec >= 8 ? 1 : rows * nvec >= 4 ? 2 : rows * nvec >= 2 ? 4 : 8;
    VEC part[U][MR][NV];
    ptrdiff_t p = 0;
    if (u > 1) {
#pragma GCC unroll 8
        for (int t = 1; t < u; t++)
#pragma GCC unroll 8
            for (int i = 0; i < rows; i++)
#pragma GCC unroll 8
                for (int v = 0; v < nvec; v++) part[t][i][v] = VZERO();
        for (; p + u <= k; p += u) {
#pragma GCC unroll 8
            for (int t = 0; t < u; t++) {
                VEC (*dst)[NV] = t == 0 ? acc : part[t];
#pragma GCC unroll 8
                for (int v = 0; v < nvec; v++) {
                    VEC bv = masked ? MLOAD(b + v * VL, cnt[v]) : LOADU(b + v * VL);
#pragma GCC unroll 8
                    for (int i = 0; i < rows; i++) dst[i][v] = FMA(BCAST(a[i * rsa]), bv, dst[i][v]);
                }
                a += csa;
                b += rsb;
            }
        }
    }
    for (; p < k; p++) {
        VEC bv[NV];
#pragma GCC unroll 8
        for (int v = 0; v < nvec; v++) bv[v] = masked ? MLOAD(b + v * VL, cnt[v]) : LOADU(b + v * VL);
#pragma GCC unroll 32
        for (int i = 0; i < rows; i++) {
            VEC ai = BCAST(a[i * rsa]);
#pragma GCC unroll 8
            for (int v = 0; v < nvec; v++) acc[i][v] = FMA(ai, bv[v], acc[i][v]);
        }
        a += csa;
        b += rsb;
    }
#pragma GCC unroll 8
    for (int t = 1; t < u; t++)
#pragma GCC unroll 8
        for (int i = 0; i < rows; i++)
#pragma GCC unroll 8
            for (int v = 0; v < nvec; v++) acc[i][v] = ADD(acc[i][v], part[t][i][v]);
}

/* The end of the micro-kernel: C[0:m, 0:NR] := alpha acc + beta C (+ bias,
 * then relu), vector v holding cnt[v] columns. beta == 0 never reads C. The
 * three flags are constants in each of gemm_store's cases: no test per vector. */
UK_INLINE void UK_NAME(gemm_store_as)(const int with_beta, const int with_bias, const int relu, int m,
                                      VEC (*acc)[NV], REAL alpha, REAL beta, REAL *c, ptrdiff_t ldc,
                                      const int *cnt, const REAL *bias)
{
    VEC va = BCAST(alpha), vb = BCAST(beta);
#pragma GCC unroll 32
    for (int i = 0; i < MR; i++) {
        if (i >= m) break;
        REAL *cr = c + (ptrdiff_t)i * ldc;
#pragma GCC unroll 8
        for (int v = 0; v < NV; v++) {
            int cv = cnt[v];
            REAL *cp = cr + v * VL;
            VEC r = MUL(acc[i][v], va);
            if (cv == VL) {
                if (with_beta) r = FMA(vb, LOADU(cp), r);
                if (with_bias) r = ADD(r, LOADU(bias + v * VL));
                if (relu) r = MAX0(r);
                STOREU(cp, r);
            } else if (cv > 0) {
                if (with_beta) r = FMA(vb, MLOAD(cp, cv), r);
                if (with_bias) r = ADD(r, MLOAD(bias + v * VL, cv));
                if (relu) r = MAX0(r);
                MSTORE(cp, r, cv);
            }
        }
    }
}

UK_INLINE void UK_NAME(gemm_store)(int m, VEC (*acc)[NV], REAL alpha, REAL beta, REAL *c, ptrdiff_t ldc,
                                   const int *cnt, const REAL *bias, int relu)
{
#define UK_STORE_CASE(f) \
    case f: UK_NAME(gemm_store_as)((f) & 1, ((f) >> 1) & 1, (f) >> 2, m, acc, alpha, beta, c, ldc, cnt, bias); break;
    switch ((beta != 0) | (bias != NULL) << 1 | (relu != 0) << 2) {
        UK_STORE_CASE(0)
        UK_STORE_CASE(1)
        UK_STORE_CASE(2)
        UK_STORE_CASE(3)
        UK_STORE_CASE(4)
        UK_STORE_CASE(5)
        UK_STORE_CASE(6)
        UK_STORE_CASE(7)
    }
#undef UK_STORE_CASE
}

/* AVX2: the full MR x NR tile in a function of its own. Inlined into the
 * loops above, with the edge cases' masks and offsets live around it, the
 * tile's MR NV accumulators, NV vectors of B and the broadcast did not fit
 * the 16 ymm registers any more: GCC kept an accumulator on the stack (the
 * direct path ran at half speed, 38 GFLOP/s at 128^3). Alone it keeps all in
 * registers; the arithmetic is that of gemm_ukr below, operation for
 * operation, so a tile's result does not depend on which one ran it. */
#if UK_LEVEL == 1
#define UK_FULL_TILE 1
static __attribute__((noinline)) UK_ATTR void UK_NAME(gemm_ukr_full)(ptrdiff_t k, REAL alpha, const REAL *a,
                                                                     ptrdiff_t rsa, ptrdiff_t csa, const REAL *b,
                                                                     ptrdiff_t rsb, REAL beta, REAL *c,
                                                                     ptrdiff_t ldc, const REAL *bias, int relu)
{
    VEC acc[MR][NV];
    int cnt[NV];
#pragma GCC unroll 32
    for (int i = 0; i < MR; i++) {
        /* the tile of C is needed at the end: start its lines on their way */
        _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + i * ldc + NR - 1), _MM_HINT_T0);
#pragma GCC unroll 8
        for (int v = 0; v < NV; v++) acc[i][v] = VZERO();
    }
#pragma GCC unroll 8
    for (int v = 0; v < NV; v++) cnt[v] = VL;
    UK_NAME(gemm_kloop)(MR, NV, 0, k, a, rsa, csa, b, rsb, cnt, acc);
    UK_NAME(gemm_store)(MR, acc, alpha, beta, c, ldc, cnt, bias, relu);
}
#else
#define UK_FULL_TILE 0
#endif

/* The micro-kernel: C[0:m, 0:n] := alpha A B + beta C (+ bias, then relu),
 * m <= MR, n <= NR, where A(i, p) = a[i rsa + p csa] and B(p, j) = b[p rsb + j].
 * Rows i >= m of A are never read; columns j >= n of B only when `bpad` says
 * the panel holds them (packed, zero-filled). beta == 0 never reads C. */
UK_INLINE void UK_NAME(gemm_ukr)(ptrdiff_t k, REAL alpha, const REAL *a, ptrdiff_t rsa, ptrdiff_t csa,
                                 const REAL *b, ptrdiff_t rsb, int bpad, REAL beta, REAL *c, ptrdiff_t ldc,
                                 int m, int n, const REAL *bias, int relu)
{
#if UK_FULL_TILE
    if (m == MR && n == NR) {
        UK_NAME(gemm_ukr_full)(k, alpha, a, rsa, csa, b, rsb, beta, c, ldc, bias, relu);
        return;
    }
#endif
    VEC acc[MR][NV];
    int cnt[NV];
#pragma GCC unroll 32
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 8
        for (int v = 0; v < NV; v++) acc[i][v] = VZERO();
#pragma GCC unroll 8
    for (int v = 0; v < NV; v++) {
        int r = n - v * VL;
        cnt[v] = r < 0 ? 0 : r > VL ? VL : r;
    }
    int masked = !bpad && n < NR;
    int nvec = (n + VL - 1) / VL;
#if NV == 1
#define UK_KLOOP(r, nv, msk) UK_NAME(gemm_kloop)(r, 1, msk, k, a, rsa, csa, b, rsb, cnt, acc)
#else /* a tile of at most NV / 2 vectors of columns skips the rest */
#define UK_KLOOP(r, nv, msk)                                                              \
    if (nv <= NV / 2) UK_NAME(gemm_kloop)(r, NV / 2, msk, k, a, rsa, csa, b, rsb, cnt, acc); \
    else UK_NAME(gemm_kloop)(r, NV, msk, k, a, rsa, csa, b, rsb, cnt, acc)
#endif
#define UK_CASE(r)                                                                      \
    case r:                                                                             \
        if (masked) { UK_KLOOP(r, nvec, 1); }                                           \
        else { UK_KLOOP(r, nvec, 0); }                                                  \
        break;
    switch (m) {
        UK_CASE(1)
#if MR >= 2
        UK_CASE(2)
#endif
#if MR >= 3
        UK_CASE(3)
#endif
#if MR >= 4
        UK_CASE(4)
#endif
#if MR >= 5
        UK_CASE(5)
#endif
#if MR >= 6
        UK_CASE(6)
#endif
#if MR >= 7
        UK_CASE(7)
#endif
#if MR >= 8
        UK_CASE(8)
#endif
#if MR >= 9
        UK_CASE(9)
#endif
#if MR >= 10
        UK_CASE(10)
#endif
#if MR >= 11
        UK_CASE(11)
#endif
#if MR >= 12
        UK_CASE(12)
#endif
#if MR >= 13
        UK_CASE(13)
#endif
#if MR >= 14
        UK_CASE(14)
#endif
#if MR > 14
#error "gemm_kernel.h: MR above 14 needs more cases"
#endif
    default: return;
    }
#undef UK_CASE
#undef UK_KLOOP
    UK_NAME(gemm_store)(m, acc, alpha, beta, c, ldc, cnt, bias, relu);
}

/* The dot path: C := act(alpha op(A) B^T + beta C + bias) for a few rows of
 * op(A) and a transposed B (B row-major n x k, op(B)(p, j) = B[j ldb + p]).
 * Every element of C is the dot product of a row of op(A) and a row of B,
 * both contiguous in p, so nothing is packed: each B row is read once per DI
 * rows of A (packing a transposed B costs more than using it when only a few
 * rows of A share it, e.g. dx = delta W^T at batch 1). `a` holds the rows of
 * op(A) with stride rsa, contiguous in p. Lanes hold partial sums over p
 * (p mod VL), summed horizontally at the end: one fixed order per shape. */
#if UK_LEVEL == 2
#define DOT_I 4
#else
#define DOT_I 2
#endif
#define DOT_J 4
UK_INLINE void UK_NAME(gemm_dot_block)(const int mi, const int nj, ptrdiff_t k, const REAL *a, ptrdiff_t rsa,
                                       const REAL *const *brow, VEC (*acc)[2 * DOT_J])
{
    ptrdiff_t p = 0;
#pragma GCC unroll 8
    for (int i = 0; i < mi; i++)
#pragma GCC unroll 8
        for (int j = 0; j < nj; j++) acc[i][j] = VZERO();
    for (; p + VL <= k; p += VL) {
        VEC bv[2 * DOT_J];
#pragma GCC unroll 8
        for (int j = 0; j < nj; j++) bv[j] = LOADU(brow[j] + p);
#pragma GCC unroll 8
        for (int i = 0; i < mi; i++) {
            VEC av = LOADU(a + i * rsa + p);
#pragma GCC unroll 8
            for (int j = 0; j < nj; j++) acc[i][j] = FMA(av, bv[j], acc[i][j]);
        }
    }
    if (p < k) {
        int cnt = (int)(k - p);
        VEC bv[2 * DOT_J];
#pragma GCC unroll 8
        for (int j = 0; j < nj; j++) bv[j] = MLOAD(brow[j] + p, cnt);
#pragma GCC unroll 8
        for (int i = 0; i < mi; i++) {
            VEC av = MLOAD(a + i * rsa + p, cnt);
#pragma GCC unroll 8
            for (int j = 0; j < nj; j++) acc[i][j] = FMA(av, bv[j], acc[i][j]);
        }
    }
}

static UK_ATTR void UK_NAME(gemm_dot)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, REAL alpha, const REAL *a,
                                      ptrdiff_t rsa, const REAL *B, ptrdiff_t ldb, REAL beta, REAL *C,
                                      ptrdiff_t ldc, const REAL *bias, int act, REAL act_alpha)
{
    for (ptrdiff_t i0 = 0; i0 < m; i0 += DOT_I) {
        int mi = (int)(m - i0 < DOT_I ? m - i0 : DOT_I);
        /* one row of A: twice the B rows per block, so that 8 sums are in flight */
        int dj = mi == 1 ? 2 * DOT_J : DOT_J;
        for (ptrdiff_t j0 = 0; j0 < n; j0 += dj) {
            int nj = (int)(n - j0 < dj ? n - j0 : dj);
            const REAL *brow[2 * DOT_J];
            /* past the last row of B, repeat it (computed, never stored): the
             * loops keep their constant shape */
            for (int j = 0; j < dj; j++) brow[j] = B + (j0 + (j < nj ? j : nj - 1)) * ldb;
            VEC acc[DOT_I][2 * DOT_J];
            const REAL *ai = a + i0 * rsa;
            switch (mi) {
            case 1: UK_NAME(gemm_dot_block)(1, 2 * DOT_J, k, ai, rsa, brow, acc); break;
#if DOT_I >= 2
            case 2: UK_NAME(gemm_dot_block)(2, DOT_J, k, ai, rsa, brow, acc); break;
#endif
#if DOT_I >= 3
            case 3: UK_NAME(gemm_dot_block)(3, DOT_J, k, ai, rsa, brow, acc); break;
#endif
#if DOT_I >= 4
            case 4: UK_NAME(gemm_dot_block)(4, DOT_J, k, ai, rsa, brow, acc); break;
#endif
            default: return;
            }
            for (int i = 0; i < mi; i++) {
                REAL *c = C + (i0 + i) * ldc + j0;
                for (int j = 0; j < nj; j++) {
                    REAL s = alpha * (REAL)HSUM(acc[i][j]);
                    if (beta != 0) s += beta * c[j];
                    if (bias) s += bias[j0 + j];
                    if (act == NC_ACT_RELU) s = s > 0 ? s : (REAL)0;
                    c[j] = s;
                }
            }
        }
        if (act != NC_ACT_LINEAR && act != NC_ACT_RELU)
            for (int i = 0; i < mi; i++)
                UK_NAME(act_forward)(act, act_alpha, C + (i0 + i) * ldc, C + (i0 + i) * ldc, n);
    }
}
#undef DOT_I
#undef DOT_J

/* Packing reads the source one cache line (PL elements) at a time and uses
 * all of it at once: walking a column of a row-major matrix would touch one
 * line per row, and with a leading dimension of a multiple of 4 KiB all those
 * lines fall in the same few cache sets. */
#define PL (64 / (int)sizeof(REAL))

/* AVX-512 float with MR = 8: the 8 x 16 block of A (8 rows, a cache line of
 * each) transposed into dst[p 8 + i] in registers: unpack pairs of rows,
 * then pairs of pairs (64-bit), which leaves p = 4L + q, rows 0-3 / 4-7 in
 * 128-bit lane L of b[q] / b[4 + q]; the lanes are then put in output order.
 * Row p of the result goes to dst + p ds (ds = 8: packed A; ds = NR: a transposed B). */
#if UK_LEVEL == 2 && defined(NC_F32) && NC_GEMM_MR(UK_ROW) == 8
#define UK_PACK_A_T8X16 1
UK_INLINE void UK_NAME(gemm_t8x16)(const float *src, ptrdiff_t lda, float *dst, const int ds)
{
    __m512 r[8], a[8], b[8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) r[i] = _mm512_loadu_ps(src + i * lda);
#pragma GCC unroll 4
    for (int i = 0; i < 8; i += 2) {
        a[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);     /* r_i[4L], r_i+1[4L], r_i[4L+1], r_i+1[4L+1] */
        a[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]); /* the same for 4L+2, 4L+3 */
    }
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) { /* rows 0-3 (h = 0) and 4-7 (h = 1) */
        __m512 *x = a + 4 * h;
        b[4 * h + 0] = _mm512_shuffle_ps(x[0], x[2], 0x44); /* p = 4L */
        b[4 * h + 1] = _mm512_shuffle_ps(x[0], x[2], 0xEE); /* p = 4L + 1 */
        b[4 * h + 2] = _mm512_shuffle_ps(x[1], x[3], 0x44); /* p = 4L + 2 */
        b[4 * h + 3] = _mm512_shuffle_ps(x[1], x[3], 0xEE); /* p = 4L + 3 */
    }
    /* out 2L + e = [b[2e].L, b[4 + 2e].L, b[2e + 1].L, b[5 + 2e].L] (p = 4L + 2e, 4L + 2e + 1) */
#pragma GCC unroll 2
    for (int e = 0; e < 2; e++) {
        __m512 lo01 = _mm512_shuffle_f32x4(b[2 * e], b[4 + 2 * e], 0x44);         /* b[2e].0 b[2e].1 b[4+2e].0 b[4+2e].1 */
        __m512 hi01 = _mm512_shuffle_f32x4(b[2 * e + 1], b[5 + 2 * e], 0x44);
        __m512 lo23 = _mm512_shuffle_f32x4(b[2 * e], b[4 + 2 * e], 0xEE);         /* lanes 2, 3 */
        __m512 hi23 = _mm512_shuffle_f32x4(b[2 * e + 1], b[5 + 2 * e], 0xEE);
        /* [x.0 x.1 y.0 y.1] -> for L = 0: [x.0, y.0, ...]: lanes (0, 2) of each */
        __m512 o0 = _mm512_shuffle_f32x4(_mm512_shuffle_f32x4(lo01, lo01, 0xD8), _mm512_shuffle_f32x4(hi01, hi01, 0xD8), 0x44);
        __m512 o1 = _mm512_shuffle_f32x4(_mm512_shuffle_f32x4(lo01, lo01, 0xD8), _mm512_shuffle_f32x4(hi01, hi01, 0xD8), 0xEE);
        __m512 o2 = _mm512_shuffle_f32x4(_mm512_shuffle_f32x4(lo23, lo23, 0xD8), _mm512_shuffle_f32x4(hi23, hi23, 0xD8), 0x44);
        __m512 o3 = _mm512_shuffle_f32x4(_mm512_shuffle_f32x4(lo23, lo23, 0xD8), _mm512_shuffle_f32x4(hi23, hi23, 0xD8), 0xEE);
        __m512 o[4] = {o0, o1, o2, o3};
#pragma GCC unroll 4
        for (int L = 0; L < 4; L++) { /* p = 4L + 2e and the next one */
            float *d = dst + (ptrdiff_t)(4 * L + 2 * e) * ds;
            if (ds == 8) {
                _mm512_storeu_ps(d, o[L]);
            } else {
                _mm256_storeu_ps(d, _mm512_castps512_ps256(o[L]));
                _mm256_storeu_ps(d + ds, _mm512_extractf32x8_ps(o[L], 1));
            }
        }
    }
}
#else
#define UK_PACK_A_T8X16 0
#endif

/* AVX2: a block of `rows` rows (rows <= VL, a constant after inlining) and VL
 * columns of a row-major source transposed in registers into dst[p ds + i]
 * (float: 8 x 8 by unpacks of row pairs, then of pair pairs, then 128-bit
 * lane swaps; double: 4 x 4 the same way). Rows past `rows` are not read. */
#if UK_LEVEL == 1
#define UK_PACK_TBLOCK 1
#if defined(NC_F32)
UK_INLINE void UK_NAME(gemm_tblock)(const float *src, ptrdiff_t ld, const int rows, float *dst, const int ds)
{
    __m256 r[8], t[8], s[8], c[8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) r[i] = i < rows ? _mm256_loadu_ps(src + i * ld) : _mm256_setzero_ps();
#pragma GCC unroll 4
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);     /* r_i[0] r_i+1[0] r_i[1] r_i+1[1] | the same for 4, 5 */
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]); /* ... for 2, 3 | 6, 7 */
    }
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) { /* rows 0-3 (h = 0), 4-7 (h = 1): s[4h + q] holds column q | q + 4 */
        s[4 * h + 0] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], 0x44);
        s[4 * h + 1] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], 0xEE);
        s[4 * h + 2] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0x44);
        s[4 * h + 3] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0xEE);
    }
#pragma GCC unroll 4
    for (int q = 0; q < 4; q++) {
        c[q] = _mm256_permute2f128_ps(s[q], s[4 + q], 0x20);
        c[q + 4] = _mm256_permute2f128_ps(s[q], s[4 + q], 0x31);
    }
#pragma GCC unroll 8
    for (int p = 0; p < 8; p++) {
        float *d = dst + (ptrdiff_t)p * ds;
        if (rows == 8) {
            _mm256_storeu_ps(d, c[p]);
        } else if (rows == 6) {
            _mm_storeu_ps(d, _mm256_castps256_ps128(c[p]));
            _mm_storel_pi((__m64 *)(d + 4), _mm256_extractf128_ps(c[p], 1));
        } else {
            _mm256_maskstore_ps(d, UK_MASK(rows), c[p]);
        }
    }
}
#else
UK_INLINE void UK_NAME(gemm_tblock)(const double *src, ptrdiff_t ld, const int rows, double *dst, const int ds)
{
    __m256d r[4], t[4], c[4];
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) r[i] = i < rows ? _mm256_loadu_pd(src + i * ld) : _mm256_setzero_pd();
    t[0] = _mm256_unpacklo_pd(r[0], r[1]); /* r0[0] r1[0] | r0[2] r1[2] */
    t[1] = _mm256_unpackhi_pd(r[0], r[1]); /* r0[1] r1[1] | r0[3] r1[3] */
    t[2] = _mm256_unpacklo_pd(r[2], r[3]);
    t[3] = _mm256_unpackhi_pd(r[2], r[3]);
    if (rows <= 2) { /* columns are the 128-bit halves of t[0], t[1] */
#pragma GCC unroll 4
        for (int p = 0; p < 4; p++) {
            __m256d x = t[p & 1];
            _mm_storeu_pd(dst + (ptrdiff_t)p * ds, p < 2 ? _mm256_castpd256_pd128(x) : _mm256_extractf128_pd(x, 1));
        }
        return;
    }
    c[0] = _mm256_permute2f128_pd(t[0], t[2], 0x20);
    c[1] = _mm256_permute2f128_pd(t[1], t[3], 0x20);
    c[2] = _mm256_permute2f128_pd(t[0], t[2], 0x31);
    c[3] = _mm256_permute2f128_pd(t[1], t[3], 0x31);
#pragma GCC unroll 4
    for (int p = 0; p < 4; p++) {
        if (rows == 4) _mm256_storeu_pd(dst + (ptrdiff_t)p * ds, c[p]);
        else _mm256_maskstore_pd(dst + (ptrdiff_t)p * ds, UK_MASK(rows), c[p]);
    }
}
#endif
#else
#define UK_PACK_TBLOCK 0
#endif

/* Rows p < kc of a row-major source (len values each) into panels of w
 * values (a constant after inlining): buf[q w kc + p w + j] = src[p ld + q w + j],
 * zeros past len. Eight rows go to one panel before the next: walking a whole
 * row across the panels instead stores at a stride of w kc elements, a
 * multiple of 4 KiB for kc = 256, which the loads of src then wait behind
 * (4 KiB aliasing: 256 x 256 float copies 0.17 -> 0.10 ns an element). */
#define UK_PACK_ROWS 8
UK_INLINE void UK_NAME(gemm_pack_rows)(const REAL *src, ptrdiff_t ld, ptrdiff_t kc, ptrdiff_t len, const int w,
                                       REAL *restrict buf)
{
    for (ptrdiff_t p0 = 0; p0 < kc; p0 += UK_PACK_ROWS) {
        int rows = (int)(kc - p0 < UK_PACK_ROWS ? kc - p0 : UK_PACK_ROWS);
        const REAL *s0 = src + p0 * ld;
        REAL *d0 = buf + p0 * w;
        ptrdiff_t j0 = 0;
        for (; j0 + w <= len; j0 += w, d0 += w * kc)
            for (int p = 0; p < rows; p++)
#pragma GCC unroll 64
                for (int j = 0; j < w; j++) d0[p * w + j] = s0[p * ld + j0 + j];
        if (j0 < len)
            for (int p = 0; p < rows; p++)
                for (int j = 0; j < w; j++) d0[p * w + j] = j0 + j < len ? s0[p * ld + j0 + j] : (REAL)0;
    }
}
#undef UK_PACK_ROWS

/* Pack the mc x kc block op(A) (A points at its element (0, 0)) into MR-row
 * micro-panels: panel q holds a[p MR + i] = op(A)(q MR + i, p), zero rows past mc. */
static UK_ATTR void UK_NAME(gemm_pack_a)(int trans, const REAL *A, ptrdiff_t lda, ptrdiff_t mc, ptrdiff_t kc,
                                         REAL *restrict buf)
{
    if (trans) { /* op(A)(i, p) = A[p lda + i]: row p of A gives MR values to each panel */
        UK_NAME(gemm_pack_rows)(A, lda, kc, mc, MR, buf);
        return;
    }
    /* op(A)(i, p) = A[i lda + p]: transpose MR rows, a line of each at a time */
    for (ptrdiff_t i0 = 0; i0 < mc; i0 += MR, buf += MR * kc) {
        int mr = (int)(mc - i0 < MR ? mc - i0 : MR);
        const REAL *src = A + i0 * lda;
        for (ptrdiff_t p0 = 0; p0 < kc; p0 += PL) {
            int pl = (int)(kc - p0 < PL ? kc - p0 : PL);
            REAL *dst = buf + p0 * MR;
            if (mr == MR && pl == PL) {
#if UK_PACK_A_T8X16
                UK_NAME(gemm_t8x16)(src + p0, lda, dst, MR);
#elif UK_PACK_TBLOCK
#pragma GCC unroll 4
                for (int p = 0; p < PL; p += VL)
#pragma GCC unroll 4
                    for (int i = 0; i < MR; i += VL)
                        UK_NAME(gemm_tblock)(src + i * lda + p0 + p, lda, MR - i < VL ? MR - i : VL, dst + p * MR + i, MR);
#else
#pragma GCC unroll 16
                for (int i = 0; i < MR; i++)
#pragma GCC unroll 16
                    for (int p = 0; p < PL; p++) dst[p * MR + i] = src[i * lda + p0 + p];
#endif
            } else {
                for (int i = 0; i < MR; i++)
                    for (int p = 0; p < pl; p++) dst[p * MR + i] = i < mr ? src[i * lda + p0 + p] : (REAL)0;
            }
        }
    }
}

/* Pack the kc x nc block op(B) (B points at its element (0, 0)) into NR-column
 * micro-panels: panel q holds b[p NR + j] = op(B)(p, q NR + j), zero columns past nc. */
static UK_ATTR void UK_NAME(gemm_pack_b)(int trans, const REAL *B, ptrdiff_t ldb, ptrdiff_t kc, ptrdiff_t nc,
                                         REAL *restrict buf)
{
    if (!trans) { /* op(B)(p, j) = B[p ldb + j]: row p of B gives NR values to each panel */
        UK_NAME(gemm_pack_rows)(B, ldb, kc, nc, NR, buf);
        return;
    }
    /* op(B)(p, j) = B[j ldb + p]: transpose NR rows of B, a line of each at a time */
    for (ptrdiff_t j0 = 0; j0 < nc; j0 += NR, buf += NR * kc) {
        int nr = (int)(nc - j0 < NR ? nc - j0 : NR);
        const REAL *src = B + j0 * ldb;
        for (ptrdiff_t p0 = 0; p0 < kc; p0 += PL) {
            int pl = (int)(kc - p0 < PL ? kc - p0 : PL);
            REAL *dst = buf + p0 * NR;
            if (nr == NR && pl == PL) {
#if UK_PACK_A_T8X16
#pragma GCC unroll 4
                for (int j = 0; j < NR; j += 8) UK_NAME(gemm_t8x16)(src + j * ldb + p0, ldb, dst + j, NR);
#elif UK_PACK_TBLOCK
#pragma GCC unroll 4
                for (int p = 0; p < PL; p += VL)
#pragma GCC unroll 4
                    for (int j = 0; j < NR; j += VL)
                        UK_NAME(gemm_tblock)(src + j * ldb + p0 + p, ldb, VL, dst + p * NR + j, NR);
#else
                for (int j = 0; j < NR; j++)
#pragma GCC unroll 16
                    for (int p = 0; p < PL; p++) dst[p * NR + j] = src[j * ldb + p0 + p];
#endif
            } else {
                for (int j = 0; j < NR; j++)
                    for (int p = 0; p < pl; p++) dst[p * NR + j] = j < nr ? src[j * ldb + p0 + p] : (REAL)0;
            }
        }
    }
}

/* The depth of the k blocks of the packed path: k in blocks of equal depth
 * (at most KC, a multiple of 8 but the last): 784 = 4 x 196, not 3 x 256 +
 * 16, whose last block would pass C through memory once more for 2% of the
 * work, in micro-kernel calls too short to reach speed. */
static ptrdiff_t UK_NAME(gemm_kstep)(ptrdiff_t k)
{
    ptrdiff_t kb = (k + KC - 1) / KC, kstep = ((k + kb - 1) / kb + 7) / 8 * 8;
    return kstep > KC ? KC : kstep;
}

/* Whether rows p < r of a panel of NR columns (zeros past nr) differ bitwise from B's rows (src + p ld, nr
 * values each): the XOR of their bits, ORed over the rows. */
#if UK_LEVEL > 0
UK_INLINE int UK_NAME(gemm_rows_differ)(const REAL *src, ptrdiff_t ld, ptrdiff_t r, ptrdiff_t nr, const REAL *panel)
{
#if UK_LEVEL == 2
#define UK_IVEC __m512i
#define UK_IOR(x, y) _mm512_or_si512((x), (y))
#define UK_IXOR(x, y) _mm512_xor_si512((x), (y))
#define UK_ANY(x) (_mm512_test_epi32_mask((x), (x)) != 0)
#define UK_IZERO() _mm512_setzero_si512()
#if defined(NC_F32)
#define UK_BITS(x) _mm512_castps_si512(x)
#else
#define UK_BITS(x) _mm512_castpd_si512(x)
#endif
#else
#define UK_IVEC __m256i
#define UK_IOR(x, y) _mm256_or_si256((x), (y))
#define UK_IXOR(x, y) _mm256_xor_si256((x), (y))
#define UK_ANY(x) (!_mm256_testz_si256((x), (x)))
#define UK_IZERO() _mm256_setzero_si256()
#if defined(NC_F32)
#define UK_BITS(x) _mm256_castps_si256(x)
#else
#define UK_BITS(x) _mm256_castpd_si256(x)
#endif
#endif
    UK_IVEC diff = UK_IZERO();
    if (nr == NR) {
        for (ptrdiff_t p = 0; p < r; p++)
#pragma GCC unroll 8
            for (int v = 0; v < NV; v++)
                diff = UK_IOR(diff, UK_IXOR(UK_BITS(LOADU(src + p * ld + v * VL)), UK_BITS(LOADU(panel + p * NR + v * VL))));
    } else {
        int cnt[NV];
        for (int v = 0; v < NV; v++) {
            ptrdiff_t c = nr - v * VL;
            cnt[v] = c < 0 ? 0 : c > VL ? VL : (int)c;
        }
        for (ptrdiff_t p = 0; p < r; p++)
            for (int v = 0; v < NV; v++)
                diff = UK_IOR(diff, UK_IXOR(UK_BITS(MLOAD(src + p * ld + v * VL, cnt[v])),
                                            UK_BITS(LOADU(panel + p * NR + v * VL))));
    }
    return UK_ANY(diff);
#undef UK_IVEC
#undef UK_IOR
#undef UK_IXOR
#undef UK_ANY
#undef UK_IZERO
#undef UK_BITS
}
#endif

/* A whole op(B) (k x n) packed once for many products (nc_gemm_pack_b):
 * the k blocks of the packed path one after the other, each holding every
 * NR-column micro-panel of its rows: block pc starts at dst + pc ntot, where
 * ntot = n rounded up to NR. With refresh, dst holds an earlier packing of a
 * B of this shape: each REFRESH_ROWS rows of a micro-panel are compared
 * bitwise with B's (in place at the SIMD levels, else packed first into a
 * buffer in L1 when B is transposed or generic C compares them) and stored
 * only where they differ, so a packed copy kept across calls is read, never
 * written, while B stays the same (its lines stay clean and shared in every
 * core's cache); returns whether anything was stored (1 without refresh). */
#define UK_REFRESH_ROWS 32
static UK_ATTR int UK_NAME(gemm_pack_whole)(int trans_b, ptrdiff_t k, ptrdiff_t n, const REAL *B, ptrdiff_t ldb,
                                            REAL *dst, int refresh)
{
    ptrdiff_t kstep = UK_NAME(gemm_kstep)(k), ntot = (n + NR - 1) / NR * NR;
    REAL buf[UK_REFRESH_ROWS * NR] __attribute__((aligned(64)));
    int stored = !refresh;
    for (ptrdiff_t pc = 0; pc < k; pc += kstep) {
        ptrdiff_t kc = k - pc < kstep ? k - pc : kstep;
        const REAL *src = trans_b ? B + pc : B + pc * ldb;
        REAL *d = dst + pc * ntot;
        if (!refresh) {
            UK_NAME(gemm_pack_b)(trans_b, src, ldb, kc, n, d);
            continue;
        }
        for (ptrdiff_t j0 = 0; j0 < n; j0 += NR) {
            ptrdiff_t nr = n - j0 < NR ? n - j0 : NR;
            for (ptrdiff_t p0 = 0; p0 < kc; p0 += UK_REFRESH_ROWS) {
                ptrdiff_t r = kc - p0 < UK_REFRESH_ROWS ? kc - p0 : UK_REFRESH_ROWS;
                size_t bytes = (size_t)(r * NR) * sizeof(REAL);
                const REAL *s0 = trans_b ? src + j0 * ldb + p0 : src + p0 * ldb + j0;
                REAL *dp = d + j0 * kc + p0 * NR; /* rows p0.. of micro-panel j0 / NR */
#if UK_LEVEL > 0
                if (!trans_b) { /* a row of B is a row of the panel: compared in place */
                    if (UK_NAME(gemm_rows_differ)(s0, ldb, r, nr, dp)) {
                        UK_NAME(gemm_pack_b)(0, s0, ldb, r, nr, dp);
                        stored = 1;
                    }
                    continue;
                }
#endif
                UK_NAME(gemm_pack_b)(trans_b, s0, ldb, r, nr, buf);
                if (memcmp(dp, buf, bytes)) {
                    memcpy(dp, buf, bytes);
                    stored = 1;
                }
            }
        }
    }
    return stored;
}
#undef UK_REFRESH_ROWS

/* Elements of workspace gemm_serial needs for an m x n x k product (n = 0:
 * op(B) comes packed already). */
static ptrdiff_t UK_NAME(gemm_work)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k)
{
    ptrdiff_t mc = m < MC ? m : MC, nc = n < NCB ? n : NCB, kc = k < KC ? k : KC;
    mc = (mc + MR - 1) / MR * MR;
    nc = (nc + NR - 1) / NR * NR;
    return mc * kc + kc * nc + 64 / sizeof(REAL);
}

/* The finished m x n tile of C (still in L1): the activation where the micro-kernel did not apply it
 * (not linear or relu), then the rounding to bfloat16 of the NC_ACT_BF16 modifier (float only). */
static UK_ATTR void UK_NAME(gemm_tile_act)(REAL *c, ptrdiff_t ldc, int m, int n, int act, REAL act_alpha)
{
    const int base = act & ~NC_ACT_BF16;
    if (base != NC_ACT_LINEAR && base != NC_ACT_RELU)
        for (int i = 0; i < m; i++)
            UK_NAME(act_forward)(base, act_alpha, c + (ptrdiff_t)i * ldc, c + (ptrdiff_t)i * ldc, n);
#if defined(NC_F32)
    if (act & NC_ACT_BF16)   /* the tile's rows in one call */
        nc_bf_round_rows(c, ldc, c, ldc, m, n, UK_LEVEL == 2);
#endif
}

/* relu in the micro-kernel's store (also under NC_ACT_BF16); the tile pass for everything else */
#define UK_RELU(act) (((act) & ~NC_ACT_BF16) == NC_ACT_RELU)
#define UK_OTHER(act) ((act) != NC_ACT_LINEAR && (act) != NC_ACT_RELU)

/* The row path: C := act(alpha op(A) B + beta C + bias) for one or two rows
 * of op(A) and B not transposed. Each element of B serves only those rows,
 * so the product runs at the speed B streams in: each block of ROW_NV vectors
 * of C columns stays in registers while the block's B rows are read in
 * order, a long contiguous piece of each row at a time (the micro-kernel's
 * NR-column strips would walk B at a stride of its leading dimension).
 * Columns past the last full block are left to the direct path; gemm_body.h
 * cuts C between threads at multiples of ROW_W, so every element is summed
 * in the same order whatever the thread count. */
#if UK_LEVEL == 2
#define ROW_NV 16
#else
#define ROW_NV 8
#endif
#define ROW_W (ROW_NV * VL)
UK_INLINE void UK_NAME(gemm_row_block)(const int mi, const int nv, ptrdiff_t k, REAL alpha, const REAL *a,
                                       ptrdiff_t rsa, ptrdiff_t csa, const REAL *b, ptrdiff_t ldb, REAL beta,
                                       REAL *c, ptrdiff_t ldc, const REAL *bias, int relu)
{
    VEC acc[2][ROW_NV];
#pragma GCC unroll 2
    for (int i = 0; i < mi; i++)
#pragma GCC unroll 16
        for (int v = 0; v < nv; v++) acc[i][v] = VZERO();
    for (ptrdiff_t p = 0; p < k; p++) {
        const REAL *bp = b + p * ldb;
        VEC a0 = BCAST(a[p * csa]), a1 = mi > 1 ? BCAST(a[rsa + p * csa]) : a0;
#pragma GCC unroll 16
        for (int v = 0; v < nv; v++) {
            VEC bv = LOADU(bp + v * VL);
            acc[0][v] = FMA(a0, bv, acc[0][v]);
            if (mi > 1) acc[1][v] = FMA(a1, bv, acc[1][v]);
        }
    }
    VEC va = BCAST(alpha), vb = BCAST(beta);
#pragma GCC unroll 2
    for (int i = 0; i < mi; i++)
#pragma GCC unroll 16
        for (int v = 0; v < nv; v++) {
            REAL *cp = c + i * ldc + v * VL;
            VEC r = MUL(acc[i][v], va);
            if (beta != 0) r = FMA(vb, LOADU(cp), r);
            if (bias) r = ADD(r, LOADU(bias + v * VL));
            if (relu) r = MAX0(r);
            STOREU(cp, r);
        }
}

static int UK_NAME(gemm_row_width)(void) { return ROW_W; }

/* Full ROW_W-column blocks of C by the row path; returns the columns done. */
static UK_ATTR ptrdiff_t UK_NAME(gemm_rows)(int trans_a, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, REAL alpha,
                                           const REAL *A, ptrdiff_t lda, const REAL *B, ptrdiff_t ldb, REAL beta,
                                           REAL *C, ptrdiff_t ldc, const REAL *bias, int act, REAL act_alpha)
{
    ptrdiff_t rsa = trans_a ? 1 : lda, csa = trans_a ? lda : 1, j0 = 0;
    int relu = UK_RELU(act);
    for (; j0 + ROW_W <= n; j0 += ROW_W) {
        const REAL *bias1 = bias ? bias + j0 : NULL;
        if (m == 1)
            UK_NAME(gemm_row_block)(1, ROW_NV, k, alpha, A, rsa, csa, B + j0, ldb, beta, C + j0, ldc, bias1, relu);
        else
            UK_NAME(gemm_row_block)(2, ROW_NV / 2, k, alpha, A, rsa, csa, B + j0, ldb, beta, C + j0, ldc, bias1,
                                    relu);
        if (m == 2) /* the second half of the block: the other ROW_NV / 2 vectors */
            UK_NAME(gemm_row_block)(2, ROW_NV / 2, k, alpha, A, rsa, csa, B + j0 + ROW_W / 2, ldb, beta,
                                    C + j0 + ROW_W / 2, ldc, bias1 ? bias1 + ROW_W / 2 : NULL, relu);
        if (UK_OTHER(act)) UK_NAME(gemm_tile_act)(C + j0, ldc, (int)m, ROW_W, act, act_alpha);
    }
    return j0;
}
#undef ROW_NV
#undef ROW_W

/* C := act(alpha op(A) op(B) + beta C + bias) on one thread, k >= 1.
 * work: gemm_work(m, n, k) elements (unused by the direct path unless trans_b).
 * bpack (else NULL): op(B) packed whole by gemm_pack_whole with ntot columns,
 * this part of C starting at its micro-panel bq0 (then B and the direct
 * paths are unused, and work needs gemm_work(m, 0, k)). */
static UK_ATTR void UK_NAME(gemm_serial)(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                                         REAL alpha, const REAL *A, ptrdiff_t lda, const REAL *B, ptrdiff_t ldb,
                                         REAL beta, REAL *C, ptrdiff_t ldc, const REAL *bias, int act,
                                         REAL act_alpha, int direct, REAL *work, const REAL *bpack,
                                         ptrdiff_t ntot, ptrdiff_t bq0)
{
    int relu = UK_RELU(act), other = UK_OTHER(act);
    /* op(A)(i, p) = A[i rsa + p csa]; op(B)(p, j) = B[p rsb + j csb] */
    ptrdiff_t rsa = trans_a ? 1 : lda, csa = trans_a ? lda : 1;
    ptrdiff_t rsb = trans_b ? 1 : ldb, csb = trans_b ? ldb : 1;
    if (direct == NC_GEMM_PATH_ROWS) { /* full blocks by the row path, the rest below */
        ptrdiff_t done = UK_NAME(gemm_rows)(trans_a, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc, bias, act,
                                            act_alpha);
        if (done == n) return;
        C += done, B += done, n -= done;
        if (bias) bias += done;
    }
    if (direct) {
        /* operands in place; op(B) packed whole when transposed (the caller
         * asked for direct only when k n is small then) */
        const REAL *b = B;
        ptrdiff_t bstep = 1, bpanel = 0;
        int padded = 0;
        if (trans_b) {
            UK_NAME(gemm_pack_b)(1, B, ldb, k, n, work);
            b = work, bstep = NR, bpanel = NR * k, padded = 1;
        }
        /* B is walked in blocks of dk rows, all tiles of a block before the
         * next (C stays in cache, so do the pieces of A and B): for a wide B
         * (the few row panels of A this path gets then reuse each dk x NR
         * piece of B from L1) and for a long k. A leading dimension of a
         * multiple of 4 KiB maps every row of a piece to the same cache sets,
         * so then the blocks are short. dk depends on the operands only, not
         * on this thread's part of C: every element is summed in the same
         * order whatever the thread count. */
        ptrdiff_t dk = k;
        if (!trans_b && (ldb > 4 * NR || k > 2 * KC)) dk = (ldb * (ptrdiff_t)sizeof(REAL)) % 4096 == 0 ? 8 : 128;
        /* more row panels than column panels (a narrow B, as the im2col
         * product of a convolution): each piece of A stays in L1 while it
         * serves every column panel; else each piece of B serves every row panel */
        ptrdiff_t ni = (m + MR - 1) / MR, nj = (n + NR - 1) / NR;
        int rows_outer = ni > nj;
        for (ptrdiff_t pc = 0; pc < k; pc += dk) {
            ptrdiff_t kc = k - pc < dk ? k - pc : dk;
            int last = pc + kc == k;
            REAL beta1 = pc == 0 ? beta : (REAL)1;
            for (ptrdiff_t t = 0; t < ni * nj; t++) {
                ptrdiff_t i0 = (rows_outer ? t / nj : t % ni) * MR, j0 = (rows_outer ? t % nj : t / ni) * NR;
                int mr = (int)(m - i0 < MR ? m - i0 : MR), nr = (int)(n - j0 < NR ? n - j0 : NR);
                const REAL *bj = trans_b ? b + (j0 / NR) * bpanel : b + pc * ldb + j0;
                REAL *c = C + i0 * ldc + j0;
                UK_NAME(gemm_ukr)(kc, alpha, A + i0 * rsa + pc * csa, rsa, csa, bj, trans_b ? bstep : ldb, padded,
                                  beta1, c, ldc, mr, nr, last && bias ? bias + j0 : NULL, last && relu);
                if (last && other) UK_NAME(gemm_tile_act)(c, ldc, mr, nr, act, act_alpha);
            }
        }
        return;
    }
    uintptr_t al = ((uintptr_t)work + 63) & ~(uintptr_t)63;
    REAL *bbuf = (REAL *)al;
    ptrdiff_t kcmax = k < KC ? k : KC, ncb = bpack ? n : NCB, ncmax = n < ncb ? n : ncb;
    REAL *abuf = bpack ? bbuf : bbuf + kcmax * ((ncmax + NR - 1) / NR * NR);
    ptrdiff_t kstep = UK_NAME(gemm_kstep)(k);
    for (ptrdiff_t jc = 0; jc < n; jc += ncb) {
        ptrdiff_t nc = n - jc < ncb ? n - jc : ncb;
        for (ptrdiff_t pc = 0; pc < k; pc += kstep) {
            ptrdiff_t kc = k - pc < kstep ? k - pc : kstep;
            int last = pc + kc == k;
            REAL beta1 = pc == 0 ? beta : (REAL)1;
            const REAL *bb = bbuf;
            if (bpack)
                bb = bpack + pc * ntot + bq0 * NR * kc;
            else
                UK_NAME(gemm_pack_b)(trans_b, B + pc * rsb + jc * csb, ldb, kc, nc, bbuf);
            for (ptrdiff_t ic = 0; ic < m; ic += MC) {
                ptrdiff_t mc = m - ic < MC ? m - ic : MC;
                UK_NAME(gemm_pack_a)(trans_a, A + ic * rsa + pc * csa, lda, mc, kc, abuf);
                for (ptrdiff_t jr = 0; jr < nc; jr += NR) {
                    int nr = (int)(nc - jr < NR ? nc - jr : NR);
                    const REAL *bp = bb + jr * kc;
                    const REAL *bias1 = last && bias ? bias + jc + jr : NULL;
                    for (ptrdiff_t ir = 0; ir < mc; ir += MR) {
                        int mr = (int)(mc - ir < MR ? mc - ir : MR);
                        REAL *c = C + (ic + ir) * ldc + jc + jr;
                        UK_NAME(gemm_ukr)(kc, alpha, abuf + ir * kc, 1, MR, bp, NR, 1, beta1, c, ldc, mr, nr,
                                          bias1, last && relu);
                        if (last && other) UK_NAME(gemm_tile_act)(c, ldc, mr, nr, act, act_alpha);
                    }
                }
            }
        }
    }
}

/* ---- gemm_panels: A in place, the packed B, whole-k register tiles ---------
 * C[0:m, 0:n] := act(A B + beta C + bias) on this thread, where A is m x k
 * row-major (row i at A + i lda, read in place: nothing of A is packed) and B
 * comes packed whole by gemm_pack_whole (bpack: its first micro-panel, past
 * nc_gemm_pack_b's head; ntot: its width, n rounded up to NR or more, so C may
 * take the first n columns of a wider B). Each MR x NR tile of C is summed
 * over the whole k in registers, the packed k blocks one after the other (no
 * pass of C through memory per k block), then beta C, the bias and the
 * activation in the tile's epilogue, while the tile is in L1. The tiles walk
 * a row panel at a time (its MR rows of A stay in L1 while every column
 * panel of B streams past). Every element's sum runs over p in the same
 * order for a given tile shape, and the tiles follow the grid of MR rows
 * from row 0: a caller that cuts the rows at multiples of MR gets the same
 * bits whatever the cut. beta == 0 never reads C. */
UK_INLINE void UK_NAME(panels_kloop)(const int rows, const int nvec, ptrdiff_t k, const REAL *a, ptrdiff_t lda,
                                     const REAL *bq, ptrdiff_t ntot, ptrdiff_t q, VEC (*acc)[NV])
{
    ptrdiff_t kstep = UK_NAME(gemm_kstep)(k);
    int cnt[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; v++) cnt[v] = VL;
#pragma GCC unroll 32
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 8
        for (int v = 0; v < NV; v++) acc[i][v] = VZERO();
    for (ptrdiff_t pc = 0; pc < k; pc += kstep) {
        ptrdiff_t kc = k - pc < kstep ? k - pc : kstep;
        UK_NAME(gemm_kloop)(rows, nvec, 0, kc, a + pc, lda, 1, bq + pc * ntot + q * NR * kc, NR, cnt, acc);
    }
}

/* The full MR x NR tile in a function of its own (the accumulators stay in
 * registers; see gemm_ukr_full). */
static __attribute__((noinline)) UK_ATTR void UK_NAME(panels_full)(ptrdiff_t k, const REAL *a, ptrdiff_t lda,
                                                                   const REAL *bq, ptrdiff_t ntot, ptrdiff_t q,
                                                                   REAL beta, REAL *c, ptrdiff_t ldc,
                                                                   const REAL *bias, int relu)
{
    VEC acc[MR][NV];
    int cnt[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; v++) cnt[v] = VL;
    UK_NAME(panels_kloop)(MR, NV, k, a, lda, bq, ntot, q, acc);
    UK_NAME(gemm_store)(MR, acc, 1, beta, c, ldc, cnt, bias, relu);
}

/* A tile of mr < MR rows or nr < NR columns. */
static UK_ATTR void UK_NAME(panels_edge)(int mr, int nr, ptrdiff_t k, const REAL *a, ptrdiff_t lda, const REAL *bq,
                                         ptrdiff_t ntot, ptrdiff_t q, REAL beta, REAL *c, ptrdiff_t ldc,
                                         const REAL *bias, int relu)
{
    VEC acc[MR][NV];
    int cnt[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; v++) {
        int r = nr - v * VL;
        cnt[v] = r < 0 ? 0 : r > VL ? VL : r;
    }
    int half = NV > 1 && nr <= NV / 2 * VL; /* the packed panel's zero columns past nr are summed, not stored */
#define PANELS_CASE(r)                                                                       \
    case r:                                                                                  \
        if (half) UK_NAME(panels_kloop)(r, NV > 1 ? NV / 2 : 1, k, a, lda, bq, ntot, q, acc); \
        else UK_NAME(panels_kloop)(r, NV, k, a, lda, bq, ntot, q, acc);                     \
        break;
    switch (mr) {
        PANELS_CASE(1)
#if MR >= 2
        PANELS_CASE(2)
#endif
#if MR >= 3
        PANELS_CASE(3)
#endif
#if MR >= 4
        PANELS_CASE(4)
#endif
#if MR >= 5
        PANELS_CASE(5)
#endif
#if MR >= 6
        PANELS_CASE(6)
#endif
#if MR >= 7
        PANELS_CASE(7)
#endif
#if MR >= 8
        PANELS_CASE(8)
#endif
#if MR > 8
#error "gemm_kernel.h: gemm_panels takes MR <= 8"
#endif
    default: return;
    }
#undef PANELS_CASE
    UK_NAME(gemm_store)(mr, acc, 1, beta, c, ldc, cnt, bias, relu);
}

/* The columns [j0, j1) of gemm_panels' C (j0 a multiple of NR; C and bias as for the whole): a caller that
 * cuts the columns at multiples of NR gets gemm_panels' bits (each tile is summed on its own), and may do
 * other work between the cuts (the recurrent step loop's prefetches). */
static UK_ATTR void UK_NAME(gemm_panels_cols)(ptrdiff_t m, ptrdiff_t j0, ptrdiff_t j1, ptrdiff_t k, const REAL *A,
                                              ptrdiff_t lda, const REAL *bpack, ptrdiff_t ntot, REAL beta, REAL *C,
                                              ptrdiff_t ldc, const REAL *bias, int act, REAL act_alpha)
{
    int relu = UK_RELU(act), other = UK_OTHER(act);
    ptrdiff_t jb = j0;
    for (ptrdiff_t i0 = 0; i0 < m; i0 += MR) {
        int mr = (int)(m - i0 < MR ? m - i0 : MR);
        const REAL *a = A + i0 * lda;
        for (j0 = jb; j0 < j1; j0 += NR) {
            int nr = (int)(j1 - j0 < NR ? j1 - j0 : NR);
            REAL *c = C + i0 * ldc + j0;
            const REAL *bias1 = bias ? bias + j0 : NULL;
            if (mr == MR && nr == NR)
                UK_NAME(panels_full)(k, a, lda, bpack, ntot, j0 / NR, beta, c, ldc, bias1, relu);
            else
                UK_NAME(panels_edge)(mr, nr, k, a, lda, bpack, ntot, j0 / NR, beta, c, ldc, bias1, relu);
            if (other) UK_NAME(gemm_tile_act)(c, ldc, mr, nr, act, act_alpha);
        }
    }
}

static UK_ATTR void UK_NAME(gemm_panels)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const REAL *A, ptrdiff_t lda,
                                         const REAL *bpack, ptrdiff_t ntot, REAL beta, REAL *C, ptrdiff_t ldc,
                                         const REAL *bias, int act, REAL act_alpha)
{
    UK_NAME(gemm_panels_cols)(m, 0, n, k, A, lda, bpack, ntot, beta, C, ldc, bias, act, act_alpha);
}

/* ---- gemm_tn: C := A^T B, both operands in place, k their rows ------------
 * C[0:m, 0:n] := A^T B on this thread, A (k x m) and B (k x n) row-major with
 * row strides lda and ldb: op(A)(i, p) = A[p lda + i]. Each step p of the
 * micro-kernel takes MR consecutive values of row p of A and NR of row p of B:
 * what the packed path's A and B micro-panels hold, at a stride of lda and ldb
 * instead of MR and NR, so nothing is packed (the weight gradient of a
 * Winograd tuple, dU = V^T dM over the tiles: csrc/winograd_body.h). The sums
 * are the packed path's: k in gemm_kstep blocks, each summed in registers over
 * p in order (gemm_kloop with the packed path's tile shapes) and added to C
 * (the first block stored), so the bits are nc_gemm(1, 0, ...)'s wherever that
 * packs op(A) and op(B) (not its direct path, whose k blocks are others). A
 * column edge reads B's last vector masked (never past row p's n values), a
 * row edge only its rows of A. Each k block serves every tile before the next
 * (A's kc x MR strip stays in L1 while B's column panels pass); beta == 0 for
 * the first block: C is never read before it is written. */
static __attribute__((noinline)) UK_ATTR void UK_NAME(tn_full)(ptrdiff_t kc, const REAL *a, ptrdiff_t lda,
                                                               const REAL *b, ptrdiff_t ldb, REAL beta, REAL *c,
                                                               ptrdiff_t ldc)
{
    VEC acc[MR][NV];
    int cnt[NV];
#pragma GCC unroll 32
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 8
        for (int v = 0; v < NV; v++) acc[i][v] = VZERO();
#pragma GCC unroll 8
    for (int v = 0; v < NV; v++) cnt[v] = VL;
    UK_NAME(gemm_kloop)(MR, NV, 0, kc, a, 1, lda, b, ldb, cnt, acc);
    UK_NAME(gemm_store)(MR, acc, 1, beta, c, ldc, cnt, NULL, 0);
}

/* A tile of mr < MR rows or nr < NR columns: gemm_ukr's edge with A read in place (row stride 1, column
 * stride lda) and B's rows ldb apart, alpha 1, no bias. */
static UK_ATTR void UK_NAME(tn_edge)(int mr, int nr, ptrdiff_t kc, const REAL *a, ptrdiff_t lda, const REAL *b,
                                     ptrdiff_t ldb, REAL beta, REAL *c, ptrdiff_t ldc)
{
    UK_NAME(gemm_ukr)(kc, (REAL)1, a, 1, lda, b, ldb, 0, beta, c, ldc, mr, nr, NULL, 0);
}

/* Rows p0 <= p < p1 of a row-major source (len values each, row stride ld) fetched towards L2. */
UK_INLINE void UK_NAME(tn_prefetch)(const REAL *src, ptrdiff_t ld, ptrdiff_t len, ptrdiff_t p0, ptrdiff_t p1)
{
#if defined(__GNUC__) || defined(__clang__)
    for (ptrdiff_t p = p0; p < p1; p++) {
        const REAL *row = src + p * ld;
        for (ptrdiff_t e = 0; e < len; e += PL) __builtin_prefetch(row + e, 0, 2);
        __builtin_prefetch(row + len - 1, 0, 2);
    }
#else
    (void)src, (void)ld, (void)len, (void)p0, (void)p1;
#endif
}

/* While a k block is summed, the next block's rows of A and B are fetched towards L2, a share before
 * each tile: A and B come from memory (Winograd's V and dM are written long before), and the 36 dU
 * products of the cnn row's conv2 (1152 x 32 x 64 each) ran at 53-61 GFLOP/s on cold operands against
 * 86-93 on warm ones (AVX2, Zen 4, 1 thread, loaded machine). */
static UK_ATTR void UK_NAME(gemm_tn)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const REAL *A, ptrdiff_t lda,
                                     const REAL *B, ptrdiff_t ldb, REAL *C, ptrdiff_t ldc)
{
    ptrdiff_t kstep = UK_NAME(gemm_kstep)(k);
    const ptrdiff_t ni = (m + MR - 1) / MR, nj = (n + NR - 1) / NR;
    for (ptrdiff_t pc = 0; pc < k; pc += kstep) {
        ptrdiff_t kc = k - pc < kstep ? k - pc : kstep;
        REAL beta = pc == 0 ? (REAL)0 : (REAL)1;
        const REAL *ap = A + pc * lda, *bp = B + pc * ldb;
        const ptrdiff_t q0 = pc + kc, kn = k - q0 < kstep ? k - q0 : kstep;   /* the next block: rows q0 .. q0 + kn */
        ptrdiff_t t = 0;
        for (ptrdiff_t i0 = 0; i0 < m; i0 += MR) {
            int mr = (int)(m - i0 < MR ? m - i0 : MR);
            for (ptrdiff_t j0 = 0; j0 < n; j0 += NR, t++) {
                int nr = (int)(n - j0 < NR ? n - j0 : NR);
                if (kn > 0) {
                    const ptrdiff_t r0 = q0 + kn * t / (ni * nj), r1 = q0 + kn * (t + 1) / (ni * nj);
                    UK_NAME(tn_prefetch)(A, lda, m, r0, r1);
                    UK_NAME(tn_prefetch)(B, ldb, n, r0, r1);
                }
                if (mr == MR && nr == NR)
                    UK_NAME(tn_full)(kc, ap + i0, lda, bp + j0, ldb, beta, C + i0 * ldc + j0, ldc);
                else
                    UK_NAME(tn_edge)(mr, nr, kc, ap + i0, lda, bp + j0, ldb, beta, C + i0 * ldc + j0, ldc);
            }
        }
    }
}

#undef UK_SUF
#undef UK_ATTR
#undef UK_ROW
#undef UK_MASK
#undef VEC
#undef VL
#undef LOADU
#undef STOREU
#undef MLOAD
#undef MSTORE
#undef FMA
#undef MUL
#undef ADD
#undef MAX0
#undef BCAST
#undef VZERO
#undef HSUM
#undef UK_NAME
#undef MR
#undef NV
#undef NR
#undef MC
#undef KC
#undef NCB
#undef UK_INLINE
#undef PL
#undef UK_PACK_A_T8X16
#undef UK_PACK_TBLOCK
#undef UK_FULL_TILE
#undef UK_RELU
#undef UK_OTHER
