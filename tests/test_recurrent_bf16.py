"""SimpleRNN, LSTM and GRU under mixed_bfloat16 (nncore/layers/recurrent.py `_operands`, csrc/rnn_body.h).

The rounding points: x, W, U, the initial h and the dropped-out copies (x m, h m) rounded to bfloat16;
every product summed in float32 (exact products of bfloat16 values); the bias, the gates and c in
float32; h_t (the GRU's q = r h_{t-1} too) rounded as the cell writes it; backward, delta = dL/dz rounded
as the cell writes it, dh and dc float32, and dW, dU, db, dx rounded once at the end.

- The cells with ACT_BF16 on their codes write bf(what they write without it) for h / q / delta and the
  same bits for everything else, on every SIMD level.
- Each layer's forward and gradients against a float64 oracle (torch autograd in float64 with those
  rounding points: exact sums; skipped without torch) on awkward shapes and options (masking,
  return_sequences, go_backwards, initial states, dropout, no bias, GRU reset_after both ways,
  stateful, Bidirectional), on every SIMD level; 1 and 2 threads give the same bits.
- Variables stay float32; the policy travels with get_config; digits-as-sequences training under the
  policy reaches the float32 accuracy within 0.5 points (steady-state batches: test_recurrent.py).
"""
import os
import sys
import warnings

import numpy as np
import pytest

import nncore
import reference_bf16 as rb
import reference_layers as ref
from nncore import layers as L
from nncore import mixed_precision as mp
from nncore._kernels import ACT_BF16, ACT_CODES, runtime
from nncore._kernels import rnn as _rnn
from subprocess_common import CHILD_CWD, child_env, run_isolated

pytestmark = pytest.mark.filterwarnings("ignore:mixed_bfloat16:RuntimeWarning")   # the emulation's, at level 0
LEVELS = list(range(runtime.simd_level() + 1))
KINDS = ["SimpleRNN", "LSTM", "GRU", "GRU_rb"]


@pytest.fixture(autouse=True)
def _restore():
    yield
    mp.set_global_policy(None)
    runtime.set_simd_level(-1)


def _bits(x):
    return np.ascontiguousarray(x, np.float32).view(np.uint32)


def _is_bf16(x):
    return np.array_equal(_bits(x), _bits(rb.bf16(x)))


def _same(a, b):
    return np.array_equal(_bits(a), _bits(b))


# ---- the cells -----------------------------------------------------------------------
@pytest.mark.parametrize("level", LEVELS)
def test_cells_round_what_they_write_for_a_product(level):
    runtime.set_simd_level(level)
    rng = np.random.default_rng(level)
    B, u = 13, 7
    TANH, SIG = ACT_CODES["tanh"], ACT_CODES["sigmoid"]
    f = lambda *s: rng.standard_normal(s).astype(np.float32)   # noqa: E731
    fb = lambda *s: rb.bf16(f(*s))                              # noqa: E731  (h_prev: bfloat16 in the layer)
    mask = rng.random(B) < 0.7

    def both(fn, args, outs, rounded):
        """fn(a, ra, *args) with and without ACT_BF16; outs: indices into args written by fn."""
        res = []
        for bf in (0, ACT_BF16):
            a = [x.copy() if isinstance(x, np.ndarray) and x.dtype == np.float32 else x for x in args]
            fn(TANH | bf, SIG | bf, a)
            res.append(a)
        for i in outs:
            want = rb.bf16(res[0][i]) if i in rounded else res[0][i]
            assert _same(res[1][i], want), (fn, i)

    # LSTM: args z, c_prev, h_prev, mask, c, tc, h -> h rounded; z (gates), c, tc not
    both(lambda a, ra, x: _rnn.lstm_cell_forward(a, 0, ra, 0, *x, 1),
         [f(B, 4 * u), f(B, u), fb(B, u), mask, f(B, u), f(B, u), f(B, u)], [0, 4, 5, 6], {6})
    # LSTM backward: gates, c_prev, tc, dh, mask, dc, delta, dh_prev -> delta rounded
    gates = 1 / (1 + np.exp(-f(B, 4 * u)))
    both(lambda a, ra, x: _rnn.lstm_cell_backward(a, 0, ra, 0, *x, 1),
         [gates, f(B, u), np.tanh(f(B, u)), f(B, u), mask, f(B, u), f(B, 4 * u), f(B, u)], [5, 6, 7], {6})
    # GRU reset_after: z, rec, h_prev, mask, h -> h; backward: gates, rec, h_prev, dh, mask, dx, drec, dh_prev
    both(lambda a, ra, x: _rnn.gru_cell_forward(a, 0, ra, 0, *x, 1),
         [f(B, 3 * u), f(B, 3 * u), fb(B, u), mask, f(B, u)], [0, 4], {4})
    both(lambda a, ra, x: _rnn.gru_cell_backward(a, 0, ra, 0, *x, 1),
         [gates[:, :3 * u].copy(), f(B, 3 * u), f(B, u), f(B, u), mask, f(B, 3 * u), f(B, 3 * u), f(B, u)],
         [5, 6, 7], {5, 6})
    # GRU reset_after=False: the gates (q rounded), the state (h), their backward passes (delta)
    both(lambda a, ra, x: _rnn.gru_rb_gates_forward(ra, 0, *x, 1), [f(B, 3 * u), f(B, u), None, f(B, u)], [0, 3],
         {3})
    both(lambda a, ra, x: _rnn.gru_rb_gates_forward(ra, 0, *x, 1), [f(B, 3 * u), f(B, u), f(B, u), f(B, u)],
         [0, 3], {3})
    both(lambda a, ra, x: _rnn.gru_rb_state_forward(a, 0, *x, 1), [f(B, 3 * u), fb(B, u), mask, f(B, u)], [0, 3],
         {3})
    both(lambda a, ra, x: _rnn.gru_rb_state_backward(a, 0, ra, 0, *x, 1),
         [gates[:, :3 * u].copy(), f(B, u), f(B, u), mask, f(B, 3 * u), f(B, u)], [4, 5], {4})
    # SimpleRNN backward: h, dh, mask, delta, dh_prev -> delta rounded (act_backward's modifier)
    for m in (None, mask):
        both(lambda a, ra, x: _rnn.simple_rnn_cell_backward(a, 0, *x, 1),
             [np.tanh(f(B, u)), f(B, u), m, f(B, u), f(B, u)], [3, 4], {3})


def test_gru_rb_reset_backward_rounds_delta_r_only():
    rng = np.random.default_rng(3)
    B, u, SIG = 5, 6, ACT_CODES["sigmoid"]
    gates = (1 / (1 + np.exp(-rng.standard_normal((B, 3 * u))))).astype(np.float32)
    hp, dq = (rng.standard_normal((B, u)).astype(np.float32) for _ in range(2))
    d0 = rng.standard_normal((B, 3 * u)).astype(np.float32)
    out = []
    for bf in (0, ACT_BF16):
        d = d0.copy()
        _rnn.gru_rb_reset_backward(SIG | bf, 0, gates, hp, None, dq, d, None, 1)
        out.append(d)
    assert _same(out[1][:, u:2 * u], rb.bf16(out[0][:, u:2 * u]))
    assert _same(out[1][:, :u], d0[:, :u]) and _same(out[1][:, 2 * u:], d0[:, 2 * u:])


# ---- the layers against a float64 oracle --------------------------------------------------
def _layer(kind, u, **kw):
    if kind == "GRU_rb":
        kw["reset_after"] = False
        kind = "GRU"
    return getattr(L, kind)(u, **kw)


def _oracle(kind, layer, x, seeds, mask=None, init=None, masks=None):
    """(outputs, d weights, dx, d initial states) of the layer's call in float64 with the bf16 rounding
    points (module docstring), by torch autograd; the weight and input gradients rounded once."""
    torch = pytest.importorskip("torch")

    class Value(torch.autograd.Function):          # y = bf(x), the gradient passes unchanged
        @staticmethod
        def forward(ctx, t):
            return t.float().bfloat16().double()

        @staticmethod
        def backward(ctx, g):
            return g

    class Grad(torch.autograd.Function):           # y = x, the gradient rounded (delta as the cells write it)
        @staticmethod
        def forward(ctx, t):
            return t.clone()

        @staticmethod
        def backward(ctx, g):
            return g.float().bfloat16().double()

    class TanhOut(torch.autograd.Function):        # SimpleRNN's h = bf(tanh(z)), its derivative 1 - h^2 from
        @staticmethod                              # that rounded output (as the cell's; as autocast's tanh)
        def forward(ctx, z):
            y = torch.tanh(z).float().bfloat16().double()
            ctx.save_for_backward(y)
            return y

        @staticmethod
        def backward(ctx, g):
            (y,) = ctx.saved_tensors
            return g * (1 - y * y)

    R, G = Value.apply, Grad.apply
    T64 = lambda a: torch.tensor(np.asarray(a, np.float64), requires_grad=True)   # noqa: E731
    base = "GRU" if kind == "GRU_rb" else kind
    reset_after = getattr(layer, "reset_after", True)
    ws = [T64(w) for w in layer.get_weights()]
    W, U = R(ws[0]), R(ws[1])
    u = layer.units
    k = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}[base]
    if len(ws) > 2:
        b = ws[2]
    else:
        b = torch.zeros((2, k * u) if base == "GRU" and reset_after else (k * u,), dtype=torch.float64)
    xin = T64(x)
    xr = R(xin)
    n, T = x.shape[:2]
    n_states = 2 if base == "LSTM" else 1
    if init is None:
        inits = []
        states = [torch.zeros((n, u), dtype=torch.float64) for _ in range(n_states)]
    else:
        inits = [T64(s) for s in init]
        states = [R(inits[0])] + inits[1:]
    mi, mr = masks if masks is not None else (None, None)
    xm = None if mi is None else [torch.tensor(np.asarray(m, np.float64)) for m in (mi if len(mi) == k else [mi[0]] * k)]
    hm = None if mr is None else [torch.tensor(np.asarray(m, np.float64)) for m in (mr if len(mr) == k else [mr[0]] * k)]
    blk = lambda M, i: M[..., i * u:(i + 1) * u]   # noqa: E731
    f, g = torch.tanh, torch.sigmoid
    prev_out, outs = torch.zeros((n, u), dtype=torch.float64), []
    for t in (range(T - 1, -1, -1) if layer.go_backwards else range(T)):
        h = states[0]
        xs = [xr[:, t] if xm is None else R(xr[:, t] * xm[i]) for i in range(k)]
        hs = [h if hm is None else R(h * hm[i]) for i in range(k)]
        if base == "SimpleRNN":
            hn = TanhOut.apply(G(xs[0] @ W + b + hs[0] @ U))
            new = [hn]
        elif base == "LSTM":
            z = G(torch.cat([xs[i] @ blk(W, i) + blk(b, i) + hs[i] @ blk(U, i) for i in range(4)], 1))
            c = g(blk(z, 1)) * states[1] + g(blk(z, 0)) * f(blk(z, 2))
            hn = R(g(blk(z, 3)) * f(c))
            new = [hn, c]
        elif reset_after:
            zx = G(torch.cat([xs[i] @ blk(W, i) + blk(b[0], i) for i in range(3)], 1))
            rec = G(torch.cat([hs[i] @ blk(U, i) + blk(b[1], i) for i in range(3)], 1))
            zz, r = g(blk(zx, 0) + blk(rec, 0)), g(blk(zx, 1) + blk(rec, 1))
            hh = f(blk(zx, 2) + r * blk(rec, 2))
            hn = R(zz * h + (1 - zz) * hh)
            new = [hn]
        else:
            pzr = G(torch.cat([xs[i] @ blk(W, i) + blk(b, i) + hs[i] @ blk(U, i) for i in range(2)], 1))
            zz, r = g(blk(pzr, 0)), g(blk(pzr, 1))
            q = R(r * (h if hm is None else h * hm[2]))   # one rounding (the cell's), not of h m first
            ph = G(xs[2] @ blk(W, 2) + blk(b, 2) + q @ blk(U, 2))
            hn = R(zz * h + (1 - zz) * f(ph))
            new = [hn]
        out = hn
        if mask is not None:
            m = torch.tensor(np.asarray(mask[:, t], bool)[:, None])
            out = torch.where(m, out, torch.zeros_like(out) if layer.zero_output_for_mask else prev_out)
            new = [torch.where(m, s1, s0) for s1, s0 in zip(new, states)]
        states, prev_out = new, out
        outs.append(out)
    y = torch.stack(outs, 1) if layer.return_sequences else outs[-1]
    ys = [y] + (states if layer.return_state else [])
    loss = sum((a * torch.tensor(np.asarray(s, np.float64))).sum() for a, s in zip(ys, seeds))
    loss.backward()
    bf = lambda t: rb.bf16(t.detach().numpy()).astype(np.float64)   # noqa: E731
    return ([a.detach().numpy() for a in ys], [bf(w.grad) for w in ws], bf(xin.grad),
            [s.grad.numpy() for s in inits])


def _close(got, want, what, exact=0.8):
    """Within a few bfloat16 roundings of the tensor's scale; `exact` of the elements the same number
    (the rounded tensors: the oracle's float64 and nncore's float32 sums round alike but near a tie)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    scale = np.abs(want).max() + 1e-30
    err = np.abs(got - want).max() / scale
    assert err <= 2.0 ** -6, (what, err)
    if exact:
        assert np.mean(got == want) >= exact, (what, np.mean(got == want))


CASES = [
    ({}, {}),
    ({"return_sequences": True}, {}),
    ({"return_sequences": True, "go_backwards": True}, {"mask": True}),
    ({"return_sequences": True, "zero_output_for_mask": True}, {"mask": True}),
    ({"return_state": True}, {"init": True}),
    ({"return_sequences": True, "dropout": 0.3, "recurrent_dropout": 0.25, "seed": 2}, {"training": True}),
    ({"dropout": 0.3, "seed": 3}, {"training": True}),
    ({"use_bias": False, "return_sequences": True}, {"mask": True, "init": True}),
]


def _case_id(case):
    kw, opts = case
    return "-".join([k for k in kw if k != "seed"] + list(opts)) or "plain"


def _run(kind, case, level=None, n_threads=1, n=11, T=6, D=5, u=9, seed=0):
    """(layer, x, mask, init, drawn masks, outputs, seeds, grads, dx, d initial states) of one forward and
    backward under mixed_bfloat16."""
    if level is not None:
        runtime.set_simd_level(level)
    kw, opts = case
    rng = np.random.default_rng(seed)
    mp.set_global_policy("mixed_bfloat16")
    layer = _layer(kind, u, **kw)
    if layer.return_state:                         # on its own (its weights apart: [W; U; b] copied)
        layer(np.zeros((1, T, D), np.float32))
        host = layer
    else:                                          # in a model: its weights and gradients in the flat buffers
        host = nncore.Sequential([L.Input(shape=(T, D)), layer])
    mp.set_global_policy(None)
    host.set_weights([rng.normal(scale=0.5, size=w.shape).astype(np.float32) for w in host.get_weights()])
    layer._n_threads = n_threads
    x = rng.standard_normal((n, T, D)).astype(np.float32)
    mask = ref_mask(rng, n, T) if opts.get("mask") else None
    init = ([rng.standard_normal((n, u)).astype(np.float32) for _ in range(2 if kind == "LSTM" else 1)]
            if opts.get("init") else None)
    out = layer.forward(x, opts.get("training", False), mask=mask, initial_state=init)
    drawn = (layer._cur.mi, layer._cur.mr) if opts.get("training") else None
    outs = [o.copy() for o in (out if isinstance(out, list) else [out])]
    seeds = [rng.standard_normal(o.shape).astype(np.float32) for o in outs]
    back = layer.backward(seeds if layer.return_state else seeds[0])
    back = back if isinstance(back, list) else [back]
    grads = [layer._grad_of[k].copy() for k in ("kernel", "recurrent_kernel", "bias") if k in layer._grad_of]
    return layer, x, mask, init, drawn, outs, seeds, grads, back[0].copy(), [b.copy() for b in back[1:]]


def ref_mask(rng, n, T):
    m = rng.random((n, T)) < 0.6
    m[0] = True
    m[1, :2] = False
    m[1, -1] = False
    m[2] = False
    return m


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("case", CASES, ids=_case_id)
@pytest.mark.parametrize("kind", KINDS)
def test_forward_and_gradients_against_the_float64_oracle(kind, case, level):
    layer, x, mask, init, drawn, outs, seeds, grads, dx, dinit = _run(kind, case, level)
    assert layer.compute_dtype == "bfloat16" and layer.kernel.dtype == np.float32
    assert _is_bf16(outs[0])                                   # the output: bfloat16 values
    for g in grads + [dx]:
        assert g.dtype == np.float32 and _is_bf16(g)          # as the bf16 GEMM gives them
    y_ref, g_ref, dx_ref, dinit_ref = _oracle(kind, layer, x, seeds, mask, init, drawn)
    _close(outs[0], y_ref[0], "output")
    for i, (a, b) in enumerate(zip(outs[1:], y_ref[1:])):
        _close(a, b, f"state {i}", exact=0.8 if i == 0 else 0)
    for name, a, b in zip(("kernel", "recurrent_kernel", "bias"), grads, g_ref):
        _close(a, b, name)
    _close(dx, dx_ref, "dx")
    for i, (a, b) in enumerate(zip(dinit, dinit_ref)):
        _close(a, b, f"d initial state {i}", exact=0)


@pytest.mark.parametrize("case", [CASES[0], CASES[2], CASES[5]], ids=_case_id)
@pytest.mark.parametrize("kind", KINDS)
def test_one_and_two_threads_give_the_same_bits(kind, case):
    one = _run(kind, case, n_threads=1, n=150, T=5, D=7, u=40, seed=4)
    two = _run(kind, case, n_threads=2, n=150, T=5, D=7, u=40, seed=4)
    for i in (5, 7):
        assert all(_same(a, b) for a, b in zip(one[i], two[i]))
    assert _same(one[8], two[8])


def test_the_policy_is_in_force_and_float32_stays_as_it_was():
    # the same weights and input: float32 differs from bf16, and float32 gives the bits it gave before
    a = _run("LSTM", CASES[1])
    rng = np.random.default_rng(0)
    layer = L.LSTM(9, return_sequences=True)
    model = nncore.Sequential([L.Input(shape=(6, 5)), layer])
    model.set_weights([rng.normal(scale=0.5, size=w.shape).astype(np.float32) for w in model.get_weights()])
    assert layer.compute_dtype == "float32"
    y = layer.forward(a[1])
    assert not _same(y, a[5][0]) and not _is_bf16(y)
    np.testing.assert_allclose(y, a[5][0], atol=3e-2)


def test_stateful_carries_the_rounded_state():
    mp.set_global_policy("mixed_bfloat16")
    rng = np.random.default_rng(6)
    layer = L.LSTM(5, stateful=True, return_state=True)
    x = rng.standard_normal((4, 3, 2)).astype(np.float32)
    y, h, c = layer(x)
    assert _is_bf16(h) and not _is_bf16(c)                     # h rounded, the cell state float32
    y2, h2, c2 = layer(x)
    whole = L.LSTM(5, return_state=True)
    whole(np.concatenate([x, x], 1))
    whole.set_weights(layer.get_weights())
    _, hw, cw = whole(np.concatenate([x, x], 1))
    assert _same(h2, hw) and _same(c2, cw)                     # two batches = one sequence of both


def test_bidirectional_computes_in_bfloat16_both_ways():
    mp.set_global_policy("mixed_bfloat16")
    rng = np.random.default_rng(7)
    bi = L.Bidirectional(L.GRU(6, return_sequences=True))
    model = nncore.Sequential([L.Input(shape=(5, 4)), bi])
    mp.set_global_policy(None)
    model.set_weights([rng.normal(scale=0.5, size=w.shape).astype(np.float32) for w in model.get_weights()])
    assert [s.compute_dtype for s in (bi.forward_layer, bi.backward_layer)] == ["bfloat16"] * 2
    x = rng.standard_normal((8, 5, 4)).astype(np.float32)
    y = model.predict(x, verbose=0)
    assert _is_bf16(y)
    seeds = [np.zeros((8, 5, 6))]
    yf = _oracle("GRU", bi.forward_layer, x, seeds)[0][0]
    yb = _oracle("GRU", bi.backward_layer, x, seeds)[0][0]
    _close(y, np.concatenate([yf, yb[:, ::-1]], -1), "bidirectional")
    cfg = bi.get_config()
    assert cfg["layer"]["config"]["dtype"] == "mixed_bfloat16"
    assert L.Bidirectional.from_config(cfg).forward_layer.compute_dtype == "bfloat16"


def test_policy_in_config_and_per_layer():
    assert L.LSTM(3, dtype="mixed_bfloat16").compute_dtype == "bfloat16"
    assert "dtype" not in L.GRU(3).get_config()
    mp.set_global_policy("mixed_bfloat16")
    cfg = L.SimpleRNN(3).get_config()
    assert cfg["dtype"] == "mixed_bfloat16" and L.SimpleRNN.from_config(cfg).compute_dtype == "bfloat16"
    assert L.GRU(3, dtype="float32").compute_dtype == "float32"


def test_fit_keeps_float32_variables():
    # (steady-state batches allocate nothing under the policy: test_recurrent.py's test, both policies)
    rng = np.random.default_rng(8)
    x, y = rng.standard_normal((64, 7, 5)).astype(np.float32), rng.integers(0, 3, 64)
    mp.set_global_policy("mixed_bfloat16")
    m = nncore.Sequential([L.Input(shape=(7, 5)), L.LSTM(12, return_sequences=True), L.GRU(8),
                           L.Dense(3, activation="softmax")])
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    w0 = [w.copy() for w in m.get_weights()]
    m.fit(x, y, epochs=2, batch_size=16, verbose=0)
    assert all(w.dtype == np.float32 for w in m.get_weights())
    assert not all(np.array_equal(a, b) for a, b in zip(w0, m.get_weights()))
    assert not all(_is_bf16(w) for w in m.get_weights())      # the float32 updates are kept whole


def test_digits_lstm_reaches_the_float32_accuracy():
    from sklearn.datasets import load_digits

    d = load_digits()
    X = (d.images / 16.0).astype(np.float32)                    # 8 steps of 8 pixels
    Xtr, Xte, ytr, yte = X[:1400], X[1400:], d.target[:1400], d.target[1400:]
    acc = {}
    for policy in ("float32", "mixed_bfloat16"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mp.set_global_policy(policy)
        nncore.set_seed(0)
        m = nncore.Sequential([L.Input(shape=(8, 8)), L.LSTM(32), L.Dense(10, activation="softmax")])
        m.compile(loss="sparse_categorical_crossentropy", optimizer=nncore.optimizers.Adam(0.01),
                  metrics=["accuracy"])
        m.fit(Xtr, ytr, epochs=12, batch_size=32, verbose=0)
        acc[policy] = m.evaluate(Xte, yte, verbose=0)[1]
    assert acc["float32"] > 0.9, acc
    assert acc["mixed_bfloat16"] >= acc["float32"] - 0.005, acc


@pytest.mark.parametrize("case", [CASES[0], CASES[1], CASES[2], CASES[6]], ids=_case_id)
@pytest.mark.parametrize("kind", KINDS)
def test_every_bf16_kernel_gives_the_same_bits(kind, case):
    # the LSTM's fused step loops run their products on the bf16 micro-kernel in use (vdpbf16ps or its
    # emulations: one chain), the other paths on the float32 GEMM: either way the same bits on every kernel
    from nncore._kernels import gemm as G

    kernels = [k for k in ("avx512bf16", "avx2-emulated", "generic-emulated") if G.bf16_available(k)]
    runs = []
    try:
        for k in kernels:
            G.bf16_set_kernel(k)
            runs.append(_run(kind, case, n=70, T=5, D=9, u=19, seed=5))
    finally:
        G.bf16_set_kernel(None)
    for r in runs[1:]:
        for i in (5, 7):
            assert all(_same(a, b) for a, b in zip(r[i], runs[0][i])), (kernels, i)
        assert _same(r[8], runs[0][8])


@pytest.mark.skipif(runtime.simd_level() < 2, reason="needs the AVX2 and AVX-512 levels")
@pytest.mark.parametrize("case", [CASES[0], CASES[1], CASES[6]], ids=_case_id)
@pytest.mark.parametrize("kind", KINDS)
def test_fused_step_loops_same_bits_at_avx2_and_avx512(kind, case):
    # the fused step loops' products on the bf16 kernel, the cells' vector math alike on both levels, dx
    # on the bf16 GEMM: the lstm, gru and rnn rows' layers give the same bits at --simd avx2 and avx512
    a, b = (_run(kind, case, level, n=70, T=5, D=9, u=19, seed=6) for level in (1, 2))
    for i in (5, 7):
        assert all(_same(x, y) for x, y in zip(a[i], b[i])), i
    assert _same(a[8], b[8])


@pytest.mark.parametrize("shape", [(1, 5, 3, 7), (13, 70, 10, 9), (2, 16, 8, 8)])
def test_step_loop_product_is_the_vdpbf16ps_chain_on_every_kernel(shape):
    # with linear gates a step's gates are z_t itself: z_0 = b + [x_0 | h_0] [W; U] summed as vdpbf16ps
    # chains it from the float32 bias (pairs of k in order, the odd element first), bit for bit
    from nncore._kernels import gemm as G

    T, B, D, u = shape
    rng = np.random.default_rng(sum(shape))
    x = rb.bf16(rng.standard_normal((T, B, D)))
    P = rb.bf16(rng.standard_normal((D + u, 4 * u)))
    bias = rng.standard_normal(4 * u).astype(np.float32)
    h0 = rb.bf16(rng.standard_normal((B, u)))
    a = np.concatenate([x[0], h0], 1)
    want = np.broadcast_to(bias, (B, 4 * u)).astype(np.float32)
    for p in [p for q in range(0, D + u, 2) for p in (q + 1, q) if p < D + u]:
        want = want + np.multiply.outer(a[:, p], P[p])
    lin = ACT_CODES["linear"] | ACT_BF16
    try:
        for k in ("avx512bf16", "avx2-emulated", "generic-emulated"):
            if not G.bf16_available(k):
                continue
            G.bf16_set_kernel(k)
            z, c, tc = np.empty((T, B, 4 * u), np.float32), np.zeros((T + 1, B, u), np.float32), np.empty((T, B, u), np.float32)
            h = np.zeros((T + 1, B, u), np.float32)
            h[0] = h0
            xh = np.empty((T, B, D + u + 1), np.float32)
            G.lstm_seq_forward(lin, 0, lin, 0, G.pack_b_bf16(P), z, c, tc, h, with_h0=True, x=x, xh=xh, bias=bias)
            assert _same(z[0], want), k
            assert _is_bf16(h[1:])
    finally:
        G.bf16_set_kernel(None)


@pytest.mark.parametrize("kind", KINDS)
def test_inputs_wider_than_the_gates(kind):
    """Inputs with many more features than the gates' columns (D = 300, 3 u = 12): the GRU's x_t W on a
    step's rows is then the deepest product of the fused loop, and its bf16 work space must be sized for it."""
    layer, x, mask, init, drawn, outs, seeds, grads, dx, dinit = _run(kind, CASES[1], n=9, T=4, D=300, u=4)
    y_ref, g_ref, dx_ref, _ = _oracle(kind, layer, x, seeds, mask, init, drawn)
    _close(outs[0], y_ref[0], "output")
    for name, a, b in zip(("kernel", "recurrent_kernel", "bias"), grads, g_ref):
        _close(a, b, name)
    _close(dx, dx_ref, "dx")


MALLOC_DEBUG = "/lib/x86_64-linux-gnu/libc_malloc_debug.so.0"


@pytest.mark.skipif(not os.path.exists(MALLOC_DEBUG), reason="glibc's malloc debugging library is not here")
def test_wide_inputs_stay_inside_their_buffers():
    """The same wide GRU predict in a child under glibc's checking malloc (MALLOC_CHECK_=3): a write past
    the end of a heap block aborts it at the block's free."""
    code = ("import numpy as np, nncore, nncore.layers as L, nncore.mixed_precision as mp\n"
            "mp.set_global_policy('mixed_bfloat16')\n"
            "for reset_after in (True, False):\n"
            "    m = nncore.Sequential([L.Input(shape=(3, 512)), L.GRU(8, reset_after=reset_after)])\n"
            "    x = np.random.default_rng(0).standard_normal((64, 3, 512)).astype(np.float32)\n"
            "    for _ in range(3):\n"
            "        m.predict(x, verbose=0)\n"
            "print('ok')\n")
    env = child_env(LD_PRELOAD=MALLOC_DEBUG, MALLOC_CHECK_="3")
    rc, out = run_isolated([sys.executable, "-c", code], CHILD_CWD, env, timeout=120)
    assert rc == 0 and out.strip().endswith("ok"), out
