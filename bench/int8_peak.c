/* int8_peak.c -- the int8 multiply-add peak of one core: independent chains
 * of vpdpbusd (AVX512-VNNI, zmm and ymm) and of the AVX2 u8 x s8 sequence
 * (vpmaddubsw + vpmaddwd + vpaddd, ymm); the float32 FMA peak to set them
 * against is bench/fma_peak.c's. Built and run by bench/int8_gemm.py (gcc -O3; each
 * kernel carries its own target attribute and runs only where the CPU has it).
 * Prints one line per kernel: name, G multiply-adds per second ("-" where the
 * CPU lacks it).
 *
 * Then the AVX2 instruction mixes, in asm (12 independent accumulators, nothing for
 * the compiler to move or hoist), G multiply-adds per second as the mix counts them:
 *   avx2_ones_reg    vpmaddubsw + vpmaddwd (ones in a register) + vpaddd    32 a step
 *   avx2_ones_mem    the same with ones as vpmaddwd's memory operand          32 (the avx2 kernel's)
 *   avx2_sign        vpsignb + vpmaddubsw + vpmaddwd + vpaddd                 32 (avx2-sign's)
 *   avx2_pair16      2 vpmaddubsw + vpaddw + vpmaddwd + vpaddd                64 (NOT exact for
 *                    7-bit x 8-bit: int8_kernel.h's bound; what it would give)
 *   avx2_maddubs     vpmaddubsw + vpaddw, no widening                         32 (the multiplier alone)
 * Zen 4 (3.7 GHz, one core): 117 / 117 / 72 / 141 / 187 (vpmaddubsw_ymm above: 92, its compiled
 * code is slower than the sequence): vpmaddubsw, vpmaddwd and vpsignb share two
 * pipes, so the exact 7-bit form's bound is 2 slots per 32 multiply-adds, 2x float32's FMA. */
#include <immintrin.h>
#include <stdio.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts); /* time on the core: the machine is shared */
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

#define CHAINS 12
#define ITERS 20000000L

__attribute__((target("avx512f,avx512vnni"))) static double dpbusd_zmm(void)
{
    __m512i acc[CHAINS], x = _mm512_set1_epi32(0x01020304), y = _mm512_set1_epi32(0x01ff01ff);
    for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_set1_epi32(c);
    double t = now();
    for (long i = 0; i < ITERS; i++)
        for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_dpbusd_epi32(acc[c], x, y);
    t = now() - t;
    int s = 0;
    for (int c = 0; c < CHAINS; c++) s += _mm512_reduce_add_epi32(acc[c]);
    if (s == 12345) printf("#");
    return 64.0 * CHAINS * (double)ITERS / t / 1e9;
}

__attribute__((target("avx512f,avx512vl,avx512vnni"))) static double dpbusd_ymm(void)
{
    __m256i acc[CHAINS], x = _mm256_set1_epi32(0x01020304), y = _mm256_set1_epi32(0x01ff01ff);
    for (int c = 0; c < CHAINS; c++) acc[c] = _mm256_set1_epi32(c);
    double t = now();
    for (long i = 0; i < ITERS; i++)
        for (int c = 0; c < CHAINS; c++) acc[c] = _mm256_dpbusd_epi32(acc[c], x, y);
    t = now() - t;
    int s[8], tot = 0;
    for (int c = 0; c < CHAINS; c++) {
        _mm256_storeu_si256((__m256i *)s, acc[c]);
        for (int j = 0; j < 8; j++) tot += s[j];
    }
    if (tot == 12345) printf("#");
    return 32.0 * CHAINS * (double)ITERS / t / 1e9;
}

__attribute__((target("avx2"))) static double maddubs_ymm(void)
{
    /* x made opaque each iteration and a B operand of its own per chain (from L1, as in a kernel):
     * nothing is loop-invariant, and only the vpaddd is on a chain */
    __m256i acc[CHAINS], yv[CHAINS], x = _mm256_set1_epi32(0x01020304);
    const __m256i ones = _mm256_set1_epi16(1);
    for (int c = 0; c < CHAINS; c++) acc[c] = _mm256_set1_epi32(c), yv[c] = _mm256_set1_epi32(0x01ff01ff + c);
    double t = now();
    for (long i = 0; i < ITERS; i++) {
        __asm__("" : "+x"(x));
        for (int c = 0; c < CHAINS; c++)
            acc[c] = _mm256_add_epi32(acc[c], _mm256_madd_epi16(_mm256_maddubs_epi16(x, yv[c]), ones));
    }
    t = now() - t;
    int s[8], tot = 0;
    for (int c = 0; c < CHAINS; c++) {
        _mm256_storeu_si256((__m256i *)s, acc[c]);
        for (int j = 0; j < 8; j++) tot += s[j];
    }
    if (tot == 12345) printf("#");
    return 32.0 * CHAINS * (double)ITERS / t / 1e9;
}

#define MIX_ITERS 20000000L
#define R_(n) "%%ymm" #n
#define MIX_ONES_REG(a) "vpmaddubsw %%ymm13, %%ymm12, %%ymm15\n vpmaddwd %%ymm14, %%ymm15, %%ymm15\n vpaddd %%ymm15, " R_(a) ", " R_(a) "\n"
#define MIX_ONES_MEM(a) "vpmaddubsw %%ymm13, %%ymm12, %%ymm15\n vpmaddwd (%1), %%ymm15, %%ymm15\n vpaddd %%ymm15, " R_(a) ", " R_(a) "\n"
#define MIX_SIGN(a) "vpsignb %%ymm13, %%ymm12, %%ymm15\n vpmaddubsw %%ymm15, %%ymm14, %%ymm15\n vpmaddwd (%1), %%ymm15, %%ymm15\n vpaddd %%ymm15, " R_(a) ", " R_(a) "\n"
#define MIX_PAIR16(a) "vpmaddubsw %%ymm13, %%ymm12, %%ymm15\n vpmaddubsw %%ymm11, %%ymm12, %%ymm14\n vpaddw %%ymm14, %%ymm15, %%ymm15\n vpmaddwd (%1), %%ymm15, %%ymm15\n vpaddd %%ymm15, " R_(a) ", " R_(a) "\n"
#define MIX_MADDUBS(a) "vpmaddubsw %%ymm13, %%ymm12, %%ymm15\n vpaddw %%ymm15, " R_(a) ", " R_(a) "\n"
#define MIX12(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11)
#define MIX11(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10)
/* ymm12 the broadcast operand, ymm13 (and ymm11 for pair16) B, ymm14 ones or |B|, ymm15 the product */
#define MIX_FN(name, body, macs)                                                                        \
    __attribute__((target("avx2"))) static double name(void)                                         \
    {                                                                                                 \
        static const short ones[16] __attribute__((aligned(32))) = {1, 1, 1, 1, 1, 1, 1, 1,           \
                                                                    1, 1, 1, 1, 1, 1, 1, 1};          \
        long n = MIX_ITERS;                                                                           \
        double t = now();                                                                             \
        __asm__ volatile("vpcmpeqb %%ymm12, %%ymm12, %%ymm12\n vpabsb %%ymm12, %%ymm12\n"            \
                         "vmovdqa %%ymm12, %%ymm13\n vmovdqa (%1), %%ymm14\n vmovdqa %%ymm12, %%ymm11\n" \
                         "1:\n" body "dec %0\n jnz 1b\n vzeroupper"                                  \
                         : "+r"(n)                                                                    \
                         : "r"(ones)                                                                  \
                         : "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7",   \
                           "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");     \
        t = now() - t;                                                                                \
        return (double)(macs) * (double)MIX_ITERS / t / 1e9;                                          \
    }
MIX_FN(mix_ones_reg, MIX12(MIX_ONES_REG), 12 * 32)
MIX_FN(mix_ones_mem, MIX12(MIX_ONES_MEM), 12 * 32)
MIX_FN(mix_sign, MIX12(MIX_SIGN), 12 * 32)
MIX_FN(mix_pair16, MIX11(MIX_PAIR16), 11 * 64)
MIX_FN(mix_maddubs, MIX12(MIX_MADDUBS), 12 * 32)

static void row(const char *name, int ok, double (*fn)(void))
{
    if (ok) printf("%s %.2f\n", name, fn());
    else printf("%s -\n", name);
}

int main(void)
{
    __builtin_cpu_init();
    int avx512 = __builtin_cpu_supports("avx512f"), vnni = avx512 && __builtin_cpu_supports("avx512vnni");
    int vl = avx512 && __builtin_cpu_supports("avx512vl");
    row("vpdpbusd_zmm", vnni, dpbusd_zmm);
    row("vpdpbusd_ymm", vnni && vl, dpbusd_ymm);
    row("vpmaddubsw_ymm", __builtin_cpu_supports("avx2"), maddubs_ymm);
    int avx2 = __builtin_cpu_supports("avx2");
    row("avx2_ones_reg", avx2, mix_ones_reg);
    row("avx2_ones_mem", avx2, mix_ones_mem);
    row("avx2_sign", avx2, mix_sign);
    row("avx2_pair16", avx2, mix_pair16);
    row("avx2_maddubs", avx2, mix_maddubs);
    return 0;
}
