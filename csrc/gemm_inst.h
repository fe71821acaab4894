/* gemm_inst.h -- one dtype's GEMM: the micro-kernel and packing for every SIMD
 * level this build targets (UK_LEVEL 0 generic, 1 AVX2+FMA, 2 AVX-512), then
 * the driver. Included by gemm.c once per dtype, after real.h. */
#define UK_LEVEL 0
#include "gemm_kernel.h"
#undef UK_LEVEL
#if NC_GEMM_X86
#define UK_LEVEL 1
#include "gemm_kernel.h"
#undef UK_LEVEL
#define UK_LEVEL 2
#include "gemm_kernel.h"
#undef UK_LEVEL
#endif
#include "gemm_body.h"
