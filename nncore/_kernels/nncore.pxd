# Declarations of csrc/nncore.h for Cython. Keep in the same order as the header.
from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t, uint16_t

cdef extern from "nncore.h" nogil:
    # runtime
    int nc_simd_level()
    int nc_simd_cpu_level()
    int nc_simd_compiled_level()
    const char *nc_simd_name(int level)
    void nc_set_simd_level(int level)
    int nc_active_simd_level()
    int nc_has_openmp()
    int nc_omp_max_threads()
    int nc_team_size(int nthreads, double work)
    void nc_mark_forked()

    # activations
    int NC_ACT_LINEAR, NC_ACT_STEP, NC_ACT_SIGMOID, NC_ACT_TANH, NC_ACT_RELU, NC_ACT_LEAKY_RELU
    int NC_ACT_ELU, NC_ACT_SELU, NC_ACT_GELU, NC_ACT_GELU_TANH, NC_ACT_SOFTPLUS, NC_ACT_HARD_SIGMOID
    int NC_ACT_SWISH, NC_ACT_COUNT, NC_ACT_BF16
    int nc_act_needs_input(int act)
    void nc_act_forward_par_f32(int act, float alpha, const float *x, float *y, ptrdiff_t n, int nthreads)
    void nc_act_forward_par_f64(int act, double alpha, const double *x, double *y, ptrdiff_t n, int nthreads)
    void nc_act_backward_par_f32(int act, float alpha, const float *x, const float *y, const float *dy,
                                 float *dx, ptrdiff_t n, int nthreads)
    void nc_act_backward_par_f64(int act, double alpha, const double *x, const double *y, const double *dy,
                                 double *dx, ptrdiff_t n, int nthreads)
    void nc_softmax_forward_f32(const float *x, float *y, ptrdiff_t rows, ptrdiff_t cols)
    void nc_softmax_forward_f64(const double *x, double *y, ptrdiff_t rows, ptrdiff_t cols)
    void nc_softmax_backward_f32(const float *y, const float *dy, float *dx, ptrdiff_t rows, ptrdiff_t cols)
    void nc_softmax_backward_f64(const double *y, const double *dy, double *dx, ptrdiff_t rows, ptrdiff_t cols)

    # gemm
    void nc_gemm_f32(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                     float alpha, const float *A, ptrdiff_t lda, const float *B, ptrdiff_t ldb,
                     float beta, float *C, ptrdiff_t ldc, const float *bias, int act, float act_alpha,
                     int nthreads)
    void nc_gemm_f64(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                     double alpha, const double *A, ptrdiff_t lda, const double *B, ptrdiff_t ldb,
                     double beta, double *C, ptrdiff_t ldc, const double *bias, int act, double act_alpha,
                     int nthreads)
    ptrdiff_t nc_gemm_pack_size_f32(ptrdiff_t k, ptrdiff_t n)
    ptrdiff_t nc_gemm_pack_size_f64(ptrdiff_t k, ptrdiff_t n)
    int nc_gemm_pack_b_f32(int trans_b, ptrdiff_t k, ptrdiff_t n, const float *B, ptrdiff_t ldb, float *packed,
                           int refresh)
    int nc_gemm_pack_b_f64(int trans_b, ptrdiff_t k, ptrdiff_t n, const double *B, ptrdiff_t ldb, double *packed,
                           int refresh)
    int nc_gemm_packed_f32(int trans_a, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, float alpha, const float *A,
                           ptrdiff_t lda, const float *packed, float beta, float *C, ptrdiff_t ldc,
                           const float *bias, int act, float act_alpha, int nthreads)
    int nc_gemm_packed_f64(int trans_a, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, double alpha, const double *A,
                           ptrdiff_t lda, const double *packed, double beta, double *C, ptrdiff_t ldc,
                           const double *bias, int act, double act_alpha, int nthreads)
    void nc_gemm_panels_f32(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const float *A, ptrdiff_t lda,
                            const float *bpack, ptrdiff_t ntot, float beta, float *C, ptrdiff_t ldc,
                            const float *bias, int act, float act_alpha)
    void nc_gemm_panels_f64(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const double *A, ptrdiff_t lda,
                            const double *bpack, ptrdiff_t ntot, double beta, double *C, ptrdiff_t ldc,
                            const double *bias, int act, double act_alpha)
    void nc_gemm_tn_f32(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const float *A, ptrdiff_t lda, const float *B,
                        ptrdiff_t ldb, float *C, ptrdiff_t ldc)
    void nc_gemm_tn_f64(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const double *A, ptrdiff_t lda, const double *B,
                        ptrdiff_t ldb, double *C, ptrdiff_t ldc)
    void nc_gemm_micro_tile_f32(int *mr, int *nr)
    void nc_gemm_micro_tile_f64(int *mr, int *nr)
    int nc_dense_chain_f32(ptrdiff_t m, int L, const ptrdiff_t *dims, const float *const *W, float *const *packed,
                           const float *const *bias, const int *act, const float *act_alpha, int check_finite,
                           const float *x, float *y, int nthreads)
    int nc_dense_chain_f64(ptrdiff_t m, int L, const ptrdiff_t *dims, const double *const *W,
                           double *const *packed, const double *const *bias, const int *act,
                           const double *act_alpha, int check_finite, const double *x, double *y, int nthreads)
    int nc_dense_layers_f32(ptrdiff_t m, int L, const ptrdiff_t *dims, const float *const *W,
                            const float *const *bias, const int *act, const int *separate, const float *act_alpha,
                            int check_finite, const float *x, float *y, float *work, int nthreads)
    int nc_dense_layers_f64(ptrdiff_t m, int L, const ptrdiff_t *dims, const double *const *W,
                            const double *const *bias, const int *act, const int *separate, const double *act_alpha,
                            int check_finite, const double *x, double *y, double *work, int nthreads)
    enum:
        NC_RNN_LSTM
        NC_RNN_GRU
        NC_RNN_GRU_RB
        NC_RNN_SIMPLE
    int nc_rnn_seq_forward_f32(int cell, ptrdiff_t T, ptrdiff_t B, ptrdiff_t D, ptrdiff_t u, int act, float alpha,
                               int ract, float ralpha, const float *packed, const float *packed2, const float *bias,
                               int with_h0, const float *x, float *xh, float *z, float *s1, float *s2, float *h,
                               int nthreads)
    int nc_rnn_seq_forward_f64(int cell, ptrdiff_t T, ptrdiff_t B, ptrdiff_t D, ptrdiff_t u, int act, double alpha,
                               int ract, double ralpha, const double *packed, const double *packed2,
                               const double *bias, int with_h0, const double *x, double *xh, double *z, double *s1,
                               double *s2, double *h, int nthreads)
    int nc_rnn_seq_forward_bf16(int cell, ptrdiff_t T, ptrdiff_t B, ptrdiff_t D, ptrdiff_t u, int act, float alpha,
                                int ract, float ralpha, const float *packed, const float *packed2, const float *bias,
                                int with_h0, const float *x, float *xh, float *z, float *s1, float *s2, float *h,
                                int nthreads)
    int nc_rnn_seq_backward_f32(int cell, ptrdiff_t T, ptrdiff_t B, ptrdiff_t u, int act, float alpha, int ract,
                                float ralpha, const float *packed_t, const float *packed2_t, int with_h0, int h0,
                                int add_dh, const float *gates, const float *s1, const float *s2, const float *h,
                                float *dh, float *dc, float *delta, float *drec, ptrdiff_t K, const float *xh,
                                float *dP, int nthreads)
    int nc_rnn_seq_backward_f64(int cell, ptrdiff_t T, ptrdiff_t B, ptrdiff_t u, int act, double alpha, int ract,
                                double ralpha, const double *packed_t, const double *packed2_t, int with_h0, int h0,
                                int add_dh, const double *gates, const double *s1, const double *s2, const double *h,
                                double *dh, double *dc, double *delta, double *drec, ptrdiff_t K, const double *xh,
                                double *dP, int nthreads)
    int nc_rnn_seq_backward_bf16(int cell, ptrdiff_t T, ptrdiff_t B, ptrdiff_t u, int act, float alpha, int ract,
                                 float ralpha, const float *packed_t, const float *packed2_t, int with_h0, int h0,
                                 int add_dh, const float *gates, const float *s1, const float *s2, const float *h,
                                 float *dh, float *dc, float *delta, float *drec, ptrdiff_t K, const float *xh,
                                 float *dP, int nthreads)
    void nc_gemm_ref_f32(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                         float alpha, const float *A, ptrdiff_t lda, const float *B, ptrdiff_t ldb,
                         float beta, float *C, ptrdiff_t ldc)
    void nc_gemm_ref_f64(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                         double alpha, const double *A, ptrdiff_t lda, const double *B, ptrdiff_t ldb,
                         double beta, double *C, ptrdiff_t ldc)

    # reductions and data movement
    void nc_colsum_f32(const float *x, float *out, ptrdiff_t rows, ptrdiff_t cols, int nthreads)
    void nc_colsum_f64(const double *x, double *out, ptrdiff_t rows, ptrdiff_t cols, int nthreads)
    double nc_sumsq_f32(const float *x, ptrdiff_t n, int nthreads)
    double nc_sumsq_f64(const double *x, ptrdiff_t n, int nthreads)
    int nc_all_finite_f32(const float *x, ptrdiff_t n, int nthreads)
    int nc_all_finite_f64(const double *x, ptrdiff_t n, int nthreads)
    void nc_take_rows_f32(const float *src, ptrdiff_t cols, const int64_t *idx, ptrdiff_t nidx, float *dst)
    void nc_take_rows_f64(const double *src, ptrdiff_t cols, const int64_t *idx, ptrdiff_t nidx, double *dst)
    int nc_read_rows(int fd, int64_t base, int64_t rowbytes, const int64_t *idx, ptrdiff_t n, char *dst)
    void nc_scatter_add_rows_f32(const float *src, ptrdiff_t cols, const int64_t *idx, ptrdiff_t nidx, float *dst,
                                 int nthreads)
    void nc_scatter_add_rows_f64(const double *src, ptrdiff_t cols, const int64_t *idx, ptrdiff_t nidx,
                                 double *dst, int nthreads)

    # recurrent cells (mask: B bytes or NULL)
    void nc_lstm_cell_forward_f32(int act, float alpha, int ract, float ralpha, float *z, const float *c_prev,
                                  const float *h_prev, const unsigned char *mask, float *c, float *tc, float *h,
                                  ptrdiff_t B, ptrdiff_t u, int nthreads)
    void nc_lstm_cell_forward_f64(int act, double alpha, int ract, double ralpha, double *z,
                                  const double *c_prev, const double *h_prev, const unsigned char *mask, double *c,
                                  double *tc, double *h, ptrdiff_t B, ptrdiff_t u, int nthreads)
    void nc_lstm_cell_backward_f32(int act, float alpha, int ract, float ralpha, const float *gates,
                                   const float *c_prev, const float *tc, const float *dh, const unsigned char *mask,
                                   float *dc, float *delta, float *dh_prev, ptrdiff_t B, ptrdiff_t u, int nthreads)
    void nc_lstm_cell_backward_f64(int act, double alpha, int ract, double ralpha, const double *gates,
                                   const double *c_prev, const double *tc, const double *dh,
                                   const unsigned char *mask, double *dc, double *delta, double *dh_prev,
                                   ptrdiff_t B, ptrdiff_t u, int nthreads)
    void nc_gru_cell_forward_f32(int act, float alpha, int ract, float ralpha, float *z, const float *rec,
                                 const float *h_prev, const unsigned char *mask, float *h, ptrdiff_t B, ptrdiff_t u,
                                 int nthreads)
    void nc_gru_cell_forward_f64(int act, double alpha, int ract, double ralpha, double *z, const double *rec,
                                 const double *h_prev, const unsigned char *mask, double *h, ptrdiff_t B,
                                 ptrdiff_t u, int nthreads)
    void nc_gru_cell_backward_f32(int act, float alpha, int ract, float ralpha, const float *gates,
                                  const float *rec, const float *h_prev, const float *dh, const unsigned char *mask,
                                  float *dx, float *drec, float *dh_prev, ptrdiff_t B, ptrdiff_t u, int nthreads)
    void nc_gru_cell_backward_f64(int act, double alpha, int ract, double ralpha, const double *gates,
                                  const double *rec, const double *h_prev, const double *dh,
                                  const unsigned char *mask, double *dx, double *drec, double *dh_prev,
                                  ptrdiff_t B, ptrdiff_t u, int nthreads)
    void nc_gru_rb_gates_forward_f32(int ract, float ralpha, float *z, const float *h_prev, const float *rm,
                                     float *q, ptrdiff_t B, ptrdiff_t u, int nthreads)
    void nc_gru_rb_gates_forward_f64(int ract, double ralpha, double *z, const double *h_prev, const double *rm,
                                     double *q, ptrdiff_t B, ptrdiff_t u, int nthreads)
    void nc_gru_rb_state_forward_f32(int act, float alpha, float *z, const float *h_prev,
                                     const unsigned char *mask, float *h, ptrdiff_t B, ptrdiff_t u, int nthreads)
    void nc_gru_rb_state_forward_f64(int act, double alpha, double *z, const double *h_prev,
                                     const unsigned char *mask, double *h, ptrdiff_t B, ptrdiff_t u, int nthreads)
    void nc_gru_rb_state_backward_f32(int act, float alpha, int ract, float ralpha, const float *gates,
                                      const float *h_prev, const float *dh, const unsigned char *mask, float *delta,
                                      float *dh_prev, ptrdiff_t B, ptrdiff_t u, int nthreads)
    void nc_gru_rb_state_backward_f64(int act, double alpha, int ract, double ralpha, const double *gates,
                                      const double *h_prev, const double *dh, const unsigned char *mask,
                                      double *delta, double *dh_prev, ptrdiff_t B, ptrdiff_t u, int nthreads)
    void nc_gru_rb_reset_backward_f32(int ract, float ralpha, const float *gates, const float *h_prev,
                                      const float *rm, const float *dq, float *delta, float *dh_prev, ptrdiff_t B,
                                      ptrdiff_t u, int nthreads)
    void nc_gru_rb_reset_backward_f64(int ract, double ralpha, const double *gates, const double *h_prev,
                                      const double *rm, const double *dq, double *delta, double *dh_prev,
                                      ptrdiff_t B, ptrdiff_t u, int nthreads)
    void nc_rnn_carry_masked_f32(const float *h_prev, const unsigned char *mask, float *h, ptrdiff_t B, ptrdiff_t u)
    void nc_rnn_carry_masked_f64(const double *h_prev, const unsigned char *mask, double *h, ptrdiff_t B,
                                 ptrdiff_t u)
    void nc_simple_rnn_cell_backward_f32(int act, float alpha, const float *h, const float *dh,
                                         const unsigned char *mask, float *delta, float *dh_prev, ptrdiff_t B,
                                         ptrdiff_t u, int nthreads)
    void nc_simple_rnn_cell_backward_f64(int act, double alpha, const double *h, const double *dh,
                                         const unsigned char *mask, double *delta, double *dh_prev, ptrdiff_t B,
                                         ptrdiff_t u, int nthreads)

    # convolution and pooling (channels_last)
    ctypedef struct nc_conv_geom:
        ptrdiff_t n, h, w, c
        ptrdiff_t kh, kw
        ptrdiff_t sh, sw
        ptrdiff_t dh, dw
        ptrdiff_t pt, pl
        ptrdiff_t oh, ow
    void nc_im2col_f32(const nc_conv_geom *g, const float *x, float *cols, int nthreads)
    void nc_im2col_f64(const nc_conv_geom *g, const double *x, double *cols, int nthreads)
    int nc_conv_int8_f32(const nc_conv_geom *g, const float *x, int qmax, const int8_t *W, ptrdiff_t n,
                         const float *wscale, const float *bias, int act, float act_alpha, float *y, int nthreads)
    int nc_conv_int8_f64(const nc_conv_geom *g, const double *x, int qmax, const int8_t *W, ptrdiff_t n,
                         const double *wscale, const double *bias, int act, double act_alpha, double *y,
                         int nthreads)
    int nc_conv_forward_f32(const nc_conv_geom *g, const float *x, const float *kernel, ptrdiff_t f, const float *bias,
                            int act, float act_alpha, float *y, float *cols, int nthreads)
    int nc_conv_forward_f64(const nc_conv_geom *g, const double *x, const double *kernel, ptrdiff_t f,
                            const double *bias, int act, double act_alpha, double *y, double *cols, int nthreads)
    int nc_conv_backward_weights_f32(const nc_conv_geom *g, const float *x, ptrdiff_t f, int act, float alpha,
                                     const float *z, const float *y, const float *dy, float *delta, float *dk,
                                     float *db, int nthreads)
    int nc_conv_backward_weights_f64(const nc_conv_geom *g, const double *x, ptrdiff_t f, int act, double alpha,
                                     const double *z, const double *y, const double *dy, double *delta,
                                     double *dk, double *db, int nthreads)
    int nc_conv_pool_forward_f32(const nc_conv_geom *g, const float *x, const float *kernel, ptrdiff_t f,
                                 const float *bias, int act, float act_alpha, float *yp, uint8_t *ix, int nthreads)
    int nc_conv_pool_forward_f64(const nc_conv_geom *g, const double *x, const double *kernel, ptrdiff_t f,
                                 const double *bias, int act, double act_alpha, double *yp, uint8_t *ix,
                                 int nthreads)
    int nc_conv_pool_backward_weights_f32(const nc_conv_geom *g, const float *x, ptrdiff_t f, int act,
                                          const float *yp, const uint8_t *ix, const float *dyp, float *delta,
                                          float *dk, float *db, int nthreads)
    int nc_conv_pool_backward_weights_f64(const nc_conv_geom *g, const double *x, ptrdiff_t f, int act,
                                          const double *yp, const uint8_t *ix, const double *dyp, double *delta,
                                          double *dk, double *db, int nthreads)
    void nc_unpool2_colsum_f32(ptrdiff_t n, ptrdiff_t oh, ptrdiff_t ow, ptrdiff_t f, int act, const float *yp,
                               const uint8_t *ix, const float *dyp, float *db)
    void nc_unpool2_colsum_f64(ptrdiff_t n, ptrdiff_t oh, ptrdiff_t ow, ptrdiff_t f, int act, const double *yp,
                               const uint8_t *ix, const double *dyp, double *db)
    int nc_wino_pool_forward_f32(const nc_conv_geom *g, int m, int bf16, ptrdiff_t f, const float *x,
                                 const float *kernel, const float *bias, int act, float act_alpha, float *U, float *V,
                                 float *yp, uint8_t *ix, int nthreads)
    int nc_wino_pool_forward_f64(const nc_conv_geom *g, int m, int bf16, ptrdiff_t f, const double *x,
                                 const double *kernel, const double *bias, int act, double act_alpha, double *U,
                                 double *V, double *yp, uint8_t *ix, int nthreads)
    int nc_wino_pool_backward_f32(const nc_conv_geom *g, int m, int bf16, ptrdiff_t f, int act, const float *yp,
                                  const uint8_t *ix, const float *dyp, const float *U, float *V, float *M, float *dU,
                                  float *dkernel, float *dx, int nthreads)
    int nc_wino_pool_backward_f64(const nc_conv_geom *g, int m, int bf16, ptrdiff_t f, int act, const double *yp,
                                  const uint8_t *ix, const double *dyp, const double *U, double *V, double *M,
                                  double *dU, double *dkernel, double *dx, int nthreads)
    void nc_col2im_f32(const nc_conv_geom *g, const float *cols, float *x, int nthreads)
    void nc_col2im_f64(const nc_conv_geom *g, const double *cols, double *x, int nthreads)
    void nc_maxpool_forward_f32(const nc_conv_geom *g, const float *x, float *y, int32_t *idx, int nthreads)
    void nc_maxpool_forward_f64(const nc_conv_geom *g, const double *x, double *y, int32_t *idx, int nthreads)
    void nc_maxpool_backward_f32(const nc_conv_geom *g, const int32_t *idx, const float *dy, float *dx,
                                 int nthreads)
    void nc_maxpool_backward_f64(const nc_conv_geom *g, const int32_t *idx, const double *dy, double *dx,
                                 int nthreads)
    void nc_avgpool_forward_f32(const nc_conv_geom *g, const float *x, float *y, int nthreads)
    void nc_avgpool_forward_f64(const nc_conv_geom *g, const double *x, double *y, int nthreads)
    void nc_avgpool_backward_f32(const nc_conv_geom *g, const float *dy, float *dx, int nthreads)
    void nc_avgpool_backward_f64(const nc_conv_geom *g, const double *dy, double *dx, int nthreads)
    ptrdiff_t nc_wino_tiles(const nc_conv_geom *g, int m)
    int nc_wino_forward_f32(const nc_conv_geom *g, int m, int bf16, ptrdiff_t f, const float *x, const float *kernel,
                             const float *bias, int act, float act_alpha, float *U, float *V, float *y,
                             int nthreads)
    int nc_wino_forward_f64(const nc_conv_geom *g, int m, int bf16, ptrdiff_t f, const double *x, const double *kernel,
                             const double *bias, int act, double act_alpha, double *U, double *V,
                             double *y, int nthreads)
    int nc_wino_backward_f32(const nc_conv_geom *g, int m, int bf16, ptrdiff_t f, const float *delta, const float *U,
                             float *V, float *M, float *dU, float *dkernel, float *dx, int nthreads)
    int nc_wino_backward_f64(const nc_conv_geom *g, int m, int bf16, ptrdiff_t f, const double *delta, const double *U,
                             double *V, double *M, double *dU, double *dkernel, double *dx, int nthreads)

    # fused losses
    double nc_softmax_xent_f32(const float *z, const float *y, const float *w, float *prob, float *d,
                               ptrdiff_t n, ptrdiff_t k, double grad_scale, int nthreads)
    double nc_softmax_xent_f64(const double *z, const double *y, const double *w, double *prob, double *d,
                               ptrdiff_t n, ptrdiff_t k, double grad_scale, int nthreads)
    double nc_sparse_softmax_xent_f32(const float *z, const int64_t *label, const float *w, float *prob,
                                      float *d, ptrdiff_t n, ptrdiff_t k, double grad_scale, int nthreads)
    double nc_sparse_softmax_xent_f64(const double *z, const int64_t *label, const double *w, double *prob,
                                      double *d, ptrdiff_t n, ptrdiff_t k, double grad_scale, int nthreads)
    double nc_sigmoid_bce_f32(const float *z, const float *y, const float *w, float *prob, float *d,
                              ptrdiff_t n, ptrdiff_t k, double grad_scale, int nthreads)
    double nc_sigmoid_bce_f64(const double *z, const double *y, const double *w, double *prob, double *d,
                              ptrdiff_t n, ptrdiff_t k, double grad_scale, int nthreads)
    double nc_mse_f32(const float *yhat, const float *y, const float *w, float *d,
                      ptrdiff_t n, ptrdiff_t k, double grad_scale, int nthreads)
    double nc_mse_f64(const double *yhat, const double *y, const double *w, double *d,
                      ptrdiff_t n, ptrdiff_t k, double grad_scale, int nthreads)
    double nc_mae_f32(const float *yhat, const float *y, const float *w, float *d,
                      ptrdiff_t n, ptrdiff_t k, double grad_scale, int nthreads)
    double nc_mae_f64(const double *yhat, const double *y, const double *w, double *d,
                      ptrdiff_t n, ptrdiff_t k, double grad_scale, int nthreads)

    # optimizers (section owned by the optimizer work)
    int NC_OPT_SGD, NC_OPT_ADAGRAD, NC_OPT_RMSPROP, NC_OPT_ADAM, NC_OPT_ADADELTA, NC_OPT_ADAMAX
    int NC_OPT_NADAM, NC_OPT_FTRL, NC_OPT_COUNT
    int NC_OPT_NESTEROV, NC_OPT_CENTERED, NC_OPT_AMSGRAD
    int NC_OPT_MAX_SLOTS, NC_OPT_NCOEF
    ctypedef struct nc_optim_step:
        int kind
        int flags
        double c[8]
        double wd
        double clipvalue
        double scale
        const int64_t *seg_start
        const double *seg_scale
        ptrdiff_t nseg
    int nc_optim_nslots(int kind, int flags, const double *c)
    int nc_optim_step_f32(const nc_optim_step *s, float *w, const float *g, float *const *slots, ptrdiff_t n,
                          int nthreads)
    int nc_optim_step_f64(const nc_optim_step *s, double *w, const double *g, double *const *slots,
                          ptrdiff_t n, int nthreads)
    void nc_optim_seg_sumsq_f32(const float *x, const int64_t *seg_start, ptrdiff_t nseg, double *out,
                                int nthreads)
    void nc_optim_seg_sumsq_f64(const double *x, const int64_t *seg_start, ptrdiff_t nseg, double *out,
                                int nthreads)

    # batch and layer normalization
    ptrdiff_t nc_norm_chunk_rows(ptrdiff_t rows, ptrdiff_t cols)
    ptrdiff_t nc_norm_work_size(ptrdiff_t rows, ptrdiff_t cols)
    void nc_batchnorm_forward_f32(const float *x, const float *gamma, const float *beta, float *moving_mean,
                                  float *moving_var, float *y, double *stats, double *work, ptrdiff_t rows,
                                  ptrdiff_t C, double momentum, double eps, int training, int nthreads)
    void nc_batchnorm_forward_f64(const double *x, const double *gamma, const double *beta, double *moving_mean,
                                  double *moving_var, double *y, double *stats, double *work, ptrdiff_t rows,
                                  ptrdiff_t C, double momentum, double eps, int training, int nthreads)
    void nc_batchnorm_backward_f32(const float *x, const float *dy, const float *gamma, const double *stats,
                                   float *dx, float *dgamma, float *dbeta, double *work, ptrdiff_t rows,
                                   ptrdiff_t C, int training, int nthreads)
    void nc_batchnorm_backward_f64(const double *x, const double *dy, const double *gamma, const double *stats,
                                   double *dx, double *dgamma, double *dbeta, double *work, ptrdiff_t rows,
                                   ptrdiff_t C, int training, int nthreads)
    void nc_layernorm_forward_f32(const float *x, const float *gamma, const float *beta, float *y, double *stats,
                                  ptrdiff_t rows, ptrdiff_t C, double eps, int nthreads)
    void nc_layernorm_forward_f64(const double *x, const double *gamma, const double *beta, double *y,
                                  double *stats, ptrdiff_t rows, ptrdiff_t C, double eps, int nthreads)
    void nc_layernorm_backward_f32(const float *x, const float *dy, const float *gamma, const double *stats,
                                   float *dx, float *dgamma, float *dbeta, double *work, ptrdiff_t rows,
                                   ptrdiff_t C, int nthreads)
    void nc_layernorm_backward_f64(const double *x, const double *dy, const double *gamma, const double *stats,
                                   double *dx, double *dgamma, double *dbeta, double *work, ptrdiff_t rows,
                                   ptrdiff_t C, int nthreads)

    # int8 inference (csrc/int8.c)
    int NC_INT8_GENERIC, NC_INT8_AVX2, NC_INT8_AVX2_SIGN, NC_INT8_AVXVNNI, NC_INT8_AVX512VNNI
    int NC_INT8_AVXVNNI_EMU, NC_INT8_AVX512VNNI_EMU, NC_INT8_COUNT, NC_INT8_MAX_K
    int nc_int8_kernel(int qmax)
    int nc_int8_kernel_available(int kernel, int qmax)
    void nc_int8_set_kernel(int kernel)
    const char *nc_int8_kernel_name(int kernel)
    int nc_gemm_s8s32(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const int8_t *A, ptrdiff_t lda, int qmax, const int8_t *B,
                      ptrdiff_t ldb, int32_t *C, ptrdiff_t ldc, int nthreads)
    int nc_gemm_int8_f32(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const float *x, ptrdiff_t ldx, int qmax, const int8_t *W,
                         ptrdiff_t ldw, const float *wscale, const float *bias, int act, float act_alpha, float *y,
                         ptrdiff_t ldy, int nthreads)
    int nc_gemm_int8_f64(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const double *x, ptrdiff_t ldx, int qmax, const int8_t *W,
                         ptrdiff_t ldw, const double *wscale, const double *bias, int act, double act_alpha,
                         double *y, ptrdiff_t ldy, int nthreads)
    size_t nc_int8_packed_size(int kernel, ptrdiff_t k, ptrdiff_t n)
    int nc_int8_pack(int kernel, const int8_t *W, ptrdiff_t ldw, ptrdiff_t k, ptrdiff_t n, void *out)
    int nc_int8_chain_f32(ptrdiff_t m, int L, const ptrdiff_t *dims, const void *const *packed,
                          const float *const *wscale, const float *const *bias, const int *act,
                          const float *act_alpha, const int *qmax, int check_finite, const float *x, float *y,
                          int nthreads)
    int nc_int8_chain_f64(ptrdiff_t m, int L, const ptrdiff_t *dims, const void *const *packed,
                          const double *const *wscale, const double *const *bias, const int *act,
                          const double *act_alpha, const int *qmax, int check_finite, const double *x, double *y,
                          int nthreads)
    int nc_int8_layers_f32(ptrdiff_t m, int L, const ptrdiff_t *dims, const int8_t *const *W,
                           const float *const *wscale, const float *const *bias, const int *act, const int *separate,
                           const float *act_alpha, const int *qmax, int check_finite, const float *x, float *y,
                           float *work, int nthreads)
    int nc_int8_layers_f64(ptrdiff_t m, int L, const ptrdiff_t *dims, const int8_t *const *W,
                           const double *const *wscale, const double *const *bias, const int *act,
                           const int *separate, const double *act_alpha, const int *qmax, int check_finite,
                           const double *x, double *y, double *work, int nthreads)
    void nc_quantize_rows_f32(const float *x, ptrdiff_t m, ptrdiff_t k, ptrdiff_t ldx, int qmax, int8_t *q,
                              ptrdiff_t ldq, float *scale, int nthreads)
    void nc_quantize_rows_f64(const double *x, ptrdiff_t m, ptrdiff_t k, ptrdiff_t ldx, int qmax, int8_t *q,
                              ptrdiff_t ldq, double *scale, int nthreads)
    void nc_take_rows_int8_f32(const int8_t *E, ptrdiff_t cols, const float *scale, const int64_t *idx,
                               ptrdiff_t nidx, float *y)
    void nc_take_rows_int8_f64(const int8_t *E, ptrdiff_t cols, const double *scale, const int64_t *idx,
                               ptrdiff_t nidx, double *y)

    # bfloat16 mixed precision (csrc/bf16.c)
    int NC_BF16_GENERIC_EMU, NC_BF16_AVX2_EMU, NC_BF16_AVX512BF16, NC_BF16_COUNT
    int nc_bf16_kernel()
    int nc_bf16_kernel_available(int kernel)
    void nc_bf16_set_kernel(int kernel)
    const char *nc_bf16_kernel_name(int kernel)
    int nc_bf16_cpu_has_avx512bf16()
    void nc_bf16_from_f32(const float *x, uint16_t *y, ptrdiff_t n)
    void nc_bf16_round_f32(const float *x, float *y, ptrdiff_t n)
    ptrdiff_t nc_bf16_pack_size(ptrdiff_t k, ptrdiff_t n)
    void nc_bf16_pack(int trans_b, ptrdiff_t k, ptrdiff_t n, const float *B, ptrdiff_t ldb, float *packed)
    int nc_bf16_packed_ok(const float *packed, ptrdiff_t k, ptrdiff_t n)
    int nc_gemm_bf16_f32(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, float alpha, const float *A,
                     ptrdiff_t lda, const float *B, ptrdiff_t ldb, float beta, float *C, ptrdiff_t ldc,
                     const float *bias, int act, float act_alpha, int round_out, int nthreads)
