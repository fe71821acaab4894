"""Learning-rate schedules against the Keras 3 formulas (reference_optim.py),
at their boundaries: staircase steps, piecewise boundaries (<=), polynomial
cycles, warmup, restarts."""
import json
import math

import numpy as np
import pytest

from nncore.optimizers import schedules as S
import reference_optim as R

STEPS = list(range(0, 60)) + [99, 100, 101, 1000, 12345]


@pytest.mark.parametrize("staircase", [False, True])
def test_exponential_decay(staircase):
    s = S.ExponentialDecay(0.1, decay_steps=7, decay_rate=0.5, staircase=staircase)
    for k in STEPS:
        assert s(k) == pytest.approx(R.exponential_decay(k, 0.1, 7, 0.5, staircase), rel=1e-14)
    if staircase:
        # constant within a stair, drops exactly at multiples of decay_steps
        assert s(0) == s(6) == 0.1 and s(7) == s(13) == 0.05 and s(14) == 0.025
    else:
        assert s(7) == pytest.approx(0.05, rel=1e-15) and 0.05 < s(6) < 0.1


@pytest.mark.parametrize("staircase", [False, True])
def test_inverse_time_decay(staircase):
    s = S.InverseTimeDecay(0.2, decay_steps=5, decay_rate=0.5, staircase=staircase)
    for k in STEPS:
        assert s(k) == pytest.approx(R.inverse_time_decay(k, 0.2, 5, 0.5, staircase), rel=1e-14)
    assert s(10) == pytest.approx(0.1, rel=1e-15)
    if staircase:
        assert s(9) == pytest.approx(0.2 / 1.5, rel=1e-15)


def test_piecewise_constant_boundaries_belong_to_the_piece_before():
    s = S.PiecewiseConstantDecay([10, 20], [1.0, 0.5, 0.1])
    assert [s(k) for k in (0, 10, 11, 20, 21, 1000)] == [1.0, 1.0, 0.5, 0.5, 0.1, 0.1]
    for k in STEPS:
        assert s(k) == R.piecewise_constant(k, [10, 20], [1.0, 0.5, 0.1])
    assert s(10.5) == 0.5


@pytest.mark.parametrize("cycle", [False, True])
@pytest.mark.parametrize("power", [1.0, 0.5, 2.0])
def test_polynomial_decay(cycle, power):
    s = S.PolynomialDecay(0.1, decay_steps=10, end_learning_rate=0.01, power=power, cycle=cycle)
    for k in STEPS:
        assert s(k) == pytest.approx(R.polynomial_decay(k, 0.1, 10, 0.01, power, cycle), rel=1e-13)
    assert s(0) == pytest.approx(0.1, rel=1e-15)
    assert s(10) == pytest.approx(0.01, rel=1e-15)
    if cycle:
        # the end value is reached at each multiple; the next step starts a longer cycle
        assert s(20) == pytest.approx(0.01, rel=1e-15)
        assert s(11) == pytest.approx(0.01 + 0.09 * (1 - 11 / 20) ** power, rel=1e-14)
    else:
        assert s(11) == s(1000) == pytest.approx(0.01, rel=1e-15)


def test_cosine_decay():
    s = S.CosineDecay(0.1, decay_steps=20, alpha=0.1)
    for k in STEPS:
        assert s(k) == pytest.approx(R.cosine_decay(k, 0.1, 20, 0.1), rel=1e-14)
    assert s(0) == 0.1
    assert s(10) == pytest.approx(0.1 * (0.9 * 0.5 + 0.1), rel=1e-15)
    assert s(20) == s(500) == pytest.approx(0.01, rel=1e-14)


def test_cosine_decay_warmup():
    s = S.CosineDecay(0.0, decay_steps=20, alpha=0.0, warmup_target=0.2, warmup_steps=5)
    for k in STEPS:
        assert s(k) == pytest.approx(R.cosine_decay(k, 0.0, 20, 0.0, 0.2, 5), rel=1e-14, abs=1e-18)
    assert [s(k) for k in range(6)] == pytest.approx([0.0, 0.04, 0.08, 0.12, 0.16, 0.2], rel=1e-14)
    assert s(15) == pytest.approx(0.1, rel=1e-14)   # halfway down the cosine
    assert s(25) == pytest.approx(0.0, abs=1e-17) and s(1000) == s(25)


@pytest.mark.parametrize("t_mul,m_mul,alpha", [(2.0, 1.0, 0.0), (1.0, 0.5, 0.1), (2.0, 0.5, 0.05), (1.5, 0.8, 0.0)])
def test_cosine_decay_restarts(t_mul, m_mul, alpha):
    s = S.CosineDecayRestarts(0.1, first_decay_steps=8, t_mul=t_mul, m_mul=m_mul, alpha=alpha)
    for k in range(0, 200):
        assert s(k) == pytest.approx(R.cosine_decay_restarts(k, 0.1, 8, t_mul, m_mul, alpha), rel=1e-12, abs=1e-15)
    # each restart step starts its period at m_mul^i
    start, length = 0.0, 8.0
    for i in range(4):
        if start == int(start):
            assert s(start) == pytest.approx(0.1 * ((1 - alpha) * m_mul ** i + alpha), rel=1e-12)
        start += length
        length *= t_mul


def test_schedules_roundtrip_and_errors():
    for sched in [S.ExponentialDecay(0.1, 3, 0.9, True), S.InverseTimeDecay(0.1, 3, 0.9),
                  S.PiecewiseConstantDecay([1, 2], [0.3, 0.2, 0.1]), S.PolynomialDecay(0.1, 5, cycle=True),
                  S.CosineDecay(0.1, 5, warmup_target=0.3, warmup_steps=2), S.CosineDecayRestarts(0.1, 4)]:
        again = S.deserialize(json.loads(json.dumps(S.serialize(sched))))
        assert type(again) is type(sched) and again.get_config() == sched.get_config()
        assert [again(k) for k in range(12)] == [sched(k) for k in range(12)]
    with pytest.raises(ValueError, match="decay_steps"):
        S.ExponentialDecay(0.1, 0, 0.9)
    with pytest.raises(ValueError, match="values"):
        S.PiecewiseConstantDecay([1, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="boundaries"):
        S.PiecewiseConstantDecay([2, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="warmup_steps"):
        S.CosineDecay(0.1, 10, warmup_target=0.2)
    with pytest.raises(ValueError, match="t_mul"):
        S.CosineDecayRestarts(0.1, 10, t_mul=0.0)
    with pytest.raises(TypeError, match="initial_learning_rate"):
        S.CosineDecay("0.1", 10)
    with pytest.raises(ValueError, match="unknown learning-rate schedule"):
        S.deserialize({"class_name": "Nope", "config": {}})
    with pytest.raises(TypeError, match="step"):
        S.CosineDecay(0.1, 10)("3")
    assert math.isclose(S.ExponentialDecay(0.1, 2, 0.5)(np.int64(2)), 0.05)
