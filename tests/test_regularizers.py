"""Regularizers: Keras penalties, finite-difference gradients, in-place accumulation without
steady-state allocation, lookup and bad input."""
import json
import tracemalloc

import numpy as np
import pytest

from nncore import regularizers as R


def _w(shape=(7, 5), dtype=np.float64, seed=0):
    w = np.random.default_rng(seed).normal(size=shape)
    w[np.abs(w) < 0.05] = 0.1  # keep away from the kink of |w| for finite differences
    return w.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_penalties_match_definitions(dtype):
    w = _w(dtype=dtype)
    wd = w.astype(np.float64)
    assert R.L1(0.3)(w) == pytest.approx(0.3 * np.abs(wd).sum(), rel=1e-12)
    assert R.L2(0.01)(w) == pytest.approx(0.01 * (wd ** 2).sum(), rel=1e-12)  # no 1/2
    assert R.L1L2(0.2, 0.4)(w) == pytest.approx(0.2 * np.abs(wd).sum() + 0.4 * (wd ** 2).sum(),
                                                rel=1e-12)
    assert R.L1L2()(w) == 0.0
    assert isinstance(R.L2()(w), float)
    # a non-contiguous view gives the same penalty
    big = np.zeros((7, 10), dtype=dtype)
    big[:, ::2] = w
    view = big[:, ::2]
    assert R.L1L2(0.2, 0.4)(view) == pytest.approx(R.L1L2(0.2, 0.4)(w), rel=1e-12)


def test_defaults_are_keras():
    assert R.L1().l1 == 0.01 and R.L2().l2 == 0.01
    assert R.L1L2().get_config() == {"l1": 0.0, "l2": 0.0}


@pytest.mark.parametrize("reg", [R.L1(0.3), R.L2(0.7), R.L1L2(0.2, 0.5)])
def test_gradient_finite_differences(reg):
    w = _w(shape=(4, 3, 2))
    dw = np.zeros_like(w)
    reg.add_gradient(w, dw)
    h = 1e-6
    num = np.empty_like(w)
    for i in np.ndindex(w.shape):
        wp, wm = w.copy(), w.copy()
        wp[i] += h
        wm[i] -= h
        num[i] = (reg(wp) - reg(wm)) / (2 * h)
    np.testing.assert_allclose(dw, num, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_add_gradient_accumulates_in_place(dtype):
    w = _w(dtype=dtype)
    w[0, 0] = 0.0
    g = np.random.default_rng(5).normal(size=w.shape).astype(dtype)
    dw = g.copy()
    out = R.L1L2(0.1, 0.25).add_gradient(w, dw)
    assert out is dw
    expected = g.astype(np.float64) + 0.1 * np.sign(w) + 2 * 0.25 * w.astype(np.float64)
    np.testing.assert_allclose(dw, expected, rtol=1e-6 if dtype == np.float32 else 1e-14)
    assert dw[0, 0] == g[0, 0]  # sign(0) = 0: no L1 pull at exactly zero


def test_no_allocation_in_steady_state():
    reg = R.L1L2(0.1, 0.1)
    w = _w(shape=(300, 200))
    dw = np.zeros_like(w)
    reg.add_gradient(w, dw)
    reg(w)
    tracemalloc.start()
    try:
        for _ in range(5):
            reg.add_gradient(w, dw)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < w.nbytes // 10  # no array-sized temporaries (w is 480 kB)


def test_bad_input():
    with pytest.raises(ValueError, match="l1 must be a non-negative"):
        R.L1(-0.1)
    with pytest.raises(ValueError, match="l2 must be a non-negative"):
        R.L2(float("nan"))
    with pytest.raises(ValueError, match="l2"):
        R.L1L2(l2="big")
    w = _w()
    with pytest.raises(ValueError, match=r"shape \(7, 5\)"):
        R.L2().add_gradient(w, np.zeros((5, 7)))
    with pytest.raises(ValueError, match="float64"):
        R.L2().add_gradient(w, np.zeros((7, 5), dtype=np.float32))
    with pytest.raises(TypeError, match="float32 or float64"):
        R.L2().add_gradient(np.ones((2, 2), dtype=np.int64), np.zeros((2, 2)))
    ro = np.zeros_like(w)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        R.L2().add_gradient(w, ro)


def test_lookup_and_config():
    assert type(R.get("l2")) is R.L2 and R.get("l2").l2 == 0.01
    assert type(R.get("l1_l2")) is R.L1L2 and type(R.get("L1")) is R.L1
    reg = R.L2(0.5)
    assert R.get(reg) is reg and R.get(None) is None
    for reg in (R.L1(0.2), R.L2(0.3), R.L1L2(0.1, 0.4)):
        again = R.get(json.loads(json.dumps(R.serialize(reg))))
        assert type(again) is type(reg) and again.get_config() == reg.get_config()
    with pytest.raises(ValueError, match="Did you mean 'l2'"):
        R.get("l3")
    with pytest.raises(ValueError, match="Unknown regularizer"):
        R.deserialize({"class_name": "Evil", "config": {}})
