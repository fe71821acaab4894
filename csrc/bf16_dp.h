/* bf16_dp.h -- the micro-kernel of the bf16 GEMM, written once over a small
 * vocabulary and included by bf16.c for the real vdpbf16ps (AVX512_BF16) and
 * for its emulation (AVX2 + FMA, and generic C), so the tests of the
 * emulation on a CPU without AVX512_BF16 run this very loop:
 *
 *     acc = init ? t : 0      (t: MR rows of NR floats, ldt apart)       at the start
 *     acc[i][v] = dpbf16(acc[i][v], bcast(pair q of row i), b vector v)   q = 0 .. kq-1
 *     t = acc                                                            at the end
 *
 * so a sum cut into blocks of k (init set from the second on) is the same chain, bit for bit.
 *
 * The emulations take each pair in two halves, h = 0 (the odd elements) then
 * h = 1 (the even ones), one FMA each, so each accumulator sees vdpbf16ps's
 * order while only one half of B is in registers at a time (more rows fit).
 * Vocabulary: BF_ACC (an accumulator vector of BF_LANES floats), BF_A / BF_B
 * (a row's broadcast operand, a vector of B's, as the instruction or its
 * emulation wants them), BF_HALVES (1: vdpbf16ps on whole pairs; 2: the
 * halves), BF_ZERO(), BF_LOADB(p, h), BF_BCAST(a, i, h) (row i of the group
 * of A at a), BF_ASTEP (32-bit words of A per group: MR pair words, or 2 MR
 * widened floats, see bf16.c), BF_DP(acc, a, b), BF_LOAD(p), BF_STORE(p, acc),
 * BF_KEEP(acc), BF_ATTR, BF_MR, BF_NV. */
#define BF_NR (BF_NV * BF_LANES)

static BF_ATTR void BF_NAME(ptrdiff_t kq, const uint32_t *a, const uint32_t *b, float *t, ptrdiff_t ldt, int init)
{
    BF_ACC acc[BF_MR][BF_NV];
#pragma GCC unroll 16
    for (int i = 0; i < BF_MR; i++)
#pragma GCC unroll 4
        for (int v = 0; v < BF_NV; v++) acc[i][v] = init ? BF_LOAD(t + i * ldt + v * BF_LANES) : BF_ZERO();
    for (ptrdiff_t q = 0; q < kq; q++, a += BF_ASTEP, b += BF_NR) {
#pragma GCC unroll 2
        for (int h = 0; h < BF_HALVES; h++) {
            BF_B bv[BF_NV];
#pragma GCC unroll 4
            for (int v = 0; v < BF_NV; v++) bv[v] = BF_LOADB(b + BF_LANES * v, h);
#pragma GCC unroll 16
            for (int i = 0; i < BF_MR; i++) {
                BF_A x = BF_BCAST(a, i, h);
#pragma GCC unroll 4
                for (int v = 0; v < BF_NV; v++) {
                    acc[i][v] = BF_DP(acc[i][v], x, bv[v]);
                    BF_KEEP(acc[i][v]);
                }
            }
        }
    }
#pragma GCC unroll 16
    for (int i = 0; i < BF_MR; i++)
#pragma GCC unroll 4
        for (int v = 0; v < BF_NV; v++) BF_STORE(t + i * ldt + v * BF_LANES, acc[i][v]);
}

#undef BF_NR
#undef BF_NAME
#undef BF_ATTR
#undef BF_ACC
#undef BF_A
#undef BF_B
#undef BF_LANES
#undef BF_MR
#undef BF_NV
#undef BF_ZERO
#undef BF_LOADB
#undef BF_BCAST
#undef BF_ASTEP
#undef BF_HALVES
#undef BF_DP
#undef BF_LOAD
#undef BF_STORE
#undef BF_KEEP
