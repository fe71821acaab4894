/* rnn.c -- LSTM and GRU cells, one time step forward and backward, float and double. */
#include "nncore.h"

#define NC_LEVELS_BODY "rnn_body.h" /* compiled once per SIMD level */
#define NC_F32
#include "real.h"
#include "simd_levels.h"
#include "real_undef.h"

#define NC_F64
#include "real.h"
#include "simd_levels.h"
#include "real_undef.h"
