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
int nc_simd_cpu_level(void);        /* best level this CPU (and its OS) supports */
int nc_simd_compiled_level(void);   /* best level this build compiled (NC_SIMD_GENERIC: generic C only) */
const char *nc_simd_name(int level); /* "generic", "avx2", "avx512" */
void nc_set_simd_level(int level);  /* every kernel uses this level from now on; -1 or above
                                       nc_simd_level(): the best */
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
    NC_ACT_COUNT = 13,
    /* A modifier of any code above (float only, mixed_bfloat16): the result rounded to bfloat16 (nearest
     * even, denormals to zero, as the bf16 GEMM rounds) after the activation, by nc_act_forward/backward
     * and every epilogue that runs its activation through them (nc_gemm's: the tile while in L1). */
    NC_ACT_BF16 = 0x100
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

/* op(B) packed once for many products with it (a recurrent kernel at every
 * time step): nc_gemm_pack_size elements hold op(B) (k x n; B stored n x k
 * when trans_b) in the micro-panels of the SIMD level in use, behind a
 * 64-byte head naming the level and the shape. nc_gemm_packed is nc_gemm
 * with that op(B): C := act(alpha op(A) op(B) + beta C + bias), on the packed
 * path (its result equals nc_gemm's wherever nc_gemm takes that path).
 * Returns 0; -2 if `packed` holds another shape or was packed for another
 * SIMD level (pack again); -1 if a thread's workspace could not be allocated.
 * nc_gemm_pack_b with refresh, over a `packed` that holds this shape at this
 * level, stores only what differs bitwise from the packing of B (a copy kept
 * across calls is then only read while B stays the same); it returns whether
 * anything was stored (1 without refresh). */
ptrdiff_t nc_gemm_pack_size_f32(ptrdiff_t k, ptrdiff_t n);
ptrdiff_t nc_gemm_pack_size_f64(ptrdiff_t k, ptrdiff_t n);
int nc_gemm_pack_b_f32(int trans_b, ptrdiff_t k, ptrdiff_t n, const float *B /* in */, ptrdiff_t ldb,
                       float *packed /* inout */, int refresh);
int nc_gemm_pack_b_f64(int trans_b, ptrdiff_t k, ptrdiff_t n, const double *B /* in */, ptrdiff_t ldb,
                       double *packed /* inout */, int refresh);
int nc_gemm_packed_f32(int trans_a, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, float alpha, const float *A /* in */,
                       ptrdiff_t lda, const float *packed /* in */, float beta, float *C /* inout */, ptrdiff_t ldc,
                       const float *bias /* in, nullable */, int act, float act_alpha, int nthreads);
int nc_gemm_packed_f64(int trans_a, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, double alpha, const double *A /* in */,
                       ptrdiff_t lda, const double *packed /* in */, double beta, double *C /* inout */,
                       ptrdiff_t ldc, const double *bias /* in, nullable */, int act, double act_alpha,
                       int nthreads);

/* C[0:m, 0:n] := act(A B + beta C + bias) on the calling thread, A (m x k)
 * row-major with row stride lda, read in place; B packed by nc_gemm_pack_b
 * at the SIMD level in use (bpack = packed + the 64-byte head, i.e. its first
 * micro-panel; ntot = its width rounded up to the level's NR, ntot >= n: C
 * takes op(B)'s first n columns). Nothing is checked or allocated: the
 * caller knows the packing matches. Each register tile of C is summed over
 * the whole k (no pass of C per k block) and finished in its epilogue (beta
 * C, bias, act); beta == 0 never reads C. Row blocks cut at multiples of the
 * level's MR give the same bits as one call (gemm_kernel.h, gemm_panels). */
void nc_gemm_panels_f32(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const float *A /* in */, ptrdiff_t lda,
                        const float *bpack /* in */, ptrdiff_t ntot, float beta, float *C /* inout */,
                        ptrdiff_t ldc, const float *bias /* in, nullable */, int act, float act_alpha);
void nc_gemm_panels_f64(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const double *A /* in */, ptrdiff_t lda,
                        const double *bpack /* in */, ptrdiff_t ntot, double beta, double *C /* inout */,
                        ptrdiff_t ldc, const double *bias /* in, nullable */, int act, double act_alpha);
/* C[0:m, 0:n] := A^T B on the calling thread, A (k x m) and B (k x n)
 * row-major with row strides lda and ldb (k their rows), both read in place:
 * nothing is packed, checked or allocated. The sums are those of nc_gemm(1,
 * 0, ...) where it packs both operands (k in the same blocks, the same register
 * tiles); C is only written (k <= 0: zeros). */
void nc_gemm_tn_f32(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const float *A /* in */, ptrdiff_t lda,
                    const float *B /* in */, ptrdiff_t ldb, float *C /* out */, ptrdiff_t ldc);
void nc_gemm_tn_f64(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const double *A /* in */, ptrdiff_t lda,
                    const double *B /* in */, ptrdiff_t ldb, double *C /* out */, ptrdiff_t ldc);
/* The MR x NR register tile of the SIMD level in use (gemm_panels' row grid, the packing's NR). */
void nc_gemm_micro_tile_f32(int *mr, int *nr);
void nc_gemm_micro_tile_f64(int *mr, int *nr);

/* A chain of L dense layers, y = f_L(... f_1(x W_1 + b_1) ... W_L + b_L), over
 * the m rows of x (m x dims[0], contiguous) into y (m x dims[L]), in blocks
 * of rows that go through every layer while their activations are in cache
 * (inference: nothing is kept for backward). Layer l: W_l packed by
 * nc_gemm_pack_b (k = dims[l], n = dims[l + 1]), bias[l] (nullable),
 * act[l] an nc_act fused into the product, or -1 for a softmax over each row.
 * check_finite: each block of x is first checked for NaN/inf. W (nullable):
 * the kernels themselves (W_l row-major k x n), from which the kept packed[l]
 * (nc_gemm_pack_size elements) are first refreshed (nc_gemm_pack_b with
 * refresh) by the first thread of the team while the others wake up; without
 * W, packed is used as it is. Returns 0; 1 if x holds a non-finite value (y is
 * then incomplete); -2 if (without W) a packed[l] was packed for another shape
 * or SIMD level; -1 if out of memory. */
int nc_dense_chain_f32(ptrdiff_t m, int L, const ptrdiff_t *dims, const float *const *W /* in, nullable */,
                       float *const *packed /* inout */, const float *const *bias, const int *act,
                       const float *act_alpha, int check_finite, const float *x /* in */, float *y /* out */,
                       int nthreads);
int nc_dense_chain_f64(ptrdiff_t m, int L, const ptrdiff_t *dims, const double *const *W /* in, nullable */,
                       double *const *packed /* inout */, const double *const *bias, const int *act,
                       const double *act_alpha, int check_finite, const double *x /* in */, double *y /* out */,
                       int nthreads);

/* The same chain layer after layer, y = f_L(... f_1(x W_1 + b_1) ... W_L + b_L): each layer one
 * nc_gemm on all m rows with W_l as it is (k = dims[l], n = dims[l + 1], row-major), f fused into
 * its epilogue, or, when separate[l] or act[l] == -1 (softmax over each row), in a pass of its own:
 * bit-identical to the layers' own forward calls, with no packing (dense_layers.c). work holds
 * 2 m max(dims[1..L-1]) elements (the activations between layers). check_finite: x is first
 * checked for NaN/inf. Returns 0, or 1 if x holds a non-finite value (y is then untouched). */
int nc_dense_layers_f32(ptrdiff_t m, int L, const ptrdiff_t *dims, const float *const *W /* in */,
                        const float *const *bias /* in, entries nullable */, const int *act, const int *separate,
                        const float *act_alpha, int check_finite, const float *x /* in */, float *y /* out */,
                        float *work, int nthreads);
int nc_dense_layers_f64(ptrdiff_t m, int L, const ptrdiff_t *dims, const double *const *W /* in */,
                        const double *const *bias /* in, entries nullable */, const int *act, const int *separate,
                        const double *act_alpha, int check_finite, const double *x /* in */, double *y /* out */,
                        double *work, int nthreads);

/* The step loop of a recurrent layer over a whole sequence of T steps of B
 * rows, in one call (rows are independent through time: each thread takes a
 * block of rows through every step, the products of a step then its cell
 * while the rows are in cache). Time-major, u units; the cell (NC_RNN_*)
 * fixes the gate columns G and what each array is:
 *   NC_RNN_LSTM    G = 4u: z the gates, s1 = c (T+1, B, u), s2 = tc (T, B, u) = a(c_t); cells as
 *                  nc_lstm_cell_forward/backward; backward dc (B, u): dL/dc_{T-1} in, dL/dc_{-1} out.
 *   NC_RNN_SIMPLE  G = u: h_t = a(z_t + h_{t-1} U), z_t in h[t+1] (z is not read: h + B u; the backward's
 *                  gates likewise); the activation in the product's epilogue.
 *   NC_RNN_GRU     G = 3u, reset_after: bias (2, G) = [b_in; b_rec], or NULL; s1 = rec (T, B, G) gets
 *                  h_{t-1} U + b_rec; z_t = x_t W + b_in in the loop with x (D > 0: packed2 = W, D x G;
 *                  xh not taken), else z holds it on entry; cells as nc_gru_cell_forward/backward;
 *                  backward: delta = dx, drec (T, B, G).
 *   NC_RNN_GRU_RB  G = 3u, reset before: packed = U_zr (u x 2u), packed2 = U_h (u x u); s1 = q (T, B, u)
 *                  = r h_{t-1}; cells as nc_gru_rb_*; backward packed_t = U_zr^T (2u x u), packed2_t =
 *                  U_h^T (u x u), and h0 says h[0] may be non-zero (the reset gate's gradient at t = 0).
 * Forward: z (T, B, G) gets the gates; h (T+1, B, u) with h[0] the initial
 * state, h[t+1] = h_t. LSTM and SimpleRNN with D > 0 inputs x (T, B, D), K =
 * D + u + 1: `packed` is [W; U; b] (K x G) from nc_gemm_pack_b, xh (T, B, K)
 * gets the rows [x_t | h_{t-1} | 1] and z_t = xh_t [W; U; b] (one product a
 * step; xh then serves dW, dU and db as one product xh^T delta). With D = 0
 * (x, xh NULL): z holds x W + b on entry, `packed` is U (u x G), and z_t +=
 * h_{t-1} U runs from t = 1, or from t = 0 when with_h0. Backward: packed_t
 * is U^T (G x u) packed; gates, s1, s2, h as the forward left them; dh
 * (T+1, B, u) holds dL/dh_t from the outputs at [t+1] on entry, and gets
 * dh_{t-1} += dL/dh_{t-1} at [t] (for t = 0 too when with_h0: dh[0] is then
 * the initial state's, else untouched); with add_dh = 0 only dh[T] is read
 * (the outputs before the last have no gradient) and dh[t] is written;
 * delta (T, B, G) = dL/dz. LSTM and SimpleRNN with xh (T, B, K) from the
 * forward and dP (K x G): also dP = xh^T delta ([dW; dU; db]), summed a step
 * at a time while delta_t is in cache (each block of rows sums a part, the
 * parts are added in block order: the same bits for any thread count);
 * delta may then be NULL (it is not kept). The GRU (reset_after) with xh = x
 * (T, B, D), the layer's input, and K = D + u + 2: dP = [dW; db_in; dU;
 * db_rec], [x_t | 1]^T dx_t and [h_{t-1} | 1]^T drec_t summed alike; delta
 * and drec may then be NULL. The GRU's reset-before form likewise with xh = x,
 * s1 = q from the forward and K = D + u + 1: dP = [dW; db; dU], [dW; db] =
 * [x_t | 1]^T delta_t, dU_zr = h_{t-1}^T delta_zr, dU_h = q_t^T delta_h.
 * Returns 0; -2 if a packed kernel holds another shape or SIMD level; -3 for
 * arguments the cell does not take (delta and dP both NULL, x with the GRU's
 * reset-before form forward, bias with x, dP there without s1); -1 if out of
 * memory. */
enum { NC_RNN_LSTM = 0, NC_RNN_GRU = 1, NC_RNN_GRU_RB = 2, NC_RNN_SIMPLE = 3 };
int nc_rnn_seq_forward_f32(int cell, ptrdiff_t T, ptrdiff_t B, ptrdiff_t D, ptrdiff_t u, int act, float alpha,
                           int ract, float ralpha, const float *packed, const float *packed2 /* nullable */,
                           const float *bias /* nullable */, int with_h0, const float *x /* in, nullable */,
                           float *xh /* out, nullable */, float *z /* inout */, float *s1 /* inout */,
                           float *s2 /* out */, float *h /* inout */, int nthreads);
int nc_rnn_seq_forward_f64(int cell, ptrdiff_t T, ptrdiff_t B, ptrdiff_t D, ptrdiff_t u, int act, double alpha,
                           int ract, double ralpha, const double *packed, const double *packed2 /* nullable */,
                           const double *bias /* nullable */, int with_h0, const double *x /* in, nullable */,
                           double *xh /* out, nullable */, double *z /* inout */, double *s1 /* inout */,
                           double *s2 /* out */, double *h /* inout */, int nthreads);
int nc_rnn_seq_backward_f32(int cell, ptrdiff_t T, ptrdiff_t B, ptrdiff_t u, int act, float alpha, int ract,
                            float ralpha, const float *packed_t, const float *packed2_t /* nullable */, int with_h0,
                            int h0, int add_dh, const float *gates, const float *s1, const float *s2, const float *h,
                            float *dh /* inout */, float *dc /* inout, LSTM */, float *delta /* out, nullable with dP */,
                            float *drec /* out, GRU */, ptrdiff_t K, const float *xh /* in, nullable */,
                            float *dP /* out, nullable */, int nthreads);
int nc_rnn_seq_backward_f64(int cell, ptrdiff_t T, ptrdiff_t B, ptrdiff_t u, int act, double alpha, int ract,
                            double ralpha, const double *packed_t, const double *packed2_t /* nullable */,
                            int with_h0, int h0, int add_dh, const double *gates, const double *s1, const double *s2,
                            const double *h, double *dh /* inout */, double *dc /* inout, LSTM */,
                            double *delta /* out, nullable with dP */, double *drec /* out, GRU */, ptrdiff_t K,
                            const double *xh /* in, nullable */, double *dP /* out, nullable */, int nthreads);
/* mixed_bfloat16 (float only): the same step loops with their products on the bf16 GEMM's micro-kernel
 * (vdpbf16ps, or its emulation: the same bits), the packed kernels from nc_bf16_pack ([W; U] without the
 * bias row, or U, U^T, ...); a product with a bias (the forward with x: b; the GRU: b_rec) chains from the
 * float32 bias; the cells take the codes with NC_ACT_BF16 from the caller. The weight gradient dP runs on
 * the bf16 GEMM (nc_gemm_bf16_f32, one thread a block of rows); the row blocks are whole 24-row quanta, so
 * every bf16 kernel gives the same bits. */
int nc_rnn_seq_forward_bf16(int cell, ptrdiff_t T, ptrdiff_t B, ptrdiff_t D, ptrdiff_t u, int act, float alpha,
                            int ract, float ralpha, const float *packed, const float *packed2, const float *bias,
                            int with_h0, const float *x, float *xh, float *z, float *s1, float *s2, float *h,
                            int nthreads);
int nc_rnn_seq_backward_bf16(int cell, ptrdiff_t T, ptrdiff_t B, ptrdiff_t u, int act, float alpha, int ract,
                             float ralpha, const float *packed_t, const float *packed2_t, int with_h0, int h0,
                             int add_dh, const float *gates, const float *s1, const float *s2, const float *h,
                             float *dh, float *dc, float *delta, float *drec, ptrdiff_t K, const float *xh,
                             float *dP, int nthreads);

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
/* dst[r] = the rowbytes bytes at position base + idx[r] * rowbytes of the open file fd, r < n (idx NULL:
 * the n rows from base, one read). Returns 0, an errno of a failed read, or -1 if the file ends first. */
int nc_read_rows(int fd, int64_t base, int64_t rowbytes, const int64_t *idx /* in */, ptrdiff_t n,
                 char *dst /* out */);
/* dst[idx[r], :] += src[r, :] for r < nidx, in the order of r (the embedding gradient; idx checked
 * by caller). Columns are split across threads: the same result for any nthreads. */
void nc_scatter_add_rows_f32(const float *src /* in */, ptrdiff_t cols, const int64_t *idx /* in */, ptrdiff_t nidx,
                             float *dst /* inout */, int nthreads);
void nc_scatter_add_rows_f64(const double *src /* in */, ptrdiff_t cols, const int64_t *idx /* in */, ptrdiff_t nidx,
                             double *dst /* inout */, int nthreads);

/* ------------------------------------------------------------------ */
/* Recurrent cells: one time step over a batch of B rows               */
/* Every array is a contiguous (B, width) block; u = units. act and   */
/* ract are nc_act codes whose derivative is a function of the output */
/* (not nc_act_needs_input), alpha/ralpha their parameters: a =        */
/* act, ra = ract. The caller adds h_{t-1} U before the forward cell   */
/* and dh_{t-1} += delta U^T after the backward cell. Rows are         */
/* independent: the result is the same for any nthreads.              */
/* mask (B bytes, NULL: all valid) marks the rows of a masked step    */
/* with 0: forward they carry the state (h = h_prev, c = c_prev) and   */
/* leave the gates alone; backward their delta is 0, dc passes         */
/* unchanged and dh_prev += dh (when dh_prev is not NULL).             */
/* ------------------------------------------------------------------ */

/* LSTM, gate order i, f, g (Keras "c"), o. z (B, 4u) holds x W + h_{t-1} U + b
 * on entry and the gates on exit: i = ra(z_i), f = ra(z_f), g = a(z_g), o = ra(z_o);
 * c = f c_prev + i g; tc = a(c); h = o tc. h_prev is read for masked rows only
 * (may be NULL without a mask). */
void nc_lstm_cell_forward_f32(int act, float alpha, int ract, float ralpha, float *z /* inout */,
                              const float *c_prev /* in */, const float *h_prev /* in */,
                              const unsigned char *mask /* in, nullable */, float *c /* out */, float *tc /* out */,
                              float *h /* out */, ptrdiff_t B, ptrdiff_t u, int nthreads);
void nc_lstm_cell_forward_f64(int act, double alpha, int ract, double ralpha, double *z /* inout */,
                              const double *c_prev /* in */, const double *h_prev /* in */,
                              const unsigned char *mask /* in, nullable */, double *c /* out */,
                              double *tc /* out */, double *h /* out */, ptrdiff_t B, ptrdiff_t u, int nthreads);
/* From the gates (B, 4u), c_prev, tc and dh = dL/dh_t, with dc = dL/dc_t from step t+1 on entry:
 * dc_t = dc + dh o a'(tc); delta = [dc_t g ra'(i), dc_t c_prev ra'(f), dc_t i a'(g), dh tc ra'(o)]
 * (dL/dz, B x 4u); dc := dc_t f (= dL/dc_{t-1} on exit). dh_prev is touched for masked rows only. */
void nc_lstm_cell_backward_f32(int act, float alpha, int ract, float ralpha, const float *gates /* in */,
                               const float *c_prev /* in */, const float *tc /* in */, const float *dh /* in */,
                               const unsigned char *mask /* in, nullable */, float *dc /* inout */,
                               float *delta /* out */, float *dh_prev /* inout, nullable */, ptrdiff_t B,
                               ptrdiff_t u, int nthreads);
void nc_lstm_cell_backward_f64(int act, double alpha, int ract, double ralpha, const double *gates /* in */,
                               const double *c_prev /* in */, const double *tc /* in */, const double *dh /* in */,
                               const unsigned char *mask /* in, nullable */, double *dc /* inout */,
                               double *delta /* out */, double *dh_prev /* inout, nullable */, ptrdiff_t B,
                               ptrdiff_t u, int nthreads);

/* GRU with reset_after (Keras 3 default), gate order z, r, h. z (B, 3u) holds
 * x W + b_in on entry, rec (B, 3u) holds h_{t-1} U + b_rec: z = ra(x_z + rec_z),
 * r = ra(x_r + rec_r), hh = a(x_h + r rec_h); h = z h_prev + (1 - z) hh. z holds
 * (z, r, hh) on exit. */
void nc_gru_cell_forward_f32(int act, float alpha, int ract, float ralpha, float *z /* inout */,
                             const float *rec /* in */, const float *h_prev /* in */,
                             const unsigned char *mask /* in, nullable */, float *h /* out */,
                             ptrdiff_t B, ptrdiff_t u, int nthreads);
void nc_gru_cell_forward_f64(int act, double alpha, int ract, double ralpha, double *z /* inout */,
                             const double *rec /* in */, const double *h_prev /* in */,
                             const unsigned char *mask /* in, nullable */, double *h /* out */,
                             ptrdiff_t B, ptrdiff_t u, int nthreads);
/* From the gates (z, r, hh), rec, h_prev and dh: delta_h = dh (1 - z) a'(hh),
 * dx = [dh (h_prev - hh) ra'(z), delta_h rec_h ra'(r), delta_h] (dL/d(x W + b_in)),
 * drec = [dx_z, dx_r, delta_h r] (dL/d rec); dh_prev += dh z when dh_prev is not NULL. */
void nc_gru_cell_backward_f32(int act, float alpha, int ract, float ralpha, const float *gates /* in */,
                              const float *rec /* in */, const float *h_prev /* in */, const float *dh /* in */,
                              const unsigned char *mask /* in, nullable */, float *dx /* out */,
                              float *drec /* out */, float *dh_prev /* inout, nullable */,
                              ptrdiff_t B, ptrdiff_t u, int nthreads);
void nc_gru_cell_backward_f64(int act, double alpha, int ract, double ralpha, const double *gates /* in */,
                              const double *rec /* in */, const double *h_prev /* in */, const double *dh /* in */,
                              const unsigned char *mask /* in, nullable */, double *dx /* out */,
                              double *drec /* out */, double *dh_prev /* inout, nullable */,
                              ptrdiff_t B, ptrdiff_t u, int nthreads);

/* GRU with reset_after=False (Keras 2's form): z = ra(x_z + h_prev U_z), r = ra(x_r + h_prev U_r),
 * q = r (h_prev rm), hh = a(x_h + q U_h), h = z h_prev + (1 - z) hh, where rm (B, u) is the
 * recurrent-dropout mask of the h gate (NULL: none). One step is two gemms and two cells:
 * z[:, :2u] += h_prev U_zr; gates_forward (z, r in place, q); z[:, 2u:] += q U_h; state_forward
 * (hh in place, h). */
void nc_gru_rb_gates_forward_f32(int ract, float ralpha, float *z /* inout */, const float *h_prev /* in */,
                                 const float *rm /* in, nullable */, float *q /* out */, ptrdiff_t B, ptrdiff_t u,
                                 int nthreads);
void nc_gru_rb_gates_forward_f64(int ract, double ralpha, double *z /* inout */, const double *h_prev /* in */,
                                 const double *rm /* in, nullable */, double *q /* out */, ptrdiff_t B,
                                 ptrdiff_t u, int nthreads);
void nc_gru_rb_state_forward_f32(int act, float alpha, float *z /* inout */, const float *h_prev /* in */,
                                 const unsigned char *mask /* in, nullable */, float *h /* out */, ptrdiff_t B,
                                 ptrdiff_t u, int nthreads);
void nc_gru_rb_state_forward_f64(int act, double alpha, double *z /* inout */, const double *h_prev /* in */,
                                 const unsigned char *mask /* in, nullable */, double *h /* out */, ptrdiff_t B,
                                 ptrdiff_t u, int nthreads);
/* Backward, in two halves around dq = delta_h U_h^T (gemm): state_backward writes delta =
 * [dh (h_prev - hh) ra'(z), 0, dh (1 - z) a'(hh)] and dh_prev += dh z; reset_backward writes
 * delta_r = dq (h_prev rm) ra'(r) and dh_prev += dq r rm. Then dh_prev += delta_zr U_zr^T (gemm). */
void nc_gru_rb_state_backward_f32(int act, float alpha, int ract, float ralpha, const float *gates /* in */,
                                  const float *h_prev /* in */, const float *dh /* in */,
                                  const unsigned char *mask /* in, nullable */, float *delta /* out */,
                                  float *dh_prev /* inout, nullable */, ptrdiff_t B, ptrdiff_t u, int nthreads);
void nc_gru_rb_state_backward_f64(int act, double alpha, int ract, double ralpha, const double *gates /* in */,
                                  const double *h_prev /* in */, const double *dh /* in */,
                                  const unsigned char *mask /* in, nullable */, double *delta /* out */,
                                  double *dh_prev /* inout, nullable */, ptrdiff_t B, ptrdiff_t u, int nthreads);
void nc_gru_rb_reset_backward_f32(int ract, float ralpha, const float *gates /* in */, const float *h_prev /* in */,
                                  const float *rm /* in, nullable */, const float *dq /* in */,
                                  float *delta /* inout */, float *dh_prev /* inout, nullable */, ptrdiff_t B,
                                  ptrdiff_t u, int nthreads);
void nc_gru_rb_reset_backward_f64(int ract, double ralpha, const double *gates /* in */,
                                  const double *h_prev /* in */, const double *rm /* in, nullable */,
                                  const double *dq /* in */, double *delta /* inout */,
                                  double *dh_prev /* inout, nullable */, ptrdiff_t B, ptrdiff_t u, int nthreads);

/* SimpleRNN's cell is the gemm epilogue h = a(z + h_prev U); with a mask, rnn_carry_masked then
 * sets h = h_prev on the masked rows. simple_rnn_cell_backward: delta = dh a'(h) (valid rows). */
void nc_rnn_carry_masked_f32(const float *h_prev /* in */, const unsigned char *mask /* in */, float *h /* inout */,
                             ptrdiff_t B, ptrdiff_t u);
void nc_rnn_carry_masked_f64(const double *h_prev /* in */, const unsigned char *mask /* in */,
                             double *h /* inout */, ptrdiff_t B, ptrdiff_t u);
void nc_simple_rnn_cell_backward_f32(int act, float alpha, const float *h /* in */, const float *dh /* in */,
                                     const unsigned char *mask /* in, nullable */, float *delta /* out */,
                                     float *dh_prev /* inout, nullable */, ptrdiff_t B, ptrdiff_t u, int nthreads);
void nc_simple_rnn_cell_backward_f64(int act, double alpha, const double *h /* in */, const double *dh /* in */,
                                     const unsigned char *mask /* in, nullable */, double *delta /* out */,
                                     double *dh_prev /* inout, nullable */, ptrdiff_t B, ptrdiff_t u, int nthreads);

/* ------------------------------------------------------------------ */
/* Convolution and pooling, channels_last (csrc/conv.c)                */
/* ------------------------------------------------------------------ */
/* Images are (n, h, w, c) row-major. Output pixel (oh, ow) reads the taps
 * (i, j), i < kh, j < kw, at input row oh sh - pt + i dh and column
 * ow sw - pl + j dw; taps outside the image are padding. The output is
 * (n, oh, ow, ...). Gathers split output rows over threads, scatter-adds
 * split images: every result is the same for any nthreads. */
typedef struct nc_conv_geom {
    ptrdiff_t n, h, w, c;   /* input batch, height, width, channels */
    ptrdiff_t kh, kw;       /* window (kernel or pool) size */
    ptrdiff_t sh, sw;       /* strides */
    ptrdiff_t dh, dw;       /* dilations (1 for pooling) */
    ptrdiff_t pt, pl;       /* padding before the first row / column */
    ptrdiff_t oh, ow;       /* output height, width */
} nc_conv_geom;

/* cols[(b, oh, ow), (i, j, c)] = x[b, oh sh - pt + i dh, ow sw - pl + j dw, c], 0 in the padding.
 * cols is (n oh ow) x (kh kw c): cols @ kernel.reshape(kh kw c, filters) is the convolution. */
void nc_im2col_f32(const nc_conv_geom *g, const float *x /* in */, float *cols /* out */, int nthreads);
void nc_im2col_f64(const nc_conv_geom *g, const double *x /* in */, double *cols /* out */, int nthreads);
/* Rows [r0, r0 + rows) of that cols matrix (r = (b oh + i) ow + j) into dst, row stride kh kw c (one thread). */
void nc_im2col_pixels_f32(const nc_conv_geom *g, const float *x /* in */, ptrdiff_t r0, ptrdiff_t rows,
                          float *dst /* out */);
void nc_im2col_pixels_f64(const nc_conv_geom *g, const double *x /* in */, ptrdiff_t r0, ptrdiff_t rows,
                          double *dst /* out */);
/* y := act(im2col(x) kernel + bias): y (n oh ow) x f, kernel (kh kw c) x f row-major, bias nullable, act an
 * nc_act (not softmax); the cols rows made and multiplied a block at a time while in cache (into cols,
 * (n oh ow) x (kh kw c), when not NULL: what backward needs; else never stored). The same bits for any
 * nthreads. Returns 0, or -1 when out of memory. */
int nc_conv_forward_f32(const nc_conv_geom *g, const float *x /* in */, const float *kernel /* in */, ptrdiff_t f,
                        const float *bias /* in, nullable */, int act, float act_alpha, float *y /* out */,
                        float *cols /* out, nullable */, int nthreads);
int nc_conv_forward_f64(const nc_conv_geom *g, const double *x /* in */, const double *kernel /* in */, ptrdiff_t f,
                        const double *bias /* in, nullable */, int act, double act_alpha, double *y /* out */,
                        double *cols /* out, nullable */, int nthreads);
/* The weight gradients of y = act(im2col(x) kernel + bias) from dy = dL/dy (n oh ow) x f: delta = dy f'(z)
 * (z nullable where f' needs y alone; written to delta when not NULL, else only used; dy itself when
 * act is linear); dk (kh kw c) x f := im2col(x)^T delta; db (nullable) := the column sums of delta.
 * One pass over row blocks, each block's delta and cols rows made and used while in cache (cols never
 * stored); the blocks' sums fall into fixed parts added in order: the same bits for any nthreads.
 * Returns 0, or -1 when out of memory (dk and db then unwritten). */
int nc_conv_backward_weights_f32(const nc_conv_geom *g, const float *x /* in */, ptrdiff_t f, int act,
                                 float alpha, const float *z /* in, nullable */, const float *y /* in */,
                                 const float *dy /* in */, float *delta /* out, nullable */, float *dk /* out */,
                                 float *db /* out, nullable */, int nthreads);
int nc_conv_backward_weights_f64(const nc_conv_geom *g, const double *x, ptrdiff_t f, int act, double alpha,
                                 const double *z, const double *y, const double *dy, double *delta, double *dk,
                                 double *db, int nthreads);
/* Conv2D + relu (act NC_ACT_RELU, or NC_ACT_LINEAR; | NC_ACT_BF16 on float32 as for nc_conv_forward) +
 * MaxPooling2D(2x2, stride 2, 'valid') as one step: yp (n, oh / 2, ow / 2, f) := the 2x2 max pool of
 * act(im2col(x) kernel + bias) (the conv output y (n, oh, ow, f) of g; an odd last row or column dropped),
 * a block of pooled rows at a time while the block's conv output is in cache: y is never written. ix
 * (uint8, yp's shape; nullable) gets the window's winner 2 di + dj under nc_maxpool_forward's rule (row-major
 * taps, the first maximum wins, a NaN wins). The same bits as nc_conv_forward then nc_maxpool_forward, for
 * any nthreads. Returns 0, or -1 when out of memory. */
int nc_conv_pool_forward_f32(const nc_conv_geom *g, const float *x /* in */, const float *kernel /* in */,
                             ptrdiff_t f, const float *bias /* in, nullable */, int act, float act_alpha,
                             float *yp /* out */, uint8_t *ix /* out, nullable */, int nthreads);
int nc_conv_pool_forward_f64(const nc_conv_geom *g, const double *x /* in */, const double *kernel /* in */,
                             ptrdiff_t f, const double *bias /* in, nullable */, int act, double act_alpha,
                             double *yp /* out */, uint8_t *ix /* out, nullable */, int nthreads);
/* nc_conv_backward_weights of that pair from the pooled yp, ix and gradient dyp (yp's shape): each row
 * block's delta (the gradient the pool's backward and act' would give: dyp at the winner where yp > 0 for
 * relu, 0 elsewhere and in a dropped row or column; rounded under NC_ACT_BF16) made in cache, written to
 * delta (n oh ow, f) only when not NULL; dk, db as there. The same bits as the unfused pair. */
int nc_conv_pool_backward_weights_f32(const nc_conv_geom *g, const float *x /* in */, ptrdiff_t f, int act,
                                      const float *yp /* in */, const uint8_t *ix /* in */,
                                      const float *dyp /* in */, float *delta /* out, nullable */,
                                      float *dk /* out */, float *db /* out, nullable */, int nthreads);
int nc_conv_pool_backward_weights_f64(const nc_conv_geom *g, const double *x, ptrdiff_t f, int act,
                                      const double *yp, const uint8_t *ix, const double *dyp, double *delta,
                                      double *dk, double *db, int nthreads);
/* The pair's bias gradient on Winograd: db (f) := the column sums of the conv's delta made from yp, ix, dyp
 * as above (n, oh, ow: the conv output's size), the rows in order as nc_colsum sums the whole delta (its
 * zeros left out: the same bits). */
void nc_unpool2_colsum_f32(ptrdiff_t n, ptrdiff_t oh, ptrdiff_t ow, ptrdiff_t f, int act, const float *yp /* in */,
                           const uint8_t *ix /* in */, const float *dyp /* in */, float *db /* out */);
void nc_unpool2_colsum_f64(ptrdiff_t n, ptrdiff_t oh, ptrdiff_t ow, ptrdiff_t f, int act, const double *yp,
                           const uint8_t *ix, const double *dyp, double *db);
/* x := the adjoint of im2col: x[b, ih, iw, c] = sum of the cols entries that im2col copies from there. */
void nc_col2im_f32(const nc_conv_geom *g, const float *cols /* in */, float *x /* out */, int nthreads);
void nc_col2im_f64(const nc_conv_geom *g, const double *cols /* in */, double *x /* out */, int nthreads);

/* y[b, oh, ow, c] = max of x over the window's taps inside the image (dh = dw = 1); idx (nullable)
 * gets the pixel ih w + iw of the first maximum in row-major window order (a NaN wins), -1 for
 * an empty window (y 0). */
void nc_maxpool_forward_f32(const nc_conv_geom *g, const float *x /* in */, float *y /* out */,
                            int32_t *idx /* out, nullable */, int nthreads);
void nc_maxpool_forward_f64(const nc_conv_geom *g, const double *x /* in */, double *y /* out */,
                            int32_t *idx /* out, nullable */, int nthreads);
/* dx := 0; dx[b, idx, c] += dy[b, oh, ow, c] (idx outside [0, h w) is skipped). */
void nc_maxpool_backward_f32(const nc_conv_geom *g, const int32_t *idx /* in */, const float *dy /* in */,
                             float *dx /* out */, int nthreads);
void nc_maxpool_backward_f64(const nc_conv_geom *g, const int32_t *idx /* in */, const double *dy /* in */,
                             double *dx /* out */, int nthreads);
/* y = mean of x over the window's taps inside the image (the padding is not counted, Keras 'same'). */
void nc_avgpool_forward_f32(const nc_conv_geom *g, const float *x /* in */, float *y /* out */, int nthreads);
void nc_avgpool_forward_f64(const nc_conv_geom *g, const double *x /* in */, double *y /* out */, int nthreads);
/* dx := 0; dx[tap] += dy / (number of taps inside) for every tap inside each window. */
void nc_avgpool_backward_f32(const nc_conv_geom *g, const float *dy /* in */, float *dx /* out */, int nthreads);
void nc_avgpool_backward_f64(const nc_conv_geom *g, const double *dy /* in */, double *dx /* out */, int nthreads);

/* Winograd F(m x m, 3 x 3), m = 2 or 4 (csrc/winograd.c): the convolution z = conv(x, kernel) + bias
 * of a 3 x 3 kernel (kh = kw = 3) or a 1 x 3 one (kh = 1: F(m, 3) along the width only), stride 1,
 * dilation 1, any padding pt, pl and output size oh, ow (g->kh, g->kw = 3, g->sh ... as for im2col).
 * Output tiles are mh x m pixels (mh = m, or 1 when kh = 1), a2 = (mh + kh - 1)(m + 2) transformed
 * positions each; T = nc_wino_tiles(g, m) = n ceil(oh / mh) ceil(ow / m) tiles cover the output
 * (partial ones at the edges). Work arrays: U (a2, c, f), V (a2, T, c), M (a2, T, f), dU (a2, c, f).
 * Forward: U[xi] = (G g G^T)[xi]; V[t] = B^T d_t B (d_t the tile's input patch, 0 outside x);
 * M[:, xi] = V[:, xi] U[xi]; y = act(A^T M_t A + bias) (n, oh, ow, f); bias nullable.
 * bf16 (float only, 0 for double): the mixed_bfloat16 form, x, kernel and delta rounded to bfloat16
 * as they are read, y and dkernel as they are written (winograd.c). */
ptrdiff_t nc_wino_tiles(const nc_conv_geom *g, int m);
/* The forward runs the tiles through the three steps a block at a time (V and M of a block in L2, M in
 * the thread's work block, never in memory): V, when not NULL, kept for backward; V NULL (inference):
 * the block's V in the thread's work block too; U is written either way.
 * Returns 0, or -1 when out of memory (the packed U and the work blocks). */
int nc_wino_forward_f32(const nc_conv_geom *g, int m, int bf16, ptrdiff_t f, const float *x /* in */,
                        const float *kernel /* in, (kh, 3, c, f) */, const float *bias /* in, nullable */, int act,
                        float act_alpha, float *U /* out */, float *V /* out, nullable */,
                        float *y /* out */, int nthreads);
int nc_wino_forward_f64(const nc_conv_geom *g, int m, int bf16, ptrdiff_t f, const double *x, const double *kernel,
                        const double *bias, int act, double act_alpha, double *U, double *V, double *y,
                        int nthreads);
/* Backward from delta = dL/dz (n, oh, ow, f) and the forward's U and V: dM = A delta_t A^T (into M);
 * dU[xi] = V[:, xi]^T dM[:, xi]; dkernel = G^T dU G (overwritten); when dx is not NULL, dV[:, xi] =
 * dM[:, xi] U[xi]^T (a few images at a time, in a work block: V is only read) and dx (n, h, w, c) = the
 * sum of the patches B dV_t B^T where they lie. Returns 0, or -1 when out of memory (the packed U^T and
 * the dV blocks: nothing written). */
int nc_wino_backward_f32(const nc_conv_geom *g, int m, int bf16, ptrdiff_t f, const float *delta /* in */,
                         const float *U /* in */, float *V /* in */, float *M /* work */, float *dU /* work */,
                         float *dkernel /* out */, float *dx /* out, nullable */, int nthreads);
int nc_wino_backward_f64(const nc_conv_geom *g, int m, int bf16, ptrdiff_t f, const double *delta, const double *U,
                         double *V, double *M, double *dU, double *dkernel, double *dx, int nthreads);
/* The Conv2D -> MaxPooling2D(2x2, stride 2, 'valid') pair on Winograd (kh = 3: the tiles hold whole 2x2
 * windows): nc_wino_forward with y pooled into yp, ix (as nc_conv_pool_forward; act relu or linear) in the
 * output transform, y never written; nc_wino_backward with delta made from yp, ix, dyp (as
 * nc_conv_pool_backward_weights makes it) in the output-gradient transform. The same bits as the unfused
 * pair. */
int nc_wino_pool_forward_f32(const nc_conv_geom *g, int m, int bf16, ptrdiff_t f, const float *x /* in */,
                             const float *kernel /* in */, const float *bias /* in, nullable */, int act,
                             float act_alpha, float *U /* out */, float *V /* out, nullable */, float *yp /* out */,
                             uint8_t *ix /* out, nullable */, int nthreads);
int nc_wino_pool_forward_f64(const nc_conv_geom *g, int m, int bf16, ptrdiff_t f, const double *x,
                             const double *kernel, const double *bias, int act, double act_alpha, double *U,
                             double *V, double *yp, uint8_t *ix, int nthreads);
int nc_wino_pool_backward_f32(const nc_conv_geom *g, int m, int bf16, ptrdiff_t f, int act, const float *yp /* in */,
                              const uint8_t *ix /* in */, const float *dyp /* in */, const float *U /* in */,
                              float *V /* in */, float *M /* work */, float *dU /* work */, float *dkernel /* out */,
                              float *dx /* out, nullable */, int nthreads);
int nc_wino_pool_backward_f64(const nc_conv_geom *g, int m, int bf16, ptrdiff_t f, int act, const double *yp,
                              const uint8_t *ix, const double *dyp, const double *U, double *V, double *M,
                              double *dU, double *dkernel, double *dx, int nthreads);

/* ------------------------------------------------------------------ */
/* Fused losses                                                        */
/* Each returns sum_i w_i * loss_i over the n rows (w = sample weights, */
/* NULL means 1) in double, and writes the gradient of                  */
/* grad_scale * sum_i w_i loss_i with respect to its input into d       */
/* (d may be NULL: loss only). The caller divides by the batch size.    */
/* ------------------------------------------------------------------ */

/* z: n x k logits, y: n x k targets. p = softmax(z) (written to prob if not NULL);
 * loss_i = -sum_j y_ij log(clip(p_ij, 1e-7, 1 - 1e-7)); d = grad_scale * w_i * (p - y)
 * (exactly p sum_j y_ij - y: the same for targets whose rows sum to 1). */
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
/* One training step of an optimizer over a flat buffer of n parameters, in
 * one pass: read w, g and the slots once, write w and the slots once.
 * Per element, in order (Keras 3):
 *   g := clip(g, -clipvalue, clipvalue) * scale_s   (s: the segment of i)
 *   w := w - w * wd                                 (wd = lr * weight_decay)
 *   the rule of `kind` below, with the per-step scalars c[] and flags.
 * scale_s is seg_scale[s] when seg_scale != NULL (per-variable clipnorm;
 * segment s is [seg_start[s], seg_start[s+1]), seg_start[0] = 0,
 * seg_start[nseg] = n), else `scale` (global clipnorm; 1 when unset).
 * clipvalue = +inf and wd = 0 leave g and w as they are (w - w*0 = w for
 * finite w). The caller computes every per-step scalar in double (bias
 * corrections, the scheduled lr) once; the kernel rounds each to REAL.
 * Elementwise and without FMA contraction: bit-identical for any nthreads,
 * any SIMD level and any segmentation. Below, slots are listed in the order
 * of the `slots` array; c0, c1, ... are c[0], c[1], ... */
enum nc_optim_kind {
    NC_OPT_SGD = 0,      /* slots: none, or v when c1 = mu > 0. c: lr, mu. flags: NESTEROV
                            mu = 0: w := w - g lr; else v := v mu - g lr; w := w + v
                            (nesterov: w := w + v mu - g lr with the new v) */
    NC_OPT_ADAGRAD = 1,  /* slots: a. c: lr, eps.   a := a + g^2; w := w - lr g / sqrt(a + eps) */
    NC_OPT_RMSPROP = 2,  /* slots: v [, gbar if CENTERED] [, m if c4 = mu > 0]. c: lr, rho, 1-rho, eps, mu.
                            v := rho v + (1-rho) g^2; gbar := rho gbar + (1-rho) g;
                            d = lr g / sqrt(v [- gbar^2] + eps); m := mu m + d; w := w - m (or w - d) */
    NC_OPT_ADAM = 3,     /* slots: m, v [, vhat if AMSGRAD]. c: alpha, 1-b1, 1-b2, eps.
                            m := m + (g - m)(1-b1); v := v + (g^2 - v)(1-b2); vhat := max(vhat, v);
                            w := w - alpha m / (sqrt(v or vhat) + eps) */
    NC_OPT_ADADELTA = 4, /* slots: Eg, Ed. c: lr, rho, 1-rho, eps.
                            Eg := rho Eg + (1-rho) g^2; d = -sqrt(Ed + eps) g / sqrt(Eg + eps);
                            Ed := rho Ed + (1-rho) d^2; w := w + lr d */
    NC_OPT_ADAMAX = 5,   /* slots: m, u. c: lr, 1-b1, b2, 1-b1^t, eps.
                            m := m + (g - m)(1-b1); u := max(b2 u, |g|); w := w - lr m / ((1-b1^t)(u + eps)) */
    NC_OPT_NADAM = 6,    /* slots: m, v. c: lr, 1-b1, 1-b2, eps, c1, c2, c3.
                            m, v as Adam; mhat = c1 m + c2 g; w := w - lr mhat / (sqrt(v c3) + eps)
                            (c1 = mu_{t+1}/(1-P mu_{t+1}), c2 = (1-mu_t)/(1-P), c3 = 1/(1-b2^t)) */
    NC_OPT_FTRL = 7,     /* slots: n, z. c: lr, p (<= 0), l1, 2 l2 + beta/lr, 2 l2_shrinkage.
                            gs = g + 2 l2s w; n' = n + g^2; z := z + gs - (n'^-p - n^-p)/lr w;
                            w := (clip(z, -l1, l1) - z) / (n'^-p / lr + 2 l2 + beta/lr); n := n' */
    NC_OPT_COUNT = 8
};
enum { NC_OPT_NESTEROV = 1, NC_OPT_CENTERED = 2, NC_OPT_AMSGRAD = 4 };
#define NC_OPT_MAX_SLOTS 3
#define NC_OPT_NCOEF 8

typedef struct nc_optim_step {
    int kind;                 /* enum nc_optim_kind */
    int flags;                /* NC_OPT_NESTEROV | NC_OPT_CENTERED | NC_OPT_AMSGRAD */
    double c[NC_OPT_NCOEF];   /* per-step scalars of the rule, see enum nc_optim_kind */
    double wd;                /* lr * weight_decay, 0 for none */
    double clipvalue;         /* +inf for none */
    double scale;             /* gradient scale when seg_scale is NULL (global clipnorm), else unused */
    const int64_t *seg_start; /* nseg + 1 offsets, or NULL (one segment) */
    const double *seg_scale;  /* nseg scales (per-variable clipnorm), or NULL */
    ptrdiff_t nseg;
} nc_optim_step;

/* Number of slots kind/flags/c need (-1 for an unknown kind). */
int nc_optim_nslots(int kind, int flags, const double *c);

/* The step described above. slots[k] has n elements each. Returns 1 when every w[i] is finite after the
 * step (each chunk read back as it is written, in cache), 0 when one is not, -1 for an unknown kind. */
int nc_optim_step_f32(const nc_optim_step *s, float *w /* inout */, const float *g /* in */,
                      float *const *slots /* inout */, ptrdiff_t n, int nthreads);
int nc_optim_step_f64(const nc_optim_step *s, double *w /* inout */, const double *g /* in */,
                      double *const *slots /* inout */, ptrdiff_t n, int nthreads);

/* out[s] = sum_{i in segment s} x[i]^2 (nseg segments given by seg_start, as
 * above), in double, over fixed-size chunks from each segment's start with
 * fixed lanes: the same value for a segment wherever it lies in memory and
 * for any nthreads (so per-variable and flat clipping agree bit for bit). */
void nc_optim_seg_sumsq_f32(const float *x /* in */, const int64_t *seg_start /* in */, ptrdiff_t nseg,
                            double *out /* out */, int nthreads);
void nc_optim_seg_sumsq_f64(const double *x /* in */, const int64_t *seg_start /* in */, ptrdiff_t nseg,
                            double *out /* out */, int nthreads);

/* ------------------------------------------------------------------ */
/* Batch and layer normalization over (rows, C) (csrc/norm.c)         */
/* ------------------------------------------------------------------ */
/* Rows are every leading axis (batch, steps, height, width), C the last.
 * Statistics are summed in double, over row chunks fixed by the shape and
 * added in chunk order: bit-identical for any nthreads. `work` holds
 * nc_norm_work_size(rows, C) doubles; gamma and beta are required (pass
 * ones / zeros for scale=False / center=False). */
ptrdiff_t nc_norm_chunk_rows(ptrdiff_t rows, ptrdiff_t cols);   /* rows per chunk */
ptrdiff_t nc_norm_work_size(ptrdiff_t rows, ptrdiff_t cols);    /* doubles of workspace */

/* training: mean_c, var_c = the batch mean and biased variance over the rows; moving (when
 * moving_mean is not NULL) := moving momentum + batch (1 - momentum); inference: mean, var =
 * moving_mean, moving_var. Then inv = 1 / sqrt(var + eps), y = (x - mean) gamma inv + beta;
 * stats (2, C) gets mean and inv for the backward pass. */
void nc_batchnorm_forward_f32(const float *x /* in */, const float *gamma /* in */, const float *beta /* in */,
                              float *moving_mean /* inout, nullable */, float *moving_var /* inout */,
                              float *y /* out */, double *stats /* out */, double *work, ptrdiff_t rows,
                              ptrdiff_t C, double momentum, double eps, int training, int nthreads);
void nc_batchnorm_forward_f64(const double *x /* in */, const double *gamma /* in */, const double *beta /* in */,
                              double *moving_mean /* inout, nullable */, double *moving_var /* inout */,
                              double *y /* out */, double *stats /* out */, double *work, ptrdiff_t rows,
                              ptrdiff_t C, double momentum, double eps, int training, int nthreads);
/* With xhat = (x - mean) inv (stats from the forward pass): dbeta = sum_rows dy, dgamma = sum_rows
 * dy xhat (each when not NULL); training: dx = gamma inv (dy - dbeta/rows - xhat dgamma/rows);
 * inference: dx = gamma inv dy (dx nullable). */
void nc_batchnorm_backward_f32(const float *x /* in */, const float *dy /* in */, const float *gamma /* in */,
                               const double *stats /* in */, float *dx /* out, nullable */,
                               float *dgamma /* out, nullable */, float *dbeta /* out, nullable */, double *work,
                               ptrdiff_t rows, ptrdiff_t C, int training, int nthreads);
void nc_batchnorm_backward_f64(const double *x /* in */, const double *dy /* in */, const double *gamma /* in */,
                               const double *stats /* in */, double *dx /* out, nullable */,
                               double *dgamma /* out, nullable */, double *dbeta /* out, nullable */,
                               double *work, ptrdiff_t rows, ptrdiff_t C, int training, int nthreads);
/* per row r: mean_r, var_r over its C values; inv_r = 1 / sqrt(var_r + eps);
 * y = (x - mean_r) inv_r gamma + beta; stats (2, rows) gets mean_r and inv_r. */
void nc_layernorm_forward_f32(const float *x /* in */, const float *gamma /* in */, const float *beta /* in */,
                              float *y /* out */, double *stats /* out */, ptrdiff_t rows, ptrdiff_t C, double eps,
                              int nthreads);
void nc_layernorm_forward_f64(const double *x /* in */, const double *gamma /* in */, const double *beta /* in */,
                              double *y /* out */, double *stats /* out */, ptrdiff_t rows, ptrdiff_t C,
                              double eps, int nthreads);
/* xhat = (x - mean_r) inv_r, g = dy gamma: dx = inv_r (g - mean_c g - xhat mean_c(g xhat));
 * dgamma = sum_rows dy xhat, dbeta = sum_rows dy (each nullable). */
void nc_layernorm_backward_f32(const float *x /* in */, const float *dy /* in */, const float *gamma /* in */,
                               const double *stats /* in */, float *dx /* out, nullable */,
                               float *dgamma /* out, nullable */, float *dbeta /* out, nullable */, double *work,
                               ptrdiff_t rows, ptrdiff_t C, int nthreads);
void nc_layernorm_backward_f64(const double *x /* in */, const double *dy /* in */, const double *gamma /* in */,
                               const double *stats /* in */, double *dx /* out, nullable */,
                               double *dgamma /* out, nullable */, double *dbeta /* out, nullable */,
                               double *work, ptrdiff_t rows, ptrdiff_t C, int nthreads);

/* ------------------------------------------------------------------ */
/* int8 inference (Keras 3's model.quantize("int8"), csrc/int8.c)      */
/* ------------------------------------------------------------------ */

/* The micro-kernels of the int8 GEMM. All give identical int32 sums (each
 * sum is exact); the emulated ones run the VNNI kernels' code with vpdpbusd
 * done in C (to test them on CPUs without VNNI). */
enum nc_int8_kernel {
    NC_INT8_GENERIC = 0,          /* plain C */
    NC_INT8_AVX2 = 1,             /* vpmaddubsw + vpmaddwd on x + 64 and w (|x| <= 63): no saturation */
    NC_INT8_AVX2_SIGN = 2,        /* vpmaddubsw + vpmaddwd on |w| and x sign(w) (|x| <= 127) */
    NC_INT8_AVXVNNI = 3,          /* vpdpbusd ymm (AVX-VNNI) on x + 128 and w, minus 128 sum w */
    NC_INT8_AVX512VNNI = 4,       /* vpdpbusd zmm (AVX512-VNNI) */
    NC_INT8_AVXVNNI_EMU = 5,      /* NC_INT8_AVXVNNI's kernel, vpdpbusd emulated in C */
    NC_INT8_AVX512VNNI_EMU = 6,   /* NC_INT8_AVX512VNNI's kernel, vpdpbusd emulated in C */
    NC_INT8_COUNT
};
/* The largest k whose int32 sums stay exact: 16256 k < 2^31 (|x| <= 127, |w| <= 128). */
#define NC_INT8_MAX_K 132104

/* The kernel int8 GEMMs with inputs in [-qmax, qmax] use now, and whether `kernel`
 * runs them exactly at the SIMD level in use on this CPU. */
int nc_int8_kernel(int qmax);
int nc_int8_kernel_available(int kernel, int qmax);
void nc_int8_set_kernel(int kernel);       /* use this kernel when available (testing); -1: the best */
const char *nc_int8_kernel_name(int kernel);

/* C[i, j] = sum_p A[i, p] B[p, j] in int32 (exact). A in [-qmax, qmax], qmax <= 127, k <= NC_INT8_MAX_K.
 * Returns 0, or -1 when out of memory. */
int nc_gemm_s8s32(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const int8_t *A /* in */, ptrdiff_t lda, int qmax,
                  const int8_t *B /* in */, ptrdiff_t ldb, int32_t *C /* out */, ptrdiff_t ldc, int nthreads);

/* Keras's int8 Dense: s_i = Q / (max_p |x[i, p]| + 1e-7), q = clip(round(x s), -Q, Q) (half to even;
 * Q = qmax, 1..127), y[i, j] = act(sum_p q[i, p] W[p, j] / (wscale[j] s_i) + bias[j]) (bias may be NULL;
 * act any nc_act but softmax). A row of x holding NaN/inf gets s = NaN. k <= NC_INT8_MAX_K.
 * Returns 0, or -1 when out of memory. */
int nc_gemm_int8_f32(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const float *x /* in */, ptrdiff_t ldx, int qmax,
                     const int8_t *W /* in */, ptrdiff_t ldw, const float *wscale /* in */, const float *bias /* in */,
                     int act, float act_alpha, float *y /* out */, ptrdiff_t ldy, int nthreads);
int nc_gemm_int8_f64(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const double *x /* in */, ptrdiff_t ldx, int qmax,
                     const int8_t *W /* in */, ptrdiff_t ldw, const double *wscale /* in */,
                     const double *bias /* in */, int act, double act_alpha, double *y /* out */, ptrdiff_t ldy,
                     int nthreads);

/* The int8 form of a convolution, Keras's int8 Conv: nc_gemm_int8 of its cols matrix (geometry g, as
 * nc_im2col; k = kh kw c) and W (k x n, contiguous) into y (n oh ow pixels x n, contiguous), each cols row
 * quantized as a row of x, the same bits; the cols rows are made and quantized a block at a time, never
 * stored. Returns 0, or -1 when out of memory. */
int nc_conv_int8_f32(const nc_conv_geom *g, const float *x /* in */, int qmax, const int8_t *W /* in */,
                     ptrdiff_t n, const float *wscale /* in */, const float *bias /* in */, int act, float act_alpha,
                     float *y /* out */, int nthreads);
int nc_conv_int8_f64(const nc_conv_geom *g, const double *x /* in */, int qmax, const int8_t *W /* in */,
                     ptrdiff_t n, const double *wscale /* in */, const double *bias /* in */, int act,
                     double act_alpha, double *y /* out */, int nthreads);

/* W (k x n, row stride ldw) in the panels of int8 kernel `kernel`, packed once for nc_int8_chain:
 * nc_int8_packed_size bytes (0: no such kernel here) written by nc_int8_pack (0, or -1). */
size_t nc_int8_packed_size(int kernel, ptrdiff_t k, ptrdiff_t n);
int nc_int8_pack(int kernel, const int8_t *W /* in */, ptrdiff_t ldw, ptrdiff_t k, ptrdiff_t n, void *out /* out */);
/* y = f_L(... f_1(x W_1 + b_1) ...) through L int8 dense layers (each one nc_gemm_int8 with W_l packed
 * by nc_int8_pack for the kernel nc_int8_kernel(qmax[l]) picks now, wscale[l], bias[l] or NULL, act[l]
 * a code, or -1 for a softmax over each row), a block of rows at a time through every layer; the same
 * bits as the layers one by one. x (m x dims[0]), y (m x dims[L]) contiguous. 0; 1 when check_finite
 * and x holds NaN/inf; -2 when a packed W is not for its layer or the kernel in use; -1 no memory. */
int nc_int8_chain_f32(ptrdiff_t m, int L, const ptrdiff_t *dims, const void *const *packed /* in */,
                      const float *const *wscale /* in */, const float *const *bias /* in */, const int *act,
                      const float *act_alpha, const int *qmax, int check_finite, const float *x /* in */,
                      float *y /* out */, int nthreads);
int nc_int8_chain_f64(ptrdiff_t m, int L, const ptrdiff_t *dims, const void *const *packed /* in */,
                      const double *const *wscale /* in */, const double *const *bias /* in */, const int *act,
                      const double *act_alpha, const int *qmax, int check_finite, const double *x /* in */,
                      double *y /* out */, int nthreads);

/* y = the L int8 dense layers one after the other (W[l] k x n as stored, no packing), each one
 * nc_gemm_int8 on the whole batch then, where separate[l], its activation in a pass of its own (act -1:
 * a softmax over each row): the bits of the layers' own forward calls. work holds 2 m max(dims[1..L-1])
 * REALs. 0; 1 when check_finite and x holds NaN/inf; -1 no memory. */
int nc_int8_layers_f32(ptrdiff_t m, int L, const ptrdiff_t *dims, const int8_t *const *W /* in */,
                       const float *const *wscale /* in */, const float *const *bias /* in */, const int *act,
                       const int *separate, const float *act_alpha, const int *qmax, int check_finite,
                       const float *x /* in */, float *y /* out */, float *work, int nthreads);
int nc_int8_layers_f64(ptrdiff_t m, int L, const ptrdiff_t *dims, const int8_t *const *W /* in */,
                       const double *const *wscale /* in */, const double *const *bias /* in */, const int *act,
                       const int *separate, const double *act_alpha, const int *qmax, int check_finite,
                       const double *x /* in */, double *y /* out */, double *work, int nthreads);

/* The quantizer of nc_gemm_int8 alone: q[i, :] = clip(round(x[i, :] s_i), -Q, Q), scale[i] = s_i. */
void nc_quantize_rows_f32(const float *x /* in */, ptrdiff_t m, ptrdiff_t k, ptrdiff_t ldx, int qmax,
                          int8_t *q /* out */, ptrdiff_t ldq, float *scale /* out */, int nthreads);
void nc_quantize_rows_f64(const double *x /* in */, ptrdiff_t m, ptrdiff_t k, ptrdiff_t ldx, int qmax,
                          int8_t *q /* out */, ptrdiff_t ldq, double *scale /* out */, int nthreads);

/* y[r, :] = E[idx[r], :] / scale[idx[r]] (Keras's int8 Embedding); idx checked by the caller. */
void nc_take_rows_int8_f32(const int8_t *E /* in */, ptrdiff_t cols, const float *scale /* in */,
                           const int64_t *idx /* in */, ptrdiff_t nidx, float *y /* out */);
void nc_take_rows_int8_f64(const int8_t *E /* in */, ptrdiff_t cols, const double *scale /* in */,
                           const int64_t *idx /* in */, ptrdiff_t nidx, double *y /* out */);

/* ------------------------------------------------------------------ */
/* bfloat16 mixed precision (Keras 3's "mixed_bfloat16", csrc/bf16.c)  */
/* ------------------------------------------------------------------ */

/* The micro-kernels of the bf16 GEMM. All give the same bits: the emulated
 * ones compute vdpbf16ps's chain of FMAs exactly (see bf16.c). */
enum nc_bf16_kernel {
    NC_BF16_GENERIC_EMU = 0,   /* plain C, two fmaf per pair */
    NC_BF16_AVX2_EMU = 1,      /* AVX2 + FMA, two FMAs per pair */
    NC_BF16_AVX512BF16 = 2,    /* vdpbf16ps zmm (AVX512_BF16) */
    NC_BF16_COUNT
};
int nc_bf16_kernel(void);                  /* the kernel bf16 GEMMs use now */
int nc_bf16_kernel_available(int kernel);  /* at the SIMD level in use, on this CPU */
void nc_bf16_set_kernel(int kernel);       /* use this kernel when available (testing); -1: the best */
const char *nc_bf16_kernel_name(int kernel);
int nc_bf16_cpu_has_avx512bf16(void);      /* cpuid leaf 7.1 eax bit 5 */
/* op(B) (k x n) packed once as the kernel in use takes it (a 64-byte head, then NR-column panels of pair
 * words), for nc_bf16_panels: C (rows x n) := (accumulate ? C : 0) + bf(A) op(B) as vdpbf16ps chains it,
 * A's rows read in place (lda), on the calling thread; `work` holds nc_bf16_panels_work(k) words. */
ptrdiff_t nc_bf16_pack_size(ptrdiff_t k, ptrdiff_t n);   /* in floats */
void nc_bf16_pack(int trans_b, ptrdiff_t k, ptrdiff_t n, const float *B, ptrdiff_t ldb, float *packed /* out */);
int nc_bf16_packed_ok(const float *packed, ptrdiff_t k, ptrdiff_t n);   /* this shape, the kernel in use */
void nc_bf16_tile(int *mr, int *nr);
ptrdiff_t nc_bf16_panels_work(ptrdiff_t k);
void nc_bf16_panels(ptrdiff_t rows, ptrdiff_t n, ptrdiff_t k, const float *A, ptrdiff_t lda, const float *packed,
                    int accumulate, float *C /* inout */, ptrdiff_t ldc, uint32_t *work);

/* bf(x): the SDM's convert_fp32_to_bfloat16 (round to nearest even, denormals to signed zero, NaN quiet).
 * y = bf(x) as bits; y = bf(x) as a float32 (in place allowed). */
void nc_bf16_from_f32(const float *x /* in */, uint16_t *y /* out */, ptrdiff_t n);
void nc_bf16_round_f32(const float *x /* in */, float *y /* out */, ptrdiff_t n);

/* C := r(act(alpha sum_p bf(op(A)[i, p]) bf(op(B)[p, j]) + beta C + bias)), the sum in float32 as
 * vdpbf16ps chains it (pairs of k in order, the odd element first, FMAs with denormals flushed);
 * r = bf when round_out, else the float32 itself; act any nc_act but softmax; bias may be NULL.
 * Returns 0, or -1 when out of memory. */
int nc_gemm_bf16_f32(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, float alpha,
                     const float *A /* in */, ptrdiff_t lda, const float *B /* in */, ptrdiff_t ldb, float beta,
                     float *C /* inout */, ptrdiff_t ldc, const float *bias /* in */, int act, float act_alpha,
                     int round_out, int nthreads);

#ifdef __cplusplus
}
#endif
#endif /* NNCORE_H */
