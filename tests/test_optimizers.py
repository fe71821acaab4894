"""nncore.optimizers against the float64 oracles in reference_optim.py, known
single steps, the flat path, threads, state, configs, errors, and PyTorch
where the rules coincide."""
import contextlib
import json
import math

import numpy as np
import pytest

import nncore.optimizers as O
from nncore._kernels import optim as _k
from nncore._kernels import runtime as _rt
from nncore.optimizers import schedules
from reference_optim import Reference

# (class name, config): every rule and every option of each rule
RULES = [
    ("SGD", dict(learning_rate=0.05)),
    ("SGD", dict(learning_rate=0.05, momentum=0.9)),
    ("SGD", dict(learning_rate=0.05, momentum=0.8, nesterov=True)),
    ("Adagrad", dict(learning_rate=0.05)),
    ("Adagrad", dict(learning_rate=0.05, initial_accumulator_value=0.0, epsilon=1e-3)),
    ("RMSprop", dict(learning_rate=0.01)),
    ("RMSprop", dict(learning_rate=0.01, momentum=0.5)),
    ("RMSprop", dict(learning_rate=0.01, centered=True)),
    ("RMSprop", dict(learning_rate=0.01, rho=0.8, momentum=0.7, centered=True)),
    ("Adam", dict(learning_rate=0.02)),
    ("Adam", dict(learning_rate=0.02, beta_1=0.5, beta_2=0.9, amsgrad=True)),
    ("AdamW", dict(learning_rate=0.02, weight_decay=0.1)),
    ("Adadelta", dict(learning_rate=0.5)),
    ("Adamax", dict(learning_rate=0.02)),
    ("Nadam", dict(learning_rate=0.02)),
    ("Ftrl", dict(learning_rate=0.1)),
    ("Ftrl", dict(learning_rate=0.1, learning_rate_power=-0.7, l1_regularization_strength=0.01,
                  l2_regularization_strength=0.02, l2_shrinkage_regularization_strength=0.03, beta=0.5)),
    ("Ftrl", dict(learning_rate=0.1, learning_rate_power=0.0, initial_accumulator_value=0.5,
                  l1_regularization_strength=0.001)),
]
OPTIONS = {
    "plain": {},
    "weight_decay": dict(weight_decay=0.05),
    "clipnorm": dict(clipnorm=1.0),
    "clipvalue": dict(clipvalue=0.5),
    "global_clipnorm": dict(global_clipnorm=1.5),
    "schedule": dict(learning_rate=schedules.ExponentialDecay(0.03, decay_steps=10, decay_rate=0.8)),
}
SHAPES = [(7, 5), (5,), (1,), (13,)]


def rule_id(r):
    return r[0] + "-" + "-".join(f"{k}" for k in r[1] if k != "learning_rate")


def gradients(rng, shapes, steps):
    """Random gradients whose scale changes from step to step (norms on both sides of the clips)."""
    out = []
    for _ in range(steps):
        scale = rng.choice([0.05, 0.3, 1.0, 3.0])
        out.append([rng.normal(size=s) * scale for s in shapes])
    return out


def make(name, config, option):
    cfg = dict(config)
    cfg.update(option)
    return getattr(O, name)(**cfg), Reference(name, **cfg)


def assert_close(actual, desired, rtol, what):
    # relative to the array's scale: elements crossing zero do not blow the tolerance up
    scale = max(np.max(np.abs(desired)), 1e-30)
    err = np.max(np.abs(actual.astype(np.float64) - desired)) / scale
    assert err <= rtol, f"{what}: max relative error {err:.3g} > {rtol:g}"


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("option", list(OPTIONS))
@pytest.mark.parametrize("rule", RULES, ids=rule_id)
def test_matches_reference(rule, option, dtype, rtol):
    name, config = rule
    rng = np.random.default_rng(hash((name, option)) % 2 ** 32)
    opt, ref = make(name, config, OPTIONS[option])
    ws = [rng.normal(size=s).astype(dtype) for s in SHAPES]
    ws_ref = [w.astype(np.float64) for w in ws]
    for gs in gradients(rng, SHAPES, 100):
        gs = [g.astype(dtype) for g in gs]
        opt.apply_gradients(zip(gs, ws))
        ref.step(ws_ref, [g.astype(np.float64) for g in gs])
    assert opt.iterations == ref.iterations == 100
    state = opt.get_state()
    assert all(w.dtype == dtype for w in ws)
    # relative to the scale of all variables together (one of them may sit near 0)
    assert_close(np.concatenate([w.ravel() for w in ws]), np.concatenate([w.ravel() for w in ws_ref]), rtol,
                 "variables")
    for nm in ref.slots[0]:
        assert_close(np.concatenate([state[f"{i}/{nm}"].ravel() for i in range(len(ws))]),
                     np.concatenate([s[nm].ravel() for s in ref.slots]), rtol, f"slot {nm}")
    assert len(state) == 1 + sum(len(s) for s in ref.slots) + (name == "Nadam")
    if name == "Nadam":
        assert state["u_product"] == pytest.approx(ref.u_product, rel=1e-14)


def test_adam_known_step():
    # first step moves each weight by lr * sign(g), up to eps
    w = np.array([1.0, 2.0, 3.0, 4.0])
    O.Adam(learning_rate=0.5).apply_gradients([(np.array([1.0, 6.0, 7.0, 2.0]), w)])
    np.testing.assert_allclose(w, [0.5, 1.5, 2.5, 3.5], rtol=0, atol=1e-5)


@pytest.mark.parametrize("flat", [False, True])
def test_clipnorm_known_step(flat):
    # SGD(lr=1) moves w by minus the clipped gradient: [100, 100] clipped to norm 1
    w = np.zeros(2)
    opt = O.SGD(learning_rate=1.0, clipnorm=1.0)
    g = np.array([100.0, 100.0])
    if flat:
        opt.build_flat(w, [(0, 2)])
        opt.step_flat(w, g)
    else:
        opt.apply_gradients([(g, w)])
    np.testing.assert_allclose(-w, [math.sqrt(2) / 2, math.sqrt(2) / 2], rtol=1e-15)
    np.testing.assert_array_equal(g, [100.0, 100.0])  # the gradient is never written


@pytest.mark.parametrize("clip", [dict(clipnorm=1.0), dict(global_clipnorm=1.0)])
@pytest.mark.parametrize("name", ["SGD", "Adam", "RMSprop", "Adagrad"])
def test_zero_gradient_through_clipping(name, clip):
    w = np.array([1.0, -2.0, 3.0], dtype=np.float32)
    opt = getattr(O, name)(**clip)
    opt.apply_gradients([(np.zeros(3, np.float32), w)])
    assert np.all(np.isfinite(w))
    np.testing.assert_array_equal(w, [1.0, -2.0, 3.0])
    for v in opt.get_state().values():
        assert np.all(np.isfinite(v))


def two_threads():
    """Allow a 2-thread OpenMP team for the block, whatever limit an earlier test left on the
    process-wide libgomp (torch.set_num_threads(1) sets it too: torch shares it)."""
    try:
        import threadpoolctl
    except ImportError:  # pragma: no cover
        return contextlib.nullcontext()
    return threadpoolctl.threadpool_limits(limits=2, user_api="openmp")


def flat_setup(dtype, sizes, rng):
    n = sum(sizes)
    bounds = np.cumsum([0] + sizes)
    segs = list(zip(bounds[:-1], bounds[1:]))
    return n, segs


# sizes crossing the kernel's 8192-element chunks, ones, primes
FLAT_SIZES = [1, 17, 1000, 8193, 3, 7919]


@pytest.mark.parametrize("option", list(OPTIONS))
@pytest.mark.parametrize("rule", RULES, ids=rule_id)
def test_step_flat_equals_apply_gradients(rule, option):
    name, config = rule
    rng = np.random.default_rng(7)
    dtype = np.float32 if option != "plain" else np.float64
    n, segs = flat_setup(dtype, FLAT_SIZES, rng)
    flat = rng.normal(size=n).astype(dtype)
    parts = [flat[a:b].copy() for a, b in segs]
    a, _ = make(name, config, OPTIONS[option])
    b, _ = make(name, config, OPTIONS[option])
    b.build_flat(flat, segs)
    for _ in range(4):
        gflat = (rng.normal(size=n) * rng.choice([0.01, 10.0])).astype(dtype)
        a.apply_gradients([(gflat[s:e], p) for (s, e), p in zip(segs, parts)])
        b.step_flat(flat, gflat)
    np.testing.assert_array_equal(flat, np.concatenate(parts))
    sa, sb = a.get_state(), b.get_state()
    assert sa.keys() == sb.keys()
    for k in sa:
        np.testing.assert_array_equal(sa[k], sb[k], err_msg=k)


@pytest.mark.parametrize("level", sorted({0, 1, 2} & set(range(_rt.simd_level() + 1))))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,config", [("Adam", dict(amsgrad=True, clipnorm=0.5)),
                                         ("RMSprop", dict(centered=True, momentum=0.9, weight_decay=0.1)),
                                         ("Ftrl", dict(learning_rate=0.1, l1_regularization_strength=0.01))])
def test_threads_and_simd_levels_bit_identical(name, config, dtype, level):
    """1 thread equals 2 threads bit for bit, and every SIMD level equals the generic one."""
    rng = np.random.default_rng(3)
    sizes = [300000, 13, 30011]
    n, segs = flat_setup(dtype, sizes, rng)
    w0 = rng.normal(size=n).astype(dtype)
    grads = [rng.normal(size=n).astype(dtype) for _ in range(3)]
    results = []
    with two_threads():
        if _rt.team_size(2, 0.5 * n) < 2:   # the work units the step asks for (csrc/optim.c)
            pytest.skip("no 2-thread team here (no OpenMP or one CPU)")
        try:
            for lvl, nt in [(0, 1), (level, 1), (level, 2)]:
                _rt.set_simd_level(lvl)
                w = w0.copy()
                opt = getattr(O, name)(n_threads=nt, **config)
                opt.build_flat(w, segs)
                for g in grads:
                    opt.step_flat(w, g)
                results.append((w, opt.get_state()))
        finally:
            _rt.set_simd_level(_rt.simd_level())
    for w, st in results[1:]:
        np.testing.assert_array_equal(w, results[0][0])
        for k in st:
            np.testing.assert_array_equal(st[k], results[0][1][k], err_msg=k)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_seg_sumsq_independent_of_position_and_threads(dtype):
    rng = np.random.default_rng(0)
    x = rng.normal(size=600001).astype(dtype)
    seg = np.array([0, 5, 70000, 600001], dtype=np.int64)
    with two_threads():
        out1 = _k.seg_sumsq(x, seg, np.empty(3), 1)
        out2 = _k.seg_sumsq(x, seg, np.empty(3), 2)   # the last segment is large enough for a team
        alone = _k.seg_sumsq(x[70000:].copy(), np.array([0, 530001], dtype=np.int64), np.empty(1), 2)
    np.testing.assert_array_equal(out1, out2)
    assert alone[0] == out1[2]
    np.testing.assert_allclose(out1, [np.sum(x[a:b].astype(np.float64) ** 2) for a, b in zip(seg[:-1], seg[1:])],
                               rtol=1e-12)


@pytest.mark.parametrize("flat", [False, True])
@pytest.mark.parametrize("rule", [r for r in RULES if r[0] in ("Nadam", "Adam", "RMSprop", "Ftrl", "SGD")],
                         ids=rule_id)
def test_state_restore_continues_identically(rule, flat):
    name, config = rule
    rng = np.random.default_rng(11)
    sizes = [6, 11]
    n, segs = flat_setup(np.float64, sizes, rng)
    grads = [rng.normal(size=n) for _ in range(20)]
    sched = schedules.CosineDecay(0.05, decay_steps=15, warmup_target=0.1, warmup_steps=5)

    def run(opt, w, gs):
        for g in gs:
            if flat:
                opt.step_flat(w, g)
            else:
                opt.apply_gradients([(g[a:b], w[a:b]) for a, b in segs])

    def new(w):
        opt = getattr(O, name)(**dict(config, learning_rate=sched, clipnorm=1.0))
        if flat:
            opt.build_flat(w, segs)
        return opt

    w = rng.normal(size=n)
    opt = new(w)
    run(opt, w, grads[:10])
    state = opt.get_state()
    cfg = json.loads(json.dumps(O.serialize(opt)))
    w_saved = w.copy()
    run(opt, w, grads[10:])

    w2 = w_saved.copy()
    opt2 = O.deserialize(cfg)
    opt2.set_state(state)  # before any slot exists: loaded on first use
    if flat:
        opt2.build_flat(w2, segs)
    run(opt2, w2, grads[10:])
    np.testing.assert_array_equal(w2, w)
    assert opt2.iterations == opt.iterations == 20
    s1, s2 = opt.get_state(), opt2.get_state()
    for k in s1:
        np.testing.assert_array_equal(s1[k], s2[k], err_msg=k)


def test_state_moves_between_flat_and_per_variable():
    rng = np.random.default_rng(5)
    flat = rng.normal(size=9)
    segs = [(0, 4), (4, 9)]
    a = O.Adam(learning_rate=0.1)
    a.build_flat(flat, segs)
    a.step_flat(flat, rng.normal(size=9))
    parts = [flat[:4].copy(), flat[4:].copy()]
    b = O.Adam(learning_rate=0.1)
    b.set_state(a.get_state())
    g = rng.normal(size=9)
    a.step_flat(flat, g)
    b.apply_gradients([(g[:4], parts[0]), (g[4:], parts[1])])
    np.testing.assert_array_equal(flat, np.concatenate(parts))


def test_set_state_on_flat_must_match_the_segments():
    flat = np.zeros(5)
    opt = O.SGD(momentum=0.5)
    opt.build_flat(flat, [(0, 2), (2, 5)])
    opt.step_flat(flat, np.ones(5))
    st = opt.get_state()
    other = O.SGD(momentum=0.5)
    other.build_flat(np.zeros(5), [(0, 5)])
    with pytest.raises(ValueError, match="does not match the 1 segments"):
        other.set_state(st)
    assert other.iterations == 0


def test_set_state_after_build_and_errors():
    w = np.ones(3)
    opt = O.Adam()
    opt.apply_gradients([(np.ones(3), w)])
    st = opt.get_state()
    opt.apply_gradients([(np.ones(3), w)])
    opt.set_state(st)
    assert opt.iterations == 1
    np.testing.assert_array_equal(opt.get_state()["0/m"], st["0/m"])
    with pytest.raises(ValueError, match="iterations"):
        opt.set_state({"0/m": np.zeros(3)})
    with pytest.raises(ValueError, match="slot"):
        opt.set_state({"iterations": 1, "0/momentum": np.zeros(3)})
    with pytest.raises(ValueError, match="expected 3 values"):
        opt.set_state({"iterations": 1, "0/m": np.zeros(4)})
    with pytest.raises(ValueError, match="u_product"):
        O.Nadam().set_state({"iterations": 0})


def test_learning_rate_settable_mid_run():
    rng = np.random.default_rng(2)
    w = rng.normal(size=5)
    wr = w.copy()
    opt, ref = O.SGD(0.1, momentum=0.9), Reference("SGD", learning_rate=0.1, momentum=0.9)
    for step in range(30):
        if step == 10:
            opt.learning_rate = 0.01
            ref.hp["learning_rate"] = 0.01
        if step == 20:
            sched = schedules.InverseTimeDecay(0.2, 3, 0.5, staircase=True)
            opt.learning_rate = sched
            ref.hp["learning_rate"] = sched
        g = rng.normal(size=5)
        opt.apply_gradients([(g, w)])
        ref.step([wr], [g])
    np.testing.assert_allclose(w, wr, rtol=1e-13)
    assert isinstance(opt.learning_rate, schedules.InverseTimeDecay)


def test_schedule_starts_at_zero():
    # the first step uses schedule(0) = 1.0, the second schedule(1) = 0.5
    sched = schedules.PiecewiseConstantDecay([0], [1.0, 0.5])
    w = np.zeros(1)
    opt = O.SGD(learning_rate=sched)
    opt.apply_gradients([(np.ones(1), w)])
    assert w[0] == -1.0
    opt.apply_gradients([(np.ones(1), w)])
    assert w[0] == -1.5


@pytest.mark.parametrize("name", ["sgd", "SGD", "adagrad", "rmsprop", "RMSprop", "adam", "Adam", "adamw", "adadelta",
                                  "adamax", "nadam", "ftrl"])
def test_get_by_name_has_keras_defaults(name):
    opt = O.get(name)
    assert type(opt).__name__.lower() == name.lower()
    defaults = {"sgd": 0.01}.get(name.lower(), 0.001)
    assert opt.learning_rate == defaults
    assert O.get(opt) is opt


@pytest.mark.parametrize("rule", RULES, ids=rule_id)
def test_config_roundtrip(rule):
    name, config = rule
    opt = getattr(O, name)(**dict(config, clipvalue=2.0,
                                  learning_rate=schedules.PolynomialDecay(0.1, 10, cycle=True)))
    cfg = json.loads(json.dumps(O.serialize(opt)))
    again = O.get(cfg)
    assert type(again) is type(opt)
    assert again.get_config() == opt.get_config()
    assert again.learning_rate(15) == opt.learning_rate(15)


def test_get_errors():
    with pytest.raises(ValueError, match=r"unknown optimizer 'adamm'\. Did you mean 'adam'"):
        O.get("adamm")
    with pytest.raises(TypeError):
        O.get(3)
    with pytest.raises(ValueError, match="unknown optimizer"):
        O.get({"class_name": "Nope", "config": {}})


@pytest.mark.parametrize("cls,kwargs,arg", [
    (O.SGD, dict(learning_rate=-0.1), "learning_rate"),
    (O.SGD, dict(learning_rate=float("nan")), "learning_rate"),
    (O.SGD, dict(momentum=1.5), "momentum"),
    (O.SGD, dict(momentum=-0.1), "momentum"),
    (O.Adam, dict(beta_1=1.0), "beta_1"),
    (O.Adam, dict(beta_2=-0.1), "beta_2"),
    (O.Adam, dict(epsilon=-1e-7), "epsilon"),
    (O.Nadam, dict(beta_1=1.2), "beta_1"),
    (O.Adamax, dict(beta_2=1.0), "beta_2"),
    (O.RMSprop, dict(rho=1.1), "rho"),
    (O.RMSprop, dict(momentum=2.0), "momentum"),
    (O.Adadelta, dict(rho=-0.5), "rho"),
    (O.Adagrad, dict(initial_accumulator_value=-1.0), "initial_accumulator_value"),
    (O.Ftrl, dict(learning_rate_power=0.5), "learning_rate_power"),
    (O.Ftrl, dict(l1_regularization_strength=-1.0), "l1_regularization_strength"),
    (O.Ftrl, dict(beta=-1.0), "beta"),
    (O.Adam, dict(weight_decay=-0.1), "weight_decay"),
    (O.Adam, dict(clipnorm=0.0), "clipnorm"),
    (O.Adam, dict(clipvalue=-1.0), "clipvalue"),
    (O.Adam, dict(clipnorm=1.0, global_clipnorm=1.0), "clipnorm and global_clipnorm"),
    (O.Adam, dict(clipnorm=1.0, clipvalue=1.0), "clipnorm and clipvalue"),
    (O.AdamW, dict(weight_decay=None), "weight_decay"),
])
def test_invalid_hyperparameters(cls, kwargs, arg):
    with pytest.raises(ValueError, match=arg):
        cls(**kwargs)


def test_invalid_types():
    with pytest.raises(TypeError, match="learning_rate"):
        O.Adam(learning_rate="fast")
    with pytest.raises(TypeError, match="nesterov"):
        O.SGD(nesterov="yes")
    with pytest.raises(ValueError, match="learning_rate"):
        O.Adam().learning_rate = -1.0


def test_apply_gradients_errors():
    opt = O.Adam()
    w = np.zeros((3, 2))
    with pytest.raises(ValueError, match=r"gradient shape \(2, 3\) does not match variable shape \(3, 2\)"):
        opt.apply_gradients([(np.zeros((2, 3)), w)])
    with pytest.raises(TypeError, match="float32 or float64"):
        opt.apply_gradients([(np.zeros(3), np.zeros(3, dtype=np.int64))])
    with pytest.raises(TypeError, match="numpy.ndarray"):
        opt.apply_gradients([(np.zeros(3), [0.0, 0.0, 0.0])])
    with pytest.raises(ValueError, match="C-contiguous"):
        opt.apply_gradients([(np.zeros(3), np.zeros(6)[::2])])
    ro = np.zeros(3)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        opt.apply_gradients([(np.zeros(3), ro)])
    with pytest.raises(TypeError, match="pair"):
        opt.apply_gradients([np.zeros(3)])
    with pytest.raises(ValueError, match=r"grads_and_vars\[1\]: this variable already appears"):
        opt.apply_gradients([(np.ones((3, 2)), w), (np.ones((3, 2)), w)])
    assert opt.iterations == 0
    # None gradients are skipped; an all-None list is no step
    assert opt.apply_gradients([(None, w)]) == 0


def test_step_flat_errors():
    opt = O.SGD()
    p = np.zeros(10, np.float32)
    with pytest.raises(ValueError, match="build_flat"):
        opt.step_flat(p, np.zeros(10, np.float32))
    with pytest.raises(ValueError, match="tile"):
        opt.build_flat(p, [(0, 4), (5, 10)])
    with pytest.raises(ValueError, match="len\\(params_flat\\) = 10"):
        opt.build_flat(p, [(0, 4)])
    with pytest.raises(ValueError, match="1-D"):
        opt.build_flat(np.zeros((2, 5)), None)
    opt.build_flat(p, [(0, 4), (4, 10)])
    with pytest.raises(ValueError, match="buffer given to build_flat"):
        opt.step_flat(p.copy(), np.zeros(10, np.float32))
    with pytest.raises(ValueError, match=r"grads_flat: expected an ndarray of shape \(10,\)"):
        opt.step_flat(p, np.zeros(9, np.float32))
    with pytest.raises(TypeError, match="grads_flat: expected dtype float32 like params_flat, got float64"):
        opt.step_flat(p, np.zeros(10, np.float64))
    with pytest.raises(ValueError, match="grads_flat: expected a C-contiguous"):
        opt.step_flat(p, np.zeros(20, np.float32)[::2])
    assert opt.iterations == 0


def test_kernel_wrapper_checks():
    w, g = np.zeros(4), np.zeros(4)
    adam = _k.KINDS["adam"]
    with pytest.raises(ValueError, match="needs a list of 2 arrays"):
        _k.step(adam, 0, (0.1, 0.1, 0.1, 1e-7), w, g, [np.zeros(4)])
    with pytest.raises(ValueError, match=r"slots\[1\]: expected 4 elements"):
        _k.step(adam, 0, (0.1, 0.1, 0.1, 1e-7), w, g, [np.zeros(4), np.zeros(3)])
    with pytest.raises(TypeError, match=r"slots\[0\]: expected dtype float64"):
        _k.step(adam, 0, (0.1, 0.1, 0.1, 1e-7), w, g, [np.zeros(4, np.float32), np.zeros(4)])
    with pytest.raises(ValueError, match="kind"):
        _k.step(99, 0, (), w, g, [])
    with pytest.raises(ValueError, match="seg_start"):
        _k.step(_k.KINDS["sgd"], 0, (0.1, 0.0), w, g, [], seg_start=np.array([0, 5], np.int64),
                seg_scale=np.ones(1))
    with pytest.raises(ValueError, match="non-decreasing"):
        _k.seg_sumsq(w, np.array([0, 3, 2, 4], np.int64), np.empty(3))
    with pytest.raises(ValueError, match="clipvalue"):
        _k.step(_k.KINDS["sgd"], 0, (0.1, 0.0), w, g, [], clipvalue=-1.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("segmented", [False, True])
def test_kernel_step_says_whether_what_it_wrote_is_finite(dtype, n_threads, segmented):
    # the step reads each chunk back as it writes it: True iff every w is finite afterwards, wherever the
    # bad value lies (first chunk, a later one, the tail past the last full chunk), for any thread count
    n = 3 * 8192 + 77
    rng = np.random.default_rng(5)
    adam = _k.KINDS["adam"]
    seg = dict(seg_start=np.array([0, 100, 9000, n], np.int64), seg_scale=np.ones(3)) if segmented else {}
    for bad, value in [(None, 0), (0, np.nan), (8192 * 2 + 5, np.inf), (n - 1, -np.inf), (9000, np.nan)]:
        w, g = rng.standard_normal(n).astype(dtype), rng.standard_normal(n).astype(dtype)
        if bad is not None:
            g[bad] = value
        ok = _k.step(adam, 0, (0.01, 0.1, 0.1, 1e-7), w, g, [np.zeros(n, dtype), np.zeros(n, dtype)],
                     n_threads=n_threads, **seg)
        assert ok is bool(np.isfinite(w).all()) and ok is (bad is None)
    w = np.full(10, np.nan, dtype)                  # a non-finite w the step leaves as it is: still reported
    assert _k.step(_k.KINDS["sgd"], 0, (0.1, 0.0), w, np.zeros(10, dtype), []) is False
    assert _k.step(_k.KINDS["sgd"], 0, (0.1, 0.0), np.zeros(0, dtype), np.zeros(0, dtype), []) is True


# ---- PyTorch, where its rule and Keras's coincide ----
try:
    import torch
except ImportError:  # pragma: no cover
    torch = None


@pytest.mark.skipif(torch is None, reason="torch not installed")
@pytest.mark.parametrize("ours,theirs", [
    (lambda: O.SGD(0.05, momentum=0.9), lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9)),
    (lambda: O.SGD(0.05), lambda p: torch.optim.SGD(p, lr=0.05)),
    # eps = 0: inside or outside the root is the same
    (lambda: O.Adagrad(0.1, initial_accumulator_value=0.0, epsilon=0.0),
     lambda p: torch.optim.Adagrad(p, lr=0.1, eps=0.0)),
    (lambda: O.Adam(0.01, epsilon=0.0), lambda p: torch.optim.Adam(p, lr=0.01, eps=0.0)),
    (lambda: O.Adam(0.01, epsilon=0.0, amsgrad=True), lambda p: torch.optim.Adam(p, lr=0.01, eps=0.0, amsgrad=True)),
    (lambda: O.AdamW(0.01, weight_decay=0.1, epsilon=0.0),
     lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.1, eps=0.0)),
    (lambda: O.RMSprop(0.01, rho=0.9, epsilon=0.0), lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.9, eps=0.0)),
    (lambda: O.Adadelta(1.0, rho=0.9, epsilon=1e-6), lambda p: torch.optim.Adadelta(p, lr=1.0, rho=0.9, eps=1e-6)),
    (lambda: O.Adamax(0.01, epsilon=0.0), lambda p: torch.optim.Adamax(p, lr=0.01, eps=0.0)),
])
def test_matches_torch_where_rules_coincide(ours, theirs):
    rng = np.random.default_rng(9)
    w = rng.normal(size=(4, 3))
    p = torch.nn.Parameter(torch.tensor(w.copy()))
    opt_t = theirs([p])
    opt = ours()
    for _ in range(100):
        g = rng.normal(size=w.shape)
        p.grad = torch.tensor(g)
        opt_t.step()
        opt.apply_gradients([(g, w)])
    np.testing.assert_allclose(w, p.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_empty_variables_and_segments():
    opt = O.Adam(clipnorm=1.0)
    w = np.zeros(0)
    opt.apply_gradients([(np.zeros(0), w), (np.ones(2), np.zeros(2))])
    flat = np.zeros(3)
    b = O.Adam(clipnorm=1.0)
    b.build_flat(flat, [(0, 0), (0, 3), (3, 3)])
    b.step_flat(flat, np.ones(3))
    assert np.all(np.isfinite(flat)) and np.all(flat < 0)


# ---- convergence: softmax regression on iris, every optimizer through step_flat ----
def _iris():
    """Iris from scikit-learn's data file, read without importing scikit-learn (seconds)."""
    import importlib.util
    import os

    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("scikit-learn (the iris data file) is not installed")
    path = os.path.join(list(spec.submodule_search_locations)[0], "datasets", "data", "iris.csv")
    data = np.loadtxt(path, delimiter=",", skiprows=1)
    return data[:, :4], data[:, 4].astype(np.int64)


@pytest.mark.parametrize("name,config", [
    ("SGD", dict(learning_rate=0.5)), ("SGD", dict(learning_rate=0.05, momentum=0.9, nesterov=True)),
    ("Adagrad", dict(learning_rate=0.3)), ("RMSprop", dict(learning_rate=0.01, centered=True)),
    ("Adam", dict(learning_rate=0.02)), ("AdamW", dict(learning_rate=0.02)), ("Adadelta", dict(learning_rate=1.0, epsilon=1e-4)),
    ("Adamax", dict(learning_rate=0.05)), ("Nadam", dict(learning_rate=0.02)), ("Ftrl", dict(learning_rate=0.5)),
])
def test_iris_softmax_regression_converges(name, config):
    x, y = _iris()
    x = (x - x.mean(0)) / x.std(0)
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(x))
    tr, te = idx[:100], idx[100:]
    k = 3
    flat = np.zeros(4 * k + k, np.float32)          # [W (4 x 3) | b (3)]
    W, b = flat[:4 * k].reshape(4, k), flat[4 * k:]
    grads = np.zeros_like(flat)
    dW, db = grads[:4 * k].reshape(4, k), grads[4 * k:]
    opt = getattr(O, name)(**config)
    opt.build_flat(flat, [(0, 4 * k), (4 * k, 5 * k)])
    onehot = np.eye(k)[y]
    for epoch in range(40):
        for batch in np.array_split(rng.permutation(tr), 10):
            z = x[batch] @ W + b
            p = np.exp(z - z.max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            delta = (p - onehot[batch]) / len(batch)     # d(mean cross-entropy)/dz
            dW[...] = x[batch].T @ delta
            db[...] = delta.sum(0)
            opt.step_flat(flat, grads)
    acc = np.mean(np.argmax(x[te] @ W + b, 1) == y[te])
    assert acc > 0.9, f"{name}: test accuracy {acc:.3f}"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_step_flat_random_segmentations(seed):
    """Any tiling of the buffer gives the per-variable result, for per-variable clipnorm too."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 40000))
    cuts = np.sort(rng.choice(np.arange(1, n), size=min(n - 1, int(rng.integers(0, 12))), replace=False)) \
        if n > 1 else np.array([], dtype=np.int64)
    bounds = [0] + [int(c) for c in cuts] + [n]
    segs = list(zip(bounds[:-1], bounds[1:]))
    flat = rng.normal(size=n).astype(np.float32)
    parts = [flat[a:b].copy() for a, b in segs]
    a, b = O.Nadam(clipnorm=0.7, weight_decay=0.01), O.Nadam(clipnorm=0.7, weight_decay=0.01)
    b.build_flat(flat, segs)
    for _ in range(3):
        g = rng.normal(size=n).astype(np.float32)
        a.apply_gradients([(g[s:e], p) for (s, e), p in zip(segs, parts)])
        b.step_flat(flat, g)
    np.testing.assert_array_equal(flat, np.concatenate(parts))
