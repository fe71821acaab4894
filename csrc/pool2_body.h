/* The 2x2 max of a Conv2D -> MaxPooling2D pair (nc_conv_pool_forward, the pair's Winograd output
 * transform), compiled with the body that includes it, once per REAL and SIMD level (no include guard).
 * NC_POOL_TAKE is the including file's: a tap is taken when larger or a NaN (the first maximum wins),
 * nc_maxpool_forward's rule. */

/* o[e] := the max of the window's taps a[e], b[e], c[e], d[e] (row-major); io[e], where io is not NULL,
 * := the winner's 2 di + dj */
NC_VINLINE void NC_NAME(pool2_max)(const REAL *restrict a, const REAL *restrict b, const REAL *restrict c,
                                   const REAL *restrict d, REAL *restrict o, uint8_t *restrict io, ptrdiff_t len)
{
    if (io) {
#pragma omp simd
        for (ptrdiff_t e = 0; e < len; e++) {
            REAL m = a[e];
            int w = 0;
            if (NC_POOL_TAKE(b[e], m)) m = b[e], w = 1;
            if (NC_POOL_TAKE(c[e], m)) m = c[e], w = 2;
            if (NC_POOL_TAKE(d[e], m)) m = d[e], w = 3;
            o[e] = m;
            io[e] = (uint8_t)w;
        }
    } else {
#pragma omp simd
        for (ptrdiff_t e = 0; e < len; e++) {
            REAL m = NC_POOL_TAKE(b[e], a[e]) ? b[e] : a[e];
            m = NC_POOL_TAKE(c[e], m) ? c[e] : m;
            o[e] = NC_POOL_TAKE(d[e], m) ? d[e] : m;
        }
    }
}
