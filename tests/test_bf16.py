"""The bfloat16 kernels (csrc/bf16.c) against the NumPy oracles of tests/reference_bf16.py: the
rounding to bfloat16 bit for bit (ties, overflow, denormals, infinities, NaN); the bf16 GEMM
bit for bit against vdpbf16ps's chain of FMAs, and within float32 accumulation error of a float64
sum, on awkward shapes, transposes, alpha/beta/bias/activation epilogues, every micro-kernel
(generic C and AVX2 emulate vdpbf16ps; the real one where the CPU has AVX512_BF16), every SIMD
level, 1 and 2 threads; the denormal flushes; bad input."""
import itertools
import platform
import shutil
import subprocess

import numpy as np
import pytest

import reference_bf16 as ref
from cpu_flags import cpu_flags
from nncore._kernels import ACT_CODES, gemm as G, runtime

LEVELS = list(range(runtime.simd_level() + 1))
KERNELS = list(G.BF16_KERNELS)
# around every kernel's MR (4, 8) and NR (8, 16, 32), and odd k (a half pair)
SIZES = [1, 2, 3, 4, 5, 7, 8, 9, 13, 16, 17, 31, 33, 65]
K_SIZES = [0, 1, 2, 3, 5, 8, 63, 64, 129]


@pytest.fixture(autouse=True)
def _restore():
    yield
    G.bf16_set_kernel(None)
    runtime.set_simd_level(-1)


def _runs(level):
    runtime.set_simd_level(level)
    return [k for k in KERNELS if G.bf16_available(k)]


def _bits(x):
    return np.ascontiguousarray(x, np.float32).view(np.uint32)


def _gemm(a, b, n_threads=1, **kw):
    c = np.full((a.shape[0], b.shape[1]), np.nan, np.float32)   # beta = 0: every element overwritten
    return G.gemm_bf16(a, b, c, n_threads=n_threads, **kw)


@pytest.mark.parametrize("kernel", KERNELS)
def test_rounding_to_the_bit(kernel):
    # on each kernel's conversions (avx512bf16: vcvtneps2bf16), every length's tail
    if kernel not in _runs(runtime.simd_level()):
        pytest.skip(f"{kernel} does not run here")
    G.bf16_set_kernel(kernel)
    rng = np.random.default_rng(0)
    specials = np.array([0.0, -0.0, 1.0, np.inf, -np.inf, np.nan, -np.nan, 1e-40, -1e-40, 1.17549435e-38,
                         3.4028235e38, 3.3961776e38, 1.0 + 2.0 ** -8, 1.0 + 3 * 2.0 ** -8, 1.0 + 2.0 ** -9],
                        np.float32)
    ties = (np.arange(1 << 16, dtype=np.uint32) << 16 | 0x8000).view(np.float32)   # every exact tie
    scaled = rng.standard_normal(10000) * 10.0 ** rng.integers(-40, 38, 10000)
    x = np.concatenate([specials, scaled.astype(np.float32), ties,
                        rng.integers(0, 2 ** 32, 10000, dtype=np.uint32).view(np.float32)])
    got = G.bf16_bits(x)
    assert np.array_equal(got, ref.bf16_bits(x))
    assert np.array_equal(_bits(G.bf16_round(x, np.empty_like(x))), _bits(ref.bf16(x)))
    assert np.array_equal(got.astype(np.uint32) << 16, _bits(ref.bf16(x)))
    assert G.bf16_bits(np.float32([1.0 + 2.0 ** -8]))[0] == 0x3F80          # tie to even (down)
    assert G.bf16_bits(np.float32([1.0 + 3 * 2.0 ** -8]))[0] == 0x3F82      # tie to even (up)
    assert G.bf16_bits(np.float32([3.4028235e38]))[0] == 0x7F80             # FLT_MAX rounds to inf
    assert G.bf16_bits(np.float32([-1e-40]))[0] == 0x8000                   # denormal to signed zero
    nan = G.bf16_bits(np.array([0x7F800001], np.uint32).view(np.float32))[0]
    assert nan == 0x7FC0                                                    # signalling NaN made quiet
    y = x.copy()
    G.bf16_round(y, y)                                                      # in place
    assert np.array_equal(_bits(y), _bits(ref.bf16(x)))
    for n in range(1, 70):
        assert np.array_equal(G.bf16_bits(x[-n:]), ref.bf16_bits(x[-n:])), n
        assert np.array_equal(_bits(G.bf16_round(x[-n:], np.empty(n, np.float32))), _bits(ref.bf16(x[-n:]))), n


@pytest.mark.parametrize("level", LEVELS)
def test_every_kernel_is_the_vdpbf16ps_chain_on_awkward_shapes(level):
    rng = np.random.default_rng(level)
    kernels = _runs(level)
    assert "generic-emulated" in kernels and (level == 0 or "avx2-emulated" in kernels)
    assert ("avx512bf16" in kernels) == (level >= 2 and G.cpu_has_avx512bf16())
    shapes = [s for s in itertools.product(SIZES, SIZES, K_SIZES) if (s[0] * 7 + s[1] * 3 + s[2]) % 6 == 0]
    for m, n, k in shapes + [(100, 70, 300), (7, 300, 130)]:
        a = rng.standard_normal((m, k)).astype(np.float32)
        b = rng.standard_normal((k, n)).astype(np.float32)
        want = ref.gemm_chain(a, b)
        assert np.all(np.abs(want - ref.gemm_f64(a, b)) <= ref.f32_error_bound(a, b))
        for kernel in kernels:
            G.bf16_set_kernel(kernel)
            assert G.bf16_kernel() == kernel
            got = _gemm(a, b, round_out=False)
            assert np.array_equal(_bits(got), _bits(want)), (kernel, m, n, k)


def test_the_odd_element_first():
    # pair (2, 3) after 2^24: odd first, 2^24 + 1 -> 2^24 (a float32 tie to even), - 1 -> 2^24 - 1;
    # even first would give 2^24 - 1 + 1 = 2^24
    a = np.ones((1, 4), np.float32)
    b = np.array([[0.0], [2.0 ** 24], [-1.0], [1.0]], np.float32)
    for kernel in _runs(runtime.simd_level()):
        G.bf16_set_kernel(kernel)
        got = _gemm(a, b, round_out=False)
        assert got[0, 0] == 2.0 ** 24 - 1
        assert np.array_equal(_bits(got), _bits(ref.gemm_chain(a, b)))


@pytest.mark.parametrize("level", LEVELS)
def test_denormals_are_flushed_as_the_instruction_does(level):
    tiny = np.float32(2.0 ** -70)
    a = np.array([[tiny, 0.0]], np.float32)
    b = np.array([[tiny], [0.0]], np.float32)          # the product 2^-140: a denormal result, flushed
    x = np.float32(1.5 * 2.0 ** -126)
    a2 = np.array([[x, 1.0]], np.float32)               # odd first: -2^-126, then + 1.5 2^-126 -> 2^-127: flushed
    b2 = np.array([[1.0], [-(2.0 ** -126)]], np.float32)
    a3 = np.array([[1e-39, 1.0]], np.float32)           # a denormal operand is zero
    b3 = np.array([[1.0], [1.0]], np.float32)
    for kernel in _runs(level):
        G.bf16_set_kernel(kernel)
        assert _bits(_gemm(a, b, round_out=False))[0, 0] == 0
        assert _gemm(a2, b2, round_out=False)[0, 0] == 0.0
        assert _gemm(a3, b3, round_out=False)[0, 0] == 1.0
    # the FTZ/DAZ of the emulation do not leak out: float32 code after it keeps its denormals
    assert np.float32(2.0 ** -70) * np.float32(2.0 ** -70) > 0


@pytest.mark.parametrize("level", LEVELS)
def test_epilogue_transposes_threads(level):
    rng = np.random.default_rng(10 + level)
    kernels = _runs(level)
    for (m, n, k), ta, tb in itertools.product([(33, 17, 65), (130, 70, 200), (1, 40, 9)], [False, True], [False, True]):
        a = rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
        b = rng.standard_normal((n, k) if tb else (k, n)).astype(np.float32)
        c0 = rng.standard_normal((m, n)).astype(np.float32)
        bias = rng.standard_normal(n).astype(np.float32)
        chain = ref.gemm_chain(a.T if ta else a, b.T if tb else b)
        for act in ("linear", "relu", "sigmoid"):
            z = np.float32(0.5) * chain + np.float32(-1.25) * c0 + bias
            want = ref.bf16(z if act == "linear" else np.maximum(z, 0) if act == "relu" else None) if act != "sigmoid" else None
            outs = []
            for kernel, nt in itertools.product(kernels, (1, 2)):
                G.bf16_set_kernel(kernel)
                c = c0.copy()
                G.gemm_bf16(a, b, c, trans_a=ta, trans_b=tb, alpha=0.5, beta=-1.25, bias=bias, act=ACT_CODES[act],
                            n_threads=nt)
                outs.append(c)
            for c in outs[1:]:
                assert np.array_equal(_bits(c), _bits(outs[0])), (act, m, n, k, ta, tb)
            if want is not None:
                assert np.array_equal(_bits(outs[0]), _bits(want)), (act, m, n, k, ta, tb)
            else:
                assert np.allclose(outs[0], 1 / (1 + np.exp(-z.astype(np.float64))), rtol=2 ** -7, atol=1e-6)
            assert np.array_equal(_bits(outs[0]), _bits(ref.bf16(outs[0])))    # bfloat16 values


@pytest.mark.parametrize("level", LEVELS)
def test_k_in_blocks_continues_the_chain(level):
    # k past one block of NC_BF_KQ = 192 pairs (2 to 41 blocks, odd k: a half pair in the last block):
    # the sums wait in C (beta 0) or in a block of their own (beta != 0, the epilogue reads C), and the
    # chain goes on from them: the same bits as one chain, on every kernel, transpose and thread count
    rng = np.random.default_rng(30 + level)
    kernels = _runs(level)
    for (m, n, k), ta, tb in [((37, 45, 641), False, False), ((19, 70, 961), True, False),
                              ((41, 33, 321), False, True), ((9, 32, 15681), True, False),
                              ((5, 300, 1501), False, True)]:   # one row panel: 2 threads cut the columns
        a = rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
        b = rng.standard_normal((n, k) if tb else (k, n)).astype(np.float32)
        c0 = rng.standard_normal((m, n)).astype(np.float32)
        bias = rng.standard_normal(n).astype(np.float32)
        chain = ref.gemm_chain(a.T if ta else a, b.T if tb else b)
        for beta in (0.0, 0.5):
            want = ref.bf16(np.maximum(np.float32(0.75) * chain + np.float32(beta) * c0 + bias, 0))
            for kernel, nt in itertools.product(kernels if k < 10000 else kernels[-1:], (1, 2)):
                G.bf16_set_kernel(kernel)
                c = c0.copy()
                G.gemm_bf16(a, b, c, trans_a=ta, trans_b=tb, alpha=0.75, beta=beta, bias=bias,
                            act=ACT_CODES["relu"], n_threads=nt)
                assert np.array_equal(_bits(c), _bits(want)), (kernel, nt, beta, m, n, k, ta, tb)


def test_large_threads_and_column_blocks():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((256, 784)).astype(np.float32)
    w = rng.standard_normal((784, 2 * 300)).astype(np.float32)
    b = w[:, 300:]                                                     # a column block (row stride 600)
    c1 = _gemm(a, b, round_out=False)
    c2 = _gemm(a, np.ascontiguousarray(b), n_threads=2, round_out=False)
    assert np.array_equal(_bits(c1), _bits(c2))
    assert np.all(np.abs(c1 - ref.gemm_f64(a, np.ascontiguousarray(b))) <= ref.f32_error_bound(a, np.ascontiguousarray(b)))


def test_bad_input():
    a = np.ones((3, 4), np.float32)
    with pytest.raises(TypeError, match="float32"):
        G.gemm_bf16(a.astype(np.float64), a.T.astype(np.float64).copy(), np.empty((3, 3)))
    with pytest.raises(ValueError, match="inner dimensions"):
        G.gemm_bf16(a, a, np.empty((3, 4), np.float32))
    with pytest.raises(ValueError, match="shape"):
        G.gemm_bf16(a, a.T.copy(), np.empty((3, 4), np.float32))
    with pytest.raises(ValueError, match="read-only"):
        c = np.empty((3, 3), np.float32)
        c.flags.writeable = False
        G.gemm_bf16(a, a.T.copy(), c)
    with pytest.raises(TypeError, match="dtype"):
        G.bf16_round(a.astype(np.float64), a)
    with pytest.raises(ValueError, match="unknown bf16 kernel"):
        G.bf16_set_kernel("vdpbf16ps")
    if not G.cpu_has_avx512bf16():
        with pytest.raises(ValueError, match="does not run"):
            G.bf16_set_kernel("avx512bf16")


def test_the_vdpbf16ps_kernel_is_guarded():
    # offered exactly when the CPU has AVX512_BF16 and the SIMD level in use is AVX-512
    assert "avx512bf16" in KERNELS
    flags = cpu_flags()
    if flags is None or "avx2" not in flags:
        pytest.skip("needs an x86-64 Linux CPU with AVX2 and /proc/cpuinfo")
    assert G.cpu_has_avx512bf16() == ("avx512_bf16" in flags)
    assert G.bf16_available("avx512bf16") == ("avx512_bf16" in flags and runtime.simd_level() >= 2)
    assert G.bf16_kernel() == ("avx512bf16" if G.bf16_available("avx512bf16") else "avx2-emulated")
    runtime.set_simd_level(1)
    assert not G.bf16_available("avx512bf16") and G.bf16_kernel() == "avx2-emulated"
    runtime.set_simd_level(0)
    assert G.bf16_kernel() == "generic-emulated"


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64") or shutil.which("objdump") is None,
                    reason="needs x86-64 and objdump")
def test_the_vdpbf16ps_instruction_is_compiled():
    # the AVX512_BF16 kernel is in the extension as real vdpbf16ps on zmm, even on a CPU that cannot run
    # it (its arithmetic is tested through the emulations above, bit for bit)
    if not G.bf16_available("avx2-emulated"):
        pytest.skip("a build without the x86 kernels (NNCORE_GENERIC_ONLY) or a CPU without AVX2")
    asm = subprocess.run(["objdump", "-d", "--no-show-raw-insn", G.__file__], capture_output=True, text=True,
                         check=True).stdout
    assert any("vdpbf16ps" in line and "%zmm" in line for line in asm.splitlines())


@pytest.mark.parametrize("act", ["linear", "relu", "leaky_relu", "sigmoid", "tanh"])
def test_the_same_bits_at_every_level(act):
    # the drivers of every SIMD level (packing, epilogue) and every kernel give the same bits
    rng = np.random.default_rng(20)
    a = rng.standard_normal((61, 150)).astype(np.float32)
    b = rng.standard_normal((150, 45)).astype(np.float32)
    c0 = rng.standard_normal((61, 45)).astype(np.float32)
    bias = rng.standard_normal(45).astype(np.float32)
    outs = []
    for level in LEVELS:
        for kernel in _runs(level):
            G.bf16_set_kernel(kernel)
            c = c0.copy()
            G.gemm_bf16(a, b, c, alpha=0.75, beta=0.5, bias=bias, act=ACT_CODES[act], act_alpha=0.2)
            outs.append(c)
    for c in outs[1:]:
        assert np.array_equal(_bits(c), _bits(outs[0]))
