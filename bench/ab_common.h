/* What the bench's C A/B harnesses (chain_ab.c, gemm_ab.c) share: thread CPU time, random operands,
 * the comparison qsort takes for a median. */
#ifndef NC_BENCH_AB_COMMON_H
#define NC_BENCH_AB_COMMON_H
#include <stdlib.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

/* n floats in [-0.5, 0.5], 64-byte aligned */
static float *rnd(size_t n)
{
    float *p = aligned_alloc(64, (n * 4 + 63) / 64 * 64);
    for (size_t i = 0; i < n; i++) p[i] = (float)rand() / RAND_MAX - 0.5f;
    return p;
}

static int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
#endif
