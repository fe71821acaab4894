/* int8_body.h -- the REAL side of the int8 kernels (float and double): the
 * job callbacks of the int8 GEMM (quantize + pack A, the epilogue), its entry
 * point, the row quantizer and the dequantizing row gather. Included by
 * int8.c after real.h. */
#if defined(NC_F32)
#define I8_LRINT rintf
#define I8_UINT uint32_t
#define I8_ABS_MASK 0x7fffffffu
#define I8_INF_BITS 0x7f800000u
#else
#define I8_LRINT rint
#define I8_UINT uint64_t
#define I8_ABS_MASK 0x7fffffffffffffffull
#define I8_INF_BITS 0x7ff0000000000000ull
#endif

#define I8L_SUF generic
#define I8L_ATTR
#include "int8_rows.h"
#undef I8L_SUF
#undef I8L_ATTR
#if NC_I8_X86
#define I8L_SUF avx2
#define I8L_ATTR __attribute__((target("avx2,fma")))
#include "int8_rows.h"
#undef I8L_SUF
#undef I8L_ATTR
#define I8_PICK(level, op) ((level) ? NC_NAME(op##_avx2) : NC_NAME(op##_generic))
#else
#define I8_PICK(level, op) NC_NAME(op##_generic)
#endif

/* Quantize rows [i0, i0 + rows) of x into the kernels' A rows; their scales into info. */
static void NC_NAME(i8_pack_x)(const nc_i8_job *job, ptrdiff_t i0, ptrdiff_t rows, uint8_t o, uint8_t *dst,
                               ptrdiff_t ldd, void *info)
{
    ptrdiff_t k = job->k;
    REAL *xs = (REAL *)info;
    for (ptrdiff_t r = 0; r < rows; r++) {
        const REAL *x = (const REAL *)job->a + (i0 + r) * job->lda;
        xs[r] = I8_PICK(job->level, i8_row_scale)(x, k, (REAL)job->qmax);
        I8_PICK(job->level, i8_quant_row)(x, k, xs[r], (REAL)job->qmax, o, dst + r * ldd);
        memset(dst + r * ldd + k, o, (size_t)(ldd - k));
    }
}

static void NC_NAME(i8_store)(const nc_i8_job *job, const int32_t *t, int ldt, ptrdiff_t i0, ptrdiff_t j0, int mi,
                              int nj, const void *info)
{
    const REAL *bias = (const REAL *)job->bias;
    I8_PICK(job->level, i8_store)(t, ldt, mi, nj, (const REAL *)info, (const REAL *)job->wscale + j0,
                                  bias ? bias + j0 : NULL, job->act, (REAL)job->act_alpha,
                                  (REAL *)job->c + i0 * job->ldc + j0, job->ldc);
}

int NC_NAME(gemm_int8)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const REAL *x, ptrdiff_t ldx, int qmax, const int8_t *W,
                       ptrdiff_t ldw, const REAL *wscale, const REAL *bias, int act, REAL act_alpha, REAL *y,
                       ptrdiff_t ldy, int nthreads)
{
    nc_i8_job job = {0};
    job.m = m, job.n = n, job.k = k, job.B = W, job.ldb = ldw, job.qmax = qmax;
    job.pack_a = NC_NAME(i8_pack_x), job.store = NC_NAME(i8_store), job.info_size = (int)sizeof(REAL);
    job.a_size = (int)sizeof(REAL);
    job.level = NC_I8_X86 && nc_active_simd_level() >= NC_SIMD_AVX2;
    job.a = x, job.lda = ldx, job.c = y, job.ldc = ldy;
    job.wscale = wscale, job.bias = bias, job.act = act, job.act_alpha = act_alpha;
    return nc_i8_run(&job, nthreads);
}

static void NC_NAME(i8_quantize_row)(int level, const REAL *x, ptrdiff_t k, REAL qmax, int8_t *q, REAL *scale)
{
    *scale = I8_PICK(level, i8_row_scale)(x, k, qmax);
    I8_PICK(level, i8_quant_row)(x, k, *scale, qmax, 0, (uint8_t *)q);
}

void NC_NAME(quantize_rows)(const REAL *x, ptrdiff_t m, ptrdiff_t k, ptrdiff_t ldx, int qmax, int8_t *q,
                            ptrdiff_t ldq, REAL *scale, int nthreads)
{
    int level = NC_I8_X86 && nc_active_simd_level() >= NC_SIMD_AVX2;
    int nt = nc_team_size(nthreads, 4.0 * (double)m * (double)k);
    if (nt > m) nt = (int)m;
    if (nt <= 1) {
        for (ptrdiff_t i = 0; i < m; i++) NC_NAME(i8_quantize_row)(level, x + i * ldx, k, (REAL)qmax, q + i * ldq, scale + i);
        return;
    }
#pragma omp parallel for num_threads(nt) schedule(static)
    for (ptrdiff_t i = 0; i < m; i++) NC_NAME(i8_quantize_row)(level, x + i * ldx, k, (REAL)qmax, q + i * ldq, scale + i);
}

void NC_NAME(take_rows_int8)(const int8_t *E, ptrdiff_t cols, const REAL *scale, const int64_t *idx, ptrdiff_t nidx,
                             REAL *y)
{
    for (ptrdiff_t r = 0; r < nidx; r++) {
        const int8_t *e = E + idx[r] * cols;
        REAL s = scale[idx[r]], *out = y + r * cols;
#pragma omp simd
        for (ptrdiff_t j = 0; j < cols; j++) out[j] = (REAL)e[j] / s;
    }
}

#undef I8_PICK
#undef I8_LRINT
#undef I8_UINT
#undef I8_ABS_MASK
#undef I8_INF_BITS
