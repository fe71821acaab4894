"""Non-trainable weights and trainable=False (nncore._params): the optimizer's range is one contiguous view
stepped by ONE kernel call, frozen layers get no update and no optimizer slots, a change of `trainable`
applies at the next compile (as Keras), and summary() counts as Keras does."""
import numpy as np
import pytest

import nncore
from nncore import Sequential
from nncore.layers import BatchNormalization, Dense, Input
from nncore.optimizers import optimizer as _optimizer


def _data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 5)), rng.integers(0, 3, n)


def _model(seed=0, reg=None):
    nncore.set_seed(seed)
    return Sequential([Input((5,)), Dense(8, activation="relu", name="a", kernel_regularizer=reg),
                       BatchNormalization(name="bn"), Dense(6, activation="tanh", name="b"),
                       Dense(3, activation="softmax", name="c")])


def _count_step_calls(monkeypatch):
    calls = []
    real = _optimizer._k.step

    def counting(*args, **kwargs):
        calls.append(args[3].size)           # the params array the kernel updates
        return real(*args, **kwargs)

    monkeypatch.setattr(_optimizer._k, "step", counting)
    return calls


def test_a_frozen_layer_gets_no_update_and_no_slots(monkeypatch):
    x, y = _data()
    m = _model()
    m.layers[2].trainable = False                     # "b"
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    before = {layer.name: [w.copy() for w in layer.weights] for layer in m.layers}
    n_train = sum(w.size for w in m.trainable_weights)
    assert n_train == 5 * 8 + 8 + 8 + 8 + 6 * 3 + 3
    assert m._train_params.size == n_train and np.shares_memory(m._train_params, m._params)
    assert all(s.size == n_train for s in m.optimizer._flat["slots"])     # no slots for the frozen layer
    calls = _count_step_calls(monkeypatch)
    m.fit(x, y, epochs=2, batch_size=16, verbose=0)
    assert calls == [n_train] * 8                      # one kernel call per step, over the trained range only
    for layer in m.layers:
        same = [np.array_equal(a, b) for a, b in zip(before[layer.name], layer.weights)]
        if layer is m.layers[2]:
            assert all(same)
        else:
            assert not any(same[:2])                   # kernel, bias / gamma, beta moved


def test_layers_before_the_first_trained_one_are_not_visited():
    x, y = _data()
    m = _model()
    for layer in m.layers[:2]:
        layer.trainable = False

    def fail(dy):
        raise AssertionError("backward of a frozen front layer")

    m.layers[0].backward = m.layers[1].backward = fail
    m.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    m.fit(x, y, epochs=1, batch_size=16, verbose=0)
    assert m._plan.runs == [False, False, True, True] and not m.layers[2]._need_dx


def test_trainable_changes_apply_at_the_next_compile():
    x, y = _data()
    m = _model()
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    a = m.layers[0]
    a.trainable = False
    k0 = a.kernel.copy()
    with pytest.warns(UserWarning, match=r"trainable.*changed since the model was compiled.*\['a'\]"):
        m.fit(x, y, epochs=1, batch_size=16, verbose=0)
    assert not np.array_equal(a.kernel, k0)          # not applied yet: Keras's rule
    p0, k0 = m.predict(x, verbose=0), a.kernel.copy()
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    np.testing.assert_array_equal(m.predict(x, verbose=0), p0)    # the new layout keeps every value
    m.fit(x, y, epochs=1, batch_size=16, verbose=0)
    np.testing.assert_array_equal(a.kernel, k0)
    a.trainable = True
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    m.fit(x, y, epochs=1, batch_size=16, verbose=0)
    assert not np.array_equal(a.kernel, k0)


def test_a_frozen_regularizer_adds_nothing_to_the_loss():
    x, y = _data()
    losses = []
    for reg, frozen in ((None, False), ("l2", True), ("l2", False)):
        m = _model(reg=reg)
        m.layers[0].trainable = not frozen
        m.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        losses.append(m.evaluate(x, y, verbose=0))
    assert losses[0] == losses[1] < losses[2]


def test_model_trainable_freezes_every_layer_and_configs_keep_the_flag():
    x, y = _data()
    m = _model()
    m.trainable = False
    assert not m.trainable and m.trainable_weights == []
    assert len(m.non_trainable_weights) == len(m.weights) == 10
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    w0 = m.get_weights()
    m.fit(x, y, epochs=1, batch_size=16, verbose=0)
    for a, b in zip(w0, m.get_weights()):
        np.testing.assert_array_equal(a, b)
    cfg = m.get_config()
    assert all(layer["config"].get("trainable", True) is False for layer in cfg["layers"][1:])
    again = Sequential.from_config(cfg)
    assert [layer.trainable for layer in again.layers] == [False] * 4
    assert Dense(2, trainable=False).get_config()["trainable"] is False


def test_summary_counts_as_keras():
    x, y = _data()
    m = _model()
    m.layers[2].trainable = False
    lines = []
    m.summary(print_fn=lines.append)
    text = "\n".join(lines)
    trained = 5 * 8 + 8 + 8 + 8 + 6 * 3 + 3           # a, bn's gamma and beta, c
    fixed = 8 + 8 + 8 * 6 + 6                          # bn's moving statistics, the frozen b
    assert f"Total params: {trained + fixed:,} ({(trained + fixed) * 4:.2f} B)" in text
    assert f"Trainable params: {trained:,}" in text and f"Non-trainable params: {fixed:,}" in text
    assert "Optimizer params" not in text
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    m.fit(x, y, epochs=1, batch_size=32, verbose=0)
    lines = []
    m.summary(print_fn=lines.append)
    text = "\n".join(lines)
    # Keras: iterations + learning_rate + m and v for every trained value
    assert f"Optimizer params: {2 + 2 * trained:,}" in text
    assert f"Total params: {trained + fixed + 2 + 2 * trained:,}" in text


def test_a_layer_on_its_own_keeps_its_weights_when_added_to_a_model():
    layer = Dense(3)
    x = np.ones((2, 4), np.float32)
    y = layer(x)
    m = Sequential([Input((4,)), layer])
    np.testing.assert_array_equal(m.predict(x, verbose=0), y)


def test_each_layer_has_one_contiguous_gradient_region_and_can_be_bound_again():
    from nncore import _params
    m = _model()
    m.layers[2].trainable = False
    m.compile(optimizer="sgd", loss="mse")
    layout = m._layout
    for layer in m.layers:
        start, stop = layout.grad_region[id(layer)]
        grads = [layer._grad_of[a] for a, *_ in layer._specs if a not in layer._non_trainable]
        assert stop - start == sum(g.size for g in grads)
        assert all(np.shares_memory(g, m._grads[start:stop]) for g in grads)
    bn = m.layers[1]
    Sequential([Input((8,)), bn])                   # another model takes the layer...
    assert not np.shares_memory(bn.gamma, m._params)
    _params.rebind(layout, bn)                      # ...and the first takes it back
    assert np.shares_memory(bn.gamma, m._params) and np.shares_memory(bn.moving_mean, m._params)


def test_a_frozen_embedding_stays_fixed_while_the_rest_trains():
    from nncore.layers import Embedding, GlobalAveragePooling1D
    rng = np.random.default_rng(3)
    tokens, y = rng.integers(0, 11, (40, 6)), rng.integers(0, 2, 40)
    nncore.set_seed(2)
    m = Sequential([Input((6,)), Embedding(11, 4, trainable=False, name="emb"), GlobalAveragePooling1D(),
                    Dense(2, activation="softmax")])
    e0 = m.get_layer("emb").embeddings.copy()
    w0 = m.layers[-1].kernel.copy()
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    m.fit(tokens, y, epochs=2, batch_size=8, verbose=0)
    np.testing.assert_array_equal(m.get_layer("emb").embeddings, e0)
    assert not np.array_equal(m.layers[-1].kernel, w0)
    assert m._train_params.size == 4 * 2 + 2
    assert Embedding.from_config(m.get_layer("emb").get_config()).trainable is False
