/* int8_kernel.h -- the packing routines and micro-kernels of the int8 GEMM,
 * one micro-kernel per variant of enum nc_int8_kernel. Integer-only (no REAL);
 * included once by int8.c.
 *
 * Operands, k padded to 4 kg (kg groups of 4):
 *   A  rows of bytes, row i at a + i lda: A(i, 4g .. 4g + 3) is the word at
 *      a + i lda + 4g (the word a micro-kernel broadcasts), so the quantizer
 *      writes A straight in the kernel's form and nothing is packed. The
 *      kernels with an unsigned A operand read A + o (o = 64 or 128, the
 *      variant's offset) as bytes; the padding past k holds any byte (B's is zero).
 *   B  micro-panels of NR columns; group g holds NR words, column j's
 *      B(4g .. 4g + 3, j) in one word: the 4 products one 32-bit lane of
 *      vpmaddubsw + vpmaddwd or of vpdpbusd sums. Columns past n are zero.
 *      With an offset, corr[j] = o sum_p B(p, j) (mod 2^32) is subtracted at the end.
 *
 * Every micro-kernel computes a whole MR x NR tile over all kg groups and
 * stores t[i NR + j] = sum_p A(i, p) B(p, j) as int32 (the driver keeps the
 * part inside C). The sums are exact (see int8.c for the bounds), so every
 * variant gives the same int32 tile, whatever its order of additions. */

typedef void (*nc_i8_kernel_fn)(ptrdiff_t kg, const uint8_t *a, ptrdiff_t lda, const uint8_t *b,
                                const uint32_t *corr, int32_t *t);

/* uint32 -> int32 two's complement (the value mod 2^32 in [-2^31, 2^31)) */
static inline int32_t nc_i8_s32(uint32_t u)
{
    return u < 0x80000000u ? (int32_t)u : (int32_t)(u - 0x80000000u) - 0x7fffffff - 1;
}

static inline uint32_t nc_i8_word(const uint8_t *p) /* 4 bytes, little-endian */
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---- packing -------------------------------------------------------------------------------- */

/* corr[j] = o sum_p B(p, j) mod 2^32 for the n columns, zero up to a whole panel. */
static void nc_i8_corr(const int8_t *B, ptrdiff_t ldb, ptrdiff_t k, ptrdiff_t n, ptrdiff_t npad, uint32_t o,
                       uint32_t *corr)
{
    for (ptrdiff_t j = 0; j < npad; j++) corr[j] = 0;
    for (ptrdiff_t p = 0; p < k; p++) {
        const int8_t *row = B + p * ldb;
#pragma omp simd
        for (ptrdiff_t j = 0; j < n; j++) corr[j] += (uint32_t)(int32_t)row[j];
    }
    for (ptrdiff_t j = 0; j < n; j++) corr[j] *= o;
}

/* B (k x n, row stride ldb) into NR-column micro-panels, plain C. */
static void nc_i8_pack_b_c(const int8_t *B, ptrdiff_t ldb, ptrdiff_t k, ptrdiff_t n, int nr, uint8_t *dst)
{
    ptrdiff_t kg = (k + 3) / 4;
    for (ptrdiff_t j0 = 0; j0 < n; j0 += nr)
        for (ptrdiff_t g = 0; g < kg; g++)
            for (int j = 0; j < nr; j++)
                for (int t = 0; t < 4; t++, dst++) {
                    ptrdiff_t p = 4 * g + t, col = j0 + j;
                    *dst = p < k && col < n ? (uint8_t)B[p * ldb + col] : 0;
                }
}

#if NC_I8_X86
/* The same with SSE2 byte interleaves for 4 rows x 16 columns at a time (the
 * x86 variants; SSE2 is in every x86-64 CPU): rows r0..r3 of 16 bytes become
 * 16 words (r0[j], r1[j], r2[j], r3[j]). Edges go through the plain C loop. */
static void nc_i8_pack_b_x86(const int8_t *B, ptrdiff_t ldb, ptrdiff_t k, ptrdiff_t n, int nr, uint8_t *dst)
{
    ptrdiff_t kg = (k + 3) / 4, kfull = k / 4;
    for (ptrdiff_t j0 = 0; j0 < n; j0 += nr, dst += kg * nr * 4) {
        if (j0 + nr > n) { /* the last, partial panel */
            nc_i8_pack_b_c(B + j0, ldb, k, n - j0, nr, dst);
            continue;
        }
        for (ptrdiff_t g = 0; g < kg; g++) {
            uint8_t *d = dst + g * nr * 4;
            if (g == kfull) { /* k % 4 rows left: pad with zero rows */
                for (int j = 0; j < nr; j++)
                    for (int t = 0; t < 4; t++) {
                        ptrdiff_t p = 4 * g + t;
                        d[4 * j + t] = p < k ? (uint8_t)B[p * ldb + j0 + j] : 0;
                    }
                continue;
            }
            const int8_t *src = B + 4 * g * ldb + j0;
            for (int j = 0; j < nr; j += 16) {
                __m128i r0 = _mm_loadu_si128((const __m128i *)(src + j));
                __m128i r1 = _mm_loadu_si128((const __m128i *)(src + ldb + j));
                __m128i r2 = _mm_loadu_si128((const __m128i *)(src + 2 * ldb + j));
                __m128i r3 = _mm_loadu_si128((const __m128i *)(src + 3 * ldb + j));
                __m128i lo01 = _mm_unpacklo_epi8(r0, r1), hi01 = _mm_unpackhi_epi8(r0, r1);
                __m128i lo23 = _mm_unpacklo_epi8(r2, r3), hi23 = _mm_unpackhi_epi8(r2, r3);
                _mm_storeu_si128((__m128i *)(d + 4 * j), _mm_unpacklo_epi16(lo01, lo23));
                _mm_storeu_si128((__m128i *)(d + 4 * j + 16), _mm_unpackhi_epi16(lo01, lo23));
                _mm_storeu_si128((__m128i *)(d + 4 * j + 32), _mm_unpacklo_epi16(hi01, hi23));
                _mm_storeu_si128((__m128i *)(d + 4 * j + 48), _mm_unpackhi_epi16(hi01, hi23));
            }
        }
    }
}
#endif

/* ---- generic C: MR 4, NR 8 ------------------------------------------------------------------ */
#define NC_I8_GENERIC_MR 4
#define NC_I8_GENERIC_NR 8

static void nc_i8_kernel_generic(ptrdiff_t kg, const uint8_t *a, ptrdiff_t lda, const uint8_t *b,
                                 const uint32_t *corr, int32_t *t)
{
    enum { MR = NC_I8_GENERIC_MR, NR = NC_I8_GENERIC_NR };
    int32_t acc[MR][NR] = {{0}};
    (void)corr;
    for (ptrdiff_t g = 0; g < kg; g++, a += 4, b += 4 * NR)
        for (int i = 0; i < MR; i++)
            for (int j = 0; j < NR; j++)
                for (int q = 0; q < 4; q++)
                    acc[i][j] += (int32_t)(int8_t)a[i * lda + q] * (int32_t)(int8_t)b[4 * j + q];
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++) t[i * NR + j] = acc[i][j];
}

#if NC_I8_X86
/* ---- AVX2, two kernels, MR 4, NR 16 ----------------------------------------------------------
 * vpmaddubsw multiplies unsigned bytes by signed bytes and adds adjacent pairs
 * into int16 WITH SATURATION; vpmaddwd by ones then adds adjacent int16 pairs
 * into int32 exactly. Each kernel keeps every pair sum below 2^15 in magnitude:
 *
 * avx2 (FBGEMM's way, 7-bit activations): A holds x + 64 with |x| <= 63, so
 *   the unsigned operand is 1..127 and B's byte -128..127: a product is at
 *   most 127 * 128 = 16256, a pair at most 32512 < 32767. No saturation; the
 *   lanes hold sum (x + 64) B, and corr = 64 sum B takes the offset away.
 *   3 vector operations per 32 multiply-adds (2 on the multiply pipes).
 * avx2-sign (Keras's 8-bit activations, |x| <= 127): the unsigned operand is
 *   |B| (0..128) and the signed one x sign(B) (vpsignb), whose product is x B;
 *   a product is at most 128 * 127, a pair 32512. Exact, but vpsignb takes a
 *   multiply-pipe slot too: 1.2x the float32 FMA rate against avx2's 1.9x
 *   (Zen 4, measured), hence the 7-bit default.
 *
 * The bound of the multiply pipes (bench/int8_peak.c's mixes on Zen 4, one core at 3.7 GHz: the
 * 3-instruction sequence 117 GMAC/s, 32 multiply-adds a cycle, 2x the float32 FMA's 16;
 * vpmaddubsw alone with vpaddw 51 a cycle): vpmaddubsw and vpmaddwd share two pipes, so 32
 * multiply-adds cost 2 slots. Summing two vpmaddubsw results in int16 before one vpmaddwd
 * (3 slots per 64: 141 GMAC/s, 38 a cycle) would need every sum of 4 products u s to fit an int16, which no exact form of
 * 7-bit activations times 8-bit weights allows: a form without a per-pair instruction maps x
 * (127 values) and W (255 values, Keras's [-127, 127]) each to one operand, the unsigned one
 * u >= 0 and the signed one s in [-128, 127] (a map into each operand must be one-to-one for
 * x W to be recovered; per-row and per-column corrections as corr are free). If x gives u: 127
 * distinct u >= 0 reach 126, and 255 distinct s reach 127 in magnitude (s = W +- c), so 4 u s
 * reach 4 * 126 * 127 = 64008 > 32767. If W gives u: 255 distinct u >= 0 reach 254, 127
 * distinct s reach 63: 4 * 254 * 63 = 64008 again. A wrapping int16 sum (vpaddw) does not help:
 * the 4-sum spans 2 * 64008 > 2^16 values. Only a per-pair vpsignb (avx2-sign's form: u = |W|
 * <= 127, s = x sign(W) with |x| <= 63 gives 4 * 127 * 63 = 32004) fits, and it costs the slot
 * it saves; 6-bit activations (u = x + 32 <= 63: 4 * 63 * 128 = 32256) would fit, a coarser
 * quantization than Keras's and not offered.
 *
 * Each row's step is one asm statement (the broadcast, the two products, the two sums into the
 * accumulators in place), with `ones` as vpmaddwd's memory operand: GCC's own code of the
 * intrinsics kept each sum in a new register and moved it back (8 register moves a group;
 * 111 against 114 GMAC/s on Zen 4 at k = 784, the peak's 31 a cycle), and with `ones` in a
 * register an accumulator went through the stack. */
#define NC_I8_AVX2_MR 4
#define NC_I8_AVX2_NR 16
#define NC_I8_AVX2_ATTR __attribute__((target("avx2,fma")))

/* c0, c1 += the int32 sums of the 4-byte groups of the word at p (broadcast) times b0, b1 */
#define NC_I8_ROW_U8(c0, c1, p)                                                                            \
    {                                                                                                      \
        __m256i x_, t_;                                                                                    \
        __asm__("vpbroadcastd %[w], %[x]\n\t"                                                              \
                "vpmaddubsw %[b0], %[x], %[t]\n\tvpmaddwd %[o], %[t], %[t]\n\tvpaddd %[t], %[s0], %[s0]\n\t" \
                "vpmaddubsw %[b1], %[x], %[t]\n\tvpmaddwd %[o], %[t], %[t]\n\tvpaddd %[t], %[s1], %[s1]"     \
                : [s0] "+x"(c0), [s1] "+x"(c1), [x] "=&x"(x_), [t] "=&x"(t_)                               \
                : [w] "m"(*(const uint32_t *)(const void *)(p)), [b0] "x"(b0), [b1] "x"(b1), [o] "m"(nc_i8_ones16)); \
    }
/* the same with |b| unsigned and the word's bytes signed by b (vpsignb) */
#define NC_I8_ROW_SIGN(c0, c1, p)                                                                          \
    {                                                                                                      \
        __m256i x_, t_;                                                                                    \
        __asm__("vpbroadcastd %[w], %[x]\n\t"                                                              \
                "vpsignb %[b0], %[x], %[t]\n\tvpmaddubsw %[t], %[u0], %[t]\n\t"                            \
                "vpmaddwd %[o], %[t], %[t]\n\tvpaddd %[t], %[s0], %[s0]\n\t"                               \
                "vpsignb %[b1], %[x], %[t]\n\tvpmaddubsw %[t], %[u1], %[t]\n\t"                            \
                "vpmaddwd %[o], %[t], %[t]\n\tvpaddd %[t], %[s1], %[s1]"                                   \
                : [s0] "+x"(c0), [s1] "+x"(c1), [x] "=&x"(x_), [t] "=&x"(t_)                               \
                : [w] "m"(*(const uint32_t *)(const void *)(p)), [b0] "x"(b0), [b1] "x"(b1), [u0] "x"(u0), \
                  [u1] "x"(u1), [o] "m"(nc_i8_ones16));                                                            \
    }

static const __m256i nc_i8_ones16 = {0x0001000100010001LL, 0x0001000100010001LL, 0x0001000100010001LL,
                                     0x0001000100010001LL};

#define NC_I8_AVX2_KERNEL(name, ROW, ABS)                                                               \
    static NC_I8_AVX2_ATTR void name(ptrdiff_t kg, const uint8_t *a, ptrdiff_t lda, const uint8_t *b,    \
                                     const uint32_t *corr, int32_t *t)                                  \
    {                                                                                                   \
        __m256i c00 = _mm256_setzero_si256(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00,    \
                c30 = c00, c31 = c00;                                                                   \
        for (ptrdiff_t g = 0; g < kg; g++, a += 4, b += 64) {                                           \
            __m256i b0 = _mm256_loadu_si256((const __m256i *)b);                                        \
            __m256i b1 = _mm256_loadu_si256((const __m256i *)(b + 32));                                 \
            ABS                                                                                         \
            ROW(c00, c01, a) ROW(c10, c11, a + lda) ROW(c20, c21, a + 2 * lda) ROW(c30, c31, a + 3 * lda) \
        }                                                                                               \
        __m256i k0 = _mm256_loadu_si256((const __m256i *)corr);                                         \
        __m256i k1 = _mm256_loadu_si256((const __m256i *)(corr + 8));                                   \
        _mm256_storeu_si256((__m256i *)t, _mm256_sub_epi32(c00, k0));                                   \
        _mm256_storeu_si256((__m256i *)(t + 8), _mm256_sub_epi32(c01, k1));                             \
        _mm256_storeu_si256((__m256i *)(t + 16), _mm256_sub_epi32(c10, k0));                            \
        _mm256_storeu_si256((__m256i *)(t + 24), _mm256_sub_epi32(c11, k1));                            \
        _mm256_storeu_si256((__m256i *)(t + 32), _mm256_sub_epi32(c20, k0));                            \
        _mm256_storeu_si256((__m256i *)(t + 40), _mm256_sub_epi32(c21, k1));                            \
        _mm256_storeu_si256((__m256i *)(t + 48), _mm256_sub_epi32(c30, k0));                            \
        _mm256_storeu_si256((__m256i *)(t + 56), _mm256_sub_epi32(c31, k1));                            \
    }
NC_I8_AVX2_KERNEL(nc_i8_kernel_avx2, NC_I8_ROW_U8, )
NC_I8_AVX2_KERNEL(nc_i8_kernel_avx2_sign, NC_I8_ROW_SIGN,
                  __m256i u0 = _mm256_abs_epi8(b0); __m256i u1 = _mm256_abs_epi8(b1);)
#undef NC_I8_AVX2_KERNEL
#undef NC_I8_ROW_U8
#undef NC_I8_ROW_SIGN

/* ---- VNNI: vpdpbusd, real and emulated -------------------------------------------------------
 * vpdpbusd sums 4 products of an unsigned and a signed byte into an int32
 * lane without intermediate rounding or saturation; A holds x + 128 (any
 * |x| <= 127). One kernel source (int8_vnni.h), compiled four times: with the AVX-VNNI
 * (ymm) and AVX512-VNNI (zmm) instruction, and with the instruction emulated
 * in C on 8 and 16 lanes (what the tests run on a CPU without VNNI). */
#define NC_I8_VNNI256_MR 6
#define NC_I8_VNNI256_NR 16
#define NC_I8_VNNI512_MR 8
#define NC_I8_VNNI512_NR 32

/* vpdpbusd on one 32-bit lane: acc + sum_t u8(a_t) s8(b_t), mod 2^32 (Intel SDM) */
static inline uint32_t nc_i8_dpbusd_lane(uint32_t acc, uint32_t a, uint32_t b)
{
    for (int q = 0; q < 4; q++) {
        int32_t ua = (int32_t)((a >> (8 * q)) & 0xffu), sb = (int32_t)(int8_t)(uint8_t)(b >> (8 * q));
        acc += (uint32_t)(ua * sb);
    }
    return acc;
}

#define VN_NAME nc_i8_kernel_avxvnni
#define VN_ATTR __attribute__((target("avx2,fma,avxvnni")))
#define VN_VEC __m256i
#define VN_LANES 8
#define VN_MR NC_I8_VNNI256_MR
#define VN_NV (NC_I8_VNNI256_NR / 8)
#define VN_ZERO() _mm256_setzero_si256()
#define VN_LOADB(p) _mm256_loadu_si256((const __m256i *)(const void *)(p))
#define VN_LOADW(p) _mm256_loadu_si256((const __m256i *)(const void *)(p))
#define VN_BCAST(p) _mm256_set1_epi32((int32_t)nc_i8_word(p))
#define VN_DPBUSD(acc, x, y) _mm256_dpbusd_avx_epi32((acc), (x), (y))
#define VN_SUB(x, y) _mm256_sub_epi32((x), (y))
#define VN_STORE(p, x) _mm256_storeu_si256((__m256i *)(void *)(p), (x))
#define VN_KEEP(x) __asm__("" : "+x"(x)) /* as NC_I8_KEEP: no accumulator through the stack */
#include "int8_vnni.h"

#define VN_NAME nc_i8_kernel_avx512vnni
#define VN_ATTR __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx512vnni,avx2,fma")))
#define VN_VEC __m512i
#define VN_LANES 16
#define VN_MR NC_I8_VNNI512_MR
#define VN_NV (NC_I8_VNNI512_NR / 16)
#define VN_ZERO() _mm512_setzero_si512()
#define VN_LOADB(p) _mm512_loadu_si512((const void *)(p))
#define VN_LOADW(p) _mm512_loadu_si512((const void *)(p))
#define VN_BCAST(p) _mm512_set1_epi32((int32_t)nc_i8_word(p))
#define VN_DPBUSD(acc, x, y) _mm512_dpbusd_epi32((acc), (x), (y))
#define VN_SUB(x, y) _mm512_sub_epi32((x), (y))
#define VN_STORE(p, x) _mm512_storeu_si512((void *)(p), (x))
#define VN_KEEP(x) __asm__("" : "+v"(x))
#include "int8_vnni.h"

/* The emulation: a vector is its lanes, each instruction a loop over them. */
#define NC_I8_EMU(L)                                                                                   \
    typedef struct { uint32_t l[L]; } nc_i8_emu##L;                                                  \
    static inline nc_i8_emu##L nc_i8_emu##L##_zero(void)                                             \
    {                                                                                                \
        nc_i8_emu##L v;                                                                              \
        for (int i = 0; i < L; i++) v.l[i] = 0;                                                      \
        return v;                                                                                    \
    }                                                                                                \
    static inline nc_i8_emu##L nc_i8_emu##L##_loadb(const uint8_t *p)                                \
    {                                                                                                \
        nc_i8_emu##L v;                                                                              \
        for (int i = 0; i < L; i++) v.l[i] = nc_i8_word(p + 4 * i);                                  \
        return v;                                                                                    \
    }                                                                                                \
    static inline nc_i8_emu##L nc_i8_emu##L##_loadw(const uint32_t *p)                               \
    {                                                                                                \
        nc_i8_emu##L v;                                                                              \
        for (int i = 0; i < L; i++) v.l[i] = p[i];                                                   \
        return v;                                                                                    \
    }                                                                                                \
    static inline nc_i8_emu##L nc_i8_emu##L##_bcast(const uint8_t *p)                                \
    {                                                                                                \
        nc_i8_emu##L v;                                                                              \
        uint32_t w = nc_i8_word(p);                                                                  \
        for (int i = 0; i < L; i++) v.l[i] = w;                                                      \
        return v;                                                                                    \
    }                                                                                                \
    static inline nc_i8_emu##L nc_i8_emu##L##_dpbusd(nc_i8_emu##L acc, nc_i8_emu##L x, nc_i8_emu##L y) \
    {                                                                                                \
        for (int i = 0; i < L; i++) acc.l[i] = nc_i8_dpbusd_lane(acc.l[i], x.l[i], y.l[i]);          \
        return acc;                                                                                  \
    }                                                                                                \
    static inline nc_i8_emu##L nc_i8_emu##L##_sub(nc_i8_emu##L x, nc_i8_emu##L y)                    \
    {                                                                                                \
        for (int i = 0; i < L; i++) x.l[i] -= y.l[i];                                                \
        return x;                                                                                    \
    }                                                                                                \
    static inline void nc_i8_emu##L##_store(int32_t *p, nc_i8_emu##L x)                              \
    {                                                                                                \
        for (int i = 0; i < L; i++) p[i] = nc_i8_s32(x.l[i]);                                        \
    }
NC_I8_EMU(8)
NC_I8_EMU(16)
#undef NC_I8_EMU

#define VN_NAME nc_i8_kernel_avxvnni_emu
#define VN_ATTR
#define VN_VEC nc_i8_emu8
#define VN_LANES 8
#define VN_MR NC_I8_VNNI256_MR
#define VN_NV (NC_I8_VNNI256_NR / 8)
#define VN_ZERO() nc_i8_emu8_zero()
#define VN_LOADB(p) nc_i8_emu8_loadb(p)
#define VN_LOADW(p) nc_i8_emu8_loadw(p)
#define VN_BCAST(p) nc_i8_emu8_bcast(p)
#define VN_DPBUSD(acc, x, y) nc_i8_emu8_dpbusd((acc), (x), (y))
#define VN_SUB(x, y) nc_i8_emu8_sub((x), (y))
#define VN_STORE(p, x) nc_i8_emu8_store((p), (x))
#define VN_KEEP(x) (void)0
#include "int8_vnni.h"

#define VN_NAME nc_i8_kernel_avx512vnni_emu
#define VN_ATTR
#define VN_VEC nc_i8_emu16
#define VN_LANES 16
#define VN_MR NC_I8_VNNI512_MR
#define VN_NV (NC_I8_VNNI512_NR / 16)
#define VN_ZERO() nc_i8_emu16_zero()
#define VN_LOADB(p) nc_i8_emu16_loadb(p)
#define VN_LOADW(p) nc_i8_emu16_loadw(p)
#define VN_BCAST(p) nc_i8_emu16_bcast(p)
#define VN_DPBUSD(acc, x, y) nc_i8_emu16_dpbusd((acc), (x), (y))
#define VN_SUB(x, y) nc_i8_emu16_sub((x), (y))
#define VN_STORE(p, x) nc_i8_emu16_store((p), (x))
#define VN_KEEP(x) (void)0
#include "int8_vnni.h"
#endif /* NC_I8_X86 */
