/* int8_body.h -- the REAL side of the int8 kernels (float and double): the
 * job callbacks of the int8 GEMM (quantize + pack A, the epilogue), its entry
 * point, the row quantizer and the dequantizing row gather. Included by
 * int8.c after real.h. */
#if defined(NC_F32)
#define I8_IRINT I8_IRINT_F
#define I8_UINT uint32_t
#define I8_ABS_MASK 0x7fffffffu
#define I8_INF_BITS 0x7f800000u
#else
#define I8_IRINT I8_IRINT_D
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
#if defined(__clang__)
#define I8L_ATTR __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")))
#else
#define I8L_ATTR __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,prefer-vector-width=512")))
#endif
#define I8L_SUF avx512
#include "int8_rows.h"
#undef I8L_SUF
#undef I8L_ATTR
#define I8_PICK(level, op) \
    ((level) == NC_SIMD_AVX512 ? NC_NAME(op##_avx512) : (level) ? NC_NAME(op##_avx2) : NC_NAME(op##_generic))
#else
#define I8_PICK(level, op) NC_NAME(op##_generic)
#endif

/* Quantize `rows` rows of k values (row stride ldx) into the kernels' A rows at dst (stride ldd), their
 * scales into xs. */
static void NC_NAME(i8_quant_rows)(const nc_i8_job *job, const REAL *x, ptrdiff_t ldx, ptrdiff_t rows, uint8_t o,
                                   uint8_t *dst, ptrdiff_t ldd, REAL *xs)
{
    ptrdiff_t k = job->k;
    for (ptrdiff_t r = 0; r < rows; r++, x += ldx, dst += ldd) {
        xs[r] = I8_PICK(job->level, i8_row_scale)(x, k, (REAL)job->qmax);
        I8_PICK(job->level, i8_quant_row)(x, k, xs[r], o, dst);
        for (ptrdiff_t p = k; p < ldd; p++) dst[p] = o;   /* up to 4 kg: a few bytes, no memset call */
    }
}

/* Quantize rows [i0, i0 + rows) of x into the kernels' A rows; their scales into info. */
static int NC_NAME(i8_pack_x)(const nc_i8_job *job, ptrdiff_t i0, ptrdiff_t rows, uint8_t o, uint8_t *dst,
                              ptrdiff_t ldd, void *info)
{
    NC_NAME(i8_quant_rows)(job, (const REAL *)job->a + i0 * job->lda, job->lda, rows, o, dst, ldd, (REAL *)info);
    return 0;
}

/* A convolution's A rows [i0, i0 + rows): the cols rows of x (im2col), each quantized straight from x
 * (its window's runs read in place): the float cols matrix is never made. The pixels of one output row
 * (as many as the block holds) share their windows' column maxima (i8_conv_rows) while their input
 * columns fit its buffer; a window wider than that (c (kw - 1) dw + c > NC_I8_CONV_SPAN) takes each
 * row's own max (i8_conv_row). The same bits either way. */
static int NC_NAME(i8_pack_conv)(const nc_i8_job *job, ptrdiff_t i0, ptrdiff_t rows, uint8_t o, uint8_t *dst,
                                 ptrdiff_t ldd, void *info)
{
    const nc_conv_geom *g = job->geom;
    const ptrdiff_t k = job->k, per_image = g->oh * g->ow, hwc = g->h * g->w * g->c;
    const REAL Q = (REAL)job->qmax;
    REAL *xs = (REAL *)info;
    ptrdiff_t q = i0 % per_image, oh = q / g->ow, ow = q % g->ow;
    const REAL *xb = (const REAL *)job->a + i0 / per_image * hwc;
    const ptrdiff_t span = (g->kw - 1) * g->dw + 1, fit = NC_I8_CONV_SPAN / g->c;   /* columns the buffer holds */
    const ptrdiff_t per_seg = fit >= span ? (fit - span) / g->sw + 1 : 0;           /* pixels a shared pass */
    for (ptrdiff_t r = 0; r < rows;) {   /* (b, oh, ow) stepped, no division per pixel */
        ptrdiff_t np = 1;
        if (per_seg > 0) {
            np = rows - r < g->ow - ow ? rows - r : g->ow - ow;
            if (np > per_seg) np = per_seg;
            I8_PICK(job->level, i8_conv_rows)(g, xb, oh, ow, np, Q, o, dst, ldd, k, xs + r);
        } else {
            xs[r] = I8_PICK(job->level, i8_conv_row)(g, xb, oh, ow, Q, o, dst);
            for (ptrdiff_t p = k; p < ldd; p++) dst[p] = o;
        }
        r += np, dst += np * ldd, ow += np;
        if (ow == g->ow) {
            ow = 0;
            if (++oh == g->oh) oh = 0, xb += hwc;
        }
    }
    return 0;
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
    job.level = nc_i8_level();
    job.a = x, job.lda = ldx, job.c = y, job.ldc = ldy;
    job.wscale = wscale, job.bias = bias, job.act = act, job.act_alpha = act_alpha;
    return nc_i8_run(&job, nthreads);
}

int NC_NAME(conv_int8)(const nc_conv_geom *g, const REAL *x, int qmax, const int8_t *W, ptrdiff_t n,
                       const REAL *wscale, const REAL *bias, int act, REAL act_alpha, REAL *y, int nthreads)
{
    nc_i8_job job = {0};
    job.m = g->n * g->oh * g->ow, job.n = n, job.k = g->kh * g->kw * g->c, job.B = W, job.ldb = n;
    job.qmax = qmax, job.pack_a = NC_NAME(i8_pack_conv), job.store = NC_NAME(i8_store);
    job.info_size = (int)sizeof(REAL), job.a_size = (int)sizeof(REAL), job.level = nc_i8_level();
    job.a = x, job.lda = job.k, job.geom = g, job.c = y, job.ldc = n;
    job.wscale = wscale, job.bias = bias, job.act = act, job.act_alpha = act_alpha;
    return nc_i8_run(&job, nthreads);
}

/* A thread's work space for the chain's row blocks of rb rows: packed A (kpmax bytes a row), the rows'
 * scales, two activation buffers of wmax columns. NULL when out of memory; free() it. */
static char *NC_NAME(i8_chain_space)(ptrdiff_t rb, ptrdiff_t wmax, ptrdiff_t kpmax)
{
    size_t abytes = NC_I8_UP((size_t)((rb + 16) * kpmax)), ibytes = NC_I8_UP((size_t)(rb + 16) * sizeof(REAL));
    return (char *)malloc(abytes + ibytes + 2 * (size_t)(rb * wmax) * sizeof(REAL) + 64);
}

/* Rows [r0, r0 + rows) (rows <= rb) through every layer of the chain in mem (i8_chain_space): the
 * block's activations stay in L2 from layer to layer and each layer's weights are read packed. 1 when
 * check is set and a row of x holds NaN or an infinity, else 0. */
static int NC_NAME(i8_chain_block)(ptrdiff_t r0, ptrdiff_t rows, int L, const ptrdiff_t *dims,
                                   const void *const *packed, const REAL *const *wscale, const REAL *const *bias,
                                   const int *act, const REAL *act_alpha, const int *qmax, int check, const REAL *x,
                                   REAL *y, char *mem, ptrdiff_t rb, ptrdiff_t wmax, ptrdiff_t kpmax)
{
    size_t abytes = NC_I8_UP((size_t)((rb + 16) * kpmax)), ibytes = NC_I8_UP((size_t)(rb + 16) * sizeof(REAL));
    uint8_t *ap = (uint8_t *)(((uintptr_t)mem + 63) / 64 * 64);
    char *info = (char *)ap + abytes;
    REAL *buf[2] = {(REAL *)(info + ibytes), (REAL *)(info + ibytes) + rb * wmax};
    int level = nc_i8_level();
    const REAL *in = x + r0 * dims[0];
    for (int l = 0; l < L; l++) {
        int64_t head[2];
        memcpy(head, packed[l], sizeof head);
        const nc_i8_variant *V = &nc_i8_variants[head[1]];
        const uint8_t *pk = (const uint8_t *)packed[l] + NC_I8_PACK_HEAD;
        ptrdiff_t n = dims[l + 1], mc = (rows + V->mr - 1) / V->mr * V->mr;
        REAL *out = l == L - 1 ? y + r0 * n : buf[l % 2];
        nc_i8_job job = {0};
        job.m = rows, job.n = n, job.k = dims[l], job.qmax = qmax[l], job.level = level;
        job.pack_a = NC_NAME(i8_pack_x), job.store = NC_NAME(i8_store), job.info_size = (int)sizeof(REAL);
        job.a_size = (int)sizeof(REAL), job.a = in, job.lda = dims[l], job.c = out, job.ldc = n;
        job.wscale = wscale[l], job.bias = bias[l], job.act = act[l] < 0 ? NC_ACT_LINEAR : act[l];
        job.act_alpha = act_alpha[l];
        /* (no prefetch of the next block of x: on Zen 4 it gained nothing over the hardware's) */
        if (nc_i8_rows(&job, V, pk + nc_i8_corr_bytes(V, n), (const uint32_t *)pk, 0, n, 0, rows, mc, ap, info,
                       NULL, NULL))
            return -1;
        if (act[l] < 0) NC_NAME(softmax_forward)(out, out, rows, n);
        /* x is checked by its rows' scales: NaN where a row holds NaN or an infinity */
        for (ptrdiff_t i = 0; check && l == 0 && i < rows; i++)
            if (((REAL *)info)[i] != ((REAL *)info)[i]) return 1;
        in = out;
    }
    return 0;
}

int NC_NAME(int8_chain)(ptrdiff_t m, int L, const ptrdiff_t *dims, const void *const *packed,
                        const REAL *const *wscale, const REAL *const *bias, const int *act, const REAL *act_alpha,
                        const int *qmax, int check_finite, const REAL *x, REAL *y, int nthreads)
{
    ptrdiff_t wmax = 1, kpmax = 4;
    double macs = 0;
    for (int l = 0; l < L; l++) {
        if (nc_i8_packed_kernel(packed[l], dims[l], dims[l + 1], qmax[l]) < 0) return -2;
        if (l > 0 && dims[l] > wmax) wmax = dims[l];
        if ((dims[l] + 3) / 4 * 4 > kpmax) kpmax = (dims[l] + 3) / 4 * 4;
        macs += (double)dims[l] * (double)dims[l + 1];
    }
    if (m <= 0) return 0;
    int nt = macs * (double)m < NC_I8_TEAM_WORK ? 1 : nc_team_size(nthreads, 2.0 * macs * (double)m);
    ptrdiff_t units = (m + 7) / 8, rb = NC_I8_CHAIN_ROWS, taken = 0;
    if (nt > units) nt = (int)units;
    int failed = 0, nonfinite = 0;
    /* Chunks of rows taken one at a time, each a 1 / (2 nt) share of the rows left (at least 16; one
     * thread: all of them; cut in blocks of rb rows): large ones first, small ones at the end, so a thread that starts late (woken
     * from sleep) or whose core is busy with other work takes less, and the threads finish together.
     * A row's result does not depend on its chunk, block or thread. */
#pragma omp parallel num_threads(nt) reduction(| : failed, nonfinite) if (nt > 1)
    {
        char *mem = NC_NAME(i8_chain_space)(rb, wmax, kpmax);
        failed |= !mem;
        while (mem && !nonfinite && !failed) {
            ptrdiff_t u0, c;
#pragma omp critical(nc_i8_chain_chunk)
            {
                u0 = taken;
                c = nt > 1 ? (units - u0) / (2 * nt) : units;
                c = c < NC_I8_CHAIN_MIN_UNITS ? NC_I8_CHAIN_MIN_UNITS : c;
                taken = u0 + c;
            }
            if (u0 >= units) break;
            ptrdiff_t r1 = (u0 + c) * 8 < m ? (u0 + c) * 8 : m;
            for (ptrdiff_t r0 = u0 * 8; r0 < r1 && !nonfinite && !failed; r0 += rb) {
                int r = NC_NAME(i8_chain_block)(r0, r1 - r0 < rb ? r1 - r0 : rb, L, dims, packed, wscale, bias, act,
                                                act_alpha, qmax, check_finite, x, y, mem, rb, wmax, kpmax);
                failed |= r < 0; /* (nc_i8_rows out of memory) */
                nonfinite |= r > 0;
            }
        }
        free(mem);
    }
    return failed ? -1 : nonfinite;
}

/* The layers one after the other in one call (layers_walk.h), each its own nc_gemm_int8 on the whole
 * batch (W as stored, nothing packed: up to 8 rows take the direct path) and the same separate
 * activation or softmax pass as the layer makes: the bits of calling them one by one, without
 * crossing into C once per layer (model(x) of one sample). */
#include "layers_walk.h"

typedef struct {
    const int8_t *const *W;
    const REAL *const *wscale, *const *bias;
    const int *qmax;
} NC_NAME(i8_layers_ctx);

static int NC_NAME(i8_product)(const void *ctx, int l, ptrdiff_t m, ptrdiff_t k, ptrdiff_t n, const REAL *in,
                               REAL *out, int act, REAL act_alpha, int nthreads)
{
    const NC_NAME(i8_layers_ctx) *c = (const NC_NAME(i8_layers_ctx) *)ctx;
    return NC_NAME(gemm_int8)(m, n, k, in, k, c->qmax[l], c->W[l], n, c->wscale[l], c->bias[l], act, act_alpha, out,
                              n, nthreads);
}

int NC_NAME(int8_layers)(ptrdiff_t m, int L, const ptrdiff_t *dims, const int8_t *const *W,
                         const REAL *const *wscale, const REAL *const *bias, const int *act, const int *separate,
                         const REAL *act_alpha, const int *qmax, int check_finite, const REAL *x, REAL *y,
                         REAL *work, int nthreads)
{
    NC_NAME(i8_layers_ctx) ctx = {W, wscale, bias, qmax};
    return NC_NAME(layers_walk)(m, L, dims, act, separate, act_alpha, check_finite, x, y, work, nthreads,
                                NC_NAME(i8_product), &ctx);
}

static void NC_NAME(i8_quantize_row)(int level, const REAL *x, ptrdiff_t k, REAL qmax, int8_t *q, REAL *scale)
{
    *scale = I8_PICK(level, i8_row_scale)(x, k, qmax);
    I8_PICK(level, i8_quant_row)(x, k, *scale, 0, (uint8_t *)q);
}

void NC_NAME(quantize_rows)(const REAL *x, ptrdiff_t m, ptrdiff_t k, ptrdiff_t ldx, int qmax, int8_t *q,
                            ptrdiff_t ldq, REAL *scale, int nthreads)
{
    int level = nc_i8_level();
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
#undef I8_IRINT
#undef I8_UINT
#undef I8_ABS_MASK
#undef I8_INF_BITS
