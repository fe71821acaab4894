"""NumPy oracles of the bfloat16 kernels (csrc/bf16.c), written from Intel's SDM pseudo-code.

- `bf16(x)`: convert_fp32_to_bfloat16 (VCVTNEPS2BF16) as float32: round to nearest even by the
  integer add of 0x7fff + lsb, zero and denormals to signed zero, infinities kept, NaN made quiet.
- `gemm_chain(a, b)`: C = bf(a) bf(b) summed as VDPBF16PS sums, one chain per element over the
  pairs (2q, 2q+1) of k in order, the odd element first, each step a float32 FMA. For bfloat16
  operands a product has at most 16 significant bits, so it is exact in float32 and the FMA is
  the float32 add of it (what the oracle computes), as long as no product or partial sum falls
  below FLT_MIN (the flushes are tested apart).
- `gemm_f64(a, b)`: bf(a) bf(b) accumulated in float64, against which the float32 sums are
  within k 2^-24 sum |a b| (the float32 accumulation error).
"""
import numpy as np


def bf16_bits(x):
    u = np.ascontiguousarray(x, np.float32).view(np.uint32).astype(np.uint64)
    e = u & 0x7F800000
    normal = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) & 0xFFFF
    special = (u >> 16) | np.where(u & 0x007FFFFF, np.uint64(0x40), np.uint64(0))
    return np.where(e == 0, (u >> 16) & 0x8000, np.where(e == 0x7F800000, special, normal)).astype(np.uint16)


def bf16(x):
    return (bf16_bits(x).astype(np.uint32) << 16).view(np.float32).reshape(np.shape(x))


def gemm_chain(a, b):
    a, b = bf16(a), bf16(b)
    m, k = a.shape
    acc = np.zeros((m, b.shape[1]), np.float32)
    order = [p for q in range(0, k, 2) for p in (q + 1, q) if p < k]
    for p in order:
        acc = acc + np.multiply.outer(a[:, p], b[p, :])
    return acc


def gemm_f64(a, b):
    return bf16(a).astype(np.float64) @ bf16(b).astype(np.float64)


def f32_error_bound(a, b):
    """k 2^-23 (|bf(a)| |bf(b)|): a bound of the float32 accumulation error of each element."""
    k = a.shape[1]
    return max(k, 1) * 2.0 ** -23 * (np.abs(bf16(a)).astype(np.float64) @ np.abs(bf16(b)).astype(np.float64))
