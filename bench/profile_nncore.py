"""Where a training step's time goes: one peer's epochs under cProfile or py-spy.

``python -m bench.profile_nncore --workload tiny [--peer nncore] [--epochs N] [--threads 2] [--top 25]``
``python -m bench.profile_nncore --workload tiny --py-spy [--rate 200]``

cProfile (the default): after a warm-up epoch it times N epochs without the
profiler, then profiles N more and prints the top functions by own time. Cython
3 functions are invisible to cProfile, so the kernels' time shows up as the own
time of the Python function that calls them; cProfile also adds about a
microsecond per Python call. Good for counting calls per step.

py-spy (``--py-spy``, ``pip install py-spy``): samples the native and Python
stacks of a child running the same epochs and splits the samples taken inside
the training loop by their innermost frame: nncore's C kernels, Cython
wrappers, OpenMP runtime, NumPy, OpenBLAS, libc (allocation, copies), CPython
(interpreter and object machinery) and Python lines; then by the innermost
nncore Python function (inclusive), which shows which part of fit costs what.

For training workloads both print the GEMM FLOP rate a step reaches (2 m k n
per GEMM: forward, dW, and dX except for the first layer), to compare with the
machine's FMA peak.
"""
import argparse
import collections
import cProfile
import io
import math
import os
import pstats
import re
import shutil
import subprocess
import sys
import tempfile
import time

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    __package__ = "bench"

from bench.peers import get_peer_class  # noqa: E402
from bench.workloads import WORKLOADS, get_workload, make_data  # noqa: E402


def gemm_flops_per_step(wl, batch=None):
    """FLOPs of the GEMMs in one training step: forward z = a W, dW = a^T delta, dX = delta W^T."""
    m = wl.batch if batch is None else batch
    pairs = list(zip(wl.layers[:-1], wl.layers[1:]))
    flops = 0
    for i, (k, n) in enumerate(pairs):
        flops += 2 * m * k * n * (3 if i else 2)  # the first layer needs no dX
    return flops


def fit_call_overhead(peer, reps=200):
    """(seconds per fit(epochs=1) call, seconds per epoch inside one fit(epochs=reps)) for a Keras-style peer."""
    model, wl = peer.model, peer.wl
    best_single = best_multi = math.inf
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(reps):
            model.fit(peer.x, peer.y, batch_size=wl.batch, epochs=1, shuffle=True, verbose=0)
        best_single = min(best_single, (time.perf_counter() - t0) / reps)
        t0 = time.perf_counter()
        model.fit(peer.x, peer.y, batch_size=wl.batch, epochs=reps, shuffle=True, verbose=0)
        best_multi = min(best_multi, (time.perf_counter() - t0) / reps)
    return best_single, best_multi


def classify(func):
    """'builtin' (C functions cProfile sees: NumPy, torch...) or 'python' (with the Cython kernels they call)."""
    return "builtin" if func[0] == "~" else "python"


def profile(peer_name, workload, epochs, threads, top, max_samples=None):
    wl = get_workload(workload, max_samples)
    cls = get_peer_class(peer_name)
    ok, why = cls.available()
    if not ok:
        raise SystemExit(f"{peer_name}: {why}")
    x, y = make_data(wl)
    peer = cls(wl, x, y)
    peer.set_threads(threads)
    peer.run(1)  # warm-up
    t0 = time.perf_counter()
    peer.run(epochs)
    plain = (time.perf_counter() - t0) / (epochs * wl.steps())
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    peer.run(epochs)
    prof.disable()
    profiled = (time.perf_counter() - t0) / (epochs * wl.steps())
    stats = pstats.Stats(prof)
    groups = {"builtin": 0.0, "python": 0.0}
    calls = {"builtin": 0, "python": 0}
    for func, (cc, nc, tt, ct, callers) in stats.stats.items():
        g = classify(func)
        groups[g] += tt
        calls[g] += nc
    steps = epochs * wl.steps()
    total = sum(groups.values())
    lines = [f"# {peer_name} on {wl.name} {wl.layers}, batch {wl.batch}, {wl.samples} samples, {threads} thread(s), "
             f"{epochs} epoch(s) = {steps} steps",
             f"per step: {plain * 1e6:.1f} us without the profiler, {profiled * 1e6:.1f} us with it"]
    for g in ("builtin", "python"):
        lines.append(f"  {g:8s}: {groups[g] / steps * 1e6:9.1f} us/step ({100 * groups[g] / total:5.1f}%), "
                     f"{calls[g] / steps:6.1f} calls/step")
    if wl.task == "train":
        flops = gemm_flops_per_step(wl)
        lines.append(f"GEMM work: {flops / 1e6:.2f} MFLOP/step -> {flops / plain / 1e9:.1f} GFLOP/s over the whole "
                     "step (un-profiled)")
    if hasattr(peer, "model") and hasattr(peer.model, "fit") and wl.task == "train":
        reps = max(3, min(200, int(0.3 / max(plain * wl.steps(), 1e-6))))
        single, multi = fit_call_overhead(peer, reps)
        lines.append(f"fit(epochs=1) called {reps} times: {single * 1e6:.0f} us per call; one fit(epochs={reps}): "
                     f"{multi * 1e6:.0f} us per epoch -> fixed cost of a fit() call ~{(single - multi) * 1e6:.0f} us "
                     f"(best of 3)")
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(top)
    lines.append(out.getvalue())
    return "\n".join(lines)


CATEGORIES = (  # (name, test on the innermost frame "function (file:line)" or "0xaddr (lib)")
    ("nncore C kernels", lambda f: f.startswith("nc_") or re.search(r"\(\S*(csrc/|_body\.h)", f) is not None),
    ("Cython wrappers", lambda f: "__pyx" in f or re.search(r"nncore/_kernels/\S+\.c:", f) is not None),
    ("OpenMP runtime", lambda f: "gomp" in f.lower() or "GOMP_" in f),
    ("OpenBLAS", lambda f: "openblas" in f.lower()),
    ("NumPy C", lambda f: "numpy/" in f and ".py:" not in f),
    ("PyTorch C++", lambda f: "torch/lib" in f or "libtorch" in f),
    ("libc (alloc, copy)", lambda f: "libc.so" in f or f.startswith(("malloc", "free", "mem", "__mem"))),
    ("Python lines", lambda f: ".py:" in f),
)


def categorize(frame):
    for name, test in CATEGORIES:
        if test(frame):
            return name
    return "CPython runtime, other"


def parse_py_spy_raw(text, marker="run (bench/peers.py"):
    """Split py-spy's raw (collapsed) samples inside the training loop by innermost frame and nncore function."""
    by_cat, by_func, by_leaf = collections.Counter(), collections.Counter(), collections.Counter()
    total = 0
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit() or marker not in stack:
            continue
        n = int(count)
        frames = stack.split(";")
        while len(frames) > 1 and re.search(r"intrin\.h:\d+\)$", frames[-1]):
            frames.pop()  # an inlined SIMD intrinsic: charge the kernel it sits in
        total += n
        by_cat[categorize(frames[-1])] += n
        by_leaf[re.sub(r":\d+\)$", ")", frames[-1])] += n
        inner = next((f for f in reversed(frames) if re.search(r"\(nncore/\S+\.py:\d+\)", f)), None)
        if inner is not None:
            by_func[re.sub(r":\d+\)$", ")", inner)] += n
        else:
            by_func["(outside nncore's Python code)"] += n
    return total, by_cat, by_func, by_leaf


def py_spy(peer, workload, epochs, threads, rate, top, max_samples=None):
    exe = shutil.which("py-spy")
    if exe is None:
        raise SystemExit("py-spy is not installed (pip install py-spy)")
    wl = get_workload(workload, max_samples)
    with tempfile.TemporaryDirectory() as tmp:
        raw = os.path.join(tmp, "stacks.txt")
        cmd = [exe, "record", "--native", "--format", "raw", "--rate", str(rate), "--output", raw, "--",
               sys.executable, "-m", "bench.profile_nncore", "--peer", peer, "--workload", workload,
               "--epochs", str(epochs), "--threads", str(threads), "--no-profile"]
        if max_samples:
            cmd += ["--max-samples", str(max_samples)]
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        child = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
        if child.returncode != 0 or not os.path.exists(raw):
            raise SystemExit(f"py-spy failed ({child.returncode}): {child.stderr[-2000:]}")
        with open(raw) as f:
            total, by_cat, by_func, by_leaf = parse_py_spy_raw(f.read())
    echo = [t for t in child.stdout.splitlines() if t.strip() and not t.startswith("py-spy>")]
    lines = echo + [
             f"py-spy: {total} samples inside the training loop at {rate} Hz, by innermost frame:"]
    for name, n in by_cat.most_common():
        lines.append(f"  {100 * n / max(total, 1):5.1f}%  {name}")
    lines.append("innermost functions:")
    for name, n in by_leaf.most_common(top):
        lines.append(f"  {100 * n / max(total, 1):5.1f}%  {name}")
    lines.append("by innermost nncore Python function (inclusive of what it calls):")
    for name, n in by_func.most_common(top):
        lines.append(f"  {100 * n / max(total, 1):5.1f}%  {name}")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.profile_nncore", description=__doc__.split("\n\n")[0])
    p.add_argument("--workload", choices=list(WORKLOADS), default="tiny")
    p.add_argument("--peer", default="nncore")
    p.add_argument("--epochs", type=int, default=None, help="default: enough for about 1 s")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--max-samples", type=int, default=None)
    p.add_argument("--py-spy", action="store_true", help="sample native stacks with py-spy instead of cProfile")
    p.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    p.add_argument("--no-profile", action="store_true", help=argparse.SUPPRESS)  # the child under py-spy
    args = p.parse_args(argv)
    epochs = args.epochs or {"tiny": 300, "small": 20, "medium": 2, "large": 2, "predict": 5}[args.workload]
    if args.py_spy:
        print(py_spy(args.peer, args.workload, epochs, args.threads, args.rate, args.top, args.max_samples))
    elif args.no_profile:
        wl = get_workload(args.workload, args.max_samples)
        x, y = make_data(wl)
        peer = get_peer_class(args.peer)(wl, x, y)
        peer.set_threads(args.threads)
        peer.run(1)
        t0 = time.perf_counter()
        peer.run(epochs)
        dt = (time.perf_counter() - t0) / (epochs * wl.steps())
        print(f"# {args.peer} on {wl.name}: {dt * 1e6:.1f} us/step over {epochs} epoch(s), under py-spy")
    else:
        print(profile(args.peer, args.workload, epochs, args.threads, args.top, args.max_samples))
    return 0


if __name__ == "__main__":
    sys.exit(main())
