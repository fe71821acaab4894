"""Where a training step of the "lstm" workload (or "gru", "rnn") spends its time in nncore, kernel by kernel.

``python -m bench.lstm_breakdown [--workload lstm] [--threads 1] [--steps 30]`` builds the nncore peer of
the row (bench/workloads.py), trains a warm-up epoch, then wraps every kernel the layers call (the
gemms, told apart by their role, the LSTM cell kernels, column sums, softmax, the fused loss and
the optimizer step) with a timer for ``--steps`` more steps and prints the milliseconds per step of
each, with the step's total measured without the timers; "other" is the rest (the time-major copies
of the input, Python, the batch gathering). The wrappers cost about a microsecond per call (about
120 calls per step), under the noise.
"""
import argparse
import sys
import time
from collections import defaultdict


from bench.breakdown_common import prepare, print_header, wrapped_epoch


def _gemm_role(a, b, c, trans_a=False, trans_b=False, beta=0.0, **_):
    if trans_a:
        return "gemm [dW; dU; db] = xh^T delta (or dW, dU apart with a mask or dropout)"
    if trans_b:
        return "gemm dh += delta U^T (per time step)" if beta else "gemm dx = delta W^T"
    if beta:
        return "gemm z += h U (per time step)"
    return "gemm X W + b (all time steps; with a mask or dropout)"


def main(argv=None):
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--workload", choices=("lstm", "gru", "rnn"), default="lstm")
    known, rest = pre.parse_known_args(sys.argv[1:] if argv is None else argv)
    args, wl, x, y, model, plain = prepare(known.workload, "python -m bench.lstm_breakdown",
                                           __doc__.split("\n\n")[0], rest)
    import nncore.layers.base as base_mod
    import nncore.layers.core as core_mod
    import nncore.layers.recurrent as rec_mod

    totals, calls = defaultdict(float), defaultdict(int)

    def timed(label, fn):
        def wrapper(*a, **k):
            key = label(*a, **k) if callable(label) else label
            t0 = time.perf_counter()
            out = fn(*a, **k)
            totals[key] += time.perf_counter() - t0
            calls[key] += 1
            return out
        return wrapper

    class Cells:   # stands in for the rnn extension module inside nncore.layers.recurrent
        pass

    saved = {(rec_mod, "_rnn"): rec_mod._rnn}
    for name in ("lstm_cell_forward", "lstm_cell_backward", "gru_cell_forward", "gru_cell_backward",
                 "gru_rb_gates_forward", "gru_rb_state_forward", "gru_rb_state_backward", "gru_rb_reset_backward",
                 "simple_rnn_cell_backward"):
        setattr(Cells, name, staticmethod(timed(name.replace("_", " "), getattr(rec_mod._rnn, name))))
    rec_mod._rnn = Cells
    for mod, name, label in ((rec_mod, "gemm", _gemm_role),
                             (rec_mod, "pack_b", "pack [W; U; b] and U^T (once per batch)"),
                             (rec_mod, "pack_b_bf16", "pack [W; U] and U^T as bf16 pairs (once per batch)"),
                             (rec_mod, "bf16_round", "bf16 round (x, W, U, the gradients)"),
                             (rec_mod, "gemm_bf16", _gemm_role),
                             (base_mod, "gemm_bf16", "Dense gemms (bf16)"), (core_mod, "bf16_round", "bf16 round (Dense db)"),
                             (rec_mod, "rnn_seq_forward", "steps forward: the step's products and cell (one call)"),
                             (rec_mod, "rnn_seq_backward", "steps backward: cell, dh += delta U^T (one call)"),
                             (rec_mod, "_colsum", "colsum (recurrent bias)"),
                             (core_mod, "gemm", "Dense gemms"), (core_mod, "_colsum", "colsum (Dense bias)")):
        saved[(mod, name)] = getattr(mod, name)
        setattr(mod, name, timed(label, getattr(mod, name)))
    model.optimizer.step_flat = timed("optimizer step (Adam)", model.optimizer.step_flat)
    wrapped = wrapped_epoch(model, x, y, wl, saved)
    steps = wl.steps()
    print_header(known.workload, wl, args, plain, wrapped)
    print("| kernel | calls per step | ms per step | share |")
    print("|---|---|---|---|")
    for label, t in sorted(totals.items(), key=lambda kv: -kv[1]):
        print(f"| {label} | {calls[label] / steps:.0f} | {t / steps * 1e3:.2f} | {t / steps / wrapped:.0%} |")
    rest = wrapped - sum(totals.values()) / steps
    print(f"| other (copies, loss, Python, batches) | | {rest * 1e3:.2f} | {rest / wrapped:.0%} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
