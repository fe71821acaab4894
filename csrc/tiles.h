/* tiles.h -- what the packed low-precision GEMMs (int8.c, bf16.c) share: the OpenMP thread queries
 * (stubs without OpenMP) and the cut of C among T threads at tile boundaries, by rows (MR units)
 * when there are at least T row panels, else by columns (NR units). No sum is split, so the
 * result does not depend on the thread count. Internal; included by those files. */
#ifndef NC_TILES_H
#define NC_TILES_H
#include <stddef.h>
#ifdef _OPENMP
#include <omp.h>
#else
static inline int omp_get_thread_num(void) { return 0; }
static inline int omp_get_num_threads(void) { return 1; }
#endif

/* The start of part `part` of `parts` of [0, len), in whole units (the last part takes the rest). */
static inline ptrdiff_t nc_tile_cut(ptrdiff_t len, int parts, int part, int unit)
{
    ptrdiff_t units = (len + unit - 1) / unit, at = units * part / parts * unit;
    return at < len ? at : len;
}

/* Thread t of T's block C[*r0:*r1, *c0:*c1] of an m x n C of mr x nr tiles. */
static inline void nc_tile_block(ptrdiff_t m, ptrdiff_t n, int mr, int nr, int T, int t, ptrdiff_t *r0,
                                 ptrdiff_t *r1, ptrdiff_t *c0, ptrdiff_t *c1)
{
    *r0 = 0, *r1 = m, *c0 = 0, *c1 = n;
    if ((m + mr - 1) / mr >= T)
        *r0 = nc_tile_cut(m, T, t, mr), *r1 = nc_tile_cut(m, T, t + 1, mr);
    else
        *c0 = nc_tile_cut(n, T, t, nr), *c1 = nc_tile_cut(n, T, t + 1, nr);
}
#endif /* NC_TILES_H */
