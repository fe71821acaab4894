"""nncore.validation: conversion once, clear errors naming the argument, expected and actual value."""
import numpy as np
import pytest

from nncore import validation as v
from nncore._kernels import gemm as _g


# ---- conversion ------------------------------------------------------------------------------
def _layouts(a):
    """The same values as C, Fortran, strided, read-only, byte-swapped and memory-mapped arrays."""
    yield "c", a
    yield "fortran", np.asfortranarray(a)
    wide = np.zeros((a.shape[0], a.shape[1] * 2), a.dtype)
    wide[:, ::2] = a
    yield "strided", wide[:, ::2]
    ro = a.copy()
    ro.flags.writeable = False
    yield "readonly", ro
    yield "byteswapped", a.astype(a.dtype.newbyteorder())
    yield "list", a.tolist()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_layouts_convert_to_the_same_contiguous_values(dtype, tmp_path):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((7, 5))
    ref = a.astype(dtype)
    mm = np.lib.format.open_memmap(tmp_path / "m.npy", mode="w+", dtype=np.float64, shape=a.shape)
    mm[:] = a
    mm.flush()
    ro_mm = np.load(tmp_path / "m.npy", mmap_mode="r")
    cases = list(_layouts(a)) + [("memmap", ro_mm)]
    for label, x in cases:
        out = v.as_float_array(x, "x", dtype=dtype, ndim=2)
        assert type(out) is np.ndarray, label
        assert out.flags.c_contiguous and out.dtype == dtype, label
        np.testing.assert_array_equal(out, ref, err_msg=label)
        # the kernels accept what comes out and give the same result as for the contiguous copy
        c1 = _g.gemm(out, out.T.copy(), np.empty((7, 7), dtype))
        c2 = _g.gemm(ref, ref.T.copy(), np.empty((7, 7), dtype))
        np.testing.assert_array_equal(c1, c2, err_msg=label)


def test_no_copy_when_already_right():
    a = np.ones((3, 4), np.float32)
    assert v.as_float_array(a, "x", dtype="float32") is a


def test_writable_copies_readonly_only():
    a = np.ones((3, 4), np.float32)
    a.flags.writeable = False
    out = v.as_float_array(a, "x", dtype="float32", writable=True)
    assert out.flags.writeable and out is not a
    b = np.ones((3, 4), np.float32)
    assert v.as_float_array(b, "x", dtype="float32", writable=True) is b


def test_ints_bools_lists_and_default_floatx():
    out = v.as_float_array([[1, 2], [3, 4]], "x")
    assert out.dtype == np.float32 and out.tolist() == [[1, 2], [3, 4]]
    out = v.as_float_array(np.array([True, False]), "x", dtype="float64")
    assert out.dtype == np.float64 and out.tolist() == [1.0, 0.0]
    out = v.as_float_array(np.arange(6, dtype=np.int16).reshape(2, 3), "x", dtype="float64")
    assert out.tolist() == [[0, 1, 2], [3, 4, 5]]


@pytest.mark.parametrize(
    "bad, exc, words",
    [
        (np.array([["a", "b"]]), TypeError, ["x", "numeric", "<U1"]),
        (np.array([[1, None]], dtype=object), TypeError, ["x", "object"]),
        (np.array([1 + 2j]), TypeError, ["x", "complex"]),
        ("hello", TypeError, ["x", "str"]),
        (None, TypeError, ["x", "None"]),
        ({"a": 1}, TypeError, ["x", "dict"]),
        ([[1, 2], [3]], ValueError, ["x", "rectangular"]),
        (np.zeros((0, 3)), ValueError, ["x", "non-empty", "(0, 3)"]),
        (np.array([[1.0, np.nan]]), ValueError, ["x", "finite", "nan", "(0, 1)"]),
        (np.array([1.0, 2.0, np.inf]), ValueError, ["x", "finite", "inf", "index 2"]),
        (np.array([1e300]), ValueError, ["x", "1e+300", "overflows float32"]),
    ],
)
def test_bad_arrays_raise_naming_the_argument(bad, exc, words):
    with pytest.raises(exc) as info:
        v.as_float_array(bad, "x", dtype="float32")
    msg = str(info.value)
    for w in words:
        assert w in msg, (w, msg)


def test_ndim_and_layer_prefix():
    with pytest.raises(ValueError, match=r"Dense_1: x: expected a 2-D array, got 1-D with shape \(5,\).*reshape"):
        v.as_float_array(np.ones(5), "x", ndim=2, layer="Dense_1")
    with pytest.raises(ValueError, match="expected a 2 or 3-D array"):
        v.as_float_array(np.ones((1, 1, 1, 1)), "x", ndim=(2, 3))
    assert v.as_float_array(np.zeros((0, 3)), "x", allow_empty=True).shape == (0, 3)
    out = v.as_float_array(np.array([np.nan]), "x", finite=False)
    assert np.isnan(out[0])


def test_resolve_dtype():
    assert v.resolve_dtype("float64") == np.float64
    with pytest.raises(TypeError, match="float32' or 'float64', got int32"):
        v.resolve_dtype("int32")


# ---- labels, shapes, lengths ------------------------------------------------------------------
def test_labels():
    out = v.as_label_array([0.0, 2.0, 1.0], n_classes=3)
    assert out.dtype == np.int64 and out.tolist() == [0, 2, 1]
    assert v.as_label_array(np.array([[1], [0]]), n_classes=2).tolist() == [1, 0]
    with pytest.raises(ValueError, match=r"y: expected class labels in \[0, 3\), got 3 at index 1"):
        v.as_label_array([0, 3, 1], n_classes=3)
    with pytest.raises(ValueError, match=r"got -1 at index 0"):
        v.as_label_array([-1, 0], n_classes=3)
    with pytest.raises(ValueError, match=r"expected integer class labels, got 0.5 at index 1"):
        v.as_label_array([0.0, 0.5], n_classes=3)
    with pytest.raises(TypeError, match="integer class labels, got dtype <U1"):
        v.as_label_array(np.array(["a", "b"]))
    with pytest.raises(ValueError, match=r"shape \(n_samples,\).*got shape \(2, 3\)"):
        v.as_label_array(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="finite"):
        v.as_label_array([0.0, np.nan])


def test_n_features_length_target():
    x = np.zeros((4, 3))
    v.check_n_features(x, 3)
    with pytest.raises(ValueError, match=r"dense: x: expected 5 features .*got 3 \(shape \(4, 3\)\)"):
        v.check_n_features(x, 5, layer="dense")
    with pytest.raises(ValueError, match=r"expected input shape \(n_samples, 2, 2\), got \(4, 3\)"):
        v.check_n_features(x, (2, 2))
    with pytest.raises(ValueError, match="x has 4, y has 3"):
        v.check_consistent_length(x, np.zeros(3), None, names=["x", "y", "sample_weight"])
    v.check_consistent_length(x, np.zeros(4), None, names=["x", "y", "sample_weight"])
    with pytest.raises(ValueError, match=r"'mse' expects targets of shape \(4, 1\).*got \(4,\).*reshape"):
        v.check_target_shape(np.zeros(4), (4, 1), "mse")
    with pytest.raises(ValueError, match="sparse_categorical_crossentropy"):
        v.check_target_shape(np.zeros(4), (4, 3), "categorical_crossentropy")


# ---- scalars ---------------------------------------------------------------------------------
def test_check_int():
    assert v.check_int(np.int64(3), "batch_size", minimum=1) == 3
    with pytest.raises(ValueError, match="batch_size: expected an int >= 1, got 0"):
        v.check_int(0, "batch_size", minimum=1)
    with pytest.raises(ValueError, match="got -4"):
        v.check_int(-4, "batch_size", minimum=1)
    with pytest.raises(TypeError, match="batch_size: expected an int, got float 2.0"):
        v.check_int(2.0, "batch_size", minimum=1)
    with pytest.raises(TypeError, match="expected an int, got bool"):
        v.check_int(True, "epochs")
    with pytest.raises(TypeError, match="got str"):
        v.check_int("3", "epochs")
    assert v.check_int(None, "steps", allow_none=True) is None


@pytest.mark.parametrize(
    "value, kwargs, exc, pattern",
    [
        (-0.1, dict(name="learning_rate", low=0.0, owner="Adam"), ValueError,
         r"Adam: learning_rate: expected a value in \[0.0, inf\), got -0.1"),
        (float("nan"), dict(name="learning_rate", low=0.0), ValueError, "finite number, got nan"),
        ("0.1", dict(name="learning_rate", low=0.0), TypeError, "expected a number, got str"),
        (0.0, dict(name="epsilon", low=0.0, low_closed=False), ValueError, r"\(0.0, inf\), got 0.0"),
    ],
)
def test_check_number(value, kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        v.check_number(value, **kwargs)


@pytest.mark.parametrize("bad", [1.0, 1.5, -0.01])
def test_check_rate_rejects_outside_unit_interval(bad):
    with pytest.raises(ValueError, match=rf"Dropout: rate: expected a value in \[0.0, 1.0\), got {bad}"):
        v.check_rate(bad, "rate", owner="Dropout")


@pytest.mark.parametrize("ok", [0.0, 0.5, 0.999])
def test_check_rate_accepts(ok):
    assert v.check_rate(ok, "beta_1") == ok


# ---- set_weights and names -------------------------------------------------------------------
def test_weights_list():
    shapes = [(3, 2), (2,)]
    out = v.check_weights_list([np.ones((3, 2)), [0, 1]], shapes, "dense", dtype="float32")
    assert [a.dtype for a in out] == [np.float32, np.float32]
    with pytest.raises(ValueError, match=r"dense.set_weights: expected a list of 2 arrays .*got 1"):
        v.check_weights_list([np.ones((3, 2))], shapes, "dense")
    with pytest.raises(ValueError, match=r"weights\[1\] expected shape \(2,\), got \(3,\)"):
        v.check_weights_list([np.ones((3, 2)), np.ones(3)], shapes, "dense")
    with pytest.raises(TypeError, match="expected a list of arrays, got array"):
        v.check_weights_list(np.ones((3, 2)), shapes, "dense")
    with pytest.raises(ValueError, match="finite"):
        v.check_weights_list([np.full((3, 2), np.nan), np.ones(2)], shapes, "dense")


def test_names_suggest_the_closest():
    acts = ["relu", "sigmoid", "softmax", "tanh", "leaky_relu"]
    assert v.check_name("activation", "relu", acts) == "relu"
    with pytest.raises(ValueError, match=r"unknown activation 'rleu'\. Did you mean 'relu'"):
        v.check_name("activation", "rleu", acts)
    with pytest.raises(ValueError, match="'softmax'"):
        v.check_name("activation", "Softmx", acts)
    with pytest.raises(ValueError) as info:
        v.check_name("loss", "zzzz", ["mse", "mae"])
    assert "Did you mean" not in str(info.value)
    assert "Known loss names: mae, mse" in str(info.value)
    with pytest.raises(TypeError, match="optimizer: expected a name"):
        v.check_name("optimizer", 3, ["adam"])


# ---- the issue-6 table: every place a user hands data in ---------------------------------------------
import nncore  # noqa: E402
from nncore import ops  # noqa: E402
from nncore.layers import Dense, Dropout, Input  # noqa: E402

_rng = np.random.default_rng(0)
X = _rng.standard_normal((20, 4))
Y = np.eye(3)[_rng.integers(0, 3, 20)]
LABELS = _rng.integers(0, 3, 20)


def _model(loss="categorical_crossentropy", metrics=None):
    nncore.set_seed(0)
    m = nncore.Sequential([Input(shape=(4,)), Dense(5, activation="relu", name="hidden"),
                           Dense(3, activation="softmax", name="out")])
    m.compile(optimizer="adam", loss=loss, metrics=metrics)
    return m


def _sparse():
    return _model("sparse_categorical_crossentropy")


def _with(a, idx, value):
    a = a.astype(float)
    a[idx] = value
    return a


def _fit(m, x, y, **kw):
    return m.fit(x, y, verbose=0, **kw)


# (id, call, exception, words that must all appear: the argument or layer, the expected and the actual value)
SUGGEST = "suggests the closest name: nncore/{} does not use validation.unknown_name yet (reported to the lead)"
TABLE = [
    ("fit: wrong feature count", lambda: _fit(_model(), X[:, :3], Y), ValueError, ["x", "hidden", "4", "(20, 3)"]),
    ("predict: wrong feature count", lambda: _model().predict(np.ones((5, 6)), verbose=0), ValueError,
     ["x", "hidden", "4", "(5, 6)"]),
    ("evaluate: wrong feature count", lambda: _model().evaluate(np.ones((5, 6)), Y[:5], verbose=0), ValueError,
     ["x", "4", "(5, 6)"]),
    ("fit: x/y length mismatch", lambda: _fit(_model(), X, Y[:15]), ValueError, ["y", "20", "15"]),
    ("fit: target shape for the loss", lambda: _fit(_model(), X, Y[:, :2]), ValueError, ["y", "3", "(20, 2)"]),
    ("fit: integer labels with categorical loss", lambda: _fit(_model(), X, LABELS), ValueError,
     ["y", "3", "(20,)"]),
    ("fit: sparse label out of range", lambda: _fit(_sparse(), X, np.where(LABELS == 0, 3, LABELS)), ValueError,
     ["y", "3", "[0, 2]"]),
    ("fit: sparse label negative", lambda: _fit(_sparse(), X, np.where(LABELS == 0, -1, LABELS)), ValueError,
     ["y", "-1"]),
    ("fit: sparse label non-integer", lambda: _fit(_sparse(), X, LABELS + 0.5), ValueError, ["y", "integer"]),
    ("fit: NaN in x", lambda: _fit(_model(), _with(X, (3, 2), np.nan), Y), ValueError, ["x", "NaN"]),
    ("fit: inf in y", lambda: _fit(_model(), X, _with(Y, (4, 1), np.inf)), ValueError, ["y", "infinity"]),
    ("predict: NaN in x", lambda: _model().predict(_with(X, (0, 0), np.nan), verbose=0), ValueError, ["x", "NaN"]),
    ("fit: NaN sample_weight", lambda: _fit(_model(), X, Y, sample_weight=np.full(20, np.nan)), ValueError,
     ["sample_weight", "NaN"]),
    ("fit: empty x", lambda: _fit(_model(), np.zeros((0, 4)), np.zeros((0, 3))), ValueError, ["x", "(0, 4)"]),
    ("predict: empty x", lambda: _model().predict(np.zeros((0, 4)), verbose=0), ValueError, ["x", "(0, 4)"]),
    ("fit: batch_size 0", lambda: _fit(_model(), X, Y, batch_size=0), ValueError, ["batch_size", ">= 1", "0"]),
    ("fit: batch_size -3", lambda: _fit(_model(), X, Y, batch_size=-3), ValueError, ["batch_size", "-3"]),
    ("predict: batch_size -1", lambda: _model().predict(X, batch_size=-1, verbose=0), ValueError,
     ["batch_size", "-1"]),
    ("evaluate: batch_size 0", lambda: _model().evaluate(X, Y, batch_size=0, verbose=0), ValueError,
     ["batch_size", "0"]),
    ("fit: object x", lambda: _fit(_model(), X.astype(object), Y), TypeError, ["x", "object"]),
    ("predict: string x", lambda: _model().predict(np.array([["a", "b", "c", "d"]]), verbose=0), TypeError,
     ["x", "<U1"]),
    ("fit: string y", lambda: _fit(_model(), X, np.array(["a"] * 20)), TypeError, ["y", "<U1"]),
    ("predict: 1-D x", lambda: _model().predict(np.ones(4), verbose=0), ValueError, ["x", "4", "(4,)"]),
    ("set_weights: wrong count", lambda: _model().set_weights([np.ones((4, 5))]), ValueError,
     ["set_weights", "4", "1"]),
    ("set_weights: wrong shape", lambda: _model().set_weights(
        [np.ones((4, 6)), np.ones(5), np.ones((5, 3)), np.ones(3)]), ValueError, ["set_weights", "(4, 6)", "(4, 5)"]),
    ("unknown activation", lambda: Dense(3, activation="rleu"), ValueError, ["rleu", "Did you mean 'relu'"]),
    ("unknown loss", lambda: _model(loss="categorical_crossentropi"), ValueError,
     ["categorical_crossentropi", "Did you mean 'categorical_crossentropy'"]),
    ("unknown optimizer", lambda: _model().compile(optimizer="adma", loss="mse"), ValueError,
     ["adma", "Did you mean", "'adam'"]),
    ("unknown metric", lambda: _model(metrics=["acuracy"]), ValueError, ["acuracy", "Did you mean 'accuracy'"]),
    ("ops: unknown activation", lambda: ops.activation(X, "rleu"), ValueError, ["rleu", "Did you mean 'relu'"]),
    ("optimizer: negative learning rate", lambda: nncore.optimizers.SGD(learning_rate=-0.1), ValueError,
     ["learning_rate", ">= 0", "-0.1"]),
    ("optimizer: NaN learning rate", lambda: nncore.optimizers.Adam(learning_rate=float("nan")), ValueError,
     ["learning_rate", "nan"]),
    ("optimizer: beta_1 = 1", lambda: nncore.optimizers.Adam(beta_1=1.0), ValueError, ["beta_1", "< 1", "1.0"]),
    ("optimizer: beta_2 < 0", lambda: nncore.optimizers.Adam(beta_2=-0.1), ValueError, ["beta_2", ">= 0", "-0.1"]),
    ("optimizer: Nadam beta_1 > 1", lambda: nncore.optimizers.Nadam(beta_1=1.5), ValueError, ["beta_1", "1.5"]),
    ("optimizer: negative epsilon", lambda: nncore.optimizers.Adam(epsilon=-1.0), ValueError, ["epsilon", "-1.0"]),
    ("optimizer: learning rate as str", lambda: nncore.optimizers.SGD(learning_rate="0.1"), TypeError,
     ["learning_rate", "str"]),
    ("Dropout: rate 1", lambda: Dropout(1.0), ValueError, ["Dropout", "[0, 1)", "1.0"]),
    ("Dropout: rate -0.1", lambda: Dropout(-0.1), ValueError, ["Dropout", "[0, 1)", "-0.1"]),
    ("ops: matmul inner dimensions", lambda: ops.matmul(X, X), ValueError, ["matmul", "(20, 4)"]),
    ("ops: object array", lambda: ops.matmul(X.astype(object), X.T), TypeError, ["matmul", "object"]),
    ("fit: sample_weight length", lambda: _fit(_model(), X, Y, sample_weight=np.ones(5)), ValueError,
     ["sample_weight", "(20,)", "(5,)"]),
    ("fit: epochs -1", lambda: _fit(_model(), X, Y, epochs=-1), ValueError, ["epochs", "-1"]),
    ("fit: validation_split 1.5", lambda: _fit(_model(), X, Y, validation_split=1.5), ValueError,
     ["validation_split", "1.5"]),
]


TABLE = [c if hasattr(c, "marks") else pytest.param(*c) for c in TABLE]


@pytest.mark.parametrize("case, call, exc, words", TABLE, ids=[c.values[0] for c in TABLE])
def test_bad_input_table(case, call, exc, words):
    with pytest.raises(exc) as info:
        call()
    msg = str(info.value)
    missing = [w for w in words if w not in msg]
    assert not missing, f"{case}: message {msg!r} lacks {missing}"


def _layouts_of(a, tmp_path, name):
    wide = np.zeros((a.shape[0], 2 * a.shape[1]))
    wide[:, ::2] = a
    ro = a.copy()
    ro.flags.writeable = False
    np.save(tmp_path / f"{name}.npy", a)
    return {
        "fortran": np.asfortranarray(a),
        "strided": wide[:, ::2],
        "readonly": ro,
        "memmap": np.load(tmp_path / f"{name}.npy", mmap_mode="r"),
        "float32": a.astype(np.float32),
        "list": a.tolist(),
    }


def test_awkward_layouts_train_and_predict_like_contiguous(tmp_path):
    x = np.round(X * 4) / 4  # exactly representable in float32, so the float32 copy is the same data
    ref = _model()
    ref.fit(x, Y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    pred = ref.predict(x, verbose=0)
    for label, xl in _layouts_of(x, tmp_path, "x").items():
        m = _model()
        m.fit(xl, Y.tolist() if label == "list" else Y, epochs=2, batch_size=8, shuffle=False, verbose=0)
        for a, b in zip(m.get_weights(), ref.get_weights()):
            np.testing.assert_array_equal(a, b, err_msg=label)
        np.testing.assert_array_equal(m.predict(xl, verbose=0), pred, err_msg=label)


def test_integer_inputs_and_labels_are_converted():
    xi = np.round(X * 3).astype(np.int64)
    m1, m2 = _sparse(), _sparse()
    m1.fit(xi, LABELS, epochs=1, batch_size=8, shuffle=False, verbose=0)
    m2.fit(xi.astype(np.float64), LABELS.astype(np.float64), epochs=1, batch_size=8, shuffle=False, verbose=0)
    for a, b in zip(m1.get_weights(), m2.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert m1.predict(xi.tolist(), verbose=0).dtype == np.dtype(nncore.floatx())
