/* simd_levels.h -- compile one kernel body once per SIMD level, then its
 * entry points. Included by a kernel file after real.h, once per dtype:
 *
 *     #define NC_LEVELS_BODY "foo_body.h"
 *     #define NC_F32
 *     #include "real.h"
 *     #include "simd_levels.h"
 *     #include "real_undef.h"
 *     (the same with NC_F64)
 *
 * The body is then included once for every level this build compiles (see
 * simd.h), with NC_LEVEL defined (NC_SIMD_GENERIC, NC_SIMD_AVX2,
 * NC_SIMD_AVX512) and NC_NAME(op) naming that level's copy
 * (nc_<op>_<level>_<dt>), the x86 levels under a target pragma that applies
 * to every function the body defines. Last, it is included once more with
 * NC_LEVEL undefined and NC_NAME(op) = nc_<op>_<dt>: that pass defines the
 * public entry points, each a call of NC_PICK(op). So a body reads
 *
 *     #ifdef NC_LEVEL
 *     static void NC_NAME(foo_row)(...) { ... plain C, #pragma omp simd ... }
 *     void NC_NAME(foo)(const REAL *x, ptrdiff_t n, int nthreads) { ... NC_NAME(foo_row)(...) ... }
 *     #else
 *     void NC_NAME(foo)(const REAL *x, ptrdiff_t n, int nthreads) { NC_PICK(foo)(x, n, nthreads); }
 *     #endif
 *
 * with the prototype of nc_foo_f32/_f64 in nncore.h as usual. Inside a level
 * every call of NC_NAME(...) stays in that level. Clang does not give the
 * target of a function to the body of an `omp parallel` region inside it: a
 * hot loop belongs in a function of its own that the region calls (as the
 * row and chunk functions of the existing bodies are). */
#ifndef NC_LEVELS_BODY
#error "simd_levels.h: define NC_LEVELS_BODY (the body to compile per level) first"
#endif
#ifndef NC_DT
#error "simd_levels.h: include real.h first"
#endif

#undef NC_NAME
#define NC_NAME(op) NC_LNAME(op, generic)
#define NC_LEVEL NC_SIMD_GENERIC
#include NC_LEVELS_BODY
#undef NC_LEVEL
#undef NC_NAME

#if NC_SIMD_X86
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif
#define NC_NAME(op) NC_LNAME(op, avx2)
#define NC_LEVEL NC_SIMD_AVX2
#include NC_LEVELS_BODY
#undef NC_LEVEL
#undef NC_NAME
#if defined(__clang__)
#pragma clang attribute pop
#pragma clang attribute push(__attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma"))), \
                             apply_to = function)
#else
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,prefer-vector-width=512")
#endif
#define NC_NAME(op) NC_LNAME(op, avx512)
#define NC_LEVEL NC_SIMD_AVX512
#include NC_LEVELS_BODY
#undef NC_LEVEL
#undef NC_NAME
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif /* NC_SIMD_X86 */

/* the entry points, with real.h's names */
#define NC_NAME(op) NC_PUBNAME(op)
#include NC_LEVELS_BODY
