"""Thread control: the public setting, OMP_NUM_THREADS, threadpoolctl, tiny work, fork."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import nncore
from nncore import ops
from nncore._kernels import runtime as rt
from nncore._threads import _cpu_count, effective_n_threads

from subprocess_common import CHILD_CWD, child_env  # noqa: E402  (the nncore under test, for child processes)


def _eff(n):
    """What effective_n_threads answers for a request of n threads: n, or 1 in a build without OpenMP."""
    return n if rt.has_openmp() else 1


def _run(code, **env):
    """Run `code` in a fresh interpreter on the nncore under test; return its last stdout line as JSON."""
    e = dict(os.environ)
    e.pop("OMP_NUM_THREADS", None)
    out = subprocess.run([sys.executable, "-c", code], cwd=CHILD_CWD, env=child_env(e, **env), capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture
def restore_threads():
    old = nncore.get_num_threads()
    yield
    nncore.set_num_threads(old)


def test_set_get(restore_threads):
    nncore.set_num_threads(3)
    assert nncore.get_num_threads() == 3 and effective_n_threads() == _eff(3)
    nncore.set_num_threads(np.int64(1))
    assert nncore.get_num_threads() == 1


@pytest.mark.parametrize("bad", [0, -1, -8])
def test_set_rejects_non_positive(bad, restore_threads):
    with pytest.raises(ValueError, match="positive"):
        nncore.set_num_threads(bad)


@pytest.mark.parametrize("bad", [1.5, "2", None, True])
def test_set_rejects_non_integers(bad, restore_threads):
    with pytest.raises(TypeError, match="int"):
        nncore.set_num_threads(bad)


def test_effective_n_threads():
    assert effective_n_threads(None) == _eff(nncore.get_num_threads())
    assert effective_n_threads(5) == _eff(5)
    assert effective_n_threads(-1) == _eff(_cpu_count())
    assert effective_n_threads(-1000) == 1
    with pytest.raises(ValueError, match="0 is not a thread count"):
        effective_n_threads(0)
    with pytest.raises(TypeError):
        effective_n_threads(2.5)


def test_default_follows_affinity_without_env():
    got = _run("import json, os, nncore; print(json.dumps([nncore.get_num_threads(), "
               "len(os.sched_getaffinity(0))]))")
    assert got[0] == got[1]


@pytest.mark.parametrize("value", ["1", "3", "2,1"])
def test_omp_num_threads_is_honoured(value):
    got = _run("import json, nncore; from nncore._kernels import runtime as rt; "
               "print(json.dumps([nncore.get_num_threads(), rt.omp_max_threads()]))", OMP_NUM_THREADS=value)
    n = int(value.split(",")[0])
    assert got == [n, n if rt.has_openmp() else 1]


def test_wait_policy_default_is_passive_but_overridable():
    code = "import json, os, nncore; print(json.dumps(os.environ['OMP_WAIT_POLICY']))"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env.pop("PYTHONPATH", None)
    out = subprocess.run([sys.executable, "-c", code], cwd=CHILD_CWD, env=child_env(env), capture_output=True,
                         text=True, timeout=60)
    assert json.loads(out.stdout) == "PASSIVE"
    assert _run(code, OMP_WAIT_POLICY="ACTIVE") == "ACTIVE"


@pytest.mark.skipif(not rt.has_openmp(), reason="built without OpenMP")
def test_threadpoolctl_sees_one_openmp_runtime_the_one_linked():
    """One OpenMP runtime is loaded, and it is the one the kernels were linked to: GCC's libgomp, or
    LLVM's libomp for a clang build (a repaired wheel bundles its libgomp under nncore.libs/)."""
    got = _run("import json, nncore, threadpoolctl; "
               "print(json.dumps([[m['prefix'], m['filepath']] for m in threadpoolctl.threadpool_info() "
               "if m['user_api'] == 'openmp']))")
    assert len(got) == 1, got
    (prefix, path), = got
    assert prefix in ("libgomp", "libomp", "libiomp"), got
    if sys.platform.startswith("linux"):
        ldd = subprocess.run(["ldd", rt.__file__], capture_output=True, text=True).stdout
        linked = [line.split("=>")[1].split()[0] for line in ldd.splitlines()
                  if "=>" in line and os.path.basename(line.split("=>")[0].strip()).startswith(prefix)]
        assert [os.path.realpath(p) for p in linked] == [os.path.realpath(path)], ldd


@pytest.mark.skipif(not rt.has_openmp(), reason="built without OpenMP")
def test_threadpoolctl_limits_the_kernels():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    before = rt.omp_max_threads()
    with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
        assert rt.omp_max_threads() == 1
        assert rt.team_size(8, 1e12) == 1  # every kernel asks nc_team_size: a team of one
        x = np.random.default_rng(0).normal(size=100000)
        np.testing.assert_array_equal(ops.activation(x, "tanh", n_threads=2),
                                      ops.activation(x, "tanh", n_threads=1))
    assert rt.omp_max_threads() == before


@pytest.mark.skipif(not rt.has_openmp(), reason="built without OpenMP")
def test_team_size_rules():
    assert rt.team_size(2, 100.0) == 1          # tiny work runs on one thread
    assert rt.team_size(1, 1e12) == 1
    assert rt.team_size(64, 1e12) == rt.omp_max_threads()  # capped by the OpenMP runtime
    assert rt.team_size(2, 1e12) == min(2, rt.omp_max_threads())


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_runs_serially():
    code = r"""
import json, os, numpy as np, nncore
from nncore import ops
from nncore._kernels import runtime as rt
x = np.random.default_rng(0).normal(size=200000)
want = ops.activation(x, "sigmoid", n_threads=2)       # the parent starts its team first
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    ok = rt.team_size(2, 1e12) == 1 and bool(np.array_equal(ops.activation(x, "sigmoid", n_threads=2), want))
    os.write(w, b"1" if ok else b"0")
    os._exit(0)
os.waitpid(pid, 0)
print(json.dumps([os.read(r, 1).decode(), rt.team_size(2, 1e12)]))
"""
    child_ok, parent_team = _run(code)
    assert child_ok == "1"
    assert parent_team == min(2, _run("import json; from nncore._kernels import runtime as rt; "
                                      "print(json.dumps(rt.omp_max_threads()))"))
