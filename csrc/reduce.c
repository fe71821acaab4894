/* reduce.c -- reductions and row gathers, float and double. */
#include "nncore.h"
#include "vmath.h" /* NC_CLONES */
#ifdef _OPENMP
#include <omp.h>
#else
static inline int omp_get_thread_num(void) { return 0; }
static inline int omp_get_num_threads(void) { return 1; }
#endif

#define NC_F32
#include "real.h"
#include "reduce_body.h"
#include "real_undef.h"

#define NC_F64
#include "real.h"
#include "reduce_body.h"
#include "real_undef.h"
