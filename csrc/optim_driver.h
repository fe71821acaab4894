/* optim_driver.h -- the public optimizer entry points for one REAL (included
 * twice by optim.c). Picks the SIMD level once per call, splits the
 * buffer into fixed chunks of NC_OPT_CHUNK elements (OpenMP over chunks) and
 * each chunk at segment boundaries (each segment has its own clip scale). */

typedef void (*NC_NAME(optim_range_fn))(const nc_optim_step *, REAL, REAL *, const REAL *, REAL *const *,
                                        ptrdiff_t);
typedef double (*NC_NAME(optim_sumsq_fn))(const REAL *, ptrdiff_t);

typedef int (*NC_NAME(optim_finite_fn))(const REAL *, ptrdiff_t);

/* chunk c of the buffer: [lo, hi), cut at segment boundaries; then whether the chunk's w are all finite
 * (read back while they are in cache: fit's per-step parameter check needs no pass of its own) */
static int NC_NAME(optim_chunk)(NC_NAME(optim_range_fn) fn, NC_NAME(optim_finite_fn) finite, const nc_optim_step *s,
                                REAL *w, const REAL *g, REAL *const *slots, int nslots, ptrdiff_t lo, ptrdiff_t hi)
{
    REAL *sl[NC_OPT_MAX_SLOTS];
    ptrdiff_t start = lo;
    if (s->seg_scale == NULL) {
        for (int k = 0; k < nslots; k++) sl[k] = slots[k] + lo;
        fn(s, (REAL)s->scale, w + lo, g + lo, sl, hi - lo);
        return finite(w + start, hi - start);
    }
    /* the last segment starting at or before lo (binary search; empty segments skipped) */
    ptrdiff_t a = 0, b = s->nseg - 1;
    while (a < b) {
        ptrdiff_t mid = (a + b + 1) / 2;
        if (s->seg_start[mid] <= lo) a = mid; else b = mid - 1;
    }
    for (ptrdiff_t seg = a; seg < s->nseg && lo < hi; seg++) {
        ptrdiff_t end = s->seg_start[seg + 1] < hi ? (ptrdiff_t)s->seg_start[seg + 1] : hi;
        if (end <= lo) continue;
        for (int k = 0; k < nslots; k++) sl[k] = slots[k] + lo;
        fn(s, (REAL)s->seg_scale[seg], w + lo, g + lo, sl, end - lo);
        lo = end;
    }
    return finite(w + start, hi - start);
}

int NC_NAME(optim_step)(const nc_optim_step *s, REAL *w, const REAL *g, REAL *const *slots, ptrdiff_t n,
                        int nthreads)
{
    int nslots = nc_optim_nslots(s->kind, s->flags, s->c);
    if (nslots < 0) return -1;
    if (n <= 0) return 1;
    NC_NAME(optim_range_fn) fn = NC_PICK(range);
    NC_NAME(optim_finite_fn) finite = NC_PICK(finite);
    ptrdiff_t nchunks = (n + NC_OPT_CHUNK - 1) / NC_OPT_CHUNK;
    int nt = nc_team_size(nthreads, (double)n * NC_OPT_WORK), ok = 1;
    if (nt > nchunks) nt = (int)nchunks;
    if (nt <= 1) {
        for (ptrdiff_t c = 0; c < nchunks; c++) {
            ptrdiff_t lo = c * NC_OPT_CHUNK, hi = lo + NC_OPT_CHUNK < n ? lo + NC_OPT_CHUNK : n;
            ok &= NC_NAME(optim_chunk)(fn, finite, s, w, g, slots, nslots, lo, hi);
        }
        return ok;
    }
    /* dynamic schedule: on a shared machine a thread that starts late (or is
     * preempted) leaves its chunks to the others instead of holding up the step */
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) reduction(& : ok)
    for (ptrdiff_t c = 0; c < nchunks; c++) {
        ptrdiff_t lo = c * NC_OPT_CHUNK, hi = lo + NC_OPT_CHUNK < n ? lo + NC_OPT_CHUNK : n;
        ok &= NC_NAME(optim_chunk)(fn, finite, s, w, g, slots, nslots, lo, hi);
    }
    return ok;
}

void NC_NAME(optim_seg_sumsq)(const REAL *x, const int64_t *seg_start, ptrdiff_t nseg, double *out, int nthreads)
{
    NC_NAME(optim_sumsq_fn) fn = NC_PICK(lane_sumsq);
    for (ptrdiff_t sgi = 0; sgi < nseg; sgi++) {
        const REAL *xs = x + seg_start[sgi];
        ptrdiff_t n = (ptrdiff_t)(seg_start[sgi + 1] - seg_start[sgi]);
        ptrdiff_t nchunks = (n + NC_OPT_RED_CHUNK - 1) / NC_OPT_RED_CHUNK;
        int nt = nc_team_size(nthreads, (double)n * NC_OPT_RED_WORK);
        if (nt > nchunks) nt = (int)nchunks;
        double total = 0;
        if (nt <= 1) {
            for (ptrdiff_t c = 0; c < nchunks; c++) {
                ptrdiff_t lo = c * NC_OPT_RED_CHUNK, len = n - lo < NC_OPT_RED_CHUNK ? n - lo : NC_OPT_RED_CHUNK;
                total += fn(xs + lo, len);
            }
        } else {
            /* partial sums per chunk, added in chunk order: the same total for any nt */
            double partial[NC_OPT_RED_BATCH];
            for (ptrdiff_t c0 = 0; c0 < nchunks; c0 += NC_OPT_RED_BATCH) {
                ptrdiff_t cn = nchunks - c0 < NC_OPT_RED_BATCH ? nchunks - c0 : NC_OPT_RED_BATCH;
#pragma omp parallel for schedule(static) num_threads(nt)
                for (ptrdiff_t c = 0; c < cn; c++) {
                    ptrdiff_t lo = (c0 + c) * NC_OPT_RED_CHUNK;
                    ptrdiff_t len = n - lo < NC_OPT_RED_CHUNK ? n - lo : NC_OPT_RED_CHUNK;
                    partial[c] = fn(xs + lo, len);
                }
                for (ptrdiff_t c = 0; c < cn; c++) total += partial[c];
            }
        }
        out[sgi] = total;
    }
}
