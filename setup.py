"""Build nncore: the C kernels in csrc/ as one static library, and one Cython
extension per nncore/_kernels/*.pyx linked against it.

OpenMP is detected by compiling, linking and running a tiny parallel program
(as scikit-learn's build helpers do). Without it the build still succeeds,
serially, and says so once. NNCORE_NO_OPENMP=1 opts out.

The package is portable: no -march=native. SIMD fast paths are compiled per
function with target attributes and chosen at run time (see csrc/runtime.c).
"""
import glob
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext as _build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
CSRC = "csrc"

PROBE = r"""
#include <omp.h>
#include <stdio.h>
int main(void) {
    int n = 0;
    #pragma omp parallel reduction(+:n)
    n += 1;
    printf("%d\n", n > 0);
    return 0;
}
"""


def _compiler():
    from setuptools._distutils.ccompiler import new_compiler
    from setuptools._distutils.sysconfig import customize_compiler

    cc = new_compiler()
    customize_compiler(cc)
    return cc


def openmp_flags():
    """Return (compile_flags, link_flags) for OpenMP, or ([], []) with a warning."""
    if os.environ.get("NNCORE_NO_OPENMP", "0") not in ("", "0"):
        print("nncore: NNCORE_NO_OPENMP set, building without OpenMP (serial kernels)")
        return [], []
    flags = ["-fopenmp"]
    tmp = tempfile.mkdtemp()
    try:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write(PROBE)
        cc = _compiler()
        objs = cc.compile([src], output_dir=tmp, extra_postargs=flags)
        exe = os.path.join(tmp, "probe")
        cc.link_executable(objs, exe, extra_postargs=flags)
        out = subprocess.run([exe], capture_output=True, text=True, timeout=60)
        if out.returncode == 0 and out.stdout.strip() == "1":
            return flags, flags
        raise RuntimeError(out.stderr)
    except Exception as exc:  # any failure means: no usable OpenMP
        print(
            "nncore: WARNING: the C compiler cannot build and run an OpenMP program "
            f"({type(exc).__name__}); building serial kernels."
        )
        return [], []
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


omp_compile, omp_link = openmp_flags()
base_cflags = ["-O3", "-fno-math-errno", "-fno-trapping-math", "-Wall", "-Wno-unknown-pragmas"]
if not omp_compile:
    base_cflags.append("-fopenmp-simd")
if sysconfig.get_platform().startswith("win"):
    base_cflags = ["/O2"] + (["/openmp"] if omp_compile else [])
    omp_compile, omp_link = [], []

c_sources = sorted(glob.glob(os.path.join(CSRC, "*.c")))
c_depends = sorted(glob.glob(os.path.join(CSRC, "*.h")))

libraries = [
    (
        "nncore_c",
        {
            "sources": c_sources,
            "include_dirs": [CSRC],
            "cflags": base_cflags + omp_compile + ["-fPIC"],
            "obj_deps": {"": c_depends},
        },
    )
]

extensions = []
for pyx in sorted(glob.glob(os.path.join("nncore", "_kernels", "*.pyx"))):
    name = os.path.splitext(pyx)[0].replace(os.sep, ".")
    extensions.append(
        Extension(
            name,
            [pyx],
            include_dirs=[CSRC, np.get_include()],
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
            extra_compile_args=["-O2"] + omp_compile,
            extra_link_args=omp_link + ["-lm"],
            depends=c_sources + c_depends,
        )
    )


class build_ext(_build_ext):
    """Build the static C library first (plain build_ext does not run build_clib)."""

    def run(self):
        self.run_command("build_clib")
        clib = self.get_finalized_command("build_clib")
        if clib.build_clib not in self.library_dirs:
            self.library_dirs.append(clib.build_clib)
        for ext in self.extensions:
            if "nncore_c" not in ext.libraries:
                ext.libraries.insert(0, "nncore_c")
        super().run()


setup(
    cmdclass={"build_ext": build_ext},
    libraries=libraries,
    ext_modules=cythonize(
        extensions,
        language_level=3,
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
            "embedsignature": True,
        },
        compile_time_env={"NNCORE_OPENMP": bool(omp_compile)},
    ),
)
