/* act.c -- activations forward/backward and softmax, float and double. */
#include "nncore.h"
#include "bf16_round.h"

int nc_act_needs_input(int act)
{
    act &= ~NC_ACT_BF16;
    return act == NC_ACT_GELU || act == NC_ACT_GELU_TANH || act == NC_ACT_SWISH;
}

/* Work per element, in units of about one flop, for nc_team_size: an OpenMP
 * team only pays off for enough work, and a comparison or a multiply per
 * element (relu; sigmoid's backward through y) is far cheaper than an
 * exp-based forward. */
static double nc_act_cost(int act, int backward)
{
    switch (act & ~NC_ACT_BF16) {
    case NC_ACT_SIGMOID: case NC_ACT_TANH: case NC_ACT_ELU: case NC_ACT_SELU:
        return backward ? 1.0 : 8.0;       /* backward is a polynomial in y */
    case NC_ACT_SOFTPLUS: case NC_ACT_SWISH: case NC_ACT_GELU_TANH:
        return 8.0;
    case NC_ACT_GELU:
        return 16.0;
    default:                               /* linear, step, relu, leaky_relu, hard_sigmoid */
        return 1.0;
    }
}

#define NC_LEVELS_BODY "act_body.h" /* compiled once per SIMD level */
#define NC_F32
#include "real.h"
#include "simd_levels.h"
#include "real_undef.h"

#define NC_F64
#include "real.h"
#include "simd_levels.h"
#include "real_undef.h"
