/* runtime.c -- what was compiled in, what the CPU offers, and how many
 * threads a piece of work deserves. The only process-wide state in the C
 * code lives here: the SIMD level in use and the "forked" flag.
 *
 * Every Cython extension links its own copy of this static library, so each
 * has its own copy of that state. Fork is caught by a pthread_atfork handler
 * that every copy registers (below); the SIMD level is set in every copy by
 * nncore._kernels.runtime.set_simd_level, which calls each extension. */
#include "nncore.h"
#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(_OPENMP) && (defined(__unix__) || defined(__APPLE__))
#include <pthread.h>
#endif

static int forced_level = -1;   /* -1: use the best level */
static volatile int forked = 0;

#ifdef _OPENMP
static int nc_forked(void) { return forked; }
#endif

int nc_simd_level(void)
{
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")
        && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq"))
        return NC_SIMD_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return NC_SIMD_AVX2;
#endif
    return NC_SIMD_GENERIC;
}

const char *nc_simd_name(int level)
{
    switch (level) {
    case NC_SIMD_AVX512: return "avx512";
    case NC_SIMD_AVX2: return "avx2+fma";
    default: return "generic";
    }
}

void nc_set_simd_level(int level)
{
    int best = nc_simd_level();
    if (level < 0 || level > best) level = best;
    forced_level = level;
}

int nc_active_simd_level(void)
{
    return forced_level >= 0 ? forced_level : nc_simd_level();
}

int nc_has_openmp(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

int nc_omp_max_threads(void)
{
#ifdef _OPENMP
    return nc_forked() ? 1 : omp_get_max_threads();
#else
    return 1;
#endif
}

void nc_mark_forked(void) { forked = 1; }

#if defined(_OPENMP) && (defined(__unix__) || defined(__APPLE__)) && (defined(__GNUC__) || defined(__clang__))
/* Every Cython extension links its own copy of this static library, so each
 * holds its own `forked` flag and nc_mark_forked() called through one module
 * does not reach the others. Each copy therefore registers its own child
 * handler when it is loaded: a fork by any route (os.fork, multiprocessing,
 * a C library calling fork()) makes every copy run serially in the child,
 * where GNU OpenMP's thread pool is gone and a parallel region would hang. */
static void nc_atfork_child(void) { forked = 1; }

__attribute__((constructor)) static void nc_register_atfork(void)
{
    pthread_atfork(NULL, NULL, nc_atfork_child);
}
#endif

/* About 64k flops per extra thread before a team pays off: waking a team of
 * sleeping (passive) threads costs some microseconds. */
#define NC_WORK_PER_THREAD 65536.0

int nc_team_size(int nthreads, double work)
{
#ifdef _OPENMP
    if (nthreads <= 1 || forked) return 1;
    double fit = work / NC_WORK_PER_THREAD;
    if (fit < 2.0) return 1;                 /* tiny work: a team costs more than it saves */
    int cap = omp_get_max_threads();         /* threadpoolctl limits land here */
    if (nthreads > cap) nthreads = cap;
    if ((double)nthreads > fit) nthreads = (int)fit;
    return nthreads < 1 ? 1 : nthreads;
#else
    (void)nthreads; (void)work;
    return 1;
#endif
}
