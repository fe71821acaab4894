"""Child processes of the tests: which nncore they import, and running one under a time limit.

``ROOT`` is the checkout. ``HOME`` is the directory holding the nncore package this test run
imported: the checkout for an in-place or editable build, site-packages for an installed wheel
(``NNCORE_TEST_INSTALLED=1``, what CI tests). A child process must import that same nncore, so it
gets ``HOME`` first on its path (``child_env``, or ``sys.path.insert(0, HOME)`` in its code) and runs
in ``CHILD_CWD``, outside the checkout root: ``python -c`` and ``python -m`` put the working directory
first on sys.path, and the checkout's uncompiled nncore/ would shadow an installed wheel there.
"""
import os
import signal
import subprocess

import pytest

import nncore

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOME = os.path.dirname(os.path.dirname(os.path.abspath(nncore.__file__)))
CHILD_CWD = os.path.dirname(os.path.abspath(__file__))


def child_env(env=None, **extra):
    """A copy of ``env`` (default os.environ) plus ``extra``, with HOME first on PYTHONPATH."""
    env = dict(os.environ if env is None else env, **extra)
    env["PYTHONPATH"] = os.pathsep.join([HOME] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env


def run_isolated(argv, cwd, env, timeout):
    """Run argv in its own process group; on timeout kill the whole group (workers included) and
    fail the test with what it printed. Returns (returncode, stdout and stderr as text)."""
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"hung (killed after {timeout} s); output:\n{out.decode(errors='replace')}")
    return proc.returncode, out.decode(errors="replace")
