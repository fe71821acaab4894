/* conv.c -- im2col/col2im for convolutions and 2-D pooling, channels_last, float and double.
 *
 * Images are (n, h, w, c) row-major (NHWC). A window (a kernel or a pool) of
 * kh x kw taps with strides (sh, sw) and dilations (dh, dw) starts, for the
 * output pixel (oh, ow), at input row oh sh - pt and column ow sw - pl; taps
 * outside the image are padding (zeros for convolutions, left out for
 * pooling). Channels are innermost everywhere, so every inner loop runs over
 * c contiguous values (or kw c of them when a window row lies inside).
 *
 * Threads: gathers (im2col, pooling forward) split the n oh output rows;
 * col2im (a scatter-add) splits the n images and pooling backward (which
 * gathers each dx row's terms) the n h input rows, so no two threads write
 * one pixel and every pixel sums its terms in one fixed order: results are
 * bit-identical for any thread count. */
#include <stdlib.h>
#include <string.h>
#include "nncore.h"
#include "bf16_round.h" /* nc_bf_round_n: the pair's rounded pooled gradient */

static inline ptrdiff_t nc_imax(ptrdiff_t a, ptrdiff_t b) { return a > b ? a : b; }
static inline ptrdiff_t nc_imin(ptrdiff_t a, ptrdiff_t b) { return a < b ? a : b; }

/* max pooling: the new tap v replaces the running max m when larger, or a NaN (which then stays: NaN > v is
 * false), so the first maximum in window order wins and a NaN propagates (as in PyTorch) */
/* im2col copies the runs of a window of at most this many values with one fixed-size copy (64 bytes) */
#define NC_COL_RUN (64 / (ptrdiff_t)sizeof(REAL))

/* conv_forward's row blocks: this many bytes of cols rows (in L1 while multiplied) */
#define NC_CONV_BLOCK_BYTES 16384

/* conv_backward_weights: row blocks of this many bytes of cols and delta rows (in L2 while used), at least
 * NC_CONV_BACK_MIN_ROWS rows; the blocks fall into NC_CONV_PARTS fixed parts, each summed on its own, the
 * parts then added in order (the work items of the threads) */
#define NC_CONV_BACK_BYTES 65536
#define NC_CONV_BACK_MIN_ROWS 16
#define NC_CONV_PARTS 8

#define NC_POOL_TAKE(v, m) ((v) > (m) || (v) != (v))

#define NC_LEVELS_BODY "conv_body.h" /* compiled once per SIMD level */
#define NC_F32
#include "real.h"
#include "simd_levels.h"
#include "real_undef.h"

#define NC_F64
#include "real.h"
#include "simd_levels.h"
#include "real_undef.h"
