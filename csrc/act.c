/* act.c -- activations forward/backward and softmax, float and double. */
#include "nncore.h"

int nc_act_needs_input(int act)
{
    return act == NC_ACT_GELU || act == NC_ACT_GELU_TANH || act == NC_ACT_SWISH;
}

#define NC_F32
#include "real.h"
#include "act_body.h"
#include "real_undef.h"

#define NC_F64
#include "real.h"
#include "act_body.h"
#include "real_undef.h"
