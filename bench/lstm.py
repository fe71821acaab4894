"""LSTM training, side by side: nncore against PyTorch (nn.LSTM) and Keras.

The workload: synthetic sequences shaped like MNIST read row by row, (N, 28, 28) float32 with 10
classes, LSTM(128) -> Dense(10, softmax), minibatches of 128 (shuffled, last partial batch kept),
Adam lr 1e-3, sparse softmax cross-entropy. Peers:

- nncore: ``Sequential([LSTM(128), Dense(10, "softmax")])``, ``fit(epochs=1)``;
- torch: ``nn.LSTM(28, 128, batch_first=True)`` + ``nn.Linear``, ``torch.optim.Adam`` as it
  comes (``torch-fused``: ``fused=True``), the usual zero_grad / backward / step loop;
- keras (when installed, torch backend): the same model as nncore with ``fit(epochs=1)``.

Every peer takes the same initial weights (Keras layout: kernel (28, 512), recurrent_kernel
(128, 512), bias (512,), gates i, f, g, o; PyTorch's gate order is the same, its matrices are the
transposes, and it has two biases: b_ih = bias, b_hh = 0). Timings are one epoch per peer, the
peers interleaved within each repeat, medians over repeats; ratios are peer time / nncore time
from the same run (> 1: nncore is faster). ``--breakdown`` times the parts of one nncore step.

    python -m bench.lstm [--samples 5120] [--repeats 5] [--threads 1 2] [--breakdown]
"""
import argparse
import os
import time

import numpy as np

T, D, UNITS, CLASSES, BATCH, LR = 28, 28, 128, 10, 128, 1e-3


def make_data(n, seed=1234):
    """(x, y): class-dependent sequences, float32 (n, 28, 28), labels int64 in [0, 10)."""
    rng = np.random.default_rng(seed)
    proto = rng.standard_normal((CLASSES, T, D)).astype(np.float32)
    y = rng.integers(0, CLASSES, n)
    x = proto[y] * 0.5 + rng.standard_normal((n, T, D)).astype(np.float32)
    return x, y


def initial_weights(seed=0):
    """Keras-order weights [kernel, recurrent_kernel, bias, dense kernel, dense bias], float32."""
    rng = np.random.default_rng(seed)
    s = np.sqrt(6.0 / (D + 4 * UNITS))
    q, _ = np.linalg.qr(rng.standard_normal((4 * UNITS, UNITS)))
    bias = np.zeros(4 * UNITS, np.float32)
    bias[UNITS:2 * UNITS] = 1.0                               # unit_forget_bias
    sd = np.sqrt(6.0 / (UNITS + CLASSES))
    return [rng.uniform(-s, s, (D, 4 * UNITS)).astype(np.float32), q.T.astype(np.float32), bias,
            rng.uniform(-sd, sd, (UNITS, CLASSES)).astype(np.float32), np.zeros(CLASSES, np.float32)]


class NncorePeer:
    name = "nncore"

    def __init__(self, x, y, weights):
        import nncore
        from nncore.layers import LSTM, Dense
        self.x, self.y = x, y
        nncore.set_seed(0)
        self.model = nncore.Sequential([LSTM(UNITS, input_shape=(T, D)), Dense(CLASSES, "softmax")])
        self.model.set_weights(weights)
        self.threads = 1
        self._compile()

    def _compile(self):
        import nncore
        self.model.compile(nncore.optimizers.Adam(LR), "sparse_categorical_crossentropy", n_threads=self.threads)

    def set_threads(self, n):
        self.threads = n
        self._compile()                                     # the optimizer state starts afresh

    def epoch(self):
        return self.model.fit(self.x, self.y, batch_size=BATCH, epochs=1, verbose=0).history["loss"][-1]

    def get_weights(self):
        return self.model.get_weights()


class TorchPeer:
    name = "torch"
    fused = False

    def __init__(self, x, y, weights):
        import torch
        self.torch = torch

        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.lstm = torch.nn.LSTM(D, UNITS, batch_first=True)
                self.dense = torch.nn.Linear(UNITS, CLASSES)

            def forward(self, xb):
                return self.dense(self.lstm(xb)[0][:, -1])    # logits of the last step

        self.net = Net()
        self.set_weights(weights)
        self.x, self.y = torch.from_numpy(x), torch.from_numpy(y)
        self.loss = torch.nn.CrossEntropyLoss()
        self.opt = torch.optim.Adam(self.net.parameters(), lr=LR, fused=True if self.fused else None)
        self.gen = torch.Generator().manual_seed(0)

    def set_weights(self, weights):
        W, U, b, Wd, bd = (self.torch.from_numpy(np.ascontiguousarray(w)) for w in weights)
        with self.torch.no_grad():
            self.net.lstm.weight_ih_l0.copy_(W.T)             # gate blocks i, f, g, o: Keras's order
            self.net.lstm.weight_hh_l0.copy_(U.T)
            self.net.lstm.bias_ih_l0.copy_(b)
            self.net.lstm.bias_hh_l0.zero_()
            self.net.dense.weight.copy_(Wd.T)
            self.net.dense.bias.copy_(bd)

    def get_weights(self):
        lstm, dense = self.net.lstm, self.net.dense
        return [w.detach().numpy().copy() for w in (lstm.weight_ih_l0.T, lstm.weight_hh_l0.T,
                                                    lstm.bias_ih_l0 + lstm.bias_hh_l0, dense.weight.T,
                                                    dense.bias)]

    def set_threads(self, n):
        self.torch.set_num_threads(n)

    def epoch(self):
        n, total = len(self.y), 0.0
        perm = self.torch.randperm(n, generator=self.gen)
        for start in range(0, n, BATCH):
            idx = perm[start:start + BATCH]
            self.opt.zero_grad()
            loss = self.loss(self.net(self.x[idx]), self.y[idx])
            loss.backward()
            self.opt.step()
            total += loss.item() * len(idx)
        return total / n


class TorchFusedPeer(TorchPeer):
    name = "torch-fused"
    fused = True


class KerasPeer:
    name = "keras"

    def __init__(self, x, y, weights):
        os.environ.setdefault("KERAS_BACKEND", "torch")
        import keras
        self.keras = keras
        self.x, self.y = x, y
        self.model = keras.Sequential([keras.Input((T, D)), keras.layers.LSTM(UNITS),
                                       keras.layers.Dense(CLASSES, activation="softmax")])
        self.model.set_weights(weights)
        self.model.compile(keras.optimizers.Adam(LR), "sparse_categorical_crossentropy")

    def set_threads(self, n):
        import torch
        torch.set_num_threads(n)

    def epoch(self):
        return self.model.fit(self.x, self.y, batch_size=BATCH, epochs=1, verbose=0).history["loss"][-1]

    def get_weights(self):
        return self.model.get_weights()


PEERS = {"nncore": NncorePeer, "torch": TorchPeer, "torch-fused": TorchFusedPeer, "keras": KerasPeer}


def available(name):
    mod = {"nncore": "nncore", "torch": "torch", "torch-fused": "torch", "keras": "keras"}[name]
    try:
        if mod == "keras":
            os.environ.setdefault("KERAS_BACKEND", "torch")
        __import__(mod)
        return True
    except Exception:
        return False


def run(samples=5120, repeats=5, threads=(1, 2), peers=("nncore", "torch", "torch-fused", "keras")):
    """{threads: {peer: [seconds per epoch, ...]}} with the peers interleaved in every repeat."""
    x, y = make_data(samples)
    w = initial_weights()
    made = {name: PEERS[name](x, y, w) for name in peers if available(name)}
    out = {}
    for nt in threads:
        for p in made.values():
            p.set_threads(nt)
            p.epoch()                                        # warm-up: buffers, first-call costs
        times = {name: [] for name in made}
        for _ in range(repeats):
            for name, p in made.items():
                t0 = time.perf_counter()
                p.epoch()
                times[name].append(time.perf_counter() - t0)
        out[nt] = times
    return out


def breakdown(threads=1, repeats=20):
    """Median milliseconds of the parts of one nncore LSTM(128) step on a batch of 128."""
    from nncore._kernels import rnn as krnn
    from nncore._kernels.gemm import gemm
    from nncore.layers import LSTM
    x, _ = make_data(BATCH)
    layer = LSTM(UNITS)
    layer(x)
    layer.set_weights(initial_weights()[:3])
    layer._need_dx, layer._n_threads = False, threads
    dy = np.ones((BATCH, UNITS), np.float32)
    layer.forward(x, True)
    layer.backward(dy)
    b, U, g = layer._cur, layer.recurrent_kernel, layer._grad_of
    z0 = b.z.copy()

    def med(f):
        ts = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            f()
            ts.append(time.perf_counter() - t0)
        return 1e3 * float(np.median(ts))

    parts = {
        "layer forward (all)": med(lambda: layer.forward(x, True)),
        "layer backward (all, no dx)": med(lambda: layer.backward(dy)),
        "fwd: projection X W + b (1 gemm)": med(lambda: gemm(b.xt2, layer.kernel, b.z2, bias=layer.bias,
                                                             n_threads=threads)),
        "fwd: h U per step (27 gemms)": med(lambda: [gemm(b.h[t], U, b.z[t], beta=1.0, n_threads=threads)
                                                     for t in range(1, T)]),
        "fwd: cells (28 kernels)": med(lambda: [krnn.lstm_cell_forward(3, 0.0, 2, 0.0, z0[t].copy(), b.c[t],
                                                                       b.c[t + 1], b.tc[t], b.h[t + 1], threads)
                                                for t in range(T)]),
        "bwd: cells (28 kernels)": med(lambda: [krnn.lstm_cell_backward(3, 0.0, 2, 0.0, b.z[t], b.c[t], b.tc[t],
                                                                        b.dh[t], b.dc, b.d[t], threads)
                                                for t in range(T)]),
        "bwd: delta U^T per step (27 gemms)": med(lambda: [gemm(b.d[t], U, b.dh[t - 1], trans_b=True, beta=1.0,
                                                                n_threads=threads) for t in range(1, T)]),
        "bwd: dW = X^T delta (1 gemm)": med(lambda: gemm(b.xt2, b.d2, g["kernel"], trans_a=True,
                                                         n_threads=threads)),
        "bwd: dU = H^T delta (1 gemm)": med(lambda: gemm(b.hprev2, b.drec_p2, g["recurrent_kernel"],
                                                         trans_a=True, n_threads=threads)),
    }
    parts["fwd: cells (28 kernels)"] -= med(lambda: [z0[t].copy() for t in range(T)])   # minus the copies
    return parts


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=5120)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--peers", nargs="+", default=list(PEERS))
    ap.add_argument("--breakdown", action="store_true")
    a = ap.parse_args(argv)
    res = run(a.samples, a.repeats, tuple(a.threads), tuple(a.peers))
    steps = -(-a.samples // BATCH)
    print(f"LSTM(128) -> Dense(10): {a.samples} samples of (28, 28), batch {BATCH}, Adam; "
          f"load average {os.getloadavg()[0]:.1f}; medians of {a.repeats}, ms per batch")
    print("| threads | " + " | ".join(res[a.threads[0]]) + " | " +
          " | ".join(f"{p} / nncore" for p in res[a.threads[0]] if p != "nncore") + " |")
    for nt, times in res.items():
        med = {p: float(np.median(v)) for p, v in times.items()}
        cells = [f"{1e3 * med[p] / steps:.2f}" for p in med]
        ratios = [f"{med[p] / med['nncore']:.2f}" for p in med if p != "nncore"]
        print(f"| {nt} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
    if a.breakdown:
        for nt in a.threads:
            print(f"\nnncore step parts, {nt} thread(s), ms (median):")
            for k, v in breakdown(nt).items():
                print(f"  {k:38s} {v:7.2f}")


if __name__ == "__main__":
    main()
