#!/bin/sh
# gemm_ab.sh CSRC_DIR [SIMD_LEVEL] [-Dflags...]: the float32 GEMM and dense chain of two builds in one process.
#
#   sh bench/gemm_ab.sh /path/to/changed/csrc 1
#
# "base" is this checkout's build (build/temp.*/libnncore_c.a: run setup.py build_ext first), "var" is
# CSRC_DIR/gemm.c compiled here with its nc_* symbols renamed v_nc_* (the rest, e.g. nc_act_forward and
# the SIMD level switch, comes from the base library). bench/gemm_ab.c times both in turns, thread CPU time,
# one thread; level 1 = avx2, 2 = avx512. With AB_LOCK=/path/to/lock the timed run (not the build) holds
# that lock (flock). Variants of a kernel A/B'd this way
# in one process keep the machine's state (load, clock, cache pollution) alike for both.
set -e
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
src=$1
level=${2:-1}
if [ $# -ge 2 ]; then shift 2; else shift $#; fi
lib=$(ls "$root"/build/temp.*/libnncore_c.a | head -n 1)
tmp=$(mktemp -d)
gcc -c -I "$src" -D_REENTRANT -DNDEBUG -O3 -fwrapv -fno-math-errno -fno-trapping-math -fopenmp -fPIC "$@" \
    "$src/gemm.c" -o "$tmp/raw.o"
nm --defined-only -g "$tmp/raw.o" | awk '{print $3" v_"$3}' > "$tmp/syms"
objcopy --redefine-syms="$tmp/syms" "$tmp/raw.o" "$tmp/var.o"
gcc -O2 -I "$root/csrc" "$here/gemm_ab.c" "$tmp/var.o" "$lib" -fopenmp -lm -o "$tmp/gemm_ab"
${AB_LOCK:+flock "$AB_LOCK"} "$tmp/gemm_ab" "$level"
rm -rf "$tmp"
