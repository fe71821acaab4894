/* vmath_check.c -- accuracy of csrc/vmath.h against double libm, built by
 * tests/test_vmath.py once per instruction set (-march=x86-64, -v3, -v4) so
 * every variant that NC_CLONES can select is checked on any machine able to
 * run it. Prints "name max_ulp worst_x" per function. */
#include <math.h>
#include <stdio.h>
#include "vmath.h"

#define N 2000000
static float xs[N], ys[N];


static float softplus_f(float x) { return (x > 0.0f ? x : 0.0f) + nc_vlog1pf(nc_vexpf(-fabsf(x))); }

static double ulps(float got, double want)
{
    if (isinf(want) || fabs(want) > 3.4028234663852886e38) return isinf(got) ? 0.0 : 1e9;
    double u = fabs(want) < 0x1p-126 ? 0x1p-149 : ldexp(1.0, ilogb(want) - 23);
    return fabs((double)got - want) / u;
}

int main(void)
{
    const char *names[] = {"exp", "expm1", "log1p", "tanh", "sigmoid", "softplus", "erfc"};
    for (int f = 0; f < 7; f++) {
        double lo = f == 2 ? 0.0 : (f == 1 ? -30.0 : (f == 6 ? -12.0 : -110.0)),
               hi = f == 2 ? 1.0 : (f == 1 ? 30.0 : (f == 6 ? 12.0 : 95.0));
        for (int i = 0; i < N; i++) xs[i] = (float)(lo + (hi - lo) * i / (N - 1.0));
        for (int i = 0; i < N / 4; i++)   /* small magnitudes, where cancellation would show */
            xs[i] = (float)((f == 2 || (i & 1) ? 1 : -1) * ldexp(1.0 + (double)i / N, -(i % 40)));
#pragma omp simd
        for (int i = 0; i < N; i++) {
            float x = xs[i];
            ys[i] = f == 0 ? nc_vexpf(x) : f == 1 ? nc_vexpm1f(x) : f == 2 ? nc_vlog1pf(x)
                  : f == 3 ? nc_vtanhf(x) : f == 4 ? nc_vsigmoidf(x) : f == 5 ? softplus_f(x) : nc_verfcf(x);
        }
        double worst = 0;
        float wx = 0;
        for (int i = 0; i < N; i++) {
            double x = xs[i], w;
            switch (f) {
            case 0: w = exp(x); break;
            case 1: w = expm1(x); break;
            case 2: w = log1p(x); break;
            case 3: w = tanh(x); break;
            case 4: w = 1.0 / (1.0 + exp(-x)); break;
            case 5: w = (x > 0 ? x : 0) + log1p(exp(-fabs(x))); break;
            default: w = erfc(x); break;
            }
            double e = ulps(ys[i], w);
            /* subnormal results carry fewer significant bits: allow 4 units of the smallest subnormal */
            if (fabs(w) < 0x1p-126) e = fabs((double)ys[i] - w) / 0x1p-149 > 4 ? 1e9 : 0;
            if (e > worst) { worst = e; wx = xs[i]; }
        }
        printf("%s %.3f %g\n", names[f], worst, wx);
    }
    return 0;
}
