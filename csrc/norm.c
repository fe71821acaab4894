/* norm.c -- batch and layer normalization, float and double.
 *
 * norm_kernel.h holds the row loops, compiled here for each dtype x SIMD
 * level (generic C, AVX2+FMA, AVX-512) with per-function target attributes;
 * norm_body.h holds the drivers, which pick the level at run time and share
 * the rows among OpenMP threads in chunks fixed by the shape. */
#include <math.h>
#include "nncore.h"
#include "simd.h"
#define NC_NORM_X86 NC_SIMD_X86 /* the x86 levels, where this build compiles them (simd.h) */

#define NC_NORM_CHUNK 16384     /* elements a chunk aims at */
#define NC_NORM_MAX_CHUNKS 256  /* at most this many chunks (bounds the workspace) */

ptrdiff_t nc_norm_chunk_rows(ptrdiff_t rows, ptrdiff_t cols)
{
    ptrdiff_t ch = (NC_NORM_CHUNK + cols - 1) / cols;
    ptrdiff_t least = (rows + NC_NORM_MAX_CHUNKS - 1) / NC_NORM_MAX_CHUNKS;
    if (ch < least) ch = least;
    return (ch + 3) / 4 * 4;    /* whole groups of four rows (the sums take four at a time) */
}

ptrdiff_t nc_norm_work_size(ptrdiff_t rows, ptrdiff_t cols)
{
    ptrdiff_t nch = (rows + nc_norm_chunk_rows(rows, cols) - 1) / nc_norm_chunk_rows(rows, cols);
    return (2 * nch + 6) * cols;  /* chunk sums, two totals, four REAL coefficient rows */
}

/* the level's version of a row loop */
#if NC_NORM_X86
#define NL_CALL(level, op, ...)                                                                   \
    ((level) == NC_SIMD_AVX512 ? NC_NAME(op##_avx512)(__VA_ARGS__)                                \
     : (level) == NC_SIMD_AVX2 ? NC_NAME(op##_avx2)(__VA_ARGS__) : NC_NAME(op##_generic)(__VA_ARGS__))
#else
#define NL_CALL(level, op, ...) ((void)(level), NC_NAME(op##_generic)(__VA_ARGS__))
#endif

#define NC_F32
#include "real.h"
#include "norm_body.h"
#include "real_undef.h"

#define NC_F64
#include "real.h"
#include "norm_body.h"
#include "real_undef.h"
