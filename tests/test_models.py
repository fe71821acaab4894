"""Sequential: a network worked by hand, whole-model gradients, Keras fit/evaluate semantics,
determinism, memory, callbacks and bad inputs."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nncore
from nncore.layers import Dense, Dropout, Flatten, Input
from nncore.models import Sequential
import reference_layers as ref
from reference_layers import numeric_grad
from steady_state import growth_between_epochs


def sgd(lr):
    return nncore.optimizers.SGD(learning_rate=lr)


def _data(n=40, d=4, k=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    labels = rng.integers(0, k, n)
    return x, labels, np.eye(k)[labels]


def _mlp(d=4, k=3, out="softmax", reg=None):
    return Sequential([Input(shape=(d,)), Dense(5, activation="tanh", kernel_regularizer=reg),
                       Dense(4, activation="elu"), Dense(k, activation=out)])


def test_tiny_network_by_hand(float64):
    # x = [1, 2]; W1 = [[.1, .2], [.3, -.4]], b1 = [0, .1]; W2 = [[.5], [-.6]], b2 = [.2]; MSE, y = 1
    # z1 = x W1 + b1 = [.7, -.5]; h = relu(z1) = [.7, 0]; yhat = .7*.5 + 0*(-.6) + .2 = .55
    # loss = (.55 - 1)^2 = .2025; dL/dyhat = 2 (.55 - 1) = -.9
    # dW2 = h^T (-.9) = [[-.63], [0]]; db2 = [-.9]; dh = -.9 W2^T = [-.45, .54]; delta1 = dh * [1, 0] = [-.45, 0]
    # dW1 = x^T delta1 = [[-.45, 0], [-.9, 0]]; db1 = [-.45, 0]
    # SGD lr .1: W1 = [[.145, .2], [.39, -.4]], b1 = [.045, .1], W2 = [[.563], [-.6]], b2 = [.29]
    model = Sequential([Dense(2, activation="relu", input_dim=2), Dense(1)])
    model.set_weights([np.array([[.1, .2], [.3, -.4]]), np.array([0, .1]), np.array([[.5], [-.6]]), np.array([.2])])
    model.compile(optimizer=sgd(0.1), loss="mse")
    np.testing.assert_allclose(model.predict(np.array([[1.0, 2.0]]), verbose=0), [[0.55]])
    hist = model.fit(np.array([[1.0, 2.0]]), np.array([1.0]), epochs=1, verbose=0)
    np.testing.assert_allclose(hist.history["loss"], [0.2025])
    expected = [[[.145, .2], [.39, -.4]], [.045, .1], [[.563], [-.6]], [.29]]
    for got, want in zip(model.get_weights(), expected):
        np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize("out,loss", [("softmax", "categorical_crossentropy"), ("sigmoid", "binary_crossentropy"),
                                      ("linear", "huber"), ("softmax", "sparse_categorical_crossentropy")])
def test_whole_model_flat_gradient(float64, out, loss):
    # the flat gradient buffer after one step equals central differences of evaluate's loss
    # (weighted, with an L2 penalty); SGD with lr 0 leaves the parameters unchanged
    x, labels, onehot = _data(n=9)
    y = labels if loss.startswith("sparse") else (onehot if loss != "huber" else onehot * 2 - 0.5)
    w = np.linspace(0.5, 1.5, len(x))
    nncore.set_seed(4)
    model = _mlp(out=out, reg="l2")
    model.compile(optimizer=sgd(0.0), loss=loss)
    assert model._params.dtype == np.float64
    model.fit(x, y, sample_weight=w, batch_size=len(x), epochs=1, shuffle=False, verbose=0)
    grads = model._grads.copy()
    assert model._fused == (out != "linear")

    def f():
        return model.evaluate(x, y, sample_weight=w, batch_size=len(x), verbose=0)

    np.testing.assert_allclose(grads, numeric_grad(f, model._params), rtol=1e-5, atol=1e-9)
    # every layer's kernel and bias are views into the one flat buffer
    for layer in model.layers:
        for v in layer.weights:
            assert np.shares_memory(v, model._params)


def test_validation_split_takes_last_samples_before_shuffling():
    x, labels, _ = _data(n=10)
    model = _mlp()
    model.compile(optimizer=sgd(0.0), loss="sparse_categorical_crossentropy")
    # Keras: training = first floor(10 * (1 - 0.25)) = 7 samples, validation = last 3
    hist = model.fit(x, labels, validation_split=0.25, batch_size=3, epochs=2, verbose=0)
    val = model.evaluate(x[7:], labels[7:], verbose=0)
    train = model.evaluate(x[:7], labels[:7], verbose=0)
    np.testing.assert_allclose(hist.history["val_loss"], [val, val], rtol=1e-6)
    np.testing.assert_allclose(hist.history["loss"], [train, train], rtol=1e-6)
    hist2 = model.fit(x, labels, validation_data=(x[7:], labels[7:]), epochs=1, verbose=0)
    np.testing.assert_allclose(hist2.history["val_loss"], [val], rtol=1e-6)
    with pytest.raises(ValueError, match="validation_split"):
        model.fit(x[:2], labels[:2], validation_split=0.9, verbose=0)  # floor(0.2) = 0 left


def test_history_loss_is_batch_size_weighted_running_mean_with_weights(float64):
    # lr 0: every batch sees the same model, so the running mean over 10 samples in batches
    # 4 + 4 + 2 (partial batch kept) must equal the loss over all samples: sum(w l) / N
    x, labels, onehot = _data(n=10)
    w = np.arange(1.0, 11.0)
    model = _mlp()
    model.compile(optimizer=sgd(0.0), loss="categorical_crossentropy", metrics=["accuracy"])
    seen = []

    class Rec(nncore.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(logs["loss"])

    hist = model.fit(x, onehot, sample_weight=w, batch_size=4, epochs=1, shuffle=False, verbose=0,
                     callbacks=[Rec()])
    per = ref.cce(onehot, model.predict(x, verbose=0)) * w
    assert len(seen) == 3
    # running means after batch 1, 2, 3 (each batch loss is sum(w l) / n_batch)
    np.testing.assert_allclose(seen, [per[:4].sum() / 4, per[:8].sum() / 8, per.sum() / 10], rtol=1e-6)
    np.testing.assert_allclose(hist.history["loss"], [per.sum() / 10], rtol=1e-6)
    np.testing.assert_allclose(model.evaluate(x, onehot, sample_weight=w, verbose=0)[0], per.sum() / 10, rtol=1e-6)
    acc = np.mean(model.predict(x, verbose=0).argmax(1) == labels)
    np.testing.assert_allclose(hist.history["accuracy"], [acc])
    res = model.evaluate(x, onehot, verbose=0, return_dict=True)
    assert set(res) == {"loss", "accuracy"}


def test_class_weight_is_sample_weight():
    x, labels, _ = _data(n=30, k=2)
    cw = {0: 1.0, 1: 3.0}
    runs = []
    for kw in ({"class_weight": cw}, {"sample_weight": np.where(labels == 1, 3.0, 1.0)}):
        nncore.set_seed(3)
        model = _mlp(k=1, out="sigmoid")
        model.compile(optimizer=sgd(0.1), loss="binary_crossentropy")
        model.fit(x, labels, epochs=2, batch_size=8, verbose=0, **kw)
        runs.append(model.get_weights())
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="class_weight or sample_weight"):
        model.fit(x, labels, class_weight=cw, sample_weight=np.ones(30), verbose=0)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_seeded_training_is_bit_identical(dtype):
    x, labels, _ = _data(n=50)
    results = []
    nncore.set_floatx(dtype)
    try:
        for _ in range(2):
            nncore.set_seed(123)
            model = Sequential([Dense(8, activation="relu", input_dim=4), Dropout(0.3), Dense(3, "softmax")])
            model.compile(optimizer=sgd(0.05), loss="sparse_categorical_crossentropy")
            hist = model.fit(x, labels, epochs=3, batch_size=7, verbose=0)
            results.append((model.get_weights(), hist.history["loss"]))
    finally:
        nncore.set_floatx("float32")
    assert results[0][1] == results[1][1]
    for a, b in zip(results[0][0], results[1][0]):
        assert a.dtype == dtype
        np.testing.assert_array_equal(a, b)


def test_steady_state_epochs_allocate_nothing_that_persists():
    x, labels, _ = _data(n=200)
    model = Sequential([Dense(16, activation="relu", input_dim=4, kernel_regularizer="l2"), Dropout(0.2),
                        Dense(3, "softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    growth = growth_between_epochs(model, x, labels, batch_size=16, verbose=0, validation_split=0.2)  # 10 batches
    # 4 epochs x 10 steps: even one leaked 64-byte object per step would exceed this;
    # what remains is History's per-epoch entries
    print("persistent growth over 4 epochs:", growth, "bytes")
    assert growth < 3000, growth


def test_callback_order_and_stop_training():
    events = []

    class Rec(nncore.callbacks.Callback):
        def on_train_begin(self, logs=None):
            events.append("train_begin")

        def on_epoch_begin(self, epoch, logs=None):
            events.append(f"epoch_begin{epoch}")

        def on_train_batch_begin(self, batch, logs=None):
            events.append(f"batch_begin{batch}")

        def on_train_batch_end(self, batch, logs=None):
            events.append(f"batch_end{batch}")

        def on_epoch_end(self, epoch, logs=None):
            events.append(f"epoch_end{epoch}")
            if epoch == 1:
                self.model.stop_training = True

        def on_train_end(self, logs=None):
            events.append("train_end")

    x, labels, _ = _data(n=6)
    model = _mlp()
    model.compile(optimizer=sgd(0.01), loss="sparse_categorical_crossentropy")
    hist = model.fit(x, labels, batch_size=4, epochs=5, verbose=0, callbacks=[Rec()])
    assert events == ["train_begin",
                      "epoch_begin0", "batch_begin0", "batch_end0", "batch_begin1", "batch_end1", "epoch_end0",
                      "epoch_begin1", "batch_begin0", "batch_end0", "batch_begin1", "batch_end1", "epoch_end1",
                      "train_end"]
    assert len(hist.history["loss"]) == 2
    hist = model.fit(x, labels, epochs=4, initial_epoch=2, verbose=0)
    assert hist.epoch == [2, 3]


def test_keyboard_interrupt_leaves_a_usable_model():
    x, labels, _ = _data(n=64)

    class CtrlC(nncore.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 3:
                raise KeyboardInterrupt

    model = _mlp()
    model.compile(optimizer=sgd(0.05), loss="sparse_categorical_crossentropy")
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, labels, epochs=3, batch_size=8, verbose=0, callbacks=[CtrlC()])
    p = model.predict(x, verbose=0)
    assert np.all(np.isfinite(p))
    # a row's result may differ in the last bit between batch sizes (GEMM blocking)
    np.testing.assert_allclose(p[:5], model(x[:5]), rtol=1e-6, atol=1e-7)
    hist = model.fit(x, labels, epochs=2, batch_size=8, verbose=0)
    assert np.all(np.isfinite(hist.history["loss"]))


def test_ctrl_c_is_deferred_to_the_end_of_the_step():
    # a real SIGINT during a step: the step completes, then KeyboardInterrupt is raised between steps
    import os
    import signal

    x, labels, _ = _data(n=64)

    class Sigint(nncore.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if batch == 3:
                os.kill(os.getpid(), signal.SIGINT)

    model = _mlp()
    model.compile(optimizer=sgd(0.05), loss="sparse_categorical_crossentropy")
    before = model.get_weights()
    # Python's own Ctrl-C handler, which a process started in the background (SIGINT ignored, as a CI
    # runner may start it) does not get; fit defers only that handler
    outer = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            model.fit(x, labels, epochs=3, batch_size=8, verbose=0, callbacks=[Sigint()])
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, outer)
    assert model.optimizer.iterations == 4          # batches 0..3 all completed
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    assert np.all(np.isfinite(model.predict(x, verbose=0)))


def test_bad_inputs_raise_clear_errors():
    x, labels, _ = _data(n=10)
    model = Sequential([Dense(5, input_dim=4, name="first"), Dense(3, activation="softmax")])
    model.compile(optimizer=sgd(0.1), loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match=r"'first'.*\(n_samples, 4\).*\(10, 5\)"):
        model.fit(np.zeros((10, 5)), labels, verbose=0)
    with pytest.raises(ValueError, match="expected 10 targets.*shape \\(9,\\)"):
        model.fit(x, labels[:9], verbose=0)
    with pytest.raises(ValueError, match=r"label 3 out of range.*\[0, 2\]"):
        model.fit(x, np.full(10, 3), verbose=0)
    bad = x.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="x: inputs contain NaN"):
        model.fit(bad, labels, verbose=0)
    with pytest.raises(ValueError, match="NaN"):
        model.predict(bad, verbose=0)
    with pytest.raises(ValueError, match="empty"):
        model.fit(np.zeros((0, 4)), labels[:0], verbose=0)
    with pytest.raises(ValueError, match="sample_weight.*\\(10,\\)"):
        model.fit(x, labels, sample_weight=np.ones(3), verbose=0)
    with pytest.raises(ValueError, match="batch_size"):
        model.fit(x, labels, batch_size=0, verbose=0)
    with pytest.raises(ValueError, match="unknown loss 'nope'"):
        model.compile(optimizer=sgd(0.1), loss="nope")
    with pytest.raises(ValueError, match="compile"):
        Sequential([Dense(1, input_dim=2)]).fit(np.zeros((2, 2)), np.zeros(2), verbose=0)
    with pytest.raises(ValueError, match=r"y: expected targets of shape \(n_samples, 3\).*got \(10, 2\)"):
        model.compile(optimizer=sgd(0.1), loss="categorical_crossentropy")
        model.fit(x, np.zeros((10, 2)), verbose=0)
    with pytest.raises(ValueError, match="verbose"):
        model.predict(x, verbose=5)
    with pytest.raises(ValueError, match="no layers"):
        Sequential().predict(x)
    with pytest.raises(TypeError, match="Layer"):
        Sequential().add("dense")
    with pytest.raises(ValueError, match="targets contain NaN"):
        model.compile(optimizer=sgd(0.1), loss="mse")
        model.fit(x, np.full((10, 3), np.nan), verbose=0)
    with pytest.raises(ValueError, match="adamm"):
        model.compile(optimizer="adamm", loss="mse")
    with pytest.raises(ValueError, match="accuracyy"):
        model.compile(optimizer="sgd", loss="mse", metrics=["accuracyy"])
    with pytest.raises(ValueError, match="unknown activation 'rleu'"):
        Dense(3, activation="rleu")
    cfg = model.get_config()
    cfg["layers"][1]["class_name"] = "Dense9"
    with pytest.raises(ValueError, match="unknown layer class 'Dense9'"):
        Sequential.from_config(cfg)
    with pytest.raises(ValueError, match="layer named 'first' is already"):
        Sequential([Dense(2, name="first"), Dense(2, name="first")])


def test_dtypes_build_and_config(float64):
    model = Sequential()
    model.add(Input(shape=(3,)))
    model.add(Dense(4, activation="relu"))
    assert model.built and model.count_params() == 16
    w0 = model.get_weights()
    model.add(Dense(2))                       # adding after build keeps the existing weights
    for a, b in zip(w0, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert model.output_shape == (None, 2)
    out = model.predict(np.ones((5, 3), dtype=np.float32), verbose=0)
    assert out.dtype == np.float64             # the model's dtype, end to end
    cfg = model.get_config()
    import json
    clone = Sequential.from_config(json.loads(json.dumps(cfg)))
    clone.set_weights(model.get_weights())
    np.testing.assert_array_equal(clone.predict(np.ones((5, 3)), verbose=0), out)
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "Total params: 26" in text and "(None, 4)" in text
    with pytest.raises(ValueError, match="expected 4 arrays"):
        model.set_weights(model.get_weights()[:2])
    # lazily built model (no input shape) with a Flatten in front
    lazy = Sequential([Flatten(), Dense(2, activation="sigmoid")])
    assert not lazy.built
    assert lazy(np.ones((3, 2, 2))).shape == (3, 2) and lazy.built


def test_float32_default_and_loss_falls():
    x, labels, _ = _data(n=120, seed=5)
    y = (x[:, 0] - x[:, 1] > 0).astype(int)
    nncore.set_seed(0)
    model = _mlp(k=2)
    model.compile(optimizer=sgd(0.2), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    hist = model.fit(x, y, epochs=15, batch_size=16, verbose=0)
    assert model._params.dtype == np.float32 and model.predict(x, verbose=0).dtype == np.float32
    assert hist.history["loss"][-1] < 0.6 * hist.history["loss"][0]
    loss, acc = model.evaluate(x, y, verbose=0)
    assert acc > 0.9


def test_save_and_load_resume_bit_identically(tmp_path):
    x, labels, _ = _data(n=48)
    nncore.set_seed(9)
    model = _mlp(reg="l2")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, labels, epochs=2, batch_size=8, shuffle=False, verbose=0)
    path = str(tmp_path / "m.nncore")
    model.save(path)
    again = nncore.load_model(path)
    np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))
    assert again.optimizer.iterations == model.optimizer.iterations == 12
    # training goes on identically from the restored optimizer state
    h1 = model.fit(x, labels, epochs=2, batch_size=8, shuffle=False, verbose=0)
    h2 = again.fit(x, labels, epochs=2, batch_size=8, shuffle=False, verbose=0)
    assert h1.history == h2.history
    for a, b in zip(model.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)
    wpath = str(tmp_path / "w.nncore")
    model.save_weights(wpath)
    fresh = _mlp(reg="l2")
    fresh.load_weights(wpath)
    np.testing.assert_array_equal(fresh.predict(x, verbose=0), model.predict(x, verbose=0))


def test_separate_softmax_activation_trains_like_dense_softmax(float64):
    # Dense(k) + Activation('softmax') takes the same fused p - y path as Dense(k, 'softmax')
    from nncore.layers import Activation
    x, labels, _ = _data(n=30)
    results = []
    for layers in ([Dense(6, "tanh", input_dim=4), Dense(3, "softmax")],
                   [Dense(6, "tanh", input_dim=4), Dense(3), Activation("softmax")]):
        nncore.set_seed(2)
        model = Sequential(layers)
        model.compile(optimizer=sgd(0.1), loss="sparse_categorical_crossentropy")
        hist = model.fit(x, labels, epochs=3, batch_size=7, verbose=0)
        assert model._fused
        results.append((hist.history["loss"], model.get_weights()))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-12)
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
    # a model without parameters still evaluates and "trains" (nothing to update)
    plain = Sequential([Activation("softmax", input_shape=(4,))])
    plain.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    assert np.isfinite(plain.fit(x, labels, verbose=0).history["loss"][0])


@settings(max_examples=25, deadline=None)
@given(sizes=st.lists(st.integers(1, 37), min_size=2, max_size=4), n=st.integers(1, 70),
       batch=st.integers(1, 33), acts=st.lists(st.sampled_from(["relu", "tanh", "sigmoid", "linear", "elu"]),
                                               min_size=3, max_size=3))
def test_predict_matches_numpy_forward_for_awkward_shapes(sizes, n, batch, acts):
    # any widths (1, primes, ...), any batch size (partial last batch): predict == float64 oracle
    rng = np.random.default_rng(n)
    old = nncore.floatx()
    nncore.set_floatx("float64")
    try:
        model = Sequential([Dense(s, activation=a) for s, a in zip(sizes[1:], acts)])
        x = rng.normal(size=(n, sizes[0]))
        out = model.predict(x, batch_size=batch, verbose=0)
    finally:
        nncore.set_floatx(old)
    h = x
    for layer, a in zip(model.layers, acts):
        h = ref.dense_forward(h, layer.kernel, layer.bias, a)
    np.testing.assert_allclose(out, h, rtol=1e-12, atol=1e-12)


def test_thread_counts_agree(float64):
    # n_threads only changes how kernels split work: same training up to rounding
    x, labels, _ = _data(n=64)
    weights = []
    for nt in (1, 2):
        nncore.set_seed(5)
        model = Sequential([Dense(33, "relu", input_dim=4), Dense(3, "softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", n_threads=nt)
        model.fit(x, labels, epochs=2, batch_size=16, verbose=0)
        assert model.optimizer.n_threads == nt
        weights.append(model.get_weights())
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="n_threads"):
        model.compile(optimizer="sgd", loss="mse", n_threads=0)


def test_verbose_levels(capsys):
    x, labels, _ = _data(n=40)
    model = _mlp()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, labels, epochs=3, batch_size=8, verbose=0)
    model.predict(x, verbose=0)
    model.evaluate(x, labels, verbose=0)
    assert capsys.readouterr().out == ""
    model.fit(x, labels, epochs=3, batch_size=8, verbose=2, validation_split=0.25)
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if "loss" in line]
    assert len(lines) == 3 and all("val_accuracy" in line for line in lines)     # one line per epoch
    model.fit(x, labels, epochs=2, batch_size=8)                                   # 'auto': progress bar
    out = capsys.readouterr().out
    assert "Epoch 2/2" in out and "5/5" in out and out.count("\r") == 0          # no redraws off a terminal


def test_work_buffers_do_not_pile_up_over_many_batch_sizes():
    from nncore.layers.base import MAX_CACHED_SHAPES
    model = _mlp()
    for n in range(1, 40):
        model(np.ones((n, 4)))
    assert all(len(layer._bufs) <= MAX_CACHED_SHAPES for layer in model.layers)
