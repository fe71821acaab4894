/* gemm.c -- GEMM with fused bias + activation epilogue, float and double.
 *
 * gemm_kernel.h holds the micro-kernel, packing and blocked loops, written
 * once and compiled here for each dtype x SIMD level (generic C, AVX2+FMA,
 * AVX-512) with per-function target attributes (the build has no -march);
 * gemm_body.h picks a level at run time and splits C among OpenMP threads. */
#include <stdlib.h>
#include "nncore.h"
#include "gemm_config.h"
#ifdef _OPENMP
#include <omp.h>
#else
static inline int omp_get_thread_num(void) { return 0; }
static inline int omp_get_num_threads(void) { return 1; }
#endif
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#define NC_GEMM_X86 1
#include <immintrin.h>
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
