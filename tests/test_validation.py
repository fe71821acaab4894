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
