/* winograd.c -- 3x3 stride-1 convolutions by Winograd's minimal filtering, float and double.
 *
 * F(m x m, 3 x 3) (Lavin & Gray 2016): an output tile of m x m pixels is
 *     Y = A^T [ (G g G^T) .* (B^T d B) ] A
 * from the (m + 2) x (m + 2) input patch d and the 3 x 3 kernel g of one
 * (channel, filter) pair; summed over channels, the elementwise product
 * becomes a GEMM per position xi of the (m + 2)^2 transformed values:
 *     U[xi] (c x f) = (G g G^T)[xi],  V[t, xi] (tiles x c) = (B^T d_t B)[xi],
 *     M[t, xi] = V[t, xi] U[xi]        (nc_gemm, one per xi and block of tiles)
 *     y_t = act(A^T M_t A + bias).
 * A 3 x 3 product costs (m + 2)^2 / m^2 multiplies per output and pair instead
 * of 9: 4 for m = 2, 2.25 for m = 4. Backward is the transpose of each step:
 *     dM_t = A delta_t A^T,  dU[xi] = V[:, xi]^T dM[:, xi],  dg = G^T dU G,
 *     dV[:, xi] = dM[:, xi] U[xi]^T,  dd_t = B dV_t B^T, and dx sums the
 * patches dd_t where they overlap (adjacent patches share 2 rows/columns).
 *
 * Points: F(2, 3) interpolates at 0, 1, -1, inf (every entry of B and A is
 * 0 or +-1: errors as im2col's); F(4, 3) at 0, 1, -1, 2, -2, inf (entries up
 * to 8, G holds 1/6, 1/12, 1/24: about one digit lost in float32). The filter
 * transforms run in double and round once. A kernel of height 1 (the 1-D
 * layers, run as 2-D ones of height 1) transforms along the width only:
 * F(m, 3), m + 2 positions.
 *
 * bfloat16 (the mixed_bfloat16 policy, float only; the `bf` flag): the
 * products of Keras's bf16 convolution, operands rounded to bfloat16 and the
 * products summed in float32 (a product of two bfloat16 values is exact in
 * float32). x and the kernel are rounded as the input and filter transforms
 * read them, delta as the output-gradient transform reads it; y (after the
 * bias and the activation) and dkernel are rounded as they are written, as
 * the bf16 GEMM rounds its results; dx stays the float32 sum (as col2im's).
 * Everything in between (the transforms, the tuple GEMMs) is float32, so the
 * result is the bf16 convolution up to Winograd's float32 rounding (F(4x4):
 * about a digit more than a plain float32 sum), far below a bfloat16 ulp.
 *
 * Tiles cover the output in row-major order, partial ones at the bottom and
 * right edges (their extra outputs are computed and dropped; the input they
 * read outside the image is zero, like the padding). Threads: every phase
 * splits fixed items (blocks of tiles, GEMMs per position, groups of whole
 * images for dx) and nothing is summed across items except in a fixed order, so
 * the result is bit-identical for any thread count. SIMD: the transforms and
 * passes are compiled once per level (simd_levels.h) and the level in use is
 * picked per call; the GEMMs inside are the public nc_gemm, which picks its own. */
#include <stdlib.h>
#include <string.h>
#include "nncore.h"
#include "vmath.h" /* NC_VINLINE */
#include "bf16_round.h"

/* F(2, 3) */
static const double nc_wino_bt2[16] = {1, 0, -1, 0, 0, 1, 1, 0, 0, -1, 1, 0, 0, 1, 0, -1};
static const double nc_wino_at2[8] = {1, 1, 1, 0, 0, 1, -1, -1};
static const double nc_wino_g2[12] = {1, 0, 0, 0.5, 0.5, 0.5, 0.5, -0.5, 0.5, 0, 0, 1};
/* F(4, 3) */
static const double nc_wino_bt4[36] = {4, 0, -5, 0, 1, 0,  0, -4, -4, 1, 1, 0,  0, 4, -4, -1, 1, 0,
                                       0, -2, -1, 2, 1, 0, 0, 2, -1, -2, 1, 0,  0, 4, 0, -5, 0, 1};
static const double nc_wino_at4[24] = {1, 1, 1, 1, 1, 0, 0, 1, -1, 2, -2, 0, 0, 1, 1, 4, 4, 0, 0, 1, -1, 8, -8, 1};
static const double nc_wino_g4[18] = {1.0 / 4, 0, 0, -1.0 / 6, -1.0 / 6, -1.0 / 6, -1.0 / 6, 1.0 / 6, -1.0 / 6,
                                      1.0 / 24, 1.0 / 12, 1.0 / 6, 1.0 / 24, -1.0 / 12, 1.0 / 6, 0, 0, 1};
/* an axis the kernel does not span (height 1): the identity */
static const double nc_wino_one[1] = {1};

NC_VINLINE const double *nc_wino_bt(int m) { return m == 4 ? nc_wino_bt4 : m == 2 ? nc_wino_bt2 : nc_wino_one; }
NC_VINLINE const double *nc_wino_at(int m) { return m == 4 ? nc_wino_at4 : m == 2 ? nc_wino_at2 : nc_wino_one; }
NC_VINLINE const double *nc_wino_g(int m) { return m == 4 ? nc_wino_g4 : m == 2 ? nc_wino_g2 : nc_wino_one; }

/* Values per vector of a transform's chunk (NC_WINO_BYTES): a chunk's patch
 * and temporaries (36 vectors each) stay in L1/L2. */
#ifndef NC_WINO_BYTES
#define NC_WINO_BYTES 512
#endif
#define NC_WINO_LEN (NC_WINO_BYTES / (ptrdiff_t)sizeof(REAL))
/* Channels per dU item (a multiple of every MR): fixed, so the split is the shape's. */
/* the forward's tiles a block (V and M of a block in L2: a2 16 (c + f) values, 221 KiB for 36 x (32 + 64)) */
#define NC_WINO_BLOCK 16
/* backward's items: whole images of at least this many tiles (their dM and dV in L2) */
#define NC_WINO_BACK 32
/* nc_gemm_pack_b's head, before the packed panels */
#define NC_WINO_PACK_HEAD (64 / (ptrdiff_t)sizeof(REAL))
#define NC_WINO_CHANS 96

/* a cache line about to be written, towards L1 */
#if defined(__GNUC__) || defined(__clang__)
#define NC_WINO_PREFETCH(p) __builtin_prefetch((p), 1, 3)
#else
#define NC_WINO_PREFETCH(p) ((void)(p))
#endif

/* The tiling of one convolution. */
typedef struct nc_wino {
    ptrdiff_t mh, mw;   /* output tile (mh = 1 for a kernel of height 1) */
    ptrdiff_t ah, aw;   /* input patch: mh + kh - 1, mw + 2 */
    ptrdiff_t a2;       /* transformed positions per tile: ah aw */
    ptrdiff_t th, tw;   /* tiles per image column / row */
    ptrdiff_t T;        /* tiles: n th tw */
    ptrdiff_t c, f;     /* channels, filters */
    ptrdiff_t vps, vts; /* V[xi, t, c] at V + (xi vps + (t - t0) vts + c) */
    ptrdiff_t mps, mts; /* M[xi, t, f] at M + (xi mps + (t - t0) mts + f) */
    ptrdiff_t t0;       /* the first tile V and M hold: 0 for the whole arrays, a block's first tile for a
                           thread's block of them (index arithmetic: no pointer before an array's start) */
    int bf;             /* mixed_bfloat16 (float only): x, kernel and delta rounded to bfloat16 as they are
                           read, y and dkernel as they are written (see the top of this file) */
    /* the Conv2D -> MaxPooling2D(2x2, stride 2, 'valid') pair (nc_wino_pool_forward/backward; else NULL):
     * the pooled y (REAL, (n, oh / 2, ow / 2, f)), its uint8 argmax, the pooled gradient (backward) and
     * the conv's act (relu or linear) */
    void *pool_y;
    uint8_t *pool_ix;
    const void *pool_dy;
    int pool_act;
} nc_wino;

static void nc_wino_init(nc_wino *s, const nc_conv_geom *g, int m, int bf, ptrdiff_t f)
{
    s->bf = bf;
    s->pool_y = NULL, s->pool_ix = NULL, s->pool_dy = NULL, s->pool_act = 0;
    s->mw = m;
    s->mh = g->kh == 3 ? m : 1;
    s->aw = m + 2;
    s->ah = s->mh + g->kh - 1;
    s->a2 = s->ah * s->aw;
    s->th = (g->oh + s->mh - 1) / s->mh;
    s->tw = (g->ow + s->mw - 1) / s->mw;
    s->T = g->n * s->th * s->tw;
    s->c = g->c;
    s->f = f;
    s->vps = s->T * s->c, s->vts = s->c, s->mps = s->T * f, s->mts = f;
    s->t0 = 0;
}

ptrdiff_t nc_wino_tiles(const nc_conv_geom *g, int m)
{
    nc_wino s;
    nc_wino_init(&s, g, m, 0, 1);
    return s.T;
}

/* The items of a phase: spread over the team when called inside one (nt > 1),
 * a plain loop otherwise (no OpenMP construct at all on the serial path). */
#define NC_WINO_FOR(nt, i, count, ...)                                   \
    do {                                                                 \
        const ptrdiff_t count_ = (count);                                \
        if ((nt) > 1) {                                                  \
            _Pragma("omp for schedule(dynamic, 1)")                      \
            for (ptrdiff_t i = 0; i < count_; i++) { __VA_ARGS__; }      \
        } else {                                                         \
            for (ptrdiff_t i = 0; i < count_; i++) { __VA_ARGS__; }      \
        }                                                                \
    } while (0)

/* the pair's max pool takes a tap as conv.c's pooling does: larger, or a NaN (the first maximum wins) */
#define NC_POOL_TAKE(v, m) ((v) > (m) || (v) != (v))

#define NC_LEVELS_BODY "winograd_body.h" /* compiled once per SIMD level */
#define NC_F32
#include "real.h"
#include "simd_levels.h"
#include "real_undef.h"

#define NC_F64
#include "real.h"
#include "simd_levels.h"
#include "real_undef.h"
