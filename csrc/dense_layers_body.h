/* dense_layers_body.h -- nc_dense_layers_<f32|f64>, included once per REAL by dense_layers.c. */

int NC_NAME(dense_layers)(ptrdiff_t m, int L, const ptrdiff_t *dims, const REAL *const *W, const REAL *const *bias,
                          const int *act, const int *separate, const REAL *act_alpha, int check_finite,
                          const REAL *x, REAL *y, REAL *work, int nthreads)
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
        NC_NAME(gemm)(0, 0, m, n, k, 1, in, k, W[l], n, 0, out, n, bias[l], fused ? act[l] : NC_ACT_LINEAR,
                      act_alpha[l], nthreads);
        if (act[l] < 0)
            NC_NAME(softmax_forward)(out, out, m, n);
        else if (!fused)
            NC_NAME(act_forward_par)(act[l], act_alpha[l], out, out, m * n, nthreads);
        in = out;
    }
    return 0;
}
