"""Which nncore the tests run against, for the tests that start other Python processes.

``ROOT`` is the checkout. ``HOME`` is the directory holding the nncore package this test run
imported: the checkout for an in-place or editable build, site-packages for an installed wheel
(``NNCORE_TEST_INSTALLED=1``, what CI tests). A child process must import that same nncore, so it
gets ``HOME`` first on its path (``child_path``, ``child_env``) and runs in ``CHILD_CWD``, outside
the checkout root: ``python -c`` and ``python -m`` put the working directory first on sys.path,
and the checkout's uncompiled nncore/ would shadow an installed wheel there.
"""
import os

import nncore

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOME = os.path.dirname(os.path.dirname(os.path.abspath(nncore.__file__)))
CHILD_CWD = os.path.dirname(os.path.abspath(__file__))


def child_path():
    """Entries a child script puts first on sys.path (``sys.path[:0] = child_path()``)."""
    return [HOME]


def child_env(env=None, **extra):
    """A copy of ``env`` (default os.environ) plus ``extra``, with HOME first on PYTHONPATH."""
    env = dict(os.environ if env is None else env, **extra)
    env["PYTHONPATH"] = os.pathsep.join([HOME] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env
