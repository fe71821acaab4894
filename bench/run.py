"""The benchmark suite: nncore against every installed peer, side by side.

``python -m bench`` (or ``python bench/run.py``) from the repository root.

Method
------
For each thread count and workload, every contender ("slot") is built, then
run once as a warm-up (untimed), once more to calibrate ``k`` (the number of
back-to-back epochs that makes one timed repeat last at least ``--min-time``
seconds; k = 1 for medium and large), then timed ``--repeats`` times,
interleaved: repeat r runs the slots in turn, starting one further along the
list each time (A B C, B C A, ...), so slow phases of a shared machine hit all
of them alike. A slot's figure is the median over its repeats of
seconds / (k * steps), with the min and max beside it.

The NumPy and scikit-learn peers run on OpenBLAS, which OPENBLAS_CORETYPE and
OPENBLAS_L2_SIZE can slow down; when either is set they also run, interleaved
with the rest, in a worker subprocess started without them (bench/worker.py),
and the faster variant stands for the peer in the ratio columns.

Ratios are peer time / nncore time: > 1 means nncore is faster.

``--precision int8`` adds the int8 inference contenders to the predict rows
(the MLP's ``predict``/``predict1``, the cnn's ``cnn_predict``): nncore after
``model.quantize("int8")``, PyTorch's ``quantize_dynamic`` (nn.Linear only: on
the cnn its convolutions stay float32) and PyTorch's static eager-mode
quantization (every layer int8, activation scales calibrated ahead), in the
same run as the float32 ones; their table gives every peer's time over nncore
int8's.

``--precision bf16`` adds the mixed-precision training contenders to the
training rows (nncore under ``mixed_precision.set_global_policy("mixed_bfloat16")``,
PyTorch under ``torch.autocast("cpu", dtype=torch.bfloat16)``), in the same run
as float32 nncore and PyTorch; their table gives every peer's time over nncore
bf16's. Both precisions: ``--precision int8,bf16``.

``--simd avx2`` (or ``generic``) runs nncore's kernels at that level and sets
the peers' switches for it before their first operator (bench.set_simd):
PyTorch's ATen capability and oneDNN's ISA, MKL's instructions (not honoured
on AMD, where MKL runs its AVX2 Zen kernels anyway) and OpenBLAS's core type;
OpenBLAS reads it when NumPy loads, so NumPy and scikit-learn then run in a
worker subprocess started with it. ONNX Runtime has no switch and stays at its
own level. The report's header says which peer ran at what.
``--peers-own-simd`` forces nncore alone.

Peak resident memory during fit is measured in a fresh subprocess per peer
(bench/memory.py), after the timing.
"""
import argparse
import datetime
import gc
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import replace

if __package__ in (None, ""):  # run as a script: python bench/run.py
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    __package__ = "bench"

from bench import CHILD_CWD, ORIGINAL_ENV, child_env, peer_levels, peer_simd_env, set_simd  # noqa: E402
from bench.peers import (BLAS_PEERS, INT8_PEERS, LOW_PRECISION_PEERS, NNCORE_VARIANTS, PEER_ORDER,  # noqa: E402
                         PRECISION_PEERS, get_peer_class)
from bench.workloads import TRAIN_WORKLOADS, WORKLOADS, get_workload, make_data  # noqa: E402

__all__ = ["main", "parse_args", "summarize", "format_tables"]

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BLAS_ENV_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
DEFAULT_WORKLOADS = TRAIN_WORKLOADS + ("predict", "predict1")
MAX_K = 2000


# ---------------------------------------------------------------------------------------- options
def _csv(kind, choices=None, convert=str):
    def parse(text):
        items = [convert(t.strip()) for t in text.split(",") if t.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"{kind}: empty list")
        if choices is not None:
            bad = [i for i in items if i not in choices]
            if bad:
                raise argparse.ArgumentTypeError(f"{kind}: unknown {bad}, expected some of {list(choices)}")
        return items
    return parse


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive int, got {text}")
    return value


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workloads", type=_csv("workloads", WORKLOADS), default=list(DEFAULT_WORKLOADS),
                   help="comma-separated, from %s (default: all)" % ",".join(WORKLOADS))
    p.add_argument("--peers", type=_csv("peers", PEER_ORDER), default=list(PEER_ORDER),
                   help="comma-separated, from %s (default: all installed)" % ",".join(PEER_ORDER))
    p.add_argument("--precision", type=_csv("precision", ("float32", "int8", "bf16")), default=["float32"],
                   help="float32 (default), int8 (also float32 and the int8 inference peers, %s, on the "
                        "predict rows) and/or bf16 (also float32 and the mixed-precision training peers, %s, "
                        "on the training rows)" % (",".join(INT8_PEERS), ",".join(PRECISION_PEERS["bf16"])))
    p.add_argument("--threads", type=_csv("threads", convert=int), default=[1, 2],
                   help="comma-separated thread counts (default: 1,2)")
    p.add_argument("--repeats", type=_positive_int, default=7, help="timed repeats per slot (default 7, use >= 5)")
    p.add_argument("--min-time", type=float, default=0.2,
                   help="seconds a timed repeat should last at least: short epochs are run k times (default 0.2)")
    p.add_argument("--pause", type=float, default=0.15,
                   help="seconds of sleep before each timed run, so the previous library's spinning worker "
                        "threads (OpenBLAS spins ~0.1 s after a call) go idle first (default 0.15)")
    p.add_argument("--max-samples", type=_positive_int, default=None,
                   help="cap every workload's sample count (smoke tests)")
    p.add_argument("--blas-env", choices=("auto", "both", "as-is"), default="auto",
                   help="NumPy/scikit-learn also with OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE unset: 'auto' when "
                        "either is set, 'both' always, 'as-is' never (default auto)")
    p.add_argument("--memory", type=_csv("memory workloads", WORKLOADS), default=None,
                   help="workloads for the peak-memory subprocesses (default: medium,large among those run)")
    p.add_argument("--no-memory", action="store_true", help="skip the memory measurement")
    p.add_argument("--memory-peers", type=_csv("memory peers", PEER_ORDER), default=["nncore", "torch"],
                   help="peers measured for memory (default nncore,torch)")
    p.add_argument("--json", default=os.path.join(REPO_ROOT, "bench", "results.json"),
                   help="where to write the JSON results (default bench/results.json)")
    p.add_argument("--markdown", default=None, help="also write the tables to this markdown file")
    p.add_argument("--quick", action="store_true",
                   help="a short run: tiny,small,predict at 2 threads, 5 repeats, 0.05 s, predict on 10240 "
                        "samples, no memory")
    p.add_argument("--import-order", choices=("peers-first", "nncore-first"), default="peers-first",
                   help="peers-first (default): torch's OpenMP runtime loads with the user's environment and "
                        "nncore, importing later, shares it (same libgomp SONAME); nncore-first: nncore's "
                        "OMP_WAIT_POLICY=PASSIVE default then applies to torch too")
    p.add_argument("--fit-mode", choices=("per-epoch", "one-call"), default="per-epoch",
                   help="nncore and Keras: per-epoch (default) calls fit(epochs=1) for every timed epoch, as the "
                        "other peers run one epoch per call; one-call runs a repeat's k epochs as one "
                        "fit(epochs=k), leaving out the fixed cost of a fit() call")
    p.add_argument("--no-fma-peak", action="store_true",
                   help="skip measuring the single-core FMA peak (bench/fma_peak.c, about a second)")
    p.add_argument("--render", metavar="JSON", default=None,
                   help="measure nothing: print (and with --markdown write) the tables of an earlier JSON file")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument("--simd", choices=("generic", "avx2", "avx512"), default=None,
                   help="run every nncore kernel at this SIMD level (nncore.set_simd_level; default: the best "
                        "this CPU runs) and every peer that has a switch for it at the same level (PyTorch's "
                        "ATen and oneDNN, MKL, OpenBLAS: bench.PEER_SIMD_ENV; avx512: each peer's own); the "
                        "levels are in the tables' machine lines")
    p.add_argument("--peers-own-simd", action="store_true",
                   help="with --simd: the peers at their own best level (only nncore forced)")
    args = p.parse_args(argv)
    if args.quick:
        given = set(argv if argv is not None else sys.argv[1:])
        if "--workloads" not in given:
            args.workloads = ["tiny", "small", "predict"]
        if "--threads" not in given:
            args.threads = [2]
        if "--repeats" not in given:
            args.repeats = 5
        if "--min-time" not in given:
            args.min_time = 0.05
        if "--max-samples" not in given:
            args.max_samples = 10240
        args.no_memory = True
        args.no_fma_peak = True
    if any(t < 1 for t in args.threads):
        p.error(f"--threads: expected positive ints, got {args.threads}")
    if args.min_time < 0:
        p.error(f"--min-time: expected >= 0, got {args.min_time}")
    if args.memory is None:
        args.memory = [w for w in args.workloads if w in ("medium", "large")]
    args.peer_env = peer_simd_env(args.simd, args.peers_own_simd)   # the peers' switches for --simd
    for precision, peers in PRECISION_PEERS.items():
        if precision not in args.precision:
            args.peers = [p for p in args.peers if p not in peers]
    return args


# ---------------------------------------------------------------------------------------- machine
def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
    except OSError:
        return platform.processor() or "?", None
    model = mhz = None
    for line in info.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model is None:
            model = value.strip()
        elif key == "cpu MHz" and mhz is None:
            mhz = float(value)
    return model or platform.processor() or "?", mhz


def fma_peak():
    """Single-core FMA peak in GFLOP/s from bench/fma_peak.c per dtype and vector width, or None (no compiler, ...)."""
    import shutil
    import tempfile

    src = os.path.join(REPO_ROOT, "bench", "fma_peak.c")
    cc = shutil.which(os.environ.get("CC", "gcc")) or shutil.which("cc")
    if cc is None or not os.path.exists(src):
        return None
    with tempfile.TemporaryDirectory() as tmp:
        exe = os.path.join(tmp, "fma_peak")
        try:
            subprocess.run([cc, "-O3", src, "-o", exe], check=True, capture_output=True, timeout=60)
            out = subprocess.run([exe], check=True, capture_output=True, text=True, timeout=60).stdout.split()
        except (subprocess.SubprocessError, OSError):
            return None
    # "-" where this CPU lacks the instructions (no zmm on an AVX2 machine)
    return {k: float(v) for k, v in zip(("f32_zmm", "f32_ymm", "f64_zmm", "f64_ymm"), out) if v != "-"} or None


def machine_info(peer_status):
    model, mhz = _cpu_model()
    info = {"cpu": model, "logical_cpus": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "clock_mhz_cpuinfo": mhz,
            "env": {k: v for k, v in ORIGINAL_ENV.items()
                    if k.startswith(("OPENBLAS", "OMP_", "MKL", "GOMP", "KMP", "KERAS"))}}
    try:
        info["affinity_cpus"] = len(os.sched_getaffinity(0))
    except AttributeError:
        pass
    try:
        import psutil

        info["physical_cores"] = psutil.cpu_count(logical=False)
        freq = psutil.cpu_freq()
        if freq is not None:
            info["clock_mhz"] = {"current": freq.current, "min": freq.min, "max": freq.max}
        info["memory_gb"] = round(psutil.virtual_memory().total / 2**30, 1)
    except Exception:
        pass
    info["versions"] = {name: get_peer_class(name).version() for name, (ok, _) in peer_status.items()
                        if ok and name not in NNCORE_VARIANTS and name not in LOW_PRECISION_PEERS}
    import numpy

    info["versions"]["numpy"] = numpy.__version__
    if peer_status.get("nncore", (False,))[0] or _importable("nncore"):
        try:
            import nncore

            cfg = nncore._config.config() if hasattr(nncore, "_config") else {}
            info["nncore_config"] = cfg
            info["simd"] = cfg.get("simd")
        except Exception as exc:
            info["nncore_config"] = f"unavailable: {exc}"
    if peer_status.get("torch", (False,))[0]:
        import torch

        info["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        info["torch_mkl"] = torch.backends.mkl.is_available()
    try:  # which OpenMP runtimes and BLAS libraries this process really loaded
        with open("/proc/self/maps") as f:
            info["loaded_openmp"] = sorted({line.split()[-1] for line in f if "gomp" in line or "libiomp" in line})
    except OSError:
        pass
    info["omp_wait_policy_at_start"] = ORIGINAL_ENV.get("OMP_WAIT_POLICY")
    try:
        import threadpoolctl

        info["threadpool_info"] = threadpoolctl.threadpool_info()
    except ImportError:
        info["threadpool_info"] = "threadpoolctl not installed"
    return info


def _importable(name):
    try:
        __import__(name)
        return True
    except Exception:
        return False


# ---------------------------------------------------------------------------------------- slots
class LocalSlot:
    """A peer in this process."""

    def __init__(self, peer, one_call=False):
        self.peer_name, self.blas_env = peer, None
        self.key = peer
        self.peer = None
        self.one_call = one_call

    def setup(self, wl, threads):
        x, y = make_data(wl)
        self.threads = threads
        self.peer = get_peer_class(self.peer_name)(wl, x, y, one_call=self.one_call)
        self.peer.set_threads(threads)

    def run(self, k):
        self.peer.set_threads(self.threads)
        gc.collect()
        t0 = time.perf_counter()
        self.peer.run(k)
        return time.perf_counter() - t0, self.peer.last_loss

    def close(self):
        self.peer = None
        gc.collect()


class Worker:
    """The subprocess of bench/worker.py, environment without the OPENBLAS variables, then `extra`'s
    (the peers' SIMD switches of a forced level: its OPENBLAS_CORETYPE)."""

    def __init__(self, extra=None):
        env = child_env(dict({k: v for k, v in ORIGINAL_ENV.items() if k not in BLAS_ENV_VARS}, **(extra or {})))
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.worker"], cwd=CHILD_CWD, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)

    def call(self, **req):
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"bench worker died (exit code {self.proc.poll()})")
        reply = json.loads(line)
        if not reply.get("ok"):
            raise RuntimeError(f"bench worker: {reply.get('error')}\n{reply.get('trace', '')}")
        return reply

    def close(self):
        if self.proc.poll() is None:
            try:
                self.call(op="quit")
            except (RuntimeError, OSError, ValueError):
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class RemoteSlot:
    """A peer in the worker subprocess: OPENBLAS variables unset (`tag` "unset"), or a forced SIMD
    level's (`tag` the level)."""

    def __init__(self, peer, worker, tag="unset"):
        self.peer_name, self.blas_env = peer, tag
        self.key = f"{peer}[{tag}]"
        self.worker = worker

    def setup(self, wl, threads):
        self.threads = threads
        self.worker.call(op="setup", id=self.key, peer=self.peer_name, workload=wl.name, samples=wl.samples,
                         threads=threads)

    def run(self, k):
        reply = self.worker.call(op="run", id=self.key, k=k, threads=self.threads)
        return reply["seconds"], reply["loss"]

    def close(self):
        try:
            self.worker.call(op="close", id=self.key)
        except (RuntimeError, OSError, ValueError):  # the worker died: its error is already recorded
            pass


# ---------------------------------------------------------------------------------------- timing
def _log(args, msg):
    if not args.quiet:
        print(msg, file=sys.stderr, flush=True)


def bench_workload(wl, threads, slots, args):
    """Time every slot on one workload at one thread count; returns the row's raw record."""
    steps = wl.steps()
    row = {"workload": wl.name, "task": wl.task, "arch": wl.arch, "layers": list(wl.layers),
           "input_shape": list(wl.input_shape), "batch": wl.batch,
           "samples": wl.samples, "steps": steps, "threads": threads, "entries": {}, "errors": {},
           "loadavg_1min_before": round(os.getloadavg()[0], 2)}
    live = []
    for s in slots:
        try:
            s.setup(wl, threads)
            live.append(s)
        except Exception as exc:
            row["errors"][s.key] = f"setup: {type(exc).__name__}: {exc}"
    # Freeze what setup made (torch's first optimizer imports torch._dynamo: a million objects), so that the
    # gc.collect() before each timed run stays cheap; unfrozen and collected again once the row is done.
    gc.collect()
    gc.freeze()
    warm, ks = {}, {}
    for s in list(live):  # warm-up, then one calibration run each
        try:
            warm[s.key] = s.run(1)[0]
        except Exception as exc:
            row["errors"][s.key] = f"warm-up: {type(exc).__name__}: {exc}"
            live.remove(s)
            s.close()

    def failed(s, stage, exc):
        row["errors"][s.key] = f"{stage}: {type(exc).__name__}: {exc}"
        live.remove(s)
        s.close()

    for s in list(live):
        time.sleep(args.pause)
        try:
            t = s.run(1)[0]
        except Exception as exc:
            failed(s, "calibration", exc)
            continue
        ks[s.key] = max(1, min(MAX_K, math.ceil(args.min_time / t))) if t > 0 else MAX_K
    times = {s.key: [] for s in live}
    losses = {}
    for r in range(args.repeats):
        order = [live[(i + r) % len(live)] for i in range(len(live))]  # A B C, B C A, ...
        for s in order:
            time.sleep(args.pause)  # outside the timing: let the last library's threads stop spinning
            try:
                seconds, loss = s.run(ks[s.key])
            except Exception as exc:
                failed(s, f"repeat {r}", exc)
                continue
            times[s.key].append(seconds / ks[s.key])
            losses[s.key] = loss
    for s in live:
        per_run = times[s.key]  # seconds for one epoch (train) or one pass over the data (predict)
        row["entries"][s.key] = {
            "peer": s.peer_name, "blas_env": s.blas_env, "k": ks[s.key], "warmup_s": warm[s.key],
            "run_s": per_run, "last_loss": losses.get(s.key),
            "us_per_step": [t / steps * 1e6 for t in per_run],
        }
        s.close()
    gc.unfreeze()
    gc.collect()
    return row


def _stats(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summarize(row):
    """Add medians, samples/s, the best variant of each peer and the ratios to a raw row (in place)."""
    for entry in row["entries"].values():
        entry["us_per_step_stats"] = _stats(entry["us_per_step"])
        entry["samples_per_s_median"] = row["samples"] / statistics.median(entry["run_s"])
    best = {}  # peer -> key of its fastest variant (as-is or OPENBLAS unset)
    for key, entry in row["entries"].items():
        med = entry["us_per_step_stats"]["median"]
        cur = best.get(entry["peer"])
        if cur is None or med < row["entries"][cur]["us_per_step_stats"]["median"]:
            best[entry["peer"]] = key
    row["best_variant"] = best
    ratios = {}
    if "nncore" in best:
        ours = row["entries"][best["nncore"]]["us_per_step_stats"]["median"]
        for peer, key in best.items():
            if peer != "nncore":
                ratios[peer] = row["entries"][key]["us_per_step_stats"]["median"] / ours
        others = [p for p in best if p != "nncore" and p not in NNCORE_VARIANTS and p not in LOW_PRECISION_PEERS]
        if others:
            fastest = min(others, key=lambda p: row["entries"][best[p]]["us_per_step_stats"]["median"])
            ratios["fastest"] = {"peer": fastest, "ratio": ratios[fastest]}
    row["ratios"] = ratios
    return row


# ---------------------------------------------------------------------------------------- tables
LABELS = {"nncore": "nncore", "torch": "PyTorch", "torch_fused": "PyTorch fused", "sklearn": "sklearn",
          "numpy": "NumPy", "keras": "Keras 3", "onnxruntime": "ONNX Runtime", "nncore_call": "nncore model(x)",
          "nncore_pob": "nncore predict_on_batch", "nncore_im2col": "nncore im2col", "nncore_int8": "nncore int8",
          "torch_int8": "PyTorch quantize_dynamic (Linear only)",
          "torch_int8_static": "PyTorch int8 static", "nncore_bf16": "nncore mixed_bfloat16",
          "torch_bf16": "PyTorch autocast bf16"}


def _fmt(x):
    if x >= 1000:
        return f"{x:,.0f}"
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def _cell(entry, marker=""):
    s = entry["us_per_step_stats"]
    return f"{_fmt(s['median'])} ({_fmt(s['min'])}-{_fmt(s['max'])}){marker}"


# Targets per workload: (peer, times) pairs, "fastest" meaning the fastest peer. The first set (the first
# speed issue: times the fastest peer and times PyTorch with its default Adam), and issue 14's for the
# AVX2 path (predict and lstm against PyTorch, large against PyTorch's fused Adam).
TARGETS = {"tiny": (("fastest", 3.0), ("torch", 10.0)), "small": (("fastest", 3.0), ("torch", 10.0)),
           "medium": (("fastest", 1.5), ("torch", 2.0)), "large": (("fastest", 1.5), ("torch", 2.0)),
           "predict": (("torch", 2.0),)}
TARGETS_ISSUE14 = {"predict": (("torch", 1.2),), "large": (("torch_fused", 1.25),), "lstm": (("torch", 1.6),)}


def gemm_flops(wl):
    """FLOPs of one step's GEMMs: forward z = a W (2 m k n per layer), and in training dW = a^T delta
    and dx = delta W^T (no dx for the first layer). For "lstm" (one LSTM, then the softmax Dense; "gru",
    "rnn" likewise, G = 3u, u gate columns in place of 4u): the
    input projection X W and dW over all T steps, h_{t-1} U, delta_t U^T and dU over the T - 1 steps with
    a previous state. None for other architectures."""
    if wl.arch in ("lstm", "gru", "rnn"):
        (T, D), u, C, B = wl.input_shape, wl.hidden[0], wl.n_classes, wl.batch
        G = {"lstm": 4, "gru": 3, "rnn": 1}[wl.arch] * u
        lstm = 2 * B * (2 * T * D * G + 3 * (T - 1) * u * G)
        return lstm + 2 * B * u * C * (1 if wl.task == "predict" else 3)
    if wl.arch != "mlp":
        return None
    pairs = list(zip(wl.layers[:-1], wl.layers[1:]))
    per = 1 if wl.task == "predict" else None
    return sum(2 * wl.batch * k * n * (per or (3 if i else 2)) for i, (k, n) in enumerate(pairs))


def floor_table(result, targets=TARGETS, title="The targets against the FMA floor"):
    """Each target as a time per step, next to the time the step's GEMMs alone take at the measured
    FMA peak (the floor no implementation can beat without doing fewer flops)."""
    peak = (result.get("machine") or {}).get("fma_peak_gflops_1core") or {}
    peak = max((v for k, v in peak.items() if k.startswith("f32")), default=None)
    if not peak:
        return []
    names = "; ".join(f"{w}: " + ", ".join(f"{x:g}x {p}" for p, x in t) for w, t in targets.items())
    out = [f"### {title}\n",
           f"floor = the step's GEMM FLOPs at the measured float32 FMA peak ({peak:.0f} GFLOP/s per core) times "
           "the thread count: no implementation doing the same arithmetic gets below it. 'needed' is the "
           f"largest time per step that meets every target of the row ({names}).\n",
           "| workload | threads | GEMM MFLOP/step | floor (us) | needed (us) | needed / floor | nncore (us) | "
           "nncore / floor | reachable? |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in result["results"]:
        if r["workload"] not in targets or "nncore" not in r["best_variant"]:
            continue
        try:
            wl = get_workload(r["workload"])
        except ValueError:
            continue
        wl = replace(wl, batch=r["batch"])
        flops = gemm_flops(wl)
        if not flops:
            continue
        floor = flops / (peak * 1e9 * r["threads"]) * 1e6
        med = lambda p: r["entries"][r["best_variant"][p]]["us_per_step_stats"]["median"]  # noqa: E731
        needs = []
        for peer, x in targets[r["workload"]]:
            if peer == "fastest":
                f = r["ratios"].get("fastest")
                if f:
                    needs.append(med(f["peer"]) / x)
            elif peer in r["best_variant"]:
                needs.append(med(peer) / x)
        if not needs:
            continue
        need, ours = min(needs), med("nncore")
        out.append(f"| {r['workload']} | {r['threads']} | {flops / 1e6:.1f} | {floor:,.0f} | {need:,.0f} | "
                   f"{need / floor:.2f} | {ours:,.0f} | {ours / floor:.2f} | "
                   f"{'met' if ours <= need else ('no: below the floor' if need < floor else 'not met')} |")
    out.append("")
    return out


def precision_table(result, ours, title):
    """A narrower precision's table (int8 inference, bf16 training): every peer of the rows where `ours`
    ran, and each one's time over ours (nncore's own float32 time over ours is its speed-up)."""
    rows = [r for r in result["results"] if ours in r["best_variant"]]
    if not rows:
        return []
    peers = [p for p in PEER_ORDER if any(p in r["best_variant"] for r in rows)]
    others = [p for p in peers if p != ours]
    unit = "microseconds per batch" if rows[0]["task"] == "predict" else "microseconds per training step"
    out = [f"### {title}: {unit}, median (min-max), and peer time / {LABELS[ours]} time\n",
           "| workload | threads | batch | load | " + " | ".join(LABELS[p] for p in peers) + " | "
           + " | ".join(f"{LABELS[p]} / {LABELS[ours]}" for p in others) + " |",
           "|" + "---|" * (4 + len(peers) + len(others))]
    for r in rows:
        med = lambda p: r["entries"][r["best_variant"][p]]["us_per_step_stats"]["median"]  # noqa: E731
        load = r.get("loadavg_1min_before")
        cells = [r["workload"], str(r["threads"]), str(r["batch"]), "?" if load is None else f"{load:.1f}"]
        cells += [_cell(r["entries"][r["best_variant"][p]]) if p in r["best_variant"] else "n/a" for p in peers]
        cells += [f"{med(p) / med(ours):.2f}x" if p in r["best_variant"] else "n/a" for p in others]
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    return out


def format_tables(result):
    """The markdown tables of a results dict (as written to the JSON file)."""
    rows = result["results"]
    all_peers = [p for p in PEER_ORDER if p not in LOW_PRECISION_PEERS and any(p in r["best_variant"] for r in rows)]
    has_nncore = "nncore" in all_peers
    out = []
    for threads in sorted({r["threads"] for r in rows}):
        trs = [r for r in rows if r["threads"] == threads]
        for task, unit in (("train", "microseconds per training step"), ("predict", "microseconds per batch")):
            sub = [r for r in trs if r["task"] == task]
            if not sub:
                continue
            peers = [p for p in all_peers if any(p in r["best_variant"] for r in sub)]  # this table's columns
            others = [p for p in peers if p != "nncore"]
            title = "Training" if task == "train" else "Inference (predict)"
            out.append(f"### {title}, {threads} thread{'s' if threads > 1 else ''}: {unit}, "
                       "median (min-max)\n")
            head = ["workload", "batch", "steps", "load"] + [LABELS[p] for p in peers]
            if has_nncore:
                head += [f"nncore / {LABELS[p]}" for p in others] + ["nncore / fastest peer"]
            out.append("| " + " | ".join(head) + " |")
            out.append("|" + "---|" * len(head))
            for r in sub:
                load = r.get("loadavg_1min_before")
                cells = [r["workload"], str(r["batch"]), str(r["steps"]), "?" if load is None else f"{load:.1f}"]
                for p in peers:
                    key = r["best_variant"].get(p)
                    if key is None:
                        cells.append("n/a")
                    else:
                        e = r["entries"][key]
                        cells.append(_cell(e, " ᵘ" if e["blas_env"] == "unset" else ""))
                if has_nncore:
                    for p in others:
                        ratio = r["ratios"].get(p)
                        cells.append("n/a" if ratio is None else f"{ratio:.2f}x")
                    f = r["ratios"].get("fastest")
                    cells.append("n/a" if f is None else f"{f['ratio']:.2f}x ({LABELS[f['peer']]})")
                out.append("| " + " | ".join(cells) + " |")
            out.append("")
            out.append(f"Samples per second (median), {threads} thread{'s' if threads > 1 else ''}:\n")
            head = ["workload"] + [LABELS[p] for p in peers]
            out.append("| " + " | ".join(head) + " |")
            out.append("|" + "---|" * len(head))
            for r in sub:
                cells = [r["workload"]]
                for p in peers:
                    key = r["best_variant"].get(p)
                    cells.append("n/a" if key is None else f"{r['entries'][key]['samples_per_s_median']:,.0f}")
                out.append("| " + " | ".join(cells) + " |")
            out.append("")
    out += precision_table(result, "nncore_int8", "int8 inference")
    out += precision_table(result, "nncore_bf16", "bf16 mixed-precision training")
    out += floor_table(result)
    out += floor_table(result, TARGETS_ISSUE14, "Issue 14's targets (AVX2 path) against the FMA floor")
    variants = [(r, p) for r in rows for p in BLAS_PEERS
                if p in r["entries"] and f"{p}[unset]" in r["entries"]]
    if variants:
        out.append("### OpenBLAS environment: as-is vs OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE unset "
                   "(us per step, median)\n")
        out.append("| workload | threads | peer | as-is | unset | as-is / unset |")
        out.append("|---|---|---|---|---|---|")
        for r, p in variants:
            a = r["entries"][p]["us_per_step_stats"]["median"]
            u = r["entries"][f"{p}[unset]"]["us_per_step_stats"]["median"]
            out.append(f"| {r['workload']} | {r['threads']} | {LABELS[p]} | {_fmt(a)} | {_fmt(u)} | {a / u:.2f} |")
        out.append("")
    if not has_nncore:
        why = result.get("peers", {}).get("nncore", {}).get("reason", "not selected (--peers)")
        out.append(f"nncore did not run: {why}\n")
    skipped = {p: v["reason"] for p, v in result.get("peers", {}).items() if not v["available"]}
    for p, why in skipped.items():
        if p != "nncore":
            out.append(f"- {LABELS.get(p, p)} skipped: {why}")
    unsupported = {}  # (peer, reason) -> the workloads it did not run
    for r in rows:
        for p, why in r.get("unsupported", {}).items():
            ws = unsupported.setdefault((p, why), [])
            if r["workload"] not in ws:
                ws.append(r["workload"])
    for (p, why), ws in unsupported.items():
        out.append(f"- {LABELS.get(p, p)} on {', '.join(ws)}: n/a ({why})")
    errors = [(r["workload"], r["threads"], k, e) for r in rows for k, e in r.get("errors", {}).items()]
    for w, t, k, e in errors:
        out.append(f"- error in {w} ({t} threads), {k}: {e}")
    mem = result.get("memory") or []
    if mem:
        out.append("\n### Peak resident memory during fit (own subprocess each, MiB)\n")
        out.append("| workload | threads | peer | peak RSS | RSS before fit | fit increment | after imports | data |")
        out.append("|---|---|---|---|---|---|---|---|")
        for m in mem:
            if "error" in m:
                out.append(f"| {m['workload']} | | {LABELS.get(m['peer'], m['peer'])} | error: {m['error']} | | | | |")
                continue
            out.append(f"| {m['workload']} | {m['threads']} | {LABELS.get(m['peer'], m['peer'])} | "
                       f"{m['peak_rss_mb']:.0f} | {m['rss_before_fit_mb']:.0f} | {m['fit_increment_mb']:.0f} | "
                       f"{m['import_rss_mb']:.0f} | {m['data_mb']:.0f} |")
    if any(r["entries"][k]["blas_env"] == "unset" for r in rows for k in r["best_variant"].values()):
        out.append("\nᵘ: the run with OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE unset was the faster one.")
    out.append("\nRatios are peer time / nncore time: > 1 means nncore is faster. "
               "'fastest peer' is the fastest of the others on that row. 'load': the 1-minute load average "
               "when the row started (the machine has %s logical CPUs)." % result.get("machine", {}).get(
                   "logical_cpus", "?"))
    return "\n".join(out)


def _peer_simd_line(ps):
    """Which peer ran at what: "torch: AVX2 (ATen ...); onnxruntime: own level (...)", and how it was set."""
    if not ps:
        return "not recorded"
    how = ("each at its own level" if not ps.get("simd") or ps.get("peers_own_simd") or not ps.get("env") else
           "forced to " + ps["simd"] + " (" + ", ".join(f"{k}={v}" for k, v in ps["env"].items()) + ")")
    levels = "; ".join(f"{lib}: {text}" for lib, text in ps.get("levels", {}).items())
    return f"{levels or 'no peer'}; {how}" + ("; --peers-own-simd" if ps.get("peers_own_simd") else "")


def machine_summary(result):
    m = result["machine"]
    lines = [f"- command: `{result['command']}`",
             f"- date: {result['started']} to {result['finished']} (UTC)",
             f"- CPU: {m.get('cpu')}, {m.get('logical_cpus')} logical CPUs, {m.get('physical_cores', '?')} "
             f"physical cores, clock {m.get('clock_mhz_cpuinfo') or '?'} MHz (/proc/cpuinfo)",
             f"- SIMD (nncore): {m.get('simd', 'n/a')}; torch CPU capability: {m.get('torch_cpu_capability', 'n/a')}; "
             f"FMA peak of one core (bench/fma_peak.c, GFLOP/s): {m.get('fma_peak_gflops_1core') or 'not measured'}",
             "- SIMD (peers): " + _peer_simd_line(m.get("peer_simd")),
             f"- OpenMP runtime (shared by nncore and torch): {', '.join(m.get('loaded_openmp') or ['n/a'])}; "
             f"wait policy in effect: {m.get('omp_wait_policy_in_effect', 'n/a')}",
             "- versions: " + ", ".join(f"{k} {v}" for k, v in m.get("versions", {}).items()),
             "- settings: " + ", ".join(f"{k}={result['settings'].get(k)}" for k in
                                        ("repeats", "min_time", "pause", "fit_mode", "blas_env", "import_order",
                                         "max_samples")),
             f"- load average before / after: {result.get('loadavg_before')} / {result.get('loadavg_after')}",
             "- environment: " + (", ".join(f"{k}={v}" for k, v in m.get("env", {}).items()) or "(nothing set)")]
    tp = m.get("threadpool_info")
    if isinstance(tp, list):
        blas = [f"{d.get('internal_api')} {d.get('version')} {d.get('architecture', '')} "
                f"({os.path.basename(d.get('filepath', ''))}, {d.get('num_threads')} threads)"
                for d in tp if d.get("user_api") == "blas"]
        lines.append("- BLAS of this process (threadpoolctl): " + "; ".join(blas))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------- memory
def measure_memory(args):
    out = []
    threads = max(args.threads)
    for w in args.memory:
        for p in args.memory_peers:
            env = child_env(dict(ORIGINAL_ENV, **args.peer_env))
            cmd = [sys.executable, "-m", "bench.memory", p, w, str(threads), str(args.max_samples)]
            _log(args, f"memory: {p} on {w}")
            proc = subprocess.run(cmd, cwd=CHILD_CWD, env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                out.append({"peer": p, "workload": w, "error": proc.stderr.strip().splitlines()[-1:]})
                continue
            out.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return out


# ---------------------------------------------------------------------------------------- main
def _write_json(path, result):
    if not path:
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path[:-5] + ".partial.json" if path.endswith(".json") else path + ".partial"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=1, default=str)
    os.replace(tmp, path)


def render(result):
    note = "\n(partial run: the rows measured before it stopped)\n" if result.get("partial") else ""
    return f"## Results\n\n{machine_summary(result)}\n{note}\n{format_tables(result)}\n"


def main(argv=None):
    args = parse_args(argv)
    if args.render:
        with open(args.render) as f:
            result = json.load(f)
        result.setdefault("finished", "(unfinished)")
        result.setdefault("loadavg_after", None)
        text = render(result)
        print(text)
        if args.markdown:
            with open(args.markdown, "w") as f:
                f.write(text)
        return 0
    started = datetime.datetime.now(datetime.timezone.utc)
    command = "python -m bench" + ("" if not (argv if argv is not None else sys.argv[1:]) else
                                   " " + " ".join(argv if argv is not None else sys.argv[1:]))
    # The peers' SIMD switches before their first operator (the availability checks import them); nncore's
    # level below, once it is imported
    set_simd(args.simd, args.peers_own_simd, nncore=False)
    # The peers first, nncore last: nncore sets OMP_WAIT_POLICY=PASSIVE by default when imported, which
    # must not change how torch's own OpenMP runtime (loaded at its import) waits.
    names = [p for p in PEER_ORDER if p in args.peers and p != "nncore"]
    if "nncore" in args.peers:
        names.insert(0 if args.import_order == "nncore-first" else len(names), "nncore")
    peer_status = {p: get_peer_class(p).available() for p in names}
    for p, (ok, why) in peer_status.items():
        if not ok:
            _log(args, f"skip {p}: {why}")
    live = [p for p in PEER_ORDER if p in peer_status and peer_status[p][0]]
    if not live:
        print("no peer is available", file=sys.stderr)
        return 1
    if args.simd is not None and "nncore" in live:
        import nncore

        try:
            nncore.set_simd_level(args.simd)  # before machine_info, which records the level in use
        except ValueError as exc:
            print(f"--simd: {exc}", file=sys.stderr)
            return 2
    # OpenBLAS took its core type when NumPy loaded, before the options were read: at a forced level the
    # BLAS peers run in a worker started with it (and only there), else also with OPENBLAS_* unset
    level_worker = Worker(args.peer_env) if "OPENBLAS_CORETYPE" in args.peer_env and any(
        p in BLAS_PEERS for p in live) else None
    blas_set = any(v in ORIGINAL_ENV for v in BLAS_ENV_VARS)
    unset_variants = [p for p in live if p in BLAS_PEERS and level_worker is None
                      and (args.blas_env == "both" or (args.blas_env == "auto" and blas_set))]
    worker = Worker() if unset_variants else None
    result = {"command": command, "started": started.isoformat(timespec="seconds"),
              "settings": {k: v for k, v in vars(args).items()},
              "peers": {p: {"available": ok, "reason": why, "label": get_peer_class(p).label}
                        for p, (ok, why) in peer_status.items()},
              "loadavg_before": [round(x, 2) for x in os.getloadavg()], "results": [], "memory": []}
    try:
        result["machine"] = machine_info(peer_status)
        # The one OpenMP runtime nncore and torch share waits as the environment said when it loaded: at
        # torch's import (peers-first) that is the user's environment, else nncore's PASSIVE default.
        torch_first = args.import_order == "peers-first" and any(
            p.startswith("torch") and ok for p, (ok, _) in peer_status.items())
        policy = (ORIGINAL_ENV if torch_first else os.environ).get("OMP_WAIT_POLICY")
        result["machine"]["omp_wait_policy_in_effect"] = policy or "libgomp's default (spins ~ms, then sleeps)"
        if not args.no_fma_peak:
            result["machine"]["fma_peak_gflops_1core"] = fma_peak()
        if worker is not None:
            result["machine"]["unset_worker"] = worker.call(op="info")["info"]
        blas_level = None
        if level_worker is not None:
            result["machine"]["level_worker"] = info = level_worker.call(op="info")["info"]
            blas_level = ", ".join(sorted({d.get("architecture") or "?" for d in info.get("threadpool_info", [])
                                           if d.get("internal_api") == "openblas"})) or "?"
            blas_level += " (in the worker subprocess)"
        result["machine"]["peer_simd"] = {"simd": args.simd, "peers_own_simd": args.peers_own_simd,
                                          "env": args.peer_env,
                                          "levels": peer_levels([p for p in live if p != "nncore"], blas_level)}
        for threads in args.threads:
            for name in args.workloads:
                wl = get_workload(name, args.max_samples)
                slots, unsupported = [], {}
                for p in live:
                    ok, why = get_peer_class(p).supports(wl)  # a builder for wl.arch, else "n/a"
                    if not ok:
                        unsupported[p] = why
                        continue
                    if level_worker is not None and p in BLAS_PEERS:
                        slots.append(RemoteSlot(p, level_worker, tag=args.simd))
                        continue
                    slots.append(LocalSlot(p, one_call=args.fit_mode == "one-call"))
                    if p in unset_variants:
                        slots.append(RemoteSlot(p, worker))
                _log(args, f"{name} ({wl.samples} samples, batch {wl.batch}), {threads} thread(s): "
                           + ", ".join(s.key for s in slots))
                row = summarize(bench_workload(wl, threads, slots, args))
                row["unsupported"] = unsupported
                result["results"].append(row)
                _write_json(args.json, dict(result, partial=True))  # a long run keeps what it has measured
                _log(args, "   " + ", ".join(f"{k} {e['us_per_step_stats']['median']:.1f} us"
                                           for k, e in row["entries"].items()))
    finally:
        for w in (worker, level_worker):
            if w is not None:
                w.close()
    if not args.no_memory and args.memory:
        result["memory"] = measure_memory(args)
    result["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    result["finished"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    text = render(result)
    print(text)
    if args.json:
        _write_json(args.json, result)
        _log(args, f"wrote {args.json}")
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text)
        _log(args, f"wrote {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
