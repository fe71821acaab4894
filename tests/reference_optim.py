"""Float64 NumPy oracles of the optimizers and schedules, written from the
published rules as Keras 3 states them (../shared/FORMULAS.md), not from
nncore's code. Slow and plain on purpose: one formula per line.

Reference(name, **config) holds a list of variables' slots and takes steps:
    ref = Reference("adam", learning_rate=0.1)
    ref.step(ws, gs)   # ws: list of float64 arrays, updated in place
"""
import math

import numpy as np

DEFAULTS = {
    "sgd": dict(learning_rate=0.01, momentum=0.0, nesterov=False),
    "adagrad": dict(learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7),
    "rmsprop": dict(learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False),
    "adam": dict(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False),
    "adamw": dict(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False, weight_decay=0.004),
    "adadelta": dict(learning_rate=0.001, rho=0.95, epsilon=1e-7),
    "adamax": dict(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7),
    "nadam": dict(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7),
    "ftrl": dict(learning_rate=0.001, learning_rate_power=-0.5, initial_accumulator_value=0.1,
                 l1_regularization_strength=0.0, l2_regularization_strength=0.0,
                 l2_shrinkage_regularization_strength=0.0, beta=0.0),
}


class Reference:
    """One optimizer in float64, rule by rule. `slots[i]` is a dict per variable."""

    def __init__(self, name, **config):
        self.name = name.lower()
        self.hp = dict(DEFAULTS[self.name])
        self.hp.setdefault("weight_decay", None)
        self.clip = {k: config.pop(k, None) for k in ("clipnorm", "clipvalue", "global_clipnorm")}
        self.hp.update(config)
        self.iterations = 0
        self.slots = None
        self.u_product = 1.0

    def lr(self):
        lr = self.hp["learning_rate"]
        return float(lr(self.iterations)) if callable(lr) else float(lr)

    def _new_slots(self, w):
        z = lambda: np.zeros_like(w)  # noqa: E731
        h = self.hp
        if self.name == "sgd":
            return {"momentum": z()} if h["momentum"] > 0 else {}
        if self.name == "adagrad":
            return {"accumulator": np.full_like(w, h["initial_accumulator_value"])}
        if self.name == "rmsprop":
            s = {"velocity": z()}
            if h["centered"]:
                s["average_gradient"] = z()
            if h["momentum"] > 0:
                s["momentum"] = z()
            return s
        if self.name in ("adam", "adamw"):
            return {"m": z(), "v": z(), "vhat": z()} if h["amsgrad"] else {"m": z(), "v": z()}
        if self.name == "adadelta":
            return {"accumulated_grad": z(), "accumulated_delta_var": z()}
        if self.name == "adamax":
            return {"m": z(), "u": z()}
        if self.name == "nadam":
            return {"m": z(), "v": z()}
        if self.name == "ftrl":
            return {"accumulator": np.full_like(w, h["initial_accumulator_value"]), "linear": z()}
        raise ValueError(self.name)

    def _clip(self, gs):
        c = self.clip
        if c["clipvalue"] is not None:
            return [np.clip(g, -c["clipvalue"], c["clipvalue"]) for g in gs]
        if c["clipnorm"] is not None:
            # g * c / max(||g||, c), per variable
            return [g * c["clipnorm"] / max(np.sqrt(np.sum(g * g)), c["clipnorm"]) for g in gs]
        if c["global_clipnorm"] is not None:
            n = np.sqrt(sum(np.sum(g * g) for g in gs))
            return [g * c["global_clipnorm"] / max(n, c["global_clipnorm"]) for g in gs]
        return list(gs)

    def step(self, ws, gs):
        if self.slots is None:
            self.slots = [self._new_slots(w) for w in ws]
        gs = self._clip([np.asarray(g, dtype=np.float64) for g in gs])
        lr = self.lr()
        t = self.iterations + 1
        h = self.hp
        if self.name == "nadam":
            mu_t = h["beta_1"] * (1 - 0.5 * 0.96 ** t)
            mu_next = h["beta_1"] * (1 - 0.5 * 0.96 ** (t + 1))
            self.u_product = self.u_product * mu_t
        for w, g, s in zip(ws, gs, self.slots):
            if h["weight_decay"]:
                w -= lr * h["weight_decay"] * w
            getattr(self, "_" + ("adam" if self.name == "adamw" else self.name))(w, g, s, lr, t, h)
        self.iterations += 1

    # one method per rule, the formula of FORMULAS.md line by line
    def _sgd(self, w, g, s, lr, t, h):
        if h["momentum"] == 0:
            w -= lr * g
            return
        mu = h["momentum"]
        s["momentum"][...] = mu * s["momentum"] - lr * g
        if h["nesterov"]:
            w += mu * s["momentum"] - lr * g
        else:
            w += s["momentum"]

    def _adagrad(self, w, g, s, lr, t, h):
        a = s["accumulator"]
        a += g ** 2
        w -= lr * g / np.sqrt(a + h["epsilon"])

    def _rmsprop(self, w, g, s, lr, t, h):
        rho = h["rho"]
        v = s["velocity"]
        v[...] = rho * v + (1 - rho) * g ** 2
        if h["centered"]:
            gb = s["average_gradient"]
            gb[...] = rho * gb + (1 - rho) * g
            den = np.sqrt(v - gb ** 2 + h["epsilon"])
        else:
            den = np.sqrt(v + h["epsilon"])
        d = lr * g / den
        if h["momentum"] > 0:
            m = s["momentum"]
            m[...] = h["momentum"] * m + d
            w -= m
        else:
            w -= d

    def _adam(self, w, g, s, lr, t, h):
        b1, b2 = h["beta_1"], h["beta_2"]
        m, v = s["m"], s["v"]
        m[...] = b1 * m + (1 - b1) * g
        v[...] = b2 * v + (1 - b2) * g ** 2
        a_t = lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        if h["amsgrad"]:
            s["vhat"][...] = np.maximum(s["vhat"], v)
            v = s["vhat"]
        w -= a_t * m / (np.sqrt(v) + h["epsilon"])

    def _adadelta(self, w, g, s, lr, t, h):
        rho, eps = h["rho"], h["epsilon"]
        eg, ed = s["accumulated_grad"], s["accumulated_delta_var"]
        eg[...] = rho * eg + (1 - rho) * g ** 2
        d = -np.sqrt(ed + eps) / np.sqrt(eg + eps) * g
        ed[...] = rho * ed + (1 - rho) * d ** 2
        w += lr * d

    def _adamax(self, w, g, s, lr, t, h):
        b1, b2 = h["beta_1"], h["beta_2"]
        m, u = s["m"], s["u"]
        m[...] = b1 * m + (1 - b1) * g
        u[...] = np.maximum(b2 * u, np.abs(g))
        w -= lr * m / ((1 - b1 ** t) * (u + h["epsilon"]))

    def _nadam(self, w, g, s, lr, t, h):
        b1, b2 = h["beta_1"], h["beta_2"]
        mu_t = b1 * (1 - 0.5 * 0.96 ** t)
        mu_next = b1 * (1 - 0.5 * 0.96 ** (t + 1))
        P = self.u_product
        m, v = s["m"], s["v"]
        m[...] = b1 * m + (1 - b1) * g
        v[...] = b2 * v + (1 - b2) * g ** 2
        mhat = mu_next * m / (1 - P * mu_next) + (1 - mu_t) * g / (1 - P)
        vhat = v / (1 - b2 ** t)
        w -= lr * mhat / (np.sqrt(vhat) + h["epsilon"])

    def _ftrl(self, w, g, s, lr, t, h):
        p = h["learning_rate_power"]
        l1, l2 = h["l1_regularization_strength"], h["l2_regularization_strength"]
        n, z = s["accumulator"], s["linear"]
        gs = g + 2 * h["l2_shrinkage_regularization_strength"] * w
        n_new = n + g ** 2
        sigma = (n_new ** (-p) - n ** (-p)) / lr
        z += gs - sigma * w
        q = n_new ** (-p) / lr + 2 * (l2 + h["beta"] / (2 * lr))
        w[...] = (np.clip(z, -l1, l1) - z) / q
        n[...] = n_new


# ---- schedules, from the Keras 3 documentation's formulas ----
def exponential_decay(step, lr0, decay_steps, rate, staircase=False):
    p = step / decay_steps
    return lr0 * rate ** (np.floor(p) if staircase else p)


def inverse_time_decay(step, lr0, decay_steps, rate, staircase=False):
    p = step / decay_steps
    return lr0 / (1 + rate * (np.floor(p) if staircase else p))


def piecewise_constant(step, boundaries, values):
    for b, v in zip(boundaries, values):
        if step <= b:
            return values[boundaries.index(b)]
    return values[-1]


def polynomial_decay(step, lr0, decay_steps, end, power, cycle):
    if cycle:
        decay_steps = decay_steps * max(1, math.ceil(step / decay_steps))
    else:
        step = min(step, decay_steps)
    return (lr0 - end) * (1 - step / decay_steps) ** power + end


def cosine_decay(step, lr0, decay_steps, alpha=0.0, warmup_target=None, warmup_steps=0):
    def decay(s, top):
        return top * ((1 - alpha) * 0.5 * (1 + math.cos(math.pi * min(s, decay_steps) / decay_steps)) + alpha)
    if warmup_target is None:
        return decay(step, lr0)
    if step < warmup_steps:
        return lr0 + (warmup_target - lr0) * step / warmup_steps
    return decay(step - warmup_steps, warmup_target)


def cosine_decay_restarts(step, lr0, first, t_mul, m_mul, alpha):
    """Walk the periods one by one (no logarithms): period i has length first * t_mul^i."""
    start, length, i = 0.0, float(first), 0
    while step >= start + length:
        start += length
        length *= t_mul
        i += 1
    frac = (step - start) / length
    return lr0 * ((1 - alpha) * 0.5 * m_mul ** i * (1 + math.cos(math.pi * frac)) + alpha)
