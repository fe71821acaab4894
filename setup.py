"""Build nncore: the C kernels in csrc/ as one static library, and one Cython
extension per nncore/_kernels/*.pyx linked against it.

OpenMP is detected by compiling, linking and running a tiny parallel program
(as scikit-learn's build helpers do). Without it the build still succeeds,
serially, and says so once. NNCORE_NO_OPENMP=1 opts out.

The package is portable: no -march=native. SIMD fast paths are compiled per
function with target attributes and chosen at run time (csrc/simd.h,
csrc/simd_levels.h). NNCORE_GENERIC_ONLY=1 compiles the generic C kernels only
(no x86 target attributes: what a compiler or CPU without them builds anyway).
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
from setuptools.command.build_clib import build_clib as _build_clib
from setuptools.command.build_ext import build_ext as _build_ext
from setuptools.modified import newer_group

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


def _env_flag(name):
    return os.environ.get(name, "0") not in ("", "0")


def _probe(source, compile_flags, link_flags, run=True):
    """True if the C compiler builds (and, with run, runs to print 1) `source` with these flags."""
    tmp = tempfile.mkdtemp()
    saved = os.dup(2)  # the compiler's complaints about a probe are expected: keep them out of the log
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write(source)
        cc = _compiler()
        objs = cc.compile([src], output_dir=tmp, extra_postargs=compile_flags)
        if not run:
            return True
        exe = os.path.join(tmp, "probe")
        cc.link_executable(objs, exe, extra_postargs=link_flags)
        out = subprocess.run([exe], capture_output=True, text=True, timeout=60)
        return out.returncode == 0 and out.stdout.strip() == "1"
    except Exception:  # any failure means: not usable
        return False
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        shutil.rmtree(tmp, ignore_errors=True)


def openmp_flags():
    """Return (compile_flags, link_flags) for OpenMP, or ([], []) with a warning.

    GCC and clang (Linux: libgomp, or LLVM's libomp with clang) take -fopenmp; Apple's clang takes
    -Xpreprocessor -fopenmp with libomp (Homebrew's, found through CFLAGS/LDFLAGS); MSVC takes /openmp
    (set below). A compiler for which none works builds serial kernels."""
    if _env_flag("NNCORE_NO_OPENMP"):
        print("nncore: NNCORE_NO_OPENMP set, building without OpenMP (serial kernels)")
        return [], []
    candidates = [(["-fopenmp"], ["-fopenmp"])]
    if sys.platform == "darwin":
        candidates.append((["-Xpreprocessor", "-fopenmp"], ["-lomp"]))
    for compile_flags, link_flags in candidates:
        if _probe(PROBE, compile_flags, link_flags):
            return compile_flags, link_flags
    print("nncore: WARNING: the C compiler cannot build and run an OpenMP program; building serial kernels.")
    return [], []


WINDOWS = sysconfig.get_platform().startswith("win")
omp_compile, omp_link = openmp_flags()
base_cflags = ["-O3", "-fno-math-errno", "-fno-trapping-math", "-Wall", "-Wno-unknown-pragmas"]
if not omp_compile:
    base_cflags.append("-fopenmp-simd")
# clang reports every `omp simd` loop it leaves scalar (the float64 loops calling libm's exp): noise
if not WINDOWS and _probe("int main(void) { return 0; }\n", ["-Werror", "-Wpass-failed"], [], run=False):
    base_cflags.append("-Wno-pass-failed")
if WINDOWS:
    base_cflags = ["/O2", "/std:c11"] + (["/openmp"] if omp_compile else [])  # c11: `restrict` (VS 2019 16.8+)
    omp_compile, omp_link = [], []
if _env_flag("NNCORE_GENERIC_ONLY"):
    print("nncore: NNCORE_GENERIC_ONLY set, building the generic C kernels only (no SIMD levels)")
    base_cflags.append("/DNNCORE_GENERIC_ONLY" if WINDOWS else "-DNNCORE_GENERIC_ONLY")

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
            extra_link_args=omp_link + ([] if WINDOWS else ["-lm"]),
            depends=c_sources + c_depends,
        )
    )


class build_clib(_build_clib):
    """Compile the C library's out-of-date sources (older than the source or any csrc/*.h) on every CPU at
    once, the largest first (gemm.c is most of the build), then archive them."""

    def build_libraries(self, libraries):
        from concurrent.futures import ThreadPoolExecutor

        for lib_name, info in libraries:
            sources = sorted(info["sources"])
            objects = self.compiler.object_filenames(sources, output_dir=self.build_temp)
            deps = info.get("obj_deps", {}).get("", [])
            stale = sorted((src for src, obj in zip(sources, objects) if newer_group([src] + list(deps), obj)),
                           key=os.path.getsize, reverse=True)

            def compile_one(src):
                self.compiler.compile([src], output_dir=self.build_temp, macros=info.get("macros"),
                                      include_dirs=info.get("include_dirs"), extra_postargs=info.get("cflags"),
                                      debug=self.debug)

            with ThreadPoolExecutor(max(1, min(len(stale), os.cpu_count() or 1))) as pool:
                list(pool.map(compile_one, stale))
            self.compiler.create_static_lib(objects, lib_name, output_dir=self.build_clib, debug=self.debug)


class build_ext(_build_ext):
    """Build the static C library first (plain build_ext does not run build_clib); the extensions in
    parallel unless told otherwise (-j)."""

    def finalize_options(self):
        super().finalize_options()
        if self.parallel is None:
            self.parallel = os.cpu_count() or 1

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
    cmdclass={"build_clib": build_clib, "build_ext": build_ext},
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
