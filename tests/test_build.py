"""Build and packaging checks.

The cheap ones run with the suite. The slow ones (fresh virtual environments,
python -m build, a serial NNCORE_NO_OPENMP build) run only when
NNCORE_SLOW_BUILD_TESTS=1 is set:

    NNCORE_SLOW_BUILD_TESTS=1 python -m pytest tests/test_build.py -q
"""
import glob
import os
import shutil
import subprocess
import sys

import pytest

import nncore
from nncore._config import config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
slow = pytest.mark.skipif(os.environ.get("NNCORE_SLOW_BUILD_TESTS", "") in ("", "0"),
                          reason="slow packaging test: set NNCORE_SLOW_BUILD_TESTS=1")


def _sh(cmd, cwd, env=None, timeout=900):
    out = subprocess.run(cmd, cwd=cwd, env=env, shell=isinstance(cmd, str), capture_output=True, text=True,
                         timeout=timeout)
    assert out.returncode == 0, f"{cmd} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout + out.stderr


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
