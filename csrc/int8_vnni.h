/* int8_vnni.h -- the VNNI micro-kernel of the int8 GEMM, written once over a
 * small vocabulary (VN_VEC, VN_LOADB/LOADW, VN_BCAST, VN_DPBUSD, VN_SUB,
 * VN_STORE, VN_KEEP) and included by int8_kernel.h for the real instructions and for
 * their C emulation, so the tests of the emulation run this very code.
 *
 *     acc[i][v] += dpbusd(bcast(a word of row i), b vector v)   per group g
 *     t = acc - corr                                            at the end
 *
 * A holds x + 128 (unsigned, as vpdpbusd wants; any |x| <= 127), so the lanes sum
 * (x + 128) b = x b + 128 b; corr[j] = 128 sum_p b(p, j) takes the second
 * part away. Every step wraps mod 2^32 (vpdpbusd does not saturate), so the
 * result is x b mod 2^32, which is x b itself while that fits an int32 (k <=
 * NC_INT8_MAX_K): the AVX2 and generic kernels' numbers, to the bit. */
#define VN_NR (VN_NV * VN_LANES)

static VN_ATTR void VN_NAME(ptrdiff_t kg, const uint8_t *a, ptrdiff_t lda, const uint8_t *b, const uint32_t *corr,
                            int32_t *t)
{
    VN_VEC acc[VN_MR][VN_NV];
#pragma GCC unroll 16
    for (int i = 0; i < VN_MR; i++)
#pragma GCC unroll 4
        for (int v = 0; v < VN_NV; v++) acc[i][v] = VN_ZERO();
    for (ptrdiff_t g = 0; g < kg; g++, a += 4, b += 4 * VN_NR) {
        VN_VEC bv[VN_NV];
#pragma GCC unroll 4
        for (int v = 0; v < VN_NV; v++) bv[v] = VN_LOADB(b + 4 * VN_LANES * v);
#pragma GCC unroll 16
        for (int i = 0; i < VN_MR; i++) {
            VN_VEC x = VN_BCAST(a + i * lda);
#pragma GCC unroll 4
            for (int v = 0; v < VN_NV; v++) {
                acc[i][v] = VN_DPBUSD(acc[i][v], x, bv[v]);
                VN_KEEP(acc[i][v]);
            }
        }
    }
#pragma GCC unroll 16
    for (int i = 0; i < VN_MR; i++)
#pragma GCC unroll 4
        for (int v = 0; v < VN_NV; v++)
            VN_STORE(t + i * VN_NR + v * VN_LANES, VN_SUB(acc[i][v], VN_LOADW(corr + v * VN_LANES)));
}

#undef VN_NR
#undef VN_NAME
#undef VN_ATTR
#undef VN_VEC
#undef VN_LANES
#undef VN_MR
#undef VN_NV
#undef VN_ZERO
#undef VN_LOADB
#undef VN_LOADW
#undef VN_BCAST
#undef VN_DPBUSD
#undef VN_SUB
#undef VN_STORE
#undef VN_KEEP
