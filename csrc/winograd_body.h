/* winograd_body.h -- Winograd convolution, written once for REAL = float/double.
 * Included by winograd.c once per SIMD level (simd_levels.h) and once for the entry points; see
 * winograd.c for the formulas, the layout and the threads.
 *
 * Layout: U is (a2, c, f), V is (a2, T, c) and M is (a2, T, f): for each
 * position xi, U[xi], V[xi] and M[xi] are plain row-major matrices, which the
 * GEMM's packed path takes at its best (strided rows of a tile-major layout
 * ran 20% slower, and the direct path half as fast, on 1152 x 32 x 64).
 * Tile t = (b th + ti) tw + tj covers the output rows ti mh .. ti mh + mh - 1
 * and columns tj mw ..; its patch starts at input row ti mh - pt, column
 * tj mw - pl. Transformed position xi = i aw + j. */

#ifdef NC_LEVEL

#include "pool2_body.h"   /* the pair's 2x2 max */

/* v rounded to bfloat16 when bf (float; double never runs the bf16 form) */
#ifdef NC_F32
#define NC_WINO_BF(bf, v) ((bf) ? nc_bf_round(v) : (v))
#else
#define NC_WINO_BF(bf, v) (v)
#endif

/* dst[e] = bf(src[e]) (a plain copy unless bf; double is never rounded) */
NC_VINLINE void NC_NAME(wino_copy)(int bf, REAL *dst, const REAL *src, ptrdiff_t len)
{
#ifdef NC_F32
    if (bf) {
        nc_bf_round_n(src, dst, len, NC_LEVEL == NC_SIMD_AVX512);
        return;
    }
#else
    (void)bf;
#endif
    if (dst != src)   /* short runs (a tile's channels): a vector loop, no call */
#pragma omp simd
        for (ptrdiff_t e = 0; e < len; e++) dst[e] = src[e];
}

/* The rows vectors of len values at v, v + LM, ... rounded to bfloat16 in place when bf (a transform's
 * chunk: one call for the chunk, not one a tile's pixel) */
NC_VINLINE void NC_NAME(wino_round)(int bf, REAL *v, ptrdiff_t rows, ptrdiff_t len)
{
#ifdef NC_F32
    if (bf) nc_bf_round_rows(v, NC_WINO_LEN, v, NC_WINO_LEN, rows, len, NC_LEVEL == NC_SIMD_AVX512);
#else
    (void)bf, (void)v, (void)rows, (void)len;
#endif
}

/* dst[0 .. len) = 0 */
NC_VINLINE void NC_NAME(wino_zero)(REAL *dst, ptrdiff_t len)
{
#pragma omp simd
    for (ptrdiff_t e = 0; e < len; e++) dst[e] = 0;
}

/* out[i] = sum_j S(i, j) in[j] for i < P, j < Q, S(i, j) = S[i Q + j] (S[j P + i] when tr: S^T); in[j]
 * is the vector of len values at in + j is, out[i] the one at out + i os. P, Q, S and tr are constants
 * once inlined: the zero terms vanish and the +-1 ones become additions. */
NC_VINLINE void NC_NAME(wino_apply)(const int P, const int Q, const double *S, const int tr, const REAL *in,
                                    ptrdiff_t is, REAL *out, ptrdiff_t os, ptrdiff_t len)
{
#pragma GCC unroll 8
    for (int i = 0; i < P; i++) {
        REAL *o = out + i * os;
#pragma omp simd
        for (ptrdiff_t e = 0; e < len; e++) {
            REAL acc = 0;
            int first = 1;
#pragma GCC unroll 8
            for (int j = 0; j < Q; j++) {
                const double sij = tr ? S[j * P + i] : S[i * Q + j];
                if (sij != 0) {
                    const REAL t = (REAL)sij * in[j * is + e];
                    acc = first ? t : acc + t;
                    first = 0;
                }
            }
            o[e] = acc;
        }
    }
}

#define LM NC_WINO_LEN
#define AH(mh) ((mh) == 1 ? 1 : (mh) + 2)

/* out[i][j] = sum_{p, q} S(i, p) T(j, q) in[p][q] for i < P1, p < Q1 (along the height) and j < P2,
 * q < Q2 (along the width), S and T as in wino_apply (tr: both transposed); in[p][q] at
 * in + p irs + q ics, out[i][j] at out + i ors + j ocs. A height of 1 (P1 = Q1 = 1, S = 1) is the
 * width's transform alone. tmp: P1 Q2 vectors of LM. */
NC_VINLINE void NC_NAME(wino_2d)(const int P1, const int Q1, const double *S, const int P2, const int Q2,
                                 const double *T, const int tr, const REAL *in, ptrdiff_t irs, ptrdiff_t ics,
                                 REAL *out, ptrdiff_t ors, ptrdiff_t ocs, ptrdiff_t len, REAL *tmp)
{
    if (P1 == 1 && Q1 == 1) {
        NC_NAME(wino_apply)(P2, Q2, T, tr, in, ics, out, ocs, len);
        return;
    }
    for (int q = 0; q < Q2; q++)   /* tmp[i][q] = sum_p S(i, p) in[p][q] */
        NC_NAME(wino_apply)(P1, Q1, S, tr, in + q * ics, irs, tmp + q * LM, Q2 * LM, len);
    for (int i = 0; i < P1; i++)   /* out[i][j] = sum_q T(j, q) tmp[i][q] */
        NC_NAME(wino_apply)(P2, Q2, T, tr, tmp + i * Q2 * LM, LM, out + i * ors, ocs, len);
}

/* v[i aw + j] = (B^T d B)[i][j], d[p][q] at d + p rs + q cs, v[xi] at v + xi vs. */
NC_VINLINE void NC_NAME(wino_in_tile)(const int mh, const int mw, const REAL *d, ptrdiff_t rs, ptrdiff_t cs, REAL *v,
                                      ptrdiff_t vs, ptrdiff_t len, REAL *tmp)
{
    const int ah = AH(mh), aw = mw + 2;
    NC_NAME(wino_2d)(ah, ah, nc_wino_bt(mh), aw, aw, nc_wino_bt(mw), 0, d, rs, cs, v, aw * vs, vs, len, tmp);
}

/* The adjoint: out[p aw + q] = (B dV B^T)[p][q], dV[xi] at v + xi vs, out[xi] at out + xi os. */
NC_VINLINE void NC_NAME(wino_in_tile_t)(const int mh, const int mw, const REAL *v, ptrdiff_t vs, REAL *out,
                                        ptrdiff_t os, ptrdiff_t len, REAL *tmp)
{
    const int ah = AH(mh), aw = mw + 2;
    NC_NAME(wino_2d)(ah, ah, nc_wino_bt(mh), aw, aw, nc_wino_bt(mw), 1, v, aw * vs, vs, out, aw * os, os, len, tmp);
}

/* Y[i][j] = (A^T M A)[i][j] (i < mh, j < mw, at Y + (i mw + j) LM), M[xi] at M + xi ms. */
NC_VINLINE void NC_NAME(wino_out_tile)(const int mh, const int mw, const REAL *M, ptrdiff_t ms, REAL *Y, ptrdiff_t len,
                                       REAL *tmp)
{
    const int ah = AH(mh), aw = mw + 2;
    NC_NAME(wino_2d)(mh, ah, nc_wino_at(mh), mw, aw, nc_wino_at(mw), 0, M, aw * ms, ms, Y, mw * LM, LM, len, tmp);
}

/* The adjoint: dm[p aw + q] = (A dY A^T)[p][q], dY[i][j] at dY + (i mw + j) LM, dm[xi] at dm + xi ms. */
NC_VINLINE void NC_NAME(wino_out_tile_t)(const int mh, const int mw, const REAL *dY, REAL *dm, ptrdiff_t ms,
                                         ptrdiff_t len, REAL *tmp)
{
    const int ah = AH(mh), aw = mw + 2;
    NC_NAME(wino_2d)(ah, mh, nc_wino_at(mh), aw, mw, nc_wino_at(mw), 1, dY, mw * LM, LM, dm, aw * ms, ms, len, tmp);
}

/* ---- the phases, each over a range of tiles (or images of dx) ---- */

/* Fetch the a2 vectors of len values at p + xi ps ahead of use (rw: to be written). A tile reads or
 * writes one vector in each of the a2 planes of V or M: more streams than the hardware prefetchers
 * follow (without this the transforms stalled on memory, measured at 3-4 GB/s). */
NC_VINLINE void NC_NAME(wino_prefetch)(const int a2, const REAL *p, ptrdiff_t ps, ptrdiff_t len)
{
    for (int xi = 0; xi < a2; xi++) {
        const REAL *q = p + xi * ps;
        for (ptrdiff_t e = 0; e < len; e += 64 / (ptrdiff_t)sizeof(REAL)) NC_WINO_PREFETCH(q + e);
        NC_WINO_PREFETCH(q + len - 1);
    }
}
#ifndef NC_WINO_AHEAD
#define NC_WINO_AHEAD 2   /* tiles */
#endif

/* The workers below run over chunks of consecutive tiles: the transforms are elementwise across
 * (tile, channel), and in each plane of V or M the channels of consecutive tiles are contiguous, so
 * a chunk is one vector of up to LM values per plane (whole tiles when c <= LM, else one tile and
 * a block of its channels). Tile t of a chunk holds positions it len .. of each vector. */
#define NC_WINO_CHUNK(K, tb, kl) const ptrdiff_t kl = (K) <= LM ? (K) : LM, tb = (K) <= LM ? LM / (K) : 1
/* the tiles of the chunk after the one of nt tiles at tt, in a range ending at t1 (tt + nt < t1) */
#define NC_WINO_NEXT(tt, nt, t1) ((t1) - (tt) - (nt) < (nt) ? (t1) - (tt) - (nt) : (nt))

/* V for the tiles t0 <= t < t1 */
NC_VINLINE void NC_NAME(wino_input_k)(const int mh, const int mw, const nc_wino *s, const nc_conv_geom *g,
                                      const REAL *x, REAL *V, ptrdiff_t t0, ptrdiff_t t1)
{
    const int ah = AH(mh), aw = mw + 2;
    const ptrdiff_t H = g->h, W = g->w, C = s->c;
    NC_WINO_CHUNK(C, tb, kl);
    REAL d[36 * LM], tmp[36 * LM];
    for (ptrdiff_t tt = t0; tt < t1; tt += tb) {
        const ptrdiff_t nt = t1 - tt < tb ? t1 - tt : tb;
        for (ptrdiff_t k0 = 0; k0 < C; k0 += kl) {
            const ptrdiff_t len = C - k0 < kl ? C - k0 : kl;
            REAL *v = V + (tt - s->t0) * s->vts + k0;
            if (tt + nt < t1)   /* the next chunk of this call (never past the array) */
                NC_NAME(wino_prefetch)(ah * aw, v + nt * s->vts, s->vps, NC_WINO_NEXT(tt, nt, t1) * len);
            for (ptrdiff_t it = 0; it < nt; it++) {   /* the patches, zero outside the image */
                const ptrdiff_t t = tt + it, b = t / (s->th * s->tw), ti = t / s->tw % s->th, tj = t % s->tw;
                const ptrdiff_t r0 = ti * mh - g->pt, c0 = tj * mw - g->pl;
                const REAL *xb = x + b * H * W * C + k0;
                for (int p = 0; p < ah; p++)
                    for (int q = 0; q < aw; q++) {
                        const ptrdiff_t ih = r0 + p, iw = c0 + q;
                        REAL *dp = d + (p * aw + q) * LM + it * len;
                        if (ih >= 0 && ih < H && iw >= 0 && iw < W)
                            NC_NAME(wino_copy)(0, dp, xb + (ih * W + iw) * C, len);
                        else
                            NC_NAME(wino_zero)(dp, len);
                    }
            }
            NC_NAME(wino_round)(s->bf, d, ah * aw, nt * len);   /* x rounded as read (the zeros stay) */
            NC_NAME(wino_in_tile)(mh, mw, d, aw * LM, LM, v, s->vps, nt * len, tmp);
        }
    }
}

/* dst = act(src + bias) of one output pixel's len values (bias nullable), rounded when bf */
NC_VINLINE void NC_NAME(wino_out_px)(int act, REAL alpha, int bf, const REAL *restrict src, const REAL *restrict bb,
                                     REAL *restrict dst, ptrdiff_t len)
{
    if (act == NC_ACT_RELU) {
#pragma omp simd
        for (ptrdiff_t e = 0; e < len; e++) {
            const REAL z = src[e] + (bb ? bb[e] : (REAL)0);
            dst[e] = NC_WINO_BF(bf, z > 0 ? z : (REAL)0);   /* NaN -> 0, as nc_act_forward's relu */
        }
    } else {
#pragma omp simd
        for (ptrdiff_t e = 0; e < len; e++) dst[e] = src[e] + (bb ? bb[e] : (REAL)0);
        if (act != NC_ACT_LINEAR) NC_NAME(act_forward)(act, alpha, dst, dst, len);
        if (bf) NC_NAME(wino_copy)(bf, dst, dst, len);
    }
}

/* The pair (s->pool_y): the pooled pixels whose 2x2 window lies in tile (b, ti, tj) (mh, mw even: a
 * tile holds whole windows; those of a dropped odd row or column are skipped) from the tile's
 * outputs Y (pixel (i, j) at Y + (i mw + j) LM), each pixel's values made as wino_out_px makes them
 * (into q), then pooled as nc_maxpool_forward pools (row-major taps, the first maximum wins). */
NC_VINLINE void NC_NAME(wino_out_pool)(const int mh, const int mw, const nc_wino *s, const nc_conv_geom *g,
                                       const REAL *Y, const REAL *bb, int act, REAL alpha, ptrdiff_t b, ptrdiff_t ti,
                                       ptrdiff_t tj, ptrdiff_t k0, ptrdiff_t len, REAL *q)
{
    const ptrdiff_t F = s->f, PH = g->oh / 2, PW = g->ow / 2;
    for (ptrdiff_t pi = 0; pi < mh / 2 && ti * (mh / 2) + pi < PH; pi++)
        for (ptrdiff_t pj = 0; pj < mw / 2 && tj * (mw / 2) + pj < PW; pj++) {
            for (int w = 0; w < 4; w++)
                NC_NAME(wino_out_px)(act, alpha, s->bf, Y + ((2 * pi + w / 2) * mw + 2 * pj + w % 2) * LM, bb,
                                     q + w * LM, len);
            const ptrdiff_t off = ((b * PH + ti * (mh / 2) + pi) * PW + tj * (mw / 2) + pj) * F + k0;
            NC_NAME(pool2_max)(q, q + LM, q + 2 * LM, q + 3 * LM, (REAL *)s->pool_y + off,
                               s->pool_ix ? s->pool_ix + off : NULL, len);
        }
}

/* y = act(A^T M A + bias) for the tiles t0 <= t < t1, the pixels inside the output (the pair: pooled,
 * `wino_out_pool`, y not written) */
NC_VINLINE void NC_NAME(wino_output_k)(const int mh, const int mw, const nc_wino *s, const nc_conv_geom *g,
                                       const REAL *M, const REAL *bias, int act, REAL alpha, REAL *y, ptrdiff_t t0,
                                       ptrdiff_t t1)
{
    const ptrdiff_t F = s->f, OH = g->oh, OW = g->ow;
    const int bf = s->bf;
    NC_WINO_CHUNK(F, tb, kl);
    REAL Y[16 * LM], tmp[24 * LM], q[4 * LM];
    for (ptrdiff_t tt = t0; tt < t1; tt += tb) {
        const ptrdiff_t nt = t1 - tt < tb ? t1 - tt : tb;
        for (ptrdiff_t k0 = 0; k0 < F; k0 += kl) {
            const ptrdiff_t len = F - k0 < kl ? F - k0 : kl;
            const REAL *mt = M + (tt - s->t0) * s->mts + k0;
            if (tt + nt < t1)
                NC_NAME(wino_prefetch)(AH(mh) * (mw + 2), mt + nt * s->mts, s->mps, NC_WINO_NEXT(tt, nt, t1) * len);
            NC_NAME(wino_out_tile)(mh, mw, mt, s->mps, Y, nt * len, tmp);
            const REAL *bb = bias ? bias + k0 : NULL;
            for (ptrdiff_t it = 0; it < nt; it++) {
                const ptrdiff_t t = tt + it, b = t / (s->th * s->tw), ti = t / s->tw % s->th, tj = t % s->tw;
                if (s->pool_y) {
                    NC_NAME(wino_out_pool)(mh, mw, s, g, Y + it * len, bb, act, alpha, b, ti, tj, k0, len, q);
                    continue;
                }
                const ptrdiff_t ni = OH - ti * mh < mh ? OH - ti * mh : mh, nj = OW - tj * mw < mw ? OW - tj * mw : mw;
                for (ptrdiff_t i = 0; i < ni; i++)
                    for (ptrdiff_t j = 0; j < nj; j++)
                        NC_NAME(wino_out_px)(act, alpha, bf, Y + (i * mw + j) * LM + it * len, bb,
                                             y + ((b * OH + ti * mh + i) * OW + tj * mw + j) * F + k0, len);
            }
        }
    }
}

/* dM = A delta A^T for the tiles t0 <= t < t1 (delta is 0 outside the output). The pair (s->pool_dy):
 * delta made from the pooled y, argmax and gradient as nc_conv_pool_backward_weights makes it (0 + dy at
 * the winner where relu lets it through, 0 elsewhere and in a dropped odd row or column), then read as
 * a whole delta is read (rounded when bf). */
NC_VINLINE void NC_NAME(wino_output_grad_k)(const int mh, const int mw, const nc_wino *s, const nc_conv_geom *g,
                                            const REAL *delta, REAL *M, ptrdiff_t t0, ptrdiff_t t1)
{
    const ptrdiff_t F = s->f, OH = g->oh, OW = g->ow, PH = OH / 2, PW = OW / 2;
    const int relu = s->pool_act == NC_ACT_RELU;
    NC_WINO_CHUNK(F, tb, kl);
    REAL dY[16 * LM], tmp[24 * LM];
    for (ptrdiff_t tt = t0; tt < t1; tt += tb) {
        const ptrdiff_t nt = t1 - tt < tb ? t1 - tt : tb;
        for (ptrdiff_t k0 = 0; k0 < F; k0 += kl) {
            const ptrdiff_t len = F - k0 < kl ? F - k0 : kl;
            REAL *mt = M + tt * s->mts + k0;
            if (tt + nt < t1)   /* the next chunk of this call (never past the array) */
                NC_NAME(wino_prefetch)(AH(mh) * (mw + 2), mt + nt * s->mts, s->mps, NC_WINO_NEXT(tt, nt, t1) * len);
            for (ptrdiff_t it = 0; it < nt; it++) {
                const ptrdiff_t t = tt + it, b = t / (s->th * s->tw), ti = t / s->tw % s->th, tj = t % s->tw;
                const ptrdiff_t ni = OH - ti * mh < mh ? OH - ti * mh : mh, nj = OW - tj * mw < mw ? OW - tj * mw : mw;
                for (ptrdiff_t i = 0; i < mh; i++)
                    for (ptrdiff_t j = 0; j < mw; j++) {
                        REAL *restrict dp = dY + (i * mw + j) * LM + it * len;
                        const ptrdiff_t oi = ti * mh + i, oj = tj * mw + j;
                        if (!(i < ni && j < nj)) {
                            NC_NAME(wino_zero)(dp, len);
                        } else if (!s->pool_dy) {
                            NC_NAME(wino_copy)(0, dp, delta + ((b * OH + oi) * OW + oj) * F + k0, len);
                        } else if (oi >= 2 * PH || oj >= 2 * PW) {
                            NC_NAME(wino_zero)(dp, len);
                        } else {
                            const ptrdiff_t off = ((b * PH + oi / 2) * PW + oj / 2) * F + k0;
                            const REAL *restrict dv = (const REAL *)s->pool_dy + off;
                            const REAL *restrict yv = (const REAL *)s->pool_y + off;
                            const uint8_t *restrict iv = s->pool_ix + off;
                            const uint8_t w = (uint8_t)((oi & 1) * 2 + (oj & 1));
                            if (relu) {
#pragma omp simd
                                for (ptrdiff_t e = 0; e < len; e++)
                                    dp[e] = iv[e] == w && yv[e] > 0 ? (REAL)0 + dv[e] : (REAL)0;
                            } else {
#pragma omp simd
                                for (ptrdiff_t e = 0; e < len; e++) dp[e] = iv[e] == w ? (REAL)0 + dv[e] : (REAL)0;
                            }
                        }
                    }
            }
            NC_NAME(wino_round)(s->bf, dY, mh * mw, nt * len);   /* delta rounded as read (the zeros stay) */
            NC_NAME(wino_out_tile_t)(mh, mw, dY, mt, s->mps, nt * len, tmp);
        }
    }
}

/* dx of the images b0 <= b < b1: the patch gradient B dV_t B^T of each of their tiles added where the
 * patch lies inside the image, tiles in order (a pixel sums its terms, from at most 2 x 2 tiles, in
 * one fixed order; images are disjoint, so threads never share a pixel) */
NC_VINLINE void NC_NAME(wino_input_grad_k)(const int mh, const int mw, const nc_wino *s, const nc_conv_geom *g,
                                           const REAL *V, REAL *dx, ptrdiff_t b0, ptrdiff_t b1)
{
    const int ah = AH(mh), aw = mw + 2;
    const ptrdiff_t H = g->h, W = g->w, C = s->c, per = s->th * s->tw;
    NC_WINO_CHUNK(C, tb, kl);
    REAL dd[36 * LM], tmp[36 * LM];
    for (ptrdiff_t b = b0; b < b1; b++) {
        REAL *xb = dx + b * H * W * C;
        memset(xb, 0, (size_t)(H * W * C) * sizeof(REAL));
        for (ptrdiff_t tt = b * per; tt < (b + 1) * per; tt += tb) {
            const ptrdiff_t nt = (b + 1) * per - tt < tb ? (b + 1) * per - tt : tb;
            for (ptrdiff_t k0 = 0; k0 < C; k0 += kl) {
                const ptrdiff_t len = C - k0 < kl ? C - k0 : kl;
                const REAL *v = V + (tt - s->t0) * s->vts + k0;
                if (tt + nt < b1 * per)   /* the array holds the tiles of images b0 .. b1 - 1 */
                    NC_NAME(wino_prefetch)(ah * aw, v + nt * s->vts, s->vps, NC_WINO_NEXT(tt, nt, b1 * per) * len);
                NC_NAME(wino_in_tile_t)(mh, mw, v, s->vps, dd, LM, nt * len, tmp);
                for (ptrdiff_t it = 0; it < nt; it++) {
                    const ptrdiff_t t = tt + it, ti = t / s->tw % s->th, tj = t % s->tw;
                    const ptrdiff_t r0 = ti * mh - g->pt, c0 = tj * mw - g->pl;
                    for (int p = 0; p < ah; p++) {
                        if (r0 + p < 0 || r0 + p >= H) continue;
                        for (int q = 0; q < aw; q++) {
                            if (c0 + q < 0 || c0 + q >= W) continue;
                            REAL *d = xb + ((r0 + p) * W + c0 + q) * C + k0;
                            const REAL *src = dd + (p * aw + q) * LM + it * len;
#pragma omp simd
                            for (ptrdiff_t e = 0; e < len; e++) d[e] += src[e];
                        }
                    }
                }
            }
        }
    }
}

#define NC_WINO_SWITCH(s, CALL)                        \
    switch ((int)((s)->mh * 8 + (s)->mw)) {            \
    case 2 * 8 + 2: CALL(2, 2); break;                 \
    case 4 * 8 + 4: CALL(4, 4); break;                 \
    case 1 * 8 + 2: CALL(1, 2); break;                 \
    case 1 * 8 + 4: CALL(1, 4); break;                 \
    default: break;                                    \
    }

static void NC_NAME(wino_input)(const nc_wino *s, const nc_conv_geom *g, const REAL *x, REAL *V,
                                          ptrdiff_t t0, ptrdiff_t t1)
{
#define CALL(mh, mw) NC_NAME(wino_input_k)(mh, mw, s, g, x, V, t0, t1)
    NC_WINO_SWITCH(s, CALL)
#undef CALL
}

static void NC_NAME(wino_output)(const nc_wino *s, const nc_conv_geom *g, const REAL *M, const REAL *bias,
                                           int act, REAL alpha, REAL *y, ptrdiff_t t0, ptrdiff_t t1)
{
#define CALL(mh, mw) NC_NAME(wino_output_k)(mh, mw, s, g, M, bias, act, alpha, y, t0, t1)
    NC_WINO_SWITCH(s, CALL)
#undef CALL
}

static void NC_NAME(wino_output_grad)(const nc_wino *s, const nc_conv_geom *g, const REAL *delta, REAL *M,
                                                ptrdiff_t t0, ptrdiff_t t1)
{
#define CALL(mh, mw) NC_NAME(wino_output_grad_k)(mh, mw, s, g, delta, M, t0, t1)
    NC_WINO_SWITCH(s, CALL)
#undef CALL
}

static void NC_NAME(wino_input_grad)(const nc_wino *s, const nc_conv_geom *g, const REAL *V, REAL *dx,
                                               ptrdiff_t b0, ptrdiff_t b1)
{
#define CALL(mh, mw) NC_NAME(wino_input_grad_k)(mh, mw, s, g, V, dx, b0, b1)
    NC_WINO_SWITCH(s, CALL)
#undef CALL
}

/* out[a][b] = sum_{p, q} S(a, p) T(b, q) in[p][q] for channel c and every filter, in double and rounded
 * once: the filter transform U = G g G^T (S = G of the height, T = G of the width) and, with tr, its
 * adjoint dK = G^T dU G (S(a, p) = G[p][a], T(b, q) = G[q][b]). in[p][q] (p < P, q < Q) of channel c
 * at in + ((p Q + q) C + c) F, out[a][b] at out + ((a B + b) C + c) F. bf (the bfloat16 form): the
 * kernel read rounded to bfloat16 (forward, !tr), dK written rounded (tr). */
static void NC_NAME(wino_filter_chan)(int tr, int bf, const double *S, const double *Tm, ptrdiff_t A, ptrdiff_t P,
                                      ptrdiff_t B, ptrdiff_t Q, const REAL *in, REAL *out, ptrdiff_t C, ptrdiff_t F,
                                      ptrdiff_t c)
{
    const int bf_in = bf && !tr, bf_out = bf && tr;
    (void)bf_in, (void)bf_out;   /* double: never rounded */
    enum { FB = 64 };
    double tmp[6][6][FB];
    REAL rin[9 * FB];   /* bf_in (P, Q <= 3): the block's kernel values rounded once (each is read A times) */
    for (ptrdiff_t k0 = 0; k0 < F; k0 += FB) {
        const ptrdiff_t len = F - k0 < FB ? F - k0 : FB;
        const REAL *src = in + c * F + k0;
        ptrdiff_t ps = Q * C * F, qs = C * F;   /* in[p][q][e] at src + p ps + q qs + e */
        if (bf_in && P * Q <= 9) {
            for (ptrdiff_t p = 0; p < P; p++)
                for (ptrdiff_t q = 0; q < Q; q++)
                    for (ptrdiff_t e = 0; e < len; e++)
                        rin[(p * Q + q) * FB + e] = NC_WINO_BF(1, src[p * ps + q * qs + e]);
            src = rin, ps = Q * FB, qs = FB;
        }
        const int bf_read = bf_in && src != rin;   /* never: P, Q <= 3 when reading the kernel */
        (void)bf_read;                            /* double: never rounded */
        for (ptrdiff_t a = 0; a < A; a++)   /* tmp[a][q] = sum_p S(a, p) in[p][q] */
            for (ptrdiff_t q = 0; q < Q; q++)
                for (ptrdiff_t e = 0; e < len; e++) {
                    double acc = 0;
                    for (ptrdiff_t p = 0; p < P; p++)
                        acc += (tr ? S[p * A + a] : S[a * P + p]) * (double)NC_WINO_BF(bf_read, src[p * ps + q * qs + e]);
                    tmp[a][q][e] = acc;
                }
        for (ptrdiff_t a = 0; a < A; a++)   /* out[a][b] = sum_q T(b, q) tmp[a][q] */
            for (ptrdiff_t b = 0; b < B; b++) {
                REAL *o = out + ((a * B + b) * C + c) * F + k0;
                for (ptrdiff_t e = 0; e < len; e++) {
                    double acc = 0;
                    for (ptrdiff_t q = 0; q < Q; q++) acc += (tr ? Tm[q * B + b] : Tm[b * Q + q]) * tmp[a][q][e];
                    o[e] = NC_WINO_BF(bf_out, (REAL)acc);
                }
            }
    }
}

#undef NC_WINO_SWITCH
#undef NC_WINO_BF
#undef AH
#undef LM
#undef NC_WINO_CHUNK
#undef NC_WINO_NEXT

/* ---- the passes: every phase over fixed items, by the team or serially ---- */

/* The forward's tiles a block: NC_WINO_BLOCK rounded up to whole register tiles (MR rows) of the GEMM */
static ptrdiff_t NC_NAME(wino_block)(void)
{
    int mr, nr;
    NC_PUBNAME(gemm_micro_tile)(&mr, &nr);
    return (NC_WINO_BLOCK + mr - 1) / mr * mr;
}

/* The forward, the tiles a block of wino_block() at a time: each block transformed (V: into the kept V
 * when V is given, which backward reads; else into the thread's work block), multiplied (M, by
 * gemm_panels over the U[xi] packed once) and finished into y while the block's V and M are in L2: M
 * never passes through memory, nor V at inference. vm: the thread's work block, a2 wino_block()
 * (f + (V ? 0 : c)) values. The same sums in the same order for any thread count. */
static void NC_NAME(wino_forward_team)(const nc_wino *s, const nc_conv_geom *g, const REAL *x, const REAL *kernel,
                                       const REAL *bias, int act, REAL alpha, REAL *U, const REAL *Upack,
                                       ptrdiff_t upsz, ptrdiff_t ntot, REAL *V, REAL *vm, REAL *y, int nt)
{
    const ptrdiff_t a2 = s->a2, C = s->c, F = s->f, T = s->T, TB = NC_NAME(wino_block)();
    const double *gh = nc_wino_g(s->mh), *gw = nc_wino_g(s->mw);
    NC_WINO_FOR(nt, c, C, NC_NAME(wino_filter_chan)(0, s->bf, gh, gw, s->ah, g->kh, s->aw, 3, kernel, U, C, F, c));
    NC_WINO_FOR(nt, xi, a2, NC_PUBNAME(gemm_pack_b)(0, C, F, U + xi * C * F, F, (REAL *)Upack + xi * upsz, 0));
    nc_wino sb = *s;                       /* a block's layout: V[xi, t, c], M[xi, t, f] within vm, from tile sb.t0 */
    sb.vps = TB * C, sb.mps = TB * F;
    const nc_wino *sv = V ? s : &sb;       /* where V lies: the kept array, or vm */
    REAL *Vb = V ? V : vm, *Mb = V ? vm : vm + a2 * TB * C;
    NC_WINO_FOR(nt, i, (T + TB - 1) / TB, {
        const ptrdiff_t t0 = i * TB, t1 = T - t0 < TB ? T : t0 + TB;
        sb.t0 = t0;                        /* the block's arrays start at its first tile */
        NC_NAME(wino_input)(sv, g, x, Vb, t0, t1);
        for (ptrdiff_t xi = 0; xi < a2; xi++)
            NC_PUBNAME(gemm_panels)(t1 - t0, F, C, Vb + xi * sv->vps + (t0 - sv->t0) * sv->vts, sv->vts,
                                    Upack + xi * upsz + NC_WINO_PACK_HEAD, ntot, 0, Mb + xi * sb.mps, sb.mts, NULL,
                                    NC_ACT_LINEAR, 0);
        NC_NAME(wino_output)(&sb, g, Mb, bias, act, alpha, y, t0, t1);
    });
}

/* Backward, a few whole images at a time (NC_WINO_BACK tiles or more): their dM (into M) and, for dx,
 * dV = dM U^T (by gemm_panels over the U[xi]^T packed once, dM read in place while in L2) into the
 * thread's block dvb (a2 wino_back_tiles(s) c values), then their patches summed into dx; after all
 * images dU = V^T dM per position (GEMMs over all tiles) and dkernel. Images are disjoint items: the
 * same bits for any thread count. */
static void NC_NAME(wino_backward_team)(const nc_wino *s, const nc_conv_geom *g, const REAL *delta, const REAL *U,
                                        const REAL *UTpack, ptrdiff_t upsz, ptrdiff_t ntot, const REAL *V, REAL *M,
                                        REAL *dU, REAL *dkernel, REAL *dx, REAL *dvb, int nt)
{
    const ptrdiff_t a2 = s->a2, C = s->c, F = s->f, T = s->T;
    const ptrdiff_t ncb = (C + NC_WINO_CHANS - 1) / NC_WINO_CHANS;
    const ptrdiff_t per = s->th * s->tw, ib = (NC_WINO_BACK + per - 1) / per;   /* images an item */
    if (dx) NC_WINO_FOR(nt, xi, a2, NC_PUBNAME(gemm_pack_b)(1, F, C, U + xi * C * F, F, (REAL *)UTpack + xi * upsz, 0));
    nc_wino sb = *s;                       /* dV of an item's tiles: dV[xi, t, c] within dvb, from tile sb.t0 */
    sb.vps = ib * per * C;
    NC_WINO_FOR(nt, i, (g->n + ib - 1) / ib, {
        const ptrdiff_t b0 = i * ib, b1 = g->n - b0 < ib ? g->n : b0 + ib, t0 = b0 * per, t1 = b1 * per;
        NC_NAME(wino_output_grad)(s, g, delta, M, t0, t1);
        if (dx) {
            for (ptrdiff_t xi = 0; xi < a2; xi++)   /* dV[t0 .., xi] = dM[t0 .., xi] U[xi]^T */
                NC_PUBNAME(gemm_panels)(t1 - t0, C, F, M + xi * s->mps + t0 * s->mts, s->mts,
                                        UTpack + xi * upsz + NC_WINO_PACK_HEAD, ntot, 0, dvb + xi * sb.vps, sb.vts,
                                        NULL, NC_ACT_LINEAR, 0);
            sb.t0 = t0;
            NC_NAME(wino_input_grad)(&sb, g, dvb, dx, b0, b1);
        }
    });
    NC_WINO_FOR(nt, i, a2 * ncb, {   /* dU[xi][c0 ..] = V[:, xi, c0 ..]^T dM[:, xi], both read in place */
        const ptrdiff_t xi = i % a2, c0 = i / a2 * NC_WINO_CHANS;
        const ptrdiff_t cn = C - c0 < NC_WINO_CHANS ? C - c0 : NC_WINO_CHANS;
        NC_PUBNAME(gemm_tn)(cn, F, T, V + xi * s->vps + c0, s->vts, M + xi * s->mps, s->mts, dU + (xi * C + c0) * F,
                            F);
    });
    const double *gh = nc_wino_g(s->mh), *gw = nc_wino_g(s->mw);
    NC_WINO_FOR(nt, c, C, NC_NAME(wino_filter_chan)(1, s->bf, gh, gw, g->kh, s->ah, 3, s->aw, dU, dkernel, C, F, c));
}

/* packed: a2 packings of pack_size(k, n) values, zeroed (gemm_pack_b reads their heads) */
static REAL *NC_NAME(wino_packs)(ptrdiff_t a2, ptrdiff_t k, ptrdiff_t n, ptrdiff_t *upsz, ptrdiff_t *ntot)
{
    int mr, nr;
    NC_PUBNAME(gemm_micro_tile)(&mr, &nr);
    *upsz = NC_PUBNAME(gemm_pack_size)(k, n), *ntot = (n + nr - 1) / nr * nr;
    return (REAL *)calloc((size_t)(a2 * *upsz), sizeof(REAL));
}

/* wino_forward, or (yp not NULL) the pair's: y pooled into yp, ix in the output transform, never written */
static int NC_NAME(wino_forward_pool)(const nc_conv_geom *g, int m, int bf16, ptrdiff_t f, const REAL *x,
                                      const REAL *kernel, const REAL *bias, int act, REAL act_alpha, REAL *U, REAL *V,
                                      REAL *y, REAL *yp, uint8_t *ix, int nthreads)
{
    nc_wino s;
    nc_wino_init(&s, g, m, bf16, f);
    s.pool_y = yp, s.pool_ix = ix;
    int nt = nc_team_size(nthreads, 2.0 * (double)s.T * (double)(s.a2 * s.c) * (double)f);
    ptrdiff_t upsz, ntot;                   /* U packed per position, a work block per thread */
    REAL *Upack = NC_NAME(wino_packs)(s.a2, s.c, f, &upsz, &ntot);
    if (!Upack) return -1;
    const size_t vmsz = (size_t)(s.a2 * NC_NAME(wino_block)() * (f + (V ? 0 : s.c))) * sizeof(REAL);
    int failed = 0;
    if (nt <= 1) {
        REAL *vm = (REAL *)malloc(vmsz);
        if (vm) NC_NAME(wino_forward_team)(&s, g, x, kernel, bias, act, act_alpha, U, Upack, upsz, ntot, V, vm, y, 1);
        failed = !vm;
        free(vm);
    } else {
#pragma omp parallel num_threads(nt)
        {
            REAL *vm = (REAL *)malloc(vmsz);
            int bad = !vm;
#pragma omp barrier
#pragma omp atomic update
            failed |= bad;   /* every thread sees whether any failed, then all skip or all run the team */
#pragma omp barrier
            if (!failed) NC_NAME(wino_forward_team)(&s, g, x, kernel, bias, act, act_alpha, U, Upack, upsz, ntot, V,
                                                    vm, y, nt);
            free(vm);
        }
    }
    free(Upack);
    return failed ? -1 : 0;
}

int NC_NAME(wino_forward)(const nc_conv_geom *g, int m, int bf16, ptrdiff_t f, const REAL *x, const REAL *kernel,
                          const REAL *bias, int act, REAL act_alpha, REAL *U, REAL *V, REAL *y, int nthreads)
{
    return NC_NAME(wino_forward_pool)(g, m, bf16, f, x, kernel, bias, act, act_alpha, U, V, y, NULL, NULL, nthreads);
}

int NC_NAME(wino_pool_forward)(const nc_conv_geom *g, int m, int bf16, ptrdiff_t f, const REAL *x,
                               const REAL *kernel, const REAL *bias, int act, REAL act_alpha, REAL *U, REAL *V,
                               REAL *yp, uint8_t *ix, int nthreads)
{
    return NC_NAME(wino_forward_pool)(g, m, bf16, f, x, kernel, bias, act, act_alpha, U, V, NULL, yp, ix, nthreads);
}

/* wino_backward, or (dyp not NULL) the pair's: delta made from yp, ix, dyp in the output-gradient transform */
static int NC_NAME(wino_backward_pool)(const nc_conv_geom *g, int m, int bf16, ptrdiff_t f, const REAL *delta,
                                       int act, const REAL *yp, const uint8_t *ix, const REAL *dyp, const REAL *U,
                                       REAL *V, REAL *M, REAL *dU, REAL *dkernel, REAL *dx, int nthreads)
{
    nc_wino s;
    nc_wino_init(&s, g, m, bf16, f);
    s.pool_y = (void *)yp, s.pool_ix = (uint8_t *)ix, s.pool_dy = dyp, s.pool_act = act;
    int nt = nc_team_size(nthreads, 4.0 * (double)s.T * (double)(s.a2 * s.c) * (double)f);
    ptrdiff_t upsz = 0, ntot = 0;           /* for dx: U[xi]^T packed per position, a dV block per thread */
    REAL *UTpack = dx ? NC_NAME(wino_packs)(s.a2, f, s.c, &upsz, &ntot) : NULL;
    if (dx && !UTpack) return -1;
    const ptrdiff_t per = s.th * s.tw, ib = (NC_WINO_BACK + per - 1) / per;
    const size_t dvsz = dx ? (size_t)(s.a2 * ib * per * s.c) * sizeof(REAL) : 0;
    int failed = 0;
    if (nt <= 1) {
        REAL *dvb = dx ? (REAL *)malloc(dvsz) : NULL;
        failed = dx && !dvb;
        if (!failed) NC_NAME(wino_backward_team)(&s, g, delta, U, UTpack, upsz, ntot, V, M, dU, dkernel, dx, dvb, 1);
        free(dvb);
    } else {
#pragma omp parallel num_threads(nt)
        {
            REAL *dvb = dx ? (REAL *)malloc(dvsz) : NULL;
            int bad = dx && !dvb;
#pragma omp barrier
#pragma omp atomic update
            failed |= bad;   /* every thread sees whether any failed, then all skip or all run the team */
#pragma omp barrier
            if (!failed) NC_NAME(wino_backward_team)(&s, g, delta, U, UTpack, upsz, ntot, V, M, dU, dkernel, dx, dvb,
                                                     nt);
            free(dvb);
        }
    }
    free(UTpack);
    return failed ? -1 : 0;
}

int NC_NAME(wino_backward)(const nc_conv_geom *g, int m, int bf16, ptrdiff_t f, const REAL *delta, const REAL *U,
                           REAL *V, REAL *M, REAL *dU, REAL *dkernel, REAL *dx, int nthreads)
{
    return NC_NAME(wino_backward_pool)(g, m, bf16, f, delta, 0, NULL, NULL, NULL, U, V, M, dU, dkernel, dx, nthreads);
}

int NC_NAME(wino_pool_backward)(const nc_conv_geom *g, int m, int bf16, ptrdiff_t f, int act, const REAL *yp,
                                const uint8_t *ix, const REAL *dyp, const REAL *U, REAL *V, REAL *M, REAL *dU,
                                REAL *dkernel, REAL *dx, int nthreads)
{
    return NC_NAME(wino_backward_pool)(g, m, bf16, f, NULL, act, yp, ix, dyp, U, V, M, dU, dkernel, dx, nthreads);
}

#else /* the entry points: the copies of the level in use */

int NC_NAME(wino_pool_forward)(const nc_conv_geom *g, int m, int bf16, ptrdiff_t f, const REAL *x,
                               const REAL *kernel, const REAL *bias, int act, REAL act_alpha, REAL *U, REAL *V,
                               REAL *yp, uint8_t *ix, int nthreads)
{
    return NC_PICK(wino_pool_forward)(g, m, bf16, f, x, kernel, bias, act, act_alpha, U, V, yp, ix, nthreads);
}

int NC_NAME(wino_pool_backward)(const nc_conv_geom *g, int m, int bf16, ptrdiff_t f, int act, const REAL *yp,
                                const uint8_t *ix, const REAL *dyp, const REAL *U, REAL *V, REAL *M, REAL *dU,
                                REAL *dkernel, REAL *dx, int nthreads)
{
    return NC_PICK(wino_pool_backward)(g, m, bf16, f, act, yp, ix, dyp, U, V, M, dU, dkernel, dx, nthreads);
}

int NC_NAME(wino_forward)(const nc_conv_geom *g, int m, int bf16, ptrdiff_t f, const REAL *x, const REAL *kernel,
                          const REAL *bias, int act, REAL act_alpha, REAL *U, REAL *V, REAL *y, int nthreads)
{
    return NC_PICK(wino_forward)(g, m, bf16, f, x, kernel, bias, act, act_alpha, U, V, y, nthreads);
}

int NC_NAME(wino_backward)(const nc_conv_geom *g, int m, int bf16, ptrdiff_t f, const REAL *delta, const REAL *U,
                           REAL *V, REAL *M, REAL *dU, REAL *dkernel, REAL *dx, int nthreads)
{
    return NC_PICK(wino_backward)(g, m, bf16, f, delta, U, V, M, dU, dkernel, dx, nthreads);
}

#endif /* NC_LEVEL */
