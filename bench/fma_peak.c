/* fma_peak.c -- the FMA peak of one core: independent chains of 512-bit and
 * 256-bit fused multiply-adds, enough of them to hide the FMA latency.
 * Built and run by bench/gemm.py (gcc -O3 -mavx512f -mfma); prints GFLOP/s
 * for float32 zmm, float32 ymm, float64 zmm. */
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

static double peak_zmm_ps(long iters)
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

static double peak_ymm_ps(long iters)
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

static double peak_zmm_pd(long iters)
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

int main(void)
{
    long iters = 20000000;
    double a = 0, b = 0, c = 0;
    for (int r = 0; r < 5; r++) { /* best of 5: the machine is shared */
        double x = peak_zmm_ps(iters), y = peak_ymm_ps(iters), z = peak_zmm_pd(iters);
        if (x > a) a = x;
        if (y > b) b = y;
        if (z > c) c = z;
    }
    printf("%.2f %.2f %.2f\n", a, b, c);
    return 0;
}
