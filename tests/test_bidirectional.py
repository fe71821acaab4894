"""Bidirectional: every merge mode against the two directions run by the NumPy reference
(tests/reference_layers.py), float64 finite differences of every gradient (with masks, initial
states, return_state, dropout), the weight layout, models, save/load resume, errors."""
import zlib

import numpy as np
import pytest

import nncore
import reference_layers as ref
from nncore.layers import GRU, LSTM, Bidirectional, Dense, Embedding, SimpleRNN, get_layer_class
from nncore.models import Sequential
from resume_common import assert_resumes_identically

KINDS = {"SimpleRNN": SimpleRNN, "LSTM": LSTM, "GRU": GRU}
MODES = ["concat", "sum", "mul", "ave", None]


def _seed(*parts):
    return zlib.crc32("-".join(map(str, parts)).encode())


def _mask(rng, n, T):
    m = rng.random((n, T)) < 0.7
    m[0] = True
    m[-1, :2] = False
    return m


def _merge(mode, yf, yb):
    return {"concat": lambda: np.concatenate([yf, yb], -1), "sum": lambda: yf + yb, "mul": lambda: yf * yb,
            "ave": lambda: (yf + yb) / 2, None: lambda: [yf, yb]}[mode]()


def _randomize(layer, rng):
    for w in layer.weights:
        w[...] = rng.standard_normal(w.shape) * 0.5


OPTIONS = [{}, {"return_sequences": True}, {"return_sequences": True, "mask": True}, {"mask": True},
           {"return_state": True, "init": True}, {"return_sequences": True, "return_state": True, "mask": True},
           {"return_sequences": True, "dropout": 0.3, "recurrent_dropout": 0.2, "training": True}]


def _setup(kind, mode, opts, rng, n=3, T=4, D=2, u=3):
    kw = {k: v for k, v in opts.items() if k in ("return_sequences", "return_state", "dropout",
                                                    "recurrent_dropout")}
    layer = Bidirectional(KINDS[kind](u, **kw), merge_mode=mode)
    x = rng.standard_normal((n, T, D))
    layer(x)
    _randomize(layer, rng)
    mask = _mask(rng, n, T) if opts.get("mask") else None
    k = 2 if kind == "LSTM" else 1
    init = [rng.standard_normal((n, u)) for _ in range(2 * k)] if opts.get("init") else None
    return layer, x, mask, init


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("mode", MODES, ids=str)
@pytest.mark.parametrize("opts", OPTIONS, ids=lambda o: "-".join(o) or "plain")
def test_forward_matches_reference(float64, kind, mode, opts):
    rng = np.random.default_rng(_seed(kind, mode, *opts))
    layer, x, mask, init = _setup(kind, mode, opts, rng)
    training = opts.get("training", False)
    out = layer.forward(x, training, mask=mask, initial_state=init)
    w = layer.get_weights()
    h = len(w) // 2
    k = 2 if kind == "LSTM" else 1
    seq = layer.return_sequences
    masks = []
    for sub in layer._sublayers:
        cur = sub._cur
        if training:
            kk = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}[kind]
            masks.append(([cur.mi[0]] * kk if len(cur.mi) == 1 else list(cur.mi), list(cur.mr) * (kk // len(cur.mr))))
        else:
            masks.append((None, None))
    yf, sf = ref.rnn_layer(kind, x, w[:h], seq, False, mask, None if init is None else init[:k],
                           xm=masks[0][0], hm=masks[0][1], zero_output_for_mask=seq)
    yb, sb = ref.rnn_layer(kind, x, w[h:], seq, True, mask, None if init is None else init[k:],
                           xm=masks[1][0], hm=masks[1][1], zero_output_for_mask=seq)
    if seq:
        yb = yb[:, ::-1]
    want = _merge(mode, yf, yb)
    want = (want if isinstance(want, list) else [want]) + (sf + sb if layer.return_state else [])
    got = out if isinstance(out, list) else [out]
    assert len(got) == len(want)
    for g, wv in zip(got, want):
        np.testing.assert_allclose(g, wv, rtol=1e-12, atol=1e-13)
    assert [tuple(np.shape(g)[1:]) for g in got] == [tuple(s[1:]) for s in
                                                     (layer.output_shape if isinstance(layer.output_shape, list)
                                                      else [layer.output_shape])]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("mode", MODES, ids=str)
@pytest.mark.parametrize("opts", OPTIONS, ids=lambda o: "-".join(o) or "plain")
def test_gradients_finite_differences(float64, kind, mode, opts):
    rng = np.random.default_rng(_seed(kind, mode, *opts, "grad"))
    layer, x, mask, init = _setup(kind, mode, opts, rng, n=2, T=3)
    training = opts.get("training", False)
    rng_states = [sub._rng.bit_generator.state if sub._rng is not None else None for sub in layer._sublayers]

    def run():
        for sub, st in zip(layer._sublayers, rng_states):
            if st is not None:
                sub._rng.bit_generator.state = st
        return layer.forward(x, training, mask=mask, initial_state=init)

    out = run()
    outs = out if isinstance(out, list) else [out]
    seeds = [rng.standard_normal(o.shape) for o in outs]
    g = layer.backward(seeds if isinstance(out, list) else seeds[0])
    g = [a.copy() for a in (g if isinstance(g, list) else [g])]
    pg = {k: v.copy() for k, v in layer._grad_of.items()}

    def f():
        o = run()
        return float(sum(np.sum(a * s) for a, s in zip(o if isinstance(o, list) else [o], seeds)))

    np.testing.assert_allclose(g[0], ref.numeric_grad(f, x), rtol=1e-6, atol=1e-8, err_msg="dx")
    for i, s in enumerate(init or []):
        np.testing.assert_allclose(g[1 + i], ref.numeric_grad(f, s), rtol=1e-6, atol=1e-8, err_msg=f"ds{i}")
    assert list(pg) == [a for a, *_ in layer._specs]
    for name, v in pg.items():
        np.testing.assert_allclose(v, ref.numeric_grad(f, getattr(layer, name)), rtol=1e-6, atol=1e-8, err_msg=name)


def test_weight_order_names_and_config_round_trip():
    layer = Bidirectional(LSTM(3, name="enc", return_sequences=True, dropout=0.1), merge_mode="ave")
    layer(np.zeros((1, 4, 2), np.float32))
    assert layer.forward_layer.name == "forward_enc" and layer.backward_layer.name == "backward_enc"
    assert layer.backward_layer.go_backwards and not layer.forward_layer.go_backwards
    assert [a for a, *_ in layer._specs] == ["forward_kernel", "forward_recurrent_kernel", "forward_bias",
                                             "backward_kernel", "backward_recurrent_kernel", "backward_bias"]
    w = layer.get_weights()
    np.testing.assert_array_equal(w[0], layer.forward_layer.kernel)
    np.testing.assert_array_equal(w[5], layer.backward_layer.bias)
    cfg = layer.get_config()
    clone = get_layer_class("Bidirectional").from_config(cfg)
    assert clone.get_config() == cfg
    custom = Bidirectional(GRU(2), backward_layer=GRU(2, go_backwards=True, activation="relu"), merge_mode=None)
    assert custom.backward_layer.get_config()["activation"] == "relu"


def test_model_learns_and_resumes_bit_identically(tmp_path):
    # a token at a random position must be seen from both sides: the label is whether 3 precedes 5
    rng = np.random.default_rng(1)
    x = rng.integers(1, 9, (600, 7))
    x[rng.random((600, 7)) < 0.2] = 0                   # padding holes: masked
    y = np.array([(list(r).index(3) < list(r).index(5)) if 3 in r and 5 in r else 0 for r in x])
    nncore.set_seed(1)
    m = Sequential([Embedding(9, 6, mask_zero=True, input_shape=(7,)),
                    Bidirectional(LSTM(10, return_sequences=True, recurrent_dropout=0.1)),
                    Bidirectional(GRU(8), merge_mode="sum"), Dense(2, "softmax")])
    m.compile(nncore.optimizers.Adam(0.02), "sparse_categorical_crossentropy", metrics=["accuracy"])
    m.fit(x[:500], y[:500], epochs=12, batch_size=32, verbose=0)
    assert m.evaluate(x[500:], y[500:], verbose=0)[1] > 0.85
    assert_resumes_identically(m, tmp_path / "b.nncore", x, y, seed=2, epochs=1, batch_size=32)


def test_frozen_bidirectional_and_recurrent_layers():
    """trainable=False (constructor, setter, or a wrapped layer made frozen) as Keras: no update, no
    trainable weights, the flag in the config; the setter reaches both directions."""
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((40, 5, 2)), rng.integers(0, 2, 40)
    made = [lambda: Bidirectional(GRU(3, return_sequences=True), trainable=False),
            lambda: Bidirectional(LSTM(3, return_sequences=True, trainable=False)),
            lambda: SimpleRNN(3, return_sequences=True, trainable=False)]
    for make in made:
        nncore.set_seed(0)
        frozen = make()
        m = Sequential([frozen, LSTM(4), Dense(2, "softmax")])
        m.build((None, 5, 2))
        assert not frozen.trainable and frozen.trainable_weights == [] and len(frozen.non_trainable_weights) > 0
        before = [w.copy() for w in frozen.weights]
        after_lstm = m.layers[1].kernel.copy()
        m.compile("adam", "sparse_categorical_crossentropy")
        m.fit(x, y, epochs=1, batch_size=8, verbose=0)
        assert all(np.array_equal(a, b) for a, b in zip(before, frozen.weights))
        assert not np.array_equal(after_lstm, m.layers[1].kernel)
        assert m.count_params() == sum(w.size for w in before) + sum(w.size for w in m.trainable_weights)
        clone = type(frozen).from_config(frozen.get_config())
        assert not clone.trainable and clone.get_config() == frozen.get_config()
    b = Bidirectional(LSTM(2))
    b.trainable = False
    assert not b.forward_layer.trainable and not b.backward_layer.trainable
    assert not b.get_config()["layer"]["config"]["trainable"]


def test_stateful_bidirectional():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 6, 3))
    layer = Bidirectional(SimpleRNN(4, stateful=True))
    a = layer(x)
    assert layer.states is not None and len(layer.states) == 2
    b = layer(x)
    assert not np.allclose(a, b)
    layer.reset_states()
    np.testing.assert_allclose(layer(x), a)


def test_errors():
    with pytest.raises(TypeError, match="layer must be a SimpleRNN, LSTM or GRU, got Dense"):
        Bidirectional(Dense(3))
    with pytest.raises(ValueError, match="merge_mode must be one of"):
        Bidirectional(LSTM(3), merge_mode="max")
    with pytest.raises(ValueError, match="need different go_backwards"):
        Bidirectional(LSTM(3), backward_layer=LSTM(3))
    with pytest.raises(ValueError, match="need the same return_sequences"):
        Bidirectional(LSTM(3), backward_layer=LSTM(3, go_backwards=True, return_sequences=True))
    layer = Bidirectional(LSTM(3), name="bi")
    x = np.zeros((2, 4, 2))
    layer(x)
    with pytest.raises(ValueError, match="layer 'bi' \\(Bidirectional\\): expected 4 initial states"):
        layer(x, initial_state=[np.zeros((2, 3))] * 2)
    with pytest.raises(ValueError, match="several outputs"):
        Sequential([Bidirectional(LSTM(3), merge_mode=None, input_shape=(4, 2)), Dense(1)])
