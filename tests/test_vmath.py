"""The float32 vector math (csrc/vmath.h) is accurate in every ISA variant.

The float32 kernels are compiled once per SIMD level (csrc/simd_levels.h: generic
x86-64, AVX2+FMA, AVX-512); the kernel tests run the activations at every level
against float64 references. Here the math itself, over dense ranges of inputs:
a small C program (tests/vmath_check.c) is built for each level this CPU can run
and compared against double-precision libm.
"""
import os
import shutil
import subprocess

import pytest

from nncore._kernels import runtime as rt

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CC = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
LEVELS = [("x86-64", 0), ("x86-64-v3", 1), ("x86-64-v4", 2)]
MAX_ULP = 4.0
# erfc multiplies t, e^(-zh^2) and e^(g - r), each with its own rounding: measured 6.3 ulp
MAX_ULP_OF = {"erfc": 8.0}


@pytest.mark.skipif(CC is None, reason="no C compiler")
@pytest.mark.parametrize("march,level", LEVELS)
def test_vmath_accuracy(march, level, tmp_path):
    if rt.simd_level() < level:
        pytest.skip(f"this CPU cannot run {march}")
    exe = tmp_path / "vmath_check"
    build = subprocess.run(
        [CC, "-O3", f"-march={march}", "-fno-math-errno", "-fno-trapping-math", "-fopenmp-simd",
         "-I", os.path.join(ROOT, "csrc"), os.path.join(ROOT, "tests", "vmath_check.c"), "-o", str(exe), "-lm"],
        capture_output=True, text=True)
    if build.returncode != 0:
        pytest.skip(f"cannot build with -march={march}: {build.stderr[-300:]}")
    out = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120, check=True).stdout
    errors = {name: (float(ulp), x) for name, ulp, x in (line.split() for line in out.splitlines())}
    assert set(errors) == {"exp", "expm1", "log1p", "tanh", "sigmoid", "softplus", "erfc"}
    bad = {k: v for k, v in errors.items() if v[0] > MAX_ULP_OF.get(k, MAX_ULP)}
    assert bad == {}, f"max error in ulp (worst x) above the limit: {bad}"
