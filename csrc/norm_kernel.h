/* norm_kernel.h -- the row loops of the normalization kernels for ONE SIMD
 * level (NL_LEVEL 0 generic, 1 AVX2+FMA, 2 AVX-512), each over the rows
 * [r0, r1) of a (rows, C) row-major block. Included by norm_body.h once per
 * level and dtype, after real.h; the drivers in norm_body.h pick the level
 * at run time (nc_active_simd_level), so every level can be tested.
 *
 * Sums over rows are taken in double (float32 data is converted exactly),
 * four rows at a time: their sum goes into the accumulator, which cuts the
 * load/store traffic on the per-channel accumulators by four. */
#if NL_LEVEL == 2
#define NL_ATTR __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,fma")))
#define NL_FN(op) NC_NAME(op##_avx512)
#elif NL_LEVEL == 1
#define NL_ATTR __attribute__((target("avx2,fma")))
#define NL_FN(op) NC_NAME(op##_avx2)
#else
#define NL_ATTR
#define NL_FN(op) NC_NAME(op##_generic)
#endif

/* p1[c] = sum_r (x[r,c] - K[c]), p2[c] = sum_r (x[r,c] - K[c])^2: shifted sums (K is a sample of
 * each channel, so the variance S2/R - (S1/R)^2 loses no digits to a large mean). */
static NL_ATTR void NL_FN(bn_stats)(const REAL *x, const double *K, double *p1, double *p2, ptrdiff_t r0,
                                    ptrdiff_t r1, ptrdiff_t C)
{
    for (ptrdiff_t c = 0; c < C; c++) p1[c] = p2[c] = 0;
    ptrdiff_t r = r0;
    for (; r + 4 <= r1; r += 4) {
        const REAL *a = x + r * C, *b = a + C, *e = b + C, *f = e + C;
#pragma omp simd
        for (ptrdiff_t c = 0; c < C; c++) {
            double d0 = (double)a[c] - K[c], d1 = (double)b[c] - K[c];
            double d2 = (double)e[c] - K[c], d3 = (double)f[c] - K[c];
            p1[c] += (d0 + d1) + (d2 + d3);
            p2[c] += (d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3);
        }
    }
    for (; r < r1; r++) {
        const REAL *a = x + r * C;
#pragma omp simd
        for (ptrdiff_t c = 0; c < C; c++) {
            double d = (double)a[c] - K[c];
            p1[c] += d;
            p2[c] += d * d;
        }
    }
}

/* y[r,c] = (x[r,c] - m[c]) a[c] + b[c] */
static NL_ATTR void NL_FN(bn_affine)(const REAL *x, REAL *y, const REAL *m, const REAL *a, const REAL *b,
                                     ptrdiff_t r0, ptrdiff_t r1, ptrdiff_t C)
{
    for (ptrdiff_t r = r0; r < r1; r++) {
        const REAL *xr = x + r * C;
        REAL *yr = y + r * C;
#pragma omp simd
        for (ptrdiff_t c = 0; c < C; c++) yr[c] = (xr[c] - m[c]) * a[c] + b[c];
    }
}

/* pb[c] = sum_r dy[r,c], pg[c] = sum_r dy[r,c] (x[r,c] - mean[c]) */
static NL_ATTR void NL_FN(bn_grad_sums)(const REAL *x, const REAL *dy, const double *mean, double *pb,
                                        double *pg, ptrdiff_t r0, ptrdiff_t r1, ptrdiff_t C)
{
    for (ptrdiff_t c = 0; c < C; c++) pb[c] = pg[c] = 0;
    ptrdiff_t r = r0;
    for (; r + 4 <= r1; r += 4) {
        const REAL *x0 = x + r * C, *x1 = x0 + C, *x2 = x1 + C, *x3 = x2 + C;
        const REAL *g0 = dy + r * C, *g1 = g0 + C, *g2 = g1 + C, *g3 = g2 + C;
#pragma omp simd
        for (ptrdiff_t c = 0; c < C; c++) {
            double e0 = g0[c], e1 = g1[c], e2 = g2[c], e3 = g3[c];
            pb[c] += (e0 + e1) + (e2 + e3);
            pg[c] += (e0 * ((double)x0[c] - mean[c]) + e1 * ((double)x1[c] - mean[c]))
                     + (e2 * ((double)x2[c] - mean[c]) + e3 * ((double)x3[c] - mean[c]));
        }
    }
    for (; r < r1; r++) {
        const REAL *xr = x + r * C, *gr = dy + r * C;
#pragma omp simd
        for (ptrdiff_t c = 0; c < C; c++) {
            double e = gr[c];
            pb[c] += e;
            pg[c] += e * ((double)xr[c] - mean[c]);
        }
    }
}

/* dx[r,c] = k1[c] dy[r,c] + kx[c] (x[r,c] - m[c]) + k0[c] */
static NL_ATTR void NL_FN(bn_dx)(const REAL *x, const REAL *dy, REAL *dx, const REAL *m, const REAL *k1,
                                 const REAL *kx, const REAL *k0, ptrdiff_t r0, ptrdiff_t r1, ptrdiff_t C)
{
    for (ptrdiff_t r = r0; r < r1; r++) {
        const REAL *xr = x + r * C, *gr = dy + r * C;
        REAL *dr = dx + r * C;
#pragma omp simd
        for (ptrdiff_t c = 0; c < C; c++) dr[c] = k1[c] * gr[c] + kx[c] * (xr[c] - m[c]) + k0[c];
    }
}

/* dx[r,c] = k1[c] dy[r,c] */
static NL_ATTR void NL_FN(bn_scale)(const REAL *dy, REAL *dx, const REAL *k1, ptrdiff_t r0, ptrdiff_t r1,
                                    ptrdiff_t C)
{
    for (ptrdiff_t r = r0; r < r1; r++) {
        const REAL *gr = dy + r * C;
        REAL *dr = dx + r * C;
#pragma omp simd
        for (ptrdiff_t c = 0; c < C; c++) dr[c] = k1[c] * gr[c];
    }
}

/* Per row r: mean, var (two passes in double over the row, which is in cache),
 * inv = 1 / sqrt(var + eps); y = (x - mean) inv gamma + beta; stats[r] = mean,
 * stats[rows + r] = inv. */
static NL_ATTR void NL_FN(ln_forward)(const REAL *x, const REAL *gamma, const REAL *beta, REAL *y,
                                      double *stats, ptrdiff_t rows, ptrdiff_t r0, ptrdiff_t r1, ptrdiff_t C,
                                      double eps)
{
    for (ptrdiff_t r = r0; r < r1; r++) {
        const REAL *xr = x + r * C;
        REAL *yr = y + r * C;
        double s = 0, v = 0;
#pragma omp simd reduction(+ : s)
        for (ptrdiff_t c = 0; c < C; c++) s += xr[c];
        double mean = s / (double)C;
#pragma omp simd reduction(+ : v)
        for (ptrdiff_t c = 0; c < C; c++) {
            double d = (double)xr[c] - mean;
            v += d * d;
        }
        double inv = 1.0 / sqrt(v / (double)C + eps);
        stats[r] = mean;
        stats[rows + r] = inv;
        REAL m = (REAL)mean, iv = (REAL)inv;
#pragma omp simd
        for (ptrdiff_t c = 0; c < C; c++) yr[c] = (xr[c] - m) * iv * gamma[c] + beta[c];
    }
}

/* Per row r, with xhat = (x - mean) inv and g = dy gamma:
 * dx = inv (g - mean_c(g) - xhat mean_c(g xhat)) (when dx is not NULL), and
 * pg[c] += dy xhat, pb[c] += dy (when pg is not NULL; the caller zeroes them). */
static NL_ATTR void NL_FN(ln_backward)(const REAL *x, const REAL *dy, const REAL *gamma, const double *stats,
                                       REAL *dx, double *pg, double *pb, ptrdiff_t rows, ptrdiff_t r0,
                                       ptrdiff_t r1, ptrdiff_t C)
{
    for (ptrdiff_t r = r0; r < r1; r++) {
        const REAL *xr = x + r * C, *gr = dy + r * C;
        REAL m = (REAL)stats[r], iv = (REAL)stats[rows + r];
        if (dx) {
            double s1 = 0, s2 = 0;
#pragma omp simd reduction(+ : s1, s2)
            for (ptrdiff_t c = 0; c < C; c++) {
                REAL xh = (xr[c] - m) * iv, g = gr[c] * gamma[c];
                s1 += g;
                s2 += (double)g * xh;
            }
            REAL c1 = (REAL)(s1 / (double)C), c2 = (REAL)(s2 / (double)C);
            REAL *dr = dx + r * C;
#pragma omp simd
            for (ptrdiff_t c = 0; c < C; c++) {
                REAL xh = (xr[c] - m) * iv;
                dr[c] = iv * ((gr[c] * gamma[c] - c1) - xh * c2);
            }
        }
        if (pg) {
#pragma omp simd
            for (ptrdiff_t c = 0; c < C; c++) {
                REAL xh = (xr[c] - m) * iv;
                pg[c] += (double)gr[c] * xh;
                pb[c] += gr[c];
            }
        }
    }
}

#undef NL_ATTR
#undef NL_FN
