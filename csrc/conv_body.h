/* conv_body.h -- im2col, col2im, max and average pooling, written once for REAL = float/double.
 * Included by conv.c once per SIMD level (simd_levels.h) and once for the entry points;
 * see conv.c for the layout and the threading rules. */
#ifdef NC_LEVEL

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

/* One output row (image b, output row oh) of the cols matrix: Wo rows of K = kh kw c. */
static void NC_NAME(im2col_row)(const nc_conv_geom *g, const REAL *x, REAL *cols, ptrdiff_t b, ptrdiff_t oh)
{
    const ptrdiff_t K = g->kh * g->kw * g->c;
    const REAL *xb = x + b * g->h * g->w * g->c;
    REAL *dst = cols + (b * g->oh + oh) * g->ow * K;
    for (ptrdiff_t ow = 0; ow < g->ow; ow++, dst += K) NC_NAME(im2col_pixel)(g, xb, oh, ow, dst);
}

/* Rows [r0, r0 + rows) of the cols matrix (r = (b oh + i) ow + j) into dst, row stride K. */
void NC_NAME(im2col_pixels)(const nc_conv_geom *g, const REAL *x, ptrdiff_t r0, ptrdiff_t rows, REAL *dst)
{
    const ptrdiff_t K = g->kh * g->kw * g->c, per_image = g->oh * g->ow, hwc = g->h * g->w * g->c;
    if (rows <= 0) return;
    ptrdiff_t q = r0 % per_image, oh = q / g->ow, ow = q % g->ow;
    const REAL *xb = x + r0 / per_image * hwc;
    for (ptrdiff_t r = 0; r < rows; r++, dst += K) {   /* (b, oh, ow) stepped, no division per pixel */
        NC_NAME(im2col_pixel)(g, xb, oh, ow, dst);
        if (++ow == g->ow) {
            ow = 0;
            if (++oh == g->oh) oh = 0, xb += hwc;
        }
    }
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

/* ---- pooling: one output row (b, oh) ---- */
static void NC_NAME(pool_row)(const nc_conv_geom *g, int is_max, const REAL *x, REAL *y, int32_t *idx,
                              ptrdiff_t b, ptrdiff_t oh)
{
    const ptrdiff_t H = g->h, W = g->w, C = g->c;
    const REAL *xb = x + b * H * W * C;
    const ptrdiff_t h0 = oh * g->sh - g->pt;
    const ptrdiff_t i0 = nc_imax(h0, 0), i1 = nc_imin(h0 + g->kh, H);  /* rows of the window inside */
    REAL *yr = y + (b * g->oh + oh) * g->ow * C;
    int32_t *ir = idx ? idx + (b * g->oh + oh) * g->ow * C : NULL;
    for (ptrdiff_t ow = 0; ow < g->ow; ow++, yr += C) {
        const ptrdiff_t w0 = ow * g->sw - g->pl;
        const ptrdiff_t j0 = nc_imax(w0, 0), j1 = nc_imin(w0 + g->kw, W);
        if (i1 <= i0 || j1 <= j0) {                     /* an empty window: nothing to pool */
            for (ptrdiff_t e = 0; e < C; e++) yr[e] = 0;
            if (ir) for (ptrdiff_t e = 0; e < C; e++) ir[ow * C + e] = -1;
            continue;
        }
        if (is_max) {
            /* the first maximum in row-major window order wins (a NaN wins and propagates, as in PyTorch) */
            const REAL *first = xb + (i0 * W + j0) * C;
            for (ptrdiff_t e = 0; e < C; e++) yr[e] = first[e];
            if (ir) for (ptrdiff_t e = 0; e < C; e++) ir[ow * C + e] = (int32_t)(i0 * W + j0);
            for (ptrdiff_t ih = i0; ih < i1; ih++) {
                for (ptrdiff_t iw = (ih == i0 ? j0 + 1 : j0); iw < j1; iw++) {
                    const REAL *xp = xb + (ih * W + iw) * C;
                    const int32_t pix = (int32_t)(ih * W + iw);
                    if (ir) {
                        int32_t *ie = ir + ow * C;
#pragma omp simd
                        for (ptrdiff_t e = 0; e < C; e++) {
                            const int take = xp[e] > yr[e] || xp[e] != xp[e];
                            yr[e] = take ? xp[e] : yr[e];
                            ie[e] = take ? pix : ie[e];
                        }
                    } else {
#pragma omp simd
                        for (ptrdiff_t e = 0; e < C; e++)
                            yr[e] = (xp[e] > yr[e] || xp[e] != xp[e]) ? xp[e] : yr[e];
                    }
                }
            }
        } else {
            /* mean over the taps inside the image (Keras 'same' leaves the padding out of the count) */
            for (ptrdiff_t e = 0; e < C; e++) yr[e] = 0;
            for (ptrdiff_t ih = i0; ih < i1; ih++)
                for (ptrdiff_t iw = j0; iw < j1; iw++) {
                    const REAL *xp = xb + (ih * W + iw) * C;
#pragma omp simd
                    for (ptrdiff_t e = 0; e < C; e++) yr[e] += xp[e];
                }
            const REAL inv = (REAL)1 / (REAL)((i1 - i0) * (j1 - j0));
#pragma omp simd
            for (ptrdiff_t e = 0; e < C; e++) yr[e] *= inv;
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

/* dx of image b := 0, then each dy is added to the input it came from (max) or spread over its window (avg). */
static void NC_NAME(pool_back_image)(const nc_conv_geom *g, int is_max, const int32_t *idx, const REAL *dy,
                                     REAL *dx, ptrdiff_t b)
{
    const ptrdiff_t H = g->h, W = g->w, C = g->c;
    REAL *xb = dx + b * H * W * C;
    memset(xb, 0, (size_t)(H * W * C) * sizeof(REAL));
    const ptrdiff_t off = b * g->oh * g->ow * C;
    if (is_max) {
        const REAL *d = dy + off;
        const int32_t *ix = idx + off;
        for (ptrdiff_t o = 0; o < g->oh * g->ow; o++, d += C, ix += C)
            for (ptrdiff_t e = 0; e < C; e++)
                if (ix[e] >= 0 && ix[e] < H * W) xb[(ptrdiff_t)ix[e] * C + e] += d[e];  /* others: ignored */
        return;
    }
    for (ptrdiff_t oh = 0; oh < g->oh; oh++) {
        const ptrdiff_t h0 = oh * g->sh - g->pt;
        const ptrdiff_t i0 = nc_imax(h0, 0), i1 = nc_imin(h0 + g->kh, H);
        for (ptrdiff_t ow = 0; ow < g->ow; ow++) {
            const ptrdiff_t w0 = ow * g->sw - g->pl;
            const ptrdiff_t j0 = nc_imax(w0, 0), j1 = nc_imin(w0 + g->kw, W);
            if (i1 <= i0 || j1 <= j0) continue;
            const REAL *d = dy + off + (oh * g->ow + ow) * C;
            const REAL inv = (REAL)1 / (REAL)((i1 - i0) * (j1 - j0));
            for (ptrdiff_t ih = i0; ih < i1; ih++)
                for (ptrdiff_t iw = j0; iw < j1; iw++) {
                    REAL *xp = xb + (ih * W + iw) * C;
#pragma omp simd
                    for (ptrdiff_t e = 0; e < C; e++) xp[e] += d[e] * inv;
                }
        }
    }
}

static void NC_NAME(pool_backward)(const nc_conv_geom *g, int is_max, const int32_t *idx, const REAL *dy,
                                   REAL *dx, int nthreads)
{
    double work = (double)(g->n * g->oh * g->ow * g->c) * (is_max ? 1.0 : (double)(g->kh * g->kw))
                  + (double)(g->n * g->h * g->w * g->c);
    int nt = nc_team_size(nthreads, work);
    if (nt > g->n) nt = (int)g->n;
    if (nt <= 1) {
        for (ptrdiff_t b = 0; b < g->n; b++) NC_NAME(pool_back_image)(g, is_max, idx, dy, dx, b);
        return;
    }
#pragma omp parallel for schedule(dynamic, 4) num_threads(nt) /* a busy core's share moves */
    for (ptrdiff_t b = 0; b < g->n; b++) NC_NAME(pool_back_image)(g, is_max, idx, dy, dx, b);
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
