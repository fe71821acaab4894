/* norm_body.h -- batch and layer normalization over a (rows, C) block, one
 * fused kernel per direction, written once for float and double.
 *
 * Rows are cut into chunks whose size depends on the shape alone
 * (nc_norm_chunk_rows); each chunk's column sums go to its own slot of the
 * workspace and the slots are added in chunk order afterwards. So the
 * threads may take the chunks in any order and any number: the result is
 * bit-identical for every thread count. */

#define NL_LEVEL 0
#include "norm_kernel.h"
#undef NL_LEVEL
#if NC_NORM_X86
#define NL_LEVEL 1
#include "norm_kernel.h"
#undef NL_LEVEL
#define NL_LEVEL 2
#include "norm_kernel.h"
#undef NL_LEVEL
#endif

/* Batch norm, the part between the two passes: per channel, the statistics (training: from the
 * chunk sums; inference: the moving ones), the moving update, and the REAL coefficients of the
 * second pass, m = mean, a = gamma inv, b = beta. */
static void NC_NAME(bn_finish)(const REAL *gamma, const REAL *beta, REAL *moving_mean, REAL *moving_var,
                               double *stats, const double *work, REAL *m, REAL *a, REAL *b, ptrdiff_t rows,
                               ptrdiff_t C, ptrdiff_t nch, double momentum, double eps, int training)
{
    double *mean = stats, *inv = stats + C;
    if (training) {
        const double *K = work + 2 * nch * C;
        for (ptrdiff_t c = 0; c < C; c++) mean[c] = inv[c] = 0;
        for (ptrdiff_t k = 0; k < nch; k++) {       /* chunk order: the same sums for any nthreads */
            const double *p1 = work + 2 * k * C, *p2 = p1 + C;
            for (ptrdiff_t c = 0; c < C; c++) {
                mean[c] += p1[c];
                inv[c] += p2[c];
            }
        }
        REAL mom = (REAL)momentum, rest = (REAL)(1.0 - momentum);
        for (ptrdiff_t c = 0; c < C; c++) {
            double d = mean[c] / (double)rows;                   /* mean - K */
            double var = inv[c] / (double)rows - d * d;          /* biased, as Keras */
            if (var < 0) var = 0;
            mean[c] = K[c] + d;
            inv[c] = 1.0 / sqrt(var + eps);
            if (moving_mean) {
                /* Keras: moving = moving * momentum + batch * (1 - momentum) */
                moving_mean[c] = moving_mean[c] * mom + (REAL)mean[c] * rest;
                moving_var[c] = moving_var[c] * mom + (REAL)var * rest;
            }
        }
    } else {
        for (ptrdiff_t c = 0; c < C; c++) {
            mean[c] = moving_mean[c];
            inv[c] = 1.0 / sqrt((double)moving_var[c] + eps);
        }
    }
    for (ptrdiff_t c = 0; c < C; c++) {
        m[c] = (REAL)mean[c];
        a[c] = (REAL)(gamma[c] * inv[c]);
        b[c] = beta[c];
    }
}

/* the rows of chunk k: [k ch, min((k + 1) ch, rows)) */
#define NL_CHUNK(k) (k) * ch, ((k) + 1) * ch < rows ? ((k) + 1) * ch : rows

/* one chunk of each pass (the serial and the parallel paths call the same) */
static void NC_NAME(bn_stats_chunk)(int level, const REAL *x, const double *K, double *work, ptrdiff_t rows,
                                    ptrdiff_t C, ptrdiff_t ch, ptrdiff_t k)
{
    NL_CALL(level, bn_stats, x, K, work + 2 * k * C, work + (2 * k + 1) * C, NL_CHUNK(k), C);
}

static void NC_NAME(bn_grad_sums_chunk)(int level, const REAL *x, const REAL *dy, const double *mean, double *work,
                                        ptrdiff_t rows, ptrdiff_t C, ptrdiff_t ch, ptrdiff_t k)
{
    NL_CALL(level, bn_grad_sums, x, dy, mean, work + 2 * k * C, work + (2 * k + 1) * C, NL_CHUNK(k), C);
}

/* dx of chunk k: training through the statistics, inference dx = k1 dy */
static void NC_NAME(bn_dx_chunk)(int level, const REAL *x, const REAL *dy, REAL *dx, const REAL *m, const REAL *k1,
                                 const REAL *kx, const REAL *k0, int training, ptrdiff_t rows, ptrdiff_t C,
                                 ptrdiff_t ch, ptrdiff_t k)
{
    if (training) NL_CALL(level, bn_dx, x, dy, dx, m, k1, kx, k0, NL_CHUNK(k), C);
    else NL_CALL(level, bn_scale, dy, dx, k1, NL_CHUNK(k), C);
}

/* layer norm backward of chunk k, its column sums (when wanted) in the chunk's slot of work */
static void NC_NAME(ln_backward_chunk)(int level, const REAL *x, const REAL *dy, const REAL *gamma,
                                       const double *stats, REAL *dx, double *work, int sums, ptrdiff_t rows,
                                       ptrdiff_t C, ptrdiff_t ch, ptrdiff_t k)
{
    double *p = sums ? work + 2 * k * C : NULL;
    if (p)
        for (ptrdiff_t c = 0; c < 2 * C; c++) p[c] = 0;
    NL_CALL(level, ln_backward, x, dy, gamma, stats, dx, p, p ? p + C : NULL, rows, NL_CHUNK(k), C);
}

void NC_NAME(batchnorm_forward)(const REAL *x, const REAL *gamma, const REAL *beta, REAL *moving_mean,
                                REAL *moving_var, REAL *y, double *stats, double *work, ptrdiff_t rows,
                                ptrdiff_t C, double momentum, double eps, int training, int nthreads)
{
    const ptrdiff_t ch = nc_norm_chunk_rows(rows, C), nch = (rows + ch - 1) / ch;
    double *K = work + 2 * nch * C;
    REAL *m = (REAL *)(K + C), *a = m + C, *b = a + C;
    const int level = nc_active_simd_level();
    int nt = nc_team_size(nthreads, 4.0 * (double)rows * (double)C);
    if (nt > nch) nt = (int)nch;
    if (training)
        for (ptrdiff_t c = 0; c < C; c++) K[c] = x[c];
    if (nt <= 1) {
        for (ptrdiff_t k = 0; training && k < nch; k++)
            NC_NAME(bn_stats_chunk)(level, x, K, work, rows, C, ch, k);
        NC_NAME(bn_finish)(gamma, beta, moving_mean, moving_var, stats, work, m, a, b, rows, C, nch, momentum,
                           eps, training);
        NL_CALL(level, bn_affine, x, y, m, a, b, 0, rows, C);
        return;
    }
#pragma omp parallel num_threads(nt)
    {
        if (training) {
#pragma omp for schedule(dynamic, 1)
            for (ptrdiff_t k = 0; k < nch; k++) NC_NAME(bn_stats_chunk)(level, x, K, work, rows, C, ch, k);
        }
#pragma omp single
        NC_NAME(bn_finish)(gamma, beta, moving_mean, moving_var, stats, work, m, a, b, rows, C, nch, momentum,
                           eps, training);
#pragma omp for schedule(dynamic, 1)
        for (ptrdiff_t k = 0; k < nch; k++) NL_CALL(level, bn_affine, x, y, m, a, b, NL_CHUNK(k), C);
    }
}

/* Batch norm backward, between the passes: dbeta = sum dy, dgamma = inv sum dy (x - mean), and the
 * REAL coefficients of dx (training: dx = k1 dy + kx (x - m) + k0; inference: dx = k1 dy). */
static void NC_NAME(bn_grad_finish)(const REAL *gamma, const double *stats, const double *work, REAL *dgamma,
                                    REAL *dbeta, REAL *m, REAL *k1, REAL *kx, REAL *k0, double *sb, double *sg,
                                    ptrdiff_t rows, ptrdiff_t C, ptrdiff_t nch, int sums, int training)
{
    const double *mean = stats, *inv = stats + C;
    if (sums) {
        for (ptrdiff_t c = 0; c < C; c++) sb[c] = sg[c] = 0;
        for (ptrdiff_t k = 0; k < nch; k++) {
            const double *pb = work + 2 * k * C, *pg = pb + C;
            for (ptrdiff_t c = 0; c < C; c++) {
                sb[c] += pb[c];
                sg[c] += pg[c];
            }
        }
        for (ptrdiff_t c = 0; c < C; c++) {
            sg[c] *= inv[c];                               /* dgamma = sum dy xhat */
            if (dgamma) dgamma[c] = (REAL)sg[c];
            if (dbeta) dbeta[c] = (REAL)sb[c];
        }
    }
    for (ptrdiff_t c = 0; c < C; c++) {
        double ga = gamma[c] * inv[c];
        k1[c] = (REAL)ga;
        if (training) {
            /* dx = gamma inv (dy - dbeta/R - xhat dgamma/R), xhat = (x - mean) inv */
            m[c] = (REAL)mean[c];
            kx[c] = (REAL)(-ga * inv[c] * sg[c] / (double)rows);
            k0[c] = (REAL)(-ga * sb[c] / (double)rows);
        }
    }
}

void NC_NAME(batchnorm_backward)(const REAL *x, const REAL *dy, const REAL *gamma, const double *stats, REAL *dx,
                                 REAL *dgamma, REAL *dbeta, double *work, ptrdiff_t rows, ptrdiff_t C, int training,
                                 int nthreads)
{
    const ptrdiff_t ch = nc_norm_chunk_rows(rows, C), nch = (rows + ch - 1) / ch;
    double *sb = work + 2 * nch * C, *sg = sb + C;
    REAL *m = (REAL *)(sg + C), *k1 = m + C, *kx = k1 + C, *k0 = kx + C;
    const int sums = training || dgamma || dbeta;
    const int level = nc_active_simd_level();
    int nt = nc_team_size(nthreads, 6.0 * (double)rows * (double)C);
    if (nt > nch) nt = (int)nch;
    if (nt <= 1) {
        for (ptrdiff_t k = 0; sums && k < nch; k++)
            NC_NAME(bn_grad_sums_chunk)(level, x, dy, stats, work, rows, C, ch, k);
        NC_NAME(bn_grad_finish)(gamma, stats, work, dgamma, dbeta, m, k1, kx, k0, sb, sg, rows, C, nch, sums,
                                training);
        for (ptrdiff_t k = 0; dx && k < nch; k++)
            NC_NAME(bn_dx_chunk)(level, x, dy, dx, m, k1, kx, k0, training, rows, C, ch, k);
        return;
    }
#pragma omp parallel num_threads(nt)
    {
        if (sums) {
#pragma omp for schedule(dynamic, 1)
            for (ptrdiff_t k = 0; k < nch; k++) NC_NAME(bn_grad_sums_chunk)(level, x, dy, stats, work, rows, C, ch, k);
        }
#pragma omp single
        NC_NAME(bn_grad_finish)(gamma, stats, work, dgamma, dbeta, m, k1, kx, k0, sb, sg, rows, C, nch, sums,
                                training);
        if (dx) {
#pragma omp for schedule(dynamic, 1)
            for (ptrdiff_t k = 0; k < nch; k++)
                NC_NAME(bn_dx_chunk)(level, x, dy, dx, m, k1, kx, k0, training, rows, C, ch, k);
        }
    }
}

void NC_NAME(layernorm_forward)(const REAL *x, const REAL *gamma, const REAL *beta, REAL *y, double *stats,
                                ptrdiff_t rows, ptrdiff_t C, double eps, int nthreads)
{
    const ptrdiff_t ch = nc_norm_chunk_rows(rows, C), nch = (rows + ch - 1) / ch;
    const int level = nc_active_simd_level();
    int nt = nc_team_size(nthreads, 5.0 * (double)rows * (double)C);
    if (nt > nch) nt = (int)nch;
    if (nt <= 1) {
        NL_CALL(level, ln_forward, x, gamma, beta, y, stats, rows, 0, rows, C, eps);
        return;
    }
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
    for (ptrdiff_t k = 0; k < nch; k++) NL_CALL(level, ln_forward, x, gamma, beta, y, stats, rows, NL_CHUNK(k), C, eps);
}

/* the chunk sums of layer norm backward added in chunk order: dgamma = sum dy xhat, dbeta = sum dy */
static void NC_NAME(ln_grad_finish)(const double *work, REAL *dgamma, REAL *dbeta, ptrdiff_t C, ptrdiff_t nch)
{
    double *acc = (double *)work + 2 * nch * C;
    for (ptrdiff_t c = 0; c < 2 * C; c++) acc[c] = 0;
    for (ptrdiff_t k = 0; k < nch; k++) {
        const double *p = work + 2 * k * C;
        for (ptrdiff_t c = 0; c < 2 * C; c++) acc[c] += p[c];
    }
    for (ptrdiff_t c = 0; c < C; c++) {
        if (dgamma) dgamma[c] = (REAL)acc[c];
        if (dbeta) dbeta[c] = (REAL)acc[C + c];
    }
}

void NC_NAME(layernorm_backward)(const REAL *x, const REAL *dy, const REAL *gamma, const double *stats, REAL *dx,
                                 REAL *dgamma, REAL *dbeta, double *work, ptrdiff_t rows, ptrdiff_t C, int nthreads)
{
    const ptrdiff_t ch = nc_norm_chunk_rows(rows, C), nch = (rows + ch - 1) / ch;
    const int sums = dgamma || dbeta;
    const int level = nc_active_simd_level();
    int nt = nc_team_size(nthreads, 8.0 * (double)rows * (double)C);
    if (nt > nch) nt = (int)nch;
    if (nt <= 1) {
        for (ptrdiff_t k = 0; k < nch; k++)      /* in chunks, so that the sums match the parallel path */
            NC_NAME(ln_backward_chunk)(level, x, dy, gamma, stats, dx, work, sums, rows, C, ch, k);
    } else {
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
        for (ptrdiff_t k = 0; k < nch; k++)
            NC_NAME(ln_backward_chunk)(level, x, dy, gamma, stats, dx, work, sums, rows, C, ch, k);
    }
    if (sums) NC_NAME(ln_grad_finish)(work, dgamma, dbeta, C, nch);
}

#undef NL_CHUNK
