"""nncore's benchmark suite: nncore against PyTorch, scikit-learn, Keras 3 and NumPy by hand.

Run ``python -m bench`` from the repository root (``python -m bench --help`` for
the options, ``python -m bench --quick`` for a short run). See bench/RESULTS.md.
"""
import os as _os

# The environment as the user gave it, before nncore's import sets its
# OpenMP defaults: subprocesses (the OPENBLAS-unset worker, the memory probes)
# start from this copy.
ORIGINAL_ENV = dict(_os.environ)


def thread_median_ms(f, reps):
    """Median thread CPU time of ``reps`` calls of ``f`` (after one warm-up call), in ms: the bench scripts'
    kernel-by-kernel timing where one thread runs."""
    import time
    f()
    ts = []
    for _ in range(reps):
        t0 = time.thread_time()
        f()
        ts.append(time.thread_time() - t0)
    ts.sort()
    m = len(ts) // 2
    return (ts[m] if len(ts) % 2 else 0.5 * (ts[m - 1] + ts[m])) * 1e3


def interleaved_fit_ms(models, x, y, wl, threads, repeats):
    """{name: median ms a step} of one-epoch fits of each built model of ``models`` ({name: model}) on
    workload ``wl``'s data, the models taking turns ``repeats`` times: thread CPU time at 1 thread, wall time
    otherwise (the A/B scripts' loop)."""
    import statistics
    import time

    clock = time.thread_time if threads == 1 else time.perf_counter
    times = {name: [] for name in models}
    for _ in range(repeats):
        for name, model in models.items():
            t0 = clock()
            model.fit(x, y, batch_size=wl.batch, epochs=1, verbose=0)
            times[name].append((clock() - t0) / wl.steps() * 1e3)
    return {name: statistics.median(t) for name, t in times.items()}


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


# ------------------------------------------------------------------------------------ SIMD levels
# The switches that cap a peer library's SIMD level, by nncore's level name. Each is read when the
# library loads or at its first call, so set_simd sets them before the peers' first use (ATen's
# capability and oneDNN's ISA are read lazily: after `import torch` too, before its first operator).
# OpenBLAS reads OPENBLAS_CORETYPE when it loads, i.e. at NumPy's import, which every bench script
# makes before it parses its options: the BLAS peers at a forced level run in a subprocess started
# with it (bench/run.py's worker, bench/gemm.py's NumPy child). "avx512" is each peer's own level.
# Not switchable: ONNX Runtime (MLAS picks its kernels from cpuid, no override) and MKL on AMD CPUs
# (its Zen code path, AVX2 kernels, whatever MKL_ENABLE_INSTRUCTIONS says): peer_levels() says so.
PEER_SIMD_ENV = {
    "avx512": {},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2",
             "OPENBLAS_CORETYPE": "Haswell"},
    "generic": {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2", "ONEDNN_MAX_CPU_ISA": "SSE41",
                "OPENBLAS_CORETYPE": "Prescott"},
}


def peer_simd_env(level, own=False):
    """The environment variables that put the peers at nncore's SIMD `level` (None: the best, as
    "avx512"); {} with own=True (``--peers-own-simd``: every peer at its own level)."""
    if level is None or own:
        return {}
    if level not in PEER_SIMD_ENV:
        raise ValueError(f"SIMD level: expected one of {list(PEER_SIMD_ENV)}, got {level!r}")
    return dict(PEER_SIMD_ENV[level])


def set_simd(level, peers_own=False, nncore=True):
    """What every bench script's ``--simd LEVEL`` does: nncore's kernels at `level`
    (nncore.set_simd_level; skipped with nncore=False or level None) and the peers' switches of
    peer_simd_env(level, peers_own) in os.environ, for the libraries this process loads from now on
    and for the subprocesses it starts. Returns the variables set. Call it before the peers' first
    operator (torch may be imported already); see peer_levels for what took effect."""
    env = peer_simd_env(level, peers_own)
    _os.environ.update(env)
    if nncore and level is not None:
        import nncore as _nncore

        _nncore.set_simd_level(level)
    return env


def _captured_stdout(fn):
    """What `fn` writes to file descriptor 1 (the C libraries' verbose lines), as text."""
    import sys
    import tempfile

    sys.stdout.flush()
    with tempfile.TemporaryFile(mode="w+") as f:
        saved = _os.dup(1)
        _os.dup2(f.fileno(), 1)
        try:
            fn()
        finally:
            _os.dup2(saved, 1)
            _os.close(saved)
        f.seek(0)
        return f.read()


def _cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _cpu_best():
    flags = _cpu_flags()
    if {"avx512f", "avx512bw", "avx512dq", "avx512vl"} <= flags:
        return "AVX512"
    return "AVX2" if {"avx2", "fma"} <= flags else "SSE"


def _mkl_level(torch):
    """MKL's level in torch: from the header of its verbose output, or on AMD its Zen path's AVX2."""
    import ctypes

    head = _captured_stdout(lambda: _mkl_call(torch)).splitlines()
    head = next((s for s in head if s.startswith("MKL_VERBOSE") and "processors" in s), "")
    for key, name in (("AVX-512", "AVX512"), ("AVX512", "AVX512"), ("AVX2", "AVX2"), ("AVX)", "AVX"),
                      ("SSE4.2", "SSE4_2"), ("SSE4_2", "SSE4_2")):
        if key in head:
            return name
    try:   # MKL's own answer to "is this an AMD Zen?" (statically linked into libtorch_cpu)
        lib = ctypes.CDLL(_os.path.join(_os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so"))
        if lib.mkl_serv_cpuiszen():
            return "AVX2 (its Zen kernels: no switch on AMD)"
    except (OSError, AttributeError):
        pass
    return "?" if not head else f"? ({head.split('processors')[0].split('architecture')[-1].strip()} processors)"


def _mkl_call(torch):
    with torch.backends.mkl.verbose(torch.backends.mkl.VERBOSE_ON):
        torch.mm(torch.ones(64, 64), torch.ones(64, 64))


def _onednn_level(torch):
    """oneDNN's ISA (the info line of its verbose output) and the convolution's implementation."""
    def conv():
        with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
            torch.nn.functional.conv2d(torch.ones(8, 16, 16, 16), torch.ones(16, 16, 3, 3))
    isa, impl = "?", "?"
    for line in _captured_stdout(conv).splitlines():
        parts = line.split(",")
        if ",info,cpu,isa:" in line:
            isa = line.split("isa:", 1)[1].strip().replace("Intel ", "").replace(" support", "")
        elif len(parts) > 6 and parts[2] == "primitive" and parts[5] == "convolution":
            impl = parts[6]
    return f"{isa} (conv {impl})"


def torch_levels():
    """{"aten", "mkl", "onednn"}: the levels torch runs at in this process (its first operators run
    here: call it after set_simd)."""
    import torch

    return {"aten": torch.backends.cpu.get_cpu_capability(), "mkl": _mkl_level(torch),
            "onednn": _onednn_level(torch)}


def openblas_level():
    """The kernels (OPENBLAS_CORETYPE's names) of the OpenBLAS NumPy loaded in this process."""
    try:
        import threadpoolctl
    except ImportError:
        return "?"
    archs = [d.get("architecture") for d in threadpoolctl.threadpool_info() if d.get("internal_api") == "openblas"]
    return ", ".join(sorted({a for a in archs if a})) or "?"


def peer_levels(names, blas_level=None):
    """{library: text}: the SIMD level each library behind the peer `names` runs at (torch's from
    torch_levels(); NumPy's OpenBLAS from this process, or `blas_level` where the BLAS peers run in a
    subprocess). ONNX Runtime's MLAS has no switch: its own level, from the CPU's flags."""
    out = {}
    if any(n.startswith("torch") or n == "keras" for n in names):
        try:
            lv = torch_levels()
            out["torch"] = f"{lv['aten']} (ATen {lv['aten']}, MKL {lv['mkl']}, oneDNN {lv['onednn']})"
        except ImportError:
            pass
    if any(n in ("numpy", "sklearn") for n in names):
        out["openblas"] = blas_level or openblas_level()
    if "onnxruntime" in names:
        out["onnxruntime"] = f"own level ({_cpu_best()}: MLAS has no switch)"
    return out
