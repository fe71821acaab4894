"""Running a script in a fresh interpreter under a time limit (tests that need a clean process)."""
import os
import signal
import subprocess

import pytest


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
