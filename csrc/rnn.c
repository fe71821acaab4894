/* rnn.c -- LSTM and GRU cells, one time step forward and backward, float and double. */
#include "nncore.h"

#define NC_F32
#include "real.h"
#include "rnn_body.h"
#include "real_undef.h"

#define NC_F64
#include "real.h"
#include "rnn_body.h"
#include "real_undef.h"
