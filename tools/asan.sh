#!/usr/bin/env bash
# Build nncore's C kernels and Cython extensions with AddressSanitizer and
# UndefinedBehaviorSanitizer in a scratch copy of the tree, then run the
# kernel and model tests under them. Any report makes the run fail.
#
#   tools/asan.sh                      # default test selection (see below)
#   tools/asan.sh tests/test_gemm.py   # any pytest arguments instead
#
# The in-place build of the checkout is left untouched: the sanitized tree
# lives in ${NNCORE_ASAN_DIR:-build/asan-tree}. Python itself is not
# instrumented, so the sanitizer runtimes are preloaded. Leak detection is
# off: CPython's interned objects and caches look like leaks to LSan.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TREE="${NNCORE_ASAN_DIR:-$ROOT/build/asan-tree}"
CC="${CC:-gcc}"

ASAN_LIB="$($CC -print-file-name=libasan.so)"
UBSAN_LIB="$($CC -print-file-name=libubsan.so)"
for lib in "$ASAN_LIB" "$UBSAN_LIB"; do
    [ -f "$lib" ] || { echo "asan.sh: $CC has no $(basename "$lib") (install libasan/libubsan)" >&2; exit 2; }
done

echo "asan.sh: copying the tree to $TREE"
mkdir -p "$TREE"
( cd "$ROOT" && git ls-files -co --exclude-standard -z ) | \
    ( cd "$ROOT" && xargs -0 tar cf - ) | ( cd "$TREE" && tar xf - )
# The scratch tree is only ever built with the sanitizer flags, so its build/ is reused
# (setup.py rebuilds what changed; tar keeps the sources' times). NNCORE_ASAN_CLEAN=1 starts over.
if [ -n "${NNCORE_ASAN_CLEAN:-}" ]; then
    find "$TREE/nncore" -name '*.so' -delete
    rm -rf "$TREE/build"
fi

SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g"
echo "asan.sh: building with $SAN"
# The flags go into CC itself: distutils links setup.py's OpenMP probe executable
# with plain $CC (no LDFLAGS), and a sanitized object would not link there,
# silently giving a serial build.
( cd "$TREE" && CC="$CC $SAN" \
    python setup.py build_ext --inplace > "$TREE/asan-build.log" 2>&1 ) || {
    tail -40 "$TREE/asan-build.log"; echo "asan.sh: build failed" >&2; exit 2; }
if [ -z "${NNCORE_NO_OPENMP:-}" ] && grep -q "cannot build and run an OpenMP program" "$TREE/asan-build.log"; then
    echo "asan.sh: the sanitized build lost OpenMP (see $TREE/asan-build.log)" >&2; exit 2
fi
# the extensions really are instrumented
for so in "$TREE"/nncore/_kernels/*.so; do
    n_asan="$(nm -D "$so" | grep -c __asan_report || true)"
    [ "$n_asan" -gt 0 ] || { echo "asan.sh: $so is not instrumented" >&2; exit 2; }
done

cd "$TREE"
export LD_PRELOAD="$ASAN_LIB $UBSAN_LIB"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export PYTHONMALLOC=malloc   # let ASan see every Python allocation, too
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"

# Self-check: a deliberate heap overflow through a kernel must be reported,
# otherwise a clean run below would prove nothing.
if python - > asan-canary.log 2>&1 <<'PY'
import ctypes, glob
lib = ctypes.CDLL(glob.glob("nncore/_kernels/elementwise*.so")[0])
x = (ctypes.c_double * 64)()
out = (ctypes.c_double * 4)()          # 8 columns do not fit in 4
lib.nc_colsum_f64(x, out, ctypes.c_ssize_t(8), ctypes.c_ssize_t(8), 1)
PY
then
    echo "asan.sh: the self-check overflow was NOT detected; sanitizers are not active" >&2; exit 2
fi
grep -q "heap-buffer-overflow" asan-canary.log || { cat asan-canary.log; exit 2; }
echo "asan.sh: self-check ok (a deliberate overflow is reported)"

if [ "$#" -eq 0 ]; then
    # kernels, layers, models, saving, validation; the subprocess-heavy fork/import-order
    # tests load torch and scikit-learn, which do not run under a preloaded ASan runtime
    set -- tests -q -x -p no:cacheprovider \
        --ignore=tests/test_fork.py --ignore=tests/test_concurrency.py
fi

echo "asan.sh: running pytest $*"
python -m pytest "$@"
echo "asan.sh: clean"
