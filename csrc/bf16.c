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
#include "tiles.h"
#include "bf16_round.h"
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__) && !defined(NNCORE_GENERIC_ONLY)
#define NC_BF_X86 1
#include <cpuid.h>
#include <immintrin.h>
#else
#define NC_BF_X86 0
#endif

/* Bytes of packed A per block of rows (its micro-panels go to L1 one at a time). */
#define NC_BF_A_BYTES (128 * 1024)
/* Pair groups of k per block: the block of op(B) stays in L2 while a row of tiles passes (NC_BF_KQ x n
 * words: 768 KiB at n = 1024; 128 and 256 were no better on the large row's products). */
#define NC_BF_KQ 192
/* Pair rows of a row-major op(B) converted at a time while packing it (whole rows: long, in-order reads) */
#define NC_BF_QCHUNK 8
/* The largest MR x NR of the kernels (8 x 32). */
#define NC_BF_TILE_MAX 256
/* Below this many multiply-adds one thread does it all. */
#define NC_BF_TEAM_WORK (128.0 * 128.0 * 128.0)

/* ---- float32 <-> bfloat16: nc_bf_bits, nc_bf_round (bf16_round.h) ------------------------------ */

/* ---- the micro-kernels ------------------------------------------------------------------------- */
/* t (MR x NR, row stride ldt) := (init ? t : 0) + the sum over kq pair groups */
typedef void (*nc_bf_kernel_fn)(ptrdiff_t kq, const uint32_t *a, const uint32_t *b, float *t, ptrdiff_t ldt,
                                int init);

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
static inline nc_bf_v8 nc_bf_load8(const float *p)
{
    nc_bf_v8 v;
    memcpy(v.l, p, sizeof v.l);
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
#define BF_LOAD(p) nc_bf_load8(p)
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
#define BF_LOAD(p) _mm256_loadu_ps(p)
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
#define BF_LOAD(p) _mm512_loadu_ps(p)
#define BF_STORE(p, x) _mm512_storeu_ps((p), (x))
#define BF_KEEP(x) __asm__("" : "+v"(x))
#include "bf16_dp.h"

/* vcvtneps2bf16 is the SDM's convert_fp32_to_bfloat16 itself (nc_bf_bits' function: the same bits), 16
 * floats an instruction: the conversions of the packing and the epilogue's rounding where it runs. */
#define NC_BF_HW_ATTR __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx512bf16,avx2,fma")))

static inline NC_BF_HW_ATTR __m256i nc_bf_cvt16(__m512 x) { return (__m256i)_mm512_cvtneps_pbh(x); }

static NC_BF_HW_ATTR void nc_bf_from_hw(const float *x, uint16_t *y, ptrdiff_t n)
{
    ptrdiff_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256i a = nc_bf_cvt16(_mm512_loadu_ps(x + i)), b = nc_bf_cvt16(_mm512_loadu_ps(x + i + 16));
        _mm256_storeu_si256((__m256i *)(void *)(y + i), a);
        _mm256_storeu_si256((__m256i *)(void *)(y + i + 16), b);
    }
    for (; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        _mm256_mask_storeu_epi16(y + i, m, nc_bf_cvt16(_mm512_maskz_loadu_ps(m, x + i)));
    }
}

/* nc_bf_round_hw (the rounding as float32 values by the same instruction): bf16_round.h */
#endif /* NC_BF_X86 */

/* ---- which kernel runs ------------------------------------------------------------------------- */
typedef struct {
    const char *name;
    int mr, nr;
    int emulated; /* runs vdpbf16ps's arithmetic with FMAs: MXCSR FTZ + DAZ around it, and takes A
                     widened (each group: the odd elements' float32 bits, then the even ones') */
    int needs;    /* 0 any CPU; 1 the AVX2 level; 2 the AVX-512 level + AVX512_BF16 */
    nc_bf_kernel_fn kernel;
    /* the conversions on the kernel's instruction set (NULL: the SIMD level's loops of nc_bf_bits) */
    void (*from)(const float *x, uint16_t *y, ptrdiff_t n);   /* y = bf(x) as bits */
    void (*round)(const float *x, float *y, ptrdiff_t n);     /* y = bf(x) as float32, in place allowed */
} nc_bf_variant;

static const nc_bf_variant nc_bf_variants[NC_BF16_COUNT] = {
    {"generic-emulated", NC_BF_GENERIC_MR, NC_BF_GENERIC_NR, 1, 0, nc_bf_kernel_generic, NULL, NULL},
#if NC_BF_X86
    {"avx2-emulated", NC_BF_AVX2_MR, NC_BF_AVX2_NR, 1, 1, nc_bf_kernel_avx2, NULL, NULL},
    {"avx512bf16", NC_BF_AVX512_MR, NC_BF_AVX512_NR, 0, 2, nc_bf_kernel_avx512bf16, nc_bf_from_hw, nc_bf_round_hw},
#else
    {"avx2-emulated", 0, 0, 0, 3, NULL, NULL, NULL},
    {"avx512bf16", 0, 0, 0, 3, NULL, NULL, NULL},
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

/* y = bf(x) as bits on V's conversion (the same bits on every one) */
static void nc_bf_from(const nc_bf_variant *V, const float *x, uint16_t *y, ptrdiff_t n)
{
    if (V->from) {
        V->from(x, y, n);
        return;
    }
#pragma omp simd
    for (ptrdiff_t i = 0; i < n; i++) y[i] = (uint16_t)nc_bf_bits(x[i]);
}

/* The public conversions, on the conversions of the kernel in use */
void nc_bf16_from_f32(const float *x, uint16_t *y, ptrdiff_t n) { nc_bf_from(&nc_bf_variants[nc_bf16_kernel()], x, y, n); }

void nc_bf16_round_f32(const float *x, float *y, ptrdiff_t n)
{
    const nc_bf_variant *V = &nc_bf_variants[nc_bf16_kernel()];
    if (V->round) {
        V->round(x, y, n);
        return;
    }
#pragma omp simd
    for (ptrdiff_t i = 0; i < n; i++) y[i] = nc_bf_round(x[i]);
}

/* MXCSR with FTZ (bit 15) and DAZ (bit 6) for an emulated kernel; returns the old value */
static inline unsigned nc_bf_csr_enter(int emulated)
{
#if NC_BF_X86
    if (!emulated) return 0;
    unsigned old = _mm_getcsr();
    _mm_setcsr(old | 0x8040u);
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
    const nc_bf_variant *V; /* the micro-kernel and its conversions */
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

/* How a product is cut (bf16_body.h, bf_region) */
typedef struct {
    ptrdiff_t kb, kqb, mc, lds; /* blocks of k, pair groups per block, rows per block of A, S's row stride */
    ptrdiff_t npan;             /* NR-column panels of op(B) */
    uint32_t *bp;               /* op(B) packed, the team's: block of k at pair group q0 from bp + q0 npan NR,
                                   its panels of qn groups one after the other */
    float *S;                   /* the sums between blocks of k, S(i, j) = S[i lds + j] (C or a matrix) */
    int team;                   /* more than one thread: barriers around the packing of B */
} nc_bf_plan;

/* The epilogue's float32 operations are the same bits at every level: no FMA contraction there. */
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif
#define NC_LEVELS_BODY "bf16_body.h"
#define NC_F32
#include "real.h"
#include "simd_levels.h"
#include "real_undef.h"

/* ---- op(B) packed once, A read in place a micro-panel at a time: the fused recurrent step loops -------
 * (csrc/gemm_rnn_body.h under mixed_bfloat16). The packed buffer (float32 words holding pair words) opens
 * with a head of 64 bytes: a tag, the kernel it was packed for, k and n; then the NR-column panels of
 * op(B), each (k + 1) / 2 groups of NR pair words (the even element of k low; columns past n and the
 * pair element past k zero), as the GEMM's packing lays them. nc_bf16_panels runs on the calling thread
 * (the step loops run their row blocks on a team of their own): each micro-panel of A's rows is converted
 * to pair words (widened for the emulations) and multiplied by every panel of B, the whole k in registers,
 * C := (accumulate ? C : 0) + the chain: the same bits on every kernel and for any rows a call takes. */
#define NC_BF_PACK_HEAD 16
#define NC_BF_PACK_TAG 0x6e636270LL /* "ncbp" */

ptrdiff_t nc_bf16_pack_size(ptrdiff_t k, ptrdiff_t n)
{
    const nc_bf_variant *V = &nc_bf_variants[nc_bf16_kernel()];
    ptrdiff_t kq = (k > 0 ? k + 1 : 0) / 2, npan = ((n > 0 ? n : 0) + V->nr - 1) / V->nr;
    return NC_BF_PACK_HEAD + kq * npan * V->nr;
}

void nc_bf16_pack(int trans_b, ptrdiff_t k, ptrdiff_t n, const float *B, ptrdiff_t ldb, float *packed)
{
    int kernel = nc_bf16_kernel();
    const nc_bf_variant *V = &nc_bf_variants[kernel];
    int64_t head[4] = {NC_BF_PACK_TAG, kernel, k, n};
    memcpy(packed, head, sizeof head);
    ptrdiff_t nr = V->nr, kq = (k > 0 ? k + 1 : 0) / 2, npan = ((n > 0 ? n : 0) + nr - 1) / nr;
    uint32_t *dst = (uint32_t *)(void *)(packed + NC_BF_PACK_HEAD);
    uint32_t *row = trans_b ? (uint32_t *)malloc((size_t)(kq + 1) * sizeof(uint32_t)) : NULL;
    if (row) { /* op(B) = B^T: column j of op(B) is row j of B, converted at once; its words are the pairs */
        uint16_t *row16 = (uint16_t *)(void *)row;
        for (ptrdiff_t j = 0; j < npan * nr; j++) {
            ptrdiff_t p = j / nr, c = j % nr;
            if (j < n) {
                nc_bf_from(V, B + j * ldb, row16, k);
                row16[k] = 0;
            }
            for (ptrdiff_t q = 0; q < kq; q++) dst[(p * kq + q) * nr + c] = j < n ? row[q] : 0;
        }
        free(row);
        return;
    }
    for (ptrdiff_t p = 0; p < npan; p++)
        for (ptrdiff_t q = 0; q < kq; q++)
            for (ptrdiff_t c = 0; c < nr; c++) {
                ptrdiff_t j = p * nr + c, k0 = 2 * q;
                uint32_t lo = 0, hi = 0;
                if (j < n) {
                    lo = nc_bf_bits(trans_b ? B[j * ldb + k0] : B[k0 * ldb + j]);
                    if (k0 + 1 < k) hi = nc_bf_bits(trans_b ? B[j * ldb + k0 + 1] : B[(k0 + 1) * ldb + j]);
                }
                dst[(p * kq + q) * nr + c] = lo | hi << 16;
            }
}

int nc_bf16_packed_ok(const float *packed, ptrdiff_t k, ptrdiff_t n)
{
    int64_t head[4];
    memcpy(head, packed, sizeof head);
    return head[0] == NC_BF_PACK_TAG && head[1] == nc_bf16_kernel() && head[2] == k && head[3] == n;
}

void nc_bf16_tile(int *mr, int *nr)
{
    const nc_bf_variant *V = &nc_bf_variants[nc_bf16_kernel()];
    *mr = V->mr, *nr = V->nr;
}

ptrdiff_t nc_bf16_panels_work(ptrdiff_t k)
{
    ptrdiff_t kq = (k > 0 ? k + 1 : 0) / 2;
    return kq * 2 * nc_bf_variants[nc_bf16_kernel()].mr + kq + 1;   /* the A panel, a row's pairs */
}

void nc_bf16_panels(ptrdiff_t rows, ptrdiff_t n, ptrdiff_t k, const float *A, ptrdiff_t lda, const float *packed,
                    int accumulate, float *C, ptrdiff_t ldc, uint32_t *ap)
{
    const nc_bf_variant *V = &nc_bf_variants[nc_bf16_kernel()];
    if (rows <= 0 || n <= 0) return;
    ptrdiff_t mr = V->mr, nr = V->nr, kq = (k > 0 ? k + 1 : 0) / 2, npan = (n + nr - 1) / nr;
    ptrdiff_t step = V->emulated ? 2 * mr : mr;
    float t[NC_BF_TILE_MAX];
    const uint32_t *bp = (const uint32_t *)(const void *)(packed + NC_BF_PACK_HEAD);
    uint32_t *row = ap + kq * 2 * mr;           /* a row of A as bfloat16, read as kq pair words */
    uint16_t *row16 = (uint16_t *)(void *)row;
    unsigned csr = nc_bf_csr_enter(V->emulated);
    for (ptrdiff_t r0 = 0; r0 < rows; r0 += mr) {
        ptrdiff_t mi = rows - r0 < mr ? rows - r0 : mr;
        /* the panel's rows as pair words: group q at ap + q step, row r at r (widened: the odd element's
         * float32 bits at r, the even one's at mr + r); rows past mi zero */
        for (ptrdiff_t r = 0; r < mr; r++) {
            if (r < mi) {
                nc_bf_from(V, A + (r0 + r) * lda, row16, k);
                row16[k] = 0;                    /* the pair element past an odd k */
            } else {
                memset(row, 0, (size_t)kq * sizeof(uint32_t));
            }
            if (V->emulated) {
                for (ptrdiff_t q = 0; q < kq; q++)
                    ap[q * step + r] = row[q] & 0xffff0000u, ap[q * step + mr + r] = row[q] << 16;
            } else {
                for (ptrdiff_t q = 0; q < kq; q++) ap[q * step + r] = row[q];
            }
        }
        for (ptrdiff_t p = 0; p < npan; p++) {
            ptrdiff_t ni = n - p * nr < nr ? n - p * nr : nr;
            float *c = C + r0 * ldc + p * nr;
            if (mi == mr && ni == nr) {
                V->kernel(kq, ap, bp + p * kq * nr, c, ldc, accumulate);
                continue;
            }
            for (ptrdiff_t r = 0; r < mr; r++)          /* an edge tile: through t */
                for (ptrdiff_t j = 0; j < nr; j++) t[r * nr + j] = accumulate && r < mi && j < ni ? c[r * ldc + j] : 0;
            V->kernel(kq, ap, bp + p * kq * nr, t, nr, accumulate);
            for (ptrdiff_t r = 0; r < mi; r++)
                for (ptrdiff_t j = 0; j < ni; j++) c[r * ldc + j] = t[r * nr + j];
        }
    }
    nc_bf_csr_leave(V->emulated, csr);
}
