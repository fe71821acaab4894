/* int8_gemv.h -- the direct path's row kernels: c = a B in int32 for a few rows a
 * (each k int8 values in [-qmax, qmax], zero up to a whole group of 4) and B (k x n int8, row stride ldb) read in
 * place, unpacked. Predict of one sample uses each element of B once, so
 * packing B would cost as much as using it; these kernels make the k-groups
 * of 4 the multiply-add instructions want from 4 rows of B in registers
 * (two byte and two word interleaves), a block of columns at a time:
 *
 *   rows p..p+3 of B, bytes j..j+W  ->  4 vectors of 4-byte groups (B(p..p+3, j)),
 *   lane order inside each 128-bit lane: vector c holds columns 16 L + 4 c + 0..3
 *   of lane L (undone when the block is stored).
 *
 * The unsigned operand is B + 128 (B xor 0x80) and the signed one a's group, so
 * each lane sums (B + 128) a = B a + 128 a: the row's 128 sum_p a_p is taken
 * away at the end (one number per row, no per-column correction). Exact:
 *   - vpdpbusd (AVX512-VNNI): no saturation, mod 2^32 (the VNNI kernels' argument);
 *   - vpmaddubsw (AVX2) for |a| <= 63: a pair is at most 2 * 255 * 63 = 32130 < 2^15;
 *     for |a| <= 127 the sign trick (|B| unsigned, a sign(B) signed, 2 * 128 * 127),
 *     no correction.
 * So every kernel gives the int32 sums of the generic loop. A pass takes R rows at once
 * (4 AVX512-VNNI, 2 AVX2): B's groups, made once, serve them all. Included by int8.c. */

#define NC_I8_GEMV_W 256 /* columns of the generic kernel's accumulator row */

static void nc_i8_gemv_generic(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const int8_t *a, ptrdiff_t lda, const int8_t *B,
                               ptrdiff_t ldb, int qmax, int32_t *c, ptrdiff_t ldc)
{
    int32_t acc[NC_I8_GEMV_W];
    (void)qmax;
    for (ptrdiff_t i = 0; i < m; i++)
        for (ptrdiff_t j0 = 0; j0 < n; j0 += NC_I8_GEMV_W) {
            int w = (int)(n - j0 < NC_I8_GEMV_W ? n - j0 : NC_I8_GEMV_W);
            for (int j = 0; j < w; j++) acc[j] = 0;
            for (ptrdiff_t p = 0; p < k; p++) {
                const int8_t *b = B + p * ldb + j0;
                int32_t ap = a[i * lda + p];
#pragma omp simd
                for (int j = 0; j < w; j++) acc[j] += ap * (int32_t)b[j];
            }
            memcpy(c + i * ldc + j0, acc, (size_t)w * sizeof(int32_t));
        }
}

#if NC_I8_X86
/* 128 sum_p a_p (the correction of the B + 128 operand), mod 2^32 */
static uint32_t nc_i8_gemv_corr(const int8_t *a, ptrdiff_t k)
{
    int32_t s = 0;
    for (ptrdiff_t p = 0; p < k; p++) s += a[p];
    return (uint32_t)s * 128u;
}

/* The 4 group vectors of 4 rows r0..r3 (each `lanes` 16-byte lanes), by in-lane interleaves */
#define NC_I8_GROUPS(unlo8, unhi8, unlo16, unhi16, r0, r1, r2, r3, g)                                   \
    do {                                                                                               \
        __typeof__(r0) lo01 = unlo8(r0, r1), hi01 = unhi8(r0, r1), lo23 = unlo8(r2, r3),                \
                       hi23 = unhi8(r2, r3);                                                           \
        g[0] = unlo16(lo01, lo23), g[1] = unhi16(lo01, lo23), g[2] = unlo16(hi01, hi23),                \
        g[3] = unhi16(hi01, hi23);                                                                     \
    } while (0)

/* c[j0 .. j0 + w) from the 4 accumulators of a block of 16 L columns (vector v lane L: columns
 * 16 L + 4 v + 0..3), minus corr */
static inline void nc_i8_gemv_unshuffle(const int32_t *t, int lanes, int w, uint32_t corr, int32_t *c)
{
    for (int L = 0; L < lanes; L++)
#pragma GCC unroll 4
        for (int v = 0; v < 4; v++)
            for (int i = 0; i < 4; i++) {
                int j = 16 * L + 4 * v + i;
                if (j < w) c[j] = nc_i8_s32((uint32_t)t[v * 4 * lanes + 4 * L + i] - corr);
            }
}

/* ---- AVX2: 32 columns a block, R <= 2 rows a pass (16 ymm registers) ----
 * B's rows are read 32 bytes at a time in place wherever those bytes lie inside B (its extent: row k - 1
 * ends at column n): in a block of w < 32 columns (the last) the bytes past column w are the next
 * columns' or row's, and a byte of column j only reaches the lane of column j (the interleaves keep
 * columns apart), so they land in lanes that are never stored. Only the last row or rows of such a
 * block (and the rows past k: zero) go through a zero-padded copy. The products' sums go into the
 * accumulators in place (asm steps, as the micro-kernel's), so that GCC keeps the 8 accumulators, the
 * groups, `ones` and the flip in the 16 registers (its own code of the intrinsics spilled three
 * accumulators through the stack). One row of 784 x 256, Zen 4, the row kernel alone: 5.5 -> 4.0-4.2 us
 * (ones and the flip as memory operands instead: 4.6). */
static NC_I8_AVX2_ATTR inline __m256i nc_i8_gemv_row32(const int8_t *B, ptrdiff_t ldb, ptrdiff_t p, ptrdiff_t k,
                                                        ptrdiff_t in_place, int w)
{
    if (p < in_place) return _mm256_loadu_si256((const __m256i *)(const void *)(B + p * ldb));
    if (p >= k) return _mm256_setzero_si256();
    int8_t tmp[32] = {0};
    memcpy(tmp, B + p * ldb, (size_t)w);
    return _mm256_loadu_si256((const __m256i *)(const void *)tmp);
}

static const __m256i nc_i8_flip8 = {(long long)0x8080808080808080ULL, (long long)0x8080808080808080ULL,
                                    (long long)0x8080808080808080ULL, (long long)0x8080808080808080ULL};

/* acc += madd(maddubs(g, x), ones): g unsigned (B + 128), x the row's signed word */
#define NC_I8_GEMV_U8(A_, G_, X_)                                                                         \
    {                                                                                                    \
        __m256i t_;                                                                                      \
        __asm__("vpmaddubsw %[x], %[g], %[t]\n\tvpmaddwd %[o], %[t], %[t]\n\tvpaddd %[t], %[s], %[s]"    \
                : [s] "+x"(A_), [t] "=&x"(t_)                                                            \
                : [g] "x"(G_), [x] "x"(X_), [o] "x"(ones_r));                                        \
    }
/* acc += madd(maddubs(|g|, x sign(g)), ones): g signed (B) */
#define NC_I8_GEMV_SIGN(A_, G_, X_)                                                                       \
    {                                                                                                    \
        __m256i t_, u_;                                                                                  \
        __asm__("vpabsb %[g], %[u]\n\tvpsignb %[g], %[x], %[t]\n\tvpmaddubsw %[t], %[u], %[t]\n\t"       \
                "vpmaddwd %[o], %[t], %[t]\n\tvpaddd %[t], %[s], %[s]"                                   \
                : [s] "+x"(A_), [t] "=&x"(t_), [u] "=&x"(u_)                                             \
                : [g] "x"(G_), [x] "x"(X_), [o] "m"(nc_i8_ones16));                                        \
    }

/* Columns [0, w) of R rows' c from B's (both at the block's first column), in H halves of 32 columns
 * (R H <= 2: one row takes 64 columns, B's whole cache lines); the last half's rows [0, in_place) read in
 * place (every row of the others); w a constant 32 H in the full blocks' copy */
static NC_I8_AVX2_ATTR inline __attribute__((always_inline)) void
nc_i8_gemv_avx2_cols(const int R, const int H, const int sign, const int w, ptrdiff_t k, ptrdiff_t in_place,
                     const int8_t *a, ptrdiff_t lda, const int8_t *B, ptrdiff_t ldb, const uint32_t *corr, int32_t *c,
                     ptrdiff_t ldc)
{
    ptrdiff_t kg = (k + 3) / 4;
    const __m256i ones_r = nc_i8_ones16, flip_r = nc_i8_flip8;
    __m256i acc[2][4];
#pragma GCC unroll 4
    for (int q = 0; q < R * H; q++)
#pragma GCC unroll 4
        for (int v = 0; v < 4; v++) acc[q][v] = _mm256_setzero_si256();
    /* phase 0: the groups whose 4 rows every half reads in place (in_place <= k); phase 1: the rest,
     * each half's rows in place below its own bound (the last half's in_place, the others' k) */
#pragma GCC unroll 2
    for (int phase = 0; phase < 2; phase++)
    for (ptrdiff_t g = phase ? in_place / 4 : 0; g < (phase ? kg : in_place / 4); g++) {
#pragma GCC unroll 2
        for (int h = 0; h < H; h++) {
            const int8_t *b = B + 4 * g * ldb + 32 * h;
            ptrdiff_t inp = h < H - 1 ? k : in_place; /* this half's rows read in place: groups below inp / 4 */
            __m256i gv[4], r0, r1, r2, r3;
            if (!phase || g < inp / 4) {
                r0 = _mm256_loadu_si256((const __m256i *)(const void *)b);
                r1 = _mm256_loadu_si256((const __m256i *)(const void *)(b + ldb));
                r2 = _mm256_loadu_si256((const __m256i *)(const void *)(b + 2 * ldb));
                r3 = _mm256_loadu_si256((const __m256i *)(const void *)(b + 3 * ldb));
            } else {
                ptrdiff_t p = 4 * g;
                int wh = w - 32 * h < 32 ? w - 32 * h : 32;
                const int8_t *bh = B + 32 * h;
                r0 = nc_i8_gemv_row32(bh, ldb, p, k, inp, wh), r1 = nc_i8_gemv_row32(bh, ldb, p + 1, k, inp, wh);
                r2 = nc_i8_gemv_row32(bh, ldb, p + 2, k, inp, wh), r3 = nc_i8_gemv_row32(bh, ldb, p + 3, k, inp, wh);
            }
            NC_I8_GROUPS(_mm256_unpacklo_epi8, _mm256_unpackhi_epi8, _mm256_unpacklo_epi16, _mm256_unpackhi_epi16, r0,
                         r1, r2, r3, gv);
            if (!sign)
#pragma GCC unroll 4
                for (int v = 0; v < 4; v++) __asm__("vpxor %[f], %[g], %[g]" : [g] "+x"(gv[v]) : [f] "x"(flip_r));
#pragma GCC unroll 2
            for (int r = 0; r < R; r++) {
                int32_t word;
                memcpy(&word, a + r * lda + 4 * g, 4); /* (a zero-padded to whole groups) */
                __m256i x = _mm256_set1_epi32(word);
#pragma GCC unroll 4
                for (int v = 0; v < 4; v++) {
                    if (sign) NC_I8_GEMV_SIGN(acc[r * H + h][v], gv[v], x)
                    else NC_I8_GEMV_U8(acc[r * H + h][v], gv[v], x)
                }
            }
        }
    }
#pragma GCC unroll 2
    for (int r = 0; r < R; r++)
#pragma GCC unroll 2
        for (int h = 0; h < H; h++) {
            int32_t tt[32];
#pragma GCC unroll 4
            for (int v = 0; v < 4; v++) _mm256_storeu_si256((__m256i *)(void *)(tt + 8 * v), acc[r * H + h][v]);
            if (w > 32 * h) nc_i8_gemv_unshuffle(tt, 2, w - 32 * h < 32 ? w - 32 * h : 32, corr[r], c + r * ldc + 32 * h);
        }
}
#undef NC_I8_GEMV_U8
#undef NC_I8_GEMV_SIGN

/* R rows (1 or 2) of c: blocks of 32 (2 rows) or 64 (1 row) columns; the last block's H by its width, its
 * last half's rows read in place while their 32 bytes lie inside B: (k - 1 - p) ldb >= 32 - (its width) */
static NC_I8_AVX2_ATTR inline __attribute__((always_inline)) void
nc_i8_gemv_avx2_r(const int R, const int sign, ptrdiff_t n, ptrdiff_t k, const int8_t *a, ptrdiff_t lda,
                  const int8_t *B, ptrdiff_t ldb, int32_t *c, ptrdiff_t ldc)
{
    const int H = 2 / R, W = 32 * H;
    uint32_t corr[2];
    for (int r = 0; r < R; r++) corr[r] = sign ? 0 : nc_i8_gemv_corr(a + r * lda, k);
    ptrdiff_t j0 = 0;
    for (; j0 + W <= n; j0 += W) nc_i8_gemv_avx2_cols(R, H, sign, W, k, k, a, lda, B + j0, ldb, corr, c + j0, ldc);
    if (j0 < n) {
        int w = (int)(n - j0), wl = (w - 1) % 32 + 1; /* the last half's width */
        ptrdiff_t in_place = k - (32 - wl + ldb - 1) / ldb;
        in_place = in_place > 0 ? in_place : 0;
        if (R == 1 && w > 32) nc_i8_gemv_avx2_cols(R, 2, sign, w, k, in_place, a, lda, B + j0, ldb, corr, c + j0, ldc);
        else nc_i8_gemv_avx2_cols(R, 1, sign, w, k, in_place, a, lda, B + j0, ldb, corr, c + j0, ldc);
    }
}

static NC_I8_AVX2_ATTR void nc_i8_gemv_avx2(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const int8_t *a, ptrdiff_t lda,
                                            const int8_t *B, ptrdiff_t ldb, int qmax, int32_t *c, ptrdiff_t ldc)
{
    /* (R and the sign trick constants of each copy: GCC then keeps the accumulators in registers) */
    ptrdiff_t i = 0;
    if (qmax > 63) {
        for (; i + 2 <= m; i += 2) nc_i8_gemv_avx2_r(2, 1, n, k, a + i * lda, lda, B, ldb, c + i * ldc, ldc);
        if (i < m) nc_i8_gemv_avx2_r(1, 1, n, k, a + i * lda, lda, B, ldb, c + i * ldc, ldc);
    } else {
        for (; i + 2 <= m; i += 2) nc_i8_gemv_avx2_r(2, 0, n, k, a + i * lda, lda, B, ldb, c + i * ldc, ldc);
        if (i < m) nc_i8_gemv_avx2_r(1, 0, n, k, a + i * lda, lda, B, ldb, c + i * ldc, ldc);
    }
}

/* ---- AVX512-VNNI: 64 columns a block, the column tail by masked loads, R <= 4 rows a pass ---- */
#define NC_I8_VNNI512_ATTR __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx512vnni,avx2,fma")))
static NC_I8_VNNI512_ATTR inline __attribute__((always_inline)) void
nc_i8_gemv_avx512vnni_r(const int R, ptrdiff_t n, ptrdiff_t k, const int8_t *a, ptrdiff_t lda, const int8_t *B,
                        ptrdiff_t ldb, int32_t *c, ptrdiff_t ldc)
{
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    uint32_t corr[4];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) corr[r] = nc_i8_gemv_corr(a + r * lda, k);
    ptrdiff_t kg = (k + 3) / 4;
    for (ptrdiff_t j0 = 0; j0 < n; j0 += 64) {
        int w = (int)(n - j0 < 64 ? n - j0 : 64);
        __mmask64 mask = w == 64 ? ~(__mmask64)0 : (((__mmask64)1 << w) - 1);
        const int8_t *b = B + j0;
        __m512i acc[4][4];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++)
#pragma GCC unroll 4
            for (int v = 0; v < 4; v++) acc[r][v] = _mm512_setzero_si512();
        for (ptrdiff_t g = 0; g < kg; g++) {
            ptrdiff_t p = 4 * g;
            __m512i gv[4];
            /* rows past k: B + 128 of a zero row is 128, times a's zero padding */
            __m512i r0 = _mm512_maskz_loadu_epi8(mask, b + p * ldb);
            __m512i r1 = p + 1 < k ? _mm512_maskz_loadu_epi8(mask, b + (p + 1) * ldb) : _mm512_setzero_si512();
            __m512i r2 = p + 2 < k ? _mm512_maskz_loadu_epi8(mask, b + (p + 2) * ldb) : _mm512_setzero_si512();
            __m512i r3 = p + 3 < k ? _mm512_maskz_loadu_epi8(mask, b + (p + 3) * ldb) : _mm512_setzero_si512();
            NC_I8_GROUPS(_mm512_unpacklo_epi8, _mm512_unpackhi_epi8, _mm512_unpacklo_epi16, _mm512_unpackhi_epi16,
                         r0, r1, r2, r3, gv);
#pragma GCC unroll 4
            for (int v = 0; v < 4; v++) gv[v] = _mm512_xor_si512(gv[v], flip);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                int32_t word;
                memcpy(&word, a + r * lda + p, 4); /* (a zero-padded to whole groups) */
                __m512i x = _mm512_set1_epi32(word);
#pragma GCC unroll 4
                for (int v = 0; v < 4; v++) acc[r][v] = _mm512_dpbusd_epi32(acc[r][v], gv[v], x);
            }
        }
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            int32_t tt[64];
#pragma GCC unroll 4
            for (int v = 0; v < 4; v++) _mm512_storeu_si512((void *)(tt + 16 * v), acc[r][v]);
            nc_i8_gemv_unshuffle(tt, 4, w, corr[r], c + r * ldc + j0);
        }
    }
}

static NC_I8_VNNI512_ATTR void nc_i8_gemv_avx512vnni(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const int8_t *a,
                                                     ptrdiff_t lda, const int8_t *B, ptrdiff_t ldb, int qmax,
                                                     int32_t *c, ptrdiff_t ldc)
{
    (void)qmax;
    ptrdiff_t i = 0;
    for (; i + 4 <= m; i += 4) nc_i8_gemv_avx512vnni_r(4, n, k, a + i * lda, lda, B, ldb, c + i * ldc, ldc);
    switch (m - i) {
    case 3: nc_i8_gemv_avx512vnni_r(3, n, k, a + i * lda, lda, B, ldb, c + i * ldc, ldc); break;
    case 2: nc_i8_gemv_avx512vnni_r(2, n, k, a + i * lda, lda, B, ldb, c + i * ldc, ldc); break;
    case 1: nc_i8_gemv_avx512vnni_r(1, n, k, a + i * lda, lda, B, ldb, c + i * ldc, ldc); break;
    default: break;
    }
}
#undef NC_I8_VNNI512_ATTR
#undef NC_I8_GROUPS
#endif /* NC_I8_X86 */
#undef NC_I8_GEMV_W
