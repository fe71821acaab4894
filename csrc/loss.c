/* loss.c -- fused losses (softmax/sigmoid cross-entropies, MSE, MAE), float and double. */
#include <math.h>
#include "nncore.h"

/* Keras's probability clip [1e-7, 1 - 1e-7], as bounds on log p */
#define NC_LOG_EPS (-16.11809565095832)          /* log(1e-7) */
#define NC_LOG_1MEPS (-1.0000000500000033e-07)   /* log1p(-1e-7) */
/* elements per row chunk (a chunk holds at least one row) and chunks per team */
#define NC_LOSS_CHUNK 4096
#define NC_LOSS_BATCH 256
enum { NC_LOSS_SXENT, NC_LOSS_SSXENT, NC_LOSS_BCE, NC_LOSS_MSE, NC_LOSS_MAE };

#define NC_LEVELS_BODY "loss_body.h" /* compiled once per SIMD level */
#define NC_F32
#include "real.h"
#include "simd_levels.h"
#include "real_undef.h"

#define NC_F64
#include "real.h"
#include "simd_levels.h"
#include "real_undef.h"
