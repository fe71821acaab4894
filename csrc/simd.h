/* simd.h -- the SIMD levels a build compiles, how a kernel names and picks its
 * copy for a level, and the few compiler-specific words the kernels use.
 * Internal (not part of nncore.h); included by real.h, so every body has it.
 *
 * Levels (enum nc_simd in nncore.h): generic C always; AVX2+FMA and AVX-512
 * when NC_SIMD_X86 (x86-64 with GCC or clang, and NNCORE_GENERIC_ONLY not
 * defined). The x86 copies are compiled with per-function target attributes
 * (the build itself has no -m flags), so one binary runs on any x86-64 CPU
 * and nc_active_simd_level() picks the copy at run time; nc_set_simd_level()
 * switches every kernel at once. Any other compiler or CPU (MSVC, aarch64,
 * ...) compiles the generic copy only: plain C that the compiler vectorizes
 * for its baseline (SSE2 on x86-64, NEON on aarch64).
 *
 * A kernel file gets one copy of its body per level through simd_levels.h
 * (see there and docs/design.md, "SIMD levels"). Within a level's copy
 * NC_NAME(op) is nc_<op>_<level>_<f32|f64> (e.g. nc_act_forward_avx2_f32),
 * the name NC_LNAME(op, level) spells out from anywhere; the public entry
 * point nc_<op>_<f32|f64> calls NC_PICK(op), the copy of the level in use. */
#ifndef NC_SIMD_H
#define NC_SIMD_H
#include <stddef.h>
#include "nncore.h"

#if !defined(NNCORE_GENERIC_ONLY) && (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#define NC_SIMD_X86 1
#define NC_SIMD_COMPILED NC_SIMD_AVX512 /* the best level compiled in */
#else
#define NC_SIMD_X86 0
#define NC_SIMD_COMPILED NC_SIMD_GENERIC
#endif

/* static functions that must be inlined (the vector math, register tiles) */
#if defined(__GNUC__) || defined(__clang__)
#define NC_ALWAYS_INLINE static inline __attribute__((always_inline))
#elif defined(_MSC_VER)
#define NC_ALWAYS_INLINE static __forceinline
#else
#define NC_ALWAYS_INLINE static inline
#endif

/* a function that must not be inlined (a kernel's cold or large tile case) */
#if defined(__GNUC__) || defined(__clang__)
#define NC_NOINLINE __attribute__((noinline))
#elif defined(_MSC_VER)
#define NC_NOINLINE __declspec(noinline)
#else
#define NC_NOINLINE
#endif

/* The x86 levels' instruction sets, for functions outside simd_levels.h
 * (the GEMM kernels attach them one by one). simd_levels.h applies the same
 * sets to a whole body with pragmas. */
#if NC_SIMD_X86
#define NC_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define NC_TARGET_AVX512 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")))
#endif

/* nc_<op>_<level>_<dt>: the copy of op for a level (generic, avx2, avx512)
 * and the dtype suffix NC_DT (f32, f64) that real.h defines. */
#define NC_LNAME(op, lvl) NC_LNAME_(op, lvl, NC_DT)
#define NC_LNAME_(op, lvl, dt) NC_LNAME__(op, lvl, dt)
#define NC_LNAME__(op, lvl, dt) nc_##op##_##lvl##_##dt
#define NC_PUBNAME(op) NC_PUBNAME_(op, NC_DT) /* nc_<op>_<dt>, as real.h's NC_NAME */
#define NC_PUBNAME_(op, dt) NC_PUBNAME__(op, dt)
#define NC_PUBNAME__(op, dt) nc_##op##_##dt

/* The level in use, read on every call of an entry point: -1 until the first
 * call of nc_active_simd_level() (or nc_set_simd_level()) sets it. Defined in
 * runtime.c, which holds all the process state of the C code. */
extern int nc_simd_in_use;
static inline int nc_level_now(void)
{
    int level = nc_simd_in_use;
    return level >= 0 ? level : nc_active_simd_level();
}

/* NC_PICK(op): the copy of op for the level in use, as a function designator:
 *     void NC_NAME(foo)(const REAL *x, ptrdiff_t n) { NC_PICK(foo)(x, n); } */
#if NC_SIMD_X86
#define NC_PICK(op)                                                                                   \
    (nc_level_now() == NC_SIMD_AVX512 ? NC_LNAME(op, avx512)                                          \
     : nc_level_now() == NC_SIMD_AVX2 ? NC_LNAME(op, avx2) : NC_LNAME(op, generic))
#else
#define NC_PICK(op) NC_LNAME(op, generic)
#endif

/* The per-level activation kernels (act.c), which the per-level kernels of
 * other files call directly (the GEMM's epilogue, the recurrent cells): a
 * level's kernel stays in its level, with no dispatch per row. Declared here,
 * outside any target region, for every level compiled. */
#define NC_ACT_LEVEL_DECLS(lvl, R, dt)                                                                \
    void nc_act_forward_##lvl##_##dt(int act, R alpha, const R *x, R *y, ptrdiff_t n);                \
    void nc_act_backward_##lvl##_##dt(int act, R alpha, const R *x, const R *y, const R *dy, R *dx,   \
                                      ptrdiff_t n);                                                   \
    void nc_act_backward_par_##lvl##_##dt(int act, R alpha, const R *x, const R *y, const R *dy,      \
                                          R *dx, ptrdiff_t n, int nthreads);
NC_ACT_LEVEL_DECLS(generic, float, f32)
NC_ACT_LEVEL_DECLS(generic, double, f64)
#if NC_SIMD_X86
NC_ACT_LEVEL_DECLS(avx2, float, f32)
NC_ACT_LEVEL_DECLS(avx2, double, f64)
NC_ACT_LEVEL_DECLS(avx512, float, f32)
NC_ACT_LEVEL_DECLS(avx512, double, f64)
#endif
#undef NC_ACT_LEVEL_DECLS

#endif /* NC_SIMD_H */
