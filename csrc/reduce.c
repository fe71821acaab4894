/* reduce.c -- reductions and row gathers, float and double. */
#include "nncore.h"
#ifdef _OPENMP
#include <omp.h>
#else
static inline int omp_get_thread_num(void) { return 0; }
static inline int omp_get_num_threads(void) { return 1; }
#endif

#define NC_LEVELS_BODY "reduce_body.h" /* compiled once per SIMD level */
#define NC_F32
#include "real.h"
#include "simd_levels.h"
#include "real_undef.h"

#define NC_F64
#include "real.h"
#include "simd_levels.h"
#include "real_undef.h"
