/*
 * nncore.h -- the one public header of nncore's C kernels.
 *
 * Conventions
 *   - Every kernel exists as nc_<op>_f32 and nc_<op>_f64, generated from one
 *     body in <op>_body.h (REAL and NC_NAME are defined before inclusion).
 *   - Matrices are row-major. Inputs come before outputs; pointers are tagged
 *     in / out / inout. Lengths are ptrdiff_t.
 *   - A kernel never allocates on its hot path and keeps no global state.
 *     Kernels that take `nthreads` may run an OpenMP team of at most that
 *     many threads (clamped by nc_team_size); all others are serial.
 *   - Reductions combine fixed-size chunks in a fixed order, so their result
 *     is bit-identical for any thread count.
 *   - Callers (the Cython layer) validate shapes and dtypes before calling.
 */
#ifndef NNCORE_H
#define NNCORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* Runtime configuration                                               */
/* ------------------------------------------------------------------ */

/* SIMD levels chosen at run time from what the CPU reports. */
enum nc_simd { NC_SIMD_GENERIC = 0, NC_SIMD_AVX2 = 1, NC_SIMD_AVX512 = 2 };

int nc_simd_level(void);            /* best level this CPU supports and this build compiled */
const char *nc_simd_name(int level);
void nc_set_simd_level(int level);  /* force a lower level (testing); clamped to nc_simd_level() */
int nc_active_simd_level(void);     /* the level kernels use now */
int nc_has_openmp(void);            /* 1 if compiled with OpenMP */
int nc_omp_max_threads(void);       /* omp_get_max_threads(), 1 without OpenMP */

/* Team size for `work` units of roughly one flop/byte each, asking for at
 * most `nthreads`: 1 when the work is too small to amortise a team, when
 * OpenMP is absent, or when the process forked (see nc_mark_forked). */
int nc_team_size(int nthreads, double work);
void nc_mark_forked(void);          /* called in a forked child: run serially from now on */

/* ------------------------------------------------------------------ */
/* Activations                                                         */
/* ------------------------------------------------------------------ */

enum nc_act {
    NC_ACT_LINEAR = 0,      /* y = x */
    NC_ACT_STEP = 1,        /* y = 1 if x >= 0 else 0; dy/dx = 0 */
    NC_ACT_SIGMOID = 2,     /* y = 1 / (1 + exp(-x)); dy/dx = y (1 - y) */
    NC_ACT_TANH = 3,        /* y = tanh(x); dy/dx = 1 - y^2 */
    NC_ACT_RELU = 4,        /* y = max(x, 0); dy/dx = [x > 0] */
    NC_ACT_LEAKY_RELU = 5,  /* y = x if x > 0 else alpha x (alpha 0.2 in Keras 3) */
    NC_ACT_ELU = 6,         /* y = x if x > 0 else alpha (exp(x) - 1) */
    NC_ACT_SELU = 7,        /* y = 1.0507.. * (x if x > 0 else 1.6732.. (exp(x) - 1)) */
    NC_ACT_GELU = 8,        /* y = x Phi(x) (exact, erf) -- backward needs x */
    NC_ACT_GELU_TANH = 9,   /* y = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) -- needs x */
    NC_ACT_SOFTPLUS = 10,   /* y = log(1 + exp(x)), stable; dy/dx = 1 - exp(-y) */
    NC_ACT_HARD_SIGMOID = 11, /* y = clip(x / 6 + 1/2, 0, 1) (Keras 3) */
    NC_ACT_SWISH = 12,      /* y = x sigmoid(x) -- backward needs x */
    NC_ACT_COUNT = 13
};

/* 1 if backward of `act` needs the pre-activation x, 0 if y suffices. */
int nc_act_needs_input(int act);

/* y[i] = f(x[i]), i < n. x == y allowed (in place). Serial. */
void nc_act_forward_f32(int act, float alpha, const float *x /* in */, float *y /* out */, ptrdiff_t n);
void nc_act_forward_f64(int act, double alpha, const double *x /* in */, double *y /* out */, ptrdiff_t n);

/* dx[i] = dy[i] * f'(x[i]), written via y where possible. x may be NULL when
 * !nc_act_needs_input(act). dx may alias dy. Serial. */
void nc_act_backward_f32(int act, float alpha, const float *x /* in, nullable */, const float *y /* in */,
                         const float *dy /* in */, float *dx /* out */, ptrdiff_t n);
void nc_act_backward_f64(int act, double alpha, const double *x /* in, nullable */, const double *y /* in */,
                         const double *dy /* in */, double *dx /* out */, ptrdiff_t n);

/* Row-wise softmax over `cols`: y = exp(x - max) / sum. x == y allowed. */
void nc_softmax_forward_f32(const float *x /* in */, float *y /* out */, ptrdiff_t rows, ptrdiff_t cols);
void nc_softmax_forward_f64(const double *x /* in */, double *y /* out */, ptrdiff_t rows, ptrdiff_t cols);
/* dx = y * (dy - sum_j dy_j y_j), per row. dx may alias dy. */
void nc_softmax_backward_f32(const float *y /* in */, const float *dy /* in */, float *dx /* out */,
                             ptrdiff_t rows, ptrdiff_t cols);
void nc_softmax_backward_f64(const double *y /* in */, const double *dy /* in */, double *dx /* out */,
                             ptrdiff_t rows, ptrdiff_t cols);

/* Parallel wrappers over contiguous arrays (chunked, OpenMP when large). */
void nc_act_forward_par_f32(int act, float alpha, const float *x, float *y, ptrdiff_t n, int nthreads);
void nc_act_forward_par_f64(int act, double alpha, const double *x, double *y, ptrdiff_t n, int nthreads);
void nc_act_backward_par_f32(int act, float alpha, const float *x, const float *y, const float *dy,
                             float *dx, ptrdiff_t n, int nthreads);
void nc_act_backward_par_f64(int act, double alpha, const double *x, const double *y, const double *dy,
                             double *dx, ptrdiff_t n, int nthreads);

/* ------------------------------------------------------------------ */
/* GEMM                                                                */
/* ------------------------------------------------------------------ */

/* C := act(alpha * op(A) op(B) + beta * C + bias_row)
 *   op(A) is m x k (A stored k x m when trans_a), op(B) is k x n (B stored
 *   n x k when trans_b), C is m x n; lda/ldb/ldc are row strides in elements.
 *   bias (length n) may be NULL; act is an nc_act (NC_ACT_LINEAR: none).
 *   beta == 0 overwrites C without reading it (C may hold NaN).
 *   k == 0 gives act(beta C + bias). */
void nc_gemm_f32(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                 float alpha, const float *A /* in */, ptrdiff_t lda,
                 const float *B /* in */, ptrdiff_t ldb,
                 float beta, float *C /* inout */, ptrdiff_t ldc,
                 const float *bias /* in, nullable */, int act, float act_alpha, int nthreads);
void nc_gemm_f64(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                 double alpha, const double *A /* in */, ptrdiff_t lda,
                 const double *B /* in */, ptrdiff_t ldb,
                 double beta, double *C /* inout */, ptrdiff_t ldc,
                 const double *bias /* in, nullable */, int act, double act_alpha, int nthreads);

/* The oracle: a plain triple loop with the same contract (no epilogue). */
void nc_gemm_ref_f32(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                     float alpha, const float *A, ptrdiff_t lda, const float *B, ptrdiff_t ldb,
                     float beta, float *C, ptrdiff_t ldc);
void nc_gemm_ref_f64(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                     double alpha, const double *A, ptrdiff_t lda, const double *B, ptrdiff_t ldb,
                     double beta, double *C, ptrdiff_t ldc);

/* ------------------------------------------------------------------ */
/* Reductions and data movement                                        */
/* ------------------------------------------------------------------ */

/* out[j] = sum_i x[i, j] (x is rows x cols, row stride cols): the bias gradient. */
void nc_colsum_f32(const float *x /* in */, float *out /* out */, ptrdiff_t rows, ptrdiff_t cols, int nthreads);
void nc_colsum_f64(const double *x /* in */, double *out /* out */, ptrdiff_t rows, ptrdiff_t cols, int nthreads);

/* returns sum_i x[i]^2, accumulated in double over fixed chunks. */
double nc_sumsq_f32(const float *x /* in */, ptrdiff_t n, int nthreads);
double nc_sumsq_f64(const double *x /* in */, ptrdiff_t n, int nthreads);

/* returns 1 if every x[i] is finite, else 0. */
int nc_all_finite_f32(const float *x /* in */, ptrdiff_t n, int nthreads);
int nc_all_finite_f64(const double *x /* in */, ptrdiff_t n, int nthreads);

/* dst[r, :] = src[idx[r], :] for r < nidx (gather a batch of rows; idx checked by caller). */
void nc_take_rows_f32(const float *src /* in */, ptrdiff_t cols, const int64_t *idx /* in */, ptrdiff_t nidx,
                      float *dst /* out */);
void nc_take_rows_f64(const double *src /* in */, ptrdiff_t cols, const int64_t *idx /* in */, ptrdiff_t nidx,
                      double *dst /* out */);

/* ------------------------------------------------------------------ */
/* Fused losses                                                        */
/* Each returns sum_i w_i * loss_i over the n rows (w = sample weights, */
/* NULL means 1) in double, and writes the gradient of                  */
/* grad_scale * sum_i w_i loss_i with respect to its input into d       */
/* (d may be NULL: loss only). The caller divides by the batch size.    */
/* ------------------------------------------------------------------ */

/* z: n x k logits, y: n x k targets. p = softmax(z) (written to prob if not NULL);
 * loss_i = -sum_j y_ij log(clip(p_ij, 1e-7, 1 - 1e-7)); d = grad_scale * w_i * (p - y). */
double nc_softmax_xent_f32(const float *z, const float *y, const float *w, float *prob, float *d,
                           ptrdiff_t n, ptrdiff_t k, double grad_scale, int nthreads);
double nc_softmax_xent_f64(const double *z, const double *y, const double *w, double *prob, double *d,
                           ptrdiff_t n, ptrdiff_t k, double grad_scale, int nthreads);
/* The same with integer labels (0 <= label < k, checked by caller). */
double nc_sparse_softmax_xent_f32(const float *z, const int64_t *label, const float *w, float *prob, float *d,
                                  ptrdiff_t n, ptrdiff_t k, double grad_scale, int nthreads);
double nc_sparse_softmax_xent_f64(const double *z, const int64_t *label, const double *w, double *prob, double *d,
                                  ptrdiff_t n, ptrdiff_t k, double grad_scale, int nthreads);
/* z: n x k logits; p = sigmoid(z); loss_i = mean_j BCE(y_ij, clip(p_ij)); d = grad_scale w_i (p - y) / k. */
double nc_sigmoid_bce_f32(const float *z, const float *y, const float *w, float *prob, float *d,
                          ptrdiff_t n, ptrdiff_t k, double grad_scale, int nthreads);
double nc_sigmoid_bce_f64(const double *z, const double *y, const double *w, double *prob, double *d,
                          ptrdiff_t n, ptrdiff_t k, double grad_scale, int nthreads);
/* loss_i = mean_j (yhat_ij - y_ij)^2; d = grad_scale w_i 2 (yhat - y) / k. */
double nc_mse_f32(const float *yhat, const float *y, const float *w, float *d,
                  ptrdiff_t n, ptrdiff_t k, double grad_scale, int nthreads);
double nc_mse_f64(const double *yhat, const double *y, const double *w, double *d,
                  ptrdiff_t n, ptrdiff_t k, double grad_scale, int nthreads);
/* loss_i = mean_j |yhat_ij - y_ij|; d = grad_scale w_i sign(yhat - y) / k. */
double nc_mae_f32(const float *yhat, const float *y, const float *w, float *d,
                  ptrdiff_t n, ptrdiff_t k, double grad_scale, int nthreads);
double nc_mae_f64(const double *yhat, const double *y, const double *w, double *d,
                  ptrdiff_t n, ptrdiff_t k, double grad_scale, int nthreads);

/* ------------------------------------------------------------------ */
/* Optimizers (fused updates over flat buffers)                        */
/* ------------------------------------------------------------------ */
/* (section owned by the optimizer work: prototypes go here) */

#ifdef __cplusplus
}
#endif
#endif /* NNCORE_H */
