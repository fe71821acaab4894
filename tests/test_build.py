"""Build and packaging checks.

The cheap ones run with the suite. The slow ones (fresh virtual environments,
python -m build, the clang, NNCORE_NO_OPENMP and NNCORE_GENERIC_ONLY builds
with the kernel and model tests run on each) run only when
NNCORE_SLOW_BUILD_TESTS=1 is set:

    NNCORE_SLOW_BUILD_TESTS=1 python -m pytest tests/test_build.py -q

The test of a built wheel installed where no compiler can be found runs when
NNCORE_TEST_WHEEL names the wheel (.ci/run sets it to the repaired wheel).
"""
import glob
import importlib.util
import os
import shutil
import subprocess
import sys

import pytest

import nncore
from nncore._config import config
from subprocess_common import CHILD_CWD, child_env  # noqa: E402  (the nncore under test, for child processes)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
slow = pytest.mark.skipif(os.environ.get("NNCORE_SLOW_BUILD_TESTS", "") in ("", "0"),
                          reason="slow packaging test: set NNCORE_SLOW_BUILD_TESTS=1")
# running setup.py needs the build requirements (the `test` extra has them; a wheel's bare test environment may not)
needs_build_tools = pytest.mark.skipif(
    not all(importlib.util.find_spec(m) for m in ("Cython", "setuptools", "numpy")),
    reason="setup.py needs Cython and setuptools (pip install nncore[test])")


def _sh(cmd, cwd, env=None, timeout=900):
    out = subprocess.run(cmd, cwd=cwd, env=env, shell=isinstance(cmd, str), capture_output=True, text=True,
                         timeout=timeout)
    assert out.returncode == 0, f"{cmd} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout + out.stderr


CSRC = os.path.join(ROOT, "csrc")
GCC = shutil.which("gcc")
C_SOURCES = sorted(glob.glob(os.path.join(CSRC, "*.c")))
X86_WORDS = ("__attribute__((target", "target_clones", "immintrin", "__m256", "__m512", "_mm256_", "_mm512_",
             "__builtin_cpu_supports", "#pragma GCC target", "pragma clang attribute")


def _own_lines(preprocessed):
    """The lines of `gcc -E` output that come from csrc/ (line markers name each line's file)."""
    own, lines = False, []
    for line in preprocessed.splitlines():
        if line.startswith("# "):
            parts = line.split('"')
            if len(parts) >= 2:
                own = os.path.dirname(os.path.join(CSRC, parts[1])) == CSRC and not parts[1].startswith("<")
            continue
        if own:
            lines.append(line)
    return "\n".join(lines)


@pytest.mark.skipif(GCC is None, reason="needs gcc")
@pytest.mark.parametrize("generic_only", [False, True])
def test_generic_only_build_has_no_x86_constructs(generic_only):
    """NNCORE_GENERIC_ONLY leaves plain C: no target attribute or pragma, no intrinsic, no cpu probe."""
    found = set()
    for src in C_SOURCES:
        cmd = [GCC, "-E", "-fopenmp", "-I", CSRC, src] + (["-DNNCORE_GENERIC_ONLY"] if generic_only else [])
        text = _own_lines(_sh(cmd, CSRC))
        found |= {w for w in X86_WORDS if w in text}
    if generic_only:
        assert found == set()
    else:  # the check can fail: the default x86-64 build has them
        assert {"__attribute__((target", "_mm256_", "#pragma GCC target"} <= found


@pytest.mark.skipif(GCC is None, reason="needs gcc")
@pytest.mark.parametrize("src", [os.path.basename(p) for p in C_SOURCES])
def test_sources_compile_as_plain_c99_without_gnu_extensions(src):
    """With __GNUC__ undefined (the view of MSVC or another C99 compiler), csrc/ takes its portable
    branches and compiles without a diagnostic of its own (glibc's headers need GNU C for their
    _FloatN types and complain: their diagnostics are not ours and are left out)."""
    not_gnu = ["-U__GNUC__", "-U__GNUC_MINOR__", "-U__GNUC_PATCHLEVEL__"]
    out = subprocess.run([GCC, "-std=c99", "-fsyntax-only", *not_gnu, "-Wall", "-Wno-unknown-pragmas", "-I", CSRC, src],
                         cwd=CSRC, capture_output=True, text=True)
    ours = [line for line in out.stderr.splitlines()
            if line.split(":")[0] in {os.path.basename(p) for p in glob.glob(os.path.join(CSRC, "*.[ch]"))}]
    assert ours == []
    # gcc still understands its own keywords without __GNUC__: none may be left in the code of csrc/
    text = _own_lines(subprocess.run([GCC, "-E", "-fopenmp", *not_gnu, "-I", CSRC, src], cwd=CSRC,
                                     capture_output=True, text=True).stdout)
    assert text.strip(), "nothing preprocessed"
    assert [w for w in ("__attribute__", "__builtin", "__asm__", "__typeof__", "__extension__") if w in text] == []


def test_show_config(capsys):
    nncore.show_config()
    out = capsys.readouterr().out
    assert "openmp" in out and "simd" in out and "float32" in out and "num_threads" in out


def test_config_values():
    cfg = config()
    assert isinstance(cfg["openmp"], bool)
    assert cfg["simd"] in ("generic", "avx2", "avx512")
    assert cfg["num_threads"] == nncore.get_num_threads()
    assert cfg["dtypes"] == ["float32", "float64"]


def test_set_num_threads_roundtrip():
    old = nncore.get_num_threads()
    try:
        nncore.set_num_threads(1)
        assert nncore.get_num_threads() == 1
    finally:
        nncore.set_num_threads(old)


@pytest.mark.parametrize("bad", [0, -1])
def test_set_num_threads_rejects_non_positive(bad):
    with pytest.raises(ValueError):
        nncore.set_num_threads(bad)


@needs_build_tools
def test_no_openmp_switch_is_announced_once():
    env = dict(os.environ, NNCORE_NO_OPENMP="1")
    out = _sh([sys.executable, "setup.py", "--version"], ROOT, env=env, timeout=300)
    assert out.count("building without OpenMP") == 1
    assert nncore.__version__ in out


@pytest.mark.skipif(not os.path.isdir(os.path.join(ROOT, ".git")) and not os.path.isfile(os.path.join(ROOT, ".git")),
                    reason="not a git checkout")
def test_generated_files_are_not_committed():
    files = _sh(["git", "ls-files"], ROOT).split()
    bad = [f for f in files if f.endswith((".so", ".o", ".a", ".pyd"))
           or (f.startswith("nncore/") and f.endswith((".c", ".cpp", ".html")))]
    assert bad == []


OPTIONAL = ("sklearn", "scipy", "onnx", "onnxruntime", "matplotlib", "dask", "distributed", "mpi4py", "torch",
            "keras", "pandas", "threadpoolctl", "h5py", "Cython", "setuptools")


def test_import_loads_no_optional_extra():
    """`import nncore` (and its models, layers, optimizers) loads NumPy and nothing optional: each
    extra is imported where it is used (bench/import_time.py measures the import)."""
    code = ("import sys; import nncore, nncore.models, nncore.layers, nncore.optimizers; "
            f"print(sorted(m for m in {OPTIONAL!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=CHILD_CWD, env=child_env(), capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@needs_build_tools
def test_sdist_manifest_lists_every_source(tmp_path):
    """What the sdist would hold (egg_info's SOURCES.txt): every C and Cython source, no build products."""
    _sh([sys.executable, "setup.py", "-q", "egg_info", "--egg-base", str(tmp_path)], ROOT, timeout=300)
    (sources,) = glob.glob(str(tmp_path / "*.egg-info" / "SOURCES.txt"))
    listed = set(open(sources).read().split())
    needed = ["setup.py", "pyproject.toml", "README.md"]
    for pattern in ("csrc/*.c", "csrc/*.h", "nncore/_kernels/*.pyx", "nncore/_kernels/*.pxd",
                    "nncore/_kernels/*.pxi", "nncore/*.py"):
        needed += sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, pattern)))
    missing = [f for f in needed if f not in listed]
    assert missing == []
    assert not [f for f in listed if f.endswith((".so", ".o")) or (f.startswith("nncore/_kernels/")
                                                                    and f.endswith(".c"))]


# ---------------------------------------------------------------- slow: fresh environments


def _clone(tmp_path):
    dst = tmp_path / "clone"
    _sh(["git", "clone", "-q", ROOT, str(dst)], tmp_path)
    return dst


def _venv(path):
    _sh([sys.executable, "-m", "venv", str(path)], path.parent)
    return str(path / "bin" / "python")


SMOKE = ("import nncore, numpy as np; from nncore import ops; "
         "assert np.allclose(ops.matmul(np.eye(3), np.arange(3.0)), np.arange(3.0)); "
         "assert abs(ops.sparse_softmax_xent([0], [[0.0, 0.0]])[0] - np.log(2)) < 1e-12; "
         "print('openmp', nncore._config.config()['openmp'])")


@slow
def test_pip_install_in_fresh_venv(tmp_path):
    src = _clone(tmp_path)
    py = _venv(tmp_path / "venv")
    _sh([py, "-m", "pip", "install", "-q", str(src)], tmp_path)
    out = _sh([py, "-c", SMOKE], tmp_path)
    assert "openmp" in out


@slow
def test_pip_install_editable_in_fresh_venv(tmp_path):
    src = _clone(tmp_path)
    py = _venv(tmp_path / "venv")
    _sh([py, "-m", "pip", "install", "-q", "-e", str(src)], tmp_path)
    out = _sh([py, "-c", "import nncore; print(nncore.__file__)"], tmp_path)
    assert str(src) in out
    _sh([py, "-c", SMOKE], tmp_path)


@slow
def test_build_sdist_and_wheel_and_the_sdist_builds(tmp_path):
    src = _clone(tmp_path)
    _sh([sys.executable, "-m", "build", "--outdir", str(tmp_path / "dist"), str(src)], tmp_path)
    (sdist,) = glob.glob(str(tmp_path / "dist" / "*.tar.gz"))
    (wheel,) = glob.glob(str(tmp_path / "dist" / "*.whl"))
    listing = _sh(["tar", "tzf", sdist], tmp_path)
    assert "csrc/nncore.h" in listing and "nncore/_kernels/losses.pyx" in listing
    assert "_check.pxi" in listing and ".so\n" not in listing
    py = _venv(tmp_path / "venv")
    _sh([py, "-m", "pip", "install", "-q", sdist], tmp_path)
    _sh([py, "-c", SMOKE], tmp_path)
    assert wheel.endswith(".whl")


@slow
@needs_build_tools
def test_serial_build_without_openmp(tmp_path):
    src = _clone(tmp_path)
    env = dict(os.environ, NNCORE_NO_OPENMP="1")
    out = _sh([sys.executable, "setup.py", "build_ext", "--inplace"], src, env=env)
    assert "building without OpenMP" in out
    env["PYTHONPATH"] = str(src)
    out = _sh([sys.executable, "-c", SMOKE + "; from nncore._threads import effective_n_threads as e; "
               "assert e(4) == 1"], tmp_path, env=env)
    assert "openmp False" in out
    shutil.rmtree(src / "build", ignore_errors=True)


# ---------------------------------------------------------------- slow: other compilers and build options

# the kernel and model tests a variant build must pass (each kernel test at every SIMD level it compiled)
VARIANT_TESTS = ["test_gemm.py", "test_activations.py", "test_losses_kernels.py", "test_conv.py",
                 "test_reductions.py", "test_recurrent.py", "test_recurrent_options.py", "test_norm.py",
                 "test_optimizers.py", "test_simd_levels.py",
                 "test_layers.py", "test_models.py", "test_functional.py", "test_threads.py", "test_fork.py"]
VARIANTS = {
    "clang": ({"CC": "clang", "LDSHARED": "clang -shared"}, "openmp True"),
    "no-openmp": ({"NNCORE_NO_OPENMP": "1"}, "openmp False"),
    "generic-only": ({"NNCORE_GENERIC_ONLY": "1"}, "simd_compiled ['generic']"),
}


@slow
@needs_build_tools
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_variant_build_passes_the_kernel_and_model_tests(tmp_path, variant):
    extra, expect = VARIANTS[variant]
    if variant == "clang" and shutil.which("clang") is None:
        pytest.skip("no clang (Debian: apt-get install clang libomp-dev)")
    src = _clone(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("NNCORE_TEST_INSTALLED", "PYTHONPATH")}
    env.update(extra)
    log = _sh([sys.executable, "setup.py", "build_ext", "--inplace"], src, env=env, timeout=1800)
    assert "error" not in log.lower().replace("-werror", ""), log[-3000:]
    env["PYTHONPATH"] = str(src)
    info = _sh([sys.executable, "-c", "import nncore; c = nncore._config.config(); "
                "print('openmp', c['openmp']); print('simd_compiled', c['simd_compiled'])"], src, env=env)
    assert expect in info
    if variant == "generic-only":
        symbols = _sh(["nm", "-D", "--defined-only"] + glob.glob(str(src / "nncore" / "_kernels" / "*.so")), src)
        assert "nc_gemm_f32" in symbols and "_avx2_" not in symbols and "_avx512_" not in symbols
    _sh([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider"]
        + [os.path.join("tests", t) for t in VARIANT_TESTS], src, env=env, timeout=1800)


# ---------------------------------------------------------------- the built wheel, no compiler anywhere

WHEEL = os.environ.get("NNCORE_TEST_WHEEL", "")


@pytest.mark.skipif(not WHEEL, reason="set NNCORE_TEST_WHEEL to a built wheel (.ci/run does)")
def test_wheel_installs_and_trains_without_a_compiler(tmp_path):
    """What a user meets: pip installs the wheel into a fresh environment where no C compiler can be
    found (CC=false, CXX=false, PATH holding the environment's bin/ only), binary packages only, and
    the demo model trains."""
    py = _venv(tmp_path / "venv")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "NNCORE_TEST_INSTALLED")}
    env.update(CC="false", CXX="false", PATH=os.path.dirname(py))
    _sh([py, "-c", "import shutil; found = [c for c in ('gcc', 'cc', 'clang', 'g++', 'c++', 'ld') if shutil.which(c)]; "
         "assert not found, found"], tmp_path, env=env)
    _sh([py, "-m", "pip", "install", "-q", "--only-binary=:all:", os.path.abspath(WHEEL), "scikit-learn"],
        tmp_path, env=env)
    out = _sh([py, "-m", "nncore", "demo", "--epochs", "5", "--verbose", "0"], tmp_path, env=env, timeout=600)
    acc = float(out.split("test accuracy:")[1].split()[0])
    assert acc > 0.9, out
    where = _sh([py, "-c", "import nncore; print(nncore.__file__); nncore.show_config()"], tmp_path, env=env)
    assert str(tmp_path / "venv") in where and "openmp          : True" in where
