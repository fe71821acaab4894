/* gemm_body.h -- C := act(alpha op(A) op(B) + beta C + bias), REAL = float/double.
 * First version: correct row-parallel loops; the packed, register-blocked
 * kernel replaces the middle of nc_gemm. */

#define A_(i, p) (trans_a ? A[(p) * lda + (i)] : A[(i) * lda + (p)])
#define B_(p, j) (trans_b ? B[(j) * ldb + (p)] : B[(p) * ldb + (j)])

void NC_NAME(gemm_ref)(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                       REAL alpha, const REAL *A, ptrdiff_t lda, const REAL *B, ptrdiff_t ldb,
                       REAL beta, REAL *C, ptrdiff_t ldc)
{
    for (ptrdiff_t i = 0; i < m; i++)
        for (ptrdiff_t j = 0; j < n; j++) {
            REAL s = 0;
            for (ptrdiff_t p = 0; p < k; p++) s += A_(i, p) * B_(p, j);
            C[i * ldc + j] = alpha * s + (beta == 0 ? (REAL)0 : beta * C[i * ldc + j]);
        }
}

static void NC_NAME(gemm_rows)(int trans_a, int trans_b, ptrdiff_t i0, ptrdiff_t i1, ptrdiff_t n, ptrdiff_t k,
                               REAL alpha, const REAL *A, ptrdiff_t lda, const REAL *B, ptrdiff_t ldb,
                               REAL beta, REAL *C, ptrdiff_t ldc, const REAL *bias, int act, REAL act_alpha)
{
    for (ptrdiff_t i = i0; i < i1; i++) {
        REAL *c = C + i * ldc;
        if (beta == 0) for (ptrdiff_t j = 0; j < n; j++) c[j] = 0;
        else if (beta != 1) for (ptrdiff_t j = 0; j < n; j++) c[j] *= beta;
        if (!trans_b) {
            for (ptrdiff_t p = 0; p < k; p++) {
                REAL a = alpha * A_(i, p);
                const REAL *b = B + p * ldb;
#pragma omp simd
                for (ptrdiff_t j = 0; j < n; j++) c[j] += a * b[j];
            }
        } else {
            for (ptrdiff_t j = 0; j < n; j++) {
                const REAL *b = B + j * ldb;
                REAL s = 0;
                for (ptrdiff_t p = 0; p < k; p++) s += A_(i, p) * b[p];
                c[j] += alpha * s;
            }
        }
        if (bias) for (ptrdiff_t j = 0; j < n; j++) c[j] += bias[j];
        if (act != NC_ACT_LINEAR) NC_NAME(act_forward)(act, act_alpha, c, c, n);
    }
}

void NC_NAME(gemm)(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                   REAL alpha, const REAL *A, ptrdiff_t lda, const REAL *B, ptrdiff_t ldb,
                   REAL beta, REAL *C, ptrdiff_t ldc, const REAL *bias, int act, REAL act_alpha, int nthreads)
{
    if (m <= 0 || n <= 0) return;
    int nt = nc_team_size(nthreads, 2.0 * (double)m * (double)n * (double)(k + 1));
    if (nt > m) nt = (int)m;
    if (nt <= 1) {
        NC_NAME(gemm_rows)(trans_a, trans_b, 0, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc, bias, act, act_alpha);
        return;
    }
#pragma omp parallel num_threads(nt)
    {
        int t = omp_get_thread_num(), T = omp_get_num_threads();
        ptrdiff_t i0 = m * t / T, i1 = m * (t + 1) / T;
        NC_NAME(gemm_rows)(trans_a, trans_b, i0, i1, n, k, alpha, A, lda, B, ldb, beta, C, ldc, bias, act,
                           act_alpha);
    }
}

#undef A_
#undef B_
