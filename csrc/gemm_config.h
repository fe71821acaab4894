/* gemm_config.h -- the one blocking table of nc_gemm, per dtype and SIMD level.
 *
 *   MR x NR  register tile of the micro-kernel (NR = NV vectors of VL lanes;
 *            MR NV accumulators plus NV + 1 registers must fit the register file)
 *   MC x KC  block of op(A) packed per thread (lives in L2)
 *   KC x NC  block of op(B) packed per thread (lives in L3; one KC x NR
 *            micro-panel serves MC / MR micro-kernel calls in a row)
 *
 * Chosen on AMD Zen 4 (32 KiB L1d, 1 MiB L2 per core, 1 zmm FMA per cycle)
 * by timing variants with bench/gemm.py-like loops; MR 12/14, NV 3, KC 256/512
 * and MC 64 were no better for float32. MC is a multiple of MR, NC of NR.
 *                          MR  NV  MC   KC   NC                          */
#define NC_GEMM_F32_AVX512  8, 2, 128, 384, 3072
#define NC_GEMM_F64_AVX512  8, 2, 96, 512, 2048
#define NC_GEMM_F32_AVX2    6, 2, 96, 256, 2048
#define NC_GEMM_F64_AVX2    6, 2, 96, 256, 1024
#define NC_GEMM_F32_GENERIC 4, 8, 128, 256, 1024
#define NC_GEMM_F64_GENERIC 4, 4, 128, 256, 1024

/* The direct path (no packing of op(A), nor of op(B) unless transposed) runs
 * below this many multiply-adds (m n k), and for any size when op(B) is not
 * transposed and op(A) has at most DIRECT_PANELS micro-panels of rows. */
#define NC_GEMM_DIRECT_WORK (128.0 * 128.0 * 128.0)
#define NC_GEMM_DIRECT_PANELS 4

/* ... and for a short k over a narrow B (n <= 2 NR, k <= DIRECT_THIN_K, A not
 * transposed): each element of A then serves few multiply-adds, and packing it
 * cost as much as using it (im2col of a 3x3 conv on one channel, 86528 x 9 x 32:
 * 1.9 ms packed, 0.65 ms direct; with k = 288 packing wins, 7.7 vs 9.0 ms). */
#define NC_GEMM_DIRECT_THIN_K 64

/* A transposed B with at most DOT_ROWS rows of op(A) (at most DOT_ROWS_ALWAYS
 * even when the product is small) takes the dot path: each element of C is
 * a dot product of two contiguous rows, nothing is packed. */
#define NC_GEMM_DOT_ROWS 16
#define NC_GEMM_DOT_ROWS_ALWAYS 4
#define NC_GEMM_PATH_DOT 2

/* One or two rows of op(A) over a B not transposed take the row path. */
#define NC_GEMM_ROWS_PATH_ROWS 2
#define NC_GEMM_PATH_ROWS 3

/* Below this many multiply-adds one thread does it all, on top of
 * nc_team_size's rule: waking a team costs tens of microseconds when the
 * other cores are busy (measured: 2 threads lose up to 160^3 here). */
#define NC_GEMM_TEAM_WORK (160.0 * 160.0 * 160.0)

/* The dense chain (inference through consecutive dense layers) takes the
 * batch this many row panels (MR rows each) at a time through every layer
 * (Zen 4, 784-256-128-10 at batch 1024: 2, 4 and 8 panels within 1%, rows
 * or columns of tiles outer alike). */
#define NC_DENSE_CHAIN_PANELS 8

#define NC_GEMM_MR_(mr, nv, mc, kc, nc) mr
#define NC_GEMM_NV_(mr, nv, mc, kc, nc) nv
#define NC_GEMM_MC_(mr, nv, mc, kc, nc) mc
#define NC_GEMM_KC_(mr, nv, mc, kc, nc) kc
#define NC_GEMM_NC_(mr, nv, mc, kc, nc) nc
#define NC_GEMM_MR(row) NC_GEMM_MR_(row)
#define NC_GEMM_NV(row) NC_GEMM_NV_(row)
#define NC_GEMM_MC(row) NC_GEMM_MC_(row)
#define NC_GEMM_KC(row) NC_GEMM_KC_(row)
#define NC_GEMM_NC(row) NC_GEMM_NC_(row)
