/* loss_body.h -- fused losses (value + gradient in one pass), written once for
 * REAL = float/double and included by loss.c once per SIMD level
 * (simd_levels.h) and once for the entry points.
 *
 * Design
 *   - One row (sample) at a time: the row helpers return loss_i in double and
 *     write prob / d for that row. Scalars per row (the gradient coefficient
 *     c = grad_scale * w_i [/ k]) are computed in double and rounded once.
 *   - Inner loops are `omp simd` reductions: their order depends on the vector
 *     width of the SIMD level in use, never on threads.
 *   - Rows are grouped into chunks whose size depends only on k (never on the
 *     thread count). Each chunk's sum_i w_i loss_i is formed in row order and
 *     the chunk sums are added in chunk order, so the returned value is
 *     bit-identical for any number of threads, and equal to the serial path.
 *   - Cross-entropies work in the log domain: log p = z - max - log(sum e^(z - max))
 *     and log sigmoid(z) = -softplus(-z), so logits of +-1e4 neither overflow
 *     nor lose the clip. Keras clips probabilities to [1e-7, 1 - 1e-7] in the
 *     loss value; here that is the same clip applied to log p. The gradient is
 *     that of the unclipped loss (p - y), as Keras's fused gradient is.
 */
#ifdef NC_LEVEL

/* max of z over k into *mx; returns sum_j exp(z_j - max) in double and, when e
 * is not NULL, writes exp(z_j - max) into it. Shared by both softmax losses. */
NC_VINLINE double NC_NAME(sumexp_row)(const REAL *z, REAL *e, ptrdiff_t k, REAL *mx_out)
{
    REAL mx = z[0];
    for (ptrdiff_t j = 1; j < k; j++) mx = z[j] > mx ? z[j] : mx;
    double s = 0;
    if (e) {
#pragma omp simd reduction(+ : s)
        for (ptrdiff_t j = 0; j < k; j++) { e[j] = VEXP(z[j] - mx); s += (double)e[j]; }
    } else {
#pragma omp simd reduction(+ : s)
        for (ptrdiff_t j = 0; j < k; j++) s += (double)VEXP(z[j] - mx);
    }
    *mx_out = mx;
    return s;
}

/* One row of softmax cross-entropy. e receives exp(z - max) and then p; it is
 * prob when given, else d, else NULL (loss only). */
NC_VINLINE double NC_NAME(sxent_row)(const REAL *z, const REAL *y, REAL *prob, REAL *d, ptrdiff_t k, double c)
{
    REAL mx;
    REAL *e = prob ? prob : d;
    double s = NC_NAME(sumexp_row)(z, e, k, &mx);
    double logs = log(s);
    double loss = 0, ysum = 0;
#pragma omp simd reduction(+ : loss, ysum)
    for (ptrdiff_t j = 0; j < k; j++) {
        /* log clip(p_j) = clip(z_j - max - log s, log eps, log(1 - eps)) */
        double lp = (double)(z[j] - mx) - logs;
        lp = lp < NC_LOG_EPS ? NC_LOG_EPS : (lp > NC_LOG_1MEPS ? NC_LOG_1MEPS : lp);
        loss += (double)y[j] * -lp;
        ysum += (double)y[j];
    }
    if (e) {
        REAL inv = (REAL)(1.0 / s);
        /* d(-sum y log p)/dz = p sum(y) - y, which is p - y for targets summing to 1 */
        REAL cr = (REAL)c, cy = (REAL)(c * ysum);
        if (prob) {
            for (ptrdiff_t j = 0; j < k; j++) prob[j] *= inv;
            if (d)
                for (ptrdiff_t j = 0; j < k; j++) d[j] = cy * prob[j] - cr * y[j];
        } else {
            for (ptrdiff_t j = 0; j < k; j++) d[j] = cy * (d[j] * inv) - cr * y[j];
        }
    }
    return loss;
}

/* One row of sparse softmax cross-entropy with integer label t. */
NC_VINLINE double NC_NAME(ssxent_row)(const REAL *z, int64_t t, REAL *prob, REAL *d, ptrdiff_t k, double c)
{
    REAL mx;
    REAL *e = prob ? prob : d;
    double s = NC_NAME(sumexp_row)(z, e, k, &mx);
    double lp = (double)(z[t] - mx) - log(s);
    lp = lp < NC_LOG_EPS ? NC_LOG_EPS : (lp > NC_LOG_1MEPS ? NC_LOG_1MEPS : lp);
    if (e) {
        REAL inv = (REAL)(1.0 / s), cr = (REAL)c;
        if (prob) {
            for (ptrdiff_t j = 0; j < k; j++) prob[j] *= inv;
            if (d) for (ptrdiff_t j = 0; j < k; j++) d[j] = cr * prob[j];
        } else {
            for (ptrdiff_t j = 0; j < k; j++) d[j] = cr * (d[j] * inv);
        }
        if (d) d[t] -= cr;  /* gradient_j = p_j - (j == t) */
    }
    return -lp;
}

/* One row of sigmoid binary cross-entropy (mean over the k columns). */
NC_VINLINE double NC_NAME(bce_row)(const REAL *z, const REAL *y, REAL *prob, REAL *d, ptrdiff_t k, double c)
{
    double loss = 0;
    REAL cr = (REAL)(c / (double)k);
#pragma omp simd reduction(+ : loss)
    for (ptrdiff_t j = 0; j < k; j++) {
        REAL zj = z[j];
        REAL e = VEXP(-FABS(zj));                /* in (0, 1]: never overflows */
        REAL l1pe = VLOG1P(e);
        REAL p = (zj >= 0 ? (REAL)1 : e) / ((REAL)1 + e);
        /* log p = -softplus(-z), log(1 - p) = -softplus(z), each clipped like p */
        double lp = -(double)((zj < 0 ? -zj : (REAL)0) + l1pe);
        double lq = -(double)((zj > 0 ? zj : (REAL)0) + l1pe);
        lp = lp < NC_LOG_EPS ? NC_LOG_EPS : (lp > NC_LOG_1MEPS ? NC_LOG_1MEPS : lp);
        lq = lq < NC_LOG_EPS ? NC_LOG_EPS : (lq > NC_LOG_1MEPS ? NC_LOG_1MEPS : lq);
        loss += -((double)y[j] * lp + (1.0 - (double)y[j]) * lq);
        if (prob) prob[j] = p;
        if (d) d[j] = cr * (p - y[j]);           /* gradient = (p - y) / k */
    }
    return loss / (double)k;
}

NC_VINLINE double NC_NAME(mse_row)(const REAL *yhat, const REAL *y, REAL *d, ptrdiff_t k, double c)
{
    /* the residual in double is exact for float inputs; the loss never depends on d */
    double loss = 0;
    REAL cr = (REAL)(2.0 * c / (double)k);
    if (d) {
#pragma omp simd reduction(+ : loss)
        for (ptrdiff_t j = 0; j < k; j++) {
            double r = (double)yhat[j] - (double)y[j];
            loss += r * r;
            d[j] = cr * (REAL)r;                 /* gradient = 2 (yhat - y) / k */
        }
    } else {
#pragma omp simd reduction(+ : loss)
        for (ptrdiff_t j = 0; j < k; j++) {
            double r = (double)yhat[j] - (double)y[j];
            loss += r * r;
        }
    }
    return loss / (double)k;
}

NC_VINLINE double NC_NAME(mae_row)(const REAL *yhat, const REAL *y, REAL *d, ptrdiff_t k, double c)
{
    double loss = 0;
    REAL cr = (REAL)(c / (double)k);
    if (d) {
#pragma omp simd reduction(+ : loss)
        for (ptrdiff_t j = 0; j < k; j++) {
            double r = (double)yhat[j] - (double)y[j];
            loss += fabs(r);
            d[j] = r > 0 ? cr : (r < 0 ? -cr : (REAL)0);  /* gradient = sign(yhat - y) / k, sign(0) = 0 */
        }
    } else {
#pragma omp simd reduction(+ : loss)
        for (ptrdiff_t j = 0; j < k; j++) loss += fabs((double)yhat[j] - (double)y[j]);
    }
    return loss / (double)k;
}

/* The driver shared by the five losses: `kind` picks the row helper. It runs
 * row chunks serially (team of 1) or over an OpenMP team, and always adds the
 * chunk sums in chunk order. */
static double NC_NAME(loss_chunk)(int kind, const REAL *z, const REAL *y, const int64_t *label, const REAL *w,
                                  REAL *prob, REAL *d, ptrdiff_t r0, ptrdiff_t r1, ptrdiff_t k,
                                  double grad_scale)
{
    double sum = 0;
    for (ptrdiff_t i = r0; i < r1; i++) {
        double wi = w ? (double)w[i] : 1.0;
        double c = grad_scale * wi, li;
        const REAL *zi = z + i * k, *yi = y ? y + i * k : NULL;
        REAL *pi = prob ? prob + i * k : NULL, *di = d ? d + i * k : NULL;
        switch (kind) {
        case NC_LOSS_SXENT: li = NC_NAME(sxent_row)(zi, yi, pi, di, k, c); break;
        case NC_LOSS_SSXENT: li = NC_NAME(ssxent_row)(zi, label[i], pi, di, k, c); break;
        case NC_LOSS_BCE: li = NC_NAME(bce_row)(zi, yi, pi, di, k, c); break;
        case NC_LOSS_MSE: li = NC_NAME(mse_row)(zi, yi, di, k, c); break;
        default: li = NC_NAME(mae_row)(zi, yi, di, k, c); break;
        }
        sum += wi * li;
    }
    return sum;
}

static double NC_NAME(loss_driver)(int kind, const REAL *z, const REAL *y, const int64_t *label, const REAL *w,
                                   REAL *prob, REAL *d, ptrdiff_t n, ptrdiff_t k, double grad_scale,
                                   int nthreads, double work_per_elem)
{
    if (n <= 0 || k <= 0) return 0.0;
    /* rows per chunk depend on k only: the combination order is fixed by the shape */
    ptrdiff_t rows = NC_LOSS_CHUNK / k;
    if (rows < 1) rows = 1;
    ptrdiff_t nchunks = (n + rows - 1) / rows;
    double total = 0;
    int nt = nc_team_size(nthreads, (double)n * (double)k * work_per_elem);
    if (nt > nchunks) nt = (int)nchunks;
    if (nt <= 1) {
        for (ptrdiff_t c = 0; c < nchunks; c++) {
            ptrdiff_t r0 = c * rows, r1 = r0 + rows < n ? r0 + rows : n;
            total += NC_NAME(loss_chunk)(kind, z, y, label, w, prob, d, r0, r1, k, grad_scale);
        }
        return total;
    }
    double partial[NC_LOSS_BATCH];
    for (ptrdiff_t c0 = 0; c0 < nchunks; c0 += NC_LOSS_BATCH) {
        ptrdiff_t cn = nchunks - c0 < NC_LOSS_BATCH ? nchunks - c0 : NC_LOSS_BATCH;
/* dynamic: when a thread's core is busy with other work, the others take its chunks
 * (each chunk writes its own outputs, so the result does not depend on who runs it) */
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
        for (ptrdiff_t c = 0; c < cn; c++) {
            ptrdiff_t r0 = (c0 + c) * rows, r1 = r0 + rows < n ? r0 + rows : n;
            partial[c] = NC_NAME(loss_chunk)(kind, z, y, label, w, prob, d, r0, r1, k, grad_scale);
        }
        for (ptrdiff_t c = 0; c < cn; c++) total += partial[c];
    }
    return total;
}

double NC_NAME(softmax_xent)(const REAL *z, const REAL *y, const REAL *w, REAL *prob, REAL *d,
                             ptrdiff_t n, ptrdiff_t k, double grad_scale, int nthreads)
{
    return NC_NAME(loss_driver)(NC_LOSS_SXENT, z, y, NULL, w, prob, d, n, k, grad_scale, nthreads, 16.0);
}

double NC_NAME(sparse_softmax_xent)(const REAL *z, const int64_t *label, const REAL *w, REAL *prob, REAL *d,
                                    ptrdiff_t n, ptrdiff_t k, double grad_scale, int nthreads)
{
    return NC_NAME(loss_driver)(NC_LOSS_SSXENT, z, NULL, label, w, prob, d, n, k, grad_scale, nthreads, 12.0);
}

double NC_NAME(sigmoid_bce)(const REAL *z, const REAL *y, const REAL *w, REAL *prob, REAL *d,
                            ptrdiff_t n, ptrdiff_t k, double grad_scale, int nthreads)
{
    return NC_NAME(loss_driver)(NC_LOSS_BCE, z, y, NULL, w, prob, d, n, k, grad_scale, nthreads, 24.0);
}

double NC_NAME(mse)(const REAL *yhat, const REAL *y, const REAL *w, REAL *d,
                    ptrdiff_t n, ptrdiff_t k, double grad_scale, int nthreads)
{
    return NC_NAME(loss_driver)(NC_LOSS_MSE, yhat, y, NULL, w, NULL, d, n, k, grad_scale, nthreads, 2.0);
}

double NC_NAME(mae)(const REAL *yhat, const REAL *y, const REAL *w, REAL *d,
                    ptrdiff_t n, ptrdiff_t k, double grad_scale, int nthreads)
{
    return NC_NAME(loss_driver)(NC_LOSS_MAE, yhat, y, NULL, w, NULL, d, n, k, grad_scale, nthreads, 2.0);
}

#else /* the entry points: the copies of the level in use */

double NC_NAME(softmax_xent)(const REAL *z, const REAL *y, const REAL *w, REAL *prob, REAL *d,
                             ptrdiff_t n, ptrdiff_t k, double grad_scale, int nthreads)
{
    return NC_PICK(softmax_xent)(z, y, w, prob, d, n, k, grad_scale, nthreads);
}

double NC_NAME(sparse_softmax_xent)(const REAL *z, const int64_t *label, const REAL *w, REAL *prob, REAL *d,
                                    ptrdiff_t n, ptrdiff_t k, double grad_scale, int nthreads)
{
    return NC_PICK(sparse_softmax_xent)(z, label, w, prob, d, n, k, grad_scale, nthreads);
}

double NC_NAME(sigmoid_bce)(const REAL *z, const REAL *y, const REAL *w, REAL *prob, REAL *d,
                            ptrdiff_t n, ptrdiff_t k, double grad_scale, int nthreads)
{
    return NC_PICK(sigmoid_bce)(z, y, w, prob, d, n, k, grad_scale, nthreads);
}

double NC_NAME(mse)(const REAL *yhat, const REAL *y, const REAL *w, REAL *d,
                    ptrdiff_t n, ptrdiff_t k, double grad_scale, int nthreads)
{
    return NC_PICK(mse)(yhat, y, w, d, n, k, grad_scale, nthreads);
}

double NC_NAME(mae)(const REAL *yhat, const REAL *y, const REAL *w, REAL *d,
                    ptrdiff_t n, ptrdiff_t k, double grad_scale, int nthreads)
{
    return NC_PICK(mae)(yhat, y, w, d, n, k, grad_scale, nthreads);
}

#endif /* NC_LEVEL */
