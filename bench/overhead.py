"""Per-call cost of inference: nncore's call paths against ONNX Runtime and PyTorch, and its own floor.

    python bench/overhead.py [--threads 1,2] [--repeats 7] [--batches 1,1024] [--simd avx2] [--int8] [--out FILE]
    python bench/overhead.py --ab OTHER_CHECKOUT [--rounds 3]

The medium MLP 784-256-128-10 (ReLU, softmax), float32, the same weights everywhere (ONNX Runtime runs
the model exported by nncore.onnx; outputs are checked equal to 1e-5 of their scale first). One call
per batch, as a serving loop makes them: nncore ``model(x)``, ``predict_on_batch(x)``,
``predict(x, batch_size=len(x), verbose=0)``; ONNX Runtime ``session.run`` (intra-op threads = the
thread count, sequential execution); PyTorch eager under ``inference_mode`` (softmax of the logits).
The row ``nncore kernels`` is the floor of nncore's call path: the model's three layers in their one
kernel call (``DenseLayers``, what ``model(x)`` runs), with no Python around it; ``model(x)`` minus
that is what the call path costs.

Contenders are timed in turns, ``--repeats`` rounds in rotating order, each turn a burst of calls
(2000 at batch 1, 20 at 1024); the figure is the median per call over the rounds and ratios are
ratios of medians (> 1: nncore faster), so a change of load hits every contender alike. 1-thread
figures are thread CPU time (they leave out the time other processes hold the core, not their cache
pollution), 2-thread ones wall time. The load average and SIMD level are printed with the table.

``--int8`` times the int8 forms instead: a copy of the model quantized by ``model.quantize("int8")``
(``model(x)``, ``predict``) beside nncore float32's and ONNX Runtime's float32, and PyTorch's
``quantize_dynamic`` of its nn.Linear layers.

``--ab`` compares two builds of nncore (this checkout and another, each built in place): child processes
alternate between them, each timing ``model(x)``, ``predict_on_batch`` and ``predict(verbose=0)`` of
one sample on a tiny 4-4-4-4 MLP (the call path alone) and on the medium one, the medium one's three
layers in their one kernel call (``DenseChain.by_layers``) and its ``predict`` of 1024 rows (float32, and
int8 after ``quantize``), 1 thread, thread CPU time, the best of 7 bursts; at the SIMD level of
``--simd`` (the peers too, as in bench.set_simd, unless ``--peers-own-simd``).
"""
import argparse
import os
import subprocess
import sys
import time

import numpy as np

if __package__ in (None, ""):  # run as a script
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import peer_levels, set_simd  # noqa: E402
from bench import peers as P  # noqa: E402
from bench.workloads import get_workload, make_data  # noqa: E402


def contenders(threads, ours, ort, torch_peer):
    """name -> f(xb) for one thread count."""
    import torch

    model = ours.model
    ours.set_threads(threads)
    ort.set_threads(threads)
    torch_peer.set_threads(threads)
    net = torch_peer.model.eval()
    model(np.zeros((1, 784), np.float32))
    chain = model._dense_chain()

    def torch_call(xb):
        with torch.inference_mode():
            return torch.softmax(net(torch.from_numpy(xb)), dim=1).numpy()

    return {
        "nncore kernels": lambda xb: chain.by_layers(xb, None, True, threads),
        "nncore model(x)": model,
        "nncore predict_on_batch": model.predict_on_batch,
        "nncore predict": lambda xb: model.predict(xb, batch_size=len(xb), verbose=0),
        "ONNX Runtime": ort.infer,
        "PyTorch": torch_call,
    }


INT8_NAMES = ("nncore model(x)", "nncore predict", "nncore int8 model(x)", "nncore int8 predict", "ONNX Runtime",
              "PyTorch int8 quantize_dynamic")


def contenders_int8(threads, ours, ort, torch_peer):
    """name -> f(xb) for --int8: the int8 forms beside the float32 ones (a copy of the model quantized
    by model.quantize("int8"); PyTorch's quantize_dynamic of its nn.Linear layers)."""
    import torch

    from nncore.saving import model_from_bytes, model_to_bytes

    fs = contenders(threads, ours, ort, torch_peer)
    q = model_from_bytes(model_to_bytes(ours.model))
    q.quantize("int8")
    q(np.zeros((1, 784), np.float32))
    qnet = torch.ao.quantization.quantize_dynamic(torch_peer.model.eval(), {torch.nn.Linear}, dtype=torch.qint8)

    def torch_int8(xb):
        with torch.inference_mode():
            return torch.softmax(qnet(torch.from_numpy(xb)), dim=1).numpy()

    return {"nncore model(x)": fs["nncore model(x)"], "nncore predict": fs["nncore predict"],
            "nncore int8 model(x)": q, "nncore int8 predict": lambda xb: q.predict(xb, batch_size=len(xb), verbose=0),
            "ONNX Runtime": fs["ONNX Runtime"], "PyTorch int8 quantize_dynamic": torch_int8}


def time_round(fs, names, xb, calls, clock):
    out = {}
    for name in names:
        f = fs[name]
        for _ in range(3):
            f(xb)
        time.sleep(0.05)         # ORT's and torch's pools spin a while after a call
        t0 = clock()
        for _ in range(calls):
            f(xb)
        out[name] = (clock() - t0) / calls * 1e6
    return out


def check_agreement(ours, ort, torch_peer, x):
    p = ours.model.predict(x, verbose=0)
    for name, q in (("ONNX Runtime", ort.infer(x)), ("PyTorch", None)):
        if q is None:
            import torch
            with torch.inference_mode():
                q = torch.softmax(torch_peer.model.eval()(torch.from_numpy(x)), dim=1).numpy()
        err = float(np.max(np.abs(p - q)) / np.max(np.abs(p)))
        if err > 1e-5:
            raise AssertionError(f"{name} differs from nncore's predict by {err:.2e} of the scale")


AB_CHILD = """
import sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np
import nncore
from nncore.layers import Dense
from nncore.models import Sequential
from nncore.saving import model_from_bytes, model_to_bytes
assert nncore.__file__.startswith(sys.argv[1]), nncore.__file__
nncore.set_num_threads(1)
if sys.argv[2] != "-":
    nncore.set_simd_level(sys.argv[2])

def best(f, k):
    times = []
    for _ in range(7):
        t0 = time.thread_time()
        for _ in range(k):
            f()
        times.append((time.thread_time() - t0) / k * 1e6)
    return min(times)

for d, k in (((4, 4, 4, 4), 20000), ((784, 256, 128, 10), 3000)):
    nncore.set_seed(0)
    m = Sequential([Dense(d[1], input_dim=d[0], activation="relu"), Dense(d[2], activation="relu"),
                    Dense(d[3], activation="softmax")])
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(0).standard_normal((1, d[0])).astype(np.float32)
    for f in (lambda: m(x), lambda: m.predict_on_batch(x), lambda: m.predict(x, verbose=0)):
        print(best(f, k))
chain = m._dense_chain()
print(best(lambda: chain.by_layers(x, None, True, 1), 3000))
xb = np.random.default_rng(1).standard_normal((1024, 784)).astype(np.float32)
q = model_from_bytes(model_to_bytes(m))
q.quantize("int8")
for f in (m, q):
    print(best(lambda: f.predict(xb, batch_size=1024, verbose=0), 15))
"""


def ab(other, rounds, simd=None):
    """Per-call times of this checkout's nncore and another's, in alternating child processes."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    trees = {"this": here, "other": os.path.abspath(other)}
    got = {name: [] for name in trees}
    for _ in range(rounds):
        for name, tree in trees.items():
            out = subprocess.run([sys.executable, "-c", AB_CHILD, tree, simd or "-"], capture_output=True,
                                 text=True, check=True, cwd=tree).stdout.split()
            got[name].append([float(v) for v in out])
    lines = [f"load {os.getloadavg()[0]:.1f}; SIMD level {simd or 'the best'}; per call, microseconds, 1 thread, "
             f"thread CPU time, best of 7 bursts; the range over {rounds} alternating processes per build", "",
             "| model, batch | call | other checkout | this checkout |", "|---|---|---|---|"]
    calls = ("model(x)", "predict_on_batch", "predict(verbose=0)")
    rows = [(f"{m}, 1", c) for m in ("tiny 4-4-4-4", "medium 784-256-128-10") for c in calls]
    rows += [("medium, 1", "kernel alone (by_layers)"), ("medium, 1024", "predict"), ("medium int8, 1024", "predict")]
    for i, (model, call) in enumerate(rows):
        cells = [f"{min(r[i] for r in got[n]):.1f}-{max(r[i] for r in got[n]):.1f}" for n in ("other", "this")]
        lines.append(f"| {model} | {call} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ab", metavar="CHECKOUT", help="compare with the nncore built in place in this checkout")
    ap.add_argument("--rounds", type=int, default=3, help="alternating child processes per build (--ab)")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--batches", default="1,1024")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--calls", type=int, default=2000, help="calls per turn at batch 1 (2000 / batch above)")
    ap.add_argument("--simd", choices=["generic", "avx2", "avx512"],
                    help="nncore's kernels and the peers' (PyTorch's switches; ONNX Runtime has none) at this level")
    ap.add_argument("--peers-own-simd", action="store_true", help="with --simd: the peers at their own level")
    ap.add_argument("--out", help="also append the markdown table to this file")
    ap.add_argument("--int8", action="store_true", help="the int8 forms (model.quantize, quantize_dynamic) instead")
    args = ap.parse_args(argv)
    if args.ab:
        text = ab(args.ab, args.rounds, args.simd)
        print(text)
        if args.out:
            with open(args.out, "a") as f:
                f.write(text + "\n")
        return 0
    peer_env = set_simd(args.simd, args.peers_own_simd)   # before the peers' first operator
    for cls in (P.OnnxRuntimePeer, P.TorchPeer):
        ok, why = cls.available()
        if not ok:
            print(f"{cls.label} is not available: {why}", file=sys.stderr)
            return 1
    import nncore
    levels = peer_levels(["torch", "onnxruntime"])
    wl = get_workload("predict", max_samples=max(2048, *(int(b) for b in args.batches.split(","))))
    x, y = make_data(wl)
    ours = P.NncorePeer(wl, x, y)
    ort, torch_peer = P.OnnxRuntimePeer(wl, x, y), P.TorchPeer(wl, x, y)
    ort.set_weights(ours.get_weights())
    torch_peer.set_weights(ours.get_weights())
    check_agreement(ours, ort, torch_peer, x[:1024])
    rng = np.random.default_rng(0)
    lines = [f"SIMD level {nncore.get_simd_level()}, {os.cpu_count()} CPUs; per call, microseconds, median of "
             f"{args.repeats} interleaved rounds (min-max); 1 thread: thread CPU time, 2 threads: wall time",
             "", "Peers' SIMD levels: " + "; ".join(f"{k}: {v}" for k, v in levels.items())
             + ("; forced by --simd" if peer_env else "; each at its own level"), "",
             "| batch | threads | load | nncore kernels | nncore model(x) | nncore predict_on_batch | nncore predict "
             "| ONNX Runtime | PyTorch | ORT / model(x) | ORT / predict_on_batch | ORT / predict | PyTorch / model(x) "
             "| call path (model(x) - kernels) |",
             "|" + "---|" * 14]
    if args.int8:
        lines[4:] = ["| batch | threads | load | " + " | ".join(INT8_NAMES) + " | f32 model(x) / int8 model(x) "
                     "| f32 predict / int8 predict | ORT / int8 model(x) | PyTorch int8 / int8 model(x) |",
                     "|" + "---|" * (3 + len(INT8_NAMES) + 4)]
    for threads in [int(t) for t in args.threads.split(",")]:
        fs = (contenders_int8 if args.int8 else contenders)(threads, ours, ort, torch_peer)
        clock = time.thread_time if threads == 1 else time.perf_counter
        names = list(fs)
        for batch in [int(b) for b in args.batches.split(",")]:
            xb = np.ascontiguousarray(x[rng.integers(0, len(x) - batch + 1):][:batch])
            calls = max(10, args.calls // batch)
            load = os.getloadavg()[0]
            rounds = []
            for r in range(args.repeats):
                order = names[r % len(names):] + names[:r % len(names)]
                rounds.append(time_round(fs, order, xb, calls, clock))
            med = {n: float(np.median([rd[n] for rd in rounds])) for n in names}
            span = {n: (min(rd[n] for rd in rounds), max(rd[n] for rd in rounds)) for n in names}
            cell = [f"{med[n]:,.1f} ({span[n][0]:,.1f}-{span[n][1]:,.1f})" if batch == 1 else
                    f"{med[n]:,.0f} ({span[n][0]:,.0f}-{span[n][1]:,.0f})" for n in names]
            if args.int8:
                m8 = med["nncore int8 model(x)"]
                ratios = [med["nncore model(x)"] / m8, med["nncore predict"] / med["nncore int8 predict"],
                          med["ONNX Runtime"] / m8, med["PyTorch int8 quantize_dynamic"] / m8]
                lines.append(f"| {batch} | {threads} | {load:.1f} | " + " | ".join(cell) + " | "
                             + " | ".join(f"{r:.2f}x" for r in ratios) + " |")
                print(lines[-1], file=sys.stderr)
                continue
            ratios = [med["ONNX Runtime"] / med[n] for n in ("nncore model(x)", "nncore predict_on_batch",
                                                              "nncore predict")]
            ratios.append(med["PyTorch"] / med["nncore model(x)"])
            lines.append(f"| {batch} | {threads} | {load:.1f} | " + " | ".join(cell) + " | "
                         + " | ".join(f"{r:.2f}x" for r in ratios)
                         + f" | {med['nncore model(x)'] - med['nncore kernels']:,.1f} |")
            print(lines[-1], file=sys.stderr)
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "a") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
