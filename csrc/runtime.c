/* runtime.c -- what was compiled in, what the CPU offers, and how many
 * threads a piece of work deserves. The only process-wide state in the C
 * code lives here: the SIMD level in use and the "forked" flag.
 *
 * Every Cython extension links its own copy of this static library, so each
 * has its own copy of that state. Fork is caught by a pthread_atfork handler
 * that every copy registers (below); the SIMD level is set in every copy by
 * nncore._kernels.runtime.set_simd_level, which calls each extension. Every
 * kernel with SIMD copies reads the level on each call (NC_PICK in simd.h),
 * so a new level applies from the next call on. */
#include "nncore.h"
#include "simd.h"
#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(_OPENMP) && (defined(__unix__) || defined(__APPLE__))
#include <pthread.h>
#endif
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#include <cpuid.h>
#define NC_CPUID_GNU 1
#elif defined(_MSC_VER) && defined(_M_X64)
#include <intrin.h>
#define NC_CPUID_MSVC 1
#endif

int nc_simd_in_use = -1;        /* the level kernels use (simd.h); -1: not chosen yet */
static int cpu_level = -1;      /* what the CPU and the OS offer; -1: not asked yet */
static volatile int forked = 0;

#ifdef _OPENMP
static int nc_forked(void) { return forked; }
#endif

/* What the CPU offers, from cpuid, and whether the OS saves the wider
 * registers (XCR0): AVX2+FMA needs the xmm and ymm state, AVX-512 (F, VL,
 * BW, DQ) also the opmask and zmm state. */
static int nc_detect_cpu_level(void)
{
#if defined(NC_CPUID_GNU) || defined(NC_CPUID_MSVC)
    unsigned r1[4], r7[4]; /* eax, ebx, ecx, edx of leaves 1 and 7 */
    unsigned long long xcr0;
#if defined(NC_CPUID_GNU)
    if (__get_cpuid_max(0, NULL) < 7) return NC_SIMD_GENERIC;
    __cpuid_count(1, 0, r1[0], r1[1], r1[2], r1[3]);
    __cpuid_count(7, 0, r7[0], r7[1], r7[2], r7[3]);
#else
    int v[4];
    __cpuid(v, 0);
    if (v[0] < 7) return NC_SIMD_GENERIC;
    __cpuidex(v, 1, 0);
    for (int i = 0; i < 4; i++) r1[i] = (unsigned)v[i];
    __cpuidex(v, 7, 0);
    for (int i = 0; i < 4; i++) r7[i] = (unsigned)v[i];
#endif
    int fma = (r1[2] >> 12) & 1, osxsave = (r1[2] >> 27) & 1, avx = (r1[2] >> 28) & 1;
    if (!(fma && osxsave && avx)) return NC_SIMD_GENERIC;
#if defined(NC_CPUID_GNU)
    unsigned lo, hi;
    __asm__ __volatile__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0)); /* the xgetbv instruction, as _xgetbv(0) */
    xcr0 = ((unsigned long long)hi << 32) | lo;
#else
    xcr0 = _xgetbv(0);
#endif
    if ((xcr0 & 0x6) != 0x6 || !((r7[1] >> 5) & 1)) return NC_SIMD_GENERIC; /* xmm+ymm state; AVX2 */
    int f = (r7[1] >> 16) & 1, dq = (r7[1] >> 17) & 1, bw = (r7[1] >> 30) & 1, vl = (r7[1] >> 31) & 1;
    if (f && dq && bw && vl && (xcr0 & 0xe6) == 0xe6) return NC_SIMD_AVX512; /* + opmask, zmm state */
    return NC_SIMD_AVX2;
#else
    return NC_SIMD_GENERIC;
#endif
}

int nc_simd_cpu_level(void)
{
    if (cpu_level < 0) cpu_level = nc_detect_cpu_level(); /* the same answer in every thread */
    return cpu_level;
}

int nc_simd_compiled_level(void) { return NC_SIMD_COMPILED; }

int nc_simd_level(void)
{
    int cpu = nc_simd_cpu_level();
    return cpu < NC_SIMD_COMPILED ? cpu : NC_SIMD_COMPILED;
}

const char *nc_simd_name(int level)
{
    switch (level) {
    case NC_SIMD_AVX512: return "avx512";
    case NC_SIMD_AVX2: return "avx2";
    default: return "generic";
    }
}

void nc_set_simd_level(int level)
{
    int best = nc_simd_level();
    nc_simd_in_use = level < 0 || level > best ? best : level;
}

int nc_active_simd_level(void)
{
    if (nc_simd_in_use < 0) nc_simd_in_use = nc_simd_level();
    return nc_simd_in_use;
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
