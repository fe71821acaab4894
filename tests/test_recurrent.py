"""Recurrent layers (SimpleRNN, LSTM, GRU) and their cell kernels.

- the cell kernels (with and without a mask, GRU in both reset forms) against the plain-NumPy
  float64 oracles of tests/reference_layers.py, float32 and float64, awkward sizes, 1 and 2
  threads (bit-identical: rows are independent), every SIMD level;
- every layer against a NumPy forward of the Keras 3 equations, and a central-difference
  gradient check (input and every parameter) over return_sequences, go_backwards, T = 1,
  batch 1, odd units, no bias, other activations;
- models that learn small sequence tasks, saving round trips with a bit-identical resume,
  summary, clear errors;
- Embedding (row gather forward, scatter-add backward) and a text-like model.
The options (dropout, masks, initial/final/carried states, GRU reset_after=False) are tested in
tests/test_recurrent_options.py.
"""
import numpy as np
import pytest

import nncore
import reference_layers as ref
from nncore._kernels import ACT_CODES
from nncore._kernels import rnn as krnn
from nncore._kernels import elementwise as kew
from nncore.layers import GRU, LSTM, Dense, Embedding, SimpleRNN
from nncore.models import Sequential

TANH, SIG = ACT_CODES["tanh"], ACT_CODES["sigmoid"]


def ref_layer(kind, x, weights, return_sequences=False, go_backwards=False, a="tanh", ra="sigmoid"):
    """The Keras 3 equations, one step at a time, float64."""
    return ref.rnn_layer(kind, x, weights, return_sequences, go_backwards, a=a, ra=ra)[0]


def _tol(dtype):
    return dict(rtol=2e-5, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-13, atol=1e-14)


def _mask(rng, B, with_mask):
    """None, or a (B,) bool mask with both kinds of rows (row 0 valid)."""
    if not with_mask:
        return None
    m = rng.random(B) < 0.6
    m[0] = True
    if B > 1:
        m[-1] = False
    return m


# --------------------------------------------------------------------------- cell kernels
SIZES = [(1, 1), (3, 7), (5, 33), (17, 9)]


@pytest.mark.usefixtures("simd_level")  # at every SIMD level (conftest)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("B,u", SIZES)
@pytest.mark.parametrize("acts", [("tanh", "sigmoid"), ("relu", "hard_sigmoid"), ("linear", "tanh")])
@pytest.mark.parametrize("masked", [False, True], ids=["nomask", "mask"])
def test_lstm_cell_matches_numpy(dtype, B, u, acts, masked):
    rng = np.random.default_rng(B * 100 + u)
    a, ra = acts
    z0 = rng.standard_normal((B, 4 * u)) * 2
    cp, hp = rng.standard_normal((B, u)), rng.standard_normal((B, u))
    m = _mask(rng, B, masked)
    rg, rc, rtc, rh = ref.lstm_cell(z0, cp, a, ra)
    if m is not None:                                 # masked rows carry the state
        rc, rh = np.where(m[:, None], rc, cp), np.where(m[:, None], rh, hp)
    tol = _tol(dtype)
    z = z0.astype(dtype)
    c, tc, h = (np.empty((B, u), dtype) for _ in range(3))
    krnn.lstm_cell_forward(ACT_CODES[a], 0.0, ACT_CODES[ra], 0.0, z, cp.astype(dtype), hp.astype(dtype), m,
                           c, tc, h, 1)
    valid = slice(None) if m is None else m
    for got, want in ((z[valid], rg[valid]), (c, rc), (tc[valid], rtc[valid]), (h, rh)):
        np.testing.assert_allclose(got, want, **tol)
    # backward from the reference's own gates (float64 oracle)
    dh, dc0, dhp0 = (rng.standard_normal((B, u)) for _ in range(3))
    rdelta, rdc = ref.lstm_cell_backward(rg, cp, rtc, dh, dc0, a, ra)
    rdhp = dhp0.copy()
    if m is not None:                                 # masked rows: no delta, dc passes, dh goes back
        rdelta[~m], rdc[~m], rdhp[~m] = 0, dc0[~m], dhp0[~m] + dh[~m]
    delta, dc, dhp = np.full((B, 4 * u), np.nan, dtype), dc0.astype(dtype), dhp0.astype(dtype)
    krnn.lstm_cell_backward(ACT_CODES[a], 0.0, ACT_CODES[ra], 0.0, rg.astype(dtype), cp.astype(dtype),
                            rtc.astype(dtype), dh.astype(dtype), m, dc, delta, dhp, 1)
    np.testing.assert_allclose(delta, rdelta, **tol)
    np.testing.assert_allclose(dc, rdc, **tol)
    np.testing.assert_allclose(dhp, rdhp, **tol)


@pytest.mark.usefixtures("simd_level")  # at every SIMD level (conftest)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("B,u", SIZES)
@pytest.mark.parametrize("acts", [("tanh", "sigmoid"), ("relu", "hard_sigmoid")])
@pytest.mark.parametrize("masked", [False, True], ids=["nomask", "mask"])
def test_gru_cell_matches_numpy(dtype, B, u, acts, masked):
    rng = np.random.default_rng(B * 100 + u + 1)
    a, ra = acts
    x0, rec, hp = rng.standard_normal((B, 3 * u)) * 2, rng.standard_normal((B, 3 * u)), rng.standard_normal((B, u))
    m = _mask(rng, B, masked)
    rg, rh = ref.gru_cell(x0, rec, hp, a, ra)
    if m is not None:
        rh = np.where(m[:, None], rh, hp)
    tol = _tol(dtype)
    z, h = x0.astype(dtype), np.empty((B, u), dtype)
    krnn.gru_cell_forward(ACT_CODES[a], 0.0, ACT_CODES[ra], 0.0, z, rec.astype(dtype), hp.astype(dtype), m, h, 1)
    valid = slice(None) if m is None else m
    np.testing.assert_allclose(z[valid], rg[valid], **tol)
    np.testing.assert_allclose(h, rh, **tol)
    dh, dhp0 = rng.standard_normal((B, u)), rng.standard_normal((B, u))
    rdx, rdrec, rdhp = ref.gru_cell_backward(rg, rec, hp, dh, a, ra)
    if m is not None:
        rdx[~m], rdrec[~m], rdhp[~m] = 0, 0, dh[~m]
    dx, drec, dhp = np.empty((B, 3 * u), dtype), np.empty((B, 3 * u), dtype), dhp0.astype(dtype)
    args = (ACT_CODES[a], 0.0, ACT_CODES[ra], 0.0, rg.astype(dtype), rec.astype(dtype), hp.astype(dtype),
            dh.astype(dtype), m, dx, drec)
    krnn.gru_cell_backward(*args, dhp, 1)
    np.testing.assert_allclose(dx, rdx, **tol)
    np.testing.assert_allclose(drec, rdrec, **tol)
    np.testing.assert_allclose(dhp, dhp0 + rdhp, **tol)
    krnn.gru_cell_backward(*args, None, 1)                    # dh_prev may be left out (first step)
    np.testing.assert_allclose(dx, rdx, **tol)


def _gru_rb_step(dtype, a, ra, x0, hp, U, m, rm, dh, dhp0, nt):
    """One reset_after=False step through the kernels and gemms the layer calls; returns every result."""
    from nncore._kernels.gemm import gemm
    B, u = hp.shape
    A, RA = ACT_CODES[a], ACT_CODES[ra]
    z, hpd, Ud = x0.astype(dtype), hp.astype(dtype), U.astype(dtype)
    rmd = None if rm is None else rm.astype(dtype)
    q, h = np.empty((B, u), dtype), np.empty((B, u), dtype)
    gemm(hpd, Ud[:, :2 * u], z[:, :2 * u], beta=1.0, n_threads=nt)          # column blocks: views
    krnn.gru_rb_gates_forward(RA, 0.0, z, hpd, rmd, q, nt)
    gemm(q, Ud[:, 2 * u:], z[:, 2 * u:], beta=1.0, n_threads=nt)
    krnn.gru_rb_state_forward(A, 0.0, z, hpd, m, h, nt)
    delta, dq, dhp = np.full((B, 3 * u), np.nan, dtype), np.empty((B, u), dtype), dhp0.astype(dtype)
    krnn.gru_rb_state_backward(A, 0.0, RA, 0.0, z, hpd, dh.astype(dtype), m, delta, dhp, nt)
    gemm(delta[:, 2 * u:], Ud[:, 2 * u:], dq, trans_b=True, n_threads=nt)
    krnn.gru_rb_reset_backward(RA, 0.0, z, hpd, rmd, dq, delta, dhp, nt)
    gemm(delta[:, :2 * u], Ud[:, :2 * u], dhp, trans_b=True, beta=1.0, n_threads=nt)
    return z, q, h, delta, dhp


@pytest.mark.usefixtures("simd_level")  # at every SIMD level (conftest)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("B,u", SIZES)
@pytest.mark.parametrize("acts", [("tanh", "sigmoid"), ("relu", "hard_sigmoid")])
@pytest.mark.parametrize("masked", [False, True], ids=["nomask", "mask"])
@pytest.mark.parametrize("dropped", [False, True], ids=["", "rdrop"])
def test_gru_reset_before_cells_match_numpy(dtype, B, u, acts, masked, dropped):
    rng = np.random.default_rng(B * 100 + u + 2)
    a, ra = acts
    x0, hp = rng.standard_normal((B, 3 * u)) * 2, rng.standard_normal((B, u))
    U = rng.standard_normal((u, 3 * u)) * 0.5
    m = _mask(rng, B, masked)
    rm = ref.rnn_dropout_mask(rng, (B, u), 0.3) if dropped else None
    rg, rq, rh = ref.gru_rb_cell(x0, hp, U, a, ra, rm)
    dh, dhp0 = rng.standard_normal((B, u)), rng.standard_normal((B, u))
    rdelta, rdhp = ref.gru_rb_cell_backward(rg, hp, dh, U, a, ra, rm)
    if m is not None:
        rh = np.where(m[:, None], rh, hp)
        rdelta[~m], rdhp[~m] = 0, dh[~m]
    z, q, h, delta, dhp = _gru_rb_step(dtype, a, ra, x0, hp, U, m, rm, dh, dhp0, 1)
    tol = _tol(dtype) if dtype == np.float64 else dict(rtol=1e-4, atol=2e-5)
    valid = slice(None) if m is None else m
    np.testing.assert_allclose(z[valid], rg[valid], **tol)
    np.testing.assert_allclose(q, rq, **tol)
    np.testing.assert_allclose(h, rh, **tol)
    np.testing.assert_allclose(delta, rdelta, **tol)
    np.testing.assert_allclose(dhp, dhp0 + rdhp, **tol)


@pytest.mark.usefixtures("simd_level")  # at every SIMD level (conftest)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("B,u", SIZES)
@pytest.mark.parametrize("masked", [False, True], ids=["nomask", "mask"])
def test_simple_rnn_mask_kernels_match_numpy(dtype, B, u, masked):
    rng = np.random.default_rng(B * 100 + u + 3)
    h0, hp, dh, dhp0 = (rng.standard_normal((B, u)) for _ in range(4))
    y = np.tanh(h0)
    m = _mask(rng, B, masked)
    delta, dhp = np.empty((B, u), dtype), dhp0.astype(dtype)
    krnn.simple_rnn_cell_backward(TANH, 0.0, y.astype(dtype), dh.astype(dtype), m, delta, dhp, 2)
    want, wdhp = dh * (1 - y * y), dhp0.copy()
    if m is not None:
        want[~m], wdhp[~m] = 0, dhp0[~m] + dh[~m]
        h = y.astype(dtype)
        krnn.rnn_carry_masked(hp.astype(dtype), m, h)
        np.testing.assert_allclose(h, np.where(m[:, None], y, hp), **_tol(dtype))
    np.testing.assert_allclose(delta, want, **_tol(dtype))
    np.testing.assert_allclose(dhp, wdhp, **_tol(dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("masked", [False, True], ids=["nomask", "mask"])
def test_cells_identical_for_1_and_2_threads(dtype, masked):
    rng = np.random.default_rng(5)
    B, u = 300, 70                                            # enough work for a team of two
    z0, cp = rng.standard_normal((B, 4 * u)).astype(dtype), rng.standard_normal((B, u)).astype(dtype)
    m = _mask(rng, B, masked)
    U = (rng.standard_normal((u, 3 * u)) * 0.3).astype(dtype)
    rm = ref.rnn_dropout_mask(rng, (B, u), 0.2).astype(dtype)
    outs = []
    for nt in (1, 2):
        z = z0.copy()
        c, tc, h = (np.zeros((B, u), dtype) for _ in range(3))   # masked rows leave tc alone
        krnn.lstm_cell_forward(TANH, 0.0, SIG, 0.0, z, cp, cp, m, c, tc, h, nt)
        dc, delta, dhl = cp.copy(), np.zeros_like(z), cp.copy()
        krnn.lstm_cell_backward(TANH, 0.0, SIG, 0.0, z, cp, tc, h, m, dc, delta, dhl, nt)
        g, hg = z0[:, :3 * u].copy(), np.empty((B, u), dtype)
        krnn.gru_cell_forward(TANH, 0.0, SIG, 0.0, g, z0[:, u:].copy(), cp, m, hg, nt)
        dx, drec, dhp = np.empty_like(g), np.empty_like(g), cp.copy()
        krnn.gru_cell_backward(TANH, 0.0, SIG, 0.0, g, z0[:, u:].copy(), cp, h, m, dx, drec, dhp, nt)
        rb = _gru_rb_step(dtype, "tanh", "sigmoid", z0[:, :3 * u], cp, U, m, rm, h, cp, nt)
        ds, dsp = np.empty((B, u), dtype), cp.copy()
        krnn.simple_rnn_cell_backward(TANH, 0.0, hg, h, m, ds, dsp, nt)
        outs.append([z, c, tc, h, dc, delta, dhl, g, hg, dx, drec, dhp, ds, dsp, *rb])
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)


def test_cell_kernel_errors():
    z, cp = np.zeros((2, 8)), np.zeros((2, 2))
    out = [np.zeros((2, 2)) for _ in range(3)]
    with pytest.raises(ValueError, match="c_prev: expected shape \\(2, 2\\), got \\(2, 3\\)"):
        krnn.lstm_cell_forward(TANH, 0.0, SIG, 0.0, z, np.zeros((2, 3)), None, None, *out)
    with pytest.raises(TypeError, match="c: expected dtype float64, got float32"):
        krnn.lstm_cell_forward(TANH, 0.0, SIG, 0.0, z, cp, None, None, np.zeros((2, 2), np.float32), *out[1:])
    with pytest.raises(ValueError, match="4 \\* units"):
        krnn.lstm_cell_forward(TANH, 0.0, SIG, 0.0, np.zeros((2, 7)), cp, None, None, *out)
    with pytest.raises(ValueError, match="needs its input"):
        krnn.lstm_cell_forward(ACT_CODES["gelu"], 0.0, SIG, 0.0, z, cp, None, None, *out)
    with pytest.raises(TypeError, match="h_prev: expected a numpy.ndarray, got NoneType"):
        krnn.lstm_cell_forward(TANH, 0.0, SIG, 0.0, z, cp, None, np.ones(2, bool), *out)   # a mask needs h_prev
    with pytest.raises(ValueError, match="mask: expected shape \\(2,\\), got \\(3,\\)"):
        krnn.lstm_cell_forward(TANH, 0.0, SIG, 0.0, z, cp, cp, np.ones(3, bool), *out)
    with pytest.raises(TypeError, match="mask: expected dtype bool or uint8, got float64"):
        krnn.gru_cell_forward(TANH, 0.0, SIG, 0.0, np.zeros((2, 6)), np.zeros((2, 6)), cp, np.ones(2), out[0])
    with pytest.raises(ValueError, match="unknown activation code"):
        krnn.gru_cell_forward(TANH, 0.0, 99, 0.0, np.zeros((2, 6)), np.zeros((2, 6)), cp, None, out[0])
    with pytest.raises(ValueError, match="read-only"):
        ro = np.zeros((2, 2))
        ro.flags.writeable = False
        krnn.gru_cell_forward(TANH, 0.0, SIG, 0.0, np.zeros((2, 6)), np.zeros((2, 6)), cp, None, ro)
    with pytest.raises(ValueError, match="C-contiguous"):
        krnn.gru_cell_backward(TANH, 0.0, SIG, 0.0, np.zeros((2, 6)), np.zeros((2, 6)), cp,
                               np.zeros((2, 4))[:, ::2], None, np.zeros((2, 6)), np.zeros((2, 6)), None)
    with pytest.raises(ValueError, match="rm: expected shape \\(2, 2\\)"):
        krnn.gru_rb_gates_forward(SIG, 0.0, np.zeros((2, 6)), cp, np.zeros((2, 3)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="3 \\* units"):
        krnn.gru_rb_state_forward(TANH, 0.0, np.zeros((2, 5)), cp, None, np.zeros((2, 2)))
    with pytest.raises(ValueError, match="dq: expected shape \\(2, 2\\)"):
        krnn.gru_rb_reset_backward(SIG, 0.0, np.zeros((2, 6)), cp, None, np.zeros((2, 1)), np.zeros((2, 6)), None)
    with pytest.raises(TypeError, match="mask must be an array"):
        krnn.rnn_carry_masked(cp, None, np.zeros((2, 2)))


# --------------------------------------------------------------------------- layers
CLASSES = {"SimpleRNN": SimpleRNN, "LSTM": LSTM, "GRU": GRU}


def _layer(kind, **kw):
    return CLASSES[kind](**kw)


def _randomize(layer, rng, scale=0.5):
    for w in layer.weights:
        w[...] = rng.standard_normal(w.shape) * scale


@pytest.mark.parametrize("kind", list(CLASSES))
@pytest.mark.parametrize("seq,back", [(False, False), (True, False), (False, True), (True, True)])
def test_layer_forward_matches_numpy(float64, kind, seq, back):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 6, 3))
    layer = _layer(kind, units=5, return_sequences=seq, go_backwards=back)
    layer(x)
    _randomize(layer, rng)
    want = ref_layer(kind, x, layer.get_weights(), seq, back)
    np.testing.assert_allclose(layer(x), want, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("kind", list(CLASSES))
def test_layer_float32(kind):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((7, 9, 5)).astype(np.float32)
    layer = _layer(kind, units=11, return_sequences=True)
    y = layer(x)
    assert y.dtype == np.float32 and y.shape == (7, 9, 11)
    want = ref_layer(kind, x.astype(np.float64), [w.astype(np.float64) for w in layer.get_weights()], True)
    np.testing.assert_allclose(y, want, rtol=1e-4, atol=2e-5)
    dx = layer.backward(np.ones_like(y))
    assert dx.dtype == np.float32 and dx.shape == x.shape and np.isfinite(dx).all()


# configurations: (B, T, D, units, layer kwargs)
GRAD_CASES = [
    (2, 3, 3, 3, {}),
    (2, 3, 3, 3, {"return_sequences": True}),
    (2, 4, 2, 3, {"go_backwards": True}),
    (3, 3, 2, 5, {"return_sequences": True, "go_backwards": True}),
    (2, 1, 3, 3, {"return_sequences": True}),                # T = 1
    (1, 4, 2, 1, {}),                                        # batch 1, one unit
    (2, 3, 2, 3, {"use_bias": False}),
    (2, 3, 2, 3, {"activation": "relu"}),
]


def _grad_check(layer, x, rng, eps=1e-6):
    y = layer.forward(x, True).copy()
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy).copy()
    grads = {k: v.copy() for k, v in layer._grad_of.items()}

    def f():
        return float(np.sum(layer.forward(x, True) * dy))

    def numeric(a):
        g = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            old = a[idx]
            a[idx] = old + eps
            fp = f()
            a[idx] = old - eps
            fm = f()
            a[idx] = old
            g[idx] = (fp - fm) / (2 * eps)
        return g

    np.testing.assert_allclose(dx, numeric(x), rtol=1e-6, atol=1e-8, err_msg="dx")
    assert set(grads) == {attr for attr, *_ in layer._specs}
    for name, g in grads.items():
        np.testing.assert_allclose(g, numeric(getattr(layer, name)), rtol=1e-6, atol=1e-8, err_msg=name)


@pytest.mark.parametrize("kind", list(CLASSES))
@pytest.mark.parametrize("case", GRAD_CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c[4].items())
                         or f"B{c[0]}T{c[1]}u{c[3]}")
def test_layer_gradients_finite_differences(float64, kind, case):
    B, T, D, u, kw = case
    rng = np.random.default_rng(B * 31 + T * 7 + u)
    if kind != "SimpleRNN" and kw.get("activation") == "relu":
        kw = dict(kw, recurrent_activation="hard_sigmoid")
    layer = _layer(kind, units=u, **kw)
    x = rng.standard_normal((B, T, D))
    layer(x)
    _randomize(layer, rng)
    _grad_check(layer, x, rng)


@pytest.mark.parametrize("kind", list(CLASSES))
def test_first_layer_skips_dx_and_buffers_follow(float64, kind):
    rng = np.random.default_rng(8)
    layer = _layer(kind, units=4)
    x = rng.standard_normal((3, 5, 2))
    layer(x)
    layer._need_dx = False
    layer.forward(x, True)
    assert layer.backward(np.ones((3, 4))) is None
    g = {k: v.copy() for k, v in layer._grad_of.items()}
    layer._need_dx = True                      # the same batch size again, now with dx: new buffers
    layer.forward(x, True)
    assert layer.backward(np.ones((3, 4))).shape == x.shape
    for k in g:
        np.testing.assert_array_equal(g[k], layer._grad_of[k])


def test_lstm_unit_forget_bias_and_initializers():
    layer = LSTM(3)
    layer(np.zeros((1, 2, 4), np.float32))
    np.testing.assert_array_equal(layer.bias, np.r_[np.zeros(3), np.ones(3), np.zeros(6)])
    U = layer.recurrent_kernel.astype(np.float64)               # orthogonal (3, 12): orthonormal rows
    np.testing.assert_allclose(U @ U.T, np.eye(3), atol=1e-5)
    nb = LSTM(3, unit_forget_bias=False, bias_initializer="ones")
    nb(np.zeros((1, 2, 4), np.float32))
    np.testing.assert_array_equal(nb.bias, np.ones(12))
    g = GRU(2)
    g(np.zeros((1, 2, 4), np.float32))
    assert [w.shape for w in g.weights] == [(4, 6), (2, 6), (2, 6)]


@pytest.mark.parametrize("kind", list(CLASSES))
def test_model_threads_bit_identical(kind):
    rng = np.random.default_rng(9)
    # batches of 128 rows x 64 units: enough work that the cells and gemms run a team of two
    x = rng.standard_normal((256, 5, 40)).astype(np.float32)
    y = rng.integers(0, 3, 256)
    outs = []
    for nt in (1, 2):
        nncore.set_seed(0)
        m = Sequential([_layer(kind, units=64, return_sequences=True, input_shape=(5, 40)),
                        _layer(kind, units=40), Dense(3, "softmax")])
        m.compile("adam", "sparse_categorical_crossentropy", n_threads=nt)
        h = m.fit(x, y, epochs=1, batch_size=128, verbose=0, shuffle=False).history["loss"]
        outs.append((h, m.get_weights()))
    assert outs[0][0] == outs[1][0]
    for a, b in zip(outs[0][1], outs[1][1]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("use_bias", [True, False])
def test_lstm_stacked_weights_in_place_or_copied(use_bias):
    """The one-product step loop packs [W; U; b] straight from the model's flat buffer and writes
    [dW; dU; db] into the flat gradient buffer, where the three lie one after another there; the same
    bits as through copies (the layer's weights and gradients held apart)."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((9, 4, 3)).astype(np.float32)
    m = Sequential([LSTM(5, use_bias=use_bias, input_shape=(4, 3)), Dense(2)])
    m.compile("sgd", "mse")
    layer = m.layers[0]
    dy = rng.standard_normal((9, 5)).astype(np.float32)
    outs = []
    for apart in (False, True):
        if apart:   # the weights and gradients as arrays of their own: nothing stacked in place
            layer._bind({name: getattr(layer, name).copy() for name in layer._grad_of},
                        {name: g.copy() for name, g in layer._grad_of.items()})
        y = layer.forward(x, True).copy()
        layer.backward(dy)
        b = layer._cur
        assert (b.dP_in is b.dP) == (apart or not use_bias)
        assert (b.P is None) == (use_bias and not apart)
        outs.append([y] + [layer._grad_of[name].copy() for name in sorted(layer._grad_of)])
    for a, c in zip(*outs):
        np.testing.assert_array_equal(a, c)


# --------------------------------------------------------------------------- models
def test_lstm_learns_sum_sign():
    # label = [sum of the sequence > 0]: needs the whole sequence
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1200, 10, 1)).astype(np.float32)
    y = (x.sum(axis=(1, 2)) > 0).astype(np.float32)
    nncore.set_seed(0)
    m = Sequential([LSTM(12, input_shape=(10, 1)), Dense(1, "sigmoid")])
    m.compile(nncore.optimizers.Adam(0.02), "binary_crossentropy", metrics=["accuracy"])
    m.fit(x[:1000], y[:1000], epochs=10, batch_size=50, verbose=0)
    loss, acc = m.evaluate(x[1000:], y[1000:], verbose=0)
    assert acc > 0.93, (loss, acc)


def test_gru_learns_parity_of_a_short_sequence():
    # XOR of 3 bits seen one per step (no single step decides it)
    rng = np.random.default_rng(1)
    bits = rng.integers(0, 2, (1000, 3))
    x = bits[..., None].astype(np.float32) * 2 - 1
    y = bits.sum(1) % 2
    nncore.set_seed(1)
    m = Sequential([GRU(16, input_shape=(3, 1)), Dense(2, "softmax")])
    m.compile(nncore.optimizers.Adam(0.02), "sparse_categorical_crossentropy", metrics=["accuracy"])
    m.fit(x[:800], y[:800], epochs=25, batch_size=40, verbose=0)
    assert m.evaluate(x[800:], y[800:], verbose=0)[1] > 0.97


def test_simple_rnn_predicts_a_sine():
    # the next value of a sine of random phase and frequency from the last 12
    rng = np.random.default_rng(2)
    t = np.arange(13)
    w, p = rng.uniform(0.3, 0.6, (1000, 1)), rng.uniform(0, 2 * np.pi, (1000, 1))
    s = np.sin(w * t + p).astype(np.float32)
    x, y = s[:, :12, None], s[:, 12:]
    nncore.set_seed(2)
    m = Sequential([SimpleRNN(16, input_shape=(12, 1), return_sequences=True), SimpleRNN(16), Dense(1)])
    m.compile(nncore.optimizers.Adam(0.01), "mse")
    m.fit(x[:800], y[:800], epochs=20, batch_size=40, verbose=0)
    assert m.evaluate(x[800:], y[800:], verbose=0) < 2e-3   # the variance of y is 0.5


def test_save_load_round_trip_and_bit_identical_resume(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.integers(0, 9, (60, 5))
    y = rng.integers(0, 2, 60)
    nncore.set_seed(3)
    m = Sequential([Embedding(9, 3, input_shape=(5,), embeddings_regularizer="l2"),
                    SimpleRNN(4, return_sequences=True, activation="relu"),
                    GRU(5, return_sequences=True, go_backwards=True, kernel_regularizer="l2"),
                    LSTM(6, recurrent_activation="hard_sigmoid", bias_regularizer=nncore.regularizers.L1(0.01),
                         unit_forget_bias=False, recurrent_initializer="glorot_uniform"),
                    Dense(2, "softmax")])
    m.compile(nncore.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    m.fit(x, y, epochs=2, batch_size=16, verbose=0)
    p = tmp_path / "rnn.nncore"
    m.save(p)
    m2 = nncore.load_model(p)
    assert [type(l).__name__ for l in m2.layers] == ["Embedding", "SimpleRNN", "GRU", "LSTM", "Dense"]
    assert [l.get_config() for l in m2.layers] == [l.get_config() for l in m.layers]
    np.testing.assert_array_equal(m.predict(x, verbose=0), m2.predict(x, verbose=0))
    nncore.set_seed(4)
    h1 = m.fit(x, y, epochs=2, batch_size=16, verbose=0).history["loss"]
    nncore.set_seed(4)
    h2 = m2.fit(x, y, epochs=2, batch_size=16, verbose=0).history["loss"]
    assert h1 == h2
    for a, b in zip(m.get_weights(), m2.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_summary_lists_recurrent_layers():
    m = Sequential([LSTM(8, input_shape=(5, 3), return_sequences=True, name="enc"), GRU(4), Dense(2)])
    m.build((None, 5, 3))
    lines = []
    m.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "enc (LSTM)" in text and "(None, 5, 8)" in text and "384" in text   # 4*8*(3+8+1)
    assert "(GRU)" in text and "(None, 4)" in text and "168" in text          # 3*4*(8+4) + 2*12
    assert f"Total params: {384 + 168 + 10}" in text


def test_default_names():
    assert LSTM(2, name="x").name == "x"
    names = [SimpleRNN(2).name, LSTM(2).name, GRU(2).name]
    assert [n.rsplit("_", 1)[0] if n[-1].isdigit() else n for n in names] == ["simple_rnn", "lstm", "gru"]


@pytest.mark.parametrize("policy", [None, "mixed_bfloat16"])
def test_steady_state_batches_allocate_nothing_that_persists(policy):
    import warnings

    from nncore import mixed_precision
    from steady_state import growth_between_epochs
    rng = np.random.default_rng(5)
    x = rng.standard_normal((160, 6, 3)).astype(np.float32)
    y = rng.integers(0, 2, 160)
    with warnings.catch_warnings():                 # the emulated-vdpbf16ps warning, where it applies
        warnings.simplefilter("ignore", RuntimeWarning)
        mixed_precision.set_global_policy(policy)
    try:
        m = Sequential([LSTM(8, input_shape=(6, 3), return_sequences=True), GRU(6, return_sequences=True),
                        SimpleRNN(5), Dense(2, "softmax")])
    finally:
        mixed_precision.set_global_policy(None)
    assert m.layers[0].compute_dtype == ("bfloat16" if policy else "float32")
    m.compile("adam", "sparse_categorical_crossentropy")
    growth = growth_between_epochs(m, x, y, batch_size=16, verbose=0)
    assert growth < 3000, growth


# --------------------------------------------------------------------------- errors
def test_errors():
    with pytest.raises(ValueError, match="LSTM: units must be a positive int, got 0"):
        LSTM(0)
    with pytest.raises(ValueError, match="SimpleRNN: activation 'softmax' is not supported"):
        SimpleRNN(3, activation="softmax")
    with pytest.raises(ValueError, match="LSTM: recurrent_activation 'gelu' is not supported"):
        LSTM(3, recurrent_activation="gelu")
    with pytest.raises(ValueError, match="Unknown initializer .nope."):
        GRU(3, kernel_initializer="nope")
    layer = LSTM(3, name="enc")
    with pytest.raises(ValueError, match="layer 'enc' \\(LSTM\\): expected 3-D inputs .* got shape \\(4, 5\\)"):
        layer(np.zeros((4, 5), np.float32))
    layer(np.zeros((2, 5, 4), np.float32))
    with pytest.raises(ValueError, match="layer 'enc' \\(LSTM\\): expected input of shape "
                                         "\\(batch, timesteps, 4\\), got \\(2, 6, 3\\)"):
        layer.forward(np.zeros((2, 6, 3), np.float32))
    with pytest.raises(TypeError, match="layer 'enc' \\(LSTM\\): expected input of dtype float32, got float64"):
        layer.forward(np.zeros((2, 5, 4)))
    m = Sequential([GRU(3, input_shape=(5, 4)), Dense(1)])
    m.compile("sgd", "mse")
    with pytest.raises(ValueError, match="expects input of shape \\(n_samples, 5, 4\\), got \\(2, 5, 3\\)"):
        m.predict(np.zeros((2, 5, 3)), verbose=0)
    with pytest.raises(ValueError, match="expected 3-D inputs"):
        Sequential([Dense(3, input_dim=4), LSTM(2)]).build((None, 4))


# --------------------------------------------------------------------------- Embedding
@pytest.mark.usefixtures("simd_level")  # at every SIMD level (conftest)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n,rows,cols", [(1, 1, 1), (7, 3, 5), (200, 13, 33), (4000, 50, 64)])
def test_scatter_add_rows_matches_numpy(dtype, n, rows, cols):
    rng = np.random.default_rng(n + cols)
    src = rng.standard_normal((n, cols)).astype(dtype)
    idx = rng.integers(0, rows, n)                            # repeats: the adds must accumulate
    dst0 = rng.standard_normal((rows, cols)).astype(dtype)
    want = dst0.astype(np.float64)
    np.add.at(want, idx, src.astype(np.float64))
    got = [kew.scatter_add_rows(src, idx, dst0.copy(), nt) for nt in (1, 2)]
    np.testing.assert_allclose(got[0], want, rtol=1e-5 if dtype == np.float32 else 1e-13, atol=1e-5)
    np.testing.assert_array_equal(got[0], got[1])             # same order of additions per element


def test_scatter_add_rows_errors():
    src, dst = np.ones((3, 2)), np.zeros((4, 2))
    with pytest.raises(IndexError, match="index 4 out of range for 4 rows"):
        kew.scatter_add_rows(src, np.array([0, 4, 1]), dst)
    with pytest.raises(TypeError, match="int64"):
        kew.scatter_add_rows(src, np.array([0, 1, 1], np.int32), dst)
    with pytest.raises(ValueError, match="src: expected shape \\(3, 3\\)"):
        kew.scatter_add_rows(src, np.array([0, 1, 1]), np.zeros((4, 3)))
    np.testing.assert_array_equal(dst, 0)                     # nothing written before the checks pass


def test_embedding_forward_backward(float64):
    rng = np.random.default_rng(6)
    layer = Embedding(11, 4)
    x = rng.integers(0, 11, (5, 7))
    y = layer(x)
    E = layer.embeddings
    np.testing.assert_array_equal(y, E[x])
    assert y.shape == (5, 7, 4) and layer.output_shape == (None, 7, 4)
    layer.forward(x.astype(np.float64), True)
    dy = rng.standard_normal((5, 7, 4))
    dx = layer.backward(dy)
    np.testing.assert_array_equal(dx, 0)                      # indices carry no gradient
    want = np.zeros_like(E)
    np.add.at(want, x.ravel(), dy.reshape(-1, 4))
    np.testing.assert_allclose(layer._grad_of["embeddings"], want, rtol=1e-14)
    # central differences on the loss sum(y * dy)
    eps, num = 1e-6, np.zeros_like(E)
    for idx in np.ndindex(E.shape):
        old = E[idx]
        E[idx] = old + eps
        fp = float(np.sum(layer.forward(x.astype(np.float64)) * dy))
        E[idx] = old - eps
        fm = float(np.sum(layer.forward(x.astype(np.float64)) * dy))
        E[idx] = old
        num[idx] = (fp - fm) / (2 * eps)
    np.testing.assert_allclose(want, num, rtol=1e-7, atol=1e-9)
    xf = np.array([[2.0, 0.0, 1.0, 10.0, 3.0, 0.0, 7.0]])      # floats holding whole numbers index as ints
    np.testing.assert_array_equal(layer.forward(xf), E[[[2, 0, 1, 10, 3, 0, 7]]])
    # a fraction is an error, not Keras's silent truncation (ids scaled with the other features)
    with pytest.raises(ValueError, match=r"expected integer indices in \[0, 11\), got 10.5 at \(0, 3\) of the batch"):
        layer.forward(np.array([[2.0, 0.0, 1.0, 10.5, 3.0, 0.0, 7.0]]))


def test_embedding_errors():
    with pytest.raises(ValueError, match="Embedding: input_dim must be a positive int, got 0"):
        Embedding(0, 3)
    with pytest.raises(ValueError, match="Embedding: output_dim must be a positive int"):
        Embedding(3, 2.5)
    layer = Embedding(5, 2, name="emb")
    layer(np.zeros((2, 3), np.int64))
    with pytest.raises(ValueError, match="layer 'emb' \\(Embedding\\): index 5 out of range \\[0, 5\\)"):
        layer.forward(np.array([[1, 5, 0], [0, 0, 0]], np.float32))
    with pytest.raises(ValueError, match="index -1 out of range"):
        layer.forward(np.array([[1, -1, 0], [0, 0, 0]], np.float32))
    with pytest.raises(ValueError, match="layer 'emb' \\(Embedding\\): expected input of shape \\(batch, 3\\)"):
        layer.forward(np.zeros((2, 4), np.float32))
    big = Embedding(2 ** 24 + 1, 1)
    big.build((None, 2))
    big.built, big.input_shape = True, (None, 2)
    big.embeddings = np.zeros((1, 1), np.float32)             # no need to allocate 16M rows for the check
    with pytest.raises(ValueError, match="exceeds 2\\*\\*24"):
        big.forward(np.zeros((1, 2), np.float32))


def test_text_like_model_learns_keyword_detection():
    # label = [token 3 occurs in the sequence]; integer inputs go through the model's usual float cast
    rng = np.random.default_rng(7)
    x = rng.integers(0, 20, (1200, 8))
    y = (x == 3).any(axis=1).astype(np.int64)                 # about 1 - (19/20)^8 = 34 % positive
    nncore.set_seed(7)
    m = Sequential([Embedding(20, 8, input_shape=(8,)), LSTM(16), Dense(2, "softmax")])
    m.compile(nncore.optimizers.Adam(0.02), "sparse_categorical_crossentropy", metrics=["accuracy"])
    m.fit(x[:1000], y[:1000], epochs=8, batch_size=50, verbose=0)
    assert m.evaluate(x[1000:], y[1000:], verbose=0)[1] > 0.97
    assert m.layers[0]._need_dx is False                       # first layer: no dx buffer, no dx pass
