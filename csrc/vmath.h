/* vmath.h -- float32 exp, expm1, log1p, tanh and erfc written as
 * straight-line code (no table, no branch, no libm call), so loops that call
 * them vectorize under `#pragma omp simd`. Used by the float32 kernels only;
 * float64 keeps libm. Accuracy: a few ulp (tests compare against float64).
 *
 * Kernels built on these are compiled once per SIMD level (simd_levels.h) and
 * the level in use is picked at run time; the generic copy always exists.
 *
 * exp:   x = n ln2 + r, |r| <= ln2/2 (Cody-Waite split of ln2), e^r by its
 *        Taylor series to r^7 (truncation < 1e-8 relative), times 2^n built
 *        from the exponent bits in two halves so subnormal results and the
 *        overflow to inf come out right.
 * expm1: the Taylor series to x^8 for |x| < 1/2 (no cancellation), else e^x - 1.
 * The sigmoid and tanh (the recurrent cells' gates: most of an LSTM forward cell's time) take
 * cheaper forms of both for non-positive arguments only: nc_vexpnf builds 2^n as one scale and
 * one rounding by 2^-64 (not two halves), nc_vexpm1nf is 2^n expm1(r) + (2^n - 1) on one
 * reduction (not the series and e^x both, then a select). The LSTM cells forward alone (the lstm
 * row's 28 steps of 128 x 128, 1 thread, in cache) 1.38 -> 0.93 ms at AVX-512, 2.01 -> 1.5-1.6 ms at
 * AVX2 (tanh 1.6x, sigmoid 1.2-1.35x as fast); tanh 2.5 ulp (was 2.7); sigmoid's values are unchanged
 * (the same bits as before on every float32, only faster), 2.4-2.7 ulp.
 * log1p: w = 1 + u rounded, log1p(u) = log(w) + (u - (w - 1)) / w; log(w)
 *        from the exponent and m in [sqrt(1/2), sqrt(2)):
 *        log m = 2 atanh(s) = 2 (s + s^3/3 + ... + s^9/9), s = (m - 1)/(m + 1).
 * erfc:  for z >= 0, erfc(z) = t exp(-z^2 + g(t)), t = 1/(1 + z/2) (the form of
 *        Numerical Recipes' erfcc); g is our own degree-10 least-squares fit
 *        (Lawson-reweighted towards minimax, error 7e-9) in u = (2t - 1.16)/0.84,
 *        which maps z in [0, 10.5] onto [-1, 1]. z^2 is split as zh^2 + (z - zh)(z + zh)
 *        with zh holding 12 significant bits, so zh^2 is exact and e^(-z^2)
 *        keeps its relative accuracy for large z. erfc(-z) = 2 - erfc(z).
 */
#ifndef NC_VMATH_H
#define NC_VMATH_H
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "simd.h"

#define NC_VINLINE NC_ALWAYS_INLINE

NC_VINLINE float nc_bits_to_f32(int32_t i) { float f; memcpy(&f, &i, 4); return f; }
NC_VINLINE int32_t nc_f32_to_bits(float f) { int32_t i; memcpy(&i, &f, 4); return i; }

/* e^r for |r| <= ln2/2 (after the reduction x = n ln2 + r): its Taylor series to r^7, Horner's order */
NC_VINLINE float nc_vexp_series(float r)
{
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    return p * r + 1.0f;
}

NC_VINLINE float nc_vexpf(float x)
{
    const float log2e = 1.44269504088896341f;
    const float ln2_hi = 0.693145751953125f;       /* 12 leading bits of ln 2: n ln2_hi is exact */
    const float ln2_lo = 1.42860682030941723e-6f;  /* ln 2 - ln2_hi */
    const float shifter = 12582912.0f;             /* 1.5 * 2^23: adding it rounds to an integer */
    x = x < -104.0f ? -104.0f : (x > 89.0f ? 89.0f : x);   /* e^-104 rounds to 0, e^89 to inf */
    float n = (x * log2e + shifter) - shifter;
    float r = (x - n * ln2_hi) - n * ln2_lo;
    float p = nc_vexp_series(r);
    int32_t ni = (int32_t)n, n1 = ni / 2, n2 = ni - n1;   /* 2^n = 2^n1 2^n2, each a normal float */
    return p * nc_bits_to_f32((n1 + 127) << 23) * nc_bits_to_f32((n2 + 127) << 23);
}

NC_VINLINE float nc_vexpm1f(float x)
{
    float q = 1.0f / 40320.0f;
    q = q * x + 1.0f / 5040.0f;
    q = q * x + 1.0f / 720.0f;
    q = q * x + 1.0f / 120.0f;
    q = q * x + 1.0f / 24.0f;
    q = q * x + 1.0f / 6.0f;
    q = q * x + 0.5f;
    float small = x + x * x * q;                  /* |x| < 1/2 */
    float big = nc_vexpf(x) - 1.0f;
    return (x > -0.5f && x < 0.5f) ? small : big;
}

NC_VINLINE float nc_vlog1pf(float u)
{
    /* u > -1 and finite; the kernels call it with u in [0, 1] */
    const float ln2_hi = 0.693145751953125f, ln2_lo = 1.42860682030941723e-6f;
    float w = 1.0f + u;
    float c = (u - (w - 1.0f)) / w;               /* what rounding 1 + u lost */
    int32_t bits = nc_f32_to_bits(w);
    int32_t e = ((bits >> 23) & 0xff) - 127;
    float m = nc_bits_to_f32((bits & 0x007fffff) | 0x3f800000);  /* in [1, 2) */
    int big = m > 1.41421356f;
    m = big ? 0.5f * m : m;
    e = big ? e + 1 : e;
    float s = (m - 1.0f) / (m + 1.0f), z = s * s;
    float t = 1.0f / 9.0f;
    t = t * z + 1.0f / 7.0f;
    t = t * z + 1.0f / 5.0f;
    t = t * z + 1.0f / 3.0f;
    float logm = 2.0f * s + 2.0f * s * z * t;
    float ef = (float)e;
    return ef * ln2_hi + ((ef * ln2_lo + c) + logm);
}

/* e^x for x <= 0 (the sigmoid's e^-|x|): nc_vexpf's reduction and series, 2^n (n in [-150, 0]) built as
 * one normal scale 2^(n + 64) (the product with p exact) and one rounding by 2^-64, so subnormal results
 * come out as nc_vexpf's; no upper clamp. */
NC_VINLINE float nc_vexpnf(float x)
{
    const float log2e = 1.44269504088896341f;
    const float ln2_hi = 0.693145751953125f, ln2_lo = 1.42860682030941723e-6f;
    const float shifter = 12582912.0f;
    x = x < -104.0f ? -104.0f : x;
    float n = (x * log2e + shifter) - shifter;
    float r = (x - n * ln2_hi) - n * ln2_lo;
    float p = nc_vexp_series(r);
    return p * nc_bits_to_f32(((int32_t)n + 191) << 23) * 5.42101086242752217e-20f;   /* 2^-64 */
}

/* e^x - 1 for x in [-20, 0] (tanh's expm1(-2|x|)): x = n ln2 + r, |r| <= ln2/2, e^x - 1 =
 * 2^n expm1(r) + (2^n - 1) with expm1(r) by its series to r^8 (for n < 0 the terms have opposite signs
 * when r > 0, but |2^n - 1| >= 1/2 > |2^n expm1(r)|, so the sum loses under a bit; for n = 0 the result
 * is expm1(r) itself); 2^n a normal float (n >= -29). */
NC_VINLINE float nc_vexpm1nf(float x)
{
    const float log2e = 1.44269504088896341f;
    const float ln2_hi = 0.693145751953125f, ln2_lo = 1.42860682030941723e-6f;
    const float shifter = 12582912.0f;
    float n = (x * log2e + shifter) - shifter;
    float r = (x - n * ln2_hi) - n * ln2_lo;
    float q = 1.0f / 40320.0f;
    q = q * r + 1.0f / 5040.0f;
    q = q * r + 1.0f / 720.0f;
    q = q * r + 1.0f / 120.0f;
    q = q * r + 1.0f / 24.0f;
    q = q * r + 1.0f / 6.0f;
    q = q * r + 0.5f;
    q = r + (r * r) * q;                                  /* expm1(r) */
    float sc = nc_bits_to_f32(((int32_t)n + 127) << 23);  /* 2^n */
    return sc * q + (sc - 1.0f);
}

NC_VINLINE float nc_vtanhf(float x)
{
    /* tanh|x| = -u / (2 + u) with u = expm1(-2|x|) in (-1, 0]: no cancellation near 0; |x| >= 10 gives
     * u = -1 + 2e-9: tanh rounds to 1 there */
    float a = fabsf(x);
    a = a > 10.0f ? 10.0f : a;
    float u = nc_vexpm1nf(-2.0f * a);
    float t = -u / (2.0f + u);
    return x < 0.0f ? -t : t;
}

/* 1 / (1 + e^-x) without overflow: e^-|x| never overflows */
NC_VINLINE float nc_vsigmoidf(float x)
{
    float e = nc_vexpnf(-fabsf(x));
    float s = 1.0f / (1.0f + e);
    return x >= 0.0f ? s : e * s;
}

NC_VINLINE float nc_verfcf(float x)
{
    float z = fabsf(x);
    z = z > 10.5f ? 10.5f : z;                    /* erfc(10.5) = 1e-49 underflows anyway */
    float t = 1.0f / (1.0f + 0.5f * z);
    float u = (2.0f * t - 1.16f) * (1.0f / 0.84f);
    float g = -2.283840793e-05f;
    g = g * u + 6.076589863e-05f;
    g = g * u + 1.296002446e-04f;
    g = g * u - 5.734181050e-04f;
    g = g * u - 2.540959314e-04f;
    g = g * u + 3.871121089e-03f;
    g = g * u - 1.234037516e-03f;
    g = g * u - 3.014659544e-02f;
    g = g * u + 1.671637239e-02f;
    g = g * u + 5.746099230e-01f;
    g = g * u - 5.631567905e-01f;
    float zh = nc_bits_to_f32(nc_f32_to_bits(z) & (int32_t)0xfffff000);
    float r = (z - zh) * (z + zh);                /* z^2 - zh^2, exactly representable part */
    float e = t * nc_vexpf(-zh * zh) * nc_vexpf(g - r);
    return x >= 0.0f ? e : 2.0f - e;
}

#endif /* NC_VMATH_H */
