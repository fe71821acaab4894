/* fma_peak.c -- the FMA peak of one core: independent chains of 512-bit and
 * 256-bit fused multiply-adds, enough of them to hide the FMA latency.
 * Built and run by bench/gemm.py and python -m bench (gcc -O3; each kernel
 * carries its own target attribute and runs only where the CPU has it);
 * prints GFLOP/s for float32 zmm, float32 ymm, float64 zmm, float64 ymm,
 * "-" for what this CPU lacks (no AVX-512 on an AVX2 machine). */
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

__attribute__((target("avx512f,fma"))) static double peak_zmm_ps(long iters)
{
    __m512 acc[CHAINS], x = _mm512_set1_ps(0.999999f), y = _mm512_set1_ps(1e-7f);
    for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_set1_ps((float)c);
    double t = now();
    for (long i = 0; i < iters; i++)
        for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_fmadd_ps(acc[c], x, y);
    t = now() - t;
    float s = 0;
    for (int c = 0; c < CHAINS; c++) s += _mm512_reduce_add_ps(acc[c]);
    if (s == 12345.0f) printf("#");
    return 2.0 * 16 * CHAINS * (double)iters / t / 1e9;
}

__attribute__((target("avx2,fma"))) static double peak_ymm_ps(long iters)
{
    __m256 acc[CHAINS], x = _mm256_set1_ps(0.999999f), y = _mm256_set1_ps(1e-7f);
    for (int c = 0; c < CHAINS; c++) acc[c] = _mm256_set1_ps((float)c);
    double t = now();
    for (long i = 0; i < iters; i++)
        for (int c = 0; c < CHAINS; c++) acc[c] = _mm256_fmadd_ps(acc[c], x, y);
    t = now() - t;
    float s[8], tot = 0;
    for (int c = 0; c < CHAINS; c++) {
        _mm256_storeu_ps(s, acc[c]);
        for (int j = 0; j < 8; j++) tot += s[j];
    }
    if (tot == 12345.0f) printf("#");
    return 2.0 * 8 * CHAINS * (double)iters / t / 1e9;
}

__attribute__((target("avx512f,fma"))) static double peak_zmm_pd(long iters)
{
    __m512d acc[CHAINS], x = _mm512_set1_pd(0.999999), y = _mm512_set1_pd(1e-7);
    for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_set1_pd((double)c);
    double t = now();
    for (long i = 0; i < iters; i++)
        for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_fmadd_pd(acc[c], x, y);
    t = now() - t;
    double s = 0;
    for (int c = 0; c < CHAINS; c++) s += _mm512_reduce_add_pd(acc[c]);
    if (s == 12345.0) printf("#");
    return 2.0 * 8 * CHAINS * (double)iters / t / 1e9;
}

__attribute__((target("avx2,fma"))) static double peak_ymm_pd(long iters)
{
    __m256d acc[CHAINS], x = _mm256_set1_pd(0.999999), y = _mm256_set1_pd(1e-7);
    for (int c = 0; c < CHAINS; c++) acc[c] = _mm256_set1_pd((double)c);
    double t = now();
    for (long i = 0; i < iters; i++)
        for (int c = 0; c < CHAINS; c++) acc[c] = _mm256_fmadd_pd(acc[c], x, y);
    t = now() - t;
    double s[4], tot = 0;
    for (int c = 0; c < CHAINS; c++) {
        _mm256_storeu_pd(s, acc[c]);
        for (int j = 0; j < 4; j++) tot += s[j];
    }
    if (tot == 12345.0) printf("#");
    return 2.0 * 4 * CHAINS * (double)iters / t / 1e9;
}

static void show(double x, const char *end)
{
    if (x > 0) printf("%.2f%s", x, end);
    else printf("-%s", end);
}

int main(void)
{
    long iters = 20000000;
    double best[4] = {0, 0, 0, 0};
    int zmm = __builtin_cpu_supports("avx512f"), ymm = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    for (int r = 0; r < 5; r++) { /* best of 5: the machine is shared */
        double x[4] = {zmm ? peak_zmm_ps(iters) : 0, ymm ? peak_ymm_ps(iters) : 0, zmm ? peak_zmm_pd(iters) : 0,
                       ymm ? peak_ymm_pd(iters) : 0};
        for (int i = 0; i < 4; i++)
            if (x[i] > best[i]) best[i] = x[i];
    }
    show(best[0], " ");
    show(best[1], " ");
    show(best[2], " ");
    show(best[3], "\n");
    return 0;
}
