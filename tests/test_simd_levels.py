"""nncore.set_simd_level: its names and errors, every kernel module follows it, and it reaches the kernels.

The kernel test modules (activations, losses, convolution, reductions, recurrent cells) run every test at
each level this machine runs through conftest's ``simd_level`` fixture; the GEMM and optimizer tests loop
over the levels themselves. Here: the public switch, and proof that switching changes the code that runs
(results of the vectorised kernels differ in their last bits between the generic C copy and the AVX2/AVX-512
copy: FMA contraction and vector widths), which a load-time dispatch (GCC target_clones) could not do.
"""
import importlib
import pkgutil
import re

import numpy as np
import pytest

import nncore
import nncore._kernels as kernels_pkg
from nncore._config import SIMD_LEVELS, config
from nncore._kernels import elementwise as ew
from nncore._kernels import gemm as G
from nncore._kernels import losses as L
from nncore._kernels import norm as N
from nncore._kernels import rnn as R
from nncore._kernels import runtime as rt

AVAILABLE = SIMD_LEVELS[: rt.simd_level() + 1]
several_levels = pytest.mark.skipif(len(AVAILABLE) < 2, reason="this machine runs the generic level only")


@pytest.fixture(autouse=True)
def _best_level_after():
    yield
    nncore.set_simd_level(None)


def _module_levels():
    """The level each compiled extension (each has its own copy of the C runtime state) uses now."""
    levels = {"runtime": rt.active_simd_level()}
    for info in pkgutil.iter_modules(kernels_pkg.__path__):
        mod = importlib.import_module(f"nncore._kernels.{info.name}")
        if hasattr(mod, "_active_simd_level_here"):
            levels[info.name] = mod._active_simd_level_here()
    return levels


def test_every_extension_is_counted():
    assert {"gemm", "elementwise", "losses", "conv", "rnn", "optim", "runtime"} <= set(_module_levels())


@pytest.mark.parametrize("level", AVAILABLE)
def test_by_name_and_number_in_every_module(level):
    number = SIMD_LEVELS.index(level)
    for spelled in (level, number, np.int64(number)):
        nncore.set_simd_level("generic")
        nncore.set_simd_level(spelled)
        assert nncore.get_simd_level() == level
        assert config()["simd"] == level
        assert set(_module_levels().values()) == {number}


def test_none_and_best_restore_the_best():
    for restore in (None, "best"):
        nncore.set_simd_level("generic")
        assert nncore.get_simd_level() == "generic"
        nncore.set_simd_level(restore)
        assert nncore.get_simd_level() == config()["simd_best"] == AVAILABLE[-1]


def test_avx2_fma_is_an_alias_of_avx2():
    if "avx2" not in AVAILABLE:
        pytest.skip("no AVX2 here")
    nncore.set_simd_level("avx2+fma")
    assert nncore.get_simd_level() == "avx2"


@pytest.mark.parametrize("bad,exc,match", [
    ("sse9", ValueError, "unknown level 'sse9'"),
    (3, ValueError, "out of range"),
    (-1, ValueError, "out of range"),
    (True, TypeError, "got bool"),
    (1.0, TypeError, "got float"),
])
def test_bad_levels(bad, exc, match):
    before = nncore.get_simd_level()
    with pytest.raises(exc, match=match):
        nncore.set_simd_level(bad)
    assert nncore.get_simd_level() == before


def test_a_level_this_machine_cannot_run_is_refused():
    unavailable = SIMD_LEVELS[len(AVAILABLE):]
    if not unavailable:
        pytest.skip("this machine runs every level")
    with pytest.raises(ValueError, match=re.escape(f"{unavailable[0]!r} is not available here")):
        nncore.set_simd_level(unavailable[0])
    assert nncore.get_simd_level() == AVAILABLE[-1]


def test_config_lists_levels_compiled_and_offered(capsys):
    cfg = config()
    assert cfg["simd_compiled"] == list(SIMD_LEVELS[: rt.simd_compiled_level() + 1])
    assert cfg["simd_cpu"] == SIMD_LEVELS[rt.simd_cpu_level()]
    # the best level is the lower of what the CPU offers and what was compiled
    assert SIMD_LEVELS.index(cfg["simd_best"]) == min(rt.simd_cpu_level(), rt.simd_compiled_level())
    nncore.show_config()
    out = capsys.readouterr().out
    assert "simd_compiled" in out and "simd_cpu" in out


def test_cpu_level_agrees_with_the_kernel_flags():
    """The cpuid/XCR0 detection against what Linux reports (flags appear only when the OS enables them)."""
    try:
        with open("/proc/cpuinfo") as f:
            line = next(l for l in f if l.startswith("flags"))
    except (OSError, StopIteration):
        pytest.skip("no /proc/cpuinfo")
    flags = set(line.split(":", 1)[1].split())
    if {"avx512f", "avx512vl", "avx512bw", "avx512dq", "avx2", "fma"} <= flags:
        expected = "avx512"
    elif {"avx2", "fma", "avx"} <= flags:
        expected = "avx2"
    else:
        expected = "generic"
    assert config()["simd_cpu"] == expected


def _kernel_results():
    """float32 outputs of the vectorised kernels of each family, on fixed inputs."""
    rng = np.random.default_rng(5)
    x = rng.normal(scale=3.0, size=20011).astype(np.float32)
    z = x[:2000].reshape(200, 10).copy()
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 200)]
    out = {}
    for act in ("sigmoid", "tanh"):
        code = kernels_pkg.ACT_CODES[act]
        out[act] = ew.act_forward(code, 0.0, x, np.empty_like(x), 1)
    out["softmax_xent"] = L.softmax_xent(z, y, None, None, None, 1.0, 1)
    out["sigmoid_bce"] = L.sigmoid_bce(z, y, None, None, None, 1.0, 1)
    out["sumsq"] = ew.sumsq(x, 1)
    a, b = x[:97 * 61].reshape(97, 61).copy(), x[:61 * 53].reshape(61, 53).copy()
    out["gemm"] = G.gemm(a, b, np.empty((97, 53), np.float32), n_threads=1)
    u = 37
    gates = rng.normal(size=(9, 4 * u)).astype(np.float32)
    c_prev = rng.normal(size=(9, u)).astype(np.float32)
    c, tc, h = (np.empty((9, u), np.float32) for _ in range(3))
    sig, tanh = kernels_pkg.ACT_CODES["sigmoid"], kernels_pkg.ACT_CODES["tanh"]
    R.lstm_cell_forward(tanh, 0.0, sig, 0.0, gates, c_prev, c_prev, None, c, tc, h, 1)
    out["lstm_cell"] = h
    xn = rng.normal(loc=2.0, size=(33, 101)).astype(np.float32)
    gamma, beta = (rng.normal(size=101).astype(np.float32) for _ in range(2))
    y, stats = np.empty_like(xn), np.empty((2, 33))
    N.layernorm_forward(xn, gamma, beta, y, stats, 1e-3, 1)
    out["layernorm"] = y
    return {k: np.asarray(v) for k, v in out.items()}


@several_levels
def test_switching_changes_the_code_that_runs():
    nncore.set_simd_level("generic")
    generic = _kernel_results()
    nncore.set_simd_level(None)
    best = _kernel_results()
    again = _kernel_results()
    for name in generic:
        np.testing.assert_array_equal(best[name], again[name], err_msg=f"{name}: not deterministic")
        assert not np.array_equal(generic[name], best[name]), f"{name}: the same bits at generic and {AVAILABLE[-1]}"
        # the same values to float32 rounding (gemm sums 61 products of magnitude ~10: cancellation)
        np.testing.assert_allclose(generic[name], best[name], rtol=1e-5, atol=1e-6 * np.abs(best[name]).max(),
                                   err_msg=name)
    nncore.set_simd_level("generic")
    back = _kernel_results()
    for name in generic:
        np.testing.assert_array_equal(generic[name], back[name], err_msg=f"{name}: generic differs on return")


def test_bench_simd_flag_runs_the_suite_at_that_level(tmp_path, capsys):
    import json
    import os
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if root not in sys.path:
        sys.path.append(root)  # for `bench`, after an installed nncore
    from bench.run import main

    out = tmp_path / "r.json"
    rc = main(["--simd", "generic", "--workloads", "tiny", "--peers", "nncore", "--threads", "1", "--repeats", "1",
               "--min-time", "0", "--pause", "0", "--max-samples", "64", "--no-memory", "--no-fma-peak", "--quiet",
               "--json", str(out)])
    assert rc == 0
    res = json.loads(out.read_text())
    assert res["machine"]["simd"] == "generic" and res["settings"]["simd"] == "generic"
    assert "SIMD (nncore): generic" in capsys.readouterr().out
