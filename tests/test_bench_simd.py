"""bench's ``--simd LEVEL``: the peers' switches for the level (bench.PEER_SIMD_ENV), set before their
first operator, and the levels each peer really ran at in the run's metadata and report header.

The end-to-end runs are subprocesses: torch reads ATEN_CPU_CAPABILITY and oneDNN its ISA once, at their
first operator, which this test process has long made. No timing is checked.
"""
import json
import os
import sys

import pytest

from cpu_flags import cpu_flags
from subprocess_common import CHILD_CWD, ROOT, child_env, run_isolated

if ROOT not in sys.path:
    sys.path.append(ROOT)   # for `bench`, after site-packages (an installed nncore must win)

import bench  # noqa: E402
from bench.run import _peer_simd_line, parse_args  # noqa: E402

SWITCHES = ("ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA", "OPENBLAS_CORETYPE")


def test_peer_simd_env_per_level():
    assert bench.peer_simd_env("avx2") == {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
                                           "ONEDNN_MAX_CPU_ISA": "AVX2", "OPENBLAS_CORETYPE": "Haswell"}
    assert set(bench.peer_simd_env("generic")) == set(SWITCHES)
    assert bench.peer_simd_env("avx512") == {} and bench.peer_simd_env(None) == {}
    assert bench.peer_simd_env("avx2", own=True) == {}
    with pytest.raises(ValueError, match="avx3"):
        bench.peer_simd_env("avx3")
    env = bench.peer_simd_env("avx2")
    env.clear()   # a copy: the table stays intact
    assert bench.peer_simd_env("avx2")


def test_set_simd_sets_the_switches_and_nncore_level(monkeypatch):
    import nncore

    for k in SWITCHES:
        monkeypatch.setenv(k, "user's")   # the undo puts the caller's environment back
    assert bench.set_simd("avx2", peers_own=True, nncore=False) == {}
    assert all(os.environ[k] == "user's" for k in SWITCHES)
    assert bench.set_simd("avx2", nncore=False) == bench.peer_simd_env("avx2")
    assert {k: os.environ[k] for k in SWITCHES} == bench.peer_simd_env("avx2")
    if "avx2" not in nncore._config.config()["simd_compiled"] or "avx2" not in (cpu_flags() or []):
        return
    try:
        bench.set_simd("avx2", peers_own=True)
        assert nncore.get_simd_level() == "avx2"
    finally:
        nncore.set_simd_level(None)


def test_options_and_header_line():
    assert parse_args(["--simd", "avx2"]).peer_env == bench.peer_simd_env("avx2")
    assert parse_args(["--simd", "avx2", "--peers-own-simd"]).peer_env == {}
    assert parse_args([]).peer_env == {}
    ps = {"simd": "avx2", "peers_own_simd": False, "env": {"ATEN_CPU_CAPABILITY": "avx2"},
          "levels": {"torch": "AVX2 (ATen AVX2)", "onnxruntime": "own level (AVX512: MLAS has no switch)"}}
    line = _peer_simd_line(ps)
    assert line.startswith("torch: AVX2 (ATen AVX2); onnxruntime: own level") and "ATEN_CPU_CAPABILITY=avx2" in line
    assert "own level" in _peer_simd_line(dict(ps, peers_own_simd=True, env={}))
    assert _peer_simd_line(None) == "not recorded"


def _run_bench(tmp_path, *extra):
    out = tmp_path / "r.json"
    env = {k: v for k, v in child_env().items() if k not in SWITCHES}
    env["PYTHONPATH"] += os.pathsep + ROOT
    rc, text = run_isolated([sys.executable, "-m", "bench", "--workloads", "tiny", "--peers", "nncore,torch,numpy",
                             "--threads", "1", "--repeats", "1", "--min-time", "0", "--pause", "0",
                             "--max-samples", "64", "--no-memory", "--no-fma-peak", "--quiet", "--json", str(out),
                             *extra], CHILD_CWD, env, timeout=300)
    assert rc == 0, text
    return json.loads(out.read_text()), text


def test_bench_forces_the_peers_and_says_so(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("threadpoolctl")
    import nncore

    flags = cpu_flags() or []
    if "avx2" not in flags or "avx2" not in nncore._config.config()["simd_compiled"]:
        pytest.skip("needs a CPU and a build with the AVX2 level")
    res, text = _run_bench(tmp_path, "--simd", "avx2")
    ps = res["machine"]["peer_simd"]
    assert ps["simd"] == "avx2" and ps["env"] == bench.peer_simd_env("avx2") and not ps["peers_own_simd"]
    assert res["machine"]["simd"] == "avx2" and res["machine"]["torch_cpu_capability"] == "AVX2"
    assert ps["levels"]["torch"].startswith("AVX2 (ATen AVX2, MKL AVX2") and "oneDNN AVX2 (conv jit:avx2" in ps[
        "levels"]["torch"]
    assert ps["levels"]["openblas"] == "Haswell (in the worker subprocess)"
    assert res["machine"]["level_worker"]["env"]["OPENBLAS_CORETYPE"] == "Haswell"
    row = res["results"][0]
    assert row["errors"] == {} and set(row["entries"]) == {"nncore", "torch", "numpy[avx2]"}
    assert row["best_variant"]["numpy"] == "numpy[avx2]"
    assert "- SIMD (peers): torch: AVX2 (ATen AVX2" in text and "forced to avx2 (ATEN_CPU_CAPABILITY=avx2" in text


def test_bench_peers_own_simd_keeps_their_level(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("threadpoolctl")
    import nncore

    flags = set(cpu_flags() or [])
    if not {"avx2", "avx512f", "avx512bw", "avx512dq", "avx512vl"} <= flags or \
            "avx2" not in nncore._config.config()["simd_compiled"]:
        pytest.skip("needs an AVX-512 CPU (the peers' own level above AVX2) and the AVX2 level built")
    res, text = _run_bench(tmp_path, "--simd", "avx2", "--peers-own-simd")
    ps = res["machine"]["peer_simd"]
    assert ps["peers_own_simd"] and ps["env"] == {} and res["machine"]["simd"] == "avx2"
    assert ps["levels"]["torch"].startswith("AVX512 (ATen AVX512") and "conv jit:avx512" in ps["levels"]["torch"]
    assert ps["levels"]["openblas"] not in ("Haswell", "?")   # NumPy's own, in this process
    assert set(res["results"][0]["entries"]) == {"nncore", "torch", "numpy"}
    assert "each at its own level; --peers-own-simd" in text
