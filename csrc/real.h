/* real.h -- the float/double switch shared by every *_body.h.
 * Usage in a .c file:
 *     #define NC_F32
 *     #include "real.h"
 *     #include "x_body.h"
 *     #include "real_undef.h"
 * and the same with NC_F64. */
#include <math.h>
#include "simd.h"
#include "vmath.h"
#if defined(NC_F32)
#define REAL float
#define NC_DT f32 /* the dtype suffix (simd.h) */
#define NC_NAME(op) nc_##op##_f32
#define EXP expf
#define EXPM1 expm1f
#define LOG logf
#define LOG1P log1pf
#define TANH tanhf
#define ERF erff
#define SQRT sqrtf
#define FABS fabsf
#define POW powf
/* vectorizable versions (csrc/vmath.h) */
#define VEXP nc_vexpf
#define VEXPM1 nc_vexpm1f
#define VLOG1P nc_vlog1pf
#define VTANH nc_vtanhf
#define VERFC nc_verfcf
#elif defined(NC_F64)
#define REAL double
#define NC_DT f64
#define NC_NAME(op) nc_##op##_f64
#define EXP exp
#define EXPM1 expm1
#define LOG log
#define LOG1P log1p
#define TANH tanh
#define ERF erf
#define SQRT sqrt
#define FABS fabs
#define POW pow
/* float64 keeps libm */
#define VEXP exp
#define VEXPM1 expm1
#define VLOG1P log1p
#define VTANH tanh
#define VERFC erfc
#else
#error "define NC_F32 or NC_F64 before including real.h"
#endif
