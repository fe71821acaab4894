"""The kernels of an LSTM (or GRU) training step on their own, against the FMA floor of their arithmetic.

``python -m bench.lstm_kernels [--cell gru] [--threads 1] [--repeats 7] [--batch 128]`` runs each kernel the layer calls on
the lstm row's shapes (batch 128, 28 steps, 28 features, 128 units; bench/workloads.py) on fixed
random data, interleaved, and prints the median time per step (thread CPU time at 1 thread: the
machine is shared), its GFLOP/s and its share of the floor (the kernel's multiply-adds at the FMA
peak of bench/fma_peak.c). The cell kernels are timed alone too (28 calls on one step's rows).
"""
import argparse
import time

import numpy as np

from bench import set_simd
from nncore._kernels import ACT_CODES
from nncore._kernels import rnn as rnn
from nncore._kernels.elementwise import colsum
from nncore._kernels.gemm import RNN_GRU, gemm, lstm_seq_backward, lstm_seq_forward, pack_b, rnn_seq_backward, \
    rnn_seq_forward

# the layer's default activations (csrc/nncore.h's codes: 1 is "step", which this script ran as "tanh" before
# session 16, so its cell figures until then left out the two tanh passes of a forward row)
TANH, SIG = ACT_CODES["tanh"], ACT_CODES["sigmoid"]


def build(T=28, B=128, D=28, u=128, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    G = 4 * u
    s = type("S", (), {})()
    s.T, s.B, s.D, s.u, s.G = T, B, D, u, G
    s.xt = rng.standard_normal((T * B, D)).astype(dtype)
    s.W = (rng.standard_normal((D, G)) * 0.1).astype(dtype)
    s.U = (rng.standard_normal((u, G)) * 0.1).astype(dtype)
    s.bias = (rng.standard_normal(G) * 0.1).astype(dtype)
    s.z = np.empty((T, B, G), dtype)
    s.h = np.zeros((T + 1, B, u), dtype)
    s.c = np.zeros((T + 1, B, u), dtype)
    s.tc = np.empty((T, B, u), dtype)
    s.d = (rng.standard_normal((T, B, G)) * 0.1).astype(dtype)
    s.dh = rng.standard_normal((T + 1, B, u)).astype(dtype)
    s.dc = np.zeros((B, u), dtype)
    s.P = np.vstack([s.W, s.U, s.bias[None]])
    s.Pp, s.Utp = pack_b(s.P), pack_b(s.U, trans_b=True)
    s.xh, s.dP = np.empty((T, B, D + u + 1), dtype), np.empty_like(s.P)
    return s


def kernels(s, nt):
    """(label, multiply-adds, function) of each kernel of one training step, as the LSTM layer calls them
    without a mask or dropout: z_t = [x_t | h_{t-1} | 1] [W; U; b] in the forward step loop, [dW; dU; db] =
    xh^T delta summed in the backward one (and, apart, the backward loop and that GEMM on their own)."""
    T, B, D, u, G = s.T, s.B, s.D, s.u, s.G
    K = D + u + 1
    x = s.xt.reshape(T, B, D)
    return [
        ("lstm_seq_forward (z_t = [x_t, h_t-1, 1] [W; U; b], cell)", T * B * K * G,
         lambda: lstm_seq_forward(TANH, 0, SIG, 0, s.Pp, s.z, s.c, s.tc, s.h, n_threads=nt, x=x, xh=s.xh)),
        ("lstm_seq_backward with [dW; dU; db] += xh_t^T delta_t (delta not kept, dh[t] written; the layer's call)",
         (T - 1) * B * u * G + T * B * K * G,
         lambda: lstm_seq_backward(TANH, 0, SIG, 0, s.Utp, s.z, s.c, s.tc, s.dh, s.dc, None, n_threads=nt,
                                   xh=s.xh, dP=s.dP, add_dh=False)),
        ("  apart: lstm_seq_backward (cell, dh += delta U^T)", (T - 1) * B * u * G,
         lambda: lstm_seq_backward(TANH, 0, SIG, 0, s.Utp, s.z, s.c, s.tc, s.dh, s.dc, s.d, n_threads=nt)),
        ("  apart: gemm [dW; dU; db] = xh^T delta", T * B * K * G,
         lambda: gemm(s.xh.reshape(-1, K), s.d.reshape(-1, G), s.dP, trans_a=True, n_threads=nt)),
        ("pack [W; U; b] and U^T", 0, lambda: (pack_b(s.P, out=s.Pp), pack_b(s.U, trans_b=True, out=s.Utp))),
    ]


def kernels_gru(s, nt):
    """The GRU's (reset_after) kernels on the same shapes: the forward step loop (z_t = x_t W + b_in, rec_t =
    h_{t-1} U + b_rec, cell), the backward one with [dW; db_in; dU; db_rec] summed in it (the layer's calls),
    and apart the forms before: Z = X W + b_in over all steps and the loop on it, the loop keeping dx and
    drec with the GEMMs and column sums after it."""
    T, B, D, u = s.T, s.B, s.D, s.u
    G = 3 * u
    rng = np.random.default_rng(1)
    W, U = s.W[:, :G].copy(), s.U[:, :G].copy()
    bias = (rng.standard_normal((2, G)) * 0.1).astype(W.dtype)
    z, rec, d, drec = (np.empty((T, B, G), W.dtype) for _ in range(4))
    dW, dU, db, dP = np.empty_like(W), np.empty_like(U), np.empty((2, G), W.dtype), np.empty((D + u + 2, G), W.dtype)
    Up, Utp, Wp, x = pack_b(U), pack_b(U, trans_b=True), pack_b(W), s.xt.reshape(T, B, D)
    h = s.h
    return [
        ("rnn_seq_forward GRU (z_t = x_t W + b_in, rec_t = h_t-1 U + b_rec, cell)", T * B * D * G + (T - 1) * B * u * G,
         lambda: rnn_seq_forward(RNN_GRU, TANH, 0, SIG, 0, Up, z, h, rec, n_threads=nt, x=x, bias=bias, packed2=Wp)),
        ("  apart: gemm Z = X W + b_in (all steps)", T * B * D * G,
         lambda: gemm(s.xt, W, z.reshape(-1, G), bias=bias[0], n_threads=nt)),
        ("  apart: rnn_seq_forward GRU on Z (rec_t = h_t-1 U + b_rec, cell)", (T - 1) * B * u * G,
         lambda: rnn_seq_forward(RNN_GRU, TANH, 0, SIG, 0, Up, z, h, rec, n_threads=nt, bias=bias)),
        ("rnn_seq_backward GRU with [dW; db_in; dU; db_rec] summed in the loop (the layer's call)",
         (T - 1) * B * u * G + T * B * (D + u + 2) * G,
         lambda: rnn_seq_backward(RNN_GRU, TANH, 0, SIG, 0, Utp, z, h, s.dh, None, rec, n_threads=nt, xh=x, dP=dP,
                                  add_dh=False)),
        ("  apart: rnn_seq_backward GRU (cell, dh += drec U^T; dx, drec kept)", (T - 1) * B * u * G,
         lambda: rnn_seq_backward(RNN_GRU, TANH, 0, SIG, 0, Utp, z, h, s.dh, d, rec, drec=drec, n_threads=nt,
                                  add_dh=False)),
        ("  apart: gemm dW = X^T dx, dU = H^T drec, colsums", T * B * (D + u) * G,
         lambda: (gemm(s.xt, d.reshape(-1, G), dW, trans_a=True, n_threads=nt),
                  gemm(h[:T].reshape(-1, u), drec.reshape(-1, G), dU, trans_a=True, n_threads=nt),
                  colsum(d.reshape(-1, G), db[0], nt), colsum(drec.reshape(-1, G), db[1], nt))),
    ]


def cells(s):
    zs, cs, hs = s.z[1].copy(), s.c[1].copy(), s.h[1].copy()
    c2, t2, h2, ds, dhs = np.empty_like(cs), np.empty_like(cs), np.empty_like(hs), s.d[1].copy(), s.dh[1].copy()
    dcs = np.zeros_like(cs)

    def fwd():
        for _ in range(s.T):
            rnn.lstm_cell_forward(TANH, 0, SIG, 0, zs, cs, hs, None, c2, t2, h2, 1)

    def bwd():
        for _ in range(s.T):
            rnn.lstm_cell_backward(TANH, 0, SIG, 0, zs, cs, t2, dhs, None, dcs, ds, None, 1)
    return [("  of which the cells forward (alone, in cache)", 0, fwd),
            ("  of which the cells backward (alone, in cache)", 0, bwd)]


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench.lstm_kernels", description=__doc__.split("\n\n")[0])
    ap.add_argument("--cell", choices=("lstm", "gru"), default="lstm")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--batch", type=int, default=128,
                    help="the batch (default 128, the row's); 64 at 1 thread is one core's share of the row at 2 "
                         "threads (a 64-row block each), timed in thread CPU time on a busy machine")
    ap.add_argument("--peak", type=float, default=None, help="FMA peak GFLOP/s of one core (default: measured)")
    ap.add_argument("--simd", choices=("generic", "avx2", "avx512"), default=None,
                    help="run the kernels at this SIMD level (default: the best this CPU has)")
    args = ap.parse_args(argv)
    set_simd(args.simd)
    from bench.gemm import fma_peak
    peak = args.peak or (fma_peak() or (117.0, 58.0))[0]
    s = build(B=args.batch)
    rows = kernels_gru(s, args.threads) if args.cell == "gru" else kernels(s, args.threads) + cells(s)
    clock = time.thread_time if args.threads == 1 else time.perf_counter
    times = {label: [] for label, _, _ in rows}
    for _ in range(args.repeats):
        for label, _, fn in rows:
            fn()
            t0 = clock()
            fn()
            times[label].append(clock() - t0)
    floor_peak = peak * 1e9 * args.threads
    import nncore
    print(f"# {args.cell} row kernels, batch {args.batch}, SIMD {nncore.get_simd_level()}, {args.threads} thread(s), "
          f"FMA peak {peak:.1f} GFLOP/s a core, "
          f"median of {args.repeats}")
    print("| kernel | ms per step | GFLOP/s | floor (ms) | time / floor |")
    print("|---|---|---|---|---|")
    total = floor_total = 0.0
    for label, macs, _ in rows:
        t = float(np.median(times[label]))
        floor = 2 * macs / floor_peak
        if not label.startswith("  "):
            total += t
            floor_total += floor
        rate = f"{2 * macs / t / 1e9:.1f}" if macs else ""
        ratio = f"{t / floor:.2f}" if macs else ""
        print(f"| {label} | {t * 1e3:.3f} | {rate} | {floor * 1e3:.3f} | {ratio} |")
    print(f"| all of the above | {total * 1e3:.3f} | | {floor_total * 1e3:.3f} | {total / floor_total:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
