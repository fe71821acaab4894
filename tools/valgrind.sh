#!/usr/bin/env bash
# Run a small nncore workload (tools/valgrind_workload.py: fit, predict, save,
# load) under valgrind memcheck, using the in-place build of this checkout
# (python setup.py build_ext --inplace first). Fails on any memory error
# (invalid read/write, use of uninitialised values in a branch, bad free).
#
#   tools/valgrind.sh                       # the default workload
#   tools/valgrind.sh path/to/script.py     # another script
#
# PYTHONMALLOC=malloc makes CPython use malloc so that memcheck sees its
# blocks; leak checking is off (CPython keeps many objects until exit).
# CPython and the dynamic loader produce known false reports (longobject.c,
# dl-load.c strncmp); a report counts when any frame of its stack, or of the
# allocation it points to, lies in nncore's compiled code (nncore/_kernels/*.so,
# csrc/, an nc_* function). Those are listed and fail the run; the others are
# counted.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
command -v valgrind > /dev/null || { echo "valgrind.sh: valgrind is not installed" >&2; exit 2; }
ls "$ROOT"/nncore/_kernels/gemm*.so > /dev/null 2>&1 || {
    echo "valgrind.sh: build first: python setup.py build_ext --inplace" >&2; exit 2; }
SCRIPT="${1:-$ROOT/tools/valgrind_workload.py}"
LOG="${NNCORE_VALGRIND_LOG:-$ROOT/build/valgrind.log}"
mkdir -p "$(dirname "$LOG")"
cd "$ROOT"
PY="$(python -c "import sys; print(sys.executable)")"   # the real binary, not a pyenv shim
PYTHONMALLOC=malloc OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}" valgrind \
    --tool=memcheck --error-exitcode=99 --leak-check=no --track-origins=yes \
    --num-callers=40 --log-file="$LOG" \
    "$PY" "$SCRIPT" && rc=0 || rc=$?
if [ "$rc" -ne 0 ] && [ "$rc" -ne 99 ]; then
    tail -30 "$LOG"; echo "valgrind.sh: the workload itself failed (exit $rc)" >&2; exit 1
fi
"$PY" - "$LOG" <<'PY'
import re, sys
log = open(sys.argv[1]).read().splitlines()
blocks, cur = [], None
for line in log:
    m = re.match(r"==\d+== (.*)$", line)
    if not m:
        continue
    text = m.group(1)
    if text and not text.startswith(" ") and re.match(r"(Invalid|Conditional|Use of|Syscall|Mismatched|Source and|Argument|Jump)", text):
        cur = [text]
        blocks.append(cur)
    elif text.strip() == "":
        cur = None
    elif cur is not None:
        cur.append(text)
ours = [b for b in blocks if any(re.search(r"nncore/_kernels/|csrc/|_body\.h|\bnc_\w+_f(32|64)\b|\bnc_\w+ \(", f) for f in b)]
print(f"valgrind.sh: {len(blocks)} distinct reports, {len(blocks) - len(ours)} outside nncore "
      f"(CPython/ld.so/NumPy false positives), {len(ours)} in nncore")
for b in ours:
    print("\n".join(b[:14]))
    print()
sys.exit(1 if ours else 0)
PY
echo "valgrind.sh: clean (full log: $LOG)"
