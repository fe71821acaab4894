"""Masks: the Masking layer, Embedding(mask_zero=True), how a mask travels through a model (Sequential
and functional) to the recurrent layers, losses per time step with masked steps left out, the mean
metrics weighted by the mask, Dense on sequences; save/load, no allocation in steady state, errors."""
import numpy as np
import pytest

import nncore
import reference_layers as ref
from nncore import losses as nlosses
from nncore.layers import (GRU, LSTM, Activation, Bidirectional, Conv1D, Dense, Dropout, Embedding, Masking,
                           SimpleRNN, get_layer_class)
from nncore.models import Model, Sequential
from resume_common import assert_resumes_identically
from steady_state import growth_between_epochs


def _padded(rng, n, T, D, value=0.0):
    x = rng.standard_normal((n, T, D))
    for i in range(n):
        x[i, rng.integers(1, T + 1):] = value              # padded at the end
    x[0, 1] = value                                          # and a hole in the middle
    return x


# --------------------------------------------------------------------------- the layers
def test_masking_forward_backward_and_gradient(float64):
    rng = np.random.default_rng(0)
    x = _padded(rng, 4, 5, 3, value=-1.0)
    x[1, 0, 0] = -1.0                                        # one feature at the value: not masked
    layer = Masking(-1.0)
    y = layer(x)
    mask = np.any(x != -1.0, axis=-1)
    np.testing.assert_array_equal(y, x * mask[..., None])
    np.testing.assert_array_equal(layer.compute_mask(x), mask)
    layer.forward(x, True)
    np.testing.assert_array_equal(layer.compute_mask(x, np.zeros((4, 5), bool)), mask)   # replaces the input's
    dy = rng.standard_normal(x.shape)
    dx = layer.backward(dy).copy()
    np.testing.assert_array_equal(dx, dy * mask[..., None])
    # central differences at the valid steps (at a masked step a nudge unmasks it: the mask is a
    # step function there, whose gradient is 0 as in Keras)
    num = ref.numeric_grad(lambda: float(np.sum(layer.forward(x) * dy)), x)
    np.testing.assert_allclose(dx[mask], num[mask], rtol=1e-7, atol=1e-8)
    np.testing.assert_array_equal(dx[~mask], 0)
    assert get_layer_class("Masking").from_config(layer.get_config()).mask_value == -1.0


def test_embedding_mask_zero():
    layer = Embedding(6, 3, mask_zero=True)
    x = np.array([[1, 2, 0, 0], [0, 5, 3, 0]])
    y = layer(x)
    np.testing.assert_array_equal(y[0, 2], layer.embeddings[0])      # row 0 is still looked up
    np.testing.assert_array_equal(layer.compute_mask(x), x != 0)
    assert layer.get_config()["mask_zero"] is True
    assert Embedding(6, 3).compute_mask(x) is None


def test_dense_on_sequences_gradient(float64):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 4, 5))
    layer = Dense(2, activation="tanh")
    y = layer(x)
    np.testing.assert_allclose(y, np.tanh(x @ layer.kernel + layer.bias), rtol=1e-13)
    assert layer.output_shape == (None, 4, 2)
    layer.forward(x, True)
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy).copy()
    g = {k: v.copy() for k, v in layer._grad_of.items()}

    def f():
        return float(np.sum(layer.forward(x) * dy))
    np.testing.assert_allclose(dx, ref.numeric_grad(f, x), rtol=1e-6, atol=1e-8)
    for k in g:
        np.testing.assert_allclose(g[k], ref.numeric_grad(f, getattr(layer, k)), rtol=1e-6, atol=1e-8)


# --------------------------------------------------------------------------- masks in models
def test_mask_reaches_the_recurrent_layer_through_layers_that_support_it(float64):
    # Masking -> Dense -> Dropout -> Activation -> LSTM: the LSTM sees the mask; after Flatten it is gone
    rng = np.random.default_rng(2)
    x = _padded(rng, 5, 6, 3)
    m = Sequential([Masking(input_shape=(6, 3)), Dense(4), Dropout(0.5), Activation("tanh"), LSTM(3)])
    lstm = m.layers[-1]
    got = m.predict(x, verbose=0)
    h = np.tanh(m.layers[1](x * np.any(x != 0, -1, keepdims=True)))
    want, _ = ref.rnn_layer("LSTM", h, lstm.get_weights(), mask=np.any(x != 0, -1))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13)
    stop = Sequential([Masking(input_shape=(6, 3)), Conv1D(3, 1), LSTM(3)])     # Conv1D drops the mask
    np.testing.assert_allclose(stop.predict(x, verbose=0),
                               ref.rnn_layer("LSTM", stop.layers[1](x), stop.layers[2].get_weights())[0],
                               rtol=1e-12, atol=1e-13)


def _masked_loss_ref(p, labels, mask, w=None):
    """Keras's masked reduction: sum(w_b m_bt l_bt) / sum(m) with l the per-step cross-entropy."""
    l = -np.log(np.clip(np.take_along_axis(p, labels[..., None], -1)[..., 0], 1e-7, 1 - 1e-7))
    ww = mask * (1.0 if w is None else w[:, None])
    return np.sum(ww * l) / mask.sum()


@pytest.mark.parametrize("weights", [False, True], ids=["", "sample_weight"])
def test_masked_sequence_loss_and_metrics(float64, weights):
    rng = np.random.default_rng(3)
    x = rng.integers(1, 7, (12, 5))
    x[:4, 3:] = 0
    x[5, :] = 0                                               # one sample fully masked
    y = rng.integers(0, 3, (12, 5))
    w = rng.uniform(0.5, 2, 12) if weights else None
    m = Sequential([Embedding(7, 4, mask_zero=True, input_shape=(5,)), GRU(4, return_sequences=True),
                    Dense(3, "softmax")])
    m.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    p = m.predict(x, verbose=0)
    mask = x != 0
    loss, acc = m.evaluate(x, y, sample_weight=w, batch_size=12, verbose=0)
    np.testing.assert_allclose(loss, _masked_loss_ref(p, y, mask, w), rtol=1e-12)
    np.testing.assert_allclose(acc, np.sum((p.argmax(-1) == y) * mask) / mask.sum(), rtol=1e-12)
    # the gradient the loss hands the model is that of the masked reduction
    h0 = m.get_weights()
    m.fit(x, y, sample_weight=w, batch_size=12, epochs=1, shuffle=False, verbose=0)
    m2 = Sequential([Embedding(7, 4, mask_zero=True, input_shape=(5,)), GRU(4, return_sequences=True),
                     Dense(3, "softmax")])
    m2.set_weights(h0)
    dense = m2.layers[-1]
    eps, k = 1e-6, (0, 1)
    def L():
        return _masked_loss_ref(m2.predict(x, verbose=0), y, mask, w)
    old = dense.kernel[k]
    dense.kernel[k] = old + eps
    fp = L()
    dense.kernel[k] = old - eps
    fm = L()
    np.testing.assert_allclose((h0[-2][k] - m.get_weights()[-2][k]) / 0.01, (fp - fm) / (2 * eps), rtol=1e-5)


def test_fully_masked_batch_gives_zero_loss(float64):
    m = Sequential([Masking(input_shape=(3, 2)), SimpleRNN(2, return_sequences=True)])
    m.compile("sgd", "mse")
    x = np.zeros((4, 3, 2))
    assert m.evaluate(x, np.ones((4, 3, 2)), verbose=0) == 0.0
    w0 = m.get_weights()
    m.fit(x, np.ones((4, 3, 2)), epochs=1, verbose=0)
    for a, b in zip(w0, m.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_functional_masks_and_save_load(tmp_path):
    # one Embedding's mask feeding two branches; a Bidirectional reads it too
    rng = np.random.default_rng(4)
    x = rng.integers(0, 8, (40, 6))
    y = rng.integers(0, 2, 40)
    nncore.set_seed(4)
    inp = nncore.Input((6,))
    e = Embedding(8, 4, mask_zero=True)(inp)
    a = LSTM(3)(e)
    b = Bidirectional(GRU(2))(e)
    out = Dense(2, "softmax")(nncore.layers.Concatenate()([a, b]))
    m = Model(inp, out)
    m.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    m.fit(x, y, epochs=1, batch_size=8, verbose=0)
    emb = next(layer for layer in m.layers if isinstance(layer, Embedding))
    lstm = next(layer for layer in m.layers if isinstance(layer, LSTM))
    seq = emb(x)
    np.testing.assert_allclose(lstm(seq, mask=x != 0), ref.rnn_layer("LSTM", seq.astype(float),
                                                                    [w.astype(float) for w in lstm.get_weights()],
                                                                    mask=x != 0)[0], rtol=1e-4, atol=1e-5)
    assert_resumes_identically(m, tmp_path / "f.nncore", x, y, seed=9, epochs=2, batch_size=8)


def test_steady_state_with_masks_dropout_and_bidirectional_allocates_nothing():
    rng = np.random.default_rng(5)
    x = rng.integers(0, 9, (96, 7))
    y = rng.integers(0, 3, (96, 7))
    m = Sequential([Embedding(9, 4, mask_zero=True, input_shape=(7,)),
                    Bidirectional(LSTM(5, return_sequences=True, dropout=0.2, recurrent_dropout=0.2)),
                    GRU(4, return_sequences=True, reset_after=False, recurrent_dropout=0.1), Dense(3, "softmax")])
    m.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    assert growth_between_epochs(m, x, y, batch_size=16, verbose=0) < 3000


def test_errors():
    with pytest.raises(TypeError, match="Masking: mask_value must be a number"):
        Masking("x")
    with pytest.raises(ValueError, match="layer 'mk' \\(Masking\\): expected inputs \\(batch, timesteps, "
                                         "features\\)"):
        Masking(name="mk").build((None, 3))
    m = Sequential([Embedding(5, 2, mask_zero=True, input_shape=(4,)), LSTM(2, return_sequences=True),
                    Dense(3, "softmax")])
    m.compile("sgd", "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="expects labels of shape \\(n_samples, 4\\) for outputs of shape"):
        m.fit(np.ones((2, 4)), np.zeros(2), verbose=0)
    loss = nlosses.SparseCategoricalCrossentropy()
    with pytest.raises(ValueError, match="\\(n_samples,\\) or \\(n_samples, 1\\)"):
        loss._prepare(np.zeros((2, 3)), (2, 4), np.float64)
