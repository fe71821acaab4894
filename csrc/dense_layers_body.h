/* dense_layers_body.h -- nc_dense_layers_<f32|f64>, included once per REAL by dense_layers.c. */
#include "layers_walk.h"

typedef struct {
    const REAL *const *W, *const *bias;
} NC_NAME(dense_layers_ctx);

static int NC_NAME(dense_product)(const void *ctx, int l, ptrdiff_t m, ptrdiff_t k, ptrdiff_t n, const REAL *in,
                                  REAL *out, int act, REAL act_alpha, int nthreads)
{
    const NC_NAME(dense_layers_ctx) *c = (const NC_NAME(dense_layers_ctx) *)ctx;
    NC_NAME(gemm)(0, 0, m, n, k, 1, in, k, c->W[l], n, 0, out, n, c->bias[l], act, act_alpha, nthreads);
    return 0;
}

int NC_NAME(dense_layers)(ptrdiff_t m, int L, const ptrdiff_t *dims, const REAL *const *W, const REAL *const *bias,
                          const int *act, const int *separate, const REAL *act_alpha, int check_finite,
                          const REAL *x, REAL *y, REAL *work, int nthreads)
{
    NC_NAME(dense_layers_ctx) ctx = {W, bias};
    return NC_NAME(layers_walk)(m, L, dims, act, separate, act_alpha, check_finite, x, y, work, nthreads,
                                NC_NAME(dense_product), &ctx);
}
