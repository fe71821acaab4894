#!/bin/sh
# chain_ab.sh BASE_CSRC VAR_CSRC [SIMD_LEVEL [ROUNDS [THREADS]]]: the float32 predict chain and its parts
# (bench/chain_ab.c) from two source trees in one process, both compiled here with the same flags: base may
# be main's tree while this checkout holds the change, and an A/A run (the same tree twice) shows the noise
# alone (gemm_ab.sh times this checkout's build against one changed gemm.c). Each gemm.c is compiled, its nc_* symbols renamed
# a_nc_* / v_nc_*; the rest (the SIMD switch, softmax, all_finite) comes from this checkout's
# build/temp.*/libnncore_c.a (run setup.py build_ext first). Level 1 = avx2, 2 = avx512.
#
#   git archive main csrc | tar -x -C /tmp/base
#   AB_LOCK=/work/lead/bench.lock sh bench/chain_ab.sh /tmp/base/csrc csrc 1 21
set -e
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
lib=$(ls "$root"/build/temp.*/libnncore_c.a | head -n 1)
tmp=$(mktemp -d)
for pair in "a:$1" "v:$2"; do
    pre=${pair%%:*}
    src=${pair#*:}
    gcc -c -I "$src" -D_REENTRANT -DNDEBUG -O3 -fwrapv -fno-math-errno -fno-trapping-math -fopenmp -fPIC \
        "$src/gemm.c" -o "$tmp/raw_$pre.o"
    nm --defined-only -g "$tmp/raw_$pre.o" | awk -v p="$pre" '{print $3" "p"_"$3}' > "$tmp/syms_$pre"
    objcopy --redefine-syms="$tmp/syms_$pre" "$tmp/raw_$pre.o" "$tmp/$pre.o"
done
gcc -O2 -I "$root/csrc" "$here/chain_ab.c" "$tmp/a.o" "$tmp/v.o" "$lib" -fopenmp -lm -o "$tmp/chain_ab"
echo "load $(cut -d' ' -f1-3 /proc/loadavg)"
${AB_LOCK:+flock "$AB_LOCK"} "$tmp/chain_ab" "${3:-1}" "${4:-15}" "${5:-1}"
echo "load $(cut -d' ' -f1-3 /proc/loadavg)"
rm -rf "$tmp"
