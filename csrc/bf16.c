/* bf16.c -- the bfloat16 GEMM of mixed-precision training (Keras 3's
 * "mixed_bfloat16" policy): float32 operands rounded to bfloat16, products
 * accumulated in float32, a float32 epilogue, the result optionally rounded
 * to bfloat16 (the compute dtype's output).
 *
 *   C := r(act(alpha sum_p bf(A_ip) bf(B_pj) + beta C + bias))
 *
 * bf(x) is the SDM's convert_fp32_to_bfloat16 (VCVTNEPS2BF16): round to
 * nearest even, denormals to signed zero, NaN kept quiet; r is bf when
 * round_out is set (the result stays a float32 that holds a bfloat16 value).
 *
 * The sum runs as vdpbf16ps runs it (Intel SDM, VDPBF16PS), one chain per
 * element of C over the pairs (2q, 2q+1) of k in order:
 *     acc = fma(bf(A_i,2q+1), bf(B_2q+1,j), acc)    the odd element first
 *     acc = fma(bf(A_i,2q),   bf(B_2q,j),   acc)
 * each a float32 FMA rounded to nearest even with denormal inputs taken as
 * zero and denormal results flushed to zero (k odd: a zero pair element).
 * Packing converts each float32 operand to bfloat16 once per panel (A and B
 * as 32-bit words holding a pair, the even element in the low half, as the
 * instruction reads them), so the operands are never denormal.
 *
 * Micro-kernels (enum nc_bf16_kernel): vdpbf16ps itself on zmm (AVX512_BF16),
 * and its emulation (one bf16_dp.h loop for all three): AVX2 two FMAs per
 * pair on the halves widened to float32, generic C two fmaf. The emulations
 * run with MXCSR's FTZ and DAZ set (x86), which makes the FMA flush as the
 * instruction does; the generic C also flushes explicitly (|r| < FLT_MIN ->
 * signed zero: the same on CPUs with no MXCSR, except that flush-before-vs-
 * after-rounding may differ for results within half an ulp of FLT_MIN).
 * With the same chain in every kernel and the one epilogue below, the result
 * is the same bits on every kernel, tile shape and thread count (threads cut
 * C into blocks; no sum is split). */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "nncore.h"
#ifdef _OPENMP
#include <omp.h>
#else
static inline int omp_get_thread_num(void) { return 0; }
static inline int omp_get_num_threads(void) { return 1; }
#endif
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__) && !defined(NNCORE_GENERIC_ONLY)
#define NC_BF_X86 1
#include <cpuid.h>
#include <immintrin.h>
#else
#define NC_BF_X86 0
#endif

/* Bytes of packed A per block of rows (in L2 while the B panels pass). */
#define NC_BF_A_BYTES (96 * 1024)
/* The largest MR x NR of the kernels (8 x 32). */
#define NC_BF_TILE_MAX 256
/* Below this many multiply-adds one thread does it all. */
#define NC_BF_TEAM_WORK (128.0 * 128.0 * 128.0)

/* ---- float32 <-> bfloat16 ----------------------------------------------------------------------- */
static inline uint32_t nc_bf_u32(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    return u;
}

static inline float nc_bf_f32(uint32_t u)
{
    float x;
    memcpy(&x, &u, 4);
    return x;
}

/* convert_fp32_to_bfloat16 of the SDM (VCVTNEPS2BF16), branch-free */
static inline uint32_t nc_bf_bits(float x)
{
    uint32_t u = nc_bf_u32(x), e = u & 0x7f800000u;
    uint32_t normal = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;       /* round to nearest even */
    uint32_t special = (u >> 16) | ((u & 0x007fffffu) ? 0x40u : 0u); /* inf as is, NaN made quiet */
    return e == 0 ? (u >> 16) & 0x8000u : e == 0x7f800000u ? special : normal;
}

void nc_bf16_from_f32(const float *x, uint16_t *y, ptrdiff_t n)
{
#pragma omp simd
    for (ptrdiff_t i = 0; i < n; i++) y[i] = (uint16_t)nc_bf_bits(x[i]);
}

void nc_bf16_to_f32(const uint16_t *x, float *y, ptrdiff_t n)
{
#pragma omp simd
    for (ptrdiff_t i = 0; i < n; i++) y[i] = nc_bf_f32((uint32_t)x[i] << 16);
}

void nc_bf16_round_f32(const float *x, float *y, ptrdiff_t n)
{
#pragma omp simd
    for (ptrdiff_t i = 0; i < n; i++) y[i] = nc_bf_f32(nc_bf_bits(x[i]) << 16);
}

/* ---- the micro-kernels ------------------------------------------------------------------------- */
typedef void (*nc_bf_kernel_fn)(ptrdiff_t kq, const uint32_t *a, const uint32_t *b, float *t);

/* The half h of pair words (0: the odd elements, the high halves; 1: the even ones) as float32 bits */
static inline uint32_t nc_bf_half(uint32_t w, int h) { return h ? w << 16 : w & 0xffff0000u; }

/* generic C: lanes of plain floats, one fmaf per half pair, flushed */
typedef struct { float l[8]; } nc_bf_v8;

static inline float nc_bf_ftz(float r) { return fabsf(r) < FLT_MIN ? copysignf(0.0f, r) : r; }
static inline nc_bf_v8 nc_bf_zero8(void)
{
    nc_bf_v8 v;
    for (int i = 0; i < 8; i++) v.l[i] = 0.0f;
    return v;
}
static inline nc_bf_v8 nc_bf_loadb8(const uint32_t *p, int h)
{
    nc_bf_v8 v;
    for (int i = 0; i < 8; i++) v.l[i] = nc_bf_f32(nc_bf_half(p[i], h));
    return v;
}
static inline nc_bf_v8 nc_bf_fma8(nc_bf_v8 acc, float a, nc_bf_v8 b)
{
    for (int i = 0; i < 8; i++) acc.l[i] = nc_bf_ftz(fmaf(a, b.l[i], acc.l[i]));
    return acc;
}

#define NC_BF_GENERIC_MR 4
#define NC_BF_GENERIC_NR 8
#define BF_NAME nc_bf_kernel_generic
#define BF_ATTR
#define BF_ACC nc_bf_v8
#define BF_A float
#define BF_B nc_bf_v8
#define BF_LANES 8
#define BF_MR NC_BF_GENERIC_MR
#define BF_NV 1
#define BF_HALVES 2
#define BF_ZERO() nc_bf_zero8()
#define BF_LOADB(p, h) nc_bf_loadb8((p), (h))
#define BF_BCAST(a, i, h) nc_bf_f32((a)[(h) * BF_MR + (i)])
#define BF_ASTEP (2 * BF_MR)
#define BF_DP(acc, x, y) nc_bf_fma8((acc), (x), (y))
#define BF_STORE(p, x) memcpy((p), (x).l, sizeof (x).l)
#define BF_KEEP(x) (void)0
#include "bf16_dp.h"

#if NC_BF_X86
/* AVX2 + FMA: a half of B's pair words widened to float32 (the odd elements are the high halves as
 * they are, the even ones shifted up), A widened in packing and broadcast from memory, one FMA per
 * half pair; 6 x 16 tiles (12 accumulators, 2 of B, 1 broadcast). */
#define NC_BF_AVX2_ATTR __attribute__((target("avx2,fma")))

static inline NC_BF_AVX2_ATTR __m256 nc_bf_half256(__m256i w, int h)
{
    return _mm256_castsi256_ps(h ? _mm256_slli_epi32(w, 16) : _mm256_and_si256(w, _mm256_set1_epi32((int)0xffff0000u)));
}

#define NC_BF_AVX2_MR 6
#define NC_BF_AVX2_NR 16
#define BF_NAME nc_bf_kernel_avx2
#define BF_ATTR NC_BF_AVX2_ATTR
#define BF_ACC __m256
#define BF_A __m256
#define BF_B __m256
#define BF_LANES 8
#define BF_MR NC_BF_AVX2_MR
#define BF_NV (NC_BF_AVX2_NR / 8)
#define BF_HALVES 2
#define BF_ZERO() _mm256_setzero_ps()
#define BF_LOADB(p, h) nc_bf_half256(_mm256_loadu_si256((const __m256i *)(const void *)(p)), (h))
#define BF_BCAST(a, i, h) _mm256_broadcast_ss((const float *)(const void *)((a) + (h) * BF_MR + (i)))
#define BF_ASTEP (2 * BF_MR)
#define BF_DP(acc, x, y) _mm256_fmadd_ps((x), (y), (acc))
#define BF_STORE(p, x) _mm256_storeu_ps((p), (x))
#define BF_KEEP(x) __asm__("" : "+x"(x)) /* all accumulators in registers (see int8_kernel.h) */
#include "bf16_dp.h"

/* AVX512_BF16: vdpbf16ps on whole pairs, zmm, 8 x 32 tiles */
#define NC_BF_AVX512_MR 8
#define NC_BF_AVX512_NR 32
#define BF_NAME nc_bf_kernel_avx512bf16
#define BF_ATTR __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx512bf16,avx2,fma")))
#define BF_ACC __m512
#define BF_A __m512bh
#define BF_B __m512bh
#define BF_LANES 16
#define BF_MR NC_BF_AVX512_MR
#define BF_NV (NC_BF_AVX512_NR / 16)
#define BF_HALVES 1
#define BF_ZERO() _mm512_setzero_ps()
#define BF_LOADB(p, h) ((__m512bh)_mm512_loadu_si512((const void *)(p)))
#define BF_BCAST(a, i, h) ((__m512bh)_mm512_set1_epi32((int)(a)[i]))
#define BF_ASTEP BF_MR
#define BF_DP(acc, x, y) _mm512_dpbf16_ps((acc), (x), (y))
#define BF_STORE(p, x) _mm512_storeu_ps((p), (x))
#define BF_KEEP(x) __asm__("" : "+v"(x))
#include "bf16_dp.h"
#endif /* NC_BF_X86 */

/* ---- which kernel runs ------------------------------------------------------------------------- */
typedef struct {
    const char *name;
    int mr, nr;
    int emulated; /* runs vdpbf16ps's arithmetic with FMAs: MXCSR FTZ + DAZ around it, and takes A
                     widened (each group: the odd elements' float32 bits, then the even ones') */
    int needs;    /* 0 any CPU; 1 the AVX2 level; 2 the AVX-512 level + AVX512_BF16 */
    nc_bf_kernel_fn kernel;
} nc_bf_variant;

static const nc_bf_variant nc_bf_variants[NC_BF16_COUNT] = {
    {"generic-emulated", NC_BF_GENERIC_MR, NC_BF_GENERIC_NR, 1, 0, nc_bf_kernel_generic},
#if NC_BF_X86
    {"avx2-emulated", NC_BF_AVX2_MR, NC_BF_AVX2_NR, 1, 1, nc_bf_kernel_avx2},
    {"avx512bf16", NC_BF_AVX512_MR, NC_BF_AVX512_NR, 0, 2, nc_bf_kernel_avx512bf16},
#else
    {"avx2-emulated", 0, 0, 0, 3, NULL},
    {"avx512bf16", 0, 0, 0, 3, NULL},
#endif
};

static int nc_bf_forced = -1; /* -1: the best available */

int nc_bf16_cpu_has_avx512bf16(void)
{
#if NC_BF_X86
    static int flag = -1;
    if (flag < 0) {
        unsigned a, b, c, d;
        int f = 0;
        if (__get_cpuid_max(0, NULL) >= 7) {
            __cpuid_count(7, 0, a, b, c, d);
            if (a >= 1) {
                __cpuid_count(7, 1, a, b, c, d);
                f = (int)((a >> 5) & 1); /* leaf 7.1 eax bit 5: AVX512_BF16 */
            }
        }
        flag = f;
    }
    return flag;
#else
    return 0;
#endif
}

int nc_bf16_kernel_available(int kernel)
{
    if (kernel < 0 || kernel >= NC_BF16_COUNT || !nc_bf_variants[kernel].kernel) return 0;
    int level = nc_active_simd_level();
    switch (nc_bf_variants[kernel].needs) {
    case 0: return 1;
    case 1: return level >= NC_SIMD_AVX2;
    case 2: return level >= NC_SIMD_AVX512 && nc_bf16_cpu_has_avx512bf16();
    default: return 0;
    }
}

int nc_bf16_kernel(void)
{
    if (nc_bf_forced >= 0 && nc_bf16_kernel_available(nc_bf_forced)) return nc_bf_forced;
    if (nc_bf16_kernel_available(NC_BF16_AVX512BF16)) return NC_BF16_AVX512BF16;
    if (nc_bf16_kernel_available(NC_BF16_AVX2_EMU)) return NC_BF16_AVX2_EMU;
    return NC_BF16_GENERIC_EMU;
}

void nc_bf16_set_kernel(int kernel) { nc_bf_forced = kernel < 0 || kernel >= NC_BF16_COUNT ? -1 : kernel; }

const char *nc_bf16_kernel_name(int kernel)
{
    return kernel >= 0 && kernel < NC_BF16_COUNT ? nc_bf_variants[kernel].name : "unknown";
}

/* MXCSR with FTZ (bit 15) and DAZ (bit 6) for an emulated kernel; returns the old value */
static inline unsigned nc_bf_csr_enter(int emulated)
{
#if NC_BF_X86
    unsigned old = _mm_getcsr();
    if (emulated) _mm_setcsr(old | 0x8040u);
    return old;
#else
    (void)emulated;
    return 0;
#endif
}

static inline void nc_bf_csr_leave(int emulated, unsigned old)
{
#if NC_BF_X86
    if (emulated) _mm_setcsr(old);
#else
    (void)emulated, (void)old;
#endif
}

/* ---- the driver -------------------------------------------------------------------------------- */
typedef struct {
    ptrdiff_t m, n, k;
    const float *A, *B; /* op(A)(i, p) = A[i sai + p sap], op(B)(p, j) = B[p sbp + j sbj] */
    ptrdiff_t sai, sap, sbp, sbj;
    float alpha, beta;
    float *C;
    ptrdiff_t ldc;
    const float *bias;
    int act;
    float act_alpha;
    int round_out;
} nc_bf_job;

/* Packing reads each operand along its contiguous axis, converting whole lines to pair words
 * (long loops the compiler vectorizes), then scatters the words into the micro-panels. */

/* w[j] = bf(x0[j]) | bf(x1[j]) << 16 for j < n (x1 NULL: zero high halves): two rows of pairs */
static void nc_bf_pairs_rows(const float *x0, const float *x1, ptrdiff_t n, uint32_t *w)
{
    if (!x1) {
#pragma omp simd
        for (ptrdiff_t j = 0; j < n; j++) w[j] = nc_bf_bits(x0[j]);
        return;
    }
#pragma omp simd
    for (ptrdiff_t j = 0; j < n; j++) w[j] = nc_bf_bits(x0[j]) | nc_bf_bits(x1[j]) << 16;
}

/* w[q] = bf(x[2q]) | bf(x[2q + 1]) << 16 for q < (k + 1) / 2 (x[k] taken as zero): a line of pairs */
static void nc_bf_pairs_line(const float *x, ptrdiff_t k, uint32_t *w)
{
    ptrdiff_t kh = k / 2;
#pragma omp simd
    for (ptrdiff_t q = 0; q < kh; q++) w[q] = nc_bf_bits(x[2 * q]) | nc_bf_bits(x[2 * q + 1]) << 16;
    if (k & 1) w[kh] = nc_bf_bits(x[k - 1]);
}

/* Pair word w of row r of the A panel at `panel`, group q: as is, or widened (odd, then even floats). */
static inline void nc_bf_put_a(uint32_t *panel, ptrdiff_t q, int r, int mr, int widened, uint32_t w)
{
    if (widened)
        panel[q * 2 * mr + r] = w & 0xffff0000u, panel[q * 2 * mr + mr + r] = w << 16;
    else
        panel[q * mr + r] = w;
}

/* Rows [i0, i0 + rows) of op(A) into panels of mr rows, each kq groups of mr pair words (the even
 * element low) or, widened, 2 mr words: bf(odd) << 16 of the mr rows, then bf(even) << 16 (the
 * emulations broadcast each as a float32 straight from memory); rows past `rows` zero. `ap` holds
 * astep = kq or 2 kq words a row; tmp max(rows, kq) words. */
static void nc_bf_pack_a(const nc_bf_job *J, ptrdiff_t i0, ptrdiff_t rows, int mr, int widened, ptrdiff_t kq,
                         uint32_t *ap, uint32_t *tmp)
{
    ptrdiff_t k = J->k, astep = widened ? 2 * kq : kq, padded = (rows + mr - 1) / mr * mr;
    memset(ap + rows / mr * mr * astep, 0, (size_t)((padded - rows / mr * mr) * astep) * sizeof(uint32_t));
    if (J->sap == 1) {                 /* rows of A contiguous along k */
        for (ptrdiff_t i = 0; i < rows; i++) {
            nc_bf_pairs_line(J->A + (i0 + i) * J->sai, k, tmp);
            uint32_t *panel = ap + i / mr * mr * astep;
            for (ptrdiff_t q = 0; q < kq; q++) nc_bf_put_a(panel, q, (int)(i % mr), mr, widened, tmp[q]);
        }
        return;
    }
    for (ptrdiff_t q = 0; q < kq; q++) { /* op(A) = A^T: the pair rows 2q, 2q + 1 contiguous along m */
        const float *a0 = J->A + 2 * q * J->sap + i0;
        nc_bf_pairs_rows(a0, 2 * q + 1 < k ? a0 + J->sap : NULL, rows, tmp);
        for (ptrdiff_t i = 0; i < rows; i++)
            nc_bf_put_a(ap + i / mr * mr * astep, q, (int)(i % mr), mr, widened, tmp[i]);
    }
}

/* Columns [j0, j0 + cols) of op(B) into NR-column panels of kq groups of nr pair words (columns past
 * `cols` zero); tmp max(cols, kq) words. */
static void nc_bf_pack_b(const nc_bf_job *J, ptrdiff_t j0, ptrdiff_t cols, int nr, ptrdiff_t kq, uint32_t *dst,
                         uint32_t *tmp)
{
    ptrdiff_t k = J->k, npan = (cols + nr - 1) / nr, last = (npan - 1) * nr;
    if (npan == 0) return;
    memset(dst + (npan - 1) * kq * nr, 0, (size_t)(kq * nr) * sizeof(uint32_t));
    if (J->sbj == 1) {                 /* rows of B contiguous along n */
        for (ptrdiff_t q = 0; q < kq; q++) {
            const float *b0 = J->B + 2 * q * J->sbp + j0;
            nc_bf_pairs_rows(b0, 2 * q + 1 < k ? b0 + J->sbp : NULL, cols, tmp);
            for (ptrdiff_t jp = 0; jp < npan; jp++)
                memcpy(dst + jp * kq * nr + q * nr, tmp + jp * nr,
                       (size_t)(jp * nr == last ? cols - last : nr) * sizeof(uint32_t));
        }
        return;
    }
    for (ptrdiff_t j = 0; j < cols; j++) { /* op(B) = B^T: column j of op(B) contiguous along k */
        nc_bf_pairs_line(J->B + (j0 + j) * J->sbj, k, tmp);
        uint32_t *d = dst + j / nr * kq * nr + j % nr;
        for (ptrdiff_t q = 0; q < kq; q++) d[q * nr] = tmp[q];
    }
}

/* C(i0 + i, j0 + j) from the finished tile t (row stride ldt): the epilogue, one piece of C for every kernel. */
static void nc_bf_store(const nc_bf_job *J, const float *t, int ldt, ptrdiff_t i0, ptrdiff_t j0, int mi, int nj)
{
    for (int i = 0; i < mi; i++) {
        float *c = J->C + (i0 + i) * J->ldc + j0;
        const float *ti = t + i * ldt;
        if (J->beta != 0.0f)
            for (int j = 0; j < nj; j++) c[j] = J->alpha * ti[j] + J->beta * c[j];
        else
            for (int j = 0; j < nj; j++) c[j] = J->alpha * ti[j];
        if (J->bias)
            for (int j = 0; j < nj; j++) c[j] += J->bias[j0 + j];
        if (J->act) nc_act_forward_f32(J->act, J->act_alpha, c, c, nj);
        if (J->round_out) nc_bf16_round_f32(c, c, nj);
    }
}

static ptrdiff_t nc_bf_cut(ptrdiff_t len, int parts, int part, int unit)
{
    ptrdiff_t units = (len + unit - 1) / unit, at = units * part / parts * unit;
    return at < len ? at : len;
}

/* One thread's block C[r0:r1, c0:c1]: B packed once (all of k), then A block by block.
 * 0, or -1 when out of memory. */
static int nc_bf_region(const nc_bf_job *J, const nc_bf_variant *V, ptrdiff_t r0, ptrdiff_t r1, ptrdiff_t c0,
                        ptrdiff_t c1)
{
    const int mr = V->mr, nr = V->nr;
    ptrdiff_t kq = (J->k + 1) / 2, ncol = c1 - c0, npan = (ncol + nr - 1) / nr;
    ptrdiff_t rows = (r1 - r0 + mr - 1) / mr * mr;
    ptrdiff_t mc = NC_BF_A_BYTES / (8 * kq + 4) / mr * mr;
    if (mc < mr) mc = mr;
    if (mc > rows) mc = rows;
    ptrdiff_t astep = V->emulated ? 2 * kq : kq; /* words of A per row */
    ptrdiff_t twords = ncol > kq ? ncol : kq;
    if (twords < mc) twords = mc;
    size_t bwords = (size_t)(npan * nr * kq), awords = (size_t)(mc * astep);
    uint32_t *mem = (uint32_t *)malloc((bwords + awords + (size_t)twords + 16) * sizeof(uint32_t));
    if (!mem) return -1;
    uint32_t *bp = (uint32_t *)(((uintptr_t)mem + 63) / 64 * 64), *ap = bp + bwords, *tmp = ap + awords;
    float tile[NC_BF_TILE_MAX];
    nc_bf_pack_b(J, c0, ncol, nr, kq, bp, tmp);
    for (ptrdiff_t ic = r0; ic < r1; ic += mc) {
        ptrdiff_t mci = r1 - ic < mc ? r1 - ic : mc;
        nc_bf_pack_a(J, ic, mci, mr, V->emulated, kq, ap, tmp);
        for (ptrdiff_t jp = 0; jp < npan; jp++) {
            int nj = (int)(ncol - jp * nr < nr ? ncol - jp * nr : nr);
            for (ptrdiff_t ir = 0; ir < mci; ir += mr) {
                unsigned csr = nc_bf_csr_enter(V->emulated);
                V->kernel(kq, ap + ir * astep, bp + jp * kq * nr, tile);
                nc_bf_csr_leave(V->emulated, csr);
                nc_bf_store(J, tile, nr, ic + ir, c0 + jp * nr, (int)(mci - ir < mr ? mci - ir : mr), nj);
            }
        }
    }
    free(mem);
    return 0;
}

int nc_gemm_bf16(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, float alpha, const float *A,
                 ptrdiff_t lda, const float *B, ptrdiff_t ldb, float beta, float *C, ptrdiff_t ldc,
                 const float *bias, int act, float act_alpha, int round_out, int nthreads)
{
    nc_bf_job J;
    J.m = m, J.n = n, J.k = k, J.A = A, J.B = B;
    J.sai = trans_a ? 1 : lda, J.sap = trans_a ? lda : 1;
    J.sbp = trans_b ? 1 : ldb, J.sbj = trans_b ? ldb : 1;
    J.alpha = alpha, J.beta = beta, J.C = C, J.ldc = ldc, J.bias = bias, J.act = act, J.act_alpha = act_alpha;
    J.round_out = round_out;
    const nc_bf_variant *V = &nc_bf_variants[nc_bf16_kernel()];
    if (m <= 0 || n <= 0) return 0;
    double work = (double)m * (double)n * (double)(k > 0 ? k : 1);
    int nt = work < NC_BF_TEAM_WORK ? 1 : nc_team_size(nthreads, 2.0 * work);
    ptrdiff_t mt = (m + V->mr - 1) / V->mr, ntiles = mt * ((n + V->nr - 1) / V->nr);
    if (nt > ntiles) nt = (int)ntiles;
    if (nt <= 1) return nc_bf_region(&J, V, 0, m, 0, n);
    int err = 0;
#pragma omp parallel num_threads(nt) reduction(| : err)
    {
        int T = omp_get_num_threads(), t = omp_get_thread_num();
        ptrdiff_t r0 = 0, r1 = m, c0 = 0, c1 = n;
        if (mt >= T)
            r0 = nc_bf_cut(m, T, t, V->mr), r1 = nc_bf_cut(m, T, t + 1, V->mr);
        else
            c0 = nc_bf_cut(n, T, t, V->nr), c1 = nc_bf_cut(n, T, t + 1, V->nr);
        if (r1 > r0 && c1 > c0) err |= nc_bf_region(&J, V, r0, r1, c0, c1);
    }
    return err;
}
