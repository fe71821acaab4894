/* gemm_config.h -- the one blocking table of nc_gemm, per dtype and SIMD level.
 *
 *   MR x NR  register tile of the micro-kernel (NR = NV vectors of VL lanes)
 *   MC x KC  block of op(A) packed per thread (sized for half of L2)
 *   KC x NC  block of op(B) packed per thread (KC x NR micro-panel in L1)
 *
 * Chosen on AMD Zen 4 (32 KiB L1d, 1 MiB L2 per core); see bench/gemm.py.
 * MC is a multiple of MR and NC a multiple of NR. A row reads
 *                     MR  NV  MC   KC   NC                               */
#define NC_GEMM_F32_AVX512  8, 2, 128, 384, 3072
#define NC_GEMM_F64_AVX512  8, 2, 96, 256, 2048
#define NC_GEMM_F32_AVX2    6, 2, 96, 256, 2048
#define NC_GEMM_F64_AVX2    6, 2, 96, 256, 1024
#define NC_GEMM_F32_GENERIC 4, 8, 128, 256, 1024
#define NC_GEMM_F64_GENERIC 4, 4, 128, 256, 1024

/* Below this many multiply-adds (m n k) the driver skips packing op(A) and
 * op(B) (unless B is transposed) and runs the micro-kernel on the operands
 * in place, on one thread, ... */
#define NC_GEMM_DIRECT_WORK (128.0 * 128.0 * 128.0)
/* Below this many multiply-adds one thread does it all: on top of
 * nc_team_size's rule, since waking a team costs tens of microseconds when
 * the other cores are busy. */
#define NC_GEMM_TEAM_WORK (160.0 * 160.0 * 160.0)

/* ... and when op(A) has at most this many MR-row panels and B is not transposed. */
#define NC_GEMM_DIRECT_PANELS 16

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
