/* int8_rows.h -- the REAL helpers of the int8 GEMM that touch every element:
 * the row scale, the row quantizer and the dequantizing epilogue. Plain C the
 * compiler vectorizes, included by int8_body.h once per SIMD level (I8L_SUF,
 * I8L_ATTR), after real.h. Every operation is a correctly rounded IEEE one or
 * an exact one, so all levels give the same bits. */
#define I8L_CAT2(op, suf) NC_NAME(op##_##suf)
#define I8L_CAT(op, suf) I8L_CAT2(op, suf)
#define I8L_NAME(op) I8L_CAT(op, I8L_SUF)

/* max_p |x_p| over k values as the bits of |x| (an unsigned integer orders like |x|; a NaN or an infinity
 * is at least the bits of infinity), at least `amax`: one pass over the bits, of a row or of a run of it. */
static I8L_ATTR I8_UINT I8L_NAME(i8_amax_bits)(const REAL *x, ptrdiff_t k, I8_UINT amax)
{
#pragma omp simd reduction(max : amax)
    for (ptrdiff_t p = 0; p < k; p++) {
        I8_UINT u;
        memcpy(&u, x + p, sizeof u);
        u &= I8_ABS_MASK;
        amax = u > amax ? u : amax;
    }
    return amax;
}

/* s = Q / (max_p |x_p| + 1e-7) from those bits (Keras's AbsMaxQuantizer: epsilon 1e-7 added in REAL);
 * NaN when the row holds a NaN or an infinity. */
static inline I8L_ATTR REAL I8L_NAME(i8_scale_of)(I8_UINT amax, REAL Q)
{
    if (amax >= I8_INF_BITS) return (REAL)NAN;
    REAL m;
    memcpy(&m, &amax, sizeof m);
    return Q / (m + (REAL)1e-7);
}

/* The scale of one row of k values. */
static I8L_ATTR REAL I8L_NAME(i8_row_scale)(const REAL *x, ptrdiff_t k, REAL Q)
{
    return I8L_NAME(i8_scale_of)(I8L_NAME(i8_amax_bits)(x, k, 0), Q);
}

/* q_p = clip(round(x_p s), -Q, Q) + o as a byte (mod 256: o = 0 gives the int8 q_p), rounding half
 * to even (the default rounding mode, as Keras's round); q_p = 0 when s is NaN. s is the row's own
 * scale (i8_row_scale of these x), so the clip never acts and is left out: with a = max_p |x_p|,
 * s = fl(Q / fl(a + 1e-7)) <= fl(Q / a) <= (Q / a)(1 + u), so |fl(x_p s)| <= fl(a s) <= Q (1 + u)^2
 * < Q + 1/2 (u = 2^-24, Q <= 127), which rounds to at most Q. One rounding conversion an element
 * (vcvtps2dq / vcvtpd2dq where vectorized). */
static I8L_ATTR void I8L_NAME(i8_quant_row)(const REAL *x, ptrdiff_t k, REAL s, uint8_t o, uint8_t *q)
{
    if (s != s) {
        memset(q, o, (size_t)k);
        return;
    }
#pragma omp simd
    for (ptrdiff_t p = 0; p < k; p++) q[p] = (uint8_t)(I8_IRINT(x[p] * s) + o); /* an integer in [-Q, Q] */
}

/* c_j = t_j / (ws_j sx) + b_j, relu'd when asked, for one row of n (a constant for a full tile:
 * straight vector code); Keras: the int32 sum cast to REAL, divided by kernel_scale * inputs_scale,
 * plus the bias. */
static inline __attribute__((always_inline)) I8L_ATTR void I8L_NAME(i8_row_out)(
    const int32_t *t, const int n, REAL sx, const REAL *ws, const REAL *bias, int relu, REAL *c)
{
    /* the relu in the same pass (its value in a register: c is written once) */
    if (bias) {
#pragma omp simd
        for (int j = 0; j < n; j++) {
            REAL v = (REAL)t[j] / (ws[j] * sx) + bias[j];
            c[j] = relu && !(v > 0) ? (REAL)0 : v; /* NaN -> 0, as nc_act_forward */
        }
    } else {
#pragma omp simd
        for (int j = 0; j < n; j++) {
            REAL v = (REAL)t[j] / (ws[j] * sx);
            c[j] = relu && !(v > 0) ? (REAL)0 : v;
        }
    }
}

/* C(i, j) = act(t(i, j) / (ws_j xs_i) + b_j) for an mi x nj tile. */
static I8L_ATTR void I8L_NAME(i8_store)(const int32_t *t, int ldt, int mi, int nj, const REAL *xs, const REAL *ws,
                                        const REAL *bias, int act, REAL alpha, REAL *C, ptrdiff_t ldc)
{
    int relu = act == NC_ACT_RELU;
    for (int i = 0; i < mi; i++) {
        REAL *c = C + i * ldc;
        if (nj == 16) /* the AVX2 and VNNI-256 kernels' full width */
            I8L_NAME(i8_row_out)(t + i * ldt, 16, xs[i], ws, bias, relu, c);
        else if (nj == 32) /* VNNI-512's */
            I8L_NAME(i8_row_out)(t + i * ldt, 32, xs[i], ws, bias, relu, c);
        else
            I8L_NAME(i8_row_out)(t + i * ldt, nj, xs[i], ws, bias, relu, c);
        if (!relu && act != NC_ACT_LINEAR) NC_NAME(act_forward)(act, alpha, c, c, nj);
    }
}

/* A convolution's cols row of output pixel (oh, ow) of image xb (im2col's, K = kh kw c values, 0 in the
 * padding) quantized with scale s straight from x into q: each run of its window (kw c values a window
 * row inside the image, else c a tap) quantized to its place; padding: q = 0 (+ o). */
static I8L_ATTR void I8L_NAME(i8_conv_quant)(const nc_conv_geom *g, const REAL *xb, ptrdiff_t oh, ptrdiff_t ow,
                                             REAL s, uint8_t o, uint8_t *q)
{
    const ptrdiff_t H = g->h, W = g->w, C = g->c, L = g->kw * C, K = g->kh * L;
    const ptrdiff_t w0 = ow * g->sw - g->pl;
    const int whole = g->dw == 1 && w0 >= 0 && w0 + g->kw <= W;     /* each window row one run */
    if (s != s) {
        memset(q, o, (size_t)K);
        return;
    }
    for (ptrdiff_t i = 0; i < g->kh; i++, q += L) {
        const ptrdiff_t ih = oh * g->sh - g->pt + i * g->dh;
        if (ih < 0 || ih >= H) {
            memset(q, o, (size_t)L);
            continue;
        }
        const REAL *xr = xb + ih * W * C;
        if (whole) {
            I8L_NAME(i8_quant_row)(xr + w0 * C, L, s, o, q);
            continue;
        }
        for (ptrdiff_t j = 0; j < g->kw; j++) {
            const ptrdiff_t iw = w0 + j * g->dw;
            if (iw < 0 || iw >= W) memset(q + j * C, o, (size_t)C);
            else I8L_NAME(i8_quant_row)(xr + iw * C, C, s, o, q + j * C);
        }
    }
}

/* The cols row of output pixel (oh, ow) quantized, its scale from its window's runs (i8_amax_bits over
 * them), then i8_conv_quant. The same bits as i8_row_scale and i8_quant_row over the gathered row (a
 * max and an elementwise map: neither depends on where the values lie). Returns the row's scale. */
static I8L_ATTR REAL I8L_NAME(i8_conv_row)(const nc_conv_geom *g, const REAL *xb, ptrdiff_t oh, ptrdiff_t ow, REAL Q,
                                           uint8_t o, uint8_t *q)
{
    const ptrdiff_t H = g->h, W = g->w, C = g->c, L = g->kw * C;
    const ptrdiff_t w0 = ow * g->sw - g->pl;
    const int whole = g->dw == 1 && w0 >= 0 && w0 + g->kw <= W;
    I8_UINT amax = 0;
    for (ptrdiff_t i = 0; i < g->kh; i++) {
        const ptrdiff_t ih = oh * g->sh - g->pt + i * g->dh;
        if (ih < 0 || ih >= H) continue;
        const REAL *xr = xb + ih * W * C;
        if (whole) {
            amax = I8L_NAME(i8_amax_bits)(xr + w0 * C, L, amax);
            continue;
        }
        for (ptrdiff_t j = 0; j < g->kw; j++) {
            const ptrdiff_t iw = w0 + j * g->dw;
            if (iw >= 0 && iw < W) amax = I8L_NAME(i8_amax_bits)(xr + iw * C, C, amax);
        }
    }
    const REAL s = I8L_NAME(i8_scale_of)(amax, Q);
    I8L_NAME(i8_conv_quant)(g, xb, oh, ow, s, o, q);
    return s;
}

/* The pixels of one output row share their window rows: the cols rows of pixels ow0 .. ow0 + np - 1 of
 * output row oh (image xb), their scales into xs, rows at q + r ldq (k bytes, o up to ldq). Their
 * windows' input columns [a, b) (inside the image) are at most NC_I8_CONV_SPAN / c (the caller's
 * np): acc[(iw - a) c + ch] = max over the window rows inside the image of the bits of |x[ih][iw][ch]|
 * (a vertical max over contiguous runs: no reduction), then per column cm[iw - a] = max over ch (one
 * reduction a column, not one a window run per pixel), then each pixel's amax = max over its taps
 * inside the image of cm: the max over the same values as i8_conv_row's, so the same bits. cm lies in
 * acc's first entries: column j's max is stored at acc[j] after acc[j c ..] is read (j <= j c). */
#ifndef NC_I8_CONV_SPAN
#define NC_I8_CONV_SPAN 2048   /* bit patterns (8 or 16 KiB of stack) */
#endif
static I8L_ATTR void I8L_NAME(i8_conv_rows)(const nc_conv_geom *g, const REAL *xb, ptrdiff_t oh, ptrdiff_t ow0,
                                            ptrdiff_t np, REAL Q, uint8_t o, uint8_t *q, ptrdiff_t ldq,
                                            ptrdiff_t k, REAL *xs)
{
    const ptrdiff_t H = g->h, W = g->w, C = g->c, span = (g->kw - 1) * g->dw + 1;
    const ptrdiff_t c_lo = ow0 * g->sw - g->pl, c_hi = (ow0 + np - 1) * g->sw - g->pl + span;
    const ptrdiff_t a = c_lo > 0 ? c_lo : 0, b = c_hi < W ? c_hi : W;
    I8_UINT acc[NC_I8_CONV_SPAN];
    I8_UINT *cm = acc;
    const ptrdiff_t len = b > a ? (b - a) * C : 0;
#pragma omp simd
    for (ptrdiff_t e = 0; e < len; e++) acc[e] = 0;
    for (ptrdiff_t i = 0; i < g->kh && len > 0; i++) {
        const ptrdiff_t ih = oh * g->sh - g->pt + i * g->dh;
        if (ih < 0 || ih >= H) continue;
        const REAL *xr = xb + (ih * W + a) * C;
#pragma omp simd
        for (ptrdiff_t e = 0; e < len; e++) {
            I8_UINT u;
            memcpy(&u, xr + e, sizeof u);
            u &= I8_ABS_MASK;
            acc[e] = u > acc[e] ? u : acc[e];
        }
    }
    for (ptrdiff_t j = 0; j < b - a; j++) {
        I8_UINT m = 0;
#pragma omp simd reduction(max : m)
        for (ptrdiff_t ch = 0; ch < C; ch++) m = acc[j * C + ch] > m ? acc[j * C + ch] : m;
        cm[j] = m;
    }
    for (ptrdiff_t r = 0; r < np; r++, q += ldq) {
        const ptrdiff_t w0 = (ow0 + r) * g->sw - g->pl;
        I8_UINT amax = 0;
        for (ptrdiff_t j = 0; j < g->kw; j++) {
            const ptrdiff_t iw = w0 + j * g->dw;
            if (iw >= 0 && iw < W) amax = cm[iw - a] > amax ? cm[iw - a] : amax;
        }
        xs[r] = I8L_NAME(i8_scale_of)(amax, Q);
        I8L_NAME(i8_conv_quant)(g, xb, oh, ow0 + r, xs[r], o, q);
        for (ptrdiff_t p = k; p < ldq; p++) q[p] = o;   /* up to 4 kg: a few bytes, no memset call */
    }
}

#undef I8L_CAT2
#undef I8L_CAT
#undef I8L_NAME
