/* gemm_ab.c -- nncore's float32 GEMM and dense chain, two builds in one process (bench/gemm_ab.sh):
 * "base" (nc_*) and "var" (v_nc_*, a changed gemm.c) timed in turns, R rounds in alternating order,
 * thread CPU time, one thread; prints the medians, base / var, and whether the two gave the same bits.
 * Rows: the predict chain (784-256-128-10, relu, relu, softmax, batch 1024, kernels packed once),
 * squares 256..2048, the MLP training products and the three predict layers (nc_gemm).
 * Argument: the SIMD level (1 avx2, 2 avx512). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "nncore.h"
#include "ab_common.h"

ptrdiff_t v_nc_gemm_pack_size_f32(ptrdiff_t k, ptrdiff_t n);
int v_nc_gemm_pack_b_f32(int trans_b, ptrdiff_t k, ptrdiff_t n, const float *B, ptrdiff_t ldb, float *packed,
                         int refresh);
int v_nc_dense_chain_f32(ptrdiff_t m, int L, const ptrdiff_t *dims, const float *const *W, float *const *packed,
                         const float *const *bias, const int *act, const float *act_alpha, int check_finite,
                         const float *x, float *y, int nthreads);
void v_nc_gemm_f32(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, float alpha, const float *A,
                   ptrdiff_t lda, const float *B, ptrdiff_t ldb, float beta, float *C, ptrdiff_t ldc,
                   const float *bias, int act, float act_alpha, int nthreads);

typedef struct {
    ptrdiff_t (*size)(ptrdiff_t, ptrdiff_t);
    int (*pack)(int, ptrdiff_t, ptrdiff_t, const float *, ptrdiff_t, float *, int);
    int (*chain)(ptrdiff_t, int, const ptrdiff_t *, const float *const *, float *const *, const float *const *,
                 const int *, const float *, int, const float *, float *, int);
    void (*gemm)(int, int, ptrdiff_t, ptrdiff_t, ptrdiff_t, float, const float *, ptrdiff_t, const float *,
                 ptrdiff_t, float, float *, ptrdiff_t, const float *, int, float, int);
} impl;

static const impl IMPL[2] = {
    {nc_gemm_pack_size_f32, nc_gemm_pack_b_f32, nc_dense_chain_f32, nc_gemm_f32},
    {v_nc_gemm_pack_size_f32, v_nc_gemm_pack_b_f32, v_nc_dense_chain_f32, v_nc_gemm_f32},
};

static const struct {
    const char *name;
    int ta, tb, m, n, k, reps;
} SHAPES[] = {
    {"256^3", 0, 0, 256, 256, 256, 30},
    {"512^3", 0, 0, 512, 512, 512, 4},
    {"1024^3", 0, 0, 1024, 1024, 1024, 1},
    {"2048^3", 0, 0, 2048, 2048, 2048, 1},
    {"mlp fwd 128x784x512", 0, 0, 128, 512, 784, 10},
    {"mlp dW 784x512x128 tA", 1, 0, 784, 512, 128, 10},
    {"mlp dx 128x784x512 tB", 0, 1, 128, 784, 512, 10},
    {"L1 1024x256x784", 0, 0, 1024, 256, 784, 2},
    {"L2 1024x128x256", 0, 0, 1024, 128, 256, 8},
    {"L3 1024x10x128", 0, 0, 1024, 10, 128, 40},
};
#define NS ((int)(sizeof SHAPES / sizeof SHAPES[0]))
#define R 13 /* rounds */

int main(int argc, char **argv)
{
    nc_set_simd_level(argc > 1 ? atoi(argv[1]) : 1);
    const ptrdiff_t M = 1024, dims[4] = {784, 256, 128, 10};
    const int act[3] = {NC_ACT_RELU, NC_ACT_RELU, -1};
    const float alpha[3] = {0, 0, 0};
    float *W[3], *bias[3], *P[2][3];
    for (int l = 0; l < 3; l++) {
        W[l] = rnd(dims[l] * dims[l + 1]);
        bias[l] = rnd(dims[l + 1]);
    }
    for (int v = 0; v < 2; v++)
        for (int l = 0; l < 3; l++) {
            P[v][l] = aligned_alloc(64, (IMPL[v].size(dims[l], dims[l + 1]) * 4 + 63) / 64 * 64);
            memset(P[v][l], 0, 64);
            IMPL[v].pack(0, dims[l], dims[l + 1], W[l], dims[l + 1], P[v][l], 0);
        }
    float *x = rnd(M * 784), *y[2] = {rnd(M * 10), rnd(M * 10)};
    float *A = rnd(2048 * 2048), *B = rnd(2048 * 2048), *C[2] = {rnd(2048 * 2048), rnd(2048 * 2048)};
    static double t[2][1 + NS][R];
    int differ = 0;
    for (int r = 0; r < R; r++)
        for (int turn = 0; turn < 2; turn++) {
            int v = r & 1 ? 1 - turn : turn;
            double t0 = now();
            for (int q = 0; q < 8; q++)
                IMPL[v].chain(M, 3, dims, NULL, P[v], (const float *const *)bias, act, alpha, 0, x, y[v], 1);
            t[v][0][r] = (now() - t0) / 8;
            for (int i = 0; i < NS; i++) {
                t0 = now();
                for (int q = 0; q < SHAPES[i].reps; q++)
                    IMPL[v].gemm(SHAPES[i].ta, SHAPES[i].tb, SHAPES[i].m, SHAPES[i].n, SHAPES[i].k, 1, A,
                                 SHAPES[i].ta ? SHAPES[i].m : SHAPES[i].k, B, SHAPES[i].tb ? SHAPES[i].k : SHAPES[i].n,
                                 0, C[v], SHAPES[i].n, NULL, 0, 0, 1);
                t[v][1 + i][r] = (now() - t0) / SHAPES[i].reps;
            }
        }
    if (memcmp(y[0], y[1], M * 10 * 4)) differ |= 1;
    if (memcmp(C[0], C[1], (size_t)SHAPES[NS - 1].m * SHAPES[NS - 1].n * 4)) differ |= 2; /* the last shape */
    printf("SIMD level %d, 1 thread, thread CPU time, medians of %d (chain %s, last gemm %s)\n", nc_active_simd_level(), R,
           differ & 1 ? "DIFFERS" : "bit-identical", differ & 2 ? "DIFFERS" : "bit-identical");
    for (int i = 0; i <= NS; i++) {
        double med[2];
        for (int v = 0; v < 2; v++) {
            qsort(t[v][i], R, sizeof(double), cmpd);
            med[v] = t[v][i][R / 2] * 1e6;
        }
        double flop = i == 0 ? 2.0 * M * (784 * 256 + 256 * 128 + 128 * 10)
                             : 2.0 * SHAPES[i - 1].m * SHAPES[i - 1].n * SHAPES[i - 1].k;
        printf("%-24s base %9.1f us %6.1f GF | var %9.1f us %6.1f GF | base/var %.3f\n",
               i == 0 ? "chain 1024" : SHAPES[i - 1].name, med[0], flop / med[0] / 1e3, med[1], flop / med[1] / 1e3,
               med[0] / med[1]);
    }
    return 0;
}
