/* layers_walk.h -- the walk of a batch through consecutive dense layers, one layer after the other,
 * shared by nc_dense_layers (float kernels) and nc_int8_layers (int8 kernels): each layer's product
 * (the caller's, with the activation in its epilogue unless the layer runs it apart), then the same
 * separate activation or row softmax pass as the layer makes. Included after real.h, once per REAL. */

/* out (m x dims[l+1]) := act(in W_l + b_l) for layer l; 0, or -1 when out of memory */
typedef int (*NC_NAME(layer_product))(const void *ctx, int l, ptrdiff_t m, ptrdiff_t k, ptrdiff_t n, const REAL *in,
                                      REAL *out, int act, REAL act_alpha, int nthreads);

static int NC_NAME(layers_walk)(ptrdiff_t m, int L, const ptrdiff_t *dims, const int *act, const int *separate,
                                const REAL *act_alpha, int check_finite, const REAL *x, REAL *y, REAL *work,
                                int nthreads, NC_NAME(layer_product) product, const void *ctx)
{
    if (m <= 0) return 0;
    if (check_finite && !NC_NAME(all_finite)(x, m * dims[0], nthreads)) return 1;
    ptrdiff_t wmax = 0;
    for (int l = 1; l < L; l++)
        if (dims[l] > wmax) wmax = dims[l];
    REAL *buf[2] = {work, work + m * wmax};
    const REAL *in = x;
    for (int l = 0; l < L; l++) {
        ptrdiff_t k = dims[l], n = dims[l + 1];
        REAL *out = l == L - 1 ? y : buf[l % 2];
        /* z = x W + b with f in the epilogue, or f (or the row softmax) in a pass of its own */
        int fused = act[l] >= 0 && !separate[l];
        if (product(ctx, l, m, k, n, in, out, fused ? act[l] : NC_ACT_LINEAR, act_alpha[l], nthreads)) return -1;
        if (act[l] < 0)
            NC_NAME(softmax_forward)(out, out, m, n);
        else if (!fused)
            NC_NAME(act_forward_par)(act[l], act_alpha[l], out, out, m * n, nthreads);
        in = out;
    }
    return 0;
}
