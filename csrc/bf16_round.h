/* bf16_round.h -- float32 -> bfloat16 rounding, shared by the bf16 GEMM (bf16.c) and the kernels that
 * round their operands or results to bfloat16 themselves (winograd.c under mixed_bfloat16).
 *
 * nc_bf_bits(x) is the SDM's convert_fp32_to_bfloat16 (VCVTNEPS2BF16), branch-free so that loops
 * over it vectorize: round to nearest even, zero and denormals to signed zero, infinities kept, NaN
 * made quiet. nc_bf_round(x) is that bfloat16 value as a float32 (its low 16 bits zero). */
#ifndef NC_BF16_ROUND_H
#define NC_BF16_ROUND_H
#include <stddef.h>
#include <stdint.h>
#include <string.h>

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

static inline uint32_t nc_bf_bits(float x)
{
    uint32_t u = nc_bf_u32(x), e = u & 0x7f800000u;
    uint32_t normal = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;       /* round to nearest even */
    uint32_t special = (u >> 16) | ((u & 0x007fffffu) ? 0x40u : 0u); /* inf as is, NaN made quiet */
    return e == 0 ? (u >> 16) & 0x8000u : e == 0x7f800000u ? special : normal;
}

/* nc_bf_bits(x) << 16 as a float32, on the 32-bit pattern (fewer vector operations: 1.5x faster in loops;
 * the same bits for all 2^32 inputs, checked) */
static inline float nc_bf_round(float x)
{
    uint32_t u = nc_bf_u32(x), a = u & 0x7fffffffu;
    uint32_t normal = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;      /* nearest even; inf stays inf */
    uint32_t r = a > 0x7f800000u ? (u | 0x00400000u) & 0xffff0000u : normal; /* NaN made quiet */
    return nc_bf_f32(a < 0x00800000u ? u & 0x80000000u : r);                /* zero, denormals: signed zero */
}

/* The same rounding by the instruction itself on CPUs with AVX512_BF16 (VCVTNEPS2BF16 is the SDM's
 * convert_fp32_to_bfloat16: the same bits as nc_bf_round), 16 values an instruction; y may be x. For the
 * AVX-512 copies of the kernels, where nc_bf16_cpu_has_avx512bf16() says the CPU has it. */
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__) && !defined(NNCORE_GENERIC_ONLY)
#include <immintrin.h>
#define NC_BF_HW 1
int nc_bf16_cpu_has_avx512bf16(void);
/* rows rows of n values: row i at x + i xs, rounded into y + i ys (a tile of C, a transform's chunk: one
 * call for all of them, so a short row costs no call of its own) */
static __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx512bf16"), unused)) void
nc_bf_round_rows_hw(const float *x, ptrdiff_t xs, float *y, ptrdiff_t ys, ptrdiff_t rows, ptrdiff_t n)
{
    for (ptrdiff_t r = 0; r < rows; r++, x += xs, y += ys)
        for (ptrdiff_t i = 0; i < n; i += 16) {
            const __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1u);
            const __m256i h = (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, x + i));
            _mm512_mask_storeu_ps(y + i, m, _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)));
        }
}
static __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx512bf16"), unused)) void
nc_bf_round_hw(const float *x, float *y, ptrdiff_t n)
{
    nc_bf_round_rows_hw(x, 0, y, 0, 1, n);
}
#else
#define NC_BF_HW 0
#endif

/* y + i ys := nc_bf_round(x + i xs) over rows rows of n floats (y may be x), for the kernels that round their
 * own operands or results (nc_act_* under NC_ACT_BF16, the GEMM's tile epilogue, Winograd's bf16 form): by
 * the instruction when hw (a constant of the caller: its AVX-512 copy) and the CPU has AVX512_BF16 (one
 * call for all the rows), else a loop that vectorizes on the caller's level (always inlined into it). The
 * same bits either way. */
#if defined(__GNUC__) || defined(__clang__)
static inline __attribute__((always_inline)) void nc_bf_round_rows(const float *x, ptrdiff_t xs, float *y,
                                                                   ptrdiff_t ys, ptrdiff_t rows, ptrdiff_t n, int hw)
#else
static inline void nc_bf_round_rows(const float *x, ptrdiff_t xs, float *y, ptrdiff_t ys, ptrdiff_t rows,
                                    ptrdiff_t n, int hw)
#endif
{
#if NC_BF_HW
    if (hw && nc_bf16_cpu_has_avx512bf16()) {
        nc_bf_round_rows_hw(x, xs, y, ys, rows, n);
        return;
    }
#else
    (void)hw;
#endif
    for (ptrdiff_t r = 0; r < rows; r++) {
        const float *xr = x + r * xs;
        float *yr = y + r * ys;
#pragma omp simd
        for (ptrdiff_t i = 0; i < n; i++) yr[i] = nc_bf_round(xr[i]);
    }
}

/* y = nc_bf_round(x) over n floats (y may be x): nc_bf_round_rows of one row */
#define nc_bf_round_n(x, y, n, hw) nc_bf_round_rows((x), 0, (y), 0, 1, (n), (hw))
#endif
