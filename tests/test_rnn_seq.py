"""The fused step loops of every recurrent cell (rnn_seq_forward / rnn_seq_backward: GRU in both reset forms,
SimpleRNN, LSTM), through the layers, at every SIMD level (the simd_level fixture), float32 and float64:

- the fused path against the per-step path it replaces (a mask of all ones takes the per-step loop):
  bit for bit where the products are summed alike (the GRU's reset-before form, and the LSTM and SimpleRNN
  with input dropout, whose z = x W + b comes from _project), within rounding elsewhere: the one-product
  form of the LSTM and SimpleRNN (z_t = [x_t | h_{t-1} | 1] [W; U; b] sums x_t W, h_{t-1} U and b in one
  chain, the per-step path x_t W + b first, then h_{t-1} U), the GRU (reset_after: x_t W on the step's rows
  in the loop, which one GEMM over all steps sums alike at AVX-512 only), and the weight gradients the loops
  sum (two steps of rows a product, the blocks' parts added in block order, against one GEMM; the GRU's
  reset-before form too, without input dropout);
- float64 central-difference gradient checks of the fused paths (input, every weight, the initial state);
- 1 vs 2 threads bit for bit on sizes that run a team;
- the new kernel entry points' argument errors.
"""
import numpy as np
import pytest

import nncore
from reference_layers import numeric_grad
from nncore._kernels import ACT_CODES
from nncore._kernels.gemm import (RNN_GRU, RNN_GRU_RB, RNN_SIMPLE, pack_b, rnn_seq_backward, rnn_seq_forward)
from nncore.layers import GRU, LSTM, SimpleRNN
from nncore.layers import recurrent

pytestmark = pytest.mark.usefixtures("simd_level")

KINDS = {"GRU": (GRU, {}), "GRU_rb": (GRU, {"reset_after": False}), "SimpleRNN": (SimpleRNN, {}),
         "LSTM": (LSTM, {})}
TANH, SIG = ACT_CODES["tanh"], ACT_CODES["sigmoid"]


@pytest.fixture(params=["float32", "float64"])
def floatx(request):
    old = nncore.floatx()
    nncore.set_floatx(request.param)
    yield np.dtype(request.param)
    nncore.set_floatx(old)


def _layer(kind, u, x, rng, **kw):
    cls, extra = KINDS[kind]
    layer = cls(u, **extra, **kw)
    layer(x)
    for w in layer.weights:
        w[...] = rng.standard_normal(w.shape) * 0.5
    layer._need_dx = True
    return layer


def _case(kind, opts, B, T, D, u, dtype, rng, **kw):
    """(layer, x, initial states or None, dy) of one case; opts: layer options, "init" for initial states."""
    opts = dict(opts)
    init = opts.pop("init", False)
    x = rng.standard_normal((B, T, D)).astype(dtype)
    layer = _layer(kind, u, x, rng, **kw, **opts)
    h0 = [rng.standard_normal((B, u)).astype(dtype) for _ in range(2 if kind == "LSTM" else 1)] if init else None
    dy = rng.standard_normal((B, T, u) if layer.return_sequences else (B, u)).astype(dtype)
    return layer, x, h0, dy


class _NoCells:
    def __getattr__(self, name):
        raise AssertionError(f"the per-step path ran ({name}) where the fused step loop should")


def _run(layer, x, dy, mask=None, init=None, fused=False, monkeypatch=None, seed=None):
    """Forward and backward once: [y, dx, *d initial states, *weight grads] (copies). fused: the per-step
    cell kernels are unreachable during the call."""
    if seed is not None:
        layer._rng = nncore._random.make_rng(seed)
    if fused:
        monkeypatch.setattr(recurrent, "_rnn", _NoCells())
    try:
        y = layer.forward(x, True, mask=mask, initial_state=init)
        back = layer.backward(dy)
    finally:
        if fused:
            monkeypatch.undo()
    back = back if isinstance(back, list) else [back]
    return [y.copy()] + [b.copy() for b in back], [g.copy() for g in layer._grad_of.values()]


OPTS = [{}, {"return_sequences": True}, {"go_backwards": True, "return_sequences": True}, {"init": True},
        {"dropout": 0.3}, {"use_bias": False, "init": True}, {"activation": "relu"}]


@pytest.mark.parametrize("opts", OPTS, ids=lambda o: "-".join(o) or "plain")
@pytest.mark.parametrize("kind", list(KINDS))
def test_fused_matches_the_per_step_path(kind, opts, floatx, monkeypatch):
    B, T = 37, 6
    layer, x, h0, dy = _case(kind, opts, B, T, 5, 19, floatx, np.random.default_rng(7), seed=1)
    fused, fused_g = _run(layer, x, dy, init=h0, fused=True, monkeypatch=monkeypatch, seed=5)
    step, step_g = _run(layer, x, dy, mask=np.ones((B, T), bool), init=h0, seed=5)
    assert len(fused) == len(step) and len(fused_g) == len(step_g)
    # the one-product form and the GRU (x_t W on the step's rows: one GEMM over all steps sums alike at
    # AVX-512 only) within rounding; the GRU (reset before) and the input-dropout forms bit for bit but for
    # the reset-before form's weight gradients, which its loop sums (without input dropout)
    rounded = kind == "GRU" or kind in ("LSTM", "SimpleRNN") and not opts.get("dropout")
    wgrad_rounded = kind == "GRU_rb" and not opts.get("dropout")
    for i, (a, b) in enumerate(zip(fused + fused_g, step + step_g)):
        if not (rounded or wgrad_rounded and i >= len(fused)):
            np.testing.assert_array_equal(a, b, err_msg=f"output {i}")
        elif floatx == np.float32:
            np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-4, err_msg=f"output {i}")
        else:
            np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-11, err_msg=f"output {i}")


@pytest.mark.parametrize("opts", [{}, {"return_sequences": True, "go_backwards": True}, {"init": True},
                                  {"init": True, "return_sequences": True, "use_bias": False}],
                         ids=lambda o: "-".join(o) or "plain")
@pytest.mark.parametrize("kind", list(KINDS))
def test_fused_gradients_finite_differences(kind, opts, float64, monkeypatch):
    layer, x, h0, dy = _case(kind, opts, 3, 4, 2, 3, np.float64, np.random.default_rng(11))
    outs, grads = _run(layer, x, dy, init=h0, fused=True, monkeypatch=monkeypatch)

    def f():
        return float(np.sum(layer.forward(x, True, initial_state=h0) * dy))

    want = [numeric_grad(f, x)] + [numeric_grad(f, s) for s in (h0 or [])]
    want += [numeric_grad(f, getattr(layer, name)) for name in layer._grad_of]
    for i, (a, b) in enumerate(zip(outs[1:] + grads, want)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-8, err_msg=f"gradient {i}")


@pytest.mark.parametrize("kind", list(KINDS))
def test_fused_one_and_two_threads_same_bits(kind, floatx, monkeypatch):
    # 130 rows (4 blocks of whole micro-tiles, the last short), 40 units: work enough for a team of two
    rng = np.random.default_rng(13)
    B, T, D, u = 130, 5, 7, 40
    x = rng.standard_normal((B, T, D)).astype(floatx)
    layer = _layer(kind, u, x, rng, return_sequences=True)
    dy = rng.standard_normal((B, T, u)).astype(floatx)
    runs = []
    for nt in (1, 2):
        layer._n_threads = nt
        runs.append(sum(_run(layer, x, dy, fused=True, monkeypatch=monkeypatch), []))
    for i, (a, b) in enumerate(zip(*runs)):
        np.testing.assert_array_equal(a, b, err_msg=f"output {i}")


@pytest.mark.parametrize("B", [1, 63, 65, 127, 129])
@pytest.mark.parametrize("kind", list(KINDS))
def test_fused_awkward_batches(kind, B, monkeypatch):
    # batches around the 64-row blocks and the micro-tiles: 1 vs 2 threads bit for bit, the per-step path
    # within rounding (float32; the weight gradients the loops sum included)
    rng = np.random.default_rng(B)
    T, D, u = 6, 7, 48
    x = rng.standard_normal((B, T, D)).astype(np.float32)
    layer = _layer(kind, u, x, rng, return_sequences=True)
    dy = rng.standard_normal((B, T, u)).astype(np.float32)
    runs = []
    for nt in (1, 2):
        layer._n_threads = nt
        runs.append(sum(_run(layer, x, dy, fused=True, monkeypatch=monkeypatch), []))
    step = sum(_run(layer, x, dy, mask=np.ones((B, T), bool)), [])
    for i, (a, b, c) in enumerate(zip(*runs, step)):
        np.testing.assert_array_equal(a, b, err_msg=f"output {i}")
        np.testing.assert_allclose(a, c, rtol=2e-4, atol=2e-4, err_msg=f"output {i}")


def test_rnn_seq_errors():
    rng = np.random.default_rng(1)
    T, B, u = 3, 5, 4
    h = np.zeros((T + 1, B, u), np.float32)
    z = np.zeros((T, B, 3 * u), np.float32)
    rec = np.zeros((T, B, 3 * u), np.float32)
    U = rng.standard_normal((u, 3 * u)).astype(np.float32)
    with pytest.raises(ValueError, match="cell 7"):
        rnn_seq_forward(7, TANH, 0, SIG, 0, pack_b(U), z, h, rec)
    with pytest.raises(ValueError, match="rec is needed"):
        rnn_seq_forward(RNN_GRU, TANH, 0, SIG, 0, pack_b(U), z, h)
    with pytest.raises(ValueError, match="pack it again"):
        rnn_seq_forward(RNN_GRU, TANH, 0, SIG, 0, pack_b(U, trans_b=True), z, h, rec)
    with pytest.raises(ValueError, match=r"rec: expected shape \(3, 5, 12\)"):
        rnn_seq_forward(RNN_GRU, TANH, 0, SIG, 0, pack_b(U), z, h, rec[:, :, :4].copy())
    with pytest.raises(ValueError, match="packed2"):
        rnn_seq_forward(RNN_GRU_RB, TANH, 0, SIG, 0, pack_b(np.ascontiguousarray(U[:, :2 * u])), z, h,
                        np.zeros((T, B, u), np.float32))
    with pytest.raises(ValueError, match="no x"):
        rnn_seq_forward(RNN_GRU, TANH, 0, SIG, 0, pack_b(U), z, h, rec, x=np.zeros((T, B, 2), np.float32),
                        xh=np.zeros((T, B, u + 3), np.float32))
    with pytest.raises(ValueError, match="bias goes with"):
        rnn_seq_forward(RNN_SIMPLE, TANH, 0, 0, 0, pack_b(U[:, :u].copy()), None, h, bias=np.zeros(u, np.float32))
    with pytest.raises(ValueError, match="drec is needed"):
        rnn_seq_backward(RNN_GRU, TANH, 0, SIG, 0, pack_b(U, trans_b=True), z, h, h.copy(), z.copy(), rec)
    x, dP = np.zeros((T, B, 2), np.float32), np.zeros((2 + u + 2, 3 * u), np.float32)
    with pytest.raises(ValueError, match=r"dP: expected shape \(8, 12\)"):   # [dW; db_in; dU; db_rec]
        rnn_seq_backward(RNN_GRU, TANH, 0, SIG, 0, pack_b(U, trans_b=True), z, h, h.copy(), z.copy(), rec, xh=x,
                         dP=dP[1:])
    Uzr_t, Uh_t = pack_b(np.ascontiguousarray(U[:, :2 * u]), trans_b=True), pack_b(U[:, 2 * u:].copy(), trans_b=True)
    q = np.zeros((T, B, u), np.float32)
    with pytest.raises(ValueError, match="q is needed"):                      # dU_h = q^T delta_h
        rnn_seq_backward(RNN_GRU_RB, TANH, 0, SIG, 0, Uzr_t, z, h, h.copy(), z.copy(), packed2_t=Uh_t, xh=x,
                         dP=dP[1:])
    with pytest.raises(ValueError, match=r"dP: expected shape \(7, 12\)"):   # [dW; db; dU]
        rnn_seq_backward(RNN_GRU_RB, TANH, 0, SIG, 0, Uzr_t, z, h, h.copy(), z.copy(), q, packed2_t=Uh_t, xh=x,
                         dP=dP)
