/* conv_body.h -- im2col, col2im, max and average pooling, written once for REAL = float/double.
 * Included by conv.c once per SIMD level (simd_levels.h) and once for the entry points;
 * see conv.c for the layout and the threading rules. */
#ifdef NC_LEVEL

#include "pool2_body.h"   /* the pair's 2x2 max */

/* The cols row of output pixel (oh, ow) of image xb: K = kh kw c values at d. */
static inline void NC_NAME(im2col_pixel)(const nc_conv_geom *g, const REAL *xb, ptrdiff_t oh, ptrdiff_t ow, REAL *d)
{
    const ptrdiff_t H = g->h, W = g->w, C = g->c;
    const ptrdiff_t w0 = ow * g->sw - g->pl;
    for (ptrdiff_t i = 0; i < g->kh; i++, d += g->kw * C) {
        const ptrdiff_t ih = oh * g->sh - g->pt + i * g->dh;
        if (ih < 0 || ih >= H) {                         /* a padding row of the window */
            memset(d, 0, (size_t)(g->kw * C) * sizeof(REAL));
            continue;
        }
        const REAL *xr = xb + ih * W * C;
        if (g->dw == 1 && w0 >= 0 && w0 + g->kw <= W) {  /* the window row is kw c contiguous values */
            memcpy(d, xr + w0 * C, (size_t)(g->kw * C) * sizeof(REAL));
            continue;
        }
        for (ptrdiff_t j = 0; j < g->kw; j++) {
            const ptrdiff_t iw = w0 + j * g->dw;
            if (iw < 0 || iw >= W) memset(d + j * C, 0, (size_t)C * sizeof(REAL));
            else memcpy(d + j * C, xr + iw * C, (size_t)C * sizeof(REAL));
        }
    }
}

/* Pixels ow0 .. ow0 + cnt - 1 of output row oh of image xb into d (cols rows of K). Where the window lies
 * inside the image and its runs (kw c values a window row, or c a tap when dilated) are at most
 * NC_COL_RUN long, each run is one fixed-size copy of NC_COL_RUN values (a vector load and store, no
 * memcpy call: a 3x3 kernel on one channel copies runs of 3), which writes past the run's end: the
 * later runs, written after it, cover that. Only the first `fast` pixels may do so (the caller keeps the
 * writes inside its rows) and only where the read stays inside x (xend). The rest: exact copies. */
static void NC_NAME(im2col_segment)(const nc_conv_geom *g, const REAL *xb, const REAL *xend, ptrdiff_t oh,
                                    ptrdiff_t ow0, ptrdiff_t cnt, ptrdiff_t fast, REAL *d)
{
    const ptrdiff_t H = g->h, W = g->w, C = g->c, K = g->kh * g->kw * C;
    const ptrdiff_t h0 = oh * g->sh - g->pt;
    const ptrdiff_t run = g->dw == 1 ? g->kw * C : C, nrun = g->dw == 1 ? 1 : g->kw;
    ptrdiff_t lo = ow0, hi = ow0;                          /* [lo, hi): the pixels copied a run at a time */
    const ptrdiff_t right = W - 1 - (g->kw - 1) * g->dw + g->pl;   /* the window inside: ow sw <= right */
    if (h0 >= 0 && h0 + (g->kh - 1) * g->dh < H && run <= NC_COL_RUN && right >= 0) {
        lo = nc_imin(nc_imax(ow0, (g->pl + g->sw - 1) / g->sw), ow0 + cnt);
        hi = nc_imin(ow0 + nc_imin(cnt, fast), right / g->sw + 1);
        /* the last run's start in the window's last row, at pixel 0: NC_COL_RUN values are read from it */
        const REAL *xl = xb + (h0 + (g->kh - 1) * g->dh) * W * C + ((g->kw - 1) * g->dw - g->pl) * C;
        while (hi > lo && xend - (xl + (hi - 1) * g->sw * C) < NC_COL_RUN) hi--;
        if (hi < lo) hi = lo;
    }
    ptrdiff_t ow = ow0;
    for (; ow < lo; ow++, d += K) NC_NAME(im2col_pixel)(g, xb, oh, ow, d);
    const REAL *x0 = xb + (h0 * W - g->pl) * C;
    const ptrdiff_t rstride = g->dh * W * C, pstride = g->sw * C, jstride = g->dw * C, kh = g->kh;
    for (; ow < hi; ow++, d += K) {
        const REAL *s = x0 + ow * pstride;
        REAL *dd = d;
        for (ptrdiff_t i = 0; i < kh; i++, s += rstride)
            for (ptrdiff_t j = 0; j < nrun; j++, dd += run) memcpy(dd, s + j * jstride, NC_COL_RUN * sizeof(REAL));
    }
    for (; ow < ow0 + cnt; ow++, d += K) NC_NAME(im2col_pixel)(g, xb, oh, ow, d);
}

/* Rows [r0, r0 + rows) of the cols matrix (r = (b oh + i) ow + j) into dst, row stride K; nothing is
 * written outside them (the last pixels, whose fixed-size copies would reach past, copy exactly). */
void NC_NAME(im2col_pixels)(const nc_conv_geom *g, const REAL *x, ptrdiff_t r0, ptrdiff_t rows, REAL *dst)
{
    const ptrdiff_t K = g->kh * g->kw * g->c, per_image = g->oh * g->ow, hwc = g->h * g->w * g->c;
    if (rows <= 0) return;
    const ptrdiff_t tail = (NC_COL_RUN - 1) / K + 1;       /* pixels that a run's overshoot can reach */
    ptrdiff_t q = r0 % per_image, oh = q / g->ow, ow = q % g->ow;
    const REAL *xb = x + r0 / per_image * hwc, *xend = x + g->n * hwc;
    for (ptrdiff_t r = 0; r < rows;) {                    /* a segment of one output row at a time */
        const ptrdiff_t cnt = nc_imin(g->ow - ow, rows - r);
        NC_NAME(im2col_segment)(g, xb, xend, oh, ow, cnt, rows - tail - r, dst + r * K);
        r += cnt, ow = 0;
        if (++oh == g->oh) oh = 0, xb += hwc;
    }
}

/* One output row (image b, output row oh) of the cols matrix: Wo rows of K = kh kw c. */
static void NC_NAME(im2col_row)(const nc_conv_geom *g, const REAL *x, REAL *cols, ptrdiff_t b, ptrdiff_t oh)
{
    NC_NAME(im2col_pixels)(g, x, (b * g->oh + oh) * g->ow, g->ow, cols + (b * g->oh + oh) * g->ow * g->kh * g->kw * g->c);
}

void NC_NAME(im2col)(const nc_conv_geom *g, const REAL *x, REAL *cols, int nthreads)
{
    const ptrdiff_t rows = g->n * g->oh;
    int nt = nc_team_size(nthreads, (double)rows * (double)(g->ow * g->kh * g->kw * g->c));
    if (nt <= 1) {
        for (ptrdiff_t r = 0; r < rows; r++) NC_NAME(im2col_row)(g, x, cols, r / g->oh, r % g->oh);
        return;
    }
#pragma omp parallel for schedule(dynamic, 4) num_threads(nt) /* a busy core's share moves */
    for (ptrdiff_t r = 0; r < rows; r++) NC_NAME(im2col_row)(g, x, cols, r / g->oh, r % g->oh);
}

/* ---- Conv2D + relu (or linear) + MaxPooling2D(2x2, stride 2, 'valid') fused ----
 * The conv output (n, oh, ow, f) is pooled to (n, oh / 2, ow / 2, f) (an odd last row or column is
 * dropped, as a 'valid' pool drops it); ix (uint8, the pooled shape) names the window's winner,
 * 2 di + dj, under maxpool_forward's rule (the taps in row-major order, the first maximum wins, a NaN
 * wins): the same y and the same argmax as the unfused pair. relu(max z) = max relu(z), so the pooled
 * y also says relu' at the winner: backward needs yp, ix and the pooled gradient alone. */

/* prows pooled rows (pw pixels of f) from t: the 2 prows conv output rows (ow pixels of f) under them. */
static void NC_NAME(pool2_rows)(const REAL *t, ptrdiff_t ow, ptrdiff_t f, ptrdiff_t prows, ptrdiff_t pw,
                                REAL *yp, uint8_t *ix)
{
    for (ptrdiff_t p = 0; p < prows; p++) {
        const REAL *r0 = t + 2 * p * ow * f, *r1 = r0 + ow * f;
        for (ptrdiff_t q = 0; q < pw; q++) {
            const REAL *restrict a = r0 + 2 * q * f, *restrict b = a + f;
            const REAL *restrict c = r1 + 2 * q * f, *restrict d = c + f;
            NC_NAME(pool2_max)(a, b, c, d, yp + (p * pw + q) * f, ix ? ix + (p * pw + q) * f : NULL, f);
        }
    }
}

/* Rows [r0, r0 + rows) of the conv's delta (r = (b oh + i) ow + j, f values each) into d, from the pooled
 * yp, ix and gradient dyp: the unfused pair's bits, 0 + dyp at the winner (maxpool_backward's dx) where
 * relu' (yp > 0) lets it through, 0 elsewhere and in a dropped row or column; rounded to bfloat16 under
 * NC_ACT_BF16 (as act_backward rounds delta). act: NC_ACT_LINEAR or NC_ACT_RELU, | NC_ACT_BF16. Under
 * NC_ACT_BF16 (float), pr (pw f values) holds bf(0 + dyp) of the pooled row in use: each pooled value is
 * rounded once for the 4 conv outputs it serves (the zeros need none: bf(0) = 0), the same bits as rounding
 * the delta rows. */
static void NC_NAME(unpool2_rows)(ptrdiff_t oh, ptrdiff_t ow, ptrdiff_t f, int act, const REAL *yp,
                                  const uint8_t *ix, const REAL *dyp, ptrdiff_t r0, ptrdiff_t rows, REAL *d, REAL *pr)
{
    const ptrdiff_t ph = oh / 2, pw = ow / 2, per = oh * ow;
    const int relu = (act & ~NC_ACT_BF16) == NC_ACT_RELU;
    ptrdiff_t b = r0 / per, i = r0 % per / ow, j = r0 % ow;
#ifdef NC_F32
    ptrdiff_t held = -1;   /* the pooled row in pr */
#else
    pr = NULL;             /* double never takes NC_ACT_BF16 */
#endif
    for (ptrdiff_t r = 0; r < rows; r++) {
        REAL *restrict o = d + r * f;
        if (i >= 2 * ph || j >= 2 * pw) {
            for (ptrdiff_t e = 0; e < f; e++) o[e] = 0;
        } else {
            const ptrdiff_t row = b * ph + i / 2, off = (row * pw + j / 2) * f;
            const REAL *restrict dv = dyp + off, *restrict yv = yp + off;
            const uint8_t *restrict iv = ix + off;
            const uint8_t w = (uint8_t)((i & 1) * 2 + (j & 1));
#ifdef NC_F32
            if (pr) {
                if (held != row) {   /* bf(0 + dyp) of the pooled row, once */
                    const REAL *restrict dr = dyp + row * pw * f;
#pragma omp simd
                    for (ptrdiff_t e = 0; e < pw * f; e++) pr[e] = (REAL)0 + dr[e];
                    nc_bf_round_n(pr, pr, pw * f, NC_LEVEL == NC_SIMD_AVX512);
                    held = row;
                }
                const REAL *restrict rv = pr + j / 2 * f;   /* bf(0 + dyp) itself (bf(-tiny) is -0) */
                if (relu) {
#pragma omp simd
                    for (ptrdiff_t e = 0; e < f; e++) o[e] = iv[e] == w && yv[e] > 0 ? rv[e] : (REAL)0;
                } else {
#pragma omp simd
                    for (ptrdiff_t e = 0; e < f; e++) o[e] = iv[e] == w ? rv[e] : (REAL)0;
                }
            } else
#endif
            if (relu) {
#pragma omp simd
                for (ptrdiff_t e = 0; e < f; e++) o[e] = iv[e] == w && yv[e] > 0 ? (REAL)0 + dv[e] : (REAL)0;
            } else {
#pragma omp simd
                for (ptrdiff_t e = 0; e < f; e++) o[e] = iv[e] == w ? (REAL)0 + dv[e] : (REAL)0;
            }
        }
        if (++j == ow) {
            j = 0;
            if (++i == oh) i = 0, b++;
        }
    }
    if ((act & NC_ACT_BF16) && !pr) NC_NAME(act_forward)(NC_ACT_LINEAR | NC_ACT_BF16, 0, d, d, rows * f);
}

/* db := the column sums of the delta unpool2_rows makes, in nc_colsum's order (rows in order, each
 * column's terms one after the other): the nonzero terms of conv row 2 p + di are the winners with
 * di = ix / 2 of pooled row p (at most one of a window's columns each); the zeros added there are exact. */
void NC_NAME(unpool2_colsum)(ptrdiff_t n, ptrdiff_t oh, ptrdiff_t ow, ptrdiff_t f, int act, const REAL *yp,
                             const uint8_t *ix, const REAL *dyp, REAL *db)
{
    const ptrdiff_t ph = oh / 2, pw = ow / 2;
    const int relu = (act & ~NC_ACT_BF16) == NC_ACT_RELU;
    for (ptrdiff_t e = 0; e < f; e++) db[e] = 0;
    for (ptrdiff_t r = 0; r < n * ph; r++)
        for (int di = 0; di < 2; di++)
            for (ptrdiff_t q = 0; q < pw; q++) {
                const ptrdiff_t off = (r * pw + q) * f;
                const REAL *restrict dv = dyp + off, *restrict yv = yp + off;
                const uint8_t *restrict iv = ix + off;
                REAL *restrict acc = db;
                if (relu) {
#pragma omp simd
                    for (ptrdiff_t e = 0; e < f; e++)
                        acc[e] += iv[e] >> 1 == di && iv[e] < 4 && yv[e] > 0 ? (REAL)0 + dv[e] : (REAL)0;
                } else {
#pragma omp simd
                    for (ptrdiff_t e = 0; e < f; e++)
                        acc[e] += iv[e] >> 1 == di && iv[e] < 4 ? (REAL)0 + dv[e] : (REAL)0;
                }
            }
}

/* Part of conv_backward_weights: the row blocks q0 <= q < q1 (rb rows each), in order. Each block's
 * delta = dy f'(z) (into delta when given, else into the thread's buffer d; dy itself when f is linear)
 * has its column sums added to db (nullable) and im2col(x)^T delta to dk, the block's cols rows made
 * in the thread's buffer a: delta and the cols rows are used while in cache. ix (the pooled pair,
 * conv_pool_backward_weights): y, dy and ix are the pool's (n, oh / 2, ow / 2, f) y, gradient and
 * argmax, the block's delta made from them (`unpool2_rows`). */
static void NC_NAME(conv_wgrad_part)(const nc_conv_geom *g, const REAL *x, ptrdiff_t f, int act, REAL alpha,
                                     const REAL *z, const REAL *y, const REAL *dy, const uint8_t *ix, REAL *delta,
                                     REAL *dk, REAL *db, ptrdiff_t rb, ptrdiff_t q0, ptrdiff_t q1, REAL *a, REAL *d,
                                     REAL *pr)
{
    const ptrdiff_t k = g->kh * g->kw * g->c, m = g->n * g->oh * g->ow;
    for (ptrdiff_t q = q0; q < q1; q++) {
        const ptrdiff_t r0 = q * rb, rows = m - r0 < rb ? m - r0 : rb, off = r0 * f;
        const REAL *dl;   /* the block's delta rows; dy (the pooled dyp when ix) is not offset by off then */
        if (ix) {
            REAL *dd = delta ? delta + off : d;
            NC_NAME(unpool2_rows)(g->oh, g->ow, f, act, y, ix, dy, r0, rows, dd, pr);
            dl = dd;
        } else if (act != NC_ACT_LINEAR) {
            REAL *dd = delta ? delta + off : d;
            NC_NAME(act_backward)(act, alpha, z ? z + off : NULL, y + off, dy + off, dd, rows * f);
            dl = dd;
        } else {
            dl = dy + off;
        }
        if (db)
            for (ptrdiff_t r = 0; r < rows; r++) {
                const REAL *restrict dr = dl + r * f;
#pragma omp simd
                for (ptrdiff_t j = 0; j < f; j++) db[j] += dr[j];
            }
        NC_NAME(im2col_pixels)(g, x, r0, rows, a);
        NC_PUBNAME(gemm)(1, 0, k, f, rows, 1, a, k, dl, f, 1, dk, f, NULL, NC_ACT_LINEAR, 0, 1);
    }
}

static int NC_NAME(conv_wgrad)(const nc_conv_geom *g, const REAL *x, ptrdiff_t f, int act, REAL alpha,
                               const REAL *z, const REAL *y, const REAL *dy, const uint8_t *ix, REAL *delta,
                               REAL *dk, REAL *db, int nthreads)
{
    const ptrdiff_t k = g->kh * g->kw * g->c, m = g->n * g->oh * g->ow, kf = k * f;
    ptrdiff_t rb = NC_CONV_BACK_BYTES / ((k + f) * (ptrdiff_t)sizeof(REAL));   /* rows a block */
    if (rb < NC_CONV_BACK_MIN_ROWS) rb = NC_CONV_BACK_MIN_ROWS;
    const ptrdiff_t blocks = (m + rb - 1) / rb, parts = blocks < NC_CONV_PARTS ? blocks : NC_CONV_PARTS;
    REAL *acc = (REAL *)calloc((size_t)((parts > 0 ? parts : 1) * (kf + f)), sizeof(REAL));   /* part p's dk, db */
    if (!acc) return -1;
    int nt = nc_team_size(nthreads, (double)m * (double)(k + 4) * (double)f);
    if (nt > parts) nt = (int)parts;
    const int own_d = !delta && (ix || act != NC_ACT_LINEAR);   /* a thread's delta block */
    const int own_p = ix && (act & NC_ACT_BF16) && sizeof(REAL) == 4;   /* a thread's rounded pooled row */
    int err = 0;
#pragma omp parallel num_threads(nt > 1 ? nt : 1) if (nt > 1) reduction(| : err)
    {
        REAL *a = (REAL *)malloc((size_t)(rb * k) * sizeof(REAL));
        REAL *d = own_d ? (REAL *)malloc((size_t)(rb * f) * sizeof(REAL)) : NULL;
        REAL *pr = own_p ? (REAL *)malloc((size_t)(g->ow / 2 * f + 1) * sizeof(REAL)) : NULL;
        const int bad = !a || (own_d && !d) || (own_p && !pr);
        if (bad) err = 1;
#pragma omp for schedule(dynamic, 1)   /* a busy core's share moves */
        for (ptrdiff_t p = 0; p < parts; p++) {
            if (bad) continue;
            REAL *ap = acc + p * (kf + f);
            NC_NAME(conv_wgrad_part)(g, x, f, act, alpha, z, y, dy, ix, delta, ap, db ? ap + kf : NULL, rb,
                                     p * blocks / parts, (p + 1) * blocks / parts, a, d, pr);
        }
        free(a);
        free(d);
        free(pr);
    }
    if (!err) {   /* the parts added in order: the same bits for any nthreads */
        for (ptrdiff_t e = 0; e < kf; e++) dk[e] = 0;
        if (db) for (ptrdiff_t j = 0; j < f; j++) db[j] = 0;
        for (ptrdiff_t p = 0; p < parts; p++) {
            const REAL *ap = acc + p * (kf + f);
#pragma omp simd
            for (ptrdiff_t e = 0; e < kf; e++) dk[e] += ap[e];
            if (db)
#pragma omp simd
                for (ptrdiff_t j = 0; j < f; j++) db[j] += ap[kf + j];
        }
        /* NC_ACT_BF16 (mixed_bfloat16's short k: x holds bfloat16 values): delta rounded above, block by
         * block (act_backward), dk here, as the bf16 GEMM rounds its result; db stays the float32 sum */
        if (act & NC_ACT_BF16) NC_NAME(act_forward)(NC_ACT_LINEAR | NC_ACT_BF16, 0, dk, dk, kf);
    }
    free(acc);
    return err ? -1 : 0;
}

int NC_NAME(conv_backward_weights)(const nc_conv_geom *g, const REAL *x, ptrdiff_t f, int act, REAL alpha,
                                   const REAL *z, const REAL *y, const REAL *dy, REAL *delta, REAL *dk, REAL *db,
                                   int nthreads)
{
    return NC_NAME(conv_wgrad)(g, x, f, act, alpha, z, y, dy, NULL, delta, dk, db, nthreads);
}

int NC_NAME(conv_pool_backward_weights)(const nc_conv_geom *g, const REAL *x, ptrdiff_t f, int act,
                                        const REAL *yp, const uint8_t *ix, const REAL *dyp, REAL *delta, REAL *dk,
                                        REAL *db, int nthreads)
{
    return NC_NAME(conv_wgrad)(g, x, f, act, 0, NULL, yp, dyp, ix, delta, dk, db, nthreads);
}

/* dx of image b := sum over the windows of its cols rows (scatter-add, in output order). */
static void NC_NAME(col2im_image)(const nc_conv_geom *g, const REAL *cols, REAL *x, ptrdiff_t b)
{
    const ptrdiff_t H = g->h, W = g->w, C = g->c, K = g->kh * g->kw * C;
    REAL *xb = x + b * H * W * C;
    memset(xb, 0, (size_t)(H * W * C) * sizeof(REAL));
    const REAL *src = cols + b * g->oh * g->ow * K;
    for (ptrdiff_t oh = 0; oh < g->oh; oh++) {
        for (ptrdiff_t ow = 0; ow < g->ow; ow++, src += K) {
            const ptrdiff_t w0 = ow * g->sw - g->pl;
            const REAL *s = src;
            for (ptrdiff_t i = 0; i < g->kh; i++, s += g->kw * C) {
                const ptrdiff_t ih = oh * g->sh - g->pt + i * g->dh;
                if (ih < 0 || ih >= H) continue;
                REAL *xr = xb + ih * W * C;
                if (g->dw == 1 && w0 >= 0 && w0 + g->kw <= W) {
                    REAL *d = xr + w0 * C;
                    const ptrdiff_t len = g->kw * C;
#pragma omp simd
                    for (ptrdiff_t e = 0; e < len; e++) d[e] += s[e];
                    continue;
                }
                for (ptrdiff_t j = 0; j < g->kw; j++) {
                    const ptrdiff_t iw = w0 + j * g->dw;
                    if (iw < 0 || iw >= W) continue;
                    REAL *d = xr + iw * C;
                    const REAL *sj = s + j * C;
#pragma omp simd
                    for (ptrdiff_t e = 0; e < C; e++) d[e] += sj[e];
                }
            }
        }
    }
}

void NC_NAME(col2im)(const nc_conv_geom *g, const REAL *cols, REAL *x, int nthreads)
{
    int nt = nc_team_size(nthreads, (double)(g->n * g->oh * g->ow) * (double)(g->kh * g->kw * g->c));
    if (nt > g->n) nt = (int)g->n;
    if (nt <= 1) {
        for (ptrdiff_t b = 0; b < g->n; b++) NC_NAME(col2im_image)(g, cols, x, b);
        return;
    }
#pragma omp parallel for schedule(dynamic, 4) num_threads(nt) /* a busy core's share moves */
    for (ptrdiff_t b = 0; b < g->n; b++) NC_NAME(col2im_image)(g, cols, x, b);
}

/* ---- pooling: one output row (b, oh), built one input row of the window at a time ----
 * The window's rows ih = i0 .. i1 - 1 are read in turn, each in one left-to-right pass, the output row
 * (in L1) taking the running max or sum: one stream from memory per output row (reading the window's rows
 * side by side, pixel by pixel, ran ~2.5x slower than this from DRAM). Within a row the taps keep their
 * row-major window order, so the first maximum still wins. */

/* yr (c values) := the max of itself (or, first, of nothing) and the nt taps xp[t c + e]; ie (nullable)
 * the pixel of the winner (pix: the first tap's). nt = 2 (a 2-wide window inside) is the common case. */
static inline void NC_NAME(pool_max_taps)(const REAL *restrict xp, ptrdiff_t C, ptrdiff_t nt, int first,
                                          int32_t pix, REAL *restrict yr, int32_t *restrict ie)
{
    if (!ie && nt == 2) {
        const REAL *restrict xq = xp + C;
        if (first) {
#pragma omp simd
            for (ptrdiff_t e = 0; e < C; e++) yr[e] = NC_POOL_TAKE(xq[e], xp[e]) ? xq[e] : xp[e];
        } else {
#pragma omp simd
            for (ptrdiff_t e = 0; e < C; e++) {
                const REAL m = NC_POOL_TAKE(xp[e], yr[e]) ? xp[e] : yr[e];
                yr[e] = NC_POOL_TAKE(xq[e], m) ? xq[e] : m;
            }
        }
        return;
    }
    ptrdiff_t t = 0;
    if (first) {
        for (ptrdiff_t e = 0; e < C; e++) yr[e] = xp[e];
        if (ie) for (ptrdiff_t e = 0; e < C; e++) ie[e] = pix;
        t = 1;
    }
    for (; t < nt; t++) {
        const REAL *restrict xq = xp + t * C;
        if (ie) {
            const int32_t p = pix + (int32_t)t;
#pragma omp simd
            for (ptrdiff_t e = 0; e < C; e++) {
                const int take = NC_POOL_TAKE(xq[e], yr[e]);
                yr[e] = take ? xq[e] : yr[e];
                ie[e] = take ? p : ie[e];
            }
        } else {
#pragma omp simd
            for (ptrdiff_t e = 0; e < C; e++) yr[e] = NC_POOL_TAKE(xq[e], yr[e]) ? xq[e] : yr[e];
        }
    }
}

static void NC_NAME(pool_row)(const nc_conv_geom *g, int is_max, const REAL *x, REAL *y, int32_t *idx,
                              ptrdiff_t b, ptrdiff_t oh)
{
    const ptrdiff_t H = g->h, W = g->w, C = g->c, OW = g->ow;
    const REAL *xb = x + b * H * W * C;
    const ptrdiff_t h0 = oh * g->sh - g->pt;
    const ptrdiff_t i0 = nc_imax(h0, 0), i1 = nc_imin(h0 + g->kh, H);  /* rows of the window inside */
    REAL *yrow = y + (b * g->oh + oh) * OW * C;
    int32_t *irow = idx ? idx + (b * g->oh + oh) * OW * C : NULL;
    for (ptrdiff_t ow = 0; ow < OW; ow++) {              /* empty windows: nothing to pool */
        const ptrdiff_t w0 = ow * g->sw - g->pl;
        if (i1 > i0 && nc_imax(w0, 0) < nc_imin(w0 + g->kw, W)) continue;
        for (ptrdiff_t e = 0; e < C; e++) yrow[ow * C + e] = 0;
        if (irow) for (ptrdiff_t e = 0; e < C; e++) irow[ow * C + e] = -1;
    }
    for (ptrdiff_t ih = i0; ih < i1; ih++) {
        const REAL *xr = xb + ih * W * C;
        const int first = ih == i0, last = ih == i1 - 1;
        for (ptrdiff_t ow = 0; ow < OW; ow++) {
            const ptrdiff_t w0 = ow * g->sw - g->pl;
            const ptrdiff_t j0 = nc_imax(w0, 0), j1 = nc_imin(w0 + g->kw, W);
            if (j1 <= j0) continue;
            const REAL *restrict xp = xr + j0 * C;
            REAL *restrict yr = yrow + ow * C;
            if (is_max) {
                NC_NAME(pool_max_taps)(xp, C, j1 - j0, first, (int32_t)(ih * W + j0), yr,
                                       irow ? irow + ow * C : NULL);
                continue;
            }
            /* mean over the taps inside the image (Keras 'same' leaves the padding out of the count) */
            ptrdiff_t t = 0;
            if (first) {
                for (ptrdiff_t e = 0; e < C; e++) yr[e] = xp[e];
                t = 1;
            }
            for (; t < j1 - j0; t++) {
                const REAL *restrict xq = xp + t * C;
#pragma omp simd
                for (ptrdiff_t e = 0; e < C; e++) yr[e] += xq[e];
            }
            if (last) {
                const REAL inv = (REAL)1 / (REAL)((i1 - i0) * (j1 - j0));
#pragma omp simd
                for (ptrdiff_t e = 0; e < C; e++) yr[e] *= inv;
            }
        }
    }
}

static void NC_NAME(pool_forward)(const nc_conv_geom *g, int is_max, const REAL *x, REAL *y, int32_t *idx,
                                  int nthreads)
{
    const ptrdiff_t rows = g->n * g->oh;
    int nt = nc_team_size(nthreads, (double)rows * (double)(g->ow * g->kh * g->kw * g->c));
    if (nt <= 1) {
        for (ptrdiff_t r = 0; r < rows; r++) NC_NAME(pool_row)(g, is_max, x, y, idx, r / g->oh, r % g->oh);
        return;
    }
#pragma omp parallel for schedule(dynamic, 4) num_threads(nt) /* a busy core's share moves */
    for (ptrdiff_t r = 0; r < rows; r++) NC_NAME(pool_row)(g, is_max, x, y, idx, r / g->oh, r % g->oh);
}

void NC_NAME(maxpool_forward)(const nc_conv_geom *g, const REAL *x, REAL *y, int32_t *idx, int nthreads)
{
    NC_NAME(pool_forward)(g, 1, x, y, idx, nthreads);
}

void NC_NAME(avgpool_forward)(const nc_conv_geom *g, const REAL *x, REAL *y, int nthreads)
{
    NC_NAME(pool_forward)(g, 0, x, y, NULL, nthreads);
}

/* Row ih of image b's dx: 0, then the dy of every window that holds a pixel of it, window by window in
 * (oh, ow) order (the order of a one-thread scatter): max adds dy where the index names the tap (0
 * elsewhere: exact), vectorised over the channels; an index that is no tap of its window (none that
 * maxpool_forward writes) adds nothing. Avg spreads dy / (the window's taps inside the image). One dx
 * row (in L1) is made at a time: dx is written once, as one stream. */
static void NC_NAME(pool_back_row)(const nc_conv_geom *g, int is_max, const int32_t *idx, const REAL *dy,
                                   REAL *dx, ptrdiff_t b, ptrdiff_t ih)
{
    const ptrdiff_t H = g->h, W = g->w, C = g->c, OW = g->ow;
    REAL *restrict xr = dx + ((b * H + ih) * W) * C;
    for (ptrdiff_t e = 0; e < W * C; e++) xr[e] = 0;
    /* the output rows whose window holds row ih: oh sh - pt <= ih < oh sh - pt + kh */
    const ptrdiff_t lo = ih + g->pt - g->kh + 1;
    const ptrdiff_t oh0 = nc_imax(lo <= 0 ? 0 : (lo + g->sh - 1) / g->sh, 0);
    const ptrdiff_t oh1 = nc_imin((ih + g->pt) / g->sh + 1, g->oh);
    for (ptrdiff_t oh = oh0; oh < oh1; oh++) {
        const ptrdiff_t h0 = oh * g->sh - g->pt;
        const ptrdiff_t i0 = nc_imax(h0, 0), i1 = nc_imin(h0 + g->kh, H);
        const ptrdiff_t off = (b * g->oh + oh) * OW * C;
        for (ptrdiff_t ow = 0; ow < OW; ow++) {
            const ptrdiff_t w0 = ow * g->sw - g->pl;
            const ptrdiff_t j0 = nc_imax(w0, 0), j1 = nc_imin(w0 + g->kw, W);
            const REAL *restrict d = dy + off + ow * C;
            if (is_max) {
                const int32_t *restrict ix = idx + off + ow * C;
                for (ptrdiff_t iw = j0; iw < j1; iw++) {
                    REAL *restrict xp = xr + iw * C;
                    const int32_t pix = (int32_t)(ih * W + iw);
#pragma omp simd
                    for (ptrdiff_t e = 0; e < C; e++) xp[e] += ix[e] == pix ? d[e] : (REAL)0;
                }
                continue;
            }
            const REAL inv = (REAL)1 / (REAL)((i1 - i0) * (j1 - j0));
            for (ptrdiff_t iw = j0; iw < j1; iw++) {
                REAL *restrict xp = xr + iw * C;
#pragma omp simd
                for (ptrdiff_t e = 0; e < C; e++) xp[e] += d[e] * inv;
            }
        }
    }
}

static void NC_NAME(pool_backward)(const nc_conv_geom *g, int is_max, const int32_t *idx, const REAL *dy,
                                   REAL *dx, int nthreads)
{
    const ptrdiff_t rows = g->n * g->h;
    double work = (double)(g->n * g->oh * g->ow * g->c) * (double)(g->kh * g->kw) + (double)(g->n * g->h * g->w * g->c);
    int nt = nc_team_size(nthreads, work);
    if (nt <= 1) {
        for (ptrdiff_t r = 0; r < rows; r++) NC_NAME(pool_back_row)(g, is_max, idx, dy, dx, r / g->h, r % g->h);
        return;
    }
#pragma omp parallel for schedule(dynamic, 4) num_threads(nt) /* a busy core's share moves */
    for (ptrdiff_t r = 0; r < rows; r++) NC_NAME(pool_back_row)(g, is_max, idx, dy, dx, r / g->h, r % g->h);
}

void NC_NAME(maxpool_backward)(const nc_conv_geom *g, const int32_t *idx, const REAL *dy, REAL *dx, int nthreads)
{
    NC_NAME(pool_backward)(g, 1, idx, dy, dx, nthreads);
}

void NC_NAME(avgpool_backward)(const nc_conv_geom *g, const REAL *dy, REAL *dx, int nthreads)
{
    NC_NAME(pool_backward)(g, 0, NULL, dy, dx, nthreads);
}

#else /* the entry points: the copies of the level in use */

/* y := act(im2col(x) K + bias), a block of rows at a time: the block's cols rows are made (into cols, when
 * given: backward reads them; else into the thread's L1 buffer) and multiplied by the packed K at once,
 * while in cache (gemm_panels: whole-k register tiles, the bias and act in their epilogue). Blocks start
 * at multiples of the micro-tile's MR rows: the same bits for any thread count. */
static void NC_NAME(conv_block)(const nc_conv_geom *g, const REAL *x, const REAL *bpack, ptrdiff_t ntot, ptrdiff_t f,
                                const REAL *bias, int act, REAL act_alpha, REAL *y, REAL *a, ptrdiff_t r0,
                                ptrdiff_t rows)
{
    const ptrdiff_t k = g->kh * g->kw * g->c;
    NC_NAME(im2col_pixels)(g, x, r0, rows, a);
    NC_NAME(gemm_panels)(rows, f, k, a, k, bpack, ntot, 0, y + r0 * f, f, bias, act, act_alpha);
}

/* The kernel (k, f) packed once for the GEMM's panels (gemm_pack_b; the 64-byte head it reads zeroed):
 * returns the buffer to free (NULL: out of memory), *bpack its panels, *ntot their columns (f rounded up
 * to the micro-tile's nr), *mr the micro-tile's rows. */
static REAL *NC_NAME(conv_pack_kernel)(ptrdiff_t k, ptrdiff_t f, const REAL *kernel, const REAL **bpack,
                                       ptrdiff_t *ntot, int *mr)
{
    int nr;
    NC_NAME(gemm_micro_tile)(mr, &nr);
    *ntot = (f + nr - 1) / nr * nr;
    REAL *packed = (REAL *)malloc((size_t)NC_NAME(gemm_pack_size)(k, f) * sizeof(REAL));
    if (!packed) return NULL;
    memset(packed, 0, 64);
    NC_NAME(gemm_pack_b)(0, k, f, kernel, f, packed, 0);
    *bpack = packed + 64 / (ptrdiff_t)sizeof(REAL);
    return packed;
}

int NC_NAME(conv_forward)(const nc_conv_geom *g, const REAL *x, const REAL *kernel, ptrdiff_t f, const REAL *bias,
                          int act, REAL act_alpha, REAL *y, REAL *cols, int nthreads)
{
    const ptrdiff_t k = g->kh * g->kw * g->c, m = g->n * g->oh * g->ow;
    if (m <= 0 || f <= 0) return 0;
    int mr;
    ptrdiff_t ntot;
    const REAL *bpack;
    REAL *packed = NC_NAME(conv_pack_kernel)(k, f, kernel, &bpack, &ntot, &mr);
    if (!packed) return -1;
    ptrdiff_t rb = NC_CONV_BLOCK_BYTES / (k * (ptrdiff_t)sizeof(REAL)) / mr * mr;  /* rows a block */
    if (rb < mr) rb = mr;
    const ptrdiff_t blocks = (m + rb - 1) / rb;
    int nt = nc_team_size(nthreads, (double)m * (double)k * (double)f);
    if (nt > blocks) nt = (int)blocks;
    int err = 0;
#pragma omp parallel num_threads(nt > 1 ? nt : 1) if (nt > 1) reduction(| : err)
    {
        REAL *a = cols ? NULL : (REAL *)malloc((size_t)(rb * k) * sizeof(REAL));
        if (!cols && !a) err = 1;
#pragma omp for schedule(dynamic, 1)   /* a busy core's share moves */
        for (ptrdiff_t q = 0; q < blocks; q++) {
            if (!cols && !a) continue;
            const ptrdiff_t r0 = q * rb, rows = m - r0 < rb ? m - r0 : rb;
            NC_NAME(conv_block)(g, x, bpack, ntot, f, bias, act, act_alpha, y, cols ? cols + r0 * k : a, r0, rows);
        }
        free(a);
    }
    free(packed);
    return err ? -1 : 0;
}

int NC_NAME(conv_backward_weights)(const nc_conv_geom *g, const REAL *x, ptrdiff_t f, int act, REAL alpha,
                                   const REAL *z, const REAL *y, const REAL *dy, REAL *delta, REAL *dk, REAL *db,
                                   int nthreads)
{
    return NC_PICK(conv_backward_weights)(g, x, f, act, alpha, z, y, dy, delta, dk, db, nthreads);
}

int NC_NAME(conv_pool_backward_weights)(const nc_conv_geom *g, const REAL *x, ptrdiff_t f, int act,
                                        const REAL *yp, const uint8_t *ix, const REAL *dyp, REAL *delta, REAL *dk,
                                        REAL *db, int nthreads)
{
    return NC_PICK(conv_pool_backward_weights)(g, x, f, act, yp, ix, dyp, delta, dk, db, nthreads);
}

void NC_NAME(unpool2_colsum)(ptrdiff_t n, ptrdiff_t oh, ptrdiff_t ow, ptrdiff_t f, int act, const REAL *yp,
                             const uint8_t *ix, const REAL *dyp, REAL *db)
{
    NC_PICK(unpool2_colsum)(n, oh, ow, f, act, yp, ix, dyp, db);
}

/* The pooled rows [p0, p1) of image b, one thread: their conv rows (b, 2 p0 .. 2 p1 - 1) made and multiplied
 * as conv_block does (cols rows into a, the product into t: both in cache), on the rows of the MR grid
 * from row 0 that hold them (a few rows of the grid's partial tiles at both ends made twice), so every
 * conv output has conv_forward's bits; then pooled into yp, ix (`pool2_rows`). */
static void NC_NAME(conv_pool_block)(const nc_conv_geom *g, const REAL *x, const REAL *bpack, ptrdiff_t ntot,
                                     ptrdiff_t f, const REAL *bias, int act, REAL act_alpha, REAL *yp, uint8_t *ix,
                                     ptrdiff_t mr, ptrdiff_t b, ptrdiff_t p0, ptrdiff_t p1, REAL *a, REAL *t)
{
    const ptrdiff_t k = g->kh * g->kw * g->c, m = g->n * g->oh * g->ow, ph = g->oh / 2, pw = g->ow / 2;
    const ptrdiff_t r0 = (b * g->oh + 2 * p0) * g->ow, r1 = (b * g->oh + 2 * p1) * g->ow;
    const ptrdiff_t a0 = r0 / mr * mr, a1 = nc_imin((r1 + mr - 1) / mr * mr, m);
    NC_NAME(im2col_pixels)(g, x, a0, a1 - a0, a);
    NC_NAME(gemm_panels)(a1 - a0, f, k, a, k, bpack, ntot, 0, t, f, bias, act, act_alpha);
    const ptrdiff_t off = (b * ph + p0) * pw * f;
    NC_PICK(pool2_rows)(t + (r0 - a0) * f, g->ow, f, p1 - p0, pw, yp + off, ix ? ix + off : NULL);
}

int NC_NAME(conv_pool_forward)(const nc_conv_geom *g, const REAL *x, const REAL *kernel, ptrdiff_t f,
                               const REAL *bias, int act, REAL act_alpha, REAL *yp, uint8_t *ix, int nthreads)
{
    const ptrdiff_t k = g->kh * g->kw * g->c, ph = g->oh / 2, pw = g->ow / 2, ow = g->ow;
    if (g->n * ph * pw <= 0 || f <= 0) return 0;
    int mr;
    ptrdiff_t ntot;
    const REAL *bpack;
    REAL *packed = NC_NAME(conv_pack_kernel)(k, f, kernel, &bpack, &ntot, &mr);
    if (!packed) return -1;
    /* work items: groups of pooled rows of one image, about conv_forward's block of cols rows each */
    ptrdiff_t gp = NC_CONV_BLOCK_BYTES / (k * (ptrdiff_t)sizeof(REAL)) / (2 * ow);
    if (gp < 1) gp = 1;
    const ptrdiff_t groups = (ph + gp - 1) / gp, items = g->n * groups;
    gp = (ph + groups - 1) / groups;                       /* the largest group */
    const ptrdiff_t brows = 2 * gp * ow + 2 * mr;           /* its rows, and the grid's partial tiles */
    int nt = nc_team_size(nthreads, (double)(g->n * 2 * ph * ow) * (double)k * (double)f);
    if (nt > items) nt = (int)items;
    int err = 0;
#pragma omp parallel num_threads(nt > 1 ? nt : 1) if (nt > 1) reduction(| : err)
    {
        REAL *a = (REAL *)malloc((size_t)(brows * k) * sizeof(REAL));
        REAL *t = (REAL *)malloc((size_t)(brows * f) * sizeof(REAL));
        const int bad = !a || !t;
        if (bad) err = 1;
#pragma omp for schedule(dynamic, 1)   /* a busy core's share moves */
        for (ptrdiff_t q = 0; q < items; q++) {
            if (bad) continue;
            const ptrdiff_t b = q / groups, s = q % groups;
            NC_NAME(conv_pool_block)(g, x, bpack, ntot, f, bias, act, act_alpha, yp, ix, mr, b, s * ph / groups,
                                     (s + 1) * ph / groups, a, t);
        }
        free(a);
        free(t);
    }
    free(packed);
    return err ? -1 : 0;
}

void NC_NAME(im2col)(const nc_conv_geom *g, const REAL *x, REAL *cols, int nthreads)
{
    NC_PICK(im2col)(g, x, cols, nthreads);
}

void NC_NAME(im2col_pixels)(const nc_conv_geom *g, const REAL *x, ptrdiff_t r0, ptrdiff_t rows, REAL *dst)
{
    NC_PICK(im2col_pixels)(g, x, r0, rows, dst);
}

void NC_NAME(col2im)(const nc_conv_geom *g, const REAL *cols, REAL *x, int nthreads)
{
    NC_PICK(col2im)(g, cols, x, nthreads);
}

void NC_NAME(maxpool_forward)(const nc_conv_geom *g, const REAL *x, REAL *y, int32_t *idx, int nthreads)
{
    NC_PICK(maxpool_forward)(g, x, y, idx, nthreads);
}

void NC_NAME(avgpool_forward)(const nc_conv_geom *g, const REAL *x, REAL *y, int nthreads)
{
    NC_PICK(avgpool_forward)(g, x, y, nthreads);
}

void NC_NAME(maxpool_backward)(const nc_conv_geom *g, const int32_t *idx, const REAL *dy, REAL *dx, int nthreads)
{
    NC_PICK(maxpool_backward)(g, idx, dy, dx, nthreads);
}

void NC_NAME(avgpool_backward)(const nc_conv_geom *g, const REAL *dy, REAL *dx, int nthreads)
{
    NC_PICK(avgpool_backward)(g, dy, dx, nthreads);
}

#endif /* NC_LEVEL */
