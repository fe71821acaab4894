"""nncore's benchmark suite: nncore against PyTorch, scikit-learn, Keras 3 and NumPy by hand.

Run ``python -m bench`` from the repository root (``python -m bench --help`` for
the options, ``python -m bench --quick`` for a short run). See bench/RESULTS.md.
"""
import os as _os

# The environment as the user gave it, before nncore's import sets its
# OpenMP defaults: subprocesses (the OPENBLAS-unset worker, the memory probes)
# start from this copy.
ORIGINAL_ENV = dict(_os.environ)


def child_env(env):
    """`env` for a bench subprocess (``python -m bench.<x>``, run with ``cwd=CHILD_CWD``): the
    repository (for ``bench``) on PYTHONPATH, after the directory of the nncore this process
    imported, so that the child runs the same nncore: the checkout's in-place or editable build,
    or an installed wheel, which the checkout's uncompiled sources must not shadow."""
    import sys

    root = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
    paths = [root]
    nncore = sys.modules.get("nncore")
    if nncore is not None:
        paths.insert(0, _os.path.dirname(_os.path.dirname(_os.path.abspath(nncore.__file__))))
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    return dict(env, PYTHONPATH=_os.pathsep.join(dict.fromkeys(paths)))


# the working directory of bench subprocesses: `python -m` puts it first on sys.path, and the
# repository root would put its uncompiled nncore/ before an installed one
CHILD_CWD = _os.path.dirname(_os.path.abspath(__file__))
