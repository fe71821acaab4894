/* int8_peak.c -- the int8 multiply-add peak of one core: independent chains
 * of vpdpbusd (AVX512-VNNI, zmm and ymm) and of the AVX2 u8 x s8 sequence
 * (vpmaddubsw + vpmaddwd + vpaddd, ymm); the float32 FMA peak to set them
 * against is bench/fma_peak.c's. Built and run by bench/int8_gemm.py (gcc -O3; each
 * kernel carries its own target attribute and runs only where the CPU has it).
 * Prints one line per kernel: name, G multiply-adds per second ("-" where the
 * CPU lacks it). */
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
    return 0;
}
