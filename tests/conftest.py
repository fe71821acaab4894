import os
import sys
import sysconfig

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# CI (.ci/run) tests the installed wheel: NNCORE_TEST_INSTALLED=1. `python -m pytest` from the checkout put
# the checkout first on sys.path, where its uncompiled nncore/ would shadow the installed package: drop it.
INSTALLED = os.environ.get("NNCORE_TEST_INSTALLED", "") not in ("", "0")
if INSTALLED:
    sys.path[:] = [p for p in sys.path if os.path.realpath(p or os.curdir) != os.path.realpath(ROOT)]

# tests import the float64 oracles as `import reference`
sys.path.insert(0, os.path.dirname(__file__))

import nncore  # noqa: E402
from nncore._config import SIMD_LEVELS  # noqa: E402
from nncore._kernels import runtime as _rt  # noqa: E402

if INSTALLED:
    _where = os.path.realpath(os.path.dirname(nncore.__file__))
    _sites = {os.path.realpath(sysconfig.get_paths()[k]) for k in ("purelib", "platlib")}
    assert any(_where.startswith(s + os.sep) for s in _sites), (
        f"NNCORE_TEST_INSTALLED=1 but nncore was imported from {_where}, not from site-packages {sorted(_sites)}")
    assert not _where.startswith(os.path.realpath(ROOT) + os.sep), f"nncore imported from the checkout: {_where}"


@pytest.fixture(scope="session", autouse=True)
def _children_start_outside_the_checkout():
    """With NNCORE_TEST_INSTALLED=1 the tests run from tests/: a process a test starts inherits the working
    directory, which `python -c`/`-m` put first on its sys.path, where the checkout root would shadow the
    installed nncore with its uncompiled sources. (Set after collection, which needs the invocation directory.)"""
    if not INSTALLED:
        yield
        return
    old = os.getcwd()
    os.chdir(os.path.dirname(os.path.abspath(__file__)))
    yield
    os.chdir(old)


@pytest.fixture
def float64():
    """nncore in float64 for one test (finite-difference gradient checks), floatx restored after."""
    old = nncore.floatx()
    nncore.set_floatx("float64")
    yield
    nncore.set_floatx(old)


@pytest.fixture(scope="module", params=SIMD_LEVELS[:_rt.simd_level() + 1])
def simd_level(request):
    """Run each test that uses it at every SIMD level this machine runs (the kernel test modules:
    ``pytestmark = pytest.mark.usefixtures("simd_level")``). Module-scoped, so hypothesis tests take it
    too: pytest runs the module's tests at one level, then at the next."""
    nncore.set_simd_level(request.param)
    yield request.param
    nncore.set_simd_level(None)
