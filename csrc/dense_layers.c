/* dense_layers.c -- inference through consecutive dense layers, one layer after the other, in one call.
 *
 * The products are the layers' own (nc_gemm on the whole batch with the same operands, epilogue and
 * thread count, then the same separate activation or softmax pass), so the result is bit-identical
 * to calling the layers one by one from Python; what this saves is the per-layer cost of crossing
 * into C, the per-call overhead that dominates a batch of one sample. Each nc_gemm picks its own
 * SIMD level, path and team (serial for small work). The row blocks of nc_dense_chain are the
 * faster form for large batches, whose packing pays off. */
#include "nncore.h"

#define NC_F32
#include "real.h"
#include "dense_layers_body.h"
#include "real_undef.h"

#define NC_F64
#include "real.h"
#include "dense_layers_body.h"
#include "real_undef.h"
