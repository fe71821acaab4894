/* optim.c -- fused optimizer steps over flat parameter buffers, float and double.
 *
 * Design: each rule (optim_body.h) is one loop that reads w, g and the slots
 * once and writes w and the slots once; the per-step scalars arrive computed
 * in double (nc_optim_step). The body is compiled once per SIMD level
 * (simd_levels.h) and the level in use is picked on each call.
 * Floating-point contraction is off in this file: no FMA is formed, so every
 * SIMD level, every thread count and every split of the buffer gives the
 * same bits (the vector loop and its scalar tail round alike), and
 * per-variable apply_gradients equals the flat step. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "nncore.h"

#define NC_OPT_CHUNK 8192       /* elements per parallel work item (multiple of 64) */
/* nc_team_size's work units per element. The step is bound by memory, not
 * flops: measured on the 2-core dev VM, waking a second thread pays off only
 * above ~2.5e5 elements (a team costs tens of microseconds there), so one
 * element counts as half a unit (the runtime wants 2 x 65536 units for 2
 * threads); the sum of squares reads 4x less per element, a quarter unit. */
#define NC_OPT_WORK 0.5
#define NC_OPT_RED_WORK 0.25
#define NC_OPT_LANES 16         /* fixed accumulation lanes of the sum of squares */
#define NC_OPT_RED_CHUNK 32768  /* elements per partial sum */
#define NC_OPT_RED_BATCH 256    /* partial sums kept on the stack per parallel round */

int nc_optim_nslots(int kind, int flags, const double *c)
{
    switch (kind) {
    case NC_OPT_SGD: return c[1] > 0 ? 1 : 0;
    case NC_OPT_ADAGRAD: return 1;
    case NC_OPT_RMSPROP: return 1 + ((flags & NC_OPT_CENTERED) != 0) + (c[4] > 0);
    case NC_OPT_ADAM: return 2 + ((flags & NC_OPT_AMSGRAD) != 0);
    case NC_OPT_ADADELTA: return 2;
    case NC_OPT_ADAMAX: return 2;
    case NC_OPT_NADAM: return 2;
    case NC_OPT_FTRL: return 2;
    default: return -1;
    }
}

/* ---- the rules, per REAL and SIMD level; then the public entry points ---- */
#define NC_LEVELS_BODY "optim_body.h"
#define NC_F32
#include "real.h"
#include "simd_levels.h"
#include "optim_driver.h"
#include "real_undef.h"
#define NC_F64
#include "real.h"
#include "simd_levels.h"
#include "optim_driver.h"
#include "real_undef.h"
