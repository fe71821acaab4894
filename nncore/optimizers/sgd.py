"""Stochastic gradient descent, with momentum and Nesterov momentum."""
from nncore._kernels import optim as _k
from nncore.optimizers.optimizer import Optimizer, _flag, _number


class SGD(Optimizer):
    """Gradient descent (with momentum) -- batch, mini-batch or stochastic by the batch size.

    Parameters
    ----------
    learning_rate : float or LearningRateSchedule, default=0.01
    momentum : float in [0, 1], default=0.0
    nesterov : bool, default=False
    weight_decay, clipnorm, clipvalue, global_clipnorm, name, n_threads
        See :class:`Optimizer`.

    Notes
    -----
    Without momentum: w <- w - lr g.
    Momentum mu: v <- mu v - lr g; w <- w + v.
    Nesterov: v <- mu v - lr g; w <- w + mu v - lr g (with the new v).
    v starts at 0 and exists only when momentum > 0 (Keras 3).

    PyTorch's SGD keeps b <- mu b + g and steps w <- w - lr b; with a constant
    lr this is the same trajectory (v = -lr b). They differ when lr changes
    (here the old velocity keeps its old lr) and for Nesterov, where PyTorch
    steps w <- w - lr (g + mu b).

    References
    ----------
    Sutskever, Martens, Dahl and Hinton, "On the importance of initialization
    and momentum in deep learning", ICML 2013.
    """

    _defaults_name = "SGD"

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, weight_decay=None, clipnorm=None,
                 clipvalue=None, global_clipnorm=None, name=None, n_threads=None):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name, n_threads)
        self.momentum = _number("momentum", momentum, lo=0, hi=1)
        self.nesterov = _flag("nesterov", nesterov)

    def _slot_names(self):
        return ("momentum",) if self.momentum > 0 else ()

    def _rule(self, lr, t):
        # v <- mu v - lr g ; w <- w + v  (nesterov: w <- w + mu v - lr g)
        flags = _k.NESTEROV if self.nesterov else 0
        return _k.KINDS["sgd"], flags, (lr, self.momentum)

    def _hyper_config(self):
        return {"momentum": self.momentum, "nesterov": self.nesterov}
