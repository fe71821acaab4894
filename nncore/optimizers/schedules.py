"""Learning-rate schedules, evaluated at the optimizer's iteration count.

A schedule maps the step (``optimizer.iterations`` before the update, so the
first step uses ``schedule(0)``) to a learning rate, with Keras 3's formulas
and boundary rules. Every schedule is a small object with ``get_config`` and
``from_config``, so an optimizer's configuration stays JSON-able.
"""
import math
import numbers

__all__ = [
    "LearningRateSchedule",
    "ExponentialDecay",
    "InverseTimeDecay",
    "PiecewiseConstantDecay",
    "PolynomialDecay",
    "CosineDecay",
    "CosineDecayRestarts",
    "serialize",
    "deserialize",
]


def _number(name, value, lo=None, lo_open=False, hi=None, hi_open=False):
    """Check that `value` is a real number within the bounds and return it as a float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or (lo is not None and (value < lo or (lo_open and value == lo))) or \
            (hi is not None and (value > hi or (hi_open and value == hi))):
        lo_s = "" if lo is None else ("> " if lo_open else ">= ") + repr(lo)
        hi_s = "" if hi is None else ("< " if hi_open else "<= ") + repr(hi)
        raise ValueError(f"{name}: expected a finite number {' and '.join(filter(None, [lo_s, hi_s]))}, "
                         f"got {value!r}")
    return value


def _step(step):
    if isinstance(step, bool) or not isinstance(step, numbers.Real):
        raise TypeError(f"step: expected a number, got {type(step).__name__}")
    return float(step)


class LearningRateSchedule:
    """Base class of the learning-rate schedules: ``lr = schedule(step)``.

    Subclasses implement ``__call__(step)`` (a float from a non-negative step)
    and ``get_config()``; ``from_config(config)`` rebuilds an equal schedule.
    """

    def __call__(self, step):
        raise NotImplementedError(f"{type(self).__name__} must implement __call__(step)")

    def get_config(self):
        raise NotImplementedError(f"{type(self).__name__} must implement get_config()")

    @classmethod
    def from_config(cls, config):
        """Rebuild a schedule from the dict ``get_config()`` returned."""
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class ExponentialDecay(LearningRateSchedule):
    """Exponential decay: ``lr0 * decay_rate ** (step / decay_steps)``.

    Parameters
    ----------
    initial_learning_rate : float
    decay_steps : int > 0
    decay_rate : float >= 0
    staircase : bool, default=False
        Floor the exponent, so the rate drops in steps every ``decay_steps``.
    name : str, default="ExponentialDecay"

    Notes
    -----
    lr(step) = lr0 * rate^(step / decay_steps), with floor(step / decay_steps)
    when staircase (Keras 3; the same as PyTorch's StepLR with
    step_size = decay_steps, gamma = rate).
    """

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name="ExponentialDecay"):
        self.initial_learning_rate = _number("initial_learning_rate", initial_learning_rate, lo=0)
        self.decay_steps = _number("decay_steps", decay_steps, lo=0, lo_open=True)
        self.decay_rate = _number("decay_rate", decay_rate, lo=0)
        self.staircase = bool(staircase)
        self.name = name

    def __call__(self, step):
        p = _step(step) / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        return self.initial_learning_rate * self.decay_rate ** p

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "staircase": self.staircase, "name": self.name}


class InverseTimeDecay(LearningRateSchedule):
    """Inverse-time decay: ``lr0 / (1 + decay_rate * step / decay_steps)``.

    Parameters
    ----------
    initial_learning_rate : float
    decay_steps : int > 0
    decay_rate : float >= 0
    staircase : bool, default=False
        Floor ``step / decay_steps``.
    name : str, default="InverseTimeDecay"

    Notes
    -----
    lr(step) = lr0 / (1 + rate * p), p = step / decay_steps (floor(p) if staircase).
    """

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name="InverseTimeDecay"):
        self.initial_learning_rate = _number("initial_learning_rate", initial_learning_rate, lo=0)
        self.decay_steps = _number("decay_steps", decay_steps, lo=0, lo_open=True)
        self.decay_rate = _number("decay_rate", decay_rate, lo=0)
        self.staircase = bool(staircase)
        self.name = name

    def __call__(self, step):
        p = _step(step) / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        return self.initial_learning_rate / (1.0 + self.decay_rate * p)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "staircase": self.staircase, "name": self.name}


class PiecewiseConstantDecay(LearningRateSchedule):
    """Constant pieces: ``values[0]`` up to ``boundaries[0]``, then ``values[1]`` ...

    Parameters
    ----------
    boundaries : list of numbers, strictly increasing
    values : list of floats, ``len(boundaries) + 1`` of them
    name : str, default="PiecewiseConstant"

    Notes
    -----
    lr(step) = values[0] if step <= boundaries[0]; values[i] if
    boundaries[i-1] < step <= boundaries[i]; values[-1] if step > boundaries[-1]
    (Keras 3: a boundary step still belongs to the piece before it).
    """

    def __init__(self, boundaries, values, name="PiecewiseConstant"):
        boundaries = list(boundaries)
        values = list(values)
        if len(values) != len(boundaries) + 1:
            raise ValueError(f"values: expected len(boundaries) + 1 = {len(boundaries) + 1} values, "
                             f"got {len(values)}")
        self.boundaries = [_number(f"boundaries[{i}]", b) for i, b in enumerate(boundaries)]
        self.values = [_number(f"values[{i}]", v, lo=0) for i, v in enumerate(values)]
        for i in range(1, len(self.boundaries)):
            if self.boundaries[i] <= self.boundaries[i - 1]:
                raise ValueError(f"boundaries: expected strictly increasing values, got {self.boundaries}")
        self.name = name

    def __call__(self, step):
        step = _step(step)
        for b, v in zip(self.boundaries, self.values):
            if step <= b:
                return v
        return self.values[-1]

    def get_config(self):
        return {"boundaries": list(self.boundaries), "values": list(self.values), "name": self.name}


class PolynomialDecay(LearningRateSchedule):
    """Polynomial decay from ``initial_learning_rate`` to ``end_learning_rate``.

    Parameters
    ----------
    initial_learning_rate : float
    decay_steps : int > 0
    end_learning_rate : float, default=0.0001
    power : float, default=1.0
    cycle : bool, default=False
        Restart the decay every multiple of ``decay_steps`` instead of holding
        ``end_learning_rate``.
    name : str, default="PolynomialDecay"

    Notes
    -----
    lr(step) = (lr0 - end) * (1 - s / D)^power + end, where without cycle
    s = min(step, decay_steps), D = decay_steps; with cycle s = step and
    D = decay_steps * ceil(step / decay_steps) (D = decay_steps at step 0), so
    the end value is reached exactly at each multiple of decay_steps (Keras 3).
    """

    def __init__(self, initial_learning_rate, decay_steps, end_learning_rate=0.0001, power=1.0, cycle=False,
                 name="PolynomialDecay"):
        self.initial_learning_rate = _number("initial_learning_rate", initial_learning_rate, lo=0)
        self.decay_steps = _number("decay_steps", decay_steps, lo=0, lo_open=True)
        self.end_learning_rate = _number("end_learning_rate", end_learning_rate, lo=0)
        self.power = _number("power", power, lo=0)   # a negative power: 0 ** power at decay_steps
        self.cycle = bool(cycle)
        self.name = name

    def __call__(self, step):
        s = _step(step)
        d = self.decay_steps
        if self.cycle:
            d = d * (1.0 if s == 0 else math.ceil(s / self.decay_steps))
        else:
            s = min(s, d)
        p = s / d
        return (self.initial_learning_rate - self.end_learning_rate) * (1.0 - p) ** self.power \
            + self.end_learning_rate

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "end_learning_rate": self.end_learning_rate, "power": self.power, "cycle": self.cycle,
                "name": self.name}


class CosineDecay(LearningRateSchedule):
    """Cosine decay, with an optional linear warmup first.

    Parameters
    ----------
    initial_learning_rate : float
    decay_steps : int > 0
    alpha : float, default=0.0
        The floor, as a fraction of the rate decayed from.
    name : str, default="CosineDecay"
    warmup_target : float or None, default=None
        With a target, the rate rises linearly from ``initial_learning_rate``
        to ``warmup_target`` over ``warmup_steps``, then decays from it.
    warmup_steps : int, default=0

    Notes
    -----
    decay(s, lr_from) = lr_from ((1 - alpha) 0.5 (1 + cos(pi s / decay_steps)) + alpha).
    Without warmup: lr(step) = decay(min(step, decay_steps), lr0). With warmup
    (Keras 3): s = min(step, decay_steps + warmup_steps); lr = lr0 + (target -
    lr0) s / warmup_steps while s < warmup_steps, else decay(s - warmup_steps,
    target). PyTorch's CosineAnnealingLR is the same curve with
    eta_min = alpha lr0 and T_max = decay_steps.
    """

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, name="CosineDecay", warmup_target=None,
                 warmup_steps=0):
        self.initial_learning_rate = _number("initial_learning_rate", initial_learning_rate, lo=0)
        self.decay_steps = _number("decay_steps", decay_steps, lo=0, lo_open=True)
        self.alpha = _number("alpha", alpha, lo=0, hi=1)
        self.name = name
        self.warmup_target = None if warmup_target is None else _number("warmup_target", warmup_target, lo=0)
        self.warmup_steps = _number("warmup_steps", warmup_steps, lo=0)
        if self.warmup_target is not None and self.warmup_steps == 0:
            raise ValueError("warmup_steps: expected > 0 when warmup_target is set, got 0")

    def _decay(self, s, lr_from):
        cosine = 0.5 * (1.0 + math.cos(math.pi * (s / self.decay_steps)))
        return lr_from * ((1.0 - self.alpha) * cosine + self.alpha)

    def __call__(self, step):
        s = _step(step)
        if self.warmup_target is None:
            return self._decay(min(s, self.decay_steps), self.initial_learning_rate)
        s = min(s, self.decay_steps + self.warmup_steps)
        if s < self.warmup_steps:
            frac = s / self.warmup_steps
            return (self.warmup_target - self.initial_learning_rate) * frac + self.initial_learning_rate
        return self._decay(s - self.warmup_steps, self.warmup_target)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "alpha": self.alpha, "name": self.name, "warmup_target": self.warmup_target,
                "warmup_steps": self.warmup_steps}


class CosineDecayRestarts(LearningRateSchedule):
    """Cosine decay with warm restarts (SGDR, Loshchilov & Hutter 2017).

    Parameters
    ----------
    initial_learning_rate : float
    first_decay_steps : int > 0
        Length of the first period.
    t_mul : float > 0, default=2.0
        Each period is ``t_mul`` times longer than the one before.
    m_mul : float >= 0, default=1.0
        Each restart starts at ``m_mul`` times the previous starting rate.
    alpha : float, default=0.0
        The floor, as a fraction of ``initial_learning_rate``.
    name : str, default="SGDRDecay"

    Notes
    -----
    f = step / first_decay_steps. With t_mul = 1: i = floor(f), f := f - i.
    Otherwise i = floor(log(1 - f (1 - t_mul)) / log(t_mul)),
    f := (f - (1 - t_mul^i) / (1 - t_mul)) / t_mul^i. Then
    lr = lr0 ((1 - alpha) 0.5 m_mul^i (1 + cos(pi f)) + alpha) (Keras 3; the
    alpha floor does not shrink with m_mul). A restart step k (the first step
    of period i) gives f = 0 and lr = lr0 ((1 - alpha) m_mul^i + alpha).
    """

    def __init__(self, initial_learning_rate, first_decay_steps, t_mul=2.0, m_mul=1.0, alpha=0.0,
                 name="SGDRDecay"):
        self.initial_learning_rate = _number("initial_learning_rate", initial_learning_rate, lo=0)
        self.first_decay_steps = _number("first_decay_steps", first_decay_steps, lo=0, lo_open=True)
        self.t_mul = _number("t_mul", t_mul, lo=0, lo_open=True)
        self.m_mul = _number("m_mul", m_mul, lo=0)
        self.alpha = _number("alpha", alpha, lo=0, hi=1)
        self.name = name

    def __call__(self, step):
        f = _step(step) / self.first_decay_steps
        if self.t_mul == 1.0:
            i = math.floor(f)
            f = f - i
        else:
            i = math.floor(math.log(1.0 - f * (1.0 - self.t_mul)) / math.log(self.t_mul))
            sum_r = (1.0 - self.t_mul ** i) / (1.0 - self.t_mul)
            f = (f - sum_r) / self.t_mul ** i
        m_fac = self.m_mul ** i
        cosine = 0.5 * m_fac * (1.0 + math.cos(math.pi * f))
        return self.initial_learning_rate * ((1.0 - self.alpha) * cosine + self.alpha)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "first_decay_steps": self.first_decay_steps,
                "t_mul": self.t_mul, "m_mul": self.m_mul, "alpha": self.alpha, "name": self.name}


_SCHEDULES = {c.__name__: c for c in (ExponentialDecay, InverseTimeDecay, PiecewiseConstantDecay, PolynomialDecay,
                                     CosineDecay, CosineDecayRestarts)}


def serialize(schedule):
    """``{"class_name": ..., "config": ...}`` for a schedule (JSON-able)."""
    if not isinstance(schedule, LearningRateSchedule):
        raise TypeError(f"schedule: expected a LearningRateSchedule, got {type(schedule).__name__}")
    return {"class_name": type(schedule).__name__, "config": schedule.get_config()}


def deserialize(config, custom_objects=None):
    """Rebuild a schedule from ``serialize``'s dict. Only nncore's schedules and
    classes passed in ``custom_objects`` (name -> class) are accepted."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"config: expected {{'class_name': ..., 'config': ...}}, got {config!r}")
    known = dict(_SCHEDULES)
    if custom_objects:
        known.update(custom_objects)
    name = config["class_name"]
    if name not in known:
        raise ValueError(f"class_name: unknown learning-rate schedule {name!r}; known: {sorted(known)}")
    return known[name].from_config(dict(config.get("config", {})))
