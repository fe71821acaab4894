"""The contenders: nncore and the libraries a user would pick instead.

Each peer builds the same network (float32, softmax output, Adam lr 1e-3,
softmax cross-entropy) for a :class:`~bench.workloads.Workload`: the network
of ``wl.arch`` comes from the peer's method ``build_<arch>`` ("mlp": ReLU Dense
layers; "cnn": see :func:`cnn_shapes`; "lstm": LSTM(hidden[0]) -> Dense, with
PyTorch's nn.LSTM, whose gate order i, f, g, o is Keras's i, f, c, o, whose matrices are the
transposes of Keras's and whose two biases b_ih, b_hh stand for Keras's one: b_ih = bias, b_hh = 0). A peer without a builder for an
architecture does not run that row (``supports(wl)`` says why; the tables show
"n/a"), so adding a row of a new architecture is adding builders. A peer
exposes

- ``set_threads(n)``: the thread count of the library's own knob;
- ``run(k)``: k epochs of minibatch training (``task == "train"``, shuffled
  every epoch, last partial batch kept) or k passes of batched inference
  (``task == "predict"``); returns nothing, the caller times it. Keras-style
  peers (nncore, Keras) call ``fit(epochs=1)`` k times, or ``fit(epochs=k)``
  once when made with ``one_call=True``;
- ``last_loss``: mean training loss of the last epoch (when the peer reports it).

A peer class has ``available()`` -> (bool, reason) so that a missing library
is skipped with a line in the report rather than an error. Every peer is
written the way its documentation shows it: no tricks that a user of that
library would not write.
"""
import importlib
import os

import numpy as np

__all__ = ["PEERS", "PEER_ORDER", "BLAS_PEERS", "NNCORE_VARIANTS", "INT8_PEERS", "BF16_PEERS", "PRECISION_PEERS",
           "LOW_PRECISION_PEERS", "get_peer_class", "available_peers",
           "supports", "cnn_shapes"]

LR = 1e-3


def cnn_shapes(wl):
    """The "cnn" architecture of a workload, channels_last.

    One block per entry f of ``wl.hidden``: Conv2D(f, 3x3, 'valid', relu) then
    MaxPooling2D(2) (floor). Returns ([(in_channels, filters), ...] per conv,
    (H, W, C) of the last block's output, which Flatten feeds to Dense(n_classes)).
    """
    h, w, c = wl.input_shape
    convs = []
    for f in wl.hidden:
        convs.append((c, f))
        h, w, c = (h - 2) // 2, (w - 2) // 2, f
        if h < 1 or w < 1:
            raise ValueError(f"workload {wl.name}: input {wl.input_shape} too small for {len(wl.hidden)} conv blocks")
    return convs, (h, w, c)


def _blas_controller():
    # One ThreadpoolController, made once: scanning the loaded libraries costs ms.
    global _CONTROLLER
    if _CONTROLLER is None:
        import threadpoolctl

        _CONTROLLER = threadpoolctl.ThreadpoolController()
    return _CONTROLLER


_CONTROLLER = None


def _set_blas_threads(n):
    try:
        _blas_controller().limit(limits=int(n), user_api="blas")
    except ImportError:  # threadpoolctl absent: the BLAS keeps its own default
        pass


def glorot_uniform(rng, fan_in, fan_out, dtype):
    """U(-s, s) with s = sqrt(6 / (fan_in + fan_out)) (Keras's default kernel initializer)."""
    s = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-s, s, size=(fan_in, fan_out)).astype(dtype)


class Peer:
    """Base class: holds the workload and the data."""

    name = "?"
    label = "?"
    module = None  # the library whose version is reported

    one_call = False  # Keras-style peers: k epochs as one fit(epochs=k) instead of k fit(epochs=1)

    def __init__(self, wl, x, y, seed=0, one_call=False):
        ok, why = self.supports(wl)
        if not ok:
            raise ValueError(why)
        self.wl, self.x, self.y, self.seed = wl, x, y, seed
        self.one_call = bool(one_call)
        self.last_loss = float("nan")

    @classmethod
    def supports(cls, wl):
        """(True, "") when this peer has a builder for the workload's architecture, else (False, reason)."""
        if callable(getattr(cls, "build_" + wl.arch, None)):
            return True, ""
        return False, f"{cls.label} has no {wl.arch!r} network (no build_{wl.arch})"

    def build(self):
        """The network of ``self.wl.arch``, made by ``build_<arch>``."""
        return getattr(self, "build_" + self.wl.arch)()

    @classmethod
    def available(cls):
        try:
            importlib.import_module(cls.module)
        except Exception as exc:  # ImportError, or a broken install
            return False, f"{cls.module} not importable ({type(exc).__name__}: {exc})"
        return True, ""

    @classmethod
    def version(cls):
        try:
            return getattr(importlib.import_module(cls.module), "__version__", "?")
        except Exception:
            return None

    def set_threads(self, n):
        raise NotImplementedError

    def run(self, k=1):
        for _ in range(k):
            if self.wl.task == "train":
                self.train_epoch()
            else:
                self.predict_all()

    def train_epoch(self):
        raise NotImplementedError

    def predict_all(self):
        raise NotImplementedError


# ----------------------------------------------------------------------------------------------
class NumpyPeer(Peer):
    """What a user writes by hand with NumPy: forward, backward and Adam (Keras's form).

    Forward, a_0 = x: z_l = a_{l-1} W_l + b_l, a_l = relu(z_l); p = softmax(z_L).
    Backward: delta_L = (p - onehot(y)) / n; dW_l = a_{l-1}^T delta_l;
    db_l = sum_rows delta_l; delta_{l-1} = (delta_l W_l^T) * (a_{l-1} > 0).
    Adam: m += (g - m)(1 - b1); v += (g^2 - v)(1 - b2);
    w -= lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps), eps = 1e-7.
    """

    name = "numpy"
    label = "NumPy by hand"
    module = "numpy"
    beta_1, beta_2, eps = 0.9, 0.999, 1e-7

    def __init__(self, wl, x, y, seed=0, one_call=False):
        super().__init__(wl, x, y, seed, one_call)
        self.build()
        self.params = [p for pair in zip(self.W, self.b) for p in pair]  # W0, b0, W1, b1, ...
        self.m = [np.zeros_like(p) for p in self.params]
        self.v = [np.zeros_like(p) for p in self.params]
        self.t = 0
        self.shuffle_rng = np.random.default_rng(self.seed + 1)

    def build_mlp(self):
        rng = np.random.default_rng(self.seed)
        dt = self.x.dtype
        sizes = self.wl.layers
        self.W = [glorot_uniform(rng, a, b, dt) for a, b in zip(sizes[:-1], sizes[1:])]
        self.b = [np.zeros(b, dtype=dt) for b in sizes[1:]]

    def set_threads(self, n):
        _set_blas_threads(n)

    def set_weights(self, weights):
        """Keras order: [W0, b0, W1, b1, ...] with W of shape (n_in, n_out)."""
        for p, w in zip(self.params, weights):
            p[...] = w

    def get_weights(self):
        return [p.copy() for p in self.params]

    def forward(self, x):
        """Activations [a_0 = x, a_1, ..., a_{L-1}] and the softmax output p."""
        acts = [x]
        for W, b in zip(self.W[:-1], self.b[:-1]):
            z = acts[-1] @ W
            z += b
            np.maximum(z, 0, out=z)  # relu in place
            acts.append(z)
        z = acts[-1] @ self.W[-1]
        z += self.b[-1]
        z -= z.max(axis=1, keepdims=True)  # softmax, max-subtracted
        np.exp(z, out=z)
        z /= z.sum(axis=1, keepdims=True)
        return acts, z

    def gradients(self, xb, yb):
        """Mean cross-entropy over the batch and its gradients, in Keras order [dW0, db0, ...]."""
        n = xb.shape[0]
        acts, p = self.forward(xb)
        rows = np.arange(n)
        loss = -np.log(np.maximum(p[rows, yb], 1e-7)).mean()
        delta = p
        delta[rows, yb] -= 1  # dL/dz_L = (p - onehot(y)) / n
        delta /= n
        grads = [None] * len(self.params)
        for layer in range(len(self.W) - 1, -1, -1):
            grads[2 * layer] = acts[layer].T @ delta
            grads[2 * layer + 1] = delta.sum(axis=0)
            if layer:
                delta = delta @ self.W[layer].T
                delta *= acts[layer] > 0  # relu'(z) from its output
        return float(loss), grads

    def adam(self, grads):
        self.t += 1
        b1, b2 = self.beta_1, self.beta_2
        lr_t = LR * np.sqrt(1.0 - b2**self.t) / (1.0 - b1**self.t)
        for w, g, m, v in zip(self.params, grads, self.m, self.v):
            m += (g - m) * (1 - b1)
            v += (g * g - v) * (1 - b2)
            w -= lr_t * m / (np.sqrt(v) + self.eps)

    def train_epoch(self):
        n, bs = len(self.y), self.wl.batch
        perm = self.shuffle_rng.permutation(n)
        total = 0.0
        for start in range(0, n, bs):
            idx = perm[start:start + bs]
            loss, grads = self.gradients(self.x[idx], self.y[idx])
            self.adam(grads)
            total += loss * len(idx)
        self.last_loss = total / n

    def predict_all(self):
        bs = self.wl.batch
        out = np.empty((len(self.x), self.wl.n_classes), dtype=self.x.dtype)
        for start in range(0, len(self.x), bs):
            out[start:start + bs] = self.forward(self.x[start:start + bs])[1]
        return out


# ----------------------------------------------------------------------------------------------
class TorchPeer(Peer):
    """PyTorch eager on the CPU with the plain training loop of its tutorials, default Adam."""

    name = "torch"
    label = "PyTorch"
    module = "torch"
    fused = None

    def __init__(self, wl, x, y, seed=0, one_call=False):
        super().__init__(wl, x, y, seed, one_call)
        import torch
        from torch import nn

        self.torch, self.nn = torch, nn
        torch.manual_seed(seed)
        self.flat_chw = None  # (C, H, W) where a Flatten of NCHW feeds the first Linear (weights reorder)
        self.model = self.build()  # logits out; softmax lives in the loss
        self.opt = torch.optim.Adam(self.model.parameters(), lr=LR, fused=self.fused)
        self.loss_fn = nn.CrossEntropyLoss()
        if x.ndim == 4:  # images: PyTorch's own NCHW layout, converted once outside the timing
            x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        self.tx = torch.from_numpy(x)
        self.ty = torch.from_numpy(y)
        self.gen = torch.Generator().manual_seed(seed + 1)

    def build_mlp(self):
        nn = self.nn
        mods = []
        for a, b in zip(self.wl.layers[:-1], self.wl.layers[1:]):
            mods += [nn.Linear(a, b), nn.ReLU()]
        return nn.Sequential(*mods[:-1])

    def build_cnn(self):
        nn = self.nn
        convs, (h, w, c) = cnn_shapes(self.wl)
        mods = []
        for cin, f in convs:
            mods += [nn.Conv2d(cin, f, 3), nn.ReLU(), nn.MaxPool2d(2)]
        self.flat_chw = (c, h, w)
        return nn.Sequential(*mods, nn.Flatten(), nn.Linear(c * h * w, self.wl.n_classes))

    def build_lstm(self):
        nn = self.nn

        class LastStep(nn.Module):
            """nn.LSTM (batch_first) keeping the last step's output: Keras's return_sequences=False."""

            def __init__(self, lstm):
                super().__init__()
                self.lstm = lstm

            def forward(self, xb):
                return self.lstm(xb)[0][:, -1]

        _, features = self.wl.input_shape           # (timesteps, features)
        units = self.wl.hidden[0]
        rnn = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[self.wl.arch]
        return nn.Sequential(LastStep(rnn(features, units, batch_first=True)), nn.Linear(units, self.wl.n_classes))

    build_gru = build_rnn = build_lstm     # nn.GRU (PyTorch's form is Keras's reset_after), nn.RNN (tanh)

    def build_resnet(self):
        """The residual CNN of KerasLayerBuilders.build_resnet in NCHW; BatchNorm2d with Keras's
        epsilon 1e-3 and momentum 0.1 (PyTorch's weight of the new batch: Keras's 0.9)."""
        nn, f, c_in = self.nn, self.wl.hidden[0], self.wl.input_shape[-1]

        def conv_bn(cin, cout, stride=1, relu=True):
            mods = [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
                    nn.BatchNorm2d(cout, eps=1e-3, momentum=0.1)]
            return nn.Sequential(*mods, nn.ReLU()) if relu else nn.Sequential(*mods)

        class Block(nn.Module):
            """relu(x + BN(Conv(relu(BN(Conv(x))))))"""

            def __init__(self, filters):
                super().__init__()
                self.body = nn.Sequential(conv_bn(filters, filters), conv_bn(filters, filters, relu=False))

            def forward(self, x):
                return nn.functional.relu(x + self.body(x))

        return nn.Sequential(conv_bn(c_in, f), Block(f), conv_bn(f, 2 * f, stride=2), Block(2 * f),
                             nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * f, self.wl.n_classes))

    def set_threads(self, n):
        self.torch.set_num_threads(int(n))

    def linears(self):
        """The modules with parameters, in order (Linear, Conv2d and LSTM)."""
        nn = self.torch.nn
        return [m for m in self.model.modules() if isinstance(m, (nn.Linear, nn.Conv2d, nn.LSTM, nn.GRU, nn.RNN))]

    def _gates(self, m, a):
        """Keras's gate blocks along a's first axis in PyTorch's order and back (an involution): the GRU's
        z, r, h are PyTorch's r, z, n; the LSTM's i, f, c, o and the RNN's one block are the same."""
        if not isinstance(m, self.torch.nn.GRU):
            return a
        z, r, h = np.split(a, 3, axis=0)
        return np.concatenate([r, z, h], axis=0)

    def _torch_layout(self, m, W, first_linear):
        """Keras kernel -> PyTorch weight: Conv (kh, kw, in, out) -> (out, in, kh, kw); Dense W^T, its
        rows reordered from channels_last (h, w, c) to NCHW (c, h, w) after a Flatten."""
        if isinstance(m, self.torch.nn.Conv2d):
            return W.transpose(3, 2, 0, 1)
        if first_linear and self.flat_chw is not None:
            c, h, w = self.flat_chw
            return W.reshape(h, w, c, -1).transpose(3, 2, 0, 1).reshape(W.shape[1], -1)
        return W.T

    def set_weights(self, weights):
        """Keras order and layouts: [W0, b0, W1, b1, ...] (an LSTM: kernel, recurrent_kernel, bias)."""
        t = self.torch
        ws = list(weights)
        with t.no_grad():
            first = True
            for m in self.linears():
                if isinstance(m, (t.nn.LSTM, t.nn.GRU, t.nn.RNN)):   # the GRU's bias: [b_in, b_rec]
                    W, U, b = ws[:3]
                    ws = ws[3:]
                    bi, bh = (b[0], b[1]) if b.ndim == 2 else (b, np.zeros_like(b))
                    for p_, v in ((m.weight_ih_l0, W.T), (m.weight_hh_l0, U.T), (m.bias_ih_l0, bi),
                                  (m.bias_hh_l0, bh)):
                        p_.copy_(t.from_numpy(np.ascontiguousarray(self._gates(m, v))))
                    continue
                W, b = ws[:2]
                ws = ws[2:]
                m.weight.copy_(t.from_numpy(np.ascontiguousarray(self._torch_layout(m, W, first))))
                m.bias.copy_(t.from_numpy(b))
                first = first and not isinstance(m, t.nn.Linear)

    def _keras_layout(self, m, T, first_linear):
        if isinstance(m, self.torch.nn.Conv2d):
            return T.transpose(2, 3, 1, 0)
        if first_linear and self.flat_chw is not None:
            c, h, w = self.flat_chw
            return T.reshape(-1, c, h, w).transpose(2, 3, 1, 0).reshape(c * h * w, -1)
        return T.T

    def get_weights(self, grads=False):
        """Keras order and layouts; with grads=True the parameters' .grad instead."""
        out, first = [], True
        for m in self.linears():
            if isinstance(m, self.torch.nn.GRU):   # Keras's bias (2, 3u): [b_in, b_rec]
                ps = (m.weight_ih_l0, m.weight_hh_l0, m.bias_ih_l0, m.bias_hh_l0)
                wi, wh, bi, bh = (self._gates(m, (q.grad if grads else q).detach().numpy()) for q in ps)
                out += [wi.T.copy(), wh.T.copy(), np.stack([bi, bh])]
                continue
            if isinstance(m, (self.torch.nn.LSTM, self.torch.nn.RNN)):  # d/d(bias) = d/d(b_ih) = d/d(b_hh)
                wi, wh, b = ((m.weight_ih_l0.grad, m.weight_hh_l0.grad, m.bias_ih_l0.grad) if grads else
                             (m.weight_ih_l0, m.weight_hh_l0, m.bias_ih_l0 + m.bias_hh_l0))
                out += [w.detach().numpy().T.copy() for w in (wi, wh)] + [b.detach().numpy().copy()]
                continue
            w, b = (m.weight.grad, m.bias.grad) if grads else (m.weight, m.bias)
            out += [self._keras_layout(m, w.detach().numpy(), first).copy(), b.detach().numpy().copy()]
            first = first and not isinstance(m, self.torch.nn.Linear)
        return out

    def loss_of(self, xb, yb):
        return self.loss_fn(self.model(xb), yb)

    def train_epoch(self):
        torch = self.torch
        n, bs = len(self.ty), self.wl.batch
        self.model.train()
        perm = torch.randperm(n, generator=self.gen)
        total = 0.0
        for start in range(0, n, bs):
            idx = perm[start:start + bs]
            xb, yb = self.tx[idx], self.ty[idx]
            self.opt.zero_grad()
            loss = self.loss_of(xb, yb)
            loss.backward()
            self.opt.step()
            total += loss.item() * len(idx)
        self.last_loss = total / n

    def predict_all(self):
        torch = self.torch
        bs = self.wl.batch
        self.model.eval()
        out = torch.empty((len(self.tx), self.wl.n_classes), dtype=self.tx.dtype)
        with torch.inference_mode():
            for start in range(0, len(self.tx), bs):
                out[start:start + bs] = torch.softmax(self.model(self.tx[start:start + bs]), dim=1)
        return out.numpy()


class TorchInt8Peer(TorchPeer):
    """PyTorch's int8 inference for CPUs: ``torch.ao.quantization.quantize_dynamic(model, {nn.Linear},
    dtype=torch.qint8)`` (int8 weights per tensor, inputs quantized per batch at run time, FBGEMM's
    kernels with 7-bit activations on x86), the predict rows. It quantizes nn.Linear only (PyTorch has
    no dynamic int8 convolution): on the cnn row the convolutions stay float32, the Dense head is int8."""

    name = "torch_int8"
    label = "PyTorch int8 quantize_dynamic (Linear only)"

    @classmethod
    def supports(cls, wl):
        if wl.task != "predict":
            return False, f"{cls.label} runs the inference rows only"
        return super().supports(wl)

    def __init__(self, wl, x, y, seed=0, one_call=False):
        super().__init__(wl, x, y, seed, one_call)
        self.float_model = self.model
        self._quantize()

    def _quantize(self):
        import warnings

        torch = self.torch
        with warnings.catch_warnings():   # torch 2.13 deprecates torch.ao.quantization, still its CPU int8 way
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.filterwarnings("ignore", "torch.quantize_per_tensor", UserWarning)
            warnings.filterwarnings("ignore", "Please use quant_min", UserWarning)   # the x86 qconfig's observers
            self.model = self.quantized(self.float_model.eval())

    def quantized(self, model):
        return self.torch.ao.quantization.quantize_dynamic(model, {self.torch.nn.Linear}, dtype=self.torch.qint8)

    def set_weights(self, weights):
        self.model = self.float_model
        super().set_weights(weights)
        self._quantize()

    def linears(self):
        nn = self.torch.nn   # the float model's (the quantized modules are other classes)
        return [m for m in self.float_model.modules() if isinstance(m, (nn.Linear, nn.Conv2d, nn.LSTM))]


class TorchInt8StaticPeer(TorchInt8Peer):
    """PyTorch's static int8 quantization, eager mode, as its tutorial writes it: QuantStub in front,
    DeQuantStub behind, each Conv2d/Linear fused with its ReLU (``fuse_modules``), the ``"x86"`` qconfig
    (int8 weights per output channel, uint8 activations per tensor with scales fixed by calibration on
    the first 512 samples), ``prepare`` / calibrate / ``convert``: every layer, the convolutions
    included, on FBGEMM/oneDNN int8 kernels, uint8 tensors between them (the scale of every activation
    is fixed ahead, nothing measured at run time). The predict rows."""

    name = "torch_int8_static"
    label = "PyTorch int8 static"
    calibration = 512

    def quantized(self, model):
        import copy

        torch = self.torch
        nn, tq = torch.nn, torch.ao.quantization
        mods = list(copy.deepcopy(model).children())
        # [conv/linear, relu] pairs fused (positions within the new Sequential: QuantStub is 0)
        pairs = [[str(i + 1), str(i + 2)] for i, m in enumerate(mods[:-1])
                 if isinstance(m, (nn.Conv2d, nn.Linear)) and isinstance(mods[i + 1], nn.ReLU)]
        net = nn.Sequential(tq.QuantStub(), *mods, tq.DeQuantStub()).eval()
        net = tq.fuse_modules(net, pairs)
        torch.backends.quantized.engine = "x86"
        net.qconfig = tq.get_default_qconfig("x86")
        tq.prepare(net, inplace=True)
        with torch.inference_mode():
            net(self.tx[:self.calibration])
        return tq.convert(net, inplace=True)


class TrainingRowsOnly:
    """Mixin of a contender that runs the training rows only (the bf16 mixed-precision peers)."""

    @classmethod
    def supports(cls, wl):
        if wl.task != "train":
            return False, f"{cls.label} runs the training rows only"
        return super().supports(wl)


class TorchBf16Peer(TrainingRowsOnly, TorchPeer):
    """PyTorch's mixed precision on the CPU: the same loop with the forward and the loss under
    ``torch.autocast("cpu", dtype=torch.bfloat16)`` (float32 parameters and Adam state, bfloat16
    matmuls and convolutions through oneDNN), the training rows."""

    name = "torch_bf16"
    label = "PyTorch autocast bf16"

    def loss_of(self, xb, yb):
        with self.torch.autocast("cpu", dtype=self.torch.bfloat16):
            return self.loss_fn(self.model(xb).float(), yb)


class TorchFusedPeer(TorchPeer):
    """The same loop with ``torch.optim.Adam(fused=True)`` (one kernel for all parameters)."""

    name = "torch_fused"
    label = "PyTorch fused Adam"
    fused = True


# ----------------------------------------------------------------------------------------------
class SklearnPeer(Peer):
    """scikit-learn MLPClassifier, float32 input, one ``partial_fit`` per epoch."""

    name = "sklearn"
    label = "scikit-learn"
    module = "sklearn"

    def __init__(self, wl, x, y, seed=0, one_call=False):
        super().__init__(wl, x, y, seed, one_call)
        self.classes = np.arange(wl.n_classes)
        self.clf = self.build()
        if wl.task == "predict":  # predict_proba needs a fitted model: one pass over a slice
            self.clf.partial_fit(x[:4096], y[:4096], classes=self.classes)

    def build_mlp(self):
        from sklearn.neural_network import MLPClassifier

        return MLPClassifier(hidden_layer_sizes=tuple(self.wl.hidden), activation="relu", solver="adam",
                             alpha=0.0, batch_size=min(self.wl.batch, len(self.x)), learning_rate_init=LR,
                             shuffle=True, random_state=self.seed)

    def set_threads(self, n):
        _set_blas_threads(n)

    def train_epoch(self):
        self.clf.partial_fit(self.x, self.y, classes=self.classes)
        self.last_loss = float(self.clf.loss_)

    def predict_all(self):
        bs = self.wl.batch
        out = np.empty((len(self.x), self.wl.n_classes), dtype=self.x.dtype)
        for start in range(0, len(self.x), bs):
            out[start:start + bs] = self.clf.predict_proba(self.x[start:start + bs])
        return out


# ----------------------------------------------------------------------------------------------
class KerasLayerBuilders:
    """build_<arch> for the peers whose layers follow Keras's API (Keras itself and nncore): the same
    calls on ``self.layer_api``, the peer's layers module."""

    def build_mlp(self):
        L = self.layer_api
        return ([L.Dense(h, activation="relu") for h in self.wl.hidden]
                + [L.Dense(self.wl.n_classes, activation="softmax")])

    def build_cnn(self):
        L = self.layer_api
        out = []
        for _, f in cnn_shapes(self.wl)[0]:
            out += [L.Conv2D(f, 3, activation="relu"), L.MaxPooling2D(2)]
        return out + [L.Flatten(), L.Dense(self.wl.n_classes, activation="softmax")]

    def build_lstm(self):
        L = self.layer_api
        rnn = {"lstm": L.LSTM, "gru": L.GRU, "rnn": L.SimpleRNN}[self.wl.arch]
        return [rnn(self.wl.hidden[0]), L.Dense(self.wl.n_classes, activation="softmax")]

    build_gru = build_rnn = build_lstm

    def build_resnet(self):
        """examples/resnet_digits.py's network as a function of the input tensor (functional API)."""
        L, f, k = self.layer_api, self.wl.hidden[0], self.wl.n_classes

        def conv_bn(x, filters, strides=1, relu=True):
            h = L.BatchNormalization(momentum=0.9)(L.Conv2D(filters, 3, strides=strides, padding="same",
                                                            use_bias=False)(x))
            return L.Activation("relu")(h) if relu else h

        def block(x, filters):
            return L.Activation("relu")(L.Add()([x, conv_bn(conv_bn(x, filters), filters, relu=False)]))

        def network(x):
            h = block(conv_bn(x, f), f)
            h = block(conv_bn(h, 2 * f, strides=2), 2 * f)
            return L.Dense(k, activation="softmax")(L.GlobalAveragePooling2D()(h))

        return network

    def assemble(self, api, input_layer):
        """A Sequential of the built layer list, or a functional Model of a built network function."""
        built = self.build()
        if callable(built):
            x = input_layer(shape=self.wl.input_shape)
            return api.Model(x, built(x))
        return api.Sequential([input_layer(shape=self.wl.input_shape)] + built)


class KerasPeer(KerasLayerBuilders, Peer):
    """Keras 3 on the torch backend: Sequential, compile, fit(epochs=1), predict."""

    name = "keras"
    label = "Keras 3 (torch)"
    module = "keras"

    @classmethod
    def available(cls):
        if os.environ.get("KERAS_BACKEND", "torch") != "torch":
            return False, f"KERAS_BACKEND={os.environ['KERAS_BACKEND']!r}, not torch"
        os.environ["KERAS_BACKEND"] = "torch"  # must precede the import of keras
        ok, why = super().available()
        if not ok:
            return ok, why
        import keras

        if keras.backend.backend() != "torch":
            return False, f"keras runs on the {keras.backend.backend()!r} backend, not torch"
        return True, ""

    def __init__(self, wl, x, y, seed=0, one_call=False):
        super().__init__(wl, x, y, seed, one_call)
        os.environ["KERAS_BACKEND"] = "torch"
        import keras
        import torch

        self.torch, self.keras, self.layer_api = torch, keras, keras.layers
        keras.utils.set_random_seed(seed)
        self.model = self.assemble(keras, keras.Input)
        self.model.compile(optimizer=keras.optimizers.Adam(learning_rate=LR),
                           loss="sparse_categorical_crossentropy")

    def set_threads(self, n):
        self.torch.set_num_threads(int(n))

    def set_weights(self, weights):
        self.model.set_weights([np.asarray(w) for w in weights])

    def get_weights(self):
        return [np.array(w, copy=True) for w in self.model.get_weights()]

    def run(self, k=1):
        if self.one_call and self.wl.task == "train":  # fit(epochs=k): the fixed cost of a fit() call once
            hist = self.model.fit(self.x, self.y, batch_size=self.wl.batch, epochs=k, shuffle=True, verbose=0)
            self.last_loss = float(hist.history["loss"][-1])
        else:
            super().run(k)

    def train_epoch(self):
        hist = self.model.fit(self.x, self.y, batch_size=self.wl.batch, epochs=1, shuffle=True, verbose=0)
        self.last_loss = float(hist.history["loss"][-1])

    def predict_all(self):
        return self.model.predict(self.x, batch_size=self.wl.batch, verbose=0)


# ----------------------------------------------------------------------------------------------
class NncorePeer(KerasLayerBuilders, Peer):
    """nncore through its Keras-like API: Sequential, compile('adam', ...), fit, predict."""

    name = "nncore"
    label = "nncore"
    module = "nncore"

    @classmethod
    def available(cls):
        ok, why = super().available()
        if not ok:
            return ok, why
        import nncore

        missing = [n for n in ("Sequential", "set_num_threads") if not hasattr(nncore, n)]
        if not hasattr(nncore, "layers") or not hasattr(nncore.layers, "Dense"):
            missing.append("layers.Dense")
        if missing:
            return False, "nncore has no " + ", ".join(missing) + " yet (model layer not merged)"
        return True, ""

    ARCH_LAYERS = {"cnn": ("Conv2D", "MaxPooling2D"), "lstm": ("LSTM",), "gru": ("GRU",),  # beyond Dense
                   "rnn": ("SimpleRNN",),
                   "resnet": ("Conv2D", "BatchNormalization", "Add", "GlobalAveragePooling2D")}

    @classmethod
    def supports(cls, wl):
        ok, why = super().supports(wl)
        if ok and wl.arch in cls.ARCH_LAYERS:
            import nncore

            missing = [n for n in cls.ARCH_LAYERS[wl.arch] if not hasattr(nncore.layers, n)]
            if missing:
                return False, "nncore has no " + ", ".join(missing) + " yet"
        return ok, why

    def __init__(self, wl, x, y, seed=0, one_call=False):
        super().__init__(wl, x, y, seed, one_call)
        import nncore

        self.nncore, self.layer_api = nncore, nncore.layers
        nncore.set_seed(seed)
        self.model = self.assemble(nncore, nncore.layers.Input)
        self.model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")

    def set_threads(self, n):
        self.nncore.set_num_threads(int(n))

    def run(self, k=1):
        if self.one_call and self.wl.task == "train":  # fit(epochs=k): the fixed cost of a fit() call once
            hist = self.model.fit(self.x, self.y, batch_size=self.wl.batch, epochs=k, shuffle=True, verbose=0)
            self.last_loss = float(hist.history["loss"][-1])
        else:
            super().run(k)

    def set_weights(self, weights):
        self.model.set_weights([np.asarray(w) for w in weights])

    def get_weights(self):
        return [np.array(w, copy=True) for w in self.model.get_weights()]

    def train_epoch(self):
        hist = self.model.fit(self.x, self.y, batch_size=self.wl.batch, epochs=1, shuffle=True, verbose=0)
        history = getattr(hist, "history", None) or {}
        if history.get("loss"):
            self.last_loss = float(history["loss"][-1])

    def infer(self, xb):
        """The outputs of one batch, as a user serving requests calls it."""
        return self.model.predict(xb, batch_size=len(xb), verbose=0)

    def predict_all(self):
        # one call per batch (a serving loop): the per-call cost counts, at batch 1 as at 1024
        bs = self.wl.batch
        out = np.empty((len(self.x), self.wl.n_classes), dtype=self.x.dtype)
        for start in range(0, len(self.x), bs):
            out[start:start + bs] = self.infer(self.x[start:start + bs])
        return out


class _NncoreInference(NncorePeer):
    """An inference-only contender on the nncore peer's network and weights, one call per batch
    (`infer`); it runs the "predict" rows only. `method`: what nncore's Sequential must have."""

    method = None

    @classmethod
    def supports(cls, wl):
        if wl.task != "predict":
            return False, f"{cls.label} runs inference only"
        ok, why = super().supports(wl)
        if ok and not hasattr(_nncore_model_class(), cls.method):
            return False, f"nncore's Sequential has no {cls.method} yet"
        return ok, why


class NncoreInt8Peer(_NncoreInference):
    """nncore's int8 inference: the nncore peer's model after ``model.quantize("int8")``, ``predict``
    per batch (int8 weights per output channel, inputs quantized per row at run time)."""

    name = "nncore_int8"
    label = "nncore int8"
    method = "quantize"

    def __init__(self, wl, x, y, seed=0, one_call=False):
        super().__init__(wl, x, y, seed, one_call)
        self.model.quantize("int8")

    def set_weights(self, weights):
        """Float weights, Keras order: a float model of them, quantized."""
        float_model = self.nncore.Sequential([self.layer_api.Input(shape=self.wl.input_shape)] + self.build())
        float_model.set_weights([np.asarray(w) for w in weights])
        float_model.quantize("int8")
        self.model = float_model


class NncoreBf16Peer(TrainingRowsOnly, NncorePeer):
    """nncore under ``nncore.mixed_precision.set_global_policy("mixed_bfloat16")`` while the model is
    built: float32 weights and Adam state, Dense/Conv2D products on the bf16 GEMM (vdpbf16ps, or its
    emulation on CPUs without AVX512_BF16), the training rows."""

    name = "nncore_bf16"
    label = "nncore mixed_bfloat16"

    def __init__(self, wl, x, y, seed=0, one_call=False):
        import warnings

        import nncore

        with warnings.catch_warnings():   # the no-speed-up warning of an emulated vdpbf16ps: the bench says it
            warnings.simplefilter("ignore", RuntimeWarning)
            nncore.mixed_precision.set_global_policy("mixed_bfloat16")
        try:
            super().__init__(wl, x, y, seed, one_call)
        finally:
            nncore.mixed_precision.set_global_policy(None)


def _nncore_model_class():
    import nncore

    return nncore.Sequential


class NncoreCallPeer(_NncoreInference):
    """``model(x)`` per batch. Its ratio against nncore's `predict` is what the shorter call saves; as
    nncore itself it never counts as the fastest peer."""

    name = "nncore_call"
    label = "nncore model(x)"
    method = "__call__"

    def infer(self, xb):
        return self.model(xb)


class NncorePredictOnBatchPeer(NncoreCallPeer):
    """``model.predict_on_batch(x)`` per batch (once nncore has it)."""

    name = "nncore_pob"
    label = "nncore predict_on_batch"
    method = "predict_on_batch"

    def infer(self, xb):
        return self.model.predict_on_batch(xb)


class NncoreIm2colPeer(NncorePeer):
    """The nncore peer with every convolution on im2col + GEMM (Winograd off: the reference path, what
    nncore ran before csrc/winograd.c), to set the layers' own choice against it in the same run. As
    nncore itself it never counts as the fastest peer."""

    name = "nncore_im2col"
    label = "nncore im2col"

    @classmethod
    def supports(cls, wl):
        if wl.arch != "cnn":
            return False, "nncore im2col differs from nncore on convolutions only"
        return super().supports(wl)

    def run(self, k=1):
        # the rule is read when a layer sizes its buffers for a batch size, inside this peer's own runs
        import nncore.layers.conv as conv

        rule, conv.winograd_tile = conv.winograd_tile, lambda *a: 0
        try:
            super().run(k)
        finally:
            conv.winograd_tile = rule


class OnnxRuntimePeer(_NncoreInference):
    """ONNX Runtime on the nncore peer's model exported by nncore.onnx (the same network and weights):
    ``session.run`` per batch, intra-op threads = the thread count, sequential execution, ONNX
    Runtime's defaults otherwise (every graph optimization; its pool spins a while after a call)."""

    name = "onnxruntime"
    label = "ONNX Runtime"
    module = "onnxruntime"
    method = "export"

    @classmethod
    def available(cls):
        try:
            importlib.import_module("onnx")
        except Exception as exc:
            return False, f"onnx not importable ({type(exc).__name__}: {exc})"
        return super().available()

    def __init__(self, wl, x, y, seed=0, one_call=False):
        super().__init__(wl, x, y, seed, one_call)
        import onnxruntime

        self.ort, self.threads = onnxruntime, 1
        self._session()

    def _session(self):
        from nncore import onnx as nncore_onnx

        opts = self.ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = self.ort.ExecutionMode.ORT_SEQUENTIAL
        proto = nncore_onnx.export(self.model)
        self.sess = self.ort.InferenceSession(proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        self.input_name = self.sess.get_inputs()[0].name

    def set_threads(self, n):
        if int(n) != self.threads:   # fixed when the session is made
            self.threads = int(n)
            self._session()

    def set_weights(self, weights):
        super().set_weights(weights)
        self._session()

    def infer(self, xb):
        return self.sess.run(None, {self.input_name: xb})[0]


PEERS = {cls.name: cls for cls in (NncorePeer, TorchPeer, TorchFusedPeer, SklearnPeer, NumpyPeer, KerasPeer,
                                   OnnxRuntimePeer, NncoreCallPeer, NncorePredictOnBatchPeer, NncoreIm2colPeer,
                                   NncoreInt8Peer, TorchInt8Peer, TorchInt8StaticPeer, NncoreBf16Peer, TorchBf16Peer)}
PEER_ORDER = ("nncore", "torch", "torch_fused", "sklearn", "numpy", "keras", "onnxruntime", "nncore_call",
              "nncore_pob", "nncore_im2col", "nncore_int8", "torch_int8", "torch_int8_static", "nncore_bf16", "torch_bf16")
NNCORE_VARIANTS = ("nncore_call", "nncore_pob", "nncore_im2col", "nncore_int8")  # nncore itself: ratios shown, never the "fastest peer"
INT8_PEERS = ("nncore_int8", "torch_int8", "torch_int8_static")  # int8 inference (python -m bench --precision int8): their own table
BF16_PEERS = ("nncore_bf16", "torch_bf16")  # bf16 training (python -m bench --precision bf16): their own table
PRECISION_PEERS = {"int8": INT8_PEERS, "bf16": BF16_PEERS}   # never the "fastest peer" of a float32 row
LOW_PRECISION_PEERS = INT8_PEERS + BF16_PEERS
BLAS_PEERS = ("sklearn", "numpy")  # the ones on OpenBLAS, also run with OPENBLAS_* unset


def get_peer_class(name):
    if name not in PEERS:
        raise ValueError(f"peer: expected one of {list(PEER_ORDER)}, got {name!r}")
    return PEERS[name]


def available_peers(names):
    """{name: (ok, reason)} for the requested peer names."""
    return {n: get_peer_class(n).available() for n in names}


def supports(name, wl):
    """(ok, reason): whether peer `name` builds the network of workload `wl` (its architecture)."""
    return get_peer_class(name).supports(wl)
