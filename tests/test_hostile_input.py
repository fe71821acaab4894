"""What an ordinary but careless user can pass to the public API (session 17's audit, engineer probe).

Each test is one defect the audit found: before its fix the call gave a silent wrong answer, a crash
of the wrong kind or a message that did not name the argument; now it gives the right answer or a
ValueError/TypeError naming the layer (or function), the expected and the actual value.
"""
import numpy as np
import pytest

import nncore
from nncore.layers import BatchNormalization, Cropping2D, Dense, Input, ZeroPadding2D
from nncore.models import Model, Sequential


# ---- padding and cropping: a negative int is an error, as the tuple forms already were --------
@pytest.mark.parametrize("cls, arg", [(Cropping2D, "cropping"), (ZeroPadding2D, "padding")])
def test_negative_int_padding_or_cropping_is_refused(cls, arg):
    # Cropping2D(-1) used to PAD the image by one pixel each side (a silent wrong answer: slices with
    # a negative start); ZeroPadding2D(-1) failed in NumPy's broadcast with no layer named
    with pytest.raises(ValueError, match=rf"{cls.__name__}: {arg} must be >= 0, got \(-1, -1\)"):
        cls(-1)
    layer = cls(1)                                       # the int form still means all four sides
    m = Sequential([Input((4, 5, 2)), layer])
    assert m.output_shape == ((None, 2, 3, 2) if cls is Cropping2D else (None, 6, 7, 2))


# ---- BatchNormalization: momentum outside [0, 1] (NaN) made the moving statistics diverge --------
@pytest.mark.parametrize("momentum", [-0.1, 1.5, float("nan"), float("inf")])
def test_batchnorm_momentum_outside_0_1_is_refused(momentum):
    with pytest.raises(ValueError, match=r"BatchNormalization: momentum must be in \[0, 1\]"):
        BatchNormalization(momentum=momentum)


@pytest.mark.parametrize("momentum", [0, 0.0, 1, 1.0, 0.5])
def test_batchnorm_momentum_at_the_ends_is_accepted(momentum):
    assert BatchNormalization(momentum=momentum).momentum == float(momentum)


# ---- predict_dask ----------------------------------------------------------------------------------
def test_predict_dask_with_empty_chunks_and_bad_arguments():
    da = pytest.importorskip("dask.array", reason="dask is not installed")
    import dask

    from nncore.distributed import predict_dask

    nncore.set_seed(5)
    m = Sequential([Input((4,)), Dense(3)])
    x = np.random.default_rng(0).normal(size=(100, 4)).astype(np.float32)
    x = x[np.argsort(x[:, 0])]                           # the first chunks hold only negative x[:, 0]
    dx = da.from_array(x, chunks=25)
    with dask.config.set(scheduler="synchronous"):
        # a filtered dask array has chunks of unknown, possibly zero, length: the empty ones
        # used to fail the whole compute with predict's "empty input" error
        got = predict_dask(m, dx[dx[:, 0] > 0]).compute()
        np.testing.assert_allclose(got, m.predict(x[x[:, 0] > 0], verbose=0), rtol=1e-6, atol=1e-7)
        assert predict_dask(m, dx[dx[:, 0] > 100]).compute().shape == (0, 3)
    # batch_size is checked when the graph is made, not first inside a worker at compute time
    with pytest.raises(ValueError, match="predict_dask: batch_size: expected an int >= 1, got 0"):
        predict_dask(m, dx, batch_size=0)
    # several inputs or outputs: a clear refusal (was a garbled shape, or int(None)'s TypeError)
    a, b = Input((4,)), Input((2,))
    two_in = Model([a, b], nncore.layers.Concatenate()([a, b]))
    with pytest.raises(ValueError, match="has 2 inputs and 1 outputs; only models with one input and one"):
        predict_dask(two_in, dx)
    two_out = Model(a, [Dense(2)(a), Dense(1)(a)])
    with pytest.raises(ValueError, match="has 1 inputs and 2 outputs"):
        predict_dask(two_out, dx)


# ---- set_weights: complex values lost their imaginary part (a warning only), None gave len()'s error
@pytest.mark.parametrize("on_layer", [False, True])
def test_set_weights_refuses_complex_strings_and_non_lists(on_layer):
    nncore.set_seed(1)
    m = Sequential([Input((2,)), Dense(1, name="d")])
    target = m.layers[0] if on_layer else m
    where = "layer 'd': set_weights" if on_layer else f"{m.name}.set_weights"
    before = m.get_weights()
    w = m.get_weights()
    with pytest.raises(TypeError, match=rf"{where}: array 0 must hold real numbers .* got dtype complex"):
        target.set_weights([w[0] + 1j, w[1]])
    with pytest.raises(TypeError, match=r"array 1 must hold real numbers .* got dtype <U"):
        target.set_weights([w[0], w[1].astype(str)])
    with pytest.raises(TypeError, match=rf"{where}: expected a list of 2 arrays, got NoneType"):
        target.set_weights(None)
    with pytest.raises(TypeError, match="expected a list of 2 arrays, got ndarray"):
        target.set_weights(w[0])
    with pytest.raises(ValueError, match="expected 2 arrays, got 1"):
        target.set_weights(w[:1])
    for a, b in zip(before, m.get_weights()):          # nothing was written by the refused calls
        np.testing.assert_array_equal(a, b)
    # what is accepted still is: ints, bools, float64, tuples, nested lists; NaN too (Keras sets
    # what it is given; a model saved with allow_nonfinite=True must load)
    target.set_weights(([[1], [0]], np.array([True])))
    np.testing.assert_array_equal(m.get_weights()[0], [[1], [0]])
    target.set_weights([np.full((2, 1), np.nan), np.zeros(1)])
    assert np.isnan(m.get_weights()[0]).all()
    target.set_weights(v for v in [np.full((2, 1), 3.0), np.zeros(1)])   # any iterable, as Keras
    np.testing.assert_array_equal(m.get_weights()[0], [[3], [3]])
    with pytest.raises(TypeError, match="expected a list of 2 arrays, got str"):
        target.set_weights("ab")


# ---- Embedding: a float index with a fraction was truncated silently (Keras's cast) ---------------
@pytest.mark.parametrize("quantized", [False, True])
def test_embedding_refuses_fractional_indices_on_every_entry_point(quantized):
    from nncore.layers import Embedding, Flatten

    nncore.set_seed(2)
    m = Sequential([Input((3,)), Embedding(5, 2, name="emb"), Flatten(), Dense(1)])
    m.compile("sgd", "mse")
    good = np.array([[0, 1, 4], [2, 3, 0]])
    ref = m.predict(good, verbose=0)
    if quantized:
        m.quantize("int8")
        ref = m.predict(good, verbose=0)
    # ids standardized with the other features: every one truncates to 0 or -0 -> row 0, silently
    scaled = (good - good.mean()) / good.std()
    entry_points = [lambda x: m.predict(x, verbose=0), m, m.predict_on_batch]
    if not quantized:
        entry_points += [lambda x: m.fit(x, np.zeros((2, 1)), verbose=0),
                         lambda x: m.train_on_batch(x, np.zeros((2, 1)))]
    for call in entry_points:
        with pytest.raises(ValueError, match=r"'emb' \(Embedding\): expected integer indices in \[0, 5\), got "):
            call(scaled)
        with pytest.raises(ValueError, match=r"got -0.5 at \(\d, 2\) of the batch"):
            call(np.array([[0, 1, 4], [2, 3, -0.5]]))  # -0.5 truncates to 0, a valid row
    # whole numbers in any dtype still index as before, and the model is unchanged by the refusals
    for x in (good, good.astype(np.float32), good.astype(np.float64), good.astype(np.uint8), good.tolist()):
        np.testing.assert_array_equal(m.predict(x, verbose=0), ref)


def test_embedding_fraction_check_allocates_nothing_per_call():
    from nncore.layers import Embedding, Flatten
    from steady_state import growth_between_epochs

    m = Sequential([Input((10,)), Embedding(50, 8), Flatten(), Dense(1)])
    m.compile("sgd", "mse")
    x = np.random.default_rng(0).integers(0, 50, size=(64, 10))
    assert growth_between_epochs(m, x, np.zeros((64, 1)), batch_size=16, verbose=0) < 3000


# ---- class_weight: keys that are not classes were ignored (Keras), bad values failed late ----------
def _softmax_model(lazy=False):
    nncore.set_seed(3)
    m = Sequential(([] if lazy else [Input((4,))]) + [Dense(3, activation="softmax")])
    m.compile("sgd", "sparse_categorical_crossentropy")
    return m


@pytest.mark.parametrize("class_weight, error, match", [
    ({1: 1.0, 2: 2.0, 3: 3.0}, ValueError, r"key 3 is not a class of the model's output, which has 3 classes \(0 to 2\)"),
    ({-1: 2.0}, ValueError, "key -1 is not a class"),
    ({"a": 2.0}, TypeError, "keys must be integer class indices, got 'a'"),      # was int()'s message
    ({0.5: 2.0}, TypeError, "keys must be integer class indices, got 0.5"),     # was class 0, silently
    ({True: 2.0}, TypeError, "got True"),
    ({0: float("nan")}, ValueError, r"class_weight\[0\]: expected a finite number, got nan"),  # was a NaN loss
    ({0: "x"}, TypeError, r"class_weight\[0\]: expected a number, got 'x'"),
])
def test_class_weight_keys_and_values_are_checked(class_weight, error, match):
    x = np.random.default_rng(0).normal(size=(12, 4))
    y = np.arange(12) % 3
    for lazy in (False, True):
        m = _softmax_model(lazy)
        before = m.get_weights()
        with pytest.raises(error, match=match):
            m.fit(x, y, class_weight=class_weight, verbose=0)
        for a, b in zip(before, m.get_weights()):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(error, match=match):
        _softmax_model().train_on_batch(x, y, class_weight=class_weight)


def test_class_weight_still_follows_keras_for_classes_of_the_output():
    x = np.random.default_rng(0).normal(size=(12, 4))
    y = np.arange(12) % 3
    m = _softmax_model()
    # a class missing from the dict weighs 1; float keys holding integers and numpy ints are classes
    w = m._class_weights({np.int64(1): 2.0, 2.0: 0.5}, y, 3)
    np.testing.assert_array_equal(w, np.where(y == 1, 2.0, np.where(y == 2, 0.5, 1.0)))
    h = m.fit(x, y, class_weight={0: 1.0, 1: 2.0, 2: 3.0}, verbose=0)
    assert np.isfinite(h.history["loss"][0])
    # one sigmoid unit: the classes are 0 and 1
    b = Sequential([Input((4,)), Dense(1, activation="sigmoid")])
    b.compile("sgd", "binary_crossentropy")
    b.fit(x, y > 0, class_weight={0: 1.0, 1: 3.0}, verbose=0)
    with pytest.raises(ValueError, match=r"key 2 is not a class of the model's output, which has 2 classes"):
        b.fit(x, y > 0, class_weight={2: 3.0}, verbose=0)


# ---- GlobalAveragePooling1D after a mask: Keras averages the valid steps only ----------------------
def _masked_mean_reference(x, m):
    n = np.maximum(m.sum(1, keepdims=True), 1)
    return (x * m[:, :, None]).sum(1) / n


def _tokens():
    x = np.random.default_rng(0).integers(1, 6, size=(6, 5))
    x[1, 3:] = 0                                        # padded at the end, at the start, all padding
    x[2, :2] = 0
    x[3] = 0
    return x


def test_global_average_pooling_1d_averages_the_valid_steps_only(float64):
    from nncore.layers import Embedding, GlobalAveragePooling1D, Masking

    nncore.set_seed(4)
    # the classic text classifier: padding (row 0 of the table, not zeros) was averaged in
    m = Sequential([Input((5,)), Embedding(6, 3, mask_zero=True, name="e"), GlobalAveragePooling1D(), Dense(2)])
    x = _tokens()
    e = m.get_layer("e").embeddings[x]
    pooled = _masked_mean_reference(e, x != 0)
    k, b = m.layers[-1].get_weights()
    np.testing.assert_allclose(m.predict(x, verbose=0), pooled @ k + b, rtol=1e-12, atol=1e-15)
    assert np.all(m.predict(x, verbose=0)[3] == b)      # no valid step: the pooled vector is 0 (Keras: NaN)
    # Masking in front (it zeroes the masked steps: only the divisor was wrong)
    xs = np.random.default_rng(1).normal(size=(4, 5, 3))
    xs[0, 2:] = 0
    xs[1, :] = 0
    mm = Sequential([Input((5, 3)), Masking(0.0), GlobalAveragePooling1D(keepdims=True)])
    want = _masked_mean_reference(xs, np.any(xs != 0, axis=2))
    np.testing.assert_allclose(mm.predict(xs, verbose=0), want[:, None, :], rtol=1e-12, atol=1e-15)
    # without a mask, the plain mean as before
    plain = Sequential([Input((5, 3)), GlobalAveragePooling1D()])
    np.testing.assert_allclose(plain.predict(xs, verbose=0), xs.mean(1), rtol=1e-12)


def test_global_average_pooling_1d_masked_gradient_finite_differences(float64):
    from nncore.layers import Embedding, GlobalAveragePooling1D

    nncore.set_seed(5)
    m = Sequential([Input((5,)), Embedding(6, 3, mask_zero=True, name="e"), GlobalAveragePooling1D(), Dense(2)])
    m.compile("sgd", "mse")
    x, y = _tokens(), np.random.default_rng(2).normal(size=(6, 2))
    E = m.get_layer("e").embeddings

    def loss():
        return float(np.mean((m.predict(x, verbose=0) - y) ** 2))

    w0 = [w.copy() for w in m.get_weights()]
    m.compile("sgd", "mse")
    m.optimizer.learning_rate = 1.0
    m.train_on_batch(x, y)                              # one SGD step, lr 1: w0 - w1 is the gradient
    grad = w0[0] - m.get_weights()[0]
    m.set_weights(w0)
    num = np.zeros_like(E)
    for idx in np.ndindex(E.shape):
        old = E[idx]
        E[idx] = old + 1e-6
        fp = loss()
        E[idx] = old - 1e-6
        fm = loss()
        E[idx] = old
        num[idx] = (fp - fm) / 2e-6
    np.testing.assert_allclose(grad, num, rtol=1e-6, atol=1e-9)
    assert np.all(grad[0] == 0)                         # the padding row gets no gradient


def test_global_average_pooling_1d_masked_matches_keras():
    import os

    os.environ.setdefault("KERAS_BACKEND", "torch")      # as keras_parity_common (before keras is imported)
    keras = pytest.importorskip("keras")
    from nncore.layers import Embedding, GlobalAveragePooling1D

    nncore.set_seed(6)
    m = Sequential([Input((5,)), Embedding(6, 3, mask_zero=True), GlobalAveragePooling1D(), Dense(2)])
    km = keras.Sequential([keras.Input((5,)), keras.layers.Embedding(6, 3, mask_zero=True),
                           keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(2)])
    km.set_weights(m.get_weights())
    x = _tokens()
    valid = x.any(axis=1)                               # Keras gives NaN for the all-padding row
    np.testing.assert_allclose(m.predict(x, verbose=0)[valid], np.asarray(km.predict(x, verbose=0))[valid],
                               rtol=1e-5, atol=1e-7)


def test_global_average_pooling_1d_masked_steady_state():   # its ONNX form: tests/test_onnx.py
    from nncore.layers import Embedding, GlobalAveragePooling1D
    from steady_state import growth_between_epochs

    m = Sequential([Input((5,)), Embedding(6, 3, mask_zero=True), GlobalAveragePooling1D(), Dense(2)])
    m.compile("sgd", "mse")
    x = np.tile(_tokens(), (8, 1)).astype(np.float32)
    y = np.zeros((48, 2), np.float32)
    # the masked mean's buffers are made once per batch size (16 and the last batch's) (test_masking: 3000)
    assert growth_between_epochs(m, x, y, batch_size=16, verbose=0) < 3000


# ---- a layer called on arrays: complex/strings were cast (complex with a warning only), an empty
# batch reached kernels that take at least one row (Conv2D: ZeroDivisionError; BatchNormalization:
# a kernel's work_size message)
def _layers_and_shapes():
    from nncore import layers as L
    return [(L.Dense(3), (2, 4)), (L.Conv2D(2, 3), (1, 5, 5, 1)), (L.Conv1D(2, 3), (1, 5, 1)),
            (L.LSTM(2), (1, 3, 2)), (L.BatchNormalization(), (2, 3)), (L.LayerNormalization(), (2, 3)),
            (L.Embedding(5, 2), (1, 3)), (L.Flatten(), (2, 2, 2)), (L.MaxPooling2D(2), (1, 4, 4, 1))]


@pytest.mark.parametrize("k", range(9))
def test_layer_called_on_arrays_refuses_non_real_dtypes_and_empty_batches(k):
    layer, shape = _layers_and_shapes()[k]
    name = type(layer).__name__
    for dt in (np.complex128, object, str):
        with pytest.raises(TypeError, match=rf"\({name}\): expected an array of real numbers .*got dtype"):
            layer(np.ones(shape).astype(dt))
    with pytest.raises(ValueError, match=rf"\({name}\): expected a non-empty batch, got shape \(0,"):
        layer(np.ones((0,) + shape[1:]))
    with pytest.raises(TypeError, match="expected an array of real numbers"):
        nncore.layers.Add()([np.ones((2, 3)), np.ones((2, 3), complex)])
    out = layer(np.ones(shape, np.int64))              # ints and bools still work
    assert out.dtype == np.float32 and out.shape[0] == shape[0]


# ---- weights too large for memory: mmap's OSError (ENOMEM) is a MemoryError saying how much ----------
def test_weights_larger_than_memory_are_a_memory_error():
    import mmap

    from nncore import _params

    # 16 PB: beyond any address space, so refused whatever the overcommit setting
    with pytest.raises(MemoryError, match=r"cannot allocate the model's weights: 4000000000000000 values of "
                                          r"float32 \(14901161.2 GiB\)" if hasattr(mmap, "MADV_HUGEPAGE") else ""):
        _params.weight_buffer(4 * 10 ** 15, np.float32)      # (np.zeros' own MemoryError off Linux)


def test_get_layer_index_and_sequential_layers_argument():
    m = Sequential([Input((2,)), Dense(3), Dense(1)], name="s")
    assert m.get_layer(index=-1) is m.layers[-1] and m.get_layer(index=0) is m.layers[0]
    with pytest.raises(ValueError, match=r"s.get_layer: index 2 is out of range: the model has 2 layers"):
        m.get_layer(index=2)                            # was IndexError: list index out of range
    with pytest.raises(TypeError, match="index must be an int, got 1.0"):
        m.get_layer(index=1.0)
    with pytest.raises(TypeError, match=r"layers must be a list of layers, got Dense \(write Sequential\(\[layer\]\)\)"):
        Sequential(Dense(2))                            # was "'Dense' object is not iterable"
    assert len(Sequential((Dense(2), Dense(1))).layers) == 2
    assert len(Sequential(layer for layer in [Dense(2), Dense(1)]).layers) == 2   # any iterable, as Keras


def test_ragged_lists_bad_shapes_and_conflicting_input_dim_name_the_argument():
    m = Sequential([Input((2,)), Dense(1)])
    m.compile("sgd", "mse")
    ragged = [[1.0, 2.0], [3.0]]
    with pytest.raises(ValueError, match="x: expected a rectangular array of numbers"):
        m.predict(ragged, verbose=0)                    # was NumPy's message, naming nothing
    with pytest.raises(ValueError, match="y: expected a rectangular array of numbers"):
        m.fit(np.ones((2, 2)), ragged, verbose=0)
    with pytest.raises(ValueError, match="sample_weight: expected a rectangular array"):
        m.fit(np.ones((2, 2)), np.ones((2, 1)), sample_weight=[[1.0], [1.0, 2.0]], verbose=0)
    with pytest.raises(TypeError, match=r"Input shape: expected a tuple of ints, got \('a',\)"):
        Input(("a",))                                   # was int()'s "invalid literal"
    with pytest.raises(TypeError, match=r"expected a tuple of ints, got \(2.5,\)"):
        Input((2.5,))                                   # was truncated to 2
    with pytest.raises(ValueError, match=r"Dense: input_dim=4 and input_shape=\(5,\) disagree"):
        Dense(2, input_dim=4, input_shape=(5,))
    assert Sequential([Dense(2, input_dim=4, input_shape=(4,))]).input_shape == (None, 4)


@pytest.mark.parametrize("thresholds", [2.0, [-0.1, 0.5], [0.5, 1.01]])
def test_precision_recall_thresholds_outside_0_1_are_refused(thresholds):
    from nncore.metrics import Precision, Recall

    for cls in (Precision, Recall):     # Keras: "Threshold values must be in [0, 1]" (was: every prediction one side)
        with pytest.raises(ValueError, match=rf"{cls.__name__}: thresholds must lie in \[0, 1\]"):
            cls(thresholds=thresholds)
        ok = cls(thresholds=[0.0, 1.0])                  # the ends are thresholds still
        ok.update_state(np.array([[1.0], [0.0]]), np.array([[0.7], [0.2]]))
        assert np.asarray(ok.result()).shape == (2,)


@pytest.mark.parametrize("labels, shown", [(np.full(6, 2 ** 64 - 1, dtype=np.uint64), "18446744073709551615"),
                                            (np.full(6, 1e20), r"1e\+20"), (np.full(6, -3.0), "-3.0")])
def test_sparse_labels_out_of_range_are_reported_as_given(labels, shown):
    # the range was checked after the cast to int64: uint64's largest showed as -1, 1e20 as "non-integer"
    m = Sequential([Input((2,)), Dense(3, activation="softmax")])
    m.compile("sgd", "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match=rf"y: label {shown} out of range; expected integers in \[0, 2\]"):
        m.fit(np.ones((6, 2)), labels, verbose=0)


@pytest.mark.parametrize("loss, act, units", [("SparseCategoricalCrossentropy", "softmax", 3),
                                              ("CategoricalCrossentropy", "softmax", 3),
                                              ("BinaryCrossentropy", "sigmoid", 1)])
def test_from_logits_on_a_probability_output_warns(loss, act, units):
    import warnings

    from nncore import losses

    x = np.random.default_rng(0).normal(size=(6, 4))
    y = {"SparseCategoricalCrossentropy": np.arange(6) % 3, "CategoricalCrossentropy": np.eye(3)[np.arange(6) % 3],
         "BinaryCrossentropy": (np.arange(6) % 2)[:, None]}[loss]
    m = Sequential([Input((4,)), Dense(units, activation=act, name="out")])
    m.compile("sgd", getattr(losses, loss)(from_logits=True))
    with pytest.warns(UserWarning, match=rf"output 'out' has from_logits=True, but the output comes from a {act}") as w:
        m.fit(x, y, verbose=0)
    assert w[0].filename == __file__                    # it points at the user's line, not at nncore's
    with warnings.catch_warnings():
        warnings.simplefilter("error")                  # once per compile, and never for logits
        m.fit(x, y, verbose=0)
        lin = Sequential([Input((4,)), Dense(units)])
        lin.compile("sgd", getattr(losses, loss)(from_logits=True))
        lin.fit(x, y, verbose=0)
        prob = Sequential([Input((4,)), Dense(units, activation=act)])
        prob.compile("sgd", getattr(losses, loss)())
        prob.fit(x, y, verbose=0)


# ---- initializers: a Keras-style callable f(shape, dtype=None) failed with "unexpected keyword 'rng'",
# Constant(NaN) / Orthogonal(gain=NaN) gave NaN weights silently, a callable's complex values were cast
def test_keras_style_callable_initializers_and_checked_values():
    from nncore import initializers
    from nncore.layers import LSTM

    def keras_style(shape, dtype=None):
        return np.full(shape, 0.25)

    m = Sequential([Input((2,)), Dense(3, kernel_initializer=keras_style, bias_initializer=lambda s, dtype=None: np.ones(s))])
    np.testing.assert_array_equal(m.get_weights()[0], 0.25)
    np.testing.assert_array_equal(m.get_weights()[1], 1.0)
    seen = {}

    def nncore_style(shape, dtype=None, rng=None):     # the documented form still gets the generator
        seen["rng"] = rng
        return rng.standard_normal(shape)

    Sequential([Input((2,)), Dense(3, kernel_initializer=nncore_style)])
    assert isinstance(seen["rng"], np.random.Generator)
    lstm = Sequential([Input((4, 2)), LSTM(3, bias_initializer=keras_style)]).layers[0]
    np.testing.assert_array_equal(lstm.get_weights()[2], np.r_[np.full(3, 0.25), np.ones(3), np.full(6, 0.25)])
    with pytest.raises(ValueError, match=r"layer 'd': 'kernel': the initializer returned shape \(7,\), expected \(2, 3\)"):
        Sequential([Input((2,)), Dense(3, name="d", kernel_initializer=lambda s, dtype=None: np.ones(7))])
    with pytest.raises(ValueError, match="'kernel': the initializer returned NaN or infinity"):
        Sequential([Input((2,)), Dense(3, kernel_initializer=lambda s, dtype=None: np.full(s, np.nan))])
    with pytest.raises(TypeError, match="the initializer returned dtype complex128, expected real numbers"):
        Sequential([Input((2,)), Dense(3, kernel_initializer=lambda s, dtype=None: np.ones(s) * 1j)])
    with pytest.raises(ValueError, match="Constant: value must be finite, got nan"):
        initializers.Constant(float("nan"))
    with pytest.raises(TypeError, match="Constant: value must be a number, got 'a'"):
        initializers.Constant("a")
    with pytest.raises(ValueError, match="Orthogonal: gain must be finite"):
        initializers.Orthogonal(gain=float("inf"))


@pytest.mark.parametrize("seed, error", [("a", TypeError), (1.5, TypeError), (True, TypeError), (-1, ValueError)])
def test_layer_and_initializer_seeds_are_checked(seed, error):
    from nncore.layers import GaussianNoise, LSTM, Dropout

    # were int()'s "invalid literal", NumPy's "expected non-negative integer", or 1.5 truncated to 1
    for make in (lambda: Dropout(0.5, seed=seed), lambda: GaussianNoise(0.1, seed=seed),
                 lambda: LSTM(2, dropout=0.1, seed=seed)):
        with pytest.raises(error, match=r"seed(: expected None or a non-negative int| must be an int)"):
            make()
    Dropout(0.5, seed=np.int64(3))


# ---- learning-rate schedules: inf parameters gave inf/NaN rates; an overflow mid-fit was OverflowError
@pytest.mark.parametrize("make", [
    lambda S: S.ExponentialDecay(float("inf"), 10, 0.9), lambda S: S.ExponentialDecay(0.1, 10, float("inf")),
    lambda S: S.InverseTimeDecay(0.1, 10, float("inf")), lambda S: S.PolynomialDecay(0.1, 10, float("inf")),
    lambda S: S.PolynomialDecay(0.1, 10, power=-1.0), lambda S: S.CosineDecay(float("inf"), 10),
    lambda S: S.CosineDecayRestarts(0.1, 10, m_mul=float("inf"))])
def test_schedules_refuse_infinite_or_negative_power_parameters(make):
    from nncore.optimizers import schedules

    with pytest.raises(ValueError, match="expected a finite number"):
        make(schedules)


def test_a_schedule_that_overflows_or_goes_nonfinite_mid_fit_is_a_clear_error():
    from nncore.optimizers import SGD, schedules

    x, y = np.ones((4, 2)), np.zeros((4, 1))
    m = Sequential([Input((2,)), Dense(1)])
    opt = SGD(learning_rate=schedules.ExponentialDecay(1e-3, 1, 2.5))   # grows: 2.5 ** step overflows
    m.compile(opt, "mse")
    opt.iterations = 10 ** 6
    with pytest.raises(ValueError, match=r"SGD: the learning-rate schedule .* failed at step 1000000"):
        m.fit(x, y, verbose=0)                           # was OverflowError: Numerical result out of range

    class Bad(schedules.LearningRateSchedule):
        def __call__(self, step):
            return float("nan") if step >= 2 else 0.01

        def get_config(self):
            return {}

    m.compile(SGD(learning_rate=Bad()), "mse")
    with pytest.raises(ValueError, match=r"gave nan at step 2; expected a finite rate >= 0"):
        m.fit(x, y, batch_size=1, verbose=0)


def test_reduce_lr_on_plateau_checks_monitor_patience_and_cooldown():
    from nncore.callbacks import ReduceLROnPlateau

    with pytest.raises(TypeError, match="ReduceLROnPlateau: monitor must be a str, got int"):
        ReduceLROnPlateau(monitor=0)                     # was AttributeError: no attribute 'startswith'
    for arg in ("patience", "cooldown"):
        for v in (float("inf"), -1, 2.5):                # inf was OverflowError, 2.5 truncated
            with pytest.raises(ValueError, match=rf"ReduceLROnPlateau: {arg} must be a non-negative int"):
                ReduceLROnPlateau(**{arg: v})


def test_global_average_pooling_1d_mask_argument_is_checked():
    from nncore.layers import GlobalAveragePooling1D

    g = GlobalAveragePooling1D(name="g")
    x = np.arange(24, dtype=np.float64).reshape(2, 3, 4)
    np.testing.assert_allclose(g(x, mask=[[1, 0, 1], [0, 1, 1]]),
                               [(x[0, 0] + x[0, 2]) / 2, (x[1, 1] + x[1, 2]) / 2])   # a list, as Keras
    with pytest.raises(TypeError, match="layer 'g' \\(GlobalAveragePooling1D\\): the mask must hold bool or numbers"):
        g(x, mask=np.array([["a"] * 3] * 2))
    with pytest.raises(ValueError, match=r"expected a mask of shape \(2, 3\), got \(2, 2\)"):
        g(x, mask=np.ones((2, 2), bool))
