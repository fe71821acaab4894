/* act_body.h -- elementwise activations, written once for REAL = float/double.
 * Included by act.c with REAL, NC_NAME(op) and the math names (EXP, LOG, ...)
 * defined, once per SIMD level (simd_levels.h) and once for the entry points.
 * Derivatives are written in terms of the output y where possible. */
#ifdef NC_LEVEL

NC_ALWAYS_INLINE REAL NC_NAME(sigmoid1)(REAL x)
{
#ifdef NC_F32
    return nc_vsigmoidf(x);
#else
    /* 1/(1+e^-x) without overflow: e^-|x| never overflows */
    REAL e = VEXP(-FABS(x));
    REAL s = (REAL)1 / ((REAL)1 + e);
    return x >= 0 ? s : e * s;
#endif
}

NC_ALWAYS_INLINE REAL NC_NAME(softplus1)(REAL x)
{
    /* log(1+e^x) = max(x,0) + log1p(e^-|x|) */
    return (x > 0 ? x : (REAL)0) + VLOG1P(VEXP(-FABS(x)));
}

#define SELU_ALPHA ((REAL)1.6732632423543772848170429916717)
#define SELU_SCALE ((REAL)1.0507009873554804934193349852946)

/* y = bf(y) under NC_ACT_BF16 (float; double never takes the modifier). act_forward/act_backward round
 * a block of NC_ACT_BF16_BLOCK values at a time, just after computing it (in L1): one pass over memory. */
#ifndef NC_ACT_BF16_BLOCK
#define NC_ACT_BF16_BLOCK 2048
#endif
static void NC_NAME(act_bf16)(REAL *y, ptrdiff_t n)
{
#ifdef NC_F32
    nc_bf_round_n(y, y, n, NC_LEVEL == NC_SIMD_AVX512);
#else
    (void)y, (void)n;
#endif
}

void NC_NAME(act_forward)(int act, REAL alpha, const REAL *x, REAL *y, ptrdiff_t n)
{
    ptrdiff_t i;
    if (act & NC_ACT_BF16) {
        for (ptrdiff_t i0 = 0; i0 < n; i0 += NC_ACT_BF16_BLOCK) {
            const ptrdiff_t len = n - i0 < NC_ACT_BF16_BLOCK ? n - i0 : NC_ACT_BF16_BLOCK;
            NC_NAME(act_forward)(act & ~NC_ACT_BF16, alpha, x + i0, y + i0, len);
            NC_NAME(act_bf16)(y + i0, len);
        }
        return;
    }
    switch (act) {
    case NC_ACT_LINEAR:
        if (x != y) for (i = 0; i < n; i++) y[i] = x[i];
        break;
    case NC_ACT_STEP:
        for (i = 0; i < n; i++) y[i] = x[i] >= 0 ? (REAL)1 : (REAL)0;
        break;
    case NC_ACT_SIGMOID:
#pragma omp simd
        for (i = 0; i < n; i++) y[i] = NC_NAME(sigmoid1)(x[i]);
        break;
    case NC_ACT_TANH:
#pragma omp simd
        for (i = 0; i < n; i++) y[i] = VTANH(x[i]);
        break;
    case NC_ACT_RELU:
#pragma omp simd
        for (i = 0; i < n; i++) y[i] = x[i] > 0 ? x[i] : (REAL)0;
        break;
    case NC_ACT_LEAKY_RELU:
#pragma omp simd
        for (i = 0; i < n; i++) y[i] = x[i] > 0 ? x[i] : alpha * x[i];
        break;
    case NC_ACT_ELU:
#pragma omp simd
        for (i = 0; i < n; i++) y[i] = x[i] > 0 ? x[i] : alpha * VEXPM1(x[i] > 0 ? (REAL)0 : x[i]);
        break;
    case NC_ACT_SELU:
#pragma omp simd
        for (i = 0; i < n; i++)
            y[i] = SELU_SCALE * (x[i] > 0 ? x[i] : SELU_ALPHA * VEXPM1(x[i] > 0 ? (REAL)0 : x[i]));
        break;
    case NC_ACT_GELU:  /* x Phi(x) = x erfc(-x / sqrt 2) / 2: accurate for negative x too */
#pragma omp simd
        for (i = 0; i < n; i++)
            y[i] = (REAL)0.5 * x[i] * VERFC(x[i] * (REAL)-0.70710678118654752440);
        break;
    case NC_ACT_GELU_TANH:
#pragma omp simd
        for (i = 0; i < n; i++) {
            REAL v = x[i];
            REAL u = (REAL)0.79788456080286535588 * (v + (REAL)0.044715 * v * v * v);
            /* 0.5 v (1 + tanh u) = v sigmoid(2u): no cancellation for negative v */
            y[i] = v * NC_NAME(sigmoid1)((REAL)2 * u);
        }
        break;
    case NC_ACT_SOFTPLUS:
#pragma omp simd
        for (i = 0; i < n; i++) y[i] = NC_NAME(softplus1)(x[i]);
        break;
    case NC_ACT_HARD_SIGMOID:
#pragma omp simd
        for (i = 0; i < n; i++) {
            REAL v = x[i] / (REAL)6 + (REAL)0.5;
            y[i] = v < 0 ? (REAL)0 : (v > 1 ? (REAL)1 : v);
        }
        break;
    case NC_ACT_SWISH:
#pragma omp simd
        for (i = 0; i < n; i++) y[i] = x[i] * NC_NAME(sigmoid1)(x[i]);
        break;
    default:
        break;
    }
}

void NC_NAME(act_backward)(int act, REAL alpha, const REAL *x, const REAL *y, const REAL *dy, REAL *dx,
                           ptrdiff_t n)
{
    ptrdiff_t i;
    if (act & NC_ACT_BF16) {
        for (ptrdiff_t i0 = 0; i0 < n; i0 += NC_ACT_BF16_BLOCK) {   /* x or y may be NULL (not needed) */
            const ptrdiff_t len = n - i0 < NC_ACT_BF16_BLOCK ? n - i0 : NC_ACT_BF16_BLOCK;
            NC_NAME(act_backward)(act & ~NC_ACT_BF16, alpha, x ? x + i0 : NULL, y ? y + i0 : NULL, dy + i0,
                                  dx + i0, len);
            NC_NAME(act_bf16)(dx + i0, len);
        }
        return;
    }
    switch (act) {
    case NC_ACT_LINEAR:
        if (dx != dy) for (i = 0; i < n; i++) dx[i] = dy[i];
        break;
    case NC_ACT_STEP:  /* zero by definition */
        for (i = 0; i < n; i++) dx[i] = 0;
        break;
    case NC_ACT_SIGMOID:  /* y (1 - y) */
#pragma omp simd
        for (i = 0; i < n; i++) dx[i] = dy[i] * y[i] * ((REAL)1 - y[i]);
        break;
    case NC_ACT_TANH:  /* 1 - y^2 */
#pragma omp simd
        for (i = 0; i < n; i++) dx[i] = dy[i] * ((REAL)1 - y[i] * y[i]);
        break;
    case NC_ACT_RELU:  /* [y > 0]; the gradient at 0 is taken as 0, as Keras does */
#pragma omp simd
        for (i = 0; i < n; i++) dx[i] = y[i] > 0 ? dy[i] : (REAL)0;
        break;
    case NC_ACT_LEAKY_RELU:  /* y > 0 iff x > 0 when alpha > 0 */
#pragma omp simd
        for (i = 0; i < n; i++) dx[i] = y[i] > 0 ? dy[i] : alpha * dy[i];
        break;
    case NC_ACT_ELU:  /* x <= 0: y + alpha */
#pragma omp simd
        for (i = 0; i < n; i++) dx[i] = y[i] > 0 ? dy[i] : dy[i] * (y[i] + alpha);
        break;
    case NC_ACT_SELU:  /* x <= 0: y + scale alpha */
#pragma omp simd
        for (i = 0; i < n; i++)
            dx[i] = y[i] > 0 ? SELU_SCALE * dy[i] : dy[i] * (y[i] + SELU_SCALE * SELU_ALPHA);
        break;
    case NC_ACT_GELU:  /* Phi(x) + x phi(x) */
#pragma omp simd
        for (i = 0; i < n; i++) {
            REAL v = x[i];
            REAL cdf = (REAL)0.5 * VERFC(v * (REAL)-0.70710678118654752440);
            REAL pdf = (REAL)0.39894228040143267794 * VEXP((REAL)-0.5 * v * v);
            dx[i] = dy[i] * (cdf + v * pdf);
        }
        break;
    case NC_ACT_GELU_TANH:
#pragma omp simd
        for (i = 0; i < n; i++) {
            REAL v = x[i];
            REAL u = (REAL)0.79788456080286535588 * (v + (REAL)0.044715 * v * v * v);
            REAL du = (REAL)0.79788456080286535588 * ((REAL)1 + (REAL)3 * (REAL)0.044715 * v * v);
            /* with s = sigmoid(2u): 1 + tanh u = 2 s and 1 - tanh^2 u = 4 s (1 - s), where
             * s and 1 - s both come from e = exp(-2|u|) without cancellation */
            REAL e = VEXP((REAL)-2 * FABS(u)), a = (REAL)1 / ((REAL)1 + e);
            REAL s = u >= 0 ? a : e * a, sc = u >= 0 ? e * a : a;
            dx[i] = dy[i] * (s + (REAL)2 * v * s * sc * du);
        }
        break;
    case NC_ACT_SOFTPLUS:  /* sigmoid(x) = 1 - e^-y */
#pragma omp simd
        for (i = 0; i < n; i++) dx[i] = dy[i] * -VEXPM1(-y[i]);
        break;
    case NC_ACT_HARD_SIGMOID:  /* 1/6 inside (-3, 3) */
#pragma omp simd
        for (i = 0; i < n; i++) dx[i] = (y[i] > 0 && y[i] < 1) ? dy[i] / (REAL)6 : (REAL)0;
        break;
    case NC_ACT_SWISH:  /* s + x s (1 - s) */
#pragma omp simd
        for (i = 0; i < n; i++) {
            REAL s = NC_NAME(sigmoid1)(x[i]);
            dx[i] = dy[i] * (s + x[i] * s * ((REAL)1 - s));
        }
        break;
    default:
        break;
    }
}

/* Rows of the softmax taken together (about this many elements, in L1), so that the exponentials of
 * narrow rows (a 10-class output) fill the vector lanes: one loop over the block's elements. */
#define NC_SOFTMAX_BLOCK 2048

void NC_NAME(softmax_forward)(const REAL *x, REAL *y, ptrdiff_t rows, ptrdiff_t cols)
{
    if (cols <= 0) return;
    ptrdiff_t rb = cols < NC_SOFTMAX_BLOCK ? NC_SOFTMAX_BLOCK / cols : 1;
    for (ptrdiff_t r0 = 0; r0 < rows; r0 += rb) {
        ptrdiff_t nr = rows - r0 < rb ? rows - r0 : rb, n = nr * cols;
        const REAL *xb = x + r0 * cols;
        REAL *yb = y + r0 * cols;
        /* y = x - max of its row (x may be y). The row passes take 8 lanes at most (a 10-wide row is then
         * one vector and two lanes at every level, not 10 scalar steps beside an unused 16-lane one) */
        for (ptrdiff_t r = 0; r < nr; r++) {
            const REAL *xr = xb + r * cols;
            REAL *yr = yb + r * cols;
            REAL mx = xr[0];
            for (ptrdiff_t j = 1; j < cols; j++) mx = xr[j] > mx ? xr[j] : mx;
#pragma omp simd simdlen(8)
            for (ptrdiff_t j = 0; j < cols; j++) yr[j] = xr[j] - mx;
        }
        /* y = e^y over the block: each element's value does not depend on where it falls in the block */
#pragma omp simd
        for (ptrdiff_t i = 0; i < n; i++) yb[i] = VEXP(yb[i]);
        /* y /= the sum of its row */
        for (ptrdiff_t r = 0; r < nr; r++) {
            REAL *yr = yb + r * cols, s = 0;
#pragma omp simd simdlen(8) reduction(+ : s)
            for (ptrdiff_t j = 0; j < cols; j++) s += yr[j];
            REAL inv = (REAL)1 / s;
#pragma omp simd simdlen(8)
            for (ptrdiff_t j = 0; j < cols; j++) yr[j] *= inv;
        }
    }
}

void NC_NAME(softmax_backward)(const REAL *y, const REAL *dy, REAL *dx, ptrdiff_t rows, ptrdiff_t cols)
{
    for (ptrdiff_t r = 0; r < rows; r++) {
        const REAL *yr = y + r * cols, *gr = dy + r * cols;
        REAL *dr = dx + r * cols;
        REAL dot = 0;
        for (ptrdiff_t j = 0; j < cols; j++) dot += gr[j] * yr[j];
        for (ptrdiff_t j = 0; j < cols; j++) dr[j] = yr[j] * (gr[j] - dot);
    }
}

#define NC_ACT_CHUNK 8192

void NC_NAME(act_forward_par)(int act, REAL alpha, const REAL *x, REAL *y, ptrdiff_t n, int nthreads)
{
    int nt = nc_team_size(nthreads, (double)n * nc_act_cost(act, 0));
    if (nt <= 1) { NC_NAME(act_forward)(act, alpha, x, y, n); return; }
    ptrdiff_t nchunks = (n + NC_ACT_CHUNK - 1) / NC_ACT_CHUNK;
/* dynamic: when a thread's core is busy with other work, the others take its chunks
 * (each chunk writes its own outputs, so the result does not depend on who runs it) */
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
    for (ptrdiff_t c = 0; c < nchunks; c++) {
        ptrdiff_t lo = c * NC_ACT_CHUNK, len = n - lo < NC_ACT_CHUNK ? n - lo : NC_ACT_CHUNK;
        NC_NAME(act_forward)(act, alpha, x + lo, y + lo, len);
    }
}

void NC_NAME(act_backward_par)(int act, REAL alpha, const REAL *x, const REAL *y, const REAL *dy, REAL *dx,
                               ptrdiff_t n, int nthreads)
{
    int nt = nc_team_size(nthreads, (double)n * nc_act_cost(act, 1));
    if (nt <= 1) { NC_NAME(act_backward)(act, alpha, x, y, dy, dx, n); return; }
    ptrdiff_t nchunks = (n + NC_ACT_CHUNK - 1) / NC_ACT_CHUNK;
/* dynamic: when a thread's core is busy with other work, the others take its chunks
 * (each chunk writes its own outputs, so the result does not depend on who runs it) */
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
    for (ptrdiff_t c = 0; c < nchunks; c++) {
        ptrdiff_t lo = c * NC_ACT_CHUNK, len = n - lo < NC_ACT_CHUNK ? n - lo : NC_ACT_CHUNK;
        NC_NAME(act_backward)(act, alpha, x ? x + lo : NULL, y + lo, dy + lo, dx + lo, len);
    }
}

#else /* the entry points: the copies of the level in use */

void NC_NAME(act_forward)(int act, REAL alpha, const REAL *x, REAL *y, ptrdiff_t n)
{
    NC_PICK(act_forward)(act, alpha, x, y, n);
}

void NC_NAME(act_backward)(int act, REAL alpha, const REAL *x, const REAL *y, const REAL *dy, REAL *dx,
                           ptrdiff_t n)
{
    NC_PICK(act_backward)(act, alpha, x, y, dy, dx, n);
}

void NC_NAME(softmax_forward)(const REAL *x, REAL *y, ptrdiff_t rows, ptrdiff_t cols)
{
    NC_PICK(softmax_forward)(x, y, rows, cols);
}

void NC_NAME(softmax_backward)(const REAL *y, const REAL *dy, REAL *dx, ptrdiff_t rows, ptrdiff_t cols)
{
    NC_PICK(softmax_backward)(y, dy, dx, rows, cols);
}

void NC_NAME(act_forward_par)(int act, REAL alpha, const REAL *x, REAL *y, ptrdiff_t n, int nthreads)
{
    NC_PICK(act_forward_par)(act, alpha, x, y, n, nthreads);
}

void NC_NAME(act_backward_par)(int act, REAL alpha, const REAL *x, const REAL *y, const REAL *dy, REAL *dx,
                               ptrdiff_t n, int nthreads)
{
    NC_PICK(act_backward_par)(act, alpha, x, y, dy, dx, n, nthreads);
}

#endif /* NC_LEVEL */
