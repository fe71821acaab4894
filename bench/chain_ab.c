/* chain_ab.c -- the float32 predict chain of two gemm.c trees in one process (bench/chain_ab.sh):
 * "base" (a_nc_*) and "var" (v_nc_*) compiled alike from their own csrc, timed in turns (R rounds, the
 * order alternating), thread CPU time, medians and minima; prints base / var and whether the two gave the
 * same bits. Rows: the chain (784-256-128-10, relu, relu, softmax, batch 1024) with its kept packed
 * kernels refreshed in the call and x cold (each call a new 1024-row slice of a 125 MB array, as the
 * bench's serving loop), the chain on one x with nothing refreshed, the refresh alone (the three kernels,
 * nothing changed), and the three layers' products over the whole batch (gemm_panels, bias + activation
 * in the epilogue) and the softmax of the 1024 x 10 output, the parts the chain is made of.
 * Arguments: SIMD level (1 avx2, 2 avx512), rounds, threads (the chain rows only). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "nncore.h"
#include "ab_common.h"

#define DECL(p)                                                                                                \
    ptrdiff_t p##nc_gemm_pack_size_f32(ptrdiff_t k, ptrdiff_t n);                                              \
    int p##nc_gemm_pack_b_f32(int, ptrdiff_t, ptrdiff_t, const float *, ptrdiff_t, float *, int);              \
    int p##nc_dense_chain_f32(ptrdiff_t, int, const ptrdiff_t *, const float *const *, float *const *,         \
                              const float *const *, const int *, const float *, int, const float *, float *, \
                              int);                                                                            \
    void p##nc_gemm_panels_f32(ptrdiff_t, ptrdiff_t, ptrdiff_t, const float *, ptrdiff_t, const float *,       \
                               ptrdiff_t, float, float *, ptrdiff_t, const float *, int, float);
DECL(a_)
DECL(v_)

typedef struct {
    ptrdiff_t (*size)(ptrdiff_t, ptrdiff_t);
    int (*pack)(int, ptrdiff_t, ptrdiff_t, const float *, ptrdiff_t, float *, int);
    int (*chain)(ptrdiff_t, int, const ptrdiff_t *, const float *const *, float *const *, const float *const *,
                 const int *, const float *, int, const float *, float *, int);
    void (*panels)(ptrdiff_t, ptrdiff_t, ptrdiff_t, const float *, ptrdiff_t, const float *, ptrdiff_t, float,
                   float *, ptrdiff_t, const float *, int, float);
} impl;

static const impl IMPL[2] = {
    {a_nc_gemm_pack_size_f32, a_nc_gemm_pack_b_f32, a_nc_dense_chain_f32, a_nc_gemm_panels_f32},
    {v_nc_gemm_pack_size_f32, v_nc_gemm_pack_b_f32, v_nc_dense_chain_f32, v_nc_gemm_panels_f32},
};

#define M 1024
#define NX 40 /* slices of x for the cold rows: 125 MB, far past the L3 */
#define RMAX 101
enum { COLD, HOT, REFRESH, L1, L2, L3, SOFTMAX, NT };
static const char *NAME[NT] = {"chain + refresh, x cold", "chain, x hot",    "refresh alone", "L1 1024x784x256",
                               "L2 1024x256x128",         "L3 1024x128x10", "softmax 1024x10"};
static const int REPS[NT] = {6, 6, 20, 3, 10, 40, 40};

int main(int argc, char **argv)
{
    nc_set_simd_level(argc > 1 ? atoi(argv[1]) : 1);
    int R = argc > 2 ? atoi(argv[2]) : 15, nthreads = argc > 3 ? atoi(argv[3]) : 1;
    if (R < 1 || R > RMAX) R = 15;
    const ptrdiff_t dims[4] = {784, 256, 128, 10};
    const int act[3] = {NC_ACT_RELU, NC_ACT_RELU, -1};
    const float alpha[3] = {0, 0, 0};
    int mr, nr;
    nc_gemm_micro_tile_f32(&mr, &nr);
    float *W[3], *bias[3], *P[2][3];
    for (int l = 0; l < 3; l++) W[l] = rnd(dims[l] * dims[l + 1]), bias[l] = rnd(dims[l + 1]);
    for (int v = 0; v < 2; v++)
        for (int l = 0; l < 3; l++) {
            P[v][l] = aligned_alloc(64, (IMPL[v].size(dims[l], dims[l + 1]) * 4 + 63) / 64 * 64);
            memset(P[v][l], 0, 64);
            IMPL[v].pack(0, dims[l], dims[l + 1], W[l], dims[l + 1], P[v][l], 0);
        }
    float *xs = rnd((size_t)M * 784 * NX), *y[2] = {rnd(M * 10), rnd(M * 10)};
    float *h1[2] = {rnd(M * 256), rnd(M * 256)}, *h2[2] = {rnd(M * 128), rnd(M * 128)};
    float *z[2] = {rnd(M * 10), rnd(M * 10)};
    static double t[2][NT][RMAX];
    int xi = 0;
    for (int r = 0; r < R; r++)
        for (int turn = 0; turn < 2; turn++) {
            int v = r & 1 ? 1 - turn : turn;
            const impl *I = &IMPL[v];
            for (int row = 0; row < NT; row++) {
                double t0 = now();
                for (int q = 0; q < REPS[row]; q++) switch (row) {
                    case COLD:
                        I->chain(M, 3, dims, (const float *const *)W, P[v], (const float *const *)bias, act, alpha, 1,
                                 xs + (size_t)xi * M * 784, y[v], nthreads);
                        xi = (xi + 1) % NX;
                        break;
                    case HOT:
                        I->chain(M, 3, dims, NULL, P[v], (const float *const *)bias, act, alpha, 1, xs, y[v], nthreads);
                        break;
                    case REFRESH:
                        for (int l = 0; l < 3; l++) I->pack(0, dims[l], dims[l + 1], W[l], dims[l + 1], P[v][l], 1);
                        break;
                    case L1:
                        I->panels(M, 256, 784, xs, 784, P[v][0] + 16, 256, 0, h1[v], 256, bias[0], NC_ACT_RELU, 0);
                        break;
                    case L2:
                        I->panels(M, 128, 256, h1[v], 256, P[v][1] + 16, 128, 0, h2[v], 128, bias[1], NC_ACT_RELU, 0);
                        break;
                    case L3:
                        I->panels(M, 10, 128, h2[v], 128, P[v][2] + 16, (10 + nr - 1) / nr * nr, 0, z[v], 10, bias[2],
                                  NC_ACT_LINEAR, 0);
                        break;
                    case SOFTMAX: nc_softmax_forward_f32(z[v], y[v], M, 10); break;
                    }
                t[v][row][r] = (now() - t0) / REPS[row];
            }
        }
    int same = !memcmp(h2[0], h2[1], M * 128 * 4) && !memcmp(z[0], z[1], M * 10 * 4);
    double flops[NT] = {0, 0, 0, 2.0 * M * 784 * 256, 2.0 * M * 256 * 128, 2.0 * M * 128 * 10, 0};
    printf("SIMD level %d, %d thread(s) (chain rows; the rest 1), thread CPU time, %d rounds in turns, "
           "medians (min); layers %s\n", nc_active_simd_level(), nthreads, R, same ? "bit-identical" : "DIFFER");
    for (int row = 0; row < NT; row++) {
        double med[2], mn[2];
        for (int v = 0; v < 2; v++) {
            qsort(t[v][row], R, sizeof(double), cmpd);
            med[v] = t[v][row][R / 2] * 1e6, mn[v] = t[v][row][0] * 1e6;
        }
        printf("%-24s base %8.1f (%8.1f) us  var %8.1f (%8.1f) us  base/var %.3f", NAME[row], med[0], mn[0], med[1],
               mn[1], med[0] / med[1]);
        if (flops[row] > 0) printf("  base %.1f GFLOP/s", flops[row] / med[0] / 1e3);
        printf("\n");
    }
    return 0;
}
