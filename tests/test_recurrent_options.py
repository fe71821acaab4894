"""The options of the recurrent layers: dropout / recurrent_dropout, masks (zero_output_for_mask),
initial states, return_state, stateful, GRU(reset_after=False).

Every option, alone and together: the layer's forward against the Keras 3 equations run one step at
a time in NumPy (tests/reference_layers.py: rnn_layer, with Keras's where-semantics for masks and its
per-gate-block dropout masks), and a float64 central-difference check of every gradient (input,
weights, initial states, through the final states). Then what the options do in models: stateful
batches equal one long sequence, dropout only in training and reproducible, save/load resume, errors.
"""
import zlib

import numpy as np
import pytest

import nncore
import reference_layers as ref
from nncore.layers import GRU, LSTM, Dense, SimpleRNN
from nncore.models import Sequential
from resume_common import assert_resumes_identically

CLASSES = {"SimpleRNN": SimpleRNN, "LSTM": LSTM, "GRU": GRU, "GRU_rb": GRU}
KINDS = list(CLASSES)


def _make(kind, units, **kw):
    if kind == "GRU_rb":
        kw["reset_after"] = False
    return CLASSES[kind](units, **kw)


def _base(kind):
    return "GRU" if kind == "GRU_rb" else kind


def _randomize(layer, rng, scale=0.5):
    for w in layer.weights:
        w[...] = rng.standard_normal(w.shape) * scale


def _mask(rng, n, T):
    """A (n, T) mask with every pattern that matters: leading masked steps, a gap, trailing masked
    steps, one row fully masked (when n > 2), one fully valid."""
    m = rng.random((n, T)) < 0.6
    m[0] = True
    if n > 1:
        m[1, :2] = False
        m[1, -1] = False
    if n > 2:
        m[2] = False
    return m


def _n_states(kind):
    return 2 if kind == "LSTM" else 1


def _ref(kind, layer, x, mask=None, init=None, training_masks=None):
    """The reference output and final states for the layer's weights and this call."""
    xm = hm = None
    if training_masks is not None:
        mi, mr = training_masks
        k = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}[_base(kind)]
        if mi is not None:
            xm = list(mi) if len(mi) == k else [mi[0]] * k
        if mr is not None:
            hm = list(mr) if len(mr) == k else [mr[0]] * k
    return ref.rnn_layer(_base(kind), x, layer.get_weights(), layer.return_sequences, layer.go_backwards, mask,
                         init, reset_after=getattr(layer, "reset_after", True), xm=xm, hm=hm,
                         zero_output_for_mask=layer.zero_output_for_mask)


# (layer kwargs, call options): every option alone, then together
CASES = [
    ({}, {}),
    ({"return_sequences": True}, {"mask": True}),
    ({}, {"mask": True}),
    ({"return_sequences": True, "go_backwards": True}, {"mask": True}),
    ({"return_sequences": True, "zero_output_for_mask": True}, {"mask": True}),
    ({"return_state": True}, {}),
    ({"return_sequences": True, "return_state": True}, {"init": True}),
    ({}, {"init": True}),
    ({"return_sequences": True}, {"init": True, "mask": True}),
    ({"go_backwards": True, "return_state": True}, {"init": True, "mask": True}),
    ({"dropout": 0.3}, {"training": True}),
    ({"recurrent_dropout": 0.4, "return_sequences": True}, {"training": True}),
    ({"dropout": 0.25, "recurrent_dropout": 0.35}, {"training": True}),
    ({"dropout": 0.25, "recurrent_dropout": 0.35, "return_sequences": True, "go_backwards": True,
      "return_state": True}, {"training": True, "mask": True, "init": True}),
    ({"dropout": 0.5, "use_bias": False}, {"training": False}),          # no dropout outside training
]


def _case_id(case):
    kw, opts = case
    return "-".join([f"{k}" for k in kw] + [k for k, v in opts.items() if v]) or "plain"


def _setup(kind, case, tag, n, T, D, u):
    """A layer of `kind` with the case's kwargs, random weights, an input and the call's mask and states."""
    kw, opts = case
    rng = np.random.default_rng(zlib.crc32(f"{kind}-{_case_id(case)}-{tag}".encode()))
    x = rng.standard_normal((n, T, D))
    layer = _make(kind, u, **kw)
    layer(x)
    _randomize(layer, rng)
    mask = _mask(rng, n, T) if opts.get("mask") else None
    init = [rng.standard_normal((n, u)) for _ in range(_n_states(kind))] if opts.get("init") else None
    return layer, x, rng, mask, init


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_forward_matches_keras_equations(float64, kind, case):
    kw, opts = case
    layer, x, rng, mask, init = _setup(kind, case, "forward", 5, 6, 3, 4)
    training = opts.get("training", False)
    out = layer.forward(x, training, mask=mask, initial_state=init)
    drawn = (layer._cur.mi, layer._cur.mr) if training else None
    if training:
        assert (layer._cur.mi is not None) == bool(kw.get("dropout"))
        assert (layer._cur.mr is not None) == bool(kw.get("recurrent_dropout"))
    y_ref, states_ref = _ref(kind, layer, x, mask, init, drawn)
    outs = out if layer.return_state else [out]
    assert len(outs) == (1 + _n_states(kind) if layer.return_state else 1)
    np.testing.assert_allclose(outs[0], y_ref, rtol=1e-12, atol=1e-13)
    for got, want in zip(outs[1:], states_ref):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13)


def _loss_and_seeds(layer, out, rng):
    """Random cotangents for every output (a list with return_state)."""
    outs = out if isinstance(out, list) else [out]
    return [rng.standard_normal(o.shape) for o in outs]


def _grad_check(layer, x, rng, mask=None, init=None, training=False, eps=1e-6):
    state = layer._rng.bit_generator.state if layer._rng is not None else None

    def run():
        if state is not None:
            layer._rng.bit_generator.state = state              # the same dropout masks every call
        return layer.forward(x, training, mask=mask, initial_state=init)

    out = run()
    seeds = _loss_and_seeds(layer, out, rng)
    grads_in = layer.backward(seeds if layer.return_state else seeds[0])
    grads_in = grads_in if isinstance(grads_in, list) else [grads_in]
    grads_in = [g.copy() for g in grads_in]
    grads = {k: v.copy() for k, v in layer._grad_of.items()}

    def f():
        o = run()
        return float(sum(np.sum(a * s) for a, s in zip(o if isinstance(o, list) else [o], seeds)))

    np.testing.assert_allclose(grads_in[0], ref.numeric_grad(f, x, eps), rtol=1e-6, atol=1e-8, err_msg="dx")
    for i, s in enumerate(init or []):
        np.testing.assert_allclose(grads_in[1 + i], ref.numeric_grad(f, s, eps), rtol=1e-6, atol=1e-8,
                                   err_msg=f"d initial state {i}")
    for name, g in grads.items():
        np.testing.assert_allclose(g, ref.numeric_grad(f, getattr(layer, name), eps), rtol=1e-6, atol=1e-8,
                                   err_msg=name)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_gradients_finite_differences(float64, kind, case):
    layer, x, rng, mask, init = _setup(kind, case, "grad", 3, 4, 2, 3)
    _grad_check(layer, x, rng, mask, init, case[1].get("training", False))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("kw", [{}, {"return_sequences": True, "recurrent_dropout": 0.3}])
def test_stateful_gradients_finite_differences(float64, kind, kw):
    # a stateful layer's second batch starts from the first's final state (a constant for backward)
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 3, 2))
    layer = _make(kind, 3, stateful=True, **kw)
    layer(x)
    _randomize(layer, rng)
    layer.reset_states()
    layer.forward(x * 0.7, True)
    states = layer.states
    assert all(np.abs(s).max() > 0 for s in states)
    orig = layer.forward          # each call of _grad_check's run() starts from the same carried state

    def forward(x_, training=False, mask=None, initial_state=None):
        layer._set_states(states)
        return orig(x_, training, mask, initial_state)
    layer.forward = forward
    _grad_check(layer, x, rng, training=True)


# --------------------------------------------------------------------------- states
@pytest.mark.parametrize("kind", KINDS)
def test_stateful_batches_continue_one_sequence(float64, kind):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 9, 3))
    whole = _make(kind, 5, return_sequences=True)
    whole(x)
    _randomize(whole, rng)
    piece = _make(kind, 5, return_sequences=True, stateful=True, return_state=True)
    piece(x[:, :3])
    piece.set_weights(whole.get_weights())
    piece.reset_states()
    parts = [piece(x[:, i:i + 3])[0] for i in (0, 3, 6)]
    np.testing.assert_allclose(np.concatenate(parts, 1), whole(x), rtol=1e-12, atol=1e-13)
    y, *final = piece(x[:, :3])                                 # continues from step 9
    np.testing.assert_allclose(final[0], piece.states[0])
    piece.reset_states()
    np.testing.assert_allclose(piece(x[:, :3])[0], parts[0], rtol=1e-12, atol=1e-13)
    with pytest.raises(ValueError, match="stateful layer takes batches of exactly 4 samples.*got 3"):
        piece(x[:3, :3])


def test_stateful_sequential_fit_and_predict_carry_state():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((8, 5, 2)).astype(np.float32)
    y = rng.standard_normal((8, 1)).astype(np.float32)
    nncore.set_seed(0)
    m = Sequential([LSTM(4, stateful=True, batch_input_shape=(4, 5, 2)), Dense(1)])
    m.compile("sgd", "mse")
    p1 = m.predict(x[:4], batch_size=4, verbose=0)
    p2 = m.predict(x[:4], batch_size=4, verbose=0)                 # from the state the first call left
    assert not np.allclose(p1, p2)
    m.reset_states()
    np.testing.assert_array_equal(m.predict(x[:4], batch_size=4, verbose=0), p1)
    m.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    with pytest.raises(ValueError, match="batches of exactly 4 samples"):
        m.fit(x[:6], y[:6], batch_size=4, epochs=1, verbose=0)   # a last batch of 2
    with pytest.raises(ValueError, match="batches of exactly 4 samples.*got 8"):
        m.predict(x, batch_size=8, verbose=0)


def test_stateful_save_load_resumes_bit_identically(tmp_path):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((12, 4, 3)).astype(np.float32)
    y = rng.integers(0, 2, 12)
    nncore.set_seed(1)
    m = Sequential([GRU(5, stateful=True, return_sequences=True, dropout=0.2, recurrent_dropout=0.2,
                        batch_input_shape=(4, 4, 3)),
                    LSTM(3, stateful=True, recurrent_dropout=0.3), Dense(2, "softmax")])
    m.compile("adam", "sparse_categorical_crossentropy")
    m.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    m2 = assert_resumes_identically(m, tmp_path / "s.nncore", x, y, batch_size=4, epochs=2, shuffle=False)
    for a, b in zip(m.layers[:2], m2.layers[:2]):
        assert a.states is not None
        for s1, s2 in zip(a.states, b.states):
            np.testing.assert_array_equal(s1, s2)


@pytest.mark.parametrize("kind", KINDS)
def test_initial_state_and_return_state_standalone(float64, kind):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 4, 2))
    layer = _make(kind, 3, return_state=True)
    y, *states = layer(x)
    assert len(states) == _n_states(kind) and all(s.shape == (3, 3) for s in states)
    np.testing.assert_array_equal(y, states[0])                 # the last output is h_T
    y2, *states2 = layer(x[:, 2:], initial_state=[s[:] for s in layer(x[:, :2])[1:]])
    np.testing.assert_allclose(y2, y, rtol=1e-12)               # two halves chained by their states
    for a, b in zip(states2, states):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    lst = layer.forward([x[:, 2:]] + [s for s in layer(x[:, :2])[1:]])   # the functional API's list form
    np.testing.assert_allclose(lst[0], y, rtol=1e-12)
    grads = layer.backward([np.ones_like(y)] + [np.zeros_like(s) for s in states])
    assert isinstance(grads, list) and len(grads) == 1 + _n_states(kind)
    assert layer.compute_output_shape((None, 4, 2)) == [(None, 3)] * (1 + _n_states(kind))
    assert layer.compute_mask(x, np.ones((3, 4), bool)) == [None] * (1 + _n_states(kind))


# --------------------------------------------------------------------------- masks
@pytest.mark.parametrize("kind", KINDS)
def test_masked_steps_change_nothing(float64, kind):
    # a step masked out gives the same outputs and gradients as a sequence without that step
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, 5, 2))
    layer = _make(kind, 4)
    layer(x)
    _randomize(layer, rng)
    mask = np.ones((3, 5), bool)
    mask[:, 2] = False
    y = layer.forward(x, True, mask=mask).copy()
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy).copy()
    g = {k: v.copy() for k, v in layer._grad_of.items()}
    short = _make(kind, 4)
    xs = np.delete(x, 2, axis=1)
    short(xs)
    short.set_weights(layer.get_weights())
    np.testing.assert_allclose(y, short.forward(xs, True), rtol=1e-12, atol=1e-13)
    dxs = short.backward(dy)
    np.testing.assert_array_equal(dx[:, 2], 0)                   # no gradient at the masked step
    np.testing.assert_allclose(np.delete(dx, 2, axis=1), dxs, rtol=1e-11, atol=1e-13)
    for k in g:
        np.testing.assert_allclose(g[k], short._grad_of[k], rtol=1e-11, atol=1e-13)


# --------------------------------------------------------------------------- dropout
@pytest.mark.parametrize("kind", KINDS)
def test_dropout_masks_fixed_over_steps_and_only_in_training(kind):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((64, 5, 6)).astype(np.float32)
    layer = _make(kind, 8, dropout=0.4, recurrent_dropout=0.3, seed=3, return_sequences=True)
    y0 = layer(x)
    np.testing.assert_array_equal(layer(x), y0)                  # inference: no dropout, deterministic
    plain = _make(kind, 8, return_sequences=True)
    plain(x)
    plain.set_weights(layer.get_weights())
    np.testing.assert_array_equal(plain(x), y0)
    y1 = layer(x, training=True)
    mi, mr = layer._cur.mi, layer._cur.mr
    k = 1 if kind == "SimpleRNN" else (4 if kind == "LSTM" else 3)
    assert mi.shape == (k, 64, 6) and mr.shape == (k, 64, 8)     # one mask per gate block (implementation 1)
    for m, rate in ((mi, 0.4), (mr, 0.3)):
        assert set(np.unique(m)) <= {0.0, np.float32(1 / (1 - rate))}
        assert abs((m == 0).mean() - rate) < 0.05
    assert not np.array_equal(y1, y0)
    y2 = layer(x, training=True)
    assert not np.array_equal(y1, y2)                            # new masks for every batch
    again = _make(kind, 8, dropout=0.4, recurrent_dropout=0.3, seed=3, return_sequences=True)
    again(x)
    again.set_weights(layer.get_weights())
    np.testing.assert_array_equal(again(x, training=True), y1)   # the seed fixes the masks
    only_x = _make(kind, 8, dropout=0.4, return_sequences=True)
    only_x(x, training=True)
    assert only_x._cur.mi.shape == (1, 64, 6) and only_x._cur.mr is None   # one input mask for all gates


def test_dropout_model_save_load_resumes_bit_identically(tmp_path):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((40, 6, 3)).astype(np.float32)
    y = rng.integers(0, 3, 40)
    nncore.set_seed(2)
    m = Sequential([SimpleRNN(6, dropout=0.2, recurrent_dropout=0.1, return_sequences=True, input_shape=(6, 3)),
                    GRU(5, reset_after=False, dropout=0.3, return_sequences=True),
                    LSTM(4, recurrent_dropout=0.25), Dense(3, "softmax")])
    m.compile("adam", "sparse_categorical_crossentropy")
    m.fit(x, y, epochs=1, batch_size=8, verbose=0)
    m2 = assert_resumes_identically(m, tmp_path / "d.nncore", x, y, seed=5, epochs=2, batch_size=8)
    assert [layer.get_config() for layer in m2.layers] == [layer.get_config() for layer in m.layers]


@pytest.mark.parametrize("kind", KINDS)
def test_options_identical_for_1_and_2_threads(kind):
    rng = np.random.default_rng(9)
    x = rng.standard_normal((256, 5, 40)).astype(np.float32)
    mask = _mask(rng, 256, 5)
    outs = []
    for nt in (1, 2):
        layer = _make(kind, 64, dropout=0.2, recurrent_dropout=0.2, seed=1, return_sequences=True)
        nncore.set_seed(0)
        layer(x)
        layer._n_threads = nt
        y = layer.forward(x, True, mask=mask).copy()
        dx = layer.backward(np.ones_like(y)).copy()
        outs.append([y, dx] + [g.copy() for g in layer._grad_of.values()])
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)


def test_gru_reset_before_weights_and_config():
    layer = GRU(3, reset_after=False)
    layer(np.zeros((1, 2, 4), np.float32))
    assert [w.shape for w in layer.weights] == [(4, 9), (3, 9), (9,)]
    assert layer.get_config()["reset_after"] is False
    assert GRU.from_config(layer.get_config()).reset_after is False


# --------------------------------------------------------------------------- errors
def test_option_errors():
    with pytest.raises(ValueError, match="LSTM: dropout must be in \\[0, 1\\), got 1.0"):
        LSTM(3, dropout=1.0)
    with pytest.raises(ValueError, match="GRU: recurrent_dropout must be in \\[0, 1\\), got -0.1"):
        GRU(3, recurrent_dropout=-0.1)
    with pytest.raises(TypeError, match="SimpleRNN: dropout must be a float"):
        SimpleRNN(3, dropout="x")
    with pytest.raises(TypeError, match="seed must be an int"):
        LSTM(3, dropout=0.1, seed=1.5)
    layer = LSTM(3, name="enc")
    x = np.zeros((2, 5, 4), np.float32)
    layer(x)
    with pytest.raises(ValueError, match="layer 'enc' \\(LSTM\\): expected a mask of shape \\(2, 5\\), got \\(2, 4\\)"):
        layer(x, mask=np.ones((2, 4), bool))
    with pytest.raises(ValueError, match="layer 'enc' \\(LSTM\\): expected 2 initial states \\(\\[h, c\\]\\), got 1"):
        layer(x, initial_state=[np.zeros((2, 3))])
    with pytest.raises(ValueError, match="expected initial states of shape \\(2, 3\\), got \\(2, 4\\)"):
        layer(x, initial_state=[np.zeros((2, 4)), np.zeros((2, 3))])
    with pytest.raises(AttributeError, match="reset_states needs a stateful layer"):
        layer.reset_states()
    with pytest.raises(ValueError, match="expected 1 initial_state shapes"):
        GRU(3).build([(None, 5, 4), (None, 3), (None, 3)])
    rs = GRU(2, return_state=True, name="g")
    rs(x)
    rs.forward(x, True)
    with pytest.raises(ValueError, match="return_state: backward expects \\[d output, d h\\]"):
        rs.backward(np.ones((2, 2)))
    with pytest.raises(ValueError, match="several outputs"):
        Sequential([LSTM(3, return_state=True, input_shape=(5, 4)), Dense(1)])


# --------------------------------------------------------------------------- functional models
def _encoder_decoder(kind, u=6):
    enc_in, dec_in = nncore.Input((5, 3), name="enc"), nncore.Input((4, 2), name="dec")
    enc = CLASSES[kind](u, return_state=True, recurrent_dropout=0.1, name="encoder",
                        **({"reset_after": False} if kind == "GRU_rb" else {}))
    out = enc(enc_in)
    dec = CLASSES[kind](u, return_sequences=True, dropout=0.1, name="decoder",
                        **({"reset_after": False} if kind == "GRU_rb" else {}))
    y = dec(dec_in, initial_state=out[1:])
    return nncore.models.Model([enc_in, dec_in], Dense(3, "softmax", name="head")(y))


@pytest.mark.parametrize("kind", KINDS)
def test_encoder_decoder_trains_saves_and_decodes_step_by_step(tmp_path, kind):
    # return_state into initial_state: the decoder's gradient reaches the encoder through its states;
    # after training the decoder runs one step at a time from the states (any timesteps after build)
    rng = np.random.default_rng(12)
    xa, xb = rng.standard_normal((48, 5, 3)).astype(np.float32), rng.standard_normal((48, 4, 2)).astype(np.float32)
    y = (xa.sum(axis=(1, 2))[:, None] + xb.sum(axis=2) > 0).astype(np.int64) + (xb[..., 0] > 1)
    nncore.set_seed(3)
    m = _encoder_decoder(kind)
    m.compile(nncore.optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    enc = m.get_layer("encoder")
    k0 = enc.kernel.copy()
    h = m.fit([xa, xb], y, epochs=3, batch_size=16, verbose=0).history
    assert h["loss"][-1] < h["loss"][0]
    assert np.abs(enc.kernel - k0).max() > 1e-4                 # trained through the decoder's initial state
    assert_resumes_identically(m, tmp_path / "ed.nncore", [xa, xb], y, seed=6, epochs=1, batch_size=16)
    dec, head = m.get_layer("decoder"), m.get_layer("head")
    states = enc(xa)[1:]
    steps, full = [], m.predict([xa, xb], verbose=0)
    step = _make(kind, 6, return_sequences=True, return_state=True)
    step(xb[:, :1])
    step.set_weights(dec.get_weights())
    for t in range(4):
        out, *states = step(xb[:, t:t + 1], initial_state=states)
        steps.append(head(out))
    np.testing.assert_allclose(np.concatenate(steps, 1), full, rtol=1e-5, atol=1e-6)
