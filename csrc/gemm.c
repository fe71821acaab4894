/* gemm.c -- GEMM with fused bias + activation epilogue, float and double.
 *
 * gemm_kernel.h holds the micro-kernel, packing and blocked loops, written
 * once and compiled here for each dtype x SIMD level (generic C, AVX2+FMA,
 * AVX-512) with per-function target attributes (the build has no -march);
 * gemm_body.h picks a level at run time and splits C among OpenMP threads. */
#include <stdlib.h>
#include <string.h>
#include "nncore.h"
#include "bf16_round.h"
#include "gemm_config.h"
#include "simd.h"
#ifdef _OPENMP
#include <omp.h>
#else
static inline int omp_get_thread_num(void) { return 0; }
static inline int omp_get_num_threads(void) { return 1; }
#endif
#if NC_SIMD_X86
#define NC_GEMM_X86 1
#include <immintrin.h>
/* horizontal sums for the AVX2 level of the dot path (AVX-512 has its own) */
static inline __attribute__((always_inline, target("avx2,fma"))) float nc_hsum8_ps(__m256 x)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}
static inline __attribute__((always_inline, target("avx2,fma"))) double nc_hsum4_pd(__m256d x)
{
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(x), _mm256_extractf128_pd(x, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}
#else
#define NC_GEMM_X86 0
#endif

#define NC_F32
#include "real.h"
#include "gemm_inst.h"
#include "real_undef.h"

#define NC_F64
#include "real.h"
#include "gemm_inst.h"
#include "real_undef.h"
