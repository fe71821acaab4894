/* reduce_body.h -- column sums, sum of squares, finiteness, row gather.
 * Reductions add fixed-size chunks in a fixed order: the result does not
 * depend on the thread count. Included by reduce.c once per SIMD level
 * (simd_levels.h) and once for the entry points. */
#ifdef NC_LEVEL

#define NC_RED_CHUNK 4096

#ifndef NC_COLSUM_TEAM_COLS
#define NC_COLSUM_TEAM_COLS 2048 /* columns per thread before colsum uses a team */
#endif

/* out[j0:j1] := sum over rows of x[:, j0:j1], rows in order, each block of
 * columns summed in a local array and stored once (the threads' parts of out
 * may share a cache line: storing every row made them fight over it). */
static void NC_NAME(colsum_range)(const REAL *x, REAL *out, ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t j0,
                                  ptrdiff_t j1)
{
    enum { BLK = 2048 };
    REAL acc[BLK];
    for (ptrdiff_t b0 = j0; b0 < j1; b0 += BLK) {
        ptrdiff_t nb = j1 - b0 < BLK ? j1 - b0 : BLK;
        for (ptrdiff_t j = 0; j < nb; j++) acc[j] = 0;
        for (ptrdiff_t r = 0; r < rows; r++) {
            const REAL *xr = x + r * cols + b0;
#pragma omp simd
            for (ptrdiff_t j = 0; j < nb; j++) acc[j] += xr[j];
        }
        for (ptrdiff_t j = 0; j < nb; j++) out[b0 + j] = acc[j];
    }
}

void NC_NAME(colsum)(const REAL *x, REAL *out, ptrdiff_t rows, ptrdiff_t cols, int nthreads)
{
    /* columns are independent: split them across threads, rows summed in order.
     * The sum streams x once and is bound by memory: a second thread only
     * helps when each one streams long pieces of every row (measured: with
     * 32 to 1024 columns two threads were 1.1-3x slower than one). */
    int nt = nc_team_size(nthreads, (double)rows * (double)cols);
    if (nt > 1 && cols >= NC_COLSUM_TEAM_COLS * nt) {
#pragma omp parallel num_threads(nt)
        {
            int t = omp_get_thread_num(), T = omp_get_num_threads();
            NC_NAME(colsum_range)(x, out, rows, cols, cols * t / T, cols * (t + 1) / T);
        }
        return;
    }
    NC_NAME(colsum_range)(x, out, rows, cols, 0, cols);
}

static double NC_NAME(sumsq_chunk)(const REAL *x, ptrdiff_t n)
{
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (ptrdiff_t i = 0; i < n; i++) s += (double)x[i] * (double)x[i];
    return s;
}

double NC_NAME(sumsq)(const REAL *x, ptrdiff_t n, int nthreads)
{
    ptrdiff_t nchunks = (n + NC_RED_CHUNK - 1) / NC_RED_CHUNK;
    double total = 0;
    int nt = nc_team_size(nthreads, (double)n);
    if (nt <= 1) {
        for (ptrdiff_t c = 0; c < nchunks; c++) {
            ptrdiff_t lo = c * NC_RED_CHUNK, len = n - lo < NC_RED_CHUNK ? n - lo : NC_RED_CHUNK;
            total += NC_NAME(sumsq_chunk)(x + lo, len);
        }
        return total;
    }
    /* partial sums per chunk, combined in chunk order (bit-identical for any nt) */
    enum { STACK = 256 };
    double partial[STACK];
    for (ptrdiff_t c0 = 0; c0 < nchunks; c0 += STACK) {
        ptrdiff_t cn = nchunks - c0 < STACK ? nchunks - c0 : STACK;
#pragma omp parallel for schedule(dynamic, 4) num_threads(nt) /* a busy core's share moves */
        for (ptrdiff_t c = 0; c < cn; c++) {
            ptrdiff_t lo = (c0 + c) * NC_RED_CHUNK, len = n - lo < NC_RED_CHUNK ? n - lo : NC_RED_CHUNK;
            partial[c] = NC_NAME(sumsq_chunk)(x + lo, len);
        }
        for (ptrdiff_t c = 0; c < cn; c++) total += partial[c];
    }
    return total;
}

int NC_NAME(all_finite)(const REAL *x, ptrdiff_t n, int nthreads)
{
    (void)nthreads;
    /* x - x is 0 for finite x and NaN for inf/NaN, and NaN != 0. An OR reduction of the
     * comparisons has no floating-point add chain to wait on: ~3x faster than summing x - x,
     * close to memory speed, which keeps fit's per-batch parameter check cheap. */
    int bad = 0;
#pragma omp simd reduction(| : bad)
    for (ptrdiff_t i = 0; i < n; i++) bad |= (x[i] - x[i]) != 0;
    return !bad;
}

void NC_NAME(take_rows)(const REAL *src, ptrdiff_t cols, const int64_t *idx, ptrdiff_t nidx, REAL *dst)
{
    for (ptrdiff_t r = 0; r < nidx; r++) {
        const REAL *s = src + idx[r] * cols;
        REAL *d = dst + r * cols;
        for (ptrdiff_t j = 0; j < cols; j++) d[j] = s[j];
    }
}

void NC_NAME(scatter_add_rows)(const REAL *src, ptrdiff_t cols, const int64_t *idx, ptrdiff_t nidx, REAL *dst,
                               int nthreads)
{
    /* dst[idx[r]] += src[r], r in order: threads split the columns, so every element sees the
     * same additions in the same order whatever the thread count */
    int nt = nc_team_size(nthreads, (double)nidx * (double)cols);
    if (nt > 1 && cols >= 16 * nt) {
#pragma omp parallel num_threads(nt)
        {
            int t = omp_get_thread_num(), T = omp_get_num_threads();
            ptrdiff_t j0 = cols * t / T, j1 = cols * (t + 1) / T;
            for (ptrdiff_t r = 0; r < nidx; r++) {
                const REAL *s = src + r * cols;
                REAL *d = dst + idx[r] * cols;
#pragma omp simd
                for (ptrdiff_t j = j0; j < j1; j++) d[j] += s[j];
            }
        }
        return;
    }
    for (ptrdiff_t r = 0; r < nidx; r++) {
        const REAL *s = src + r * cols;
        REAL *d = dst + idx[r] * cols;
#pragma omp simd
        for (ptrdiff_t j = 0; j < cols; j++) d[j] += s[j];
    }
}

#else /* the entry points: the copies of the level in use */

void NC_NAME(colsum)(const REAL *x, REAL *out, ptrdiff_t rows, ptrdiff_t cols, int nthreads)
{
    NC_PICK(colsum)(x, out, rows, cols, nthreads);
}

double NC_NAME(sumsq)(const REAL *x, ptrdiff_t n, int nthreads)
{
    return NC_PICK(sumsq)(x, n, nthreads);
}

int NC_NAME(all_finite)(const REAL *x, ptrdiff_t n, int nthreads)
{
    return NC_PICK(all_finite)(x, n, nthreads);
}

void NC_NAME(take_rows)(const REAL *src, ptrdiff_t cols, const int64_t *idx, ptrdiff_t nidx, REAL *dst)
{
    NC_PICK(take_rows)(src, cols, idx, nidx, dst);
}

void NC_NAME(scatter_add_rows)(const REAL *src, ptrdiff_t cols, const int64_t *idx, ptrdiff_t nidx, REAL *dst,
                               int nthreads)
{
    NC_PICK(scatter_add_rows)(src, cols, idx, nidx, dst, nthreads);
}

#endif /* NC_LEVEL */
