/* int8.c -- int8 inference, as Keras 3's model.quantize("int8") computes it:
 * the int8 GEMM with the float input quantized per row on the fly and the
 * result dequantized in the epilogue with the bias and the activation, the
 * row quantizer on its own, and the dequantizing row gather of Embedding.
 *
 *   s_i = Q / (max_p |x_ip| + 1e-7)                   (Keras AbsMaxQuantizer, axis -1,
 *   q_ip = clip(round(x_ip s_i), -Q, Q)                value_range (-Q, Q); round half to even)
 *   acc_ij = sum_p q_ip W_pj                          (int32, exact)
 *   y_ij = act(acc_ij / (w_j s_i) + b_j)              (w_j the kernel's per-column scale)
 *
 * The int32 product runs on one of several micro-kernels (enum nc_int8_kernel,
 * int8_kernel.h), chosen at run time from the SIMD level in use and what the
 * CPU has. They give IDENTICAL int32 sums, because each sum is exact:
 *   - |q| <= Q <= 127 and |W| <= 128, so |acc| <= 16256 k < 2^31 for k <= NC_INT8_MAX_K;
 *   - AVX2 (vpmaddubsw + vpmaddwd): every int16 pair sum is at most 32512, no
 *     saturation: with q + 64 for Q <= 63 (nncore's default, FBGEMM's 7-bit
 *     activations), with |W| and q sign(W) for Q up to 127 (int8_kernel.h);
 *   - VNNI (vpdpbusd on q + 128 and W): exact mod 2^32, corrected by 128 sum_p W_pj;
 *   - generic C: int32 multiply-adds that cannot overflow.
 * So the float results are the same bits on every kernel too (the epilogue is
 * one piece of C per SIMD level, plain IEEE arithmetic), whatever the thread
 * count (threads split C by rows or columns; nothing is summed across them).
 *
 * The driver packs B (the int8 weights, as stored: k x n) into the kernel's
 * NR-column panels once per call and thread, then, MC rows at a time,
 * quantizes and packs A into MR-row panels (the quantizing copy is the
 * packing: a row is read once from memory) and runs the MR x NR tiles over the
 * whole k; each finished int32 tile goes through the epilogue while it is in
 * L1. The REAL parts (quantize + pack A, the epilogue) are the callbacks of a
 * job, defined in int8_body.h for float and double. A convolution's job
 * (nc_conv_int8) packs A from its input image: each cols row (im2col's) is
 * quantized straight from the window's runs in x, never gathered or stored. */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "nncore.h"
#include "tiles.h"
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__) && !defined(NNCORE_GENERIC_ONLY)
#define NC_I8_X86 1
#include <cpuid.h>
#include <immintrin.h>
#else
#define NC_I8_X86 0
#endif

#include "int8_kernel.h"

/* round to nearest even (the rounding mode in use) to an int: GCC vectorizes __builtin_irint* to one
 * conversion (vcvtps2dq), where (int)rint* takes a rounding and a truncating conversion */
#if defined(__GNUC__) && !defined(__clang__)
#define I8_IRINT_F(v) __builtin_irintf(v)
#define I8_IRINT_D(v) __builtin_irint(v)
#else
#define I8_IRINT_F(v) ((int32_t)rintf(v))
#define I8_IRINT_D(v) ((int32_t)rint(v))
#endif

#if defined(__GNUC__) || defined(__clang__)
#define NC_I8_PREFETCH(p) __builtin_prefetch((p), 0, 1) /* into L2 */
#else
#define NC_I8_PREFETCH(p) ((void)(p))
#endif

/* At most this many rows of A take the direct path (B read in place, not packed). */
#define NC_I8_DIRECT_ROWS 8
/* The largest MR x NR of the kernels (the tile buffer) */
#define NC_I8_TILE_MAX 512
/* Bytes of packed A per block of rows (lives in L2 while the B panels pass). */
#define NC_I8_A_BYTES (128 * 1024)
/* Below this many multiply-adds one thread does it all (as NC_GEMM_TEAM_WORK). */
#define NC_I8_TEAM_WORK (160.0 * 160.0 * 160.0)

/* ---- the kernels and which one runs ------------------------------------------------------------ */
typedef struct {
    const char *name;
    int mr, nr;
    int offset;      /* A packed as x + offset (unsigned A operand), corr subtracted; 0: A as is */
    int qmax;        /* the largest |x| the kernel is exact for */
    int needs;       /* 0 any CPU; 1 the AVX2 level; 2 + AVX-VNNI; 3 the AVX-512 level + AVX512-VNNI */
    nc_i8_kernel_fn kernel;
} nc_i8_variant;

static const nc_i8_variant nc_i8_variants[NC_INT8_COUNT] = {
    {"generic", NC_I8_GENERIC_MR, NC_I8_GENERIC_NR, 0, 127, 0, nc_i8_kernel_generic},
#if NC_I8_X86
    {"avx2", NC_I8_AVX2_MR, NC_I8_AVX2_NR, 64, 63, 1, nc_i8_kernel_avx2},
    {"avx2-sign", NC_I8_AVX2_MR, NC_I8_AVX2_NR, 0, 127, 1, nc_i8_kernel_avx2_sign},
    {"avxvnni", NC_I8_VNNI256_MR, NC_I8_VNNI256_NR, 128, 127, 2, nc_i8_kernel_avxvnni},
    {"avx512vnni", NC_I8_VNNI512_MR, NC_I8_VNNI512_NR, 128, 127, 3, nc_i8_kernel_avx512vnni},
    {"avxvnni-emulated", NC_I8_VNNI256_MR, NC_I8_VNNI256_NR, 128, 127, 1, nc_i8_kernel_avxvnni_emu},
    {"avx512vnni-emulated", NC_I8_VNNI512_MR, NC_I8_VNNI512_NR, 128, 127, 1, nc_i8_kernel_avx512vnni_emu},
#else
    {"avx2", 0, 0, 0, 0, 4, NULL},
    {"avx2-sign", 0, 0, 0, 0, 4, NULL},
    {"avxvnni", 0, 0, 0, 0, 4, NULL},
    {"avx512vnni", 0, 0, 0, 0, 4, NULL},
    {"avxvnni-emulated", 0, 0, 0, 0, 4, NULL},
    {"avx512vnni-emulated", 0, 0, 0, 0, 4, NULL},
#endif
};

static int nc_i8_forced = -1; /* -1: the best available */

/* The CPU's VNNI flags (bit 0 AVX-VNNI, bit 1 AVX512-VNNI); the OS support of
 * the registers is what the SIMD level in use already stands for. */
static int nc_i8_cpu_vnni(void)
{
#if NC_I8_X86
    static int flags = -1;
    if (flags < 0) {
        unsigned a, b, c, d, f = 0;
        if (__get_cpuid_max(0, NULL) >= 7) {
            __cpuid_count(7, 0, a, b, c, d);
            if ((c >> 11) & 1) f |= 2;   /* leaf 7.0 ecx bit 11: AVX512_VNNI */
            if (a >= 1) {
                __cpuid_count(7, 1, a, b, c, d);
                if ((a >> 4) & 1) f |= 1; /* leaf 7.1 eax bit 4: AVX-VNNI */
            }
        }
        flags = (int)f;
    }
    return flags;
#else
    return 0;
#endif
}

int nc_int8_kernel_available(int kernel, int qmax)
{
    if (kernel < 0 || kernel >= NC_INT8_COUNT || !nc_i8_variants[kernel].kernel) return 0;
    if (qmax > nc_i8_variants[kernel].qmax) return 0;
    int level = nc_active_simd_level(), vnni = nc_i8_cpu_vnni();
    switch (nc_i8_variants[kernel].needs) {
    case 0: return 1;
    case 1: return level >= NC_SIMD_AVX2;
    case 2: return level >= NC_SIMD_AVX2 && (vnni & 1);
    case 3: return level >= NC_SIMD_AVX512 && (vnni & 2);
    default: return 0;
    }
}

int nc_int8_kernel(int qmax)
{
    static const int best[] = {NC_INT8_AVX512VNNI, NC_INT8_AVXVNNI, NC_INT8_AVX2, NC_INT8_AVX2_SIGN};
    if (nc_i8_forced >= 0 && nc_int8_kernel_available(nc_i8_forced, qmax)) return nc_i8_forced;
    for (int i = 0; i < (int)(sizeof best / sizeof best[0]); i++)
        if (nc_int8_kernel_available(best[i], qmax)) return best[i];
    return NC_INT8_GENERIC;
}

void nc_int8_set_kernel(int kernel) { nc_i8_forced = kernel < 0 || kernel >= NC_INT8_COUNT ? -1 : kernel; }

const char *nc_int8_kernel_name(int kernel)
{
    return kernel >= 0 && kernel < NC_INT8_COUNT ? nc_i8_variants[kernel].name : "unknown";
}

/* The SIMD level the REAL helpers (quantizer, epilogue) run at: the level in use on x86, else generic. */
static int nc_i8_level(void) { return NC_I8_X86 ? nc_active_simd_level() : NC_SIMD_GENERIC; }

/* ---- the driver -------------------------------------------------------------------------------- */
typedef struct nc_i8_job nc_i8_job;
struct nc_i8_job {
    ptrdiff_t m, n, k;
    const int8_t *B;
    ptrdiff_t ldb;
    /* Rows [i0, i0 + rows) of A in the kernels' form: row r at dst + r ldd, its k
     * bytes plus the offset o each (mod 256), then o up to 4 kg; each row's scale in
     * info (info_size bytes a row); 0, or -1 when out of memory. */
    int (*pack_a)(const nc_i8_job *job, ptrdiff_t i0, ptrdiff_t rows, uint8_t o, uint8_t *dst, ptrdiff_t ldd,
                   void *info);
    /* C(i0 + i, j0 + j) from the finished tile t(i, j) (row stride ldt), i < mi, j < nj */
    void (*store)(const nc_i8_job *job, const int32_t *t, int ldt, ptrdiff_t i0, ptrdiff_t j0, int mi, int nj,
                  const void *info);
    int info_size;
    int a_size;           /* bytes of an element of A (prefetching the next block's rows) */
    int qmax;             /* A in [-qmax, qmax] */
    int level;            /* the SIMD level of the REAL helpers (nc_i8_level) */
    const void *a;        /* int8 A or REAL x, row stride lda; a convolution's input image */
    ptrdiff_t lda;
    const nc_conv_geom *geom; /* a convolution: A is the cols matrix of x (im2col), never stored */
    void *c;
    ptrdiff_t ldc;
    const void *wscale, *bias;
    int act;
    double act_alpha;
};

/* Rows [r0, r1) of C's columns [c0, c0 + ncol) on this thread, B packed (bp, corr: the kernel's
 * panels of those columns), mc rows of A at a time in ap (mc kp bytes, mc a multiple of MR; their
 * scales in info). While one block's tiles run (compute-bound), the next block's rows of A come into
 * L2 (that pass is bound by memory otherwise), a few lines per micro-kernel call: after the last
 * block, the bytes [pf, pf_end) (the caller's next rows; may be empty). */
static int nc_i8_rows(const nc_i8_job *job, const nc_i8_variant *V, const uint8_t *bp, const uint32_t *corr,
                       ptrdiff_t c0, ptrdiff_t ncol, ptrdiff_t r0, ptrdiff_t r1, ptrdiff_t mc, uint8_t *ap,
                       char *info, const char *pf_last, const char *pf_last_end)
{
    const int mr = V->mr, nr = V->nr;
    ptrdiff_t kg = (job->k + 3) / 4, kp = 4 * kg, npan = (ncol + nr - 1) / nr;
    uint8_t o = (uint8_t)V->offset;
    int32_t tile[NC_I8_TILE_MAX];
    for (ptrdiff_t ic = r0; ic < r1; ic += mc) {
        ptrdiff_t mci = r1 - ic < mc ? r1 - ic : mc, mpad = (mci + mr - 1) / mr * mr;
        if (job->pack_a(job, ic, mci, o, ap, kp, info)) return -1;
        memset(ap + mci * kp, o, (size_t)((mpad - mci) * kp)); /* the rows of the last tile past m */
        const char *pf = pf_last, *pf_end = pf_last_end;
        if (ic + mci < r1 && !job->geom) {
            ptrdiff_t next = ic + mci, nrows = r1 - next < mc ? r1 - next : mc;
            pf = (const char *)job->a + next * job->lda * job->a_size;
            pf_end = pf + nrows * job->lda * job->a_size;
        }
        ptrdiff_t calls = npan * (mpad / mr), step = ((pf_end - pf) / calls + 63) / 64 * 64;
        for (ptrdiff_t jp = 0; jp < npan; jp++) {
            int nj = (int)(ncol - jp * nr < nr ? ncol - jp * nr : nr);
            for (ptrdiff_t ir = 0; ir < mci; ir += mr) {
                for (const char *e = pf + step < pf_end ? pf + step : pf_end; pf < e; pf += 64)
                    NC_I8_PREFETCH(pf);
                V->kernel(kg, ap + ir * kp, kp, bp + jp * kg * nr * 4, corr + jp * nr, tile);
                job->store(job, tile, nr, ic + ir, c0 + jp * nr, (int)(mci - ir < mr ? mci - ir : mr), nj,
                           info + ir * job->info_size);
            }
        }
    }
    return 0;
}

#define NC_I8_UP(x) (((x) + 63) / 64 * 64)

/* B's columns [c0, c0 + ncol) in the kernel's panels: corr (a whole number of panels) at out, the
 * panels at out + nc_i8_corr_bytes. */
static size_t nc_i8_corr_bytes(const nc_i8_variant *V, ptrdiff_t ncol)
{
    return NC_I8_UP((size_t)((ncol + V->nr - 1) / V->nr * V->nr) * sizeof(uint32_t));
}

static void nc_i8_pack(const nc_i8_variant *V, const int8_t *B, ptrdiff_t ldb, ptrdiff_t k, ptrdiff_t ncol,
                       uint8_t *out)
{
    size_t cb = nc_i8_corr_bytes(V, ncol);
    uint32_t *corr = (uint32_t *)out;
#if NC_I8_X86
    if (V->needs) nc_i8_pack_b_x86(B, ldb, k, ncol, V->nr, out + cb);
    else
#endif
        nc_i8_pack_b_c(B, ldb, k, ncol, V->nr, out + cb);
    if (V->offset) nc_i8_corr(B, ldb, k, ncol, (ptrdiff_t)(cb / 4), (uint32_t)V->offset, corr);
    else memset(corr, 0, cb);
}

static size_t nc_i8_pack_bytes(const nc_i8_variant *V, ptrdiff_t k, ptrdiff_t ncol)
{
    return nc_i8_corr_bytes(V, ncol) + (size_t)((ncol + V->nr - 1) / V->nr * ((k + 3) / 4) * V->nr * 4);
}

/* One thread's block C[r0:r1, c0:c1]: B's columns packed once, then A block by block (workspace per
 * call, per thread). 0, or -1 when out of memory. */
static int nc_i8_region(const nc_i8_job *job, const nc_i8_variant *V, ptrdiff_t r0, ptrdiff_t r1, ptrdiff_t c0,
                        ptrdiff_t c1)
{
    const int mr = V->mr;
    ptrdiff_t kp = (job->k + 3) / 4 * 4, rows = (r1 - r0 + mr - 1) / mr * mr;
    ptrdiff_t mc = NC_I8_A_BYTES / (kp + 1) / mr * mr;
    if (mc < mr) mc = mr;
    if (mc > rows) mc = rows;
    size_t bbytes = nc_i8_pack_bytes(V, job->k, c1 - c0), abytes = (size_t)(mc * kp);
    char *mem = (char *)malloc(NC_I8_UP(bbytes) + NC_I8_UP(abytes) + (size_t)(mc * job->info_size) + 64);
    if (!mem) return -1;
    uint8_t *bp = (uint8_t *)(((uintptr_t)mem + 63) / 64 * 64), *ap = bp + NC_I8_UP(bbytes);
    char *info = (char *)ap + NC_I8_UP(abytes);
    nc_i8_pack(V, job->B + c0, job->ldb, job->k, c1 - c0, bp);
    size_t cb = nc_i8_corr_bytes(V, c1 - c0);
    int rc = nc_i8_rows(job, V, bp + cb, (const uint32_t *)bp, c0, c1 - c0, r0, r1, mc, ap, info, NULL, NULL);
    free(mem);
    return rc;
}

/* The direct path: C = A B for a few rows, B (k x n, row stride ldb) read in
 * place (int8_gemv.h: each element of B serves only m rows, so packing it
 * would cost as much as using it: predict of one sample). The rows quantized
 * (or copied) into q, their int32 rows on the row kernels of the kernel in
 * use's family (AVX512-VNNI, AVX2, generic C), the epilogue. The
 * work space is on the stack up to NC_I8_DIRECT_STACK bytes (no allocation
 * for the layers one sample goes through), else allocated. */
#include "int8_gemv.h"
#define NC_I8_DIRECT_STACK 16384

typedef void (*nc_i8_gemv_fn)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const int8_t *a, ptrdiff_t lda, const int8_t *B,
                              ptrdiff_t ldb, int qmax, int32_t *c, ptrdiff_t ldc);

static nc_i8_gemv_fn nc_i8_gemv_of(const nc_i8_variant *V)
{
#if NC_I8_X86
    if (V->kernel == nc_i8_kernel_avx512vnni) return nc_i8_gemv_avx512vnni;
    if (V->needs) return nc_i8_gemv_avx2;
#endif
    (void)V;
    return nc_i8_gemv_generic;
}

static int nc_i8_run_direct(const nc_i8_job *job, const nc_i8_variant *V)
{
    ptrdiff_t m = job->m, n = job->n, k = job->k, kp = (k + 3) / 4 * 4;
    size_t cbytes = (size_t)(m * n) * 4, need = cbytes + (size_t)(m * kp) + 64;
    _Alignas(64) char stack[NC_I8_DIRECT_STACK];
    char *mem = need <= sizeof stack ? stack : (char *)malloc(need);
    if (!mem) return -1;
    int32_t *c32 = (int32_t *)(void *)mem;
    int8_t *q = (int8_t *)(mem + cbytes);
    _Alignas(16) char info[NC_I8_DIRECT_ROWS * sizeof(double)];
    if (job->pack_a(job, 0, m, 0, (uint8_t *)q, kp, info)) {
        if (mem != stack) free(mem);
        return -1;
    }
    nc_i8_gemv_of(V)(m, n, k, q, kp, job->B, job->ldb, job->qmax, c32, n);
    job->store(job, c32, (int)n, 0, 0, (int)m, (int)n, info);
    if (mem != stack) free(mem);
    return 0;
}

/* The job on the kernel in use: the direct path for a few rows; else one
 * thread, or C cut by rows (by columns when there are fewer MR-row panels
 * than threads) at tile boundaries. */
static int nc_i8_run(const nc_i8_job *job, int nthreads)
{
    const nc_i8_variant *V = &nc_i8_variants[nc_int8_kernel(job->qmax)];
    ptrdiff_t m = job->m, n = job->n;
    if (m <= 0 || n <= 0) return 0;
    if (m <= NC_I8_DIRECT_ROWS && n <= INT_MAX) return nc_i8_run_direct(job, V);
    double work = (double)m * (double)n * (double)(job->k > 0 ? job->k : 1);
    int nt = work < NC_I8_TEAM_WORK ? 1 : nc_team_size(nthreads, 2.0 * work);
    ptrdiff_t mt = (m + V->mr - 1) / V->mr, ntiles = mt * ((n + V->nr - 1) / V->nr);
    if (nt > ntiles) nt = (int)ntiles;
    if (nt <= 1) return nc_i8_region(job, V, 0, m, 0, n);
    int err = 0;
#pragma omp parallel num_threads(nt) reduction(| : err)
    {
        ptrdiff_t r0, r1, c0, c1;
        nc_tile_block(m, n, V->mr, V->nr, omp_get_num_threads(), omp_get_thread_num(), &r0, &r1, &c0, &c1);
        if (r1 > r0 && c1 > c0) err |= nc_i8_region(job, V, r0, r1, c0, c1);
    }
    return err;
}

/* ---- the weights packed once, for a chain of layers ----------------------------------------------
 * A head of 64 bytes (int64 tag, kernel, k, n), then corr and the panels of nc_i8_pack. */
#define NC_I8_PACK_HEAD 64
#define NC_I8_PACK_TAG 0x6b63617038746e69LL /* "int8pack" */

size_t nc_int8_packed_size(int kernel, ptrdiff_t k, ptrdiff_t n)
{
    if (kernel < 0 || kernel >= NC_INT8_COUNT || !nc_i8_variants[kernel].kernel) return 0;
    return NC_I8_PACK_HEAD + nc_i8_pack_bytes(&nc_i8_variants[kernel], k, n);
}

int nc_int8_pack(int kernel, const int8_t *W, ptrdiff_t ldw, ptrdiff_t k, ptrdiff_t n, void *out)
{
    if (!nc_int8_packed_size(kernel, k, n)) return -1;
    int64_t head[8] = {NC_I8_PACK_TAG, kernel, k, n};
    memcpy(out, head, sizeof head);
    nc_i8_pack(&nc_i8_variants[kernel], W, ldw, k, n, (uint8_t *)out + NC_I8_PACK_HEAD);
    return 0;
}

/* The kernel of a packed W when it is a k x n one for inputs in [-qmax, qmax] on the kernel in use
 * now, else -1. */
static int nc_i8_packed_kernel(const void *packed, ptrdiff_t k, ptrdiff_t n, int qmax)
{
    int64_t head[4];
    memcpy(head, packed, sizeof head);
    if (head[0] != NC_I8_PACK_TAG || head[2] != k || head[3] != n || head[1] != nc_int8_kernel(qmax)) return -1;
    return (int)head[1];
}

/* Rows of a chain's block (a multiple of 8, the MR of every kernel but avx-vnni's 6), and the fewest
 * 8-row units a thread takes at a time (int8_body.h; medium MLP predict 1024 at 2 threads on a shared
 * Zen 4: chunks of 1 / (2 nt) of the rows left 830-883 us against 862-945 for 64-row blocks one at a
 * time, and 128-row halves 819-913) */
#define NC_I8_CHAIN_ROWS 128
#define NC_I8_CHAIN_MIN_UNITS 2

/* ---- C = A B in int32 for int8 A (the test face of the kernels) ---------------------------------- */
static int nc_i8_pack_s8(const nc_i8_job *job, ptrdiff_t i0, ptrdiff_t rows, uint8_t o, uint8_t *dst, ptrdiff_t ldd,
                          void *info)
{
    ptrdiff_t k = job->k;
    (void)info;
    for (ptrdiff_t r = 0; r < rows; r++) {
        const uint8_t *a = (const uint8_t *)job->a + (i0 + r) * job->lda;
        uint8_t *d = dst + r * ldd;
#pragma omp simd
        for (ptrdiff_t p = 0; p < k; p++) d[p] = (uint8_t)(a[p] + o);
        memset(d + k, o, (size_t)(ldd - k));
    }
    return 0;
}

static void nc_i8_store_s32(const nc_i8_job *job, const int32_t *t, int ldt, ptrdiff_t i0, ptrdiff_t j0, int mi,
                            int nj, const void *info)
{
    (void)info;
    for (int i = 0; i < mi; i++) memcpy((int32_t *)job->c + (i0 + i) * job->ldc + j0, t + i * ldt, (size_t)nj * 4);
}

int nc_gemm_s8s32(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const int8_t *A, ptrdiff_t lda, int qmax, const int8_t *B,
                  ptrdiff_t ldb, int32_t *C, ptrdiff_t ldc, int nthreads)
{
    nc_i8_job job = {0};
    job.qmax = qmax, job.level = nc_i8_level();
    job.m = m, job.n = n, job.k = k, job.B = B, job.ldb = ldb;
    job.pack_a = nc_i8_pack_s8, job.store = nc_i8_store_s32, job.info_size = 0, job.a_size = 1;
    job.a = A, job.lda = lda, job.c = C, job.ldc = ldc;
    return nc_i8_run(&job, nthreads);
}

#define NC_F32
#include "real.h"
#include "int8_body.h"
#include "real_undef.h"

#define NC_F64
#include "real.h"
#include "int8_body.h"
#include "real_undef.h"
